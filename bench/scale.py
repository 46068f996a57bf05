"""Part ``scale``: a quota-aware model of the deployed stack from 1,000 to 1,000,000 connections.

Two halves:

* **Measured** (:func:`measure_operations`): every operation a workload is made
  of runs through the real handlers under moto (the cost bench's metered
  harness): a snapshot to its one follower and to 100 ``*`` followers, an ack,
  a command with its result and timeout check, and each role's connect and
  disconnect in a tenant of the workload's shape. botocore hooks count per
  operation the DynamoDB units *by partition* (classified by key: a browser's or
  consumer's connection, the tenant index, the tenant's ``*`` fan-out, a
  browser's subscribers or commands, the account-wide idempotency records),
  SQS requests, ``@connections`` calls, API Gateway frames and 32 KB units in
  and out, Lambda invocations and modelled billed durations.
* **Modelled** (:func:`evaluate`, pure arithmetic on that table): the workloads
  of :mod:`bench.workloads` give each operation a rate; rates times the measured
  counts give the load on each limit of :mod:`bench.quotas` and the monthly bill
  (:mod:`bench.prices`). Per-partition load is a key class's units spread evenly
  over the entities that own such a partition in a segment (every browser, every
  consumer, every tenant of a segment looks alike); account-wide keys sum over
  segments. One partition key value is treated as one partition (DynamoDB may
  split a hot item collection by sort key over time; this model does not count on it).

Nothing is typed in but prices, quotas and the workloads' definitions. The
W3 command wait is a fluid queueing estimate (stated as such in the report).
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict, replace
from functools import lru_cache
from types import ModuleType
from typing import Any

from moto import mock_aws
from tabrelay import wire
from tabrelay.core import DEFAULT_EARLY_RECONNECT, Subscriptions

from bench.cost import CostHarness
from bench.meter import Usage, apigw_units
from bench.pages import html_page, snapshot_frames
from bench.prices import PRICES, PRICES_AS_OF
from bench.quotas import MESSAGE_FRAME_BYTES, QUOTAS
from bench.workloads import (
    FLEET,
    W1,
    W2,
    W2_BIG_TENANT,
    W3,
    WORKLOADS,
    ClientDefaults,
    Segment,
    Workload,
    acks_per_delivery,
    client_defaults,
    keepalive_messages_per_s,
)
from functions.models.settings import GatewaySettings
from infra.config import StackSettings
from simulation.environment import handler_modules, lambda_environment
from simulation.harness import Connection
from simulation.resources import create_resources

__all__ = [
    "CLASS_ENTITY",
    "CONNECTION_LIFETIME_S",
    "GRID",
    "ScaleHarness",
    "crossing",
    "default_client_usd_per_million",
    "evaluate",
    "hard_headroom",
    "limit_loads",
    "measure_operations",
    "run_scale",
    "storm",
    "traces_per_s",
]

#: How long a connection lives on average: the shipped clients reconnect at a moment
#: drawn uniformly from their planned window, before API Gateway's cut at
#: ``MAX_CONNECTION_S`` (the extension's window is tested equal to the Python client's).
CONNECTION_LIFETIME_S = sum(DEFAULT_EARLY_RECONNECT) / 2

#: Lambda's active tracing records the first invocation each second per function and
#: 5% of the rest (fixed for Lambda: X-Ray's sampling rules do not apply to it).
TRACE_RESERVOIR_PER_S = 1.0
TRACE_FIXED_RATE = 0.05

#: Connections the sweep evaluates (the crossings are solved exactly in between).
GRID = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000)
#: The largest size the crossings are searched up to.
CROSSING_MAX = 1e8
SECONDS_PER_MONTH = 730 * 3600  # AWS's billing month
#: Which entity owns a partition of each key class (one partition per entity).
CLASS_ENTITY = {
    "browser_connection": "browsers",
    "browser_subscribers": "browsers",
    "browser_commands": "browsers",
    "consumer_connection": "consumers",
    "tenant_index": "tenants",
    "tenant_star": "tenants",
    "account_idempotency": "account",
    # One partition per command (pk = the record's own id): spread over the browsers
    # the commands go to, an upper bound on any one record's load.
    "command_idempotency": "browsers",
}
_SYNC_FUNCTIONS = ("authorizer", "connect", "disconnect", "message")


# -- measuring ---------------------------------------------------------------------


class ScaleHarness(CostHarness):
    """The metered harness, also counting frames per sender role, route replies and
    connects, and knowing each connection's role (to classify partitions)."""

    def __init__(self, handlers: dict[str, ModuleType], settings: GatewaySettings) -> None:
        super().__init__(handlers, settings)
        self.roles: dict[str, str] = {}
        self._counts: Counter[str] = Counter()

    def connect(self, role: str, tenant: str, client_id: str, *, acks: bool = False) -> Connection:
        conn = super().connect(role, tenant, client_id, acks=acks)
        self.roles[conn.connection_id] = role
        self._counts["connects"] += 1
        return conn

    def send(
        self, conn: Connection, body: str, *, route: str = "$default"
    ) -> dict[str, Any] | None:
        self._counts[f"frames_in_{conn.role}"] += 1
        reply = super().send(conn, body, route=route)
        if reply is not None:
            self._counts["route_replies"] += 1
            size = len(json.dumps(reply, separators=(",", ":")).encode())
            self._counts["reply_units"] += apigw_units(size)
        return reply

    def settle(self) -> None:
        super().settle()
        self._counts.clear()

    def classify(self, pk: str) -> str:
        """The key class of a partition key value."""
        if pk.startswith("C#"):
            role = self.roles.get(pk[2:])
            return f"{role}_connection" if role else "other"
        if pk.startswith("T#"):
            return "tenant_index"
        if pk.startswith("S#"):
            return "tenant_star" if pk.endswith("#*") else "browser_subscribers"
        if pk.startswith("K#"):
            return "browser_commands"
        if pk.startswith("idempotency#"):
            # ``idempotency#<md5>``: each record is its own partition (issue 11).
            return "command_idempotency"
        return "other"

    def operation(self, samples: int) -> dict[str, Any]:
        """What happened since the last settle/operation, per sample, as plain data."""
        self.drain()
        usage, counts = self.meter.take(), self._counts
        self._counts = Counter()
        for received in self.api.received.values():
            received.clear()
        return _record(usage, counts, samples, self.classify)


