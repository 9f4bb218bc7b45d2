"""The bdev JSON-RPC methods (SPDK's ``lib/bdev/bdev_rpc.c`` and the malloc, null and aio
modules' ``*_rpc.c``): params, replies and errors exactly SPDK's (SPEC-STORAGE A2, A3).

Handlers run on the app thread. Errors from the layer are answered ``{"code": -errno,
"message": strerror}``; decode failures with -32603 "spdk_json_decode_object failed", except
``bdev_set_options`` (-32602 "Invalid parameters"), as SPDK.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Any, Final

from spdkpy.bdev._aio import AioOpts, create_aio_bdev, delete_aio_bdev, rescan_aio_bdev
from spdkpy.bdev._bdev import (
    Bdev,
    BdevOpts,
    bdev_examine,
    bdev_get_channel_stats,
    bdev_get_device_stat,
    bdev_reset_device_stat,
    bdev_wait_for_examine,
    bdevs,
    get_bdev,
    get_bdev_opts,
    set_bdev_opts,
)
from spdkpy.bdev._decode import DecodeError, Field, decode_failed, decode_object
from spdkpy.bdev._malloc import MallocOpts, create_malloc_disk, delete_malloc_disk
from spdkpy.bdev._null import NullOpts, create_null_bdev, delete_null_bdev, resize_null_bdev
from spdkpy.bdev._stat import RESET_MODES, BdevIoStat
from spdkpy.errors import BdevError
from spdkpy.rpc import INVALID_PARAMS, RpcError, RpcRegistry, RpcRequest, RpcState
from spdkpy.thread import POLLER_BUSY, POLLER_IDLE, Poller, current_library, get_thread

__all__ = ["BDEV_RPC_METHODS", "register_bdev_methods", "rpc_errno_error"]

BDEV_RPC_METHODS: Final = (
    "bdev_set_options",
    "bdev_examine",
    "bdev_wait_for_examine",
    "bdev_get_bdevs",
    "bdev_get_iostat",
    "bdev_reset_iostat",
    "bdev_malloc_create",
    "bdev_malloc_delete",
    "bdev_null_create",
    "bdev_null_delete",
    "bdev_null_resize",
    "bdev_aio_create",
    "bdev_aio_delete",
    "bdev_aio_rescan",
)

GET_BDEVS_RETRY_US: Final = 100_000

_MALLOC_CREATE: Final = {
    "name": Field("string"),
    "num_blocks": Field("uint64", required=True),
    "block_size": Field("uint32", required=True),
    "physical_block_size": Field("uint32"),
    "uuid": Field("uuid"),
    "optimal_io_boundary": Field("uint32"),
    "md_size": Field("uint32"),
    "md_interleave": Field("bool"),
    "dif_type": Field("int32"),
    "dif_is_head_of_md": Field("bool"),
    "dif_pi_format": Field("uint32"),
    "numa_id": Field("int32"),
}
_NULL_CREATE: Final = {
    "name": Field("string", required=True),
    "num_blocks": Field("uint64", required=True),
    "block_size": Field("uint32", required=True),
    "physical_block_size": Field("uint32"),
    "uuid": Field("uuid"),
    "md_size": Field("uint32"),
    "dif_type": Field("int32"),
    "dif_is_head_of_md": Field("bool"),
    "dif_pi_format": Field("uint32"),
    "preferred_write_alignment": Field("uint32"),
    "preferred_write_granularity": Field("uint32"),
    "optimal_write_size": Field("uint32"),
    "preferred_unmap_alignment": Field("uint32"),
    "preferred_unmap_granularity": Field("uint32"),
}
_AIO_CREATE: Final = {
    "name": Field("string", required=True),
    "filename": Field("string", required=True),
    "block_size": Field("uint32"),
    "readonly": Field("bool"),
    "fallocate": Field("bool"),
    "uuid": Field("uuid"),
    "nowait": Field("bool"),
}
_NAME_ONLY: Final = {"name": Field("string", required=True)}
_NULL_RESIZE: Final = {"name": Field("string", required=True), "new_size": Field("uint64", True)}
_GET_BDEVS: Final = {"name": Field("string"), "timeout": Field("uint64")}
_GET_IOSTAT: Final = {
    "name": Field("string"),
    "names": Field("string_array"),
    "per_channel": Field("bool"),
    "reset_mode": Field("string"),
}
_RESET_IOSTAT: Final = {"name": Field("string"), "mode": Field("string")}
_SET_OPTIONS: Final = {
    "bdev_io_pool_size": Field("uint32"),
    "bdev_io_cache_size": Field("uint32"),
    "bdev_auto_examine": Field("bool"),
    "iobuf_small_cache_size": Field("uint32"),
    "iobuf_large_cache_size": Field("uint32"),
}


def rpc_errno_error(code: int) -> RpcError:
    """SPDK's errno reply: ``{"code": -errno, "message": strerror(errno)}``."""
    return RpcError(-code, os.strerror(code))


def _decode(request: RpcRequest, fields: dict[str, Field]) -> dict[str, Any]:
    try:
        return decode_object(request.params, fields)
    except DecodeError:
        raise decode_failed() from None


