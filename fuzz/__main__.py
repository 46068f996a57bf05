"""``python -m fuzz [--seed N] [--frames N] [--out PATH]``: run, print and write the counts.

Exits 1 when any count is not 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fuzz.run import run

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "fuzz.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--throttle", type=float, default=0.02, help="share of posts answered 429")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    report = run(args.seed, args.frames, throttle_rate=args.throttle, progress=True)
    result = report.to_json()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=True) + "\n")
    print(
        f"fuzz: seed {report.seed}, {report.frames} frames in {report.stats['seconds']} s "
        f"({report.stats['cpu_seconds']} s CPU)"
    )
    for name, value in report.counts.items():
        print(f"  {name:26} {value}")
    for count, causes in report.causes.items():
        for cause in causes:
            print(f"  [{count}] {cause['n']} x {cause['cause']}")
    print(f"written to {args.out}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
