"""Per-connection inbound rate limit, counted in DynamoDB only near the limit.

Messages are counted in fixed one-second windows, per connection. Each warm
container counts what it serves in memory, and writes to the counter shared by
every container (an atomic counter per connection and window) only once its own
count in the window passes half the limit (``quiet``): then it adds what it
counted so far, and from there every ``flush_every`` messages (one write per
ten at the default limit). A connection that stays under half its limit in
every container costs no write at all; one near or over its limit is counted
across containers.

The bound this leaves (docs/architecture.md, "The rate limiter"): a container
keeps up to ``quiet`` messages of a window, plus ``flush_every - 1`` past it,
out of the shared count. A connection whose frames are spread over ``K``
containers in one second can send up to ``K x limit / 2`` frames in it before
any container writes; from then on the shared count lags by at most
``limit / 2`` per container that has not passed half the limit itself. Served
by one container (the common case at low rates) it is counted exactly. Its
frames cost API Gateway messages all the same, and the stage's throttle
(``throttleRateLimit``) caps what any one flood can send.

A client over ``limit`` in a window gets ``rate_limited`` for each further
message; one that keeps sending to more than ``disconnect_factor`` times the
limit in one window ignored those errors and is disconnected.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["RateLimiter", "Verdict"]

Verdict = Literal["ok", "limited", "disconnect"]


class _Counter(Protocol):
    def count_inbound(self, connection_id: str, window: int, n: int, ttl: int) -> int: ...


@dataclass(slots=True)
class _Window:
    window: int
    unflushed: int = 0
    shared_total: int = 0
    flushed: bool = False  # this container has written to the shared count


class RateLimiter:
    """Decides, message by message, whether a connection is within its rate."""

    def __init__(
        self,
        counter: _Counter,
        *,
        limit_per_second: int,
        disconnect_factor: int = 2,
        clock: Callable[[], float] = time.time,
        max_tracked: int = 10_000,
    ) -> None:
        self._counter = counter
        self._limit = limit_per_second
        self._disconnect_at = limit_per_second * disconnect_factor
        self._flush_every = max(1, min(10, limit_per_second // 10))
        #: What a container counts on its own before it writes (half the limit).
        self._quiet = limit_per_second // 2
        self._clock = clock
        self._max_tracked = max_tracked
        self._windows: dict[str, _Window] = {}
        # A Lambda container runs one call at a time, but the local emulator runs
        # concurrent calls in threads that share this module's limiter.
        self._lock = threading.Lock()

    @property
    def limit(self) -> int:
        """Messages allowed per connection per second."""
        return self._limit

    def check(self, connection_id: str) -> Verdict:
        """Count one message from ``connection_id`` and judge it."""
        with self._lock:
            return self._check(connection_id)

    def _check(self, connection_id: str) -> Verdict:
        now = self._clock()
        window = int(now)
        state = self._windows.get(connection_id)
        if state is None or state.window != window:
            if len(self._windows) >= self._max_tracked:
                self._windows.clear()  # forgetting local counts only delays detection
            state = _Window(window)
            self._windows[connection_id] = state
        state.unflushed += 1
        near = state.shared_total + state.unflushed > self._quiet
        if near and (not state.flushed or state.unflushed >= self._flush_every):
            state.flushed = True
            state.shared_total = self._counter.count_inbound(
                connection_id, window, state.unflushed, ttl=int(now) + 120
            )
            state.unflushed = 0
        seen = state.shared_total + state.unflushed
        if seen > self._disconnect_at:
            return "disconnect"
        if seen > self._limit:
            return "limited"
        return "ok"
