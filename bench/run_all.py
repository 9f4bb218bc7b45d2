"""Run spdkpy's perf tools and their asyncio anchors, and print one table of figures and ratios.

Used by ``make bench``. Every measurement runs in its own subprocess (spdkpy's tool, then the
anchor), one after the other, so that neither disturbs the other. Goals are printed as PASS/MISS;
nothing is asserted. The exit code is 1 only if a benchmark could not be run or its output could
not be read.

    python bench/run_all.py                 # full run (about a minute)
    python bench/run_all.py --quick         # t=1 s, idle samples of 3 s
    python bench/run_all.py --only reactor  # one benchmark (repeatable)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ANCHORS = Path(__file__).with_name("anchors.py")

REACTOR_QUEUE_DEPTH = 128
REACTOR_GOAL_RATIO = 2.0  # the goal: spdkpy >= 2x the asyncio call_soon loop
REACTOR_GOAL = 3_000_000
"""events/s that ``spdkpy perf reactor -q 128`` should reach."""
SPDK_C_REACTOR = 15_000_000
"""SPDK's C reactor_perf -q 128 on the reference machine, as given by the issue (not measured)."""
EVENT_MASK = "0x3"
EVENT_GOAL_RATIO = 2.0
"""``spdkpy perf event -m 0x3`` should pass events at least this many times as fast as asyncio."""
POLLER_COUNT = 100
POLLER_PERIOD_US = 0
TGT_MASK = "0x3"
STARTUP_SECONDS = 1.0
STOP_GRACE_SECONDS = 10.0

BDEVPERF_DEPTH = 32
BDEVPERF_IO_SIZE = 4096
BDEVPERF_MALLOC = {"name": "Malloc0", "num_blocks": 65536, "block_size": 4096}  # 256 MiB
SPDK_C_BDEVPERF = 1_760_000
"""SPDK's C bdevperf, malloc 4 KiB randread QD32 on 1 core, as given by issue 6 (not measured)."""
BDEVPERF_GOAL = 200_000
"""IOPS that ``spdkpy bdevperf`` should reach on that workload (issue 6: >= 11 % of SPDK's C)."""

BENCHMARKS = (
    "reactor",
    "event",
    "poller",
    "idle",
    "idle-interrupt",
    "busy-poll",
    "latency",
    "speedup",
    "rpc",
    "echo",
    "echo-idle",
    "bdevperf",
)
MSG_LATENCY = Path(__file__).with_name("msg_latency.py")
SPEEDUP_GOAL = 1.7
"""Issue 5: two reactors should do >= 1.7x the work of one on a free-threaded build."""
ECHO_BENCH = Path(__file__).with_name("echo_bench.py")


@dataclass
class Row:
    bench: str
    figure: str
    value: str = ""
    ratio: str = ""
    verdict: str = ""


class BenchError(Exception):
    """A benchmark could not be run or its output could not be read."""


@dataclass(frozen=True)
class Finished:
    cmd: list[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 8) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()[-lines:]
        return "\n".join("    " + line for line in text)


# --- subprocesses ------------------------------------------------------------------------------


