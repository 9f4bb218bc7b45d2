"""The scheduler framework: which scheduler runs, when a round runs, and how its placement is
applied (SPDK's ``lib/event/scheduler.c`` and the round in ``reactor.c``, SPEC §3.4-3.5, §4).

Theory of operation
-------------------
A round is a chain of events. The scheduling reactor notices that a period has passed (its loop
compares one attribute, and its sleep is bounded by the same deadline), then:

1. *Gather*: an event visits every reactor in core order, starting at the scheduling core. On its
   own reactor it reads the busy/idle ticks of the reactor and of each of its threads since the
   previous round, and builds frozen :class:`CoreInfo`/:class:`ThreadInfo` records. Only the owner
   reactor reads its thread list, so nothing is shared while it runs.
2. *Balance*, back on the scheduling reactor: the current scheduler turns the snapshot into a
   :class:`Placement` (a pure function for ``static`` and ``dynamic``). The decision and its
   reason are kept for ``framework_get_scheduler``.
3. *Apply*: an event to each reactor whose mode changes sets its ``interrupt_mode``, and an event
   to the reactor that hosts each moving thread sets ``lw.lcore``/``lw.resched`` *there*, so the
   flags are written only by the OS thread that reads them (free-threaded builds need no lock).
   The reactor then unlinks the thread after its next poll and sends it on by event (§3.4), its
   queued messages, pollers and io_channels with it. A thread that left in the meantime is
   skipped.

Governors: SPDK's ``dpdk_governor`` steps CPU frequencies through DPDK. spdkpy's
:class:`CpufreqGovernor` does the same through Linux's cpufreq sysfs files (``userspace``
governor); where they are missing (containers, most VMs) there is no governor, ``dynamic`` says so
once and goes on, and selecting ``gscheduler`` fails, as SPEC §4.1 allows.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

from spdkpy._log import notice
from spdkpy.env import CpuSet, us_to_ticks
from spdkpy.event._reactor import NEVER, LwThread, Reactor
from spdkpy.event._scheduler import (
    CoreInfo,
    DynamicOptions,
    FrequencyStep,
    Placement,
    ThreadInfo,
    balance_dynamic,
    balance_gscheduler,
    balance_static,
)
from spdkpy.thread import current_library

if TYPE_CHECKING:
    from spdkpy.event._framework import ReactorFramework

__all__ = [
    "CpufreqGovernor",
    "DynamicScheduler",
    "GScheduler",
    "Governor",
    "RoundReport",
    "Scheduler",
    "Scheduling",
    "StaticScheduler",
    "register_scheduler",
    "scheduler_names",
]

log = logging.getLogger("spdkpy.reactor")

DEFAULT_PERIOD_US: Final = 1_000_000
"""The period ``framework_set_scheduler`` sets when none is given and none is set."""


# ---------------------------------------------------------------------------- governors


class Governor:
    """A CPU-frequency plug-in (SPEC §4.1). Subclasses implement the four steps."""

    name: ClassVar[str] = "governor"

    def step(self, lcore: int, step: FrequencyStep) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, object]:
        """``framework_get_governor``'s result."""
        return {"governor_name": self.name}


