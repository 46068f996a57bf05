"""The scale model (issue 11): its arithmetic on a hand-checkable case, the client
defaults it reads, the partition meter, and a small real run writing its keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tabrelay.client import RelayOptions
from tabrelay.core import BROWSER_KEEPALIVE, CONSUMER_KEEPALIVE, DEFAULT_EARLY_RECONNECT

from bench.meter import partition_units
from bench.prices import PRICES
from bench.quotas import MAX_CONNECTION_S, QUOTAS
from bench.report import SCALE_KEYS, write_report
from bench.scale import (
    CLASS_ENTITY,
    CONNECTION_LIFETIME_S,
    SECONDS_PER_MONTH,
    crossing,
    evaluate,
    hard_headroom,
    limit_loads,
    run_scale,
    traces_per_s,
)
from bench.workloads import (
    ClientDefaults,
    Segment,
    Workload,
    acks_per_delivery,
    client_defaults,
    keepalive_messages_per_s,
)

DEFAULTS = ClientDefaults(
    python_keepalive_interval_s=300.0,
    python_ping_interval_s=600.0,
    python_ping_timeout_s=30.0,
    python_ack_every=10,
    python_ack_delay_s=0.25,
    extension_keepalive_interval_s=20.0,
    extension_ping_interval_s=120.0,
    extension_ping_timeout_s=20.0,
    python_acks=True,
)


def _op(**fields: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "frames_in": {}, "route_replies": 0.0, "reply_units": 0.0, "connects": 0.0,
        "management_calls": 0.0, "apigw_units_in": 0.0, "apigw_units_out": 0.0,
        "sqs_requests": 0.0, "dynamodb_units": {}, "lambda": {}, "usd": {},
        "usd_data_transfer": 0.0,
    }  # fmt: skip
    op.update(fields)
    return op


#: Invented counts simple enough to check by hand.
OPS = {
    "snapshot_one": _op(
        frames_in={"browser": 1.0},
        management_calls=1.0,
        apigw_units_in=1.0,
        apigw_units_out=1.0,
        dynamodb_units={"consumer_connection": [0.0, 1.0], "tenant_star": [0.5, 0.0]},
        **{"lambda": {"message": {"invocations": 1.0, "ms": 100.0}}},
    ),
    "ack": _op(frames_in={"consumer": 1.0}, dynamodb_units={"consumer_connection": [0.0, 1.0]}),
    "command": _op(dynamodb_units={"account_idempotency": [0.0, 2.0]}),
    "browser_connect_one": _op(connects=1.0),
    "browser_disconnect_one": _op(),
    "consumer_connect_one": _op(connects=1.0),
    "consumer_disconnect_one": _op(),
}
SMALL = Segment("small", tenants=2, browsers=10, consumers=10, follow="one")


def test_given_a_small_segment_when_evaluated_then_every_figure_checks_by_hand() -> None:
    # Given 10 browsers -> 10 consumers (1 each), snapshots every 10 s, commands every 60 s
    # When the model evaluates it
    load = evaluate([SMALL], OPS, DEFAULTS)
    # Then: 1 snapshot/s (frame in + post), 1 ack/s (one per delivery at 10 s apart),
    # and no keep-alive: every connection sends and receives well within its intervals
    assert load["apigw_requests_per_s"] == pytest.approx(3.0)
    # And each connection reconnects once per lifetime (the clients' planned window)
    assert load["stage_requests_per_s"] == pytest.approx(2.0 + 20 / CONNECTION_LIFETIME_S)
    assert load["new_connections_per_s"] == pytest.approx(20 / CONNECTION_LIFETIME_S)
    # And the message function: 1 invocation/s of 100 ms -> 0.1 concurrent
    assert load["lambda"]["message"]["concurrency"] == pytest.approx(0.1)
    # And the hottest write partition: the account-wide idempotency key, 10/60 commands/s x 2,
    # above one consumer's connection item (1 delivery + 1 ack per 10 s each: 0.2)
    assert load["hottest_wcu"]["partition"] == "account:account_idempotency"
    assert load["hottest_wcu"]["units_per_s"] == pytest.approx(10 / 60 * 2)
    assert load["dynamodb_partitions"]["small:consumer_connection"] == pytest.approx([0.0, 0.2])
    assert load["dynamodb_partitions"]["small:tenant_star"] == pytest.approx([0.5 / 2, 0.0])
    # And the floor: the snapshot's unit in and out, plus 20 connections' minutes
    minutes = 20 * SECONDS_PER_MONTH / 60 * PRICES["apigw_connection_minute"].usd
    snapshots = 1.0 * 2 * PRICES["apigw_message"].usd * SECONDS_PER_MONTH
    assert load["monthly_floor_usd"] == pytest.approx(minutes + snapshots)
    # And the busiest connection: a browser's snapshot or a consumer's ack, 0.1 per second
    assert load["busiest_connection"]["messages_per_s"] == pytest.approx(0.1)


def test_given_browsers_quieter_than_the_keepalive_then_each_gap_costs_one_keepalive() -> None:
    # Given browsers that send a snapshot every 30 s: silent for 20 s after each one
    quiet = Segment("quiet", tenants=2, browsers=10, consumers=10, follow="one",
                    snapshot_interval_s=30.0)  # fmt: skip
    # When the model evaluates it
    load = evaluate([quiet], OPS, DEFAULTS)
    # Then each browser sends one one-way keepalive per snapshot and gets nothing back:
    # 1/3 snapshot/s in and posted, 1/3 ack/s, 1/3 keepalive/s in, no pong
    assert load["apigw_requests_per_s"] == pytest.approx(2 / 3 + 1 / 3 + 1 / 3)


def test_keepalive_rates_come_from_the_clients_own_schedule() -> None:
    consumer, browser = DEFAULTS.keepalive("consumer"), DEFAULTS.keepalive("browser")
    # A busy connection (W1) sends none
    assert keepalive_messages_per_s(consumer, sends_every_s=60.0, receives_every_s=10.0) == (0, 0)
    assert keepalive_messages_per_s(browser, sends_every_s=10.0, receives_every_s=60.0) == (0, 0)
    # An idle consumer: a keepalive and a ping in, a pong out, per 10 minutes
    got_in, got_out = keepalive_messages_per_s(consumer, sends_every_s=None, receives_every_s=None)
    assert (got_in, got_out) == (pytest.approx(2 / 600, rel=0.02), pytest.approx(1 / 600, rel=0.02))
    # An idle browser: 5 keepalives and a ping in, a pong out, per 2 minutes
    got_in, got_out = keepalive_messages_per_s(browser, sends_every_s=None, receives_every_s=None)
    assert (got_in, got_out) == (pytest.approx(6 / 120, rel=0.02), pytest.approx(1 / 120, rel=0.02))


def test_connections_live_as_long_as_the_clients_planned_reconnect_window_says() -> None:
    # The mean of the uniform window both clients draw from, before API Gateway's 2-h cut
    low, high = DEFAULT_EARLY_RECONNECT
    assert (low + high) / 2 == pytest.approx(CONNECTION_LIFETIME_S)
    assert CONNECTION_LIFETIME_S < MAX_CONNECTION_S


def test_lambda_traces_are_sampled_per_function_one_per_second_and_five_percent() -> None:
    # 101 invocations/s: 1 from the reservoir + 5% of the other 100; 0.5/s: every one
    assert traces_per_s({"message": 101.0, "connect": 0.5}) == pytest.approx(1 + 5 + 0.5)
    load = evaluate([SMALL], OPS, DEFAULTS)
    assert load["monthly_xray_usd"] == pytest.approx(
        load["traces_per_s"] * SECONDS_PER_MONTH * PRICES["xray_trace_recorded"].usd
    )


def test_given_a_global_key_when_connections_grow_then_the_crossing_is_solved_exactly() -> None:
    # Given commands at N/2 browsers / 60 s, 2 writes each on one account-wide key
    workload = Workload("T", "test", "", SMALL)
    # When the model solves for the 1,000 WCU/s per-partition limit
    found = crossing(workload, OPS, DEFAULTS, "dynamodb_partition_wcu")
    # Then it is N / 60 = 1,000: 60,000 connections (bisection to within one)
    assert found["already"] is False
    assert abs(found["at"] - 60_000) <= 1
    # And a per-entity load that does not grow with N never crosses
    assert crossing(workload, OPS, DEFAULTS, "connection_rate_limit")["at"] is None


def test_every_limit_has_a_load_a_kind_and_a_source() -> None:
    load = limit_loads(evaluate([SMALL], OPS, DEFAULTS))
    assert set(load) == set(QUOTAS)
    for quota in QUOTAS.values():
        assert quota.kind in ("hard", "soft", "stack")
        assert quota.source.startswith(("https://", "infra/config.py"))


def test_ack_cadence_comes_from_the_clients_own_tracker() -> None:
    # Slow deliveries: each is acked on its own after ack_delay; fast ones: one per ack_every
    assert acks_per_delivery(10.0, DEFAULTS) == 1.0
    assert acks_per_delivery(0.001, DEFAULTS) == pytest.approx(0.1)


def test_client_defaults_are_read_from_the_shipped_clients() -> None:
    options = RelayOptions()
    defaults = client_defaults()
    assert defaults.keepalive("consumer") == CONSUMER_KEEPALIVE == options.keepalive_policy(None)
    # The extension's constants (lib/wire.js) are the Python browser role's
    # (tests/unit/extension/test_wire_js.py holds them equal)
    assert defaults.keepalive("browser") == BROWSER_KEEPALIVE
    assert defaults.python_ack_delay_s == options.ack_delay
    assert defaults.python_ack_every == options.ack_every


def test_partition_units_split_a_batch_by_key_and_sum_to_its_units() -> None:
    params = {
        "RequestItems": {
            "t": [
                {"PutRequest": {"Item": {"pk": {"S": "C#a"}, "sk": {"S": "META"}}}},
                {"DeleteRequest": {"Key": {"pk": {"S": "T#x"}, "sk": {"S": "b#1"}}}},
            ]
        }
    }
    assert partition_units("BatchWriteItem", params, {}) == [("C#a", 0.0, 1.0), ("T#x", 0.0, 1.0)]
    query = {
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": "S#t#*"}, ":prefix": {"S": "x"}},
    }
    assert partition_units("Query", query, {"Items": []}) == [("S#t#*", 0.5, 0.0)]


@pytest.fixture(scope="module")
def scale() -> dict[str, Any]:
    return run_scale(samples=2)


def test_given_a_small_real_run_then_the_operations_have_the_shape_the_model_needs(
    scale: dict[str, Any],
) -> None:
    ops = scale["operations"]
    # A snapshot to its one follower is posted inline (no SQS); to 100 `*` followers, via the bus
    assert ops["snapshot_one"]["management_calls"] == 1
    assert ops["snapshot_one"]["sqs_requests"] == 0
    assert ops["snapshot_star"]["management_calls"] == 100
    assert ops["snapshot_star"]["lambda"]["router"]["invocations"] > 0
    # Every key the handlers touched is classified (nothing left as "other")
    for name, op in ops.items():
        assert set(op["dynamodb_units"]) <= set(CLASS_ENTITY), name
    # A storm at 100k recovers no faster than the new-connection quota allows
    storm = scale["storm"]["at_100k"]
    assert storm["recovery_s"] >= 100_000 / QUOTAS["apigw_new_connections"].value


def test_given_a_small_real_run_when_reported_then_the_keys_and_plots_are_written(
    scale: dict[str, Any], tmp_path: Path
) -> None:
    write_report({"scale": scale}, errors={}, durations={"scale": 1.0}, out=tmp_path)
    document = json.loads((tmp_path / "results.json").read_text())
    for key in SCALE_KEYS:
        assert isinstance(document[key], (int, float)), key
    assert document["scale_monthly_cost_usd_100k"] >= document["scale_monthly_floor_usd_100k"]
    report = (tmp_path / "report.md").read_text()
    assert "## 6. Scale model" in report
    assert "Another tenant's command waits" in report
    for plot in ("scale_limits.png", "scale_cost.png"):
        assert (tmp_path / plot).stat().st_size > 0
        assert plot in report


def test_hard_headroom_is_the_tightest_hard_limit_over_its_load() -> None:
    # Given loads where the partition's writes are the tightest hard limit (1,000 / 400)
    loads = {key: 0.0 for key in QUOTAS}
    loads.update(dynamodb_partition_wcu=400.0, dynamodb_partition_rcu=600.0, apigw_account_rps=1e9)
    # Then the soft quota far over its limit does not count, and the headroom is 2.5x
    assert hard_headroom(loads) == {"limit": "dynamodb_partition_wcu", "headroom": 2.5}
