"""The bdev data path: pooled ``BdevIo`` requests, per-thread channels, submission, completion,
both out-of-memory paths, splitting and reset (SPEC-STORAGE A1.2-A1.8).

Theory of operation
-------------------
* A :class:`BdevChannel` is one thread's channel to one bdev (the context of the io_channel
  ``bdev_<name>``). It holds the module's channel, the thread's management channel (the
  ``BdevIo`` cache and io_wait queue of io_device ``bdev_mgr``) and a *shared resource*: the
  outstanding count and NOMEM queue shared by every bdev channel of this thread that uses the
  same module channel. Only the owning thread touches any of it, so the hot path takes no lock.
* Submit: take a ``BdevIo`` from the thread cache (else the global pool; none → the caller gets
  ``NOMEM``), fill it, stamp ``submit_tsc``, split if the geometry asks for it, then hand it to
  ``submit_request(module_channel, io)`` with ``in_submit`` set.
* Complete: the module calls :meth:`BdevIo.complete` on the channel's thread. A completion made
  inside ``submit_request`` defers the user callback by a message (no recursion when the callback
  resubmits); one made from a poller calls it directly. NOMEM requeues at the head of the shared
  queue; successful read/write/unmap/copy update the channel's statistics.
"""

from __future__ import annotations

import logging
import mmap
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, final

from spdkpy.bdev._stat import BdevIoStat
from spdkpy.bdev._types import (
    NOMEM_THRESHOLD_COUNT,
    ZERO_BUFFER_SIZE,
    IoStatus,
    IoType,
)
from spdkpy.thread import (
    POLLER_BUSY,
    ChannelIterator,
    IoChannel,
    Poller,
    Thread,
    for_each_channel,
    get_io_channel,
)

if TYPE_CHECKING:
    from spdkpy.bdev._bdev import Bdev

__all__ = [
    "BdevChannel",
    "BdevIo",
    "BdevIoPool",
    "BdevIoWaitEntry",
    "CompletionCb",
    "alloc_io_buffer",
]

log = logging.getLogger("spdkpy.bdev")

CompletionCb = Callable[["BdevIo", bool, Any], object]
"""``cb(io, success, cb_arg)``: runs on the submitting thread; call ``io.free()`` when done."""

# Plain ints for the hot path (an IntEnum member compares as an int, but a global int is the
# cheapest constant to load).
_PENDING: Final = 0
_SUCCESS: Final = 1
_FAILED: Final = -1
_NOMEM: Final = -4
_ABORTED: Final = -7
_READ: Final = 1
_WRITE: Final = 2
_UNMAP: Final = 3
_RESET: Final = 5
_WRITE_ZEROES: Final = 9
_COPY: Final = 19

RESET_IN_PROGRESS: Final = 0x1
MGMT_CACHE_BATCH: Final = 64
NOMEM_POLL_US: Final = 10_000
RESET_CHECK_US: Final = 1_000_000
SPLIT_RW_CHILDREN: Final = 32
"""Read/write children of one split parent in flight at once."""
SPLIT_OTHER_CHILDREN: Final = 8
"""Unmap / write_zeroes / copy children in flight at once (SPDK's limit)."""

_ZERO: Final = memoryview(bytes(ZERO_BUFFER_SIZE))


def alloc_io_buffer(nbytes: int, alignment: int = 1) -> memoryview:
    """A zeroed, writable buffer of ``nbytes`` (``spdk_dma_zmalloc``).

    Any ``alignment`` above 1 gets page-aligned anonymous memory (good for ``O_DIRECT`` up to
    4 KiB alignment); otherwise a ``bytearray``.
    """
    if nbytes < 0:
        raise ValueError(f"buffer size must be >= 0, got {nbytes}")
    if alignment > 1 and nbytes > 0:
        return memoryview(mmap.mmap(-1, nbytes))
    return memoryview(bytearray(nbytes))


