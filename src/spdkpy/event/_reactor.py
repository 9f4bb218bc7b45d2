"""One reactor: the loop that runs on one pinned OS thread (SPDK's ``reactor_run``).

Theory of operation
-------------------
Each iteration runs, in SPDK's order: one batch of at most 8 events, then one poll of each
lightweight thread in list order, charging the time between the end of one thread's poll and the
end of the next to busy or idle by the poll's result. Event time is folded into the first thread's
interval, or into idle when the reactor hosts no thread, exactly as SPDK accounts it.

After the poll, each thread is post-processed: an exited, idle thread is destroyed; a thread asked
to move (``resched``) is unlinked right after its poll and placed again through an event, so no
two reactors ever poll it at once and its queued messages travel with it.

Sleeping (deviation 3). When an iteration did no work, the reactor may sleep: it arms its
:class:`~spdkpy.env.Waker`, checks every source of work once more (its event ring, each thread's
messages), and blocks in epoll until a sender wakes it or the earliest timed poller is due.
Active pollers that report idle do not keep it awake, but the sleep is capped so that they still
run regularly. ``busy_poll`` keeps SPDK's spinning instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import resource
import sys
import sysconfig
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from spdkpy._log import notice
from spdkpy.env import Ring, RingType, Waker
from spdkpy.thread import Poller, PollerState, Thread, ThreadState

if TYPE_CHECKING:
    from spdkpy.event._framework import ReactorFramework

__all__ = ["Event", "LwThread", "Reactor", "ReactorStatistics", "current_reactor"]

log = logging.getLogger("spdkpy.reactor")

EVENT_RING_SIZE: Final = 65536
EVENT_BATCH_SIZE: Final = 8
IDLE_ACTIVE_POLLER_CAP_S: Final = 0.010
"""Longest sleep while the reactor hosts active pollers that report idle."""
MIN_SLEEP_TICKS: Final = 1_000_000
"""A timed poller due sooner than this (1 ms, epoll's resolution) is spun for, not slept for."""
CONTEXT_SWITCH_CHECK_TICKS: Final = 1_000_000_000
NEVER: Final = 1 << 62
"""A tick deadline that never comes (no scheduling round due)."""

FREE_THREADED_BUILD: Final[bool] = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
"""This interpreter was built with ``--disable-gil`` (3.13t and later)."""


def gil_enabled() -> bool:
    """Whether the interpreter lock is on now. Always on GIL builds; on a free-threaded build
    unless ``PYTHON_GIL=1`` or an imported extension module without free-threading support
    turned it back on (which CPython does at import time, so ask late).
    """
    is_enabled = getattr(sys, "_is_gil_enabled", None)  # Python 3.13+
    return True if is_enabled is None else bool(is_enabled())


_RUNNING_THREAD: Final = ThreadState.RUNNING
_UNREGISTERED: Final = PollerState.UNREGISTERED
_EXITED_THREAD: Final = ThreadState.EXITED


class Event:
    """An event: run ``fn(*args)`` on a reactor. Pooled; get one from ``event_allocate``."""

    __slots__ = ("args", "fn", "reactor")

    def __init__(self) -> None:
        self.reactor: Reactor | None = None
        self.fn: Callable[..., object] | None = None
        self.args: tuple[object, ...] = ()

    @property
    def core(self) -> int | None:
        """The core this event runs on."""
        return self.reactor.lcore if self.reactor is not None else None


@final
class LwThread:
    """The reactor's scheduling context for one lightweight thread (SPDK's ``lw_thread``)."""

    __slots__ = (
        "initial_lcore",
        "lcore",
        "resched",
        "round_busy",
        "round_idle",
        "thread",
        "tsc_start",
    )

    def __init__(self, thread: Thread) -> None:
        self.thread = thread
        self.lcore: int | None = None
        self.initial_lcore: int | None = None
        self.resched = False
        self.tsc_start = 0
        # The thread's busy/idle totals at the last scheduling round (deltas are taken from them).
        self.round_busy = 0
        self.round_idle = 0


@dataclass(frozen=True, slots=True)
class ReactorStatistics:
    """Totals for one reactor. Times are in ticks (``tick_rate`` per second)."""

    lcore: int
    busy: int
    idle: int
    iterations: int
    events_run: int
    sleeps: int
    slept: int
    wakeups: int
    thread_count: int
    sleeping: bool
    slow_events: int
    event_queue_depth: int
    event_queue_high_water: int
    tick_rate: int


# Plain threading.local (see spdkpy.thread._lib._current for why not a subclass).
_current: Final = threading.local()


def current_reactor() -> Reactor | None:
    """The reactor running on this OS thread, or ``None``."""
    reactor: Reactor | None = getattr(_current, "reactor", None)
    return reactor


_libc_prctl: Callable[..., int] | None = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    _libc_prctl = _libc.prctl
except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
    _libc_prctl = None


def _set_os_thread_name(name: str) -> None:
    """Name the OS thread (``top -H``, ``/proc/<pid>/task/*/comm``), as SPDK names its reactors."""
    if _libc_prctl is not None:
        _libc_prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


@final
class Reactor:
    """The loop of one core. Created by :func:`reactors_init`; never constructed by users."""

    __slots__ = (
        "_ctx_switches",
        "_fd_handlers",
        "_framework",
        "_next_ctx_check",
        "_poller_fds",
        "busy_tsc",
        "event_cache",
        "event_cache_size",
        "events",
        "events_run",
        "idle_tsc",
        "interrupt_mode",
        "iterations",
        "lcore",
        "migrations_out",
        "next_round_tsc",
        "polling",
        "round_busy",
        "round_idle",
        "running_event",
        "sleeping",
        "sleeps",
        "slept_tsc",
        "slow_events",
        "threads",
        "tsc_last",
        "waker",
    )

    def __init__(self, framework: ReactorFramework, lcore: int, event_cache_size: int) -> None:
        self._framework = framework
        self.lcore = lcore
        self.threads: list[LwThread] = []
        self.events: Ring[Event] = Ring(EVENT_RING_SIZE, RingType.MP_SC, name=f"reactor_{lcore}")
        self.event_cache: list[Event] = []
        self.event_cache_size = event_cache_size
        self.waker = Waker()
        self._fd_handlers: dict[int, Callable[[int], object]] = {}
        self.busy_tsc = 0
        self.idle_tsc = 0
        self.tsc_last = 0
        self.iterations = 0
        self.events_run = 0
        self.sleeps = 0
        self.slept_tsc = 0
        self.sleeping = False
        # For the slow-work watchdog: the event running now, and the thread being polled.
        self.running_event: object = None
        self.polling: Thread | None = None
        self.slow_events = 0
        self._poller_fds: dict[Poller, int] = {}
        self._next_ctx_check = 0
        self._ctx_switches = (0, 0)
        # Scheduling (SPEC §3.5-3.6): when the next round is due (only ever set on the scheduling
        # reactor), the core's totals at the last round, the threads rounds sent away, and the
        # mode: in interrupt mode an idle reactor sleeps at once, never spins.
        self.next_round_tsc = NEVER
        self.round_busy = 0
        self.round_idle = 0
        self.migrations_out = 0
        self.interrupt_mode = framework.interrupt_mode

    @property
    def thread_count(self) -> int:
        return len(self.threads)

    def add_wake_fd(self, fd: int, on_ready: Callable[[int], object]) -> None:
        """Also wake this reactor when ``fd`` is readable; ``on_ready(fd)`` runs on it then."""
        self._fd_handlers[fd] = on_ready
        self.waker.add_fd(fd)

    def remove_wake_fd(self, fd: int) -> None:
        if self._fd_handlers.pop(fd, None) is not None:
            self.waker.remove_fd(fd)

    # ------------------------------------------------------------------ one iteration

    def run_once(self) -> bool:
        """One iteration: an event batch, then a poll of every thread. ``True`` if it did work."""
        clock_now = self._framework.clock.now
        worked = False

        # ---- events: at most 8, FIFO, with no current SPDK thread. Events posted by these
        # events wait for the next iteration, so self-posting events cannot starve the threads.
        ring = self.events
        q = ring.queue
        if q:
            n = len(q)
            if n > ring.high_water:
                ring.high_water = n
            if n > EVENT_BATCH_SIZE:
                n = EVENT_BATCH_SIZE
            ring.dequeued += n
            cache = self.event_cache
            cache_size = self.event_cache_size
            pool = self._framework.event_pool
            self.events_run += n
            for i in range(n):
                try:
                    event = q.popleft()
                except IndexError:
                    # A producer took back an entry that overshot the capacity after our len()
                    # (Ring.withdraw): fewer entries than counted. Free-threaded builds hit it.
                    self.events_run -= n - i
                    ring.dequeued -= n - i
                    break
                fn = event.fn
                args = event.args
                event.fn = None
                event.args = ()
                if len(cache) < cache_size:
                    cache.append(event)
                else:
                    pool.put(event)
                self.running_event = fn
                fn(*args)  # type: ignore[misc]
            self.running_event = None
            worked = True

        # ---- threads, in list order; each interval since the previous end is charged by rc.
        threads = self.threads
        if not threads:
            now = clock_now()
            self.idle_tsc += now - self.tsc_last
            self.tsc_last = now
        else:
            tsc_last = self.tsc_last
            leaving: list[LwThread] | None = None
            for lw in threads:
                thread = lw.thread
                self.polling = thread
                rc = thread.poll(0, tsc_last)
                end = thread.tsc_last
                if rc == 0:
                    self.idle_tsc += end - tsc_last
                elif rc > 0:
                    self.busy_tsc += end - tsc_last
                    worked = True
                tsc_last = end
                if lw.resched or thread.state is _EXITED_THREAD:
                    if leaving is None:
                        leaving = []
                    leaving.append(lw)
            self.tsc_last = tsc_last
            if leaving is not None:
                for lw in leaving:
                    self._post_process(lw)
        self.iterations += 1
        return worked

    def _post_process(self, lw: LwThread) -> None:
        thread = lw.thread
        if thread.state is _EXITED_THREAD:
            if thread.is_idle() and thread.try_destroy():
                self._unlink(lw)
            return
        if lw.resched and not thread.bound:
            lw.resched = False
            self._unlink(lw)
            self._framework.schedule_thread(lw)

    def adopt(self, lw: LwThread) -> None:
        """Append ``lw`` to this reactor (runs as an event on this reactor)."""
        thread = lw.thread
        if lw.initial_lcore is None:
            lw.initial_lcore = self.lcore
        lw.lcore = self.lcore
        self.threads.append(lw)
        thread.waker = self.waker

    def _unlink(self, lw: LwThread) -> None:
        self.threads.remove(lw)
        lw.thread.waker = None

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        """Run until the framework leaves RUNNING, then exit and destroy this reactor's threads."""
        framework = self._framework
        _current.reactor = self
        _current.event_cache = self.event_cache  # event_allocate's, read once per event
        _set_os_thread_name(f"reactor_{self.lcore}")
        notice(log, "Reactor started on core %d", self.lcore)
        self.tsc_last = framework.clock.now()
        self._next_ctx_check = self.tsc_last + CONTEXT_SWITCH_CHECK_TICKS
        busy_poll = framework.busy_poll
        gil = framework.gil_at_start
        spin_ticks = framework.idle_spin_ticks
        yield_os_thread = os.sched_yield
        last_work = self.tsc_last
        # Free-threaded CPython reads an attribute holding an object that another OS thread owns
        # without atomics only while some other thread also holds a reference to that object;
        # otherwise it takes the lock of the object holding the attribute. Sending an event reads
        # the target reactor's ring, queue and waker, which the target keeps writing next to, so
        # this reactor holds references to them for as long as it runs.
        peers = [
            (peer, peer.events, peer.events.queue, peer.waker)
            for peer in framework.reactors
            if peer is not None
        ]
        try:
            while framework.state is framework.RUNNING_STATE:
                if self.run_once():
                    last_work = self.tsc_last
                elif self.interrupt_mode:
                    self._sleep_if_idle()
                elif busy_poll:
                    # Spinning, as SPDK does; but on a GIL build an idle spinner would hold the
                    # interpreter lock for a whole switch interval (5 ms) while its peers wait.
                    if gil:
                        yield_os_thread()
                        self._charge_idle()
                else:
                    # Spin-then-sleep: for a short while after the last work, yield the CPU (and
                    # on GIL builds the interpreter lock) instead of sleeping, so a peer reactor
                    # answering us right away costs no eventfd write and no epoll wake-up.
                    if self.tsc_last - last_work < spin_ticks:
                        yield_os_thread()
                        self._charge_idle()
                    else:
                        self._sleep_if_idle()
                if self.tsc_last >= self.next_round_tsc:
                    framework.scheduling.round_due(self)
                if self.tsc_last >= self._next_ctx_check:
                    self._check_context_switches()
            self._exit_threads()
        finally:
            peers.clear()
            _current.reactor = None
            del _current.event_cache

    def _sleep_if_idle(self) -> None:
        waker = self.waker
        waker.arm()
        # Re-check after arming: a sender that enqueued before seeing ``armed`` is seen here.
        if self.events.queue or any(lw.thread.has_pending_work() for lw in self.threads):
            waker.disarm()
            return
        framework = self._framework
        now = framework.clock.now()
        timeout_s = -1.0
        deadline: int | None = None if self.next_round_tsc == NEVER else self.next_round_tsc
        wake_fds: dict[Poller, int] = {}
        for lw in self.threads:
            thread = lw.thread
            expiration = thread.next_poller_expiration()
            if thread.state is ThreadState.EXITING:
                expiration = (
                    thread.exit_deadline
                    if expiration is None
                    else min(expiration, thread.exit_deadline)
                )
            if expiration is not None and (deadline is None or expiration < deadline):
                deadline = expiration
            for poller in thread.active_pollers:
                fd = poller.wake_fd
                if fd is None:
                    timeout_s = IDLE_ACTIVE_POLLER_CAP_S  # no fd says when it has work
                elif poller.state is not _UNREGISTERED:
                    wake_fds[poller] = fd
        if deadline is not None:
            remaining = deadline - now
            if remaining < MIN_SLEEP_TICKS:
                waker.disarm()
                return
            seconds = remaining / framework.clock.ticks_per_second
            if timeout_s < 0 or seconds < timeout_s:
                timeout_s = seconds
        if framework.state is not framework.RUNNING_STATE:
            waker.disarm()
            return
        # A poller's fd that cannot be slept on (a regular file, say) is polled regularly.
        unwatchable = wake_fds != self._poller_fds and not self._watch_poller_fds(wake_fds)
        if unwatchable and (timeout_s < 0 or timeout_s > IDLE_ACTIVE_POLLER_CAP_S):
            timeout_s = IDLE_ACTIVE_POLLER_CAP_S
        self.sleeping = True
        self.sleeps += 1
        ready = waker.sleep(timeout_s)
        self.sleeping = False
        awake = framework.awake
        if not awake.is_set():
            awake.set()  # the slow-work watchdog waits for this while every reactor sleeps
        after = framework.clock.now()
        self.slept_tsc += after - now
        # Asleep is idle. The next poll starts now, so no thread is charged for our sleep.
        self.idle_tsc += after - self.tsc_last
        self.tsc_last = after
        for fd in ready:
            handler = self._fd_handlers.get(fd)
            if handler is not None:
                handler(fd)

    def _watch_poller_fds(self, fds: dict[Poller, int]) -> bool:
        # The wake fds this reactor sleeps on follow its threads' live active pollers, recomputed
        # only when it is about to sleep. Keyed by poller, not fd number: a closed fd leaves the
        # epoll set by itself and its number may come back as another file, which must then be
        # registered anew (FileExistsError means the number still names a watched open file).
        old = self._poller_fds
        complete = True
        still_used = set(fds.values())
        for fd in set(old.values()) - still_used:
            with contextlib.suppress(OSError, ValueError):
                self.waker.remove_fd(fd)  # may be closed (and gone) already
        watched: dict[Poller, int] = {}
        for poller, fd in fds.items():
            if old.get(poller) == fd:
                watched[poller] = fd
                continue
            try:
                self.waker.add_fd(fd)
            except FileExistsError:
                pass  # another poller shares this fd
            except (OSError, ValueError) as exc:
                # epoll refuses regular files, for one. From now on this poller is run every
                # 10 ms while the reactor sleeps, like any active poller without a wake fd.
                log.info("poller %s: cannot sleep on fd %d (%s)", poller.name, fd, exc)
                poller.wake_fd = None
                complete = False
                continue
            watched[poller] = fd
        self._poller_fds = watched
        return complete

    def _charge_idle(self) -> None:
        # Time given away (yielding the CPU or the GIL) is idle, and not the next poll's.
        now = self._framework.clock.now()
        self.idle_tsc += now - self.tsc_last
        self.tsc_last = now

    def _check_context_switches(self) -> None:
        self._next_ctx_check = self.tsc_last + CONTEXT_SWITCH_CHECK_TICKS
        if not log.isEnabledFor(logging.INFO):
            return
        usage = resource.getrusage(resource.RUSAGE_THREAD)
        counts = (usage.ru_nvcsw, usage.ru_nivcsw)
        if counts != self._ctx_switches and self._ctx_switches != (0, 0):
            log.info(
                "detected %d voluntary context switches and %d involuntary context switches "
                "on reactor %d",
                counts[0] - self._ctx_switches[0],
                counts[1] - self._ctx_switches[1],
                self.lcore,
            )
        self._ctx_switches = counts

    def _exit_threads(self) -> None:
        """SPDK's exit path: exit what is still running, then poll until every thread is gone."""
        framework = self._framework
        for lw in list(self.threads):
            thread = lw.thread
            if thread.state is _RUNNING_THREAD:
                if not thread.is_app_thread:
                    log.error("spdk_thread_exit() was not called on thread '%s'", thread.name)
                _exit_as(thread)
        while self.threads:
            # Events still arrive (a peer may place or message a thread here while it stops).
            self.run_once()
            for lw in list(self.threads):
                thread = lw.thread
                if thread.state is _EXITED_THREAD and thread.is_idle() and thread.try_destroy():
                    self._unlink(lw)
                elif thread.state is _RUNNING_THREAD:
                    _exit_as(thread)  # arrived here after the exit walk
            if self.threads and not framework.busy_poll:
                self._sleep_if_idle_during_exit()

    def _sleep_if_idle_during_exit(self) -> None:
        # Threads held by timed pollers or outstanding channels still need their exit deadline
        # checked, so never sleep past it.
        self.waker.arm()
        if self.events.queue or any(lw.thread.has_pending_work() for lw in self.threads):
            self.waker.disarm()
            return
        self.waker.sleep(0.005)

    def statistics(self) -> ReactorStatistics:
        ring = self.events
        return ReactorStatistics(
            lcore=self.lcore,
            busy=self.busy_tsc,
            idle=self.idle_tsc,
            iterations=self.iterations,
            events_run=self.events_run,
            sleeps=self.sleeps,
            slept=self.slept_tsc,
            wakeups=self.waker.wakeups,
            thread_count=len(self.threads),
            sleeping=self.sleeping,
            slow_events=self.slow_events,
            event_queue_depth=len(ring),
            event_queue_high_water=ring.high_water,
            tick_rate=self._framework.clock.ticks_per_second,
        )

    def close(self) -> None:
        self.waker.close()

    def __repr__(self) -> str:
        return f"<Reactor {self.lcore} threads={len(self.threads)}>"


def _exit_as(thread: Thread) -> None:
    """Call ``thread.exit()`` with ``thread`` current, as the reactor's exit path does."""
    from spdkpy.thread import get_thread, set_thread

    prev = get_thread()
    set_thread(thread)
    try:
        thread.exit()
    finally:
        set_thread(prev)
