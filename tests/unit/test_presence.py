"""Presence coalescing and chunking: the pure rules (functions/logic/presence.py)."""

from __future__ import annotations

import itertools

import pytest
from tabrelay import wire

from functions.logic.presence import chunks, coalesce


def p(client: str, online: bool, at: int) -> wire.Presence:
    return wire.Presence(client_id=client, online=online, at=at)


def test_each_browser_keeps_its_latest_change_per_tenant_whatever_the_record_order() -> None:
    # Given a browser that went offline and came back, seen out of order, and another tenant's
    changes = [
        ("a", p("b1", True, 30)),
        ("a", p("b1", False, 20)),
        ("a", p("b1", True, 10)),
        ("a", p("b2", False, 5)),
        ("z", p("b1", False, 40)),
    ]
    # When they are coalesced, Then each tenant's browser keeps its latest state only
    assert coalesce(changes) == {
        "a": [p("b1", True, 30), p("b2", False, 5)],
        "z": [p("b1", False, 40)],
    }
    # And the order of the records does not matter
    for order in itertools.permutations(changes):
        assert coalesce(order) == coalesce(changes)


def test_online_wins_a_tie() -> None:
    assert coalesce([("a", p("b", True, 7)), ("a", p("b", False, 7))]) == {"a": [p("b", True, 7)]}


@pytest.mark.parametrize(
    ("changes", "consumers", "limit"),
    [(1, 1, 1), (3, 50, 10), (30, 7, 10), (10, 50, 100), (250, 3, 100)],
)
def test_chunks_cover_every_pair_once_within_the_limit(
    changes: int, consumers: int, limit: int
) -> None:
    # Given some changes and consumers
    presence = [p(f"b{n}", True, n) for n in range(changes)]
    targets = [f"c{n}" for n in range(consumers)]
    # When they are cut into chunks
    cut = chunks(presence, targets, limit)
    # Then every (change, consumer) pair is in exactly one chunk
    pairs = [(change, to) for chunk in cut for change in chunk.changes for to in chunk.to]
    assert sorted(pairs, key=str) == sorted(itertools.product(presence, targets), key=str)
    # And no chunk posts more than the limit
    assert all(0 < len(c.changes) * len(c.to) <= limit for c in cut)


def test_a_chunk_holds_at_least_one_post() -> None:
    with pytest.raises(ValueError, match="at least one post"):
        chunks([p("b", True, 1)], ["c"], 0)
