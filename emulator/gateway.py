"""The API Gateway WebSocket data plane and its ``@connections`` API, on aiohttp.

One aiohttp application serves, on one host and port:

* the WebSocket endpoint (``/`` and ``/{stage}``): REQUEST authorizer,
  ``$connect`` (a non-2xx answer refuses the handshake with that status),
  route selection, Lambda proxy and mock integrations, route responses,
  32 KB frame / 128 KB message limits (close 1009), idle and maximum-duration
  closes (1001), and ``$disconnect`` on every close;
* the Management API (``/{stage}/@connections/{id}``: POST, GET, DELETE),
  answering 410 ``GoneException`` for unknown, closed or still-connecting ids,
  and, as on AWS, only to requests SigV4-signed with the local credentials
  (403 otherwise, so no web page can post to a connection). No route answers
  a CORS preflight or sends ``Access-Control-*`` headers.

Events are built by :mod:`emulator.events`; handlers run through
:class:`emulator.lambdas.LocalFunction`. This module knows nothing of moto or
of the template file: it gets the parsed API and the functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.web_request import BaseRequest
from aiohttp.web_ws import WebSocketResponse
from tabrelay.wire import FRAME_LIMIT, MESSAGE_LIMIT  # API Gateway's, as the protocol names them

from emulator.events import (
    ConnectionInfo,
    authorizer_event,
    connect_event,
    disconnect_event,
    message_event,
    new_id,
)
from emulator.lambdas import FunctionError, LocalFunction
from emulator.sigv4 import Credentials, SignatureError, verify
from emulator.template import Api, Integration, Route

__all__ = [
    "FRAME_LIMIT",
    "MESSAGE_LIMIT",
    "Connection",
    "Gateway",
    "GatewayStats",
]

log = logging.getLogger("emulator.gateway")

#: API Gateway's integration timeout caps every synchronous invocation.
INTEGRATION_TIMEOUT_S = 29.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _FrameGuard:
    """Wraps aiohttp's WebSocket parser to see frame headers as bytes arrive.

    API Gateway closes a connection with 1009 when a frame's payload exceeds
    32 KB or a (fragmented) message exceeds 128 KB. aiohttp only exposes whole
    messages, so this reads each frame header before passing the bytes on
    unchanged, and reports the first violation once.
    """

    def __init__(
        self,
        inner: Any,
        on_violation: Callable[[str], None],
        *,
        frame_limit: int,
        message_limit: int,
    ) -> None:
        self._inner = inner
        self._on_violation = on_violation
        self._frame_limit = frame_limit
        self._message_limit = message_limit
        self._header = bytearray()
        self._remaining = 0
        self._message_total = 0
        self._violated = False

    def feed_eof(self) -> None:
        self._inner.feed_eof()

    def feed_data(self, data: Any) -> Any:
        if not self._violated:
            self._inspect(bytes(data))
        return self._inner.feed_data(data)

    def _inspect(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._remaining:
                take = min(self._remaining, len(view))
                self._remaining -= take
                view = view[take:]
                continue
            self._header += view
            view = memoryview(b"")
            header = self._header
            if len(header) < 2:
                return
            length = header[1] & 0x7F
            need = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            need += 4 if header[1] & 0x80 else 0
            if len(header) < need:
                return
            if length == 126:
                length = int.from_bytes(header[2:4], "big")
            elif length == 127:
                length = int.from_bytes(header[2:10], "big")
            opcode = header[0] & 0x0F
            rest = bytes(header[need:])
            self._header = bytearray()
            if opcode < 0x8:  # data frames; control frames are small by the RFC
                if opcode != 0x0:
                    self._message_total = 0
                self._message_total += length
                if length > self._frame_limit or self._message_total > self._message_limit:
                    self._violated = True
                    self._on_violation(
                        "frame too large" if length > self._frame_limit else "message too large"
                    )
                    return
            self._remaining = length
            view = memoryview(rest)


class _GuardedResponse(WebSocketResponse):
    """A WebSocketResponse whose parser is wrapped by :class:`_FrameGuard`."""

    def __init__(self, guard: Callable[[Any], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard_factory = guard

    def _post_start(self, request: BaseRequest, protocol: str | None, writer: Any) -> None:
        super()._post_start(request, protocol, writer)
        proto: Any = request.protocol
        # aiohttp (pinned) keeps the WebSocket parser here; without it the
        # 32 KB frame limit could not be enforced, so fail loudly.
        if getattr(proto, "_payload_parser", None) is None:
            raise RuntimeError("aiohttp internals changed: no _payload_parser to guard")
        proto._payload_parser = self._guard_factory(proto._payload_parser)


@dataclass(eq=False)
class Connection:
    """One client connection, from authorizer to ``$disconnect``."""

    info: ConnectionInfo
    state: str = "connecting"  # connecting -> open -> closed
    ws: WebSocketResponse | None = None
    last_active_ms: int = 0
    opened_mono: float = 0.0
    last_active_mono: float = 0.0
    closing: bool = False
    close: tuple[int, str] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def id(self) -> str:
        return self.info.connection_id

    @property
    def role(self) -> str:
        auth = self.info.authorizer or {}
        return str(auth.get("role", "unknown"))


@dataclass
class GatewayStats:
    """Counters for the live status line."""

    messages_in: int = 0
    messages_out: int = 0
    connects: int = 0
    refused: int = 0
    disconnects: int = 0
    disconnect_failures: int = 0


class _Bucket:
    """A token bucket (API Gateway's stage throttling: rate per second, burst)."""

    def __init__(self, rate: float | None, burst: int | None) -> None:
        self._rate = rate
        self._burst = float(burst) if burst is not None else None
        self._tokens = self._burst or 0.0
        self._last = time.monotonic()

    def take(self) -> bool:
        if self._rate is None or self._burst is None:
            return True
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def _error_body(message: str, conn: Connection, request_id: str) -> str:
    return json.dumps(
        {"message": message, "connectionId": conn.id, "requestId": request_id},
        separators=(",", ":"),
    )


def _policy_allows(policy: Any, method_arn: str) -> bool:
    """Evaluate an authorizer's IAM policy for ``execute-api:Invoke`` on ``method_arn``."""

    def matches(pattern: str, value: str) -> bool:
        # fullmatch: "$" would let a value with a trailing newline through.
        regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
        return re.fullmatch(regex, value, re.DOTALL) is not None

    def as_list(value: Any) -> list[str]:
        return [value] if isinstance(value, str) else list(value or [])

    if not isinstance(policy, dict):
        raise ValueError("policyDocument is not an object")
    allowed = False
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        actions = as_list(statement.get("Action"))
        resources = as_list(statement.get("Resource"))
        if not any(matches(a, "execute-api:Invoke") for a in actions):
            continue
        if not any(matches(r, method_arn) for r in resources):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            return False
        if effect == "allow":
            allowed = True
    return allowed


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if key.lower() == name.lower():
            return str(value)
    return None


def _select(expression: str, body: str | bytes) -> str | None:
    """Evaluate a route selection expression such as ``$request.body.action``."""
    prefix = "$request.body."
    if not expression.startswith(prefix):
        return expression.replace("\\$", "$") if "$request" not in expression else None
    if isinstance(body, bytes):
        return None
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    for part in expression[len(prefix) :].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if isinstance(value, dict | list) or value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


class Gateway:
    """The WebSocket API of one stage, served by aiohttp.

    ``functions`` maps the template's logical ids of Lambda functions to
    their local runners. ``idle_timeout`` and ``max_duration`` are AWS's
    10 minutes and 2 hours unless a test shortens them.
    """

    def __init__(
        self,
        *,
        api: Api,
        functions: Mapping[str, LocalFunction],
        api_id: str,
        region: str,
        account: str,
        idle_timeout: float = 600.0,
        max_duration: float = 7200.0,
        frame_limit: int = FRAME_LIMIT,
        message_limit: int = MESSAGE_LIMIT,
        credentials: Credentials | None = None,
    ) -> None:
        self.api = api
        #: What ``@connections`` callers must sign with; None refuses them all.
        self.credentials = credentials
        self.functions = functions
        self.api_id = api_id
        self.region = region
        self.account = account
        self.idle_timeout = idle_timeout
        self.max_duration = max_duration
        self.frame_limit = frame_limit
        self.message_limit = message_limit
        self.connections: dict[str, Connection] = {}
        self.stats = GatewayStats()
        self._stage_bucket = _Bucket(api.stage.rate_limit, api.stage.burst_limit)
        self._route_buckets = {
            key: _Bucket(rate, burst) for key, (burst, rate) in api.stage.route_limits.items()
        }
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.app = self._build_app()

    # ------------------------------------------------------------------ serving

    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[self._guard])
        for prefix in ("", "/{stage}"):
            app.router.add_route("POST", prefix + "/@connections/{cid}", self._post)
            app.router.add_route("GET", prefix + "/@connections/{cid}", self._get)
            app.router.add_route("DELETE", prefix + "/@connections/{cid}", self._delete)
        app.router.add_route("GET", "/", self._socket)
        app.router.add_route("GET", "/{stage}", self._socket)
        app.router.add_route("GET", "/{stage}/", self._socket)
        return app

    async def start(self, host: str, port: int) -> int:
        """Serve on ``host:port`` (0: a free port); the port in use."""
        # A fresh application per start: an aiohttp app cannot outlive its runner.
        self.app = self._build_app()
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await self._site.start()
        except OSError as exc:
            if host != "localhost" or exc.errno == errno.EADDRINUSE:
                await self._runner.cleanup()
                raise
            # "localhost" may resolve to an IPv6 address this machine cannot bind.
            self._site = web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True)
            await self._site.start()
        addresses = self._runner.addresses
        return int(addresses[0][1]) if addresses else port

    async def stop(self) -> None:
        """Close every connection as AWS would (1001, ``$disconnect``), then stop serving."""
        await self.drop_all(1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drop_all(self, code: int = 1001, reason: str = "Going away") -> None:
        """Close every connection with ``code`` and wait for their ``$disconnect``."""
        conns = [c for c in self.connections.values() if c.state == "open"]
        await asyncio.gather(*(self.close_connection(c, code, reason) for c in conns))
        await asyncio.gather(*(c.done.wait() for c in conns))

    async def settle(self) -> None:
        """Wait until every message received so far has been fully handled."""
        while True:
            tasks = [t for c in list(self.connections.values()) for t in c.tasks]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close_connection(self, conn: Connection, code: int, reason: str) -> None:
        """Close ``conn`` from the gateway side; its reader then runs ``$disconnect``."""
        if conn.closing or conn.ws is None or conn.state != "open":
            return
        conn.closing = True
        conn.close = (code, reason)
        with contextlib.suppress(Exception):
            await conn.ws.close(code=code, message=reason.encode())

    # ------------------------------------------------------------------ $connect

    def _method_arn(self, route_key: str) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{self.account}:"
            f"{self.api_id}/{self.api.stage.name}/{route_key}"
        )

    async def _authorize(
        self, route: Route, info: ConnectionInfo
    ) -> tuple[int, str] | dict[str, Any]:
        """The authorizer context to pass on, or the (status, message) refusing the handshake."""
        authorizer = self.api.authorizers.get(route.authorizer_id or "")
        if authorizer is None or authorizer.function_id is None:
            return (500, "Internal server error")
        for source in authorizer.identity_sources:
            parts = source.split(".")
            if parts[:3] == ["route", "request", "querystring"]:
                if not info.query.get(parts[3], [""])[-1]:
                    return (401, "Unauthorized")
            elif parts[:3] == ["route", "request", "header"]:
                lowered = {k.lower(): v for k, v in info.headers.items()}
                if not lowered.get(parts[3].lower(), [""])[-1]:
                    return (401, "Unauthorized")
        function = self.functions[authorizer.function_id]
        method_arn = self._method_arn("$connect")
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(
                function.invoke(
                    authorizer_event(
                        info, method_arn=method_arn, now_ms=_now_ms(), request_id=new_id()
                    )
                ),
                INTEGRATION_TIMEOUT_S,
            )
        except FunctionError as exc:
            if exc.error_message == "Unauthorized":
                return (401, "Unauthorized")
            return (500, "Internal server error")
        except TimeoutError:
            return (500, "Internal server error")
        try:
            if not isinstance(result, dict):
                raise ValueError("authorizer result is not an object")
            allowed = _policy_allows(result.get("policyDocument"), method_arn)
            context = result.get("context") or {}
            if not isinstance(context, dict) or any(
                isinstance(v, dict | list) for v in context.values()
            ):
                raise ValueError("authorizer context must hold only strings, numbers, booleans")
        except (ValueError, AttributeError, TypeError) as exc:
            log.warning("authorizer %s returned a malformed result: %s", function.name, exc)
            return (500, "Internal server error")
        if not allowed:
            return (403, "Forbidden")
        latency = int((time.monotonic() - started) * 1000)
        return {
            **context,
            "principalId": result.get("principalId", ""),
            "integrationLatency": latency,
        }

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        stage = request.match_info.get("stage")
        if stage is not None and stage != self.api.stage.name:
            return web.json_response({"message": "Forbidden"}, status=403)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response({"message": "Upgrade Required"}, status=426)
        if not self._stage_bucket.take():
            return web.json_response({"message": "Too Many Requests"}, status=429)

        headers: dict[str, list[str]] = {}
        for key, value in request.headers.items():
            headers.setdefault(key, []).append(value)
        headers.setdefault("X-Forwarded-For", [request.remote or "127.0.0.1"])
        headers.setdefault("X-Forwarded-Proto", [request.scheme])
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            query.setdefault(key, []).append(value)
        now = _now_ms()
        info = ConnectionInfo(
            connection_id=new_id(),
            connected_at=now,
            source_ip=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            domain_name=request.host,
            stage=self.api.stage.name,
            api_id=self.api_id,
            headers=headers,
            query=query,
        )
        conn = Connection(info=info, last_active_ms=now)
        self.connections[conn.id] = conn
        try:
            return await self._handshake_and_serve(request, conn)
        finally:
            self.connections.pop(conn.id, None)
            conn.state = "closed"
            conn.done.set()

    async def _handshake_and_serve(
        self, request: web.Request, conn: Connection
    ) -> web.StreamResponse:
        route = self.api.routes.get("$connect")
        if route is not None and route.authorization_type == "CUSTOM":
            outcome = await self._authorize(route, conn.info)
            if isinstance(outcome, tuple):
                self.stats.refused += 1
                return web.json_response({"message": outcome[1]}, status=outcome[0])
            conn.info = replace(conn.info, authorizer=outcome)

        subprotocol: str | None = None
        if route is not None and route.integration_id is not None:
            integration = self.api.integrations[route.integration_id]
            status, response = await self._connect_integration(integration, conn)
            if not 200 <= status < 300:
                self.stats.refused += 1
                return web.json_response(
                    {"message": "Forbidden" if status == 403 else "Internal server error"}
                    if status >= 500 or status == 403
                    else {"message": "Connection refused"},
                    status=status,
                )
            if isinstance(response, dict):
                subprotocol = _header(response.get("headers"), "Sec-WebSocket-Protocol")
                if subprotocol is None:
                    multi = response.get("multiValueHeaders")
                    values = _header(multi, "Sec-WebSocket-Protocol")
                    if values is not None:
                        subprotocol = values.strip("[]'\" ")

        ws = _GuardedResponse(
            guard=lambda inner: _FrameGuard(
                inner,
                lambda why: self._violation(conn, why),
                frame_limit=self.frame_limit,
                message_limit=self.message_limit,
            ),
            autoping=True,
            compress=False,
            max_msg_size=16 * 1024 * 1024,
            timeout=5.0,
        )
        if subprotocol:
            # Only what $connect returned, never what the client merely offered.
            ws.headers["Sec-WebSocket-Protocol"] = subprotocol
        try:
            await ws.prepare(request)
        except (ConnectionError, RuntimeError):
            await self._run_disconnect(conn, 1006, "Connection closed abnormally")
            return ws
        conn.ws = ws
        conn.state = "open"
        conn.opened_mono = conn.last_active_mono = time.monotonic()
        self.stats.connects += 1
        watchdog = asyncio.create_task(self._watch(conn))
        try:
            code, reason = await self._read(conn, ws)
        finally:
            watchdog.cancel()
        conn.state = "closed"
        await self._run_disconnect(conn, code, reason)
        return ws

    async def _connect_integration(
        self, integration: Integration, conn: Connection
    ) -> tuple[int, Any]:
        if integration.type == "MOCK":
            return self._mock_status(integration), None
        if integration.function_id is None:
            return 500, None
        function = self.functions[integration.function_id]
        try:
            response = await asyncio.wait_for(
                function.invoke(connect_event(conn.info, now_ms=_now_ms(), request_id=new_id())),
                INTEGRATION_TIMEOUT_S,
            )
        except (FunctionError, TimeoutError):
            return 502, None
        if isinstance(response, dict) and "statusCode" in response:
            try:
                return int(response["statusCode"]), response
            except (TypeError, ValueError):
                return 502, None
        return 200, response

    # ------------------------------------------------------------------ messages

    def _violation(self, conn: Connection, why: str) -> None:
        log.info("closing %s with 1009: %s", conn.id, why)
        task = asyncio.get_running_loop().create_task(
            self.close_connection(conn, 1009, "Message too big")
        )
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def _read(self, conn: Connection, ws: WebSocketResponse) -> tuple[int, str]:
        """Read until the socket closes; the close code and reason for ``$disconnect``."""
        client_close: tuple[int, str] | None = None
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                if conn.closing:
                    continue  # bytes after a 1009: the connection is already going
                now_ms = _now_ms()
                conn.last_active_ms = now_ms
                conn.last_active_mono = time.monotonic()
                self.stats.messages_in += 1
                task = asyncio.create_task(self._dispatch(conn, msg.data))
                conn.tasks.add(task)
                task.add_done_callback(conn.tasks.discard)
            elif msg.type is WSMsgType.CLOSE:
                client_close = (int(msg.data or 1005), str(msg.extra or ""))
            elif msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
        if conn.close is not None:
            return conn.close
        if client_close is not None:
            return client_close
        return 1006, "Connection closed abnormally"

    async def _watch(self, conn: Connection) -> None:
        """Close with 1001 at the idle timeout or the maximum connection duration."""
        while conn.state == "open" and not conn.closing:
            now = time.monotonic()
            idle_at = conn.last_active_mono + self.idle_timeout
            max_at = conn.opened_mono + self.max_duration
            if now >= max_at:
                await self.close_connection(conn, 1001, "Going away")
                return
            if now >= idle_at:
                await self.close_connection(conn, 1001, "Going away")
                return
            # A timer, not synchronization: the deadline is the behaviour under test.
            await asyncio.sleep(min(idle_at, max_at) - now)

    def _route_for(self, body: str | bytes) -> Route | None:
        key = _select(self.api.route_selection_expression, body)
        if key is not None and key in self.api.routes and not key.startswith("$"):
            return self.api.routes[key]
        return self.api.routes.get("$default")

    async def send(self, conn: Connection, data: str | bytes) -> None:
        """Send one message to ``conn`` (as one frame, as API Gateway does)."""
        if conn.ws is None or conn.state != "open" or conn.closing:
            raise ConnectionResetError("connection is not open")
        if isinstance(data, bytes):
            await conn.ws.send_bytes(data)
        else:
            await conn.ws.send_str(data)
        self.stats.messages_out += 1

    async def _reply(self, conn: Connection, data: str | bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(conn, data)

    async def _dispatch(self, conn: Connection, body: str | bytes) -> None:
        request_id = new_id()
        route = self._route_for(body)
        if route is None or route.integration_id is None:
            await self._reply(conn, _error_body("Forbidden", conn, request_id))
            return
        bucket = self._route_buckets.get(route.key)
        if not self._stage_bucket.take() or (bucket is not None and not bucket.take()):
            await self._reply(conn, _error_body("Too Many Requests", conn, request_id))
            return
        integration = self.api.integrations[route.integration_id]
        replies = bool(route.response_selection_expression) and route.has_route_response
        if integration.type == "MOCK":
            rendered = self._mock_body(integration, conn, route, request_id)
            if replies and rendered is not None:
                await self._reply(conn, rendered)
            return
        if integration.function_id is None:
            await self._reply(conn, _error_body("Internal server error", conn, request_id))
            return
        function = self.functions[integration.function_id]
        event = message_event(
            conn.info,
            route_key=route.key,
            body=body,
            now_ms=_now_ms(),
            request_id=request_id,
            message_id=new_id(),
        )
        try:
            result = await asyncio.wait_for(function.invoke(event), INTEGRATION_TIMEOUT_S)
        except (FunctionError, TimeoutError):
            await self._reply(conn, _error_body("Internal server error", conn, request_id))
            return
        if not replies:
            return
        if isinstance(result, dict) and ("statusCode" in result or "body" in result):
            reply = result.get("body")
            if reply is None:
                return
            if result.get("isBase64Encoded"):
                import base64

                await self._reply(conn, base64.b64decode(str(reply)))
            else:
                await self._reply(conn, reply if isinstance(reply, str) else json.dumps(reply))
        elif result is not None:
            await self._reply(conn, result if isinstance(result, str) else json.dumps(result))

    def _mock_status(self, integration: Integration) -> int:
        templates = integration.request_templates
        text = templates.get("$default") or next(iter(templates.values()), None)
        if text is None:
            return 200
        try:
            data = json.loads(text)
            return int(data.get("statusCode", 200))
        except (ValueError, TypeError, AttributeError):
            return 200

    def _mock_body(
        self, integration: Integration, conn: Connection, route: Route, request_id: str
    ) -> str | None:
        status = str(self._mock_status(integration))
        chosen = None
        for response in integration.responses:
            key = response.key
            if key.startswith("/") and key.endswith("/") and re.fullmatch(key[1:-1], status):
                chosen = response
                break
        if chosen is None:
            chosen = next((r for r in integration.responses if r.key == "$default"), None)
        if chosen is None or not chosen.templates:
            return None
        template = chosen.templates.get("$default") or next(iter(chosen.templates.values()))
        context = {
            "connectionId": conn.id,
            "requestId": request_id,
            "routeKey": route.key,
            "stage": self.api.stage.name,
            "apiId": self.api_id,
            "domainName": conn.info.domain_name,
            "requestTimeEpoch": str(_now_ms()),
        }
        return re.sub(
            r"\$\{?context\.(\w+)\}?",
            lambda m: context.get(m.group(1), ""),
            template,
        )

    # ------------------------------------------------------------------ $disconnect

    async def _run_disconnect(self, conn: Connection, code: int, reason: str) -> None:
        self.stats.disconnects += 1
        route = self.api.routes.get("$disconnect")
        if route is None or route.integration_id is None:
            return
        integration = self.api.integrations[route.integration_id]
        if integration.function_id is None:
            return
        event = disconnect_event(
            conn.info, status_code=code, reason=reason, now_ms=_now_ms(), request_id=new_id()
        )
        try:
            await asyncio.wait_for(
                self.functions[integration.function_id].invoke(event), INTEGRATION_TIMEOUT_S
            )
        except (FunctionError, TimeoutError):
            self.stats.disconnect_failures += 1

    # ------------------------------------------------------------------ @connections

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        """Refuse preflights anywhere, and unsigned or wrongly signed ``@connections`` calls."""
        if request.method == "OPTIONS":
            return web.json_response({"message": "Forbidden"}, status=403)
        if "/@connections/" in request.path:
            body = await request.read()
            try:
                if self.credentials is None:
                    raise SignatureError("ForbiddenException", "Forbidden")
                verify(
                    method=request.method,
                    raw_path=request.raw_path,
                    headers=list(request.headers.items()),
                    body=body,
                    credentials=self.credentials,
                    region=self.region,
                    service="execute-api",
                )
            except SignatureError as refused:
                return web.json_response(
                    {"message": refused.message},
                    status=403,
                    headers={"x-amzn-ErrorType": refused.code},
                )
        response: web.StreamResponse = await handler(request)
        return response

    def _gone(self) -> web.Response:
        return web.json_response(
            {"message": None}, status=410, headers={"x-amzn-ErrorType": "GoneException"}
        )

    def _live(self, request: web.Request) -> Connection | None:
        stage = request.match_info.get("stage")
        if stage is not None and stage != self.api.stage.name:
            return None
        conn = self.connections.get(request.match_info["cid"])
        if conn is None or conn.state != "open" or conn.closing:
            return None
        return conn

    async def _post(self, request: web.Request) -> web.Response:
        data = await request.read()
        conn = self._live(request)
        if conn is None:
            return self._gone()
        if len(data) > self.message_limit:
            return web.json_response(
                {"message": "Message too long"},
                status=413,
                headers={"x-amzn-ErrorType": "PayloadTooLargeException"},
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            payload: str | bytes = data
        else:
            payload = text
        try:
            await self.send(conn, payload)
        except (ConnectionError, RuntimeError):
            return self._gone()
        return web.Response(status=200)

    async def _get(self, request: web.Request) -> web.Response:
        conn = self._live(request)
        if conn is None:
            return self._gone()
        return web.json_response(
            {
                "connectedAt": _iso(conn.info.connected_at),
                "identity": {"sourceIp": conn.info.source_ip, "userAgent": conn.info.user_agent},
                "lastActiveAt": _iso(conn.last_active_ms),
            }
        )

    async def _delete(self, request: web.Request) -> web.Response:
        conn = self._live(request)
        if conn is None:
            return self._gone()
        await self.close_connection(conn, 1000, "")
        return web.Response(status=204)
