"""Copy the wire protocol definition into the Python client (``make vendor``).

``functions/models/wire.py`` is the single definition of wire protocol v1. The
client must install alone (``pip install ./clients/python``), so it carries a
generated copy, ``clients/python/tabrelay/_wire.py``: the source text with a
header saying where it came from. Never edit the copy; edit the source and run
this script. ``tests/unit/client/test_vendored_wire.py`` fails when they differ.

Usage: ``python scripts/vendor_wire.py [--check]`` (``--check`` writes nothing
and exits 1 when the copy is stale).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["COPY", "HEADER", "SOURCE", "main", "render"]

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "functions" / "models" / "wire.py"
COPY = ROOT / "clients" / "python" / "tabrelay" / "_wire.py"

HEADER = (
    "# GENERATED FILE: do not edit.\n"
    "# A copy of functions/models/wire.py, written by scripts/vendor_wire.py\n"
    "# (`make vendor`) so that the tabrelay client installs on its own.\n"
    "# tests/unit/client/test_vendored_wire.py fails when it differs from the source.\n"
)


def render(source_text: str) -> str:
    """The exact text ``_wire.py`` must hold for a given ``wire.py`` text."""
    return HEADER + source_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the copy is stale")
    args = parser.parse_args(argv)
    wanted = render(SOURCE.read_text(encoding="utf-8"))
    current = COPY.read_text(encoding="utf-8") if COPY.exists() else None
    if args.check:
        if current != wanted:
            print(f"{COPY.relative_to(ROOT)} is stale: run `make vendor`", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        COPY.write_text(wanted, encoding="utf-8")
        print(f"wrote {COPY.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
