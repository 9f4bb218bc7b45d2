"""asyncio anchors for spdkpy's perf tools.

Each anchor does, with nothing but the standard library's event loop, the same work as one of
spdkpy's perf sub-commands, so that a ratio between the two says how much spdkpy's reactor costs
or saves compared with what a Python programmer would write first.

* ``reactor``: one event loop; ``q`` callbacks in flight, each one counts and re-posts itself with
  ``loop.call_soon`` (the asyncio twin of ``spdkpy perf reactor -q Q -t T``).
* ``event``: two event loops in two OS threads; 4 x 2 callbacks in flight around the ring of loops,
  each one counts on the loop that runs it and posts itself to the next loop with
  ``call_soon_threadsafe`` (the twin of ``spdkpy perf event -m 0x3 -t T``).

If ``uvloop`` can be imported, every anchor is also run on a uvloop loop; otherwise that variant is
skipped without a word.

Command line::

    python bench/anchors.py reactor -q 128 -t 3 [--json]
    python bench/anchors.py event -t 3 [-n 2] [--json]

``--json`` prints one JSON object (used by ``bench/run_all.py``) instead of the human text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

EVENTS_PER_LOOP = 4
"""Events injected per loop by the event anchor (event_perf injects 4 per core)."""


@dataclass(frozen=True)
class ReactorResult:
    loop: str
    queue_depth: int
    seconds: float
    events: int
    events_per_second: float


@dataclass(frozen=True)
class EventResult:
    loop: str
    loops: int
    seconds: float
    events: int
    events_per_second: float
    per_loop: list[float] = field(default_factory=list)
    """Events received by each loop, per second."""


def loop_factories() -> dict[str, LoopFactory]:
    """The loops to measure: always ``asyncio``, plus ``uvloop`` when it can be imported."""
    factories: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop  # type: ignore[import-not-found]  # optional, never required
    except ImportError:
        pass
    else:
        factories["uvloop"] = uvloop.new_event_loop
    return factories


def reactor_anchor(
    queue_depth: int, seconds: float, loop_factory: LoopFactory = asyncio.new_event_loop
) -> ReactorResult:
    """Run ``queue_depth`` self-re-posting callbacks on one loop for ``seconds``.

    The rate is the number of callbacks run divided by the measured run time (the time from the
    start of ``run_forever`` to the stop timer), which is ``seconds`` give or take a millisecond.
    """
    if queue_depth < 1:
        raise ValueError(f"queue depth must be >= 1, got {queue_depth}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    loop = loop_factory()
    count = 0
    final = 0
    running = True
    started = 0.0
    stopped = 0.0
    call_soon = loop.call_soon

    def event() -> None:
        nonlocal count
        count += 1
        if running:
            call_soon(event)

    def begin() -> None:
        nonlocal started
        started = time.perf_counter()
        loop.call_later(seconds, end)
        for _ in range(queue_depth):
            call_soon(event)

    def end() -> None:
        nonlocal running, stopped, final
        stopped = time.perf_counter()
        final = count
        running = False
        loop.stop()

    try:
        loop.call_soon(begin)
        loop.run_forever()
    finally:
        loop.close()
    elapsed = stopped - started
    return ReactorResult(
        loop=_loop_name(loop_factory),
        queue_depth=queue_depth,
        seconds=elapsed,
        events=final,
        events_per_second=final / elapsed if elapsed > 0 else 0.0,
    )


def event_anchor(
    seconds: float,
    n_loops: int = 2,
    loop_factory: LoopFactory = asyncio.new_event_loop,
) -> EventResult:
    """Pass ``EVENTS_PER_LOOP * n_loops`` callbacks around a ring of loops, one per OS thread.

    A callback run on loop ``i`` counts one event received by loop ``i`` and posts itself to loop
    ``(i + 1) % n_loops`` with ``call_soon_threadsafe``. The counters are read at the end of the
    measured interval, before the loops are told to stop.
    """
    if n_loops < 2:
        raise ValueError(f"the event anchor needs at least 2 loops, got {n_loops}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    loops: list[asyncio.AbstractEventLoop] = [loop_factory() for _ in range(n_loops)]
    counts = [0] * n_loops
    running = True

    def make_handler(index: int) -> Callable[[], None]:
        post_next = loops[(index + 1) % n_loops].call_soon_threadsafe

        def handler() -> None:
            counts[index] += 1
            if running:
                post_next(handlers[(index + 1) % n_loops])

        return handler

    handlers = [make_handler(i) for i in range(n_loops)]
    ready = threading.Barrier(n_loops + 1)
    errors: list[BaseException] = []

    def serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            ready.wait()
            loop.run_forever()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [
        threading.Thread(target=serve, args=(loop,), name=f"anchor-loop-{i}", daemon=True)
        for i, loop in enumerate(loops)
    ]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        started = time.perf_counter()
        for i, loop in enumerate(loops):
            for _ in range(EVENTS_PER_LOOP):
                loop.call_soon_threadsafe(handlers[i])
        time.sleep(seconds)
        snapshot = list(counts)
        elapsed = time.perf_counter() - started
    finally:
        running = False
        for loop in loops:
            loop.call_soon_threadsafe(loop.stop)
        for thread in threads:
            thread.join(timeout=10)
        for loop in loops:
            if not loop.is_running():
                loop.close()
    if errors:
        raise RuntimeError(f"an anchor loop failed: {errors[0]!r}") from errors[0]
    total = sum(snapshot)
    return EventResult(
        loop=_loop_name(loop_factory),
        loops=n_loops,
        seconds=elapsed,
        events=total,
        events_per_second=total / elapsed,
        per_loop=[c / elapsed for c in snapshot],
    )


def _loop_name(loop_factory: LoopFactory) -> str:
    for name, factory in loop_factories().items():
        if factory is loop_factory:
            return name
    return getattr(loop_factory, "__module__", None) or repr(loop_factory)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="asyncio anchors for spdkpy's perf tools")
    sub = parser.add_subparsers(dest="anchor", required=True)
    reactor = sub.add_parser("reactor", help="one loop, Q callbacks re-posting themselves")
    reactor.add_argument("-q", type=int, default=1, help="callbacks in flight (default 1)")
    reactor.add_argument("-t", type=float, required=True, help="seconds to run")
    reactor.add_argument("--json", action="store_true", help="print one JSON object")
    event = sub.add_parser("event", help="callbacks passed around a ring of loops in threads")
    event.add_argument("-t", type=float, required=True, help="seconds to run")
    event.add_argument("-n", type=int, default=2, help="number of loops/threads (default 2)")
    event.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    results: list[ReactorResult | EventResult] = []
    for name, factory in loop_factories().items():
        if args.anchor == "reactor":
            reactor_result = reactor_anchor(args.q, args.t, factory)
            results.append(reactor_result)
            if not args.json:
                print(
                    f"{name:8s} reactor q={args.q}: "
                    f"{reactor_result.events_per_second:12,.0f} events per second"
                )
        else:
            event_result = event_anchor(args.t, args.n, factory)
            results.append(event_result)
            if not args.json:
                print(
                    f"{name:8s} event loops={args.n}: "
                    f"{event_result.events_per_second:12,.0f} events per second"
                )
                for i, rate in enumerate(event_result.per_loop):
                    print(f"{'':8s}   loop {i:2d}: {rate:12,.0f}")
    if args.json:
        json.dump({r.loop: asdict(r) for r in results}, sys.stdout)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
