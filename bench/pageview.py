"""The compact page view ``tabrelay mcp`` gives a model, against the HTML it comes from.

:func:`tabrelay.pageview.page_view` runs on the bench's generated product-listing
pages (:func:`bench.pages.html_page`) of several sizes and seeds; the figure is
the view's length over the HTML's (characters). The view is measured uncut
(``get_page`` also caps it at :data:`tabrelay.pageview.VIEW_MAX_CHARS`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from tabrelay.pageview import VIEW_MAX_CHARS, VIEW_MIN_CHARS, VIEW_RATIO, page_view

from bench.pages import html_page

__all__ = ["HEADLINE_SIZE", "run_pageview"]

#: The page size of the headline figure (the cost model's page, 100 KB).
HEADLINE_SIZE = 100 * 1024


def run_pageview(
    *, sizes: tuple[int, ...] = (20 * 1024, 100 * 1024, 300 * 1024, 1024 * 1024), seeds: int = 5
) -> dict[str, Any]:
    """View/HTML size ratios per page size (mean over ``seeds`` pages each) and the headline."""
    rows = []
    for size in sizes:
        ratios = []
        ms = []
        view_chars = []
        for seed in range(1, seeds + 1):
            html = html_page(size, seed=seed)
            started = time.perf_counter()
            view = page_view(html, max_chars=10**9)
            ms.append((time.perf_counter() - started) * 1000)
            ratios.append(len(view) / len(html))
            view_chars.append(len(view))
        rows.append(
            {
                "html_chars": size,
                "view_chars_mean": round(statistics.mean(view_chars)),
                "ratio_mean": round(statistics.mean(ratios), 4),
                "ratio_max": round(max(ratios), 4),
                "ms_mean": round(statistics.mean(ms), 1),
            }
        )
    headline = next((r for r in rows if r["html_chars"] == HEADLINE_SIZE), rows[-1])
    return {
        "config": {
            "sizes": list(sizes),
            "seeds": seeds,
            "view_ratio_budget": VIEW_RATIO,
            "view_min_chars": VIEW_MIN_CHARS,
            "view_max_chars": VIEW_MAX_CHARS,
        },
        "pages": rows,
        "summary": {
            "mcp_compact_view_ratio": headline["ratio_mean"],
            "mcp_compact_view_page_chars": headline["html_chars"],
        },
    }
