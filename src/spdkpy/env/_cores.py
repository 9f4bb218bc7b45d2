"""Cores: the ones the process may use, the app mask (``-m``), the main core (``-p``), pinning.

Theory of operation. Linux has no per-process CPU affinity, only per-thread masks that new threads
inherit. The env pins the main thread to the main core and each reactor thread to its own core, so
reading ``os.sched_getaffinity(0)`` later would report one core. The cores available to the app are
therefore read once, when this module is imported, before anything is pinned.

Like SPDK's env (DPDK's EAL), the set of launched threads is process-wide state: one process runs
one set of reactors. It lives in this module and is guarded by one lock.

Validation (deviation 2): a mask that is malformed, empty, names a core >= 128 or a core this
process may not run on is refused before anything starts, with one line that names the mask, the
offending cores and the available cores.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Final

from spdkpy.env._cpuset import MAX_CPUSET_BITS, MAX_LCORES, CpuSet
from spdkpy.errors import InputError, InternalError, InvalidCpuMaskError, InvalidStateError

__all__ = [
    "available_cores",
    "current_core",
    "launch_pinned",
    "parse_app_mask",
    "parse_main_core",
    "pin_current_thread",
    "refresh_available_cores",
    "unpin_current_thread",
    "wait_all",
]

_SHOWN_CHARS: Final = 60  # user text echoed in an error message is cut to this many characters
_BLOCKED_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGTERM})
_SPACES: Final = " \t\n\r\v\f"  # C isspace(), which strtol skips


def _read_affinity() -> CpuSet:
    # Machines with more than 1024 CPUs exist; such CPUs can never be in a cpuset anyway.
    return CpuSet(c for c in os.sched_getaffinity(0) if c < MAX_CPUSET_BITS)


_available: CpuSet = _read_affinity()


def available_cores() -> CpuSet:
    """The cores this process may run on, as they were when spdkpy was imported."""
    return _available


def refresh_available_cores(cores: Iterable[int] | None = None) -> CpuSet:
    """Re-read the calling thread's affinity (or take ``cores``) as the available cores. For tests.

    Call it only from a thread that is not pinned, or the result is that thread's one core.
    """
    global _available
    _available = _read_affinity() if cores is None else CpuSet(cores)
    return _available


# --- parsing -------------------------------------------------------------------------------------


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def _mask_error(text: str, reason: str, available: CpuSet) -> InvalidCpuMaskError:
    """The error with a shortened echo of ``text`` in its message but the full text in ``.mask``."""
    err = InvalidCpuMaskError(_shown(text), reason, available)
    err.mask = text
    return err


def _cores_text(cores: CpuSet) -> str:
    listed = cores.format_list()
    return listed if len(listed) <= 2 * _SHOWN_CHARS else listed[: 2 * _SHOWN_CHARS] + "…]"


def parse_app_mask(text: str, available: CpuSet | None = None) -> CpuSet:
    """Parse and validate the app core mask (``-m``): a hex mask or a ``[core list]``.

    ``available`` defaults to :func:`available_cores`. Raises
    :class:`~spdkpy.errors.InvalidCpuMaskError` (one line naming the mask, the fault and the
    available cores) if the text is malformed or starts with ``-`` (DPDK EAL arguments are not
    supported), selects no core, names a core >= 128, or names a core not available.
    """
    avail = available_cores() if available is None else available
    if text.lstrip(" \t").startswith("-"):
        raise _mask_error(
            text,
            "DPDK EAL arguments (a leading '-') are not supported; "
            "give a hex mask such as 0x3 or a core list such as [0-1]",
            avail,
        )
    try:
        mask = CpuSet.parse(text)
    except InvalidCpuMaskError as exc:
        raise _mask_error(text, exc.reason, avail) from None
    if not mask:
        raise _mask_error(text, "the mask selects no core", avail)
    too_high = mask - CpuSet.from_bits((1 << MAX_LCORES) - 1)
    if too_high:
        raise _mask_error(
            text,
            f"cores {_cores_text(too_high)} are beyond the limit of {MAX_LCORES} lcores (0-127)",
            avail,
        )
    missing = mask - avail
    if missing:
        raise _mask_error(
            text, f"cores {_cores_text(missing)} are not available to this process", avail
        )
    return mask


def _strtol0(text: str) -> int | None:
    """C ``strtol(text, &end, 0)`` that must consume all of ``text``; ``None`` if malformed."""
    s = text.strip(_SPACES)
    sign = 1
    if s[:1] in ("+", "-"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s[:2] in ("0x", "0X"):
        digits, base, allowed = s[2:], 16, "0123456789abcdefABCDEF"
    elif s[:1] == "0":
        digits, base, allowed = s, 8, "01234567"
    else:
        digits, base, allowed = s, 10, "0123456789"
    # Explicit ASCII check: int() would also take '_' separators and non-ASCII digits.
    if not digits or any(ch not in allowed for ch in digits):
        return None
    digits = digits.lstrip("0") or "0"
    if len(digits) > 32:  # far beyond any core, and keeps int() away from huge strings
        return sign * (1 << 128)
    return sign * int(digits, base)


def parse_main_core(text: str, mask: CpuSet, mask_text: str | None = None) -> int:
    """Parse ``-p``: the main core, with C ``strtol`` base detection (``0x2``, ``010`` = 8, ``2``).

    As in SPDK, ``0`` means "the lowest core of the mask". ``mask_text`` is the mask as the
    user wrote it, for the error message (default: ``mask`` as a core list). Raises
    :class:`~spdkpy.errors.InputError` for a malformed or negative number and
    :class:`~spdkpy.errors.InvalidCpuMaskError` for a core not in ``mask``.
    """
    value = _strtol0(text)
    if value is None:
        raise InputError(
            f"invalid main core {_shown(text)!r}: expected a non-negative integer "
            "(decimal, 0x-prefixed hex or 0-prefixed octal)"
        )
    if value < 0:
        raise InputError(f"invalid main core {_shown(text)!r}: a core number cannot be negative")
    if value == 0:
        # SPDK passes --main-lcore only for values above 0; DPDK then picks the lowest core.
        if not mask:
            raise InvalidCpuMaskError("[]", "the mask selects no core", available_cores())
        return mask.first()
    if value not in mask:
        shown = str(value) if value < MAX_CPUSET_BITS else _shown(text.strip(_SPACES))
        raise InvalidCpuMaskError(
            mask_text if mask_text is not None else _cores_text(mask),
            f"main core {shown} is not in the core mask",
            available_cores(),
        )
    return value


# --- pinned threads ------------------------------------------------------------------------------

_local = threading.local()
_lock = threading.Lock()
_launched: dict[int, threading.Thread] = {}  # guarded by _lock
_failures: list[tuple[int, BaseException]] = []  # guarded by _lock; in the order they happened


def _check_pinnable(core: int) -> None:
    avail = available_cores()
    if not 0 <= core < MAX_LCORES:
        raise InvalidCpuMaskError(
            f"[{core}]", f"core {core} is outside the lcore range 0-{MAX_LCORES - 1}", avail
        )
    if core not in avail:
        raise InvalidCpuMaskError(
            f"[{core}]", f"core {core} is not available to this process", avail
        )


def _pin(core: int) -> None:
    os.sched_setaffinity(0, {core})  # 0 = the calling thread on Linux
    _local.core = core


def current_core() -> int | None:
    """The core the calling OS thread was launched on or pinned to, else ``None``."""
    core: int | None = getattr(_local, "core", None)
    return core


def pin_current_thread(core: int) -> None:
    """Pin the calling OS thread to ``core`` and record it (for the main thread on the main core).

    Raises :class:`~spdkpy.errors.InvalidCpuMaskError` if ``core`` is not available.
    """
    _check_pinnable(core)
    _pin(core)


def unpin_current_thread(cpus: set[int]) -> None:
    """Give the calling OS thread the affinity ``cpus`` back and forget its core (the inverse of
    :func:`pin_current_thread`, for the main thread once the reactors stop)."""
    os.sched_setaffinity(0, cpus)
    _local.core = None


def launch_pinned(core: int, fn: Callable[[], object], name: str | None = None) -> threading.Thread:
    """Start one OS thread pinned to ``core`` that runs ``fn()`` (``thread_launch_pinned``).

    Returns once the thread is pinned; ``fn`` runs later, on that thread, with SIGINT and SIGTERM
    blocked so the process's signals reach the main thread. If ``fn`` raises, :func:`wait_all`
    reports it. Raises :class:`~spdkpy.errors.InvalidCpuMaskError` if ``core`` is not available
    or cannot be pinned, :class:`~spdkpy.errors.InvalidStateError` if a launched thread not yet
    collected by :func:`wait_all` already has this core. Keeping the main core free of launched
    threads is the caller's job: :func:`pin_current_thread` does not reserve a core.
    """
    _check_pinnable(core)
    ready = threading.Event()
    pin_error: list[OSError] = []

    def run() -> None:
        try:
            # Blocked first, so that the window in which a signal could land here is short.
            signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED_SIGNALS)
            _pin(core)
        except OSError as exc:
            pin_error.append(exc)
            return
        finally:
            ready.set()
        try:
            fn()
        except BaseException as exc:
            # Recorded, not printed: wait_all() re-raises it on the thread that collects us.
            with _lock:
                _failures.append((core, exc))

    with _lock:
        holder = _launched.get(core)
        if holder is not None:
            raise InvalidStateError(f"core {core} already runs the pinned thread {holder.name!r}")
        # Daemon, so that an app that dies before wait_all() exits instead of hanging on reactors.
        thread = threading.Thread(target=run, name=name or f"spdkpy-core-{core}", daemon=True)
        _launched[core] = thread
    try:
        thread.start()
    except BaseException:
        with _lock:
            del _launched[core]
        raise
    ready.wait()
    if pin_error:
        thread.join()
        with _lock:
            del _launched[core]
        raise _mask_error(
            f"[{core}]", f"cannot pin a thread to core {core}: {pin_error[0]}", available_cores()
        ) from pin_error[0]
    return thread


def wait_all() -> None:
    """Join every launched thread and forget them (``thread_wait_all``); call off those threads.

    Raises :class:`~spdkpy.errors.InternalError` from the first exception a launched ``fn`` raised,
    after all threads are joined; further failures are attached as notes.
    """
    with _lock:
        if threading.current_thread() in _launched.values():
            raise InvalidStateError("wait_all() called from a launched pinned thread")
    while True:
        with _lock:
            pending = list(_launched.items())
        if not pending:
            break
        for _, thread in pending:
            thread.join()
        with _lock:
            for core, thread in pending:
                if _launched.get(core) is thread:
                    del _launched[core]
    with _lock:
        failures = _failures[:]
        _failures.clear()
    if failures:
        core, exc = failures[0]
        err = InternalError(f"pinned thread on core {core} failed: {exc!r}")
        for other_core, other in failures[1:]:
            err.add_note(f"pinned thread on core {other_core} also failed: {other!r}")
        raise err from exc
