"""No single hot partition (issue 11): what spreads the per-message writes and
reads over keys, or takes them off DynamoDB."""

from __future__ import annotations

from typing import Any

from functions.dal.idempotency import KEY_PREFIX, RECORD_SORT_KEY
from simulation.harness import Harness, LambdaContext
from tests.integration.test_delivery import CallCounter
from tests.integration.test_routing import command


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
