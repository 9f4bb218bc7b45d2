"""The test harness itself: MockClock and ThreadHarness (SPDK's ut_multithread)."""

from __future__ import annotations

import pytest

from spdkpy.env import CpuSet
from spdkpy.testing import MockClock, ThreadHarness
from spdkpy.thread import POLLER_BUSY, get_thread, library_or_none

POOL = 16383


def test_mock_clock() -> None:
    clock = MockClock()
    assert clock.now() == 1  # tick 0 means "read the clock" to Thread.poll
    assert clock.ticks_per_second == 1_000_000_000
    clock.advance(10)
    assert clock.now() == 11
    clock.delay_us(3)
    assert clock.now() == 3011
    clock.delay_us(2_000_000)
    assert clock.now() == 2_000_003_011
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    assert MockClock(start=500).now() == 500


def test_harness_allocates_named_threads_and_sets_the_first_current() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        assert [t.name for t in h.threads] == ["ut_thread0", "ut_thread1", "ut_thread2"]
        assert [t.cpumask for t in h.threads] == [CpuSet([0]), CpuSet([1]), CpuSet([2])]
        assert h.current is h.threads[0]
        assert get_thread() is h.threads[0]
        h.set_thread(2)
        assert h.current is h.threads[2]
        h.set_thread(None)
        assert h.current is None
        more = h.allocate_threads(2)
        assert [t.name for t in more] == ["ut_thread3", "ut_thread4"]
        assert h.threads[3:] == more
        assert h.library.clock is h.clock
    assert library_or_none() is None
    assert get_thread() is None


def test_poll_threads_counts_busy_rounds() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        assert h.poll_threads() == 0
        t0, t1 = h.threads

        def ping(n: int) -> None:
            if n:
                (t1 if get_thread() is t0 else t0).send_msg(ping, n - 1)

        t0.send_msg(ping, 5)
        # round 1: t0 runs ping(5) and t1 already runs ping(4); t0 ping(3) next round...
        assert h.poll_threads() == 3
        assert h.poll_threads() == 0


def test_poll_threads_gives_up_on_a_thread_that_is_always_busy() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        p = h.threads[0].register_poller(lambda: POLLER_BUSY, name="spinner")
        with pytest.raises(AssertionError, match="still busy after 5 rounds"):
            h.poll_threads(max_rounds=5)
        assert p.run_count == 5
        p.unregister()


def test_delay_us_moves_the_mock_clock() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        before = h.clock.now()
        h.delay_us(7)
        assert h.clock.now() == before + 7_000


def test_harness_exit_after_an_exception_releases_the_library() -> None:
    with pytest.raises(RuntimeError, match="test failed"), ThreadHarness(2, msg_mempool_size=POOL):
        raise RuntimeError("test failed")
    assert library_or_none() is None
    assert get_thread() is None
