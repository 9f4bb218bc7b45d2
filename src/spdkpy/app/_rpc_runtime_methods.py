"""Thread, reactor, scheduler and log methods (SPDK's ``lib/event/app_rpc.c`` and
``lib/log/log_rpc.c``).

Params, result keys, error codes and messages are SPDK's (SPEC §4.5, §7.4); the statistics carry
spdkpy's extra fields *beside* SPDK's (deviation 5). Snapshots are taken where the data lives:
each thread's on that thread (``for_each_thread``), each reactor's on that reactor
(``for_each_reactor``), and the answer goes out from the completion, as in SPDK.

Choices where SPEC is silent:

* ``in_interrupt`` is the reactor's mode: ``true`` with ``--interrupt-mode`` or once a scheduler
  put it to sleep for want of threads. Every spdkpy reactor sleeps when idle (deviation 3); in
  poll mode it first spins 50 µs. ``"sleeping"`` tells whether one is asleep right now.
* The schedulers live in :mod:`spdkpy.event` (``static``, ``dynamic``, ``gscheduler``);
  ``framework_get_scheduler`` adds ``rounds``, ``migrations`` and ``last_round`` (the last
  decision and why) beside SPDK's keys.
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
from spdkpy.event import DEFAULT_SCHEDULER_PERIOD_US, ReactorFramework, current_reactor
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

# ---------------------------------------------------------------------------- params

_Check = Callable[[object], bool]


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_uint(bits: int) -> _Check:
    """Check for an unsigned JSON integer of ``bits`` bits (``spdk_json_decode_uintN``)."""
    limit = 1 << bits

    def check(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit

    return check


_is_uint8: Final = _is_uint(8)
_is_uint32: Final = _is_uint(32)
_is_uint64: Final = _is_uint(64)


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
                        "in_interrupt": reactor.interrupt_mode,
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

    def framework_set_scheduler(request: RpcRequest) -> None:
        fields = {
            "name": (_is_string, False),
            "period": (_is_uint64, True),
            "load_limit": (_is_uint8, True),
            "core_limit": (_is_uint8, True),
            "core_busy": (_is_uint8, True),
            "mappings": (_is_string, True),
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
        custom = any(req.get(k) for k in ("load_limit", "core_limit", "core_busy")) or (
            "mappings" in req
        )
        scheduling = framework().scheduling
        if period:
            scheduling.set_period(period)
        elif scheduling.period_us == 0:
            scheduling.set_period(DEFAULT_SCHEDULER_PERIOD_US)
        rc = scheduling.set(name)
        if rc:
            raise RpcError(INTERNAL_ERROR, os.strerror(-rc))
        current = scheduling.current
        assert current is not None
        if current.has_opts:
            rc = current.set_opts(params, scheduling)
        elif custom:
            rc = -errno.EINVAL
        if rc:
            raise RpcError(INTERNAL_ERROR, os.strerror(-rc))
        request.result(True)

    def framework_get_scheduler(request: RpcRequest) -> None:
        if not _no_params(request, "'rpc_get_scheduler' requires no arguments"):
            return
        scheduling = framework().scheduling
        result: dict[str, object] = {}
        current = scheduling.current
        if current is not None:
            result["scheduler_name"] = current.name
        result["scheduler_period"] = scheduling.period_us
        result["isolated_core_mask"] = scheduling.isolated.format()
        result["scheduling_core"] = scheduling.scheduling_core
        governor = scheduling.governor() if current is not None else None
        if governor is not None:
            result["governor_name"] = governor.name
        if current is not None:
            result.update(current.get_opts())
        # spdkpy's own (deviation 5): what the last round decided, and why.
        result["rounds"] = scheduling.rounds
        result["migrations"] = scheduling.migrations
        last = scheduling.describe_last()
        if last is not None:
            result["last_round"] = last
        request.result(result)

    def scheduler_set_options(request: RpcRequest) -> None:
        fields = {"scheduling_core": (_is_uint32, True), "isolated_core_mask": (_is_string, True)}
        req = _decode(request.params, fields)
        if req is None:
            raise RpcError(INVALID_PARAMS, "Invalid parameters")
        isolated: CpuSet | None = None
        mask_text = req.get("isolated_core_mask")
        if isinstance(mask_text, str):
            try:
                isolated = CpuSet.parse(mask_text)
            except InputError:
                raise RpcError(INVALID_PARAMS, "Invalid isolated core mask") from None
        core = req.get("scheduling_core")
        assert core is None or isinstance(core, int)
        problem = framework().scheduling.set_options(core, isolated)
        if problem is not None:
            raise RpcError(INVALID_PARAMS, problem)
        request.result(True)

    def framework_get_governor(request: RpcRequest) -> None:
        if not _no_params(request, "'framework_get_governor' requires no arguments"):
            return
        governor = framework().scheduling.governor()
        request.result(governor.describe() if governor is not None else {})

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
    registry.register("scheduler_set_options", scheduler_set_options, RpcState.STARTUP)
    registry.register("framework_get_governor", framework_get_governor, RpcState.RUNTIME)
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
