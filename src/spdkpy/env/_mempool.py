"""Fixed-size element pools (``spdk_mempool``) with exact accounting and no lock.

A pool is created full with ``count`` elements made by a factory and never grows. ``get`` returns
``None`` when it is empty (``get_or_raise`` raises :class:`PoolExhaustedError`), ``get_bulk`` gives
all or nothing. The free list is a deque whose ``pop``/``append`` are atomic (also on
free-threaded CPython), so no element is ever lost or handed out twice without a lock; a lock
round trip would cost more than the rest of a message send.

Per-owner caches (a lightweight thread's message cache, a reactor's event cache) are plain lists
kept by their owner, exactly as SPDK's per-core caches; elements parked there do not show in
:meth:`Mempool.count`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, final

from spdkpy.errors import PoolExhaustedError

__all__ = ["Mempool", "MempoolStatistics", "cache_size_for"]

T = TypeVar("T")

MAX_CACHE_SIZE = 512


def cache_size_for(count: int, cores: int) -> int:
    """SPDK's clamp for a per-core cache: at most ``(count/2)/cores`` and at most 512."""
    return max(0, min(MAX_CACHE_SIZE, (count // 2) // max(1, cores)))


@dataclass(frozen=True, slots=True)
class MempoolStatistics:
    """A snapshot of a pool. ``free`` excludes elements parked in caches."""

    name: str
    size: int
    free: int
    in_use: int
    low_water: int
    refused: int


@final
class Mempool(Generic[T]):
    """A pool of ``count`` pre-made elements."""

    __slots__ = ("_free", "_refused_lock", "low_water", "name", "refused", "size")

    def __init__(self, count: int, factory: Callable[[], T], name: str = "") -> None:
        if count < 1:
            raise ValueError(f"mempool count must be at least 1, got {count}")
        self.name = name
        self.size = count
        self._free: deque[T] = deque(factory() for _ in range(count))
        self._refused_lock = threading.Lock()
        self.low_water = count
        self.refused = 0

    def count(self) -> int:
        """Free elements in the shared pool (cached elements are not counted, as in SPDK)."""
        return len(self._free)

    def get(self) -> T | None:
        """Take one element, or ``None`` (a counted refusal) if the pool is empty."""
        free = self._free
        try:
            item = free.pop()
        except IndexError:
            self._count_refused()
            return None
        depth = len(free)
        if depth < self.low_water:
            self.low_water = depth  # best effort under contention; exact on one OS thread
        return item

    def _count_refused(self) -> None:
        with self._refused_lock:
            self.refused += 1

    def get_or_raise(self) -> T:
        """Take one element or raise :class:`PoolExhaustedError`."""
        item = self.get()
        if item is None:
            raise PoolExhaustedError(f"mempool {self.name or '<unnamed>'} is empty ({self.size})")
        return item

    def get_bulk(self, n: int) -> list[T] | None:
        """Take exactly ``n`` elements, or none at all (``None``, a counted refusal)."""
        if n < 0:
            raise ValueError(f"cannot take a negative number of elements ({n})")
        free = self._free
        taken: list[T] = []
        try:
            for _ in range(n):
                taken.append(free.pop())
        except IndexError:
            free.extend(taken)  # all or nothing: give back the partial take
            self._count_refused()
            return None
        depth = len(free)
        if depth < self.low_water:
            self.low_water = depth
        return taken

    def put(self, item: T) -> None:
        """Return one element."""
        self._free.append(item)

    def put_bulk(self, items: list[T]) -> None:
        """Return several elements."""
        self._free.extend(items)

    def statistics(self) -> MempoolStatistics:
        """A frozen snapshot of the pool's accounting."""
        free = len(self._free)
        return MempoolStatistics(
            self.name, self.size, free, self.size - free, self.low_water, self.refused
        )
