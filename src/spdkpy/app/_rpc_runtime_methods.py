"""Thread, reactor, scheduler and log methods (SPDK's ``lib/event/app_rpc.c`` and
``lib/log/log_rpc.c``).

Params, result keys, error codes and messages are SPDK's (SPEC §4.5, §7.4); the statistics carry
spdkpy's extra fields *beside* SPDK's (deviation 5). Snapshots are taken where the data lives:
each thread's on that thread (``for_each_thread``), each reactor's on that reactor
(``for_each_reactor``), and the answer goes out from the completion, as in SPDK.

Choices where SPEC is silent:

* ``in_interrupt`` is always ``false``: spdkpy reactors are poll-mode reactors that sleep when idle
  (deviation 3); ``"sleeping"`` tells whether one is asleep right now.
* Only the ``static`` scheduler exists so far. It is chosen once the framework reaches RUNTIME
  (what SPDK's scheduler subsystem does at init) or when ``framework_set_scheduler`` picks it.
  Its ``mappings`` are checked and recorded as the threads' initial cores; no balance moves
  threads yet. Any other name fails as an unknown scheduler does in SPDK (-32603, "Invalid
  argument").
* ``log_set_level`` sets SPDK's syslog level; spdkpy has no syslog, so it is only kept and
  reported. ``log_set_print_level`` is what filters stderr.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from spdkpy._log import (
    clear_log_flag,
    enabled_log_flags,
    get_log_level,
    get_print_level,
    log_level_name,
    parse_log_level,
    set_log_flag,
    set_log_level,
    set_print_level,
)
from spdkpy.app._stats_deltas import DeltaTracker, DeltaWindowError
from spdkpy.env import CpuSet
from spdkpy.errors import InputError, SpdkpyError
from spdkpy.event import LwThread, ReactorFramework, current_reactor
from spdkpy.rpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    RpcError,
    RpcRegistry,
    RpcRequest,
    RpcState,
)
from spdkpy.thread import (
    Poller,
    PollerState,
    Thread,
    ThreadState,
    current_library,
    for_each_thread,
    get_thread,
)

if TYPE_CHECKING:
    from spdkpy.app._app import App

__all__ = ["register_runtime_methods"]

log = logging.getLogger("spdkpy.app")

_BOTH: Final = RpcState.STARTUP | RpcState.RUNTIME
_DECODE_FAILED: Final = "spdk_json_decode_object failed"
_DEFAULT_SCHEDULER_PERIOD_US: Final = 1_000_000
_SCHEDULERS: Final = frozenset({"static"})

# ---------------------------------------------------------------------------- params

_Check = Callable[[object], bool]


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_uint64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64


def _decode(
    params: object, fields: Mapping[str, tuple[_Check, bool]], *, relaxed: bool = False
) -> dict[str, object] | None:
    """``spdk_json_decode_object``: ``fields`` maps a key to (type check, optional). ``None`` when
    ``params`` is not an object, a required key is missing, a value has the wrong type, or (not
    ``relaxed``) a key is unknown. Absent params fail too, as in SPDK.
    """
    if not isinstance(params, dict):
        return None
    out: dict[str, object] = {}
    for key, value in params.items():
        spec = fields.get(key)
        if spec is None:
            if relaxed:
                continue
            return None
        if not spec[0](value):
            return None
        out[key] = value
    if any(not optional and key not in out for key, (_, optional) in fields.items()):
        return None
    return out


def _no_params(request: RpcRequest, message: str) -> bool:
    """SPDK's ``if (params) error``: any params, even ``{}``, answer -32602 ``message``."""
    if request.params is not None:
        request.error(INVALID_PARAMS, message)
        return False
    return True


def _window_or_error(request: RpcRequest, message: str) -> str | Literal[False] | None:
    """SPDK's no-params rule, plus spdkpy's ``{"window": NAME}`` for the delta window.

    Returns the window (``None``: the default), or ``False`` after answering -32602.
    """
    try:
        return DeltaTracker.window_of(request.params)
    except DeltaWindowError:
        request.error(INVALID_PARAMS, message)
        return False


# ---------------------------------------------------------------------------- /proc/stat


