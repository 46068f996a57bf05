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


def test_a_connection_under_half_its_limit_costs_no_write() -> None:
    counter, clock = SharedCounter(), Clock()
    limiter = RateLimiter(counter, limit_per_second=100, clock=clock)
    for _ in range(5):  # five seconds of 50 frames each
        assert {limiter.check("c") for _ in range(50)} == {"ok"}
        clock.now += 1
    assert counter.writes == 0


def test_near_its_limit_a_connection_is_counted_once_then_every_ten() -> None:
    counter, clock = SharedCounter(), Clock()
    limiter = RateLimiter(counter, limit_per_second=100, clock=clock)
    verdicts = [limiter.check("c") for _ in range(100)]
    assert set(verdicts) == {"ok"}
    # Writes at 51 (all 51 so far), 61, 71, 81, 91: the shared count is 91
    assert counter.writes == 5
    assert counter.totals[("c", 1000)] == 91


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


def test_containers_share_the_count_once_they_near_the_limit() -> None:
    # Given one container that counted a connection to its limit
    counter, clock = SharedCounter(), Clock()
    first = RateLimiter(counter, limit_per_second=10, clock=clock)
    second = RateLimiter(counter, limit_per_second=10, clock=clock)
    for _ in range(10):
        assert first.check("c") == "ok"
    # Then another container lets through at most half the limit on its own
    assert [second.check("c") for _ in range(6)] == ["ok"] * 5 + ["limited"]


def test_a_flood_spread_over_containers_is_refused_within_the_documented_bound() -> None:
    # Given 4 containers sharing a connection's frames, at limit 10 (quiet: 5 each)
    counter, clock = SharedCounter(), Clock()
    containers = [RateLimiter(counter, limit_per_second=10, clock=clock) for _ in range(4)]
    verdicts = [containers[n % 4].check("c") for n in range(80)]
    # Then at most 4 x 5 frames pass unseen, and the flood is refused, then cut
    assert verdicts.count("ok") <= 10 + 4 * 5
    assert "limited" in verdicts
    assert verdicts[-1] == "disconnect"


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
    start = threading.Barrier(40)

    def send() -> None:
        start.wait()
        limiter.check("c")

    threads = [threading.Thread(target=send) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Written at 26 (half the limit passed), 31 and 36; four still unflushed; none twice
    assert counter.totals[("c", 1000)] == 36
