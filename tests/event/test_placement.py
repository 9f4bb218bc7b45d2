"""Reactors stepped by hand on one OS thread: placement, events, accounting, exit path."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from spdkpy.env import CpuSet
from spdkpy.errors import EventPoolExhaustedError, InputError, QueueFullError
from spdkpy.event import (
    EVENT_BATCH_SIZE,
    EVENT_POOL_SIZE,
    Event,
    ReactorFramework,
    event_allocate,
    event_call,
)
from spdkpy.testing import MockClock, ReactorHarness
from spdkpy.thread import POLLER_BUSY, Thread, current_library, get_thread, set_thread

CORES = CpuSet([0, 1, 2, 3])  # never started, so any cores will do


@pytest.fixture
def harness() -> Iterator[ReactorHarness]:
    with ReactorHarness(CORES) as h:
        yield h


@pytest.fixture
def framework(harness: ReactorHarness) -> ReactorFramework:
    return harness.framework


def step(fw: ReactorFramework, rounds: int = 20) -> None:
    """Run every reactor's iteration ``rounds`` times on this OS thread."""
    for _ in range(rounds):
        for core in fw.cores:
            fw.reactor(core).run_once()


def hosted(fw: ReactorFramework) -> dict[str, int]:
    return {lw.thread.name: core for core in fw.cores for lw in fw.reactor(core).threads}


def test_new_threads_reach_reactors_by_round_robin(harness: ReactorHarness) -> None:
    app = Thread("app_thread", CpuSet([0]))
    others = [Thread(f"t{i}") for i in range(6)]
    assert harness.hosted() == {}  # placement is an event: nothing lands before a reactor runs
    assert harness.run_until_idle() >= 1
    # The app thread takes core 0 and moves the cursor; the others follow it, wrapping around.
    assert harness.hosted() == {
        "app_thread": 0,
        "t0": 1,
        "t1": 2,
        "t2": 3,
        "t3": 0,
        "t4": 1,
        "t5": 2,
    }
    placed = harness.hosted()
    assert all(t.waker is harness.framework.reactor(placed[t.name]).waker for t in others)
    assert app.is_app_thread
    assert harness.run_until_idle() == 0


@pytest.mark.parametrize(
    "mask",
    [CpuSet([0]), CpuSet([3]), CpuSet([1, 2]), CpuSet([0, 2]), CpuSet([2, 3, 5]), CpuSet.all()],
)
def test_every_thread_lands_on_a_core_of_its_mask(
    framework: ReactorFramework, mask: CpuSet
) -> None:
    threads = [Thread(f"m{i}", mask) for i in range(9)]
    step(framework)
    placed = hosted(framework)
    assert sorted(placed) == sorted(t.name for t in threads)
    assert all(core in mask for core in placed.values())


def test_mask_naming_no_app_core_is_placed_anyway_with_a_warning(
    framework: ReactorFramework, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="spdkpy.reactor"):
        Thread("stray", CpuSet([9]))
    step(framework)
    assert "stray" in hosted(framework)
    assert "names no core of the app mask" in caplog.text


def test_messages_sent_before_placement_wait_in_the_ring(framework: ReactorFramework) -> None:
    seen: list[int] = []
    thread = Thread("early")
    for i in range(20):
        thread.send_msg(seen.append, i)
    assert seen == []
    step(framework)
    assert seen == list(range(20))


def test_events_run_fifo_at_most_eight_per_iteration(framework: ReactorFramework) -> None:
    ran: list[int] = []
    for i in range(20):
        event_call(event_allocate(2, ran.append, i))
    reactor = framework.reactor(2)
    reactor.run_once()
    assert ran == list(range(EVENT_BATCH_SIZE))
    reactor.run_once()
    reactor.run_once()
    assert ran == list(range(20))
    assert reactor.statistics().events_run == 20
    assert reactor.statistics().event_queue_high_water == 20


def test_events_run_with_no_current_thread(framework: ReactorFramework) -> None:
    Thread("app_thread", CpuSet([0]))
    step(framework)
    seen: list[object] = []
    event_call(event_allocate(0, lambda: seen.append(get_thread())))
    step(framework, 1)
    assert seen == [None]


def test_event_for_a_core_without_reactor_is_an_input_error(framework: ReactorFramework) -> None:
    with pytest.raises(InputError, match="core 7 has no reactor"):
        framework.event_allocate(7, print)
    with pytest.raises(InputError):
        framework.event_allocate(-1, print)


def test_event_pool_exhaustion_is_a_typed_error(framework: ReactorFramework) -> None:
    taken: list[Event] = []
    while (event := framework.try_event_allocate(1, print)) is not None:
        taken.append(event)
    assert len(taken) == EVENT_POOL_SIZE
    with pytest.raises(EventPoolExhaustedError):
        framework.event_allocate(1, print)
    # A new thread cannot be placed: it is not created, and the library does not keep it.
    with pytest.raises(EventPoolExhaustedError):
        Thread("unplaceable")
    assert [t.name for t in current_library().threads] == []
    assert framework.event_pool.statistics().refused >= 2
    framework.event_pool.put_bulk(taken)
    Thread("placeable")
    step(framework)
    assert "placeable" in hosted(framework)


def test_full_event_ring_is_a_typed_error_and_releases_the_event(
    framework: ReactorFramework,
) -> None:
    reactor = framework.reactor(1)
    reactor.events.capacity = 3
    for _ in range(3):
        event_call(event_allocate(1, print))
    free_before = framework.event_pool.count()
    with pytest.raises(QueueFullError, match="reactor 1"):
        event_call(event_allocate(1, print))
    assert framework.event_pool.count() == free_before
    assert reactor.events.statistics().refused == 1


