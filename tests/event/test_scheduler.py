"""Scheduler placements from tables of numbers: no reactors, no threads (SPEC §4, STYLE lesson 14).

Snapshots are built from loads: every core runs ``TICK`` ticks per round, shared equally by the
threads on it; a thread's busy ticks are its load times its share, and the core's busy ticks are
the sum of its threads'. That is how a saturated core looks in SPDK: three always-busy threads on
one core each report 100% load over a third of the core's time (spdk/spdk#2070). Tests that run
several rounds use :func:`demand_snapshot` instead, which shares a core by demand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spdkpy.env import CpuSet
from spdkpy.event._scheduler import (
    CoreInfo,
    DynamicOptions,
    Placement,
    ThreadInfo,
    balance_dynamic,
    balance_static,
    busy_pct,
)

TICK = 1200  # divisible by 1..4 threads per core
ALL = CpuSet(range(8))


@dataclass(frozen=True)
class T:
    """A thread in a table: its id, load in percent, cpumask and home core."""

    id: int
    load: int
    mask: CpuSet = ALL
    home: int | None = None


def core(lcore: int, *threads: T, isolated: bool = False, hosts: bool | None = None) -> CoreInfo:
    share = TICK // max(1, len(threads))
    infos = tuple(
        ThreadInfo(
            id=t.id,
            lcore=lcore,
            initial_lcore=lcore if t.home is None else t.home,
            cpumask=t.mask,
            busy=share * t.load // 100,
            idle=share - share * t.load // 100,
        )
        for t in threads
    )
    busy = sum(i.busy for i in infos)
    return CoreInfo(
        lcore=lcore,
        busy=busy,
        idle=max(0, TICK - busy),
        isolated=isolated,
        threads=infos,
        hosts_threads=bool(threads) if hosts is None else hosts,
    )


def cores(n: int, *populated: CoreInfo) -> tuple[CoreInfo, ...]:
    """Cores 0..n-1: the given ones, the rest empty and idle."""
    given = {c.lcore: c for c in populated}
    return tuple(given.get(i, core(i)) for i in range(n))


def demand_snapshot(
    n: int, demand: Mapping[int, int], on: Mapping[int, int], home: Mapping[int, int] | None = None
) -> tuple[CoreInfo, ...]:
    """Cores 0..n-1 with threads that *want* ``demand[id]`` percent of a core, placed per ``on``.

    Closer to a real reactor than :func:`core` over several rounds: threads on a core share its
    ``TICK`` ticks in proportion to their demand (scaled down when the core is oversubscribed),
    and the core's idle ticks are split evenly among its threads.
    """
    home = home or {}
    out = []
    for lc in range(n):
        ids = sorted(i for i, c in on.items() if c == lc)
        total = sum(demand[i] for i in ids)
        busy = {i: TICK * demand[i] // max(100, total) for i in ids}
        idle = TICK - sum(busy.values())
        threads = tuple(
            ThreadInfo(i, lc, home.get(i, lc), ALL, busy[i], idle // len(ids)) for i in ids
        )
        out.append(CoreInfo(lc, TICK - idle, idle, False, threads, bool(ids)))
    return tuple(out)


def moved(on: Mapping[int, int], p: Placement) -> dict[int, int]:
    return {i: p.moves.get(i, c) for i, c in on.items()}


# --- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("busy", "idle", "pct"),
    [(0, 0, 0), (1, 0, 100), (0, 5, 0), (1, 2, 33), (80, 20, 80), (199, 1, 99)],
)
def test_busy_pct(busy: int, idle: int, pct: int) -> None:
    assert busy_pct(busy, idle) == pct


def test_snapshot_rejects_a_thread_listed_on_the_wrong_core() -> None:
    t = ThreadInfo(id=1, lcore=2, initial_lcore=2, cpumask=ALL, busy=0, idle=1)
    with pytest.raises(ValueError, match="listed on 0"):
        CoreInfo(lcore=0, busy=0, idle=1, isolated=False, threads=(t,), hosts_threads=True)


# --- static -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snapshot", "moves"),
    [
        pytest.param(cores(2, core(0, T(1, 0)), core(1, T(2, 90))), {}, id="all-home"),
        pytest.param(
            cores(3, core(0, T(1, 0), T(2, 0, home=1), T(3, 50, home=2))),
            {2: 1, 3: 2},
            id="gathered-threads-go-home",
        ),
        pytest.param(
            cores(2, core(1, T(1, 100, home=0)), core(0, T(2, 100, home=1))),
            {1: 0, 2: 1},
            id="swapped",
        ),
    ],
)
def test_static_sends_threads_home_and_polls(
    snapshot: tuple[CoreInfo, ...], moves: Mapping[int, int]
) -> None:
    p = balance_static(snapshot)
    assert p.moves == moves
    assert p.interrupt_mode == {c.lcore: False for c in snapshot}
    if not moves:
        assert p.reason == "no change"


def test_static_after_dynamic_redistributes_threads_spdk_2492() -> None:
    """spdk/spdk#2492: switching dynamic -> static must undo the dynamic packing."""
    demand = {1: 1, 2: 2, 3: 3, 4: 4}
    on = {1: 0, 2: 1, 3: 2, 4: 3}
    dyn = balance_dynamic(demand_snapshot(4, demand, on), main_lcore=0)
    assert dyn.moves == {2: 0, 3: 0, 4: 0}
    packed = moved(on, dyn)
    st = balance_static(demand_snapshot(4, demand, packed, home=on))
    assert st.moves == {2: 1, 3: 2, 4: 3}
    assert moved(packed, st) == on
    assert not any(st.interrupt_mode.values())


