"""Cross-reactor message latency and two-reactor speed-up (issue 5, items 4 and 5).

Two measurements, each in this process on real pinned reactors:

``latency``: thread A on the main core sends a message carrying ``perf_counter_ns()`` to thread B
on the second core; B records the one-way latency and answers; A sends the next one when the
answer arrives (one message in flight). With ``--load``, each reactor also hosts a thread whose
active poller does about 20 us of pure-Python work per call, so both reactors are busy at once
and, on a GIL build, contend for the interpreter lock: that is where the switch interval and the
wake-up protocol decide the latency.

``speedup``: each of N threads sends itself a message that does a fixed amount of pure-Python
work and re-sends itself, for ``-t`` seconds; the figure is work items per second. Run with
``-m 0x1`` and ``-m 0x3`` to see what a second reactor adds (about 1.0x on a GIL build; on a
free-threaded build it is the real parallel speed-up).

    python bench/msg_latency.py latency -t 3 [--load] [--switch-interval S] [--busy-poll]
    python bench/msg_latency.py speedup -t 3 -m 0x3 [--threads 4]

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from spdkpy.env import CpuSet, available_cores
from spdkpy.event import reactors_fini, reactors_init
from spdkpy.thread import POLLER_BUSY, Poller, Thread

WORK_LOOPS = 200  # about 10-20 us of bytecode per call on this machine


def _work() -> int:
    acc = 0
    for i in range(WORK_LOOPS):
        acc += i * i
    return acc


def _gil_enabled() -> bool:
    probe: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else probe()


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index] / 1000.0


def latency(args: argparse.Namespace) -> dict[str, object]:
    cores = sorted(available_cores())[:2]
    if len(cores) < 2:
        raise SystemExit("latency needs two cores")
    switch = args.switch_interval
    fw = reactors_init(
        CpuSet(cores),
        busy_poll=args.busy_poll,
        interrupt_mode=args.interrupt_mode,
        gil_switch_interval_s=switch if switch is not None else 0.0005,
    )
    samples: list[int] = []
    round_trips = [0]
    deadline = [0.0]
    clock = time.perf_counter_ns

    def start(app: Thread) -> None:
        a = Thread("ping", CpuSet([cores[0]]))
        b = Thread("pong", CpuSet([cores[1]]))
        loaders: list[Thread] = []
        if args.load:
            for core in cores:
                t = Thread(f"load{core}", CpuSet([core]))
                t.send_msg(lambda me=t: me.register_poller(lambda: _work() and POLLER_BUSY))
                loaders.append(t)

        def pong(t0: int) -> None:
            samples.append(clock() - t0)
            a.send_msg(ping)

        def ping() -> None:
            round_trips[0] += 1
            if time.monotonic() < deadline[0]:
                b.send_msg(pong, clock())
            else:
                for t in (a, b, *loaders):
                    t.send_msg(_stop_thread, t)
                app.send_msg(fw.stop)

        def go() -> None:
            deadline[0] = time.monotonic() + args.time
            b.send_msg(pong, clock())

        # Let both threads reach their reactors (and the loaders start) before timing.
        _after(app, 0.2, go)

    app = Thread("app_thread", CpuSet([fw.main_core]))
    app.send_msg(start, app)
    fw.start()
    reactors_fini()
    samples.sort()
    return {
        "bench": "latency",
        "load": args.load,
        "busy_poll": args.busy_poll,
        "interrupt_mode": args.interrupt_mode,
        "switch_interval_s": switch if switch is not None else 0.0005,
        "gil": _gil_enabled(),
        "python": sys.version.split()[0],
        "samples": len(samples),
        "round_trips_per_s": round(round_trips[0] / args.time),
        "p50_us": _percentile(samples, 0.50),
        "p99_us": _percentile(samples, 0.99),
        "p999_us": _percentile(samples, 0.999),
    }


def _after(app: Thread, seconds: float, fn: Callable[[], None]) -> None:
    """Run ``fn`` once on ``app`` after ``seconds`` (a timed poller that unregisters itself)."""
    holder: list[Poller] = []

    def poller() -> int:
        holder[0].unregister()
        fn()
        return POLLER_BUSY

    holder.append(app.register_poller(poller, period_us=int(seconds * 1_000_000)))


def _stop_thread(me: Thread) -> None:
    for poller in me.pollers():
        poller.unregister()
    me.exit()


def _make_worker(stop: list[bool]) -> tuple[Callable[[Thread], None], list[int]]:
    """A message handler and its counter, both private to one worker: on a free-threaded build,
    objects shared by two reactors pay for every reference-count change with an atomic operation
    on a contended cache line, which would measure the benchmark, not the runtime."""
    count = [0]

    def work() -> int:
        acc = 0
        for i in range(WORK_LOOPS):
            acc += i * i
        return acc

    def step(me: Thread) -> None:
        work()
        count[0] += 1
        if stop[0]:
            me.exit()
        else:
            me.send_msg(step, me)

    return step, count


def speedup(args: argparse.Namespace) -> dict[str, object]:
    mask = CpuSet.parse(args.mask)
    fw = reactors_init(mask)
    stop = [False]
    counters: list[list[int]] = []

    def start(app: Thread) -> None:
        for i in range(args.threads):
            step, count = _make_worker(stop)
            counters.append(count)
            worker = Thread(f"work{i}", mask)
            worker.send_msg(step, worker)

        def end() -> None:
            stop[0] = True
            app.send_msg(fw.stop)

        _after(app, args.time, end)

    app = Thread("app_thread", CpuSet([fw.main_core]))
    app.send_msg(start, app)
    t0 = time.monotonic()
    fw.start()
    elapsed = time.monotonic() - t0
    reactors_fini()
    return {
        "bench": "speedup",
        "mask": args.mask,
        "threads": args.threads,
        "gil": _gil_enabled(),
        "python": sys.version.split()[0],
        "work_per_s": round(sum(c[0] for c in counters) / min(elapsed, args.time)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("-t", "--time", type=float, default=3.0)
    lat.add_argument("--load", action="store_true")
    lat.add_argument("--busy-poll", action="store_true")
    lat.add_argument("--interrupt-mode", action="store_true")
    lat.add_argument("--switch-interval", type=float, default=None)
    sp = sub.add_parser("speedup")
    sp.add_argument("-t", "--time", type=float, default=3.0)
    sp.add_argument("-m", "--mask", default="0x3")
    sp.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    result = latency(args) if args.bench == "latency" else speedup(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
