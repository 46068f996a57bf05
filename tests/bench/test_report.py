"""The report writer: both files, every required key, goals judged, plots drawn."""

from __future__ import annotations

import json
from pathlib import Path

from bench.cost import run_cost_model
from bench.report import REQUIRED_KEYS, write_report


def test_report_writes_both_files_with_every_required_key(tmp_path: Path) -> None:
    # Given the results of a small cost run (other parts missing)
    results = {"cost": run_cost_model(connections=(10, 20), curve_kb=(10,))}
    # When the report is written
    write_report(results, errors={"local": "not run"}, durations={"cost": 1.0}, out=tmp_path)
    # Then results.json carries every required key, measured ones as numbers
    document = json.loads((tmp_path / "results.json").read_text())
    assert set(REQUIRED_KEYS) <= set(document)
    assert isinstance(document["cost_usd_per_million_100kb_snapshot"], float)
    assert document["local_p99_ms_at_200_per_s"] is None
    # And the report states goals, failures and the plots it links
    report = (tmp_path / "report.md").read_text()
    assert "## Goals (issue 7)" in report
    assert "local: not run" in report
    assert (tmp_path / "cost_breakdown.png").stat().st_size > 0
    assert "cost_breakdown.png" in report
