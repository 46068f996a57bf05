"""The connection registry: every connection from authorizer to ``$disconnect``.

It holds the connections by id, sends to and closes them from the gateway's
side, tracks the work each one has in flight, and keeps the counters of the
status line. The socket server adds and removes connections; the
``@connections`` API and the lifetime watchdog only look them up and close them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp.web_ws import WebSocketResponse

from emulator.events import ConnectionInfo

__all__ = ["Connection", "ConnectionRegistry", "GatewayStats"]


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

    @property
    def is_live(self) -> bool:
        """Open and not being closed: what ``@connections`` may reach."""
        return self.state == "open" and not self.closing


@dataclass
class GatewayStats:
    """Counters for the live status line."""

    messages_in: int = 0
    messages_out: int = 0
    connects: int = 0
    refused: int = 0
    disconnects: int = 0
    disconnect_failures: int = 0


class ConnectionRegistry:
    """The gateway's connections by id, and what can be done to one from outside."""

    def __init__(self) -> None:
        #: Every connection from its handshake until its ``$disconnect`` has run.
        self.connections: dict[str, Connection] = {}
        self.stats = GatewayStats()

    def add(self, conn: Connection) -> None:
        self.connections[conn.id] = conn

    def remove(self, conn: Connection) -> None:
        """Forget ``conn`` for good (its ``$disconnect`` has run or it never opened)."""
        self.connections.pop(conn.id, None)
        conn.state = "closed"
        conn.done.set()

    def live(self, connection_id: str) -> Connection | None:
        """The connection ``connection_id`` if it is open and not closing."""
        conn = self.connections.get(connection_id)
        return conn if conn is not None and conn.is_live else None

    def track(self, conn: Connection, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` for ``conn`` as a task that :meth:`settle` waits for."""
        task = asyncio.get_running_loop().create_task(work)
        conn.tasks.add(task)
        task.add_done_callback(conn.tasks.discard)

    async def send(self, conn: Connection, data: str | bytes) -> None:
        """Send one message to ``conn`` (as one frame, as API Gateway does)."""
        if conn.ws is None or conn.state != "open" or conn.closing:
            raise ConnectionResetError("connection is not open")
        if isinstance(data, bytes):
            await conn.ws.send_bytes(data)
        else:
            await conn.ws.send_str(data)
        self.stats.messages_out += 1

    async def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close ``conn`` from the gateway side; its reader then runs ``$disconnect``."""
        if conn.closing or conn.ws is None or conn.state != "open":
            return
        conn.closing = True
        conn.close = (code, reason)
        with contextlib.suppress(Exception):
            await conn.ws.close(code=code, message=reason.encode())

    async def drop_all(self, code: int, reason: str) -> None:
        """Close every open connection with ``code`` and wait for their ``$disconnect``."""
        conns = [c for c in self.connections.values() if c.state == "open"]
        await asyncio.gather(*(self.close(c, code, reason) for c in conns))
        await asyncio.gather(*(c.done.wait() for c in conns))

    async def settle(self) -> None:
        """Wait until every message received so far has been fully handled."""
        while True:
            tasks = [t for c in list(self.connections.values()) for t in c.tasks]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)