def _read_proc_stat() -> dict[int, tuple[int, int, int]]:
    """Per CPU ``(usr, sys, irq)`` in USER_HZ as SPDK's ``parse_proc_stat`` reads them (``irq``
    counts softirq too); empty when ``/proc/stat`` cannot be read."""
    stats: dict[int, tuple[int, int, int]] = {}
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError):
        return stats
    for line in lines:
        parts = line.split()
        if len(parts) < 8 or not parts[0].startswith("cpu") or parts[0] == "cpu":
            continue
        try:
            cpu = int(parts[0][3:])
            user, _nice, system, _idle, _iowait, irq, softirq = (int(v) for v in parts[1:8])
        except ValueError:
            continue
        stats[cpu] = (user, system, irq + softirq)
    return stats


# ---------------------------------------------------------------------------- scheduler


@dataclass(slots=True)
class _SchedulerState:
    """The scheduler framework's state (SPEC §4.1); only ``static`` is implemented."""

    name: str | None = None
    period_us: int = 0
    static_initialised: bool = False
    isolated: CpuSet = field(default_factory=CpuSet)

    def set(self, name: str) -> int:
        """``scheduler_set``: 0, or ``-EINVAL`` for an unknown name (logged as SPDK does)."""
        if name not in _SCHEDULERS:
            log.error("Requested scheduler is missing")
            return -errno.EINVAL
        if name == self.name:
            return 0
        # static's init: the first time the period drops to 0 (placement is final); on a later
        # init a balance runs at once to put every thread back on its initial core.
        self.period_us = 1 if self.static_initialised else 0
        self.static_initialised = True
        self.name = name
        return 0


def _static_set_opts(params: Mapping[str, object], framework: ReactorFramework) -> int:
    """static's ``set_opts``: ``"mappings"`` = ``"tid:core[,tid:core…]"``, all checked first."""
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
        if not sep or thread is None or core not in framework.core_mask:
            return -errno.EINVAL
        if core not in thread.cpumask or not isinstance(thread.scheduler_context, LwThread):
            return -errno.EINVAL
        moves.append((thread.scheduler_context, core))
    for lw, core in moves:
        lw.initial_lcore = core
    return 0


# ---------------------------------------------------------------------------- snapshots


def _cpumask(thread: Thread, app_mask: CpuSet) -> str:
    return (thread.cpumask & app_mask).format()


def _poller_entry(poller: Poller) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": poller.name,
        "id": poller.id,
        "state": poller.state.value,
        "run_count": poller.run_count,
        "busy_count": poller.busy_count,
    }
    if poller.period_ticks:
        entry["period_ticks"] = poller.period_ticks
    return entry


def _live(pollers: list[Poller]) -> list[Poller]:
    seen: set[int] = set()
    out: list[Poller] = []
    for p in pollers:
        if p.state is not PollerState.UNREGISTERED and p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out


def _thread_stats(thread: Thread, app_mask: CpuSet) -> dict[str, object]:
    stats = thread.statistics()
    return {
        "name": thread.name,
        "id": thread.id,
        "cpumask": _cpumask(thread, app_mask),
        "busy": stats.busy,
        "idle": stats.idle,
        "active_pollers_count": stats.active_pollers,
        "timed_pollers_count": stats.timed_pollers,
        "paused_pollers_count": stats.paused_pollers,
        # spdkpy's own (deviation 5)
        "messages_run": stats.messages_run,
        "queue_depth": stats.queue_depth,
        "queue_high_water": stats.queue_high_water,
        "messages_refused": stats.messages_refused,
        "slow_work": stats.slow_work,
    }


def _thread_pollers(thread: Thread, app_mask: CpuSet) -> dict[str, object]:
    # Active pollers head to tail (registration order; they run tail to head), timed pollers by
    # next run (FIFO among equal deadlines), paused pollers in the order they were paused.
    timed = [entry[2] for entry in sorted(thread.timed_pollers, key=lambda e: (e[0], e[1]))]
    return {
        "name": thread.name,
        "id": thread.id,
        "active_pollers": [_poller_entry(p) for p in _live(thread.active_pollers)],
        "timed_pollers": [_poller_entry(p) for p in _live(timed)],
        "paused_pollers": [_poller_entry(p) for p in _live(thread.paused_pollers)],
    }


