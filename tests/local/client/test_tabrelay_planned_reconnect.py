"""The planned reconnect before API Gateway's 2-hour cut (issue 11, storms), end to end
against the local emulator running the real handlers, with a window of about a second."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import tabrelay
from tabrelay import CommandRequest, Relay

from emulator.testing import RunningGateway, running_gateway

TENANT = "acme"
WAIT = 60.0  # bound on every wait: the emulator runs SQS pollers and Lambdas in-process
SOON: dict[str, Any] = {"early_reconnect": (1.0, 1.5)}


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with running_gateway() as gateway:
        yield gateway


def _connect(gw: RunningGateway, role: str, client_id: str, **options: Any) -> Relay:
    options = {"backoff_initial": 0.05, "backoff_max": 0.5, **options}
    return tabrelay.connect(gw.url, token=gw.token(role, TENANT, client_id), **options)


async def _eventually(predicate: Callable[[], bool]) -> None:
    """Wait for a condition on the client's counters (bounded; they change as frames arrive)."""
    async with asyncio.timeout(WAIT):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_given_command_running_when_both_sides_reconnect_on_purpose_then_nothing_is_lost(
    gw: RunningGateway,
) -> None:
    release = asyncio.Event()
    planned_when_run: list[int] = []
    async with (
        _connect(gw, "consumer", "c1", **SOON) as consumer,
        _connect(gw, "browser", "b1", **SOON) as browser,
    ):

        async def slow(cmd: CommandRequest) -> str:
            planned_when_run.append(browser.stats.planned_reconnects)
            await release.wait()
            return "done"

        browser.on_command(slow)
        await consumer.subscribe(["b1"])
        pending = asyncio.create_task(consumer.command("b1", "slow", timeout=60))
        # Given a command running on the browser when its connection is replaced
        await _eventually(lambda: bool(planned_when_run))
        await _eventually(lambda: browser.stats.planned_reconnects > planned_when_run[0])
        await _eventually(lambda: consumer.stats.planned_reconnects >= 1)
        release.set()
        # Then its answer still reaches the consumer: the browser's new connection
        # superseded the old one, so the gateway never saw it go offline
        async with asyncio.timeout(WAIT):
            assert await pending == "done"
        # And the consumer's restored subscription still delivers snapshots
        await browser.send_snapshot("<p>after the planned reconnects</p>")
        async with asyncio.timeout(WAIT):
            snap = await anext(consumer.snapshots())
    assert (snap.source, snap.html) == ("b1", "<p>after the planned reconnects</p>")
    assert browser.stats.commands_run == 1
