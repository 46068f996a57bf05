"""``tabrelay mcp``: an MCP server over stdio that lets an LLM agent see and drive the tenant's browsers.

It is a consumer like any other: one :class:`~tabrelay.client.Relay` for the
server's lifetime (reconnects, backoff and bounds as the client does them),
fed snapshots from every browser of the tenant. Tools:

``list_browsers``, ``get_page``, ``navigate``, ``click``, ``type``, ``fill``,
``press_key``, ``scroll``, ``select_option``, ``hover``, ``wait_for``,
``back``, ``forward``, ``screenshot``.

Every tool that acts on a browser takes ``browser`` (a client id), which may be
left out when ``--browser`` pinned one or exactly one browser is online, and
``timeout`` (seconds, default 30). A tool that changes the page returns its
result and then the page after it, as ``get_page`` shows it. Failures are MCP
tool errors whose text starts with the tabrelay code (``target_offline``,
``timeout``, ``busy``, ``element_not_found``, ...) and says what to do next.

Needs the optional extra: ``pip install "tabrelay[mcp]"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ImageContent, TextContent
    from pydantic import Field
except ImportError as exc:  # pragma: no cover - exercised by the install test
    raise ImportError(
        "tabrelay mcp needs the MCP SDK, an optional extra: pip install 'tabrelay[mcp]'"
    ) from exc

from tabrelay import wire
from tabrelay.client import Relay
from tabrelay.errors import TabRelayError
from tabrelay.models import BrowserInfo, Snapshot
from tabrelay.pageview import page_view

__all__ = ["FRESH_SECONDS", "HTML_MAX_CHARS", "TOOLS", "PageStore", "build_server", "serve"]

#: get_page reuses the newest snapshot when it is younger than this (seconds).
FRESH_SECONDS = 3.0
#: Default cap of the HTML get_page returns with ``html: true``.
HTML_MAX_CHARS = 50_000
#: The tools, in the order tools/list shows them.
TOOLS = (
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
)

_ADVICE = {
    "target_offline": "The browser is not connected: call list_browsers and use an online one.",
    "timeout": "No answer in time: the page may still be loading. Call get_page to see its "
    "state, or retry with a larger timeout.",
    "busy": "Too many commands are waiting for this browser: wait a moment, then retry.",
    "rate_limited": "Too many requests: wait a few seconds, then retry.",
    "element_not_found": "No element matches: call get_page for the current page and its "
    "selectors, or wait_for the element first.",
    "navigation_failed": "The page did not load: check the URL, or call get_page.",
    "not_scriptable": "This page cannot be automated (e.g. a browser-internal page): "
    "navigate to a web page first.",
    "bad_request": "The arguments were not accepted: fix them and retry.",
    "forbidden": "The gateway refused: this token may not do that.",
    "unauthorized": "The token was refused: check TABRELAY_TOKEN or --token.",
    "connect_failed": "The gateway cannot be reached now; the server keeps reconnecting: "
    "retry in a moment.",
    "closed": "The connection to the gateway is closed: restart the MCP server.",
}

Timeout = Annotated[
    float,
    Field(
        ge=wire.MIN_COMMAND_TIMEOUT,
        le=wire.MAX_COMMAND_TIMEOUT,
        description="seconds to wait for the browser "
        f"({wire.MIN_COMMAND_TIMEOUT}-{wire.MAX_COMMAND_TIMEOUT})",
    ),
]
BrowserId = Annotated[
    str | None,
    Field(description="browser client id; optional when exactly one browser is online"),
]
Selector = Annotated[str, Field(description="CSS selector, as get_page's view shows them")]


def tool_error(exc: TabRelayError, target: str | None = None) -> ToolError:
    """The MCP tool error for a tabrelay error: code, message, what to do next."""
    where = f" (browser {target})" if target and target not in exc.message else ""
    advice = _ADVICE.get(exc.code, "")
    return ToolError(f"{exc.code}: {exc.message}{where}. {advice}".rstrip())


@dataclass
class _Seen:
    snapshot: Snapshot
    at: float  # monotonic arrival time


class PageStore:
    """The newest snapshot of each browser, kept from the relay's stream of snapshots."""

    def __init__(self, relay: Relay, *, keep_sids: int = 64) -> None:
        self.relay = relay
        self.latest: dict[str, _Seen] = {}
        self._sids: dict[str, deque[str]] = {}
        self._keep = keep_sids
        self._changed = asyncio.Condition()

    async def run(self) -> None:
        """Take snapshots until the relay closes (run it as a task)."""
        async for snap in self.relay.snapshots():
            async with self._changed:
                self.latest[snap.source] = _Seen(snap, time.monotonic())
                self._sids.setdefault(snap.source, deque(maxlen=self._keep)).append(snap.sid)
                self._changed.notify_all()

    async def wait(
        self, source: str, ready: Callable[[_Seen], bool], timeout: float
    ) -> _Seen | None:
        """The newest snapshot of ``source`` once ``ready`` accepts it; None at the timeout."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    seen = self.latest.get(source)
                    if seen is not None and ready(seen):
                        return seen
                    await self._changed.wait()
        return None

    def has_sid(self, source: str, sid: str) -> bool:
        return sid in self._sids.get(source, ())


class Tools:
    """What each tool does, on one relay."""

    def __init__(self, relay: Relay, store: PageStore, default_browser: str | None) -> None:
        self.relay = relay
        self.store = store
        self.default_browser = default_browser

    async def target(self, browser: str | None) -> str:
        if browser:
            return browser
        if self.default_browser:
            return self.default_browser
        online: list[BrowserInfo] = await self._call(self.relay.browsers())
        if len(online) == 1:
            return online[0].client_id
        if not online:
            raise ToolError(
                "target_offline: no browser of this tenant is online. Start one (the "
                "extension, or tabrelay simulate-browser), then call list_browsers."
            )
        ids = ", ".join(sorted(b.client_id for b in online))
        raise ToolError(
            f"bad_request: {len(online)} browsers are online ({ids}); "
            "say which one with the browser argument."
        )

    async def _call(self, call: Awaitable[Any], target: str | None = None) -> Any:
        try:
            return await call
        except TabRelayError as exc:
            raise tool_error(exc, target) from None
        except ValueError as exc:
            raise ToolError(f"bad_request: {exc}") from None

    async def command(
        self, browser: str | None, name: str, args: dict[str, Any], timeout: float
    ) -> tuple[str, Any]:
        target = await self.target(browser)
        value = await self._call(
            self.relay.command(target, name, timeout=timeout, args=args), target
        )
        return target, value

    async def list_browsers(self, timeout: float = wire.DEFAULT_COMMAND_TIMEOUT) -> str:
        try:
            async with asyncio.timeout(timeout):
                online = await self._call(self.relay.browsers())
        except TimeoutError:
            raise ToolError(
                f"timeout: the gateway did not list the browsers within {timeout:g} s. "
                "Retry in a moment."
            ) from None
        rows = []
        for b in sorted(online, key=lambda b: b.client_id):
            row: dict[str, Any] = {"browser": b.client_id, "connected_at": b.connected_at}
            seen = self.store.latest.get(b.client_id)
            if seen is not None:
                row["url"] = seen.snapshot.url
                row["title"] = seen.snapshot.title
            rows.append(row)
        if not rows:
            return "No browser of this tenant is online."
        return json.dumps(rows, indent=1, ensure_ascii=False)

    async def fresh(self, target: str, timeout: float) -> _Seen:
        """Ask the browser for a snapshot now and wait until it (or a newer one) arrives."""
        asked = time.monotonic()
        summary = await self._call(self.relay.command(target, "snapshot", timeout=timeout), target)
        sid = summary.get("sid") if isinstance(summary, dict) else None
        seq = summary.get("seq") if isinstance(summary, dict) else None

        def ready(seen: _Seen) -> bool:
            if isinstance(sid, str) and self.store.has_sid(target, sid):
                return True
            if isinstance(seq, int) and seen.snapshot.seq >= seq:
                return True  # the one asked for was conflated into a newer one
            return sid is None and seen.at >= asked

        seen = await self.store.wait(target, ready, timeout)
        if seen is None:
            raise ToolError(
                f"timeout: browser {target} did not deliver the snapshot within {timeout:g} s. "
                "Retry get_page, perhaps with a larger timeout."
            )
        return seen

    async def page(
        self, target: str, *, timeout: float, html: bool = False, max_chars: int = HTML_MAX_CHARS
    ) -> str:
        seen = self.store.latest.get(target)
        if seen is None or time.monotonic() - seen.at > FRESH_SECONDS:
            seen = await self.fresh(target, timeout)
        # Parsing megabytes of HTML takes a while: keep the server answering meanwhile.
        return await asyncio.to_thread(render_page, target, seen, html=html, max_chars=max_chars)

    async def act(
        self, browser: str | None, name: str, args: dict[str, Any], timeout: float
    ) -> str:
        """Run a mutating command, then show the page after it."""
        target, value = await self.command(browser, name, args, timeout)
        text = f"{name} done on browser {target}: {json.dumps(value, ensure_ascii=False)}"
        try:
            seen = await self.fresh(target, timeout)
        except ToolError as exc:
            # The action happened; only the view of its effect is missing.
            return f"{text}\n\nThe page after it is not available: {exc}"
        page = await asyncio.to_thread(render_page, target, seen)
        return f"{text}\n\nPage after it:\n{page}"


def render_page(
    target: str, seen: _Seen, *, html: bool = False, max_chars: int = HTML_MAX_CHARS
) -> str:
    """A page as get_page shows it: url, title, the compact view, optionally the HTML."""
    snap = seen.snapshot
    age = max(0.0, time.monotonic() - seen.at)
    lines = [
        f"browser: {target}",
        f"url: {snap.url}",
        f"title: {snap.title}",
        f"snapshot: seq {snap.seq}, {age:.1f} s old, {snap.size:,} bytes of HTML",
        "",
        "page view (headings, text, and [tag selector ...] for each control):",
        page_view(snap.html),
    ]
    if html:
        total = len(snap.html)
        if total > max_chars:
            lines += [
                "",
                f"html (truncated: the first {max_chars:,} of {total:,} characters):",
                snap.html[:max_chars],
            ]
        else:
            lines += ["", f"html ({total:,} characters, complete):", snap.html]
    return "\n".join(lines)


def build_server(relay: Relay, store: PageStore, default_browser: str | None = None) -> MCPServer:
    """The MCP server with every tool of :data:`TOOLS`, acting through ``relay``."""
    tools = Tools(relay, store, default_browser)
    server = MCPServer(
        "tabrelay",
        instructions="Drive the tenant's real browsers through the tabrelay gateway. "
        "Start with list_browsers and get_page; act with click, type, fill, ... using the "
        "selectors get_page shows. Acting tools return the page after the action.",
    )
    # The tool functions are defined apart (their signatures are the tools' schemas).
    by_name = {fn.__name__.rstrip("_"): fn for fn in (*_page_tools(tools), *_action_tools(tools))}
    for name in TOOLS:
        server.add_tool(by_name[name], name=name, structured_output=False)
    return server


def _given(**fields: Any) -> dict[str, Any]:
    """The command arguments among ``fields`` that were given (neither ``None`` nor empty)."""
    return {k: v for k, v in fields.items() if v is not None and v != ""}


ToolFunction = Callable[..., Awaitable[Any]]


def _page_tools(tools: Tools) -> list[ToolFunction]:
    """The tools that read: the browser list, the page, a wait, a screenshot."""

    async def list_browsers(timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT) -> str:
        """The tenant's online browsers, with the url and title of each one's latest page when known."""
        return await tools.list_browsers(timeout)

    async def get_page(
        browser: BrowserId = None,
        html: Annotated[bool, Field(description="also return the page's HTML")] = False,
        max_chars: Annotated[
            int, Field(ge=1, description="cap of the HTML returned with html=true")
        ] = HTML_MAX_CHARS,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """The browser's current page: url, title and a compact view listing headings, text, and
        every link, button and form field with a CSS selector the other tools accept."""
        target = await tools.target(browser)
        return await tools.page(target, timeout=timeout, html=html, max_chars=max_chars)

    async def wait_for(
        selector: Annotated[str | None, Field(description="CSS selector to wait for")] = None,
        text: Annotated[str | None, Field(description="visible text to wait for")] = None,
        state: Annotated[
            Literal["visible", "attached", "hidden", "detached"],
            Field(description="the state to wait for"),
        ] = "visible",
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Wait until an element (by selector or visible text) reaches a state, across page
        loads, until the timeout."""
        if not selector and not text:
            raise ToolError("bad_request: wait_for needs selector or text.")
        args = _given(state=state, selector=selector, text=text)
        target, value = await tools.command(browser, "wait_for", args, timeout)
        return f"wait_for done on browser {target}: {json.dumps(value, ensure_ascii=False)}"

    async def screenshot(
        browser: BrowserId = None, timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT
    ) -> list[ImageContent | TextContent]:
        """A screenshot of the visible part of the browser's active tab (PNG or JPEG)."""
        target, value = await tools.command(browser, "screenshot", {}, timeout)
        if not isinstance(value, dict) or not isinstance(value.get("data"), str):
            raise ToolError(f"internal: browser {target} sent no image data.")
        mime = str(value.get("mime") or "image/png")
        note = f"screenshot of browser {target}" + (
            f" at {value['url']}" if value.get("url") else ""
        )
        return [ImageContent(data=value["data"], mime_type=mime), TextContent(text=note)]

    return [list_browsers, get_page, wait_for, screenshot]


