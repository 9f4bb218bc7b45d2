"""The aio bdev module's I/O engine against fio: 4 KiB O_DIRECT random reads at one queue depth.

Every row reads the same file, one after the other: ``fio`` with its ``io_uring`` and ``libaio``
engines (skipped with a message if fio is not installed: ``apt-get install fio``), then
:class:`spdkpy.bdev._aio_engine.AioEngine` with each backend that works here. The engine is driven
the way a reactor drives it: one thread keeps ``-q`` reads in flight, calls ``poll()`` and, when
that finds nothing, sleeps in ``epoll`` on the engine's ``wake_fd``; each completion submits the
next read at a random block. CPU is ``utime + stime`` of the process (``getrusage``: every thread,
the I/O workers and the kernel's io_uring workers included) over the timed window, as cores used;
fio's is its ``usr_cpu + sys_cpu``. Nothing is asserted.

    python bench/aio_engine_bench.py                    # 1 GiB file under /var/tmp, 10 s per row
    python bench/aio_engine_bench.py -t 3 -q 32 -o 4096 --size-mib 1024 --dir /work/tmp
    python bench/aio_engine_bench.py --file /dev/nvme0n1 --backend io_uring   # existing file: kept

Without ``--file`` a file of random data is written (O_DIRECT, so the page cache is not filled)
and deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from spdkpy.bdev._aio_engine import AioBackend, AioEngine, alloc_aligned, available_backends


@dataclass(frozen=True)
class Result:
    name: str
    iops: float
    cores: float
    note: str = ""


def make_file(directory: str, size_mib: int) -> str:
    fd, path = tempfile.mkstemp(prefix="aio-bench-", suffix=".dat", dir=directory)
    os.close(fd)
    chunk = alloc_aligned(1 << 20)
    chunk[:] = os.urandom(1 << 20)
    try:
        out = os.open(path, os.O_WRONLY | os.O_DIRECT)
    except OSError:
        out = os.open(path, os.O_WRONLY)  # no O_DIRECT here (tmpfs): the reads will say so
    try:
        for i in range(size_mib):
            os.pwrite(out, chunk, i << 20)
        os.fsync(out)
    finally:
        os.close(out)
    return path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_engine(
    path: str, backend: AioBackend, depth: int, io_size: int, seconds: float, spin_s: float
) -> Result:
    state = {"done": 0, "errors": 0, "running": True}
    engine: AioEngine[int]

    def on_complete(slot: int, result: int) -> None:
        state["done"] += 1
        if result != io_size:
            state["errors"] += 1
        if state["running"]:
            engine.submit_read(randrange(blocks) * io_size, buffers[slot], slot)

    engine = AioEngine(path, io_size, on_complete, depth=depth, backend=backend)
    blocks = engine.size() // io_size
    randrange = random.Random(1).randrange
    buffers = [alloc_aligned(io_size) for _ in range(depth)]
    sleeper = select.epoll()
    sleeper.register(engine.wake_fd, select.EPOLLIN)
    poll = engine.poll
    try:
        for slot in range(depth):
            engine.submit_read(randrange(blocks) * io_size, buffers[slot], slot)
        start, cpu0 = time.perf_counter(), cpu_seconds()
        deadline = start + seconds
        clock = time.perf_counter
        last_work = start
        while True:
            if poll(128):
                last_work = now = clock()
                if now >= deadline:
                    break
            elif spin_s and clock() - last_work < spin_s:
                os.sched_yield()  # as an idle reactor does for idle_spin_us
            else:
                sleeper.poll(1.0)
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
        count = state["done"]
        state["running"] = False
        while engine.in_flight:
            if not poll(128):
                sleeper.poll(1.0)
    finally:
        sleeper.close()
        engine.close()
    note = "" if engine.direct else "no O_DIRECT on this file system"
    if state["errors"]:
        note = f"{state['errors']} reads did not return {io_size} bytes"
    return Result(f"spdkpy AioEngine {engine.backend}", count / wall, cpu / wall, note)


def run_fio(path: str, ioengine: str, depth: int, io_size: int, seconds: float) -> Result:
    fio = shutil.which("fio")
    if fio is None:
        return Result(f"fio {ioengine}", 0.0, 0.0, "fio not installed (apt-get install fio)")
    command = [
        fio,
        "--name=randread",
        f"--filename={path}",
        "--rw=randread",
        f"--bs={io_size}",
        f"--iodepth={depth}",
        "--direct=1",
        f"--ioengine={ioengine}",
        f"--runtime={seconds:g}",
        "--time_based",
        "--numjobs=1",
        "--output-format=json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        return Result(f"fio {ioengine}", 0.0, 0.0, done.stderr.strip().splitlines()[-1])
    job = json.loads(done.stdout)["jobs"][0]
    cores = (job["usr_cpu"] + job["sys_cpu"]) / 100
    return Result(f"fio {ioengine}", job["read"]["iops"], cores)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-q", "--depth", type=int, default=32)
    parser.add_argument("-o", "--io-size", type=int, default=4096)
    parser.add_argument("-t", "--seconds", type=float, default=10.0)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--dir", default="/var/tmp", help="where to create the file")
    parser.add_argument("--file", help="read this existing file or device instead")
    parser.add_argument(
        "--backend",
        action="append",
        choices=("io_uring", "threads"),
        help="engine backend to run (repeatable; default: every one that works here)",
    )
    parser.add_argument(
        "--spin-us",
        type=float,
        default=0.0,
        help="after the last completion, yield this long before sleeping on wake_fd "
        "(a reactor's idle_spin_us, 50 by default); 0: sleep at once",
    )
    parser.add_argument("--no-fio", action="store_true")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every row this many times, interleaved, and report the median (other "
        "tenants of the machine move single runs by tens of percent)",
    )
    args = parser.parse_args()

    backends = args.backend or list(available_backends())
    path = args.file or make_file(args.dir, args.size_mib)
    size_mib = os.stat(path).st_size >> 20 if args.file is None else None
    load_before = os.getloadavg()[0]
    runs: dict[str, list[Result]] = {}
    try:
        for _ in range(args.rounds):
            if not args.no_fio:
                for ioengine in ("io_uring", "libaio"):
                    r = run_fio(path, ioengine, args.depth, args.io_size, args.seconds)
                    runs.setdefault(r.name, []).append(r)
            for backend in backends:
                if backend not in available_backends():
                    r = Result(f"spdkpy AioEngine {backend}", 0, 0, "unavailable here")
                else:
                    spin_s = args.spin_us / 1e6
                    r = run_engine(path, backend, args.depth, args.io_size, args.seconds, spin_s)
                runs.setdefault(r.name, []).append(r)
    finally:
        if args.file is None:
            Path(path).unlink()

    where = f"{path}" + (f" ({size_mib} MiB, deleted)" if size_mib is not None else "")
    print(
        f"{args.io_size} B random reads, O_DIRECT, QD {args.depth}, {args.seconds:g} s per row, "
        f"{args.rounds} round(s), {where}, {os.cpu_count()} CPUs, "
        f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    medians = {
        name: sorted(rs, key=lambda r: r.iops)[(len(rs) - 1) // 2] for name, rs in runs.items()
    }
    best_fio = max((r.iops for n, r in medians.items() if n.startswith("fio")), default=0.0)
    print(
        f"{'':28} {'IOPS':>10} {'cores':>6} {'IOPS/core':>10} {'vs best fio':>11}  "
        f"{'IOPS range' if args.rounds > 1 else ''}"
    )
    for name, r in medians.items():
        if not r.iops:
            print(f"{name:28} {'-':>10} {'-':>6} {'-':>10} {'-':>11}  {r.note}")
            continue
        per_core = f"{r.iops / r.cores:10,.0f}" if r.cores else f"{'-':>10}"
        versus = f"{r.iops / best_fio:10.2f}x" if best_fio else f"{'-':>11}"
        iops = [x.iops for x in runs[name]]
        spread = f"{min(iops):,.0f}-{max(iops):,.0f}" if len(iops) > 1 else ""
        print(f"{name:28} {r.iops:10,.0f} {r.cores:6.2f} {per_core} {versus}  {spread} {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