def _record(
    usage: Usage, counts: Counter[str], samples: int, classify: Callable[[str], str]
) -> dict[str, Any]:
    f = 1 / samples
    units: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for pk, (reads, writes) in usage.partitions.items():
        cls = classify(pk)
        units[cls][0] += reads * f
        units[cls][1] += writes * f
    management = sum(n for op, n in usage.calls.items() if op.startswith("apigatewaymanagementapi"))
    return {
        "samples": samples,
        "frames_in": {
            role: counts[f"frames_in_{role}"] * f
            for role in ("browser", "consumer")
            if counts[f"frames_in_{role}"]
        },
        "route_replies": counts["route_replies"] * f,
        "reply_units": counts["reply_units"] * f,
        "connects": counts["connects"] * f,
        "management_calls": management * f,
        "apigw_units_in": usage.apigw_messages_in * f,
        "apigw_units_out": usage.apigw_messages_out * f,
        "bytes_to_clients": usage.bytes_to_clients * f,
        "sqs_requests": usage.sqs_requests * f,
        "dynamodb_units": dict(sorted(units.items())),
        "lambda": {
            name: {"invocations": n * f, "ms": usage.billed_ms[name] * f}
            for name, n in sorted(usage.invocations.items())
        },
        "calls": {op: n * f for op, n in sorted(usage.calls.items())},
        "usd": {line: v * f for line, v in usage.dollars().items()},
        "usd_data_transfer": usage.data_transfer_dollars() * f,
    }


@contextmanager
def _world() -> Iterator[ScaleHarness]:
    stack = StackSettings()
    with lambda_environment(), mock_aws(), open(os.devnull, "w") as sink, redirect_stdout(sink):
        create_resources()
        settings = replace(
            GatewaySettings.from_env(),
            rate_limit_per_second=stack.rate_limit_per_second,
            max_unacked=stack.max_unacked,
        )
        yield ScaleHarness(handler_modules(), settings)


def _consumer(gw: ScaleHarness, tenant: str, index: int, follows: str | None) -> Connection:
    """A Python-client consumer at its defaults: acks negotiated, subscriptions restored."""
    conn = gw.connect("consumer", tenant, f"c{index}", acks=client_defaults().python_acks)
    if follows is not None:
        subs = Subscriptions()
        subs.subscribe([follows])
        for frame in subs.restore():
            gw.send(conn, frame)
    return conn


def _tenant(
    gw: ScaleHarness, tenant: str, browsers: int, consumers: int, follow: str
) -> tuple[list[Connection], list[Connection]]:
    cons = [
        _consumer(gw, tenant, i, f"b{i}" if follow == "one" else None) for i in range(consumers)
    ]
    brs = [gw.connect("browser", tenant, f"b{i}") for i in range(browsers)]
    gw.settle()
    return brs, cons


