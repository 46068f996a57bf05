"""Hostile input through the real handlers and workers (issue 10, classes 1, 5, 6, 12).

Every case either travels intact or is refused with a precise code; none ends
in ``internal``, a worker failure or invalid JSON sent to a client, and bad
frames pay the rate limit like good ones.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from botocore.exceptions import ClientError
from tabrelay import wire

from functions.logic.auth import AUDIENCE
from simulation.environment import SIGNING_KEY
from simulation.harness import Connection, Harness, LambdaContext
from tests.integration.test_errors import refused
from tests.integration.test_routing import command, snapshot

# -- helpers ------------------------------------------------------------------------

#: What SQS accepts in a message body (anything else is InvalidParameterValue).
_SQS_INVALID = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SQS_MAX_BYTES = 256 * 1024


def strict_sqs(gateway: Harness) -> None:
    """Make moto's SQS refuse what the real SQS refuses (characters and size)."""

    def check(params: dict[str, Any], **_: Any) -> None:
        body: str = params["MessageBody"]
        if _SQS_INVALID.search(body) or len(body.encode("utf-8", "surrogatepass")) > (
            _SQS_MAX_BYTES
        ):
            raise ClientError(
                {"Error": {"Code": "InvalidParameterValue", "Message": "refused body"}},
                "SendMessage",
            )

    gateway.raw_sqs.meta.events.register("provide-client-params.sqs.SendMessage", check)


def send_binary(gateway: Harness, conn: Connection, data: bytes) -> dict[str, Any] | None:
    """A binary frame: API Gateway hands it over base64-encoded."""
    context = gateway._context(conn.connection_id, "$default", "MESSAGE")
    context["authorizer"] = gateway._authorizers[conn.connection_id]
    event = {
        "requestContext": context,
        "body": base64.b64encode(data).decode("ascii"),
        "isBase64Encoded": True,
    }
    response = gateway.handlers["message"].handler(event, LambdaContext())
    body = response.get("body")
    return json.loads(body) if body else None


