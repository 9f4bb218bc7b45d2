"""Lightweight threads (``spdk_thread``): a message ring, pollers and io_channels, polled by one OS
thread at a time.

Theory of operation
-------------------
* Only the OS thread currently polling a thread touches its pollers, channels and statistics; any
  OS thread may send it messages. Messages go through one bounded MP_SC ring per thread, so the
  messages of one sender arrive in send order and none overtakes another.
* :meth:`Thread.poll` is one pure step (SPDK's ``spdk_thread_poll``), in SPDK's exact order:
  the critical message, a batch of at most 8 messages, the active pollers from tail to head, then
  the due timed pollers earliest first. Work that becomes ready during a poll (a message sent to
  self, a poller registered by a poller) waits for the next poll, so no poll can starve the others.
* Where SPDK aborts (full ring, empty pool, sending to an exited thread) spdkpy raises at the call
  site and offers a ``try_`` form that returns ``False`` (deviation 1). Nothing is dropped.
* The thread does not know who polls it. The framework that hosts it sets :attr:`Thread.waker`
  so senders can wake a sleeping host; in a harness it stays ``None``.
"""

from __future__ import annotations

import enum
import heapq
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, TypeVarTuple, Unpack, final

from spdkpy.env import CpuSet, Ring, RingType, Waker, us_to_ticks
from spdkpy.errors import (
    InputError,
    InvalidStateError,
    NotSupportedError,
    PoolExhaustedError,
    QueueFullError,
    ResourceError,
    ThreadExitedError,
    WrongThreadError,
)
from spdkpy.thread._lib import (
    MAX_NAME_LEN,
    MSG_BATCH_SIZE,
    MSG_CACHE_SIZE,
    THREAD_EXIT_TIMEOUT_S,
    Message,
    ThreadLibrary,
    ThreadOp,
    _current,
    current_library,
    get_thread,
)
from spdkpy.thread._poller import (
    PAUSED,
    PAUSING,
    RUNNING,
    UNREGISTERED,
    WAITING,
    Poller,
    PollerStatistics,
)

if TYPE_CHECKING:
    from spdkpy.thread._io_channel import IoChannel

__all__ = ["Thread", "ThreadState", "ThreadStatistics"]

log = logging.getLogger("spdkpy.thread")

Ts = TypeVarTuple("Ts")

MSG_RING_SIZE: Final = 65536
MAX_POST_POLLER_HANDLERS: Final = 4
_MAX_THREAD_ID: Final = 2**64 - 1
_MAX_POLLER_ID: Final = 2**64 - 1


class ThreadState(enum.Enum):
    """RUNNING → EXITING → EXITED; only an EXITED thread may be destroyed."""

    RUNNING = "running"
    EXITING = "exiting"
    EXITED = "exited"


_RUNNING: Final = ThreadState.RUNNING
_EXITING: Final = ThreadState.EXITING
_EXITED: Final = ThreadState.EXITED


@dataclass(frozen=True, slots=True)
class ThreadStatistics:
    """Totals for one thread since it was created. Times are in ticks (``tick_rate`` per second)."""

    id: int
    name: str
    state: str
    busy: int
    idle: int
    messages_run: int
    critical_messages_run: int
    active_poller_runs: int
    timed_poller_runs: int
    messages_refused: int
    slow_work: int
    queue_depth: int
    queue_high_water: int
    active_pollers: int
    timed_pollers: int
    paused_pollers: int
    io_channels: int
    tick_rate: int


