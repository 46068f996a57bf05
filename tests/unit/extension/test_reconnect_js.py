"""The extension's reconnection schedule (``lib/wire.js``) under Node (issue 11, storms).

``reconnect_check.mjs`` runs ``backoffDelay`` and ``earlyReconnectDelay`` with
fixed and seeded draws; these tests check full jitter after drops (a delay
anywhere in ``[0, min(cap, base * 2**n)]``) and the planned reconnect 100-110
minutes after a connection opened, the same window as the Python client's.
"""

from __future__ import annotations

from typing import Any

import pytest
from tabrelay import core

from tests.unit.extension.nodejs import WIRE_JS, install_node, run_check

BASE_MS, CAP_MS = 500, 15_000


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """What reconnect_check.mjs prints, run with the Node of ``make tools``."""
    return run_check(install_node(), "reconnect_check.mjs", WIRE_JS)


def test_given_fixed_draws_then_backoff_is_the_draw_times_the_capped_ceiling(
    report: dict[str, Any],
) -> None:
    for draw, delays in zip(report["draws"], report["backoff"], strict=True):
        for attempt, delay in zip(report["attempts"], delays, strict=True):
            ceiling = min(CAP_MS, BASE_MS * 2**attempt)
            assert delay == round(draw * ceiling), (draw, attempt)
            assert 0 <= delay <= ceiling


def test_given_a_storm_then_first_delays_spread_over_zero_to_base(
    report: dict[str, Any],
) -> None:
    storm: list[int] = report["storm"]
    assert all(0 <= d <= BASE_MS for d in storm)
    # Full jitter, not [base/2, base]: about a tenth of the fleet in each tenth of the window.
    for tenth in range(10):
        share = sum(1 for d in storm if tenth * 50 <= d < (tenth + 1) * 50)
        assert 50 <= share <= 150, (tenth, share)


def test_given_window_constants_then_they_match_the_python_client(
    report: dict[str, Any],
) -> None:
    low, high = (1000 * s for s in core.DEFAULT_EARLY_RECONNECT)
    assert (low, high) == (6_000_000, 6_600_000)  # 100 and 110 minutes
    assert report["early"] == [round(low + d * (high - low)) for d in report["draws"]]
    assert report["earlyCustom"] == 75


def test_given_a_fleet_then_planned_reconnects_lie_in_the_window_and_differ(
    report: dict[str, Any],
) -> None:
    fleet: list[int] = report["earlyFleet"]
    assert all(6_000_000 <= d <= 6_600_000 for d in fleet)
    assert len(set(fleet)) == len(fleet)
    assert min(fleet) < 6_060_000 and max(fleet) > 6_540_000
