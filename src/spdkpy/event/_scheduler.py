"""Thread-placement policies (SPDK's ``scheduler_static.c`` and ``scheduler_dynamic.c``).

Theory of operation
-------------------
A scheduler is a pure function: it gets a frozen snapshot of every core and of the threads on it
(busy/idle *deltas* since the last round) and returns a :class:`Placement`: which threads move
where, which cores should sleep in interrupt mode, and why, in words. It touches no reactor,
thread or clock, so a placement can be tested from a table of numbers without starting anything;
the reactor layer applies the result (SPEC §3.5).

``balance_static`` (SPEC §4.2) sends every thread home to its ``initial_lcore`` and keeps every
core polling.

``balance_dynamic`` (SPEC §4.3) keeps a mutable *estimate* per core, seeded from the core's
deltas. Each planned move transfers the thread's busy ticks from the source estimate to the
destination estimate, so later decisions in the same round see the earlier ones. Two passes run in
core order, then list order: idle threads (load below ``load_limit``) gather on the main core, then
each active thread goes to the core :func:`_find_optimal_core` picks. Finally a core whose estimate
holds no thread, and whose reactor really hosts none, is put in interrupt mode.

Out of scope: the governor. SPDK's dynamic scheduler also steps CPU frequencies; spdkpy ships no
governor, and SPDK's dynamic scheduler tolerates its absence, so no frequency decision is made.

One deviation from SPDK (spdk/spdk#2070), in two halves. SPDK's estimates move a thread's busy
*ticks*, which understate what a thread sharing a saturated core wants. So ``fits`` also requires
the destination's busy% plus the thread's *load* (its busy% of its own time) to stay below
``core_limit``, and ``at_limit`` is also true for a core whose remaining threads' loads add up to
``core_limit`` or more. Busy threads then spread over idle cores in one round instead of piling
onto the first idle core or staying two to a core.

Beyond SPEC's text, two rules of SPEC §4.1 are enforced everywhere: a thread never moves onto or
off an isolated core, and never onto a core outside its cpumask (so an idle thread whose cpumask
excludes the main core stays where it is). SPDK's "the thread no longer exists" branch has no
counterpart: a snapshot cannot lose a thread.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, final

from spdkpy.env import CpuSet

__all__ = [
    "CoreInfo",
    "DynamicOptions",
    "FrequencyStep",
    "Placement",
    "ThreadInfo",
    "balance_dynamic",
    "balance_gscheduler",
    "balance_static",
    "busy_pct",
]

_NO_CHANGE: Final = "no change"


@final
@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """One lightweight thread in a snapshot; ``busy``/``idle``: its ticks since the last round."""

    id: int
    lcore: int
    initial_lcore: int
    cpumask: CpuSet
    busy: int
    idle: int

    def __post_init__(self) -> None:
        if self.busy < 0 or self.idle < 0:
            raise ValueError(f"thread {self.id}: busy and idle must not be negative")

    @property
    def load(self) -> int:
        """Busy percentage of this round's deltas (SPDK's ``_get_thread_load``)."""
        return busy_pct(self.busy, self.idle)


@final
@dataclass(frozen=True, slots=True)
class CoreInfo:
    """One reactor in a snapshot.

    ``busy``/``idle`` are the core's ticks since the last round; ``threads`` are the threads on it
    in list order; ``hosts_threads`` says whether the reactor really hosts threads right now (a
    thread can be in flight to it, so this is not always ``bool(threads)``).
    """

    lcore: int
    busy: int
    idle: int
    isolated: bool
    threads: tuple[ThreadInfo, ...]
    hosts_threads: bool

    def __post_init__(self) -> None:
        if self.busy < 0 or self.idle < 0:
            raise ValueError(f"core {self.lcore}: busy and idle must not be negative")
        for t in self.threads:
            if t.lcore != self.lcore:
                raise ValueError(f"thread {t.id} says core {t.lcore} but is listed on {self.lcore}")


@final
@dataclass(frozen=True, slots=True)
class Placement:
    """A scheduler's decision for one round.

    ``moves`` maps a thread id to its destination lcore and holds only threads that move;
    ``interrupt_mode`` maps every lcore to ``True`` (sleep) or ``False`` (poll); ``reason``
    summarises the decisions in words.
    """

    moves: Mapping[int, int]
    interrupt_mode: Mapping[int, bool]
    reason: str


@final
@dataclass(frozen=True, slots=True)
class DynamicOptions:
    """The dynamic scheduler's percentages (SPEC §4.3)."""

    load_limit: int = 20
    """A thread below this load is idle and gathers on the main core."""
    core_limit: int = 80
    """A core at or above this busy% with more than one thread is at its limit."""
    core_busy: int = 95
    """A core at or above this busy% that sheds a thread keeps an estimate of ``core_limit``."""


