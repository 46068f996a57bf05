"""The extension's keep-alive schedule (``lib/wire.js`` ``keepAliveDue``) under Node.

``keepalive_check.mjs`` asks ``keepAliveDue`` every ``KEEPALIVE_TICK_MS`` on a
fake clock, as the service worker does, for an idle socket, a busy one (a
snapshot every 10 s) and one whose pings go unanswered. A busy browser sends no
keepalive; an idle one sends one 20-25 s after its last message (a Manifest V3
service worker needs one within 30 s); a pong-answered ping goes out only after
2 minutes without a frame; the schedule is the Python client's browser role's.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from tabrelay import wire
from tabrelay.core import BROWSER_KEEPALIVE

from tests.unit.extension.nodejs import WIRE_JS, install_node, run_check


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """What keepalive_check.mjs prints, run with the Node of ``make tools``."""
    return run_check(install_node(), "keepalive_check.mjs", WIRE_JS)


def test_the_schedule_is_the_python_clients_browser_role(report: dict[str, Any]) -> None:
    c = report["constants"]
    assert c["KEEPALIVE_AFTER_MS"] == 1000 * BROWSER_KEEPALIVE.keepalive_after  # type: ignore[operator]
    assert c["PING_AFTER_MS"] == 1000 * BROWSER_KEEPALIVE.ping_after  # type: ignore[operator]
    assert c["PING_TIMEOUT_MS"] == 1000 * BROWSER_KEEPALIVE.ping_timeout
    # Checked every tick, a keepalive still goes out within the service worker's 30 s
    assert c["KEEPALIVE_AFTER_MS"] + c["KEEPALIVE_TICK_MS"] < 30_000
    assert json.loads(report["messages"]["keepalive"]) == wire.to_dict(wire.Keepalive())
    assert json.loads(report["messages"]["ping"]) == wire.to_dict(wire.Ping())


def test_an_idle_browser_sends_a_keepalive_within_20_to_30_seconds(
    report: dict[str, Any],
) -> None:
    sent = report["idle"]
    times = [0] + [t for t, _ in sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(20_000 <= gap < 30_000 for gap in gaps), gaps
    kinds = [k for _, k in sent]
    assert kinds[0] == "keepalive"
    # Ten minutes: one pong-answered ping per 2 minutes at most, the rest one-way
    assert 1 <= kinds.count("ping") <= 5
    assert kinds.count("keepalive") >= 20


def test_a_busy_browser_sends_no_keepalive(report: dict[str, Any]) -> None:
    kinds = [k for _, k in report["busy"]]
    assert "keepalive" not in kinds
    # It receives nothing here, so it checks liveness every 2 minutes, no more
    pings = [t for t, k in report["busy"] if k == "ping"]
    assert all(b - a >= 120_000 for a, b in itertools.pairwise(pings))


def test_an_unanswered_ping_drops_the_socket(report: dict[str, Any]) -> None:
    sent = report["unanswered"]
    (ping,) = [t for t, k in sent if k == "ping"]
    dead = [t for t, k in sent if k == "dead"]
    assert ping >= 120_000
    assert dead and 20_000 <= dead[0] - ping < 25_000
