"""Thread lifecycle: RUNNING → EXITING → EXITED → destroyed, what holds an exit, the 5 s forced exit
and its explanation, destroy rules, ids, the app thread, names and library initialisation."""

from __future__ import annotations

import logging

import pytest

from spdkpy.errors import (
    InputError,
    InvalidStateError,
    ResourceError,
    SpdkpyError,
    ThreadExitedError,
    WrongThreadError,
)
from spdkpy.testing import MockClock, ThreadHarness
from spdkpy.thread import (
    DEFAULT_MSG_MEMPOOL_SIZE,
    THREAD_EXIT_TIMEOUT_S,
    Thread,
    ThreadOp,
    ThreadState,
    for_each_thread,
    get_io_channel,
    get_thread,
    io_device_register,
    io_device_unregister,
    library_or_none,
    thread_lib_fini,
    thread_lib_init,
)

POOL = 16383
TIMEOUT_TICKS = THREAD_EXIT_TIMEOUT_S * 1_000_000_000
RUNNING, EXITING, EXITED = ThreadState.RUNNING, ThreadState.EXITING, ThreadState.EXITED


def noop() -> None:
    pass


def test_constants() -> None:
    assert THREAD_EXIT_TIMEOUT_S == 5
    assert DEFAULT_MSG_MEMPOOL_SIZE == 262143
    with ThreadHarness(1) as h:
        assert h.library.msg_pool.size == 262143


# ------------------------------------------------------------------ exit protocol


def test_exit_only_from_the_thread_itself() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        with pytest.raises(WrongThreadError, match="exit a thread"):
            t1.exit()
        h.set_thread(None)
        with pytest.raises(WrongThreadError):
            t1.exit()
        h.set_thread(0)
        assert t1.state is RUNNING
        t1.send_msg(t1.exit)
        assert t1.state is RUNNING
        h.poll_thread(1)
        assert t1.state is EXITED  # nothing held it: exited in the same poll


def test_exit_from_a_poller_and_a_second_exit_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spdkpy.thread")
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        h.set_thread(1)
        calls: list[int] = []

        def poller() -> int:
            calls.append(1)
            t1.exit()
            t1.exit()  # logs at INFO only
            assert t1.state is EXITING
            return 0

        p = t1.register_poller(poller, name="exiter")
        h.set_thread(0)
        h.poll_thread(1)
        assert t1.state is EXITING  # its own poller still holds it
        infos = [r for r in caplog.records if r.levelno == logging.INFO]
        assert len(infos) == 1
        assert "ut_thread1" in infos[0].getMessage()
        assert "exiting" in infos[0].getMessage()
        h.set_thread(1)
        p.unregister()
        h.set_thread(0)
        h.poll_thread(1)
        assert t1.state is EXITED
        assert calls == [1]


def test_exiting_thread_accepts_and_runs_all_queued_messages() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        ran: list[int] = []
        t1.send_msg(t1.exit)
        for i in range(19):
            t1.send_msg(ran.append, i)
        h.poll_thread(1)  # exit + 7 messages
        assert t1.state is EXITING
        assert ran == list(range(7))
        assert t1.try_send_msg(ran.append, 100)  # still accepted while EXITING
        t1.send_msg(ran.append, 101)
        h.poll_thread(1)
        assert t1.state is EXITING
        assert ran == list(range(15))
        h.poll_thread(1)  # the last 6 messages: the ring is empty afterwards
        assert ran == [*range(19), 100, 101]
        assert t1.state is EXITED
        assert t1.statistics().messages_refused == 0
        assert not t1.try_send_msg(ran.append, 102)
        assert t1.statistics().messages_refused == 1


def test_exiting_thread_stays_exiting_while_a_message_it_sent_itself_is_queued() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        ran: list[str] = []

        def first() -> None:
            t1.exit()
            t1.send_msg(ran.append, "follow-up")

        t1.send_msg(first)
        h.poll_thread(1)
        assert t1.state is EXITING
        h.poll_thread(1)
        assert ran == ["follow-up"]
        assert t1.state is EXITED


