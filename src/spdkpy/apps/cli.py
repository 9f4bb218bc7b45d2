"""``spdkpy``: one command, SPDK's applications as sub-commands.

Every user error is one line on stderr and a non-zero exit code: 1 for an error at start-up (a bad
core mask, an unreadable config), 2 for a command line that does not parse. Never a traceback;
set ``SPDKPY_DEBUG=1`` to see one for an unexpected internal error.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from spdkpy._version import SPDK_VERSION_STRING
from spdkpy.app import AppArgumentParser
from spdkpy.apps import bdevperf, hello_bdev, hello_sock, perf, poll_groups, tgt, top
from spdkpy.errors import SpdkpyError

__all__ = ["main"]


def build_parser() -> AppArgumentParser:
    parser = AppArgumentParser(
        prog="spdkpy",
        description="SPDK's application framework in Python: reactors, threads, events, pollers.",
    )
    parser.add_argument("--version", action="version", version=SPDK_VERSION_STRING)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=AppArgumentParser
    )
    tgt.add_parser(commands)
    poll_groups.add_parser(commands)
    perf.add_parser(commands)
    top.add_parser(commands)
    hello_sock.add_parser(commands)
    hello_bdev.add_parser(commands)
    bdevperf.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``spdkpy``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    prog = f"spdkpy {args.command}"
    try:
        rc: int = args.run(args)
    except SpdkpyError as exc:
        sys.stderr.write(f"{prog}: {_one_line(str(exc))}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # not a user error: still one line, unless debugging
        if os.environ.get("SPDKPY_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(
            f"{prog}: internal error: {_one_line(repr(exc))} (please file a bug; "
            "SPDKPY_DEBUG=1 shows the traceback)\n"
        )
        return 70
    return rc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
