"""The ``null`` bdev module: discards writes, reads zeroes (SPDK's ``module/bdev/null``).

Every request is queued on its thread's module channel (io_device ``null_bdev``) and completed
by a period-0 poller on the next poll, in submission order, so a reset completes after the I/O
queued before it. Unmap is not supported and completes failed; flush is not supported at all.
A read into a caller's buffer zero-fills it (SPDK leaves it untouched; see docs/design.md); a read
without a buffer points at a shared zero buffer.
"""

from __future__ import annotations

import errno
import logging
import uuid as uuid_mod
from dataclasses import dataclass
from typing import Any, Final, final

from spdkpy.bdev._bdev import (
    Bdev,
    BdevFnTable,
    BdevModule,
    bdev_module_register,
    bdev_notify_blockcnt_change,
    bdev_register,
    bdev_unregister_by_name,
    get_bdev,
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
    "NULL_MODULE",
    "NullModule",
    "NullOpts",
    "create_null_bdev",
    "delete_null_bdev",
    "resize_null_bdev",
]

log = logging.getLogger("spdkpy.bdev_null")

MD_SIZES: Final = frozenset({0, 8, 16, 32, 64, 128})
_READ: Final = 1
_WRITE: Final = 2
_RESET: Final = 5
_WRITE_ZEROES: Final = 9
_SUCCESS: Final = 1
_FAILED: Final = -1
_SUPPORTED: Final = frozenset({IoType.READ, IoType.WRITE, IoType.WRITE_ZEROES, IoType.RESET})
_ZERO: Final = memoryview(bytes(1 << 20))


@dataclass(frozen=True, slots=True)
class NullOpts:
    """``struct null_bdev_opts``; ``block_size`` is the data block size (the bdev's block is
    ``block_size + md_size``, metadata interleaved)."""

    name: str
    num_blocks: int
    block_size: int
    uuid: uuid_mod.UUID | None = None
    physical_block_size: int = 0
    md_size: int = 0
    dif_type: int = 0
    dif_is_head_of_md: bool = False
    dif_pi_format: int = 0
    preferred_write_alignment: int = 0
    preferred_write_granularity: int = 0
    optimal_write_size: int = 0
    preferred_unmap_alignment: int = 0
    preferred_unmap_granularity: int = 0


@final
class _NullChannel:
    __slots__ = ("poller", "queue", "spare")

    def __init__(self) -> None:
        self.queue: list[BdevIo] = []
        self.spare: list[BdevIo] = []
        self.poller: Poller | None = None


def _null_poll(nch: _NullChannel) -> int:
    queue = nch.queue
    if not queue:
        return POLLER_IDLE
    nch.queue = nch.spare
    for io in queue:
        io.complete(_FAILED if io.driver_ctx else _SUCCESS)
    queue.clear()
    nch.spare = queue
    return POLLER_BUSY


def _zero_fill(buf: Any, nbytes: int) -> None:
    pos = 0
    chunk = len(_ZERO)
    while pos < nbytes:
        step = min(chunk, nbytes - pos)
        buf[pos : pos + step] = _ZERO[:step]
        pos += step


@final
class NullDisk(BdevFnTable):
    def __init__(self, module: NullModule, opts: NullOpts) -> None:
        self.module = module
        self.opts = opts
        block_len = opts.block_size + opts.md_size
        self.bdev = Bdev(
            opts.name,
            fn_table=self,
            module=module,
            block_size=block_len,
            num_blocks=opts.num_blocks,
            product_name="Null disk",
            write_cache=False,
            uuid=opts.uuid,
            phys_block_size=opts.physical_block_size,
            md_len=opts.md_size,
            md_interleave=bool(opts.md_size),
            dif_type=opts.dif_type,
            dif_is_head_of_md=opts.dif_is_head_of_md,
            dif_pi_format=opts.dif_pi_format,
            preferred_write_alignment=opts.preferred_write_alignment,
            preferred_write_granularity=opts.preferred_write_granularity,
            optimal_write_size=opts.optimal_write_size,
            preferred_unmap_alignment=opts.preferred_unmap_alignment,
            preferred_unmap_granularity=opts.preferred_unmap_granularity,
            ctxt=self,
        )

    def submit_request(self, ch: IoChannel[Any], io: BdevIo) -> None:
        nch: _NullChannel = ch.ctx
        kind = io.type
        failed = False
        if kind == _READ:
            nbytes = io.num_blocks * self.bdev.block_size
            buf = io.buf
            if buf is not None:
                _zero_fill(buf, nbytes)
            elif io.iovs is None:
                zeros = _ZERO[:nbytes] if nbytes <= len(_ZERO) else memoryview(bytes(nbytes))
                io.buf = zeros
                io._iov1[0] = zeros
                io.iovs = io._iov1
            else:
                left = nbytes
                for iov in io.iovs:
                    size = min(len(iov), left)
                    _zero_fill(iov, size)
                    left -= size
        elif kind != _WRITE and kind != _WRITE_ZEROES and kind != _RESET:
            failed = True  # unmap and the rest: not supported, completed failed
        io.driver_ctx = failed
        nch.queue.append(io)

    def io_type_supported(self, io_type: IoType) -> bool:
        return io_type in _SUPPORTED

    def get_io_channel(self) -> IoChannel[Any]:
        return get_io_channel(self.module)

    def destruct(self) -> int:
        if self in self.module.disks:
            self.module.disks.remove(self)
        return 0

    def config_entry(self) -> dict[str, object]:
        bdev = self.bdev
        opts = self.opts
        return {
            "method": "bdev_null_create",
            "params": {
                "name": bdev.name,
                "num_blocks": bdev.num_blocks,
                # The data size: SPDK writes blocklen here, so its md bdevs do not round-trip.
                "block_size": opts.block_size,
                "physical_block_size": bdev.phys_block_size,
                "md_size": opts.md_size,
                "dif_type": opts.dif_type,
                "dif_is_head_of_md": opts.dif_is_head_of_md,
                "dif_pi_format": opts.dif_pi_format,
                "uuid": str(bdev.uuid),
                "preferred_write_alignment": bdev.preferred_write_alignment,
                "preferred_write_granularity": bdev.preferred_write_granularity,
                "optimal_write_size": bdev.optimal_write_size,
                "preferred_unmap_alignment": bdev.preferred_unmap_alignment,
                "preferred_unmap_granularity": bdev.preferred_unmap_granularity,
            },
        }


