"""The recipient cache, with a fake registry and a fake clock."""

from __future__ import annotations

from collections import Counter

from functions.logic.ports import FanOut, Recipient
from functions.logic.recipients import BUSY_LOOKUPS, RecipientCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Partitions:
    """Fan-out partitions by (tenant, browser or "*"), counting the reads."""

    def __init__(self) -> None:
        self.partitions: dict[tuple[str, str], FanOut] = {}
        self.reads: Counter[tuple[str, str]] = Counter()

    def follow(self, tenant: str, browser: str, connection_id: str) -> None:
        partition = self.partitions.get((tenant, browser), FanOut())
        recipient = Recipient(connection_id, f"client-{connection_id}", acks=True)
        self.partitions[(tenant, browser)] = FanOut(
            (*partition.recipients, recipient), partition.dropped
        )

    def __call__(self, tenant: str, browser: str) -> FanOut:
        self.reads[(tenant, browser)] += 1
        return self.partitions.get((tenant, browser), FanOut())


def warm(cache: RecipientCache, tenant: str, browser: str) -> None:
    """Look the partitions up until they are busy (served from the cache)."""
    for _ in range(BUSY_LOOKUPS + 1):
        cache.begin_batch()
        cache.recipients(tenant, browser)


def ids(recipients: list[Recipient]) -> list[str]:
    return [r.connection_id for r in recipients]


def test_a_busy_partition_is_read_a_few_times_per_ttl_across_batches() -> None:
    partitions, clock = Partitions(), Clock()
    partitions.follow("acme", "*", "c1")
    cache = RecipientCache(partitions, ttl_seconds=2, clock=clock)

    # Snapshots of many browsers in 20 invocations within the TTL
    for n in range(20):
        cache.begin_batch()
        assert ids(cache.recipients("acme", f"b{n % 4}")) == ["c1"]
        clock.now += 0.05

    # Then the tenant's "*" partition was read only until it proved busy
    assert partitions.reads[("acme", "*")] == BUSY_LOOKUPS

    # And a consumer that follows later is seen once the TTL has passed, not before
    partitions.follow("acme", "*", "c2")
    cache.begin_batch()
    assert ids(cache.recipients("acme", "b1")) == ["c1"]
    clock.now += 2
    cache.begin_batch()
    assert ids(cache.recipients("acme", "b1")) == ["c1", "c2"]


def test_a_quiet_partition_is_read_for_every_snapshot() -> None:
    # A tenant sending a snapshot now and then sees a new consumer at once.
    partitions, clock = Partitions(), Clock()
    cache = RecipientCache(partitions, ttl_seconds=2, clock=clock)
    for _ in range(BUSY_LOOKUPS - 1):
        cache.begin_batch()
        cache.recipients("acme", "b1")
        clock.now += 0.1
    partitions.follow("acme", "*", "c1")
    cache.begin_batch()
    assert ids(cache.recipients("acme", "b1")) == ["c1"]
    assert partitions.reads[("acme", "*")] == BUSY_LOOKUPS


def test_with_a_ttl_of_zero_lookups_last_one_batch() -> None:
    partitions, clock = Partitions(), Clock()
    cache = RecipientCache(partitions, ttl_seconds=0, clock=clock)
    cache.begin_batch()
    cache.recipients("acme", "b1")
    cache.recipients("acme", "b1")
    assert partitions.reads[("acme", "*")] == 1
    cache.begin_batch()
    cache.recipients("acme", "b1")
    assert partitions.reads[("acme", "*")] == 2


def test_a_gone_connection_drops_every_partition_that_listed_it() -> None:
    # Given cached partitions that list c1
    partitions, clock = Partitions(), Clock()
    partitions.follow("acme", "*", "c1")
    partitions.follow("acme", "b1", "c1")
    cache = RecipientCache(partitions, ttl_seconds=60, clock=clock)
    warm(cache, "acme", "b1")

    # When a post to c1 answers 410 (it reconnected as c2)
    partitions.partitions = {}
    partitions.follow("acme", "*", "c2")
    cache.forget_connection("c1")

    # Then the next snapshot reads them again: no c1, and c2 at once
    assert ids(cache.recipients("acme", "b1")) == ["c2"]


def test_invalidate_and_mark_dropped_keep_the_cache_in_step() -> None:
    partitions, clock = Partitions(), Clock()
    partitions.follow("acme", "b1", "c1")
    cache = RecipientCache(partitions, ttl_seconds=60, clock=clock)
    assert [r.missed for r in cache.recipients("acme", "b1")] == [False]
    cache.mark_dropped("acme", "b1", "c1", dropped=True)
    assert [r.missed for r in cache.recipients("acme", "b1")] == [True]
    cache.mark_dropped("acme", "b1", "c1", dropped=False)
    assert [r.missed for r in cache.recipients("acme", "b1")] == [False]
    warm(cache, "acme", "b1")
    reads = partitions.reads[("acme", "b1")]
    cache.begin_batch()
    cache.recipients("acme", "b1")
    assert partitions.reads[("acme", "b1")] == reads  # busy: cached
    cache.invalidate("acme", ["b1"])
    cache.recipients("acme", "b1")
    assert partitions.reads[("acme", "b1")] == reads + 1


def test_the_cache_is_bounded() -> None:
    partitions, clock = Partitions(), Clock()
    cache = RecipientCache(partitions, ttl_seconds=60, clock=clock, max_entries=3)
    for n in range(10):
        cache.recipients("acme", f"b{n}")
    assert len(cache) == 3
    cache.recipients("acme", "b9")  # the newest stays
    assert partitions.reads[("acme", "b9")] == 1
