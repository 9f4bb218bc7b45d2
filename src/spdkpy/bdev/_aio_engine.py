"""Asynchronous file I/O for the ``aio`` bdev module (SPEC-STORAGE §A2): io_uring or threads.

Theory of operation. An :class:`AioEngine` owns one open file (or block device) and runs reads,
writes, flushes and ``fallocate`` calls on it without ever blocking its caller. It knows nothing
of reactors: the owning SPDK thread submits, and a period-0 poller registered with
``wake_fd=engine.wake_fd`` calls :meth:`AioEngine.poll`, which reaps finished I/O and calls
``on_complete(cookie, result)`` for each, on that thread. ``result`` is the byte count (``>= 0``;
less than asked for at end of file) or a negative errno. Every accepted I/O gets exactly one
``on_complete``, :meth:`AioEngine.close` included. Use an engine from one OS thread at a time
(its owner, wherever that owner runs).

Backends (``backend="auto"`` picks the first that works; one log line says which and why):

* ``io_uring`` through the ``uring-api`` binding (optional extra ``io_uring``). Each buffer of a
  request is one read/write SQE. Submissions made inside :meth:`~AioEngine.poll` (callbacks that
  resubmit) reach the kernel ``SUBMIT_BATCH`` at a time, the rest in one ``io_uring_enter`` at its
  end; any other submission is entered at once, so nothing lies unsubmitted while the reactor
  sleeps. The binding has no fsync or fallocate, so those run on one helper thread. ``wake_fd``
  is an epoll fd holding the ring's fd (readable while completions wait) and the helper thread's
  eventfd.
* ``threads``: up to ``workers`` OS threads, started as I/O arrives, take requests from a queue
  and run ``os.preadv``/``os.pwritev``/``os.fsync``/``fallocate``. ``wake_fd`` is the eventfd.

Measured on the 2-core dev machine (``bench/aio_engine_bench.py``, 4 KiB O_DIRECT random reads,
QD 32): io_uring reaches the same IOPS as a thread pool at well under half the CPU, so it is the
default; the pool keeps spdkpy working where the binding is missing or the kernel (seccomp,
``kernel.io_uring_disabled``) refuses io_uring.

Free-threading. Results from OS threads come back through an MP/SC :class:`~spdkpy.env.Ring`
(deque appends and pops are atomic without the GIL) plus an eventfd. The eventfd's counter and the
``signalled`` flag change together under one lock, so the flag is set exactly while the fd is
readable: a producer that finds it set knows the consumer will clear it *and then* drain the ring,
which therefore sees that producer's entry. Nothing else is shared across OS threads.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.metadata
import logging
import mmap
import os
import queue
import select
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, Generic, Literal, TypeAlias, TypeVar, final

from spdkpy._log import notice
from spdkpy.env import Ring, RingType
from spdkpy.errors import (
    AlignmentError,
    InputError,
    InvalidStateError,
    NotSupportedError,
    QueueFullError,
)

__all__ = [
    "FALLOC_FL_KEEP_SIZE",
    "FALLOC_FL_PUNCH_HOLE",
    "FALLOC_FL_ZERO_RANGE",
    "AioBackend",
    "AioEngine",
    "ReadBuffer",
    "WriteBuffer",
    "alloc_aligned",
    "available_backends",
]

log = logging.getLogger("spdkpy.aio")

C = TypeVar("C")

AioBackend: TypeAlias = Literal["io_uring", "threads"]
ReadBuffer: TypeAlias = bytearray | memoryview | mmap.mmap
"""A writable buffer that data is read into."""
WriteBuffer: TypeAlias = bytes | bytearray | memoryview | mmap.mmap
"""A buffer whose bytes are written."""

DEFAULT_DEPTH: Final = 128
DEFAULT_MAX_EVENTS: Final = 128
SUBMIT_BATCH: Final = 4
"""Inside :meth:`AioEngine.poll`, requests are entered into the kernel this many at a time.
Entering them all when poll returns makes the device wait for the whole batch of callbacks (the
bdev layer's and the user's, several us each): through the aio bdev (4 KiB randread QD 32 on the
dev machine's virtio disk, 3 interleaved rounds) that did 20-30 % fewer IOPS than entering every
1, 2, 4 or 8 requests, which did about equally well; 4 keeps a quarter of the system calls."""
MAX_WORKERS: Final = 16
"""Default cap on the threads backend's workers: the best IOPS per core at QD 32 here."""
IOV_MAX: Final = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024

_READ: Final = 0
_WRITE: Final = 1
_FLUSH: Final = 2
_FALLOCATE: Final = 3

FALLOC_FL_KEEP_SIZE: Final = 0x01
"""``fallocate(2)`` mode bits (``linux/falloc.h``); ``os`` has only ``posix_fallocate``."""
FALLOC_FL_PUNCH_HOLE: Final = 0x02
FALLOC_FL_ZERO_RANGE: Final = 0x10


def alloc_aligned(size: int, alignment: int = mmap.PAGESIZE) -> memoryview:
    """A zeroed, writable buffer of ``size`` bytes whose address is a multiple of ``alignment``
    (a power of two), as ``O_DIRECT`` needs. Anonymous ``mmap`` memory: page-aligned already,
    over-allocated and sliced for larger alignments. The view keeps the mapping alive.
    """
    if size <= 0:
        raise InputError(f"buffer size must be positive, got {size}")
    if alignment <= 0 or alignment & (alignment - 1):
        raise InputError(f"alignment must be a power of two, got {alignment}")
    if alignment <= mmap.PAGESIZE:
        return memoryview(mmap.mmap(-1, size))
    view = memoryview(mmap.mmap(-1, size + alignment))
    skip = -_address(view) % alignment
    return view[skip : skip + size]


# --- buffer addresses (only checked for O_DIRECT) ---------------------------------------------


class _PyBuffer(ctypes.Structure):
    # Py_buffer, part of the stable ABI since 3.11.
    _fields_ = (
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    )


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = (ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int)
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = (ctypes.POINTER(_PyBuffer),)
_release_buffer.restype = None


def _address(view: memoryview) -> int:
    if not view.readonly:
        return ctypes.addressof(ctypes.c_char.from_buffer(view))  # ~0.2 us
    info = _PyBuffer()  # read-only memory: no from_buffer, ask for the Py_buffer (~0.8 us)
    _get_buffer(view, ctypes.byref(info), 0)
    try:
        return info.buf or 0
    finally:
        _release_buffer(ctypes.byref(info))


# --- backend choice ---------------------------------------------------------------------------

_choice_lock = threading.Lock()
_uring_refusal: list[str | None] = []  # computed once: None (usable) or why not


def _io_uring_refusal() -> str | None:
    """Why io_uring cannot be used in this process, or ``None`` if it can. Probed once."""
    with _choice_lock:
        if not _uring_refusal:
            _uring_refusal.append(_probe_io_uring())
        return _uring_refusal[0]


def _probe_io_uring() -> str | None:
    try:
        import uring_api
    except ImportError:
        return "the uring-api package is not installed (pip install 'spdkpy[io_uring]')"
    try:
        info = uring_api.probe()
    except Exception as exc:  # a broken native build must not stop the fallback
        return f"uring-api failed its probe: {exc}"
    if not info:  # installed without its C extension (no wheel for this Python, no build)
        return "uring-api has no native extension for this Python"
    if not info.get("available"):
        return "the kernel refuses io_uring (seccomp, kernel.io_uring_disabled or no support)"
    return None


def available_backends() -> tuple[AioBackend, ...]:
    """The backends that work in this process, preferred first."""
    return ("threads",) if _io_uring_refusal() is not None else ("io_uring", "threads")


# --- requests and the hand-back channel --------------------------------------------------------


@final
class _Op:
    """One accepted request. ``result`` is set by whoever finished it."""

    __slots__ = ("bufs", "cookie", "kind", "length", "offset", "pending", "result", "results")

    def __init__(self, kind: int, cookie: Any, offset: int, bufs: list[memoryview]) -> None:
        self.kind = kind
        self.cookie = cookie
        self.offset = offset
        self.bufs = bufs
        self.result = 0
        self.pending = 0  # io_uring: SQEs of a multi-buffer request still in the kernel
        self.results: list[int] = []
        self.length = 0  # fallocate: the range's length (its mode is in ``pending``)


def _combine(op: _Op) -> int:
    """One result for a request that was split into one SQE per buffer, as ``preadv`` reports:
    the first error, else the bytes up to and including the first short segment."""
    total = 0
    for buf, res in zip(op.bufs, op.results, strict=True):
        if res < 0:
            return res
        total += res
        if res < buf.nbytes:
            break
    return total


@final
class _Completions:
    """Finished requests handed back from OS threads: an MP/SC ring and an eventfd that is
    readable exactly while ``signalled`` is set (both change under ``_lock``)."""

    __slots__ = ("_lock", "fd", "ring", "signalled")

    def __init__(self, capacity: int, name: str) -> None:
        # Never full: it holds at most the requests in flight, and those are at most ``depth``.
        self.ring: Ring[_Op] = Ring(capacity, RingType.MP_SC, name)
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._lock = threading.Lock()
        self.signalled = False

    def put(self, op: _Op) -> None:
        """Hand back ``op`` (any OS thread)."""
        self.ring.enqueue(op)
        self.signal()

    def signal(self) -> None:
        with self._lock:
            if not self.signalled:
                self.signalled = True
                os.eventfd_write(self.fd, 1)

    def take(self, max_count: int) -> list[_Op]:
        """Up to ``max_count`` finished requests (the consumer only)."""
        if self.signalled:  # a stale False is harmless: the fd stays readable, we come back
            with self._lock:
                self.signalled = False
                try:
                    os.eventfd_read(self.fd)
                except BlockingIOError:
                    pass
        ops = self.ring.dequeue(max_count)
        if self.ring.queue:
            self.signal()  # left some: keep the fd readable
        return ops

    def close(self) -> None:
        os.close(self.fd)


@final
class _Workers:
    """OS threads running requests with blocking system calls, started on demand."""

    __slots__ = ("_done", "_fd", "_queue", "_threads", "closing", "limit", "name")

    def __init__(self, fd: int, done: _Completions, limit: int, name: str) -> None:
        self._fd = fd
        self._done = done
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.closing = False
        self.limit = limit
        self.name = name

    def submit(self, op: _Op, in_flight: int) -> None:
        self._queue.put(op)
        threads = self._threads
        if len(threads) < self.limit and len(threads) < in_flight:
            thread = threading.Thread(
                target=self._run, name=f"{self.name}_{len(threads)}", daemon=True
            )
            threads.append(thread)
            thread.start()

    def _run(self) -> None:
        fd = self._fd
        get = self._queue.get
        done = self._done
        while (op := get()) is not None:
            if self.closing:
                op.result = -errno.ECANCELED  # queued but not started when close() came
            else:
                try:
                    if op.kind == _READ:
                        op.result = os.preadv(fd, op.bufs, op.offset)
                    elif op.kind == _WRITE:
                        op.result = os.pwritev(fd, op.bufs, op.offset)
                    elif op.kind == _FLUSH:
                        os.fsync(fd)
                        op.result = 0
                    else:
                        op.result = _fallocate(fd, op.pending, op.offset, op.length)
                except OSError as exc:
                    op.result = -(exc.errno or errno.EIO)
                except Exception:  # e.g. a buffer released while in flight: fail the I/O
                    log.exception("aio worker %s: I/O raised", threading.current_thread().name)
                    op.result = -errno.EIO
            done.put(op)

    def stop(self) -> None:
        """Cancel what has not started, let started I/O finish, join every thread (blocks)."""
        self.closing = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()


# --- the engine -------------------------------------------------------------------------------


@final
class AioEngine(Generic[C]):
    """Asynchronous reads, writes, flushes and fallocates on one file, completed by :meth:`poll`.

    ``path`` is opened read-write (``readonly``: read-only), with ``O_DIRECT`` when ``direct``;
    if the file system refuses ``O_DIRECT`` the file is opened without it (as SPDK's aio module
    does) and :attr:`direct` says so. ``OSError`` from opening propagates. With ``O_DIRECT``
    every offset, buffer length and buffer address must be a multiple of ``block_size``
    (:class:`~spdkpy.errors.AlignmentError` otherwise; :func:`alloc_aligned` gives such buffers).
    At most ``depth`` requests are in flight (accepted, not yet passed to ``on_complete``).
    ``backend``: ``"auto"``, ``"io_uring"`` or ``"threads"``; ``workers`` caps the threads
    backend's OS threads (default ``min(depth, 16)``).
    """

    __slots__ = (
        "_done",
        "_epoll",
        "_fd",
        "_in_poll",
        "_on_complete",
        "_ready",
        "_ring",
        "_unsubmitted",
        "_workers",
        "backend",
        "block_size",
        "closed",
        "depth",
        "direct",
        "in_flight",
        "path",
        "refused",
        "wake_fd",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        block_size: int,
        on_complete: Callable[[C, int], object],
        *,
        direct: bool = True,
        depth: int = DEFAULT_DEPTH,
        readonly: bool = False,
        backend: Literal["auto", "io_uring", "threads"] = "auto",
        workers: int | None = None,
    ) -> None:
        if block_size <= 0 or block_size & (block_size - 1):
            raise InputError(f"block size must be a power of two, got {block_size}")
        if not 1 <= depth <= 65536:
            raise InputError(f"queue depth must be 1..65536, got {depth}")
        if workers is not None and workers < 1:
            raise InputError(f"workers must be at least 1, got {workers}")
        if backend not in ("auto", "io_uring", "threads"):
            raise InputError(f"unknown aio backend {backend!r} (auto, io_uring or threads)")
        refusal = _io_uring_refusal() if backend != "threads" else None
        if backend == "io_uring" and refusal is not None:
            raise NotSupportedError(f"io_uring backend unavailable: {refusal}")
        self.path = os.fspath(path)
        self.block_size = block_size
        self.depth = depth
        self._on_complete = on_complete
        self.in_flight = 0
        """Requests accepted and not yet passed to ``on_complete``."""
        self.refused = 0
        """Submissions refused because ``depth`` requests were in flight."""
        self.closed = False
        self._in_poll = False
        self._unsubmitted = 0  # requests prepared inside poll() and not yet entered
        self._ready: deque[_Op] = deque()  # reaped but not yet delivered (over max_events)
        self._ring: Any = None  # a uring_api.Ring
        self._epoll: select.epoll | None = None
        self._fd, self.direct = _open(self.path, readonly, direct)
        try:
            self._done = _Completions(depth, f"aio_{self.path}")
        except BaseException:
            os.close(self._fd)
            raise
        name = f"aio_{os.path.basename(self.path)}"[:15]
        self.backend: AioBackend = "threads"
        self.wake_fd: int = self._done.fd
        """Readable while :meth:`poll` has work: give it to ``register_poller(wake_fd=...)``."""
        self._workers: _Workers
        try:
            if backend != "threads" and refusal is None:
                try:
                    self._ring, self._epoll = _open_ring(min(depth, 4096), self._done.fd)
                except OSError as exc:  # e.g. ENOMEM under a low RLIMIT_MEMLOCK
                    refusal = f"creating a ring failed: {exc}"
                    if backend == "io_uring":
                        raise NotSupportedError(f"io_uring backend unavailable: {refusal}") from exc
            if self._epoll is not None:
                self.backend = "io_uring"
                self.wake_fd = self._epoll.fileno()
                self._workers = _Workers(self._fd, self._done, 1, name)  # fsync, fallocate
            else:
                limit = workers if workers is not None else min(depth, MAX_WORKERS)
                self._workers = _Workers(self._fd, self._done, limit, name)
        except BaseException:
            self._release()
            raise
        _log_choice(self, refusal if backend == "auto" else None)

    # ---------------------------------------------------------------------------- submission

    def submit_read(
        self, offset: int, buffers: ReadBuffer | Sequence[ReadBuffer], cookie: C
    ) -> None:
        """Read from byte ``offset`` into ``buffers`` (one, or several filled in order).

        Raises :class:`~spdkpy.errors.QueueFullError` when ``depth`` requests are in flight
        (nothing submitted), :class:`~spdkpy.errors.AlignmentError` or
        :class:`~spdkpy.errors.InputError` for unusable arguments, and
        :class:`~spdkpy.errors.InvalidStateError` once closed.
        """
        if not self._submit(_READ, offset, buffers, cookie):
            raise QueueFullError(f"aio engine for {self.path}: {self.depth} I/Os in flight")

    def submit_write(
        self, offset: int, buffers: WriteBuffer | Sequence[WriteBuffer], cookie: C
    ) -> None:
        """Write ``buffers`` (one, or several in order) at byte ``offset``; raises as
        :meth:`submit_read`."""
        if not self._submit(_WRITE, offset, buffers, cookie):
            raise QueueFullError(f"aio engine for {self.path}: {self.depth} I/Os in flight")

    def submit_flush(self, cookie: C) -> None:
        """``fsync`` the file: makes durable every write completed before this call; raises as
        :meth:`submit_read`."""
        if not self._submit(_FLUSH, 0, (), cookie):
            raise QueueFullError(f"aio engine for {self.path}: {self.depth} I/Os in flight")

    def submit_fallocate(self, mode: int, offset: int, length: int, cookie: C) -> None:
        """``fallocate(2)`` the byte range: ``mode`` is ``FALLOC_FL_PUNCH_HOLE |
        FALLOC_FL_KEEP_SIZE`` (unmap) or ``FALLOC_FL_ZERO_RANGE`` (write zeroes), for example.
        Runs on a helper thread like a flush; the result is 0 or ``-errno``. Raises as
        :meth:`submit_read`."""
        if not self.try_submit_fallocate(mode, offset, length, cookie):
            raise QueueFullError(f"aio engine for {self.path}: {self.depth} I/Os in flight")

    def try_submit_fallocate(self, mode: int, offset: int, length: int, cookie: C) -> bool:
        """:meth:`submit_fallocate`, but ``False`` when full."""
        if self.closed:
            raise InvalidStateError(f"aio engine for {self.path} is closed")
        if offset < 0 or length <= 0:
            raise InputError(
                f"fallocate range must have offset >= 0 and length > 0, got {offset}+{length}"
            )
        if self.in_flight >= self.depth:
            self.refused += 1
            return False
        op = _Op(_FALLOCATE, cookie, offset, [])
        op.pending = mode
        op.length = length
        self.in_flight += 1
        self._workers.submit(op, self.in_flight)
        return True

    def try_submit_read(
        self, offset: int, buffers: ReadBuffer | Sequence[ReadBuffer], cookie: C
    ) -> bool:
        """:meth:`submit_read`, but ``False`` (counted in :attr:`refused`) instead of
        :class:`~spdkpy.errors.QueueFullError`."""
        return self._submit(_READ, offset, buffers, cookie)

    def try_submit_write(
        self, offset: int, buffers: WriteBuffer | Sequence[WriteBuffer], cookie: C
    ) -> bool:
        """:meth:`submit_write`, but ``False`` when full."""
        return self._submit(_WRITE, offset, buffers, cookie)

    def try_submit_flush(self, cookie: C) -> bool:
        """:meth:`submit_flush`, but ``False`` when full."""
        return self._submit(_FLUSH, 0, (), cookie)

    def _submit(self, kind: int, offset: int, buffers: Any, cookie: object) -> bool:
        if self.closed:
            raise InvalidStateError(f"aio engine for {self.path} is closed")
        views = _views(kind, buffers) if kind != _FLUSH else []
        if self.direct and kind != _FLUSH:
            self._check_alignment(offset, views)
        elif offset < 0:
            raise InputError(f"offset must be >= 0, got {offset}")
        if self.in_flight >= self.depth:
            self.refused += 1
            return False
        op = _Op(kind, cookie, offset, views)
        self.in_flight += 1
        ring = self._ring
        if ring is None or kind == _FLUSH:
            self._workers.submit(op, self.in_flight)
            return True
        prepare = ring.prepare_read if kind == _READ else ring.prepare_write
        fd = self._fd
        if len(views) == 1:
            prepare(fd, views[0], offset, op)
        else:
            op.pending = len(views)
            op.results = [0] * len(views)
            for i, view in enumerate(views):
                prepare(fd, view, offset, (op, i))
                offset += view.nbytes
        if self._in_poll:
            # Callbacks resubmitting: enter every SUBMIT_BATCH requests (the rest when poll()
            # returns) rather than all at the end, so the device starts on the first ones while
            # the later completions are still being handled.
            self._unsubmitted += 1
            if self._unsubmitted >= SUBMIT_BATCH:
                self._unsubmitted = 0
                ring.submit()
        else:
            ring.submit()
        return True

    def _check_alignment(self, offset: int, views: list[memoryview]) -> None:
        align = self.block_size
        if offset % align:
            raise AlignmentError(
                f"O_DIRECT I/O on {self.path}: offset {offset} is not a multiple of {align}"
            )
        for view in views:
            if view.nbytes % align:
                raise AlignmentError(
                    f"O_DIRECT I/O on {self.path}: buffer length {view.nbytes} is not a "
                    f"multiple of {align}"
                )
            address = _address(view)
            if address % align:
                raise AlignmentError(
                    f"O_DIRECT I/O on {self.path}: buffer address {address:#x} is not aligned "
                    f"to {align} bytes (allocate buffers with alloc_aligned)"
                )

    # ---------------------------------------------------------------------------- completion

    def poll(self, max_events: int = DEFAULT_MAX_EVENTS) -> int:
        """Pass up to ``max_events`` finished requests to ``on_complete``; returns how many.

        Call from the owner's period-0 poller (busy when the result is > 0). Requests submitted
        from inside ``on_complete`` are entered into the kernel together when it returns. If
        ``on_complete`` raises, the requests not yet passed on wait for the next poll (and
        :attr:`wake_fd` stays readable); the exception propagates.
        """
        if self.closed:
            return 0
        self._in_poll = True
        try:
            ops = self._reap(max_events)
            on_complete = self._on_complete
            delivered = 0
            try:
                for op in ops:
                    delivered += 1
                    self.in_flight -= 1
                    on_complete(op.cookie, op.result)
            except BaseException:
                self._put_back(ops[delivered:])
                raise
            return delivered
        finally:
            self._in_poll = False
            if self._unsubmitted:
                self._unsubmitted = 0
                if not self.closed:  # close() from a callback has already drained the ring
                    self._ring.submit()

    def _put_back(self, ops: list[_Op]) -> None:
        """Keep ops a raising callback left undelivered for the next poll."""
        if self.closed:  # close() ran in a callback: no later poll will come
            self._deliver(ops)
        elif ops:
            self._ready.extendleft(reversed(ops))
            self._done.signal()

    def _reap(self, max_events: int) -> list[_Op]:
        ready = self._ready
        ops: list[_Op] = []
        while ready and len(ops) < max_events:
            ops.append(ready.popleft())
        ring = self._ring
        if ring is not None and len(ops) < max_events:
            completions = ring.wait(0)  # also enters SQEs prepared since the last submit
            if completions:
                self._finish(completions, ops, max_events)
        done = self._done
        if done.signalled or done.ring.queue:
            ops.extend(done.take(max_events - len(ops)))
        if ready:
            done.signal()  # more than max_events were reaped: come back for the rest
        return ops

    def _finish(self, completions: list[Any], ops: list[_Op], max_events: int) -> None:
        ready = self._ready
        for completion in completions:
            data = completion.user_data
            if type(data) is _Op:
                op = data
                op.result = completion.res
            else:
                op, index = data
                op.results[index] = completion.res
                op.pending -= 1
                if op.pending:
                    continue
                op.result = _combine(op)
            if len(ops) < max_events:
                ops.append(op)
            else:
                ready.append(op)

    # ---------------------------------------------------------------------------- teardown

    def close(self) -> None:
        """Stop accepting I/O and account for every request in flight, then release the file.

        Requests not yet started (threads backend) complete with ``-ECANCELED``; started ones
        run to completion (this blocks until the device finishes them). Each goes to
        ``on_complete`` before ``close`` returns. Idempotent. If a callback raises, the others
        are still delivered and the first exception is raised at the end.
        """
        if self.closed:
            return
        self.closed = True
        ready = self._ready
        try:
            ring = self._ring
            if ring is not None:
                while ring.pending_count():
                    completions = ring.wait(1.0)
                    if completions:
                        self._finish(completions, [], 0)
            self._workers.stop()
            ready.extend(self._done.take(self.depth + 1))
        finally:
            self._release()
        pending = list(ready)
        ready.clear()
        error = self._deliver(pending)
        if error is not None:
            raise error

    def _deliver(self, ops: list[_Op]) -> BaseException | None:
        """Pass every op on, whatever the callbacks raise; returns the first exception."""
        error: BaseException | None = None
        for op in ops:
            self.in_flight -= 1
            try:
                self._on_complete(op.cookie, op.result)
            except BaseException as exc:
                if error is None:
                    error = exc
        return error

    def _release(self) -> None:
        if self._ring is not None:
            self._ring.close()
        if self._epoll is not None:
            self._epoll.close()
        self._done.close()
        os.close(self._fd)

    def size(self) -> int:
        """The file's (or block device's) current size in bytes."""
        if self.closed:
            raise InvalidStateError(f"aio engine for {self.path} is closed")
        return os.lseek(self._fd, 0, os.SEEK_END)

    def __repr__(self) -> str:
        return (
            f"<AioEngine {self.path!r} backend={self.backend} direct={self.direct} "
            f"in_flight={self.in_flight}/{self.depth}{' closed' if self.closed else ''}>"
        )


_libc: list[Any] = []  # ctypes' libc with fallocate typed, loaded on first use


def _fallocate(fd: int, mode: int, offset: int, length: int) -> int:
    """``fallocate(2)``: 0 or ``-errno`` (a helper thread runs it; it may block)."""
    if not _libc:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
        libc.fallocate.restype = ctypes.c_int
        _libc.append(libc)
    if _libc[0].fallocate(fd, mode, offset, length) == 0:
        return 0
    return -(ctypes.get_errno() or errno.EIO)


def _open(path: str, readonly: bool, direct: bool) -> tuple[int, bool]:
    flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
    if direct:
        try:
            return os.open(path, flags | os.O_DIRECT), True
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            log.warning("%s: O_DIRECT refused (%s); opening it without O_DIRECT", path, exc)
    return os.open(path, flags), False


def _open_ring(entries: int, done_fd: int) -> tuple[Any, select.epoll]:
    """An io_uring and the epoll set a sleeping reactor waits on: the ring's fd, readable while
    completions wait, and the flush thread's eventfd."""
    import uring_api

    ring = uring_api.Ring(entries=entries)
    epoll: select.epoll | None = None
    try:
        epoll = select.epoll()
        epoll.register(ring.fd, select.EPOLLIN)
        epoll.register(done_fd, select.EPOLLIN)
    except BaseException:
        if epoll is not None:
            epoll.close()
        ring.close()
        raise
    return ring, epoll


def _views(kind: int, buffers: Any) -> list[memoryview]:
    if (  # the common case, one byte view (alloc_aligned's kind): fewer steps than below
        type(buffers) is memoryview
        and buffers.c_contiguous
        and buffers.format == "B"
        and buffers.ndim == 1
        and buffers.nbytes
        and not (kind == _READ and buffers.readonly)
    ):
        return [buffers]
    items = buffers if isinstance(buffers, (list, tuple)) else (buffers,)
    if not items:
        raise InputError("an I/O needs at least one buffer")
    if len(items) > IOV_MAX:
        raise InputError(f"an I/O takes at most {IOV_MAX} buffers, got {len(items)}")
    views: list[memoryview] = []
    for item in items:
        view = item if type(item) is memoryview else memoryview(item)
        if not view.c_contiguous:
            raise InputError("I/O buffers must be contiguous")
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if not view.nbytes:
            raise InputError("I/O buffers must not be empty")
        if kind == _READ and view.readonly:
            raise InputError("cannot read into a read-only buffer")
        views.append(view)
    return views


_logged: set[tuple[str, str | None]] = set()


def _log_choice(engine: AioEngine[Any], refusal: str | None) -> None:
    # One NOTICE line per process and outcome; every engine after that says it at INFO.
    key = (engine.backend, refusal)
    with _choice_lock:
        first = key not in _logged
        _logged.add(key)
    if engine.backend == "io_uring":
        text = f"aio: io_uring backend (uring-api {_dist_version('uring-api')})"
    else:
        text = "aio: thread-pool backend (os.preadv/os.pwritev)"
        if refusal is not None:
            text += f"; io_uring not used: {refusal}"
    if first:
        notice(log, "%s", text)
    else:
        log.info("%s for %s", text, engine.path)


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"