def _log(text: str) -> None:
    print(f"[scale] {text}", file=sys.stderr, flush=True)


def _snapshots(
    gw: ScaleHarness, html: str, brs: list[Connection], expect: dict[str, int]
) -> tuple[dict[str, Any], dict[str, int]]:
    frames_per = len(snapshot_frames(html, sid="s", seq=1))
    for b in brs:
        for frame in snapshot_frames(html, sid=f"s-{b.client_id}", seq=1):
            gw.send(b, frame)
    gw.drain()
    dseqs: dict[str, int] = {}
    for conn_id, count in expect.items():
        got = [json.loads(m) for m in gw.api.received[conn_id]]
        snaps = [m for m in got if m["action"] == "snapshot"]
        if len(snaps) != count * frames_per:
            raise AssertionError(f"{conn_id} got {len(snaps)} of {count * frames_per} parts")
        dseqs[conn_id] = max(m.get("dseq") or 0 for m in snaps)
    return gw.operation(len(brs)), dseqs


def _commands(gw: ScaleHarness, pairs: list[tuple[Connection, Connection]]) -> dict[str, Any]:
    for i, (consumer, browser) in enumerate(pairs):
        gw.send(consumer, wire.encode(wire.Command(
            id=f"k-{i}", target=browser.client_id, name="click", args={"selector": "#buy"},
            timeout=30)))  # fmt: skip
    gw.drain()
    for i, (_, browser) in enumerate(pairs):
        if [m["action"] for m in gw.take(browser)] != ["command"]:
            raise AssertionError("the browser did not get its command")
        gw.send(browser, wire.encode(wire.Result(id=f"k-{i}", ok=True, value={"clicked": True})))
    gw.drain()
    gw.advance(31)  # the delayed timeout checks run and find the commands answered
    for consumer, _ in pairs:
        if [m["action"] for m in gw.take(consumer)] != ["result"]:
            raise AssertionError("the consumer did not get exactly one result")
    return gw.operation(len(pairs))


def _lives(
    gw: ScaleHarness, shape: str, tenant: str, brs: list[Connection], cons: list[Connection]
) -> dict[str, dict[str, Any]]:
    """Each role's disconnect and connect (the Python consumer restores its subscription)."""
    out: dict[str, dict[str, Any]] = {}
    for b in brs:
        gw.close(b)
    out[f"browser_disconnect_{shape}"] = gw.operation(len(brs))
    brs[:] = [gw.connect("browser", tenant, b.client_id) for b in brs]
    out[f"browser_connect_{shape}"] = gw.operation(len(brs))
    for c in cons:
        gw.close(c)
    out[f"consumer_disconnect_{shape}"] = gw.operation(len(cons))
    follows = {c.connection_id: (f"b{c.client_id[1:]}" if shape == "one" else None) for c in cons}
    cons[:] = [_consumer(gw, tenant, int(c.client_id[1:]), follows[c.connection_id]) for c in cons]
    out[f"consumer_connect_{shape}"] = gw.operation(len(cons))
    return out


def measure_operations(*, samples: int = 10) -> dict[str, dict[str, Any]]:
    """Every operation of the workloads, run ``samples`` times at once (full batches
    where a queue is used) through the real handlers, per sample."""
    html = html_page(FLEET.page_kb * 1024)
    ops: dict[str, dict[str, Any]] = {}
    fleet_b = round(FLEET.browsers / FLEET.tenants)
    fleet_c = round(FLEET.consumers / FLEET.tenants)
    with _world() as gw:
        tenant = f"w1{uuid.uuid4().hex[:6]}"
        _log(f"W1 tenant: {fleet_b} browsers, {fleet_c} consumers following one each")
        brs, cons = _tenant(gw, tenant, fleet_b, fleet_c, "one")
        sample_b, sample_c = brs[:samples], cons[:samples]
        ops["snapshot_one"], dseqs = _snapshots(
            gw, html, sample_b, {c.connection_id: 1 for c in sample_c}
        )
        for c in sample_c:
            gw.send(c, wire.encode(wire.Ack(seq=dseqs[c.connection_id])))
        ops["ack"] = gw.operation(len(sample_c))
        ops["command"] = _commands(gw, list(zip(sample_c, sample_b, strict=True)))
        lives = _lives(gw, "one", tenant, sample_b, sample_c)
        ops.update(lives)
    star_c = int(W2_BIG_TENANT.consumers)
    with _world() as gw:
        tenant = f"w2{uuid.uuid4().hex[:6]}"
        _log(f"W2 tenant: {samples} live browsers, {star_c} consumers following *")
        brs, cons = _tenant(gw, tenant, samples, star_c, "all")
        ops["snapshot_star"], _ = _snapshots(
            gw, html, brs, {c.connection_id: len(brs) for c in cons}
        )
        ops.update(_lives(gw, "star", tenant, brs, cons[:samples]))
    return ops


