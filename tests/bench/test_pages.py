"""The generated page and its frames: realistic compression, protocol-sized frames."""

from __future__ import annotations

import base64
import gzip
import json

from bench.pages import FRAME_BUDGET, gzip_ratio, html_page, snapshot_frames


def test_page_has_the_requested_size_and_is_deterministic() -> None:
    assert len(html_page(100 * 1024)) == 100 * 1024
    assert html_page(5000, seed=3) == html_page(5000, seed=3)
    assert html_page(5000, seed=3) != html_page(5000, seed=4)


def test_page_compresses_like_real_html_not_like_a_repeated_string() -> None:
    assert 3.0 < gzip_ratio(html_page(100 * 1024)) < 10.0


def test_frames_fit_the_budget_and_rebuild_the_page() -> None:
    html = html_page(300 * 1024)
    frames = snapshot_frames(html, sid="s", seq=1)
    assert len(frames) > 1
    assert all(len(f.encode()) <= FRAME_BUDGET for f in frames)
    parts = sorted((json.loads(f) for f in frames), key=lambda m: m["part"])
    data = "".join(p["data"] for p in parts)
    assert gzip.decompress(base64.b64decode(data)).decode() == html