@final
class Thread:
    """A lightweight thread (``spdk_thread``).

    Creating one calls the framework's thread-op hook (installed by :func:`thread_lib_init`), which
    places it on a reactor; without a hook the caller polls it with :meth:`poll`. ``cpumask``
    ``None`` means every core. Messages sent before it reaches its reactor wait in its ring.
    """

    __slots__ = (
        "__weakref__",
        "_crit_lock",
        "_critical",
        "_in_post_handlers",
        "_lib",
        "_msg_cache",
        "_next_poller_id",
        "_post_handlers",
        "_refused_lock",
        "_ring",
        "_timed_seq",
        "active_poller_runs",
        "active_pollers",
        "bound",
        "busy_tsc",
        "cpumask",
        "critical_messages_run",
        "exit_deadline",
        "for_each_count",
        "id",
        "idle_tsc",
        "io_channels",
        "messages_refused",
        "messages_run",
        "name",
        "paused_pollers",
        "pending_unregister_count",
        "running",
        "scheduler_context",
        "slow_work",
        "state",
        "timed_poller_runs",
        "timed_pollers",
        "tsc_last",
        "waker",
    )

    def __init__(self, name: str | None = None, cpumask: CpuSet | None = None) -> None:
        lib = current_library()
        self._lib = lib
        if name is not None and len(name) > MAX_NAME_LEN:
            raise InputError(f"thread name longer than {MAX_NAME_LEN} characters")
        self.name = name if name is not None else f"{id(self):#x}"
        self.cpumask = cpumask if cpumask is not None else CpuSet.all()
        self.state = _RUNNING
        self._ring: Ring[Message] = Ring(MSG_RING_SIZE, RingType.MP_SC, name=f"thread:{self.name}")
        # Pre-filled like SPDK's per-thread cache; skipped when the pool cannot supply it.
        self._msg_cache: list[Message] = lib.msg_pool.get_bulk(MSG_CACHE_SIZE) or []
        self._critical: Callable[[], object] | None = None
        self._crit_lock = threading.Lock()
        self._refused_lock = threading.Lock()  # refusals come from any OS thread; count exactly
        self.active_pollers: list[Poller] = []
        # Heap of (next_run, sequence, poller): the sequence keeps equal deadlines FIFO.
        self.timed_pollers: list[tuple[int, int, Poller]] = []
        self.paused_pollers: list[Poller] = []
        self._post_handlers: list[Callable[[], object]] = []
        self._in_post_handlers = False
        self._next_poller_id = 1
        self._timed_seq = 0
        self.io_channels: dict[int, IoChannel[object]] = {}
        self.busy_tsc = 0
        self.idle_tsc = 0
        self.tsc_last = lib.clock.now()
        self.messages_run = 0
        self.critical_messages_run = 0
        self.active_poller_runs = 0
        self.timed_poller_runs = 0
        self.messages_refused = 0
        self.for_each_count = 0
        self.pending_unregister_count = 0
        self.exit_deadline = 0
        self.bound = False
        # What runs right now (a message's function or a Poller), for the slow-work watchdog.
        self.running: object = None
        self.slow_work = 0
        self.waker: Waker | None = None
        self.scheduler_context: object = None
        with lib.lock:
            if lib.next_thread_id > _MAX_THREAD_ID:
                self._release_cache()
                raise ResourceError("thread ids are exhausted")
            self.id = lib.next_thread_id
            lib.next_thread_id += 1
            lib.threads.append(self)
        if lib.op_fn is not None:
            try:
                lib.op_fn(self, ThreadOp.NEW)
            except BaseException:
                with lib.lock:
                    lib.threads.remove(self)
                self._release_cache()
                raise
        with lib.lock:
            if lib.app_thread is None:
                lib.app_thread = self

    # ---------------------------------------------------------------- messages (any OS thread)

    def try_send_msg(self, fn: Callable[[Unpack[Ts]], object], *args: *Ts) -> bool:
        """Queue ``fn(*args)`` to run on this thread; ``False`` if it cannot be queued.

        Callable from any OS thread. ``fn`` never runs before this returns, not even when the
        caller is this thread. Refusals (full ring, empty pool, exited thread) are counted.
        """
        if self.state is _EXITED:
            self._count_refused()
            return False
        try:
            sender = _current.thread
        except AttributeError:
            sender = None
        if sender is not None and sender._msg_cache:
            msg = sender._msg_cache.pop()
        else:
            got = self._lib.msg_pool.get()
            if got is None:
                self._count_refused()
                return False
            msg = got
        msg.fn = fn
        msg.args = args
        if not self._ring.try_enqueue(msg):
            msg.fn = None
            msg.args = ()
            self._lib.msg_pool.put(msg)
            self._count_refused()
            return False
        waker = self.waker
        if waker is not None and waker.armed:
            waker.notify()
        return True

    def _count_refused(self) -> None:
        # Cold path. ``+=`` on an attribute is not atomic across OS threads: lock it.
        with self._refused_lock:
            self.messages_refused += 1

    def send_msg(self, fn: Callable[[Unpack[Ts]], object], *args: *Ts) -> None:
        """Queue ``fn(*args)`` to run on this thread, later, in send order.

        Raises :class:`ThreadExitedError`, :class:`QueueFullError` or
        :class:`PoolExhaustedError` where SPDK would abort; nothing is queued then.
        """
        if self.try_send_msg(fn, *args):
            return
        if self.state is _EXITED:
            raise ThreadExitedError(f"thread {self.name} is marked as exited")
        if self._ring.count() >= self._ring.capacity:
            raise QueueFullError(f"message ring of thread {self.name} is full ({MSG_RING_SIZE})")
        raise PoolExhaustedError(f"message could not be allocated for thread {self.name}")

    def try_send_critical_msg(self, fn: Callable[[], object]) -> bool:
        """Run ``fn()`` first thing in the next poll; allocates nothing (safe in signal handlers).

        Only one may be pending: while one is, this returns ``False`` (a counted refusal).
        """
        with self._crit_lock:
            if self._critical is not None:
                self._count_refused()
                return False
            self._critical = fn
        waker = self.waker
        if waker is not None:
            waker.notify()
        return True

    def send_critical_msg(self, fn: Callable[[], object]) -> None:
        """:meth:`try_send_critical_msg`, raising :class:`QueueFullError` where SPDK aborts."""
        if not self.try_send_critical_msg(fn):
            raise QueueFullError(f"thread {self.name} already has a critical message pending")

    def exec_msg(self, fn: Callable[[Unpack[Ts]], object], *args: *Ts) -> None:
        """Run ``fn(*args)`` now if this thread is current, else send it as a message."""
        if get_thread() is self:
            fn(*args)
        else:
            self.send_msg(fn, *args)

    # ---------------------------------------------------------------- polling (owner OS thread)

    def poll(self, max_msgs: int = 0, now: int = 0) -> int:
        """Run one poll of this thread on the calling OS thread (``spdk_thread_poll``).

        Returns > 0 if any work was done, 0 if idle. ``now`` (ticks) defaults to the clock; the
        elapsed time is charged to busy or idle by the return value. Exceptions raised by messages
        or pollers propagate to the caller, with the previous current thread restored.
        """
        clock_now = self._lib.clock.now
        if not now:
            now = clock_now()
        # Fast path for the common idle poll: nothing queued, no active poller, no timed poller
        # due. Same result and accounting as the full poll, without making the thread current.
        if (
            not self._ring.queue
            and self._critical is None
            and not self.active_pollers
            and self.state is _RUNNING
        ):
            timed = self.timed_pollers
            if not timed or timed[0][0] > now:
                end = clock_now()
                self.idle_tsc += end - now
                self.tsc_last = end
                return 0
        try:
            prev = _current.thread
        except AttributeError:
            prev = None
        _current.thread = self
        try:
            rc = self._poll(max_msgs, now)
            if self.state is _EXITING:
                self._exit_check(now)
        finally:
            _current.thread = prev
        end = clock_now()
        if rc == 0:
            self.idle_tsc += end - now
        elif rc > 0:
            self.busy_tsc += end - now
        self.tsc_last = end
        return rc

    def _poll(self, max_msgs: int, now: int) -> int:
        # ---- phase 1: the critical message (signal handlers' path: it allocates nothing)
        rc = 0
        critical = self._critical
        if critical is not None:
            self._critical = None
            self.critical_messages_run += 1
            critical()
            rc = 1

        # ---- phase 2: a message batch. Only what is queued now runs; messages sent by these
        # messages wait for the next poll, so a message loop cannot starve the pollers.
        ring = self._ring
        q = ring.queue
        if q:
            n = len(q)
            if n > ring.high_water:
                ring.high_water = n  # the peak (may include entries about to be withdrawn)
            limit = max_msgs if 0 < max_msgs < MSG_BATCH_SIZE else MSG_BATCH_SIZE
            if n > limit:
                n = limit
            cache = self._msg_cache
            pool = self._lib.msg_pool
            self.messages_run += n
            ring.dequeued += n
            for i in range(n):
                try:
                    msg = q.popleft()
                except IndexError:
                    # A producer took back an entry that overshot the capacity after our len()
                    # (Ring.withdraw): fewer entries than counted. Free-threaded builds hit it.
                    self.messages_run -= n - i
                    ring.dequeued -= n - i
                    break
                fn = msg.fn
                args = msg.args
                msg.fn = None
                msg.args = ()
                # The message object goes to the *executing* thread's cache, as in SPDK.
                if len(cache) < MSG_CACHE_SIZE:
                    cache.append(msg)
                else:
                    pool.put(msg)
                self.running = fn
                fn(*args)  # type: ignore[misc]
            rc = 1

        # ---- phase 3: active pollers, tail to head, so the newest run first. Pollers
        # registered during the walk sit behind it and first run in the next poll.
        active = self.active_pollers
        if active:
            i = len(active) - 1
            while i >= 0:
                poller = active[i]
                state = poller.state
                if state is WAITING:
                    poller.state = RUNNING
                    self.running = poller
                    r = poller.fn(*poller.args)
                    poller.run_count += 1
                    self.active_poller_runs += 1
                    try:
                        if r > 0:
                            poller.busy_count += 1
                            if r > rc:
                                rc = r
                    except TypeError:
                        raise _bad_poller_result(poller, r) from None
                    state = poller.state
                    if state is RUNNING:
                        poller.state = WAITING
                    elif state is UNREGISTERED:
                        del active[i]
                    elif state is PAUSING:
                        del active[i]
                        poller.state = PAUSED
                        self.paused_pollers.append(poller)
                    if self._post_handlers:
                        self._run_post_handlers()
                elif state is UNREGISTERED:
                    del active[i]
                elif state is PAUSING:
                    del active[i]
                    poller.state = PAUSED
                    self.paused_pollers.append(poller)
                i -= 1

        # ---- phase 4: due timed pollers, earliest first; equal deadlines run FIFO. A late poller
        # runs once and is rescheduled from the start of this poll (no catch-up).
        timed = self.timed_pollers
        while timed and timed[0][0] <= now:
            poller = heapq.heappop(timed)[2]
            state = poller.state
            if state is UNREGISTERED:
                continue
            if state is PAUSING:
                poller.state = PAUSED
                self.paused_pollers.append(poller)
                continue
            poller.state = RUNNING
            self.running = poller
            r = poller.fn(*poller.args)
            poller.run_count += 1
            self.timed_poller_runs += 1
            try:
                if r > 0:
                    poller.busy_count += 1
                    if r > rc:
                        rc = r
            except TypeError:
                raise _bad_poller_result(poller, r) from None
            state = poller.state
            if state is RUNNING:
                poller.state = WAITING
                self._schedule_timed(poller, now + poller.period_ticks)
            elif state is PAUSING:
                poller.state = PAUSED
                self.paused_pollers.append(poller)
        self.running = None
        return rc

    def _run_post_handlers(self) -> None:
        handlers = self._post_handlers
        self._post_handlers = []
        self._in_post_handlers = True
        try:
            for handler in handlers:
                handler()
        finally:
            self._in_post_handlers = False

    # ---------------------------------------------------------------- pollers

    def register_poller(
        self,
        fn: Callable[[Unpack[Ts]], int],
        *args: *Ts,
        period_us: int = 0,
        name: str | None = None,
        wake_fd: int | None = None,
    ) -> Poller:
        """Register ``fn(*args)`` to run on every poll (``period_us == 0``) or every period.

        Must be called on this thread (it is current). ``fn`` returns :data:`POLLER_BUSY` or
        :data:`POLLER_IDLE` (negative values count as neither). Raises
        :class:`ThreadExitedError` once the thread has exited.

        ``wake_fd`` (active pollers only): an fd that is readable whenever ``fn`` has work, such
        as a socket group's epoll fd. The hosting reactor then sleeps on that fd when the poller
        reports idle, instead of waking regularly to run it (deviation 3: "an fd poller by its
        fd"). The fd must stay open until the poller is unregistered.
        """
        self._check_owner("register a poller")
        if self.state is _EXITED:
            raise ThreadExitedError(f"thread {self.name} has exited; cannot register a poller")
        if period_us < 0:
            raise InputError(f"poller period must be >= 0 us, got {period_us}")
        if wake_fd is not None and period_us:
            raise InputError("wake_fd is for active pollers (period_us == 0)")
        if self._next_poller_id > _MAX_POLLER_ID:
            log.warning("poller ID of thread %s overflowed; restarting at 1", self.name)
            self._next_poller_id = 1
        poller_name = name if name is not None else getattr(fn, "__qualname__", repr(fn))
        if len(poller_name) > MAX_NAME_LEN:
            poller_name = poller_name[:MAX_NAME_LEN]
        poller = Poller(
            self,
            self._next_poller_id,
            fn,
            args,
            us_to_ticks(period_us, self._lib.clock.ticks_per_second),
            poller_name,
        )
        poller.wake_fd = wake_fd
        self._next_poller_id += 1
        if poller.period_ticks:
            self._schedule_timed(poller, self._lib.clock.now() + poller.period_ticks)
        else:
            self.active_pollers.append(poller)
        return poller

    def _schedule_timed(self, poller: Poller, next_run: int) -> None:
        self._timed_seq += 1
        poller.next_run = next_run
        heapq.heappush(self.timed_pollers, (next_run, self._timed_seq, poller))

    def _resume_poller(self, poller: Poller) -> None:
        self._check_owner("resume a poller")
        if poller.state is PAUSED:
            self.paused_pollers.remove(poller)
            poller.state = WAITING
            if poller.period_ticks:
                self._schedule_timed(poller, self._lib.clock.now() + poller.period_ticks)
            else:
                self.active_pollers.append(poller)
        elif poller.state is PAUSING:
            poller.state = WAITING

    def _unregister_poller(self, poller: Poller) -> None:
        self._check_owner("unregister a poller")
        if poller.state is UNREGISTERED:
            return
        if poller.state is PAUSED:
            # Back on the active list, so the poll loop reaches it and releases it.
            self.paused_pollers.remove(poller)
            poller.period_ticks = 0
            self.active_pollers.append(poller)
        poller.state = UNREGISTERED

    def register_post_poller_handler(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` once, right after the active poller now running returns (at most 4)."""
        self._check_owner("register a post-poller handler")
        if self._in_post_handlers:
            raise InvalidStateError("cannot register a post-poller handler from inside one")
        if len(self._post_handlers) >= MAX_POST_POLLER_HANDLERS:
            raise QueueFullError(
                f"thread {self.name} already has {MAX_POST_POLLER_HANDLERS} post-poller handlers"
            )
        self._post_handlers.append(fn)

    def pollers(self) -> list[Poller]:
        """Every live poller: active, then timed (by deadline), then paused."""
        timed = [entry[2] for entry in sorted(self.timed_pollers)]
        everything = [*reversed(self.active_pollers), *timed, *self.paused_pollers]
        return [p for p in everything if p.state is not UNREGISTERED]

    def next_poller_expiration(self) -> int | None:
        """The tick at which the earliest timed poller is due, or ``None``."""
        timed = self.timed_pollers
        return timed[0][0] if timed else None

    def has_active_pollers(self) -> bool:
        return any(p.state is not UNREGISTERED for p in self.active_pollers)

    def has_pollers(self) -> bool:
        return bool(self.pollers())

    def has_pending_work(self) -> bool:
        """A message or the critical message waits to run."""
        return bool(self._ring.queue) or self._critical is not None

    def is_idle(self) -> bool:
        """No queued message, no critical message, no live unpaused poller."""
        if self._ring.queue or self._critical is not None:
            return False
        if any(p.state is not UNREGISTERED for p in self.active_pollers):
            return False
        return not any(entry[2].state is not UNREGISTERED for entry in self.timed_pollers)

    # ---------------------------------------------------------------- lifecycle

    def exit(self) -> None:
        """Begin exiting (``spdk_thread_exit``). Call from this thread, in a message or poller.

        The thread stays EXITING, still accepting messages, until its ring is empty and it holds
        no poller, io_channel, for_each walk or pending unregister; after 5 s it is forced to
        EXITED with a report of what held it.
        """
        self._check_owner("exit a thread")
        if self.state is not _RUNNING:
            log.info("thread %s is already %s", self.name, self.state.value)
            return
        self.state = _EXITING
        clock = self._lib.clock
        self.exit_deadline = clock.now() + THREAD_EXIT_TIMEOUT_S * clock.ticks_per_second

    def exit_blockers(self) -> list[str]:
        """What keeps this thread from exiting, in words (empty when nothing does)."""
        reasons: list[str] = []
        depth = len(self._ring)
        if depth:
            reasons.append(f"{depth} queued message(s)")
        if self._critical is not None:
            reasons.append("a pending critical message")
        if self.for_each_count:
            reasons.append(f"{self.for_each_count} unfinished for_each walk(s)")
        live = [p.name for p in self.pollers()]
        if live:
            reasons.append("poller(s) still registered: " + ", ".join(live))
        if self.io_channels:
            names = ", ".join(ch.device.name for ch in self.io_channels.values())
            reasons.append("io_channel(s) still held: " + names)
        if self.pending_unregister_count:
            reasons.append(f"{self.pending_unregister_count} io_device unregister(s) pending")
        return reasons

    def _exit_check(self, now: int) -> None:
        if now >= self.exit_deadline:
            log.error(
                "thread %s got timeout, and move it to the exited state forcefully (held by: %s)",
                self.name,
                "; ".join(self.exit_blockers()) or "nothing",
            )
            self.state = _EXITED
            return
        if self._ring.queue or self.for_each_count or self.pending_unregister_count:
            return
        if self.paused_pollers or self.io_channels:
            return
        if any(p.state is not UNREGISTERED for p in self.active_pollers):
            return
        if any(entry[2].state is not UNREGISTERED for entry in self.timed_pollers):
            return
        self.state = _EXITED

    def destroy(self) -> None:
        """Release an EXITED thread (``spdk_thread_destroy``); its host calls this.

        Raises :class:`InvalidStateError` if the thread has not exited or a message is still
        queued (poll it first: an exited thread still runs the messages that reached it).
        """
        if not self.try_destroy():
            raise InvalidStateError(
                f"thread {self.name} is {self.state.value}"
                + (" with messages still queued" if self.state is _EXITED else ", not exited")
            )

    def try_destroy(self) -> bool:
        """:meth:`destroy` if the thread is EXITED with an empty ring; ``False`` otherwise."""
        if self.state is not _EXITED or self._critical is not None:
            return False
        # Closing the ring only when empty means a sender racing with us either got its message
        # in (we refuse, the host polls again) or is refused itself: no message is stranded.
        if not self._ring.close_if_empty():
            return False
        for poller in self.pollers():
            log.error("thread %s still has poller %s at destroy", self.name, poller.name)
        for channel in list(self.io_channels.values()):
            log.error("thread %s still holds io_channel %s", self.name, channel.device.name)
            channel._force_release()
        self.active_pollers.clear()
        self.timed_pollers.clear()
        self.paused_pollers.clear()
        lib = self._lib
        with lib.lock:
            if self in lib.threads:
                lib.threads.remove(self)
        self._release_cache()
        if get_thread() is self:
            _current.thread = None
        return True

    def _release_cache(self) -> None:
        if self._msg_cache:
            self._lib.msg_pool.put_bulk(self._msg_cache)
            self._msg_cache = []

    def set_cpumask(self, cpumask: CpuSet) -> None:
        """Move this thread to a core of ``cpumask`` (``spdk_thread_set_cpumask``).

        Call on this thread. The framework unlinks it from its reactor right after the current
        poll and places it again; its queued messages travel with it. Raises
        :class:`NotSupportedError` when the framework cannot re-place threads (no ``RESCHED``).
        """
        self._check_owner("set the cpumask")
        lib = self._lib
        if lib.op_fn is None or not lib.supports(ThreadOp.RESCHED):
            raise NotSupportedError("this framework cannot move threads (no RESCHED op)")
        if not cpumask:
            raise InputError(f"thread {self.name}: an empty cpumask names no core")
        self.cpumask = cpumask
        lib.op_fn(self, ThreadOp.RESCHED)

    # ---------------------------------------------------------------- misc

    @property
    def library(self) -> ThreadLibrary:
        return self._lib

    @property
    def is_app_thread(self) -> bool:
        return self._lib.app_thread is self

    def is_running(self) -> bool:
        return self.state is _RUNNING

    def is_exited(self) -> bool:
        return self.state is _EXITED

    def queue_depth(self) -> int:
        return len(self._ring)

    def _check_owner(self, what: str) -> None:
        current = get_thread()
        if current is not self:
            raise WrongThreadError(
                f"cannot {what} of thread {self.name} from "
                + (f"thread {current.name}" if current is not None else "a non-SPDK thread")
            )

    def statistics(self) -> ThreadStatistics:
        """A frozen snapshot of this thread's totals."""
        ring = self._ring
        return ThreadStatistics(
            id=self.id,
            name=self.name,
            state=self.state.value,
            busy=self.busy_tsc,
            idle=self.idle_tsc,
            messages_run=self.messages_run,
            critical_messages_run=self.critical_messages_run,
            active_poller_runs=self.active_poller_runs,
            timed_poller_runs=self.timed_poller_runs,
            messages_refused=self.messages_refused,
            slow_work=self.slow_work,
            queue_depth=len(ring),
            queue_high_water=ring.high_water,
            active_pollers=sum(1 for p in self.active_pollers if p.state is not UNREGISTERED),
            timed_pollers=sum(1 for e in self.timed_pollers if e[2].state is not UNREGISTERED),
            paused_pollers=len(self.paused_pollers),
            io_channels=len(self.io_channels),
            tick_rate=self._lib.clock.ticks_per_second,
        )

    def poller_statistics(self) -> list[PollerStatistics]:
        return [p.statistics() for p in self.pollers()]

    def __repr__(self) -> str:
        return f"<Thread {self.name!r} id={getattr(self, 'id', '?')} {self.state.value}>"


def _bad_poller_result(poller: Poller, result: object) -> InputError:
    return InputError(
        f"poller {poller.name} on thread {poller.thread.name} returned {result!r}; "
        "a poller must return POLLER_BUSY (1), POLLER_IDLE (0) or a negative int"
    )
