"""Fixtures for the app layer's in-process tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


class LogRecords(logging.Handler):
    """Collects the ``spdkpy.app`` log, whatever another test did to the ``spdkpy`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def at(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def app_log() -> Iterator[LogRecords]:
    logger = logging.getLogger("spdkpy.app")
    handler = LogRecords()
    old_level = logger.level
    logger.setLevel(logging.DEBUG)  # NOTICE (25) is below the root logger's default WARNING
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