@final
class BdevIo:
    """One block I/O request (``struct spdk_bdev_io``), pooled and reused.

    For modules: ``type`` (:class:`IoType` value), ``offset_blocks``, ``num_blocks``, ``iovs``
    (the data buffers; a one-element list for a contiguous buffer, which is also ``buf``; both
    ``None`` for a read submitted without a buffer, which the module may point at its own memory
    or fill with :meth:`get_buf`), ``bdev`` and ``driver_ctx`` (free for the module's per-I/O
    state). The module owns the request from ``submit_request`` until :meth:`complete`; the
    submitter owns it from its callback until :meth:`free`.
    """

    __slots__ = (
        "_iov1",
        "bdev",
        "buf",
        "cb",
        "cb_arg",
        "ch",
        "driver_ctx",
        "in_submit",
        "internal",
        "iovs",
        "num_blocks",
        "offset_blocks",
        "src_offset_blocks",
        "status",
        "submit_tsc",
        "type",
    )

    def __init__(self) -> None:
        self._iov1: list[Any] = [None]
        self.bdev: Bdev = None  # type: ignore[assignment]  # set on every submit
        self.ch: BdevChannel = None  # type: ignore[assignment]
        self.type = 0
        self.status = _PENDING
        self.buf: Any = None
        self.iovs: list[Any] | None = None
        self.offset_blocks = 0
        self.num_blocks = 0
        self.src_offset_blocks = 0
        self.cb: CompletionCb = _no_cb
        self.cb_arg: Any = None
        self.submit_tsc = 0
        self.in_submit = False
        self.driver_ctx: Any = None
        self.internal: Any = None

    # ------------------------------------------------------------------ module side

    def complete(self, status: int) -> None:
        """Hand the request back (``spdk_bdev_io_complete``); call on the channel's thread.

        ``status`` is an :class:`IoStatus` value. ``NOMEM`` makes the layer retry the request
        later, in order; a second completion is logged and ignored.
        """
        if self.status != _PENDING:
            log.error(
                "Unexpected completion on IO from %s module, status was %s",
                self.bdev.module.name,
                IoStatus(self.status).json_name,
            )
            return
        bch = self.ch
        if self.type == _RESET:
            _reset_module_done(self, status)
            return
        bch.io_outstanding -= 1
        shared = bch.shared
        shared.io_outstanding -= 1
        if status == _NOMEM:
            _queue_nomem(shared, self)
            return
        self.status = status
        if shared.nomem_io and shared.io_outstanding <= shared.nomem_threshold:
            _retry_nomem(shared)
        if self.in_submit:
            # Completed inside submit_request: never run the user's callback on the submit
            # stack (it may resubmit and recurse without bound).
            bch.thread.send_msg(_finish, self)
            return
        if status == _SUCCESS and self.type == _READ:
            # The hot path (_finish for a successful read), inlined: one call less per I/O.
            stat = bch.stat
            diff = bch.now() - self.submit_tsc
            stat.bytes_read += self.num_blocks * bch.block_size
            stat.num_read_ops += 1
            stat.read_latency_ticks += diff
            if diff > stat.max_read_latency_ticks:
                stat.max_read_latency_ticks = diff
            if diff < stat.min_read_latency_ticks:
                stat.min_read_latency_ticks = diff
            self.cb(self, True, self.cb_arg)
            return
        _finish(self)

    def get_buf(self, cb: Callable[[BdevIo, bool], object]) -> None:
        """Make sure a read has a buffer (``spdk_bdev_io_get_buf``), then ``cb(io, True)``.

        A read submitted without a buffer gets a zeroed one, aligned as the bdev requires.
        """
        if self.iovs is None:
            bdev = self.bdev
            buf = alloc_io_buffer(self.num_blocks * bdev.block_size, 1 << bdev.required_alignment)
            self.buf = buf
            iov1 = self._iov1
            iov1[0] = buf
            self.iovs = iov1
        cb(self, True)

    # ------------------------------------------------------------------ submitter side

    @property
    def success(self) -> bool:
        return self.status == _SUCCESS

    @property
    def io_status(self) -> IoStatus:
        return IoStatus(self.status)

    def free(self) -> None:
        """Give the request back (``spdk_bdev_free_io``); call on the submitting thread.

        It goes to the thread's cache (then waiting ``queue_io_wait`` entries run while the
        cache has requests) or, with the cache full, to the global pool.
        """
        mgmt = self.ch.mgmt
        self.buf = None
        self.iovs = None
        self._iov1[0] = None
        self.cb_arg = None
        self.internal = None
        cache = mgmt.cache
        if len(cache) < mgmt.cache_size:
            cache.append(self)
            waiting = mgmt.io_wait_queue
            while waiting and cache:
                entry = waiting.popleft()
                entry.cb(entry.cb_arg)
        else:
            mgmt.pool.put(self)

    def __repr__(self) -> str:
        kind = IoType(self.type).name if self.type else "INVALID"
        return (
            f"<BdevIo {kind} offset={self.offset_blocks} blocks={self.num_blocks} "
            f"status={IoStatus(self.status).name}>"
        )