@pytest.mark.parametrize("period_us", [0, 100])
def test_poller_holds_the_exit(period_us: int) -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        h.set_thread(1)
        p = t1.register_poller(lambda: 0, period_us=period_us, name="holder")
        t1.exit()
        h.set_thread(0)
        for _ in range(3):
            h.poll_thread(1)
            h.delay_us(1000)
            assert t1.state is EXITING
        assert t1.exit_blockers() == ["poller(s) still registered: holder"]
        h.set_thread(1)
        p.unregister()
        h.set_thread(0)
        h.poll_thread(1)
        assert t1.state is EXITED
        assert t1.exit_blockers() == []


def test_paused_poller_holds_the_exit() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        h.set_thread(1)
        p = t1.register_poller(lambda: 0, name="sleeper")
        p.pause()
        t1.exit()
        h.set_thread(0)
        h.poll_thread(1)
        assert p.state.value == "paused"
        assert t1.state is EXITING
        assert t1.exit_blockers() == ["poller(s) still registered: sleeper"]
        h.set_thread(1)
        p.unregister()
        h.set_thread(0)
        h.poll_thread(1)
        assert t1.state is EXITED


def test_io_channel_holds_the_exit() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = object()
        destroyed: list[Thread | None] = []
        io_device_register(dev, lambda d: "ctx", lambda d, c: destroyed.append(get_thread()), "dev")
        t1 = h.threads[1]
        h.set_thread(1)
        ch = get_io_channel(dev)
        t1.exit()
        h.set_thread(0)
        h.poll_thread(1)
        assert t1.state is EXITING
        assert t1.exit_blockers() == ["io_channel(s) still held: dev"]
        h.set_thread(1)
        ch.put()  # the destroy message runs in the next poll, which then exits
        h.set_thread(0)
        assert t1.state is EXITING
        h.poll_thread(1)
        assert destroyed == [t1]
        assert t1.state is EXITED
        io_device_unregister(dev)


def test_for_each_walk_holds_the_exit() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        visited: list[Thread | None] = []
        done: list[int] = []

        def start() -> None:
            for_each_thread(lambda: visited.append(get_thread()), lambda: done.append(1))
            t1.exit()

        t1.send_msg(start)
        h.poll_thread(1)
        assert t1.state is EXITING
        assert t1.for_each_count == 1
        assert t1.exit_blockers() == ["1 unfinished for_each walk(s)"]
        h.poll_threads()
        assert done == [1]
        # the walk went past t1, which was already EXITING: only RUNNING threads are visited
        assert visited == [h.threads[0], h.threads[2]]
        assert t1.state is EXITED


def test_pending_unregister_holds_the_exit() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        dev = object()
        io_device_register(dev, lambda d: None, lambda d, c: None, "dev")
        h.set_thread(2)
        ch = get_io_channel(dev)
        t1 = h.threads[1]
        unregistered: list[Thread | None] = []
        h.set_thread(1)
        io_device_unregister(dev, lambda: unregistered.append(get_thread()))
        t1.exit()
        h.set_thread(0)
        h.poll_threads()
        assert t1.state is EXITING
        assert t1.exit_blockers() == ["1 io_device unregister(s) pending"]
        h.set_thread(2)
        ch.put()
        h.set_thread(0)
        h.poll_threads()
        assert unregistered == [t1]
        assert t1.pending_unregister_count == 0
        assert t1.state is EXITED


def test_forced_exit_after_the_deadline_names_what_held_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="spdkpy.thread")
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = object()
        io_device_register(dev, lambda d: None, lambda d, c: None, "stuck_dev")
        t1 = h.threads[1]
        h.set_thread(1)
        p = t1.register_poller(lambda: 0, name="stuck_poller")
        get_io_channel(dev)
        exit_at = h.clock.now()
        t1.exit()
        assert t1.exit_deadline == exit_at + TIMEOUT_TICKS
        h.set_thread(0)
        h.clock.advance(TIMEOUT_TICKS - 1)
        h.poll_thread(1)
        assert t1.state is EXITING
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        h.clock.advance(1)
        h.poll_thread(1)
        assert t1.state is EXITED
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert errors[0].name == "spdkpy.thread"
        text = errors[0].getMessage()
        assert "ut_thread1" in text
        assert "got timeout, and move it to the exited state forcefully" in text
        assert "poller(s) still registered: stuck_poller" in text
        assert "io_channel(s) still held: stuck_dev" in text
        assert t1.exit_blockers() == [
            "poller(s) still registered: stuck_poller",
            "io_channel(s) still held: stuck_dev",
        ]
        h.set_thread(1)
        p.unregister()
        h.set_thread(0)
        # the harness destroys t1, releasing the channel it still holds
        io_device_unregister(dev)