# -- the model ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _acks(interval_s: float, defaults: ClientDefaults) -> float:
    return acks_per_delivery(interval_s, defaults)


def op_rates(seg: Segment, defaults: ClientDefaults) -> dict[str, float]:
    """Operations per second of one segment (pings aside: they need no Lambda)."""
    shape = "one" if seg.follow == "one" else "star"
    deliveries = seg.consumers / seg.delivery_interval_s
    return {
        f"snapshot_{shape}": seg.browsers / seg.snapshot_interval_s,
        "ack": deliveries * _acks(seg.delivery_interval_s, defaults),
        "command": seg.browsers / seg.command_interval_s,
        f"browser_connect_{shape}": seg.browsers / CONNECTION_LIFETIME_S,
        f"browser_disconnect_{shape}": seg.browsers / CONNECTION_LIFETIME_S,
        f"consumer_connect_{shape}": seg.consumers / CONNECTION_LIFETIME_S,
        f"consumer_disconnect_{shape}": seg.consumers / CONNECTION_LIFETIME_S,
    }


@lru_cache(maxsize=256)
def _keepalive(
    defaults: ClientDefaults, role: str, sends_every_s: float | None, receives_every_s: float
) -> tuple[float, float]:
    policy = defaults.keepalive("browser" if role == "browser" else "consumer")
    return keepalive_messages_per_s(
        policy, sends_every_s=sends_every_s, receives_every_s=receives_every_s
    )


def _pings(seg: Segment, defaults: ClientDefaults) -> dict[str, tuple[float, float]]:
    """Keep-alive messages per second per connection of each role, ``(in, out)``: the
    clients' own keep-alive run over the segment's traffic (a browser sends a snapshot
    every ``snapshot_interval_s`` and receives a command every ``command_interval_s``;
    a consumer sends its acks and commands and receives its deliveries)."""
    acks = _acks(seg.delivery_interval_s, defaults) / seg.delivery_interval_s
    commands = seg.browsers / seg.command_interval_s / seg.consumers
    consumer_sends = acks + commands
    return {
        "browser": _keepalive(defaults, "browser", seg.snapshot_interval_s, seg.command_interval_s),
        "consumer": _keepalive(
            defaults,
            "consumer",
            1 / consumer_sends if consumer_sends > 0 else None,
            seg.delivery_interval_s,
        ),
    }


def _entities(seg: Segment, kind: str) -> float:
    return 1.0 if kind == "account" else float(getattr(seg, kind))


def _spread(
    seg: Segment,
    classes: dict[str, list[float]],
    partitions: dict[str, list[float]],
    table: list[float],
) -> None:
    """Add a segment's units per key class to the per-partition loads: even over the
    segment's owners of such partitions; account-wide keys add up across segments."""
    for cls, (reads, writes) in classes.items():
        kind = CLASS_ENTITY.get(cls, "account")
        if kind == "account":
            got = partitions.setdefault(f"account:{cls}", [0.0, 0.0])
            got[0] += reads
            got[1] += writes
        else:
            n = _entities(seg, kind)
            partitions[f"{seg.name}:{cls}"] = [reads / n, writes / n]
        table[0] += reads
        table[1] += writes


