"""Ack bookkeeping without I/O."""

from __future__ import annotations

import pytest
from tabrelay.core import AckTracker


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