class CpufreqGovernor(Governor):
    """Steps frequencies through ``cpuN/cpufreq/scaling_setspeed`` (the ``userspace`` governor)."""

    name: ClassVar[str] = "cpufreq_userspace"

    def __init__(self, cores: tuple[int, ...], root: Path) -> None:
        self.root = root
        self.cores = cores
        self._freqs: dict[int, list[int]] = {}
        for core in cores:
            text = self._file(core, "scaling_available_frequencies").read_text()
            freqs = sorted({int(f) for f in text.split()})
            if not freqs:
                raise OSError(f"core {core}: no available frequencies")
            self._freqs[core] = freqs

    @classmethod
    def probe(
        cls, cores: tuple[int, ...], root: Path = Path("/sys/devices/system/cpu")
    ) -> CpufreqGovernor | None:
        """The governor for ``cores``, or ``None`` (reason logged) if sysfs cannot do it."""
        try:
            for core in cores:
                gov = (root / f"cpu{core}" / "cpufreq" / "scaling_governor").read_text().strip()
                if gov != "userspace":
                    log.info("core %d: cpufreq governor is %r, not 'userspace'", core, gov)
                    return None
            return cls(cores, root)
        except (OSError, ValueError) as exc:
            log.info("no CPU-frequency governor: %s", exc)
            return None

    def _file(self, core: int, name: str) -> Path:
        return self.root / f"cpu{core}" / "cpufreq" / name

    def current(self, core: int) -> int:
        return int(self._file(core, "scaling_cur_freq").read_text())

    def step(self, lcore: int, step: FrequencyStep) -> None:
        freqs = self._freqs[lcore]
        if step is FrequencyStep.MIN:
            target = freqs[0]
        elif step is FrequencyStep.MAX:
            target = freqs[-1]
        else:
            cur = self.current(lcore)
            lower = [f for f in freqs if f < cur]
            higher = [f for f in freqs if f > cur]
            if step is FrequencyStep.UP:
                target = higher[0] if higher else freqs[-1]
            else:
                target = lower[-1] if lower else freqs[0]
        self._file(lcore, "scaling_setspeed").write_text(str(target))

    def describe(self) -> dict[str, object]:
        return {
            "governor_name": self.name,
            "module_specific": {"sysfs": str(self.root)},
            "cores": [
                {
                    "lcore_id": core,
                    "available_frequencies": self._freqs[core],
                    "current_frequency": self.current(core),
                }
                for core in self.cores
            ],
        }


# ---------------------------------------------------------------------------- schedulers


class Scheduler:
    """A scheduler (``struct spdk_scheduler``). One instance per framework."""

    name: ClassVar[str] = ""

    def init(self, ctl: Scheduling) -> int:
        """0, or a negative errno that keeps the previous scheduler."""
        return 0

    def deinit(self, ctl: Scheduling) -> None:
        return None

    def balance(self, cores: tuple[CoreInfo, ...], ctl: Scheduling) -> Placement:
        raise NotImplementedError

    has_opts: ClassVar[bool] = False

    def set_opts(self, params: Mapping[str, object], ctl: Scheduling) -> int:
        """0 or a negative errno; only called when ``has_opts``."""
        return 0

    def get_opts(self) -> dict[str, object]:
        return {}


class StaticScheduler(Scheduler):
    """Round-robin placement is final; a later init sends every thread home (SPEC §4.2)."""

    name: ClassVar[str] = "static"
    has_opts: ClassVar[bool] = True

    def __init__(self) -> None:
        self._loaded = False

    def init(self, ctl: Scheduling) -> int:
        ctl.set_period(1 if self._loaded else 0)
        self._loaded = True
        return 0

    def balance(self, cores: tuple[CoreInfo, ...], ctl: Scheduling) -> Placement:
        placement = balance_static(cores)
        ctl.set_period(0)
        return placement

    def set_opts(self, params: Mapping[str, object], ctl: Scheduling) -> int:
        mappings = params.get("mappings")
        if mappings is None:
            return 0
        if not isinstance(mappings, str):
            return -errno.EINVAL
        threads = {t.id: t for t in current_library().all_threads()}
        moves: list[tuple[LwThread, int]] = []
        for pair in mappings.split(","):
            tid_text, sep, core_text = pair.strip().partition(":")
            try:
                tid, core = int(tid_text, 0), int(core_text, 0)
            except ValueError:
                return -errno.EINVAL
            thread = threads.get(tid)
            if not sep or thread is None or core not in ctl.framework.core_mask:
                return -errno.EINVAL
            lw = thread.scheduler_context
            if core not in thread.cpumask or not isinstance(lw, LwThread):
                return -errno.EINVAL
            moves.append((lw, core))
        for lw, core in moves:
            lw.initial_lcore = core
        ctl.set_period(1)  # the new mapping takes effect at the next round
        return 0


