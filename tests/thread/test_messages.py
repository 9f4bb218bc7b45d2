"""Messages: always asynchronous, FIFO per sender, batches of 8, typed refusals that are counted,
exact message-object accounting, the critical message, exec_msg, and many producer OS threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from spdkpy.errors import (
    PoolExhaustedError,
    QueueFullError,
    ResourceError,
    ThreadExitedError,
)
from spdkpy.testing import ThreadHarness
from spdkpy.thread import MSG_BATCH_SIZE, Thread, ThreadState, get_thread

RING_SIZE = 65536
CACHE_SIZE = 1024
POOL = 16383  # small pools keep each harness cheap; tests that need more say so


def noop() -> None:
    pass


def exit_thread(h: ThreadHarness, index: int) -> Thread:
    """Drive thread ``index`` to EXITED (it holds nothing, so one poll does it)."""
    t = h.threads[index]
    t.send_msg(t.exit)
    h.poll_thread(index)
    assert t.state is ThreadState.EXITED
    return t


def message_objects_accounted(h: ThreadHarness) -> int:
    """Free pool elements + every thread's cache + every queued message."""
    lib = h.library
    cached = sum(len(t._msg_cache) for t in lib.all_threads())
    queued = sum(t.queue_depth() for t in lib.all_threads())
    return lib.msg_pool.count() + cached + queued


def test_batch_size_constant() -> None:
    assert MSG_BATCH_SIZE == 8


def test_send_msg_never_runs_inline_even_to_self() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        assert get_thread() is t
        ran: list[str] = []

        def outer() -> None:
            ran.append("outer")
            t.send_msg(ran.append, "inner")
            assert ran == ["outer"]  # not inline from inside a message either

        t.send_msg(outer)
        assert ran == []
        assert t.queue_depth() == 1
        assert h.poll_thread(0) == 1
        assert ran == ["outer"]  # the message it sent waits for the next poll
        assert h.poll_thread(0) == 1
        assert ran == ["outer", "inner"]
        assert h.poll_thread(0) == 0


def test_try_send_msg_returns_true_and_passes_args() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        got: list[tuple[object, ...]] = []
        assert t.try_send_msg(lambda *a: got.append(a), 1, "two", None) is True
        t.send_msg(lambda *a: got.append(a))
        h.poll_threads()
        assert got == [(1, "two", None), ()]


def test_messages_run_on_the_target_thread() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        seen: list[Thread | None] = []
        h.threads[2].send_msg(lambda: seen.append(get_thread()))
        h.threads[1].send_msg(lambda: seen.append(get_thread()))
        h.poll_threads()
        assert seen == [h.threads[1], h.threads[2]]
        # polling restores the previous current thread
        assert get_thread() is h.threads[0]


def test_fifo_per_sender_and_global_enqueue_order() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        target = h.threads[2]
        got: list[tuple[str, int]] = []
        expected: list[tuple[str, int]] = []
        for i in range(40):
            sender = i % 3  # thread 0, thread 1 and a non-SPDK caller interleave
            h.set_thread(sender if sender < 2 else None)
            tag = f"s{sender}"
            target.send_msg(got.append, (tag, i))
            expected.append((tag, i))
        h.set_thread(0)
        h.poll_threads()
        assert got == expected
        for tag in ("s0", "s1", "s2"):
            seq = [i for t, i in got if t == tag]
            assert seq == sorted(seq)
            assert len(seq) in (13, 14)


def test_at_most_eight_messages_per_poll() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        ran: list[int] = []
        for i in range(20):
            t.send_msg(ran.append, i)
        assert h.poll_thread(0) == 1
        assert ran == list(range(8))
        assert t.queue_depth() == 12
        assert h.poll_thread(0) == 1
        assert ran == list(range(16))
        assert h.poll_thread(0) == 1
        assert ran == list(range(20))
        assert h.poll_thread(0) == 0
        stats = t.statistics()
        assert stats.messages_run == 20
        assert stats.queue_depth == 0
        assert stats.queue_high_water == 20