def _action_tools(tools: Tools) -> list[ToolFunction]:
    """The tools that change the page; each returns the page after it."""

    async def navigate(
        url: Annotated[str, Field(description="http(s), file, data or about URL")],
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Load a URL in the browser's active tab; returns the page after it."""
        return await tools.act(browser, "navigate", {"url": url}, timeout)

    async def click(
        selector: Selector,
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Click the element; returns the page after it."""
        return await tools.act(browser, "click", {"selector": selector}, timeout)

    async def type_(
        selector: Selector,
        text: Annotated[str, Field(description="text typed at the end of the field's value")],
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Type text into a field, key by key; returns the page after it."""
        return await tools.act(browser, "type", {"selector": selector, "text": text}, timeout)

    async def fill(
        selector: Selector,
        value: Annotated[str, Field(description="the field's new value (replaces the old)")],
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Set a field's value at once; returns the page after it."""
        return await tools.act(browser, "fill", {"selector": selector, "value": value}, timeout)

    async def press_key(
        key: Annotated[str, Field(description='a key name, e.g. "Enter", "Tab", "a"')],
        selector: Annotated[
            str | None, Field(description="focus this element first (default: the focused one)")
        ] = None,
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Press a key in the focused element (or the one matching selector); returns the page after it."""
        return await tools.act(browser, "press_key", _given(key=key, selector=selector), timeout)

    async def scroll(  # noqa: PLR0913  the tool's parameters: MCP reads its schema from this signature
        selector: Annotated[str | None, Field(description="scroll this element into view")] = None,
        to: Annotated[
            Literal["top", "bottom"] | None, Field(description="scroll to the top or bottom")
        ] = None,
        x: Annotated[float | None, Field(description="pixels right (with y: scroll by)")] = None,
        y: Annotated[float | None, Field(description="pixels down (negative: up)")] = None,
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Scroll the page: an element into view, to the top/bottom, or by x/y pixels; returns
        the scroll position and the page after it."""
        # One way to scroll: to the element, else to top/bottom, else by x/y.
        args = _given(selector=selector) or _given(to=to) or {"x": x or 0, "y": y or 0}
        return await tools.act(browser, "scroll", args, timeout)

    async def select_option(
        selector: Selector,
        value: Annotated[str, Field(description="the option's value or its label")],
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Choose an option of a <select>; returns the page after it."""
        args = {"selector": selector, "value": value}
        return await tools.act(browser, "select_option", args, timeout)

    async def hover(
        selector: Selector,
        browser: BrowserId = None,
        timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT,
    ) -> str:
        """Move the mouse over the element; returns the page after it."""
        return await tools.act(browser, "hover", {"selector": selector}, timeout)

    async def back(
        browser: BrowserId = None, timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT
    ) -> str:
        """Go back one page in the tab's history; returns the page after it."""
        return await tools.act(browser, "back", {}, timeout)

    async def forward(
        browser: BrowserId = None, timeout: Timeout = wire.DEFAULT_COMMAND_TIMEOUT
    ) -> str:
        """Go forward one page in the tab's history; returns the page after it."""
        return await tools.act(browser, "forward", {}, timeout)

    return [navigate, click, type_, fill, press_key, scroll, select_option, hover, back, forward]


async def serve(relay: Relay, default_browser: str | None = None) -> None:
    """Serve MCP on stdin/stdout until the host closes it, on an open ``relay``."""
    store = PageStore(relay)
    collector = asyncio.create_task(store.run())
    try:
        await build_server(relay, store, default_browser).run_stdio_async()
    finally:
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
