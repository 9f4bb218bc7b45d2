"""Pollers: tail-to-head order, timed pollers under the mock clock (earliest first, ties FIFO, no
catch-up), lazy pause/resume/unregister, return values and counters, post-poller handlers,
ownership checks and exact busy/idle accounting."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spdkpy.errors import (
    InputError,
    InvalidStateError,
    QueueFullError,
    ThreadExitedError,
    WrongThreadError,
)
from spdkpy.testing import ThreadHarness
from spdkpy.thread import (
    POLLER_BUSY,
    POLLER_IDLE,
    Poller,
    PollerState,
    PollerStatistics,
    Thread,
    ThreadState,
    get_thread,
)

POOL = 16383
US = 1_000  # ticks per microsecond (tick rate 1e9)


def recorder(log: list[str], name: str, rc: int = POLLER_IDLE) -> Callable[[], int]:
    def fn() -> int:
        log.append(name)
        return rc

    fn.__qualname__ = name
    return fn


def unregister_all(t: Thread) -> None:
    for p in t.pollers():
        p.unregister()


def test_constants() -> None:
    assert POLLER_BUSY == 1
    assert POLLER_IDLE == 0
    assert [s.value for s in PollerState] == [
        "waiting",
        "running",
        "unregistered",
        "pausing",
        "paused",
    ]


# ------------------------------------------------------------------ active pollers


def test_active_pollers_run_tail_to_head() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        for name in ("a", "b", "c", "d"):
            t.register_poller(recorder(log, name))
        h.poll_thread(0)
        assert log == ["d", "c", "b", "a"]
        h.poll_thread(0)
        assert log == ["d", "c", "b", "a"] * 2
        assert [p.name for p in t.pollers()] == ["d", "c", "b", "a"]
        unregister_all(t)


def test_poller_registered_during_a_poll_first_runs_next_poll() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        late: list[Poller] = []

        def a() -> int:
            log.append("a")
            if not late:
                late.append(t.register_poller(recorder(log, "late")))
            return POLLER_IDLE

        t.register_poller(a)
        t.register_poller(recorder(log, "b"))
        h.poll_thread(0)
        assert log == ["b", "a"]
        h.poll_thread(0)
        assert log == ["b", "a", "late", "b", "a"]
        unregister_all(t)


def test_poller_registered_by_a_message_runs_in_the_same_poll() -> None:
    # Messages run before the pollers within one poll.
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        t.send_msg(lambda: log.append("msg") or t.register_poller(recorder(log, "p")))
        assert h.poll_thread(0) == 1
        assert log == ["msg", "p"]
        unregister_all(t)


def test_poller_ids_and_default_name() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t0, t1 = h.threads

        def my_poller() -> int:
            return POLLER_IDLE

        p1 = t0.register_poller(my_poller)
        p2 = t0.register_poller(my_poller, period_us=10, name="named")
        h.set_thread(1)
        q1 = t1.register_poller(my_poller)
        assert (p1.id, p2.id, q1.id) == (1, 2, 1)  # per thread, from 1
        assert p1.name.endswith("my_poller")
        assert p2.name == "named"
        assert p1.thread is t0
        assert q1.thread is t1
        q1.unregister()
        h.set_thread(0)
        p1.unregister()
        p2.unregister()
        p3 = t0.register_poller(my_poller)
        assert p3.id == 3  # never reused
        p3.unregister()


def test_poller_statistics() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        a = t.register_poller(lambda: POLLER_BUSY, name="a")
        b = t.register_poller(lambda: POLLER_IDLE, period_us=1_500_000, name="b")
        h.poll_thread(0)
        assert t.poller_statistics() == [
            PollerStatistics(a.id, "a", "waiting", 0, 1, 1),
            PollerStatistics(b.id, "b", "waiting", 1_500_000_000, 0, 0),
        ]
        stats = t.statistics()
        assert (stats.active_pollers, stats.timed_pollers, stats.paused_pollers) == (1, 1, 0)
        assert t.has_active_pollers()
        assert t.has_pollers()
        a.unregister()
        b.unregister()
        assert not t.has_active_pollers()
        assert not t.has_pollers()
        assert t.poller_statistics() == []


def test_negative_period_is_rejected() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h, pytest.raises(InputError, match="period"):
        h.threads[0].register_poller(lambda: 0, period_us=-1)


# ------------------------------------------------------------------ timed pollers


def test_timed_pollers_run_when_due_earliest_first_ties_fifo() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        t0 = h.clock.now()
        t.register_poller(recorder(log, "p100a"), period_us=100)
        t.register_poller(recorder(log, "p50"), period_us=50)
        t.register_poller(recorder(log, "p100b"), period_us=100)
        assert t.next_poller_expiration() == t0 + 50 * US
        h.delay_us(49)
        assert h.poll_thread(0) == 0
        assert log == []
        h.delay_us(1)  # exactly due: now >= next_run
        h.poll_thread(0)
        assert log == ["p50"]
        assert t.next_poller_expiration() == t0 + 100 * US
        h.delay_us(50)
        h.poll_thread(0)
        # all three due at t0+100us: FIFO by insertion, p50's reinsertion came last
        assert log == ["p50", "p100a", "p100b", "p50"]
        h.poll_thread(0)
        assert log == ["p50", "p100a", "p100b", "p50"]
        unregister_all(t)


def test_timed_pollers_with_different_deadlines_due_together_run_earliest_first() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        t.register_poller(recorder(log, "p30"), period_us=30)
        t.register_poller(recorder(log, "p10"), period_us=10)
        t.register_poller(recorder(log, "p20"), period_us=20)
        h.delay_us(1000)
        h.poll_thread(0)
        assert log == ["p10", "p20", "p30"]
        unregister_all(t)


def test_timed_poller_no_catch_up_and_rescheduled_from_poll_start() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        runs: list[int] = []

        def slow() -> int:
            runs.append(h.clock.now())
            h.clock.advance(30 * US)  # the poller itself takes 30 us
            return POLLER_BUSY

        p = t.register_poller(slow, period_us=100)
        h.delay_us(1000)  # ten periods late
        start = h.clock.now()
        assert h.poll_thread(0) == 1
        assert runs == [start]  # ran once, no catch-up
        # rescheduled at poll start + period, not poll end + period
        assert p.next_run == start + 100 * US
        assert t.next_poller_expiration() == start + 100 * US
        assert h.poll_thread(0) == 0
        assert len(runs) == 1
        h.delay_us(69)  # clock is now start + 99 us
        assert h.poll_thread(0) == 0
        h.delay_us(1)
        assert h.poll_thread(0) == 1
        assert runs == [start, start + 100 * US]
        assert p.statistics().run_count == 2
        p.unregister()


def test_timed_poller_period_conversion() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        t0 = h.clock.now()
        p = t.register_poller(lambda: 0, period_us=2_500_001)
        assert p.period_ticks == 2_500_001_000
        assert p.is_timed
        assert p.next_run == t0 + 2_500_001_000
        q = t.register_poller(lambda: 0)
        assert q.period_ticks == 0
        assert not q.is_timed
        unregister_all(t)


def test_timed_poller_registered_by_timed_poller_waits_its_period() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []

        def spawner() -> int:
            log.append("spawner")
            if len(log) == 1:
                t.register_poller(recorder(log, "child"), period_us=10)
            return POLLER_IDLE

        t.register_poller(spawner, period_us=10)
        h.delay_us(10)
        h.poll_thread(0)
        assert log == ["spawner"]
        h.delay_us(10)
        h.poll_thread(0)
        # both due at the same tick: the child was inserted before the spawner was reinserted
        assert log == ["spawner", "child", "spawner"]
        unregister_all(t)


# ------------------------------------------------------------------ pause / resume


def test_pause_active_poller_is_lazy_and_resume_puts_it_at_the_tail() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        a = t.register_poller(recorder(log, "a"))
        t.register_poller(recorder(log, "b"))
        t.register_poller(recorder(log, "c"))
        a.pause()
        assert a.state is PollerState.PAUSING
        assert t.statistics().paused_pollers == 0  # not moved yet
        h.poll_thread(0)
        assert log == ["c", "b"]
        assert a.state is PollerState.PAUSED
        assert t.statistics().paused_pollers == 1
        assert t.statistics().active_pollers == 2
        h.poll_thread(0)
        assert log == ["c", "b"] * 2
        a.pause()  # pausing a paused poller changes nothing
        assert a.state is PollerState.PAUSED
        a.resume()
        assert a.state is PollerState.WAITING
        assert t.statistics().paused_pollers == 0
        log.clear()
        h.poll_thread(0)
        assert log == ["a", "c", "b"]  # most recently resumed runs first
        unregister_all(t)


def test_pause_then_resume_before_the_loop_reaches_it_keeps_its_place() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        a = t.register_poller(recorder(log, "a"))
        t.register_poller(recorder(log, "b"))
        a.pause()
        a.resume()
        assert a.state is PollerState.WAITING
        h.poll_thread(0)
        assert log == ["b", "a"]
        unregister_all(t)


def test_pause_from_another_poller_in_the_same_pass() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        a = t.register_poller(recorder(log, "a"))

        def b() -> int:
            log.append("b")
            a.pause()  # a has not run yet in this pass: it does not run
            return POLLER_IDLE

        t.register_poller(b)
        h.poll_thread(0)
        assert log == ["b"]
        assert a.state is PollerState.PAUSED
        unregister_all(t)


def test_pause_from_inside_itself() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        runs: list[int] = []
        holder: list[Poller] = []

        def fn() -> int:
            runs.append(1)
            holder[0].pause()
            return POLLER_BUSY

        holder.append(t.register_poller(fn))
        assert h.poll_thread(0) == 1
        assert holder[0].state is PollerState.PAUSED
        assert h.poll_thread(0) == 0
        assert runs == [1]
        holder[0].resume()
        h.poll_thread(0)
        assert runs == [1, 1]
        holder[0].unregister()


def test_pause_and_resume_timed_poller() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        p = t.register_poller(recorder(log, "timed"), period_us=100)
        h.delay_us(40)
        p.pause()
        assert p.state is PollerState.PAUSING
        h.poll_thread(0)  # not due yet: nothing reaches it
        assert p.state is PollerState.PAUSING
        h.delay_us(60)
        h.poll_thread(0)  # due: the loop reaches it and parks it without running it
        assert log == []
        assert p.state is PollerState.PAUSED
        assert t.statistics().paused_pollers == 1
        assert t.next_poller_expiration() is None
        h.delay_us(500)
        h.poll_thread(0)
        assert log == []
        resumed_at = h.clock.now()
        p.resume()
        assert p.state is PollerState.WAITING
        assert p.next_run == resumed_at + 100 * US  # one period after resume
        h.delay_us(99)
        h.poll_thread(0)
        assert log == []
        h.delay_us(1)
        h.poll_thread(0)
        assert log == ["timed"]
        p.unregister()


def test_pausing_timed_poller_resumed_before_due_keeps_its_deadline() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        t0 = h.clock.now()
        p = t.register_poller(recorder(log, "timed"), period_us=100)
        p.pause()
        h.delay_us(50)
        p.resume()
        assert p.state is PollerState.WAITING
        assert p.next_run == t0 + 100 * US
        h.delay_us(50)
        h.poll_thread(0)
        assert log == ["timed"]
        p.unregister()


def test_timed_poller_pausing_itself() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        runs: list[int] = []
        holder: list[Poller] = []

        def fn() -> int:
            runs.append(1)
            holder[0].pause()
            return POLLER_IDLE

        holder.append(t.register_poller(fn, period_us=10))
        h.delay_us(10)
        h.poll_thread(0)
        assert holder[0].state is PollerState.PAUSED
        h.delay_us(100)
        h.poll_thread(0)
        assert runs == [1]
        holder[0].unregister()


# ------------------------------------------------------------------ unregister


def test_unregister_active_poller_is_idempotent() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        a = t.register_poller(recorder(log, "a"))
        t.register_poller(recorder(log, "b"))
        a.unregister()
        assert a.state is PollerState.UNREGISTERED
        a.unregister()
        assert a.state is PollerState.UNREGISTERED
        assert [p.name for p in t.pollers()] == ["b"]
        h.poll_thread(0)
        assert log == ["b"]
        assert len(t.active_pollers) == 1  # collected by the loop
        a.unregister()  # still a no-op after it was freed
        a.pause()
        a.resume()
        assert a.state is PollerState.UNREGISTERED
        h.poll_thread(0)
        assert log == ["b", "b"]
        unregister_all(t)


def test_unregister_from_inside_its_own_function() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        runs: list[str] = []
        holder: list[Poller] = []

        def once() -> int:
            runs.append("once")
            holder[0].unregister()
            return POLLER_BUSY

        holder.append(t.register_poller(once))
        assert h.poll_thread(0) == 1
        assert holder[0].state is PollerState.UNREGISTERED
        assert t.active_pollers == []
        assert h.poll_thread(0) == 0
        assert runs == ["once"]
        assert holder[0].run_count == 1
        assert holder[0].busy_count == 1


def test_timed_poller_unregisters_itself() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        runs: list[int] = []
        holder: list[Poller] = []

        def once() -> int:
            runs.append(1)
            holder[0].unregister()
            return POLLER_IDLE

        holder.append(t.register_poller(once, period_us=10))
        h.delay_us(10)
        h.poll_thread(0)
        assert t.timed_pollers == []
        assert t.next_poller_expiration() is None
        h.delay_us(100)
        h.poll_thread(0)
        assert runs == [1]


def test_unregister_another_poller_not_yet_reached() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        a = t.register_poller(recorder(log, "a"))

        def b() -> int:
            log.append("b")
            a.unregister()
            return POLLER_IDLE

        t.register_poller(b, name="b")
        h.poll_thread(0)
        assert log == ["b"]
        assert a.run_count == 0
        assert [p.name for p in t.active_pollers] == ["b"]
        unregister_all(t)


def test_unregister_timed_poller_before_due() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        p = t.register_poller(recorder(log, "timed"), period_us=10)
        p.unregister()
        assert not t.has_pollers()
        h.delay_us(10)
        assert h.poll_thread(0) == 0
        assert log == []
        assert t.timed_pollers == []


def test_unregister_paused_poller() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        active = t.register_poller(recorder(log, "active"))
        timed = t.register_poller(recorder(log, "timed"), period_us=10)
        active.pause()
        timed.pause()
        h.delay_us(10)
        h.poll_thread(0)
        assert active.state is PollerState.PAUSED
        assert timed.state is PollerState.PAUSED
        assert t.statistics().paused_pollers == 2
        active.unregister()
        timed.unregister()
        assert active.state is PollerState.UNREGISTERED
        assert timed.state is PollerState.UNREGISTERED
        assert t.paused_pollers == []
        assert t.statistics().paused_pollers == 0
        assert not t.has_pollers()
        h.poll_thread(0)  # the loop collects them
        assert t.active_pollers == []
        assert t.timed_pollers == []
        assert log == []


# ------------------------------------------------------------------ return values


def test_return_values_and_counters() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        results = {"busy": POLLER_BUSY, "idle": POLLER_IDLE, "neg": -1}
        pollers = {
            name: t.register_poller(lambda rc=rc: rc, name=name) for name, rc in results.items()
        }
        assert h.poll_thread(0) == 1
        h.poll_thread(0)
        h.poll_thread(0)
        assert {n: (p.run_count, p.busy_count) for n, p in pollers.items()} == {
            "busy": (3, 3),
            "idle": (3, 0),
            "neg": (3, 0),
        }
        assert t.statistics().active_poller_runs == 9
        pollers["busy"].unregister()
        assert h.poll_thread(0) == 0  # idle and negative: not busy
        pollers["idle"].unregister()
        assert h.poll_thread(0) == 0  # negative alone counts as idle for the poll
        unregister_all(t)


def test_poll_returns_the_largest_poller_result() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        t.register_poller(lambda: 3, name="three")
        t.register_poller(lambda: 7, period_us=1, name="seven")
        t.register_poller(lambda: -5, name="neg")
        assert h.poll_thread(0) == 3
        h.delay_us(1)
        assert h.poll_thread(0) == 7
        assert [p.busy_count for p in t.pollers()] == [0, 2, 1]
        assert t.statistics().timed_poller_runs == 1
        unregister_all(t)


@pytest.mark.parametrize("period_us", [0, 10])
def test_poller_returning_none_raises_input_error_naming_it(period_us: int) -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        p = t.register_poller(lambda: None, period_us=period_us, name="forgot_return")  # type: ignore[arg-type,return-value]
        h.delay_us(period_us)
        with pytest.raises(InputError, match=r"poller forgot_return on thread ut_thread0"):
            h.poll_thread(0)
        assert get_thread() is t
        p.unregister()


def test_exception_in_poller_propagates() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]

        def boom() -> int:
            raise RuntimeError("boom")

        h.set_thread(1)
        p = t1.register_poller(boom)
        h.set_thread(0)
        with pytest.raises(RuntimeError, match="boom"):
            h.poll_thread(1)
        assert get_thread() is h.threads[0]
        h.set_thread(1)
        p.unregister()
        h.set_thread(0)


# ------------------------------------------------------------------ post-poller handlers


def test_post_poller_handler_runs_once_right_after_the_active_poller() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        log: list[str] = []
        t.register_poller(recorder(log, "a"))

        def b() -> int:
            log.append("b")
            if log.count("b") == 1:
                t.register_post_poller_handler(lambda: log.append("h1"))
                t.register_post_poller_handler(lambda: log.append("h2"))
            return POLLER_IDLE

        t.register_poller(b)
        h.poll_thread(0)
        assert log == ["b", "h1", "h2", "a"]
        h.poll_thread(0)
        assert log == ["b", "h1", "h2", "a", "b", "a"]
        unregister_all(t)


def test_post_poller_handlers_are_limited_to_four() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        ran: list[int] = []
        errors: list[BaseException] = []

        def p() -> int:
            if not ran and not errors:
                for i in range(4):
                    t.register_post_poller_handler(lambda i=i: ran.append(i))
                try:
                    t.register_post_poller_handler(lambda: ran.append(99))
                except QueueFullError as e:
                    errors.append(e)
            return POLLER_IDLE

        t.register_poller(p)
        h.poll_thread(0)
        assert ran == [0, 1, 2, 3]
        assert len(errors) == 1
        assert "4" in str(errors[0])
        unregister_all(t)


def test_post_poller_handler_cannot_register_another() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        errors: list[BaseException] = []
        ran: list[str] = []

        def handler() -> None:
            ran.append("handler")
            try:
                t.register_post_poller_handler(lambda: ran.append("nested"))
            except InvalidStateError as e:
                errors.append(e)

        def p() -> int:
            if not ran:
                t.register_post_poller_handler(handler)
            return POLLER_IDLE

        t.register_poller(p)
        h.poll_thread(0)
        h.poll_thread(0)
        assert ran == ["handler"]
        assert len(errors) == 1
        # registering works again once the handler pass is over
        t.register_post_poller_handler(lambda: ran.append("later"))
        h.poll_thread(0)
        assert ran == ["handler", "later"]
        unregister_all(t)


def test_post_poller_handler_from_the_wrong_thread() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h, pytest.raises(WrongThreadError):
        h.threads[1].register_post_poller_handler(lambda: None)


# ------------------------------------------------------------------ ownership


def test_poller_operations_from_the_wrong_thread() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t0, t1 = h.threads
        with pytest.raises(WrongThreadError, match="ut_thread1 from thread ut_thread0"):
            t1.register_poller(lambda: 0)
        h.set_thread(None)
        with pytest.raises(WrongThreadError, match="non-SPDK thread"):
            t0.register_poller(lambda: 0)
        h.set_thread(0)
        p = t0.register_poller(lambda: 0, name="owned")
        for current in (1, None):
            h.set_thread(current)
            with pytest.raises(WrongThreadError):
                p.pause()
            with pytest.raises(WrongThreadError):
                p.resume()
            with pytest.raises(WrongThreadError):
                p.unregister()
        h.set_thread(0)
        assert p.state is PollerState.WAITING
        assert t0.statistics().active_pollers == 1
        assert t1.statistics().active_pollers == 0
        p.unregister()


def test_register_on_exiting_thread_is_allowed_and_on_exited_thread_raises() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        h.set_thread(1)
        t1.exit()
        assert t1.state is ThreadState.EXITING
        p = t1.register_poller(lambda: 0, name="late")
        h.poll_thread(1)
        assert t1.state is ThreadState.EXITING  # held by the poller
        h.set_thread(1)
        p.unregister()
        h.poll_thread(1)
        assert t1.state is ThreadState.EXITED
        h.set_thread(1)
        with pytest.raises(ThreadExitedError, match="ut_thread1"):
            t1.register_poller(lambda: 0)
        with pytest.raises(ThreadExitedError):
            t1.register_poller(lambda: 0, period_us=10)
        assert not t1.has_pollers()
        h.set_thread(0)


# ------------------------------------------------------------------ busy / idle accounting


def test_busy_and_idle_time_are_exact_under_the_mock_clock() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        clock = h.clock
        mode = {"rc": POLLER_BUSY, "cost": 100}

        def worker() -> int:
            clock.advance(mode["cost"])
            return mode["rc"]

        p = t.register_poller(worker)
        h.poll_thread(0)
        assert (t.statistics().busy, t.statistics().idle) == (100, 0)
        mode.update(rc=POLLER_IDLE, cost=40)
        h.poll_thread(0)
        assert (t.statistics().busy, t.statistics().idle) == (100, 40)
        mode.update(rc=-1, cost=7)  # negative: a poll with rc 0, charged as idle
        h.poll_thread(0)
        assert (t.statistics().busy, t.statistics().idle) == (100, 47)
        mode.update(rc=POLLER_IDLE, cost=5)
        t.send_msg(clock.advance, 1000)  # a message makes the poll busy
        h.poll_thread(0)
        assert (t.statistics().busy, t.statistics().idle) == (1105, 47)
        assert t.tsc_last == clock.now()
        p.unregister()
        h.poll_thread(0)
        assert (t.statistics().busy, t.statistics().idle) == (1105, 47)


def test_poll_charges_from_the_given_now_to_the_clock() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        h.clock.advance(1000)
        now = h.clock.now()
        assert t.poll(0, now - 300) == 0  # idle fast path: 300 ticks idle
        assert t.statistics().idle == 300
        assert t.tsc_last == now
        t.send_msg(lambda: None)
        assert t.poll(0, now - 50) == 1
        assert t.statistics().busy == 50
        p = t.register_poller(lambda: POLLER_IDLE)
        assert t.poll(0, now - 25) == 0  # full path, idle
        assert t.statistics().idle == 325
        p.unregister()


def test_timed_poller_busy_time() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]

        def worker() -> int:
            h.clock.advance(250)
            return POLLER_BUSY

        p = t.register_poller(worker, period_us=10)
        h.delay_us(10)
        h.poll_thread(0)
        h.poll_thread(0)  # not due: idle, charged 0
        assert (t.statistics().busy, t.statistics().idle) == (250, 0)
        assert t.statistics().timed_poller_runs == 1
        p.unregister()
