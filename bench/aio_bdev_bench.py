"""The aio bdev module against fio: 4 KiB O_DIRECT random reads at queue depth 32 on one file.

Rows, run one after the other on the same file (``--rounds N``: N times, interleaved; the table
shows the median run and the range):

* ``fio io_uring`` / ``fio libaio``: ``fio --rw=randread --bs=4k --iodepth=32 --direct=1
  --ioengine=... --time_based`` (skipped with a message if fio is missing: ``apt-get install fio``),
  and ``fio io_uring (core N)`` with ``--cpus_allowed=N``: pinned to bdevperf's core, as a
  reactor is (on a shared machine a pinned process cannot move away from a busy CPU).
* ``aio bdev, bare loop``: this process drives an aio bdev through the bdev layer from one
  lightweight SPDK thread polled in a bare loop (no reactor, no bdevperf), each completion
  submitting the next read at a random block; when a poll finds nothing it sleeps in ``epoll``
  on the aio group poller's ``wake_fd``, as a reactor does (``--busy``: never sleeps).
* ``spdkpy bdevperf``: ``spdkpy bdevperf -m <core> -c <aio config> -q 32 -o 4096 -w randread
  -t T`` as a child process, its ``Total`` IOPS; then the same with ``--busy-poll`` (the reactor
  spins, as SPDK's does, instead of sleeping when idle).

CPU ("cores") is user + system time over the run: for the bare loop, this process over the timed
window; for fio, its ``usr_cpu + sys_cpu``; for bdevperf, the child's whole life (start-up and
shutdown included, about 0.5 s of CPU). "waited" is the time the busiest thread was runnable but
not running (``/proc/.../schedstat``), as a share of the run: other tenants of a small machine
take the CPU from the benchmark, and that shows here rather than as CPU. Nothing is asserted.

    python bench/aio_bdev_bench.py                          # 1 GiB file under /var/tmp, 10 s/row
    python bench/aio_bdev_bench.py --file /work/tmp/f.dat -t 10 --rounds 3
    python bench/aio_bdev_bench.py --backend threads --no-fio

Without ``--file`` a 1 GiB file of random data is written with ``O_DIRECT`` and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aio_engine_bench import Result, Setup, cpu_seconds, make_file
from spdkpy import bdev as B
from spdkpy.bdev._aio_engine import available_backends
from spdkpy.thread import Thread, set_thread, thread_lib_fini, thread_lib_init

TOTAL = re.compile(r"^\s*Total\s*:\s+([\d.]+)", re.M)


@dataclass(frozen=True)
class Row:
    result: Result
    waited: float | None  # share of the run spent runnable but not running


def _schedstat_wait_ns(path: str) -> int:
    try:
        return int(Path(path).read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def run_bare(setup: Setup, backend: str, busy: bool) -> Row:
    """The aio bdev through the layer, one SPDK thread polled in this process's main thread."""
    io_size, depth = setup.io_size, setup.depth
    thread_lib_init()
    thread = Thread("bench")
    set_thread(thread)
    B.bdev_initialize(lambda rc: None)
    B.AIO_MODULE.backend = backend
    bdev = B.create_aio_bdev(B.AioOpts(name="Aio0", filename=setup.path, block_size=io_size))
    blocks = bdev.num_blocks
    desc = B.open_bdev("Aio0", False, lambda event, b: None)
    ch = desc.get_io_channel()
    group = ch.ctx.module_ch.ctx.group_ch.ctx  # this thread's aio group channel
    read_blocks = desc.read_blocks
    randrange = random.Random(1).randrange
    state = {"done": 0, "errors": 0, "running": True}

    def done(io: B.BdevIo, success: bool, buf: memoryview) -> None:
        io.free()
        state["done"] += 1
        if not success:
            state["errors"] += 1
        if state["running"]:
            read_blocks(ch, buf, randrange(blocks), 1, done, buf)

    for _ in range(depth):
        buf = B.alloc_io_buffer(io_size, 1 << bdev.required_alignment)
        read_blocks(ch, buf, randrange(blocks), 1, done, buf)
    sleeper = select.epoll()
    sleeper.register(group.epoll.fileno(), select.EPOLLIN)
    poll = thread.poll
    clock = time.perf_counter
    stat_path = f"/proc/self/task/{threading.get_native_id()}/schedstat"
    wait0 = _schedstat_wait_ns(stat_path)
    wall0, cpu0 = clock(), cpu_seconds()
    deadline = wall0 + setup.seconds
    try:
        while True:
            if poll():
                if clock() >= deadline:
                    break
            elif not busy:
                sleeper.poll(0.1)
            elif clock() >= deadline:
                break
        wall, cpu = clock() - wall0, cpu_seconds() - cpu0
        waited = (_schedstat_wait_ns(stat_path) - wait0) / 1e9 / wall
        count = state["done"]
        state["running"] = False
        while ch.ctx.io_outstanding:
            if not poll():
                sleeper.poll(0.1)
    finally:
        sleeper.close()
        ch.put()
        desc.close()
        B.bdev_finish(lambda: None)
        for _ in range(100):
            poll()
        thread.exit()
        while not thread.is_exited():
            poll()
        thread.destroy()
        thread_lib_fini()
    mode = "busy" if busy else "sleeps"
    note = f"{state['errors']} errors" if state["errors"] else ""
    return Row(
        Result(f"aio bdev, bare loop ({backend}, {mode})", count / wall, cpu / wall, note), waited
    )


