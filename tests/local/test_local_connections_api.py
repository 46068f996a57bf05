"""@connections on the emulator's own host and port, as boto3's client calls it."""

from __future__ import annotations

import asyncio
from datetime import datetime
from types import ModuleType

import pytest
from botocore.exceptions import ClientError
from emu_fixture.testkit import connect, connection_id, management, wait_record

from emulator.testing import RunningGateway


async def test_post_to_an_open_connection_reaches_the_socket(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    # Given an open connection
    async with connect(gw) as ws:
        cid = await connection_id(recorder)
        # When a worker posts to it through the Management API
        await asyncio.to_thread(management(gw).post_to_connection, ConnectionId=cid, Data=b"hi")
        # Then the client receives exactly that text
        assert await asyncio.wait_for(ws.recv(), 10) == "hi"


async def test_get_connection_reports_times_and_identity(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    # Given an open connection with a known user agent
    async with connect(gw, user_agent_header="fidelity-test/1.0"):
        cid = await connection_id(recorder)
        # When GetConnection is called
        info = await asyncio.to_thread(management(gw).get_connection, ConnectionId=cid)
    # Then it reports ConnectedAt, LastActiveAt and the Identity
    assert isinstance(info["ConnectedAt"], datetime)
    assert isinstance(info["LastActiveAt"], datetime)
    assert info["LastActiveAt"] >= info["ConnectedAt"]
    assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "fidelity-test/1.0"}


async def test_delete_connection_closes_the_socket_and_runs_disconnect(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        cid = await connection_id(recorder)
        # When the connection is deleted
        await asyncio.to_thread(management(gw).delete_connection, ConnectionId=cid)
        # Then the socket closes and $disconnect runs for it
        await asyncio.wait_for(ws.wait_closed(), 10)
    event = (await wait_record(recorder, "disconnect"))["event"]
    assert event["requestContext"]["connectionId"] == cid


@pytest.mark.parametrize("operation", ["post_to_connection", "get_connection", "delete_connection"])
async def test_unknown_connection_is_gone(gw: RunningGateway, operation: str) -> None:
    # Given an id that never existed
    kwargs: dict[str, object] = {"ConnectionId": "NeverExisted00A="}
    if operation == "post_to_connection":
        kwargs["Data"] = b"x"
    # When any Management API call names it
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(getattr(management(gw), operation), **kwargs)
    # Then it fails with 410 GoneException
    assert caught.value.response["Error"]["Code"] == "GoneException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


async def test_closed_connection_is_gone(gw: RunningGateway, recorder: ModuleType) -> None:
    # Given a connection that has closed and run $disconnect
    async with connect(gw):
        cid = await connection_id(recorder)
    await wait_record(recorder, "disconnect")
    # When a worker posts to it
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(management(gw).post_to_connection, ConnectionId=cid, Data=b"x")
    # Then the post is refused with 410
    assert caught.value.response["Error"]["Code"] == "GoneException"


async def test_post_during_connect_is_gone(gw: RunningGateway, recorder: ModuleType) -> None:
    # Given a $connect handler that posts to its own connection before returning 200
    async with connect(gw, "mode=post_self") as ws:
        # Then the handshake still succeeds, but the post got 410 and nothing arrived
        outcome = await wait_record(recorder, "post_self")
        assert outcome["outcome"] == "GoneException"
        await ws.send('{"action":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'


async def test_post_over_128_kb_is_refused(gw: RunningGateway, recorder: ModuleType) -> None:
    async with connect(gw):
        cid = await connection_id(recorder)
        with pytest.raises(ClientError) as caught:
            await asyncio.to_thread(
                management(gw).post_to_connection, ConnectionId=cid, Data=b"x" * (128 * 1024 + 1)
            )
    assert caught.value.response["Error"]["Code"] == "PayloadTooLargeException"


async def test_last_active_at_follows_client_messages(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        cid = await connection_id(recorder)
        api = management(gw)
        before = await asyncio.to_thread(api.get_connection, ConnectionId=cid)
        # When the client sends a message (its round trip takes at least a millisecond)
        await ws.send('{"action":"echo"}')
        await asyncio.wait_for(ws.recv(), 10)
        after = await asyncio.to_thread(api.get_connection, ConnectionId=cid)
    # Then LastActiveAt moved to the message's time, ConnectedAt did not
    assert after["ConnectedAt"] == before["ConnectedAt"]
    assert after["LastActiveAt"] >= before["LastActiveAt"]
    assert after["LastActiveAt"] > after["ConnectedAt"]
