"""App options (``spdk_app_opts``) and SPDK's standard command line (``spdk_app_parse_args``).

Every application shares these options; an application adds its own to the same parser. The
DPDK/PCI/hugepage options are accepted for compatibility and ignored (there is no DPDK here).
A parse error is one line on stderr and exit code 2, as SPDK's ``SPDK_APP_PARSE_ARGS_FAIL``.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
from dataclasses import dataclass, field
from typing import Final, NoReturn

from spdkpy._log import LOG_FLAGS, log_flags_matching
from spdkpy._version import SPDK_VERSION_STRING

__all__ = [
    "DEFAULT_RPC_ADDR",
    "AppArgumentParser",
    "AppOptions",
    "add_app_options",
    "opts_from_args",
]

DEFAULT_RPC_ADDR: Final = "/var/tmp/spdk.sock"


@dataclass(slots=True)
class AppOptions:
    """What ``App.start`` needs. Defaults are ``spdk_app_opts_init``'s."""

    name: str
    reactor_mask: str | None = None
    main_core: str | None = None
    rpc_addr: str | None = DEFAULT_RPC_ADDR
    rpcs_allowed: list[str] | None = None
    json_config_file: str | None = None
    json_config_ignore_errors: bool = False
    delay_subsystem_init: bool = False
    log_flags: list[str] = field(default_factory=list)
    print_level: str = "NOTICE"
    busy_poll: bool = False
    interrupt_mode: bool = False
    scheduler: str | None = None
    scheduler_period_us: int | None = None
    gil_switch_interval_us: int = 500
    msg_mempool_size: int | None = None
    disable_cpumask_locks: bool = False
    disable_signal_handlers: bool = False
    shutdown_timeout_s: float = 10.0
    slow_work_threshold_ms: float = 10.0


class AppArgumentParser(argparse.ArgumentParser):
    """argparse with SPDK's failure behaviour: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message} (see --help)\n")
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _log_flag(text: str) -> str:
    """``-L``: an unknown flag is a command-line error (exit 2), as in ``spdk_app_parse_args``."""
    if not log_flags_matching(text):
        raise argparse.ArgumentTypeError(
            f"unknown log flag {text!r} (known: {', '.join(LOG_FLAGS)}, all)"
        )
    return text


def _timeout_seconds(text: str) -> float:
    """A finite number of seconds the watchdog timer can wait; 0 or less turns it off."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not math.isfinite(value) or value > threading.TIMEOUT_MAX:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, got {text!r}")
    return value


def _slow_threshold_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0 <= value <= 60_000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 60000 ms, got {text}")
    return value


