"""The client end to end against the local emulator running the real handlers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import tabrelay
from tabrelay import CommandRequest, Relay, Snapshot

from emulator.testing import RunningGateway, running_gateway

TENANT = "acme"
WAIT = 60.0  # bound on every wait: the emulator runs SQS pollers and Lambdas in-process
# The deployed rate limit stays in force: the client paces itself under it.
GATEWAY_ENV: dict[str, str] = {}


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with running_gateway(env_overrides=GATEWAY_ENV) as gateway:
        yield gateway


def _connect(gw: RunningGateway, role: str, client_id: str, **options: Any) -> Relay:
    options = {"backoff_initial": 0.05, "backoff_max": 0.5, **options}
    return tabrelay.connect(gw.url, token=gw.token(role, TENANT, client_id), **options)


async def _eventually(predicate: Callable[[], bool]) -> None:
    """Wait for a condition on the client's counters (bounded; they change as frames arrive)."""
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.02)


def _page(size: int, seed: int) -> str:
    # Varied words and numbers: gzip shrinks it only a few times, so it needs many parts.
    rng = random.Random(seed)
    words = ["tab", "relay", "snapshot", "agent", "é", "日本", "<b>", "&amp;", "click"]
    out: list[str] = ["<!doctype html><html><body>"]
    total = 0
    while total < size:
        para = f"<p id='{rng.randrange(10**9)}'>{' '.join(rng.choices(words, k=8))}</p>"
        out.append(para)
        total += len(para.encode())
    out.append("</body></html>")
    return "".join(out)


async def test_given_3mb_page_when_browser_sends_it_then_consumer_gets_it_intact(
    gw: RunningGateway,
) -> None:
    html = _page(3 * 1024 * 1024, seed=1)
    async with _connect(gw, "consumer", "c1") as consumer, _connect(gw, "browser", "b1") as browser:
        await consumer.subscribe(["b1"])
        snaps = consumer.snapshots()
        sid = await browser.send_snapshot(html, url="https://big.test/", title="Big")
        async with asyncio.timeout(WAIT):
            snap = await anext(snaps)
    assert (snap.sid, snap.source, snap.url, snap.title, snap.missed) == (
        sid,
        "b1",
        "https://big.test/",
        "Big",
        0,
    )
    assert snap.html == html
    assert len(html.encode()) >= 3 * 1024 * 1024 and snap.parts > 10


async def test_given_drop_when_clients_reconnect_then_subscriptions_restored_and_no_command_runs_twice(
    gw: RunningGateway,
) -> None:
    runs: Counter[str] = Counter()

    def handle(cmd: CommandRequest) -> str:
        runs[cmd.id] += 1
        return f"ran {cmd.name}"

    async with (
        _connect(gw, "consumer", "c1") as consumer,
        _connect(gw, "browser", "b1") as b1,
        _connect(gw, "browser", "b2") as b2,
    ):
        b1.on_command(handle)
        assert await consumer.subscribe(["b1"]) == ["b1"]
        assert await consumer.command("b1", "before", timeout=10) == "ran before"

        # When the gateway drops every connection
        await gw.drop_all()
        await asyncio.gather(consumer.wait_connected(2), b1.wait_connected(2), b2.wait_connected(2))

        # Then the gateway holds the restored set (an unsubscribe replies with the set in
        # force; on a fresh, unrestored connection it would be empty)
        assert await consumer.unsubscribe(["nobody"]) == ["b1"]
        # and snapshots of a browser the consumer does not follow do not reach it
        snaps = consumer.snapshots()
        await b2.send_snapshot("<p>from b2</p>")
        await b2.drain()
        await b1.send_snapshot("<p>from b1</p>")
        async with asyncio.timeout(WAIT):
            first = await anext(snaps)
        assert (first.source, first.html) == ("b1", "<p>from b1</p>")
        # and commands after the reconnect run exactly once each
        assert await consumer.command("b1", "after", timeout=10) == "ran after"
    assert sorted(runs.values()) == [1, 1]
    assert consumer.stats.sessions == 2


async def test_given_offline_target_when_commanded_then_target_offline_error(
    gw: RunningGateway,
) -> None:
    async with _connect(gw, "consumer", "c1") as consumer:
        with pytest.raises(tabrelay.TargetOfflineError) as info:
            await consumer.command("ghost", "click", timeout=5)
    assert info.value.code == "target_offline"


async def test_given_browser_that_never_answers_when_commanded_then_gateway_timeout_error(
    gw: RunningGateway,
) -> None:
    never = asyncio.Event()

    async def hang(cmd: CommandRequest) -> None:
        await never.wait()

    # A long grace, so the error is the gateway's, not the client's own deadline
    async with (
        _connect(gw, "consumer", "c1", command_grace=WAIT) as consumer,
        _connect(gw, "browser", "b1") as browser,
    ):
        browser.on_command(hang)
        with pytest.raises(tabrelay.CommandTimeoutError) as info:
            await consumer.command("b1", "click", timeout=1)
        never.set()
    assert info.value.code == "timeout"
    assert "did not answer" in info.value.message


