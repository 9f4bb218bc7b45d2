"""Echo benchmark: spdkpy ``hello_sock -S`` against asyncio and uvloop echo servers, same client.

One run measures, for every server, 64 B ping-pong round trips/s on 1 and on 16 connections and
bulk echo MB/s with 64 KiB messages on 4 connections, then prints one table with the ratios
spdkpy/asyncio, spdkpy/uvloop and spdkpy/SPDK's C hello_sock (figures given by issue 4, not
measured here). ``echo-idle`` samples the CPU of a ``hello_sock -S -m 0x3`` server holding 100
idle connections. Goals are printed as PASS/MISS, never asserted; the exit code is 1 only if
something could not be run or read (or an echo came back short).

Servers, each in its own subprocess and session, one after the other:

* ``spdkpy hello_sock -S -H 127.0.0.1 -P 0 -m 0x1`` (sleeping reactor, the default),
* the same with ``--busy-poll`` (spinning, as SPDK's C example does),
* ``echo_bench.py server --loop asyncio``: an ``asyncio.Protocol`` whose ``data_received``
  calls ``transport.write(data)``,
* ``echo_bench.py server --loop uvloop``: the same Protocol on uvloop (skipped if not installed).

The client is ``echo_bench.py client ...``, a subprocess in its own session that forks worker
processes (``multiprocessing``), so it never shares an interpreter lock with a server.

    python bench/echo_bench.py [-t SECONDS] [--quick] [--only echo|echo-idle] [--json]
    python bench/echo_bench.py client --port P --mode pingpong|bulk --conns N [--procs K] [-t S]
    python bench/echo_bench.py server [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, cast

from run_all import (
    BenchError,
    Row,
    _child_env,
    _group_cpu_ticks,
    _stop,
    _tail,
    print_table,
    ratio,
    run_ok,
    spdkpy_command,
    verdict,
)

HOST = "127.0.0.1"
SCRIPT = Path(__file__).resolve()

PING_SIZE = 64
PING_MANY_CONNS = 16
BULK_CHUNK = 64 * 1024
BULK_CONNS = 4
BULK_WINDOW = 16 * BULK_CHUNK
"""Bytes a bulk connection may have sent and not yet got back (1 MiB) before it stops writing."""
DRAIN_SECONDS = 10.0
IDLE_CONNS = 100
IDLE_MASK = "0x3"
IDLE_GOAL_PERCENT = 2.0
SERVER_START_SECONDS = 15.0
SETTLE_SECONDS = 1.0

SPDK_C_PINGPONG = 34_000.0
"""SPDK's C hello_sock, 64 B ping-pong on 1 connection with a Python client (given by issue 4)."""
SPDK_C_BULK_MBPS = 137.0
"""SPDK's C hello_sock, bulk echo with 64 KiB messages, MB/s (given by issue 4)."""
BUSY_VS_C_GOAL = 0.8

BENCHMARKS = ("echo", "echo-idle")


# --- the client (runs as ``echo_bench.py client``, forks its workers) ------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=10.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exact(sock: socket.socket, buf: memoryview, size: int) -> None:
    got = 0
    while got < size:
        n = sock.recv_into(buf[got:size])
        if n == 0:
            raise ConnectionError("server closed the connection")
        got += n


def _pingpong_worker(port: int, conns: int, seconds: float, start: Any) -> dict[str, float]:
    """``conns`` connections, each: send 64 B, wait for the 64 B echo, repeat until the deadline."""
    msg = bytes(i & 0xFF for i in range(PING_SIZE))
    buf = memoryview(bytearray(BULK_CHUNK))
    socks = [_connect(port) for _ in range(conns)]
    for sock in socks:  # one round trip each, so every connection is served before the clock runs
        sock.sendall(msg)
        _recv_exact(sock, buf, PING_SIZE)
    start.wait(30.0)
    count = 0
    perf = time.perf_counter
    t0 = perf()
    end = t0 + seconds
    if conns == 1:
        sock = socks[0]
        while True:
            sock.sendall(msg)
            _recv_exact(sock, buf, PING_SIZE)
            count += 1
            if perf() >= end:
                break
        t1 = perf()
    else:
        by_fd = {}
        remaining = {}
        ep = select.epoll()
        for sock in socks:
            sock.setblocking(False)
            by_fd[sock.fileno()] = sock
            remaining[sock.fileno()] = PING_SIZE
            ep.register(sock.fileno(), select.EPOLLIN)
        for sock in socks:
            sock.send(msg)
        sending = True
        outstanding = conns
        while outstanding:
            for fd, _ in ep.poll(1.0):
                n = by_fd[fd].recv_into(buf)
                if n == 0:
                    raise ConnectionError("server closed the connection")
                left = remaining[fd] - n
                if left > 0:
                    remaining[fd] = left
                    continue
                count += 1
                if sending:
                    remaining[fd] = PING_SIZE
                    if by_fd[fd].send(msg) != PING_SIZE:
                        raise ConnectionError("short send of a 64 B message")
                else:
                    outstanding -= 1
            if sending and perf() >= end:
                sending = False
                t1 = perf()
                count_at_end = count
        count = count_at_end
        ep.close()
    for sock in socks:
        sock.close()
    return {"count": count, "seconds": t1 - t0}


