"""Window blocks, with an in-memory window and a fake clock."""

from __future__ import annotations

import pytest

from functions.logic.ports import ConnectionGoneError, Reservation
from functions.logic.window import BLOCK_SECONDS, WindowBlocks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Window:
    """One consumer's window as the registry keeps it (sent, room), counting writes."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.sent = 0
        self.acked = 0
        self.reserves: list[int] = []
        self.releases: list[tuple[int, int]] = []
        self.gone = False

    @property
    def room(self) -> int:
        return self.acked + self.bound - self.sent

    def reserve(self, connection_id: str, wanted: int) -> Reservation:
        if self.gone:
            raise ConnectionGoneError(connection_id)
        self.reserves.append(wanted)
        granted = min(wanted, self.room)
        self.sent += granted
        return Reservation(granted, self.sent - granted + 1 if granted else 0)

    def release(self, connection_id: str, dseq: int, count: int = 1) -> None:
        self.releases.append((dseq, count))
        if self.sent == dseq + count - 1:
            self.sent -= count

    def ack(self, seq: int) -> None:
        self.acked = seq


def blocks(bound: int = 100) -> tuple[WindowBlocks, Window, Clock]:
    window, clock = Window(bound), Clock()
    return WindowBlocks(window, bound=bound, clock=clock), window, clock  # type: ignore[arg-type]


def test_a_stream_of_deliveries_takes_its_numbers_in_growing_blocks() -> None:
    windows, window, clock = blocks()
    numbers = []
    for _ in range(60):
        numbers.append(windows.take("c"))
        clock.now += 0.01
    # Numbered 1..60 in order, with one write per block: 1, 2, 4, 8, then 10s
    assert numbers == list(range(1, 61))
    assert window.reserves == [1, 2, 4, 8, 10, 10, 10, 10, 10]
    assert window.releases == []


def test_sparse_deliveries_take_one_number_each() -> None:
    windows, window, clock = blocks()
    for n in range(1, 6):
        assert windows.take("c") == n
        clock.now += BLOCK_SECONDS
    assert window.reserves == [1] * 5


def test_numbers_held_too_long_are_given_back_in_one_write_and_reused() -> None:
    # Given a block of 4 of which one number was used
    windows, window, clock = blocks()
    for _ in range(4):
        windows.take("c")  # 1 | 2 3 | 4 (block of 4: 4 5 6 7)
    assert windows.held("c") == 3
    # When the next delivery comes after the block's time
    clock.now += BLOCK_SECONDS
    # Then the 3 are given back in one write, and the numbering goes on without a gap
    assert windows.take("c") == 5
    assert window.releases == [(5, 3)]
    assert window.sent == 5


def test_a_full_window_grants_nothing_and_never_more_than_its_bound() -> None:
    windows, window, _ = blocks(bound=30)
    numbers = [windows.take("c") for _ in range(40)]
    assert numbers[:30] == list(range(1, 31))
    assert numbers[30:] == [None] * 10
    assert window.sent == 30
    # And an ack makes room again
    window.ack(30)
    assert windows.take("c") == 31


def test_a_number_whose_post_was_throttled_numbers_the_next_delivery() -> None:
    windows, window, _ = blocks()
    windows.take("c")
    dseq = windows.take("c")
    assert dseq == 2
    writes = len(window.reserves)
    windows.untake("c", dseq)
    assert windows.take("c") == 2
    assert len(window.reserves) == writes
    assert window.releases == []


def test_a_number_no_longer_in_the_block_is_released_in_the_registry() -> None:
    windows, window, _ = blocks()
    windows.take("c")
    windows.untake("c", 7)
    assert window.releases == [(7, 1)]


def test_a_gone_connection_raises_and_its_block_is_forgotten() -> None:
    windows, window, _ = blocks()
    windows.take("c")
    windows.take("c")
    windows.forget("c")
    assert windows.held("c") == 0
    window.gone = True
    with pytest.raises(ConnectionGoneError):
        windows.take("c")


def test_concurrent_deliveries_in_one_process_never_share_a_number() -> None:
    # The local emulator (and a concurrent fan-out) deliver from several threads.
    import threading

    windows, window, _ = blocks()
    start = threading.Barrier(40)
    numbers: list[int | None] = []

    def deliver() -> None:
        start.wait()
        numbers.append(windows.take("c"))

    threads = [threading.Thread(target=deliver) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(n for n in numbers if n is not None) == list(range(1, 41))
    assert window.sent == 40 + windows.held("c")  # the rest of the last block, held