def _no_cb(io: BdevIo, success: bool, arg: object) -> None:
    return None


@final
class BdevIoWaitEntry:
    """An io_wait entry (``struct spdk_bdev_io_wait_entry``): ``cb(cb_arg)`` runs on this
    thread once a ``BdevIo`` is freed there. Reusable once it has fired."""

    __slots__ = ("bdev", "cb", "cb_arg")

    def __init__(self, bdev: Bdev, cb: Callable[[Any], object], cb_arg: Any = None) -> None:
        self.bdev = bdev
        self.cb = cb
        self.cb_arg = cb_arg


@final
class BdevIoPool:
    """The global ``BdevIo`` pool (``bdev_io_<pid>``): bounded at ``size``, elements made on
    first use so a 65535-element pool costs nothing until it is needed. The free list is a deque
    (atomic ``pop``/``append``); only making a new element takes the lock."""

    __slots__ = ("_free", "_lock", "_unborn", "name", "refused", "size")

    def __init__(self, size: int, name: str) -> None:
        self.name = name
        self.size = size
        self._free: deque[BdevIo] = deque()
        self._unborn = size
        self._lock = threading.Lock()
        self.refused = 0

    def count(self) -> int:
        """Free requests (made or not yet made); cached ones are not counted."""
        return len(self._free) + self._unborn

    def get(self) -> BdevIo | None:
        try:
            return self._free.pop()
        except IndexError:
            pass
        with self._lock:
            if self._unborn == 0:
                self.refused += 1
                return None
            self._unborn -= 1
        return BdevIo()

    def get_bulk(self, n: int) -> list[BdevIo] | None:
        """Exactly ``n`` requests, or none at all."""
        taken: list[BdevIo] = []
        free = self._free
        try:
            while len(taken) < n:
                taken.append(free.pop())
        except IndexError:
            with self._lock:
                need = n - len(taken)
                if self._unborn < need:
                    self.refused += 1
                    free.extend(taken)
                    return None
                self._unborn -= need
            taken.extend(BdevIo() for _ in range(need))
        return taken

    def put(self, io: BdevIo) -> None:
        self._free.append(io)

    def put_bulk(self, ios: list[BdevIo]) -> None:
        self._free.extend(ios)


@final
class MgmtChannel:
    """One thread's management channel (io_device ``bdev_mgr``): the ``BdevIo`` cache, the
    io_wait queue and the shared resources of this thread."""

    __slots__ = ("cache", "cache_size", "io_wait_queue", "pool", "shared_resources", "thread")

    def __init__(self, pool: BdevIoPool, cache_size: int, thread: Thread) -> None:
        self.pool = pool
        self.cache_size = cache_size
        self.cache: list[BdevIo] = []
        self.io_wait_queue: deque[BdevIoWaitEntry] = deque()
        self.shared_resources: list[SharedResource] = []
        self.thread = thread


@final
class SharedResource:
    """Per (management channel, module channel): outstanding I/O and the NOMEM queue."""

    __slots__ = (
        "io_outstanding",
        "mgmt",
        "module_ch",
        "nomem_io",
        "nomem_poller",
        "nomem_threshold",
        "ref",
        "retrying",
        "thread",
    )

    def __init__(self, mgmt: MgmtChannel, module_ch: IoChannel[Any], thread: Thread) -> None:
        self.mgmt = mgmt
        self.module_ch = module_ch
        self.thread = thread
        self.ref = 0
        self.io_outstanding = 0
        self.nomem_io: deque[BdevIo] = deque()
        self.nomem_threshold = 0
        self.nomem_poller: Poller | None = None
        self.retrying = False


