"""Block devices: the registry, back-end modules, descriptors, claims, channels and the control
path (register, examine, unregister/hot-remove, resize, statistics), as SPDK's ``lib/bdev``.

Theory of operation
-------------------
* A *module* (:class:`BdevModule`) is registered once per process, like SPDK's constructor-time
  ``SPDK_BDEV_MODULE_REGISTER``; its ``module_init``/``module_fini`` run with the bdev subsystem.
* A module makes a :class:`Bdev` for each disk, with a :class:`BdevFnTable` (its per-disk
  object: ``submit_request``, ``io_type_supported``, ``get_io_channel``, ``destruct``), and
  registers it on the app thread. The bdev becomes io_device ``bdev_<name>``; each thread that
  asks gets a :class:`~spdkpy.bdev.BdevChannel` from a :class:`Descriptor`.
* Descriptors remember the thread that opened them; events (remove, resize) always arrive there
  by message, and they are closed there. Unregistering tells every descriptor, waits until the
  last one is closed, unregisters the io_device (which waits for the last channel) and then
  calls the module's ``destruct`` on the app thread.
* Registry changes happen on the app thread under the manager lock; other threads only look up
  and open, also under it. Each bdev's own lock guards its descriptors, claims and status.
"""

from __future__ import annotations

import abc
import enum
import errno
import logging
import os
import threading
import uuid as uuid_mod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast, final

from spdkpy._log import notice
from spdkpy.bdev._io import (
    BdevChannel,
    BdevIo,
    BdevIoPool,
    BdevIoWaitEntry,
    CompletionCb,
    MgmtChannel,
    SharedResource,
    abort_queued,
    complete_later,
    get_io,
    submit_io,
    submit_reset,
)
from spdkpy.bdev._stat import BdevIoStat
from spdkpy.bdev._types import (
    IO_TYPE_NAMES,
    ZERO_BUFFER_SIZE,
    BdevEvent,
    ClaimType,
    IoStatus,
    IoType,
    SubmitStatus,
)
from spdkpy.errors import BdevError, InvalidStateError, WrongThreadError
from spdkpy.thread import (
    POLLER_BUSY,
    POLLER_IDLE,
    ChannelIterator,
    IoChannel,
    Poller,
    Thread,
    current_library,
    for_each_channel,
    get_io_channel,
    get_thread,
    io_device_register,
    io_device_unregister,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Bdev",
    "BdevEventCb",
    "BdevFnTable",
    "BdevModule",
    "BdevOpts",
    "BdevStatus",
    "Descriptor",
]

log = logging.getLogger("spdkpy.bdev")

BdevEventCb = Callable[[BdevEvent, "Bdev"], object]
"""``event_cb(event, bdev)``: runs on the descriptor's opener thread."""
UnregisterCb = Callable[[int], object]

_PENDING: Final = 0
_SUCCESS: Final = 1
_READ: Final = 1
_WRITE: Final = 2
_UNMAP: Final = 3
_FLUSH: Final = 4
_RESET: Final = 5
_WRITE_ZEROES: Final = 9
_SUBMITTED: Final = SubmitStatus.SUBMITTED
_NOMEM: Final = SubmitStatus.NOMEM


# ---------------------------------------------------------------------------- modules


class BdevModule:
    """A bdev back-end (``struct spdk_bdev_module``). Subclass, set :attr:`name`, and register
    one instance with :func:`~spdkpy.bdev.bdev_module_register`.

    Every hook is optional. ``examine_config(bdev)`` must call
    :func:`~spdkpy.bdev.bdev_module_examine_done` before it returns; ``examine_disk(bdev)`` may
    call it later. The defaults examine nothing.
    """

    name: str = ""

    def __init__(self) -> None:
        self.action_in_progress = 0

    def module_init(self) -> int:
        """Set up at bdev subsystem init (app thread); non-zero (a negative errno) fails it."""
        return 0

    def init_complete(self) -> None:
        """Every module has initialised."""

    def fini_start(self) -> None:
        """The bdev subsystem begins to shut down (before its bdevs are unregistered)."""

    def module_fini(self) -> None:
        """Tear down, after every bdev is gone (modules in reverse registration order)."""

    def config_json(self) -> list[dict[str, object]]:
        """This module's ``save_config`` entries (e.g. one create call per bdev)."""
        return []

    def examine_config(self, bdev: Bdev) -> None:
        bdev_module_examine_done(self)

    def examine_disk(self, bdev: Bdev) -> None:
        bdev_module_examine_done(self)

    def __repr__(self) -> str:
        return f"<BdevModule {self.name!r}>"


class BdevFnTable(abc.ABC):
    """A module's per-bdev operations (``struct spdk_bdev_fn_table``).

    ``submit_request(ch, io)`` runs on the submitting thread with that thread's module channel
    (what :meth:`get_io_channel` returned there); the module completes the request later with
    ``io.complete(status)`` on the same thread, normally from a poller.
    """

    @abc.abstractmethod
    def submit_request(self, ch: IoChannel[Any], io: BdevIo) -> None: ...

    @abc.abstractmethod
    def io_type_supported(self, io_type: IoType) -> bool: ...

    @abc.abstractmethod
    def get_io_channel(self) -> IoChannel[Any] | None:
        """The calling thread's module channel (one more reference to it)."""

    def destruct(self) -> int:
        """Release the disk (app thread): 0 when done, 1 if it will call
        :func:`~spdkpy.bdev.bdev_destruct_done` later, a negative errno on failure."""
        return 0

    def dump_info_json(self) -> dict[str, object]:
        """``driver_specific`` of ``bdev_get_bdevs``."""
        return {}

    def write_config_json(self) -> list[dict[str, object]]:
        """Per-bdev ``save_config`` entries (modules without ``config_json``)."""
        return []


# ---------------------------------------------------------------------------- options


@dataclass(frozen=True, slots=True)
class BdevOpts:
    """``struct spdk_bdev_opts`` with SPDK's defaults."""

    bdev_io_pool_size: int = 64 * 1024 - 1
    bdev_io_cache_size: int = 256
    bdev_auto_examine: bool = True
    iobuf_small_cache_size: int = 128
    iobuf_large_cache_size: int = 16

    def to_json(self) -> dict[str, object]:
        return {
            "bdev_io_pool_size": self.bdev_io_pool_size,
            "bdev_io_cache_size": self.bdev_io_cache_size,
            "bdev_auto_examine": self.bdev_auto_examine,
            "iobuf_small_cache_size": self.iobuf_small_cache_size,
            "iobuf_large_cache_size": self.iobuf_large_cache_size,
        }


# ---------------------------------------------------------------------------- the bdev


class BdevStatus(enum.Enum):
    INVALID = "invalid"
    READY = "ready"
    UNREGISTERING = "unregistering"
    REMOVING = "removing"


