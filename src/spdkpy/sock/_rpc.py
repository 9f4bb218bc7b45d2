"""The sock JSON-RPC methods (SPDK's ``lib/sock/sock_rpc.c``), keys exactly SPDK's (SPEC §8.1).

* ``sock_impl_get_options {impl_name}`` → the options object; for ``ssl`` it also says which
  certificate files are in effect and the PSK identity if one is set (never the PSK);
* ``sock_impl_set_options {impl_name, <option>...}`` → ``true`` (STARTUP only: set them with
  ``--wait-for-rpc`` or in a JSON config, before sockets exist);
* ``sock_get_default_impl`` → ``{"impl_name": "posix"}``;
* ``sock_set_default_impl {impl_name}`` → ``true``.

Bad or unknown params and unknown implementations answer -32602 "Invalid parameters", as SPDK.
"""

from __future__ import annotations

from typing import Final

from spdkpy.errors import InputError, SockImplNotFoundError
from spdkpy.rpc import INVALID_PARAMS, RpcError, RpcRegistry, RpcRequest, RpcState
from spdkpy.sock._impl import (
    get_default_impl,
    impl_get_opts,
    impl_set_opts,
    set_default_impl,
)

__all__ = ["SOCK_RPC_METHODS", "register_sock_methods"]

SOCK_RPC_METHODS: Final = (
    "sock_impl_get_options",
    "sock_impl_set_options",
    "sock_get_default_impl",
    "sock_set_default_impl",
)

_BOTH: Final = RpcState.STARTUP | RpcState.RUNTIME


def _invalid() -> RpcError:
    return RpcError(INVALID_PARAMS, "Invalid parameters")


def _impl_name(params: dict[str, object]) -> str:
    name = params.get("impl_name")
    if not isinstance(name, str):
        raise _invalid()
    return name


def register_sock_methods(registry: RpcRegistry) -> None:
    """Register the four sock methods into ``registry``."""

    def sock_impl_get_options(request: RpcRequest) -> None:
        params = request.object_params()
        if set(params) != {"impl_name"}:
            raise _invalid()
        name = _impl_name(params)
        try:
            opts = impl_get_opts(name)
        except SockImplNotFoundError:
            raise _invalid() from None
        result = opts.to_json()
        if name == "ssl":
            result.update(opts.tls_to_json())
        request.result(result)

    def sock_impl_set_options(request: RpcRequest) -> None:
        params = dict(request.object_params())
        name = _impl_name(params)
        del params["impl_name"]
        try:
            impl_set_opts(name, impl_get_opts(name).replace(**params))
        except InputError:
            raise _invalid() from None
        request.result(True)

    def sock_get_default_impl(request: RpcRequest) -> None:
        if not request.no_params():
            return
        request.result({"impl_name": get_default_impl()})

    def sock_set_default_impl(request: RpcRequest) -> None:
        params = request.object_params()
        if set(params) != {"impl_name"}:
            raise _invalid()
        try:
            set_default_impl(_impl_name(params))
        except SockImplNotFoundError:
            raise _invalid() from None
        request.result(True)

    registry.register("sock_impl_get_options", sock_impl_get_options, _BOTH)
    registry.register("sock_impl_set_options", sock_impl_set_options, RpcState.STARTUP)
    registry.register("sock_get_default_impl", sock_get_default_impl, _BOTH)
    registry.register("sock_set_default_impl", sock_set_default_impl, _BOTH)
