"""Recipient lookups, cached briefly in a warm container.

Every snapshot needs its browser's recipients: two fan-out partitions, the
browser's own subscribers (``S#{tenant}#{browser}``) and the consumers that
follow every browser of the tenant (``S#{tenant}#*``). The second is the same
partition for every snapshot of a tenant, so without a cache a busy tenant reads
one partition once per snapshot. :class:`RecipientCache` keeps a *busy*
partition (looked up more than :data:`BUSY_LOOKUPS` times within a TTL) for
``ttl_seconds`` per container, so it is read about :data:`BUSY_LOOKUPS` times
per TTL by each warm container however many snapshots use it; a quiet one is
read for every snapshot, as without a cache (the records of one queue batch
always share their lookups, even with a TTL of 0).

What it costs (docs/protocol.md, "Subscriptions"): the cache is per container,
so in a busy tenant a change of subscriptions, or a consumer's connect, reaches the containers
that cached the partition only when their entry expires: a new subscriber may
miss snapshots for up to the TTL, and one that left may still be sent some (its
first post answers 410, which drops every cached partition listing it, so a
consumer that reconnected is found by the next snapshot). The container that handles a
``subscribe`` drops its own entries of what changed. A throttled snapshot's
dropped mark noted in another container is likewise read up to the TTL later;
its count is not lost, only reported in a later delivery.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from functions.logic.ports import FanOut, Recipient, combine_recipients

__all__ = ["BUSY_LOOKUPS", "EVERY_BROWSER", "RecipientCache"]

#: The partition of the consumers that follow every browser of a tenant.
EVERY_BROWSER = "*"


#: A partition is served from the cache only while busy: looked up more than
#: this many times within one TTL in the container. A quiet tenant's snapshots
#: read it every time, so there a change of recipients is seen at once.
BUSY_LOOKUPS = 5


@dataclass(slots=True)
class _Entry:
    partition: FanOut
    read_at: float
    batch: int
    period_start: float  # lookups are counted per TTL-long period
    lookups: int


class RecipientCache:
    """Fan-out partitions by (tenant, browser or ``*``), for ``ttl_seconds``.

    Bounded: at most ``max_entries`` partitions, the least recently read leaving
    first. ``lookup`` reads one partition (the registry's ``fan_out_partition``).
    """

    def __init__(
        self,
        lookup: Callable[[str, str], FanOut],
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._batch = 0
        # A Lambda container runs one call at a time, but the local emulator runs
        # concurrent calls in threads that share one container's rules.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many partitions are cached."""
        return len(self._entries)

    def begin_batch(self) -> None:
        """A new queue batch or invocation: what an earlier batch read now lasts
        only for its TTL."""
        with self._lock:
            self._batch += 1

    def recipients(self, tenant: str, browser: str) -> list[Recipient]:
        """The consumers that receive ``browser``'s snapshots, deduplicated."""
        return combine_recipients(
            self._partition(tenant, browser), self._partition(tenant, EVERY_BROWSER)
        )

    def _partition(self, tenant: str, browser: str) -> FanOut:
        key = (tenant, browser)
        now = self._clock()
        period_start, lookups = now, 1
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if now - entry.period_start >= self._ttl:
                    entry.period_start, entry.lookups = now, 0
                entry.lookups += 1
                busy = entry.lookups > BUSY_LOOKUPS and now - entry.read_at < self._ttl
                if entry.batch == self._batch or busy:
                    return entry.partition
                period_start, lookups = entry.period_start, entry.lookups
        partition = self._lookup(tenant, browser)  # outside the lock: an AWS call
        with self._lock:
            self._entries.pop(key, None)
            if len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[key] = _Entry(partition, now, self._batch, period_start, lookups)
        return partition

    def invalidate(self, tenant: str, browsers: Iterable[str]) -> None:
        """Forget these partitions (their subscribers changed, seen from here)."""
        with self._lock:
            for browser in browsers:
                self._entries.pop((tenant, browser), None)

    def forget_connection(self, connection_id: str) -> None:
        """A post answered 410: forget every cached partition that lists the
        connection, so the next snapshot neither posts to it nor misses the
        connection that replaced it (a consumer that reconnected)."""
        with self._lock:
            stale = [
                key
                for key, entry in self._entries.items()
                if any(r.connection_id == connection_id for r in entry.partition.recipients)
            ]
            for key in stale:
                del self._entries[key]

    def mark_dropped(self, tenant: str, browser: str, connection_id: str, *, dropped: bool) -> None:
        """Keep the cached dropped mark of ``browser`` for the consumer in step with
        what this container just wrote (a throttled drop, or its report)."""
        with self._lock:
            entry = self._entries.get((tenant, browser))
            if entry is None:
                return
            marks = entry.partition.dropped
            marks = marks | {connection_id} if dropped else marks - {connection_id}
            entry.partition = replace(entry.partition, dropped=frozenset(marks))
