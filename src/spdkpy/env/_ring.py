"""Bounded FIFO rings (``spdk_ring``): a capacity, all-or-nothing bulk enqueue, no lock.

Theory of operation. SPDK's rings are lock-free DPDK rings; spdkpy uses the structure the spec
names, a ``collections.deque`` with a capacity check, and keeps it lock-free too, because a
``threading.Lock`` round trip costs 170-280 ns on our machines, more than the rest of a message
send (``bench/`` measures it):

* ``deque.append``, ``extend``, ``popleft`` and ``remove`` are each atomic and documented
  thread-safe, also on free-threaded CPython, where every deque has its own mutex. Nothing here
  relies on the GIL.
* A producer appends first and checks the depth after. If the ring went over capacity, it takes
  its own entry back out (``remove``; entries are distinct objects, compared by identity). If the
  consumer already took it, it was delivered, which counts as success. So an entry is either
  delivered exactly once or refused, and the settled depth never exceeds the capacity; racing
  producers at the full mark may both back off (a refusal while there was one free slot).
* A bulk enqueue checks for room, then extends in one atomic step and is never taken back: all
  entries or none. Single enqueues racing with it at the full mark may overshoot the capacity by
  at most one entry per racing OS thread (they cannot see the bulk coming).
* The single consumer pops from :attr:`queue` directly in its hot loop and counts what it took in
  :attr:`dequeued`; the high-water mark is taken by the consumer and at each snapshot.
* Appended-but-unchecked entries are visible. Between a producer's append and its check the
  depth may exceed the capacity by one entry per OS thread enqueuing at that instant; such an
  entry is either taken back or delivered. So the high-water mark may read up to that many above
  the capacity, and a consumer that read ``len(queue)`` may find fewer entries when it pops (they
  were withdrawn in between): every consumer pops until the count it read *or* an empty deque.
  With the GIL this window is a few bytecodes wide and rarely hit; free-threaded builds hit it
  whenever producers race at the full mark.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar, final

from spdkpy.errors import QueueFullError

__all__ = ["DEFAULT_RING_SIZE", "Ring", "RingStatistics", "RingType"]

T = TypeVar("T")

DEFAULT_RING_SIZE: Final = 65536


class RingType(enum.Enum):
    """Producer/consumer discipline, as SPDK's ``SPDK_RING_TYPE_*``."""

    SP_SC = "sp_sc"
    MP_SC = "mp_sc"
    MP_MC = "mp_mc"


@dataclass(frozen=True, slots=True)
class RingStatistics:
    """A snapshot of a ring. ``refused`` counts entries that did not fit (each one counted)."""

    name: str
    capacity: int
    depth: int
    high_water: int
    enqueued: int
    refused: int


@final
class Ring(Generic[T]):
    """A bounded FIFO. ``enqueue`` from any OS thread; ``dequeue`` from the single consumer
    (from several only with ``MP_MC``).
    """

    __slots__ = (
        "_mc_lock",
        "_refused_lock",
        "capacity",
        "dequeued",
        "high_water",
        "name",
        "queue",
        "refused",
        "type",
    )

    def __init__(
        self, capacity: int = DEFAULT_RING_SIZE, type: RingType = RingType.MP_SC, name: str = ""
    ) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1, got {capacity}")
        self.name = name
        self.type = type
        self.capacity = capacity
        self.queue: deque[T] = deque()
        """The entries, oldest first. Only the consumer pops, then adds to :attr:`dequeued`."""
        self._refused_lock = threading.Lock()  # refusals are rare; counting them must be exact
        self._mc_lock = threading.Lock() if type is RingType.MP_MC else None
        self.high_water = 0
        self.dequeued = 0
        self.refused = 0

    def __len__(self) -> int:
        return len(self.queue)

    def count(self) -> int:
        """Entries currently queued."""
        return len(self.queue)

    def try_enqueue(self, item: T) -> bool:
        """Append one entry; ``False`` (and a counted refusal) when the ring is full."""
        q = self.queue
        q.append(item)
        if len(q) > self.capacity:
            return not self.withdraw(item)
        return True

    def withdraw(self, item: T) -> bool:
        """Take back an entry just appended to :attr:`queue` that overflowed the capacity.

        Returns ``True`` (a counted refusal) if it was withdrawn, ``False`` if the consumer had
        already taken it, i.e. it was delivered. Hot paths append to :attr:`queue` themselves and
        call this only when ``len(queue) > capacity``, exactly as :meth:`try_enqueue` does.
        """
        try:
            self.queue.remove(item)
        except ValueError:
            return False
        self._count_refused(1)
        return True

    def _count_refused(self, n: int) -> None:
        with self._refused_lock:
            self.refused += n

    def enqueue(self, item: T) -> None:
        """Append one entry or raise :class:`QueueFullError`."""
        if not self.try_enqueue(item):
            raise QueueFullError(f"ring {self.name or '<unnamed>'} is full ({self.capacity})")

    def enqueue_bulk(self, items: Iterable[T]) -> int:
        """Append all entries or none; returns how many were added (``len(items)`` or 0)."""
        batch = list(items)
        n = len(batch)
        q = self.queue
        if len(q) + n > self.capacity:
            self._count_refused(n)
            return 0
        q.extend(batch)
        return n

    def dequeue(self, max_count: int) -> list[T]:
        """Remove and return up to ``max_count`` entries, oldest first."""
        if self._mc_lock is not None:
            with self._mc_lock:
                return self._pop(max_count)
        return self._pop(max_count)

    def _pop(self, max_count: int) -> list[T]:
        q = self.queue
        depth = len(q)
        if depth > self.high_water:
            self.high_water = depth
        n = min(depth, max_count)
        if n <= 0:
            return []
        popleft = q.popleft
        taken: list[T] = []
        try:
            for _ in range(n):
                taken.append(popleft())
        except IndexError:
            pass  # a producer withdrew an entry counted in ``depth`` (see the module docstring)
        self.dequeued += len(taken)
        return taken

    def close_if_empty(self) -> bool:
        """Refuse all further entries, but only if the ring is empty now; ``True`` if closed.

        Used when the consumer goes away. The capacity drops to 0 *before* the emptiness check
        and producers check the capacity *after* appending, so a racing producer either sees
        the close and takes its entry back, or its entry is seen here and the close is refused:
        no entry is ever stranded.
        """
        saved = self.capacity
        self.capacity = 0
        if self.queue:
            self.capacity = saved
            return False
        return True

    def statistics(self) -> RingStatistics:
        """A frozen snapshot of depth, high-water mark and counters."""
        depth = len(self.queue)
        if depth > self.high_water:
            self.high_water = depth
        return RingStatistics(
            self.name,
            self.capacity,
            depth,
            self.high_water,
            self.dequeued + depth,
            self.refused,
        )
