"""The consumer's side of the end-to-end tests: snapshots from the bundled client, collected."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import tabrelay

__all__ = ["Snapshots"]


class Snapshots:
    """Collects every snapshot ``relay`` yields; ``wait`` finds one by predicate."""

    def __init__(self, relay: tabrelay.Relay) -> None:
        self.relay = relay
        self.seen: list[tabrelay.Snapshot] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Snapshots:
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _collect(self) -> None:
        async for snap in self.relay.snapshots():
            async with self._changed:
                self.seen.append(snap)
                self._changed.notify_all()

    async def wait(
        self,
        predicate: Callable[[tabrelay.Snapshot], bool],
        *,
        after: int = 0,
        timeout: float = 30.0,
    ) -> tabrelay.Snapshot:
        """The first snapshot from index ``after`` on that satisfies ``predicate``."""

        def found() -> tabrelay.Snapshot | None:
            return next((s for s in self.seen[after:] if predicate(s)), None)

        async with self._changed:
            snap: tabrelay.Snapshot = await asyncio.wait_for(self._changed.wait_for(found), timeout)
        return snap
