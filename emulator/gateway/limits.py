"""Limits and lifecycle: frame and message size, throttling, idle and maximum duration.

* API Gateway closes a connection with 1009 when one frame carries more than
  32 KB or one (fragmented) message more than 128 KB: :class:`FrameGuard`
  reads frame headers as bytes arrive, inside aiohttp's parser.
* Stage throttling is a token bucket per stage, and per route with route
  settings (:class:`Throttle`).
* A connection closes with 1001 after 10 minutes without a data message or
  after 2 hours in all (:func:`watch_lifetime`); tests shorten both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp.web_request import BaseRequest
from aiohttp.web_ws import WebSocketResponse
from tabrelay.wire import FRAME_LIMIT, MESSAGE_LIMIT  # API Gateway's, as the protocol names them

from emulator.gateway.registry import Connection
from emulator.template import Stage

__all__ = [
    "FRAME_LIMIT",
    "MESSAGE_LIMIT",
    "FrameGuard",
    "GuardedResponse",
    "Limits",
    "Throttle",
    "TokenBucket",
    "watch_lifetime",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """A stage's per-connection limits: AWS's unless a test shortens them."""

    idle_timeout: float = 600.0
    max_duration: float = 7200.0
    frame_limit: int = FRAME_LIMIT
    message_limit: int = MESSAGE_LIMIT


class FrameGuard:
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


class GuardedResponse(WebSocketResponse):
    """A WebSocketResponse whose parser is wrapped by :class:`FrameGuard`."""

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


class TokenBucket:
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


class Throttle:
    """A stage's throttling: one bucket for the stage, one per route with route settings."""

    def __init__(self, stage: Stage) -> None:
        self._stage = TokenBucket(stage.rate_limit, stage.burst_limit)
        self._routes: Mapping[str, TokenBucket] = {
            key: TokenBucket(rate, burst) for key, (burst, rate) in stage.route_limits.items()
        }

    def admit_connect(self) -> bool:
        """Whether a new connection may start its handshake (the stage's bucket)."""
        return self._stage.take()

    def admit(self, route_key: str) -> bool:
        """Whether a message for ``route_key`` may run (the stage's, then the route's bucket)."""
        bucket = self._routes.get(route_key)
        return self._stage.take() and (bucket is None or bucket.take())


async def watch_lifetime(
    conn: Connection,
    limits: Limits,
    close: Callable[[Connection, int, str], Awaitable[None]],
) -> None:
    """Close ``conn`` with 1001 at the idle timeout or the maximum connection duration."""
    while conn.state == "open" and not conn.closing:
        now = time.monotonic()
        idle_at = conn.last_active_mono + limits.idle_timeout
        max_at = conn.opened_mono + limits.max_duration
        if now >= max_at or now >= idle_at:
            await close(conn, 1001, "Going away")
            return
        # A timer, not synchronization: the deadline is the behaviour under test.
        await asyncio.sleep(min(idle_at, max_at) - now)