def test_forced_exit_with_queued_messages_still_runs_them() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        ran: list[int] = []
        h.set_thread(1)
        t1.exit()
        h.set_thread(0)
        for i in range(20):
            t1.send_msg(ran.append, i)
        h.clock.advance(TIMEOUT_TICKS)
        h.poll_thread(1)
        assert t1.state is EXITED
        assert ran == list(range(8))
        assert t1.exit_blockers() == ["12 queued message(s)"]
        # exited: new messages are refused, the queued ones are not dropped
        assert not t1.try_send_msg(ran.append, 99)
        assert not t1.try_destroy()
        with pytest.raises(InvalidStateError, match="messages still queued"):
            t1.destroy()
        h.poll_thread(1)
        h.poll_thread(1)
        assert ran == list(range(20))
        assert t1.try_destroy()


def test_exit_with_nothing_held_from_a_poll_with_no_work() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        h.set_thread(1)
        t1.exit()
        h.set_thread(0)
        assert t1.state is EXITING
        assert h.poll_thread(1) == 0
        assert t1.state is EXITED


# ------------------------------------------------------------------ destroy


def test_destroy_only_when_exited() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        assert not t1.try_destroy()
        with pytest.raises(InvalidStateError, match="not exited"):
            t1.destroy()
        h.set_thread(1)
        t1.exit()
        assert not t1.try_destroy()  # EXITING
        h.set_thread(0)
        h.poll_thread(1)
        assert t1.state is EXITED
        ids = [t.id for t in h.library.all_threads()]
        assert t1.id in ids
        t1.destroy()
        h.threads.remove(t1)
        assert [t.id for t in h.library.all_threads()] == [h.threads[0].id]
        ran: list[int] = []
        assert t1.try_send_msg(ran.append, 1) is False
        with pytest.raises(ThreadExitedError):
            t1.send_msg(ran.append, 2)
        assert ran == []
        assert t1.statistics().messages_refused == 2


def test_pending_critical_message_blocks_destroy() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        t1.send_msg(t1.exit)
        h.poll_thread(1)
        assert t1.state is EXITED
        ran: list[int] = []
        t1.send_critical_msg(lambda: ran.append(1))
        assert not t1.try_destroy()
        h.poll_thread(1)
        assert ran == [1]
        assert t1.try_destroy()
        h.threads.remove(t1)


def test_destroy_returns_the_message_cache_to_the_pool() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        pool = h.library.msg_pool
        assert pool.count() == POOL - 2 * 1024
        t1 = h.threads[1]
        h.set_thread(None)  # the exit message comes from the pool, not thread 0's cache
        t1.send_msg(t1.exit)
        h.set_thread(0)
        assert pool.count() == POOL - 2 * 1024 - 1
        h.poll_thread(1)  # t1's cache is full: the message object goes back to the pool
        assert pool.count() == POOL - 2 * 1024
        t1.destroy()
        h.threads.remove(t1)
        assert pool.count() == POOL - 1024


def test_destroy_releases_leftover_channels(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="spdkpy.thread")
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = object()
        destroyed: list[str] = []
        io_device_register(dev, lambda d: "ctx1", lambda d, c: destroyed.append(c), "leftover")
        t1 = h.threads[1]
        h.set_thread(1)
        get_io_channel(dev)
        t1.exit()
        h.set_thread(0)
        h.clock.advance(TIMEOUT_TICKS)
        h.poll_thread(1)
        assert t1.state is EXITED
        t1.destroy()
        h.threads.remove(t1)
        assert destroyed == ["ctx1"]
        assert any("still holds io_channel leftover" in r.getMessage() for r in caplog.records)
        io_device_unregister(dev)