def _strict_json(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def assert_everything_sent_is_valid(gateway: Harness) -> None:
    """Every message any client received is valid UTF-8 JSON within 128 KB."""
    for messages in gateway.api.received.values():
        for text in messages:
            assert len(text.encode("utf-8")) <= wire.MESSAGE_LIMIT
            _strict_json(text)


def table_items(gateway: Harness) -> list[dict[str, Any]]:
    db = gateway.clients.dynamodb
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": gateway.settings.table_name}
    while True:
        page = db.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def items_of(gateway: Harness, connection_id: str) -> list[dict[str, Any]]:
    """Items whose key or any attribute names the connection."""
    return [i for i in table_items(gateway) if connection_id in json.dumps(i)]


def subscribe(ids: list[str], action: str = "subscribe") -> str:
    return json.dumps({"action": action, "browsers": ids, "id": "s"})


# -- class 1: every frame counts against the rate limit ----------------------------------


@pytest.mark.parametrize(
    ("role", "frame"),
    [
        ("browser", "{"),
        ("browser", "x" * (128 * 1024)),  # too_large
        ("consumer", '{"action": "teleport"}'),  # unknown_action
        ("consumer", '{"action": "snapshot", "sid": "s", "seq": 1, "data": ""}'),  # forbidden
        ("consumer", '{"action": "ack", "seq": NaN}'),  # cannot be carried
    ],
    ids=["malformed", "too_large", "unknown", "forbidden", "nan"],
)
def test_given_a_flood_of_bad_frames_when_sent_then_rate_limited_and_disconnected(
    make_gateway: Callable[..., Harness], role: str, frame: str
) -> None:
    gateway = make_gateway(rate_limit_per_second=20)
    # Every send falls in one rate window, however slow a loaded machine is.
    limiter = gateway.runtime.gateway._limiter  # type: ignore[attr-defined]
    frozen = time.time()
    limiter._clock = lambda: frozen
    conn = gateway.connect(role, "acme", "x1")
    codes = []
    for _ in range(400):
        reply = gateway.send(conn, frame)
        codes.append(reply["code"] if reply else "ok")
        if conn.connection_id in gateway.api.deleted:
            break
    assert "rate_limited" in codes
    assert conn.connection_id in gateway.api.deleted
    # On a one-way route (snapshot, ack) every refusal was posted too; the
    # disconnection's reason is the last error and comes once.
    errors = [m for m in gateway.received(conn) if m["action"] == "error"]
    (reason,) = [e for e in errors if "disconnected" in e["message"]]
    assert reason == errors[-1] and reason["code"] == "rate_limited"


# -- class 5: bounded subscriptions, nothing left after $disconnect -------------------------


def test_given_a_full_subscription_set_when_one_more_id_then_bad_request_and_set_unchanged(
    gateway: Harness,
) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    full = [f"b{i:03}" for i in range(wire.MAX_SUBSCRIPTIONS)]
    reply = gateway.send(consumer, subscribe(full))
    assert reply is not None and reply["action"] == "subscribed"
    assert len(reply["browsers"]) == wire.MAX_SUBSCRIPTIONS
    before = table_items(gateway)

    reply = gateway.send(consumer, subscribe(["one-more"]))
    assert reply is not None and reply["code"] == "bad_request"
    assert f"at most {wire.MAX_SUBSCRIPTIONS}" in reply["message"] and reply["id"] == "s"
    after = table_items(gateway)
    assert sorted(map(json.dumps, before)) == sorted(map(json.dumps, after))

    # "*" is not counted, and dropping ids makes room again.
    assert gateway.send(consumer, subscribe(["*"]))["action"] == "subscribed"  # type: ignore[index]
    assert gateway.send(consumer, subscribe(["b000"], "unsubscribe"))["action"] == "subscribed"  # type: ignore[index]
    reply = gateway.send(consumer, subscribe(["one-more"]))
    assert reply is not None and reply["action"] == "subscribed"
    assert len(reply["browsers"]) == wire.MAX_SUBSCRIPTIONS + 1  # 100 ids and "*"


def _traffic(gateway: Harness, consumer: Connection) -> None:
    """Subscribe, unsubscribe, snapshots (parked too), a command and its answer."""
    browsers = [gateway.connect("browser", "acme", f"b{i}") for i in range(3)]
    gateway.send(consumer, subscribe(["b0", "b1", "b2", "gone1", "gone2"]))
    gateway.send(consumer, subscribe(["gone2"], "unsubscribe"))
    for seq in range(1, 4):
        for browser in browsers:
            gateway.send(browser, snapshot(seq))
    gateway.send(consumer, command("k1", "b0"))
    gateway.send(consumer, "reload")  # a raw command to the three browsers it follows
    gateway.drain()
    gateway.send(browsers[0], json.dumps({"action": "result", "id": "k1", "ok": True}))
    gateway.send(consumer, json.dumps({"action": "ack", "seq": 2}))
    gateway.drain()
    gateway.advance(5)


def test_disconnect_leaves_nothing_of_the_connection(make_gateway: Callable[..., Harness]) -> None:
    # A window of 2 makes the consumer park snapshots: conflation items too.
    gateway = make_gateway(max_unacked=2)
    consumer = gateway.connect("consumer", "acme", "c1", acks=True)
    _traffic(gateway, consumer)
    assert items_of(gateway, consumer.connection_id)  # it did create items

    gateway.close(consumer)
    # Commands it issued stay pending until answered or timed out (a consumer
    # that reconnects still gets their answers); then only their ended records
    # stay, until DynamoDB's TTL removes them an hour later (so that a reused
    # command id is still recognized: docs/architecture.md).
    timeout = wire.Command(id="k", target="b", name="n").timeout
    gateway.advance(timeout + 1)
    left = items_of(gateway, consumer.connection_id)
    assert all(item["pk"]["S"].startswith("K#") for item in left), left
    latest_ttl = time.time() + timeout + 3600 + 600
    assert all(int(item["ttl"]["N"]) <= latest_ttl for item in left), left


@pytest.mark.parametrize("failing_put", [1, 3])
def test_subscribe_that_fails_half_way_leaves_nothing_after_disconnect(
    gateway: Harness, failing_put: int
) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    calls = {"n": 0}

    def fail_one_put(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] == failing_put:
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}},
                "PutItem",
            )

    events = gateway.clients.dynamodb.meta.events
    events.register("provide-client-params.dynamodb.PutItem", fail_one_put)
    reply = gateway.send(consumer, subscribe(["b1", "b2", "b3", "b4"]))
    events.unregister("provide-client-params.dynamodb.PutItem", fail_one_put)
    assert reply is not None and reply["code"] == "internal"  # a fault, not bad input

    gateway.close(consumer)
    assert items_of(gateway, consumer.connection_id) == []


