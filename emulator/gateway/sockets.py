"""The socket server: API Gateway's WebSocket endpoint (``/`` and ``/{stage}``).

One aiohttp handler per connection: stage check, throttling, the ``$connect``
handshake (a refusal answers the upgrade request with its status), the
upgrade with the frame guard, the read loop that hands each message to the
integrations as a task of its own, and ``$disconnect`` on every close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import WSMsgType, web
from aiohttp.web_ws import WebSocketResponse

from emulator.events import ConnectionInfo, new_id
from emulator.gateway.integrations import Integrations, Refusal, error_body, now_ms
from emulator.gateway.limits import FrameGuard, GuardedResponse, Limits, Throttle, watch_lifetime
from emulator.gateway.registry import Connection, ConnectionRegistry

__all__ = ["SocketServer"]

log = logging.getLogger("emulator.gateway")


def _connection_info(request: web.Request, *, stage: str, api_id: str) -> ConnectionInfo:
    """What API Gateway knows of a connection from its upgrade request."""
    headers: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        headers.setdefault(key, []).append(value)
    headers.setdefault("X-Forwarded-For", [request.remote or "127.0.0.1"])
    headers.setdefault("X-Forwarded-Proto", [request.scheme])
    query: dict[str, list[str]] = {}
    for key, value in request.query.items():
        query.setdefault(key, []).append(value)
    return ConnectionInfo(
        connection_id=new_id(),
        connected_at=now_ms(),
        source_ip=request.remote or "127.0.0.1",
        user_agent=request.headers.get("User-Agent", ""),
        domain_name=request.host,
        stage=stage,
        api_id=api_id,
        headers=headers,
        query=query,
    )


class SocketServer:
    """Serves the WebSocket side of one stage; connections live in ``registry``."""

    def __init__(
        self, *, registry: ConnectionRegistry, integrations: Integrations, limits: Limits
    ) -> None:
        self._registry = registry
        self._integrations = integrations
        self._limits = limits
        self._stage = integrations.api.stage.name
        self._throttle = Throttle(integrations.api.stage)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("GET", "/", self._handle)
        app.router.add_route("GET", "/{stage}", self._handle)
        app.router.add_route("GET", "/{stage}/", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        stage = request.match_info.get("stage")
        if stage is not None and stage != self._stage:
            return web.json_response({"message": "Forbidden"}, status=403)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response({"message": "Upgrade Required"}, status=426)
        if not self._throttle.admit_connect():
            return web.json_response({"message": "Too Many Requests"}, status=429)
        info = _connection_info(
            request, stage=self._stage, api_id=self._integrations.deployment.api_id
        )
        conn = Connection(info=info, last_active_ms=info.connected_at)
        self._registry.add(conn)
        try:
            return await self._handshake_and_serve(request, conn)
        finally:
            self._registry.remove(conn)

    async def _handshake_and_serve(
        self, request: web.Request, conn: Connection
    ) -> web.StreamResponse:
        outcome = await self._integrations.handshake(conn.info)
        if isinstance(outcome, Refusal):
            self._registry.stats.refused += 1
            return web.json_response({"message": outcome.message}, status=outcome.status)
        conn.info = outcome.info
        ws = self._upgrade(conn, outcome.subprotocol)
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            await self._disconnect(conn, 1006, "Connection closed abnormally")
            return ws
        conn.ws = ws
        conn.state = "open"
        conn.opened_mono = conn.last_active_mono = time.monotonic()
        self._registry.stats.connects += 1
        watchdog = asyncio.create_task(watch_lifetime(conn, self._limits, self._registry.close))
        try:
            code, reason = await self._read(conn, ws)
        finally:
            watchdog.cancel()
        conn.state = "closed"
        await self._disconnect(conn, code, reason)
        return ws

    def _upgrade(self, conn: Connection, subprotocol: str | None) -> GuardedResponse:
        limits = self._limits
        ws = GuardedResponse(
            guard=lambda inner: FrameGuard(
                inner,
                lambda why: self._violation(conn, why),
                frame_limit=limits.frame_limit,
                message_limit=limits.message_limit,
            ),
            autoping=True,
            compress=False,
            max_msg_size=16 * 1024 * 1024,
            timeout=5.0,
        )
        if subprotocol:
            # Only what $connect returned, never what the client merely offered.
            ws.headers["Sec-WebSocket-Protocol"] = subprotocol
        return ws

    def _violation(self, conn: Connection, why: str) -> None:
        log.info("closing %s with 1009: %s", conn.id, why)
        self._registry.track(conn, self._registry.close(conn, 1009, "Message too big"))

    async def _read(self, conn: Connection, ws: WebSocketResponse) -> tuple[int, str]:
        """Read until the socket closes; the close code and reason for ``$disconnect``."""
        client_close: tuple[int, str] | None = None
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if conn.closing:
                    continue  # bytes after a 1009: the connection is already going
                conn.last_active_ms = now_ms()
                conn.last_active_mono = time.monotonic()
                self._registry.stats.messages_in += 1
                self._registry.track(conn, self._dispatch(conn, msg.data))
            elif msg.type is WSMsgType.CLOSE:
                client_close = (int(msg.data or 1005), str(msg.extra or ""))
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
        if conn.close is not None:
            return conn.close
        if client_close is not None:
            return client_close
        return 1006, "Connection closed abnormally"

    async def _dispatch(self, conn: Connection, body: str | bytes) -> None:
        request_id = new_id()
        route = self._integrations.route_for(body)
        reply: str | bytes | None
        if route is None or route.integration_id is None:
            reply = error_body("Forbidden", conn.id, request_id)
        elif not self._throttle.admit(route.key):
            reply = error_body("Too Many Requests", conn.id, request_id)
        else:
            reply = await self._integrations.message(conn.info, route, body, request_id)
        if reply is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._registry.send(conn, reply)

    async def _disconnect(self, conn: Connection, code: int, reason: str) -> None:
        self._registry.stats.disconnects += 1
        if not await self._integrations.disconnect(conn.info, code, reason):
            self._registry.stats.disconnect_failures += 1
