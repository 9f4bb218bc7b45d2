"""The thread library's process-wide state (SPDK's ``g_threads``, ``g_app_thread``, ``g_io_devices``
and the message pool), created by :func:`thread_lib_init` and released by :func:`thread_lib_fini`.

The library is the owner of that state; nothing else in spdkpy keeps module-level mutable state
about threads. The *current* lightweight thread is a thread-local of the OS thread that polls it.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from spdkpy.env import Clock, Mempool, MonotonicClock
from spdkpy.errors import InputError, InvalidStateError

if TYPE_CHECKING:
    from spdkpy.thread._io_channel import IoDevice
    from spdkpy.thread._thread import Thread

__all__ = [
    "DEFAULT_MSG_MEMPOOL_SIZE",
    "ThreadLibrary",
    "ThreadOp",
    "get_thread",
    "set_thread",
    "thread_lib_fini",
    "thread_lib_init",
]

log = logging.getLogger("spdkpy.thread")

DEFAULT_MSG_MEMPOOL_SIZE: Final = 262143
MSG_CACHE_SIZE: Final = 1024
MSG_BATCH_SIZE: Final = 8
THREAD_EXIT_TIMEOUT_S: Final = 5
MAX_NAME_LEN: Final = 256


class ThreadOp(enum.Enum):
    """What the framework's thread-op hook is asked to do (``SPDK_THREAD_OP_*``)."""

    NEW = "new"
    """Place a newly created thread on some OS thread that will poll it."""
    RESCHED = "resched"
    """Place an existing thread again (its cpumask changed, or it finished exiting)."""


ThreadOpFn = Callable[["Thread", ThreadOp], None]
"""The hook: raise a :class:`~spdkpy.errors.SpdkpyError` to refuse (the thread is not created)."""
ThreadOpSupportedFn = Callable[[ThreadOp], bool]


class Message:
    """A pooled message: a function and its arguments. Internal to the thread library."""

    __slots__ = ("args", "fn")

    def __init__(self) -> None:
        self.fn: Callable[..., object] | None = None
        self.args: tuple[object, ...] = ()


# A plain threading.local, not a subclass with a class-level default: on free-threaded 3.13 each
# attribute access on an instance of a threading.local subclass takes the interpreter-wide type
# lock (to find the _thread module from the subclass), which every reactor would contend for.
# Reads therefore default explicitly: an OS thread that never set ``thread`` has none.
_current: Final = threading.local()


def get_thread() -> Thread | None:
    """The lightweight thread the calling OS thread is polling now, or ``None``."""
    thread: Thread | None = getattr(_current, "thread", None)
    return thread


def set_thread(thread: Thread | None) -> None:
    """Make ``thread`` current on this OS thread (SPDK's ``spdk_set_thread``); for harnesses."""
    _current.thread = thread


@final
class ThreadLibrary:
    """Process-wide thread state. One exists between ``thread_lib_init`` and ``thread_lib_fini``."""

    __slots__ = (
        "app_thread",
        "clock",
        "io_devices",
        "lock",
        "msg_pool",
        "next_thread_id",
        "op_fn",
        "op_supported_fn",
        "threads",
    )

    def __init__(
        self,
        op_fn: ThreadOpFn | None,
        op_supported_fn: ThreadOpSupportedFn | None,
        msg_mempool_size: int,
        clock: Clock,
    ) -> None:
        self.op_fn = op_fn
        self.op_supported_fn = op_supported_fn
        self.clock = clock
        self.msg_pool: Mempool[Message] = Mempool(
            msg_mempool_size, Message, name=f"msgpool_{os.getpid()}"
        )
        self.lock = threading.Lock()
        self.threads: list[Thread] = []
        self.next_thread_id = 1
        self.app_thread: Thread | None = None
        self.io_devices: dict[int, IoDevice[object]] = {}

    def supports(self, op: ThreadOp) -> bool:
        return self.op_supported_fn is not None and self.op_supported_fn(op)

    def all_threads(self) -> list[Thread]:
        """The threads in creation order (a copy)."""
        with self.lock:
            return list(self.threads)


_lib: ThreadLibrary | None = None


def thread_lib_init(
    op_fn: ThreadOpFn | None = None,
    op_supported_fn: ThreadOpSupportedFn | None = None,
    *,
    msg_mempool_size: int = DEFAULT_MSG_MEMPOOL_SIZE,
    clock: Clock | None = None,
) -> ThreadLibrary:
    """Initialise the thread library (``spdk_thread_lib_init_ext``).

    ``op_fn`` places new threads (a framework such as the reactors installs it); without it,
    :class:`Thread` only builds the object and the caller must poll it. ``op_fn`` and
    ``op_supported_fn`` go together or not at all.
    """
    global _lib
    if (op_fn is None) != (op_supported_fn is None):
        raise InputError("thread_lib_init: op_fn and op_supported_fn must be given together")
    if msg_mempool_size < 1:
        raise InputError(f"message mempool size must be positive, got {msg_mempool_size}")
    if _lib is not None:
        raise InvalidStateError("the thread library is already initialised")
    _lib = ThreadLibrary(op_fn, op_supported_fn, msg_mempool_size, clock or MonotonicClock())
    return _lib


def thread_lib_fini() -> None:
    """Release the library. Logs io_devices still registered and threads never destroyed."""
    global _lib
    lib = _lib
    if lib is None:
        return
    for dev in lib.io_devices.values():
        log.error("io_device %s not unregistered", dev.name)
    for t in lib.threads:
        if t is not lib.app_thread:
            log.error("thread %s (id %d) was never destroyed", t.name, t.id)
    _current.thread = None
    _lib = None


def current_library() -> ThreadLibrary:
    """The initialised library, or :class:`InvalidStateError`."""
    lib = _lib
    if lib is None:
        raise InvalidStateError("the thread library is not initialised (call thread_lib_init)")
    return lib


def library_or_none() -> ThreadLibrary | None:
    return _lib
