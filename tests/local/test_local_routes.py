"""Route selection, requestContext as AWS sends it, route responses, mock routes, errors."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

from emu_fixture.testkit import FIXTURES, TEMPLATE, connect, wait_record

from emulator.testing import RunningGateway, running_gateway


async def test_message_request_context_is_shaped_as_aws_sends_it(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        connect_ctx = (await wait_record(recorder, "connect"))["event"]["requestContext"]
        await ws.send('{"action":"echo"}')
        await asyncio.wait_for(ws.recv(), 10)
    event = (await wait_record(recorder, "message"))["event"]
    ctx = event["requestContext"]
    assert ctx["routeKey"] == "echo"
    assert ctx["eventType"] == "MESSAGE"
    assert ctx["messageDirection"] == "IN"
    assert ctx["connectionId"] == connect_ctx["connectionId"]
    assert ctx["connectedAt"] == connect_ctx["connectedAt"]
    assert ctx["requestTimeEpoch"] >= ctx["connectedAt"]
    assert ctx["messageId"] and ctx["requestId"] and ctx["extendedRequestId"]
    assert ctx["domainName"] == f"127.0.0.1:{gw.port}"
    assert ctx["stage"] == "dev"
    assert ctx["apiId"] == connect_ctx["apiId"]
    assert ctx["identity"]["sourceIp"] == "127.0.0.1"
    assert ctx["authorizer"]["principalId"] == "b1"
    assert {k: ctx["authorizer"][k] for k in ("tenant", "role", "client_id")} == {
        "tenant": "acme",
        "role": "browser",
        "client_id": "b1",
    }
    assert event["body"] == '{"action":"echo"}'
    assert event["isBase64Encoded"] is False


async def test_connect_event_carries_headers_and_query(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw, "mode=plain", user_agent_header="ua-test"):
        event = (await wait_record(recorder, "connect"))["event"]
    assert event["requestContext"]["eventType"] == "CONNECT"
    assert event["requestContext"]["routeKey"] == "$connect"
    assert event["requestContext"]["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "ua-test"}
    assert event["queryStringParameters"]["mode"] == "plain"
    assert event["multiValueQueryStringParameters"]["mode"] == ["plain"]
    assert event["headers"]["Host"] == f"127.0.0.1:{gw.port}"
    assert event["multiValueHeaders"]["Host"] == [f"127.0.0.1:{gw.port}"]


async def test_disconnect_event_has_status_code_reason_and_authorizer(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        await ws.close(code=1000, reason="done")
    ctx = (await wait_record(recorder, "disconnect"))["event"]["requestContext"]
    assert ctx["eventType"] == "DISCONNECT"
    assert ctx["routeKey"] == "$disconnect"
    assert (ctx["disconnectStatusCode"], ctx["disconnectReason"]) == (1000, "done")
    assert ctx["authorizer"]["tenant"] == "acme"


async def test_unknown_action_and_raw_text_fall_back_to_default(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        await ws.send('{"action":"nope"}')
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await ws.send("<html>raw</html>")
        second = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert first["route"] == "$default"
    assert second == {"route": "$default", "length": len("<html>raw</html>")}


async def test_ping_answers_pong_without_a_lambda(gw: RunningGateway, recorder: ModuleType) -> None:
    async with connect(gw) as ws:
        await wait_record(recorder, "connect")
        before = {lid: f.invocations for lid, f in gw.system.functions.items()}
        await ws.send('{"action":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'
        after = {lid: f.invocations for lid, f in gw.system.functions.items()}
    assert after == before


async def test_route_without_route_response_sends_nothing_back(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        # When a route whose integration answers, but that has no route response, is used
        await ws.send('{"action":"silent"}')
        await wait_record(recorder, "message")
        await gw.system.gateway.settle()
        # Then nothing came back: the next reply the client sees is the pong
        await ws.send('{"action":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'


async def test_handler_error_sends_internal_server_error(gw: RunningGateway) -> None:
    async with connect(gw) as ws:
        await ws.send("crash")
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["message"] == "Internal server error"
    assert reply["connectionId"] and reply["requestId"]


async def test_binary_frame_goes_to_default_base64_encoded(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        await ws.send(b"\x00\x01binary")
        await asyncio.wait_for(ws.recv(), 10)
    event = (await wait_record(recorder, "message"))["event"]
    assert event["requestContext"]["routeKey"] == "$default"
    assert (event["body"], event["isBase64Encoded"]) == ("AAFiaW5hcnk=", True)


def _variant(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    template = copy.deepcopy(TEMPLATE)
    edit(template["Resources"])
    return template


async def test_no_matching_route_and_no_default_answers_forbidden(recorder: ModuleType) -> None:
    # Given a deployment without a $default route
    def drop_default(resources: dict[str, Any]) -> None:
        del resources["DefaultRouteF2"], resources["DefaultRouteF2Response"]

    variant = _variant(drop_default)
    async with running_gateway(template=variant, code_root=FIXTURES) as gw, connect(gw) as ws:
        await ws.send("no route for this")
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert reply["message"] == "Forbidden"
    assert recorder.records("message") == []


async def test_stage_throttling_answers_too_many_requests(recorder: ModuleType) -> None:
    # Given a stage allowing a burst of 2 and (practically) no refill
    def throttle(resources: dict[str, Any]) -> None:
        settings = resources["SocketStageDev9F8E7D6C"]["Properties"]["DefaultRouteSettings"]
        settings.update({"ThrottlingBurstLimit": 2, "ThrottlingRateLimit": 0.001})

    variant = _variant(throttle)
    # The connection takes one token, the first message the other.
    async with running_gateway(template=variant, code_root=FIXTURES) as gw, connect(gw) as ws:
        await ws.send('{"action":"echo"}')
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        await ws.send('{"action":"echo"}')
        second = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert "echo" in first
    assert second["message"] == "Too Many Requests"
