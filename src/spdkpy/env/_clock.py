"""Time in ticks. spdkpy's tick is one nanosecond of ``time.monotonic_ns`` (rate 1 000 000 000)."""

from __future__ import annotations

import time
from typing import Final, Protocol

__all__ = ["TICKS_PER_SECOND", "Clock", "MonotonicClock", "us_to_ticks"]

TICKS_PER_SECOND: Final = 1_000_000_000


class Clock(Protocol):
    """Where the runtime reads time. Core logic never reads the time any other way."""

    @property
    def ticks_per_second(self) -> int: ...

    def now(self) -> int:
        """The current time in ticks (monotonic)."""
        ...


class MonotonicClock:
    """The real clock: ``time.monotonic_ns``."""

    __slots__ = ("now",)

    ticks_per_second: Final = TICKS_PER_SECOND

    def __init__(self) -> None:
        # Bound directly so the hot path pays one C call, not a Python method frame.
        self.now = time.monotonic_ns


def us_to_ticks(us: int, hz: int = TICKS_PER_SECOND) -> int:
    """SPDK's integer conversion of a poller period from microseconds to ticks."""
    return hz * (us // 1_000_000) + hz * (us % 1_000_000) // 1_000_000
