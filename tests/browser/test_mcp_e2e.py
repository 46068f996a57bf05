"""End to end for agents: an MCP client session (the SDK's own, over stdio) drives
``tabrelay mcp``, which drives headless Chromium with the extension through the local
emulator. Nothing is faked."""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tabrelay
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, ImageContent, TextContent

from emulator.testing import RunningGateway, running_gateway

from .conftest import Launch
from .consumer import Snapshots

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
TENANT = "acme"
BROWSER = "chrome-mcp"
WAIT = 120.0


@pytest.fixture
async def gateway() -> AsyncIterator[RunningGateway]:
    async with running_gateway() as gw:
        yield gw


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_given_chromium_with_extension_when_mcp_agent_reads_clicks_and_shoots_then_it_sees_each(
    gateway: RunningGateway, pages: str, launch: Launch
) -> None:
    path = os.pathsep.join([str(ROOT / "clients" / "python"), str(ROOT)])
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tabrelay", "mcp", gateway.url],
        env={"PYTHONPATH": path, "TABRELAY_TOKEN": gateway.token("consumer", TENANT, "agent")},
    )
    config = {"url": gateway.url, "token": gateway.token("browser", TENANT, BROWSER)}
    async with (
        tabrelay.connect(gateway.url, token=gateway.token("consumer", TENANT, "watch")) as relay,
        Snapshots(relay) as snaps,
        launch(config, f"{pages}/page1.html"),
    ):
        # Given the extension online with page one
        await snaps.wait(lambda s: s.source == BROWSER and s.title == "Page one")
        async with (
            asyncio.timeout(WAIT),
            stdio_client(params) as streams,
            ClientSession(*streams) as session,
        ):
            await session.initialize()

            # When the agent lists the browsers, then it sees the extension
            listed = await session.call_tool("list_browsers", {})
            assert f'"browser": "{BROWSER}"' in _text(listed)

            # When it reads the page, then the compact view names the button's selector
            page = await session.call_tool("get_page", {"browser": BROWSER})
            text = _text(page)
            assert not page.is_error, text
            assert f"url: {pages}/page1.html" in text and "title: Page one" in text
            assert "[button #btn] Press me" in text
            assert "not clicked" in text

            # When it clicks that button, then the click's result shows the changed page
            clicked = await session.call_tool("click", {"selector": "#btn"})
            text = _text(clicked)
            assert not clicked.is_error, text
            result, after = text.split("Page after it:", 1)
            assert '"tag": "button"' in result
            assert "clicked 1" in after and "not clicked" not in after

            # When it takes a screenshot, then it gets an image that decodes as one
            shot = await session.call_tool("screenshot", {"browser": BROWSER})
            images = [c for c in shot.content if isinstance(c, ImageContent)]
            assert len(images) == 1, _text(shot)
            data = base64.b64decode(images[0].data)
            if images[0].mime_type == "image/png":
                assert data.startswith(b"\x89PNG\r\n\x1a\n")
            else:
                assert images[0].mime_type == "image/jpeg" and data.startswith(b"\xff\xd8\xff")
            assert len(data) > 1000
