"""Bad input through the real handlers: refused at $connect, or a precise error code."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.handlers.authorizer import REFUSED_PRINCIPAL
from functions.logic.auth import AUDIENCE
from functions.logic.gateway import ONE_WAY_ROUTES
from simulation.events import LambdaContext, message_event
from simulation.harness import Connection, Harness
from tests.integration.test_routing import command, snapshot


def refused(gateway: Harness, token: str | None) -> bool:
    """Whether the authorizer answered an explicit Deny (HTTP 403), naming no identity."""
    policy = gateway.authorize(token)
    statement = policy["policyDocument"]["Statement"]
    return (
        statement
        == [
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": statement[0]["Resource"]}
        ]
        and statement[0]["Resource"].endswith("/$connect")
        and policy["principalId"] == REFUSED_PRINCIPAL
        and not policy["context"]
    )


def test_valid_token_is_allowed_with_identity_context(gateway: Harness) -> None:
    policy = gateway.authorize(gateway.token("browser", "acme", "b1"))
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert policy["policyDocument"]["Statement"][0]["Resource"].endswith("/dev/$connect")
    assert policy["context"] == {"tenant": "acme", "role": "browser", "client_id": "b1"}


def test_expired_token_is_refused(gateway: Harness) -> None:
    token = gateway.token("browser", "acme", "b1", ttl_seconds=-50)
    assert refused(gateway, token)


def test_forged_token_is_refused(gateway: Harness) -> None:
    forged = jwt.encode(
        {
            "tenant": "acme",
            "role": "consumer",
            "client_id": "c",
            "aud": AUDIENCE,
            "exp": int(time.time()) + 60,
        },
        "not-the-signing-key-but-long-enough-0123456789",
        algorithm="HS256",
    )
    assert refused(gateway, forged)


def test_token_with_unknown_role_is_refused(gateway: Harness) -> None:
    assert refused(gateway, gateway.token("admin", "acme", "x"))


@pytest.mark.parametrize("token", [None, "", "not-a-jwt"])
def test_missing_or_malformed_token_is_refused(gateway: Harness, token: str | None) -> None:
    assert refused(gateway, token)


def test_unsigned_token_is_refused(gateway: Harness) -> None:
    unsigned = jwt.encode(
        {
            "tenant": "acme",
            "role": "consumer",
            "client_id": "c",
            "aud": AUDIENCE,
            "exp": int(time.time()) + 60,
        },
        None,
        algorithm="none",
    )
    assert refused(gateway, unsigned)


def test_browser_sending_a_command_is_forbidden(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    reply = gateway.send(
        browser,
        json.dumps({"action": "command", "id": "k", "target": "b2", "name": "click"}),
    )
    assert reply == {
        "action": "error",
        "code": "forbidden",
        "message": "a browser may not send 'command'",
        "id": "k",
    }


def test_consumer_sending_a_snapshot_is_forbidden(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    reply = gateway.send(consumer, snapshot(1))
    assert reply is not None and reply["code"] == "forbidden"


@pytest.mark.parametrize(
    ("frame", "code", "fragment"),
    [
        ('{"action": "command", "id": ', "bad_request", "malformed JSON"),
        ('{"id": "x"}', "bad_request", "'action' is required"),
        ('{"action": "teleport", "id": "x"}', "unknown_action", "unknown inbound action"),
        (
            '{"action": "command", "id": "k", "target": 5, "name": "click"}',
            "bad_request",
            "command.target must be string",
        ),
        (
            '{"action": "command", "id": "k", "name": "click"}',
            "bad_request",
            "missing field 'target'",
        ),
        (
            '{"action": "command", "id": "k", "target": "b", "name": "x", "args": []}',
            "bad_request",
            "command.args must be object",
        ),
        (
            '{"action": "command", "id": "k", "target": "b", "name": "x", "timeout": 5000}',
            "bad_request",
            "command.timeout must be <= 900",
        ),
        ('{"action": "subscribe", "browsers": "b1"}', "bad_request", "must be list of string"),
        ('{"action": "ack", "seq": -1}', "bad_request", "ack.seq must be >= 0"),
        ('{"action": "list", "extra": 1}', "bad_request", "unknown field(s) 'extra'"),
    ],
)
def test_malformed_frames_get_precise_errors(
    gateway: Harness, frame: str, code: str, fragment: str
) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    reply = gateway.send(consumer, frame)
    assert reply is not None and reply["action"] == "error"
    assert reply["code"] == code
    assert fragment in reply["message"]


# -- one-way routes: no route response, errors posted ------------------------------


def _handler_reply(gateway: Harness, conn: Connection, frame: str, route: str) -> Any:
    """The message handler's own response to ``frame`` on ``route`` (what API Gateway
    would send back if the route had a route response)."""
    context = gateway._context(conn.connection_id, route, "MESSAGE")
    context["authorizer"] = gateway._authorizers[conn.connection_id]
    return gateway.handlers["message"].handler(message_event(context, frame), LambdaContext())


@pytest.mark.parametrize(
    ("role", "frame", "code"),
    [
        ("browser", '{"action": "snapshot", "sid": "s", "seq": -1, "data": ""}', "bad_request"),
        ("consumer", '{"action": "snapshot", "sid": "s", "seq": 1, "data": ""}', "forbidden"),
        ("consumer", '{"action": "command", "id": "k", "target": 5, "name": "x"}', "bad_request"),
        ("browser", '{"action": "result", "id": "k", "ok": "yes"}', "bad_request"),
        ("consumer", '{"action": "ack", "seq": 99}', "bad_request"),
    ],
    ids=["snapshot", "snapshot-forbidden", "command", "result", "ack"],
)
def test_errors_on_one_way_routes_are_posted_not_returned(
    gateway: Harness, role: str, frame: str, code: str
) -> None:
    # Given a route deployed without a route response (API Gateway drops any body)
    route = json.loads(frame)["action"]
    assert route in ONE_WAY_ROUTES
    conn = gateway.connect(role, "acme", "x1", acks=True)
    gateway.drain()
    gateway.take(conn)
    # When a bad frame arrives on it
    response = _handler_reply(gateway, conn, frame, route)
    # Then the handler returns no body, and the error reaches the sender by @connections
    assert "body" not in response
    (error,) = gateway.take(conn)
    assert error["action"] == "error" and error["code"] == code


def test_a_valid_snapshot_gets_no_reply_frame(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(browser)
    gateway.take(consumer)
    assert gateway.send(browser, snapshot(1)) is None
    gateway.drain()
    assert gateway.take(browser) == []
    assert [m["action"] for m in gateway.take(consumer)] == ["snapshot"]


def test_errors_on_routes_with_a_route_response_are_returned(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    response = _handler_reply(
        gateway, consumer, '{"action": "subscribe", "browsers": 1}', "subscribe"
    )
    assert json.loads(response["body"])["code"] == "bad_request"
    assert gateway.take(consumer) == []  # nothing posted: the route response carries it


def test_keepalive_changes_nothing_and_gets_no_reply(gateway: Harness) -> None:
    # Deployed, keepalive never reaches a Lambda; should it reach $default, it is a no-op
    consumer = gateway.connect("consumer", "acme", "c1", acks=True)
    browser = gateway.connect("browser", "acme", "b1")
    gateway.drain()
    gateway.take(consumer)
    for conn in (consumer, browser):
        assert gateway.send(conn, '{"action": "keepalive"}') is None
    gateway.drain()
    assert gateway.take(consumer) == [] and gateway.take(browser) == []


def test_error_names_the_id_it_refers_to(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    reply = gateway.send(consumer, '{"action": "command", "id": "k9", "target": 1, "name": "x"}')
    assert reply is not None and reply["id"] == "k9"


def test_oversized_message_is_too_large_and_changes_nothing(gateway: Harness) -> None:
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)
    reply = gateway.send(browser, snapshot(1, data="x" * (128 * 1024)))
    assert reply is not None and reply["code"] == "too_large"
    gateway.drain()
    assert gateway.take(consumer) == []


def test_raw_consumer_frame_too_long_for_a_command_name(gateway: Harness) -> None:
    consumer = gateway.connect("consumer", "acme", "c1")
    reply = gateway.send(consumer, "x" * 65)
    assert reply is not None and reply["code"] == "bad_request"


class Interrupted(BaseException):
    """What pytest-timeout's SIGALRM handler raises wherever the test is (``pytest.fail``):
    not an ``Exception``, so Powertools leaves the idempotency record INPROGRESS."""


def test_given_an_interrupted_router_when_its_batch_comes_back_then_the_command_is_answered_once(
    gateway: Harness,
) -> None:
    # Given a command whose router invocation is interrupted just after posting it
    # to the browser, inside the command's idempotent step
    browser = gateway.connect("browser", "acme", "b1")
    consumer = gateway.connect("consumer", "acme", "c1")
    gateway.drain()
    gateway.take(consumer)
    record = gateway.api.delivered

    def interrupt_once(connection_id: str, data: bytes) -> None:
        record(connection_id, data)
        if connection_id == browser.connection_id:
            gateway.api.delivered = record  # type: ignore[method-assign]
            raise Interrupted

    gateway.api.delivered = interrupt_once  # type: ignore[method-assign]
    gateway.send(consumer, command("k1", "b1"))
    with pytest.raises(Interrupted):
        gateway.drain()

    # When the batch comes back (as SQS redelivers it) and the browser answers
    gateway.drain()
    (delivered,) = gateway.take(browser)
    gateway.send(browser, json.dumps({"action": "result", "id": "k1", "ok": True, "value": 7}))
    gateway.drain()

    # Then the command reached the browser once and its result the consumer once
    assert delivered["action"] == "command" and delivered["id"] == "k1"
    assert gateway.take(browser) == []
    (answer,) = [m for m in gateway.take(consumer) if m.get("id") == "k1"]
    assert answer["action"] == "result" and answer["value"] == 7


_frames = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.dictionaries(
        st.sampled_from(
            [
                "action",
                "id",
                "target",
                "name",
                "args",
                "seq",
                "sid",
                "data",
                "browsers",
                "ok",
                "value",
                "part",
                "parts",
                "enc",
                "timeout",
                "url",
                "title",
                "error",
                "code",
            ]
        ),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(2**70), max_value=2**70),
            st.floats(allow_nan=True),
            st.text(max_size=20),
            st.sampled_from(
                [
                    "snapshot",
                    "command",
                    "result",
                    "subscribe",
                    "unsubscribe",
                    "ack",
                    "list",
                    "ping",
                    "gzip",
                    "none",
                    "*",
                    "b1",
                ]
            ),
            st.lists(st.text(max_size=5), max_size=3),
            st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        ),
        max_size=8,
    ).map(json.dumps),
)


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=_frames, as_browser=st.booleans())
def test_random_frames_never_make_a_handler_raise(
    gateway: Harness, frame: str, as_browser: bool
) -> None:
    if not hasattr(gateway, "fuzz_pair"):
        gateway.fuzz_pair = (  # type: ignore[attr-defined]
            gateway.connect("browser", "fuzz", "b1"),
            gateway.connect("consumer", "fuzz", "c1"),
        )
    browser, consumer = gateway.fuzz_pair  # type: ignore[attr-defined]
    reply = gateway.send(browser if as_browser else consumer, frame)
    if reply is not None:
        assert reply["action"] in {"error", "pong", "subscribed", "browsers"}
        if reply["action"] == "error":
            assert reply["code"] != "internal", reply
    if reply is None:
        gateway.drain()  # the workers must not fail on what the handler accepted either
