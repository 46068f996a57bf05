"""Presence, coalesced per tenant and fanned out in bounded chunks (issue 11).

Each consumer gets each browser's latest presence; a batch's changes of one
browser are merged; one record never makes the router post more than a chunk.
"""

from __future__ import annotations

import json
from typing import Any

from functions.logic import envelopes
from functions.logic.ports import Identity
from simulation.events import LambdaContext
from simulation.harness import Connection, Harness


def presence(gateway: Harness, conn: Connection) -> list[dict[str, Any]]:
    return [m for m in gateway.take(conn) if m["action"] == "presence"]


def bus_batch(gateway: Harness) -> list[dict[str, Any]]:
    """Receive what is on the bus (up to ten records), without running the router."""
    return gateway.raw_sqs.receive_message(
        QueueUrl=gateway.settings.bus_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])


def run_router(gateway: Harness, messages: list[dict[str, Any]]) -> dict[str, Any]:
    event = gateway.sqs_event([(m["MessageId"], m["Body"]) for m in messages])
    response: dict[str, Any] = gateway.handlers["router"].handler(event, LambdaContext())
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    for m in messages:
        if m["MessageId"] not in failed:
            gateway.raw_sqs.delete_message(
                QueueUrl=gateway.settings.bus_queue_url, ReceiptHandle=m["ReceiptHandle"]
            )
    return response


def test_a_reconnect_in_one_batch_reaches_each_consumer_once_with_the_latest_state(
    gateway: Harness,
) -> None:
    # Given two consumers of a tenant
    consumers = [gateway.connect("consumer", "acme", f"c{n}") for n in range(2)]
    # And a browser that came online, left and came back, the three in one bus batch
    first = gateway.connect("browser", "acme", "b1")
    gateway.close(first)
    again = gateway.connect("browser", "acme", "b1")
    messages = bus_batch(gateway)
    kinds = sorted(json.loads(m["Body"])["kind"] for m in messages)
    assert kinds == ["browser_gone", "presence", "presence"]
    latest = gateway.connected_at[again.connection_id]
    # When the router runs the batch
    assert run_router(gateway, messages)["batchItemFailures"] == []
    # Then each consumer got one presence for the browser: online, at its last connect
    for consumer in consumers:
        (note,) = presence(gateway, consumer)
        assert (note["client_id"], note["online"], note["at"]) == ("b1", True, latest)


def test_a_storm_posts_each_browsers_presence_to_each_consumer_in_bounded_chunks(
    make_gateway: Any,
) -> None:
    # Given a tenant with 7 consumers, and chunks of at most 10 posts
    gateway: Harness = make_gateway(presence_chunk=10)
    consumers = [gateway.connect("consumer", "acme", f"c{n}") for n in range(7)]
    # And a storm: 10 browsers connecting at once (one bus batch of presence)
    browsers = [gateway.connect("browser", "acme", f"b{n}") for n in range(10)]
    posts_before = sum(len(v) for v in gateway.api.received.values())
    messages = bus_batch(gateway)
    assert len(messages) == 10
    # When the router runs that one batch
    run_router(gateway, messages)
    # Then it posted one chunk (at most 10 posts) and put the rest back on the bus in chunks
    posted = sum(len(v) for v in gateway.api.received.values()) - posts_before
    assert 0 < posted <= 10
    rest = [json.loads(m["Body"]) for m in bus_batch(gateway)]
    assert rest and all(e["kind"] == "presence_fan_out" for e in rest)
    assert all(len(e["changes"]) * len(e["to"]) <= 10 for e in rest)
    # And once the bus drains, every consumer has every browser's presence exactly once
    gateway.drain()
    for consumer in consumers:
        notes = [(m["client_id"], m["online"]) for m in presence(gateway, consumer)]
        assert sorted(notes) == sorted((b.client_id, True) for b in browsers), consumer


def test_a_failed_presence_fan_out_fails_its_records_and_their_retry_delivers(
    gateway: Harness, monkeypatch: Any
) -> None:
    # Given a consumer and two browsers coming online, and another tenant's browser
    consumer = gateway.connect("consumer", "acme", "c1")
    other = gateway.connect("consumer", "other", "c1")
    for n in range(2):
        gateway.connect("browser", "acme", f"b{n}")
    gateway.connect("browser", "other", "b9")
    messages = bus_batch(gateway)
    # And the lookup of acme's consumers failing once
    registry = gateway.runtime.registry
    real = registry.list_clients
    failures = []

    def failing_once(tenant: str, role: str) -> list[tuple[str, str, int]]:
        if tenant == "acme" and not failures:
            failures.append(tenant)
            raise ConnectionError("DynamoDB unavailable")
        return real(tenant, role)

    monkeypatch.setattr(registry, "list_clients", failing_once)
    # When the router runs the batch
    response = run_router(gateway, messages)
    # Then both of acme's presence records failed (they come back), and nothing was posted
    acme = {m["MessageId"] for m in messages if json.loads(m["Body"])["tenant"] == "acme"}
    assert len(acme) == 2
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == acme
    assert presence(gateway, consumer) == []
    # And the other tenant's presence went out
    assert [m["client_id"] for m in presence(gateway, other)] == ["b9"]
    # And the retry of acme's delivers both
    gateway.drain()
    assert sorted(m["client_id"] for m in presence(gateway, consumer)) == ["b0", "b1"]


def test_the_offline_of_a_browser_that_is_back_is_not_sent(gateway: Harness) -> None:
    # Given a consumer, and a browser that reconnected: its new connection is registered
    consumer = gateway.connect("consumer", "acme", "c1")
    old = gateway.connect("browser", "acme", "b1")
    new = gateway.connect("browser", "acme", "b1")
    gateway.drain()
    gateway.take(consumer)
    # When the old connection's browser_gone arrives late, stamped after the new online
    # (its $disconnect ran while the browser reconnected)
    identity = Identity(old.connection_id, "acme", "browser", "b1")
    at = gateway.connected_at[new.connection_id] + 1000
    late = envelopes.BrowserGone.of(identity, at=at, cid="late")
    gateway.raw_sqs.send_message(
        QueueUrl=gateway.settings.bus_queue_url, MessageBody=json.dumps(late.to_dict())
    )
    gateway.drain()
    # Then the consumer is not told the browser went offline: it is online
    assert presence(gateway, consumer) == []


def test_the_offline_of_a_browser_that_is_gone_is_sent(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    browser = gateway.connect("browser", "acme", "b1")
    gateway.drain()
    gateway.take(consumer)
    gateway.close(browser)
    gateway.drain()
    (note,) = presence(gateway, consumer)
    assert (note["client_id"], note["online"]) == ("b1", False)
