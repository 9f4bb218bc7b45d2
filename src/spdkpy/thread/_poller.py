"""Pollers: functions a lightweight thread calls on every poll (active) or every period (timed).

A poller belongs to the thread that registered it; only that thread may pause, resume or
unregister it (from inside the poller itself too). State changes are lazy, as in SPDK: the poll
loop applies a pause or an unregister when it next reaches the poller, which is what makes it safe
to unregister a poller from inside its own function.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from spdkpy.thread._thread import Thread

__all__ = [
    "POLLER_BUSY",
    "POLLER_IDLE",
    "Poller",
    "PollerState",
    "PollerStatistics",
]

POLLER_BUSY: Final = 1
"""Return this from a poller that did work (``SPDK_POLLER_BUSY``)."""
POLLER_IDLE: Final = 0
"""Return this from a poller that found nothing to do (``SPDK_POLLER_IDLE``)."""


class PollerState(enum.Enum):
    """A poller's state; the values are SPDK's strings as ``thread_get_pollers`` reports them."""

    WAITING = "waiting"
    RUNNING = "running"
    UNREGISTERED = "unregistered"
    PAUSING = "pausing"
    PAUSED = "paused"


WAITING: Final = PollerState.WAITING
RUNNING: Final = PollerState.RUNNING
UNREGISTERED: Final = PollerState.UNREGISTERED
PAUSING: Final = PollerState.PAUSING
PAUSED: Final = PollerState.PAUSED


@dataclass(frozen=True, slots=True)
class PollerStatistics:
    """A snapshot of one poller. ``period_ticks`` is 0 for an active poller."""

    id: int
    name: str
    state: str
    period_ticks: int
    run_count: int
    busy_count: int


@final
class Poller:
    """A registered poller. Create with :meth:`Thread.register_poller`, not directly."""

    __slots__ = (
        "args",
        "busy_count",
        "fn",
        "id",
        "name",
        "next_run",
        "period_ticks",
        "run_count",
        "state",
        "thread",
        "wake_fd",
    )

    def __init__(
        self,
        thread: Thread,
        poller_id: int,
        fn: Callable[..., int],
        args: tuple[object, ...],
        period_ticks: int,
        name: str,
    ) -> None:
        self.thread = thread
        self.id = poller_id
        self.fn = fn
        self.args = args
        self.period_ticks = period_ticks
        self.wake_fd: int | None = None
        """An fd that becomes readable when this (active) poller has work; see register_poller."""
        self.name = name
        self.state = WAITING
        self.next_run = 0
        self.run_count = 0
        self.busy_count = 0

    @property
    def is_timed(self) -> bool:
        return self.period_ticks > 0

    def pause(self) -> None:
        """Stop running this poller until :meth:`resume`. Call on the owning thread."""
        self.thread._check_owner("pause a poller")
        if self.state is RUNNING or self.state is WAITING:
            self.state = PAUSING

    def resume(self) -> None:
        """Undo :meth:`pause`. A timed poller next runs one period from now."""
        self.thread._resume_poller(self)

    def unregister(self) -> None:
        """Stop and release this poller; safe from inside its own function. Idempotent."""
        self.thread._unregister_poller(self)

    def statistics(self) -> PollerStatistics:
        return PollerStatistics(
            self.id,
            self.name,
            self.state.value,
            self.period_ticks,
            self.run_count,
            self.busy_count,
        )

    def __repr__(self) -> str:
        return f"<Poller {self.name!r} id={self.id} {self.state.value} on {self.thread.name!r}>"
