"""The event framework: reactors, events, and how a new lightweight thread reaches a reactor.

Placement follows SPDK exactly (``_reactor_schedule_thread``): the thread library calls the
framework's thread-op hook for every new thread; the hook picks a core from the thread's cpumask
with a process-wide round-robin cursor, allocates an event from the global event mempool and
calls it on that core's reactor, whose handler appends the thread to the reactor's list.

Events are ``{core, fn, args}`` taken from ``evtpool_<pid>`` (16 383 elements, a per-reactor
cache) and queued on the target reactor's MP_SC ring. Unlike SPDK, where a full ring is only an
assertion, an event that cannot be queued raises (:class:`~spdkpy.errors.QueueFullError`) and an
empty pool raises :class:`~spdkpy.errors.EventPoolExhaustedError`; the ``try_`` forms return
``None``/``False``.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Final, TypeVarTuple, Unpack, final

from spdkpy._log import notice
from spdkpy.env import (
    Clock,
    CpuSet,
    Mempool,
    MonotonicClock,
    cache_size_for,
    launch_pinned,
    pin_current_thread,
    unpin_current_thread,
    wait_all,
)
from spdkpy.errors import (
    EventPoolExhaustedError,
    InputError,
    InternalError,
    InvalidStateError,
    QueueFullError,
)
from spdkpy.event._reactor import (
    FREE_THREADED_BUILD,
    Event,
    LwThread,
    Reactor,
    _current,
    current_reactor,
    gil_enabled,
)
from spdkpy.event._scheduling import Scheduling
from spdkpy.event._watchdog import SlowWorkWatchdog
from spdkpy.thread import (
    DEFAULT_MSG_MEMPOOL_SIZE,
    Thread,
    ThreadOp,
    thread_lib_fini,
    thread_lib_init,
)

__all__ = [
    "EVENT_POOL_SIZE",
    "ReactorFramework",
    "ReactorState",
    "event_allocate",
    "event_call",
    "for_each_reactor",
    "get_framework",
    "reactors_fini",
    "reactors_init",
]

log = logging.getLogger("spdkpy.reactor")

Ts = TypeVarTuple("Ts")

EVENT_POOL_SIZE: Final = 16383
_NO_EVENT_CACHE: Final[list[Event]] = []
"""The (always empty) event cache of OS threads that are not reactors."""
DEFAULT_SLOW_WORK_THRESHOLD_US: Final = 10_000
"""A message, poller or event running longer than this is reported (deviation 7); 0: never."""
DEFAULT_GIL_SWITCH_INTERVAL_S: Final = 0.0005
"""The interpreter switch interval while two or more reactors run on a GIL build."""


class ReactorState(enum.Enum):
    UNINITIALIZED = "uninitialized"
    INITIALIZED = "initialized"
    RUNNING = "running"
    EXITING = "exiting"
    SHUTDOWN = "shutdown"


@final
class ReactorFramework:
    """All reactors of the app core mask, the event pool and the placement cursor."""

    RUNNING_STATE: Final = ReactorState.RUNNING

    def __init__(
        self,
        cores: CpuSet,
        main_core: int,
        *,
        msg_mempool_size: int,
        busy_poll: bool,
        clock: Clock,
        interrupt_mode: bool = False,
        idle_spin_us: int = 50,
        gil_switch_interval_s: float | None = DEFAULT_GIL_SWITCH_INTERVAL_S,
        slow_work_threshold_us: int = DEFAULT_SLOW_WORK_THRESHOLD_US,
    ) -> None:
        if not cores:
            raise InputError("the reactor core mask is empty")
        if main_core not in cores:
            raise InputError(f"main core {main_core} is not in the core mask {cores.format()}")
        self.cores: tuple[int, ...] = tuple(cores)
        self.core_mask = cores
        self.main_core = main_core
        self.busy_poll = busy_poll
        self.interrupt_mode = interrupt_mode
        """``--interrupt-mode``: every reactor starts in interrupt mode (sleeps as soon as idle)."""
        self.idle_spin_ticks = idle_spin_us * 1000
        self.gil_switch_interval_s = gil_switch_interval_s
        self.slow_work_threshold_us = slow_work_threshold_us
        self.gil_at_start = gil_enabled()
        """Whether the interpreter lock was on when the reactors started (refreshed by start)."""
        self.awake = threading.Event()
        """Set by a reactor when it wakes from a sleep (the slow-work watchdog waits on it)."""
        self.clock = clock
        self.state = ReactorState.UNINITIALIZED
        self.event_pool: Mempool[Event] = Mempool(
            EVENT_POOL_SIZE, Event, name=f"evtpool_{os.getpid()}"
        )
        cache_size = cache_size_for(EVENT_POOL_SIZE, len(self.cores))
        # Indexed by core; None for cores outside the mask (SPDK's invalid reactor slots).
        self.reactors: list[Reactor | None] = [None] * (self.cores[-1] + 1)
        for core in self.cores:
            self.reactors[core] = Reactor(self, core, cache_size)
        self._reactor_of: dict[int, Reactor] = {
            core: reactor for core, reactor in enumerate(self.reactors) if reactor is not None
        }
        self._next_core_index = 0
        self._shutdown_walk_issued = False
        self.app_core_mask = CpuSet()
        self.failure: BaseException | None = None
        self.scheduling = Scheduling(self)
        self.state = ReactorState.INITIALIZED

    # ------------------------------------------------------------------ events

    def reactor(self, core: int) -> Reactor:
        """The reactor of ``core``; :class:`InputError` if ``core`` is not in the mask."""
        reactor = self.reactors[core] if 0 <= core < len(self.reactors) else None
        if reactor is None:
            raise InputError(f"core {core} has no reactor (mask {self.core_mask.format()})")
        return reactor

    def try_event_allocate(
        self, core: int, fn: Callable[[Unpack[Ts]], object], *args: *Ts
    ) -> Event | None:
        """An event for ``fn(*args)`` on ``core``, or ``None`` if the event pool is empty.

        Raises :class:`InputError` if ``core`` has no reactor. Callable from any OS thread.
        """
        try:
            reactor = self._reactor_of[core]
        except KeyError:
            raise InputError(
                f"core {core} has no reactor (mask {self.core_mask.format()})"
            ) from None
        # Free-threaded builds take from the calling reactor's cache, as SPDK's per-core mempool
        # cache does: each reactor refills its own cache with the events it runs (run_once), so
        # every cache list is used by one OS thread only (taking from the target's cache, which
        # the target refills, contends on that list's lock for every cross-core event). GIL
        # builds have no such contention and skip the thread-local lookup (about 8 % of an
        # event): they take from the cache of the reactor the event will run on.
        cache: list[Event]
        if FREE_THREADED_BUILD:
            try:
                cache = _current.event_cache
            except AttributeError:  # not a reactor's OS thread: the pool
                cache = _NO_EVENT_CACHE
        else:
            cache = reactor.event_cache
        if cache:
            event = cache.pop()
        else:
            got = self.event_pool.get()
            if got is None:
                return None
            event = got
        event.reactor = reactor
        event.fn = fn
        event.args = args
        return event

    def event_allocate(self, core: int, fn: Callable[[Unpack[Ts]], object], *args: *Ts) -> Event:
        """An event for ``fn(*args)`` on ``core`` (``spdk_event_allocate``).

        Raises :class:`EventPoolExhaustedError` when the event pool is empty and
        :class:`InputError` if ``core`` has no reactor.
        """
        # try_event_allocate's body, repeated: this is the hottest call of the framework.
        try:
            reactor = self._reactor_of[core]
        except KeyError:
            raise InputError(
                f"core {core} has no reactor (mask {self.core_mask.format()})"
            ) from None
        cache: list[Event]
        if FREE_THREADED_BUILD:
            try:
                cache = _current.event_cache
            except AttributeError:
                cache = _NO_EVENT_CACHE
        else:
            cache = reactor.event_cache
        if cache:
            event = cache.pop()
        else:
            got = self.event_pool.get()
            if got is None:
                raise EventPoolExhaustedError(
                    f"event pool {self.event_pool.name} is empty ({EVENT_POOL_SIZE} events in use)"
                )
            event = got
        event.reactor = reactor
        event.fn = fn
        event.args = args
        return event

    def try_event_call(self, event: Event) -> bool:
        """Queue ``event`` on its reactor; ``False`` (event released) if the ring is full."""
        reactor = event.reactor
        assert reactor is not None
        if not reactor.events.try_enqueue(event):
            event.fn = None
            event.args = ()
            self.event_pool.put(event)
            return False
        waker = reactor.waker
        if waker.armed:
            waker.notify()
        return True

    def event_call(self, event: Event) -> None:
        """Queue ``event`` on its reactor (``spdk_event_call``); it runs there with no current
        SPDK thread. Raises :class:`QueueFullError` if that reactor's event ring is full.
        """
        reactor = event.reactor
        assert reactor is not None
        ring = reactor.events
        q = ring.queue
        q.append(event)  # Ring.try_enqueue, inlined: this is the hottest call of the framework
        if len(q) > ring.capacity and ring.withdraw(event):
            event.fn = None
            event.args = ()
            self.event_pool.put(event)
            raise QueueFullError(f"event ring of reactor {reactor.lcore} is full")
        waker = reactor.waker
        if waker.armed:
            waker.notify()

    def for_each_reactor(self, fn: Callable[[], object], cpl: Callable[[], object]) -> None:
        """Run ``fn()`` on each reactor in core order, then ``cpl()`` on the calling core.

        Once the shutdown walk has been issued, later walks are dropped, as in SPDK.
        """
        if self._shutdown_walk_issued:
            log.debug("for_each_reactor dropped: the reactors are stopping")
            return
        here = current_reactor()
        origin = here.lcore if here is not None else self.main_core
        self._for_each_step(0, origin, fn, cpl)

    def _for_each_step(
        self, index: int, origin: int, fn: Callable[[], object], cpl: Callable[[], object]
    ) -> None:
        self.event_call(
            self.event_allocate(self.cores[index], self._for_each_run, index, origin, fn, cpl)
        )

    def _for_each_run(
        self, index: int, origin: int, fn: Callable[[], object], cpl: Callable[[], object]
    ) -> None:
        fn()
        if index + 1 < len(self.cores):
            self._for_each_step(index + 1, origin, fn, cpl)
        else:
            self.event_call(self.event_allocate(origin, cpl))

    # ------------------------------------------------------------------ thread placement

    def thread_op(self, thread: Thread, op: ThreadOp) -> None:
        """The thread-op hook installed into the thread library (``reactor_thread_op``)."""
        if op is ThreadOp.NEW:
            lw = LwThread(thread)
            thread.scheduler_context = lw
            self.schedule_thread(lw)
        elif op is ThreadOp.RESCHED:
            lw = _lw_of(thread)
            lw.lcore = None
            lw.resched = True
            waker = thread.waker
            if waker is not None:
                waker.notify()

    @staticmethod
    def thread_op_supported(op: ThreadOp) -> bool:
        return op is ThreadOp.NEW or op is ThreadOp.RESCHED

    def schedule_thread(self, lw: LwThread) -> None:
        """Pick a core for ``lw`` and send it there by event (``_reactor_schedule_thread``)."""
        thread = lw.thread
        target = lw.lcore
        lw.lcore = None
        lw.resched = False
        if target is None:
            target = self._pick_core(thread)
        event = self.try_event_allocate(target, self.reactor(target).adopt, lw)
        if event is None:
            raise EventPoolExhaustedError(
                f"cannot place thread {thread.name}: event pool {self.event_pool.name} is empty"
            )
        lw.tsc_start = self.clock.now()
        self.event_call(event)

    def _pick_core(self, thread: Thread) -> int:
        # SPDK's g_next_core: a process-wide round-robin cursor over the app cores, advanced once
        # per try, at most core_count tries. Placement happens on any OS thread; the thread
        # library's lock serialises the cursor.
        mask = thread.cpumask
        cores = self.cores
        count = len(cores)
        # Without --interrupt-mode, a reactor a scheduler put to sleep for want of threads is
        # passed over while another core of the mask polls (SPEC §3.6).
        avoid_sleepers = not self.interrupt_mode
        with thread.library.lock:
            core = cores[0]
            fallback: int | None = None
            for _ in range(count):
                index = self._next_core_index
                if index >= count:
                    index = 0
                core = cores[index]
                self._next_core_index = index + 1
                if core in mask:
                    if avoid_sleepers and self._reactor_of[core].interrupt_mode:
                        if fallback is None:
                            fallback = core
                        continue
                    return core
            if fallback is not None:
                return fallback
        log.warning(
            "thread %s: its cpumask %s names no core of the app mask %s; placed on core %d",
            thread.name,
            mask.format(),
            self.core_mask.format(),
            core,
        )
        return core

    # ------------------------------------------------------------------ start / stop

    def start(self) -> None:
        """Launch a pinned OS thread per non-main core and run the main reactor on this thread
        until the reactors stop (``spdk_reactors_start``). The calling thread is pinned to the
        main core meanwhile; its previous affinity is restored on return.
        """
        if self.state is not ReactorState.INITIALIZED:
            raise InvalidStateError(f"reactors are {self.state.value}, not initialized")
        self.state = ReactorState.RUNNING
        saved_affinity = os.sched_getaffinity(0)
        saved_switch_interval = sys.getswitchinterval()
        watchdog: SlowWorkWatchdog | None = None
        self.gil_at_start = gil = gil_enabled()  # now: every extension module is imported
        self._report_parallelism(gil)
        if self.gil_switch_interval_s is not None and len(self.cores) > 1 and gil:
            # Reactors hand the GIL to each other when idle; a short switch interval makes
            # CPython hand it over for sure instead of letting the yielding reactor re-take it.
            # perf event -m 0x3 gains about a third; a lone reactor is unaffected.
            sys.setswitchinterval(self.gil_switch_interval_s)
        try:
            pin_current_thread(self.main_core)
            for core in self.cores:
                if core != self.main_core:
                    launch_pinned(core, self._guarded_run(core), name=f"reactor_{core}")
            self.app_core_mask = self.core_mask
            if self.slow_work_threshold_us > 0:
                watchdog = SlowWorkWatchdog(self, self.slow_work_threshold_us)
                watchdog.start()
            self._guarded_run(self.main_core)()
        finally:
            if watchdog is not None:
                watchdog.stop()
            try:
                wait_all()
            finally:
                # Threads and processes started later from this OS thread inherit its affinity.
                unpin_current_thread(saved_affinity)
                sys.setswitchinterval(saved_switch_interval)
                self.state = ReactorState.SHUTDOWN
                self._report_stranded_events()
        if self.failure is not None:
            raise InternalError(f"a reactor failed: {self.failure!r}") from self.failure

    def gil_enabled(self) -> bool:
        """Whether the interpreter lock is on now; while it is, reactors never run Python code
        in parallel. Always ``True`` on GIL builds.
        """
        return gil_enabled()

    def _report_parallelism(self, gil: bool) -> None:
        if len(self.cores) < 2:
            return  # one reactor: nothing to run in parallel, nothing to claim
        if not gil:
            notice(log, "GIL disabled: %d reactors run in parallel", len(self.cores))
        elif FREE_THREADED_BUILD:
            # A free-threaded build whose lock came back (PYTHON_GIL=1, or CPython re-enabled
            # it for an extension module that does not declare free-threading support).
            log.warning(
                "the GIL is enabled on this free-threaded Python (PYTHON_GIL=1 or an extension "
                "module re-enabled it): reactors will not run in parallel"
            )

    def _report_stranded_events(self) -> None:
        # Events sent to a reactor after it left its loop cannot run; say so rather than lose
        # them silently (SPDK drops them without a word).
        for reactor in self.reactors:
            if reactor is not None and reactor.events.queue:
                log.warning(
                    "reactor %d stopped with %d event(s) that never ran",
                    reactor.lcore,
                    len(reactor.events.queue),
                )

    def _guarded_run(self, core: int) -> Callable[[], None]:
        reactor = self.reactor(core)

        def run() -> None:
            try:
                reactor.run()
            except Exception as exc:  # a message, poller or event raised: stop everything
                # One line by default (user-facing commands never print a traceback); the
                # traceback is one log flag away.
                log.error(
                    "reactor %d stopped by an unhandled %s: %s (-L reactor shows the traceback)",
                    core,
                    type(exc).__name__,
                    exc,
                )
                log.debug("traceback of the failure on reactor %d", core, exc_info=exc)
                if self.failure is None:
                    self.failure = exc
                self._stop_now()
                self._salvage_exit(reactor)

        return run

    def _salvage_exit(self, reactor: Reactor) -> None:
        """After a failure, still exit and destroy the failed reactor's threads if they let us."""
        try:
            reactor._exit_threads()
        except Exception as exc:
            log.error(
                "reactor %d: %d thread(s) abandoned after the failure (%s)",
                reactor.lcore,
                len(reactor.threads),
                type(exc).__name__,
            )
            reactor.threads.clear()

    def stop(self) -> None:
        """Ask every reactor to leave its loop (``spdk_reactors_stop``); returns at once."""
        if self._shutdown_walk_issued:
            return
        try:
            self.for_each_reactor(_nop, self._stop_now)
        except (EventPoolExhaustedError, QueueFullError):
            # No event to walk with (an app filled the pool or a ring): stopping must still work.
            log.warning("reactors stop without the for_each_reactor walk: no event available")
            self._stop_now()
        self._shutdown_walk_issued = True

    def _stop_now(self) -> None:
        self._shutdown_walk_issued = True
        self.state = ReactorState.EXITING
        for reactor in self.reactors:
            if reactor is not None:
                reactor.waker.armed = True  # force the write: it may be between arm and sleep
                reactor.waker.notify()

    def close(self) -> None:
        for reactor in self.reactors:
            if reactor is not None:
                reactor.close()