def run_bdevperf(setup: Setup, backend: str, core: int, busy: bool) -> Row:
    config = {
        "subsystems": [
            {
                "subsystem": "bdev",
                "config": [
                    {
                        "method": "bdev_aio_create",
                        "params": {
                            "name": "Aio0",
                            "filename": setup.path,
                            "block_size": setup.io_size,
                        },
                    },
                    {"method": "bdev_wait_for_examine"},
                ],
            }
        ]
    }
    spdkpy = Path(sys.executable).parent / "spdkpy"
    cmd = [str(spdkpy)] if spdkpy.exists() else [sys.executable, "-m", "spdkpy.apps.cli"]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as cfg:
        json.dump(config, cfg)
    name = f"spdkpy bdevperf ({backend}{', --busy-poll' if busy else ''})"
    try:
        before = os.times()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*cmd, "bdevperf", "-m", hex(1 << core), "-c", cfg.name, "-q", str(setup.depth),
             "-o", str(setup.io_size), "-w", "randread", "-t", f"{setup.seconds:g}",
             *(["--busy-poll"] if busy else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "SPDKPY_AIO_BACKEND": backend},
        )  # fmt: skip
        waited = _bdevperf_wait(proc.pid, setup.seconds)
        out, err = proc.communicate(timeout=setup.seconds + 60)
        wall = time.perf_counter() - start
        after = os.times()
    finally:
        os.unlink(cfg.name)
    m = TOTAL.search(out)
    if proc.returncode != 0 or m is None:
        return Row(Result(name, 0.0, 0.0, f"failed: {err.strip().splitlines()[-1:]}"), None)
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return Row(Result(name, float(m.group(1)), cpu / wall), waited)


def _bdevperf_wait(pid: int, seconds: float) -> float | None:
    """Run-queue wait of the child's reactor thread over the middle of its run."""
    time.sleep(min(1.5, seconds / 4))  # past start-up
    task = None
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            if Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip().startswith("reactor"):
                task = f"/proc/{pid}/task/{tid}/schedstat"
    except OSError:
        return None
    if task is None:
        return None
    span = seconds / 2
    w0, t0 = _schedstat_wait_ns(task), time.perf_counter()
    time.sleep(span)
    w1, t1 = _schedstat_wait_ns(task), time.perf_counter()
    return (w1 - w0) / 1e9 / (t1 - t0)


