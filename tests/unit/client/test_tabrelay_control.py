"""Control frames, list pages, handshake refusals and malformed snapshots, without I/O."""

from __future__ import annotations

import json

from tabrelay import wire
from tabrelay.core import ControlFrames, Listing, Malformed, handshake_error
from tabrelay.errors import AuthError, ConnectError


def _drain(control: ControlFrames) -> list[tuple[str, dict[str, object]]]:
    out = []
    while (taken := control.next()) is not None:
        out.append((taken[0], json.loads(taken[1])))
    return out


def test_given_restore_ack_and_ping_when_drained_then_restore_first_then_ack_then_ping() -> None:
    control = ControlFrames()
    control.start(['{"action":"subscribe","browsers":["b1"],"id":"restore"}'])
    control.ping()
    control.ack(3)
    control.ack(5)  # only the latest cumulative ack goes
    assert _drain(control) == [
        ("restore", {"action": "subscribe", "browsers": ["b1"], "id": "restore"}),
        ("ack", {"action": "ack", "seq": 5}),
        ("ping", {"action": "ping"}),
    ]


def test_given_pending_ack_and_ping_when_a_connection_starts_then_dropped() -> None:
    control = ControlFrames()
    control.ack(7)
    control.ping()
    control.start([])
    assert control.next() is None


def test_given_pages_when_listed_then_joined_until_no_cursor() -> None:
    listing = Listing()
    b1, b2 = wire.BrowserInfo("b1", 1), wire.BrowserInfo("b2", 2)
    assert listing.cursor is None
    assert listing.add([b1], "c1") is True
    assert listing.cursor == "c1"
    assert listing.add([b2], None) is False
    assert listing.browsers == [b1, b2]


def test_given_a_cursor_seen_before_when_listed_then_complete_rather_than_loop() -> None:
    listing = Listing()
    assert listing.add([], "c1") is True
    assert listing.add([], "c2") is True
    assert listing.add([], "c1") is False


def test_given_401_or_403_when_handshake_refused_then_auth_error_else_connect_error() -> None:
    for status in (401, 403):
        error = handshake_error(status)
        assert isinstance(error, AuthError)
        assert error.status == status
    assert isinstance(handshake_error(502), ConnectError)
    assert not isinstance(handshake_error(502), AuthError)


def test_given_malformed_snapshot_then_its_browser_and_sid_else_nothing() -> None:
    snap = Malformed("bad_request", "x", action="snapshot", source="b1", sid="s1")
    assert snap.snapshot == ("b1", "s1")
    assert Malformed("bad_request", "x", action="snapshot").snapshot is None
    assert Malformed("bad_request", "x", action="result", source="b1").snapshot is None
