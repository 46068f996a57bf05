"""A tiny stand-in for the gateway, to prove the extension on its own.

An aiohttp WebSocket server on 127.0.0.1, port 0. It checks every frame the
extension sends against the wire definition (``tabrelay.wire``) and
the 32 KB frame limit, reassembles snapshots, answers ``ping`` with ``pong`` (and ``keepalive`` with nothing)
and sends commands, collecting their (possibly multi-part) results.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from tabrelay import wire

__all__ = ["FakeGateway", "Page", "Reply"]


@dataclass(frozen=True)
class Page:
    """One reassembled snapshot."""

    sid: str
    seq: int
    url: str
    title: str
    html: str
    parts: int


@dataclass
class Reply:
    """A command's answer, parts joined."""

    id: str
    ok: bool
    value: Any = None
    error: str | None = None
    code: str | None = None
    parts: int = 1


@dataclass
class _Partial:
    parts: dict[int, Any] = field(default_factory=dict)


class FakeGateway:
    """Accepts browsers on ``{url}?token=...``; ``async with`` starts and stops it."""

    def __init__(self, *, refuse_parts: frozenset[int] = frozenset()) -> None:
        #: Snapshot part numbers refused once per snapshot with ``rate_limited``,
        #: as the gateway does to a sender over its rate.
        self.refuse_parts = refuse_parts
        self.refused: list[str] = []
        #: While true, handshakes are refused with 503 (a gateway that is down
        #: but reachable); ``handshakes_refused`` counts them.
        self.refusing = False
        self.handshakes_refused = 0
        self.tokens: list[str] = []
        self.pages: list[Page] = []
        self.frame_sizes: list[int] = []
        self.violations: list[str] = []
        self.pings = 0
        self.keepalives = 0
        self.connections = 0
        self._changed = asyncio.Condition()
        self._sockets: set[web.WebSocketResponse] = set()
        self._snap_parts: dict[str, dict[int, wire.Snapshot]] = {}
        self._results: dict[str, list[Reply]] = {}
        self._result_parts: dict[str, _Partial] = {}
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> FakeGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/test"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/test", self._accept)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """Close every connection and stop listening (start() reuses the port)."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        if self.refusing:
            async with self._changed:
                self.handshakes_refused += 1
                self._changed.notify_all()
            return web.Response(status=503, text="down for maintenance")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        async with self._changed:
            self.tokens.append(request.query.get("token", ""))
            self.connections += 1
            self._changed.notify_all()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._frame(ws, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self.violations.append("binary frame")
        finally:
            self._sockets.discard(ws)
        return ws

    async def _frame(self, ws: web.WebSocketResponse, text: str) -> None:
        size = len(text.encode())
        self.frame_sizes.append(size)
        if size > wire.FRAME_LIMIT:
            self.violations.append(f"frame of {size} bytes")
        try:
            message = wire.decode(text)
        except (wire.ProtocolError, wire.RawFrame) as exc:
            self.violations.append(f"invalid frame: {exc}: {text[:200]}")
            return
        if message.action not in wire.BROWSER_ACTIONS:
            self.violations.append(f"a browser may not send {message.action}")
        if isinstance(message, wire.Ping):
            await ws.send_str(wire.encode(wire.Pong(id=message.id)))
            async with self._changed:
                self.pings += 1
                self._changed.notify_all()
        elif isinstance(message, wire.Keepalive):  # one-way: API Gateway answers nothing
            async with self._changed:
                self.keepalives += 1
                self._changed.notify_all()
        elif isinstance(message, wire.Snapshot):
            key = f"{message.sid}/{message.part}"
            if message.part in self.refuse_parts and key not in self.refused:
                self.refused.append(key)
                error = wire.ErrorMessage(
                    code="rate_limited", message="too many messages", id=message.id
                )
                await ws.send_str(wire.encode(error))
                return
            await self._snapshot(message)
        elif isinstance(message, wire.Result):
            await self._result(message)

    async def _snapshot(self, part: wire.Snapshot) -> None:
        parts = self._snap_parts.setdefault(part.sid, {})
        parts[part.part] = part
        if len(parts) < part.parts:
            return
        del self._snap_parts[part.sid]
        text = "".join(parts[i].data for i in range(part.parts))
        html = gzip.decompress(base64.b64decode(text)).decode() if part.enc == "gzip" else text
        page = Page(part.sid, part.seq, part.url, part.title, html, part.parts)
        async with self._changed:
            if self.pages and page.seq <= self.pages[-1].seq:
                self.violations.append(f"seq went from {self.pages[-1].seq} to {page.seq}")
            self.pages.append(page)
            self._changed.notify_all()

    async def _result(self, part: wire.Result) -> None:
        if part.parts > 1:
            partial = self._result_parts.setdefault(part.id, _Partial())
            partial.parts[part.part] = part.value
            if len(partial.parts) < part.parts:
                return
            del self._result_parts[part.id]
            value = json.loads("".join(partial.parts[i] for i in range(part.parts)))
        else:
            value = part.value
        reply = Reply(part.id, part.ok, value, part.error, part.code, part.parts)
        async with self._changed:
            self._results.setdefault(part.id, []).append(reply)
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every event)."""
        async with self._changed:
            return await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def page(self, predicate: Callable[[Page], bool], timeout: float = 30.0) -> Page:
        """The first snapshot (already received or coming) that satisfies ``predicate``."""

        def found() -> Page | None:
            return next((p for p in self.pages if predicate(p)), None)

        page: Page = await self.wait_for(found, timeout)
        return page

    async def send_command(
        self, name: str, args: dict[str, Any] | None = None, *, timeout: float = 10.0, id: str = ""
    ) -> str:
        """Send one command to every connected browser; returns its id."""
        ident = id or f"cmd-{next(self._ids)}"
        frame = wire.encode(
            wire.CommandDelivery(
                id=ident, source="consumer-1", name=name, args=args or {}, timeout=timeout
            )
        )
        for ws in list(self._sockets):
            await ws.send_str(frame)
        return ident

    async def command(
        self, name: str, args: dict[str, Any] | None = None, *, timeout: float = 10.0
    ) -> Reply:
        """Send a command and wait for its one result."""
        ident = await self.send_command(name, args, timeout=timeout)
        replies: list[Reply] = await self.wait_for(
            lambda: self._results.get(ident), timeout=timeout + 5
        )
        return replies[0]

    def replies(self, ident: str) -> list[Reply]:
        """Every result received for command ``ident`` (more than one is a bug)."""
        return list(self._results.get(ident, []))

    async def drop_connections(self) -> None:
        """Close every browser connection from the server side (1001 going away)."""
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionError):
                await ws.close(code=1001, message=b"going away")