def evaluate(
    segments: list[Segment], ops: dict[str, dict[str, Any]], defaults: ClientDefaults
) -> dict[str, Any]:
    """The load a mix of segments puts on every limit, and its monthly bill."""
    apigw = stage = new_conns = sqs = 0.0
    invocations: dict[str, float] = defaultdict(float)
    concurrency: dict[str, float] = defaultdict(float)
    usd: dict[str, float] = defaultdict(float)
    floor = data_transfer = 0.0
    partitions: dict[str, list[float]] = {}
    account: list[float] = [0.0, 0.0]
    per_connection: dict[str, float] = {}
    message_price = PRICES["apigw_message"].usd
    for seg in segments:
        rates = op_rates(seg, defaults)
        pings = _pings(seg, defaults)
        ping_in = seg.browsers * pings["browser"][0] + seg.consumers * pings["consumer"][0]
        ping_out = seg.browsers * pings["browser"][1] + seg.consumers * pings["consumer"][1]
        inbound = {role: pings[role][0] for role in pings}
        classes: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for name, rate in rates.items():
            op = ops[name]
            frames = sum(op["frames_in"].values())
            apigw += rate * (frames + op["route_replies"] + op["management_calls"])
            stage += rate * (frames + op["connects"])
            new_conns += rate * op["connects"]
            sqs += rate * op["sqs_requests"]
            for fn, v in op["lambda"].items():
                invocations[fn] += rate * v["invocations"]
                concurrency[fn] += rate * v["ms"] / 1000
            for line, v in op["usd"].items():
                usd[line] += rate * v * SECONDS_PER_MONTH
            data_transfer += rate * op["usd_data_transfer"] * SECONDS_PER_MONTH
            if name.startswith(("snapshot_", "command")):
                payload = op["apigw_units_in"] + op["apigw_units_out"] - op["reply_units"]
                floor += rate * payload * message_price * SECONDS_PER_MONTH
            for cls, (reads, writes) in op["dynamodb_units"].items():
                classes[cls][0] += rate * reads
                classes[cls][1] += rate * writes
            for role, n in op["frames_in"].items():
                inbound[role] += rate * n / _entities(seg, f"{role}s")
        _spread(seg, classes, partitions, account)
        apigw += ping_in + ping_out
        stage += ping_in
        usd["api_gateway_messages"] += (ping_in + ping_out) * message_price * SECONDS_PER_MONTH
        minutes = seg.connections * SECONDS_PER_MONTH / 60
        minute_usd = minutes * PRICES["apigw_connection_minute"].usd
        usd["api_gateway_connection_minutes"] += minute_usd
        floor += minute_usd
        for role, rate in inbound.items():
            per_connection[f"{seg.name}:{role}"] = rate
    hottest_r = max(partitions.items(), key=lambda kv: kv[1][0])
    hottest_w = max(partitions.items(), key=lambda kv: kv[1][1])
    by_service = {
        "api_gateway": usd["api_gateway_messages"] + usd["api_gateway_connection_minutes"],
        "lambda": usd["lambda_requests"] + usd["lambda_duration"],
        "sqs": usd["sqs"],
        "dynamodb": usd["dynamodb_reads"] + usd["dynamodb_writes"],
    }
    busiest = max(per_connection.items(), key=lambda kv: kv[1])
    return {
        "connections": sum(s.connections for s in segments),
        "apigw_requests_per_s": apigw,
        "stage_requests_per_s": stage,
        "new_connections_per_s": new_conns,
        "sqs_requests_per_s": sqs,
        "lambda": {
            fn: {"invocations_per_s": invocations[fn], "concurrency": concurrency[fn]}
            for fn in sorted(invocations)
        },
        "lambda_invocations_per_s": sum(invocations.values()),
        "lambda_concurrency": sum(concurrency.values()),
        "dynamodb_partitions": partitions,
        "dynamodb_table_units_per_s": account,
        "hottest_rcu": {"partition": hottest_r[0], "units_per_s": hottest_r[1][0]},
        "hottest_wcu": {"partition": hottest_w[0], "units_per_s": hottest_w[1][1]},
        "inbound_per_connection": per_connection,
        "busiest_connection": {"who": busiest[0], "messages_per_s": busiest[1]},
        "monthly_usd_by_service": by_service,
        "monthly_usd": sum(by_service.values()),
        "monthly_floor_usd": floor,
        "monthly_data_transfer_usd": data_transfer,
        "traces_per_s": traces_per_s(invocations),
        "monthly_xray_usd": traces_per_s(invocations)
        * SECONDS_PER_MONTH
        * PRICES["xray_trace_recorded"].usd,
    }


def traces_per_s(invocations: dict[str, float]) -> float:
    """X-Ray traces recorded per second: Lambda samples each function on its own."""
    return sum(
        min(rate, TRACE_RESERVOIR_PER_S) + TRACE_FIXED_RATE * max(rate - TRACE_RESERVOIR_PER_S, 0)
        for rate in invocations.values()
    )


def limit_loads(load: dict[str, Any]) -> dict[str, float]:
    """The load on each limit of :data:`QUOTAS` (same keys)."""
    fn = load["lambda"]
    return {
        "dynamodb_partition_rcu": load["hottest_rcu"]["units_per_s"],
        "dynamodb_partition_wcu": load["hottest_wcu"]["units_per_s"],
        "dynamodb_table_rcu": load["dynamodb_table_units_per_s"][0],
        "dynamodb_table_wcu": load["dynamodb_table_units_per_s"][1],
        "apigw_account_rps": load["apigw_requests_per_s"],
        "apigw_new_connections": load["new_connections_per_s"],
        "lambda_concurrency": load["lambda_concurrency"],
        "lambda_rps": load["lambda_invocations_per_s"],
        "stage_throttle_rate": load["stage_requests_per_s"],
        "router_max_concurrency": fn.get("router", {}).get("concurrency", 0.0),
        "commands_max_concurrency": fn.get("commands", {}).get("concurrency", 0.0),
        "delivery_max_concurrency": fn.get("delivery", {}).get("concurrency", 0.0),
        "connection_rate_limit": load["busiest_connection"]["messages_per_s"],
    }