def test_an_event_withdrawn_after_the_batch_was_counted_ends_the_batch(
    framework: ReactorFramework,
) -> None:
    # Free-threaded builds: a producer whose append overshot the capacity takes its event back
    # (Ring.withdraw) after the reactor counted it. Here the first event plays that producer.
    reactor = framework.reactor(1)
    ring = reactor.events
    ran: list[str] = []
    events_before = framework.event_pool.count() + len(reactor.event_cache)
    late = event_allocate(1, ran.append, "withdrawn")

    def withdraw_late() -> None:
        assert ring.withdraw(late)
        late.fn = None
        late.args = ()
        framework.event_pool.put(late)

    event_call(event_allocate(1, withdraw_late))
    event_call(late)
    assert reactor.run_once()  # two counted, one found: the batch ends, nothing raises
    assert ran == []
    stats = reactor.statistics()
    assert (stats.events_run, stats.event_queue_depth) == (1, 0)
    ring_stats = ring.statistics()
    assert (ring_stats.enqueued, ring_stats.refused) == (1, 1)
    assert framework.event_pool.count() + len(reactor.event_cache) == events_before


def test_for_each_reactor_visits_cores_in_order_then_completes(
    framework: ReactorFramework,
) -> None:
    order: list[int] = []
    done: list[int] = []
    running: list[int] = []

    def visit() -> None:
        order.append(running[-1])

    framework.for_each_reactor(visit, lambda: done.append(running[-1]))
    # Step the reactors in reverse so the order must come from the event chain, not from us.
    for _ in range(10):
        for core in reversed(framework.cores):
            running.append(core)
            framework.reactor(core).run_once()
    assert order == [0, 1, 2, 3]
    assert done == [framework.main_core]


def test_walks_after_the_shutdown_walk_are_dropped(framework: ReactorFramework) -> None:
    framework.stop()
    late: list[str] = []
    framework.for_each_reactor(lambda: late.append("fn"), lambda: late.append("cpl"))
    step(framework, 10)
    assert late == []
    assert framework.state.value == "exiting"


def test_reactor_accounting_folds_event_time_into_idle_without_threads(
    framework: ReactorFramework,
) -> None:
    clock = framework.clock
    assert isinstance(clock, MockClock)
    reactor = framework.reactor(3)
    reactor.tsc_last = clock.now()
    clock.advance(500)
    reactor.run_once()
    assert (reactor.busy_tsc, reactor.idle_tsc) == (0, 500)


def test_reactor_accounting_charges_busy_polls(framework: ReactorFramework) -> None:
    clock = framework.clock
    assert isinstance(clock, MockClock)
    thread = Thread("worker", CpuSet([1]))
    step(framework, 1)
    reactor = framework.reactor(1)

    def work() -> int:
        clock.advance(1000)
        return POLLER_BUSY

    set_thread(thread)
    poller = thread.register_poller(work)
    set_thread(None)
    busy_before, idle_before = reactor.busy_tsc, reactor.idle_tsc
    reactor.run_once()
    assert reactor.busy_tsc - busy_before == 1000
    assert reactor.idle_tsc == idle_before
    assert thread.statistics().busy == 1000
    set_thread(thread)
    poller.unregister()
    set_thread(None)


def test_exit_path_exits_forgotten_threads_and_destroys_all(
    framework: ReactorFramework, caplog: pytest.LogCaptureFixture
) -> None:
    Thread("app_thread", CpuSet([0]))
    forgotten = Thread("forgotten", CpuSet([1]))
    ran: list[int] = []
    step(framework, 2)
    for i in range(30):
        forgotten.send_msg(ran.append, i)
    framework.stop()
    step(framework, 2)
    with caplog.at_level(logging.ERROR, logger="spdkpy.reactor"):
        for core in framework.cores:
            framework.reactor(core)._exit_threads()
    assert "spdk_thread_exit() was not called on thread 'forgotten'" in caplog.text
    assert "app_thread'" not in caplog.text
    assert ran == list(range(30))  # queued messages ran before the thread went away
    assert all(not framework.reactor(c).threads for c in framework.cores)
    assert current_library().threads == []


def test_set_cpumask_moves_a_thread_with_its_messages_in_order(harness: ReactorHarness) -> None:
    mover = Thread("mover", CpuSet([1]))
    harness.run_until_idle()
    assert harness.hosted() == {"mover": 1}
    seen: list[int] = []

    def move() -> None:
        me = get_thread()
        assert me is mover
        me.set_cpumask(CpuSet([3]))

    mover.send_msg(move)
    for i in range(50):
        mover.send_msg(seen.append, i)
    harness.step(1, order=[1])  # the move runs; the reactor unlinks the thread after this poll
    assert harness.hosted() == {}  # in transit: nobody polls it, its messages wait
    assert seen == list(range(7))  # one batch of 8: the move and the first 7 messages
    harness.run_until_idle()
    assert harness.hosted() == {"mover": 3}
    assert seen == list(range(50))
    assert mover.waker is harness.framework.reactor(3).waker


def test_set_cpumask_needs_the_owning_thread_and_a_core(harness: ReactorHarness) -> None:
    from spdkpy.errors import WrongThreadError

    thread = Thread("t", CpuSet([0]))
    with pytest.raises(WrongThreadError):
        thread.set_cpumask(CpuSet([1]))
    set_thread(thread)
    with pytest.raises(InputError, match="empty cpumask"):
        thread.set_cpumask(CpuSet())
    set_thread(None)


def test_set_cpumask_without_a_framework_is_not_supported() -> None:
    from spdkpy.errors import NotSupportedError
    from spdkpy.testing import ThreadHarness

    with ThreadHarness(1) as h:
        h.set_thread(0)
        with pytest.raises(NotSupportedError):
            h.threads[0].set_cpumask(CpuSet([0]))
