"""The asyncio layer against the in-process fake gateway (see conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tabrelay
from tabrelay import CommandRequest, Relay, Snapshot, wire
from tabrelay.core import DEFAULT_ACK_EVERY

from tests.unit.client.fake_gateway import WAIT, FakeGateway


def _page(size: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "".join(f"<p>{rng.randrange(10**9)} é</p>" for _ in range(size // 15))


async def _next(it: AsyncIterator[Snapshot]) -> Snapshot:
    async with asyncio.timeout(WAIT):
        return await anext(it)


def _fast(**options: Any) -> dict[str, Any]:
    return {"backoff_initial": 0.01, "backoff_max": 0.05, "ack_delay": 0.01, **options}


async def test_given_browser_and_consumer_when_large_snapshot_sent_then_consumer_gets_it_intact(
    gateway: FakeGateway,
) -> None:
    html = _page(600_000)
    async with (
        tabrelay.connect(gateway.url, token="consumer:c1") as consumer,
        tabrelay.connect(gateway.url, token="browser:b1") as browser,
    ):
        snaps = consumer.snapshots()
        sid = await browser.send_snapshot(html, url="https://x.test/", title="X")
        snap = await _next(snaps)
    assert (snap.sid, snap.source, snap.html, snap.url, snap.title) == (
        sid,
        "b1",
        html,
        "https://x.test/",
        "X",
    )
    assert snap.parts > 1


async def test_given_command_handler_when_consumer_commands_then_value_returned(
    gateway: FakeGateway,
) -> None:
    async with (
        tabrelay.connect(gateway.url, token="consumer:c1") as consumer,
        tabrelay.connect(gateway.url, token="browser:b1") as browser,
    ):

        @browser.on_command
        async def handle(cmd: CommandRequest) -> Any:
            return {"name": cmd.name, "args": cmd.args, "from": cmd.source}

        value = await consumer.command("b1", "click", timeout=5, selector="#btn")
    assert value == {"name": "click", "args": {"selector": "#btn"}, "from": "c1"}


async def test_given_handler_returns_large_value_when_commanded_then_value_arrives_whole(
    gateway: FakeGateway,
) -> None:
    big = {"png": "A" * 200_000}
    async with (
        tabrelay.connect(gateway.url, token="consumer:c1") as consumer,
        tabrelay.connect(gateway.url, token="browser:b1") as browser,
    ):
        browser.on_command(lambda cmd: big)
        assert await consumer.command("b1", "screenshot", timeout=5) == big


async def test_given_handler_raises_when_commanded_then_command_failed_error_with_code(
    gateway: FakeGateway,
) -> None:
    class NoSuchElementError(Exception):
        code = "no_such_element"

    def handle(cmd: CommandRequest) -> Any:
        raise NoSuchElementError("#btn not found")

    async with (
        tabrelay.connect(gateway.url, token="consumer:c1") as consumer,
        tabrelay.connect(gateway.url, token="browser:b1") as browser,
    ):
        browser.on_command(handle)
        with pytest.raises(tabrelay.CommandFailedError) as info:
            await consumer.command("b1", "click", timeout=5)
    assert (info.value.code, info.value.message, info.value.source) == (
        "no_such_element",
        "#btn not found",
        "b1",
    )


async def test_given_offline_target_when_commanded_then_target_offline_error(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
        with pytest.raises(tabrelay.TargetOfflineError) as info:
            await consumer.command("nobody", "click", timeout=5)
    assert info.value.code == "target_offline"
    assert isinstance(info.value, tabrelay.TabRelayError)


async def test_given_busy_target_when_commanded_then_busy_error(gateway: FakeGateway) -> None:
    gateway.busy_targets.add("b1")
    async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
        with pytest.raises(tabrelay.BusyError):
            await consumer.command("b1", "click", timeout=5)


async def test_given_no_answer_when_grace_passes_then_command_timeout_error(
    gateway: FakeGateway,
) -> None:
    gateway.silent_commands = True
    async with (
        tabrelay.connect(gateway.url, token="consumer:c1", command_grace=0.05) as consumer,
        tabrelay.connect(gateway.url, token="browser:b1"),
    ):
        with pytest.raises(tabrelay.CommandTimeoutError):
            await consumer.command("b1", "click", timeout=1)


async def test_given_bad_token_when_connecting_then_auth_error_and_no_retry(
    gateway: FakeGateway,
) -> None:
    with pytest.raises(tabrelay.AuthError) as info:
        async with tabrelay.connect(gateway.url, token="bad", **_fast()):
            pass
    assert info.value.status == 401
    assert gateway.refused == 1


async def test_given_nothing_listening_when_connecting_then_connect_error(
    gateway: FakeGateway,
) -> None:
    url = gateway.url
    await gateway.stop()
    with pytest.raises(tabrelay.ConnectError):
        async with tabrelay.connect(url, token="consumer:c1"):
            pass


async def test_given_browsers_online_when_listed_then_their_ids(gateway: FakeGateway) -> None:
    async with (
        tabrelay.connect(gateway.url, token="consumer:c1") as consumer,
        tabrelay.connect(gateway.url, token="browser:b1"),
        tabrelay.connect(gateway.url, token="browser:b2"),
    ):
        infos = await consumer.browsers()
    assert sorted(b.client_id for b in infos) == ["b1", "b2"]


async def test_given_browsers_over_several_pages_when_listed_then_every_page_followed(
    gateway: FakeGateway,
) -> None:
    # Given a gateway that answers list with pages of 2 and five browsers online
    gateway.list_page = 2
    async with contextlib.AsyncExitStack() as stack:
        for i in range(5):
            await stack.enter_async_context(tabrelay.connect(gateway.url, token=f"browser:b{i}"))
        consumer = await stack.enter_async_context(
            tabrelay.connect(gateway.url, token="consumer:c1")
        )
        # When the consumer lists them
        infos = await consumer.browsers()
    # Then it gets all five, having followed each page's cursor
    assert sorted(b.client_id for b in infos) == [f"b{i}" for i in range(5)]
    cursors = [m.get("cursor") for m in gateway.messages("c1", "list")]
    assert cursors == [None, "2", "4"]


async def test_given_gateway_that_echoes_no_ids_when_listed_then_reply_still_matched(
    gateway: FakeGateway,
) -> None:
    gateway.echo_ids = False
    async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
        assert await consumer.browsers() == []


async def test_given_subscription_when_connection_dropped_then_restored_after_reconnect(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1", **_fast()) as consumer:
        assert await consumer.subscribe(["b1", "b2"]) == ["b1", "b2"]
        assert await consumer.unsubscribe(["b2"]) == ["b1"]
        await gateway.drop_all()
        await gateway.wait_for(lambda: gateway.handshakes == 2)
        await consumer.wait_connected(2)
        second = gateway.conns[-1]
    assert second.subs == {"b1"}
    assert consumer.stats.sessions == 2


async def test_given_everything_unsubscribed_when_reconnected_then_empty_set_restored(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1", **_fast()) as consumer:
        await consumer.subscribe(["b1"])
        await consumer.unsubscribe(["b1"])
        await gateway.drop_all()
        await gateway.wait_for(lambda: gateway.handshakes == 2)
        await consumer.wait_connected(2)
    assert gateway.conns[-1].subs == set()


async def test_given_command_redelivered_after_reconnect_then_handler_runs_once_and_result_resent(
    gateway: FakeGateway,
) -> None:
    runs: list[str] = []
    command = {"action": "command", "id": "k1", "source": "c1", "name": "click", "args": {}}
    async with tabrelay.connect(gateway.url, token="browser:b1", **_fast()) as browser:
        browser.on_command(lambda cmd: runs.append(cmd.id) or "done")
        first = gateway.conns[-1]
        await gateway.send(first, command)
        await gateway.wait_for(lambda: len(gateway.messages("b1", "result")) == 1)
        await gateway.drop_all()
        await gateway.wait_for(lambda: gateway.handshakes == 2)
        await gateway.send(gateway.conns[-1], command)  # at-least-once redelivery
        await gateway.wait_for(lambda: len(gateway.messages("b1", "result")) == 2)
    assert runs == ["k1"]
    assert [m["value"] for m in gateway.messages("b1", "result")] == ["done", "done"]
    assert browser.stats.duplicate_commands == 1


async def test_given_acks_when_snapshots_consumed_then_few_cumulative_acks_reach_last_dseq(
    gateway: FakeGateway,
) -> None:
    async with (
        tabrelay.connect(gateway.url, token="consumer:c1", ack_every=5, ack_delay=60) as consumer,
        tabrelay.connect(gateway.url, token="browser:b1") as browser,
    ):
        snaps = consumer.snapshots()
        for i in range(10):
            await browser.send_snapshot(f"<p>{i}</p>")
        got = [await _next(snaps) for _ in range(10)]
        await gateway.wait_for(lambda: any(m["seq"] == 10 for m in gateway.messages("c1", "ack")))
    acks = [m["seq"] for m in gateway.messages("c1", "ack")]
    assert [s.html for s in got] == [f"<p>{i}</p>" for i in range(10)]
    # cumulative: at most one per ack_every deliveries (pending ones coalesce), ending at the last
    assert acks in ([5, 10], [10])


async def test_given_acks_when_application_has_not_taken_snapshots_then_they_are_not_acked(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(
        gateway.url, token="consumer:c1", ack_every=1, ack_delay=0.01
    ) as consumer:
        conn = gateway.conns[-1]
        for i in range(3):
            await gateway.deliver_snapshot(
                conn, "b1", {"action": "snapshot", "sid": f"s{i}", "seq": i, "data": "x"}
            )
        await consumer.browsers()  # the reader has handled everything sent before the reply
        assert gateway.messages("c1", "ack") == []
        snaps = consumer.snapshots()
        await _next(snaps)
        await gateway.wait_for(lambda: len(gateway.messages("c1", "ack")) >= 1)
    assert gateway.messages("c1", "ack")[0]["seq"] == 1


async def test_given_no_acks_option_then_url_does_not_negotiate_acks(gateway: FakeGateway) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1", acks=False):
        assert gateway.conns[-1].acks is False
    async with tabrelay.connect(gateway.url, token="consumer:c1"):
        assert gateway.conns[-1].acks is True


async def test_given_short_ping_interval_then_json_pings_are_sent(gateway: FakeGateway) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1", ping_interval=0.02):
        await gateway.wait_for(lambda: len(gateway.messages("c1", "ping")) >= 2)


async def _offline_browser(gateway: FakeGateway, overflow: str) -> Relay:
    """A browser relay whose gateway went away: its writer cannot drain."""
    browser = tabrelay.connect(
        gateway.url, token="browser:b1", queue_size=2, overflow=overflow, **_fast()
    )  # type: ignore[arg-type]
    await browser.start()
    await gateway.stop()
    await gateway.wait_for(lambda: all(c.ws.close_code is not None for c in gateway.conns))
    return browser


async def test_given_raise_policy_and_stalled_writer_when_queue_full_then_queue_full_error(
    gateway: FakeGateway,
) -> None:
    browser = await _offline_browser(gateway, "raise")
    try:
        await browser.send_snapshot("<p>1</p>")
        await browser.send_snapshot("<p>2</p>")
        with pytest.raises(tabrelay.QueueFullError):
            await browser.send_snapshot("<p>3</p>")
    finally:
        await gateway.start()
        await browser.close()


async def test_given_drop_oldest_policy_and_stalled_writer_then_oldest_snapshot_dropped(
    gateway: FakeGateway,
) -> None:
    browser = await _offline_browser(gateway, "drop_oldest")
    for i in range(4):
        await browser.send_snapshot(f"<p>{i}</p>")
    assert browser.stats.outgoing_dropped == 2
    await gateway.start()
    await gateway.wait_for(lambda: len(gateway.messages("b1", "snapshot")) == 2)
    sent = [m["data"] for m in gateway.messages("b1", "snapshot")]
    await browser.close()
    assert sent == ["<p>2</p>", "<p>3</p>"]


async def test_given_block_policy_and_stalled_writer_then_producer_waits_until_reconnected(
    gateway: FakeGateway,
) -> None:
    browser = await _offline_browser(gateway, "block")
    await browser.send_snapshot("<p>0</p>")
    await browser.send_snapshot("<p>1</p>")
    third = asyncio.create_task(browser.send_snapshot("<p>2</p>"))
    done, _ = await asyncio.wait({third}, timeout=0.2)
    assert not done  # blocked: nothing was dropped or raised
    await gateway.start()
    async with asyncio.timeout(WAIT):
        await third
    await gateway.wait_for(lambda: len(gateway.messages("b1", "snapshot")) == 3)
    sent = [m["data"] for m in gateway.messages("b1", "snapshot")]
    await browser.close()
    assert sent == ["<p>0</p>", "<p>1</p>", "<p>2</p>"]
    assert browser.stats.outgoing_dropped == 0


async def _flood(gateway: FakeGateway, consumer: Relay, n: int) -> None:
    conn = gateway.conns[-1]
    for i in range(n):
        await gateway.deliver_snapshot(
            conn, "b1", {"action": "snapshot", "sid": f"s{i}", "seq": i, "data": f"<p>{i}</p>"}
        )


async def test_given_drop_oldest_and_slow_consumer_then_newest_kept_and_missed_counted(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(
        gateway.url, token="consumer:c1", queue_size=2, overflow="drop_oldest"
    ) as consumer:
        await _flood(gateway, consumer, 5)
        await consumer.browsers()  # every snapshot sent before this reply is handled
        snaps = consumer.snapshots()
        got = [await _next(snaps), await _next(snaps)]
    assert [(s.seq, s.missed) for s in got] == [(3, 3), (4, 0)]


async def test_given_raise_and_slow_consumer_then_iteration_raises_queue_full(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(
        gateway.url, token="consumer:c1", queue_size=2, overflow="raise"
    ) as consumer:
        await _flood(gateway, consumer, 3)
        await consumer.browsers()
        with pytest.raises(tabrelay.QueueFullError):
            await _next(consumer.snapshots())
        snaps = consumer.snapshots()
        got = [await _next(snaps), await _next(snaps)]
    assert [s.seq for s in got] == [0, 1]


async def test_given_block_and_slow_consumer_then_every_snapshot_arrives_in_order(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(
        gateway.url, token="consumer:c1", queue_size=2, overflow="block"
    ) as consumer:
        await _flood(gateway, consumer, 6)
        snaps = consumer.snapshots()
        got = [await _next(snaps) for _ in range(6)]
    assert [(s.seq, s.missed) for s in got] == [(i, 0) for i in range(6)]


async def test_given_closed_relay_then_calls_raise_connection_closed(gateway: FakeGateway) -> None:
    relay = await tabrelay.connect(gateway.url, token="consumer:c1")
    await relay.close()
    with pytest.raises(tabrelay.ConnectionClosedError):
        await relay.command("b1", "click")
    assert [s async for s in relay.snapshots()] == []


async def test_given_presence_events_then_presence_iterator_yields_them(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
        await gateway.send(
            gateway.conns[-1], {"action": "presence", "client_id": "b1", "online": True, "at": 5}
        )
        async with asyncio.timeout(WAIT):
            event = await anext(consumer.presence())
    assert (event.client_id, event.online, event.at) == ("b1", True, 5)


async def test_given_token_callable_then_called_at_each_connect(gateway: FakeGateway) -> None:
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return "consumer:c1"

    async with tabrelay.connect(gateway.url, token=token, **_fast()) as consumer:
        await gateway.drop_all()
        await gateway.wait_for(lambda: gateway.handshakes == 2)
        await consumer.wait_connected(2)
    assert len(calls) == 2


async def test_given_pings_unanswered_when_timeout_passes_then_relay_reconnects(
    gateway: FakeGateway,
) -> None:
    gateway.answer_pings = False
    options = _fast(ping_interval=0.02, ping_timeout=0.05)
    async with tabrelay.connect(gateway.url, token="consumer:c1", **options):
        await gateway.wait_for(lambda: gateway.handshakes >= 2)


async def test_given_token_refused_on_reconnect_then_relay_ends_with_auth_error(
    gateway: FakeGateway,
) -> None:
    relay = await tabrelay.connect(gateway.url, token="consumer:c1", **_fast())
    gateway.refuse_all = True
    await gateway.drop_all()
    with pytest.raises(tabrelay.AuthError):
        async with asyncio.timeout(WAIT):
            await relay.wait_closed()
    with pytest.raises(tabrelay.AuthError):
        await _next(relay.snapshots())
    await relay.close()
    assert gateway.refused == 1


async def test_given_gateway_refuses_a_snapshot_part_with_rate_limited_then_part_is_sent_again(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="browser:b1") as browser:
        await browser.send_snapshot("<p>x</p>")
        await gateway.wait_for(lambda: len(gateway.messages("b1", "snapshot")) == 1)
        part = gateway.messages("b1", "snapshot")[0]
        await gateway.send(
            gateway.conns[-1],
            {"action": "error", "code": "rate_limited", "message": "slow down", "id": part["id"]},
        )
        await gateway.wait_for(lambda: len(gateway.messages("b1", "snapshot")) == 2)
    again = gateway.messages("b1", "snapshot")[1]
    assert again == part
    assert browser.stats.parts_resent == 1


async def test_given_gateway_down_when_command_queued_then_it_goes_out_after_reconnect(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1", **_fast()) as consumer:
        await gateway.stop()
        pending = asyncio.create_task(consumer.command("b1", "click", timeout=10))
        await gateway.start()
        # The gateway's answer (no browser b1 there) proves the command went out
        with pytest.raises(tabrelay.TargetOfflineError):
            async with asyncio.timeout(WAIT):
                await pending
    (conn,) = [c for c in gateway.conns if c.received and c.received[0]["action"] == "command"]
    assert conn.number == 2


async def test_given_defaults_when_a_window_enforcing_gateway_delivers_then_no_stall_and_few_acks(
    gateway: FakeGateway,
) -> None:
    # Given a consumer at the shipped ack defaults and a gateway that, like the real
    # one, sends a delivery only while fewer than MAX_UNACKED are unacknowledged
    deliveries = 4 * wire.MAX_UNACKED
    async with tabrelay.connect(gateway.url, token="consumer:c1") as consumer:
        conn = gateway.conns[-1]
        snaps = consumer.snapshots()

        def acked() -> int:
            return max((m["seq"] for m in gateway.messages("c1", "ack")), default=0)

        async def deliver() -> None:
            for i in range(1, deliveries + 1):
                if i - acked() > wire.MAX_UNACKED:
                    # the window is full: only an ack opens it (WAIT bounds a stall)
                    await gateway.wait_for(lambda i=i: i - acked() <= wire.MAX_UNACKED)  # type: ignore[misc]
                await gateway.deliver_snapshot(
                    conn, "b1", {"action": "snapshot", "sid": f"s{i}", "seq": i, "data": "x"}
                )

        # When the application takes every snapshot as it comes
        delivering = asyncio.create_task(deliver())
        got = [await _next(snaps) for _ in range(deliveries)]
        await delivering
        # Then every delivery arrived, and acks came once per half window
        await gateway.wait_for(lambda: acked() >= deliveries - DEFAULT_ACK_EVERY)
    assert [s.seq for s in got] == list(range(1, deliveries + 1))
    acks = [m["seq"] for m in gateway.messages("c1", "ack")]
    assert acks == sorted(acks)
    assert len(acks) <= deliveries // DEFAULT_ACK_EVERY  # the old defaults sent 40 or more
    assert consumer.stats.acks_sent == len(acks)


async def test_given_a_short_keepalive_interval_then_one_way_keepalives_are_sent(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(
        gateway.url, token="consumer:c1", keepalive_interval=0.02
    ) as consumer:
        await gateway.wait_for(lambda: len(gateway.messages("c1", "keepalive")) >= 2)
    assert consumer.stats.keepalives_sent >= 2
    assert gateway.messages("c1", "ping") == []  # the consumer's ping waits 10 minutes