class Bdev:
    """A block device (``struct spdk_bdev``). A module fills it in and registers it.

    Geometry fields keep SPDK's meaning: ``block_size`` is ``blocklen`` (bytes per block,
    metadata included when interleaved), ``num_blocks`` is ``blockcnt``, ``required_alignment``
    is log2 of the buffer alignment, boundaries and limits are in blocks (0 = none).
    """

    def __init__(
        self,
        name: str,
        *,
        fn_table: BdevFnTable,
        module: BdevModule,
        block_size: int,
        num_blocks: int,
        product_name: str = "",
        write_cache: bool = False,
        uuid: uuid_mod.UUID | None = None,
        phys_block_size: int = 0,
        required_alignment: int = 0,
        optimal_io_boundary: int = 0,
        split_on_optimal_io_boundary: bool = False,
        write_unit_size: int = 0,
        split_on_write_unit: bool = False,
        acwu: int = 0,
        max_rw_size: int = 0,
        max_segment_size: int = 0,
        max_num_segments: int = 0,
        max_unmap: int = 0,
        max_unmap_segments: int = 0,
        max_write_zeroes: int = 0,
        max_copy: int = 0,
        md_len: int = 0,
        md_interleave: bool = False,
        dif_type: int = 0,
        dif_is_head_of_md: bool = False,
        dif_pi_format: int = 0,
        numa_id: int | None = None,
        preferred_write_alignment: int = 0,
        preferred_write_granularity: int = 0,
        optimal_write_size: int = 0,
        preferred_unmap_alignment: int = 0,
        preferred_unmap_granularity: int = 0,
        reset_io_drain_timeout: int = 0,
        ctxt: object = None,
    ) -> None:
        self.name = name
        self.fn_table = fn_table
        self.module = module
        self.block_size = block_size
        self.num_blocks = num_blocks
        self.product_name = product_name
        self.write_cache = write_cache
        self.uuid = uuid
        self.phys_block_size = phys_block_size
        self.required_alignment = required_alignment
        self.optimal_io_boundary = optimal_io_boundary
        self.split_on_optimal_io_boundary = split_on_optimal_io_boundary
        self.write_unit_size = write_unit_size
        self.split_on_write_unit = split_on_write_unit
        self.acwu = acwu
        self.max_rw_size = max_rw_size
        self.max_segment_size = max_segment_size
        self.max_num_segments = max_num_segments
        self.max_unmap = max_unmap
        self.max_unmap_segments = max_unmap_segments
        self.max_write_zeroes = max_write_zeroes
        self.max_copy = max_copy
        self.md_len = md_len
        self.md_interleave = md_interleave
        self.dif_type = dif_type
        self.dif_is_head_of_md = dif_is_head_of_md
        self.dif_pi_format = dif_pi_format
        self.numa_id = numa_id
        self.preferred_write_alignment = preferred_write_alignment
        self.preferred_write_granularity = preferred_write_granularity
        self.optimal_write_size = optimal_write_size
        self.preferred_unmap_alignment = preferred_unmap_alignment
        self.preferred_unmap_granularity = preferred_unmap_granularity
        self.reset_io_drain_timeout = reset_io_drain_timeout
        self.ctxt = ctxt
        # ---- layer-private state
        self.lock = threading.Lock()
        self.aliases: list[str] = []
        self.status = BdevStatus.INVALID
        self.open_descs: list[Descriptor] = []
        self.claim_type = ClaimType.NONE
        self.claim_module: BdevModule | None = None  # v1 claim
        self.claims: list[_Claim] = []  # v2 claims
        self.retired_stat = BdevIoStat()
        self.io_error: dict[str, int] = {}
        self.reset_in_progress: BdevIo | None = None
        self.supported: tuple[bool, ...] = ()
        self.native_write_zeroes = False
        self._unregister_cb: UnregisterCb | None = None
        self._unregister_thread: Thread | None = None

    # ------------------------------------------------------------------ queries

    def io_type_supported(self, io_type: IoType) -> bool:
        """``spdk_bdev_io_type_supported``, from the bitmap cached at register."""
        if self.supported:
            return self.supported[int(io_type)]
        if io_type == IoType.WRITE_ZEROES:
            return self.fn_table.io_type_supported(io_type) or self.fn_table.io_type_supported(
                IoType.WRITE
            )
        return self.fn_table.io_type_supported(io_type)

    @property
    def claimed(self) -> bool:
        return self.claim_type is not ClaimType.NONE

    def may_split(self) -> bool:
        """Whether any I/O of this bdev can need splitting (the per-I/O check is skipped if not)."""
        return bool(
            (self.split_on_optimal_io_boundary and self.optimal_io_boundary)
            or self.split_on_write_unit
            or self.max_rw_size
            or self.max_num_segments
            or self.max_segment_size
            or self.max_unmap
            or self.max_write_zeroes
            or self.max_copy
            or not self.native_write_zeroes
        )

    def count_error(self, status: int) -> None:
        """Count a failed completion under its status name (``io_error``)."""
        key = IoStatus(status).json_name
        with self.lock:
            self.io_error[key] = self.io_error.get(key, 0) + 1

    def reset_finished(self) -> None:
        """A reset ended: an unregister waiting on it may finish now."""
        self._maybe_finish_unregister()

    def to_json(self) -> dict[str, object]:
        """One ``bdev_get_bdevs`` element, keys in SPDK's order."""
        out: dict[str, object] = {
            "name": self.name,
            "aliases": list(self.aliases),
            "product_name": self.product_name,
            "block_size": self.block_size,
            "num_blocks": self.num_blocks,
            "preferred_write_alignment": self.preferred_write_alignment,
            "preferred_write_granularity": self.preferred_write_granularity,
            "optimal_write_size": self.optimal_write_size,
            "preferred_unmap_alignment": self.preferred_unmap_alignment,
            "preferred_unmap_granularity": self.preferred_unmap_granularity,
            "uuid": str(self.uuid),
        }
        if self.numa_id is not None:
            out["numa_id"] = self.numa_id
        if self.md_len:
            out["md_size"] = self.md_len
            out["md_interleave"] = self.md_interleave
            out["dif_type"] = self.dif_type
            if self.dif_type:
                out["dif_is_head_of_md"] = self.dif_is_head_of_md
                out["enabled_dif_check_types"] = {
                    "reftag": self.dif_type in (1, 2),
                    "apptag": True,
                    "guard": True,
                }
                out["dif_pi_format"] = self.dif_pi_format
        out["assigned_rate_limits"] = {
            "rw_ios_per_sec": 0,
            "rw_mbytes_per_sec": 0,
            "r_mbytes_per_sec": 0,
            "w_mbytes_per_sec": 0,
        }
        out["claimed"] = self.claimed
        if self.claimed:
            out["claim_type"] = self.claim_type.value
        out["zoned"] = False
        out["supported_io_types"] = {
            name: self.io_type_supported(IoType(i + 1)) for i, name in enumerate(IO_TYPE_NAMES)
        }
        out["driver_specific"] = self.fn_table.dump_info_json()
        return out

    # ------------------------------------------------------------------ unregister plumbing

    def _maybe_finish_unregister(self) -> None:
        with self.lock:
            ready = (
                self.status is BdevStatus.REMOVING
                and not self.open_descs
                and self.reset_in_progress is None
                and self._unregister_thread is not None
            )
            thread = self._unregister_thread
            if ready:
                self._unregister_thread = None  # finish exactly once
        if ready and thread is not None:
            thread.send_msg(_unregister_finish, self, thread)

    def __repr__(self) -> str:
        return f"<Bdev {self.name!r} {self.num_blocks}x{self.block_size} {self.status.value}>"


@final
class _Claim:
    __slots__ = ("desc", "key", "module")

    def __init__(self, desc: Descriptor, module: BdevModule, key: int) -> None:
        self.desc = desc
        self.module = module
        self.key = key


# ---------------------------------------------------------------------------- the manager


