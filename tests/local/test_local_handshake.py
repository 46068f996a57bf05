"""The $connect handshake: authorizer outcomes, $connect status, subprotocols."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest
import websockets
from emu_fixture.testkit import connect, wait_record
from websockets.exceptions import InvalidStatus

from emulator.testing import RunningGateway


async def refused_status(url: str, **kwargs: object) -> int:
    """The HTTP status that refused the handshake to ``url``."""
    with pytest.raises(InvalidStatus) as caught:
        async with websockets.connect(url, compression=None, **kwargs):  # type: ignore[arg-type]
            pass
    return int(caught.value.response.status_code)


async def test_valid_token_opens_the_connection(gw: RunningGateway, recorder: ModuleType) -> None:
    # Given a token signed with the key the gateway put into the template's secret
    async with connect(gw) as ws:
        # Then the handshake succeeds and the authorizer's context reaches $connect
        event = (await wait_record(recorder, "connect"))["event"]
        assert event["requestContext"]["authorizer"]["tenant"] == "acme"
        await ws.send('{"action":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'


async def test_missing_identity_source_is_401_without_calling_the_authorizer(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    # When a client connects without the token query parameter
    status = await refused_status(gw.url)
    # Then API Gateway answers 401 and never invokes the authorizer
    assert status == 401
    assert recorder.records("authorizer") == []


async def test_authorizer_deny_is_403(gw: RunningGateway, recorder: ModuleType) -> None:
    assert await refused_status(f"{gw.url}?token=deny") == 403
    assert recorder.records("connect") == []


async def test_authorizer_unauthorized_error_is_401(gw: RunningGateway) -> None:
    assert await refused_status(f"{gw.url}?token=unauthorized") == 401


async def test_authorizer_crash_is_500(gw: RunningGateway) -> None:
    assert await refused_status(f"{gw.url}?token=crash") == 500


async def test_bad_signature_is_401(gw: RunningGateway) -> None:
    forged = gw.token("browser", "acme", "b1")[:-4] + "AAAA"
    assert await refused_status(f"{gw.url}?token={forged}") == 401


@pytest.mark.parametrize(("mode", "status"), [("refuse", 500), ("forbid", 403), ("crash", 502)])
async def test_non_2xx_connect_refuses_the_handshake(
    gw: RunningGateway, recorder: ModuleType, mode: str, status: int
) -> None:
    # Given a $connect handler that answers non-2xx (or raises)
    token = gw.token("browser", "acme", "b1")
    # Then the handshake is refused with that status, and $disconnect never runs
    assert await refused_status(f"{gw.url}?token={token}&mode={mode}") == status
    assert recorder.records("disconnect") == []


async def test_subprotocol_echoed_when_connect_returns_it(gw: RunningGateway) -> None:
    async with connect(gw, "mode=subprotocol", subprotocols=["tabrelay.v1"]) as ws:
        assert ws.subprotocol == "tabrelay.v1"


async def test_subprotocol_not_echoed_when_connect_does_not_return_it(gw: RunningGateway) -> None:
    # Given a client offering a subprotocol and a $connect that returns no header
    async with connect(gw, subprotocols=["tabrelay.v1"]) as ws:
        # Then the handshake response names no subprotocol (Chrome would abort here)
        assert ws.response.headers.get("Sec-WebSocket-Protocol") is None
        assert ws.subprotocol is None


async def test_connect_without_stage_and_with_wrong_stage(gw: RunningGateway) -> None:
    # The seed's clients connect to the bare host; any other stage does not exist
    token = gw.token("browser", "acme", "b1")
    async with websockets.connect(f"ws://127.0.0.1:{gw.port}?token={token}") as ws:
        await ws.send('{"action":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'
    assert await refused_status(f"ws://127.0.0.1:{gw.port}/other?token={token}") == 403