def _nop() -> None:
    return None


def _lw_of(thread: Thread) -> LwThread:
    lw = thread.scheduler_context
    if not isinstance(lw, LwThread):
        raise InternalError(f"thread {thread.name} has no reactor context")
    return lw


_framework: ReactorFramework | None = None


def reactors_init(
    cores: CpuSet,
    main_core: int | None = None,
    *,
    msg_mempool_size: int | None = None,
    busy_poll: bool = False,
    interrupt_mode: bool = False,
    idle_spin_us: int = 50,
    gil_switch_interval_s: float | None = DEFAULT_GIL_SWITCH_INTERVAL_S,
    slow_work_threshold_us: int = DEFAULT_SLOW_WORK_THRESHOLD_US,
    clock: Clock | None = None,
) -> ReactorFramework:
    """Create one reactor per core of ``cores`` and install the thread placement hook
    (``spdk_reactors_init``). ``main_core`` defaults to the lowest core.

    An idle reactor sleeps (deviation 3); ``interrupt_mode`` starts every reactor in interrupt
    mode (it sleeps as soon as it is idle, and schedulers may switch it); otherwise, for
    ``idle_spin_us`` after its last work it first yields instead, so a quick answer from a peer
    reactor needs no wake-up. ``busy_poll`` spins forever, as SPDK does. On a GIL build with two
    or more reactors, the interpreter's switch interval is set to ``gil_switch_interval_s`` while
    they run (``None`` leaves it alone).
    A message, poller or event running longer than ``slow_work_threshold_us`` is logged and
    counted by a watchdog (0 turns it off).
    """
    if busy_poll and interrupt_mode:
        raise InputError("--busy-poll and --interrupt-mode cannot be used together")
    if idle_spin_us < 0:
        raise InputError(f"idle spin must be >= 0 us, got {idle_spin_us}")
    if slow_work_threshold_us < 0:
        raise InputError(f"slow-work threshold must be >= 0 us, got {slow_work_threshold_us}")
    global _framework
    if _framework is not None:
        raise InvalidStateError("reactors are already initialised")
    if main_core is None:
        main_core = cores.first()
    if msg_mempool_size is None:
        msg_mempool_size = max(DEFAULT_MSG_MEMPOOL_SIZE, len(cores) * 4096)
    framework = ReactorFramework(
        cores,
        main_core,
        msg_mempool_size=msg_mempool_size,
        busy_poll=busy_poll,
        interrupt_mode=interrupt_mode,
        clock=clock or MonotonicClock(),
        idle_spin_us=idle_spin_us,
        gil_switch_interval_s=gil_switch_interval_s,
        slow_work_threshold_us=slow_work_threshold_us,
    )
    thread_lib_init(
        framework.thread_op,
        framework.thread_op_supported,
        msg_mempool_size=msg_mempool_size,
        clock=framework.clock,
    )
    _framework = framework
    return framework


def reactors_fini() -> None:
    """Release the reactors and the thread library (``spdk_reactors_fini``)."""
    global _framework
    framework = _framework
    if framework is None:
        return
    thread_lib_fini()
    framework.close()
    _framework = None


def get_framework() -> ReactorFramework:
    """The initialised framework, or :class:`InvalidStateError`."""
    framework = _framework
    if framework is None:
        raise InvalidStateError("reactors are not initialised (call reactors_init)")
    return framework


def event_allocate(core: int, fn: Callable[[Unpack[Ts]], object], *args: *Ts) -> Event:
    """``spdk_event_allocate``: an event for ``fn(*args)`` on ``core``; see
    :meth:`ReactorFramework.event_allocate`."""
    return get_framework().event_allocate(core, fn, *args)


def event_call(event: Event) -> None:
    """``spdk_event_call``: queue ``event`` on its core; see :meth:`ReactorFramework.event_call`."""
    get_framework().event_call(event)


def for_each_reactor(fn: Callable[[], object], cpl: Callable[[], object]) -> None:
    """``spdk_for_each_reactor``; see :meth:`ReactorFramework.for_each_reactor`."""
    get_framework().for_each_reactor(fn, cpl)