@final
class _Manager:
    """The bdev layer of one app run (``g_bdev_mgr``): created at init, dropped at fini."""

    def __init__(self, opts: BdevOpts, thread: Thread) -> None:
        self.opts = opts
        self.thread = thread
        self.lock = threading.Lock()
        self.bdevs: list[Bdev] = []
        self.names: dict[str, Bdev] = {}
        self.pool = BdevIoPool(opts.bdev_io_pool_size, f"bdev_io_{os.getpid()}")
        self.examine_allowlist: list[str] = []
        self.finishing = False


_modules: list[BdevModule] = []
_modules_lock = threading.Lock()
_opts = BdevOpts()
_mgr: _Manager | None = None


def bdev_module_register(module: BdevModule) -> None:
    """Add a back-end for every later bdev subsystem init (``SPDK_BDEV_MODULE_REGISTER``)."""
    if not module.name:
        raise BdevError(errno.EINVAL, "a bdev module needs a name")
    with _modules_lock:
        if any(m.name == module.name for m in _modules):
            raise BdevError(errno.EEXIST, f"bdev module {module.name} is already registered")
        _modules.append(module)


def bdev_module_unregister(module: BdevModule) -> None:
    """Remove a module registered with :func:`bdev_module_register`; ``EBUSY`` while one of
    its bdevs is registered. A module removed while the layer runs gets no ``module_fini``."""
    if any(b.module is module for b in bdevs()):
        raise BdevError(errno.EBUSY, f"bdev module {module.name} still has bdevs")
    with _modules_lock:
        _modules.remove(module)


def bdev_modules() -> list[BdevModule]:
    """The registered modules, in registration order."""
    with _modules_lock:
        return list(_modules)


def get_bdev_opts() -> BdevOpts:
    """The options the next (or current) bdev subsystem init uses (``spdk_bdev_get_opts``)."""
    return _opts


def set_bdev_opts(opts: BdevOpts) -> None:
    """Set the options (``spdk_bdev_set_opts``); only before the bdev subsystem initialises.

    Raises :class:`BdevError` (``EINVAL``) if the pool cannot fill every thread's cache.
    """
    global _opts
    if _mgr is not None:
        raise InvalidStateError("bdev options can only be set before the bdev subsystem starts")
    lib = current_library()
    with lib.lock:
        thread_count = len(lib.threads)
    minimum = opts.bdev_io_cache_size * (thread_count + 1)
    if opts.bdev_io_pool_size < minimum:
        log.error("bdev_io_pool_size must be at least %d", minimum)
        raise BdevError(
            errno.EINVAL,
            f"Pool size {opts.bdev_io_pool_size} too small for cache size "
            f"{opts.bdev_io_cache_size}",
        )
    if opts.bdev_io_cache_size < 0 or opts.iobuf_small_cache_size < 0:
        raise BdevError(errno.EINVAL, "cache sizes must be >= 0")
    _opts = opts


def _require_mgr() -> _Manager:
    mgr = _mgr
    if mgr is None:
        raise InvalidStateError("the bdev layer is not initialised (bdev subsystem not started)")
    return mgr


def _require_app_thread(what: str) -> Thread:
    thread = get_thread()
    if thread is None or not thread.is_app_thread:
        raise WrongThreadError(f"{what} must be called on the app thread")
    return thread


# ---------------------------------------------------------------------------- init / fini


def bdev_initialize(done: Callable[[int], object]) -> None:
    """Start the bdev layer (``spdk_bdev_initialize``) on the app thread; ``done(rc)``.

    Makes the ``BdevIo`` pool, registers io_device ``bdev_mgr``, then runs every module's
    ``module_init`` and ``init_complete``.
    """
    global _mgr
    thread = _require_app_thread("bdev_initialize")
    if _mgr is not None:
        raise InvalidStateError("the bdev layer is already initialised")
    opts = _opts
    if opts.bdev_io_pool_size < 1:
        log.error("could not allocate spdk_bdev_io pool")
        done(-errno.ENOMEM)
        return
    mgr = _Manager(opts, thread)
    _mgr = mgr
    io_device_register(mgr, _mgmt_create, _mgmt_destroy, "bdev_mgr")
    modules = bdev_modules()
    for i, module in enumerate(modules):
        module.action_in_progress = 0
        rc = module.module_init()
        if rc:
            log.error("bdev module %s failed to initialise: %d", module.name, rc)
            for earlier in reversed(modules[:i]):
                earlier.module_fini()
            io_device_unregister(mgr)
            _mgr = None
            done(rc)
            return
    for module in modules:
        module.init_complete()
    done(0)


def bdev_finish(done: Callable[[], object]) -> None:
    """Stop the bdev layer (``spdk_bdev_finish``) on the app thread; ``done()`` at the end.

    Waits for examine, runs ``fini_start``, unregisters the bdevs from the newest (unclaimed
    ones first), then ``module_fini`` in reverse order. Options go back to the defaults.
    """
    _require_app_thread("bdev_finish")
    mgr = _mgr
    if mgr is None:
        done()
        return
    mgr.finishing = True

    def examined() -> None:
        for module in bdev_modules():
            module.fini_start()
        _unregister_next(mgr, done)

    bdev_wait_for_examine(examined)


def _unregister_next(mgr: _Manager, done: Callable[[], object]) -> None:
    with mgr.lock:
        remaining = list(mgr.bdevs)
    if not remaining:
        _finish_modules(mgr, done)
        return
    victim = next((b for b in reversed(remaining) if not b.claimed), None)
    if victim is None:
        victim = remaining[-1]
        log.warning("Unregistering claimed bdev '%s'!", victim.name)

    def unregistered(rc: int) -> None:
        if rc:
            log.error("bdev %s unregister failed at shutdown: %d", victim.name, rc)
            with mgr.lock:  # never loop forever on one bdev
                if victim in mgr.bdevs:
                    mgr.bdevs.remove(victim)
        _unregister_next(mgr, done)

    if victim.status in (BdevStatus.UNREGISTERING, BdevStatus.REMOVING):
        victim._unregister_cb = _chain(victim._unregister_cb, unregistered)
        return
    bdev_unregister(victim, unregistered)


def _chain(first: UnregisterCb | None, second: UnregisterCb) -> UnregisterCb:
    def both(rc: int) -> None:
        if first is not None:
            first(rc)
        second(rc)

    return both


def _finish_modules(mgr: _Manager, done: Callable[[], object]) -> None:
    global _mgr, _opts
    for module in reversed(bdev_modules()):
        module.module_fini()

    def released() -> None:
        global _mgr, _opts
        _mgr = None
        _opts = BdevOpts()
        done()

    io_device_unregister(mgr, released)


def bdev_is_initialized() -> bool:
    return _mgr is not None


# ---------------------------------------------------------------------------- channels


def _mgmt_create(obj: object) -> MgmtChannel:
    mgr = cast(_Manager, obj)
    thread = get_thread()
    assert thread is not None
    size = mgr.opts.bdev_io_cache_size
    mgmt = MgmtChannel(mgr.pool, size, thread)
    cache = mgmt.cache
    while len(cache) < size:
        batch = mgr.pool.get_bulk(min(64, size - len(cache)))
        if batch is None:
            log.error("You need to increase bdev_io_pool_size using bdev_set_options RPC.")
            mgr.pool.put_bulk(cache)
            cache.clear()
            raise BdevError(errno.ENOMEM, "the bdev_io pool cannot fill this thread's cache")
        cache.extend(batch)
    return mgmt


