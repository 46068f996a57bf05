"""Part 1, the cost model: the real handlers under moto, metered and priced.

Workloads (each measured, then priced per million with :mod:`bench.prices`):

* a 100 KB HTML snapshot to one consumer, alone (a batch of one record) and
  under steady load (the router takes full batches of ``router_batch_size``
  records from different tenants); at 10 and at 10,000 connections;
* the same snapshot to 10 consumers;
* one command and its result (including the delayed timeout check);
* one browser connection's life (authorize, ``$connect``, presence, ``$disconnect``);
* keep-alive per connection-hour (``ping`` every 20 s answered by API Gateway's
  mock integration: no Lambda, so it is priced from the protocol, not measured);
* the naive baseline of :class:`NaiveRelay` at 10 and 10,000 connections.

The moto harness of :mod:`simulation` (the tests' too) drives the handlers; this
module adds an event source mapping that polls like Lambda's (one ReceiveMessage
per batch, one DeleteMessageBatch), and the meter of :mod:`bench.meter`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import replace
from types import ModuleType
from typing import Any, cast

import boto3
from moto import mock_aws

from bench.meter import SQS_CHUNK, AwsMeter, MeteredHandler, Usage, apigw_units
from bench.pages import gzip_ratio, html_page, snapshot_frames
from bench.prices import ASSUMPTIONS, PRICES, PRICES_AS_OF
from functions.models.settings import GatewaySettings
from simulation.environment import REGION, handler_modules, lambda_environment
from simulation.harness import Connection, Harness, LambdaContext, register_bystanders
from simulation.resources import create_resources

__all__ = ["CostHarness", "NaiveRelay", "run_cost_model"]

NAIVE_TABLE = "naive-chat-connections"
# The stack's default (infra/config.py); it decides how often the rate limiter writes.
DEPLOYED_RATE_LIMIT = 50


class CostHarness(Harness):
    """The moto harness with metered handlers and Lambda-like SQS polling."""

    def __init__(self, handlers: dict[str, ModuleType], settings: GatewaySettings) -> None:
        # One post at a time: the meter pairs each call with its parameters and
        # models AWS latency call after call (a fan-out's concurrent posts would
        # interleave its hooks); the counts are the same, the duration an upper bound.
        super().__init__(handlers, replace(settings, fan_out_concurrency=1))
        self.meter = AwsMeter([self.clients.dynamodb, self.raw_sqs, self.clients.management])
        # A MeteredHandler quacks like a handler module (it has ``handler``).
        metered = {n: MeteredHandler(n, m.handler, self.meter) for n, m in handlers.items()}
        self.handlers = cast(dict[str, ModuleType], metered)
        self.batch_size = ASSUMPTIONS.router_batch_size
        self._poller = boto3.client("sqs", region_name=REGION)

    def _poll(self, queue_url: str, handler: Any) -> int:
        # What Lambda's event source mapping does under steady load: fill a batch,
        # invoke once, delete the records the function did not fail in one call.
        # The polling itself goes through an unmetered client (moto hands out a
        # few messages per receive); the meter is told one ReceiveMessage and one
        # DeleteMessageBatch per batch. Empty long polls are a fixed cost of each
        # queue, not of a message: the report prices them separately.
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            got = self._poller.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=self.batch_size - len(messages),
                VisibilityTimeout=30,
            ).get("Messages", [])
            if not got:
                break
            messages += got
        if not messages:
            return 0
        body_bytes = sum(len(m["Body"].encode()) for m in messages)
        self.meter.add_call(
            "sqs", "ReceiveMessage", sqs_requests=max(1, math.ceil(body_bytes / SQS_CHUNK))
        )
        event = self.sqs_event([(m["MessageId"], m["Body"]) for m in messages])
        response = handler(event, LambdaContext())
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        if failed:
            raise AssertionError(f"worker failed records {failed}")
        self._poller.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        self.meter.add_call("sqs", "DeleteMessageBatch", sqs_requests=1)
        return len(messages)

    def send(
        self, conn: Connection, body: str, *, route: str = "$default"
    ) -> dict[str, Any] | None:
        """Send one frame, metering it in (and its route response out) as API Gateway bills."""
        self.meter.usage.apigw_messages_in += apigw_units(len(body.encode()))
        reply = super().send(conn, body, route=route)
        if reply is not None:
            size = len(json.dumps(reply, separators=(",", ":")).encode())
            self.meter.usage.apigw_messages_out += apigw_units(size)
            self.meter.usage.bytes_to_clients += size
        return reply

    def settle(self) -> None:
        """Deliver everything pending and forget what was counted and received so far."""
        self.drain()
        self.meter.take()
        for received in self.api.received.values():
            received.clear()


class NaiveRelay:
    """The baseline: AWS's WebSocket chat sample, made tenant-aware and nothing more.

    Each message Scans the whole connection table and posts the frame as
    received (uncompressed) straight from the message function to every consumer
    of the sender's tenant. No bus, no registry layout, no compression.
    """

    def __init__(self, dynamodb: Any, management: Any, table: str) -> None:
        self._db = dynamodb
        self._api = management
        self._table = table

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        tenant = event["requestContext"]["authorizer"]["tenant"]
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self._table}
        while True:
            page = self._db.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        for item in items:
            if item["tenant"]["S"] == tenant and item["role"]["S"] == "consumer":
                self._api.post_to_connection(
                    ConnectionId=item["connectionId"]["S"], Data=event["body"].encode()
                )
        return {"statusCode": 200}


def _create_naive_table(dynamodb: Any) -> None:
    dynamodb.create_table(
        TableName=NAIVE_TABLE,
        KeySchema=[{"AttributeName": "connectionId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "connectionId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _register_naive(dynamodb: Any, tenant: str, connections: int) -> tuple[str, str]:
    """``connections`` rows in batches of 25: one browser and one consumer of ``tenant``,
    the rest belong to other tenants. Returns (browser id, consumer id)."""
    browser, consumer = f"nb-{tenant}", f"nc-{tenant}"
    rows = [(browser, tenant, "browser"), (consumer, tenant, "consumer")]
    rows += [
        (f"nx{i}-{tenant}", f"other{i % 97}", "consumer" if i % 3 else "browser")
        for i in range(connections - 2)
    ]
    items = [
        {
            "connectionId": {"S": cid},
            "tenant": {"S": owner},
            "role": {"S": role},
            "client_id": {"S": f"client-{cid}"},
            "connected_at": {"N": "1764000000000"},
        }
        for cid, owner, role in rows
    ]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        dynamodb.batch_write_item(RequestItems={NAIVE_TABLE: batch})
    return browser, consumer


@contextmanager
def _world() -> Iterator[CostHarness]:
    # Powertools prints metrics (EMF) to stdout on every invocation: not our output.
    with (
        lambda_environment(),
        mock_aws(),
        open(os.devnull, "w") as sink,
        redirect_stdout(sink),
    ):
        create_resources()
        _create_naive_table(boto3.client("dynamodb", region_name=REGION))
        modules = handler_modules()
        settings = replace(GatewaySettings.from_env(), rate_limit_per_second=DEPLOYED_RATE_LIMIT)
        yield CostHarness(modules, settings)


def _snapshot(
    gw: CostHarness, html: str, *, connections: int, consumers: int, senders: int
) -> Usage:
    """``senders`` browsers (one tenant each, ``consumers`` consumers each) send one
    snapshot of ``html`` each, among ``connections`` live connections; the router
    polls after all were sent, so it takes them in batches."""
    run = uuid.uuid4().hex[:6]
    pairs: list[tuple[Connection, list[Connection]]] = []
    for s in range(senders):
        tenant = f"t{run}{s}"
        browser = gw.connect("browser", tenant, "b1")
        pairs.append((browser, [gw.connect("consumer", tenant, f"c{c}") for c in range(consumers)]))
    own = senders * (1 + consumers)
    gw.settle()  # presence first: bystanders registered later never got it
    if connections > own:
        register_bystanders(gw, f"t{run}0", connections - own)
    gw.settle()
    for browser, _ in pairs:
        for frame in snapshot_frames(html, sid=f"s-{browser.connection_id}", seq=1):
            gw.send(browser, frame)
    gw.drain()
    usage = gw.meter.take()
    parts = len(snapshot_frames(html, sid="s", seq=1))
    for _, group in pairs:
        for consumer in group:
            got = [m for m in gw.take(consumer) if m["action"] == "snapshot"]
            if len(got) != parts:
                raise AssertionError(f"consumer got {len(got)} of {parts} parts")
    return usage


def _command(gw: CostHarness) -> Usage:
    tenant = f"k{uuid.uuid4().hex[:6]}"
    browser = gw.connect("browser", tenant, "b1")
    consumer = gw.connect("consumer", tenant, "c1")
    gw.settle()
    command = {"action": "command", "id": "k-1", "target": "b1", "name": "click",
               "args": {"selector": "#buy"}, "timeout": 30}  # fmt: skip
    gw.send(consumer, json.dumps(command))
    gw.drain()
    if [m["action"] for m in gw.take(browser)] != ["command"]:
        raise AssertionError("the browser did not get the command")
    gw.send(
        browser,
        json.dumps({"action": "result", "id": "k-1", "ok": True, "value": {"clicked": True}}),
    )
    gw.drain()
    gw.advance(31)  # the delayed timeout check runs and finds the command answered
    usage = gw.meter.take()
    if [m["action"] for m in gw.take(consumer)] != ["result"]:
        raise AssertionError("the consumer did not get exactly one result")
    return usage


def _connection_life(gw: CostHarness) -> Usage:
    tenant = f"l{uuid.uuid4().hex[:6]}"
    gw.connect("consumer", tenant, "c1")
    gw.settle()
    browser = gw.connect("browser", tenant, "b1")
    gw.drain()
    gw.close(browser)
    gw.drain()
    return gw.meter.take()


def _keepalive_hour() -> Usage:
    pings = int(3600 / ASSUMPTIONS.keepalive_interval_s)
    ping, pong = '{"action":"ping"}', '{"action":"pong"}'
    return Usage(
        apigw_messages_in=pings * apigw_units(len(ping)),
        apigw_messages_out=pings * apigw_units(len(pong)),
        apigw_connection_minutes=60,
        bytes_to_clients=pings * len(pong),
    )


def _naive(gw: CostHarness, html: str, connections: int) -> Usage:
    db = gw.clients.dynamodb
    tenant = f"n{uuid.uuid4().hex[:6]}"
    # A fresh table per run: the Scan reads every row, so earlier rows would count.
    db.delete_table(TableName=NAIVE_TABLE)
    _create_naive_table(db)
    browser, consumer = _register_naive(db, tenant, connections)
    gw.api.open.add(consumer)
    relay = NaiveRelay(db, gw.clients.management, NAIVE_TABLE)
    naive = MeteredHandler("naive", relay.handler, gw.meter)
    gw.meter.take()
    (frame,) = snapshot_frames(html, sid="s", seq=1, compress=False)
    event = {
        "requestContext": {
            "connectionId": browser,
            "authorizer": {"tenant": tenant, "role": "browser"},
        },
        "body": frame,
    }
    gw.meter.usage.apigw_messages_in += apigw_units(len(frame.encode()))
    naive.handler(event, LambdaContext())
    usage = gw.meter.take()
    if len(gw.api.received[consumer]) != 1:
        raise AssertionError("the naive relay did not deliver")
    return usage


def _priced(usage: Usage, per: int) -> dict[str, Any]:
    """Usage per unit of work and the dollars per million units (``per`` units measured)."""
    factor = 1 / per
    lines = {k: v * factor * 1e6 for k, v in usage.dollars().items()}
    return {
        "per_unit": usage.scaled(factor),
        "usd_per_million": lines,
        "usd_per_million_total": sum(lines.values()),
        "usd_per_million_data_transfer_out": usage.data_transfer_dollars() * factor * 1e6,
    }


def _log(text: str) -> None:
    print(f"[cost] {text}", file=sys.stderr, flush=True)


def run_cost_model(
    *, connections: tuple[int, int] = (10, 10_000), page_kb: int = 100,
    curve_kb: tuple[int, ...] = (10, 100, 300, 3000),
) -> dict[str, Any]:  # fmt: skip
    """Measure every workload once and price it; plain data for results.json."""
    few, many = connections
    batch = ASSUMPTIONS.router_batch_size
    html = html_page(page_kb * 1024)
    out: dict[str, Any] = {
        "prices_as_of": PRICES_AS_OF,
        "prices": {k: {"usd": p.usd, "per": p.per, "source": p.source} for k, p in PRICES.items()},
        "assumptions": {
            "latency_ms": ASSUMPTIONS.latency_ms,
            "scan_ms_per_mb": ASSUMPTIONS.scan_ms_per_mb,
            "keepalive_interval_s": ASSUMPTIONS.keepalive_interval_s,
            "router_batch_size": batch,
        },
        "page": {
            "bytes": len(html.encode()),
            "gzip_ratio": gzip_ratio(html),
            "frames": [len(f.encode()) for f in snapshot_frames(html, sid="s", seq=1)],
            "uncompressed_frame_bytes": len(
                snapshot_frames(html, sid="s", seq=1, compress=False)[0]
            ),
        },
        "workloads": {},
    }
    w = out["workloads"]
    # One moto world per connection count: moto Queries read the whole table, so
    # 10,000 registered connections would slow every later workload down.
    for n in (many, few):
        with _world() as gw:
            _log(f"snapshot to 1 consumer, {n} connections")
            w[f"snapshot_1_consumer_alone_{n}"] = _priced(
                _snapshot(gw, html, connections=n, consumers=1, senders=1), 1
            )
            w[f"naive_snapshot_1_consumer_{n}"] = _priced(_naive(gw, html, n), 1)
    with _world() as gw:
        _log("steady load: full router batches")
        w["snapshot_1_consumer_batched"] = _priced(
            _snapshot(gw, html, connections=few, consumers=1, senders=batch), batch
        )
        w["snapshot_10_consumers_batched"] = _priced(
            _snapshot(gw, html, connections=few, consumers=10, senders=batch), batch
        )
        w["command_and_result"] = _priced(_command(gw), 1)
        w["browser_connection_life"] = _priced(_connection_life(gw), 1)
        w["keepalive_connection_hour"] = _priced(_keepalive_hour(), 1)
        _log("cost by page size")
        curve = []
        for kb in curve_kb:
            page = html_page(kb * 1024, seed=kb)
            ours = _priced(_snapshot(gw, page, connections=few, consumers=1, senders=batch), batch)
            naive_frame = len(snapshot_frames(page, sid="s", seq=1, compress=False)[0].encode())
            fits = naive_frame <= 128 * 1024
            curve.append({
                "page_kb": kb,
                "gzip_ratio": gzip_ratio(page),
                "parts": len(snapshot_frames(page, sid="s", seq=1)),
                "usd_per_million": ours["usd_per_million_total"],
                "naive_usd_per_million": _priced(_naive(gw, page, few), 1)["usd_per_million_total"] if fits else None,
            })  # fmt: skip
        out["by_page_size"] = curve
    headline = w["snapshot_1_consumer_batched"]
    out["summary"] = {
        "cost_usd_per_million_100kb_snapshot": headline["usd_per_million_total"],
        "cost_usd_per_million_100kb_snapshot_alone": w[f"snapshot_1_consumer_alone_{few}"]["usd_per_million_total"],
        "cost_usd_per_million_100kb_snapshot_with_data_transfer": headline["usd_per_million_total"]
        + headline["usd_per_million_data_transfer_out"],
        "naive_cost_usd_per_million_100kb_snapshot_10_connections": w[f"naive_snapshot_1_consumer_{few}"]["usd_per_million_total"],
        "naive_cost_usd_per_million_100kb_snapshot_10k_connections": w[f"naive_snapshot_1_consumer_{many}"]["usd_per_million_total"],
        "aws_calls_per_snapshot_10_connections": w[f"snapshot_1_consumer_alone_{few}"]["per_unit"]["aws_calls"],
        "aws_calls_per_snapshot_10000_connections": w[f"snapshot_1_consumer_alone_{many}"]["per_unit"]["aws_calls"],
        "naive_aws_calls_per_snapshot_10_connections": w[f"naive_snapshot_1_consumer_{few}"]["per_unit"]["aws_calls"],
        "naive_aws_calls_per_snapshot_10000_connections": w[f"naive_snapshot_1_consumer_{many}"]["per_unit"]["aws_calls"],
        "cost_usd_per_million_10_consumer_snapshot": w["snapshot_10_consumers_batched"]["usd_per_million_total"],
        "cost_usd_per_million_commands": w["command_and_result"]["usd_per_million_total"],
        "cost_usd_per_million_connection_hours_keepalive": w["keepalive_connection_hour"]["usd_per_million_total"],
        "cost_usd_per_million_browser_connections": w["browser_connection_life"]["usd_per_million_total"],
    }  # fmt: skip
    # Keys carry the connection counts measured (a quick run measures fewer).
    if (few, many) != (10, 10_000):
        out["summary"]["connections_measured"] = [few, many]
    return out
