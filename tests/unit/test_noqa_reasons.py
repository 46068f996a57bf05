"""Every ``noqa`` in the repository says why (issue 15: lint exceptions carry a reason)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", ".tools", "cdk.out", "node_modules", ".git"}
# The rule codes, then at least one word of explanation.
REASONED = re.compile(r"#\s*noqa:\s*[A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*\s+\S")


def _python_files() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not SKIP.intersection(p.relative_to(ROOT).parts)]


def test_every_noqa_names_its_rules_and_gives_a_reason() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _python_files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"#\s*noqa\b", line) and not REASONED.search(line)
    ]
    assert bare == [], "a noqa without rule codes and a reason:\n" + "\n".join(bare)
