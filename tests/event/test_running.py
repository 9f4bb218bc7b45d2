"""Reactors on real pinned OS threads: placement, pinning, sleeping and waking, failures."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import spdkpy.event._framework as framework_module
from spdkpy._log import NOTICE
from spdkpy.env import CpuSet, available_cores
from spdkpy.errors import InternalError
from spdkpy.event import ReactorFramework, current_reactor, reactors_fini, reactors_init
from spdkpy.thread import POLLER_IDLE, Thread, get_thread

CORES = CpuSet(sorted(available_cores())[:2])
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def framework() -> Iterator[ReactorFramework]:
    fw = reactors_init(CORES)
    try:
        yield fw
    finally:
        reactors_fini()


def run_app(fw: ReactorFramework, start: Callable[[Thread], None]) -> Thread:
    """Create the app thread on the main core, send it ``start``, run the reactors until stop."""
    app = Thread("app_thread", CpuSet([fw.main_core]))
    app.send_msg(start, app)
    fw.start()
    return app


def cpus_allowed_of_this_os_thread() -> str:
    with open(f"/proc/self/task/{threading.get_native_id()}/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError("no Cpus_allowed_list")


def test_threads_land_on_their_mask_and_reactors_are_pinned(framework: ReactorFramework) -> None:
    masks = [CpuSet([c]) for c in CORES] + [CORES, CpuSet.all()] * 3
    results: dict[str, tuple[int, str]] = {}
    affinity_before = os.sched_getaffinity(0)

    def start(app: Thread) -> None:
        remaining = [len(masks)]

        def report(name: str, core: int, allowed: str) -> None:
            results[name] = (core, allowed)
            remaining[0] -= 1
            if remaining[0] == 0:
                framework.stop()

        def on_arrival(me: Thread) -> None:
            reactor = current_reactor()
            assert reactor is not None
            assert me in [lw.thread for lw in reactor.threads]
            app.send_msg(report, me.name, reactor.lcore, cpus_allowed_of_this_os_thread())
            me.exit()

        for i, mask in enumerate(masks):
            thread = Thread(f"worker{i}", mask)
            thread.send_msg(on_arrival, thread)

    run_app(framework, start)
    assert len(results) == len(masks)
    for i, mask in enumerate(masks):
        core, allowed = results[f"worker{i}"]
        assert core in mask
        assert allowed == str(core)  # the OS thread polling it is pinned to exactly that core
    assert os.sched_getaffinity(0) == affinity_before  # the main thread's affinity came back


def test_a_sleeping_reactor_wakes_for_a_message_from_a_foreign_os_thread(
    framework: ReactorFramework,
) -> None:
    target_core = CORES.last()
    got: list[str] = []

    def start(app: Thread) -> None:
        target = Thread("target", CpuSet([target_core]))

        def sender() -> None:
            reactor = framework.reactor(target_core)
            # Wait until the target's reactor has gone to sleep at least once, then send.
            for _ in range(2000):
                if reactor.statistics().sleeps > 0 and reactor.sleeping:
                    break
                threading.Event().wait(0.005)
            target.send_msg(received, "hello")

        def received(text: str) -> None:
            got.append(text)
            me = get_thread()
            assert me is not None
            me.exit()
            framework.stop()

        threading.Thread(target=sender, daemon=True).start()

    run_app(framework, start)
    assert got == ["hello"]
    assert framework.reactor(target_core).statistics().sleeps > 0


def test_idle_pollers_do_not_keep_a_reactor_spinning(framework: ReactorFramework) -> None:
    runs = [0]

    def start(app: Thread) -> None:
        def idle_poll() -> int:
            runs[0] += 1
            return POLLER_IDLE

        poller = app.register_poller(idle_poll)

        def finish() -> int:
            poller.unregister()
            stop_poller.unregister()
            framework.stop()
            return POLLER_IDLE

        stop_poller = app.register_poller(finish, period_us=300_000)

    run_app(framework, start)
    main = framework.reactor(framework.main_core).statistics()
    assert main.sleeps > 0
    # An active idle poller is still run regularly while the reactor mostly sleeps; a spinning
    # reactor would have run it hundreds of thousands of times in 0.3 s.
    assert 5 <= runs[0] < 20_000


def test_an_exception_in_a_message_stops_every_reactor_and_is_raised(
    framework: ReactorFramework,
) -> None:
    def start(app: Thread) -> None:
        victim = Thread("victim", CpuSet([CORES.last()]))

        def boom() -> None:
            raise ValueError("boom")

        victim.send_msg(boom)

    with pytest.raises(InternalError, match="boom") as info:
        run_app(framework, start)
    assert isinstance(info.value.__cause__, ValueError)


def test_a_poller_with_a_wake_fd_lets_its_reactor_sleep_until_the_fd_is_ready(
    framework: ReactorFramework,
) -> None:
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    got: list[int] = []
    runs = [0]

    def start(app: Thread) -> None:
        def drain() -> int:
            runs[0] += 1
            try:
                value = os.eventfd_read(efd)
            except BlockingIOError:
                return POLLER_IDLE
            got.append(value)
            if len(got) == 3:
                poller.unregister()
                framework.stop()
            return 1

        poller = app.register_poller(drain, wake_fd=efd)

        def feeder() -> None:
            reactor = framework.reactor(framework.main_core)
            for _ in range(3):
                # Wait for the reactor to be asleep, then wake it through the fd only.
                for _ in range(2000):
                    if reactor.sleeping:
                        break
                    threading.Event().wait(0.005)
                threading.Event().wait(0.1)
                os.eventfd_write(efd, 1)

        threading.Thread(target=feeder, daemon=True).start()

    try:
        run_app(framework, start)
    finally:
        os.close(efd)
    assert got == [1, 1, 1]
    assert runs[0] >= 3
    # About 0.3 s passed asleep. Without the fd the reactor would have woken every 10 ms to run
    # its idle poller (~30 sleeps); with it, it sleeps once per wake-up by the fd.
    assert framework.reactor(framework.main_core).statistics().sleeps < 15


def test_wake_fd_is_for_active_pollers_only() -> None:
    from spdkpy.errors import InputError
    from spdkpy.testing import ThreadHarness

    with ThreadHarness(1, msg_mempool_size=4096) as h:
        h.set_thread(0)
        with pytest.raises(InputError, match="active pollers"):
            h.threads[0].register_poller(lambda: 0, period_us=10, wake_fd=0)


@pytest.mark.skipif(len(CORES) < 2, reason="needs two available cores")
@pytest.mark.parametrize(
    ("free_threaded", "gil", "expected"),
    [
        (True, True, (logging.WARNING, "reactors will not run in parallel")),
        (True, False, (NOTICE, "GIL disabled: 2 reactors run in parallel")),
        (False, True, None),  # a GIL build: sharing the lock is expected, nothing to say
    ],
)
def test_starting_reactors_says_whether_they_run_in_parallel(
    framework: ReactorFramework,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    free_threaded: bool,
    gil: bool,
    expected: tuple[int, str] | None,
) -> None:
    # The build flag and the interpreter's answer are what a 3.13t build with or without an
    # extension module that re-enabled the GIL reports; the check is read when reactors start.
    monkeypatch.setattr(framework_module, "FREE_THREADED_BUILD", free_threaded)
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil, raising=False)
    with caplog.at_level(NOTICE, logger="spdkpy.reactor"):
        run_app(framework, lambda app: framework.stop())
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "GIL" in r.getMessage()]
    if expected is None:
        assert said == []
    else:
        assert len(said) == 1, said
        assert said[0][0] == expected[0]
        assert expected[1] in said[0][1]
    assert framework.gil_at_start is gil
    assert framework.gil_enabled() is gil


def test_the_main_thread_forgets_its_core_when_the_reactors_stop(
    framework: ReactorFramework,
) -> None:
    from spdkpy.env import current_core

    seen: list[int | None] = []

    def start(app: Thread) -> None:
        seen.append(current_core())
        framework.stop()

    run_app(framework, start)
    assert seen == [framework.main_core]
    assert current_core() is None
