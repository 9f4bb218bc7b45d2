"""Ring: exact capacity, all-or-nothing bulk enqueue, FIFO order, counters, MP_SC under threads."""

from __future__ import annotations

import threading
import time

import pytest

from spdkpy.env import DEFAULT_RING_SIZE, Ring, RingStatistics, RingType
from spdkpy.errors import QueueFullError


def test_default_size_is_spdk_message_ring_size() -> None:
    ring: Ring[int] = Ring()
    assert ring.capacity == DEFAULT_RING_SIZE == 65536
    assert ring.type is RingType.MP_SC


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Ring(capacity)


@pytest.mark.parametrize("ring_type", list(RingType))
def test_capacity_is_exact(ring_type: RingType) -> None:
    ring: Ring[int] = Ring(5, ring_type, name="r")
    for i in range(5):
        assert ring.try_enqueue(i)
    assert ring.count() == len(ring) == 5
    assert not ring.try_enqueue(5)
    with pytest.raises(QueueFullError, match="ring r is full"):
        ring.enqueue(6)
    assert ring.dequeue(10) == [0, 1, 2, 3, 4]
    assert ring.count() == 0
    ring.enqueue(7)
    assert ring.dequeue(1) == [7]


def test_bulk_enqueue_is_all_or_nothing() -> None:
    ring: Ring[str] = Ring(4)
    assert ring.enqueue_bulk(["a", "b", "c"]) == 3
    assert ring.enqueue_bulk(["d", "e"]) == 0  # only one slot left: nothing enqueued
    assert ring.count() == 3
    assert ring.enqueue_bulk(iter(["d"])) == 1  # any iterable
    assert ring.enqueue_bulk(["x"]) == 0
    assert ring.enqueue_bulk([]) == 0
    assert ring.dequeue(4) == ["a", "b", "c", "d"]
    assert ring.enqueue_bulk(["1", "2", "3", "4", "5"]) == 0  # larger than the whole ring
    assert ring.count() == 0


def test_dequeue_returns_at_most_max_in_order() -> None:
    ring: Ring[int] = Ring(100)
    ring.enqueue_bulk(range(10))
    assert ring.dequeue(0) == []
    assert ring.dequeue(-3) == []
    assert ring.dequeue(3) == [0, 1, 2]
    assert ring.dequeue(4) == [3, 4, 5, 6]
    ring.enqueue(10)
    assert ring.dequeue(100) == [7, 8, 9, 10]
    assert ring.dequeue(1) == []


def test_statistics_count_every_refused_entry() -> None:
    ring: Ring[int] = Ring(3, name="stats")
    ring.enqueue(0)
    ring.enqueue_bulk([1, 2])
    assert not ring.try_enqueue(3)
    assert ring.enqueue_bulk([4, 5]) == 0
    with pytest.raises(QueueFullError):
        ring.enqueue(6)
    ring.dequeue(2)
    ring.enqueue(7)
    assert ring.statistics() == RingStatistics(
        name="stats", capacity=3, depth=2, high_water=3, enqueued=4, refused=4
    )


def test_high_water_mark_tracks_the_deepest_point() -> None:
    ring: Ring[int] = Ring(10)
    ring.enqueue_bulk(range(4))
    ring.dequeue(4)
    ring.enqueue(1)
    assert ring.statistics().high_water == 4
    ring.enqueue_bulk(range(5))
    assert ring.statistics().high_water == 6
    ring.dequeue(10)
    assert ring.statistics().depth == 0
    assert ring.statistics().high_water == 6


PRODUCERS = 4
ITEMS_PER_PRODUCER = 20_000


@pytest.mark.parametrize("ring_type", [RingType.MP_SC, RingType.MP_MC])
def test_many_producers_one_consumer_lose_nothing(ring_type: RingType) -> None:
    # A small ring, so producers keep hitting "full" and the refusal path runs concurrently.
    ring: Ring[tuple[int, int]] = Ring(256, ring_type)
    start = threading.Barrier(PRODUCERS + 1)
    received: list[tuple[int, int]] = []

    def produce(pid: int) -> None:
        start.wait()
        for seq in range(ITEMS_PER_PRODUCER):
            while not ring.try_enqueue((pid, seq)):
                time.sleep(0)  # ring full: let the consumer run

    def consume() -> None:
        start.wait()
        total = PRODUCERS * ITEMS_PER_PRODUCER
        while len(received) < total:
            batch = ring.dequeue(64)
            if batch:
                received.extend(batch)
            else:
                time.sleep(0)

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(PRODUCERS)]
    threads.append(threading.Thread(target=consume))
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(received) == PRODUCERS * ITEMS_PER_PRODUCER
    for pid in range(PRODUCERS):
        assert [seq for p, seq in received if p == pid] == list(range(ITEMS_PER_PRODUCER))
    stats = ring.statistics()
    assert stats.enqueued == PRODUCERS * ITEMS_PER_PRODUCER
    assert stats.depth == 0
    # At most one appended-but-unchecked entry per producer above the capacity (free-threaded).
    assert stats.high_water <= 256 + PRODUCERS


def test_mp_mc_two_consumers_share_without_loss_or_duplicates() -> None:
    ring: Ring[tuple[int, int]] = Ring(128, RingType.MP_MC)
    total = PRODUCERS * ITEMS_PER_PRODUCER
    start = threading.Barrier(PRODUCERS + 2)
    received: list[list[tuple[int, int]]] = [[], []]
    done = threading.Event()

    def produce(pid: int) -> None:
        start.wait()
        for seq in range(ITEMS_PER_PRODUCER):
            while not ring.try_enqueue((pid, seq)):
                time.sleep(0)

    def consume(mine: list[tuple[int, int]]) -> None:
        start.wait()
        while not (done.is_set() and ring.count() == 0):
            batch = ring.dequeue(32)
            if batch:
                # Each consumer still sees each producer's entries in order.
                mine.extend(batch)
            else:
                time.sleep(0)

    producers = [threading.Thread(target=produce, args=(p,)) for p in range(PRODUCERS)]
    consumers = [threading.Thread(target=consume, args=(r,)) for r in received]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join()
    done.set()
    for t in consumers:
        t.join()

    everything = received[0] + received[1]
    assert len(everything) == total
    assert set(everything) == {(p, s) for p in range(PRODUCERS) for s in range(ITEMS_PER_PRODUCER)}
    for mine in received:
        for pid in range(PRODUCERS):
            seqs = [seq for p, seq in mine if p == pid]
            assert seqs == sorted(seqs)


def test_close_if_empty() -> None:
    ring: Ring[int] = Ring(4, name="closing")
    ring.enqueue(1)
    assert not ring.close_if_empty()  # an entry is still queued: the close is refused
    assert ring.dequeue(1) == [1]
    assert ring.close_if_empty()
    assert not ring.try_enqueue(2)
    assert ring.enqueue_bulk([3, 4]) == 0
    with pytest.raises(QueueFullError):
        ring.enqueue(5)
    stats = ring.statistics()
    assert (stats.depth, stats.enqueued, stats.refused) == (0, 1, 4)
