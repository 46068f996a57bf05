"""``python -m bench``: run every part in its own process, then write the report.

Each part runs in a fresh interpreter (``python -m bench part NAME OUT``), so
moto's in-process state, the emulator's event loop and the memory readings of
the capacity test do not disturb one another. ``--quick`` runs the small
versions the smoke tests use (seconds, not minutes); ``--parts`` picks parts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import PARTS, write_report

__all__ = ["main", "run_part"]

BENCH_DIR = Path(__file__).resolve().parent


def run_part(name: str, *, quick: bool) -> dict[str, Any]:
    """Run one part in this process and return its results (plain data)."""
    if name == "cost":
        from bench.cost import run_cost_model

        if quick:
            return run_cost_model(connections=(10, 300), curve_kb=(10, 100))
        return run_cost_model()
    if name == "coldstart":
        from bench.coldstart import run_coldstart

        return run_coldstart(rounds=1, bundle=False) if quick else run_coldstart(rounds=9)
    if name == "local":
        from bench.local import run_local

        return run_local(quick=quick)
    if name == "capacity":
        from bench.capacity import run_capacity

        return run_capacity(quick=quick)
    if name == "pageview":
        from bench.pageview import run_pageview

        return run_pageview(sizes=(100 * 1024,), seeds=1) if quick else run_pageview()
    if name == "noisy":
        from bench.noisy import run_noisy

        return run_noisy(quick=quick)
    if name == "scale":
        from bench.scale import run_scale

        return run_scale(samples=3) if quick else run_scale()
    raise ValueError(f"unknown part {name!r} (known: {', '.join(PARTS)})")


def _run_isolated(name: str, *, quick: bool) -> tuple[dict[str, Any] | None, str | None]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        command = [sys.executable, "-m", "bench", "part", name, str(out)]
        if quick:
            command.append("--quick")
        completed = subprocess.run(command, cwd=BENCH_DIR.parent, check=False)
        if completed.returncode != 0 or not out.exists():
            return None, f"part {name} failed (exit {completed.returncode}); see its output above"
        data: dict[str, Any] = json.loads(out.read_text())
        return data, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    part = sub.add_parser("part", help="run one part in this process (internal)")
    part.add_argument("name", choices=PARTS)
    part.add_argument("out", type=Path)
    part.add_argument("--quick", action="store_true")
    parser.add_argument("--quick", action="store_true", help="small, fast versions")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--out", type=Path, default=BENCH_DIR, help="where report.md goes")
    args = parser.parse_args(argv)

    if args.command == "part":
        args.out.write_text(json.dumps(run_part(args.name, quick=args.quick), indent=1))
        return 0

    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    durations: dict[str, float] = {}
    for name in [p for p in args.parts.split(",") if p]:
        print(f"== bench: {name}", file=sys.stderr, flush=True)
        started = time.monotonic()
        data, error = _run_isolated(name, quick=args.quick)
        durations[name] = round(time.monotonic() - started, 1)
        if data is not None:
            results[name] = data
        if error is not None:
            errors[name] = error
    write_report(results, errors=errors, durations=durations, out=args.out, quick=args.quick)
    print(
        f"== bench: wrote {args.out / 'report.md'} and {args.out / 'results.json'}", file=sys.stderr
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