def _mgmt_destroy(obj: object, mgmt: MgmtChannel) -> None:
    if mgmt.io_wait_queue:
        log.error("thread %s still has io_wait entries queued at channel release", mgmt.thread.name)
        mgmt.io_wait_queue.clear()
    mgmt.pool.put_bulk(mgmt.cache)
    mgmt.cache.clear()


def _channel_create(obj: object) -> BdevChannel:
    bdev = cast(Bdev, obj)
    mgr = _require_mgr()
    thread = get_thread()
    assert thread is not None
    mgmt_ch = cast("IoChannel[MgmtChannel]", get_io_channel(mgr))
    try:
        module_ch = bdev.fn_table.get_io_channel()
    except BaseException:
        mgmt_ch.put()
        raise
    if module_ch is None:
        mgmt_ch.put()
        raise BdevError(errno.ENOMEM, f"module {bdev.module.name} gave no channel for {bdev.name}")
    mgmt = mgmt_ch.ctx
    for shared in mgmt.shared_resources:
        if shared.module_ch is module_ch:
            break
    else:
        shared = SharedResource(mgmt, module_ch, thread)
        mgmt.shared_resources.append(shared)
    shared.ref += 1
    return BdevChannel(bdev, thread, mgmt_ch, module_ch, shared)


def _channel_destroy(obj: object, bch: BdevChannel) -> None:
    bdev = cast(Bdev, obj)
    abort_queued(bch)
    with bdev.lock:
        bdev.retired_stat.add(bch.stat)
        bch.retired = True
    shared = bch.shared
    shared.ref -= 1
    if shared.ref == 0:
        bch.mgmt.shared_resources.remove(shared)
        if shared.nomem_poller is not None:
            shared.nomem_poller.unregister()
            shared.nomem_poller = None
    bch.module_ch.put()
    bch.mgmt_ch.put()


# ---------------------------------------------------------------------------- register


