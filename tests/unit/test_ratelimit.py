"""The per-connection rate limit, with a fake shared counter and a fake clock."""

from __future__ import annotations

from collections import Counter

from functions.logic.ratelimit import RateLimiter


class SharedCounter:
    def __init__(self) -> None:
        self.totals: Counter[tuple[str, int]] = Counter()
        self.writes = 0

    def count_inbound(self, connection_id: str, window: int, n: int, ttl: int) -> int:
        self.writes += 1
        self.totals[(connection_id, window)] += n
        return self.totals[(connection_id, window)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_within_the_limit_every_message_passes_with_one_write_per_ten() -> None:
    counter, clock = SharedCounter(), Clock()
    limiter = RateLimiter(counter, limit_per_second=100, clock=clock)
    verdicts = [limiter.check("c") for _ in range(100)]
    assert set(verdicts) == {"ok"}
    assert counter.writes == 10


def test_over_the_limit_is_limited_then_disconnected() -> None:
    counter, clock = SharedCounter(), Clock()
    limiter = RateLimiter(counter, limit_per_second=10, clock=clock)
    verdicts = [limiter.check("c") for _ in range(25)]
    assert verdicts[:10] == ["ok"] * 10
    assert verdicts[10:20] == ["limited"] * 10
    assert verdicts[20:] == ["disconnect"] * 5


def test_a_new_window_starts_afresh() -> None:
    counter, clock = SharedCounter(), Clock()
    limiter = RateLimiter(counter, limit_per_second=10, clock=clock)
    for _ in range(15):
        limiter.check("c")
    clock.now += 1
    assert limiter.check("c") == "ok"


def test_containers_share_the_count() -> None:
    counter, clock = SharedCounter(), Clock()
    first = RateLimiter(counter, limit_per_second=10, clock=clock)
    second = RateLimiter(counter, limit_per_second=10, clock=clock)
    for _ in range(10):
        assert first.check("c") == "ok"
    assert second.check("c") == "limited"


def test_connections_are_counted_apart() -> None:
    limiter = RateLimiter(SharedCounter(), limit_per_second=5, clock=Clock())
    for _ in range(5):
        limiter.check("a")
    assert limiter.check("b") == "ok"


def test_concurrent_calls_in_one_process_count_each_message_once() -> None:
    # The local emulator runs handler calls in threads that share one limiter.
    import threading

    counter, clock = SharedCounter(), Clock()
    limiter = RateLimiter(counter, limit_per_second=50, clock=clock)
    start = threading.Barrier(12)

    def send() -> None:
        start.wait()
        limiter.check("c")

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.totals[("c", 1000)] == 10  # two still unflushed; none counted twice
