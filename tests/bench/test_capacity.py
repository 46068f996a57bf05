"""The capacity benchmark, tiny: connections open, are held (ping/pong), memory is read."""

from __future__ import annotations

from bench.capacity import run_capacity


def test_capacity_holds_a_few_connections_and_reads_memory() -> None:
    result = run_capacity(quick=True)
    summary = result["summary"]
    assert summary["connections_held"] == result["config"]["target"]
    assert result["ping_sample"]["answered"] == result["ping_sample"]["checked"] > 0
    assert summary["baseline_rss_mb"] > 0
    assert [s["connections"] for s in result["samples"]] == [0, 30, 60]
