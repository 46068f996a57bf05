"""drop_all, stop and start: every connection closes as AWS would and runs $disconnect."""

from __future__ import annotations

import asyncio
from types import ModuleType

import pytest
from emu_fixture.testkit import connect

from emulator.testing import RunningGateway


async def test_drop_all_closes_with_the_code_and_runs_disconnect(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as first, connect(gw) as second:
        await gw.drop_all(1012)
        await asyncio.wait_for(first.wait_closed(), 10)
        await asyncio.wait_for(second.wait_closed(), 10)
        assert first.close_code == second.close_code == 1012
    codes = [
        r["event"]["requestContext"]["disconnectStatusCode"] for r in recorder.records("disconnect")
    ]
    assert codes == [1012, 1012]


async def test_stop_then_start_serves_again_on_the_same_port(
    gw: RunningGateway, recorder: ModuleType
) -> None:
    async with connect(gw) as ws:
        await gw.stop()
        # Then the client got a close frame (1001) and $disconnect already ran
        await asyncio.wait_for(ws.wait_closed(), 10)
        assert ws.close_code == 1001
        assert len(recorder.records("disconnect")) == 1
    with pytest.raises(OSError):
        async with connect(gw):
            pass
    await gw.start()
    async with connect(gw) as ws:
        await ws.send('{"action":"ping"}')
        assert await asyncio.wait_for(ws.recv(), 10) == '{"action":"pong"}'