# --- dynamic: one round -----------------------------------------------------------------------

DYNAMIC_CASES = [
    # (id, snapshot, main core, options, expected moves, expected interrupt-mode cores)
    (
        "idle-threads-gather-on-main",
        cores(3, core(1, T(1, 5)), core(2, T(2, 0), T(3, 19))),
        0,
        DynamicOptions(),
        {1: 0, 2: 0, 3: 0},
        set(),  # cores 1 and 2 still host the threads
    ),
    (
        "busy-thread-on-main-stays",
        cores(3, core(0, T(1, 100))),
        0,
        DynamicOptions(),
        {},
        {1, 2},
    ),
    (
        "busy-thread-stays-when-nothing-lower-fits",
        cores(3, core(0, T(1, 90)), core(1, T(2, 90)), core(2, T(3, 90))),
        0,
        DynamicOptions(),
        {},
        set(),
    ),
    (
        "busy-thread-prefers-empty-main",
        cores(3, core(2, T(1, 90))),
        0,
        DynamicOptions(),
        {1: 0},
        {1},
    ),
    (
        "busy-thread-prefers-lower-core",
        cores(4, core(0, T(1, 90)), core(3, T(2, 90))),
        0,
        DynamicOptions(),
        {2: 1},
        {2},
    ),
    (
        "main-core-need-not-be-zero",
        cores(3, core(0, T(1, 50)), core(1, T(2, 5))),
        2,
        DynamicOptions(),
        {1: 2, 2: 2},
        set(),
    ),
    (
        # SPEC §4.3 exactly, one round: the first thread leaves the full core for core 1; the
        # source is clamped to 80%, so still at its limit, and core 1's estimate (one third of
        # a core) still fits the second. The third stays. See the settling test below.
        # SPDK moves threads 1 and 2 both onto core 1 here (their busy ticks are a third of a
        # core each); spdkpy counts their load and spreads them in one round.
        "spdk-2070-first-round",
        cores(5, core(0, T(1, 100), T(2, 100), T(3, 100))),
        0,
        DynamicOptions(),
        {1: 1, 2: 2},
        {3, 4},
    ),
    (
        # A saturated core measures every thread on it at 100%; after shedding two threads its
        # ticks look light, but threads 3 and 4 still want a core each. SPDK leaves them
        # together; spdkpy counts their loads (at_limit) and moves one on.
        "saturated-core-sheds-until-its-threads-fit",
        cores(4, core(0, T(1, 100), T(2, 100), T(3, 100), T(4, 100))),
        0,
        DynamicOptions(),
        {1: 1, 2: 2, 3: 3},
        set(),
    ),
    (
        # The case as reported in spdk/spdk#2070: the threads were created with cpumask 0x1.
        "spdk-2070-cpumask-0x1-keeps-them",
        cores(
            5,
            core(0, T(1, 100, CpuSet([0])), T(2, 100, CpuSet([0])), T(3, 100, CpuSet([0]))),
        ),
        0,
        DynamicOptions(),
        {},
        {1, 2, 3, 4},
    ),
    (
        "cpumask-steers-a-busy-thread",
        cores(4, core(0, T(1, 100, CpuSet([0, 2])), T(2, 100, CpuSet([0])))),
        0,
        DynamicOptions(),
        {1: 2},
        {1, 3},
    ),
    (
        "cpumask-keeps-an-idle-thread-off-main",
        cores(2, core(1, T(1, 0, CpuSet([1])))),
        0,
        DynamicOptions(),
        {},
        {0},
    ),
    (
        "isolated-core-keeps-its-idle-thread",
        cores(3, core(1, T(1, 0), isolated=True), core(2, T(2, 0))),
        0,
        DynamicOptions(),
        {2: 0},
        set(),
    ),
    (
        "isolated-core-keeps-its-busy-thread",
        cores(3, core(1, T(1, 100), isolated=True)),
        0,
        DynamicOptions(),
        {},
        {0, 2},
    ),
    (
        "isolated-core-never-receives",
        cores(4, core(0, T(1, 100), T(2, 100)), core(1, isolated=True)),
        0,
        DynamicOptions(),
        {1: 2},
        {1, 3},
    ),
    (
        "empty-core-hosting-a-thread-in-flight-keeps-polling",
        cores(3, core(1, hosts=True)),
        0,
        DynamicOptions(),
        {},
        {0, 2},  # the main core too
    ),
    (
        # Core 1 was 100% busy and sheds thread 1 to core 2; the clamp holds its estimate at
        # 80%, so thread 3 (25%) cannot pile onto it and goes to core 2 instead.
        "core-busy-clamp-protects-a-shedding-core",
        cores(4, core(0, T(9, 100)), core(1, T(1, 100), T(2, 100)), core(3, T(3, 25))),
        0,
        DynamicOptions(),
        {1: 2, 3: 2},
        set(),
    ),
    (
        # The same snapshot with the clamp disabled: core 1 looks 50% busy and takes thread 3.
        "without-the-clamp-thread-piles-onto-the-shedding-core",
        cores(4, core(0, T(9, 100)), core(1, T(1, 100), T(2, 100)), core(3, T(3, 25))),
        0,
        DynamicOptions(core_busy=101),
        {1: 2, 3: 1},
        set(),
    ),
    (
        "load-exactly-load-limit-is-active",
        cores(3, core(0, T(9, 100)), core(2, T(1, 20))),
        0,
        DynamicOptions(),
        {1: 1},
        set(),
    ),
    (
        "load-just-below-load-limit-is-idle",
        cores(3, core(0, T(9, 100)), core(2, T(1, 19))),
        0,
        DynamicOptions(),
        {1: 0, 9: 1},  # gathering it puts main at its limit: 9 leaves
        set(),
    ),
    (
        "custom-load-limit",
        cores(3, core(0, T(9, 100)), core(2, T(1, 30))),
        0,
        DynamicOptions(load_limit=50),
        {1: 0, 9: 1},
        set(),
    ),
]