async def test_given_browser_with_commands_in_flight_at_the_bound_when_commanded_then_busy_error() -> (
    None
):
    async with running_gateway(env_overrides={**GATEWAY_ENV, "MAX_UNACKED": "3"}) as gw:
        release = asyncio.Event()
        started: list[str] = []
        three_started = asyncio.Event()

        async def slow(cmd: CommandRequest) -> str:
            started.append(cmd.id)
            if len(started) == 3:
                three_started.set()
            await release.wait()
            return "done"

        async with _connect(gw, "consumer", "c1") as consumer, _connect(gw, "browser", "b1") as b:
            b.on_command(slow)
            in_flight = [
                asyncio.create_task(consumer.command("b1", f"slow{i}", timeout=30))
                for i in range(3)
            ]
            async with asyncio.timeout(WAIT):
                await three_started.wait()
            with pytest.raises(tabrelay.BusyError) as info:
                await consumer.command("b1", "one-too-many", timeout=30)
            release.set()
            assert await asyncio.gather(*in_flight) == ["done"] * 3
    assert info.value.code == "busy"


async def test_given_invalid_token_when_connecting_then_auth_error_without_retry(
    gw: RunningGateway,
) -> None:
    with pytest.raises(tabrelay.AuthError) as info:
        async with tabrelay.connect(gw.url, token="not-a-jwt"):
            pass
    assert info.value.code == "unauthorized" and info.value.status in (401, 403)


# ---------------------------------------------------------------------------
# Bounded queues when the consumer is slower than the producer.
# ---------------------------------------------------------------------------

N = 12


async def _send_burst(browser: Relay) -> None:
    for i in range(N):
        await browser.send_snapshot(f"<p>{i}</p>", title="last" if i == N - 1 else str(i))
    await browser.drain()


async def _send_in_order(browser: Relay, consumer: Relay) -> None:
    """Send N snapshots, each after the previous one reached the consumer's reader
    (SQS does not keep order; this makes every arrival newer than what is buffered)."""
    for i in range(N):
        await browser.send_snapshot(f"<p>{i}</p>", title="last" if i == N - 1 else str(i))
        await _eventually(lambda i=i: consumer.stats.snapshots_received == i + 1)


def _accounted(got: list[Snapshot], relay: Relay) -> int:
    """Snapshots yielded never go back in time and the newest arrives; returns how many
    of the N sent are accounted for: yielded, reported in ``missed``, or dropped by the
    client and waiting to be reported (drops the gateway has not reported yet are not)."""
    assert [s.seq for s in got] == sorted(s.seq for s in got)
    assert got[-1].title == "last"
    return len(got) + sum(s.missed for s in got) + relay.unreported_missed("b1")


async def test_given_block_policy_and_slow_consumer_then_newest_arrives_and_nothing_dropped_locally() -> (
    None
):
    # A window of 3 unacknowledged deliveries: a consumer that blocks makes the gateway conflate.
    async with (
        running_gateway(env_overrides={**GATEWAY_ENV, "MAX_UNACKED": "3"}) as gw,
        _connect(gw, "consumer", "c1", queue_size=2, overflow="block", ack_delay=0.05) as c,
        _connect(gw, "browser", "b1") as browser,
    ):
        await _send_burst(browser)
        got: list[Snapshot] = []
        async with asyncio.timeout(WAIT):
            async for snap in c.snapshots():
                got.append(snap)
                if snap.title == "last":
                    break
                await asyncio.sleep(0.2)  # the consumer's slow work, not synchronization
    # Nothing is counted twice; a blocked consumer never drops locally
    assert _accounted(got, c) <= N
    assert c.stats.incoming_dropped == 0


async def test_given_drop_oldest_policy_and_slow_consumer_then_newest_kept_and_rest_counted_missed(
    gw: RunningGateway,
) -> None:
    async with (
        _connect(gw, "consumer", "c1", queue_size=2, overflow="drop_oldest") as c,
        _connect(gw, "browser", "b1") as browser,
    ):
        # The application takes nothing while all N arrive
        await _send_in_order(browser, c)
        snaps = c.snapshots()
        got = [await anext(snaps), await anext(snaps)]
    # The buffer kept the newest two; the next one of the browser reports the rest
    assert [(s.title, s.missed) for s in got] == [(str(N - 2), N - 2), ("last", 0)]
    assert _accounted(got, c) == N
    assert c.stats.incoming_dropped == N - 2


async def test_given_raise_policy_and_slow_consumer_then_iteration_raises_queue_full(
    gw: RunningGateway,
) -> None:
    async with (
        _connect(gw, "consumer", "c1", queue_size=2, overflow="raise") as c,
        _connect(gw, "browser", "b1") as browser,
    ):
        await _send_in_order(browser, c)
        with pytest.raises(tabrelay.QueueFullError) as info:
            await anext(c.snapshots())
        # Iterating again yields what the buffer kept: the two oldest
        snaps = c.snapshots()
        got = [await anext(snaps), await anext(snaps)]
    assert info.value.code == "queue_full"
    assert [(s.title, s.missed) for s in got] == [("0", 0), ("1", 0)]
    assert c.stats.incoming_dropped == N - 2
    assert c.unreported_missed("b1") == N - 2  # reported with the next snapshot of b1
