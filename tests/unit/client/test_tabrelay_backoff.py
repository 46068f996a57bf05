"""The reconnection backoff schedule and the outgoing pacing."""

from __future__ import annotations

import itertools

import pytest
from tabrelay.core import TokenBucket, backoff


def test_given_no_jitter_then_delays_double_up_to_the_cap() -> None:
    delays = list(itertools.islice(backoff(initial=0.5, factor=2, maximum=4, rng=lambda: 0.0), 6))
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_given_full_random_then_each_delay_is_within_its_jitter_band() -> None:
    delays = list(
        itertools.islice(backoff(initial=1, factor=2, maximum=8, jitter=0.5, rng=lambda: 1.0), 5)
    )
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_given_real_rng_then_no_delay_is_zero_or_over_the_cap() -> None:
    for d in itertools.islice(backoff(initial=0.1, maximum=30), 50):
        assert 0 < d <= 30


def test_given_bad_jitter_then_value_error() -> None:
    for jitter in (-0.1, 1.5):
        with pytest.raises(ValueError):
            next(backoff(jitter=jitter))


def test_given_bucket_when_burst_spent_then_delay_until_one_token_refills() -> None:
    bucket = TokenBucket(rate=10, burst=2)
    for _ in range(2):
        assert bucket.delay(now=0.0) == 0
        bucket.take(now=0.0)
    assert bucket.delay(now=0.0) == pytest.approx(0.1)
    assert bucket.delay(now=0.1) == 0


def test_given_bucket_then_no_fixed_second_window_exceeds_burst_plus_rate() -> None:
    bucket = TokenBucket(rate=20, burst=20)
    now, sent_at = 0.0, []
    while now < 5:
        now += bucket.delay(now)
        bucket.take(now)
        sent_at.append(now)
    for second in range(5):
        assert sum(1 for t in sent_at if second <= t < second + 1) <= 40


def test_given_rate_limited_when_slowed_down_then_rate_and_burst_halve_not_below_one() -> None:
    bucket = TokenBucket(rate=4, burst=3)
    bucket.slow_down()
    assert (bucket.rate, bucket.burst) == (2, 1)
    for _ in range(5):
        bucket.slow_down()
    assert (bucket.rate, bucket.burst) == (1, 1)
