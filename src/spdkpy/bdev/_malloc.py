"""The ``malloc`` bdev module: a RAM disk (SPDK's ``module/bdev/malloc``, SPEC-STORAGE A2).

Each disk is one zeroed anonymous mapping of ``num_blocks * block_size`` bytes. Data is copied
during ``submit_request``; the request then waits on its thread's module channel (io_device
``bdev_malloc``, one per thread for every malloc disk) until the period-0 poller
``malloc_completion_poller`` completes the batch, as SPDK completes its accel copies. Unmap and
write_zeroes fill the range with zeroes; flush and reset complete at once.
"""

from __future__ import annotations

import errno
import logging
import mmap
import uuid as uuid_mod
from dataclasses import dataclass
from typing import Any, Final, final

from spdkpy.bdev._bdev import (
    Bdev,
    BdevFnTable,
    BdevModule,
    bdev_module_register,
    bdev_register,
    bdev_unregister_by_name,
)
from spdkpy.bdev._io import BdevIo
from spdkpy.bdev._types import IoType
from spdkpy.errors import BdevError
from spdkpy.thread import (
    POLLER_BUSY,
    POLLER_IDLE,
    IoChannel,
    Poller,
    get_io_channel,
    get_thread,
    io_device_register,
    io_device_unregister,
)

__all__ = [
    "MALLOC_MODULE",
    "MallocModule",
    "MallocOpts",
    "create_malloc_disk",
    "delete_malloc_disk",
]

log = logging.getLogger("spdkpy.bdev_malloc")

MD_SIZES: Final = frozenset({0, 8, 16, 32, 64, 128})
_READ: Final = 1
_WRITE: Final = 2
_UNMAP: Final = 3
_FLUSH: Final = 4
_RESET: Final = 5
_WRITE_ZEROES: Final = 9
_SUCCESS: Final = 1
_FAILED: Final = -1
_SUPPORTED: Final = frozenset(
    {IoType.READ, IoType.WRITE, IoType.FLUSH, IoType.RESET, IoType.UNMAP, IoType.WRITE_ZEROES}
)
_ZERO_CHUNK: Final = memoryview(bytes(1 << 20))


@dataclass(frozen=True, slots=True)
class MallocOpts:
    """``struct malloc_bdev_opts``; ``block_size`` is the data block size."""

    num_blocks: int
    block_size: int
    name: str | None = None
    uuid: uuid_mod.UUID | None = None
    physical_block_size: int = 0
    optimal_io_boundary: int = 0
    md_size: int = 0
    md_interleave: bool = False
    dif_type: int = 0
    dif_is_head_of_md: bool = False
    dif_pi_format: int = 0
    numa_id: int = -1


@final
class _MallocChannel:
    """One thread's malloc channel: requests whose data is copied, waiting for the poller."""

    __slots__ = ("completed", "failed", "poller", "spare")

    def __init__(self) -> None:
        self.completed: list[BdevIo] = []
        self.spare: list[BdevIo] = []
        self.failed: list[BdevIo] = []
        self.poller: Poller | None = None


def _completion_poll(mch: _MallocChannel) -> int:
    done = mch.completed
    if not done:
        if not mch.failed:
            return POLLER_IDLE
    else:
        # Swap first: callbacks that resubmit fill the other list, completed next poll.
        mch.completed = mch.spare
        for io in done:
            io.complete(_SUCCESS)
        done.clear()
        mch.spare = done
    if mch.failed:
        failed = mch.failed
        mch.failed = []
        for io in failed:
            io.complete(_FAILED)
    return POLLER_BUSY