def _bulk_worker(port: int, conns: int, seconds: float, start: Any) -> dict[str, float]:
    """Each connection streams 64 KiB writes (at most BULK_WINDOW unechoed) and reads the echo."""
    chunk = memoryview(bytes(i & 0xFF for i in range(BULK_CHUNK)))
    buf = memoryview(bytearray(4 * BULK_CHUNK))
    socks = [_connect(port) for _ in range(conns)]
    for sock in socks:
        sock.sendall(chunk[:PING_SIZE])
        _recv_exact(sock, buf, PING_SIZE)
        sock.setblocking(False)
    by_fd = {s.fileno(): s for s in socks}
    sent = dict.fromkeys(by_fd, 0)
    got = dict.fromkeys(by_fd, 0)
    writing = dict.fromkeys(by_fd, True)
    ep = select.epoll()
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN | select.EPOLLOUT)
    start.wait(30.0)
    perf = time.perf_counter
    t0 = perf()
    end = t0 + seconds
    sending = True
    in_window = 0
    t1 = t0
    drain_deadline = end + DRAIN_SECONDS
    while True:
        for fd, events in ep.poll(0.5):
            sock = by_fd[fd]
            if events & select.EPOLLIN:
                n = sock.recv_into(buf)
                if n == 0:
                    raise ConnectionError("server closed the connection")
                got[fd] += n
            if sending and events & select.EPOLLOUT and sent[fd] - got[fd] < BULK_WINDOW:
                with contextlib.suppress(BlockingIOError):
                    off = sent[fd] % BULK_CHUNK
                    sent[fd] += sock.send(chunk[off:])
            want_out = sending and sent[fd] - got[fd] < BULK_WINDOW
            if want_out != writing[fd]:
                writing[fd] = want_out
                ep.modify(fd, select.EPOLLIN | (select.EPOLLOUT if want_out else 0))
        now = perf()
        if sending and now >= end:
            sending = False
            t1 = now
            in_window = sum(got.values())
            for fd in by_fd:
                writing[fd] = False
                ep.modify(fd, select.EPOLLIN)
        if not sending:
            if got == sent:
                break
            if now >= drain_deadline:
                raise ConnectionError(
                    f"echo short by {sum(sent.values()) - sum(got.values())} bytes after "
                    f"{DRAIN_SECONDS:g} s"
                )
    ep.close()
    for sock in socks:
        sock.close()
    return {
        "count": in_window,
        "seconds": t1 - t0,
        "sent": sum(sent.values()),
        "echoed": sum(got.values()),
    }


def _worker_main(
    target: Callable[[int, int, float, Any], dict[str, float]],
    port: int,
    conns: int,
    seconds: float,
    start: Any,
    results: Any,
) -> None:
    try:
        results.put(("ok", target(port, conns, seconds, start)))
    except BaseException as exc:  # report anything, the coordinator decides
        with contextlib.suppress(Exception):
            start.abort()
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def client_main(args: argparse.Namespace) -> int:
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})  # workers inherit it
    target = _bulk_worker if args.mode == "bulk" else _pingpong_worker
    procs = max(1, min(args.procs, args.conns))
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(procs + 1)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker_main, args=(target, args.port, n, args.t, start, results))
        for n in _split(args.conns, procs)
    ]
    for w in workers:
        w.start()
    try:
        with contextlib.suppress(Exception):
            start.wait(60.0)
        collected = [results.get(timeout=args.t + DRAIN_SECONDS + 60.0) for _ in workers]
    finally:
        for w in workers:
            w.join(5.0)
            if w.is_alive():
                w.kill()
                w.join()
    errors = [r for kind, r in collected if kind == "error"]
    if errors:
        print(f"client error: {errors[0]}", file=sys.stderr)
        return 1
    stats = [r for _, r in collected]
    out: dict[str, Any] = {
        "rate": sum(s["count"] / s["seconds"] for s in stats if s["seconds"] > 0),
        "count": sum(s["count"] for s in stats),
        "procs": procs,
        "conns": args.conns,
    }
    if args.mode == "bulk":
        out["sent"] = sum(s["sent"] for s in stats)
        out["echoed"] = sum(s["echoed"] for s in stats)
    print(json.dumps(out))
    return 0


