"""The block device layer (SPDK's ``lib/bdev``) and its ``malloc``, ``null`` and ``aio`` modules.

Layout: ``_types`` enums and constants, ``_stat`` I/O statistics, ``_io`` the data path (pooled
:class:`BdevIo`, per-thread channels, submit/complete, NOMEM, split, reset), ``_bdev`` the
registry, modules, descriptors, claims and the control path, ``_malloc``, ``_null`` and ``_aio``
(on the ``_aio_engine`` file I/O engine) the modules, ``_decode``/``_rpc`` the JSON-RPC methods,
``_subsystem`` the app subsystem.

A user::

    desc = open_bdev("Malloc0", True, on_event)          # on an SPDK thread
    ch = desc.get_io_channel()                           # this thread's channel
    rc = desc.read_blocks(ch, buf, 0, 8, done, arg)      # SUBMITTED or NOMEM
    def done(io, success, arg): ...; io.free()           # later, on this thread

A module subclasses :class:`BdevModule` (registered once with :func:`bdev_module_register`) and
:class:`BdevFnTable`, registers a :class:`Bdev` with :func:`bdev_register`, gets
``submit_request(module_channel, io)`` on the submitting thread and calls
``io.complete(status)`` there later.
"""

from spdkpy.bdev._aio import AIO_MODULE as AIO_MODULE
from spdkpy.bdev._aio import AioOpts as AioOpts
from spdkpy.bdev._aio import create_aio_bdev as create_aio_bdev
from spdkpy.bdev._aio import delete_aio_bdev as delete_aio_bdev
from spdkpy.bdev._aio import rescan_aio_bdev as rescan_aio_bdev
from spdkpy.bdev._bdev import Bdev as Bdev
from spdkpy.bdev._bdev import BdevEventCb as BdevEventCb
from spdkpy.bdev._bdev import BdevFnTable as BdevFnTable
from spdkpy.bdev._bdev import BdevModule as BdevModule
from spdkpy.bdev._bdev import BdevOpts as BdevOpts
from spdkpy.bdev._bdev import BdevStatus as BdevStatus
from spdkpy.bdev._bdev import Descriptor as Descriptor
from spdkpy.bdev._bdev import bdev_alias_add as bdev_alias_add
from spdkpy.bdev._bdev import bdev_alias_del as bdev_alias_del
from spdkpy.bdev._bdev import bdev_destruct_done as bdev_destruct_done
from spdkpy.bdev._bdev import bdev_examine as bdev_examine
from spdkpy.bdev._bdev import bdev_finish as bdev_finish
from spdkpy.bdev._bdev import bdev_get_channel_stats as bdev_get_channel_stats
from spdkpy.bdev._bdev import bdev_get_device_stat as bdev_get_device_stat
from spdkpy.bdev._bdev import bdev_initialize as bdev_initialize
from spdkpy.bdev._bdev import bdev_is_initialized as bdev_is_initialized
from spdkpy.bdev._bdev import bdev_module_claim_bdev as bdev_module_claim_bdev
from spdkpy.bdev._bdev import bdev_module_claim_bdev_desc as bdev_module_claim_bdev_desc
from spdkpy.bdev._bdev import bdev_module_examine_done as bdev_module_examine_done
from spdkpy.bdev._bdev import bdev_module_register as bdev_module_register
from spdkpy.bdev._bdev import bdev_module_release_bdev as bdev_module_release_bdev
from spdkpy.bdev._bdev import bdev_module_unregister as bdev_module_unregister
from spdkpy.bdev._bdev import bdev_modules as bdev_modules
from spdkpy.bdev._bdev import bdev_notify_blockcnt_change as bdev_notify_blockcnt_change
from spdkpy.bdev._bdev import bdev_register as bdev_register
from spdkpy.bdev._bdev import bdev_reset_device_stat as bdev_reset_device_stat
from spdkpy.bdev._bdev import bdev_unregister as bdev_unregister
from spdkpy.bdev._bdev import bdev_unregister_by_name as bdev_unregister_by_name
from spdkpy.bdev._bdev import bdev_wait_for_examine as bdev_wait_for_examine
from spdkpy.bdev._bdev import bdevs as bdevs
from spdkpy.bdev._bdev import get_bdev as get_bdev
from spdkpy.bdev._bdev import get_bdev_io_channel as get_bdev_io_channel
from spdkpy.bdev._bdev import get_bdev_opts as get_bdev_opts
from spdkpy.bdev._bdev import open_bdev as open_bdev
from spdkpy.bdev._bdev import queue_io_wait as queue_io_wait
from spdkpy.bdev._bdev import set_bdev_opts as set_bdev_opts
from spdkpy.bdev._decode import DecodeError as DecodeError
from spdkpy.bdev._decode import Field as Field
from spdkpy.bdev._decode import decode_failed as decode_failed
from spdkpy.bdev._decode import decode_object as decode_object
from spdkpy.bdev._io import BdevChannel as BdevChannel
from spdkpy.bdev._io import BdevIo as BdevIo
from spdkpy.bdev._io import BdevIoWaitEntry as BdevIoWaitEntry
from spdkpy.bdev._io import CompletionCb as CompletionCb
from spdkpy.bdev._io import alloc_io_buffer as alloc_io_buffer
from spdkpy.bdev._malloc import MALLOC_MODULE as MALLOC_MODULE
from spdkpy.bdev._malloc import MallocOpts as MallocOpts
from spdkpy.bdev._malloc import create_malloc_disk as create_malloc_disk
from spdkpy.bdev._malloc import delete_malloc_disk as delete_malloc_disk
from spdkpy.bdev._null import NULL_MODULE as NULL_MODULE
from spdkpy.bdev._null import NullOpts as NullOpts
from spdkpy.bdev._null import create_null_bdev as create_null_bdev
from spdkpy.bdev._null import delete_null_bdev as delete_null_bdev
from spdkpy.bdev._null import resize_null_bdev as resize_null_bdev
from spdkpy.bdev._rpc import BDEV_RPC_METHODS as BDEV_RPC_METHODS
from spdkpy.bdev._rpc import register_bdev_methods as register_bdev_methods
from spdkpy.bdev._rpc import rpc_errno_error as rpc_errno_error
from spdkpy.bdev._stat import BdevIoStat as BdevIoStat
from spdkpy.bdev._subsystem import bdev_config_json as bdev_config_json
from spdkpy.bdev._subsystem import bdev_subsystem as bdev_subsystem
from spdkpy.bdev._subsystem import register_bdev_subsystem as register_bdev_subsystem
from spdkpy.bdev._types import IO_TYPE_NAMES as IO_TYPE_NAMES
from spdkpy.bdev._types import ZERO_BUFFER_SIZE as ZERO_BUFFER_SIZE
from spdkpy.bdev._types import BdevEvent as BdevEvent
from spdkpy.bdev._types import ClaimType as ClaimType
from spdkpy.bdev._types import IoStatus as IoStatus
from spdkpy.bdev._types import IoType as IoType
from spdkpy.bdev._types import SubmitStatus as SubmitStatus

