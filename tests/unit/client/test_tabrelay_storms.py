"""Storms (issue 11): full jitter after drops, and a planned reconnect before the 2-hour cut.

The core (:class:`tabrelay.core.Reconnects`) is driven by a fake clock and rng;
the asyncio layer is checked against the fake gateway with a tiny window.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest
import tabrelay
from tabrelay import CommandRequest, RelayOptions
from tabrelay.core import (
    DEFAULT_EARLY_RECONNECT,
    MAX_CONNECTION_SECONDS,
    Reconnects,
    Subscriptions,
    backoff,
)

from tests.unit.client.fake_gateway import WAIT, FakeGateway

# A planned reconnect within a tenth of a second, and a long backoff (up to a
# minute) for reconnections after a drop, which these tests must not see:
# every session after the first comes from a planned reconnect.
_SOON: dict[str, Any] = {
    "early_reconnect": (0.05, 0.1),
    "backoff_initial": 60.0,
    "backoff_max": 60.0,
}


def _constant(value: float) -> random.Random:
    class Fixed(random.Random):
        def random(self) -> float:
            return value

    return Fixed()


# --------------------------------------------------------------------------
# Full jitter.
# --------------------------------------------------------------------------


def test_given_default_backoff_then_each_delay_is_uniform_over_zero_to_its_ceiling() -> None:
    draws = iter([0.0, 0.25, 0.5, 0.9, 0.99, 0.999])
    delays = list(itertools.islice(backoff(initial=1, maximum=8, rng=lambda: next(draws)), 6))
    # Full jitter: d * (1 - r), i.e. anywhere in [0, d], not only in [d/2, d].
    assert delays == pytest.approx([1.0, 1.5, 2.0, 0.8, 0.08, 0.008])


def test_given_real_rng_then_delays_lie_in_zero_to_ceiling_and_use_the_whole_range() -> None:
    rng = random.Random(11)
    delays = list(itertools.islice(backoff(initial=0.5, maximum=30, rng=rng.random), 2000))
    ceilings = [min(30.0, 0.5 * 2 ** min(n, 10)) for n in range(2000)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    capped = delays[10:]  # all at the cap of 30 s
    assert min(capped) < 3 and max(capped) > 27


def test_given_long_lived_connections_dropped_together_then_first_delays_spread_over_initial() -> (
    None
):
    # A storm: 1,000 clients, each with its own rng, all lose a 1-hour-old connection at once.
    firsts = []
    for i in range(1000):
        r = Reconnects(initial=0.5, maximum=30, rng=random.Random(i).random)
        r.opened(0.0)
        firsts.append(r.dropped(3600.0))
    assert all(0 <= d <= 0.5 for d in firsts)
    assert len(set(firsts)) == 1000
    # Spread over the whole window: about a tenth in each tenth of it.
    for tenth in range(10):
        share = sum(1 for d in firsts if tenth * 0.05 <= d < (tenth + 1) * 0.05)
        assert 50 <= share <= 150


def test_given_short_lived_connection_then_backoff_keeps_growing_and_long_lived_resets_it() -> None:
    r = Reconnects(initial=0.5, maximum=30, rng=_constant(0.0).random)
    r.opened(0.0)
    assert r.dropped(1.0) == 0.5  # lived 1 s: the schedule goes on
    assert r.failed() == 1.0
    r.opened(5.0)
    assert r.dropped(6.0) == 2.0  # lived 1 s again: still growing
    r.opened(10.0)
    assert r.dropped(100.0) == 0.5  # lived 90 s: starts over


# --------------------------------------------------------------------------
# The planned reconnect, in the core.
# --------------------------------------------------------------------------


def test_given_default_window_then_planned_moment_lies_100_to_110_minutes_after_opening() -> None:
    assert DEFAULT_EARLY_RECONNECT == (6000.0, 6600.0)
    assert RelayOptions().early_reconnect == DEFAULT_EARLY_RECONNECT
    moments = []
    for i in range(200):
        r = Reconnects(rng=random.Random(i).random)
        at = r.opened(1000.0)
        assert at is not None
        assert 6000 <= at - 1000 <= 6600 < MAX_CONNECTION_SECONDS
        moments.append(at)
    assert len(set(moments)) == 200  # clients with different rngs do not reconnect together
    assert min(moments) - 1000 < 6060 and max(moments) - 1000 > 6540


def test_given_extreme_draws_then_planned_moment_is_at_the_window_edges() -> None:
    assert Reconnects(rng=_constant(0.0).random).opened(0.0) == 6000.0
    assert Reconnects(rng=_constant(0.5).random).opened(0.0) == 6300.0


def test_given_clock_passes_planned_moment_then_core_asks_to_reconnect_and_restores_as_after_drop() -> (
    None
):
    subs = Subscriptions()
    subs.subscribe(["b1", "b2"])
    subs.unsubscribe(["b2"])
    after_drop = subs.restore()
    r = Reconnects(rng=_constant(0.25).random)
    at = r.opened(50.0)
    assert at == 50.0 + 6150.0
    assert not r.renew_due(50.0)
    assert not r.renew_due(at - 0.001)
    assert r.renew_due(at)
    assert r.renew_due(at + 600)
    # The next connection rebuilds exactly what a reconnection after a drop does.
    assert subs.restore() == after_drop
    next_at = r.opened(at)
    assert next_at is not None and next_at == at + 6150.0
    assert not r.renew_due(at + 1)


def test_given_failed_planned_reconnect_then_retried_after_backoff_until_the_cut() -> None:
    r = Reconnects(initial=0.5, maximum=30, rng=_constant(0.0).random)
    r.opened(0.0)
    assert r.renew_failed(6000.0) == 6000.5
    assert r.renew_failed(6000.5) == 6001.5
    # No attempt is planned past the 2-hour cut: the cut then reconnects as a drop.
    assert r.renew_failed(MAX_CONNECTION_SECONDS - 1) is None
    assert not r.renew_due(MAX_CONNECTION_SECONDS)


def test_given_no_window_then_nothing_planned() -> None:
    r = Reconnects(window=None)
    assert r.opened(0.0) is None
    assert not r.renew_due(10 * MAX_CONNECTION_SECONDS)


@pytest.mark.parametrize("window", [(0.0, 1.0), (10.0, 5.0), (-1.0, 1.0)])
def test_given_bad_window_then_value_error(window: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="early reconnect window"):
        RelayOptions(early_reconnect=window)


# --------------------------------------------------------------------------
# The planned reconnect, in the asyncio layer.
# --------------------------------------------------------------------------


async def test_given_consumer_when_planned_moment_comes_then_next_connection_opens_first_and_restores(
    gateway: FakeGateway,
) -> None:
    async with tabrelay.connect(gateway.url, token="consumer:c1", **_SOON) as consumer:
        assert await consumer.subscribe(["b1"]) == ["b1"]
        first = gateway.conns[0]
        await gateway.wait_for(lambda: first.ws.close_code is not None)
        async with asyncio.timeout(WAIT):
            await consumer.wait_connected(2)
        later = gateway.conns[1:]
        sessions, planned = consumer.stats.sessions, consumer.stats.planned_reconnects
    # Make before break: the next connection was open before the first was closed,
    # and the first was closed on purpose, not dropped.
    assert later[0].overlapped
    assert first.ws.close_code == 1000
    assert first.ws.close_reason == "planned reconnect before the 2-hour limit"
    assert planned == sessions - 1 >= 1
    # The subscriptions were rebuilt on the next connection, as after a drop.
    assert later[0].received[0] == {"action": "subscribe", "browsers": ["b1"], "id": "restore"}


async def test_given_command_running_when_planned_reconnect_then_result_goes_out_on_next_connection(
    gateway: FakeGateway,
) -> None:
    release = asyncio.Event()

    async def slow(cmd: CommandRequest) -> str:
        await release.wait()
        return "done"

    command = {"action": "command", "id": "k1", "source": "c1", "name": "click", "args": {}}
    async with tabrelay.connect(gateway.url, token="browser:b1", **_SOON) as browser:
        browser.on_command(slow)
        first = gateway.conns[0]
        await gateway.send(first, command)
        await gateway.wait_for(lambda: first.ws.close_code is not None)
        release.set()
        await gateway.wait_for(lambda: len(gateway.messages("b1", "result")) == 1)
    assert first.ws.close_code == 1000
    assert gateway.messages("b1", "result")[0]["value"] == "done"
    assert browser.stats.commands_run == 1


async def test_given_token_refused_at_planned_reconnect_then_relay_ends_with_auth_error(
    gateway: FakeGateway,
) -> None:
    relay = await tabrelay.connect(gateway.url, token="consumer:c1", **_SOON)
    gateway.refuse_all = True
    with pytest.raises(tabrelay.AuthError):
        async with asyncio.timeout(WAIT):
            await relay.wait_closed()
    await relay.close()
    assert gateway.refused == 1  # never retried
    assert gateway.conns[0].ws.close_code == 1000


async def test_given_gateway_closes_superseded_browser_during_handshake_then_next_connection_taken_at_once(
    gateway: FakeGateway,
) -> None:
    # The real gateway closes a browser's older connection when the newer one
    # connects, i.e. before the planned reconnect's handshake has finished.
    gateway.supersede_browsers = True
    async with tabrelay.connect(gateway.url, token="browser:b1", **_SOON) as browser:
        first = gateway.conns[0]
        async with asyncio.timeout(WAIT):
            await browser.wait_connected(2)
        sessions, planned = browser.stats.sessions, browser.stats.planned_reconnects
    assert first.ws.close_reason == "superseded"
    # The handshake under way was waited for and used, not aborted as after a drop.
    assert planned == sessions - 1 >= 1
