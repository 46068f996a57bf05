"""The local end-to-end benchmark, tiny: both systems relay every snapshot (no timing asserted)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.local import percentile, run_local


@pytest.fixture(scope="module")
def local() -> dict[str, Any]:
    return run_local(quick=True)


def test_gateway_and_direct_relay_deliver_every_snapshot_at_a_low_rate(
    local: dict[str, Any],
) -> None:
    for system in ("gateway", "direct"):
        (run,) = local[system]
        assert run["sent"] > 0
        assert run["received"] + run["missed"] == run["sent"] * local["config"]["consumers"]
        assert run["lost"] == 0
        assert run["latency_ms"]["p50"] is not None


def test_summary_has_the_required_local_figures(local: dict[str, Any]) -> None:
    summary = local["summary"]
    assert summary["local_max_snapshots_per_s"] > 0
    assert summary["direct_relay_max_snapshots_per_s"] > 0


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) is None
