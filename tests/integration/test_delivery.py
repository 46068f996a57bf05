"""Large snapshots, batch failures and the cost shape of a relayed snapshot."""

from __future__ import annotations

import base64
import gzip
import json
import random
from collections import Counter
from typing import Any

from tabrelay import wire

from simulation.harness import Harness, LambdaContext, register_bystanders

PART_DATA = 30_000  # base64 characters per part: the JSON stays under one 32 KB frame


def page(size: int, seed: int = 7) -> str:
    """Plausible HTML of ``size`` characters (varied words, so gzip works as on real pages)."""
    rng = random.Random(seed)
    words = [
        "<div class='item'>",
        "</div>",
        "<a href='/x'>",
        "</a>",
        "lorem",
        "ipsum",
        "tabrelay",
        "snapshot",
        "<span>",
        "</span>",
        "price",
        "42.00",
        "<li>",
        "</li>",
    ]
    chunks: list[str] = ["<html><body>"]
    length = len(chunks[0])
    while length < size - 14:
        word = rng.choice(words) + (str(rng.randint(0, 99999)) if rng.random() < 0.3 else " ")
        chunks.append(word)
        length += len(word)
    chunks.append("</body></html>")
    return "".join(chunks)[: size - 14] + "</body></html>"


def split(html: str, *, sid: str, seq: int) -> list[str]:
    text = base64.b64encode(gzip.compress(html.encode())).decode()
    slices = [text[i : i + PART_DATA] for i in range(0, len(text), PART_DATA)] or [""]
    return [
        wire.encode(
            wire.Snapshot(
                sid=sid,
                seq=seq,
                data=s,
                enc="gzip",
                part=i,
                parts=len(slices),
                url="https://big.example/",
                title="big",
            )
        )
        for i, s in enumerate(slices)
    ]


def join(parts: list[dict[str, Any]]) -> str:
    ordered = sorted(parts, key=lambda p: p["part"])
    assert [p["part"] for p in ordered] == list(range(ordered[0]["parts"]))
    return gzip.decompress(base64.b64decode("".join(p["data"] for p in ordered))).decode()


def test_three_megabyte_snapshot_arrives_intact_in_parts(gateway: Harness) -> None:
    # Given a 3 MB page, compressed and cut so every message fits one 32 KB frame
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)
    html = page(3 * 1024 * 1024)
    frames = split(html, sid="big", seq=1)
    assert all(len(f.encode()) <= wire.FRAME_LIMIT for f in frames)

    # When every part is sent and relayed
    for frame in frames:
        assert gateway.send(browser, frame) is None
    gateway.drain()

    # Then the consumer reassembles exactly the page, each delivery within 128 KB
    received = gateway.received(consumer)
    assert len(received) == len(frames)
    assert all(len(json.dumps(m).encode()) <= wire.MESSAGE_LIMIT for m in received)
    assert join(received) == html


def test_batch_with_one_failing_record_reports_exactly_that_record(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    good = json.dumps(
        {
            "kind": "snapshot",
            "cid": "x",
            "tenant": "acme",
            "client": "b1",
            "connection": browser.connection_id,
            "msg": {"sid": "s", "seq": 1, "data": "<p>ok</p>"},
        }
    )
    event = gateway.sqs_event([("m1", good), ("m2", '{"kind": "nonsense"}'), ("m3", good)])
    response = gateway.handlers["router"].handler(event, LambdaContext())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert len([m for m in gateway.received(consumer) if m["action"] == "snapshot"]) == 2


class CallCounter:
    """Counts AWS calls by service and operation with botocore's event hooks."""

    def __init__(self, clients: list[Any]) -> None:
        self.calls: Counter[str] = Counter()
        self._clients = clients
        for client in clients:
            client.meta.events.register("before-call.*.*", self._count)

    def stop(self) -> Counter[str]:
        for client in self._clients:
            client.meta.events.unregister("before-call.*.*", self._count)
        return Counter(self.calls)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1


def relay_cost(gateway: Harness, tenant: str, bystanders: int) -> Counter[str]:
    """AWS calls made to relay one snapshot from b1 to its one subscribed consumer."""
    browser = gateway.connect("browser", tenant, "b1")
    consumer = gateway.connect("consumer", tenant, "c1")
    gateway.send(consumer, json.dumps({"action": "subscribe", "browsers": ["b1"]}))
    gateway.drain()
    gateway.take(consumer)
    register_bystanders(gateway, tenant, bystanders)

    counter = CallCounter([gateway.clients.dynamodb, gateway.raw_sqs, gateway.clients.management])
    gateway.send(browser, json.dumps({"action": "snapshot", "sid": "s", "seq": 1, "data": "<p/>"}))
    gateway.drain()
    calls = counter.stop()
    assert len(gateway.take(consumer)) == 1
    return calls


def test_calls_per_snapshot_do_not_grow_with_connections(make_gateway: Any) -> None:
    gateway = make_gateway()
    few = relay_cost(gateway, "small", 10)
    many = relay_cost(gateway, "large", 1000)
    assert few == many
    assert not any(op.endswith(".Scan") for op in many)
    assert many["apigatewaymanagementapi.PostToConnection"] == 1


def test_snapshot_to_few_consumers_is_delivered_without_the_bus(gateway: Harness) -> None:
    # Given a browser with two consumers
    browser = gateway.connect("browser", "acme", "b1")
    consumers = [gateway.connect("consumer", "acme", f"c{i}") for i in range(2)]
    gateway.drain()
    for consumer in consumers:
        gateway.take(consumer)

    # When it sends a snapshot, then before any worker runs
    gateway.send(browser, json.dumps({"action": "snapshot", "sid": "s", "seq": 1, "data": "<p/>"}))

    # Then both consumers already have it and nothing waits on the bus
    assert all(len(gateway.take(c)) == 1 for c in consumers)
    queue = gateway.raw_sqs.get_queue_attributes(
        QueueUrl=gateway.settings.bus_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert queue["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_snapshot_to_many_consumers_goes_through_the_router(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    consumers = [gateway.connect("consumer", "acme", f"c{i}") for i in range(11)]
    gateway.drain()
    for consumer in consumers:
        gateway.take(consumer)
    gateway.send(browser, json.dumps({"action": "snapshot", "sid": "s", "seq": 1, "data": "<p/>"}))
    assert all(gateway.take(c) == [] for c in consumers)
    gateway.drain()
    assert all(len(gateway.take(c)) == 1 for c in consumers)


def test_failed_inline_fan_out_falls_back_to_the_bus(gateway: Harness) -> None:
    # Given an inline fan-out that fails (DynamoDB unavailable, say)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)

    def unavailable(envelope: object, remaining_ms: object = None) -> bool:
        raise RuntimeError("DynamoDB unavailable")

    gateway.runtime.delivery.fan_out_inline = unavailable  # type: ignore[method-assign]

    # When the browser sends a snapshot
    assert (
        gateway.send(browser, json.dumps({"action": "snapshot", "sid": "s", "seq": 1, "data": "x"}))
        is None
    )

    # Then the router delivers it
    gateway.drain()
    (delivery,) = gateway.take(consumer)
    assert delivery["data"] == "x"
