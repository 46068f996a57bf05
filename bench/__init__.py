"""``make bench``: cost model, local end-to-end load, connection capacity, cold start.

Run ``python -m bench`` (what ``make bench`` does) to write ``bench/report.md``,
``bench/results.json`` and the PNG plots. Nothing here is imported by the
gateway; only the benchmarks and their smoke tests (``tests/bench``) use it.
"""
