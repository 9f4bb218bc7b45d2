"""The slow-work watchdog (deviation 7): report a message, poller or event that holds a reactor
longer than a threshold, with its thread, its name and how long it has run.

Timing every message and poller would cost the hot path a clock read each. Instead the reactors
publish, with one store per item, what they are running (``Reactor.running_event``,
``Reactor.polling`` and ``Thread.running``), and this watchdog, an ordinary OS thread, samples
them. If a reactor shows the same item, in the same iteration, with the same counters, for longer
than the threshold, that item is slow: it is logged once and counted (``Thread.slow_work``,
``Reactor.slow_events``). Consecutive runs of one function within one batch look like one run, so
the report says "for at least". While every reactor sleeps, the watchdog sleeps too.

On GIL builds the watchdog gets the interpreter lock at the latest after a switch interval, so a
slow Python callback is still seen; a callback blocked in a system call releases it anyway.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, final

from spdkpy.thread import Poller

if TYPE_CHECKING:
    from spdkpy.event._framework import ReactorFramework
    from spdkpy.event._reactor import Reactor

__all__ = ["SlowWorkWatchdog"]

log = logging.getLogger("spdkpy.reactor")


def _name(item: object) -> str:
    if isinstance(item, Poller):
        return f"poller {item.name}"
    return f"{getattr(item, '__qualname__', None) or repr(item)}"


@final
class SlowWorkWatchdog:
    """Samples the reactors of ``framework`` from its own OS thread until :meth:`stop`."""

    def __init__(self, framework: ReactorFramework, threshold_us: int) -> None:
        self._framework = framework
        self._threshold_ticks = threshold_us * 1000
        # One sample per threshold: an item is reported at most two thresholds after it began.
        # Sampling more often costs busy reactors on GIL builds (each sample takes the GIL from
        # them): at a quarter threshold, perf event lost about 15 %; at one threshold, about 10 %.
        self._period_s = max(0.001, threshold_us / 1_000_000)
        self._stop = threading.Event()
        self._seen: dict[int, tuple[tuple[object, ...], int, bool]] = {}
        self._os_thread = threading.Thread(
            target=self._run, name="spdkpy-slow-work-watchdog", daemon=True
        )

    def start(self) -> None:
        self._os_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._framework.awake.set()
        if self._os_thread.is_alive():
            self._os_thread.join()

    def _run(self) -> None:
        framework = self._framework
        reactors = [r for r in framework.reactors if r is not None]
        while not self._stop.wait(self._period_s):
            now = framework.clock.now()
            awake = False
            for reactor in reactors:
                awake |= self._sample(reactor, now)
            if not awake:
                # Every reactor sleeps: wait until one wakes instead of sampling for nothing.
                # Clear first, then look again: a reactor that woke in between is seen here,
                # one that wakes later sets the event.
                framework.awake.clear()
                if all(r.sleeping for r in reactors):
                    framework.awake.wait()

    def _sample(self, reactor: Reactor, now: int) -> bool:
        core = reactor.lcore
        if reactor.sleeping:
            self._seen.pop(core, None)
            return False
        event = reactor.running_event
        thread = reactor.polling
        item: object
        if event is not None:
            item = event
            key: tuple[object, ...] = (reactor.iterations, reactor.events_run, id(event))
        elif thread is not None and thread.running is not None:
            item = thread.running
            key = (
                reactor.iterations,
                thread.id,
                thread.messages_run,
                thread.active_poller_runs,
                thread.timed_poller_runs,
                id(item),
            )
        else:
            self._seen.pop(core, None)
            return True
        previous = self._seen.get(core)
        if previous is None or previous[0] != key:
            self._seen[core] = (key, now, False)
            return True
        _, since, reported = previous
        elapsed = now - since
        if not reported and elapsed >= self._threshold_ticks:
            self._seen[core] = (key, since, True)
            if event is not None:
                reactor.slow_events += 1
                where = f"an event on reactor {core}"
            else:
                assert thread is not None
                thread.slow_work += 1  # written by this watchdog only
                where = f"thread {thread.name} on reactor {core}"
            log.warning(
                "slow work: %s has run %s for at least %.1f ms (threshold %.1f ms)",
                where,
                _name(item),
                elapsed / 1e6,
                self._threshold_ticks / 1e6,
            )
        return True
