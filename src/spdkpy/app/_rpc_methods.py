"""The framework's own JSON-RPC methods (SPDK's ``lib/event/app_rpc.c``, ``lib/init/rpc.c``,
``lib/rpc/rpc.c``): version, method list, init control, subsystems and config, kill.

Params and result keys are SPDK's exactly (SPEC §6.4, §6.6, §7.4), because ``spdk-rpc`` and the
tools built on it parse them. The thread, reactor, scheduler and log methods are in
``_rpc_runtime_methods``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from spdkpy._version import __version__
from spdkpy.app._rpc_runtime_methods import register_runtime_methods
from spdkpy.rpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    RpcError,
    RpcRegistry,
    RpcRequest,
    RpcState,
)

if TYPE_CHECKING:
    from spdkpy.app._app import App

__all__ = ["register_app_methods"]

SPDK_VERSION_MAJOR: Final = 26
SPDK_VERSION_MINOR: Final = 9
SPDK_VERSION_PATCH: Final = 0
SPDK_VERSION_SUFFIX: Final = "-pre"

_KILL_SIGNALS: Final = {
    "SIGINT": signal.SIGINT,
    "SIGTERM": signal.SIGTERM,
    "SIGQUIT": signal.SIGQUIT,
    "SIGHUP": signal.SIGHUP,
    "SIGKILL": signal.SIGKILL,
    "SIGUSR1": signal.SIGUSR1,
}

_BOTH: Final = RpcState.STARTUP | RpcState.RUNTIME


def version_string() -> str:
    """SPDK's version string: ``SPDK v26.09-pre`` (no git sha: spdkpy is not built from SPDK)."""
    patch = f".{SPDK_VERSION_PATCH}" if SPDK_VERSION_PATCH else ""
    return f"SPDK v{SPDK_VERSION_MAJOR}.{SPDK_VERSION_MINOR:02d}{patch}{SPDK_VERSION_SUFFIX}"


def _bool_param(params: dict[str, object], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise RpcError(INVALID_PARAMS, "Invalid parameters")
    return value


def _answer_init(request: RpcRequest) -> Callable[[int], None]:
    """``true`` once the framework is initialised, SPDK's -32603 if initialisation failed."""

    def done(rc: int) -> None:
        if rc:
            request.error(INTERNAL_ERROR, "framework_initialization failed")
        else:
            request.result(True)

    return done


def register_app_methods(registry: RpcRegistry, app: App) -> None:
    """Register the framework's methods into ``registry`` for ``app``."""

    def spdk_get_version(request: RpcRequest) -> None:
        if request.params is not None:
            request.error(INVALID_PARAMS, "spdk_get_version method requires no parameters")
            return
        request.result(
            {
                "version": version_string(),
                "fields": {
                    "major": SPDK_VERSION_MAJOR,
                    "minor": SPDK_VERSION_MINOR,
                    "patch": SPDK_VERSION_PATCH,
                    "suffix": SPDK_VERSION_SUFFIX,
                },
                "spdkpy": __version__,
            }
        )

    def rpc_get_methods(request: RpcRequest) -> None:
        params = request.object_params()
        unknown = set(params) - {"current", "include_aliases"}
        if unknown:
            raise RpcError(INVALID_PARAMS, "Invalid parameters")
        request.result(
            registry.names(
                current=_bool_param(params, "current"),
                include_aliases=_bool_param(params, "include_aliases"),
            )
        )

    def framework_start_init(request: RpcRequest) -> None:
        if request.params is not None:
            request.error(INVALID_PARAMS, "framework_start_init requires no parameters")
            return
        app.start_init(_answer_init(request))

    def framework_wait_init(request: RpcRequest) -> None:
        if request.no_params():
            app.wait_init(_answer_init(request))

    def framework_get_subsystems(request: RpcRequest) -> None:
        if not request.no_params():
            return
        order = app.subsystems.sorted()
        request.result([{"subsystem": s.name, "depends_on": list(s.depends_on)} for s in order])

    def framework_get_config(request: RpcRequest) -> None:
        params = request.object_params()
        name = params.get("name")
        if not isinstance(name, str) or set(params) - {"name", "with_batches"}:
            raise RpcError(INVALID_PARAMS, "Invalid parameters")
        subsystem = app.subsystems.get(name)
        if subsystem is None:
            raise RpcError(INVALID_PARAMS, f"Subsystem '{name}' not found")
        config = subsystem.write_config_json() if subsystem.write_config_json else None
        request.result(config)

    def spdk_kill_instance(request: RpcRequest) -> None:
        params = request.object_params()
        sig_name = params.get("sig_name")
        if not isinstance(sig_name, str) or sig_name not in _KILL_SIGNALS or len(params) != 1:
            raise RpcError(INVALID_PARAMS, "Invalid parameters")
        request.result(True)  # answered first: SIGKILL would not let us answer afterwards
        os.kill(os.getpid(), _KILL_SIGNALS[sig_name])

    registry.register("spdk_get_version", spdk_get_version, _BOTH)
    registry.register("rpc_get_methods", rpc_get_methods, _BOTH)
    registry.register("framework_start_init", framework_start_init, RpcState.STARTUP)
    registry.register("framework_wait_init", framework_wait_init, _BOTH)
    registry.register("framework_get_subsystems", framework_get_subsystems, RpcState.RUNTIME)
    registry.register("framework_get_config", framework_get_config, RpcState.RUNTIME)
    registry.register("spdk_kill_instance", spdk_kill_instance, RpcState.RUNTIME)
    register_runtime_methods(registry, app)
