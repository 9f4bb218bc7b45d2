"""The ``aio`` bdev module: a file or block device as a bdev (SPDK's ``module/bdev/aio``,
SPEC-STORAGE A2).

Theory of operation
-------------------
* A disk (:class:`AioDisk`) keeps one descriptor of the file, opened ``O_DIRECT`` (read-only
  when ``readonly``) and reopened without ``O_DIRECT`` if that fails, as SPDK does. It answers
  size questions (create, rescan, hot-remove detection) and names the file for its channels.
* Each thread that uses a disk gets a file channel (io_device = the disk, as SPDK's
  ``bdev_aio_io_channel``) holding its own :class:`~spdkpy.bdev._aio_engine.AioEngine` on the
  same file (reopened through ``/proc/self/fd``, so it is the same inode even if the path has
  gone): SPDK gives each channel its own io context, and an engine is only ever submitted to and
  polled from its owner thread, so the data path takes no lock on free-threaded builds either.
* Each thread also holds one group channel (io_device ``aio_module``) whose period-0 poller
  ``bdev_aio_group_poll`` polls every file channel of the thread. It registers an epoll set
  holding each engine's ``wake_fd`` as its own ``wake_fd``, so a reactor with nothing else to do
  sleeps and is woken by a completion.
* Completions run in the poller on the submitting thread: result == length is SUCCESS,
  ``-EAGAIN`` NOMEM (the layer retries), other errors AIO_ERROR, a short transfer FAILED; an
  ``-EIO`` or short result on a file whose size is now 0 is a hot-remove (the bdev is deleted on
  the app thread). A full engine (128 in flight per channel) answers NOMEM at submit.
* Buffers: ``O_DIRECT`` needs the offset, each buffer's length and address aligned to the
  device's block size (``required_alignment``). Callers that allocate with
  ``alloc_io_buffer(n, 1 << bdev.required_alignment)`` (hello_bdev, bdevperf) are used in place;
  any other buffer is bounced through an aligned one of this channel (copied in for a write,
  out after a read), because the bdev layer here has no bounce buffers of its own.
* flush is ``fsync`` and unmap/write_zeroes are ``fallocate`` (PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE;
  only with ``fallocate: true``), all run by the engine off the reactor (SPDK calls them
  synchronously). reset waits until no channel has I/O in flight, re-checking every 500 us.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import stat
import struct
import threading
import uuid as uuid_mod
from dataclasses import dataclass
from typing import Any, Final, cast, final

from spdkpy._log import notice
from spdkpy.bdev._aio_engine import (
    FALLOC_FL_KEEP_SIZE,
    FALLOC_FL_PUNCH_HOLE,
    FALLOC_FL_ZERO_RANGE,
    AioEngine,
    alloc_aligned,
)
from spdkpy.bdev._bdev import (
    Bdev,
    BdevFnTable,
    BdevModule,
    bdev_destruct_done,
    bdev_module_register,
    bdev_notify_blockcnt_change,
    bdev_register,
    bdev_unregister_by_name,
    open_bdev,
)
from spdkpy.bdev._io import BdevIo
from spdkpy.bdev._types import BdevEvent, IoType
from spdkpy.errors import AlignmentError, BdevError
from spdkpy.thread import (
    POLLER_BUSY,
    POLLER_IDLE,
    ChannelIterator,
    IoChannel,
    Poller,
    current_library,
    for_each_channel,
    get_io_channel,
    get_thread,
    io_device_register,
    io_device_unregister,
)

__all__ = [
    "AIO_MODULE",
    "AioDisk",
    "AioModule",
    "AioOpts",
    "create_aio_bdev",
    "delete_aio_bdev",
    "rescan_aio_bdev",
]

log = logging.getLogger("spdkpy.bdev_aio")

AIO_QUEUE_DEPTH: Final = 128
"""I/O in flight per file channel (SPDK's ``SPDK_AIO_QUEUE_DEPTH``, its ``io_setup`` size)."""
RESET_RETRY_US: Final = 500
BOUNCE_CACHE: Final = 32
"""Spare bounce buffers a channel keeps per size (misaligned callers reuse them)."""
BOUNCE_CACHE_MAX_BYTES: Final = 1 << 20

_BLKSSZGET: Final = 0x1268  # ioctl: logical sector size of a block device (int)
_BLKGETSIZE64: Final = 0x80081272  # ioctl: size of a block device in bytes (u64)

_READ: Final = 1
_WRITE: Final = 2
_UNMAP: Final = 3
_FLUSH: Final = 4
_RESET: Final = 5
_WRITE_ZEROES: Final = 9
_SUCCESS: Final = 1
_FAILED: Final = -1
_NOMEM: Final = -4
_AIO_ERROR: Final = -8
_UNMAP_MODE: Final = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
_BACKENDS: Final = ("auto", "io_uring", "threads")


@dataclass(frozen=True, slots=True)
class AioOpts:
    """The params of ``bdev_aio_create``. ``block_size`` 0 means auto-detect (block devices
    only, as SPDK: a regular file needs an explicit size)."""

    name: str
    filename: str
    block_size: int = 0
    readonly: bool = False
    fallocate: bool = False
    uuid: uuid_mod.UUID | None = None
    nowait: bool = False


# ---------------------------------------------------------------------------- file helpers


def _fd_size(fd: int) -> int:
    """``spdk_fd_get_size``: a regular file's size, a block device's capacity, else 0."""
    try:
        st = os.fstat(fd)
    except OSError:
        return 0
    if stat.S_ISREG(st.st_mode):
        return st.st_size
    if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
        try:
            return int(struct.unpack("Q", fcntl.ioctl(fd, _BLKGETSIZE64, bytes(8)))[0])
        except OSError:
            return 0
    return 0


def _fd_blocklen(fd: int) -> int:
    """``spdk_fd_get_blocklen``: a block device's logical sector size, else 0 (a regular file
    has none to detect)."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, _BLKSSZGET, bytes(4)))[0])
    except OSError:
        return 0


def _open(filename: str, readonly: bool) -> tuple[int, bool]:
    """Open as SPDK's ``bdev_aio_open``: with ``O_DIRECT``, else (any failure) without it."""
    flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC
    try:
        return os.open(filename, flags | os.O_DIRECT), True
    except OSError:
        pass
    return os.open(filename, flags), False


# ---------------------------------------------------------------------------- channels


@final
class _Bounce:
    """A request whose caller's buffers cannot be used for ``O_DIRECT``: it runs on ``buf``."""

    __slots__ = ("buf", "io")

    def __init__(self, io: BdevIo, buf: memoryview) -> None:
        self.io = io
        self.buf = buf


@final
class _GroupChannel:
    """One thread's group channel (io_device ``aio_module``): its file channels and the poller
    that reaps them all (``bdev_aio_group_poll``)."""

    __slots__ = ("channels", "epoll", "poller", "polls")

    def __init__(self) -> None:
        self.channels: list[_FileChannel] = []
        self.polls: tuple[Any, ...] = ()
        self.epoll = select.epoll()
        self.poller: Poller | None = None

    def add(self, fch: _FileChannel) -> None:
        self.epoll.register(fch.engine.wake_fd, select.EPOLLIN)
        self.channels.append(fch)
        self.polls = tuple(c.engine.poll for c in self.channels)

    def remove(self, fch: _FileChannel) -> None:
        self.channels.remove(fch)
        self.polls = tuple(c.engine.poll for c in self.channels)
        try:
            self.epoll.unregister(fch.engine.wake_fd)
        except OSError:
            pass


def _group_poll(group: _GroupChannel) -> int:
    done = 0
    for poll in group.polls:
        done += poll()
    return POLLER_BUSY if done else POLLER_IDLE


def _group_create(obj: object) -> _GroupChannel:
    group = _GroupChannel()
    thread = get_thread()
    assert thread is not None
    group.poller = thread.register_poller(
        _group_poll, group, name="bdev_aio_group_poll", wake_fd=group.epoll.fileno()
    )
    return group


def _group_destroy(obj: object, group: _GroupChannel) -> None:
    if group.channels:
        log.error("Group channel of bdev aio has uncleared io channel")
    if group.poller is not None:
        group.poller.unregister()
        group.poller = None
    group.epoll.close()


@final
class _FileChannel:
    """One thread's channel to one disk: its engine and spare bounce buffers."""

    __slots__ = ("align", "block_size", "disk", "engine", "group_ch", "spare")

    engine: AioEngine[Any]
    group_ch: IoChannel[_GroupChannel]

    def __init__(self, disk: AioDisk) -> None:
        self.disk = disk
        self.block_size = disk.bdev.block_size
        self.align = disk.alignment
        self.spare: dict[int, list[memoryview]] = {}

    def on_complete(self, cookie: Any, result: int) -> None:
        """The engine's completion callback (in the group poller, on this channel's thread)."""
        io = cookie if type(cookie) is BdevIo else self._unbounce(cookie, result)
        kind = io.type
        expected = io.num_blocks * self.block_size if kind in (_READ, _WRITE) else 0
        if result == expected:
            io.complete(_SUCCESS)
        else:
            self.disk.complete_failed(io, result, expected)

    # ------------------------------------------------------------------ bounce buffers

    def bounce(self, io: BdevIo, nbytes: int) -> _Bounce:
        free = self.spare.get(nbytes)
        buf = free.pop() if free else alloc_aligned(nbytes, self.align)
        if io.type == _WRITE:
            _gather(io.iovs, buf, nbytes)
        return _Bounce(io, buf)

    def _unbounce(self, bounce: _Bounce, result: int) -> BdevIo:
        io = bounce.io
        buf = bounce.buf
        nbytes = len(buf)
        if io.type == _READ and result == nbytes:
            _scatter(buf, io.iovs, nbytes)
        self.keep(buf)
        return io

    def keep(self, buf: memoryview) -> None:
        """Give a bounce buffer back for reuse (a few per size)."""
        nbytes = len(buf)
        if nbytes <= BOUNCE_CACHE_MAX_BYTES:
            free = self.spare.setdefault(nbytes, [])
            if len(free) < BOUNCE_CACHE:
                free.append(buf)


def _exact(iovs: list[Any], nbytes: int) -> list[memoryview]:
    """The first ``nbytes`` of ``iovs`` as byte views (the layer allows longer buffers)."""
    out: list[memoryview] = []
    left = nbytes
    for iov in iovs:
        if left <= 0:
            break
        view = iov if type(iov) is memoryview else memoryview(iov)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        if len(view) > left:
            view = view[:left]
        out.append(view)
        left -= len(view)
    return out


def _gather(iovs: list[Any] | None, buf: memoryview, nbytes: int) -> None:
    assert iovs is not None
    pos = 0
    for view in _exact(iovs, nbytes):
        buf[pos : pos + len(view)] = view
        pos += len(view)


def _scatter(buf: memoryview, iovs: list[Any] | None, nbytes: int) -> None:
    assert iovs is not None
    pos = 0
    for view in _exact(iovs, nbytes):
        view[:] = buf[pos : pos + len(view)]
        pos += len(view)


def _ignore_event(event: BdevEvent, bdev: Bdev) -> None:
    return None


# ---------------------------------------------------------------------------- the disk


@final
class AioDisk(BdevFnTable):
    """One aio bdev (SPDK's ``struct file_disk``): the file, its options and the bdev."""

    def __init__(
        self,
        module: AioModule,
        opts: AioOpts,
        fd: int,
        direct: bool,
        block_size: int,
        alignment: int,
        override: bool,
        num_blocks: int,
    ) -> None:
        self.module = module
        self.opts = opts
        self.filename = opts.filename
        self.fd = fd
        self.direct = direct
        self.alignment = alignment
        self.block_size_override = override
        self.readonly = opts.readonly
        self.fallocate = opts.fallocate
        self.nowait = opts.nowait
        self.reset_io: BdevIo | None = None
        self._reset_poller: Poller | None = None
        self._hot_remove_lock = threading.Lock()
        self.hot_remove_in_progress = False
        self.bdev = Bdev(
            opts.name,
            fn_table=self,
            module=module,
            block_size=block_size,
            num_blocks=num_blocks,
            product_name="AIO disk",
            write_cache=True,
            uuid=opts.uuid,
            required_alignment=alignment.bit_length() - 1,
            ctxt=self,
        )

    def __repr__(self) -> str:
        return f"<AioDisk {self.bdev.name!r} {self.filename!r}>"

    def size(self) -> int:
        """The file's (or device's) size in bytes now."""
        return _fd_size(self.fd)

    def _reopen_path(self) -> str:
        # The same open file, whatever became of its path since.
        path = f"/proc/self/fd/{self.fd}"
        return path if os.path.exists(path) else self.filename

    # ------------------------------------------------------------------ channels

    def channel_create(self, obj: object) -> _FileChannel:
        fch = _FileChannel(self)
        fch.engine = AioEngine(
            self._reopen_path(),
            self.alignment,
            fch.on_complete,
            direct=self.direct,
            readonly=self.readonly,
            depth=AIO_QUEUE_DEPTH,
            backend=self.module.backend,
        )
        try:
            group_ch = get_io_channel(self.module)
        except BaseException:
            fch.engine.close()
            raise
        fch.group_ch = cast("IoChannel[_GroupChannel]", group_ch)
        fch.group_ch.ctx.add(fch)
        return fch

    def channel_destroy(self, obj: object, fch: _FileChannel) -> None:
        group_ch: IoChannel[_GroupChannel] = fch.group_ch
        group_ch.ctx.remove(fch)
        # Normally nothing is in flight here; if a user put its channel early, close() waits for
        # the kernel and still completes every request.
        fch.engine.close()
        group_ch.put()

    # ------------------------------------------------------------------ fn_table

    def submit_request(self, ch: IoChannel[Any], io: BdevIo) -> None:
        fch: _FileChannel = ch.ctx
        kind = io.type
        if kind in (_READ, _WRITE):
            if kind == _WRITE and self.readonly:
                io.complete(_FAILED)
                return
            block_size = fch.block_size
            nbytes = io.num_blocks * block_size
            if not nbytes:
                io.complete(_SUCCESS)  # as a 0-byte preadv: nothing to move
                return
            offset = io.offset_blocks * block_size
            buf = io.buf
            if buf is None:
                if io.iovs is None:  # a read without a buffer: give it an aligned one
                    buf = alloc_aligned(nbytes, fch.align)
                    io.buf = buf
                    io._iov1[0] = buf
                    io.iovs = io._iov1
                    target: Any = buf
                else:
                    target = _exact(io.iovs, nbytes)
            elif len(buf) == nbytes:
                target = buf
            else:
                assert io.iovs is not None
                target = _exact(io.iovs, nbytes)
            engine = fch.engine
            submit = engine.try_submit_read if kind == _READ else engine.try_submit_write
            try:
                accepted = submit(offset, target, io)
            except AlignmentError:
                # O_DIRECT cannot use these buffers (address or piece lengths): bounce.
                bounce = fch.bounce(io, nbytes)
                accepted = submit(offset, bounce.buf, bounce)
                if not accepted:
                    fch.keep(bounce.buf)
            if not accepted:
                io.complete(_NOMEM)
            return
        if kind == _FLUSH:
            if not fch.engine.try_submit_flush(io):
                io.complete(_NOMEM)
            return
        if kind in (_UNMAP, _WRITE_ZEROES):
            self._fallocate(fch, io, _UNMAP_MODE if kind == _UNMAP else FALLOC_FL_ZERO_RANGE)
            return
        if kind == _RESET:
            self.reset_io = io
            self._reset_check()
            return
        io.complete(_FAILED)

    def _fallocate(self, fch: _FileChannel, io: BdevIo, mode: int) -> None:
        if not self.fallocate:
            io.complete(_AIO_ERROR)  # SPDK: complete_aio_status(-ENOTSUP)
            return
        block_size = fch.block_size
        if not io.num_blocks:
            io.complete(_SUCCESS)
            return
        if not fch.engine.try_submit_fallocate(
            mode, io.offset_blocks * block_size, io.num_blocks * block_size, io
        ):
            io.complete(_NOMEM)

    def complete_failed(self, io: BdevIo, result: int, expected: int) -> None:
        """A completion that did not move ``expected`` bytes (``bdev_aio_io_channel_poll``)."""
        rc = result
        # A detached device fails I/O with 0 or -EIO and reports a size of 0 from then on.
        if (rc == -errno.EIO or rc >= 0) and self.size() == 0:
            rc = -errno.ENODEV
        if rc == -errno.EAGAIN:
            io.complete(_NOMEM)
        elif rc == -errno.ENODEV:
            self.try_hot_remove()
            io.complete(_AIO_ERROR)
        elif rc < 0:
            log.error(
                "[%s,filename:%s] failed to complete: rc %d (%s)",
                self.bdev.name,
                self.filename,
                rc,
                os.strerror(-rc),
            )
            io.complete(_AIO_ERROR)
        else:
            log.error(
                "[%s,filename:%s] failed to complete: rc %d (%d bytes asked)",
                self.bdev.name,
                self.filename,
                rc,
                expected,
            )
            io.complete(_FAILED)

    # ------------------------------------------------------------------ reset

    def _reset_check(self) -> None:
        for_each_channel(self, _reset_visit, self._reset_checked)

    def _reset_checked(self, it: ChannelIterator, status: int) -> None:
        io = self.reset_io
        if io is None:
            return
        if status:
            thread = get_thread()
            assert thread is not None
            self._reset_poller = thread.register_poller(
                self._reset_retry, period_us=RESET_RETRY_US, name="bdev_aio_reset_retry_timer"
            )
            return
        self.reset_io = None
        io.complete(_SUCCESS)

    def _reset_retry(self) -> int:
        poller = self._reset_poller
        if poller is not None:
            poller.unregister()
            self._reset_poller = None
        self._reset_check()
        return POLLER_BUSY

    # ------------------------------------------------------------------ the rest of fn_table

    def io_type_supported(self, io_type: IoType) -> bool:
        if io_type in (IoType.READ, IoType.WRITE, IoType.FLUSH, IoType.RESET):
            return True
        if io_type in (IoType.UNMAP, IoType.WRITE_ZEROES):
            return self.fallocate
        return False

    def get_io_channel(self) -> IoChannel[Any]:
        return get_io_channel(self)

    def destruct(self) -> int:
        # Asynchronous: file channels may still be on their way out (their last put is a
        # message); the file is closed once the last one is destroyed.
        io_device_unregister(self, self._destructed)
        return 1

    def _destructed(self) -> None:
        if self in self.module.disks:
            self.module.disks.remove(self)
        try:
            os.close(self.fd)
        except OSError as exc:
            log.error("[%s] close() failed: %s", self.bdev.name, exc)
        bdev_destruct_done(self.bdev, 0)

    def dump_info_json(self) -> dict[str, object]:
        return {
            "aio": {
                "filename": self.filename,
                "block_size_override": self.block_size_override,
                "readonly": self.readonly,
                "fallocate": self.fallocate,
                "nowait": self.nowait,
            }
        }

    def write_config_json(self) -> list[dict[str, object]]:
        bdev = self.bdev
        params: dict[str, object] = {"name": bdev.name}
        if self.block_size_override:
            params["block_size"] = bdev.block_size
        params["filename"] = self.filename
        params["readonly"] = self.readonly
        params["fallocate"] = self.fallocate
        if bdev.uuid is not None and bdev.uuid.int:
            params["uuid"] = str(bdev.uuid)
        params["nowait"] = self.nowait
        return [{"method": "bdev_aio_create", "params": params}]

    # ------------------------------------------------------------------ hot remove

    def try_hot_remove(self) -> None:
        """Delete this bdev from the app thread, once, whichever thread notices first."""
        with self._hot_remove_lock:
            if self.hot_remove_in_progress:
                return
            self.hot_remove_in_progress = True
        log.error(
            "[%s,filename:%s] hot-remove detected, unregistering bdev...",
            self.bdev.name,
            self.filename,
        )
        app_thread = current_library().app_thread
        assert app_thread is not None
        app_thread.send_msg(_hot_remove, self.bdev.name)


def _reset_visit(it: ChannelIterator) -> None:
    assert it.channel is not None
    fch: _FileChannel = it.channel.ctx  # type: ignore[assignment]
    it.done(-1 if fch.engine.in_flight else 0)


def _hot_remove(name: str) -> None:
    try:
        delete_aio_bdev(name)
    except BdevError as exc:
        log.info("hot-remove of %s: %s", name, exc)


# ---------------------------------------------------------------------------- the module


@final
class AioModule(BdevModule):
    """The ``aio`` module; its io_device ``aio_module`` gives one group channel per thread.

    :attr:`backend` picks the engine's backend for channels made from now on: ``"auto"`` (the
    default; environment variable ``SPDKPY_AIO_BACKEND`` at module init), ``"io_uring"`` or
    ``"threads"``.
    """

    name = "aio"

    def __init__(self) -> None:
        super().__init__()
        self.disks: list[AioDisk] = []
        self.backend: Any = "auto"

    def module_init(self) -> int:
        self.disks = []
        backend = os.environ.get("SPDKPY_AIO_BACKEND", "auto") or "auto"
        if backend not in _BACKENDS:
            log.error("SPDKPY_AIO_BACKEND=%s: expected one of %s", backend, ", ".join(_BACKENDS))
            return -errno.EINVAL
        self.backend = backend
        io_device_register(self, _group_create, _group_destroy, "aio_module")
        return 0

    def module_fini(self) -> None:
        io_device_unregister(self)


AIO_MODULE: Final = AioModule()
bdev_module_register(AIO_MODULE)


def _invalid(disk_name: str, filename: str, message: str) -> BdevError:
    log.error("[%s,filename:%s] %s", disk_name, filename, message)
    return BdevError(errno.EINVAL, message)


def create_aio_bdev(opts: AioOpts) -> Bdev:
    """Create and register an aio bdev (``create_aio_bdev``) on the app thread.

    Raises :class:`BdevError` with SPDK's errno: the open's own errno (``ENOENT``, ``EACCES``,
    ...), ``ENOTSUP`` for ``nowait`` on anything but a block device, ``EINVAL`` for a block size
    that cannot be detected, is below the detected one, below 512, not a power of two or does not
    divide the file size, ``EEXIST`` for a name or UUID already in use.
    """
    name, filename = opts.name, opts.filename
    if not name or not filename:
        raise BdevError(errno.EINVAL, "an aio bdev needs a name and a filename")
    try:
        fd, direct = _open(filename, opts.readonly)
    except OSError as exc:
        code = exc.errno or errno.EIO
        log.error("[%s,filename:%s] open() failed: %s", name, filename, os.strerror(code))
        raise BdevError(code, f"Unable to open file {filename}: {os.strerror(code)}") from None
    try:
        return _create_on(fd, direct, opts)
    except BaseException:
        os.close(fd)
        raise


def _create_on(fd: int, direct: bool, opts: AioOpts) -> Bdev:
    name, filename = opts.name, opts.filename
    if opts.nowait and not stat.S_ISBLK(os.fstat(fd).st_mode):
        log.error(
            "[%s,filename:%s] Device is not block device; do not enable nowait usage.",
            name,
            filename,
        )
        raise BdevError(errno.ENOTSUP, "nowait needs a block device")
    disk_size = _fd_size(fd)
    detected = _fd_blocklen(fd)
    block_size = opts.block_size
    if block_size == 0:
        if detected == 0:
            raise _invalid(name, filename, "Block size could not be auto-detected")
        override = False
        block_size = detected
    else:
        if block_size < detected:
            raise _invalid(
                name,
                filename,
                f"Specified block size {block_size} is smaller than auto-detected block size "
                f"{detected}",
            )
        if detected and block_size != detected:
            log.warning(
                "[%s,filename:%s] Specified block size %d does not match auto-detected block "
                "size %d",
                name,
                filename,
                block_size,
                detected,
            )
        override = True
    if block_size < 512:
        raise _invalid(name, filename, f"Invalid block size {block_size} (must be at least 512).")
    if block_size & (block_size - 1):
        raise _invalid(name, filename, f"Invalid block size {block_size} (must be a power of 2.)")
    alignment = detected if override and detected else block_size
    if disk_size % block_size:
        raise _invalid(
            name, filename, f"Disk size {disk_size} is not a multiple of block size {block_size}"
        )
    module = AIO_MODULE
    disk = AioDisk(
        module, opts, fd, direct, block_size, alignment, override, disk_size // block_size
    )
    io_device_register(disk, disk.channel_create, disk.channel_destroy, name)
    try:
        bdev_register(disk.bdev)
    except BaseException:
        io_device_unregister(disk)
        raise
    module.disks.append(disk)
    return disk.bdev


def delete_aio_bdev(name: str, cb: Any = None) -> None:
    """Unregister the aio bdev ``name`` (``bdev_aio_delete``); ``cb(rc)`` when it is gone.
    ``ENODEV`` if there is no aio bdev of that name."""
    bdev_unregister_by_name(name, AIO_MODULE, cb)


def rescan_aio_bdev(name: str) -> None:
    """Re-read the file's size (``bdev_aio_rescan``) on the app thread.

    A size of 0 deletes the bdev (hot-remove); another change resizes it. As in SPDK, the rescan
    itself holds a descriptor while it resizes, so a shrink is refused with ``EBUSY``. Raises
    :class:`BdevError`: ``ENODEV`` if there is no such bdev or it is not an aio bdev.
    """
    desc = open_bdev(name, False, _ignore_event)
    try:
        bdev = desc.bdev
        if bdev.module is not AIO_MODULE:
            raise BdevError(errno.ENODEV, f"bdev {name} is not an aio bdev")
        disk: AioDisk = bdev.ctxt  # type: ignore[assignment]
        disk_size = disk.size()
        if disk_size == 0:
            disk.try_hot_remove()
            return
        num_blocks = disk_size // bdev.block_size
        if num_blocks != bdev.num_blocks:
            notice(
                log,
                "[%s,filename:%s] device is resized: old block count %d, new block count %d",
                bdev.name,
                disk.filename,
                bdev.num_blocks,
                num_blocks,
            )
            try:
                bdev_notify_blockcnt_change(bdev, num_blocks)
            except BdevError as exc:
                log.error(
                    "[%s,filename:%s] Could not change num blocks, errno: %d.",
                    bdev.name,
                    disk.filename,
                    -exc.errno,
                )
                raise
    finally:
        desc.close()
