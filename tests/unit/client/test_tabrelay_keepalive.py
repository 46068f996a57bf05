"""Keep-alive and liveness without I/O: a fake clock drives :class:`KeepAlive`."""

from __future__ import annotations

import base64
import itertools
import json
import math

import pytest
from tabrelay import RelayOptions, wire
from tabrelay.core import (
    BROWSER_KEEPALIVE,
    CONSUMER_KEEPALIVE,
    ControlFrames,
    KeepAlive,
    KeepAlivePolicy,
    token_role,
)

#: API Gateway closes a connection idle for this long (a fixed quota).
IDLE_LIMIT = 600.0


def _run(
    policy: KeepAlivePolicy,
    until: float,
    *,
    sends_every: float | None = None,
    answer_pings: bool = True,
) -> list[tuple[float, str]]:
    """What a connection sends on its own from 0 to ``until`` (time, kind), the
    application sending a frame every ``sends_every`` s; the gateway answers each
    ping at once. A "dead" entry ends the run."""
    alive = KeepAlive(policy)
    alive.opened(0.0)
    out: list[tuple[float, str]] = []
    next_send = sends_every
    now = 0.0
    while now <= until:
        deadline = alive.deadline()
        candidates = [t for t in (deadline, next_send) if t is not None]
        if not candidates:
            break
        now = min(candidates)
        if next_send is not None and now >= next_send:
            alive.sent(now)
            next_send = now + (sends_every or 0)
            continue
        action = alive.due(now)
        if action == "dead":
            out.append((now, "dead"))
            break
        if action == "ping":
            alive.pinged(now)
            out.append((now, "ping"))
            if answer_pings:
                alive.received(now)  # the pong
        elif action == "keepalive":
            alive.sent(now)
            out.append((now, "keepalive"))
    return [(t, kind) for t, kind in out if t <= until]


def test_an_idle_consumer_keeps_alive_once_per_interval_and_never_pings_every_20s() -> None:
    hour = 3600.0
    sent = _run(CONSUMER_KEEPALIVE, hour)
    keepalives = [t for t, kind in sent if kind == "keepalive"]
    pings = [t for t, kind in sent if kind == "ping"]
    # One keepalive per 5 minutes of silence, one ping per 10 minutes: 12 frames an
    # hour (and 6 pongs), where a ping every 20 s made 180 (and 180 pongs)
    assert keepalives[0] == 300.0
    assert len(keepalives) == 6 and len(pings) == 6
    times = [0.0] + [t for t, _ in sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == 300.0  # nothing goes out more often than every 5 minutes
    assert max(gaps) < IDLE_LIMIT  # and the gateway never sees it idle for 10


def test_a_busy_consumer_sends_no_keepalive() -> None:
    # A consumer acking every minute is never silent for 5
    sent = _run(CONSUMER_KEEPALIVE, 3600.0, sends_every=60.0)
    assert [k for _, k in sent if k == "keepalive"] == []


def test_a_busy_browser_sends_no_keepalive() -> None:
    # A browser sending a snapshot every 10 s (W1) never needs one
    sent = _run(BROWSER_KEEPALIVE, 3600.0, sends_every=10.0)
    assert [k for _, k in sent if k == "keepalive"] == []
    # and pings only every 2 minutes (it receives nothing else here)
    pings = [t for t, k in sent if k == "ping"]
    assert pings[:2] == [120.0, 240.0]


def test_an_idle_browser_sends_a_keepalive_within_20_to_30_seconds() -> None:
    sent = _run(BROWSER_KEEPALIVE, 600.0)
    times = [0.0] + [t for t, _ in sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # A Manifest V3 service worker dies after 30 s without a message
    assert all(20.0 <= gap < 30.0 for gap in gaps)
    assert sent[0] == (20.0, "keepalive")
    kinds = [k for _, k in sent]
    assert kinds.count("ping") == 5  # one pong-answered ping per 2 minutes


def test_an_unanswered_ping_declares_the_connection_dead() -> None:
    sent = _run(CONSUMER_KEEPALIVE, 3600.0, answer_pings=False)
    dead = [t for t, k in sent if k == "dead"]
    # noticed ping_after + ping_timeout after the last frame received (at 0)
    assert dead == [CONSUMER_KEEPALIVE.ping_after + CONSUMER_KEEPALIVE.ping_timeout]  # type: ignore[operator]


def test_any_frame_answers_a_ping_and_moves_the_next_ping() -> None:
    alive = KeepAlive(KeepAlivePolicy(keepalive_after=None, ping_after=10.0, ping_timeout=5.0))
    alive.opened(0.0)
    assert alive.due(10.0) == "ping"
    alive.pinged(10.0)
    assert alive.deadline() == 15.0
    assert alive.received(12.0) is True  # a snapshot, not even the pong
    assert alive.deadline() == 22.0
    assert alive.received(13.0) is False
    assert alive.due(22.9) is None


def test_policies_can_turn_keepalive_and_ping_off() -> None:
    alive = KeepAlive(KeepAlivePolicy(keepalive_after=None, ping_after=None, ping_timeout=1.0))
    alive.opened(0.0)
    assert alive.deadline() is None and alive.due(1e9) is None
    with pytest.raises(ValueError, match="ping_after"):
        KeepAlivePolicy(keepalive_after=1.0, ping_after=0.0, ping_timeout=1.0)


def _jwt(claims: dict[str, object]) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig"


def test_the_role_comes_from_the_option_else_the_token_else_consumer() -> None:
    assert token_role(_jwt({"role": "browser"})) == "browser"
    assert token_role(_jwt({"role": "admin"})) is None
    assert token_role("browser:b1") is None and token_role(None) is None
    options = RelayOptions()
    assert options.keepalive_policy("browser") == BROWSER_KEEPALIVE
    assert options.keepalive_policy(None) == CONSUMER_KEEPALIVE
    assert RelayOptions(role="browser").keepalive_policy("consumer") == BROWSER_KEEPALIVE


def test_options_override_the_roles_defaults() -> None:
    options = RelayOptions(keepalive_interval=math.inf, ping_interval=5.0, ping_timeout=2.0)
    assert options.keepalive_policy("browser") == KeepAlivePolicy(None, 5.0, 2.0)


def test_a_keepalive_frame_goes_last_and_only_when_nothing_else_goes() -> None:
    frames = ControlFrames()
    frames.start([])
    frames.keepalive()
    assert frames.next() == ("keepalive", wire.encode(wire.Keepalive()))
    assert frames.next() is None
    frames.keepalive()
    frames.ack(3)
    assert frames.next() == ("ack", wire.encode(wire.Ack(seq=3)))
    assert frames.next() is None  # the ack kept the connection alive


def test_a_due_keepalive_goes_as_the_ping_when_that_is_due_before_the_next() -> None:
    alive = KeepAlive(BROWSER_KEEPALIVE)
    alive.opened(0.0)
    alive.received(5.0)  # a pong: the next ping is due at 125
    alive.sent(90.0)  # the keepalive is due at 110, the one after it at 130
    assert alive.due(110.0) == "ping"  # one frame instead of a keepalive and a ping
    fresh = KeepAlive(BROWSER_KEEPALIVE)
    fresh.opened(0.0)
    fresh.received(50.0)
    assert fresh.due(20.0) == "keepalive"  # the ping is 150 s away