def _uint8(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


class DynamicScheduler(Scheduler):
    """SPDK's ``dynamic`` (SPEC §4.3), with the #2070 deviation of :func:`balance_dynamic`."""

    name: ClassVar[str] = "dynamic"
    has_opts: ClassVar[bool] = True
    _KEYS: ClassVar[tuple[str, ...]] = ("load_limit", "core_limit", "core_busy")

    def __init__(self) -> None:
        self.opts = DynamicOptions()
        self.main_lcore = 0

    def init(self, ctl: Scheduling) -> int:
        self.main_lcore = ctl.scheduling_core
        if ctl.governor() is None:
            notice(
                log, "Unable to initialize a CPU-frequency governor: frequencies stay as they are"
            )
        return 0

    def balance(self, cores: tuple[CoreInfo, ...], ctl: Scheduling) -> Placement:
        placement = balance_dynamic(cores, self.main_lcore, self.opts)
        governor = ctl.governor()
        if governor is not None:
            busy_elsewhere = False
            for lcore, sleep in placement.interrupt_mode.items():
                if sleep:
                    governor.step(lcore, FrequencyStep.MIN)
                elif lcore != self.main_lcore:
                    busy_elsewhere = True
                    governor.step(lcore, FrequencyStep.MAX)
            main = next(c for c in cores if c.lcore == self.main_lcore)
            if busy_elsewhere:
                governor.step(self.main_lcore, FrequencyStep.MAX)
            else:
                up = main.busy > main.idle
                governor.step(self.main_lcore, FrequencyStep.UP if up else FrequencyStep.DOWN)
        return placement

    def set_opts(self, params: Mapping[str, object], ctl: Scheduling) -> int:
        # Relaxed decode: unknown keys are ignored, absent keys keep their values.
        values: dict[str, int] = {}
        for key in self._KEYS:
            if key in params:
                value = params[key]
                if not _uint8(value):
                    return -errno.EINVAL
                assert isinstance(value, int)
                values[key] = value
        new = dataclasses.replace(self.opts, **values)
        self.opts = new
        notice(log, "Setting scheduler load limit to %d", new.load_limit)
        notice(log, "Setting scheduler core limit to %d", new.core_limit)
        notice(log, "Setting scheduler core busy to %d", new.core_busy)
        return 0

    def get_opts(self) -> dict[str, object]:
        return {
            "load_limit": self.opts.load_limit,
            "core_limit": self.opts.core_limit,
            "core_busy": self.opts.core_busy,
        }


class GScheduler(Scheduler):
    """Frequency only, never a move (SPEC §4.4); needs a governor."""

    name: ClassVar[str] = "gscheduler"

    def init(self, ctl: Scheduling) -> int:
        if ctl.governor() is None:
            log.error(
                "gscheduler needs a CPU-frequency governor, and this machine offers none "
                "(cpufreq sysfs with the 'userspace' governor)"
            )
            return -errno.ENODEV
        return 0

    def balance(self, cores: tuple[CoreInfo, ...], ctl: Scheduling) -> Placement:
        governor = ctl.governor()
        steps = balance_gscheduler(cores)
        if governor is not None:
            for lcore, step in steps.items():
                governor.step(lcore, step)
        words = "; ".join(f"core {lc}: frequency {s.value}" for lc, s in sorted(steps.items()))
        keep = {c.lcore: ctl.framework.reactor(c.lcore).interrupt_mode for c in cores}
        return Placement({}, keep, words or "no change")


_registered: dict[str, type[Scheduler]] = {}


def register_scheduler(cls: type[Scheduler]) -> type[Scheduler]:
    """Make ``cls`` selectable by its ``name`` in every framework created afterwards
    (``SPDK_SCHEDULER_REGISTER``). Usable as a class decorator."""
    if not cls.name:
        raise ValueError("a scheduler needs a name")
    if cls.name in _registered and _registered[cls.name] is not cls:
        raise ValueError(f"scheduler {cls.name!r} is already registered")
    _registered[cls.name] = cls
    return cls


def scheduler_names() -> list[str]:
    """The names :meth:`Scheduling.set` accepts in a framework created now."""
    return sorted(_registered)


for _cls in (StaticScheduler, DynamicScheduler, GScheduler):
    register_scheduler(_cls)


# ---------------------------------------------------------------------------- rounds


@dataclass(frozen=True, slots=True)
class RoundReport:
    """What the last round decided, for ``framework_get_scheduler``."""

    round: int
    scheduler: str
    wall_time: float
    moves: Mapping[int, int]
    interrupt_mode: Mapping[int, bool]
    reason: str
    skipped: tuple[str, ...]


class Scheduling:
    """The framework's scheduler state (``g_scheduler``, the period, the scheduling core)."""

    def __init__(self, framework: ReactorFramework) -> None:
        self.framework = framework
        self.schedulers: dict[str, Scheduler] = {name: cls() for name, cls in _registered.items()}
        self.current: Scheduler | None = None
        self.period_us = 0
        self.scheduling_core = framework.main_core
        self.isolated = CpuSet()
        self.rounds = 0
        self.last: RoundReport | None = None
        self.in_progress = False
        self._last_round_tsc = 0
        self._governor: Governor | None = None
        self._governor_probed = False
        self.governor_probe: Callable[[tuple[int, ...]], Governor | None] = CpufreqGovernor.probe

    @property
    def name(self) -> str | None:
        return self.current.name if self.current is not None else None

    def governor(self) -> Governor | None:
        if not self._governor_probed:
            self._governor_probed = True
            self._governor = self.governor_probe(self.framework.cores)
        return self._governor

    def set(self, name: str | None) -> int:
        """``scheduler_set``: 0 or a negative errno (SPEC §4.1)."""
        if name is None:
            if self.current is not None:
                self.current.deinit(self)
            self.current = None
            return 0
        new = self.schedulers.get(name)
        if new is None:
            log.error("Requested scheduler is missing")
            return -errno.EINVAL
        if new is self.current:
            return 0
        old = self.current
        if old is not None:
            old.deinit(self)
        rc = new.init(self)
        if rc:
            if old is not None:
                old.init(self)
            return rc
        self.current = new
        return 0

    def set_period(self, period_us: int) -> None:
        """``scheduler_set_period``: 0 stops the rounds; safe from any OS thread."""
        self.period_us = period_us
        self._arm()

    def _arm(self) -> None:
        framework = self.framework
        reactor = framework.reactor(self.scheduling_core)
        if self.period_us <= 0 or self.in_progress:
            reactor.next_round_tsc = NEVER
            return
        ticks = us_to_ticks(self.period_us, framework.clock.ticks_per_second)
        reactor.next_round_tsc = self._last_round_tsc + ticks
        # Stored before the armed check, as every sender does: the reactor re-reads the deadline
        # after arming, so one of the two sides sees the other.
        waker = reactor.waker
        if waker.armed:
            waker.notify()

    def set_options(self, scheduling_core: int | None, isolated: CpuSet | None) -> str | None:
        """``scheduler_set_options`` (before the reactors run); an error message or ``None``."""
        framework = self.framework
        core = self.scheduling_core if scheduling_core is None else scheduling_core
        if core not in framework.core_mask:
            return "Invalid scheduling core."
        mask = self.isolated if isolated is None else isolated
        if not mask.issubset(framework.core_mask):
            return "Invalid isolated core mask"
        if core in mask:
            return "Scheduling core cannot be included in isolated core mask."
        old = framework.reactor(self.scheduling_core)
        old.next_round_tsc = NEVER
        self.scheduling_core = core
        self.isolated = mask
        self._arm()
        return None

    # ------------------------------------------------------------------ a round

    def round_due(self, reactor: Reactor) -> None:
        """Called by the scheduling reactor once its deadline passes (SPEC §3.3)."""
        reactor.next_round_tsc = NEVER
        framework = self.framework
        if (
            self.in_progress
            or self.current is None
            or framework.state is not framework.RUNNING_STATE
            or reactor.lcore != self.scheduling_core
        ):
            return
        self.in_progress = True
        self._last_round_tsc = framework.clock.now()
        cores = framework.cores
        start = cores.index(self.scheduling_core)
        order = cores[start:] + cores[:start]
        self._send_or_cancel(order[0], self._gather, order, 0, [], {})

    def _send_or_cancel(self, core: int, fn: Callable[..., object], *args: object) -> None:
        """Continue the round by an event on ``core``; without one the round is cancelled, as
        SPDK cancels it on ENOMEM."""
        framework = self.framework
        try:
            framework.event_call(framework.event_allocate(core, fn, *args))
        except Exception as exc:  # pool or ring exhausted
            log.warning("scheduling round cancelled: %s", exc)
            self._finish()

    def _gather(
        self,
        order: tuple[int, ...],
        index: int,
        infos: list[CoreInfo],
        lws: dict[int, LwThread],
    ) -> None:
        reactor = self.framework.reactor(order[index])
        lcore = reactor.lcore
        busy, idle = reactor.busy_tsc, reactor.idle_tsc
        core_busy, core_idle = busy - reactor.round_busy, idle - reactor.round_idle
        reactor.round_busy, reactor.round_idle = busy, idle
        threads: list[ThreadInfo] = []
        for lw in reactor.threads:
            thread = lw.thread
            t_busy, t_idle = thread.busy_tsc, thread.idle_tsc
            threads.append(
                ThreadInfo(
                    id=thread.id,
                    lcore=lcore,
                    initial_lcore=lcore if lw.initial_lcore is None else lw.initial_lcore,
                    cpumask=thread.cpumask,
                    busy=max(0, t_busy - lw.round_busy),
                    idle=max(0, t_idle - lw.round_idle),
                )
            )
            lw.round_busy, lw.round_idle = t_busy, t_idle
            lws[thread.id] = lw
        infos.append(
            CoreInfo(
                lcore=lcore,
                busy=max(0, core_busy),
                idle=max(0, core_idle),
                isolated=lcore in self.isolated,
                threads=tuple(threads),
                hosts_threads=bool(reactor.threads),
            )
        )
        if index + 1 < len(order):
            self._send_or_cancel(order[index + 1], self._gather, order, index + 1, infos, lws)
        else:
            self._send_or_cancel(self.scheduling_core, self._balance, infos, lws)

    def _balance(self, infos: list[CoreInfo], lws: dict[int, LwThread]) -> None:
        framework = self.framework
        scheduler = self.current
        if scheduler is None or framework.state is not framework.RUNNING_STATE:
            self._finish()
            return
        cores = tuple(sorted(infos, key=lambda c: c.lcore))
        placement = scheduler.balance(cores, self)
        where = {t.id: c.lcore for c in cores for t in c.threads}
        skipped: list[str] = []
        try:
            for lcore, sleep in placement.interrupt_mode.items():
                reactor = framework.reactor(lcore)
                if reactor.interrupt_mode != sleep:
                    framework.event_call(
                        framework.event_allocate(lcore, _set_interrupt_mode, reactor, sleep)
                    )
            for tid, dst in placement.moves.items():
                src = where[tid]
                if src in self.isolated or dst in self.isolated:
                    log.error(
                        "thread %d cannot move from core %d to core %d: isolated core",
                        tid,
                        src,
                        dst,
                    )
                    skipped.append(f"thread {tid}: isolated core")
                    continue
                framework.event_call(framework.event_allocate(src, self._move, lws[tid], src, dst))
        except Exception as exc:  # an event could not be had: the rest waits for the next round
            log.warning("scheduling round applied in part: %s", exc)
            skipped.append(f"not applied: {exc}")
        self.rounds += 1
        self.last = RoundReport(
            round=self.rounds,
            scheduler=scheduler.name,
            wall_time=time.time(),
            moves=placement.moves,
            interrupt_mode=placement.interrupt_mode,
            reason=placement.reason,
            skipped=tuple(skipped),
        )
        if placement.moves:
            log.debug("scheduler %s, round %d: %s", scheduler.name, self.rounds, placement.reason)
        self._finish()

    def _move(self, lw: LwThread, src: int, dst: int) -> None:
        # Runs on the source reactor, the only one that reads these flags while the thread lives
        # there. A thread that left or exited since the snapshot is skipped silently.
        reactor = self.framework.reactor(src)
        if lw.lcore != src or lw not in reactor.threads or not lw.thread.is_running():
            return
        lw.lcore = dst
        lw.resched = True
        reactor.migrations_out += 1

    def _finish(self) -> None:
        self.in_progress = False
        self._arm()

    # ------------------------------------------------------------------ report

    @property
    def migrations(self) -> int:
        """Threads the rounds have sent to another reactor so far."""
        return sum(r.migrations_out for r in self.framework.reactors if r is not None)

    def describe_last(self) -> dict[str, object] | None:
        last = self.last
        if last is None:
            return None
        return {
            "round": last.round,
            "scheduler": last.scheduler,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last.wall_time)),
            "moves": [{"thread_id": tid, "lcore": lc} for tid, lc in sorted(last.moves.items())],
            "interrupt_mode_cores": sorted(lc for lc, on in last.interrupt_mode.items() if on),
            "reason": last.reason,
            "skipped": list(last.skipped),
        }


def _set_interrupt_mode(reactor: Reactor, on: bool) -> None:
    reactor.interrupt_mode = on
