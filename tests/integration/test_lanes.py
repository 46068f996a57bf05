"""Lanes: commands and results never wait behind snapshot fan-out or presence (issue 11).

The bus (snapshots, presence) and the command lane (commands, results) are two
queues with two workers; here one tenant's backlog sits on the bus, untouched,
while another tenant's commands make their whole round trip on the lane.
"""

from __future__ import annotations

import json

from tabrelay import wire

from functions.logic import envelopes
from simulation.harness import Harness
from tests.integration.test_commands import result
from tests.integration.test_routing import command


def _depth(gateway: Harness, url: str) -> int:
    attributes = gateway.raw_sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _run_command_lane(gateway: Harness) -> None:
    """Only the command lane's worker runs (the bus and its router stay behind)."""
    while gateway._poll(gateway.settings.command_queue_url, gateway.handlers["commands"].handler):
        pass


def test_the_message_handler_puts_commands_and_results_on_the_command_lane(
    gateway: Harness,
) -> None:
    # Given a browser and a consumer of one tenant
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    # When the consumer sends a command and a raw command
    gateway.send(consumer, command("k1", "b1"))
    gateway.send(consumer, "reload")
    # Then both are on the command lane and nothing is on the bus
    messages = gateway.raw_sqs.receive_message(
        QueueUrl=gateway.settings.command_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    assert sorted(json.loads(m["Body"])["kind"] for m in messages) == ["command", "raw_command"]
    assert _depth(gateway, gateway.settings.bus_queue_url) == 0
    _run_command_lane(gateway)
    # And the browser's result goes the same way
    gateway.send(browser, result("k1"))
    (record,) = gateway.raw_sqs.receive_message(
        QueueUrl=gateway.settings.command_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    assert json.loads(record["Body"])["kind"] == "result"
    assert _depth(gateway, gateway.settings.bus_queue_url) == 0


def test_a_command_round_trip_completes_while_another_tenants_bus_backlog_waits(
    gateway: Harness,
) -> None:
    # Given tenant A with 30 browsers and 20 consumers following every browser, whose
    # reconnect storm left presence and a large fan-out waiting on the bus
    for n in range(20):
        gateway.connect("consumer", "tenant-a", f"ac{n}")
    storm = [gateway.connect("browser", "tenant-a", f"ab{n}") for n in range(30)]
    gateway.send(storm[0], json.dumps({"action": "snapshot", "sid": "s", "seq": 1, "data": "x"}))
    backlog = _depth(gateway, gateway.settings.bus_queue_url)
    assert backlog >= 31  # 30 presence records and the fan-out of a snapshot to 20
    # And tenant B's browser and consumer
    b_browser = gateway.connect("browser", "tenant-b", "bb")
    b_consumer = gateway.connect("consumer", "tenant-b", "bc")
    backlog = _depth(gateway, gateway.settings.bus_queue_url)

    # When B runs three command round trips, and only the command lane's worker runs
    for n in range(3):
        gateway.send(b_consumer, command(f"b{n}", "bb"))
        _run_command_lane(gateway)
        (delivered,) = gateway.take(b_browser)
        assert delivered["action"] == "command" and delivered["id"] == f"b{n}"
        gateway.send(b_browser, result(f"b{n}", n))
        _run_command_lane(gateway)

    # Then B's consumer has each result, in order, while A's backlog is still all there
    results = [m for m in gateway.take(b_consumer) if m["action"] == "result"]
    assert [(m["id"], m["value"]) for m in results] == [("b0", 0), ("b1", 1), ("b2", 2)]
    assert _depth(gateway, gateway.settings.bus_queue_url) == backlog
    # And once the router runs, A's consumers get their presence and snapshot
    gateway.drain()
    assert _depth(gateway, gateway.settings.bus_queue_url) == 0


def test_the_router_still_routes_commands_left_on_the_bus_by_a_deploy(gateway: Harness) -> None:
    # Given a command envelope the previous version put on the bus
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    identity = gateway.runtime.registry.get(consumer.connection_id)
    assert identity is not None
    old = envelopes.CommandEnvelope.of(
        identity.identity,
        wire.Command(id="old", target="b1", name="click"),
        cid="m-old",
    )
    gateway.raw_sqs.send_message(
        QueueUrl=gateway.settings.bus_queue_url, MessageBody=json.dumps(old.to_dict())
    )
    # When the router drains the bus
    gateway.drain()
    # Then the browser gets the command as before
    assert [m["id"] for m in gateway.take(browser)] == ["old"]