@final
class BdevChannel:
    """One thread's channel to one bdev (``struct spdk_bdev_channel``); the context of the
    io_channel a descriptor's ``get_io_channel`` returns."""

    __slots__ = (
        "bdev",
        "block_size",
        "flags",
        "io_outstanding",
        "mgmt",
        "mgmt_ch",
        "module_ch",
        "now",
        "queued_resets",
        "retired",
        "shared",
        "split",
        "stat",
        "submit",
        "thread",
    )

    def __init__(
        self,
        bdev: Bdev,
        thread: Thread,
        mgmt_ch: IoChannel[MgmtChannel],
        module_ch: IoChannel[Any],
        shared: SharedResource,
    ) -> None:
        self.bdev = bdev
        self.thread = thread
        self.mgmt_ch = mgmt_ch
        self.mgmt = mgmt_ch.ctx
        self.module_ch = module_ch
        self.shared = shared
        self.submit = bdev.fn_table.submit_request
        self.block_size = bdev.block_size
        self.split = bdev.may_split()
        self.now = thread.library.clock.now
        self.stat = BdevIoStat()
        self.io_outstanding = 0
        self.flags = 0
        self.queued_resets: list[BdevIo] = []
        self.retired = False  # its statistics moved to the bdev's (under the bdev lock)

    def __repr__(self) -> str:
        return f"<BdevChannel {self.bdev.name!r} on {self.thread.name!r}>"


# ---------------------------------------------------------------------------- get / submit


def get_io(bch: BdevChannel) -> BdevIo | None:
    """A free request for this thread, or ``None`` (``bdev_channel_get_io``).

    With the cache empty and io_wait entries queued, ``None``: no jumping the queue.
    """
    mgmt = bch.mgmt
    cache = mgmt.cache
    if cache:
        return cache.pop()
    if mgmt.io_wait_queue:
        return None
    return mgmt.pool.get()


def submit_io(bch: BdevChannel, io: BdevIo) -> None:
    """``bdev_io_submit``: stamp, split if needed, then submit (A1.3 steps 6-7)."""
    io.submit_tsc = bch.now()
    if bch.split:
        if _needs_split(bch, io):
            _split_start(bch, io)
            return
        if _short_of_write_unit(bch.bdev, io):
            return
    if bch.flags:
        # RESET_IN_PROGRESS: aborted at once, the callback by message.
        io.status = _ABORTED
        bch.thread.send_msg(_finish, io)
        return
    shared = bch.shared
    if shared.nomem_io:
        shared.nomem_io.append(io)  # keep the order of what NOMEM holds back
        return
    bch.io_outstanding += 1
    shared.io_outstanding += 1
    io.in_submit = True
    try:
        bch.submit(bch.module_ch, io)
    except Exception as exc:  # free when nothing is raised (3.11): no cost on the hot path
        _submit_failed(bch, io, exc)
    io.in_submit = False


def _submit_failed(bch: BdevChannel, io: BdevIo, exc: Exception) -> None:
    """The module raised in ``submit_request`` (a bug, or a buffer it cannot use, such as a
    read-only one for a read): the request still completes, failed, by message."""
    log.error("%s module raised on %r of bdev %s: %r", bch.bdev.module.name, io, bch.bdev.name, exc)
    bch.io_outstanding -= 1
    bch.shared.io_outstanding -= 1
    if io.status == _PENDING:
        complete_later(io, _FAILED)


def complete_later(io: BdevIo, status: int) -> None:
    """Complete a request that never reached the module, by message (A1.4, last rule)."""
    io.status = status
    io.ch.thread.send_msg(_finish, io)


