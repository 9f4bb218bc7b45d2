"""``spdkpy tgt``: the generic target application (SPDK's ``spdk_tgt``).

It starts the framework on the requested cores and serves until SIGINT or SIGTERM. Later layers
(RPC, sock, bdev, nvmf) add their subsystems and methods to it: the sock layer's ``sock_*``
methods and the ``bdev`` subsystem with its ``bdev_*`` methods are registered here, before
``start`` adds the framework's own.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from spdkpy._log import notice
from spdkpy.app import App, AppArgumentParser, add_app_options, opts_from_args
from spdkpy.bdev import register_bdev_subsystem
from spdkpy.sock import register_sock_methods

__all__ = ["add_parser", "run"]

log = logging.getLogger("spdkpy.app")


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser: AppArgumentParser = commands.add_parser(
        "tgt",
        help="the generic target app (spdk_tgt): run until SIGINT/SIGTERM",
        description="Start reactors on the core mask and serve until SIGINT or SIGTERM.",
    )
    add_app_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    app = App(opts_from_args("spdk_tgt", args))
    register_sock_methods(app.rpc)
    register_bdev_subsystem(app)

    def started() -> None:
        notice(
            log,
            "spdk_tgt running on cores %s (main core %d); stop with Ctrl-C",
            app.core_mask.format_list(),
            app.main_core,
        )

    return app.start(started)
