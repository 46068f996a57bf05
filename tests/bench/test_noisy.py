"""The noisy-neighbour bench part, tiny: the keys are written, B's commands complete in
order and A's consumers settle (no timing asserted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.noisy import run_noisy
from bench.report import NOISY_KEYS, write_report


@pytest.fixture(scope="module")
def noisy() -> dict[str, Any]:
    return run_noisy(quick=True)


def test_b_round_trips_complete_in_order_both_quiet_and_during_the_storm(
    noisy: dict[str, Any],
) -> None:
    rounds = noisy["config"]["round_trips_per_phase"]
    assert len(noisy["quiet_ms"]) == len(noisy["storm_ms"]) == rounds
    summary = noisy["summary"]
    assert summary["noisy_b_in_order"] is True
    assert summary["noisy_a_settled"] is True


def test_the_report_carries_the_noisy_keys(noisy: dict[str, Any], tmp_path: Path) -> None:
    document = write_report({"noisy": noisy}, errors={}, durations={}, out=tmp_path)
    for key in NOISY_KEYS:
        assert isinstance(document[key], float), key
    assert "## 7. Noisy neighbour" in (tmp_path / "report.md").read_text()