def _finish(io: BdevIo) -> None:
    """Statistics, then the user's callback (``bdev_io_complete``)."""
    bch = io.ch
    status = io.status
    if status == _SUCCESS:
        kind = io.type
        if kind == _READ:
            stat = bch.stat
            diff = bch.now() - io.submit_tsc
            stat.bytes_read += io.num_blocks * bch.block_size
            stat.num_read_ops += 1
            stat.read_latency_ticks += diff
            if diff > stat.max_read_latency_ticks:
                stat.max_read_latency_ticks = diff
            if diff < stat.min_read_latency_ticks:
                stat.min_read_latency_ticks = diff
        elif kind == _WRITE:
            stat = bch.stat
            diff = bch.now() - io.submit_tsc
            stat.bytes_written += io.num_blocks * bch.block_size
            stat.num_write_ops += 1
            stat.write_latency_ticks += diff
            if diff > stat.max_write_latency_ticks:
                stat.max_write_latency_ticks = diff
            if diff < stat.min_write_latency_ticks:
                stat.min_write_latency_ticks = diff
        elif kind == _UNMAP:
            stat = bch.stat
            diff = bch.now() - io.submit_tsc
            stat.bytes_unmapped += io.num_blocks * bch.block_size
            stat.num_unmap_ops += 1
            stat.unmap_latency_ticks += diff
            if diff > stat.max_unmap_latency_ticks:
                stat.max_unmap_latency_ticks = diff
            if diff < stat.min_unmap_latency_ticks:
                stat.min_unmap_latency_ticks = diff
        elif kind == _COPY:
            stat = bch.stat
            diff = bch.now() - io.submit_tsc
            stat.bytes_copied += io.num_blocks * bch.block_size
            stat.num_copy_ops += 1
            stat.copy_latency_ticks += diff
            if diff > stat.max_copy_latency_ticks:
                stat.max_copy_latency_ticks = diff
            if diff < stat.min_copy_latency_ticks:
                stat.min_copy_latency_ticks = diff
    elif status < 0:
        io.bdev.count_error(status)
    io.cb(io, status == _SUCCESS, io.cb_arg)


# ---------------------------------------------------------------------------- NOMEM (A1.5.2)