# ------------------------------------------------------------------ creation


def test_thread_ids_start_at_one_and_only_increase() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        assert [t.id for t in h.threads] == [1, 2, 3]
        t2 = h.threads[2]
        h.set_thread(2)
        t2.exit()
        h.set_thread(0)
        h.poll_thread(2)
        t2.destroy()
        h.threads.remove(t2)
        (t4,) = h.allocate_threads(1)
        assert t4.id == 4  # never reused
        assert [t.id for t in h.library.all_threads()] == [1, 2, 4]


def test_first_thread_is_the_app_thread() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        assert h.library.app_thread is h.threads[0]
        assert [t.is_app_thread for t in h.threads] == [True, False, False]


def test_names_and_defaults() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = Thread("x" * 256)
        assert t.name == "x" * 256
        with pytest.raises(InputError, match="256"):
            Thread("y" * 257)
        assert all(len(x.name) <= 256 for x in h.library.all_threads())
        anon = Thread()
        assert anon.name.startswith("0x")
        assert int(anon.name, 16) == id(anon)
        assert anon.cpumask is not None
        assert anon.state is RUNNING
        assert anon.is_running()
        assert not anon.is_exited()
        h.threads.extend([t, anon])
        assert [x.name for x in h.library.all_threads()] == ["ut_thread0", "x" * 256, anon.name]


def test_thread_lib_init_needs_both_hooks_or_none() -> None:
    assert library_or_none() is None
    with pytest.raises(InputError, match="together"):
        thread_lib_init(lambda t, op: None, None)
    with pytest.raises(InputError, match="together"):
        thread_lib_init(None, lambda op: True)
    with pytest.raises(InputError):
        thread_lib_init(msg_mempool_size=0)
    assert library_or_none() is None


def test_thread_lib_init_twice_is_an_error() -> None:
    lib = thread_lib_init(clock=MockClock())
    try:
        with pytest.raises(InvalidStateError, match="already"):
            thread_lib_init(clock=MockClock())
        assert library_or_none() is lib
    finally:
        thread_lib_fini()
    assert library_or_none() is None


def test_thread_needs_an_initialised_library() -> None:
    with pytest.raises(InvalidStateError, match="not initialised"):
        Thread("orphan")


def test_thread_op_hook_places_new_threads_and_a_refusal_leaves_nothing() -> None:
    ops: list[tuple[str, ThreadOp]] = []
    refuse = {"on": True}

    def op_fn(thread: Thread, op: ThreadOp) -> None:
        ops.append((thread.name, op))
        if refuse["on"]:
            raise ResourceError("no reactor for you")

    lib = thread_lib_init(op_fn, lambda op: op is ThreadOp.NEW, msg_mempool_size=POOL)
    try:
        assert lib.supports(ThreadOp.NEW)
        assert not lib.supports(ThreadOp.RESCHED)
        with pytest.raises(SpdkpyError, match="no reactor for you"):
            Thread("refused")
        assert ops == [("refused", ThreadOp.NEW)]
        assert lib.all_threads() == []
        assert lib.app_thread is None
        assert lib.msg_pool.count() == POOL  # its message cache went back
        refuse["on"] = False
        ok = Thread("placed")
        assert ops[-1] == ("placed", ThreadOp.NEW)
        assert lib.all_threads() == [ok]
        assert lib.app_thread is ok  # the first thread whose creation succeeded
        assert ok.id == 2
    finally:
        thread_lib_fini()


def test_harness_free_threads_forces_stuck_threads() -> None:
    h = ThreadHarness(2, msg_mempool_size=POOL)
    h.set_thread(1)
    h.threads[1].register_poller(lambda: 0, name="forgotten")
    start = h.clock.now()
    h.free_threads()
    assert library_or_none() is None
    assert get_thread() is None
    assert h.clock.now() - start >= TIMEOUT_TICKS
