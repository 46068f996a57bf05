"""Bounded replies and load shedding (issue 16): ``list`` pages, throttled posts by
kind, and an inline fan-out that hands off to the bus before its deadline."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from types import ModuleType

import boto3
import pytest
from tabrelay import wire

from functions.dal.clients import MANAGEMENT_CONFIG as _MANAGEMENT_CONFIG
from functions.dal.registry import _client_key
from functions.handlers._wiring import AWSClients, Runtime
from simulation.environment import ENVIRONMENT, REGION, STAGE
from simulation.harness import Harness, LambdaContext
from tests.integration.test_routing import command, snapshot, snapshots


def _register_browsers(gateway: Harness, tenant: str, ids: list[str]) -> None:
    """Write the tenant's client index entries of browsers in batches (a handshake
    each would take minutes under moto); ``list`` reads nothing else."""
    now = int(time.time())
    items = [
        {
            "PutRequest": {
                "Item": {
                    **_client_key(tenant, "browser", client_id),
                    "connection_id": {"S": f"conn-{n}=="},
                    "connected_at": {"N": str(now * 1000 + n)},
                    "ttl": {"N": str(now + 3600)},
                }
            }
        }
        for n, client_id in enumerate(ids)
    ]
    for start in range(0, len(items), 25):
        gateway.clients.dynamodb.batch_write_item(
            RequestItems={ENVIRONMENT["TABLE_NAME"]: items[start : start + 25]}
        )


def test_list_across_3000_browsers_returns_them_all_in_pages_under_the_message_limit(
    gateway: Harness,
) -> None:
    # Given 3,000 browsers of one tenant with the longest ids, and one of another tenant
    ids = [f"{n:04d}".ljust(128, "b") for n in range(3000)]
    _register_browsers(gateway, "acme", ids)
    _register_browsers(gateway, "globex", ["stranger"])
    consumer = gateway.connect("consumer", "acme", "c1")

    # When the consumer lists, following each reply's cursor
    listed: list[str] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(100):
        request: dict[str, object] = {"action": "list", "id": "l"}
        if cursor is not None:
            request["cursor"] = cursor
        reply = gateway.send(consumer, json.dumps(request))
        assert reply is not None and reply["action"] == "browsers", reply
        sizes.append(len(json.dumps(reply, separators=(",", ":")).encode()))
        listed.extend(b["client_id"] for b in reply["browsers"])
        cursor = reply.get("next")
        if cursor is None:
            break

    # Then every browser is listed once, none of the other tenant, in pages that
    # each fit one 32 KB frame (far under the 128 KB message limit)
    assert sorted(listed) == ids
    assert len(sizes) >= 3000 // wire.LIST_PAGE_MAX
    assert max(sizes) <= wire.FRAME_LIMIT < wire.MESSAGE_LIMIT


def test_list_with_a_limit_returns_that_many(gateway: Harness) -> None:
    _register_browsers(gateway, "acme", [f"b{n}" for n in range(5)])
    consumer = gateway.connect("consumer", "acme", "c1")
    reply = gateway.send(consumer, json.dumps({"action": "list", "id": "l", "limit": 2}))
    assert reply is not None and [b["client_id"] for b in reply["browsers"]] == ["b0", "b1"]
    following = gateway.send(
        consumer, json.dumps({"action": "list", "id": "l", "limit": 2, "cursor": reply["next"]})
    )
    assert following is not None
    assert [b["client_id"] for b in following["browsers"]] == ["b2", "b3"]


def test_forged_list_cursor_is_refused_and_never_leaves_the_tenant(gateway: Harness) -> None:
    # Given browsers in two tenants
    _register_browsers(gateway, "acme", ["a1"])
    _register_browsers(gateway, "globex", ["g1", "g2"])
    consumer = gateway.connect("consumer", "acme", "c1")

    # When a consumer sends a cursor that is not base64 of a client id
    for forged in ("!!!", "VCNnbG9iZXg", "Z2xvYmV4I2Jyb3dzZXIjZzE="):
        reply = gateway.send(consumer, json.dumps({"action": "list", "id": "l", "cursor": forged}))
        # Then it gets a precise error
        assert reply is not None and reply["code"] == "bad_request", (forged, reply)
        assert "list.cursor" in reply["message"] and reply["id"] == "l"

    # And a well-formed cursor naming another tenant's browser only moves within its own
    crafted = "ZzE"  # base64url of "g1"
    reply = gateway.send(consumer, json.dumps({"action": "list", "id": "l", "cursor": crafted}))
    assert reply is not None and reply["action"] == "browsers"
    assert all(not b["client_id"].startswith("g") for b in reply["browsers"])


def _queued(gateway: Harness) -> int:
    """Messages on the delivery queue, visible or held back by a delay."""
    attributes = gateway.raw_sqs.get_queue_attributes(
        QueueUrl=gateway.settings.delivery_queue_url,
        AttributeNames=["ApproximateNumberOfMessages"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + gateway.sqs.held


@pytest.mark.parametrize("acks", [True, False])
def test_throttled_snapshot_is_dropped_and_reported_as_missed_not_retried(
    gateway: Harness, acks: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a browser and a consumer
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1", acks=acks)
    gateway.drain()
    gateway.take(consumer)

    # When @connections answers 429 to the post of a snapshot
    gateway.api.throttle_next = 1
    gateway.send(browser, snapshot(1))
    gateway.drain()

    # Then it is dropped: not delivered, and nothing waits on the delivery queue for it
    assert gateway.take(consumer) == []
    assert _queued(gateway) == 0
    assert "ThrottledSnapshotDropped" in capsys.readouterr().out

    # When the browser sends its next snapshot
    gateway.send(browser, snapshot(2))
    gateway.drain()

    # Then the consumer gets it, told it missed one; its window slot was given back
    (delivery,) = snapshots(gateway, consumer)
    assert (delivery["seq"], delivery["missed"]) == (2, 1)
    assert delivery.get("dseq") == (1 if acks else None)

    # And the one after that reports nothing missed
    gateway.take(consumer)
    gateway.send(browser, snapshot(3))
    gateway.drain()
    (delivery,) = snapshots(gateway, consumer)
    assert (delivery["seq"], delivery["missed"]) == (3, 0)


def test_throttled_snapshots_through_the_router_are_counted_together(gateway: Harness) -> None:
    # Given a browser followed by more consumers than the inline fan-out serves
    browser = gateway.connect("browser", "acme", "b1")
    consumers = [gateway.connect("consumer", "acme", f"c{i}", acks=True) for i in range(11)]
    gateway.drain()
    for consumer in consumers:
        gateway.take(consumer)

    # When every post of two snapshots in one router batch is throttled
    gateway.api.throttle_next = 22
    gateway.send(browser, snapshot(1))
    gateway.send(browser, snapshot(2))
    gateway.drain()
    assert _queued(gateway) == 0

    # Then each consumer's next snapshot says it missed both, numbered from 1
    gateway.send(browser, snapshot(3))
    gateway.drain()
    for consumer in consumers:
        (delivery,) = snapshots(gateway, consumer)
        assert (delivery["seq"], delivery["missed"], delivery["dseq"]) == (3, 2, 1)


def test_throttled_result_is_retried_with_jitter_and_delivered(
    gateway: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a command delivered to a browser
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)
    gateway.send(consumer, command("k1", "b1"))
    gateway.drain()
    assert [m["id"] for m in gateway.take(browser)] == ["k1"]

    # When the post of its result to the consumer is throttled
    gateway.api.throttle_next = 1
    gateway.send(browser, json.dumps({"action": "result", "id": "k1", "ok": True, "value": 7}))
    gateway.drain()
    assert gateway.take(consumer) == []
    assert '"kind":"result"' in capsys.readouterr().out  # DeliveryRetried, by kind

    # Then it is retried after a jittered delay of at most 2 s, and delivered once
    gateway.advance(2)
    (result,) = gateway.take(consumer)
    assert (result["action"], result["id"], result["value"]) == ("result", "k1", 7)


@dataclass
class _DeadlineContext(LambdaContext):
    """A Lambda context whose remaining time runs down with the real clock."""

    budget_ms: int = 0
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return self.budget_ms - int((time.monotonic() - self.started) * 1000)


@pytest.fixture
def hanging_connections_api() -> Iterator[str]:
    """An @connections endpoint that accepts connections and never answers: the
    kernel completes the handshakes into the listen backlog, nobody reads."""
    with socket.create_server(("127.0.0.1", 0), backlog=32) as server:
        port = server.getsockname()[1]
        yield f"http://127.0.0.1:{port}/{STAGE}"


@pytest.mark.parametrize("concurrency", [1, 3])
def test_inline_fan_out_to_a_hanging_connections_api_hands_off_before_the_deadline(
    gateway: Harness,
    handler_modules: dict[str, ModuleType],
    hanging_connections_api: str,
    monkeypatch: pytest.MonkeyPatch,
    concurrency: int,
) -> None:
    # Given a browser with three consumers, and a message function whose
    # @connections endpoint hangs (the deployed client's timeouts, not the fake's),
    # posting one at a time or all three at once
    browser = gateway.connect("browser", "acme", "b1")
    consumers = [gateway.connect("consumer", "acme", f"c{i}") for i in range(3)]
    gateway.drain()
    for consumer in consumers:
        gateway.take(consumer)
    hanging = boto3.client(
        "apigatewaymanagementapi",
        region_name=REGION,
        endpoint_url=hanging_connections_api,
        config=_MANAGEMENT_CONFIG,
    )
    clients = AWSClients(
        dynamodb=gateway.clients.dynamodb, sqs=gateway.clients.sqs, management=hanging
    )
    settings = replace(gateway.settings, fan_out_concurrency=concurrency)
    monkeypatch.setattr(handler_modules["message"], "RUNTIME", Runtime.build(settings, clients))
    reserve = gateway.runtime.gateway._limits.handoff_reserve_ms
    # and just enough time left for one post to start
    context = _DeadlineContext(budget_ms=reserve + 500)

    # When the browser sends a snapshot
    gateway.send(browser, snapshot(1), lambda_context=context)

    # Then the handler returned before its deadline
    assert context.get_remaining_time_in_millis() > 0
    messages = gateway.raw_sqs.receive_message(
        QueueUrl=gateway.settings.bus_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    ).get("Messages", [])
    if concurrency == 1:
        # having handed the recipients it had no time for to the bus
        (handoff,) = [json.loads(m["Body"]) for m in messages]
        assert handoff["kind"] == "snapshot" and len(handoff["to"]) == 2
    else:
        # having started every post in time: each failed post goes to the retries
        assert messages == []

    # And once the router (and the retry of the post that timed out) ran, every
    # consumer has the snapshot
    gateway.drain()
    gateway.advance(2)
    for consumer in consumers:
        (delivery,) = snapshots(gateway, consumer)
        assert delivery["seq"] == 1