def _queue_nomem(shared: SharedResource, io: BdevIo) -> None:
    shared.nomem_io.appendleft(io)
    outstanding = shared.io_outstanding
    shared.nomem_threshold = max(outstanding // 2, outstanding - NOMEM_THRESHOLD_COUNT)
    if outstanding == 0 and shared.nomem_poller is None:
        shared.nomem_poller = shared.thread.register_poller(
            _nomem_poll, shared, period_us=NOMEM_POLL_US, name="bdev_no_mem_poller"
        )


def _retry_nomem(shared: SharedResource) -> None:
    """Resubmit in queue order; stop at the first request that fails NOMEM again."""
    if shared.retrying:
        return  # a completion inside a retry: the outer loop carries on
    shared.retrying = True
    try:
        queue = shared.nomem_io
        while queue:
            io = queue.popleft()
            bch = io.ch
            bch.io_outstanding += 1
            shared.io_outstanding += 1
            io.in_submit = True
            bch.submit(bch.module_ch, io)
            io.in_submit = False
            if queue and queue[0] is io:
                break  # it came back NOMEM (requeued at the head): try again later
    finally:
        shared.retrying = False


def _nomem_poll(shared: SharedResource) -> int:
    poller = shared.nomem_poller
    if poller is not None:
        poller.unregister()
        shared.nomem_poller = None
    if shared.nomem_io:
        _retry_nomem(shared)
    if shared.nomem_io and shared.io_outstanding == 0 and shared.nomem_poller is None:
        shared.nomem_poller = shared.thread.register_poller(
            _nomem_poll, shared, period_us=NOMEM_POLL_US, name="bdev_no_mem_poller"
        )
    return POLLER_BUSY


def abort_queued(bch: BdevChannel) -> None:
    """Abort (status ABORTED, callback by message) this channel's requests held in NOMEM."""
    queue = bch.shared.nomem_io
    if not queue:
        return
    keep = [io for io in queue if io.ch is not bch]
    aborted = [io for io in queue if io.ch is bch]
    queue.clear()
    queue.extend(keep)
    for io in aborted:
        complete_later(io, _ABORTED)


# ---------------------------------------------------------------------------- splitting (A1.6)


def _rw_boundary(bdev: Bdev, kind: int) -> int:
    if kind == _WRITE and bdev.split_on_write_unit:
        return bdev.write_unit_size
    if bdev.split_on_optimal_io_boundary:
        return bdev.optimal_io_boundary
    return 0


def _needs_split(bch: BdevChannel, io: BdevIo) -> bool:
    bdev = bch.bdev
    kind = io.type
    num = io.num_blocks
    if kind in (_READ, _WRITE):
        if num == 0:
            return False
        boundary = _rw_boundary(bdev, kind)
        if boundary and io.offset_blocks // boundary != (io.offset_blocks + num - 1) // boundary:
            return True
        if bdev.max_rw_size and num > bdev.max_rw_size:
            return True
        iovs = io.iovs
        if iovs is not None:
            if bdev.max_num_segments and len(iovs) > bdev.max_num_segments:
                return True
            if bdev.max_segment_size and any(len(v) > bdev.max_segment_size for v in iovs):
                return True
        return False
    if kind == _WRITE_ZEROES:
        return not bdev.native_write_zeroes or (
            bool(bdev.max_write_zeroes) and num > bdev.max_write_zeroes
        )
    if kind == _UNMAP:
        if not bdev.max_unmap or num == 0:
            return False
        segments = -(-num // bdev.max_unmap)
        return segments > max(1, bdev.max_unmap_segments)
    if kind == _COPY:
        return bool(bdev.max_copy) and num > bdev.max_copy
    return False


@final
class _Split:
    """A split parent's progress."""

    __slots__ = ("failed", "limit", "next_offset", "outstanding", "parent", "remaining", "wait")

    def __init__(self, parent: BdevIo, limit: int) -> None:
        self.parent = parent
        self.next_offset = parent.offset_blocks
        self.remaining = parent.num_blocks
        self.outstanding = 0
        self.failed = False
        self.limit = limit
        self.wait: BdevIoWaitEntry | None = None


def _split_start(bch: BdevChannel, parent: BdevIo) -> None:
    bdev = bch.bdev
    kind = parent.type
    if kind == _READ and parent.iovs is None:
        # A split read needs one buffer the children can fill in place.
        buf = alloc_io_buffer(parent.num_blocks * bdev.block_size, 1 << bdev.required_alignment)
        parent.buf = buf
        parent._iov1[0] = buf
        parent.iovs = parent._iov1
    limit = SPLIT_RW_CHILDREN if kind in (_READ, _WRITE) else SPLIT_OTHER_CHILDREN
    parent.internal = _Split(parent, limit)
    _split_continue(parent.internal)


def _iov_slices(iovs: list[Any], start: int, length: int, max_seg: int) -> list[memoryview]:
    """The bytes ``[start, start+length)`` of ``iovs`` as memoryview pieces of ``<= max_seg``."""
    out: list[memoryview] = []
    pos = 0
    for iov in iovs:
        size = len(iov)
        if pos + size <= start:
            pos += size
            continue
        view = memoryview(iov).cast("B") if not isinstance(iov, memoryview) else iov
        lo = max(0, start - pos)
        hi = min(size, start + length - pos)
        while lo < hi:
            step = hi - lo if not max_seg else min(hi - lo, max_seg)
            out.append(view[lo : lo + step])
            lo += step
        pos += size
        if pos >= start + length:
            break
    return out


def _split_continue(state: _Split) -> None:
    parent = state.parent
    bch = parent.ch
    bdev = bch.bdev
    kind = parent.type
    block_size = bch.block_size
    while state.remaining and not state.failed and state.outstanding < state.limit:
        offset = state.next_offset
        num = state.remaining
        child_kind = kind
        iovs: list[Any] | None = None
        if kind in (_READ, _WRITE):
            boundary = _rw_boundary(bdev, kind)
            if boundary:
                num = min(num, boundary - offset % boundary)
            if bdev.max_rw_size:
                num = min(num, bdev.max_rw_size)
            assert parent.iovs is not None
            start = (offset - parent.offset_blocks) * block_size
            pieces = _iov_slices(parent.iovs, start, num * block_size, bdev.max_segment_size)
            if bdev.max_num_segments and len(pieces) > bdev.max_num_segments:
                pieces = pieces[: bdev.max_num_segments]
                covered = sum(len(p) for p in pieces) // block_size
                if covered == 0:
                    log.error("The first child io was less than a block size")
                    state.failed = True
                    break
                num = covered
                pieces = _iov_slices(parent.iovs, start, num * block_size, bdev.max_segment_size)
            iovs = list(pieces)
        elif kind == _WRITE_ZEROES:
            zero_blocks = max(1, ZERO_BUFFER_SIZE // block_size)
            cap = bdev.max_write_zeroes or zero_blocks
            num = min(num, cap)
            if not bdev.native_write_zeroes:
                child_kind = _WRITE  # emulated from the shared zero buffer
                num = min(num, zero_blocks)
                iovs = [_ZERO[: num * block_size]]
        elif kind == _UNMAP:
            num = min(num, bdev.max_unmap * max(1, bdev.max_unmap_segments))
        elif kind == _COPY:
            num = min(num, bdev.max_copy)
        child = get_io(bch)
        if child is None:
            if state.outstanding == 0:
                # Nothing in flight will call us back: wait for a free request.
                if state.wait is None:
                    state.wait = BdevIoWaitEntry(bdev, _split_resume, state)
                bch.mgmt.io_wait_queue.append(state.wait)
            return
        child.bdev = bdev
        child.ch = bch
        child.type = child_kind
        child.status = _PENDING
        child.offset_blocks = offset
        child.num_blocks = num
        child.src_offset_blocks = parent.src_offset_blocks + (offset - parent.offset_blocks)
        if iovs is not None:
            child.iovs = iovs
            child.buf = iovs[0] if len(iovs) == 1 else None
        else:
            child.iovs = None
            child.buf = None
        child.cb = _split_child_done
        child.cb_arg = state
        state.next_offset += num
        state.remaining -= num
        state.outstanding += 1
        child.submit_tsc = bch.now()
        _submit_child(bch, child)
    if state.outstanding == 0 and (state.failed or not state.remaining):
        _split_finish(state)


def _short_of_write_unit(bdev: Bdev, io: BdevIo) -> bool:
    """A write smaller than the write unit fails (checked where SPDK's ``bdev_io_do_submit``
    does, so a split child that ends up short fails too)."""
    if io.type == _WRITE and bdev.split_on_write_unit and io.num_blocks < bdev.write_unit_size:
        log.error(
            "IO num_blocks %d does not match the write_unit_size %d",
            io.num_blocks,
            bdev.write_unit_size,
        )
        complete_later(io, _FAILED)
        return True
    return False


def _submit_child(bch: BdevChannel, io: BdevIo) -> None:
    if _short_of_write_unit(bch.bdev, io):
        return
    if bch.flags:
        complete_later(io, _ABORTED)
        return
    shared = bch.shared
    if shared.nomem_io:
        shared.nomem_io.append(io)
        return
    bch.io_outstanding += 1
    shared.io_outstanding += 1
    io.in_submit = True
    try:
        bch.submit(bch.module_ch, io)
    except Exception as exc:
        _submit_failed(bch, io, exc)
    io.in_submit = False


def _split_resume(state: _Split) -> None:
    _split_continue(state)


def _split_child_done(child: BdevIo, success: bool, state: _Split) -> None:
    child.free()
    state.outstanding -= 1
    if not success:
        state.failed = True
    if state.remaining and not state.failed:
        _split_continue(state)
    elif state.outstanding == 0:
        _split_finish(state)


def _split_finish(state: _Split) -> None:
    # By message: this may run on the parent's own submit stack (a split that fails at once).
    parent = state.parent
    if parent.status != _PENDING:
        return
    parent.status = _FAILED if state.failed else _SUCCESS
    parent.ch.thread.send_msg(_split_deliver, parent)


def _split_deliver(parent: BdevIo) -> None:
    parent.cb(parent, parent.status == _SUCCESS, parent.cb_arg)


# ---------------------------------------------------------------------------- reset (A1.8)


@final
class _Reset:
    """A reset's private state: the channel reference it holds and its drain deadline."""

    __slots__ = ("at_module", "ch_ref", "deadline", "poller")

    def __init__(self, ch_ref: IoChannel[Any]) -> None:
        self.ch_ref = ch_ref
        self.at_module = False
        self.deadline = 0
        self.poller: Poller | None = None


def submit_reset(bch: BdevChannel, io: BdevIo) -> None:
    """Start a reset, or queue it behind the bdev's reset in progress (it then inherits that
    reset's status)."""
    bdev = bch.bdev
    io.submit_tsc = bch.now()
    with bdev.lock:
        start = bdev.reset_in_progress is None
        if start:
            bdev.reset_in_progress = io
        else:
            bch.queued_resets.append(io)
    if not start:
        return
    io.internal = _Reset(get_io_channel(bdev))
    for_each_channel(bdev, _freeze_channel, _freeze_done, io)


def _freeze_channel(it: ChannelIterator) -> None:
    assert it.channel is not None
    bch: BdevChannel = it.channel.ctx  # type: ignore[assignment]
    bch.flags |= RESET_IN_PROGRESS
    abort_queued(bch)
    it.done(0)


def _freeze_done(it: ChannelIterator, status: int) -> None:
    io: BdevIo = it.ctx  # type: ignore[assignment]
    bdev = io.bdev
    state: _Reset = io.internal
    timeout_s = bdev.reset_io_drain_timeout
    if not timeout_s:
        _reset_to_module(io)
        return
    clock = io.ch.thread.library.clock
    state.deadline = clock.now() + timeout_s * clock.ticks_per_second
    state.poller = io.ch.thread.register_poller(
        _reset_check_outstanding, io, period_us=RESET_CHECK_US, name="bdev_reset_poller"
    )


def _reset_check_outstanding(io: BdevIo) -> int:
    state: _Reset = io.internal
    if state.poller is not None:
        state.poller.pause()
    totals = [0]

    def count(it: ChannelIterator) -> None:
        assert it.channel is not None
        bch: BdevChannel = it.channel.ctx  # type: ignore[assignment]
        totals[0] += bch.io_outstanding
        it.done(0)

    def counted(it: ChannelIterator, status: int) -> None:
        if totals[0] == 0:
            _stop_reset_poller(state)
            _reset_module_done(io, _SUCCESS, at_module=False)  # drained: no module reset
        elif io.ch.now() >= state.deadline:
            _stop_reset_poller(state)
            _reset_to_module(io)
        elif state.poller is not None:
            state.poller.resume()

    for_each_channel(io.bdev, count, counted)
    return POLLER_BUSY


def _stop_reset_poller(state: _Reset) -> None:
    if state.poller is not None:
        state.poller.unregister()
        state.poller = None


def _reset_to_module(io: BdevIo) -> None:
    bch = io.ch
    state: _Reset = io.internal
    state.at_module = True
    bch.io_outstanding += 1
    bch.shared.io_outstanding += 1
    io.in_submit = True
    bch.submit(bch.module_ch, io)
    io.in_submit = False


def _reset_module_done(io: BdevIo, status: int, *, at_module: bool = True) -> None:
    bch = io.ch
    if at_module:
        bch.io_outstanding -= 1
        bch.shared.io_outstanding -= 1
    if status == _NOMEM:
        log.error("NOMEM returned for reset")
        status = _FAILED
    io.status = status
    bdev = io.bdev
    with bdev.lock:
        if bdev.reset_in_progress is io:
            bdev.reset_in_progress = None
    for_each_channel(bdev, _unfreeze_channel, _unfreeze_done, io)


def _unfreeze_channel(it: ChannelIterator) -> None:
    assert it.channel is not None
    bch: BdevChannel = it.channel.ctx  # type: ignore[assignment]
    reset: BdevIo = it.ctx  # type: ignore[assignment]
    bch.flags &= ~RESET_IN_PROGRESS
    queued = bch.queued_resets
    if queued:
        bch.queued_resets = []
        for io in queued:
            complete_later(io, reset.status)
    it.done(0)


def _unfreeze_done(it: ChannelIterator, status: int) -> None:
    io: BdevIo = it.ctx  # type: ignore[assignment]
    state: _Reset = io.internal
    bdev = io.bdev
    io.internal = None
    state.ch_ref.put()
    _finish(io)
    bdev.reset_finished()