@pytest.mark.parametrize(
    ("snapshot", "main", "opts", "moves", "sleeping"),
    [pytest.param(*case[1:], id=case[0]) for case in DYNAMIC_CASES],
)
def test_dynamic_round(
    snapshot: tuple[CoreInfo, ...],
    main: int,
    opts: DynamicOptions,
    moves: Mapping[int, int],
    sleeping: set[int],
) -> None:
    p = balance_dynamic(snapshot, main, opts)
    assert p.moves == moves
    assert p.interrupt_mode == {c.lcore: c.lcore in sleeping for c in snapshot}


@pytest.mark.parametrize(
    ("snapshot", "phrase"),
    [
        (
            cores(5, core(0, T(1, 100), T(2, 100), T(3, 100))),
            "thread 1 (load 100%) -> core 1: core 0 at limit",
        ),
        (cores(2, core(1, T(4, 3))), "thread 4 (load 3%) -> core 0: idle, gathered on main core"),
        (cores(3, core(2, T(5, 90))), "thread 5 (load 90%) -> core 0: main core"),
        (cores(3, core(1, T(4, 3))), "core 2 -> interrupt mode: no threads"),
        (cores(1, core(0, T(1, 100))), "no change"),
    ],
)
def test_dynamic_reason_says_why(snapshot: tuple[CoreInfo, ...], phrase: str) -> None:
    assert phrase in balance_dynamic(snapshot, 0).reason