def bdev_register(bdev: Bdev) -> None:
    """Register ``bdev`` (``spdk_bdev_register``) on the app thread, then examine it.

    Raises :class:`BdevError`: ``EINVAL`` for an empty name or a zero block size, ``EEXIST``
    when the name (or the UUID alias) is taken by any bdev name or alias.
    """
    _require_app_thread("bdev_register")
    mgr = _require_mgr()
    if not bdev.name:
        raise BdevError(errno.EINVAL, "Bdev name is missing")
    if bdev.block_size <= 0:
        raise BdevError(errno.EINVAL, f"Bdev {bdev.name} block size must be > 0")
    if bdev.num_blocks < 0:
        raise BdevError(errno.EINVAL, f"Bdev {bdev.name} block count must be >= 0")
    if bdev.status is not BdevStatus.INVALID:
        raise BdevError(errno.EEXIST, f"Bdev {bdev.name} is already registered")
    if bdev.write_unit_size == 0:
        bdev.write_unit_size = 1
    if bdev.acwu == 0:
        bdev.acwu = bdev.write_unit_size
    if bdev.phys_block_size == 0:
        bdev.phys_block_size = bdev.block_size
    if bdev.uuid is None or bdev.uuid.int == 0:
        bdev.uuid = uuid_mod.uuid4()
    uuid_alias = str(bdev.uuid)
    fn = bdev.fn_table
    supported = [False] + [fn.io_type_supported(IoType(i)) for i in range(1, len(IoType))]
    bdev.native_write_zeroes = supported[_WRITE_ZEROES]
    # The layer emulates write_zeroes with writes.
    supported[_WRITE_ZEROES] = supported[_WRITE_ZEROES] or supported[_WRITE]
    if not bdev.native_write_zeroes and not bdev.max_write_zeroes:
        zero_blocks = max(1, ZERO_BUFFER_SIZE // bdev.block_size)
        boundary = bdev.write_unit_size if bdev.split_on_write_unit else 0
        bdev.max_write_zeroes = min(boundary, zero_blocks) if boundary else zero_blocks
    with mgr.lock:
        for name in (bdev.name, *bdev.aliases):
            if name in mgr.names:
                log.error("Bdev name %s already exists", name)
                raise BdevError(errno.EEXIST, f"Bdev name {name} already exists")
        aliases = list(bdev.aliases)
        if uuid_alias != bdev.name:
            if uuid_alias in mgr.names:
                log.error("Unable to add uuid:%s alias for bdev %s", uuid_alias, bdev.name)
                raise BdevError(errno.EEXIST, f"Bdev name {uuid_alias} already exists")
            aliases.insert(0, uuid_alias)
        bdev.aliases = aliases
        bdev.supported = tuple(supported)
        for name in (bdev.name, *aliases):
            mgr.names[name] = bdev
        mgr.bdevs.append(bdev)
        bdev.status = BdevStatus.READY
    io_device_register(bdev, _channel_create, _channel_destroy, f"bdev_{bdev.name}")
    log.debug("Inserting bdev %s into list", bdev.name)
    _examine(mgr, bdev)


def bdev_alias_add(bdev: Bdev, alias: str) -> None:
    """Add a name for ``bdev`` (``spdk_bdev_alias_add``); ``EEXIST`` if taken."""
    mgr = _require_mgr()
    if not alias:
        raise BdevError(errno.EINVAL, "Empty alias passed")
    with mgr.lock:
        if alias in mgr.names:
            log.error("Bdev name %s already exists", alias)
            raise BdevError(errno.EEXIST, f"Bdev name {alias} already exists")
        mgr.names[alias] = bdev
        bdev.aliases.append(alias)


def bdev_alias_del(bdev: Bdev, alias: str) -> None:
    """Remove an alias (``spdk_bdev_alias_del``); ``ENOENT`` if ``bdev`` has no such alias."""
    mgr = _require_mgr()
    with mgr.lock:
        if alias not in bdev.aliases:
            raise BdevError(errno.ENOENT, f"Alias {alias} does not exist")
        bdev.aliases.remove(alias)
        mgr.names.pop(alias, None)


def get_bdev(name: str) -> Bdev | None:
    """The bdev with this name or alias (``spdk_bdev_get_by_name``), or ``None``."""
    mgr = _mgr
    if mgr is None:
        return None
    with mgr.lock:
        return mgr.names.get(name)


def bdevs() -> list[Bdev]:
    """Every registered bdev, oldest first (``spdk_bdev_first``/``_next``)."""
    mgr = _mgr
    if mgr is None:
        return []
    with mgr.lock:
        return list(mgr.bdevs)


# ---------------------------------------------------------------------------- examine


def _examine(mgr: _Manager, bdev: Bdev) -> None:
    if not bdev.io_type_supported(IoType.READ):
        return
    if not mgr.opts.bdev_auto_examine and not any(
        n in mgr.examine_allowlist for n in (bdev.name, *bdev.aliases)
    ):
        return
    modules = bdev_modules()
    for module in modules:
        module.action_in_progress += 1
        module.examine_config(bdev)
    if bdev.claimed:
        owners = {id(c.module) for c in bdev.claims}
        if bdev.claim_module is not None:
            owners.add(id(bdev.claim_module))
        modules = [m for m in modules if id(m) in owners]
    for module in modules:
        module.action_in_progress += 1
        module.examine_disk(bdev)


def bdev_module_examine_done(module: BdevModule) -> None:
    """A module finished examining a bdev (``spdk_bdev_module_examine_done``)."""
    if module.action_in_progress <= 0:
        log.error("module %s reported an examine it was not doing", module.name)
        return
    module.action_in_progress -= 1


def _examine_idle() -> bool:
    return all(m.action_in_progress == 0 for m in bdev_modules())


def bdev_wait_for_examine(cb: Callable[[], object]) -> None:
    """``cb()`` once no module is examining (``spdk_bdev_wait_for_examine``).

    Already idle: ``cb`` runs now (so a config file's ``bdev_wait_for_examine`` answers at
    once); otherwise a poller on this thread fires it when examine goes idle.
    """
    if _examine_idle():
        cb()
        return
    thread = get_thread()
    if thread is None:
        raise WrongThreadError("bdev_wait_for_examine needs a current SPDK thread")
    holder: list[Poller] = []

    def poll() -> int:
        if not _examine_idle():
            return POLLER_IDLE
        holder[0].unregister()
        cb()
        return POLLER_BUSY

    holder.append(thread.register_poller(poll, name="bdev_wait_for_examine"))


def bdev_examine(name: str) -> None:
    """Allow-list ``name`` for examine when auto examine is off (``spdk_bdev_examine``)."""
    mgr = _require_mgr()
    if mgr.opts.bdev_auto_examine:
        log.error("Manual examine is not allowed if auto examine is enabled")
        raise BdevError(errno.EINVAL, "Manual examine is not allowed if auto examine is enabled")
    with mgr.lock:
        if name in mgr.examine_allowlist:
            log.error("Duplicate bdev name for manual examine: %s", name)
            raise BdevError(errno.EEXIST, f"Duplicate bdev name for manual examine: {name}")
        mgr.examine_allowlist.append(name)
        bdev = mgr.names.get(name)
    if bdev is not None:
        _examine(mgr, bdev)


def examine_allowlist() -> list[str]:
    mgr = _mgr
    return list(mgr.examine_allowlist) if mgr is not None else []


# ---------------------------------------------------------------------------- unregister


def bdev_unregister(bdev: Bdev, cb: UnregisterCb | None = None) -> None:
    """Hot-remove ``bdev`` (``spdk_bdev_unregister``) on the app thread.

    Queued (NOMEM) I/O is aborted, every descriptor gets :attr:`BdevEvent.REMOVE` on its
    thread, and once the last one closes the names go, the io_device is unregistered (after the
    last channel is put) and the module's ``destruct`` runs. ``cb(rc)`` then runs on this
    thread; a second unregister gets ``cb(-EBUSY)``. I/O already at the module completes
    normally.
    """
    thread = _require_app_thread("bdev_unregister")
    with bdev.lock:
        busy = bdev.status is not BdevStatus.READY
        if not busy:
            bdev.status = BdevStatus.UNREGISTERING
            bdev._unregister_cb = cb
    if busy:
        if cb is not None:
            thread.send_msg(cb, -errno.EBUSY)
        return

    def aborted(it: ChannelIterator, status: int) -> None:
        with bdev.lock:
            bdev.status = BdevStatus.REMOVING
            bdev._unregister_thread = thread
            descs = list(bdev.open_descs)
        for desc in descs:
            desc.thread.send_msg(desc._deliver_event, BdevEvent.REMOVE)
        bdev._maybe_finish_unregister()

    for_each_channel(bdev, _abort_channel_queued, aborted)


def _abort_channel_queued(it: ChannelIterator) -> None:
    assert it.channel is not None
    abort_queued(cast(BdevChannel, it.channel.ctx))
    it.done(0)


def bdev_unregister_by_name(name: str, module: BdevModule, cb: UnregisterCb | None = None) -> None:
    """Unregister the bdev ``name`` if ``module`` owns it (``spdk_bdev_unregister_by_name``).

    Raises :class:`BdevError` ``ENODEV`` if there is no such bdev or another module owns it.
    """
    bdev = get_bdev(name)
    if bdev is None:
        raise BdevError(errno.ENODEV, f"No such device: {name}")
    if bdev.module is not module:
        log.error("Bdev %s was not registered by the specified module.", name)
        raise BdevError(errno.ENODEV, f"Bdev {name} was not registered by the specified module.")
    bdev_unregister(bdev, cb)


def _unregister_finish(bdev: Bdev, thread: Thread) -> None:
    mgr = _mgr
    if mgr is not None:
        with mgr.lock:
            for name in (bdev.name, *bdev.aliases):
                if mgr.names.get(name) is bdev:
                    del mgr.names[name]
            if bdev in mgr.bdevs:
                mgr.bdevs.remove(bdev)
    log.debug("Removing bdev %s from list done", bdev.name)
    io_device_unregister(bdev, lambda: _destruct(bdev))


def _destruct(bdev: Bdev) -> None:
    try:
        rc = bdev.fn_table.destruct()
    except Exception as exc:  # a module bug must not wedge shutdown
        log.error("destruct of bdev %s failed: %r", bdev.name, exc)
        rc = -errno.EIO
    if rc == 1:
        return  # the module calls bdev_destruct_done later
    bdev_destruct_done(bdev, rc)


def bdev_destruct_done(bdev: Bdev, rc: int) -> None:
    """An asynchronous ``destruct`` finished (``spdk_bdev_destruct_done``)."""
    bdev.status = BdevStatus.INVALID
    cb = bdev._unregister_cb
    bdev._unregister_cb = None
    if rc:
        log.error("destruct of bdev %s returned %d", bdev.name, rc)
    if cb is not None:
        cb(rc)


def bdev_notify_blockcnt_change(bdev: Bdev, num_blocks: int) -> None:
    """Resize (``spdk_bdev_notify_blockcnt_change``); every descriptor gets
    :attr:`BdevEvent.RESIZE`. Shrinking while any descriptor is open raises ``EBUSY``."""
    if num_blocks < 0:
        raise BdevError(errno.EINVAL, "block count must be >= 0")
    with bdev.lock:
        if num_blocks < bdev.num_blocks and bdev.open_descs:
            raise BdevError(errno.EBUSY, f"bdev {bdev.name} is open; it cannot shrink")
        bdev.num_blocks = num_blocks
        descs = list(bdev.open_descs) if bdev.status is BdevStatus.READY else []
    for desc in descs:
        desc.thread.send_msg(desc._deliver_event, BdevEvent.RESIZE)


# ---------------------------------------------------------------------------- open / descriptors


def open_bdev(name: str, write: bool, event_cb: BdevEventCb) -> Descriptor:
    """Open the bdev ``name`` (a name or alias) on this thread (``spdk_bdev_open_ext``).

    Raises :class:`BdevError`: ``EINVAL`` without an ``event_cb``, ``ENOTSUP`` off an SPDK
    thread, ``ENODEV`` if there is no such bdev or it is being removed, ``EPERM`` to write a
    claimed bdev.
    """
    if event_cb is None:
        raise BdevError(errno.EINVAL, "an event callback is required to open a bdev")
    thread = get_thread()
    if thread is None:
        raise BdevError(errno.ENOTSUP, "open a bdev from an SPDK thread")
    bdev = get_bdev(name)
    if bdev is None:
        notice(log, "Currently unable to find bdev with name: %s", name)
        raise BdevError(errno.ENODEV, f"Currently unable to find bdev with name: {name}")
    with bdev.lock:
        if bdev.status is not BdevStatus.READY:
            raise BdevError(errno.ENODEV, f"bdev {bdev.name} is being removed")
        if write and bdev.claimed:
            owner = bdev.claim_module or (bdev.claims[0].module if bdev.claims else None)
            log.error(
                "Could not open %s - %s module already claimed it",
                bdev.name,
                owner.name if owner is not None else "?",
            )
            raise BdevError(errno.EPERM, f"bdev {bdev.name} is claimed; it cannot be written")
        desc = Descriptor(bdev, write, event_cb, thread)
        bdev.open_descs.append(desc)
    return desc


def _range_error(bdev: Bdev, offset: int, num: int) -> BdevError:
    return BdevError(
        errno.EINVAL,
        f"I/O of {num} blocks at block {offset} is outside bdev {bdev.name} "
        f"({bdev.num_blocks} blocks)",
    )


def _read_only_error(bdev: Bdev) -> BdevError:
    return BdevError(errno.EBADF, f"descriptor of bdev {bdev.name} is open read-only")


def _short_buffer(bdev: Bdev, have: int, need: int) -> BdevError:
    return BdevError(
        errno.EINVAL, f"buffer of {have} bytes for an I/O of {need} bytes ({bdev.name})"
    )


def _wrong_channel(bdev: Bdev, bch: BdevChannel) -> BdevError:
    return BdevError(errno.EINVAL, f"channel of bdev {bch.bdev.name} used for bdev {bdev.name}")


def _unaligned(bdev: Bdev, offset: int, nbytes: int) -> BdevError:
    return BdevError(
        errno.EINVAL,
        f"offset {offset} / length {nbytes} is not a multiple of the block size "
        f"{bdev.block_size} of bdev {bdev.name}",
    )


@final
class Descriptor:
    """An open bdev (``struct spdk_bdev_desc``), used on any thread through that thread's
    channel; events and :meth:`close` belong to the opener thread.

    Submit calls return :attr:`SubmitStatus.SUBMITTED` (the callback ``cb(io, success,
    cb_arg)`` follows on this thread, never before the call returns) or
    :attr:`SubmitStatus.NOMEM` (see :func:`~spdkpy.bdev.queue_io_wait`), and raise
    :class:`BdevError` for a write on a read-only descriptor (``EBADF``), an out-of-range or
    misaligned I/O or a short buffer (``EINVAL``) or an unsupported type (``ENOTSUP``).
    Buffers are bytes-like with 1-byte items (``bytearray``, ``memoryview``, ``mmap``).
    """

    __slots__ = ("__weakref__", "bdev", "claim", "closed", "event_cb", "thread", "writable")

    def __init__(self, bdev: Bdev, write: bool, event_cb: BdevEventCb, thread: Thread) -> None:
        self.bdev = bdev
        self.writable = write
        self.event_cb = event_cb
        self.thread = thread
        self.closed = False
        self.claim: _Claim | None = None

    def __repr__(self) -> str:
        mode = "rw" if self.writable else "ro"
        return f"<Descriptor {self.bdev.name!r} {mode} on {self.thread.name!r}>"

    def _deliver_event(self, event: BdevEvent) -> None:
        if not self.closed:
            self.event_cb(event, self.bdev)

    def close(self) -> None:
        """Close on the opener thread (``spdk_bdev_close``); releases this descriptor's claim.

        Put its channels first. If the bdev is being removed and this was its last
        descriptor, the removal goes on.
        """
        if get_thread() is not self.thread:
            raise WrongThreadError(
                f"descriptor of bdev {self.bdev.name} must be closed on thread {self.thread.name}"
            )
        if self.closed:
            raise InvalidStateError(f"descriptor of bdev {self.bdev.name} is already closed")
        bdev = self.bdev
        with bdev.lock:
            self.closed = True
            bdev.open_descs.remove(self)
            claim = self.claim
            if claim is not None:
                self.claim = None
                bdev.claims.remove(claim)
                if not bdev.claims and bdev.claim_module is None:
                    bdev.claim_type = ClaimType.NONE
        bdev._maybe_finish_unregister()

    def get_io_channel(self) -> IoChannel[BdevChannel]:
        """This thread's channel to the bdev (``spdk_bdev_get_io_channel``); ``put()`` it."""
        return cast("IoChannel[BdevChannel]", get_io_channel(self.bdev))

    # ------------------------------------------------------------------ read / write (hot)

    def read_blocks(
        self,
        ch: IoChannel[BdevChannel],
        buf: Any,
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Read ``num_blocks`` at ``offset_blocks`` into ``buf`` (``None``: the module's
        buffer, then in ``io.buf``) (``spdk_bdev_read_blocks``)."""
        bdev = self.bdev
        if offset_blocks < 0 or num_blocks < 0 or offset_blocks + num_blocks > bdev.num_blocks:
            raise _range_error(bdev, offset_blocks, num_blocks)
        bch = ch.ctx
        if bch.bdev is not bdev:
            raise _wrong_channel(bdev, bch)
        if buf is not None and len(buf) < num_blocks * bch.block_size:
            raise _short_buffer(bdev, len(buf), num_blocks * bch.block_size)
        mgmt = bch.mgmt
        cache = mgmt.cache
        if cache:
            io = cache.pop()
        elif mgmt.io_wait_queue:
            return _NOMEM
        else:
            got = mgmt.pool.get()
            if got is None:
                return _NOMEM
            io = got
        io.bdev = bdev
        io.ch = bch
        io.type = _READ
        io.status = _PENDING
        if buf is None:
            io.buf = None
            io.iovs = None
        else:
            io.buf = buf
            iov1 = io._iov1
            iov1[0] = buf
            io.iovs = iov1
        io.offset_blocks = offset_blocks
        io.num_blocks = num_blocks
        io.cb = cb
        io.cb_arg = cb_arg
        submit_io(bch, io)
        return _SUBMITTED

    def write_blocks(
        self,
        ch: IoChannel[BdevChannel],
        buf: Any,
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Write ``num_blocks`` from ``buf`` at ``offset_blocks`` (``spdk_bdev_write_blocks``)."""
        bdev = self.bdev
        if not self.writable:
            raise _read_only_error(bdev)
        if offset_blocks < 0 or num_blocks < 0 or offset_blocks + num_blocks > bdev.num_blocks:
            raise _range_error(bdev, offset_blocks, num_blocks)
        bch = ch.ctx
        if bch.bdev is not bdev:
            raise _wrong_channel(bdev, bch)
        if buf is None or len(buf) < num_blocks * bch.block_size:
            raise _short_buffer(bdev, 0 if buf is None else len(buf), num_blocks * bch.block_size)
        mgmt = bch.mgmt
        cache = mgmt.cache
        if cache:
            io = cache.pop()
        elif mgmt.io_wait_queue:
            return _NOMEM
        else:
            got = mgmt.pool.get()
            if got is None:
                return _NOMEM
            io = got
        io.bdev = bdev
        io.ch = bch
        io.type = _WRITE
        io.status = _PENDING
        io.buf = buf
        iov1 = io._iov1
        iov1[0] = buf
        io.iovs = iov1
        io.offset_blocks = offset_blocks
        io.num_blocks = num_blocks
        io.cb = cb
        io.cb_arg = cb_arg
        submit_io(bch, io)
        return _SUBMITTED

    def readv_blocks(
        self,
        ch: IoChannel[BdevChannel],
        iovs: Sequence[Any],
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Scatter read into ``iovs`` (``spdk_bdev_readv_blocks``)."""
        return self._vector(ch, _READ, iovs, offset_blocks, num_blocks, cb, cb_arg)

    def writev_blocks(
        self,
        ch: IoChannel[BdevChannel],
        iovs: Sequence[Any],
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Gather write from ``iovs`` (``spdk_bdev_writev_blocks``)."""
        if not self.writable:
            raise _read_only_error(self.bdev)
        return self._vector(ch, _WRITE, iovs, offset_blocks, num_blocks, cb, cb_arg)

    def _vector(
        self,
        ch: IoChannel[BdevChannel],
        kind: int,
        iovs: Sequence[Any],
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any,
    ) -> SubmitStatus:
        bdev = self.bdev
        if offset_blocks < 0 or num_blocks < 0 or offset_blocks + num_blocks > bdev.num_blocks:
            raise _range_error(bdev, offset_blocks, num_blocks)
        bch = ch.ctx
        if bch.bdev is not bdev:
            raise _wrong_channel(bdev, bch)
        need = num_blocks * bch.block_size
        have = sum(len(v) for v in iovs)
        if have < need:
            raise _short_buffer(bdev, have, need)
        io = get_io(bch)
        if io is None:
            return _NOMEM
        io.bdev = bdev
        io.ch = bch
        io.type = kind
        io.status = _PENDING
        io.iovs = list(iovs)
        io.buf = io.iovs[0] if len(io.iovs) == 1 else None
        io.offset_blocks = offset_blocks
        io.num_blocks = num_blocks
        io.cb = cb
        io.cb_arg = cb_arg
        submit_io(bch, io)
        return _SUBMITTED

    def _bytes_to_blocks(self, offset: int, nbytes: int) -> tuple[int, int]:
        block_size = self.bdev.block_size
        if offset % block_size or nbytes % block_size:
            raise _unaligned(self.bdev, offset, nbytes)
        return offset // block_size, nbytes // block_size

    def read(
        self,
        ch: IoChannel[BdevChannel],
        buf: Any,
        offset: int,
        nbytes: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Byte-addressed :meth:`read_blocks` (``spdk_bdev_read``); both multiples of the
        block size, else ``EINVAL``."""
        offset_blocks, num_blocks = self._bytes_to_blocks(offset, nbytes)
        return self.read_blocks(ch, buf, offset_blocks, num_blocks, cb, cb_arg)

    def write(
        self,
        ch: IoChannel[BdevChannel],
        buf: Any,
        offset: int,
        nbytes: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Byte-addressed :meth:`write_blocks` (``spdk_bdev_write``)."""
        if not self.writable:
            raise _read_only_error(self.bdev)
        offset_blocks, num_blocks = self._bytes_to_blocks(offset, nbytes)
        return self.write_blocks(ch, buf, offset_blocks, num_blocks, cb, cb_arg)

    def readv(
        self,
        ch: IoChannel[BdevChannel],
        iovs: Sequence[Any],
        offset: int,
        nbytes: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Byte-addressed :meth:`readv_blocks` (``spdk_bdev_readv``)."""
        offset_blocks, num_blocks = self._bytes_to_blocks(offset, nbytes)
        return self.readv_blocks(ch, iovs, offset_blocks, num_blocks, cb, cb_arg)

    def writev(
        self,
        ch: IoChannel[BdevChannel],
        iovs: Sequence[Any],
        offset: int,
        nbytes: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Byte-addressed :meth:`writev_blocks` (``spdk_bdev_writev``)."""
        if not self.writable:
            raise _read_only_error(self.bdev)
        offset_blocks, num_blocks = self._bytes_to_blocks(offset, nbytes)
        return self.writev_blocks(ch, iovs, offset_blocks, num_blocks, cb, cb_arg)

    # ------------------------------------------------------------------ other types

    def _no_data(
        self,
        ch: IoChannel[BdevChannel],
        kind: int,
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any,
    ) -> SubmitStatus:
        bdev = self.bdev
        if not self.writable:
            raise _read_only_error(bdev)
        if offset_blocks < 0 or num_blocks < 0 or offset_blocks + num_blocks > bdev.num_blocks:
            raise _range_error(bdev, offset_blocks, num_blocks)
        if kind == _FLUSH and not bdev.io_type_supported(IoType.FLUSH):
            raise BdevError(errno.ENOTSUP, f"bdev {bdev.name} does not support flush")
        if kind == _WRITE_ZEROES and not bdev.io_type_supported(IoType.WRITE_ZEROES):
            raise BdevError(errno.ENOTSUP, f"bdev {bdev.name} does not support write_zeroes")
        bch = ch.ctx
        if bch.bdev is not bdev:
            raise _wrong_channel(bdev, bch)
        io = get_io(bch)
        if io is None:
            return _NOMEM
        io.bdev = bdev
        io.ch = bch
        io.type = kind
        io.status = _PENDING
        io.buf = None
        io.iovs = None
        io.offset_blocks = offset_blocks
        io.num_blocks = num_blocks
        io.cb = cb
        io.cb_arg = cb_arg
        if kind == _UNMAP and num_blocks == 0:
            io.submit_tsc = bch.now()
            complete_later(io, _SUCCESS)  # never inline
            return _SUBMITTED
        submit_io(bch, io)
        return _SUBMITTED

    def flush_blocks(
        self,
        ch: IoChannel[BdevChannel],
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Flush a range (``spdk_bdev_flush_blocks``); ``ENOTSUP`` if the bdev cannot."""
        return self._no_data(ch, _FLUSH, offset_blocks, num_blocks, cb, cb_arg)

    def unmap_blocks(
        self,
        ch: IoChannel[BdevChannel],
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Unmap a range (``spdk_bdev_unmap_blocks``). Support is the module's to judge: a
        module without unmap completes it failed."""
        return self._no_data(ch, _UNMAP, offset_blocks, num_blocks, cb, cb_arg)

    def write_zeroes_blocks(
        self,
        ch: IoChannel[BdevChannel],
        offset_blocks: int,
        num_blocks: int,
        cb: CompletionCb,
        cb_arg: Any = None,
    ) -> SubmitStatus:
        """Zero a range (``spdk_bdev_write_zeroes_blocks``), emulated with writes from a
        shared zero buffer when the module has no native support."""
        return self._no_data(ch, _WRITE_ZEROES, offset_blocks, num_blocks, cb, cb_arg)

    def reset(
        self, ch: IoChannel[BdevChannel], cb: CompletionCb, cb_arg: Any = None
    ) -> SubmitStatus:
        """Reset the bdev (``spdk_bdev_reset``): every channel is frozen (new I/O completes
        ABORTED), the module resets, channels thaw, then ``cb``. One reset runs per bdev; later
        ones wait and get its status."""
        bdev = self.bdev
        bch = ch.ctx
        if bch.bdev is not bdev:
            raise _wrong_channel(bdev, bch)
        io = get_io(bch)
        if io is None:
            return _NOMEM
        io.bdev = bdev
        io.ch = bch
        io.type = _RESET
        io.status = _PENDING
        io.buf = None
        io.iovs = None
        io.offset_blocks = 0
        io.num_blocks = 0
        io.cb = cb
        io.cb_arg = cb_arg
        submit_reset(bch, io)
        return _SUBMITTED


def get_bdev_io_channel(desc: Descriptor) -> IoChannel[BdevChannel]:
    """``desc.get_io_channel()`` as a function (``spdk_bdev_get_io_channel``)."""
    return desc.get_io_channel()


def queue_io_wait(bdev: Bdev, ch: IoChannel[BdevChannel], entry: BdevIoWaitEntry) -> None:
    """After a ``NOMEM`` submit, run ``entry.cb(entry.cb_arg)`` once a request is freed on this
    thread (``spdk_bdev_queue_io_wait``). Call it right after the refused submit.

    Raises :class:`BdevError` ``EINVAL`` if ``entry.bdev`` is not ``bdev`` or if this thread's
    cache still has a request (the submit could not have failed for lack of one).
    """
    mgmt = ch.ctx.mgmt
    if entry.bdev is not bdev:
        log.error("bdevs do not match")
        raise BdevError(errno.EINVAL, "bdevs do not match")
    if mgmt.cache:
        log.error("Cannot queue io_wait if spdk_bdev_io available in per-thread cache")
        raise BdevError(
            errno.EINVAL, "Cannot queue io_wait if spdk_bdev_io available in per-thread cache"
        )
    mgmt.io_wait_queue.append(entry)


# ---------------------------------------------------------------------------- claims (A1.1)


def bdev_module_claim_bdev(bdev: Bdev, desc: Descriptor | None, module: BdevModule) -> None:
    """Claim ``bdev`` exclusively for writing (v1, ``spdk_bdev_module_claim_bdev``); ``desc``
    (if given) becomes writable. ``EPERM`` if any claim exists."""
    with bdev.lock:
        if bdev.claimed:
            owner = bdev.claim_module or (bdev.claims[0].module if bdev.claims else None)
            log.error(
                "bdev %s already claimed: type %s by module %s",
                bdev.name,
                bdev.claim_type.value,
                owner.name if owner is not None else "?",
            )
            raise BdevError(errno.EPERM, f"bdev {bdev.name} already claimed")
        bdev.claim_type = ClaimType.EXCL_WRITE
        bdev.claim_module = module
        if desc is not None:
            desc.writable = True


def bdev_module_release_bdev(bdev: Bdev) -> None:
    """Drop a v1 claim (``spdk_bdev_module_release_bdev``)."""
    with bdev.lock:
        if bdev.claim_module is None:
            raise BdevError(errno.EINVAL, f"bdev {bdev.name} has no v1 claim to release")
        bdev.claim_module = None
        bdev.claim_type = ClaimType.NONE


def bdev_module_claim_bdev_desc(
    desc: Descriptor, claim_type: ClaimType, module: BdevModule, shared_claim_key: int = 0
) -> None:
    """Claim through a descriptor (v2, ``spdk_bdev_module_claim_bdev_desc``); the claim goes
    when the descriptor closes.

    ``READ_MANY_WRITE_ONE`` and ``EXCL_WRITE`` make ``desc`` the only writer;
    ``READ_MANY_WRITE_NONE`` needs a read-only ``desc`` and no writer; ``READ_MANY_WRITE_SHARED``
    needs a non-zero key shared by every claimer. Conflicts raise ``EBUSY``, bad arguments
    ``EINVAL``.
    """
    bdev = desc.bdev
    if claim_type is ClaimType.NONE:
        raise BdevError(errno.EINVAL, "claim type NONE is not a claim")
    if claim_type is ClaimType.READ_MANY_WRITE_SHARED and not shared_claim_key:
        raise BdevError(errno.EINVAL, f"{bdev.name}: shared claims need a key")
    if claim_type is not ClaimType.READ_MANY_WRITE_SHARED and shared_claim_key:
        raise BdevError(errno.EINVAL, f"{bdev.name}: a key is only for shared claims")
    if claim_type is ClaimType.READ_MANY_WRITE_NONE and desc.writable:
        raise BdevError(errno.EINVAL, f"{bdev.name}: read_many_write_none needs a read-only desc")
    with bdev.lock:
        if desc.claim is not None:
            raise BdevError(errno.EPERM, f"{bdev.name}: descriptor already holds a claim")
        current = bdev.claim_type
        shareable = claim_type in (ClaimType.READ_MANY_WRITE_NONE, ClaimType.READ_MANY_WRITE_SHARED)
        if current is not ClaimType.NONE and not (
            current is claim_type
            and shareable
            and bdev.claim_module is None
            and all(c.key == shared_claim_key for c in bdev.claims)
        ):
            log.error(
                "bdev %s already claimed: type %s by module %s",
                bdev.name,
                current.value,
                (bdev.claim_module or bdev.claims[0].module).name,
            )
            raise BdevError(errno.EBUSY, f"bdev {bdev.name} already claimed ({current.value})")
        other_writer = any(d is not desc and d.writable for d in bdev.open_descs)
        if claim_type is not ClaimType.READ_MANY_WRITE_SHARED and other_writer:
            raise BdevError(errno.EBUSY, f"{bdev.name}: another descriptor is open for writing")
        if claim_type in (ClaimType.EXCL_WRITE, ClaimType.READ_MANY_WRITE_ONE):
            desc.writable = True
        claim = _Claim(desc, module, shared_claim_key)
        bdev.claims.append(claim)
        bdev.claim_type = claim_type
        desc.claim = claim


# ---------------------------------------------------------------------------- statistics


def bdev_get_device_stat(
    bdev: Bdev, cb: Callable[[BdevIoStat], object], reset_mode: str = "none"
) -> None:
    """The bdev's totals (retired channels + every live channel, read on each channel's
    thread), then ``reset_mode`` applied; ``cb(stat)`` on this thread
    (``spdk_bdev_get_device_stat``).

    The retired totals are read after the walk, and a channel visited but retired before the
    walk ends is counted once, from the retired totals.
    """
    visited: list[tuple[BdevChannel, BdevIoStat]] = []

    def visit(it: ChannelIterator) -> None:
        assert it.channel is not None
        bch = cast(BdevChannel, it.channel.ctx)
        copy = BdevIoStat()
        copy.add(bch.stat)
        visited.append((bch, copy))
        bch.stat.reset(reset_mode)
        it.done(0)

    def walked(it: ChannelIterator, status: int) -> None:
        total = BdevIoStat()
        with bdev.lock:
            total.add(bdev.retired_stat)
            for bch, copy in visited:
                if not bch.retired:
                    total.add(copy)
            total.io_error = dict(bdev.io_error)
            bdev.retired_stat.reset(reset_mode)
            if reset_mode in ("all", "error"):
                bdev.io_error.clear()
        cb(total)

    for_each_channel(bdev, visit, walked)


def bdev_get_channel_stats(
    bdev: Bdev, cb: Callable[[list[tuple[int, BdevIoStat]]], object], reset_mode: str = "none"
) -> None:
    """Each live channel's statistics as ``(thread_id, stat)``, in thread-id order."""
    out: list[tuple[int, BdevIoStat]] = []

    def visit(it: ChannelIterator) -> None:
        assert it.channel is not None
        assert it.thread is not None
        stat = cast(BdevChannel, it.channel.ctx).stat
        copy = BdevIoStat()
        copy.add(stat)
        out.append((it.thread.id, copy))
        stat.reset(reset_mode)
        it.done(0)

    for_each_channel(bdev, visit, lambda it, status: cb(out))


def bdev_reset_device_stat(bdev: Bdev, mode: str, cb: Callable[[], object]) -> None:
    """Reset the statistics by ``mode`` (``all``, ``maxmin``, ``error``, ``none``)."""
    bdev_get_device_stat(bdev, lambda stat: cb(), mode)
