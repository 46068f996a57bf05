"""The cost model, small: it runs, and its counts have the shape the report relies on.

No timing is asserted: durations vary by machine; counts and units do not.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from bench.cost import run_cost_model
from bench.meter import apigw_units, item_size
from bench.prices import LAMBDA_MEMORY_MB

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return run_cost_model(connections=(10, 300), curve_kb=(10,))


def test_calls_per_snapshot_are_the_same_at_both_connection_counts(model: dict[str, Any]) -> None:
    s = model["summary"]
    assert (
        s["aws_calls_per_snapshot_10_connections"] == s["aws_calls_per_snapshot_10000_connections"]
    )
    calls = model["workloads"]["snapshot_1_consumer_alone_300"]["per_unit"]["calls"]
    assert not any(op.endswith(".Scan") for op in calls)
    assert calls["apigatewaymanagementapi.PostToConnection"] == 1


def test_compressed_100kb_snapshot_is_one_metered_unit_in_and_one_out(
    model: dict[str, Any],
) -> None:
    usage = model["workloads"]["snapshot_1_consumer_batched"]["per_unit"]
    assert usage["apigw_messages_in"] == 1
    assert usage["apigw_messages_out"] == 1


def test_naive_baseline_scans_and_sends_uncompressed(model: dict[str, Any]) -> None:
    naive = model["workloads"]["naive_snapshot_1_consumer_300"]["per_unit"]
    assert naive["calls"]["dynamodb.Scan"] >= 1
    assert naive["apigw_messages_in"] == 4  # ~105 KB plain: four 32 KB units
    few = model["workloads"]["naive_snapshot_1_consumer_10"]["per_unit"]
    assert naive["dynamodb_read_units"] > few["dynamodb_read_units"]


def test_every_required_cost_figure_is_a_number(model: dict[str, Any]) -> None:
    for key in (
        "cost_usd_per_million_100kb_snapshot",
        "naive_cost_usd_per_million_100kb_snapshot_10k_connections",
        "aws_calls_per_snapshot_10_connections",
        "aws_calls_per_snapshot_10000_connections",
    ):
        assert isinstance(model["summary"][key], float)
        assert model["summary"][key] > 0


def test_metered_units_follow_aws_increments() -> None:
    assert [apigw_units(n) for n in (1, 32 * 1024, 32 * 1024 + 1)] == [1, 1, 2]
    assert item_size({"pk": {"S": "abc"}, "n": {"N": "12"}}) == len("pk") + 3 + len("n") + 3


def test_memory_table_matches_the_stack() -> None:
    # Given the function sizes infra/ declares (read from source: no CDK import needed)
    source = (ROOT / "infra" / "components" / "functions.py").read_text()
    declared = {
        call.args[0].value: call.args[2].value
        for call in ast.walk(ast.parse(source))
        if isinstance(call, ast.Call)
        and getattr(call.func, "id", "") == "FunctionSpec"
        and len(call.args) >= 3
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[2], ast.Constant)
    }
    # Then the cost model bills the same memory for each
    assert declared
    assert {name: LAMBDA_MEMORY_MB[name] for name in declared} == declared
