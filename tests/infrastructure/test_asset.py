"""The deployment asset as CDK bundles it: small, and without an SDK of its own.

The functions use the Lambda runtime's boto3 and botocore (docs/architecture.md,
"The asset"): a copy in the asset would shadow the runtime's compiled one, cost
cold start, and drift from the version the tests run against. One bundled
synthesis for this module (pip installs the arm64 wheels once; later runs copy
them from ``.tools/lambda-deps``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: Unzipped bytes: the goal of issue 12 (was 27.9 MB with the X-Ray SDK's botocore).
MAX_ASSET_BYTES = 5 * 1024 * 1024
#: Packages the runtime provides; the asset must not carry its own.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")


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