@final
class MallocDisk(BdevFnTable):
    """One malloc disk: its memory and the bdev that exposes it."""

    def __init__(self, module: MallocModule, opts: MallocOpts, name: str) -> None:
        self.module = module
        self.opts = opts
        self.data_block_size = opts.block_size
        block_len = opts.block_size + (opts.md_size if opts.md_interleave else 0)
        size = opts.num_blocks * block_len
        # Zeroed and page aligned. Backed at create, as SPDK's hugepage memory is: otherwise
        # every block's first write pays a page fault on the data path (about 2x a warm copy).
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
        self._mem: mmap.mmap | None = mmap.mmap(-1, size, flags=flags)
        self.view = memoryview(self._mem)
        self.md = (
            memoryview(mmap.mmap(-1, opts.num_blocks * opts.md_size))
            if opts.md_size and not opts.md_interleave
            else None
        )
        self.block_len = block_len
        self.bdev = Bdev(
            name,
            fn_table=self,
            module=module,
            block_size=block_len,
            num_blocks=opts.num_blocks,
            product_name="Malloc disk",
            write_cache=True,
            uuid=opts.uuid,
            phys_block_size=opts.physical_block_size,
            optimal_io_boundary=opts.optimal_io_boundary,
            split_on_optimal_io_boundary=bool(opts.optimal_io_boundary),
            md_len=opts.md_size,
            md_interleave=opts.md_interleave,
            dif_type=opts.dif_type,
            dif_is_head_of_md=opts.dif_is_head_of_md,
            dif_pi_format=opts.dif_pi_format,
            numa_id=opts.numa_id,
            ctxt=self,
        )

    # ------------------------------------------------------------------ fn_table

    def submit_request(self, ch: IoChannel[Any], io: BdevIo) -> None:
        mch: _MallocChannel = ch.ctx
        kind = io.type
        block_len = self.block_len
        start = io.offset_blocks * block_len
        nbytes = io.num_blocks * block_len
        if kind == _READ:
            buf = io.buf
            if buf is not None:
                buf[0:nbytes] = self.view[start : start + nbytes]
            elif io.iovs is None:
                # No buffer given: point the request at the disk itself, as SPDK does.
                region = self.view[start : start + nbytes]
                io.buf = region
                io._iov1[0] = region
                io.iovs = io._iov1
            else:
                pos = start
                for iov in io.iovs:
                    size = min(len(iov), start + nbytes - pos)
                    if size <= 0:
                        break
                    iov[0:size] = self.view[pos : pos + size]
                    pos += size
            mch.completed.append(io)
        elif kind == _WRITE:
            buf = io.buf
            if buf is not None:
                if len(buf) == nbytes:
                    self.view[start : start + nbytes] = buf
                else:
                    self.view[start : start + nbytes] = memoryview(buf)[:nbytes]
            else:
                assert io.iovs is not None
                pos = start
                for iov in io.iovs:
                    size = min(len(iov), start + nbytes - pos)
                    if size <= 0:
                        break
                    self.view[pos : pos + size] = memoryview(iov)[:size]
                    pos += size
            mch.completed.append(io)
        elif kind in (_UNMAP, _WRITE_ZEROES):
            self._zero(start, nbytes)
            mch.completed.append(io)
        elif kind in (_FLUSH, _RESET):
            mch.completed.append(io)
        else:
            mch.failed.append(io)

    def _zero(self, start: int, nbytes: int) -> None:
        view = self.view
        end = start + nbytes
        chunk = len(_ZERO_CHUNK)
        while start < end:
            step = min(chunk, end - start)
            view[start : start + step] = _ZERO_CHUNK[:step]
            start += step

    def io_type_supported(self, io_type: IoType) -> bool:
        return io_type in _SUPPORTED

    def get_io_channel(self) -> IoChannel[Any]:
        return get_io_channel(self.module)

    def destruct(self) -> int:
        if self in self.module.disks:
            self.module.disks.remove(self)
        self.view.release()
        mem = self._mem
        self._mem = None
        if mem is not None:
            try:
                mem.close()
            except BufferError:
                pass  # a reader still holds a slice of it; the GC frees it later
        return 0

    def config_entry(self) -> dict[str, object]:
        bdev = self.bdev
        opts = self.opts
        return {
            "method": "bdev_malloc_create",
            "params": {
                "name": bdev.name,
                "num_blocks": bdev.num_blocks,
                "block_size": self.data_block_size,
                "physical_block_size": bdev.phys_block_size,
                "uuid": str(bdev.uuid),
                "optimal_io_boundary": bdev.optimal_io_boundary,
                "md_size": opts.md_size,
                "dif_type": opts.dif_type,
                "dif_is_head_of_md": opts.dif_is_head_of_md,
                "dif_pi_format": opts.dif_pi_format,
                "numa_id": opts.numa_id,
            },
        }


@final
class MallocModule(BdevModule):
    """The ``malloc`` module; its io_device ``bdev_malloc`` gives one channel per thread."""

    name = "malloc"

    def __init__(self) -> None:
        super().__init__()
        self.disks: list[MallocDisk] = []
        self.counter = 0

    def module_init(self) -> int:
        self.disks = []
        self.counter = 0
        io_device_register(self, _channel_create, _channel_destroy, "bdev_malloc")
        return 0

    def module_fini(self) -> None:
        io_device_unregister(self)

    def config_json(self) -> list[dict[str, object]]:
        return [disk.config_entry() for disk in self.disks]


def _channel_create(obj: object) -> _MallocChannel:
    mch = _MallocChannel()
    thread = get_thread()
    assert thread is not None
    mch.poller = thread.register_poller(_completion_poll, mch, name="malloc_completion_poller")
    return mch


def _channel_destroy(obj: object, mch: _MallocChannel) -> None:
    if mch.poller is not None:
        mch.poller.unregister()
        mch.poller = None


MALLOC_MODULE: Final = MallocModule()
bdev_module_register(MALLOC_MODULE)


def _invalid(message: str) -> BdevError:
    log.error("%s", message)
    return BdevError(errno.EINVAL, message)


def create_malloc_disk(opts: MallocOpts) -> Bdev:
    """Create and register a malloc bdev (``create_malloc_disk``) on the app thread.

    Raises :class:`BdevError`: ``EINVAL`` for a bad size or metadata format, ``EEXIST`` for a
    name or UUID already in use.
    """
    if opts.num_blocks <= 0:
        raise _invalid("Disk num_blocks must be greater than 0")
    if opts.block_size <= 0 or opts.block_size % 512:
        raise _invalid("Data block size must be 512 bytes aligned")
    if opts.physical_block_size % 512:
        raise _invalid("Physical block must be 512 bytes aligned")
    if opts.md_size not in MD_SIZES:
        raise _invalid(f"metadata size {opts.md_size} is not supported")
    if opts.dif_type not in (0, 1, 2, 3):
        raise _invalid(f"DIF type {opts.dif_type} is not supported")
    if opts.dif_type and opts.md_size < 8:
        raise _invalid("Protection information needs a metadata size of at least 8")
    if opts.dif_pi_format not in (0, 1, 2):
        raise _invalid(f"DIF PI format {opts.dif_pi_format} is not supported")
    module = MALLOC_MODULE
    name = opts.name
    if not name:
        name = f"Malloc{module.counter}"
        module.counter += 1
    disk = MallocDisk(module, opts, name)
    try:
        bdev_register(disk.bdev)
    except BaseException:
        disk.destruct()
        raise
    module.disks.append(disk)
    return disk.bdev


def delete_malloc_disk(name: str, cb: Any = None) -> None:
    """Unregister the malloc bdev ``name`` (``delete_malloc_disk``); ``cb(rc)`` when gone.
    ``ENODEV`` if there is no malloc bdev of that name."""
    bdev_unregister_by_name(name, MALLOC_MODULE, cb)