def test_subscribe_racing_disconnect_leaves_nothing(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    registry = gateway.runtime.gateway._registry  # type: ignore[attr-defined]
    record = registry.get(consumer.connection_id)
    assert record is not None
    gateway.close(consumer)  # $disconnect runs between the read and the writes
    registry.set_subscriptions(record, frozenset({"b1", "b2"}), ttl=int(time.time()) + 60)
    assert items_of(gateway, consumer.connection_id) == []


def test_raw_command_over_the_fan_out_cap_is_refused_and_nothing_runs(gateway: Harness) -> None:
    cap = wire.RAW_COMMAND_MAX_TARGETS
    browsers = [gateway.connect("browser", "acme", f"b{i}") for i in range(cap + 1)]
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    for conn in [*browsers, consumer]:
        gateway.take(conn)

    assert gateway.send(consumer, "reload") is None
    gateway.drain()
    gateway.advance(60)
    (error,) = gateway.take(consumer)
    assert error["action"] == "error" and error["code"] == "bad_request"
    assert f"at most {cap} browsers" in error["message"]
    for browser in browsers:
        assert gateway.take(browser) == []

    # At the cap, every browser gets the command.
    gateway.close(browsers[-1])
    gateway.drain()
    gateway.take(consumer)
    gateway.send(consumer, "reload")
    gateway.drain()
    for browser in browsers[:-1]:
        (delivery,) = gateway.take(browser)
        assert delivery["action"] == "command" and delivery["name"] == "reload"


# -- class 6: valid JSON the gateway cannot carry --------------------------------------------

_DEEP_ARGS = '{"a":' * 1000 + "0" + "}" * 1000

CASES: list[tuple[str, str, str | bytes]] = [
    # (id, sender role, frame)
    ("lone-surrogate-title", "browser", snapshot(1, title="a\ud800b")),
    ("lone-surrogate-data", "browser", snapshot(1, data="\udfff")),
    (
        "lone-surrogate-result",
        "browser",
        '{"action":"result","id":"k","ok":true,"value":"\\udc00"}',
    ),
    ("lone-surrogate-args-key", "consumer", command("k", "b1", args={"\ud800": 1})),
    ("uffff-title", "browser", snapshot(1, title="t\uffff\ufffe")),
    ("uffff-data-raw-json", "browser", snapshot(1, data="\uffff" * 40_000)),
    ("controls-data", "browser", snapshot(1, data="\x01\x0b\x0c\x7f\x85")),
    ("uffff-command-args", "consumer", command("k", "b1", args={"t": "\uffff"})),
    ("raw-html-uffff", "browser", "<html>\uffff\ufffe\x01</html>"),
    ("raw-html-quotes", "browser", '<p a="1">' + '"' * 100_000),
    ("raw-html-controls", "browser", "<html>" + "\x01" * 30_000),
    ("raw-html-big-but-fits", "browser", "<html>" + "é" * 40_000),
    ("raw-command-uffff", "consumer", "go\uffff"),
    (
        "nan-args",
        "consumer",
        '{"action":"command","id":"k","target":"b1","name":"n","args":{"x":NaN}}',
    ),
    (
        "infinity-timeout",
        "consumer",
        '{"action":"command","id":"k","target":"b1","name":"n","timeout":Infinity}',
    ),
    (
        "1e400-args",
        "consumer",
        '{"action":"command","id":"k","target":"b1","name":"n","args":{"x":1e400}}',
    ),
    ("1e400-value", "browser", '{"action":"result","id":"k","ok":true,"value":-1e400}'),
    ("39-digit-seq", "browser", snapshot(10**38)),
    ("39-digit-ack", "consumer", '{"action":"ack","seq":' + "9" * 39 + "}"),
    ("2^53-seq", "browser", snapshot(2**53)),
    ("39-digit-timeout", "consumer", command("k", "b1", timeout=float("1" + "0" * 38))),
    ("big-int-args", "consumer", command("k", "b1", args={"n": 10**60})),
    ("deep-args", "consumer", command("k", "b1")[:-1] + ', "args": ' + _DEEP_ARGS + "}"),
    ("deep-940", "consumer", '{"action":"ping","id":' + "[" * 940 + "]" * 940 + "}"),
    ("binary-invalid-utf8", "browser", b'{"action":"snapshot","sid":"s","seq":1,"data":"\xff"}'),
    ("binary-invalid-utf8-raw", "consumer", b"\xc3\x28"),
    ("binary-valid-utf8-raw", "browser", "<html>é</html>".encode()),
]


@pytest.fixture
def hostile(gateway: Harness) -> Iterator[tuple[Harness, Connection, Connection, Connection]]:
    strict_sqs(gateway)
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    # Over ten recipients: snapshots go through the bus (and SQS) as well.
    more = [gateway.connect("consumer", "acme", f"c-{i}") for i in range(10)]
    gateway.drain()
    for conn in [browser, consumer, *more]:
        gateway.take(conn)
    yield gateway, browser, consumer, more[0]


@pytest.mark.parametrize(("role", "frame"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_given_json_hard_to_carry_when_sent_then_intact_or_refused_precisely(
    hostile: tuple[Harness, Connection, Connection, Connection], role: str, frame: str | bytes
) -> None:
    gateway, browser, consumer, bystander = hostile
    sender = browser if role == "browser" else consumer
    if isinstance(frame, bytes):
        reply = send_binary(gateway, sender, frame)
    else:
        reply = gateway.send(sender, frame)
    gateway.drain()  # asserts that no worker record failed
    gateway.advance(60)
    if reply is not None:
        assert reply["action"] == "error", reply
        assert reply["code"] in {"bad_request", "too_large"}, reply
        assert gateway.take(bystander) == []  # a refused frame changes nothing
    else:
        # Accepted: what it carried arrived intact.
        receiver = consumer if role == "browser" else browser
        delivered = [m for m in gateway.received(receiver) if m["action"] != "presence"]
        assert delivered, "accepted but never delivered"
        text = frame.decode() if isinstance(frame, bytes) else frame
        if role == "browser" and not text.startswith("{"):
            assert delivered[0]["data"] == text
        elif '"action": "snapshot"' in text:
            assert delivered[0]["data"] == json.loads(text)["data"]
            assert delivered[0]["title"] == json.loads(text).get("title", "")
        elif '"action": "command"' in text:
            assert delivered[0]["args"] == json.loads(text).get("args", {})
    assert_everything_sent_is_valid(gateway)


# -- class 12: token claims through the authorizer handler ------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        {"tenant": "acme\n"},
        {"client_id": "b1\n"},
        {"exp": float("inf")},
        {"exp": float("nan")},
        {"exp": 10**400},
        {"exp": 1e300},
        {"iat": float("inf")},
        {"nbf": 10**400},
    ],
    ids=[
        "tenant-newline",
        "client-newline",
        "exp-inf",
        "exp-nan",
        "exp-huge",
        "exp-1e300",
        "iat-inf",
        "nbf-huge",
    ],
)
def test_given_edge_case_token_claims_when_connecting_then_401(
    gateway: Harness, claims: dict[str, object]
) -> None:
    payload: dict[str, object] = {
        "tenant": "acme",
        "role": "browser",
        "client_id": "b1",
        "aud": AUDIENCE,
        "exp": int(time.time()) + 60,
        "jti": uuid.uuid4().hex,
    }
    payload.update(claims)
    assert refused(gateway, jwt.encode(payload, SIGNING_KEY, algorithm="HS256"))
