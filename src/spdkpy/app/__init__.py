"""The application framework: options, startup and shutdown, signals, subsystems and JSON config
(SPDK's ``lib/event/app.c`` and ``lib/init``).

Layout: ``_opts`` the standard options and command line, ``_app`` the :class:`App` run itself,
``_subsystem`` ordered subsystem init/fini, ``_config`` JSON config files, ``_core_locks`` the
``/var/tmp/spdk_cpu_lock_*`` files. Built on ``env``, ``thread`` and ``event``.
"""

from spdkpy.app._app import App as App
from spdkpy.app._app import app_start_shutdown as app_start_shutdown
from spdkpy.app._app import app_stop as app_stop
from spdkpy.app._app import get_app as get_app
from spdkpy.app._config import ConfigEntry as ConfigEntry
from spdkpy.app._config import JsonConfig as JsonConfig
from spdkpy.app._config import MethodSpec as MethodSpec
from spdkpy.app._config import RpcState as RpcState
from spdkpy.app._config import replay_config as replay_config
from spdkpy.app._core_locks import CoreLocks as CoreLocks
from spdkpy.app._opts import DEFAULT_RPC_ADDR as DEFAULT_RPC_ADDR
from spdkpy.app._opts import AppArgumentParser as AppArgumentParser
from spdkpy.app._opts import AppOptions as AppOptions
from spdkpy.app._opts import add_app_options as add_app_options
from spdkpy.app._opts import opts_from_args as opts_from_args
from spdkpy.app._subsystem import Subsystem as Subsystem
from spdkpy.app._subsystem import SubsystemRegistry as SubsystemRegistry

__all__ = [
    "DEFAULT_RPC_ADDR",
    "App",
    "AppArgumentParser",
    "AppOptions",
    "ConfigEntry",
    "CoreLocks",
    "JsonConfig",
    "MethodSpec",
    "RpcState",
    "Subsystem",
    "SubsystemRegistry",
    "add_app_options",
    "app_start_shutdown",
    "app_stop",
    "get_app",
    "opts_from_args",
    "replay_config",
]
