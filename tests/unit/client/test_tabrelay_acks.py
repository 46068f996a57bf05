"""Ack bookkeeping without I/O."""

from __future__ import annotations

import pytest
from tabrelay import wire
from tabrelay.core import DEFAULT_ACK_DELAY, DEFAULT_ACK_EVERY, AckTracker


def test_given_every_3_when_three_deliveries_then_one_cumulative_ack() -> None:
    t = AckTracker(every=3, delay=10)
    t.received(1, now=0)
    t.received(2, now=0)
    assert t.due(now=0) is None
    t.received(3, now=0)
    assert t.due(now=0) == 3


def test_given_few_deliveries_when_delay_passes_then_ack_due() -> None:
    t = AckTracker(every=10, delay=0.5)
    t.received(1, now=100.0)
    assert t.deadline() == 100.5
    assert t.due(now=100.2) is None
    assert t.due(now=100.5) == 1


def test_given_ack_sent_then_nothing_due_until_more_arrive() -> None:
    t = AckTracker(every=2, delay=0.1)
    t.received(1, now=0)
    t.received(2, now=0)
    t.sent(2)
    assert t.due(now=5) is None
    assert t.deadline() is None


def test_given_held_delivery_when_later_ones_arrive_then_ack_stops_below_it() -> None:
    t = AckTracker(every=1, delay=0)
    t.received(1, now=0)
    token = t.received(2, now=0, hold=True)
    t.received(3, now=0)
    assert t.due(now=0) == 1
    t.sent(1)
    t.release(token, now=0)
    assert t.due(now=0) == 3


def test_given_gateway_starting_at_any_dseq_then_first_ack_counts_from_there() -> None:
    t = AckTracker(every=2, delay=10)
    t.received(41, now=0)
    assert t.due(now=0) is None
    t.received(42, now=0)
    assert t.due(now=0) == 42


def test_given_reset_when_old_token_released_then_ignored() -> None:
    t = AckTracker(every=1, delay=0)
    token = t.received(5, now=0, hold=True)
    t.reset()
    t.received(1, now=0)
    t.release(token, now=0)
    assert t.due(now=0) == 1


def test_given_out_of_order_dseq_then_ack_is_the_highest_seen() -> None:
    t = AckTracker(every=3, delay=10)
    for d in (2, 1, 3):
        t.received(d, now=0)
    assert t.due(now=0) == 3


def test_given_every_below_one_then_value_error() -> None:
    with pytest.raises(ValueError):
        AckTracker(every=0)


# -- the defaults: one ack per half window or per minute, and the window never stalls


def test_defaults_are_half_the_window_and_tens_of_seconds() -> None:
    t = AckTracker()
    assert t.every == DEFAULT_ACK_EVERY == wire.MAX_UNACKED // 2
    assert 10 <= t.delay == DEFAULT_ACK_DELAY <= 120


def test_delay_runs_from_the_oldest_unacknowledged_delivery() -> None:
    t = AckTracker()
    t.received(1, now=0)
    t.received(2, now=40)
    assert t.deadline() == DEFAULT_ACK_DELAY  # not 40 + the delay
    assert t.due(now=DEFAULT_ACK_DELAY - 1) is None
    assert t.due(now=DEFAULT_ACK_DELAY) == 2


def _run_consumer(interval: float, deliveries: int, round_trip: float) -> tuple[int, int]:
    """A gateway keeping at most MAX_UNACKED deliveries unacknowledged, one every
    ``interval`` s when the window allows, and a consumer at the defaults that takes
    each at once; acks reach the gateway ``round_trip`` s after they are sent.
    Returns (acks sent, deliveries the window held back)."""
    tracker = AckTracker()
    in_flight: list[tuple[float, int]] = []  # (arrives at the gateway, seq)
    acked = held_back = sent = 0
    now = 0.0
    dseq = 0
    while dseq < deliveries:
        for arrival, seq in list(in_flight):
            if arrival <= now:
                acked = max(acked, seq)
                in_flight.remove((arrival, seq))
        deadline = tracker.deadline()
        if deadline is not None and deadline <= now:
            seq = tracker.due(deadline)
            if seq is not None:
                tracker.sent(seq)
                sent += 1
                in_flight.append((deadline + round_trip, seq))
        if dseq + 1 - acked > wire.MAX_UNACKED:
            held_back += 1  # the window is full: the gateway would park this one
            now += interval
            continue
        dseq += 1
        tracker.release(tracker.received(dseq, now, hold=True), now)
        seq = tracker.due(now)
        if seq is not None:
            tracker.sent(seq)
            sent += 1
            in_flight.append((now + round_trip, seq))
        now += interval
    return sent, held_back


@pytest.mark.parametrize(
    ("interval", "round_trip"),
    [(10.0, 0.2), (1.0, 0.2), (0.1, 0.5), (0.01, 0.3), (0.001, 0.04)],
    ids=["every-10s", "every-1s", "10-per-s", "100-per-s", "1000-per-s"],
)
def test_a_consumer_at_the_defaults_never_fills_the_window(
    interval: float, round_trip: float
) -> None:
    deliveries = 5_000
    sent, held_back = _run_consumer(interval, deliveries, round_trip)
    assert held_back == 0
    # And it sends at most one ack per 50 deliveries or per minute (plus the last)
    duration = deliveries * interval
    assert sent <= deliveries / DEFAULT_ACK_EVERY + duration / DEFAULT_ACK_DELAY + 1
    # far fewer than the old defaults (one per 10 deliveries or per 0.25 s)
    assert sent < _acks_sent(AckTracker(every=10, delay=0.25), interval, deliveries)


def _acks_sent(tracker: AckTracker, interval: float, deliveries: int) -> int:
    """Acks ``tracker`` sends for deliveries every ``interval`` s, each taken at once."""
    sent = 0
    for dseq in range(1, deliveries + 1):
        now = dseq * interval
        deadline = tracker.deadline()
        if deadline is not None and deadline <= now:
            seq = tracker.due(deadline)
            if seq is not None:
                tracker.sent(seq)
                sent += 1
        tracker.release(tracker.received(dseq, now, hold=True), now)
        seq = tracker.due(now)
        if seq is not None:
            tracker.sent(seq)
            sent += 1
    return sent
