"""Run a ``*_check.mjs`` script of this folder against the extension's ``lib/wire.js``
with the Node that ``make tools`` installs under ``.tools/``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "WIRE_JS", "install_node", "run_check"]

ROOT = Path(__file__).resolve().parents[3]
WIRE_JS = ROOT / "clients" / "extension" / "lib" / "wire.js"


def install_node() -> Path:
    """Node 22 under .tools/, installed by the Makefile's ``tools`` target when missing."""
    subprocess.run(["make", "-s", "tools"], cwd=ROOT, check=True, timeout=900)
    path = ROOT / ".tools" / "node_modules" / ".bin" / "node"
    assert path.exists(), "make tools did not install Node under .tools/"
    return path


def run_check(node: Path, script: str, *args: Path) -> dict[str, Any]:
    """What ``script`` (a file beside this one) prints as JSON; fails on a non-zero exit."""
    done = subprocess.run(
        [str(node), str(Path(__file__).with_name(script)), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report