def crossing(
    workload: Workload,
    ops: dict[str, dict[str, Any]],
    defaults: ClientDefaults,
    key: str,
) -> dict[str, Any]:
    """The connections (of the workload's scalable segment) at which ``key``'s load
    reaches its limit (solved by bisection: every load grows with connections):
    ``at`` is None when it never does up to :data:`CROSSING_MAX`; ``already`` says it
    is reached at the sweep's start already."""
    limit = QUOTAS[key].value
    low, high = float(GRID[0]), CROSSING_MAX

    def over(n: float) -> bool:
        return limit_loads(evaluate(workload.at(n), ops, defaults))[key] >= limit

    if over(low):
        return {"at": GRID[0], "already": True}
    if not over(high):
        return {"at": None, "already": False}
    lo, hi = low, high
    while hi - lo > 1:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if over(mid) else (mid, hi)
    return {"at": math.floor(lo), "already": False}


def _first(crossings: dict[str, dict[str, Any]], kinds: tuple[str, ...]) -> dict[str, Any]:
    found = [
        (c["at"], key) for key, c in crossings.items() if QUOTAS[key].kind in kinds and c["at"]
    ]
    if not found:
        return {"at": None, "limit": None}
    at, key = min(found)
    return {"at": at, "limit": key, "already": crossings[key]["already"]}


def _nice(value: float) -> int:
    """``value`` rounded up to two significant digits."""
    if value <= 0:
        return 0
    step = 10 ** max(0, math.floor(math.log10(value)) - 1)
    return int(math.ceil(value / step) * step)


def increases(load: dict[str, Any]) -> list[dict[str, Any]]:
    """Soft quotas and stack settings that need raising for 2x headroom at this load."""
    out = []
    for key, value in limit_loads(load).items():
        quota = QUOTAS[key]
        if quota.kind == "hard" or 2 * value <= quota.value:
            continue
        out.append({
            "key": key, "label": quota.label, "kind": quota.kind, "default": quota.value,
            "load": value, "request": _nice(2 * value), "unit": quota.unit,
        })  # fmt: skip
    # Lambda's invocation rate is not a quota of its own: it follows the concurrency
    # quota (10x), so that is the request that raises it.
    rps = next((r for r in out if r["key"] == "lambda_rps"), None)
    if rps is not None:
        needed = _nice(rps["request"] / 10)
        rps["how"] = f"request Lambda concurrent executions >= {needed:,} (10x rule)"
    return out


def _sync_seconds(op: dict[str, Any]) -> tuple[float, float]:
    """(invocations, busy seconds) of the functions API Gateway invokes synchronously."""
    inv = sum(v["invocations"] for f, v in op["lambda"].items() if f in _SYNC_FUNCTIONS)
    ms = sum(v["ms"] for f, v in op["lambda"].items() if f in _SYNC_FUNCTIONS)
    return inv, ms / 1000


