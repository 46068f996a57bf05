"""tabrelay.mcpserver's tool logic on a fake relay: browser choice, freshness, page after, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from tabrelay.errors import BusyError, CommandFailedError, TargetOfflineError
from tabrelay.mcpserver import FRESH_SECONDS, TOOLS, PageStore, Tools, build_server, tool_error
from tabrelay.models import BrowserInfo, Snapshot

PAGE = '<html><head><title>T</title></head><body><button id="go">Go</button></body></html>'


class FakeRelay:
    """Answers like a gateway with browsers that send a snapshot for each `snapshot` command."""

    def __init__(self, online: list[str]) -> None:
        self.online = online
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.queue: asyncio.Queue[Snapshot] = asyncio.Queue()
        self.seq = 0
        self.html = PAGE
        self.fail: Exception | None = None

    async def browsers(self) -> list[BrowserInfo]:
        return [BrowserInfo(client_id=b, connected_at=1) for b in self.online]

    async def command(
        self,
        target: str,
        name: str,
        /,
        *,
        timeout: float = 30.0,
        args: dict[str, Any] | None = None,
    ) -> Any:
        self.sent.append((target, name, args or {}))
        if target not in self.online:
            raise TargetOfflineError(f"browser {target!r} is not connected")
        if self.fail is not None:
            raise self.fail
        if name == "snapshot":
            self.seq += 1
            sid = f"s{self.seq}"
            self.queue.put_nowait(
                Snapshot(source=target, sid=sid, seq=self.seq, html=self.html, url="u", title="T")
            )
            return {"sid": sid, "seq": self.seq}
        if name == "click":
            self.html = self.html.replace("Go<", "Gone<")
        return {"done": name}

    async def snapshots(self) -> AsyncIterator[Snapshot]:
        while True:
            yield await self.queue.get()


@pytest.fixture
async def tools_for() -> AsyncIterator[Any]:
    tasks: list[asyncio.Task[None]] = []

    def make(online: list[str], default: str | None = None) -> tuple[Tools, FakeRelay]:
        relay = FakeRelay(online)
        store = PageStore(relay)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(store.run()))
        return Tools(relay, store, default), relay  # type: ignore[arg-type]

    yield make
    for task in tasks:
        task.cancel()


async def test_given_one_browser_online_when_browser_omitted_then_it_is_used(
    tools_for: Any,
) -> None:
    tools, _ = tools_for(["b1"])
    assert await tools.target(None) == "b1"


async def test_given_two_browsers_when_browser_omitted_then_error_lists_them(
    tools_for: Any,
) -> None:
    tools, _ = tools_for(["b2", "b1"])
    with pytest.raises(ToolError, match=r"2 browsers are online \(b1, b2\)"):
        await tools.target(None)


async def test_given_no_browser_when_browser_omitted_then_target_offline(tools_for: Any) -> None:
    tools, _ = tools_for([])
    with pytest.raises(ToolError, match=r"^target_offline: no browser"):
        await tools.target(None)


async def test_given_pinned_default_when_browser_omitted_then_default_used(tools_for: Any) -> None:
    tools, _ = tools_for(["b1", "b2"], default="b2")
    assert await tools.target(None) == "b2"
    assert await tools.target("b1") == "b1"


async def test_given_no_snapshot_when_get_page_then_asks_for_one_and_reuses_it_while_fresh(
    tools_for: Any,
) -> None:
    tools, relay = tools_for(["b1"])
    first = await tools.page("b1", timeout=5)
    assert "[button #go] Go" in first and "title: T" in first
    assert [name for _, name, _ in relay.sent] == ["snapshot"]
    await tools.page("b1", timeout=5)  # young: no second request
    assert [name for _, name, _ in relay.sent] == ["snapshot"]
    tools.store.latest["b1"].at = time.monotonic() - FRESH_SECONDS - 1  # now it is old
    await tools.page("b1", timeout=5)
    assert [name for _, name, _ in relay.sent] == ["snapshot", "snapshot"]


async def test_given_html_requested_when_over_max_chars_then_cut_and_said(tools_for: Any) -> None:
    tools, _ = tools_for(["b1"])
    text = await tools.page("b1", timeout=5, html=True, max_chars=10)
    assert f"html (truncated: the first 10 of {len(PAGE)} characters):\n{PAGE[:10]}" in text
    whole = await tools.page("b1", timeout=5, html=True)
    assert f"html ({len(PAGE)} characters, complete):\n{PAGE}" in whole


async def test_given_click_when_acted_then_result_then_page_after_it(tools_for: Any) -> None:
    tools, relay = tools_for(["b1"])
    text = await tools.act(None, "click", {"selector": "#go"}, 5)
    result, after = text.split("Page after it:")
    assert result.startswith('click done on browser b1: {"done": "click"}')
    assert "[button #go] Gone" in after
    assert [name for _, name, _ in relay.sent] == ["click", "snapshot"]


async def test_given_browser_error_when_acted_then_tool_error_with_code_and_advice(
    tools_for: Any,
) -> None:
    tools, relay = tools_for(["b1"])
    relay.fail = CommandFailedError("no element matches #x", code="element_not_found")
    with pytest.raises(ToolError, match=r"^element_not_found: no element matches #x .*get_page"):
        await tools.act("b1", "click", {"selector": "#x"}, 5)
    with pytest.raises(ToolError, match=r"^target_offline: .*list_browsers"):
        await tools.act("ghost", "click", {"selector": "#x"}, 5)


def test_given_busy_when_converted_then_code_first_and_what_to_do() -> None:
    text = str(tool_error(BusyError("queue full"), "b1"))
    assert text == (
        "busy: queue full (browser b1). Too many commands are waiting for this browser: "
        "wait a moment, then retry."
    )


async def test_given_server_when_tools_listed_then_every_tool_takes_a_timeout(
    tools_for: Any,
) -> None:
    tools, relay = tools_for(["b1"])
    server = build_server(relay, tools.store)
    listed = await server.list_tools()
    assert [t.name for t in listed] == list(TOOLS)
    for t in listed:
        timeout = t.input_schema["properties"]["timeout"]
        assert (timeout["default"], timeout["minimum"], timeout["maximum"]) == (30.0, 1, 900)


async def test_given_gateway_silent_when_list_browsers_then_timeout_tool_error(
    tools_for: Any,
) -> None:
    tools, relay = tools_for(["b1"])
    never: asyncio.Future[list[BrowserInfo]] = asyncio.get_running_loop().create_future()
    relay.browsers = lambda: never
    with pytest.raises(ToolError, match=r"^timeout: the gateway did not list the browsers"):
        await tools.list_browsers(timeout=0.01)
