"""The deployment asset as CDK bundles it: small, and without an SDK of its own.

The functions use the Lambda runtime's boto3 and botocore (docs/architecture.md,
"The asset"): a copy in the asset would shadow the runtime's compiled one, cost
cold start, and drift from the version the tests run against. One bundled
synthesis for this module (pip installs the arm64 wheels once; later runs copy
them from ``.tools/lambda-deps``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulation.environment import ENVIRONMENT, HANDLER_NAMES

#: Unzipped bytes: the goal of issue 12 (was 27.9 MB with the X-Ray SDK's botocore).
MAX_ASSET_BYTES = 5 * 1024 * 1024
#: Packages the runtime provides; the asset must not carry its own.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
HANDLERS = HANDLER_NAMES
#: What the handlers read from their environment (the moto world's; the values need not exist).
HANDLER_ENV = ENVIRONMENT
# Imports every handler, then reports where each project module came from.
_IMPORT_HANDLERS = """
import importlib, json, sys
for name in {handlers!r}:
    importlib.import_module("functions.handlers." + name)
print(json.dumps({{
    m.__name__: getattr(m, "__file__", None)
    for m in list(sys.modules.values())
    if m is not None and m.__name__.split(".")[0] in ("functions", "tabrelay", "websockets")
}}))
"""


@pytest.fixture(scope="module")
def bundled_asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from infra.synth import synthesize

    outdir = tmp_path_factory.mktemp("cdk.out.bundled")
    template: dict[str, Any] = synthesize(outdir, {"bundle": "true"})
    keys = {
        resource["Properties"]["Code"]["S3Key"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        and isinstance(resource["Properties"].get("Code", {}).get("S3Key"), str)
    }
    (key,) = keys  # one asset, shared by every function
    return outdir / f"asset.{key.removesuffix('.zip')}"


def test_the_asset_carries_no_boto3_or_botocore(bundled_asset: Path) -> None:
    # Given the bundled asset
    # When its top-level packages are listed
    names = {path.name.split("-")[0].lower() for path in bundled_asset.iterdir()}
    # Then the SDK is the runtime's, never a copy of its own
    assert (bundled_asset / "functions" / "handlers" / "message.py").is_file()
    assert sorted(names & set(RUNTIME_PROVIDED)) == []


def test_the_asset_is_at_most_5_mb_unzipped(bundled_asset: Path) -> None:
    # Given the bundled asset
    # When its files are summed
    size = sum(path.stat().st_size for path in bundled_asset.rglob("*") if path.is_file())
    # Then it stays within the budget
    assert size <= MAX_ASSET_BYTES, f"asset is {size} bytes"


def test_the_asset_carries_tabrelay_wire_and_nothing_else_of_the_client(
    bundled_asset: Path,
) -> None:
    # Given the bundled asset
    # When its tabrelay package is listed
    client = sorted(path.name for path in (bundled_asset / "tabrelay").iterdir())
    # Then it is the protocol module alone: no client, CLI or MCP server (they need websockets)
    assert client == ["__init__.py", "py.typed", "wire.py"]
    assert not (bundled_asset / "websockets").exists()


def test_every_handler_imports_from_the_asset_alone(bundled_asset: Path) -> None:
    # Given a fresh interpreter with the asset first on its path, as in Lambda
    # (/var/task read-only: no bytecode written; boto3 is the runtime's, here the venv's)
    env = dict(os.environ) | HANDLER_ENV
    env["PYTHONPATH"] = str(bundled_asset)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # When it imports every handler
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_HANDLERS.format(handlers=HANDLERS)],
        cwd=bundled_asset,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    origins: dict[str, str | None] = json.loads(done.stdout)
    # Then the project's code, tabrelay.wire included, comes from the asset
    outside = {
        name: path
        for name, path in origins.items()
        if path is not None and not Path(path).is_relative_to(bundled_asset)
    }
    assert outside == {}
    # And of the client package only the protocol is loaded, and no websockets
    assert sorted(n for n in origins if n.split(".")[0] != "functions") == [
        "tabrelay",
        "tabrelay.wire",
    ]


def test_the_asset_hash_covers_tabrelay_wire(tmp_path: Path) -> None:
    # Given the plain-source asset, whose files are what the bundled asset's hash is of
    from infra.synth import synthesize

    template: dict[str, Any] = synthesize(tmp_path, {"bundle": "false"})
    (key,) = {
        resource["Properties"]["Code"]["S3Key"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        and isinstance(resource["Properties"].get("Code", {}).get("S3Key"), str)
    }
    source = tmp_path / f"asset.{key.removesuffix('.zip')}"
    # When its client files are listed
    client = sorted(path.name for path in (source / "clients" / "python" / "tabrelay").iterdir())
    # Then a change to the protocol changes the asset (and redeploys the functions)
    assert client == ["__init__.py", "py.typed", "wire.py"]
    assert sorted(path.name for path in source.iterdir()) == [
        "clients",
        "functions",
        "requirements.txt",
    ]
