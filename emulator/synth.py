"""The CloudFormation template of the CDK app, synthesized once per content and cached.

Synthesis runs ``infra.synth.synthesize`` in a child process (the CDK's jsii
runtime stays out of the gateway's process) with dependency bundling skipped:
the emulator runs the handlers from the source tree, not from the asset. The
result is cached under ``.local/cache/`` by a hash of ``infra/``, ``app.py``,
``cdk.json``, the pinned CDK version and the context, so a test session or a
second ``make run`` synthesizes only when the infrastructure changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emulator.config import REPO_ROOT

__all__ = ["SKIP_BUNDLING_CONTEXT", "SynthError", "load_template", "template_key"]

#: Context that tells the CDK app not to bundle dependencies (see infra/synth.py).
SKIP_BUNDLING_CONTEXT: dict[str, str] = {"bundle": "false"}

_SCRIPT = """
import json, sys
from infra.synth import synthesize
template = synthesize(sys.argv[1], json.loads(sys.argv[2]))
with open(sys.argv[3], "w") as out:
    json.dump(template, out)
"""


class SynthError(RuntimeError):
    """The CDK app could not be synthesized."""


def _inputs(root: Path) -> list[Path]:
    files = [p for p in (root / "infra").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    # requirements-dev.txt pins aws-cdk-lib: a new CDK may synthesize differently.
    files += [
        p for p in (root / "app.py", root / "cdk.json", root / "requirements-dev.txt") if p.exists()
    ]
    return sorted(files)


def template_key(context: Mapping[str, str], root: Path = REPO_ROOT) -> str:
    """A hash of everything that decides the template: ``infra/``, app, cdk.json, context."""
    digest = hashlib.sha256()
    for path in _inputs(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    digest.update(json.dumps(dict(context), sort_keys=True).encode())
    return digest.hexdigest()[:24]


def load_template(
    context: Mapping[str, str] | None = None,
    *,
    root: Path = REPO_ROOT,
    cache_dir: Path | None = None,
    timeout: float = 600,
) -> dict[str, Any]:
    """The synthesized template of the CDK app under ``root`` for ``context``.

    Cached in ``cache_dir`` (default ``root/.local/cache``) by the content of
    ``infra/``, ``app.py``, ``cdk.json`` and the context. Raises
    :class:`SynthError` if synthesis fails (for instance a cdk-nag finding).
    """
    merged = {**SKIP_BUNDLING_CONTEXT, **dict(context or {})}
    if not (root / "infra").is_dir():
        raise SynthError(f"no infra/ under {root}: nothing to synthesize")
    key = template_key(merged, root)
    cache = (cache_dir or root / ".local" / "cache") / f"template-{key}.json"
    if cache.exists():
        data: dict[str, Any] = json.loads(cache.read_text())
        return data
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="synth-") as outdir:
        result = Path(outdir) / "template.json"
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _SCRIPT,
                str(Path(outdir) / "cdk.out"),
                json.dumps(merged),
                str(result),
            ],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise SynthError(f"synthesis failed:\n{proc.stderr[-4000:]}")
        text = result.read_text()
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(cache)
    loaded: dict[str, Any] = json.loads(text)
    return loaded