def _answer_unregister(request: RpcRequest) -> Callable[[int], None]:
    def done(rc: int) -> None:
        if rc:
            request.error(rc, os.strerror(-rc))
        else:
            request.result(True)

    return done


def _tick_rate() -> tuple[int, int]:
    clock = current_library().clock
    return clock.ticks_per_second, clock.now()


def _stat_element(bdev: Bdev, stat: BdevIoStat) -> dict[str, object]:
    return {"name": bdev.name, **stat.to_json()}


def register_bdev_methods(registry: RpcRegistry) -> None:
    """Register the bdev, malloc, null and aio methods into ``registry``."""

    def bdev_set_options(request: RpcRequest) -> None:
        try:
            params: dict[str, Any] = decode_object(request.params, _SET_OPTIONS)
        except DecodeError:
            raise RpcError(INVALID_PARAMS, "Invalid parameters") from None
        current = get_bdev_opts()
        opts = BdevOpts(
            bdev_io_pool_size=params.get("bdev_io_pool_size", current.bdev_io_pool_size),
            bdev_io_cache_size=params.get("bdev_io_cache_size", current.bdev_io_cache_size),
            bdev_auto_examine=params.get("bdev_auto_examine", current.bdev_auto_examine),
            iobuf_small_cache_size=params.get(
                "iobuf_small_cache_size", current.iobuf_small_cache_size
            ),
            iobuf_large_cache_size=params.get(
                "iobuf_large_cache_size", current.iobuf_large_cache_size
            ),
        )
        try:
            set_bdev_opts(opts)
        except BdevError as exc:
            raise RpcError(INVALID_PARAMS, str(exc)) from None
        request.result(True)

    def bdev_examine_rpc(request: RpcRequest) -> None:
        params = _decode(request, _NAME_ONLY)
        try:
            bdev_examine(params["name"])
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None
        request.result(True)

    def bdev_wait_for_examine_rpc(request: RpcRequest) -> None:
        if request.no_params():
            bdev_wait_for_examine(lambda: request.result(True))

    def bdev_get_bdevs(request: RpcRequest) -> None:
        params = _decode(request, _GET_BDEVS)
        name = params.get("name")
        if name is None:
            request.result([b.to_json() for b in bdevs()])
            return
        bdev = get_bdev(name)
        if bdev is not None:
            request.result([bdev.to_json()])
            return
        timeout_ms = params.get("timeout", 0)
        if not timeout_ms:
            raise rpc_errno_error(errno.ENODEV)
        thread = get_thread()
        assert thread is not None
        clock = thread.library.clock
        deadline = clock.now() + timeout_ms * clock.ticks_per_second // 1000
        holder: list[Poller] = []

        def retry() -> int:
            found = get_bdev(name)
            if found is None and clock.now() < deadline:
                return POLLER_IDLE
            holder[0].unregister()
            if found is None:
                request.error(-errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))
            else:
                request.result([found.to_json()])
            return POLLER_BUSY

        holder.append(
            thread.register_poller(retry, period_us=GET_BDEVS_RETRY_US, name="bdev_get_bdevs")
        )

    def bdev_get_iostat(request: RpcRequest) -> None:
        params = _decode(request, _GET_IOSTAT)
        mode = params.get("reset_mode", "none")
        if mode not in RESET_MODES:
            raise decode_failed()
        names: list[str] = list(params.get("names", []))
        if "name" in params:
            names.append(params["name"])
        per_channel = params.get("per_channel", False)
        if per_channel and len(names) != 1:
            raise rpc_errno_error(errno.EINVAL)
        if names:
            chosen: list[Bdev] = []
            for n in names:
                found = get_bdev(n)
                if found is None:
                    raise rpc_errno_error(errno.ENODEV)
                chosen.append(found)
        else:
            chosen = bdevs()
        tick_rate, ticks = _tick_rate()
        if per_channel:
            bdev = chosen[0]

            def channels_done(stats: list[tuple[int, BdevIoStat]]) -> None:
                request.result(
                    {
                        "tick_rate": tick_rate,
                        "ticks": ticks,
                        "name": bdev.name,
                        "channels": [
                            {"thread_id": tid, **stat.to_json(with_errors=False)}
                            for tid, stat in stats
                        ],
                    }
                )

            bdev_get_channel_stats(bdev, channels_done, mode)
            return
        elements: list[dict[str, object]] = []

        def next_bdev(i: int) -> None:
            if i == len(chosen):
                request.result({"tick_rate": tick_rate, "ticks": ticks, "bdevs": elements})
                return

            def got(stat: BdevIoStat) -> None:
                elements.append(_stat_element(chosen[i], stat))
                next_bdev(i + 1)

            bdev_get_device_stat(chosen[i], got, mode)

        next_bdev(0)

    def bdev_reset_iostat(request: RpcRequest) -> None:
        params = _decode(request, _RESET_IOSTAT)
        mode = params.get("mode", "all")
        if mode not in RESET_MODES:
            raise decode_failed()
        name = params.get("name")
        if name is not None:
            found = get_bdev(name)
            if found is None:
                raise rpc_errno_error(errno.ENODEV)
            chosen = [found]
        else:
            chosen = bdevs()

        def next_bdev(i: int) -> None:
            if i == len(chosen):
                request.result(True)
                return
            bdev_reset_device_stat(chosen[i], mode, lambda: next_bdev(i + 1))

        next_bdev(0)

    def bdev_malloc_create(request: RpcRequest) -> None:
        p = _decode(request, _MALLOC_CREATE)
        opts = MallocOpts(
            num_blocks=p["num_blocks"],
            block_size=p["block_size"],
            name=p.get("name"),
            uuid=p.get("uuid"),
            physical_block_size=p.get("physical_block_size", 0),
            optimal_io_boundary=p.get("optimal_io_boundary", 0),
            md_size=p.get("md_size", 0),
            md_interleave=p.get("md_interleave", False),
            dif_type=p.get("dif_type", 0),
            dif_is_head_of_md=p.get("dif_is_head_of_md", False),
            dif_pi_format=p.get("dif_pi_format", 0),
            numa_id=p.get("numa_id", -1),
        )
        try:
            bdev = create_malloc_disk(opts)
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None
        request.result(bdev.name)

    def bdev_malloc_delete(request: RpcRequest) -> None:
        p = _decode(request, _NAME_ONLY)
        try:
            delete_malloc_disk(p["name"], _answer_unregister(request))
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None

    def bdev_null_create(request: RpcRequest) -> None:
        p = _decode(request, _NULL_CREATE)
        opts = NullOpts(
            name=p["name"],
            num_blocks=p["num_blocks"],
            block_size=p["block_size"],
            uuid=p.get("uuid"),
            physical_block_size=p.get("physical_block_size", 0),
            md_size=p.get("md_size", 0),
            dif_type=p.get("dif_type", 0),
            dif_is_head_of_md=p.get("dif_is_head_of_md", False),
            dif_pi_format=p.get("dif_pi_format", 0),
            preferred_write_alignment=p.get("preferred_write_alignment", 0),
            preferred_write_granularity=p.get("preferred_write_granularity", 0),
            optimal_write_size=p.get("optimal_write_size", 0),
            preferred_unmap_alignment=p.get("preferred_unmap_alignment", 0),
            preferred_unmap_granularity=p.get("preferred_unmap_granularity", 0),
        )
        try:
            bdev = create_null_bdev(opts)
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None
        request.result(bdev.name)

    def bdev_null_delete(request: RpcRequest) -> None:
        p = _decode(request, _NAME_ONLY)
        try:
            delete_null_bdev(p["name"], _answer_unregister(request))
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None

    def bdev_null_resize(request: RpcRequest) -> None:
        p = _decode(request, _NULL_RESIZE)
        try:
            resize_null_bdev(p["name"], p["new_size"])
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None
        request.result(True)

    def bdev_aio_create(request: RpcRequest) -> None:
        p = _decode(request, _AIO_CREATE)
        opts = AioOpts(
            name=p["name"],
            filename=p["filename"],
            block_size=p.get("block_size", 0),
            readonly=p.get("readonly", False),
            fallocate=p.get("fallocate", False),
            uuid=p.get("uuid"),
            nowait=p.get("nowait", False),
        )
        try:
            bdev = create_aio_bdev(opts)
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None
        name = bdev.name
        # SPDK answers once examine of the new bdev is over.
        bdev_wait_for_examine(lambda: request.result(name))

    def bdev_aio_delete(request: RpcRequest) -> None:
        p = _decode(request, _NAME_ONLY)
        try:
            delete_aio_bdev(p["name"], _answer_unregister(request))
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None

    def bdev_aio_rescan(request: RpcRequest) -> None:
        p = _decode(request, _NAME_ONLY)
        try:
            rescan_aio_bdev(p["name"])
        except BdevError as exc:
            raise rpc_errno_error(exc.errno) from None
        request.result(True)

    runtime = RpcState.RUNTIME
    registry.register("bdev_set_options", bdev_set_options, RpcState.STARTUP)
    registry.register("bdev_examine", bdev_examine_rpc, runtime)
    registry.register("bdev_wait_for_examine", bdev_wait_for_examine_rpc, runtime)
    registry.register("bdev_get_bdevs", bdev_get_bdevs, runtime)
    registry.register("bdev_get_iostat", bdev_get_iostat, runtime)
    registry.register("bdev_reset_iostat", bdev_reset_iostat, runtime)
    registry.register("bdev_malloc_create", bdev_malloc_create, runtime)
    registry.register("bdev_malloc_delete", bdev_malloc_delete, runtime)
    registry.register("bdev_null_create", bdev_null_create, runtime)
    registry.register("bdev_null_delete", bdev_null_delete, runtime)
    registry.register("bdev_null_resize", bdev_null_resize, runtime)
    registry.register("bdev_aio_create", bdev_aio_create, runtime)
    registry.register("bdev_aio_delete", bdev_aio_delete, runtime)
    registry.register("bdev_aio_rescan", bdev_aio_rescan, runtime)
