"""Cold-start measuring code, on tiny inputs (no synthesis, no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.coldstart import asset_sizes, import_breakdown, import_times


def test_import_times_gives_one_sample_per_round_and_a_median() -> None:
    times = import_times(["json", "functions.handlers.message"], rounds=2)
    assert set(times) == {"json", "functions.handlers.message"}
    assert all(len(t["samples_s"]) == 2 and t["median_s"] > 0 for t in times.values())


def test_import_breakdown_names_the_packages_a_handler_loads() -> None:
    breakdown = import_breakdown("functions.handlers.connect")
    assert "functions" in breakdown
    assert "botocore" in breakdown  # the handlers' SDK: botocore's clients, no boto3


def test_asset_sizes_reads_the_staged_asset_of_each_function(tmp_path: Path) -> None:
    # Given an assembly with one staged asset that two functions share
    asset = tmp_path / "asset.abc123"
    (asset / "pkg").mkdir(parents=True)
    (asset / "pkg" / "a.py").write_text("x = 1\n" * 100)
    (asset / "b.txt").write_text("hello")
    code = {"S3Bucket": "b", "S3Key": "abc123.zip"}
    template = {
        "Resources": {
            "F1": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Handler": "functions.handlers.a.handler", "Code": code},
            },
            "F2": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Handler": "functions.handlers.b.handler", "Code": code},
            },
            "Q": {"Type": "AWS::SQS::Queue", "Properties": {}},
        }
    }
    # When sized
    sizes = asset_sizes(tmp_path, json.loads(json.dumps(template)))
    # Then both functions point at it and its bytes are counted
    assert set(sizes["functions"].values()) == {"asset.abc123"}
    entry = sizes["assets"]["asset.abc123"]
    assert entry["unzipped_bytes"] == 600 + 5
    assert entry["zipped_bytes"] > 0
    assert entry["largest"][0]["name"] == "pkg"