def test_dynamic_rejects_unknown_main_core() -> None:
    with pytest.raises(ValueError, match="main core 7"):
        balance_dynamic(cores(2), 7)


# --- dynamic: rounds until settled ------------------------------------------------------------


def settle(
    n: int, demand: Mapping[int, int], on: Mapping[int, int], main: int = 0
) -> tuple[dict[int, int], int]:
    """Dynamic rounds (demands unchanged) until one moves nothing: the placement and the count."""
    where = dict(on)
    for rounds in range(1, 10):
        p = balance_dynamic(demand_snapshot(n, demand, where), main)
        if not p.moves:
            return where, rounds
        where = moved(where, p)
    raise AssertionError("placement never settled")


def test_three_busy_threads_spread_over_idle_cores_spdk_2070() -> None:
    """No two 100%-busy threads share a core while a core is idle, once the placement settles."""
    demand = {1: 100, 2: 100, 3: 100}
    final, rounds = settle(5, demand, {1: 0, 2: 0, 3: 0})
    assert final == {3: 0, 1: 1, 2: 2}  # the lowest cores, main core included
    assert rounds == 2  # one round that moves, one that confirms
    p = balance_dynamic(demand_snapshot(5, demand, final), 0)
    assert p.interrupt_mode == {0: False, 1: False, 2: False, 3: True, 4: True}


@pytest.mark.parametrize("n_busy", [1, 2, 3, 4])
def test_busy_threads_settle_one_per_core(n_busy: int) -> None:
    demand = {i: 100 for i in range(1, n_busy + 1)} | {10: 0, 11: 0}
    on = {i: 5 for i in range(1, n_busy + 1)} | {10: 4, 11: 4}
    final, _ = settle(6, demand, on)
    busy_cores = sorted(final[i] for i in range(1, n_busy + 1))
    # One per core, lowest first, but not the main core: it holds the idle threads, and a 100%
    # thread never fits on a core that has threads (it would push it past core_limit).
    assert busy_cores == list(range(1, n_busy + 1))
    assert final[10] == final[11] == 0  # idle threads on the main core


def test_a_core_that_shed_its_threads_sleeps_the_next_round() -> None:
    on = {1: 1, 2: 2}
    first = balance_dynamic(demand_snapshot(3, {1: 0, 2: 0}, on), 0)
    assert first.moves == {1: 0, 2: 0}
    assert first.interrupt_mode == {0: False, 1: False, 2: False}  # still hosting them
    second = balance_dynamic(demand_snapshot(3, {1: 0, 2: 0}, moved(on, first)), 0)
    assert second.interrupt_mode == {0: False, 1: True, 2: True}


# --- dynamic: the spreading property (spdk/spdk#2070) -----------------------------------------

_placements = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 100)), min_size=1, max_size=8
).map(
    lambda pairs: (
        {i + 1: d for i, (_, d) in enumerate(pairs)},
        {i + 1: c for i, (c, _) in enumerate(pairs)},
    )
)


@example(({1: 0, 2: 100, 3: 100, 4: 100, 5: 34}, {1: 0, 2: 0, 3: 0, 4: 0, 5: 1}))
@example(({1: 13, 2: 38, 3: 100, 4: 100}, {1: 0, 2: 0, 3: 0, 4: 0}))
@given(_placements)
@settings(max_examples=300, deadline=None)
def test_one_round_never_leaves_two_saturating_threads_together_beside_an_empty_core(
    case: tuple[dict[int, int], dict[int, int]],
) -> None:
    """After any round, two threads that each want a whole core share one only if no core is
    left empty (threads may run anywhere, no core is isolated)."""
    demand, on = case
    p = balance_dynamic(demand_snapshot(4, demand, on), 0)
    final = moved(on, p)
    if len(set(final.values())) == 4:
        return  # no core left empty
    for lcore in range(4):
        saturating = [i for i, c in final.items() if c == lcore and demand[i] == 100]
        assert len(saturating) <= 1, (final, p.reason)
