"""The compact-view part of the bench, small: the figure is there and about a tenth."""

from __future__ import annotations

from bench.pageview import run_pageview


def test_given_small_run_when_measured_then_headline_ratio_is_about_a_tenth() -> None:
    result = run_pageview(sizes=(100 * 1024,), seeds=1)
    ratio = result["summary"]["mcp_compact_view_ratio"]
    assert 0.05 <= ratio <= 0.15
    assert result["pages"][0]["html_chars"] == 100 * 1024