@pytest.mark.parametrize(
    ("max_msgs", "per_poll"),
    [(0, 8), (1, 1), (3, 3), (7, 7), (8, 8), (9, 8), (1000, 8)],
)
def test_max_msgs(max_msgs: int, per_poll: int) -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        ran: list[int] = []
        for i in range(30):
            t.send_msg(ran.append, i)
        counts = []
        while t.queue_depth():
            before = len(ran)
            assert h.poll_thread(0, max_msgs=max_msgs) == 1
            counts.append(len(ran) - before)
        assert ran == list(range(30))
        assert counts == [per_poll] * (30 // per_poll) + ([30 % per_poll] if 30 % per_poll else [])


def test_messages_sent_during_a_batch_wait_for_a_later_poll() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        other = h.threads[1]
        ran: list[str] = []

        def first(i: int) -> None:
            ran.append(f"first{i}")
            t.send_msg(ran.append, f"again{i}")

        for i in range(3):
            t.send_msg(first, i)
        assert h.poll_thread(0) == 1
        # 3 < 8 messages were queued; the 3 sent during the batch did not join it
        assert ran == ["first0", "first1", "first2"]
        assert t.queue_depth() == 3
        assert h.poll_thread(0) == 1
        assert ran == ["first0", "first1", "first2", "again0", "again1", "again2"]
        # the same holds for messages that another thread sends mid-batch
        ran.clear()

        def relay() -> None:
            ran.append("relay")
            t.send_msg(ran.append, "late")

        t.send_msg(other.send_msg, relay)
        t.send_msg(ran.append, "early")
        assert h.poll_thread(0) == 1
        assert h.poll_thread(1) == 1
        assert ran == ["early", "relay"]
        assert h.poll_thread(0) == 1
        assert ran == ["early", "relay", "late"]


def test_exited_thread_refuses_messages_and_counts_them() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t = exit_thread(h, 1)
        ran: list[int] = []
        assert t.try_send_msg(ran.append, 1) is False
        with pytest.raises(ThreadExitedError, match="ut_thread1"):
            t.send_msg(ran.append, 2)
        assert isinstance(ThreadExitedError("x"), ResourceError)
        assert t.statistics().messages_refused == 2
        assert t.queue_depth() == 0
        h.poll_thread(1)
        assert ran == []
        assert h.threads[0].statistics().messages_refused == 0
        # nothing leaked: the refused sends took no message object
        assert message_objects_accounted(h) == h.library.msg_pool.size


def test_full_ring_raises_queue_full_and_nothing_is_lost() -> None:
    with ThreadHarness(2) as h:
        t = h.threads[1]
        pool = h.library.msg_pool
        ran: list[int] = []
        for i in range(RING_SIZE):
            assert t.try_send_msg(ran.append, i)
        assert t.queue_depth() == RING_SIZE
        free_before = pool.count()
        cache_before = len(h.threads[0]._msg_cache)
        assert t.try_send_msg(ran.append, -1) is False
        with pytest.raises(QueueFullError, match="ut_thread1"):
            t.send_msg(ran.append, -2)
        h.set_thread(None)  # from a non-SPDK thread too
        assert t.try_send_msg(ran.append, -3) is False
        h.set_thread(0)
        assert t.statistics().messages_refused == 3
        assert t.queue_depth() == RING_SIZE
        # the refused message objects went back: the pool did not shrink
        assert pool.count() + len(h.threads[0]._msg_cache) == free_before + cache_before
        assert message_objects_accounted(h) == pool.size
        polls = 0
        while h.poll_thread(1):
            polls += 1
        assert polls == RING_SIZE // MSG_BATCH_SIZE
        assert ran == list(range(RING_SIZE))
        stats = t.statistics()
        assert stats.messages_run == RING_SIZE
        assert stats.queue_high_water == RING_SIZE
        assert message_objects_accounted(h) == pool.size
        # room again
        assert t.try_send_msg(ran.append, RING_SIZE)


def test_pool_exhausted_raises_and_is_counted() -> None:
    # Thread 0 pre-takes 1024 messages into its cache: 3 are left in the pool.
    with ThreadHarness(1, msg_mempool_size=CACHE_SIZE + 3) as h:
        t = h.threads[0]
        pool = h.library.msg_pool
        assert pool.count() == 3
        assert len(t._msg_cache) == CACHE_SIZE
        ran: list[int] = []
        h.set_thread(None)  # a non-SPDK sender has no cache: it takes from the pool
        for i in range(3):
            assert t.try_send_msg(ran.append, i)
        assert pool.count() == 0
        assert t.try_send_msg(ran.append, 3) is False
        with pytest.raises(PoolExhaustedError, match="ut_thread0"):
            t.send_msg(ran.append, 4)
        assert t.statistics().messages_refused == 2
        assert t.queue_depth() == 3
        # an SPDK sender still has its cache
        h.set_thread(0)
        t.send_msg(ran.append, 5)
        assert len(t._msg_cache) == CACHE_SIZE - 1
        h.poll_threads()
        assert ran == [0, 1, 2, 5]
        # the executing thread's cache had room for one; the other three went to the pool
        assert len(t._msg_cache) == CACHE_SIZE
        assert pool.count() == 3
        assert message_objects_accounted(h) == CACHE_SIZE + 3


def test_cache_prefill_is_skipped_when_the_pool_cannot_supply_it() -> None:
    with ThreadHarness(2, msg_mempool_size=1500) as h:
        t0, t1 = h.threads
        pool = h.library.msg_pool
        assert len(t0._msg_cache) == CACHE_SIZE
        assert len(t1._msg_cache) == 0
        assert pool.count() == 1500 - CACHE_SIZE
        # t1 sends from the pool; t0 executes with a full cache, so the object goes back
        h.set_thread(1)
        ran: list[int] = []
        t0.send_msg(ran.append, 1)
        assert pool.count() == 1500 - CACHE_SIZE - 1
        h.poll_threads()
        assert ran == [1]
        assert pool.count() == 1500 - CACHE_SIZE
        # t0 sends to t1: from t0's cache; t1 executes and keeps the object in its own cache
        h.set_thread(0)
        for i in range(5):
            t1.send_msg(ran.append, i)
        assert len(t0._msg_cache) == CACHE_SIZE - 5
        h.poll_threads()
        assert len(t1._msg_cache) == 5
        assert pool.count() == 1500 - CACHE_SIZE
        assert message_objects_accounted(h) == 1500


def test_message_objects_go_to_the_executing_threads_cache() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t0, t1 = h.threads
        pool = h.library.msg_pool
        size = pool.size
        assert pool.count() == size - 2 * CACHE_SIZE
        for _ in range(10):
            t1.send_msg(noop)  # sender t0: its cache gives the objects
        assert len(t0._msg_cache) == CACHE_SIZE - 10
        assert pool.count() == size - 2 * CACHE_SIZE
        h.poll_threads()
        # t1's cache is full, so the 10 objects went to the pool
        assert len(t1._msg_cache) == CACHE_SIZE
        assert pool.count() == size - 2 * CACHE_SIZE + 10
        h.set_thread(1)
        for _ in range(10):
            t0.send_msg(noop)
        h.poll_threads()
        # t0 had room for exactly 10: the pool is untouched
        assert len(t0._msg_cache) == CACHE_SIZE
        assert len(t1._msg_cache) == CACHE_SIZE - 10
        assert pool.count() == size - 2 * CACHE_SIZE + 10
        assert message_objects_accounted(h) == size


def test_message_accounting_is_exact_after_traffic() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        pool = h.library.msg_pool
        counter = [0]

        def hop(n: int) -> None:
            counter[0] += 1
            if n:
                nxt = h.threads[n % 3]
                nxt.send_msg(hop, n - 1)

        for start in range(3):
            h.set_thread(start)
            for _ in range(50):
                h.threads[(start + 1) % 3].send_msg(hop, 20)
        h.set_thread(None)
        for _ in range(100):
            h.threads[1].send_msg(hop, 5)
        h.set_thread(0)
        h.poll_threads()
        assert counter[0] == 150 * 21 + 100 * 6
        assert message_objects_accounted(h) == pool.size
        total_run = sum(t.statistics().messages_run for t in h.threads)
        assert total_run == counter[0]
    # after free_threads every cache went back to the pool
    assert pool.count() == pool.size


def test_a_message_withdrawn_after_the_batch_was_counted_ends_the_batch() -> None:
    # Free-threaded builds: a producer whose append overshot the capacity takes its message back
    # (Ring.withdraw) after the consumer counted it. Here the first message plays that producer.
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        ring = t._ring
        ran: list[str] = []

        def withdraw_last() -> None:
            late = ring.queue[-1]
            assert ring.withdraw(late)
            late.fn = None
            late.args = ()
            h.library.msg_pool.put(late)

        t.send_msg(withdraw_last)
        t.send_msg(ran.append, "withdrawn")
        assert h.poll_thread(0) == 1  # two counted, one found: the batch ends, nothing raises
        assert ran == []
        assert t.statistics().messages_run == 1
        assert (ring.statistics().enqueued, ring.statistics().refused) == (1, 1)
        assert h.poll_thread(0) == 0
        assert message_objects_accounted(h) == h.library.msg_pool.size


def test_critical_message_runs_first_with_no_arguments() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        order: list[object] = []

        def critical(*args: object) -> None:
            order.append(("critical", args, get_thread()))

        t.send_msg(order.append, "m1")
        t.send_msg(order.append, "m2")
        t.register_poller(lambda: order.append("poller") or 0, name="p")
        t.send_critical_msg(critical)
        assert order == []
        assert h.poll_thread(0) == 1
        assert order == [("critical", (), t), "m1", "m2", "poller"]
        stats = t.statistics()
        assert stats.critical_messages_run == 1
        assert stats.messages_run == 2
        for p in t.pollers():
            p.unregister()


def test_critical_message_alone_makes_the_poll_busy() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        ran: list[int] = []
        t.send_critical_msg(lambda: ran.append(1))
        assert t.has_pending_work()
        assert not t.is_idle()
        assert h.poll_thread(0) == 1
        assert ran == [1]
        assert h.poll_thread(0) == 0
        assert not t.has_pending_work()


def test_second_pending_critical_message_is_refused() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        ran: list[str] = []
        t.send_critical_msg(lambda: ran.append("first"))
        with pytest.raises(QueueFullError, match="critical"):
            t.send_critical_msg(lambda: ran.append("second"))
        assert t.statistics().messages_refused == 1
        h.poll_thread(0)
        assert ran == ["first"]
        # the slot is free again once it ran
        t.send_critical_msg(lambda: ran.append("third"))
        h.poll_thread(0)
        assert ran == ["first", "third"]
        assert t.statistics().critical_messages_run == 2


def test_critical_message_allocates_nothing() -> None:
    with ThreadHarness(1, msg_mempool_size=CACHE_SIZE) as h:
        t = h.threads[0]
        assert h.library.msg_pool.count() == 0
        h.set_thread(None)
        ran: list[int] = []
        t.send_critical_msg(lambda: ran.append(1))  # no pool element needed
        h.poll_thread(0)
        assert ran == [1]


def test_exec_msg_runs_inline_only_when_current() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t0, t1 = h.threads
        ran: list[str] = []
        t0.exec_msg(ran.append, "inline")
        assert ran == ["inline"]
        assert t0.queue_depth() == 0
        t1.exec_msg(ran.append, "queued")  # t0 is current, not t1
        assert ran == ["inline"]
        assert t1.queue_depth() == 1
        h.set_thread(None)
        t0.exec_msg(ran.append, "queued-from-nowhere")
        assert ran == ["inline"]
        h.set_thread(0)
        h.poll_threads()
        assert ran == ["inline", "queued-from-nowhere", "queued"]


def test_exec_msg_to_exited_thread_raises() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t = exit_thread(h, 1)
        with pytest.raises(ThreadExitedError):
            t.exec_msg(noop)


def test_exception_in_message_propagates_and_restores_current_thread() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        ran: list[int] = []

        def boom() -> None:
            raise RuntimeError("boom")

        t1.send_msg(boom)
        t1.send_msg(ran.append, 1)
        with pytest.raises(RuntimeError, match="boom"):
            h.poll_thread(1)
        assert get_thread() is h.threads[0]
        h.poll_thread(1)
        assert ran == [1]


PRODUCERS = 4
PER_PRODUCER = 100_000


def test_many_producer_os_threads_to_one_thread() -> None:
    with ThreadHarness(1) as h:
        t = h.threads[0]
        received: list[tuple[int, int]] = []
        append = received.append
        start = threading.Barrier(PRODUCERS + 1)
        errors: list[BaseException] = []

        def producer(pid: int) -> None:
            try:
                send: Callable[..., bool] = t.try_send_msg
                start.wait()
                for seq in range(PER_PRODUCER):
                    while not send(append, (pid, seq)):
                        time.sleep(0)  # ring full: let the consumer drain
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        workers = [threading.Thread(target=producer, args=(p,)) for p in range(PRODUCERS)]
        for w in workers:
            w.start()
        start.wait()
        total = PRODUCERS * PER_PRODUCER
        deadline = time.monotonic() + 60
        while len(received) < total:
            if not h.poll_thread(0):
                assert time.monotonic() < deadline, f"only {len(received)} of {total} arrived"
                time.sleep(0)
        for w in workers:
            w.join()
        assert errors == []
        assert h.poll_thread(0) == 0
        assert len(received) == total
        assert len(set(received)) == total  # no duplicates
        for pid in range(PRODUCERS):
            mine = [seq for p, seq in received if p == pid]
            assert mine == list(range(PER_PRODUCER))  # none lost, order kept
        stats = t.statistics()
        assert stats.messages_run == total
        assert stats.queue_depth == 0
        # The consumer may see, for an instant, one not-yet-checked entry per producer above
        # the capacity (free-threaded builds; see spdkpy.env._ring).
        assert stats.queue_high_water <= RING_SIZE + PRODUCERS
        assert message_objects_accounted(h) == h.library.msg_pool.size


def test_refusals_from_many_os_threads_are_counted_exactly() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        t._ring.capacity = 10  # a tiny ring: almost every send is refused
        attempts = 5_000
        accepted = [0] * PRODUCERS
        start = threading.Barrier(PRODUCERS)

        def producer(pid: int) -> None:
            start.wait()
            for _ in range(attempts):
                if t.try_send_msg(noop):
                    accepted[pid] += 1

        workers = [threading.Thread(target=producer, args=(p,)) for p in range(PRODUCERS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert t.queue_depth() <= 10
        assert sum(accepted) == t.queue_depth()
        assert t.statistics().messages_refused == PRODUCERS * attempts - sum(accepted)
        assert message_objects_accounted(h) == POOL
        h.poll_threads()
        t._ring.capacity = RING_SIZE
