"""The seed-client test skips in a clone without the seed document, except where it is required."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from emulator.config import REPO_ROOT

_PROBE = """
import sys
from pathlib import Path
import pytest
sys.path.insert(0, {tests!r})
import test_local_seed_clients as t
t.REPO_ROOT = Path({root!r})
try:
    t.seed_clients()
except pytest.skip.Exception as exc:
    print("skipped:", exc)
except pytest.fail.Exception as exc:
    print("failed:", exc)
else:
    print("found")
"""


def probe(root: Path, **env: str) -> str:
    """What ``seed_clients()`` does for a repository at ``root`` (in a fresh interpreter)."""
    code = _PROBE.format(tests=str(Path(__file__).parent), root=str(root))
    variables = {k: v for k, v in os.environ.items() if k != "TABRELAY_REQUIRE_SEED"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**variables, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture
def lone_clone(tmp_path: Path) -> Path:
    """A repository root with no shared/seed/ anywhere above it."""
    root = tmp_path / "a" / "b" / "c" / "tabrelay"
    root.mkdir(parents=True)
    return root


def test_given_clone_without_seed_when_test_runs_then_it_skips_with_a_reason(
    lone_clone: Path,
) -> None:
    assert probe(lone_clone).startswith("skipped: no shared/seed/ beside the repository")


def test_given_ci_requires_seed_when_it_is_absent_then_the_test_fails(lone_clone: Path) -> None:
    outcome = probe(lone_clone, TABRELAY_REQUIRE_SEED="1")
    assert outcome.startswith("failed: no shared/seed/")
    assert "TABRELAY_REQUIRE_SEED" in outcome


def test_given_ci_setting_then_ci_run_sets_it() -> None:
    text = (REPO_ROOT / ".ci" / "run").read_text()
    assert "TABRELAY_REQUIRE_SEED=1" in text
