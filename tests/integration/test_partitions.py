"""No single hot partition (issue 11): what spreads the per-message writes and
reads over keys, or takes them off DynamoDB."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from functions.dal.idempotency import KEY_PREFIX, RECORD_SORT_KEY
from functions.logic.delivery import Delivery
from functions.logic.recipients import BUSY_LOOKUPS
from simulation.harness import Harness, LambdaContext
from tests.integration.test_delivery import CallCounter
from tests.integration.test_routing import command, snapshot, snapshots


def idempotency_records(gateway: Harness) -> list[dict[str, Any]]:
    items = gateway.clients.dynamodb.scan(TableName=gateway.settings.table_name)["Items"]
    return [item for item in items if item["pk"]["S"].startswith(f"{KEY_PREFIX}#")]


def test_idempotency_records_of_two_commands_are_two_partitions(gateway: Harness) -> None:
    # Given a browser and two consumers
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
        QueueUrl=gateway.settings.command_queue_url, MaxNumberOfMessages=10
    )["Messages"]
    event = gateway.sqs_event([(m["MessageId"], m["Body"]) for m in messages])
    worker = gateway.handlers["commands"].handler  # the command lane's function
    worker(event, LambdaContext())

    # When the command lane's worker gets it again
    counter = CallCounter([gateway.clients.dynamodb, gateway.clients.management])
    worker(event, LambdaContext())
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
    # Given a recipient cache of 5 s, a consumer following every browser, and a
    # browser busy enough for its partitions to be cached
    gateway, clock = cached(make_gateway, 5)
    b1 = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    for seq in range(1, BUSY_LOOKUPS + 1):
        gateway.send(b1, snapshot(seq))

    # When the browser sends again within the TTL, in other invocations
    counter = CallCounter([gateway.clients.dynamodb])
    clock.now += 4.9
    gateway.send(b1, snapshot(6))
    gateway.send(b1, snapshot(7))

    # Then no fan-out partition is read again, and every snapshot arrived
    assert fan_out_reads(counter) == 0
    assert [m["seq"] for m in snapshots(gateway, consumer)] == list(range(1, 8))

    # And once the TTL has passed, the partitions are read again (two Queries)
    counter = CallCounter([gateway.clients.dynamodb])
    clock.now += 0.1
    gateway.send(b1, snapshot(8))
    assert fan_out_reads(counter) == 2


def test_a_consumer_connecting_elsewhere_is_seen_within_the_ttl(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a busy browser's recipients cached (no consumer yet)
    gateway, clock = cached(make_gateway, 5)
    b1 = gateway.connect("browser", "acme", "b1")
    for _ in range(BUSY_LOOKUPS + 1):
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
    for _ in range(BUSY_LOOKUPS + 1):
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
    for _ in range(BUSY_LOOKUPS + 1):
        gateway.send(b1, snapshot(1))
    gateway.vanish(gone)

    # When the next snapshot's post to it answers 410
    gateway.send(b1, snapshot(2))

    # Then the snapshot after it does not post to it again
    counter = CallCounter([gateway.clients.management])
    gateway.send(b1, snapshot(3))
    assert counter.stop()["apigatewaymanagementapi.PostToConnection"] == 0


class WindowWrites:
    """Counts the writes on one connection's item (its window), by operation."""

    def __init__(self, gateway: Harness, connection_id: str) -> None:
        self.key = {"pk": {"S": f"C#{connection_id}"}, "sk": {"S": "META"}}
        self.calls: list[str] = []
        self._events = gateway.clients.dynamodb.meta.events
        self._events.register("provide-client-params.dynamodb.UpdateItem", self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == self.key:
            self.calls.append(params["UpdateExpression"])

    def stop(self) -> list[str]:
        self._events.unregister("provide-client-params.dynamodb.UpdateItem", self._seen)
        return self.calls


def test_a_consumer_following_many_browsers_takes_its_window_in_blocks(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a consumer with acks following every browser of a tenant
    gateway, clock = cached(make_gateway, 0)
    browsers = [gateway.connect("browser", "acme", f"b{n}") for n in range(20)]
    consumer = gateway.connect("consumer", "acme", "c1", acks=True)
    gateway.drain()

    # When 60 snapshots of 20 browsers reach it in quick succession, each sent
    # inline by its own message invocation
    writes = WindowWrites(gateway, consumer.connection_id)
    for n in range(60):
        gateway.send(browsers[n % 20], snapshot(n + 1))
        clock.now += 0.01
    window_writes = writes.stop()

    # Then it got all 60, numbered 1..60, for one window write per block
    assert [m["dseq"] for m in snapshots(gateway, consumer)] == list(range(1, 61))
    assert len(window_writes) == 9  # blocks of 1, 2, 4, 8, then 10
    assert all(w.startswith("SET sent = sent + :k") for w in window_writes)


def test_a_block_still_fills_the_window_and_conflates_beyond_it(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a consumer with acks that acks nothing, its window taken in blocks
    gateway, clock = cached(make_gateway, 0)
    browser = gateway.connect("browser", "acme", "b1")
    slow = gateway.connect("consumer", "acme", "slow", acks=True)
    gateway.drain()

    # When 105 snapshots come in quick succession
    for seq in range(1, 106):
        gateway.send(browser, snapshot(seq))
        clock.now += 0.01
    gateway.drain()

    # Then exactly its window of 100 arrived, 1..100; the rest are parked
    assert [m["dseq"] for m in snapshots(gateway, slow)] == list(range(1, 101))
    gateway.take(slow)

    # When it acks them all and the parked snapshot returns
    gateway.send(slow, json.dumps({"action": "ack", "seq": 100}))
    gateway.advance(2)

    # Then only the newest comes, numbered next, counting the 4 it replaced
    (latest,) = snapshots(gateway, slow)
    assert (latest["seq"], latest["missed"], latest["dseq"]) == (105, 4, 101)


def test_a_throttled_delivery_gives_its_number_to_the_next_without_a_write(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a consumer receiving a stream (its block holds numbers)
    gateway, clock = cached(make_gateway, 0)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1", acks=True)
    gateway.drain()
    for seq in range(1, 5):  # blocks of 1 (1), 2 (2, 3), then 4 (4..7): 5 to 7 held
        gateway.send(browser, snapshot(seq))
        clock.now += 0.01
    gateway.take(consumer)

    # When the post of the next delivery is throttled
    writes = WindowWrites(gateway, consumer.connection_id)
    gateway.api.throttle_next = 1
    gateway.send(browser, snapshot(5))

    # Then the next delivery carries its number, told it missed one, and the
    # window was not written for either
    gateway.send(browser, snapshot(6))
    (delivery,) = snapshots(gateway, consumer)
    assert (delivery["seq"], delivery["missed"], delivery["dseq"]) == (6, 1, 5)
    assert writes.stop() == []


def test_numbers_a_container_held_too_long_are_given_back_without_a_gap(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a block of 4 with 3 numbers unused (5, 6, 7)
    gateway, clock = cached(make_gateway, 0)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1", acks=True)
    gateway.drain()
    for seq in range(1, 5):
        gateway.send(browser, snapshot(seq))
        clock.now += 0.01
    gateway.take(consumer)

    # When the next snapshot comes after the block's time
    writes = WindowWrites(gateway, consumer.connection_id)
    clock.now += 1
    gateway.send(browser, snapshot(5))

    # Then the 3 went back in one write and the delivery is numbered 5, so an ack
    # of 5 covers everything and the whole window is free again
    (delivery,) = snapshots(gateway, consumer)
    assert delivery["dseq"] == 5
    assert writes.stop()[0] == "SET sent = sent - :n, room = room + :n"
    assert gateway.send(consumer, json.dumps({"action": "ack", "seq": 5})) is None
    item = gateway.clients.dynamodb.get_item(
        TableName=gateway.settings.table_name, Key=writes.key, ConsistentRead=True
    )["Item"]
    assert (item["sent"]["N"], item["room"]["N"]) == ("5", str(gateway.settings.max_unacked))


def rate_window_writes(gateway: Harness) -> list[str]:
    """Collects the sort keys of the rate-window writes (``R#{second}``)."""
    written: list[str] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        sk = params.get("Key", {}).get("sk", {}).get("S", "")
        if sk.startswith("R#"):
            written.append(sk)

    gateway.clients.dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", seen)
    return written


def test_a_connection_well_under_its_rate_limit_costs_no_rate_write(
    make_gateway: Callable[..., Harness],
) -> None:
    # Given a limit of 100 frames/s
    gateway = make_gateway(rate_limit_per_second=100)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    written = rate_window_writes(gateway)

    # When a browser sends a 40-part burst and the consumer 40 frames of its own
    for seq in range(1, 41):
        gateway.send(browser, snapshot(seq))
        gateway.send(consumer, json.dumps({"action": "list"}))

    # Then no rate window was written, and everything got through
    assert written == []
    assert len(snapshots(gateway, consumer)) == 40