# --- the asyncio / uvloop echo server (runs as ``echo_bench.py server``) ----------------------


class EchoProtocol(asyncio.Protocol):
    """Echo with ``transport.write`` in ``data_received``; stop reading while the peer lags."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(EchoProtocol, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on {HOST}:{port} ({type(loop).__module__})", flush=True)
    async with server:
        await stop


def server_main(args: argparse.Namespace) -> int:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve())
    return 0


# --- the driver ------------------------------------------------------------------------------


def uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    cmd: list[str]
    port_pattern: str


def _client_procs() -> int:
    """Client worker processes: leave one CPU to the server when there are several."""
    return max(1, min(4, len(os.sched_getaffinity(0)) - 1))


def server_cpu() -> int:
    """The CPU every server is pinned to: the last one we may use. spdkpy pins its reactor (to
    ``-m``'s core); pinning the anchors to the same CPU gives every server the same conditions
    (an unpinned anchor could dodge a CPU that other jobs crowd; spdkpy cannot)."""
    return max(os.sched_getaffinity(0))


def client_cpus() -> list[int]:
    """The CPUs the client runs on: all but the servers' one, when there are others."""
    others = sorted(os.sched_getaffinity(0) - {server_cpu()})
    return others or [server_cpu()]


@contextlib.contextmanager
def running_server(spec: ServerSpec) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start ``spec`` in its own session (output to a temp file); yield its port; stop it."""
    print(f"  $ {' '.join(spec.cmd)}", file=sys.stderr, flush=True)
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                spec.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                start_new_session=True,
            )
        except OSError as exc:
            raise BenchError(f"cannot start {spec.cmd[0]}: {exc}") from exc
        try:
            port = _wait_port(proc, log, spec.port_pattern)
            yield port, proc
            if proc.poll() is not None:
                raise BenchError(f"server exited during the run ({proc.returncode})\n{_tail(log)}")
        finally:
            ended = _stop(proc)
            print(f"    server stop: {ended}", file=sys.stderr, flush=True)


def _wait_port(proc: subprocess.Popen[bytes], log: IO[bytes], pattern: str) -> int:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        log.seek(0)
        match = re.search(pattern, log.read().decode(errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            last = _tail(log, 1).strip()[:80]
            raise BenchError(f"server exited during start-up ({proc.returncode}): {last}")
        time.sleep(0.05)
    raise BenchError(f"server printed no port in {SERVER_START_SECONDS:g} s\n{_tail(log)}")


def run_client(port: int, mode: str, conns: int, seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, str(SCRIPT), "client", "--port", str(port), "--mode", mode]
    cmd += ["--conns", str(conns), "--procs", str(_client_procs()), "-t", f"{seconds:g}"]
    cmd += ["--cpus", ",".join(str(c) for c in client_cpus())]
    done = run_ok(cmd, seconds + DRAIN_SECONDS + 60.0)
    try:
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise BenchError(f"unreadable client output: {done.stdout!r}") from exc
    if mode == "bulk" and result["sent"] != result["echoed"]:
        raise BenchError(f"bulk echo lost bytes: sent {result['sent']}, got {result['echoed']}")
    return result


FIGURES = (
    # key, bench label, client mode, connections
    ("pp1", "echo 64 B ping-pong, 1 conn", "pingpong", 1),
    ("pp16", f"echo 64 B ping-pong, {PING_MANY_CONNS} conns", "pingpong", PING_MANY_CONNS),
    ("bulk", f"echo bulk 64 KiB msgs, {BULK_CONNS} conns", "bulk", BULK_CONNS),
)


def server_specs(spdkpy: list[str]) -> list[ServerSpec]:
    spdk_port = r"Listening connection on 127\.0\.0\.1:(\d+)"
    py_port = r"listening on 127\.0\.0\.1:(\d+)"
    cpu = server_cpu()
    mask = hex(1 << cpu)
    base = [*spdkpy, "hello_sock", "-S", "-H", HOST, "-P", "0", "-m", mask]
    anchor = [sys.executable, str(SCRIPT), "server", "--cpu", str(cpu), "--loop"]
    specs = [
        ServerSpec("spdkpy", f"spdkpy hello_sock -S -m {mask}", base, spdk_port),
        ServerSpec(
            "busy",
            f"spdkpy hello_sock -S -m {mask} --busy-poll",
            [*base, "--busy-poll", "--disable-cpumask-locks"],
            spdk_port,
        ),
        ServerSpec(
            "asyncio", f"asyncio Protocol server on CPU {cpu}", [*anchor, "asyncio"], py_port
        ),
    ]
    if uvloop_available():
        specs.append(
            ServerSpec(
                "uvloop", f"uvloop Protocol server on CPU {cpu}", [*anchor, "uvloop"], py_port
            )
        )
    else:
        print("uvloop: not installed", file=sys.stderr, flush=True)
    return specs


def _fmt(key: str, value: float) -> str:
    return f"{value:,.1f} MB/s" if key == "bulk" else f"{value:,.0f} rt/s"


def _ratios(res: dict[str, float], other: float) -> str:
    """'default / other' and, if measured, '(busy: busy / other)'."""
    text = ratio(res["spdkpy"], other) if "spdkpy" in res else "n/a"
    if "busy" in res:
        text += f" (busy {ratio(res['busy'], other)})"
    return text


def bench_echo(spdkpy: list[str], seconds: float) -> list[Row]:
    specs = server_specs(spdkpy)
    figures: dict[str, dict[str, float]] = {key: {} for key, *_ in FIGURES}
    errors: list[Row] = []
    for spec in specs:
        try:
            with running_server(spec) as (port, _):
                for key, bench, mode, conns in FIGURES:
                    try:
                        result = run_client(port, mode, conns, seconds)
                    except BenchError as exc:
                        errors.append(_error_row(bench, spec.label, exc))
                        continue
                    value = float(result["rate"]) / (1e6 if mode == "bulk" else 1.0)
                    figures[key][spec.key] = value
                    print(f"    {bench}: {_fmt(key, value)}", file=sys.stderr, flush=True)
        except BenchError as exc:
            errors.append(_error_row("echo", spec.label, exc))

    rows: list[Row] = []
    labels = {s.key: s.label for s in specs}
    for key, bench, _, _ in FIGURES:
        res = figures[key]
        if "spdkpy" in res:
            rows.append(Row(bench, labels["spdkpy"], _fmt(key, res["spdkpy"])))
        if "busy" in res:
            busy_ratio = ratio(res["busy"], res["spdkpy"]) if "spdkpy" in res else ""
            rows.append(Row(bench, labels["busy"], _fmt(key, res["busy"]), f"busy {busy_ratio}"))
        for anchor in ("asyncio", "uvloop"):
            if anchor not in res:
                continue
            goal = ""
            if "spdkpy" in res and (anchor == "asyncio" or key == "bulk"):
                goal = f"{verdict(res['spdkpy'] >= res[anchor])} (spdkpy >= {anchor})"
            value = _fmt(key, res[anchor])
            rows.append(Row(bench, labels[anchor], value, _ratios(res, res[anchor]), goal))
        c_figure = {"pp1": SPDK_C_PINGPONG, "bulk": SPDK_C_BULK_MBPS}.get(key)
        if c_figure is not None:
            goal = ""
            if key == "pp1" and "busy" in res:
                ok = res["busy"] >= BUSY_VS_C_GOAL * c_figure
                goal = f"{verdict(ok)} (busy >= {BUSY_VS_C_GOAL:g}x C)"
            label = "SPDK C hello_sock (given by issue 4)"
            rows.append(Row(bench, label, _fmt(key, c_figure), _ratios(res, c_figure), goal))
    if "uvloop" not in labels:
        rows.append(Row("echo", "uvloop: not installed (pip install -e '.[bench]')"))
    return rows + errors


def bench_echo_idle(spdkpy: list[str], idle_seconds: float) -> list[Row]:
    name = "echo-idle"
    cmd = [*spdkpy, "hello_sock", "-S", "-H", HOST, "-P", "0", "-m", IDLE_MASK]
    spec = ServerSpec("idle", "", cmd, r"Listening connection on 127\.0\.0\.1:(\d+)")
    what = f"spdkpy hello_sock -S -m {IDLE_MASK}, {IDLE_CONNS} idle conns"
    clk_tck = os.sysconf("SC_CLK_TCK")
    socks: list[socket.socket] = []
    try:
        with running_server(spec) as (port, proc):
            buf = memoryview(bytearray(1))
            for _ in range(IDLE_CONNS):  # held by this process; it only sleeps while sampling
                sock = _connect(port)
                socks.append(sock)
                sock.sendall(b"x")
                _recv_exact(sock, buf, 1)  # served: accepted and handed to a reactor
            time.sleep(SETTLE_SECONDS)
            ticks0, t0 = _group_cpu_ticks(proc.pid), time.monotonic()
            time.sleep(idle_seconds)
            ticks1, t1 = _group_cpu_ticks(proc.pid), time.monotonic()
    except BenchError as exc:
        return [_error_row(name, what, exc)]
    except OSError as exc:
        return [Row(name, f"{what}: {exc}", verdict="ERROR")]
    finally:
        for sock in socks:
            sock.close()
    percent = 100.0 * (ticks1 - ticks0) / clk_tck / (t1 - t0)
    return [
        Row(
            name,
            f"{what} (goal < {IDLE_GOAL_PERCENT:g} %)",
            f"{percent:.1f} % of a core",
            "",
            verdict(percent < IDLE_GOAL_PERCENT),
        ),
        Row(name, f"  sampled {t1 - t0:.1f} s, all {IDLE_CONNS} connections echoed first"),
    ]


def _error_row(bench: str, what: str, exc: BenchError) -> Row:
    first, _, rest = str(exc).partition("\n")
    if rest:
        print(rest, file=sys.stderr, flush=True)
    return Row(bench, f"{what}: {first}", verdict="ERROR")


def bench_main(args: argparse.Namespace) -> int:
    spdkpy = [args.spdkpy] if args.spdkpy else spdkpy_command()
    seconds = args.t if args.t is not None else (1.0 if args.quick else 3.0)
    idle_seconds = args.idle_seconds or (3.0 if args.quick else 10.0)
    selected = [b for b in BENCHMARKS if not args.only or b in args.only]
    if not args.json:
        cpus = len(os.sched_getaffinity(0))
        print(
            f"echo bench: {' '.join(spdkpy)}\n"
            f"python {platform.python_version()} on {platform.machine()}, {cpus} usable CPUs, "
            f"t={seconds:g} s, servers on CPU {server_cpu()}, client: {_client_procs()} "
            f"worker process(es) on CPU(s) {','.join(map(str, client_cpus()))}, "
            f"idle sample {idle_seconds:g} s",
            flush=True,
        )
    rows: list[Row] = []
    if "echo" in selected:
        print("[echo]", file=sys.stderr, flush=True)
        rows += bench_echo(spdkpy, seconds)
    if "echo-idle" in selected:
        print("[echo-idle]", file=sys.stderr, flush=True)
        rows += bench_echo_idle(spdkpy, idle_seconds)
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
    else:
        print()
        print_table(rows)
        print(
            "\nrt/s = round trips per second; MB = 10^6 bytes echoed back to the client. "
            "'busy' is the --busy-poll server.\nRatios are from this one run, except the SPDK C "
            "figures, given by issue 4. See bench/README.md."
        )
    return 1 if any(r.verdict == "ERROR" for r in rows) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role")
    client = sub.add_parser("client", help="(internal) drive connections, print JSON")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--mode", choices=("pingpong", "bulk"), required=True)
    client.add_argument("--conns", type=int, default=1)
    client.add_argument("--procs", type=int, default=1, help="worker processes")
    client.add_argument("-t", type=float, default=3.0, metavar="SECONDS")
    client.add_argument("--cpus", metavar="LIST", help="pin the client to these CPUs (a,b,...)")
    server = sub.add_parser("server", help="(internal) asyncio/uvloop echo server on a free port")
    server.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    server.add_argument("--cpu", type=int, metavar="N", help="pin the server to CPU N")
    parser.add_argument("-t", type=float, metavar="SECONDS", help="seconds per figure (3)")
    parser.add_argument("--quick", action="store_true", help="t=1 s, idle sample 3 s")
    parser.add_argument(
        "--idle-seconds", type=float, metavar="SECONDS", help="echo-idle CPU sample (10)"
    )
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME")
    parser.add_argument("--spdkpy", metavar="PATH", help="spdkpy executable to measure")
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON line")
    args = parser.parse_args(argv)
    if args.role == "client":
        return client_main(args)
    if args.role == "server":
        return server_main(args)
    return bench_main(args)


if __name__ == "__main__":
    sys.exit(main())