def fio_row(setup: Setup, ioengine: str, core: int | None = None) -> Row:
    name = f"fio {ioengine}" + (f" (core {core})" if core is not None else "")
    fio = shutil.which("fio")
    if fio is None:
        return Row(Result(name, 0.0, 0.0, "fio not installed (apt-get install fio)"), None)
    command = [
        fio, "--name=randread", f"--filename={setup.path}", "--rw=randread",
        f"--bs={setup.io_size}", f"--iodepth={setup.depth}", "--direct=1",
        f"--ioengine={ioengine}", f"--runtime={setup.seconds:g}", "--time_based",
        "--numjobs=1", "--output-format=json",
    ]  # fmt: skip
    if core is not None:
        command.append(f"--cpus_allowed={core}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=setup.seconds + 60)
    if done.returncode != 0:
        return Row(Result(name, 0.0, 0.0, done.stderr.strip().splitlines()[-1]), None)
    job = json.loads(done.stdout)["jobs"][0]
    cores = (job["usr_cpu"] + job["sys_cpu"]) / 100
    return Row(Result(name, job["read"]["iops"], cores), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-q", "--depth", type=int, default=32)
    parser.add_argument("-o", "--io-size", type=int, default=4096)
    parser.add_argument("-t", "--seconds", type=float, default=10.0)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default="/var/tmp", help="where to create the file")
    parser.add_argument("--file", help="read this existing file instead")
    parser.add_argument(
        "--backend",
        action="append",
        choices=("io_uring", "threads"),
        help="aio engine backend (repeatable; default: the first that works here)",
    )
    parser.add_argument("--busy", action="store_true", help="bare loop: never sleep")
    parser.add_argument(
        "--core",
        type=int,
        default=sorted(os.sched_getaffinity(0))[-1],
        help="bdevperf's core (-m), also given to the pinned fio row (default: the last one)",
    )
    parser.add_argument("--no-fio", action="store_true")
    parser.add_argument("--no-bdevperf", action="store_true")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    backends = args.backend or list(available_backends()[:1])
    rows: list[Any] = []
    if not args.no_fio:
        rows += [
            partial(fio_row, ioengine="io_uring"),
            partial(fio_row, ioengine="libaio"),
            partial(fio_row, ioengine="io_uring", core=args.core),
        ]
    for backend in backends:
        rows.append(partial(run_bare, backend=backend, busy=args.busy))
        if not args.no_bdevperf:
            for busy in (False, True):
                rows.append(partial(run_bdevperf, backend=backend, core=args.core, busy=busy))

    path = args.file or make_file(args.dir, args.size_mib)
    setup = Setup(path, args.depth, args.io_size, args.seconds)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[Row]] = {}
    try:
        for _ in range(args.rounds):
            for row in rows:
                r = row(setup)
                runs.setdefault(r.result.name, []).append(r)
    finally:
        if args.file is None:
            Path(path).unlink()

    print(
        f"{args.io_size} B random reads, O_DIRECT, QD {args.depth}, {args.seconds:g} s per row, "
        f"{args.rounds} round(s), {path}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    medians = {
        name: sorted(rs, key=lambda r: r.result.iops)[(len(rs) - 1) // 2]
        for name, rs in runs.items()
    }
    best_fio = max((r.result.iops for n, r in medians.items() if n.startswith("fio")), default=0.0)
    print(
        f"{'':44} {'IOPS':>10} {'cores':>6} {'waited':>7} {'vs best fio':>11}  "
        f"{'IOPS range' if args.rounds > 1 else ''}"
    )
    for name, row in medians.items():
        r = row.result
        if not r.iops:
            print(f"{name:44} {'-':>10} {'-':>6} {'-':>7} {'-':>11}  {r.note}")
            continue
        waited = f"{row.waited:7.0%}" if row.waited is not None else f"{'-':>7}"
        versus = f"{r.iops / best_fio:10.2f}x" if best_fio else f"{'-':>11}"
        iops = [x.result.iops for x in runs[name]]
        spread = f"{min(iops):,.0f}-{max(iops):,.0f}" if len(iops) > 1 else ""
        print(f"{name:44} {r.iops:10,.0f} {r.cores:6.2f} {waited} {versus}  {spread} {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
