"""Consumers' delivery windows, reserved in blocks rather than one write per delivery.

Every snapshot delivery to a consumer that negotiated ``acks=1`` takes a ``dseq``
from its window (docs/protocol.md, "Flow control"): a conditional UpdateItem on
the consumer's connection item. One write per delivery puts a consumer that
follows ``*`` in a busy tenant (1,000 deliveries/s) over a partition's 1,000
writes/s on its own. So a container takes a *block* of consecutive numbers in
one write (``sent + k`` if ``room >= k``, or as many as there is room for) and
hands them out to its next deliveries to that consumer.

Blocks grow only while deliveries keep coming: the first delivery to a consumer
(or the first after :data:`BLOCK_SECONDS` without one) reserves 1; a block used
up within :data:`BLOCK_SECONDS` of its reservation is followed by one twice its
size, up to a tenth of the window (10 of 100). A consumer that receives a
snapshot now and then costs one write per delivery, as before; a stream costs
about one write per ten.

What a block changes in the window's accounting:

* numbers a container holds count as sent: the window never grants more than
  ``MAX_UNACKED`` numbers, however they are spread over containers;
* a held number is used within :data:`BLOCK_SECONDS` or given back: the next
  delivery after that gives the rest of the block back in one write (numbers
  reused when nothing was reserved after them, else a gap that the consumer's
  next cumulative ack covers), so deliveries are out of order by at most that;
* a number whose post was throttled (429) goes back to the block and numbers
  the next delivery, with no write (it was never sent);
* a container that stops delivering to a consumer leaves its unused numbers as
  a gap, at most :func:`max_block` per container, until the consumer acks a
  later delivery (the room they hold comes back with that ack).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from functions.logic.ports import FlowControl

__all__ = ["BLOCK_SECONDS", "WindowBlocks", "max_block"]

#: How long a container may hold reserved numbers before it gives them back.
BLOCK_SECONDS = 1.0


def max_block(bound: int) -> int:
    """The largest block a container reserves: a tenth of the window (at least 1)."""
    return max(1, bound // 10)


@dataclass(slots=True)
class _Block:
    next: int  # the next number to hand out
    last: int  # the last number of the block
    size: int  # how many were granted
    reserved_at: float

    @property
    def left(self) -> int:
        return self.last - self.next + 1


class WindowBlocks:
    """A container's reserved blocks of its consumers' windows (see the module)."""

    def __init__(
        self,
        flow: FlowControl,
        *,
        bound: int,
        clock: Callable[[], float] = time.time,
        max_tracked: int = 10_000,
    ) -> None:
        self._flow = flow
        self._max_block = max_block(bound)
        self._clock = clock
        self._max_tracked = max_tracked
        self._blocks: dict[str, _Block] = {}
        # Threads may deliver at once (the local emulator's concurrent calls, a
        # concurrent fan-out): one lock per consumer, so a reservation (an AWS call)
        # holds up only deliveries to the same consumer.
        self._lock = threading.Lock()
        self._consumer_locks: dict[str, threading.Lock] = {}

    def _consumer_lock(self, connection_id: str) -> threading.Lock:
        with self._lock:
            lock = self._consumer_locks.get(connection_id)
            if lock is None:
                if len(self._consumer_locks) >= self._max_tracked:
                    self._consumer_locks.clear()
                lock = self._consumer_locks[connection_id] = threading.Lock()
            return lock

    def take(self, connection_id: str) -> int | None:
        """The ``dseq`` of the next delivery to the consumer, or None when its
        window is full. Raises ConnectionGoneError (the connection is gone)."""
        with self._consumer_lock(connection_id):
            now = self._clock()
            block = self._blocks.get(connection_id)
            fresh = block is not None and now - block.reserved_at < BLOCK_SECONDS
            if block is not None and fresh and block.left > 0:
                block.next += 1
                return block.next - 1
            size = 1
            if block is not None:
                if block.left > 0:  # held too long: give the rest back
                    self._flow.release(connection_id, block.next, block.left)
                elif fresh:  # used up in time: deliveries keep coming
                    size = min(self._max_block, 2 * block.size)
                self._blocks.pop(connection_id, None)
            reservation = self._flow.reserve(connection_id, size)
            if reservation.granted == 0:
                return None
            first = reservation.first_dseq
            with self._lock:
                if len(self._blocks) >= self._max_tracked:
                    self._blocks.clear()  # forgetting a block leaves a gap an ack covers
                self._blocks[connection_id] = _Block(
                    next=first + 1,
                    last=first + reservation.granted - 1,
                    size=reservation.granted,
                    reserved_at=now,
                )
            return first

    def untake(self, connection_id: str, dseq: int) -> None:
        """``dseq`` was never sent (a throttled post): the next delivery reuses it."""
        with self._consumer_lock(connection_id):
            block = self._blocks.get(connection_id)
            if block is not None and block.next - 1 == dseq:
                block.next = dseq
                return
        self._flow.release(connection_id, dseq)

    def forget(self, connection_id: str) -> None:
        """The connection is gone: its block is of no use."""
        with self._lock:
            self._blocks.pop(connection_id, None)
            self._consumer_locks.pop(connection_id, None)

    def held(self, connection_id: str) -> int:
        """How many reserved numbers this container holds for the consumer."""
        block = self._blocks.get(connection_id)
        return 0 if block is None else block.left