def storm(
    connections: float, ops: dict[str, dict[str, Any]], defaults: ClientDefaults
) -> dict[str, Any]:
    """W3: every W1 connection drops at once and reconnects.

    The stack is the one W1 needs at this size: every soft quota and stack setting
    that W1's steady load needs raised (2x headroom, :func:`increases`) is raised,
    the others keep their defaults. Recovery: the reconnects run at the tightest
    of the new-connection quota and
    what the steady load leaves of the stage throttle, the account's request
    quota and Lambda's concurrency and invocation quotas. Meanwhile every
    browser's leaving and return puts a presence record on the bus; the router
    (its event source's concurrency, less what steady traffic uses) works them
    off (a fluid estimate: arrivals spread evenly over the recovery). A command of
    another tenant no longer queues behind them: commands and results travel on
    their own lane (queue, function, event source), so its queueing wait is zero
    while the lane has concurrency to spare beside W1's steady commands, and
    unbounded if it has none.
    """
    (seg,) = W3.at(connections)
    base = evaluate([seg], ops, defaults)
    loads = limit_loads(base)
    mix = {
        "browser_connect_one": seg.browsers / seg.connections,
        "consumer_connect_one": seg.consumers / seg.connections,
    }
    per = {"apigw": 0.0, "stage": 0.0, "invocations": 0.0, "seconds": 0.0}
    for name, share in mix.items():
        op = ops[name]
        frames = sum(op["frames_in"].values())
        per["apigw"] += share * (frames + op["route_replies"] + op["management_calls"])
        per["stage"] += share * (frames + op["connects"])
        inv, busy = _sync_seconds(op)
        per["invocations"] += share * inv
        per["seconds"] += share * busy
    # The storm runs on a stack that carries W1's steady load: the quota increases
    # W1 needs at this size (2x headroom) are in place, the rest at their defaults.
    q = {k: v.value for k, v in QUOTAS.items()}
    for raised in increases(base):
        q[raised["key"]] = raised["request"]
    # Lambda's invocation rate follows its concurrency quota (10x): raise them together.
    q["lambda_concurrency"] = max(q["lambda_concurrency"], q["lambda_rps"] / 10)
    q["lambda_rps"] = 10 * q["lambda_concurrency"]
    bounds = {
        "apigw_new_connections": q["apigw_new_connections"],
        "stage_throttle_rate": (q["stage_throttle_rate"] - loads["stage_throttle_rate"])
        / per["stage"],
        "apigw_account_rps": (q["apigw_account_rps"] - loads["apigw_account_rps"]) / per["apigw"],
        "lambda_concurrency": (q["lambda_concurrency"] - loads["lambda_concurrency"])
        / per["seconds"],
        "lambda_rps": (q["lambda_rps"] - loads["lambda_rps"]) / per["invocations"],
    }
    bound_by, rate = min(bounds.items(), key=lambda kv: kv[1])
    recovery = connections / rate if rate > 0 else math.inf

    def router_seconds(name: str) -> float:
        return float(ops[name]["lambda"].get("router", {}).get("ms", 0.0)) / 1000

    gone = seg.browsers * router_seconds("browser_disconnect_one")
    online = seg.browsers * router_seconds("browser_connect_one")
    spare = q["router_max_concurrency"] - loads["router_max_concurrency"]
    if spare <= 0 or math.isinf(recovery):
        drain = math.inf
    else:
        drain = max(recovery, (gone + online) / spare)
    lane_spare = q["commands_max_concurrency"] - loads["commands_max_concurrency"]
    wait = 0.0 if lane_spare > 0 else math.inf

    def finite(value: float) -> float | None:
        return None if math.isinf(value) else value

    return {
        "connections": connections,
        "reconnect_rate_per_s": rate,
        "bound_by": bound_by,
        "rate_bounds_per_s": bounds,
        "limits_used": {
            k: q[k] for k in (*bounds, "router_max_concurrency", "commands_max_concurrency")
        },
        "recovery_s": finite(recovery),
        "presence_records": 2 * seg.browsers,
        "router_work_s": gone + online,
        "router_spare_concurrency": spare,
        "presence_backlog_drained_s": finite(drain),
        "command_lane_spare_concurrency": lane_spare,
        "other_tenant_command_wait_s": finite(wait),
    }


def default_client_usd_per_million(
    ops: dict[str, dict[str, Any]], defaults: ClientDefaults
) -> dict[str, float]:
    """A 100 KB snapshot to one consumer running the Python client at its shipped
    defaults, per million: the snapshot (acks negotiated), the consumer's acks at
    W1's pace, and the consumer's keep-alive messages (keepalives, pings and pongs) in the time between two
    snapshots. The extension's own keep-alive is reported beside it, not in the total."""
    interval = FLEET.snapshot_interval_s
    acks = _acks(FLEET.delivery_interval_s, defaults)
    keepalive = _pings(FLEET, defaults)
    pings = interval * sum(keepalive["consumer"])  # keep-alive messages, in and out
    message = PRICES["apigw_message"].usd
    lines = {
        "snapshot": sum(ops["snapshot_one"]["usd"].values()),
        "acks": acks * sum(ops["ack"]["usd"].values()),
        "keepalive": pings * message,
    }
    out = {k: v * 1e6 for k, v in lines.items()}
    out["total"] = sum(out.values())
    out["acks_per_snapshot"] = acks
    out["pings_per_snapshot"] = pings
    out["extension_keepalive"] = interval * sum(keepalive["browser"]) * message * 1e6
    return out


