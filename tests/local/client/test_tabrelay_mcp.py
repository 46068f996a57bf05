"""``tabrelay mcp`` driven as an MCP host drives it: the SDK's own client session over stdio,
against the local gateway, with ``tabrelay simulate-browser`` as the browser."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import tabrelay
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, ImageContent, TextContent

from emulator.testing import RunningGateway, running_gateway

ROOT = Path(__file__).resolve().parents[3]
TENANT = "acme"
BROWSER = "sim-1"
WAIT = 60.0
TOOLS = {
    "list_browsers",
    "get_page",
    "navigate",
    "click",
    "type",
    "fill",
    "press_key",
    "scroll",
    "select_option",
    "hover",
    "wait_for",
    "back",
    "forward",
    "screenshot",
}
PAGE = """<!doctype html><html><head><title>Shop</title></head><body>
<h1>Welcome to the shop</h1><p>Pick something.</p>
<form><input name="q" value="shoes"><button id="go" type="submit">Search</button></form>
</body></html>"""


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT / "clients" / "python"), str(ROOT)])
    return {"PYTHONPATH": path, "PATH": os.environ.get("PATH", "")}


@pytest.fixture
async def gw() -> AsyncIterator[RunningGateway]:
    async with running_gateway() as gateway:
        yield gateway


@pytest.fixture
async def browser(gw: RunningGateway, tmp_path: Path) -> AsyncIterator[None]:
    """A simulated browser showing PAGE, online once its first snapshot got through."""
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    consumer = tabrelay.connect(gw.url, token=gw.token("consumer", TENANT, "watcher"))
    async with consumer:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tabrelay", "simulate-browser", gw.url, "--quiet"),
                *("--token", gw.token("browser", TENANT, BROWSER), "--file", str(page)),
                *("--rate", "0.2", "--page-url", "https://shop.test/"),
            ],
            env={**os.environ, **_env()},
            stdout=subprocess.DEVNULL,
        )
        try:
            async with asyncio.timeout(WAIT):
                async for snap in consumer.snapshots():
                    if snap.source == BROWSER:
                        break
            yield
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _text(result: CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_given_simulated_browser_when_mcp_client_uses_tools_then_it_sees_and_drives_the_page(
    gw: RunningGateway, browser: None
) -> None:
    # Given tabrelay mcp started by the SDK's stdio client, as an MCP host starts it
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tabrelay", "mcp", gw.url],
        env={**_env(), "TABRELAY_TOKEN": gw.token("consumer", TENANT, "agent")},
    )
    async with (
        asyncio.timeout(WAIT),
        stdio_client(params) as streams,
        ClientSession(*streams) as session,
    ):
        # When it initializes, then the server names itself and offers tools
        init = await session.initialize()
        assert init.server_info.name == "tabrelay"
        assert init.capabilities.tools is not None

        # Then tools/list shows every tool with an input schema
        listed = await session.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        for t in listed.tools:
            assert t.input_schema["type"] == "object", t.name
        click_schema = next(t for t in listed.tools if t.name == "click").input_schema
        assert "selector" in click_schema["properties"]
        assert "timeout" in click_schema["properties"]

        # list_browsers shows the simulated browser
        browsers = await session.call_tool("list_browsers", {})
        assert not browsers.is_error, _text(browsers)
        assert f'"browser": "{BROWSER}"' in _text(browsers)

        # get_page (no browser argument: exactly one is online) gives the compact view
        page = await session.call_tool("get_page", {"html": True, "max_chars": 40})
        text = _text(page)
        assert not page.is_error, text
        # (the simulator titles its snapshots "frame N", numbers the url's fragment)
        assert "title: frame " in text and "url: https://shop.test/#" in text
        assert "# Welcome to the shop" in text
        assert '[input input[name="q"] type=text value="shoes"]' in text
        assert "[button #go] Search" in text
        assert f"the first 40 of {len(PAGE):,} characters" in text
        # ...and list_browsers now knows the page's url and title
        browsers = await session.call_tool("list_browsers", {})
        assert '"title": "frame ' in _text(browsers)

        # click answers with its result and then the page after it
        clicked = await session.call_tool("click", {"selector": "#go", "browser": BROWSER})
        text = _text(clicked)
        assert not clicked.is_error, text
        assert text.startswith(f"click done on browser {BROWSER}")
        result, after = text.split("Page after it:", 1)
        assert '"selector": "#go"' in result
        assert "url: https://shop.test/#" in after and "[button #go] Search" in after

        # navigate: the page after it is the new one
        moved = await session.call_tool("navigate", {"url": "https://shop.test/cart"})
        assert "url: https://shop.test/cart" in _text(moved).split("Page after it:", 1)[1]

        # screenshot: MCP image content
        shot = await session.call_tool("screenshot", {})
        images = [c for c in shot.content if isinstance(c, ImageContent)]
        assert len(images) == 1 and images[0].mime_type == "image/png"

        # An offline browser: a tool error naming target_offline and what to do
        offline = await session.call_tool(
            "click", {"selector": "#go", "browser": "ghost", "timeout": 5}
        )
        assert offline.is_error
        assert "target_offline: browser 'ghost' is not connected" in _text(offline)
        assert "list_browsers" in _text(offline)