def _thread_io_channels(thread: Thread, app_mask: CpuSet) -> dict[str, object]:
    return {
        "name": thread.name,
        "io_channels": [
            {"name": ch.device.name, "ref": ch.ref} for ch in list(thread.io_channels.values())
        ],
    }


# ---------------------------------------------------------------------------- registration


def register_runtime_methods(registry: RpcRegistry, app: App) -> None:
    """Register the runtime methods into ``registry`` for ``app``."""
    proc_stat_baseline = _read_proc_stat()
    scheduler = _SchedulerState()

    deltas = DeltaTracker(time.monotonic_ns())

    def framework() -> ReactorFramework:
        fw = app.framework
        if fw is None:
            raise RpcError(INTERNAL_ERROR, "the reactors are not running")
        return fw

    # ------------------------------------------------------------------ reactors

    def framework_get_reactors(request: RpcRequest) -> None:
        window = _window_or_error(request, "`framework_get_reactors` requires no arguments")
        if window is False:
            return
        fw = framework()
        app_mask = app.core_mask
        now = fw.clock.now()
        proc_now = _read_proc_stat()
        # Whether each reactor sleeps is read here, as the request arrives: on the reactor
        # itself, running the walk's event, it is always awake.
        asleep = {r.lcore: r.sleeping for r in fw.reactors if r is not None}
        reactors: list[dict[str, object]] = []
        failures: list[str] = []

        def visit() -> None:
            # Runs as an event on each reactor in turn, with no current SPDK thread: the
            # reactor's thread list is only ever touched on its own OS thread.
            try:
                reactor = current_reactor()
                if reactor is None:
                    raise RuntimeError("not on a reactor")
                stats = reactor.statistics()
                core = reactor.lcore
                usr = sys_ = irq = 0
                if core in proc_now and core in proc_stat_baseline:
                    base = proc_stat_baseline[core]
                    cur = proc_now[core]
                    usr, sys_, irq = (max(0, c - b) for c, b in zip(cur, base, strict=True))
                reactors.append(
                    {
                        "lcore": core,
                        "numa_id": 0,
                        "tid": threading.get_native_id(),
                        "busy": stats.busy,
                        "idle": stats.idle,
                        "in_interrupt": False,
                        "irq": irq,
                        "sys": sys_,
                        "usr": usr,
                        "lw_threads": [
                            {
                                "name": lw.thread.name,
                                "id": lw.thread.id,
                                "cpumask": _cpumask(lw.thread, app_mask),
                                "elapsed": max(0, now - lw.tsc_start),
                            }
                            for lw in list(reactor.threads)
                        ],
                        # spdkpy's own (deviation 5)
                        "sleeping": asleep.get(core, False),
                        "sleeps": stats.sleeps,
                        "events_run": stats.events_run,
                        "slow_events": stats.slow_events,
                        "active_pollers": [
                            {
                                "thread": lw.thread.name,
                                "thread_id": lw.thread.id,
                                "name": poller.name,
                                "id": poller.id,
                                "run_count": poller.run_count,
                                "busy_count": poller.busy_count,
                            }
                            for lw in list(reactor.threads)
                            for poller in _live(list(lw.thread.active_pollers))
                        ],
                    }
                )
            except Exception as exc:  # never let a stats snapshot stop a reactor
                log.error("framework_get_reactors: snapshot failed: %r", exc)
                failures.append(repr(exc))

        def done() -> None:
            if failures:
                request.error(INTERNAL_ERROR, f"framework_get_reactors failed: {failures[0]}")
                return
            result: dict[str, object] = {
                "tick_rate": fw.clock.ticks_per_second,
                "pid": os.getpid(),
                # spdkpy's: False only on a free-threaded build whose lock is off, i.e. when
                # the reactors really run in parallel.
                "gil_enabled": fw.gil_enabled(),
                "reactors": reactors,
            }
            request.result(
                deltas.annotate(request.method, result, fw.clock.now(), window, request.client)
            )

        fw.for_each_reactor(visit, done)

    # ------------------------------------------------------------------ threads

    def thread_walk(
        request: RpcRequest,
        snapshot: Callable[[Thread, CpuSet], dict[str, object]],
        window: str | None,
    ) -> None:
        fw = framework()
        app_mask = app.core_mask
        threads: list[dict[str, object]] = []
        failures: list[str] = []

        def visit() -> None:
            # Runs as a message on each thread in creation order, that thread current.
            try:
                thread = get_thread()
                if thread is None:
                    raise RuntimeError("no current thread")
                threads.append(snapshot(thread, app_mask))
            except Exception as exc:  # never let a stats snapshot stop a reactor
                log.error("%s: snapshot failed: %r", request.method, exc)
                failures.append(repr(exc))

        def done() -> None:
            if failures:
                request.error(INTERNAL_ERROR, f"{request.method} failed: {failures[0]}")
                return
            result: dict[str, object] = {"tick_rate": fw.clock.ticks_per_second, "threads": threads}
            if snapshot is not _thread_io_channels:
                deltas.annotate(request.method, result, fw.clock.now(), window, request.client)
            request.result(result)

        for_each_thread(visit, done)

    def thread_get_stats(request: RpcRequest) -> None:
        window = _window_or_error(request, "'thread_get_stats' requires no arguments")
        if window is not False:
            thread_walk(request, _thread_stats, window)

    def thread_get_pollers(request: RpcRequest) -> None:
        window = _window_or_error(request, "'thread_get_pollers' requires no arguments")
        if window is not False:
            thread_walk(request, _thread_pollers, window)

    def thread_get_io_channels(request: RpcRequest) -> None:
        if _no_params(request, "'thread_get_io_channels' requires no arguments"):
            thread_walk(request, _thread_io_channels, None)

    def thread_set_cpumask(request: RpcRequest) -> None:
        req = _decode(request.params, {"id": (_is_uint64, False), "cpumask": (_is_string, False)})
        if req is None:
            raise RpcError(INVALID_PARAMS, _DECODE_FAILED)
        tid = req["id"]
        text = req["cpumask"]
        assert isinstance(tid, int)
        assert isinstance(text, str)
        target = next(
            (
                t
                for t in current_library().all_threads()
                if t.id == tid and t.state is not ThreadState.EXITED
            ),
            None,
        )
        if target is None:
            raise RpcError(INVALID_PARAMS, f"Thread {tid} does not exist")
        try:
            # spdk_app_parse_core_mask: parse, then keep only the app's cores.
            mask = CpuSet.parse(text) & app.core_mask
        except InputError:
            raise RpcError(INTERNAL_ERROR, f"Invalid cpumask {text}") from None
        if not mask:
            raise RpcError(
                INTERNAL_ERROR, f"No CPU is selected from reactor mask {app.core_mask.format()}"
            )

        def on_target() -> None:
            thread = get_thread()
            try:
                if thread is None:
                    raise InputError("no current thread")
                thread.set_cpumask(mask)
            except SpdkpyError as exc:
                request.error(INTERNAL_ERROR, os.strerror(exc.errno))
                return
            except Exception as exc:  # never let it stop the target's reactor
                log.error("thread_set_cpumask failed: %r", exc)
                request.error(INTERNAL_ERROR, os.strerror(errno.EINVAL))
                return
            request.result(True)

        if not target.try_send_msg(on_target):
            raise RpcError(INVALID_PARAMS, f"Thread {tid} does not exist")

    # ------------------------------------------------------------------ scheduler

    def ensure_default_scheduler() -> None:
        # SPDK's scheduler subsystem picks static at init when nothing has chosen one.
        if scheduler.name is None and registry.state is RpcState.RUNTIME:
            scheduler.set("static")

    def framework_set_scheduler(request: RpcRequest) -> None:
        ensure_default_scheduler()
        fields = {
            "name": (_is_string, False),
            "period": (_is_uint64, True),
        }
        req = _decode(request.params, fields, relaxed=True)
        if req is None:
            raise RpcError(INVALID_PARAMS, "Invalid parameters")
        params = request.params
        assert isinstance(params, dict)
        name = req["name"]
        period = req.get("period", 0)
        assert isinstance(name, str)
        assert isinstance(period, int)
        if period:
            scheduler.period_us = period
        elif scheduler.period_us == 0:
            scheduler.period_us = _DEFAULT_SCHEDULER_PERIOD_US
        rc = scheduler.set(name)
        if rc:
            raise RpcError(INTERNAL_ERROR, os.strerror(-rc))
        # static has set_opts, and it gets the whole params object.
        rc = _static_set_opts(params, framework())
        if rc:
            raise RpcError(INTERNAL_ERROR, os.strerror(-rc))
        if params.get("mappings") is not None:
            scheduler.period_us = 1  # the new mapping takes effect at the next round
        request.result(True)

    def framework_get_scheduler(request: RpcRequest) -> None:
        if not _no_params(request, "'rpc_get_scheduler' requires no arguments"):
            return
        ensure_default_scheduler()
        fw = app.framework
        result: dict[str, object] = {}
        if scheduler.name is not None:
            result["scheduler_name"] = scheduler.name
        result["scheduler_period"] = scheduler.period_us
        result["isolated_core_mask"] = scheduler.isolated.format()
        result["scheduling_core"] = fw.scheduling_core if fw is not None else app.main_core
        request.result(result)

    # ------------------------------------------------------------------ log

    def flag_method(change: Callable[[str], list[str]]) -> Callable[[RpcRequest], None]:
        def handler(request: RpcRequest) -> None:
            req = _decode(request.params, {"flag": (_is_string, False)})
            if req is None:
                raise RpcError(INTERNAL_ERROR, _DECODE_FAILED)
            flag = req["flag"]
            assert isinstance(flag, str)
            try:
                change(flag)
            except ValueError:
                raise RpcError(INVALID_PARAMS, "invalid log flag") from None
            request.result(True)

        return handler

    def log_get_flags(request: RpcRequest) -> None:
        if not _no_params(request, "log_get_flags requires no parameters"):
            return
        flags = enabled_log_flags()
        request.result({name: flags[name] for name in sorted(flags, key=str.lower)})

    def set_level_method(setter: Callable[[int], None]) -> Callable[[RpcRequest], None]:
        def handler(request: RpcRequest) -> None:
            req = _decode(request.params, {"level": (_is_string, False)})
            if req is None:
                raise RpcError(INTERNAL_ERROR, _DECODE_FAILED)
            name = req["level"]
            assert isinstance(name, str)
            level = parse_log_level(name)
            if level is None:
                raise RpcError(INVALID_PARAMS, "invalid log level")
            setter(level)
            request.result(True)

        return handler

    def get_level_method(getter: Callable[[], int]) -> Callable[[RpcRequest], None]:
        def handler(request: RpcRequest) -> None:
            if not _no_params(request, f"{request.method} requires no parameters"):
                return
            name = log_level_name(getter())
            if name is None:
                raise RpcError(INTERNAL_ERROR, "invalid log level")
            request.result(name)

        return handler

    registry.register("framework_get_reactors", framework_get_reactors, RpcState.RUNTIME)
    registry.register("framework_set_scheduler", framework_set_scheduler, _BOTH)
    registry.register("framework_get_scheduler", framework_get_scheduler, _BOTH)
    registry.register("thread_get_stats", thread_get_stats, RpcState.RUNTIME)
    registry.register("thread_get_pollers", thread_get_pollers, RpcState.RUNTIME)
    registry.register("thread_get_io_channels", thread_get_io_channels, RpcState.RUNTIME)
    registry.register("thread_set_cpumask", thread_set_cpumask, RpcState.RUNTIME)
    registry.register("log_set_flag", flag_method(set_log_flag), _BOTH)
    registry.register("log_clear_flag", flag_method(clear_log_flag), _BOTH)
    registry.register("log_get_flags", log_get_flags, _BOTH)
    registry.register("log_set_print_level", set_level_method(set_print_level), _BOTH)
    registry.register("log_get_print_level", get_level_method(get_print_level), _BOTH)
    registry.register("log_set_level", set_level_method(set_log_level), _BOTH)
    registry.register("log_get_level", get_level_method(get_log_level), _BOTH)