__all__ = [
    "AIO_MODULE",
    "BDEV_RPC_METHODS",
    "IO_TYPE_NAMES",
    "MALLOC_MODULE",
    "NULL_MODULE",
    "ZERO_BUFFER_SIZE",
    "AioOpts",
    "Bdev",
    "BdevChannel",
    "BdevEvent",
    "BdevEventCb",
    "BdevFnTable",
    "BdevIo",
    "BdevIoStat",
    "BdevIoWaitEntry",
    "BdevModule",
    "BdevOpts",
    "BdevStatus",
    "ClaimType",
    "CompletionCb",
    "DecodeError",
    "Descriptor",
    "Field",
    "IoStatus",
    "IoType",
    "MallocOpts",
    "NullOpts",
    "SubmitStatus",
    "alloc_io_buffer",
    "bdev_alias_add",
    "bdev_alias_del",
    "bdev_config_json",
    "bdev_destruct_done",
    "bdev_examine",
    "bdev_finish",
    "bdev_get_channel_stats",
    "bdev_get_device_stat",
    "bdev_initialize",
    "bdev_is_initialized",
    "bdev_module_claim_bdev",
    "bdev_module_claim_bdev_desc",
    "bdev_module_examine_done",
    "bdev_module_register",
    "bdev_module_release_bdev",
    "bdev_module_unregister",
    "bdev_modules",
    "bdev_notify_blockcnt_change",
    "bdev_register",
    "bdev_reset_device_stat",
    "bdev_subsystem",
    "bdev_unregister",
    "bdev_unregister_by_name",
    "bdev_wait_for_examine",
    "bdevs",
    "create_aio_bdev",
    "create_malloc_disk",
    "create_null_bdev",
    "decode_failed",
    "decode_object",
    "delete_aio_bdev",
    "delete_malloc_disk",
    "delete_null_bdev",
    "get_bdev",
    "get_bdev_io_channel",
    "get_bdev_opts",
    "open_bdev",
    "queue_io_wait",
    "register_bdev_methods",
    "register_bdev_subsystem",
    "rescan_aio_bdev",
    "resize_null_bdev",
    "rpc_errno_error",
    "set_bdev_opts",
]