def spdkpy_command() -> list[str]:
    """The spdkpy console script next to this interpreter, else ``python -m spdkpy.apps.cli``."""
    script = Path(sys.executable).parent / "spdkpy"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "spdkpy.apps.cli"]


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def _kill_group(pgid: int) -> None:
    """SIGKILL what is left of a process group this script started (its leader's pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run(cmd: list[str], timeout: float) -> Finished:
    """Run ``cmd`` in its own session; on timeout or interruption kill its whole process group."""
    print(f"  $ {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_child_env(),
            start_new_session=True,
        )
    except OSError as exc:
        raise BenchError(f"cannot start {cmd[0]}: {exc}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        stdout, stderr = proc.communicate()
        done = Finished(cmd, proc.returncode, stdout, stderr)
        raise BenchError(f"timed out after {timeout:.0f} s\n{done.tail()}") from None
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise
    _kill_group(proc.pid)  # stray grandchildren, if any
    return Finished(cmd, proc.returncode, stdout, stderr)


def run_ok(cmd: list[str], timeout: float) -> Finished:
    done = run(cmd, timeout)
    if done.returncode != 0:
        last = done.tail(1).strip()
        raise BenchError(f"exit code {done.returncode}: {last[:80]}\n{done.tail()}")
    return done


def run_anchor(args: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    done = run_ok([sys.executable, str(ANCHORS), *args, "--json"], timeout)
    try:
        result: dict[str, dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise BenchError(f"unreadable anchor output: {done.stdout!r}") from exc
    return result


def _search(pattern: str, done: Finished, what: str) -> re.Match[str]:
    match = re.search(pattern, done.stdout, re.M)
    if match is None:
        raise BenchError(f"no {what!r} line in the output of {' '.join(done.cmd)}\n{done.tail()}")
    return match


def _perf_timeout(seconds: float) -> float:
    return 2 * seconds + 30


# --- formatting --------------------------------------------------------------------------------


def rate(value: float) -> str:
    return f"{value:,.0f} ev/s"


def ratio(num: float, den: float) -> str:
    return f"{num / den:.2f}x" if den > 0 else "n/a"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(rows: Sequence[Row]) -> None:
    header = Row("benchmark", "figure", "value", "ratio", "goal")
    cells = [(r.bench, r.figure, r.value, r.ratio, r.verdict) for r in [header, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(5)]

    def line(c: tuple[str, str, str, str, str]) -> str:
        return (
            f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:>{widths[2]}}  "
            f"{c[3]:>{widths[3]}}  {c[4]}"
        ).rstrip()

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    previous = ""
    for c in cells[1:]:
        print(line(c if c[0] != previous else ("", *c[1:])))
        previous = c[0]


# --- benchmarks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    spdkpy: list[str]
    seconds: float
    idle_seconds: float


def _error_row(bench: str, what: str, exc: BenchError) -> Row:
    """A row for a failed step; the details go to stderr at once."""
    first, _, rest = str(exc).partition("\n")
    if rest:
        print(rest, file=sys.stderr, flush=True)
    return Row(bench, f"{what}: {first}", verdict="ERROR")


def bench_reactor(s: Settings) -> list[Row]:
    name = "perf reactor"
    q, t = REACTOR_QUEUE_DEPTH, s.seconds
    what = f"spdkpy -q {q} -t {t:g}"
    rows: list[Row] = []
    spdkpy: float | None = None
    try:
        done = run_ok(
            [*s.spdkpy, "perf", "reactor", "-q", str(q), "-t", f"{t:g}"], _perf_timeout(t)
        )
        match = _search(r"Performance:\s*(\d+)\s+events per second", done, "Performance")
        spdkpy = float(match.group(1))
        rows.append(Row(name, what, rate(spdkpy)))
    except BenchError as exc:
        rows.append(_error_row(name, what, exc))
    if spdkpy is not None and len(os.sched_getaffinity(0)) >= 2:
        # The same run with a second, idle reactor: on a GIL build an idle reactor must sleep
        # instead of taking the interpreter lock from the busy one (ratio ~1.0x).
        peer_what = f"spdkpy -q {q} -t {t:g} -m 0x3 (idle 2nd reactor)"
        try:
            done = run_ok(
                [*s.spdkpy, "perf", "reactor", "-q", str(q), "-t", f"{t:g}", "-m", "0x3"],
                _perf_timeout(t),
            )
            match = _search(r"Performance:\s*(\d+)\s+events per second", done, "Performance")
            with_peer = float(match.group(1))
            rows.append(Row(name, peer_what, rate(with_peer), ratio(with_peer, spdkpy)))
        except BenchError as exc:
            rows.append(_error_row(name, peer_what, exc))
    anchors = run_anchor(["reactor", "-q", str(q), "-t", f"{t:g}"], _perf_timeout(t))
    for loop, result in anchors.items():
        anchor = float(result["events_per_second"])
        rows.append(
            Row(
                name,
                f"{loop} anchor, same q and t (goal >= {REACTOR_GOAL_RATIO:g}x)",
                rate(anchor),
                "" if spdkpy is None else ratio(spdkpy, anchor),
                ""
                if spdkpy is None or loop != "asyncio"
                else verdict(anchor > 0 and spdkpy / anchor >= REACTOR_GOAL_RATIO),
            )
        )
    if spdkpy is not None:
        rows.append(
            Row(
                name,
                f"goal {REACTOR_GOAL:,} ev/s",
                rate(REACTOR_GOAL),
                ratio(spdkpy, REACTOR_GOAL),
                verdict(spdkpy >= REACTOR_GOAL),
            )
        )
        rows.append(
            Row(
                name,
                "SPDK C reactor_perf (given, ~)",
                rate(SPDK_C_REACTOR),
                ratio(spdkpy, SPDK_C_REACTOR),
            )
        )
    return rows


def bench_event(s: Settings) -> list[Row]:
    name = "perf event"
    t = s.seconds
    what = f"spdkpy -m {EVENT_MASK} -t {t:g} (sum of lcores)"
    rows: list[Row] = []
    spdkpy: float | None = None
    n_loops = bin(int(EVENT_MASK, 16)).count("1")
    try:
        cmd = [*s.spdkpy, "perf", "event", "-m", EVENT_MASK, "-t", f"{t:g}"]
        done = run_ok(cmd, _perf_timeout(t))
        lcores = [(int(c), int(n)) for c, n in re.findall(r"lcore\s*(\d+):\s*(\d+)", done.stdout)]
        if not lcores:
            raise BenchError(f"no 'lcore N: count' lines in the output\n{done.tail()}")
        spdkpy = float(sum(n for _, n in lcores))
        rows.append(Row(name, what, rate(spdkpy)))
        rows.append(Row(name, "  " + ", ".join(f"lcore {c}: {n:,}" for c, n in lcores)))
    except BenchError as exc:
        rows.append(_error_row(name, what, exc))
    anchors = run_anchor(["event", "-t", f"{t:g}", "-n", str(n_loops)], _perf_timeout(t))
    for loop, result in anchors.items():
        anchor = float(result["events_per_second"])
        goal = ""
        if spdkpy is not None and loop == "asyncio":
            goal = verdict(anchor > 0 and spdkpy / anchor >= EVENT_GOAL_RATIO)
        rows.append(
            Row(
                name,
                f"{loop} {result['loops']}-loop anchor (goal >= {EVENT_GOAL_RATIO:g}x)",
                rate(anchor),
                "" if spdkpy is None else ratio(spdkpy, anchor),
                goal,
            )
        )
    return rows


def bench_poller(s: Settings) -> list[Row]:
    name = "perf poller"
    b, period, t = POLLER_COUNT, POLLER_PERIOD_US, s.seconds
    cmd = [*s.spdkpy, "perf", "poller", "-b", str(b), "-l", str(period), "-t", f"{t:g}"]
    done = run_ok(cmd, _perf_timeout(t))
    cost = _search(r"poller_cost:\s*(\d+)\s*\(cyc\),\s*(\d+)\s*\(nsec\)", done, "poller_cost")
    runs = int(_search(r"total_run_count:\s*(\d+)", done, "total_run_count").group(1))
    return [
        Row(name, f"spdkpy -b {b} -l {period} -t {t:g}", f"{int(cost.group(2)):,} ns/run"),
        Row(name, "  poller_cost in ticks", f"{int(cost.group(1)):,} cyc"),
        Row(name, "  total_run_count", f"{runs:,} ({runs / t:,.0f}/s)"),
    ]


def _group_cpu_ticks(pgid: int) -> int:
    """utime + stime (clock ticks) of every live process in process group ``pgid``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after "(comm)": state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
        fields = stat.rpartition(")")[2].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGINT, wait up to STOP_GRACE_SECONDS, then SIGKILL the group. Returns how it ended."""
    if proc.poll() is not None:
        _kill_group(proc.pid)
        return f"had already exited ({proc.returncode})"
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.wait()
        return f"ignored SIGINT for {STOP_GRACE_SECONDS:g} s, killed"
    _kill_group(proc.pid)
    return f"exit {proc.returncode} {time.monotonic() - start:.2f} s after SIGINT"


def _tail(log: IO[bytes], lines: int = 8) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in text)


def _cpu_of_tgt(s: Settings, name: str, extra: list[str]) -> list[Row]:
    cmd = [*s.spdkpy, "tgt", "-m", TGT_MASK, *extra]
    print(f"  $ {' '.join(cmd)}", file=sys.stderr, flush=True)
    clk_tck = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                start_new_session=True,
            )
        except OSError as exc:
            raise BenchError(f"cannot start {cmd[0]}: {exc}") from exc
        try:
            time.sleep(STARTUP_SECONDS)
            if proc.poll() is not None:
                last = _tail(log, 1).strip()[:80]
                raise BenchError(
                    f"exited during start-up ({proc.returncode}): {last}\n{_tail(log)}"
                )
            ticks0, t0 = _group_cpu_ticks(proc.pid), time.monotonic()
            time.sleep(s.idle_seconds)
            ticks1, t1 = _group_cpu_ticks(proc.pid), time.monotonic()
            if proc.poll() is not None:
                raise BenchError(f"exited while sampled ({proc.returncode})\n{_tail(log)}")
        finally:
            ended = _stop(proc)
        percent = 100.0 * (ticks1 - ticks0) / clk_tck / (t1 - t0)
        return [
            Row(name, f"spdkpy {' '.join(cmd[len(s.spdkpy) :])}", f"{percent:.1f} % of a core"),
            Row(name, f"  sampled {t1 - t0:.1f} s; stop: {ended}"),
        ]


def bench_idle(s: Settings) -> list[Row]:
    return _cpu_of_tgt(s, "idle cost", [])


def bench_busy_poll(s: Settings) -> list[Row]:
    return _cpu_of_tgt(s, "busy-poll cost", ["--busy-poll"])


def bench_rpc(s: Settings) -> list[Row]:
    name = "rpc round trips"
    what = "spdk_get_version, one JSONRPCClient connection"
    script = str(Path(__file__).with_name("rpc_roundtrip.py"))
    try:
        done = run_ok([sys.executable, script, "-t", f"{s.seconds:g}"], _perf_timeout(s.seconds))
        match = _search(r"connection: ([\d,]+) calls/s", done, "calls/s")
        calls = float(match.group(1).replace(",", ""))
    except BenchError as exc:
        return [_error_row(name, what, exc)]
    return [
        Row(name, what, f"{calls:,.0f} calls/s"),
        Row(name, "SPDK C target (given, ~250/s)", "250 calls/s", ratio(calls, 250.0)),
        Row(
            name,
            "goal 2,000 calls/s",
            "2,000 calls/s",
            ratio(calls, 2000.0),
            verdict(calls >= 2000.0),
        ),
    ]


def _run_echo_bench(s: Settings, only: str, timeout: float) -> list[Row]:
    """Run ``echo_bench.py --only NAME --json`` (its own servers and clients) and read its rows."""
    cmd = [sys.executable, str(ECHO_BENCH), "--only", only, "--json", "-t", f"{s.seconds:g}"]
    cmd += ["--idle-seconds", f"{s.idle_seconds:g}"]
    if len(s.spdkpy) == 1:
        cmd += ["--spdkpy", s.spdkpy[0]]
    done = run(cmd, timeout)
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr, flush=True)
    try:
        rows = [Row(**fields) for fields in json.loads(done.stdout.strip().splitlines()[-1])]
    except (ValueError, IndexError, TypeError) as exc:
        text = f"unreadable echo_bench output ({done.returncode})\n{done.tail()}"
        raise BenchError(text) from exc
    return rows


def bench_echo(s: Settings) -> list[Row]:
    # 4 servers x 3 figures, each figure t seconds plus start-up and draining.
    return _run_echo_bench(s, "echo", 12 * (s.seconds + 15) + 60)


def bench_echo_idle(s: Settings) -> list[Row]:
    return _run_echo_bench(s, "echo-idle", s.idle_seconds + 60)


def _msg_latency(args: list[str], timeout: float) -> dict[str, Any]:
    done = run_ok([sys.executable, str(MSG_LATENCY), *args], timeout)
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise BenchError(f"unreadable msg_latency output: {done.stdout!r}") from exc
    return result


def bench_latency(s: Settings) -> list[Row]:
    """Cross-reactor message latency, idle and with both reactors busy, per wake-up setting."""
    name = "msg latency"
    t = f"{s.seconds:g}"
    rows: list[Row] = []
    cases = [
        ("idle, sleeping reactors", []),
        ("idle, --busy-poll", ["--busy-poll"]),
        ("idle, --interrupt-mode", ["--interrupt-mode"]),
        ("loaded, switch interval 0.5 ms (default)", ["--load"]),
        ("loaded, switch interval 0.1 ms", ["--load", "--switch-interval", "0.0001"]),
        ("loaded, switch interval 5 ms (CPython's)", ["--load", "--switch-interval", "0.005"]),
    ]
    for what, extra in cases:
        try:
            r = _msg_latency(["latency", "-t", t, *extra], _perf_timeout(s.seconds))
            rows.append(
                Row(
                    name,
                    what,
                    f"p50 {r['p50_us']:,.0f} us, p99 {r['p99_us']:,.0f} us",
                    f"{r['round_trips_per_s']:,} rt/s",
                )
            )
        except BenchError as exc:
            rows.append(_error_row(name, what, exc))
    return rows


def bench_speedup(s: Settings) -> list[Row]:
    """Pure-Python work spread over 4 threads: two reactors against one."""
    name = "speedup"
    t = f"{s.seconds:g}"
    try:
        one = _msg_latency(["speedup", "-t", t, "-m", "0x1"], _perf_timeout(s.seconds))
        two = _msg_latency(["speedup", "-t", t, "-m", "0x3"], _perf_timeout(s.seconds))
    except BenchError as exc:
        return [_error_row(name, "1 vs 2 reactors", exc)]
    gil = "GIL on" if two["gil"] else "GIL off"
    x = two["work_per_s"] / one["work_per_s"] if one["work_per_s"] else 0.0
    return [
        Row(name, "-m 0x1, 4 threads of pure-Python work", f"{one['work_per_s']:,} items/s"),
        Row(
            name,
            f"-m 0x3 ({gil}; goal >= {SPEEDUP_GOAL:g}x without the GIL)",
            f"{two['work_per_s']:,} items/s",
            f"{x:.2f}x",
            "" if two["gil"] else verdict(x >= SPEEDUP_GOAL),
        ),
    ]


def bench_idle_interrupt(s: Settings) -> list[Row]:
    return _cpu_of_tgt(s, "idle cost, --interrupt-mode", ["--interrupt-mode"])


def bench_bdevperf(s: Settings) -> list[Row]:
    name = "bdevperf"
    q, o, t = BDEVPERF_DEPTH, BDEVPERF_IO_SIZE, s.seconds
    core = hex(1 << min(os.sched_getaffinity(0)))
    what = f"spdkpy malloc randread -q {q} -o {o} -t {t:g} -m {core}"
    config = {
        "subsystems": [
            {
                "subsystem": "bdev",
                "config": [
                    {"method": "bdev_malloc_create", "params": BDEVPERF_MALLOC},
                    {"method": "bdev_wait_for_examine"},
                ],
            }
        ]
    }
    with tempfile.TemporaryDirectory(prefix="spdkpy-bench-") as tmp:
        path = Path(tmp) / "bdev.json"
        path.write_text(json.dumps(config))
        cmd = [*s.spdkpy, "bdevperf", "-c", str(path), "-q", str(q), "-o", str(o)]
        cmd += ["-w", "randread", "-t", f"{max(1, round(t))}", "-m", core]
        try:
            done = run_ok(cmd, _perf_timeout(t))
            # text mode reads the table's "\r" line starts as line breaks
            total = _search(
                r"^ Total +: +([\d.]+) +([\d.]+) +[\d.]+ +[\d.]+ +([\d.]+) ", done, "Total"
            )
            tail = done.stdout.partition("Latency percentiles(us)")[2]
            pct = re.search(r"^ Total +: +([\d.]+) +([\d.]+) +([\d.]+)\s*$", tail, re.M)
            if pct is None:
                raise BenchError(f"no latency percentiles in the output\n{done.tail()}")
        except BenchError as exc:
            return [_error_row(name, what, exc)]
    iops, mibps, avg = float(total.group(1)), float(total.group(2)), float(total.group(3))
    p50, p99, p999 = (float(pct.group(i)) for i in (1, 2, 3))
    return [
        Row(name, what, f"{iops:,.0f} IOPS"),
        Row(name, "  MiB/s, average latency", f"{mibps:,.1f} MiB/s, {avg:.1f} us"),
        Row(name, "  p50 / p99 / p99.9 latency", f"{p50:.1f} / {p99:.1f} / {p999:.1f} us"),
        Row(
            name,
            f"goal {BDEVPERF_GOAL:,} IOPS",
            f"{BDEVPERF_GOAL:,} IOPS",
            ratio(iops, BDEVPERF_GOAL),
            verdict(iops >= BDEVPERF_GOAL),
        ),
        Row(
            name,
            "SPDK C bdevperf (given, ~)",
            f"{SPDK_C_BDEVPERF:,} IOPS",
            ratio(iops, SPDK_C_BDEVPERF),
        ),
    ]


RUNNERS: dict[str, Callable[[Settings], list[Row]]] = {
    "reactor": bench_reactor,
    "event": bench_event,
    "poller": bench_poller,
    "idle": bench_idle,
    "idle-interrupt": bench_idle_interrupt,
    "busy-poll": bench_busy_poll,
    "latency": bench_latency,
    "speedup": bench_speedup,
    "rpc": bench_rpc,
    "echo": bench_echo,
    "echo-idle": bench_echo_idle,
    "bdevperf": bench_bdevperf,
}


def _gil_state() -> str:
    """This interpreter's build and lock (the perf tools run on it unless --spdkpy is given)."""
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "GIL build"
    is_enabled = getattr(sys, "_is_gil_enabled", lambda: True)
    return "free-threaded, GIL " + ("on" if is_enabled() else "off")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="t=1 s per perf tool, idle 3 s")
    parser.add_argument(
        "--only", action="append", choices=BENCHMARKS, metavar="NAME", help="|".join(BENCHMARKS)
    )
    parser.add_argument(
        "--spdkpy", metavar="PATH", help="spdkpy executable to measure (default: next to python)"
    )
    args = parser.parse_args(argv)
    settings = Settings(
        spdkpy=[args.spdkpy] if args.spdkpy else spdkpy_command(),
        seconds=1.0 if args.quick else 3.0,
        idle_seconds=3.0 if args.quick else 10.0,
    )
    selected = [b for b in BENCHMARKS if not args.only or b in args.only]
    cpus = len(os.sched_getaffinity(0))
    print(
        f"spdkpy bench: {' '.join(settings.spdkpy)}\n"
        f"python {platform.python_version()} ({_gil_state()}) on {platform.machine()}, "
        f"{cpus} usable CPUs, "
        f"t={settings.seconds:g} s, idle sample {settings.idle_seconds:g} s",
        flush=True,
    )
    rows: list[Row] = []
    for bench in selected:
        print(f"[{bench}]", file=sys.stderr, flush=True)
        try:
            rows.extend(RUNNERS[bench](settings))
        except BenchError as exc:
            rows.append(_error_row(bench, "failed", exc))
    print()
    print_table(rows)
    print(
        "\nRatios are spdkpy / anchor from this one run; absolute figures vary between machines "
        "and runs. See bench/README.md."
    )
    return 1 if any(r.verdict == "ERROR" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
