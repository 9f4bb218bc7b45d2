"""``spdkpy perf``: SPDK's framework benchmarks, with their meaning and output (SPEC §10).

* ``event``: cross-reactor event throughput (``test/event/event_perf``): 4 events per core travel
  around the ring of cores; each core reports the events sent to it per second.
* ``reactor``: single-reactor event-loop throughput (``test/event/reactor_perf``): ``-q`` events
  each re-post themselves to the same core.
* ``poller``: the cost of one poller run (``test/thread/poller_perf``).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from typing import Any

from spdkpy.app import App, AppArgumentParser, AppOptions, add_app_options, opts_from_args
from spdkpy.event import EVENT_POOL_SIZE, Event, get_framework
from spdkpy.thread import POLLER_BUSY, POLLER_IDLE, Poller, get_thread

__all__ = ["add_parser"]


# Each event re-posts itself before it is freed, and stopping the app needs events of its own
# (for_each_reactor), so the queue depth must leave the fixed event pool plenty of room.
MAX_REACTOR_QUEUE_DEPTH = EVENT_POOL_SIZE // 2


def _seconds(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"time must be > 0 seconds, got {value}")
    return value


def _count(low: int, high: int | None = None) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    perf: AppArgumentParser = commands.add_parser(
        "perf", help="framework benchmarks: event, reactor, poller (SPDK's perf tools)"
    )
    tools = perf.add_subparsers(
        dest="tool", metavar="TOOL", required=True, parser_class=AppArgumentParser
    )

    event = tools.add_parser("event", help="cross-reactor event throughput (event_perf)")
    event.add_argument("-m", "--cpumask", dest="reactor_mask", default="0x1", metavar="MASK")
    event.add_argument("-t", dest="time", type=_seconds, required=True, metavar="SECONDS")
    event.add_argument("--busy-poll", action="store_true", help="spin instead of sleeping")
    event.add_argument(
        "--slow-threshold",
        dest="slow_work_threshold_ms",
        type=float,
        default=10.0,
        metavar="MS",
        help="the slow-work watchdog's threshold, as in every app (0: off)",
    )
    event.add_argument(
        "--gil-switch-interval",
        dest="gil_switch_interval_us",
        type=_count(1),
        default=500,
        metavar="US",
        help="GIL builds: interpreter switch interval while the reactors run (default 500 us)",
    )
    event.set_defaults(run=run_event)

    reactor = tools.add_parser("reactor", help="one reactor's event-loop throughput (reactor_perf)")
    add_app_options(reactor, with_rpc=False)
    reactor.add_argument(
        "-q",
        dest="queue_depth",
        type=_count(1, MAX_REACTOR_QUEUE_DEPTH),
        default=1,
        metavar="DEPTH",
        help=f"events in flight, 1..{MAX_REACTOR_QUEUE_DEPTH} (default 1)",
    )
    reactor.add_argument("-t", dest="time", type=_seconds, required=True, metavar="SECONDS")
    reactor.set_defaults(run=run_reactor)

    poller = tools.add_parser("poller", help="the cost of one poller run (poller_perf)")
    add_app_options(poller, with_rpc=False)
    poller.add_argument("-b", dest="pollers", type=_count(1, 1000), required=True, metavar="N")
    poller.add_argument("-l", dest="period_us", type=_count(0), required=True, metavar="US")
    poller.add_argument("-t", dest="time", type=_seconds, required=True, metavar="SECONDS")
    poller.set_defaults(run=run_poller)


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------- event_perf


def run_event(args: argparse.Namespace) -> int:
    app = App(
        AppOptions(
            name="event_perf",
            reactor_mask=args.reactor_mask,
            rpc_addr=None,
            busy_poll=args.busy_poll,
            gil_switch_interval_us=args.gil_switch_interval_us,
            slow_work_threshold_ms=max(0.0, args.slow_work_threshold_ms),
        )
    )
    seconds: int = args.time
    # One counter per core, each incremented only by the one core that sends to it: a shared
    # dict of counters would be written by every reactor on every event.
    counts: dict[int, list[int]] = {}
    stopped = threading.Lock()  # acquired once: the compare-and-swap guard of event_perf.c

    def start() -> None:
        framework = get_framework()
        cores = framework.cores
        now = framework.clock.now
        end = now() + seconds * framework.clock.ticks_per_second
        handlers: dict[int, Any] = {}

        def make_handler(
            core: int,
            now: Callable[[], int],
            end: int,
            allocate: Callable[..., Event],
            call: Callable[[Event], None],
            handlers: dict[int, Any],
        ) -> Any:
            # Everything the handler uses is a variable of this call, not of start(): on
            # free-threaded 3.13 reading a closure variable locks its cell, and cells shared by
            # the handlers of several reactors would be contended on every event.
            following = cores[(cores.index(core) + 1) % len(cores)]
            count = counts[following] = [0]

            def submit_new_event() -> None:
                if now() > end:
                    if stopped.acquire(blocking=False):
                        app.stop(0)
                    return
                count[0] += 1
                call(allocate(following, handlers[following]))

            return submit_new_event

        for core in cores:
            handlers[core] = make_handler(
                core, now, end, framework.event_allocate, framework.event_call, handlers
            )

        def event_work(core: int) -> None:
            for _ in range(4):
                handlers[core]()

        _print(f"Running I/O for {seconds} seconds...")
        for core in cores:
            framework.event_call(framework.event_allocate(core, event_work, core))

    _print(f"Running I/O for {seconds} seconds...")
    rc = app.start(start)
    if rc == 0:
        for core in sorted(counts):
            _print(f"lcore {core:2d}: {counts[core][0] // seconds:8d}")
        _print("done.")
    return rc


# ----------------------------------------------------------------------------- reactor_perf


def run_reactor(args: argparse.Namespace) -> int:
    opts = opts_from_args("reactor_perf", args)
    app = App(opts)
    seconds: int = args.time
    depth: int = args.queue_depth
    counter = [0]
    final = [0]
    running = [True]
    end_poller: list[Poller] = []

    def finish() -> None:
        if end_poller:
            end_poller.pop().unregister()
        app.stop(0)

    def test_end() -> int:
        final[0] = counter[0]
        running[0] = False
        _print("test_end")
        finish()
        return POLLER_BUSY

    def shutdown() -> None:
        _print("test_abort")
        final[0] = counter[0]
        running[0] = False
        finish()

    def start() -> None:
        framework = get_framework()
        core = app.main_core
        allocate = framework.event_allocate
        call = framework.event_call

        def nop() -> None:
            counter[0] += 1
            if running[0]:  # after the end, let the events drain instead of stranding them
                call(allocate(core, nop))

        _print("test_start")
        thread = get_thread()
        assert thread is not None
        end_poller.append(thread.register_poller(test_end, period_us=seconds * 1_000_000))
        for _ in range(depth):
            call(allocate(core, nop))

    rc = app.start(start, shutdown)
    _print(f"Performance: {final[0] // seconds:8d} events per second")
    return rc


# ----------------------------------------------------------------------------- poller_perf


def run_poller(args: argparse.Namespace) -> int:
    opts = opts_from_args("poller_perf", args)
    app = App(opts)
    seconds: int = args.time
    count: int = args.pollers
    period_us: int = args.period_us
    pollers: list[Poller] = []
    end_poller: list[Poller] = []
    start_busy = [0]

    def count_run() -> int:
        return POLLER_BUSY

    def finish() -> None:
        if not end_poller:
            return  # already reported (the end poller and a signal can race)
        thread = get_thread()
        assert thread is not None
        stats = thread.statistics()
        busy = stats.busy - start_busy[0]
        runs = sum(p.run_count for p in pollers)
        hz = stats.tick_rate
        cost = busy // runs if runs else 0
        cost_ns = cost * 1_000_000_000 // hz
        _print("\r ======================================")
        _print(f"\r busy:{busy} (cyc)")
        _print(f"\r total_run_count: {runs}")
        _print(f"\r tsc_hz: {hz} (cyc)")
        _print("\r ======================================")
        _print(f"\r poller_cost: {cost} (cyc), {cost_ns} (nsec)")
        for poller in pollers:
            poller.unregister()
        for poller in end_poller:
            poller.unregister()
        end_poller.clear()
        app.stop(0)

    def test_end() -> int:
        finish()
        return POLLER_IDLE

    def start() -> None:
        thread = get_thread()
        assert thread is not None
        for i in range(count):
            pollers.append(
                thread.register_poller(count_run, period_us=period_us, name=f"poller_{i}")
            )
        start_busy[0] = thread.statistics().busy
        end_poller.append(thread.register_poller(test_end, period_us=seconds * 1_000_000))

    _print(f"Running {count} pollers for {seconds} seconds with {period_us} microseconds period.")
    return app.start(start, finish)
