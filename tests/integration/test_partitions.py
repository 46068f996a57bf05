"""No single hot partition (issue 11): what spreads the per-message writes and
reads over keys, or takes them off DynamoDB."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from functions.dal.idempotency import KEY_PREFIX, RECORD_SORT_KEY
from functions.logic.delivery import Delivery
from simulation.harness import Harness, LambdaContext
from tests.integration.test_delivery import CallCounter
from tests.integration.test_routing import command, snapshot, snapshots


def idempotency_records(gateway: Harness) -> list[dict[str, Any]]:
    items = gateway.clients.dynamodb.scan(TableName=gateway.settings.table_name)["Items"]
    return [item for item in items if item["pk"]["S"].startswith(f"{KEY_PREFIX}#")]


def test_idempotency_records_of_two_commands_are_two_partitions(gateway: Harness) -> None:
    # Given a browser and two consumers of two tenants' worth of commands
    gateway.connect("browser", "acme", "b1")
    first = gateway.connect("consumer", "acme", "c1")
    second = gateway.connect("consumer", "acme", "c2")
    gateway.drain()

    # When each sends a command
    gateway.send(first, command("k1", "b1"))
    gateway.send(second, command("k2", "b1"))
    gateway.drain()

    # Then each command's record is a partition of its own: pk is the record id
    records = idempotency_records(gateway)
    assert len(records) == 2
    assert {r["sk"]["S"] for r in records} == {RECORD_SORT_KEY}
    assert len({r["pk"]["S"] for r in records}) == 2
    assert all(r["status"]["S"] == "COMPLETED" for r in records)


def test_a_redelivered_command_runs_once_from_its_own_record(gateway: Harness) -> None:
    # Given a command envelope that SQS delivers twice
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.send(consumer, command("k1", "b1"))
    messages = gateway.raw_sqs.receive_message(
        QueueUrl=gateway.settings.bus_queue_url, MaxNumberOfMessages=10
    )["Messages"]
    event = gateway.sqs_event([(m["MessageId"], m["Body"]) for m in messages])
    router = gateway.handlers["router"].handler
    router(event, LambdaContext())

    # When the router gets it again
    counter = CallCounter([gateway.clients.dynamodb, gateway.clients.management])
    router(event, LambdaContext())
    calls = counter.stop()

    # Then its record answers it (a conditional put, refused with the record): nothing
    # of the command runs again
    assert calls == {"dynamodb.PutItem": 1}  # Powertools' conditional put, refused
    assert [m["id"] for m in gateway.take(browser)] == ["k1"]
    assert len(idempotency_records(gateway)) == 1


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def cached(make_gateway: Callable[..., Harness], seconds: int) -> tuple[Harness, Clock]:
    """A gateway whose recipient cache keeps lookups ``seconds`` on a fake clock."""
    gateway = make_gateway(recipient_cache_seconds=seconds)
    clock = Clock()
    runtime = gateway.runtime
    runtime.delivery = Delivery(runtime.ports, runtime.limits, clock=clock)
    return gateway, clock


def fan_out_reads(counter: CallCounter) -> int:
    return counter.stop()["dynamodb.Query"]


def test_warm_snapshots_share_their_recipient_lookups(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a recipient cache of 5 s and a consumer following every browser
    gateway, clock = cached(make_gateway, 5)
    b1 = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.send(b1, snapshot(1))

    # When the browser sends again within the TTL, in another invocation
    counter = CallCounter([gateway.clients.dynamodb])
    clock.now += 4.9
    gateway.send(b1, snapshot(2))

    # Then no fan-out partition is read again, and both snapshots arrived
    assert fan_out_reads(counter) == 0
    assert [m["seq"] for m in snapshots(gateway, consumer)] == [1, 2]

    # And once the TTL has passed, the partitions are read again (two Queries)
    counter = CallCounter([gateway.clients.dynamodb])
    clock.now += 0.1
    gateway.send(b1, snapshot(3))
    assert fan_out_reads(counter) == 2


def test_a_consumer_connecting_elsewhere_is_seen_within_the_ttl(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given the browser's recipients cached (no consumer yet)
    gateway, clock = cached(make_gateway, 5)
    b1 = gateway.connect("browser", "acme", "b1")
    gateway.send(b1, snapshot(1))

    # When a consumer connects (its $connect runs in another container in AWS)
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)

    # Then it may miss snapshots sent within the TTL (the documented delay)
    gateway.send(b1, snapshot(2))
    assert snapshots(gateway, consumer) == []
    # And receives them once the TTL has passed
    clock.now += 5
    gateway.send(b1, snapshot(3))
    assert [m["seq"] for m in snapshots(gateway, consumer)] == [3]


def test_a_subscribe_takes_effect_at_once_in_its_own_container(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a consumer of b2 only, and b1's recipients cached without it
    gateway, _ = cached(make_gateway, 5)
    b1 = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.send(consumer, json.dumps({"action": "subscribe", "browsers": ["b2"]}))
    gateway.send(b1, snapshot(1))
    assert snapshots(gateway, consumer) == []

    # When it subscribes to b1 through this container
    gateway.send(consumer, json.dumps({"action": "subscribe", "browsers": ["b1"]}))

    # Then b1's next snapshot reaches it without waiting for the TTL
    gateway.send(b1, snapshot(2))
    assert [m["seq"] for m in snapshots(gateway, consumer)] == [2]


def test_a_gone_recipient_is_dropped_from_the_cache_on_410(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a cached consumer whose socket died without a $disconnect
    gateway, _ = cached(make_gateway, 5)
    b1 = gateway.connect("browser", "acme", "b1")
    gone = gateway.connect("consumer", "acme", "c1")
    gateway.send(b1, snapshot(1))
    gateway.vanish(gone)

    # When the next snapshot's post to it answers 410
    gateway.send(b1, snapshot(2))

    # Then the snapshot after it does not post to it again
    counter = CallCounter([gateway.clients.management])
    gateway.send(b1, snapshot(3))
    assert counter.stop()["apigatewaymanagementapi.PostToConnection"] == 0
