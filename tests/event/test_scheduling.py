"""Scheduling rounds on real reactors: gather, balance, apply; migration under load (SPEC §3.4-3.6).

The placements themselves are tested from tables in ``test_scheduler.py``; here the rounds run on
pinned reactors, threads really move, and nothing they carry (messages, pollers, io_channels) may
be lost, duplicated or reordered on the way.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spdkpy.env import CpuSet, available_cores
from spdkpy.event import (
    CoreInfo,
    CpufreqGovernor,
    FrequencyStep,
    Governor,
    LwThread,
    Placement,
    ReactorFramework,
    Scheduler,
    Scheduling,
    current_reactor,
    reactors_fini,
    reactors_init,
)
from spdkpy.thread import (
    POLLER_BUSY,
    POLLER_IDLE,
    IoChannel,
    Poller,
    Thread,
    get_io_channel,
    io_device_register,
    io_device_unregister,
)

CORES = CpuSet(sorted(available_cores())[:2])
needs_two_cores = pytest.mark.skipif(len(CORES) < 2, reason="needs two cores")
pytestmark = [pytest.mark.timeout(120), needs_two_cores]


@pytest.fixture
def framework() -> Iterator[ReactorFramework]:
    fw = reactors_init(CORES)
    fw.scheduling.governor_probe = lambda cores: None  # never touch this machine's cpufreq
    try:
        yield fw
    finally:
        reactors_fini()


def run_app(fw: ReactorFramework, start: Callable[[Thread], None]) -> Thread:
    app = Thread("app_thread", CpuSet([fw.main_core]))
    app.send_msg(start, app)
    fw.start()
    return app


def lcore_of(thread: Thread) -> int | None:
    lw = thread.scheduler_context
    assert isinstance(lw, LwThread)
    return lw.lcore


def watch(
    app: Thread, fw: ReactorFramework, condition: Callable[[], bool], then: Callable[[], None]
) -> None:
    """On ``app``, every 5 ms: once ``condition()`` holds, run ``then()``; give up after 20 s."""
    deadline = time.monotonic() + 20
    poller: list[Poller] = []

    def check() -> int:
        if condition():
            poller[0].unregister()
            then()
            return POLLER_BUSY
        if time.monotonic() > deadline:
            poller[0].unregister()
            fw.stop()
        return POLLER_IDLE

    poller.append(app.register_poller(check, period_us=5000, name="watch"))


# ---------------------------------------------------------------------------- dynamic, live


def test_dynamic_gathers_idle_threads_then_spreads_busy_ones(framework: ReactorFramework) -> None:
    fw = framework
    main, other = fw.main_core, next(c for c in CORES if c != fw.main_core)
    workers: list[Thread] = []
    seen: dict[str, object] = {}

    def start(app: Thread) -> None:
        workers.extend(Thread(f"worker{i}", CORES) for i in range(2))
        fw.scheduling.set_period(20_000)
        assert fw.scheduling.set("dynamic") == 0

        def gathered() -> bool:
            return all(lcore_of(w) == main for w in workers) and fw.reactor(other).interrupt_mode

        def make_busy() -> None:
            seen["gathered_by"] = fw.scheduling.migrations
            for w in workers:
                w.send_msg(lambda me=w: me.register_poller(lambda: POLLER_BUSY, name="spin"))
            watch(app, fw, spread, done)

        def spread() -> bool:
            cores = {lcore_of(w) for w in workers}
            return cores == {main, other} and not fw.reactor(other).interrupt_mode

        def done() -> None:
            seen["spread"] = True
            for w in workers:
                w.send_msg(stop_worker, w)
            fw.stop()

        watch(app, fw, gathered, make_busy)

    run_app(fw, start)
    assert seen.get("gathered_by") == 1  # round robin put one worker on each core
    assert seen.get("spread") is True, fw.scheduling.describe_last()
    assert fw.scheduling.migrations >= 2


def stop_worker(me: Thread) -> None:
    for poller in me.pollers():
        poller.unregister()
    me.exit()


# ---------------------------------------------------------------------------- migration stress


class Shuffle(Scheduler):
    """Moves every thread to the next core of its cpumask, every round."""

    name = "shuffle"

    def balance(self, cores: tuple[CoreInfo, ...], ctl: Scheduling) -> Placement:
        order = [c.lcore for c in cores]
        moves = {}
        for c in cores:
            for t in c.threads:
                candidates = [lc for lc in order if lc in t.cpumask and lc != c.lcore]
                if candidates:
                    moves[t.id] = candidates[0]
        return Placement(moves, {c.lcore: False for c in cores}, f"{len(moves)} moves")


@dataclass
class Inbox:
    """What one receiving thread saw: the next sequence number it expects from each producer."""

    expected: list[int]
    received: int = 0
    errors: list[str] = field(default_factory=list)
    lcores: set[int] = field(default_factory=set)
    poller_runs: int = 0
    poller_lcores: set[int] = field(default_factory=set)
    channel: IoChannel[object] | None = None


PRODUCERS = 4
RECEIVERS = 8
PER_RECEIVER = 100_000
PER_PRODUCER = PER_RECEIVER // PRODUCERS


@pytest.mark.parametrize("scheduler", ["dynamic", "shuffle"])
def test_migration_under_load_loses_and_reorders_nothing(
    framework: ReactorFramework, scheduler: str
) -> None:
    fw = framework
    fw.scheduling.schedulers["shuffle"] = Shuffle()
    device = object()
    inboxes = [Inbox([0] * PRODUCERS) for _ in range(RECEIVERS)]
    receivers: list[Thread] = []
    finished: list[int] = []
    refused = [0] * PRODUCERS
    producer_threads: list[threading.Thread] = []

    def receive(box: Inbox, producer: int, seq: int) -> None:
        if box.expected[producer] != seq:
            box.errors.append(f"producer {producer}: got {seq}, expected {box.expected[producer]}")
        box.expected[producer] = seq + 1
        box.received += 1
        reactor = current_reactor()
        assert reactor is not None
        box.lcores.add(reactor.lcore)

    def produce(p: int) -> None:
        # A plain OS thread, as any foreign sender: messages to one receiver stay in its order.
        for seq in range(PER_PRODUCER):
            for box, thread in zip(inboxes, receivers, strict=True):
                while not thread.try_send_msg(receive, box, p, seq):
                    refused[p] += 1
                    os.sched_yield()

    def start(app: Thread) -> None:
        def setup(me: Thread, box: Inbox) -> None:
            box.channel = get_io_channel(device)

            def tick() -> int:
                box.poller_runs += 1
                reactor = current_reactor()
                assert reactor is not None
                box.poller_lcores.add(reactor.lcore)
                return POLLER_IDLE

            me.register_poller(tick, period_us=1000, name="tick")

        io_device_register(device, lambda dev: {"ctx": True}, lambda dev, ctx: None, name="stress")
        for i, box in enumerate(inboxes):
            t = Thread(f"receiver{i}", CORES)
            receivers.append(t)
            t.send_msg(setup, t, box)
        fw.scheduling.set_period(10_000)
        assert fw.scheduling.set(scheduler) == 0
        for p in range(PRODUCERS):
            pt = threading.Thread(target=produce, args=(p,), name=f"producer{p}")
            producer_threads.append(pt)
            pt.start()

        def all_received() -> bool:
            return all(b.received >= PER_RECEIVER for b in inboxes)

        def teardown() -> None:
            for t, box in zip(receivers, inboxes, strict=True):
                t.send_msg(finish, t, box)

        def finish(me: Thread, box: Inbox) -> None:
            # The channel the thread got on its first core is still its own, with one reference.
            if me.io_channels.get(id(device)) is not box.channel or box.channel is None:
                box.errors.append("io_channel changed or lost")
            else:
                box.channel.put()
            for poller in me.pollers():
                poller.unregister()
            me.exit()
            app.send_msg(finished.append, 1)

        def all_finished() -> bool:
            return len(finished) == RECEIVERS

        def stop() -> None:
            io_device_unregister(device)
            fw.stop()

        watch(app, fw, all_received, lambda: (teardown(), watch(app, fw, all_finished, stop)))

    try:
        run_app(fw, start)
    finally:
        for pt in producer_threads:
            pt.join()
    rounds, migrations = fw.scheduling.rounds, fw.scheduling.migrations
    for i, box in enumerate(inboxes):
        assert box.errors == [], (i, box.errors[:5])
        assert box.received == PER_RECEIVER, i
        assert box.expected == [PER_PRODUCER] * PRODUCERS, i
        assert box.poller_runs > 0, i
    assert len(finished) == RECEIVERS
    assert rounds > 0
    if scheduler == "shuffle":
        # Every round moves every receiver; each receiver's poller ran on both cores.
        assert migrations >= RECEIVERS, (rounds, migrations)
        assert all(box.poller_lcores == set(CORES) for box in inboxes)
        assert all(box.lcores == set(CORES) for box in inboxes)
    print(f"{scheduler}: {rounds} rounds, {migrations} migrations, refused {sum(refused)}")


# ---------------------------------------------------------------------------- framework rules


def test_scheduler_set_follows_spdk(framework: ReactorFramework) -> None:
    s = framework.scheduling
    assert s.set("no_such") == -errno.EINVAL
    assert s.set("static") == 0
    assert s.period_us == 0  # static's first init: placement is final
    assert s.set("gscheduler") == -errno.ENODEV  # no governor here: static stays
    assert s.name == "static"
    assert s.set("dynamic") == 0
    assert s.set("static") == 0
    assert s.period_us == 1  # static's later init: a round sends every thread home at once
    assert s.set(None) == 0
    assert s.name is None


def test_set_options_checks_isolated_and_scheduling_core(framework: ReactorFramework) -> None:
    s = framework.scheduling
    other = next(c for c in CORES if c != framework.main_core)
    assert s.set_options(99, None) == "Invalid scheduling core."
    assert s.set_options(None, CpuSet([framework.main_core])) == (
        "Scheduling core cannot be included in isolated core mask."
    )
    assert s.set_options(None, CpuSet([60])) == "Invalid isolated core mask"
    assert s.set_options(None, CpuSet([other])) is None
    assert s.isolated == CpuSet([other])


def test_threads_never_move_onto_an_isolated_core(framework: ReactorFramework) -> None:
    fw = framework
    fw.scheduling.schedulers["shuffle"] = Shuffle()
    main = fw.main_core
    other = next(c for c in CORES if c != main)
    assert fw.scheduling.set_options(None, CpuSet([other])) is None
    result: dict[str, object] = {}

    def start(app: Thread) -> None:
        worker = Thread("worker", CpuSet([main]))
        fw.scheduling.set_period(5_000)
        assert fw.scheduling.set("shuffle") == 0

        def check() -> bool:
            return fw.scheduling.rounds >= 5

        def done() -> None:
            result["lcore"] = lcore_of(worker)
            worker.send_msg(stop_worker, worker)
            fw.stop()

        watch(app, fw, check, done)

    run_app(fw, start)
    assert result["lcore"] == main
    assert fw.scheduling.migrations == 0


class RecordingGovernor(Governor):
    name = "recording"

    def __init__(self) -> None:
        self.steps: list[tuple[int, FrequencyStep]] = []

    def step(self, lcore: int, step: FrequencyStep) -> None:
        self.steps.append((lcore, step))


def test_gscheduler_steps_frequencies_and_never_moves(framework: ReactorFramework) -> None:
    fw = framework
    governor = RecordingGovernor()
    fw.scheduling.governor_probe = lambda cores: governor

    def start(app: Thread) -> None:
        fw.scheduling.set_period(5_000)
        assert fw.scheduling.set("gscheduler") == 0
        watch(app, fw, lambda: fw.scheduling.rounds >= 3, fw.stop)

    run_app(fw, start)
    assert fw.scheduling.migrations == 0
    assert {lc for lc, _ in governor.steps} == set(CORES)
    # The idle second core is below 1% busy: minimum frequency.
    other = next(c for c in CORES if c != fw.main_core)
    assert (other, FrequencyStep.MIN) in governor.steps


# ---------------------------------------------------------------------------- cpufreq governor


def fake_cpufreq(root: Path, cores: list[int], governor: str = "userspace") -> None:
    for core in cores:
        d = root / f"cpu{core}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(governor + "\n")
        (d / "scaling_available_frequencies").write_text("2400000 1200000 1800000 \n")
        (d / "scaling_cur_freq").write_text("1800000\n")
        (d / "scaling_setspeed").write_text("<unsupported>\n")


def test_cpufreq_governor_steps_through_sysfs(tmp_path: Path) -> None:
    fake_cpufreq(tmp_path, [0, 1])
    gov = CpufreqGovernor.probe((0, 1), tmp_path)
    assert gov is not None
    setspeed = tmp_path / "cpu1" / "cpufreq" / "scaling_setspeed"
    for step, expected in [
        (FrequencyStep.UP, "2400000"),
        (FrequencyStep.DOWN, "1200000"),
        (FrequencyStep.MIN, "1200000"),
        (FrequencyStep.MAX, "2400000"),
    ]:
        gov.step(1, step)
        assert setspeed.read_text() == expected, step
    described = gov.describe()
    assert described["governor_name"] == "cpufreq_userspace"
    assert described["cores"] == [
        {
            "lcore_id": c,
            "available_frequencies": [1200000, 1800000, 2400000],
            "current_frequency": 1800000,
        }
        for c in (0, 1)
    ]


def test_cpufreq_governor_needs_userspace_and_the_files(tmp_path: Path) -> None:
    assert CpufreqGovernor.probe((0,), tmp_path) is None  # no files at all
    fake_cpufreq(tmp_path, [0], governor="schedutil")
    assert CpufreqGovernor.probe((0,), tmp_path) is None
