"""Log lines in SPDK's format (``[date time.usec] component: *LEVEL*: message``) and log flags."""

from __future__ import annotations

import logging
import re

import pytest

from spdkpy._log import (
    LOG_FLAGS,
    NOTICE,
    _SpdkFormatter,
    clear_log_flag,
    enabled_log_flags,
    log_flags_matching,
    set_log_flag,
)


def _record(created: float, level: int = NOTICE) -> logging.LogRecord:
    record = logging.LogRecord("spdkpy.reactor", level, __file__, 1, "Reactor %s", ("up",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    return record


def test_line_format_with_microseconds() -> None:
    line = _SpdkFormatter().format(_record(1_790_000_000.123456))
    stamp = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.(\d{6})\]"
    m = re.fullmatch(stamp + r" reactor: \*NOTICE\*: Reactor up", line)
    assert m is not None, line
    # Microseconds, not milliseconds padded with zeros (record.msecs is whole ms on 3.11+).
    assert abs(int(m.group(1)) - 123456) <= 1


def test_levels_are_named_as_in_spdk() -> None:
    assert "*ERROR*" in _SpdkFormatter().format(_record(0.5, logging.ERROR))
    assert "*WARNING*" in _SpdkFormatter().format(_record(0.5, logging.WARNING))
    assert logging.getLevelName(NOTICE) == "NOTICE"
    assert logging.INFO < NOTICE < logging.WARNING


@pytest.mark.parametrize(
    ("pattern", "flags"),
    [
        ("all", list(LOG_FLAGS)),
        ("ALL", list(LOG_FLAGS)),
        ("thread", ["thread"]),
        ("THREAD", ["thread"]),
        ("re*", ["reactor"]),
        ("nothing", []),
    ],
)
def test_log_flags_matching(pattern: str, flags: list[str]) -> None:
    assert log_flags_matching(pattern) == flags


def test_set_and_clear_log_flag() -> None:
    logger = logging.getLogger("spdkpy.perf")
    old = logger.level
    try:
        assert set_log_flag("perf") == ["perf"]
        assert enabled_log_flags()["perf"] is True
        assert logger.level == logging.DEBUG
        assert clear_log_flag("perf") == ["perf"]
        assert enabled_log_flags()["perf"] is False
        assert logger.level == logging.NOTSET
        with pytest.raises(ValueError, match="unknown log flag"):
            set_log_flag("bogus")
        with pytest.raises(ValueError, match="unknown log flag"):
            clear_log_flag("bogus")
    finally:
        logger.setLevel(old)
