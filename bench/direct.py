"""The seed's design, in memory: the ceiling the local gateway is compared with.

One asyncio process, no bus, no Lambda, no moto: each connection has a
bounded outgoing queue (100, the oldest dropped when full) drained by a writer
task while a reader task handles what the client sends. A browser's snapshot
part goes straight into the queue of every consumer of its tenant, shaped as
the gateway delivers it, so the same Python client drives both systems.
Tokens are read, not verified: this stands for the machine's limit, not for a
product. Serves on 127.0.0.1 only, in a process of its own (``python -m bench.direct``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

__all__ = ["DirectRelay", "direct_relay"]

QUEUE_SIZE = 100


@dataclass(eq=False)
class _Peer:
    ws: ServerConnection
    tenant: str
    role: str
    client_id: str
    acks: bool
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dseq: int = 0
    dropped: int = 0

    def offer(self, frame: str) -> None:
        if self.queue.full():  # latest wins: the seed's policy for slow clients
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(frame)


class DirectRelay:
    """The relay's state: who is connected, per tenant."""

    def __init__(self) -> None:
        self.consumers: dict[str, set[_Peer]] = defaultdict(set)

    async def handle(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request is not None else "/"
        query = parse_qs(urlsplit(path).query)
        claims = jwt.decode(query.get("token", [""])[0], options={"verify_signature": False})
        peer = _Peer(
            ws,
            tenant=claims["tenant"],
            role=claims["role"],
            client_id=claims["client_id"],
            acks=query.get("acks", ["0"])[0] == "1",
        )
        if peer.role == "consumer":
            self.consumers[peer.tenant].add(peer)
        writer = asyncio.create_task(self._writer(peer))
        try:
            async for frame in ws:  # the reader controls the connection's life
                self._on_frame(peer, frame if isinstance(frame, str) else frame.decode())
        except ConnectionClosed:
            pass
        finally:
            self.consumers[peer.tenant].discard(peer)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    def _on_frame(self, peer: _Peer, frame: str) -> None:
        message: dict[str, Any] = json.loads(frame)
        action = message.get("action")
        if action == "ping":
            peer.offer(json.dumps({"action": "pong"}))
        elif action == "snapshot" and peer.role == "browser":
            message.pop("id", None)
            message.update(source=peer.client_id, missed=0)
            for consumer in self.consumers[peer.tenant]:
                if consumer.acks:
                    consumer.dseq += 1
                    message["dseq"] = consumer.dseq
                else:
                    message.pop("dseq", None)
                consumer.offer(json.dumps(message, separators=(",", ":")))

    @staticmethod
    async def _writer(peer: _Peer) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await peer.ws.send(await peer.queue.get())


async def _serve_forever() -> None:
    relay = DirectRelay()
    async with serve(relay.handle, "127.0.0.1", 0, max_size=256 * 1024) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"ws://127.0.0.1:{port}/direct", flush=True)
        await asyncio.Future()  # until the parent ends this process


@asynccontextmanager
async def direct_relay(*, ready_timeout: float = 30.0) -> AsyncIterator[str]:
    """Run a :class:`DirectRelay` in its own process (as the emulator runs in its own),
    on 127.0.0.1 and a free port; yield its ``ws://`` URL; terminate it afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.direct", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
        if not line.startswith(b"ws://"):
            raise RuntimeError("the direct relay did not start")
        yield line.decode().strip()
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
        if process.returncode is None:
            process.kill()
            await process.wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever())
