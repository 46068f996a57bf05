"""The two bounded queues and their overflow policies, without I/O."""

from __future__ import annotations

import pytest
from tabrelay.core import InboundSnapshots, OutboundBuffer, Outgoing
from tabrelay.errors import QueueFullError
from tabrelay.models import Snapshot


def _snap(n: int, source: str = "b1", missed: int = 0) -> Snapshot:
    return Snapshot(source=source, sid=f"s{n}", seq=n, html=f"<p>{n}</p>", missed=missed)


def test_given_block_when_outbound_full_then_offer_refuses_without_dropping() -> None:
    q = OutboundBuffer(2, "block")
    assert q.offer(Outgoing("snapshot", ["a"])) and q.offer(Outgoing("snapshot", ["b"]))
    assert q.offer(Outgoing("snapshot", ["c"])) is False
    assert len(q) == 2 and q.dropped == 0


def test_given_drop_oldest_when_outbound_full_then_oldest_snapshot_goes() -> None:
    q = OutboundBuffer(2, "drop_oldest")
    cmd = Outgoing("command", ["cmd"])
    q.offer(cmd)
    q.offer(Outgoing("snapshot", ["old"]))
    assert q.offer(Outgoing("snapshot", ["new"]))
    assert [q.pop().frames[0], q.pop().frames[0]] == ["cmd", "new"]
    assert q.dropped == 1


def test_given_drop_oldest_and_only_commands_queued_then_commands_are_never_dropped() -> None:
    q = OutboundBuffer(1, "drop_oldest")
    q.offer(Outgoing("command", ["c1"]))
    assert q.offer(Outgoing("snapshot", ["s"])) is False
    assert q.pop().frames == ["c1"]


def test_given_raise_when_outbound_full_then_queue_full_error() -> None:
    q = OutboundBuffer(1, "raise")
    q.offer(Outgoing("snapshot", ["a"]))
    with pytest.raises(QueueFullError) as info:
        q.offer(Outgoing("snapshot", ["b"]))
    assert info.value.code == "queue_full"


def test_given_block_when_inbound_full_then_offer_refuses() -> None:
    q: InboundSnapshots[int] = InboundSnapshots(1, "block")
    assert q.offer(_snap(1), 1)
    assert q.offer(_snap(2), 2) is False
    assert q.take() == (_snap(1), 1)


def test_given_drop_oldest_when_inbound_full_then_next_snapshot_of_that_browser_counts_it() -> None:
    q: InboundSnapshots[int] = InboundSnapshots(2, "drop_oldest")
    q.offer(_snap(1, missed=2), 1)
    q.offer(_snap(1, source="b2"), 10)
    q.offer(_snap(3), 3)
    assert q.released == [1]
    first = q.take()
    second = q.take()
    assert first is not None and first[0].source == "b2"
    assert second is not None and second[0].seq == 3 and second[0].missed == 3


def test_given_raise_when_inbound_full_then_next_take_raises_once_and_loss_is_counted() -> None:
    q: InboundSnapshots[int] = InboundSnapshots(1, "raise")
    q.offer(_snap(1), 1)
    q.offer(_snap(2), 2)
    assert q.released == [2]
    with pytest.raises(QueueFullError):
        q.take()
    got = q.take()
    assert got is not None and got[0].seq == 1
    q.offer(_snap(3), 3)
    got = q.take()
    assert got is not None and got[0].missed == 1


def test_given_unknown_policy_then_value_error() -> None:
    with pytest.raises(ValueError):
        OutboundBuffer(1, "explode")  # type: ignore[arg-type]


def test_given_newer_snapshot_seen_when_older_arrives_late_then_dropped_as_stale_and_counted() -> (
    None
):
    q: InboundSnapshots[int] = InboundSnapshots(10, "block", reorder_window=5)
    q.offer(_snap(2), 2, now=100.0)
    assert q.offer(_snap(1), 1, now=100.5)  # SQS reordered it: dropped, not buffered
    q.offer(_snap(3), 3, now=101.0)
    assert (q.stale, q.released) == (1, [1])
    first, second = q.take(), q.take()
    assert first is not None and (first[0].seq, first[0].missed) == (2, 0)
    assert second is not None and (second[0].seq, second[0].missed) == (3, 1)


def test_given_lower_seq_after_the_reorder_window_then_accepted_as_a_restarted_browser() -> None:
    q: InboundSnapshots[int] = InboundSnapshots(10, "block", reorder_window=5)
    q.offer(_snap(50), 50, now=100.0)
    q.offer(_snap(1), 1, now=106.0)
    assert len(q) == 2 and q.stale == 0