@final
class NullModule(BdevModule):
    """The ``null`` module; its io_device ``null_bdev`` gives one channel per thread."""

    name = "null"

    def __init__(self) -> None:
        super().__init__()
        self.disks: list[NullDisk] = []

    def module_init(self) -> int:
        self.disks = []
        io_device_register(self, _channel_create, _channel_destroy, "null_bdev")
        return 0

    def module_fini(self) -> None:
        io_device_unregister(self)

    def config_json(self) -> list[dict[str, object]]:
        return [disk.config_entry() for disk in self.disks]


def _channel_create(obj: object) -> _NullChannel:
    nch = _NullChannel()
    thread = get_thread()
    assert thread is not None
    nch.poller = thread.register_poller(_null_poll, nch, name="null_bdev_poller")
    return nch


def _channel_destroy(obj: object, nch: _NullChannel) -> None:
    if nch.poller is not None:
        nch.poller.unregister()
        nch.poller = None


NULL_MODULE: Final = NullModule()
bdev_module_register(NULL_MODULE)


def _invalid(message: str) -> BdevError:
    log.error("%s", message)
    return BdevError(errno.EINVAL, message)


def create_null_bdev(opts: NullOpts) -> Bdev:
    """Create and register a null bdev (``bdev_null_create``) on the app thread.

    Raises :class:`BdevError`: ``EINVAL`` for a bad name, size or metadata format, ``EEXIST``
    for a name or UUID already in use.
    """
    if not opts.name:
        raise _invalid("null bdev needs a name")
    if opts.num_blocks <= 0:
        raise _invalid("Disk num_blocks must be greater than 0")
    if opts.block_size <= 0 or opts.block_size % 512:
        raise _invalid(f"Data block size {opts.block_size} is not a multiple of 512.")
    if opts.physical_block_size % 512:
        raise _invalid("Physical block must be 512 bytes aligned")
    if opts.md_size not in MD_SIZES:
        raise _invalid(f"metadata size {opts.md_size} is not supported")
    if opts.dif_type not in (0, 1, 2, 3):
        raise _invalid(f"DIF type {opts.dif_type} is not supported")
    if opts.dif_type and opts.md_size < 8:
        raise _invalid("Interleaved metadata should be set for end-to-end data protection")
    if opts.dif_pi_format not in (0, 1, 2):
        raise _invalid(f"DIF PI format {opts.dif_pi_format} is not supported")
    if opts.dif_pi_format and opts.md_size < 16:
        raise _invalid("32 and 64 bit guard PI formats need a metadata size of at least 16")
    disk = NullDisk(NULL_MODULE, opts)
    bdev_register(disk.bdev)
    NULL_MODULE.disks.append(disk)
    return disk.bdev


def delete_null_bdev(name: str, cb: Any = None) -> None:
    """Unregister the null bdev ``name``; ``cb(rc)`` when gone. ``ENODEV`` if absent."""
    bdev_unregister_by_name(name, NULL_MODULE, cb)


def resize_null_bdev(name: str, new_size_mib: int) -> None:
    """Grow the null bdev ``name`` to ``new_size_mib`` MiB (``bdev_null_resize``).

    ``ENODEV`` if absent; ``EINVAL`` if it is not a null bdev, the size is not a whole number
    of blocks, or smaller than now.
    """
    bdev = get_bdev(name)
    if bdev is None:
        raise BdevError(errno.ENODEV, f"No such device: {name}")
    if bdev.module is not NULL_MODULE:
        raise _invalid(f"{name} is not a null bdev")
    new_bytes = new_size_mib * 1024 * 1024
    if new_bytes % bdev.block_size:
        raise _invalid(f"new size {new_bytes} is not a multiple of block size {bdev.block_size}")
    num_blocks = new_bytes // bdev.block_size
    if num_blocks < bdev.num_blocks:
        raise _invalid("The new bdev size must not be smaller than current bdev size.")
    bdev_notify_blockcnt_change(bdev, num_blocks)
