"""Frame and message limits, idle and maximum-duration closes, and every $disconnect path."""

from __future__ import annotations

import asyncio
import json
from types import ModuleType
from typing import Any

from emu_fixture.testkit import connect, fixture_gateway, wait_record
from websockets.exceptions import ConnectionClosed

from emulator.testing import RunningGateway

KB = 1024


async def closed_code(ws: object) -> int | None:
    """Wait (bounded) until the server closes ``ws``; the close code it sent."""
    try:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
    return None


async def disconnect_of(recorder: ModuleType, code: int) -> dict[str, Any]:
    """The $disconnect record with status ``code`` (waits, bounded)."""
    return await wait_record(
        recorder,
        "disconnect",
        lambda d: d["event"]["requestContext"]["disconnectStatusCode"] == code,
    )


async def test_frame_over_32_kb_closes_with_1009(gw: RunningGateway, recorder: ModuleType) -> None:
    async with connect(gw) as ws:
        # When one frame carries more than 32 KB
        await ws.send("x" * (32 * KB + 1))
        # Then the gateway closes with 1009 and $disconnect runs
        assert await closed_code(ws) == 1009
    await disconnect_of(recorder, 1009)


async def test_message_over_128_kb_in_small_frames_closes_with_1009(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        # When a fragmented message of 5 x 30 KB frames exceeds 128 KB
        await ws.send(["y" * (30 * KB) for _ in range(5)])
        assert await closed_code(ws) == 1009
    await disconnect_of(recorder, 1009)


async def test_100_kb_message_in_frames_of_32_kb_is_accepted(gw: RunningGateway) -> None:
    # Given a 100 KB JSON message sent in frames of at most 32 KB
    text = json.dumps({"action": "echo", "pad": "z" * (100 * KB - 40)})
    chunks = [text[i : i + 32 * KB] for i in range(0, len(text), 32 * KB)]
    assert max(len(c) for c in chunks) <= 32 * KB
    async with connect(gw) as ws:
        await ws.send(chunks)
        # Then the echo route gets all of it
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["length"] == len(text)


async def test_idle_timeout_closes_with_1001_and_runs_disconnect(recorder: ModuleType) -> None:
    async with fixture_gateway(idle_timeout=0.3) as gw, connect(gw) as ws:
        # When the client sends nothing for longer than the idle timeout
        assert await closed_code(ws) == 1001
    # Then $disconnect ran with 1001
    await disconnect_of(recorder, 1001)


async def test_max_duration_closes_with_1001_and_runs_disconnect(recorder: ModuleType) -> None:
    async with fixture_gateway(max_duration=0.3) as gw, connect(gw) as ws:
        assert await closed_code(ws) == 1001
    await disconnect_of(recorder, 1001)


async def test_client_close_runs_disconnect_with_its_code_and_reason(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        await ws.close(code=4000, reason="bye now")
    record = await disconnect_of(recorder, 4000)
    assert record["event"]["requestContext"]["disconnectReason"] == "bye now"


async def test_abrupt_disconnect_runs_disconnect_with_1006(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        await wait_record(recorder, "connect")
        # When the TCP connection drops without a close frame
        ws.transport.abort()
    # Then $disconnect still runs, with 1006
    await disconnect_of(recorder, 1006)
