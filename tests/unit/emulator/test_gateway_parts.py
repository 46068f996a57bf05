"""The gateway's parts without a server: limits, authorizer rules, integrations, registry.

The integrations run against fake functions (anything with ``name`` and
``invoke``), as handlers in another process would plug in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from emulator.events import ConnectionInfo
from emulator.gateway.authorizer import authorizer_context, identity_missing, policy_allows
from emulator.gateway.integrations import (
    Admission,
    Deployment,
    Integrations,
    Refusal,
    proxy_reply,
    select_route_key,
)
from emulator.gateway.limits import FrameGuard, Throttle, TokenBucket
from emulator.gateway.registry import Connection, ConnectionRegistry
from emulator.lambdas import FunctionError
from emulator.template import Authorizer, Stage, parse_template

FIXTURE = Path(__file__).resolve().parents[2] / "local" / "fixtures" / "template.json"
MODEL = parse_template(json.loads(FIXTURE.read_text()))
AUTHORIZER, CONNECT, DISCONNECT, ECHO = (
    "AuthorizerFnE1E2E3E4",
    "ConnectFn5A5B5C5D",
    "DisconnectFn6A6B6C6D",
    "EchoFn7A7B7C7D",
)
ALLOW = {
    "principalId": "acme/b1",
    "policyDocument": {
        "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "*"}]
    },
    "context": {"role": "browser"},
}
INFO = ConnectionInfo(
    connection_id="c1",
    connected_at=1,
    source_ip="192.0.2.1",
    user_agent="ua",
    domain_name="h",
    stage="dev",
    api_id="a1",
    query={"token": ["t"]},
)


class FakeFunction:
    """Answers every event with ``answer`` (raised if it is an exception); keeps the events."""

    def __init__(self, name: str, answer: Any = None) -> None:
        self.name = name
        self.answer = answer
        self.events: list[Mapping[str, Any]] = []

    async def invoke(self, event: Mapping[str, Any]) -> Any:
        self.events.append(event)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def integrations(**answers: Any) -> tuple[Integrations, dict[str, FakeFunction]]:
    functions = {
        lid: FakeFunction(lid, answers.get(lid, ALLOW if lid == AUTHORIZER else None))
        for lid in MODEL.functions
    }
    return Integrations(MODEL.api, functions, Deployment("a1", "us-east-1", "123")), functions


def failed(message: str) -> FunctionError:
    return FunctionError("fn", "Exception", message)


# ---------------------------------------------------------------- $connect


async def test_given_an_allowing_authorizer_when_connecting_then_its_context_reaches_connect() -> (
    None
):
    gateway, functions = integrations()
    outcome = await gateway.handshake(INFO)
    assert isinstance(outcome, Admission) and outcome.subprotocol is None
    assert outcome.info.authorizer is not None
    assert outcome.info.authorizer["role"] == "browser"
    assert functions[CONNECT].events[0]["requestContext"]["authorizer"]["principalId"] == "acme/b1"
    arn = functions[AUTHORIZER].events[0]["methodArn"]
    assert arn == "arn:aws:execute-api:us-east-1:123:a1/dev/$connect"


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        (failed("Unauthorized"), Refusal(401, "Unauthorized")),
        (failed("boom"), Refusal(500, "Internal server error")),
        ({**ALLOW, "policyDocument": {"Statement": []}}, Refusal(403, "Forbidden")),
        ({**ALLOW, "context": {"nested": {"x": 1}}}, Refusal(500, "Internal server error")),
        ("not an object", Refusal(500, "Internal server error")),
    ],
)
async def test_given_an_authorizer_outcome_when_connecting_then_the_handshake_is_refused(
    answer: Any, refusal: Refusal
) -> None:
    gateway, functions = integrations(**{AUTHORIZER: answer})
    assert await gateway.handshake(INFO) == refusal
    assert functions[CONNECT].events == []


async def test_given_no_token_when_connecting_then_401_without_calling_the_authorizer() -> None:
    gateway, functions = integrations()
    info = ConnectionInfo(**{**{f: getattr(INFO, f) for f in INFO.__slots__}, "query": {}})
    assert await gateway.handshake(info) == Refusal(401, "Unauthorized")
    assert functions[AUTHORIZER].events == []


@pytest.mark.parametrize(
    ("answer", "refusal"),
    [
        ({"statusCode": 403}, Refusal(403, "Forbidden")),
        ({"statusCode": 429}, Refusal(429, "Connection refused")),
        ({"statusCode": 503}, Refusal(503, "Internal server error")),
        ({"statusCode": "x"}, Refusal(502, "Internal server error")),
        (failed("boom"), Refusal(502, "Internal server error")),
    ],
)
async def test_given_connect_answers_non_2xx_then_the_handshake_gets_that_status(
    answer: Any, refusal: Refusal
) -> None:
    gateway, _ = integrations(**{CONNECT: answer})
    assert await gateway.handshake(INFO) == refusal


async def test_given_connect_returns_a_subprotocol_then_only_that_one_is_chosen() -> None:
    answer = {"statusCode": 200, "multiValueHeaders": {"sec-websocket-protocol": ["tabrelay.v1"]}}
    gateway, _ = integrations(**{CONNECT: answer})
    outcome = await gateway.handshake(INFO)
    assert isinstance(outcome, Admission) and outcome.subprotocol == "tabrelay.v1"


# ---------------------------------------------------------------- messages


async def route_and_answer(gateway: Integrations, body: str | bytes) -> str | bytes | None:
    route = gateway.route_for(body)
    assert route is not None
    return await gateway.message(INFO, route, body, "r1")


async def test_given_a_route_with_a_route_response_then_the_body_goes_back() -> None:
    gateway, _ = integrations(**{ECHO: {"statusCode": 200, "body": {"n": 1}}})
    assert await route_and_answer(gateway, '{"action":"echo"}') == '{"n": 1}'


async def test_given_a_route_without_route_response_then_nothing_goes_back() -> None:
    gateway, functions = integrations(**{ECHO: {"statusCode": 200, "body": "x"}})
    assert await route_and_answer(gateway, '{"action":"silent"}') is None
    assert functions[ECHO].events[0]["requestContext"]["routeKey"] == "silent"


async def test_given_a_failing_integration_then_the_client_gets_internal_server_error() -> None:
    gateway, _ = integrations(**{ECHO: failed("boom")})
    reply = await route_and_answer(gateway, '{"action":"echo"}')
    assert json.loads(reply or "") == {
        "message": "Internal server error",
        "connectionId": "c1",
        "requestId": "r1",
    }


async def test_given_the_mock_route_then_it_answers_without_a_function() -> None:
    gateway, functions = integrations()
    assert await route_and_answer(gateway, '{"action":"ping"}') == '{"action":"pong"}'
    assert all(not f.events for f in functions.values())


def test_route_selection_falls_back_to_default_and_reads_nested_values() -> None:
    gateway, _ = integrations()
    for body in ('{"action":"$connect"}', "not json", b"\x00", '{"action":"nope"}'):
        route = gateway.route_for(body)
        assert route is not None and route.key == "$default"
    assert select_route_key("$request.body.a.b", '{"a":{"b":true}}') == "true"
    assert select_route_key("$request.body.a", '{"a":[1]}') is None
    assert select_route_key("\\$default", "x") == "$default"


def test_proxy_results_become_text_or_bytes() -> None:
    assert proxy_reply({"statusCode": 200, "body": "aGk=", "isBase64Encoded": True}) == b"hi"
    assert proxy_reply({"statusCode": 200}) is None
    assert proxy_reply({"x": 1}) == '{"x": 1}'
    assert proxy_reply("plain") == "plain"
    assert proxy_reply(None) is None


async def test_given_disconnect_fails_then_it_is_reported() -> None:
    gateway, functions = integrations(**{DISCONNECT: failed("boom")})
    assert await gateway.disconnect(INFO, 1001, "Going away") is False
    ctx = functions[DISCONNECT].events[0]["requestContext"]
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1001, "Going away")


# ---------------------------------------------------------------- authorizer rules


def test_policy_deny_wins_and_wildcards_match_whole_values() -> None:
    arn = "arn:aws:execute-api:r:1:a/dev/$connect"

    def statement(effect: str, resource: str) -> dict[str, str]:
        return {"Action": "execute-api:*", "Effect": effect, "Resource": resource}

    assert policy_allows({"Statement": statement("Allow", "arn:aws:execute-api:*")}, arn)
    assert not policy_allows(
        {"Statement": [statement("Allow", "*"), statement("Deny", "*/dev/*")]}, arn
    )
    assert not policy_allows({"Statement": [statement("Allow", "*/prod/*")]}, arn)
    assert not policy_allows({"Statement": [statement("Allow", arn)]}, arn + "\n")
    with pytest.raises(ValueError):
        policy_allows("no", arn)


def test_authorizer_context_is_flattened_with_principal_and_latency() -> None:
    context = authorizer_context(ALLOW, "arn", 7)
    assert context == {"role": "browser", "principalId": "acme/b1", "integrationLatency": 7}


def test_identity_sources_are_read_from_query_and_headers() -> None:
    authorizer = Authorizer(
        logical_id="A",
        type="REQUEST",
        function_id="F",
        identity_sources=("route.request.querystring.token", "route.request.header.X-Key"),
        name="a",
    )
    with_key = ConnectionInfo(
        **{**{f: getattr(INFO, f) for f in INFO.__slots__}, "headers": {"x-key": ["k"]}}
    )
    assert identity_missing(authorizer, INFO)
    assert not identity_missing(authorizer, with_key)


# ---------------------------------------------------------------- limits


def frame(length: int, *, opcode: int = 0x1, masked: bool = True) -> bytes:
    """A WebSocket frame header (and mask) for a payload of ``length`` bytes."""
    first = bytes([0x80 | opcode])
    mask = 0x80 if masked else 0
    if length < 126:
        size = bytes([mask | length])
    elif length < 1 << 16:
        size = bytes([mask | 126]) + length.to_bytes(2, "big")
    else:
        size = bytes([mask | 127]) + length.to_bytes(8, "big")
    return first + size + (b"\x00" * 4 if masked else b"")


class Sink:
    def __init__(self) -> None:
        self.fed = b""

    def feed_data(self, data: bytes) -> None:
        self.fed += data

    def feed_eof(self) -> None:
        pass


def guard(violations: list[str]) -> tuple[FrameGuard, Sink]:
    sink = Sink()
    return FrameGuard(sink, violations.append, frame_limit=32, message_limit=64), sink


def test_frame_guard_reports_a_frame_over_the_limit_once_and_passes_bytes_on() -> None:
    violations: list[str] = []
    checker, sink = guard(violations)
    data = frame(40) + b"x" * 40
    # Fed one byte at a time: headers split across reads are still read
    for i in range(len(data)):
        checker.feed_data(data[i : i + 1])
    checker.feed_data(frame(50) + b"y" * 50)
    assert violations == ["frame too large"]
    assert sink.fed == data + frame(50) + b"y" * 50


def test_frame_guard_counts_a_fragmented_message_and_resets_on_a_new_one() -> None:
    violations: list[str] = []
    checker, _ = guard(violations)
    # Two whole messages of 60 bytes (30 + continuation 30): within 64 each
    for _ in range(2):
        checker.feed_data(frame(30) + b"a" * 30 + frame(30, opcode=0x0) + b"b" * 30)
    assert violations == []
    # A ping between fragments does not count; a third fragment does
    checker.feed_data(frame(30) + b"a" * 30 + frame(4, opcode=0x9) + b"ping")
    checker.feed_data(frame(30, opcode=0x0) + b"b" * 30 + frame(30, opcode=0x0) + b"c" * 30)
    assert violations == ["message too large"]


def test_frame_guard_reads_64_bit_lengths() -> None:
    violations: list[str] = []
    checker, _ = guard(violations)
    checker.feed_data(frame(70_000, masked=False))
    assert violations == ["frame too large"]


def test_token_bucket_admits_its_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=0.001, burst=2)
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    assert all(TokenBucket(None, None).take() for _ in range(100))


def test_throttle_takes_the_stage_then_the_route_bucket() -> None:
    throttle = Throttle(
        Stage(name="dev", burst_limit=3, rate_limit=0.001, route_limits={"echo": (1, 0.001)})
    )
    assert throttle.admit("echo")
    assert not throttle.admit("echo")  # the route's bucket is empty
    assert throttle.admit("other")
    assert not throttle.admit_connect()  # three taken from the stage's bucket


# ---------------------------------------------------------------- registry


def test_registry_reaches_only_open_connections_and_forgets_removed_ones() -> None:
    registry = ConnectionRegistry()
    conn = Connection(info=INFO)
    registry.add(conn)
    assert registry.live("c1") is None  # still connecting
    conn.state = "open"
    assert registry.live("c1") is conn
    conn.closing = True
    assert registry.live("c1") is None
    registry.remove(conn)
    assert (registry.connections, conn.state, conn.done.is_set()) == ({}, "closed", True)
