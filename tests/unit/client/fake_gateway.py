"""A tiny in-process fake of the gateway for the client's asyncio-layer tests.

It speaks wire protocol v1 on 127.0.0.1, port 0, with the routing of the real
gateway reduced to the minimum the tests need. Tokens are ``role:client_id``
(``consumer:c1``, ``browser:b1``); the token ``bad`` is refused with HTTP 401.
It records every message it receives, and lets a test wait for a condition on
them (no sleeps).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

WAIT = 10.0  # bound on every wait in these tests


@dataclass
class FakeConn:
    ws: ServerConnection
    role: str
    client_id: str
    acks: bool
    number: int
    subs: set[str] | None = None
    dseq: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    overlapped: bool = False  # another connection of its client id was open at its handshake


class FakeGateway:
    def __init__(self) -> None:
        self.server: Server | None = None
        self.port = 0
        self.conns: list[FakeConn] = []
        self.handshakes = 0
        self.refused = 0
        self.issuers: dict[str, FakeConn] = {}
        self.busy_targets: set[str] = set()
        self.silent_commands = False  # swallow commands (to test timeouts)
        self.silent_lists = False  # swallow list requests (the test answers them)
        self.echo_ids = True
        self.answer_pings = True
        self.refuse_all = False  # refuse every token (an expired one, say)
        # Like the real gateway: a browser's new connection closes its older one
        # during the handshake (before the new one is open).
        self.supersede_browsers = False
        self.list_page = 0  # when set, ``browsers`` replies are pages of this many
        self._changed = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/test"

    async def start(self) -> None:
        self.server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            process_request=self._check_token,
            compression=None,
        )
        self.port = self.server.sockets[0].getsockname()[1] if not self.port else self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def drop_all(self) -> None:
        for conn in list(self.conns):
            conn.ws.transport.abort()

    def live(self, client_id: str) -> FakeConn | None:
        for conn in reversed(self.conns):
            if conn.client_id == client_id and conn.ws.close_code is None:
                return conn
        return None

    def messages(self, client_id: str, action: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for c in self.conns
            if c.client_id == client_id
            for m in c.received
            if action is None or m.get("action") == action
        ]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        token = query.get("token", [""])[0]
        if ":" not in token or self.refuse_all:
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid token\n")
        role, _, client_id = token.partition(":")
        older = self.live(client_id)
        if self.supersede_browsers and role == "browser" and older is not None:
            await older.ws.close(1000, "superseded")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        role, _, client_id = query["token"][0].partition(":")
        self.handshakes += 1
        conn = FakeConn(ws, role, client_id, query.get("acks") == ["1"], self.handshakes)
        conn.overlapped = self.live(client_id) is not None
        self.conns.append(conn)
        await self._notify()
        try:
            async for text in ws:
                msg = json.loads(text)
                conn.received.append(msg)
                await self._route(conn, msg)
                await self._notify()
        except ConnectionClosed:
            pass
        finally:
            await self._notify()

    async def send(self, conn: FakeConn, obj: dict[str, Any]) -> None:
        await conn.ws.send(json.dumps(obj))

    async def deliver_snapshot(self, conn: FakeConn, source: str, msg: dict[str, Any]) -> None:
        out = {k: v for k, v in msg.items() if k != "id"}
        out["source"] = source
        if conn.acks:
            conn.dseq += 1
            out["dseq"] = conn.dseq
        await self.send(conn, out)

    async def _route(self, conn: FakeConn, msg: dict[str, Any]) -> None:
        action = msg["action"]
        reply_id = {"id": msg["id"]} if self.echo_ids and "id" in msg else {}
        if action == "ping":
            if self.answer_pings:
                await self.send(conn, {"action": "pong"})
        elif action == "list" and not self.silent_lists:
            await self._list(conn, msg, reply_id)
        elif action in ("subscribe", "unsubscribe"):
            subs = conn.subs if conn.subs is not None else set()
            subs = (
                subs | set(msg["browsers"])
                if action == "subscribe"
                else subs - set(msg["browsers"])
            )
            conn.subs = subs
            await self.send(conn, {"action": "subscribed", "browsers": sorted(subs), **reply_id})
        elif action == "snapshot":
            for c in self.conns:
                wanted = c.subs is None or "*" in c.subs or conn.client_id in c.subs
                if c.role == "consumer" and c.ws.close_code is None and wanted:
                    await self.deliver_snapshot(c, conn.client_id, msg)
        elif action == "command":
            await self._command(conn, msg)
        elif action == "result":
            issuer = self.issuers.get(msg["id"])
            if issuer is not None:
                await self.send(issuer, {**msg, "source": conn.client_id})

    async def _list(self, conn: FakeConn, msg: dict[str, Any], reply_id: dict[str, Any]) -> None:
        browsers = [
            {"client_id": c.client_id, "connected_at": 1000 * c.number}
            for c in self.conns
            if c.role == "browser" and c.ws.close_code is None
        ]
        page: dict[str, Any] = {}
        if self.list_page:
            start = int(msg.get("cursor", "0"))
            end = start + self.list_page
            page = {"next": str(end)} if end < len(browsers) else {}
            browsers = browsers[start:end]
        await self.send(conn, {"action": "browsers", "browsers": browsers, **reply_id, **page})

    async def _command(self, conn: FakeConn, msg: dict[str, Any]) -> None:
        target = self.live(msg["target"])
        if msg["target"] in self.busy_targets:
            await self.send(
                conn, {"action": "error", "code": "busy", "message": "busy", "id": msg["id"]}
            )
        elif target is None:
            await self.send(
                conn,
                {
                    "action": "error",
                    "code": "target_offline",
                    "message": f"{msg['target']} is offline",
                    "id": msg["id"],
                },
            )
        elif not self.silent_commands:
            self.issuers[msg["id"]] = conn
            out = {k: v for k, v in msg.items() if k != "target"}
            out["source"] = conn.client_id
            await self.send(target, out)
