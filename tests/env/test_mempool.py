"""Mempool: fixed size, exact accounting, None/raise when empty, all-or-nothing bulk, statistics."""

from __future__ import annotations

import itertools
import threading

import pytest

from spdkpy.env import Mempool, MempoolStatistics, cache_size_for
from spdkpy.errors import PoolExhaustedError


def make_pool(count: int, name: str = "pool") -> Mempool[int]:
    counter = itertools.count()
    return Mempool(count, lambda: next(counter), name=name)


@pytest.mark.parametrize("count", [0, -1])
def test_count_must_be_positive(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        make_pool(count)


def test_pool_is_created_full_with_distinct_elements() -> None:
    pool = make_pool(8)
    assert pool.count() == 8
    taken = pool.get_bulk(8)
    assert taken is not None
    assert sorted(taken) == list(range(8))


def test_get_returns_none_when_empty_and_never_grows() -> None:
    pool = make_pool(2)
    a, b = pool.get(), pool.get()
    assert a is not None
    assert b is not None
    assert a != b
    assert pool.get() is None
    assert pool.count() == 0
    pool.put(a)
    assert pool.count() == 1
    assert pool.get() == a
    assert pool.get() is None


def test_get_or_raise() -> None:
    pool = make_pool(1, name="evtpool_1")
    element = pool.get_or_raise()
    with pytest.raises(PoolExhaustedError, match="mempool evtpool_1 is empty"):
        pool.get_or_raise()
    pool.put(element)
    assert pool.get_or_raise() == element


def test_get_bulk_is_all_or_nothing() -> None:
    pool = make_pool(5)
    first = pool.get_bulk(3)
    assert first is not None
    assert len(first) == 3
    assert pool.get_bulk(3) is None  # only two left: nothing taken
    assert pool.count() == 2
    assert pool.get_bulk(0) == []
    rest = pool.get_bulk(2)
    assert rest is not None
    assert sorted(first + rest) == list(range(5))
    assert pool.get_bulk(1) is None
    pool.put_bulk(first)
    assert pool.count() == 3


def test_get_bulk_rejects_negative_count() -> None:
    pool = make_pool(4)
    with pytest.raises(ValueError, match="negative"):
        pool.get_bulk(-1)
    assert pool.count() == 4


def test_statistics_account_exactly() -> None:
    pool = make_pool(4, name="msgpool")
    assert pool.statistics() == MempoolStatistics("msgpool", 4, 4, 0, 4, 0)
    taken = pool.get_bulk(3)
    assert taken is not None
    assert pool.get_bulk(2) is None  # refusal 1
    one = pool.get()
    assert pool.get() is None  # refusal 2
    pool.put_bulk(taken)
    assert pool.statistics() == MempoolStatistics(
        name="msgpool", size=4, free=3, in_use=1, low_water=0, refused=2
    )
    assert one is not None
    pool.put(one)
    assert pool.statistics().in_use == 0


def test_threads_never_share_an_element() -> None:
    pool = make_pool(64)
    errors: list[str] = []
    in_use: set[int] = set()
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(2000):
            element = pool.get()
            if element is None:
                continue
            with lock:
                if element in in_use:
                    errors.append(f"element {element} handed out twice")
                in_use.add(element)
            with lock:
                in_use.discard(element)
            pool.put(element)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pool.count() == 64


@pytest.mark.parametrize(
    ("count", "cores", "expected"),
    [
        (16383, 1, 512),  # evtpool: capped at 512
        (16383, 32, 255),  # (16383/2)/32
        (1000, 4, 125),
        (1, 1, 0),
        (100, 0, 50),  # no cores: treated as one
    ],
)
def test_cache_size_clamp(count: int, cores: int, expected: int) -> None:
    assert cache_size_for(count, cores) == expected
