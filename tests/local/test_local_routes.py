"""Route selection, requestContext as AWS sends it, route responses, mock routes, errors."""

from __future__ import annotations

import asyncio
import json
from types import ModuleType

from emu_fixture.testkit import connect, wait_record

from emulator.testing import RunningGateway


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
