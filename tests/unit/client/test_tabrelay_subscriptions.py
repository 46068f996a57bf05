"""Subscription bookkeeping and its restore on a new connection, without I/O."""

from __future__ import annotations

import json

import pytest
from tabrelay.core import RESTORE_ID, Subscriptions, batches, browser_ids


def _decoded(frames: list[str]) -> list[dict[str, object]]:
    return [json.loads(f) for f in frames]


def test_given_no_change_yet_when_restoring_then_nothing_to_send_and_ready() -> None:
    subs = Subscriptions()
    assert subs.restore() == []
    assert not subs.restoring
    assert subs.current is None


def test_given_subscribed_when_restoring_then_one_subscribe_with_the_sorted_set() -> None:
    subs = Subscriptions()
    subs.subscribe(["b2", "b1"])
    subs.subscribe(["b3"])
    subs.unsubscribe(["b2"])
    assert _decoded(subs.restore()) == [
        {"action": "subscribe", "browsers": ["b1", "b3"], "id": RESTORE_ID}
    ]
    assert subs.restoring


def test_given_250_browsers_when_restoring_then_batches_of_100_each_confirmed() -> None:
    subs = Subscriptions()
    subs.subscribe([f"b{i:03}" for i in range(250)])
    frames = _decoded(subs.restore())
    assert [len(f["browsers"]) for f in frames] == [100, 100, 50]  # type: ignore[arg-type]
    assert subs.confirmed() is False
    assert subs.confirmed() is False
    assert subs.confirmed() is True
    assert not subs.restoring


def test_given_emptied_set_when_restoring_then_subscribe_all_then_unsubscribe_all() -> None:
    subs = Subscriptions()
    subs.subscribe(["b1"])
    subs.unsubscribe(["b1"])
    assert _decoded(subs.restore()) == [
        {"action": "subscribe", "browsers": ["*"], "id": RESTORE_ID},
        {"action": "unsubscribe", "browsers": ["*"], "id": RESTORE_ID},
    ]
    assert subs.current == frozenset()


def test_given_restore_refused_when_failed_then_no_longer_restoring() -> None:
    subs = Subscriptions()
    subs.subscribe([f"b{i}" for i in range(150)])
    subs.restore()
    subs.failed()
    assert not subs.restoring


def test_given_a_new_connection_when_restoring_again_then_confirmations_count_afresh() -> None:
    subs = Subscriptions()
    subs.subscribe(["b1"])
    subs.restore()
    assert subs.confirmed() is True
    subs.restore()
    assert subs.restoring


def test_given_ids_when_normalized_then_distinct_in_order_and_a_string_is_one_id() -> None:
    assert browser_ids(["b2", "b1", "b2"]) == ["b2", "b1"]
    assert browser_ids("b1") == ["b1"]


@pytest.mark.parametrize("bad", [[], [""], ["b1", 3]])
def test_given_bad_ids_when_normalized_then_value_error(bad: list[object]) -> None:
    with pytest.raises(ValueError, match="non-empty list"):
        browser_ids(bad)  # type: ignore[arg-type]


def test_given_ids_when_batched_then_at_most_100_each_in_order() -> None:
    ids = [str(i) for i in range(201)]
    assert batches(ids) == [ids[:100], ids[100:200], ids[200:]]
    assert batches([]) == []
