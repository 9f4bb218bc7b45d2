"""Logging with SPDK's levels and log flags.

SPDK has a NOTICE level between INFO and WARNING, and per-component log flags (``-L thread``)
that enable the INFO/DEBUG messages of one component. spdkpy maps a flag ``X`` to the logger
``spdkpy.X``: enabling the flag lowers that logger to DEBUG. Lines look like SPDK's:
``[2026-11-30 12:00:00.123456] reactor: *NOTICE*: Reactor started on core 1``.
"""

from __future__ import annotations

import fnmatch
import logging
import sys
import time
from typing import Final

__all__ = [
    "LOG_FLAGS",
    "LOG_LEVELS",
    "NOTICE",
    "clear_log_flag",
    "enabled_log_flags",
    "get_log_level",
    "get_print_level",
    "log_flags_matching",
    "log_level_name",
    "notice",
    "parse_log_level",
    "set_log_flag",
    "set_log_level",
    "set_print_level",
    "setup_logging",
]

NOTICE: Final = 25
logging.addLevelName(NOTICE, "NOTICE")

LOG_FLAGS: Final[tuple[str, ...]] = (
    "app",
    "reactor",
    "thread",
    "env",
    "perf",
    "rpc",
    "sock",
    "hello_sock",
    "bdev",
    "bdev_malloc",
    "bdev_null",
    "hello_bdev",
    "bdevperf",
)
"""The log flags this build knows (SPDK: ``SPDK_LOG_REGISTER_COMPONENT``)."""

LOG_LEVELS: Final[dict[str, int]] = {
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "NOTICE": NOTICE,
    "INFO": logging.INFO,
    "DEBUG": logging.DEBUG,
}
"""SPDK's level names (``log_set_level``, ``log_set_print_level``) and their logging levels."""

_enabled: set[str] = set()
_log_level = NOTICE


def notice(logger: logging.Logger, msg: str, *args: object) -> None:
    """Log at SPDK's NOTICE level."""
    if logger.isEnabledFor(NOTICE):
        logger.log(NOTICE, msg, *args)


class _SpdkFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        # record.msecs is whole milliseconds on Python >= 3.11; take microseconds from created.
        usecs = int(record.created * 1_000_000) % 1_000_000
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", t) + f".{usecs:06d}"
        component = record.name.rpartition(".")[2]
        text = f"[{stamp}] {component}: *{record.levelname}*: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(print_level: int = NOTICE) -> None:
    """Send spdkpy's log to stderr in SPDK's format at ``print_level`` and above."""
    root = logging.getLogger("spdkpy")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SpdkFormatter())
    root.addHandler(handler)
    root.setLevel(print_level)
    root.propagate = False


def log_flags_matching(pattern: str) -> list[str]:
    """The known flags that ``pattern`` (glob, case-insensitive, ``all``) names; may be empty."""
    return _matching(pattern)


def _matching(pattern: str) -> list[str]:
    if pattern.lower() == "all":
        return list(LOG_FLAGS)
    return [flag for flag in LOG_FLAGS if fnmatch.fnmatch(flag, pattern.lower())]


def set_log_flag(pattern: str) -> list[str]:
    """Enable the flags matching ``pattern`` (glob, case-insensitive, ``all``); returns them.

    Raises ``ValueError`` when nothing matches, so callers can report an unknown flag.
    """
    flags = _matching(pattern)
    if not flags:
        raise ValueError(f"unknown log flag {pattern!r} (known: {', '.join(LOG_FLAGS)})")
    for flag in flags:
        _enabled.add(flag)
        logging.getLogger(f"spdkpy.{flag}").setLevel(logging.DEBUG)
    return flags


def clear_log_flag(pattern: str) -> list[str]:
    """Disable the flags matching ``pattern``; returns them (``ValueError`` if none match)."""
    flags = _matching(pattern)
    if not flags:
        raise ValueError(f"unknown log flag {pattern!r} (known: {', '.join(LOG_FLAGS)})")
    for flag in flags:
        _enabled.discard(flag)
        logging.getLogger(f"spdkpy.{flag}").setLevel(logging.NOTSET)
    return flags


def enabled_log_flags() -> dict[str, bool]:
    return {flag: flag in _enabled for flag in LOG_FLAGS}


def parse_log_level(name: str) -> int | None:
    """The level SPDK's name ``name`` (ASCII, any case: ``strcasecmp``) stands for, or ``None``."""
    return LOG_LEVELS.get(name.upper()) if name.isascii() else None


def log_level_name(level: int) -> str | None:
    """SPDK's name of ``level``, or ``None`` if it is not one of SPDK's five."""
    return next((name for name, value in LOG_LEVELS.items() if value == level), None)


def set_print_level(level: int) -> None:
    """What reaches stderr (SPDK's print level): the level of the ``spdkpy`` logger.

    Loggers whose log flag is on keep their own DEBUG level (``set_log_flag``), so their
    messages still reach stderr.
    """
    logging.getLogger("spdkpy").setLevel(level)


def get_print_level() -> int:
    return logging.getLogger("spdkpy").level


def set_log_level(level: int) -> None:
    """SPDK's log level, which only decides what goes to syslog. spdkpy logs to stderr only, so
    the value is kept and reported (``log_get_level``) but filters nothing."""
    global _log_level
    _log_level = level


def get_log_level() -> int:
    return _log_level