def _sweep(
    workload: Workload, ops: dict[str, dict[str, Any]], defaults: ClientDefaults
) -> list[dict[str, Any]]:
    rows = []
    for n in GRID:
        load = evaluate(workload.at(n), ops, defaults)
        loads = limit_loads(load)
        rows.append({
            "n": n,
            "connections": load["connections"],
            "ratios": {k: v / QUOTAS[k].value for k, v in loads.items()},
            "loads": loads,
            "monthly_usd_by_service": load["monthly_usd_by_service"],
            "monthly_usd": load["monthly_usd"],
            "monthly_floor_usd": load["monthly_floor_usd"],
            "sqs_requests_per_s": load["sqs_requests_per_s"],
            "lambda": load["lambda"],
        })  # fmt: skip
    return rows


def hard_headroom(loads: dict[str, float]) -> dict[str, Any]:
    """The tightest hard limit at these loads: limit over load (2.0 = twice the load)."""
    ratios = {
        key: (QUOTAS[key].value / load if load > 0 else math.inf)
        for key, load in loads.items()
        if QUOTAS[key].kind == "hard"
    }
    key = min(ratios, key=lambda k: ratios[k])
    return {"limit": key, "headroom": None if math.isinf(ratios[key]) else ratios[key]}


def model(ops: dict[str, dict[str, Any]], defaults: ClientDefaults) -> dict[str, Any]:
    """Every figure of the part from the measured operations (pure arithmetic)."""
    reference = int(FLEET.connections)
    out: dict[str, Any] = {"workloads": {}}
    for workload in (W1, W2):
        crossings = {key: crossing(workload, ops, defaults, key) for key in QUOTAS}
        at_reference = evaluate(workload.at(reference), ops, defaults)
        out["workloads"][workload.name] = {
            "crossings": crossings,
            "first_hard": _first(crossings, ("hard",)),
            "first_soft": _first(crossings, ("soft",)),
            "first_stack": _first(crossings, ("stack",)),
            "first_quota": _first(crossings, ("soft", "stack")),
            "at_100k": at_reference,
            "at_100k_limits": limit_loads(at_reference),
            "hard_headroom_100k": hard_headroom(limit_loads(at_reference)),
            "increases_100k": increases(at_reference),
            "sweep": _sweep(workload, ops, defaults),
        }
    out["storm"] = {
        "at_100k": storm(reference, ops, defaults),
        "sweep": [storm(n, ops, defaults) for n in GRID],
    }
    out["default_client"] = default_client_usd_per_million(ops, defaults)
    return out


def run_scale(*, samples: int = 10) -> dict[str, Any]:
    """Measure the operations, then model every workload; plain data for results.json."""
    defaults = client_defaults()
    ops = measure_operations(samples=samples)
    html = html_page(FLEET.page_kb * 1024)
    frames = [len(f.encode()) for f in snapshot_frames(html, sid="s", seq=1)]
    result = model(ops, defaults)
    w1 = result["workloads"]["W1"]
    storm100 = result["storm"]["at_100k"]
    result.update({
        "prices_as_of": PRICES_AS_OF,
        "quotas": {k: asdict(q) for k, q in QUOTAS.items()},
        "client_defaults": asdict(defaults),
        "connection_lifetime_s": CONNECTION_LIFETIME_S,
        "workload_definitions": {
            w.name: {"title": w.title, "description": w.description,
                     "segments": [asdict(s) for s in w.at(w.scalable.connections)]}
            for w in WORKLOADS
        },
        "samples": samples,
        "operations": ops,
        "frame_bytes": {"largest": max(frames), "limit": MESSAGE_FRAME_BYTES,
                        "headroom": MESSAGE_FRAME_BYTES / max(frames)},
        "summary": {
            # None crossed below the search bound: the bound is what is known.
            "scale_connections_before_first_hard_limit": w1["first_hard"]["at"]
            or int(CROSSING_MAX),
            "scale_hard_limit_headroom_100k_w1": w1["hard_headroom_100k"]["headroom"],
            "scale_hard_limit_headroom_100k_w2":
                result["workloads"]["W2"]["hard_headroom_100k"]["headroom"],
            "scale_connections_before_first_quota_default": w1["first_quota"]["at"],
            "scale_connections_before_first_aws_quota_default": w1["first_soft"]["at"],
            "scale_connections_before_first_stack_setting_default": w1["first_stack"]["at"],
            "scale_monthly_cost_usd_100k": w1["at_100k"]["monthly_usd"],
            "scale_monthly_floor_usd_100k": w1["at_100k"]["monthly_floor_usd"],
            "storm_recovery_s_100k": storm100["recovery_s"],
            "cost_usd_per_million_100kb_snapshot_default_client": result["default_client"]["total"],
        },
    })  # fmt: skip
    return result
