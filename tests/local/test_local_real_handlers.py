"""The real handlers and the real template, end to end through the emulator.

These show what works locally with the project's own Lambda code (the
handlers' logic has its own tests under tests/integration and tests/unit).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets

from emulator.testing import RunningGateway, running_gateway


@pytest.fixture
async def real() -> AsyncIterator[RunningGateway]:
    async with running_gateway() as gw:
        yield gw


def open_as(gw: RunningGateway, role: str, client_id: str, query: str = "") -> Any:
    token = gw.token(role, "acme", client_id)
    return websockets.connect(f"{gw.url}?token={token}{query}")


async def next_matching(ws: Any, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next JSON frame matching ``predicate`` (others, e.g. presence, are skipped)."""
    async with asyncio.timeout(20):
        while True:
            frame = json.loads(await ws.recv())
            if predicate(frame):
                return dict(frame)


async def test_command_and_result_round_trip(real: RunningGateway) -> None:
    async with (
        open_as(real, "browser", "b1") as browser,
        open_as(real, "consumer", "c1") as consumer,
    ):
        await consumer.send(
            json.dumps({"action": "command", "id": "k-1", "target": "b1", "name": "click"})
        )
        command = await next_matching(browser, lambda f: f.get("action") == "command")
        assert (command["id"], command["source"], command["name"]) == ("k-1", "c1", "click")
        await browser.send(
            json.dumps({"action": "result", "id": "k-1", "ok": True, "value": {"clicked": True}})
        )
        result = await next_matching(consumer, lambda f: f.get("action") == "result")
    assert (result["id"], result["source"], result["ok"], result["value"]) == (
        "k-1",
        "b1",
        True,
        {"clicked": True},
    )


async def test_snapshot_with_acks_carries_a_delivery_sequence(real: RunningGateway) -> None:
    async with (
        open_as(real, "consumer", "c1", "&acks=1") as consumer,
        open_as(real, "browser", "b1") as browser,
    ):
        await browser.send(
            json.dumps({"action": "snapshot", "sid": "s-1", "seq": 1, "data": "<p>hi</p>"})
        )
        snapshot = await next_matching(consumer, lambda f: f.get("action") == "snapshot")
    assert (snapshot["source"], snapshot["data"], snapshot["dseq"]) == ("b1", "<p>hi</p>", 1)


async def test_disconnect_runs_the_real_handler_presence_and_list_follow(
    real: RunningGateway,
) -> None:
    async with open_as(real, "consumer", "c1") as consumer:
        async with open_as(real, "browser", "b1"):
            await next_matching(consumer, lambda f: f.get("online") is True)
            await consumer.send(json.dumps({"action": "list", "id": "l-1"}))
            listed = await next_matching(consumer, lambda f: f.get("action") == "browsers")
            assert [b["client_id"] for b in listed["browsers"]] == ["b1"]
        # When the browser goes away, its $disconnect tells the consumer
        await next_matching(consumer, lambda f: f.get("online") is False)
        await consumer.send(json.dumps({"action": "list", "id": "l-2"}))
        listed = await next_matching(consumer, lambda f: f.get("action") == "browsers")
    assert listed["browsers"] == []


async def test_command_to_an_offline_browser_is_answered_target_offline(
    real: RunningGateway,
) -> None:
    async with open_as(real, "consumer", "c1") as consumer:
        await consumer.send(
            json.dumps({"action": "command", "id": "k-2", "target": "nobody", "name": "click"})
        )
        error = await next_matching(consumer, lambda f: f.get("action") == "error")
    assert (error["code"], error["id"]) == ("target_offline", "k-2")


async def test_handlers_get_their_own_credentials_whatever_session_the_process_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a default boto3 session this process built earlier with other credentials
    # (as a moto test in the same pytest run does); in Lambda each function is a
    # process of its own, so it never sees such a session
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.client("sts", region_name="us-east-1")  # resolves and keeps those credentials
    assert boto3.DEFAULT_SESSION is not None
    # When the gateway loads the real handlers (the authorizer reads the signing key)
    async with running_gateway() as gw, open_as(gw, "consumer", "c1") as consumer:
        # Then the handshake succeeds: the handlers signed with the local credentials
        await consumer.send(json.dumps({"action": "ping", "id": "p"}))
        assert json.loads(await asyncio.wait_for(consumer.recv(), 20))["action"] == "pong"


async def test_given_an_invalid_token_when_connecting_then_403_from_the_real_authorizer(
    real: RunningGateway,
) -> None:
    # Given a token signed with a key nobody holds (the real authorizer reads the secret)
    forged = real.token("browser", "acme", "b1")[:-4] + "AAAA"
    # When it connects, Then the handshake is refused with the authorizer's Deny (403),
    # and a missing token with 401 (API Gateway's identity-source check)
    for query, status in ((f"?token={forged}", 403), ("", 401)):
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(f"{real.url}{query}"):
                pass
        assert refused.value.response.status_code == status


def _message_function_invocations(gw: RunningGateway) -> int:
    (function,) = [
        f
        for f in gw.system.functions.values()
        if f.handler_path == "functions.handlers.message.handler"
    ]
    return function.invocations


async def test_keepalive_gets_no_reply_and_calls_no_lambda(real: RunningGateway) -> None:
    async with open_as(real, "consumer", "c1", "&acks=1") as consumer:
        before = _message_function_invocations(real)
        await consumer.send('{"action":"keepalive"}')
        await consumer.send('{"action":"ping","id":"p-1"}')
        # The first frame back answers the ping: nothing answered the keepalive
        first = json.loads(await asyncio.wait_for(consumer.recv(), 20))
        assert first == {"action": "pong"}
        # And neither frame invoked the message function (both are mock integrations)
        assert _message_function_invocations(real) == before


async def test_one_way_routes_post_their_errors_and_reply_nothing_when_valid(
    real: RunningGateway,
) -> None:
    async with open_as(real, "browser", "b1") as browser:
        # A valid snapshot (no route response) gets no reply frame...
        await browser.send(json.dumps({"action": "snapshot", "sid": "s", "seq": 1, "data": "x"}))
        # ...and an invalid one gets its error, posted by the handler
        await browser.send(json.dumps({"action": "snapshot", "sid": "s", "seq": -1, "data": ""}))
        first = json.loads(await asyncio.wait_for(browser.recv(), 20))
    assert first["action"] == "error" and first["code"] == "bad_request"
    assert "snapshot.seq" in first["message"]