def add_app_options(parser: argparse.ArgumentParser, *, with_rpc: bool = True) -> None:
    """Add SPDK's standard options (the letters of ``c:de:ghi:m:n:p:r:s:uvA:B:L:RW:``)."""
    g = parser.add_argument_group("SPDK application options")
    g.add_argument(
        "-m",
        "--cpumask",
        dest="reactor_mask",
        metavar="MASK",
        help="core mask (0xF, F, f,f) or core list ([0,2-3]) for the reactors; default 0x1",
    )
    g.add_argument(
        "-p",
        "--main-core",
        dest="main_core",
        metavar="ID",
        help="main (primary) core; default: the lowest core of the mask",
    )
    g.add_argument(
        "-c",
        "--config",
        "--json",
        dest="json_config_file",
        metavar="FILE",
        help="JSON configuration file",
    )
    g.add_argument(
        "--json-ignore-init-errors",
        dest="json_config_ignore_errors",
        action="store_true",
        help="keep going when a config entry fails",
    )
    if with_rpc:
        g.add_argument(
            "-r",
            "--rpc-socket",
            dest="rpc_addr",
            default=DEFAULT_RPC_ADDR,
            metavar="PATH",
            help=f"RPC listen address (default {DEFAULT_RPC_ADDR})",
        )
        g.add_argument(
            "--no-rpc-server",
            dest="no_rpc_server",
            action="store_true",
            help="do not start the RPC server",
        )
        g.add_argument(
            "--wait-for-rpc",
            dest="delay_subsystem_init",
            action="store_true",
            help="wait for the framework_start_init RPC before initialising subsystems",
        )
        g.add_argument(
            "--rpcs-allowed",
            dest="rpcs_allowed",
            metavar="LIST",
            help="comma-separated list of permitted RPCs",
        )
    g.add_argument(
        "-L",
        "--logflag",
        dest="log_flags",
        type=_log_flag,
        action="append",
        default=[],
        metavar="FLAG",
        help="enable a debug log flag (glob; 'all')",
    )
    g.add_argument(
        "--silence-noticelog",
        dest="silence_noticelog",
        action="store_true",
        help="print only warnings and errors",
    )
    g.add_argument(
        "--busy-poll",
        dest="busy_poll",
        action="store_true",
        help="spin on every reactor as SPDK does, instead of sleeping when idle",
    )
    g.add_argument(
        "--interrupt-mode",
        dest="interrupt_mode",
        action="store_true",
        help="start every reactor in interrupt mode: sleep as soon as idle, no 50 us spin",
    )
    g.add_argument(
        "--gil-switch-interval",
        dest="gil_switch_interval_us",
        type=_positive_int,
        default=500,
        metavar="US",
        help="GIL builds, two or more reactors: interpreter switch interval (default 500 us)",
    )
    g.add_argument(
        "--scheduler",
        dest="scheduler",
        metavar="NAME",
        help="thread scheduler to start with: static (default), dynamic or gscheduler",
    )
    g.add_argument(
        "--scheduler-period",
        dest="scheduler_period_us",
        type=_positive_int,
        metavar="US",
        help="microseconds between scheduling rounds (default 1000000 with --scheduler)",
    )
    g.add_argument(
        "--disable-cpumask-locks",
        dest="disable_cpumask_locks",
        action="store_true",
        help="do not claim /var/tmp/spdk_cpu_lock_* files (claimed only with --busy-poll)",
    )
    g.add_argument(
        "--msg-mempool-size",
        dest="msg_mempool_size",
        type=_positive_int,
        metavar="N",
        help="size of the message mempool",
    )
    g.add_argument(
        "--shutdown-timeout",
        dest="shutdown_timeout_s",
        type=_timeout_seconds,
        default=10.0,
        metavar="SECONDS",
        help="force the exit if a clean shutdown takes longer (0: never)",
    )
    g.add_argument(
        "--slow-threshold",
        dest="slow_work_threshold_ms",
        type=_slow_threshold_ms,
        default=10.0,
        metavar="MS",
        help="report a message, poller or event running longer than this (default 10; 0: off)",
    )
    g.add_argument("-v", "--version", action="version", version=SPDK_VERSION_STRING)
    env = parser.add_argument_group("accepted for compatibility, ignored (no DPDK here)")
    for short, long, takes in (
        ("-s", "--mem-size", True),
        ("-n", "--mem-channels", True),
        ("-g", "--single-file-segments", False),
        ("-R", "--huge-unlink", False),
        (None, "--huge-dir", True),
        (None, "--no-huge", False),
        (None, "--iova-mode", True),
        (None, "--base-virtaddr", True),
        (None, "--env-context", True),
        (None, "--enforce-numa", False),
        ("-i", "--shm-id", True),
        ("-A", "--pci-allowed", True),
        ("-B", "--pci-blocked", True),
        ("-u", "--no-pci", False),
        ("-e", "--tpoint-group", True),
        (None, "--num-trace-entries", True),
        ("-d", "--limit-coredump", False),
    ):
        names = [n for n in (short, long) if n is not None]
        dest = "ignored_" + long.lstrip("-").replace("-", "_")
        if takes:
            env.add_argument(
                *names, dest=dest, action="append", metavar="X", help=argparse.SUPPRESS
            )
        else:
            env.add_argument(*names, dest=dest, action="store_true", help=argparse.SUPPRESS)


def opts_from_args(name: str, args: argparse.Namespace) -> AppOptions:
    """Build :class:`AppOptions` from a namespace filled by :func:`add_app_options`."""
    rpc_addr: str | None = getattr(args, "rpc_addr", None)
    if getattr(args, "no_rpc_server", False):
        rpc_addr = None
    allowed = getattr(args, "rpcs_allowed", None)
    return AppOptions(
        name=name,
        reactor_mask=args.reactor_mask,
        main_core=args.main_core,
        rpc_addr=rpc_addr,
        rpcs_allowed=[m for m in allowed.split(",") if m] if allowed else None,
        json_config_file=args.json_config_file,
        json_config_ignore_errors=args.json_config_ignore_errors,
        delay_subsystem_init=getattr(args, "delay_subsystem_init", False),
        log_flags=list(args.log_flags),
        print_level="WARNING" if args.silence_noticelog else "NOTICE",
        busy_poll=args.busy_poll,
        interrupt_mode=args.interrupt_mode,
        scheduler=args.scheduler,
        scheduler_period_us=args.scheduler_period_us,
        gil_switch_interval_us=args.gil_switch_interval_us,
        msg_mempool_size=args.msg_mempool_size,
        disable_cpumask_locks=args.disable_cpumask_locks,
        shutdown_timeout_s=args.shutdown_timeout_s,
        slow_work_threshold_ms=args.slow_work_threshold_ms,
    )