def busy_pct(busy: int, idle: int) -> int:
    """``busy * 100 / (busy + idle)`` rounded down, or 0 when both are 0."""
    total = busy + idle
    return busy * 100 // total if total else 0


def _placement(
    cores: Iterable[CoreInfo],
    final_lcore: Mapping[int, int],
    interrupt: Mapping[int, bool],
    reason: str,
) -> Placement:
    moves = {
        t.id: final_lcore[t.id] for c in cores for t in c.threads if final_lcore[t.id] != t.lcore
    }
    return Placement(MappingProxyType(moves), MappingProxyType(dict(interrupt)), reason)


# --- static -----------------------------------------------------------------------------------


def balance_static(cores: Iterable[CoreInfo]) -> Placement:
    """Every thread back on its ``initial_lcore``, every core in poll mode (SPEC §4.2).

    This is also what undoes a dynamic placement when ``static`` is chosen again (spdk/spdk#2492).
    """
    cores = tuple(cores)
    home = {t.id: t.initial_lcore for c in cores for t in c.threads}
    words = [
        f"thread {t.id} -> core {t.initial_lcore}: initial core"
        for c in sorted(cores, key=lambda c: c.lcore)
        for t in c.threads
        if t.initial_lcore != t.lcore
    ]
    interrupt = {c.lcore: False for c in cores}
    return _placement(cores, home, interrupt, "; ".join(words) or _NO_CHANGE)


# --- dynamic ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Estimate:
    """A core's load as the round's planned moves change it (SPDK's ``struct core_stats``)."""

    busy: int
    idle: int
    count: int
    isolated: bool
    demand: int = 0
    """spdkpy's: the sum of the loads of the threads planned here (percent of a core)."""

    @property
    def pct(self) -> int:
        return busy_pct(self.busy, self.idle)


class _Round:
    """The mutable state of one dynamic round: estimates, current lcores and the story so far."""

    def __init__(self, cores: tuple[CoreInfo, ...], main_lcore: int, opts: DynamicOptions) -> None:
        self.opts = opts
        self.main = main_lcore
        self.est = {
            c.lcore: _Estimate(
                c.busy, c.idle, len(c.threads), c.isolated, sum(t.load for t in c.threads)
            )
            for c in cores
        }
        # Ascending lcore order is SPDK's core order for both passes and for the search.
        self.order = sorted(self.est)
        self.lcore = {t.id: t.lcore for c in cores for t in c.threads}
        self.words: list[str] = []

    def move(self, t: ThreadInfo, dst: int, why: str) -> None:
        src = self.lcore[t.id]
        if src == dst:
            return  # already there: the estimates must not count it twice
        d, s = self.est[dst], self.est[src]
        src_pct_before = s.pct
        d.busy += t.busy
        d.idle = max(0, d.idle - t.busy)
        d.count += 1
        s.busy = max(0, s.busy - t.busy)
        s.idle += t.busy
        if src_pct_before >= self.opts.core_busy and s.pct < self.opts.core_limit:
            # A core that was saturated cannot be assumed to go idle by the moved thread's busy
            # ticks: its remaining threads will likely use them. Hold the estimate at core_limit
            # so that no other thread is moved onto it this round.
            total = s.busy + s.idle
            s.busy = total * self.opts.core_limit // 100
            s.idle = total - s.busy
        s.count -= 1
        d.demand += t.load
        s.demand -= t.load
        self.lcore[t.id] = dst
        self.words.append(f"thread {t.id} (load {t.load}%) -> core {dst}: {why}")

    def at_limit(self, lcore: int) -> bool:
        e = self.est[lcore]
        if e.count <= 1:
            return False
        if e.busy > 0 and e.pct >= self.opts.core_limit:
            return True
        # Deviation (spdk/spdk#2070), the other half: the ticks left on a core that shed threads
        # understate what the threads still there want; their loads say it.
        return e.demand >= self.opts.core_limit

    def fits(self, t: ThreadInfo, dst: int) -> bool:
        if self.lcore[t.id] == dst:
            return True
        d = self.est[dst]
        if d.busy + d.idle == 0:
            return True  # a sleeping reactor keeps no stats, so it can always take a thread
        if d.count == 0:
            return True
        if not (
            d.idle >= t.busy and busy_pct(d.busy + t.busy, d.idle - t.busy) < self.opts.core_limit
        ):
            return False
        # Deviation (spdk/spdk#2070): a thread that shares its core has fewer busy ticks than it
        # wants. Its load is what it would take of a core of its own, so count that too: a
        # 100%-loaded thread then never fits beside another thread, and busy threads spread
        # over idle cores in one round instead of piling up on the first one.
        return d.pct + t.load < self.opts.core_limit

    def find_optimal_core(self, t: ThreadInfo) -> tuple[int, str]:
        current = self.lcore[t.id]
        current_at_limit = self.at_limit(current)
        least_busy = current
        for i in self.order:
            if i not in t.cpumask or self.est[i].isolated:
                continue
            # Deviation (#2070): "least busy" by the loads planned there first, then by ticks:
            # ticks understate a saturated core's threads (SPDK compares ticks only).
            e, least = self.est[i], self.est[least_busy]
            if (e.demand, e.busy) < (least.demand, least.busy):
                least_busy = i
            if i == current or not self.fits(t, i):
                continue
            if i == self.main:
                return i, "main core"
            if i < current and current != self.main:
                return i, "lower-numbered core"
            if current_at_limit:
                return i, f"core {current} at limit"
        if current_at_limit:
            # Nothing fits, but staying is worse: take the least busy core anyway.
            return least_busy, f"least busy, core {current} at limit"
        return current, "stays"


def balance_dynamic(
    cores: Iterable[CoreInfo], main_lcore: int, opts: DynamicOptions = DynamicOptions()
) -> Placement:
    """The ``dynamic`` scheduler's round (SPEC §4.3), without the governor."""
    cores = tuple(cores)
    by_lcore = {c.lcore: c for c in cores}
    if len(by_lcore) != len(cores):
        raise ValueError("each lcore may appear only once")
    if main_lcore not in by_lcore:
        raise ValueError(f"main core {main_lcore} is not among the cores")
    r = _Round(cores, main_lcore, opts)
    # Both passes walk the snapshot's lists: a thread moved earlier is still visited in its
    # original core's list, as in SPDK, but from its new lcore.
    ordered = [by_lcore[lc] for lc in r.order if not by_lcore[lc].isolated]

    for c in ordered:
        for t in c.threads:
            # The cpumask check is ours (SPEC §4.1): SPEC's idle pass does not mention it.
            if t.load < opts.load_limit and main_lcore in t.cpumask:
                r.move(t, main_lcore, "idle, gathered on main core")

    for c in ordered:
        for t in c.threads:
            if t.load >= opts.load_limit:
                dst, why = r.find_optimal_core(t)
                r.move(t, dst, why)

    interrupt: dict[int, bool] = {}
    for lc in r.order:
        sleep = r.est[lc].count == 0 and not by_lcore[lc].hosts_threads
        interrupt[lc] = sleep
        if sleep:
            r.words.append(f"core {lc} -> interrupt mode: no threads")
    return _placement(cores, r.lcore, interrupt, "; ".join(r.words) or _NO_CHANGE)


# --- gscheduler -------------------------------------------------------------------------------


class FrequencyStep(enum.Enum):
    """A governor decision for one core."""

    MIN = "min"
    DOWN = "down"
    UP = "up"
    MAX = "max"


def balance_gscheduler(
    cores: Iterable[CoreInfo], siblings: Mapping[int, Iterable[int]] | None = None
) -> dict[int, FrequencyStep]:
    """``gscheduler``'s round (SPEC §4.4): a frequency step per core, never a move.

    A core's busy% is that of its busiest SMT sibling when ``siblings`` (lcore -> sibling lcores)
    is known. Below 1%: minimum; below 50%: one step down; 99% or more: maximum; else one step up.
    """
    cores = tuple(cores)
    pct = {c.lcore: busy_pct(c.busy, c.idle) for c in cores}
    steps: dict[int, FrequencyStep] = {}
    for c in cores:
        load = pct[c.lcore]
        if siblings is not None:
            load = max([load, *(pct[s] for s in siblings.get(c.lcore, ()) if s in pct)])
        if load < 1:
            steps[c.lcore] = FrequencyStep.MIN
        elif load < 50:
            steps[c.lcore] = FrequencyStep.DOWN
        elif load >= 99:
            steps[c.lcore] = FrequencyStep.MAX
        else:
            steps[c.lcore] = FrequencyStep.UP
    return steps
