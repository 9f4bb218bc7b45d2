"""The aio bdev module's I/O engine against fio: 4 KiB O_DIRECT random reads at one queue depth.

Every row reads the same file, one after the other: ``fio`` with its ``io_uring`` and ``libaio``
engines (skipped with a message if fio is not installed: ``apt-get install fio``), then
:class:`spdkpy.bdev._aio_engine.AioEngine` with each backend that works here. The engine is driven
the way a reactor drives it: one thread keeps ``-q`` reads in flight, calls ``poll()`` and, when
that finds nothing, sleeps in ``epoll`` on the engine's ``wake_fd`` (``--spin-us``: after yielding
that long, as an idle reactor does); each completion submits the next read at a random block.

``--candidates`` adds the ways of doing this from Python that the engine was chosen from, each as
a bare loop without the engine: ``uring-api`` (blocking in ``Ring.wait``), ``liburing`` (PyPI,
``CqeIter``; not a dependency, row skipped unless installed), and a pool of N threads doing
``os.preadv`` with results handed back on a deque and an eventfd (``--pool 8,16,32``).

CPU is ``utime + stime`` of the process (``getrusage``: every thread, the I/O workers and the
kernel's io_uring workers included) over the timed window, as cores used; fio's is its
``usr_cpu + sys_cpu``. Nothing is asserted.

    python bench/aio_engine_bench.py                    # 1 GiB file under /var/tmp, 10 s per row
    python bench/aio_engine_bench.py -t 5 --rounds 3 --candidates --dir /work/tmp
    python bench/aio_engine_bench.py --file /dev/nvme0n1 --backend io_uring   # existing file: kept

Without ``--file`` a file of random data is written (O_DIRECT, so the page cache is not filled)
and deleted at the end.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import random
import resource
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from spdkpy.bdev._aio_engine import AioBackend, AioEngine, alloc_aligned, available_backends


@dataclass(frozen=True)
class Result:
    name: str
    iops: float
    cores: float
    note: str = ""


@dataclass(frozen=True)
class Setup:
    path: str
    depth: int
    io_size: int
    seconds: float


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


class Window:
    """The timed window: IOPS and cores used between ``start()`` and ``stop(count)``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start_wall = self.start_cpu = self.deadline = 0.0

    def start(self) -> None:
        self.start_wall, self.start_cpu = time.perf_counter(), cpu_seconds()
        self.deadline = self.start_wall + self.seconds

    def result(self, name: str, count: int, note: str = "") -> Result:
        wall = time.perf_counter() - self.start_wall
        return Result(name, count / wall, (cpu_seconds() - self.start_cpu) / wall, note)


# --- the engine ---------------------------------------------------------------------------------


def run_engine(setup: Setup, backend: AioBackend, spin_s: float) -> Result:
    io_size, depth = setup.io_size, setup.depth
    state = {"done": 0, "errors": 0, "running": True}
    engine: AioEngine[int]

    def on_complete(slot: int, result: int) -> None:
        state["done"] += 1
        if result != io_size:
            state["errors"] += 1
        if state["running"]:
            engine.submit_read(randrange(blocks) * io_size, buffers[slot], slot)

    engine = AioEngine(setup.path, io_size, on_complete, depth=depth, backend=backend)
    blocks = engine.size() // io_size
    randrange = random.Random(1).randrange
    buffers = [alloc_aligned(io_size) for _ in range(depth)]
    sleeper = select.epoll()
    sleeper.register(engine.wake_fd, select.EPOLLIN)
    poll = engine.poll
    clock = time.perf_counter
    window = Window(setup.seconds)
    try:
        for slot in range(depth):
            engine.submit_read(randrange(blocks) * io_size, buffers[slot], slot)
        window.start()
        last_work = window.start_wall
        while True:
            if poll(128):
                last_work = now = clock()
                if now >= window.deadline:
                    break
            elif spin_s and clock() - last_work < spin_s:
                os.sched_yield()  # as an idle reactor does for idle_spin_us
            else:
                sleeper.poll(1.0)
        note = "" if engine.direct else "no O_DIRECT on this file system"
        if state["errors"]:
            note = f"{state['errors']} reads did not return {io_size} bytes"
        result = window.result(f"spdkpy AioEngine {engine.backend}", state["done"], note)
        state["running"] = False
        while engine.in_flight:
            if not poll(128):
                sleeper.poll(1.0)
    finally:
        sleeper.close()
        engine.close()
    return result


# --- fio ----------------------------------------------------------------------------------------


def run_fio(setup: Setup, ioengine: str) -> Result:
    fio = shutil.which("fio")
    if fio is None:
        return Result(f"fio {ioengine}", 0.0, 0.0, "fio not installed (apt-get install fio)")
    command = [
        fio,
        "--name=randread",
        f"--filename={setup.path}",
        "--rw=randread",
        f"--bs={setup.io_size}",
        f"--iodepth={setup.depth}",
        "--direct=1",
        f"--ioengine={ioengine}",
        f"--runtime={setup.seconds:g}",
        "--time_based",
        "--numjobs=1",
        "--output-format=json",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=setup.seconds + 60)
    if done.returncode != 0:
        return Result(f"fio {ioengine}", 0.0, 0.0, done.stderr.strip().splitlines()[-1])
    job = json.loads(done.stdout)["jobs"][0]
    cores = (job["usr_cpu"] + job["sys_cpu"]) / 100
    return Result(f"fio {ioengine}", job["read"]["iops"], cores)


# --- the candidates, as bare loops --------------------------------------------------------------


def _candidate_io(setup: Setup) -> tuple[int, int, list[memoryview], Callable[[], int]]:
    fd = os.open(setup.path, os.O_RDONLY | os.O_DIRECT)
    blocks = os.lseek(fd, 0, os.SEEK_END) // setup.io_size
    randrange = random.Random(1).randrange
    buffers = [alloc_aligned(setup.io_size) for _ in range(setup.depth)]
    return fd, blocks, buffers, lambda: randrange(blocks) * setup.io_size


def run_uring_api(setup: Setup) -> Result:
    try:
        import uring_api
    except ImportError:
        return Result("uring-api bare loop", 0, 0, "not installed (pip install 'spdkpy[io_uring]')")
    fd, _, buffers, offset = _candidate_io(setup)
    ring = uring_api.Ring(entries=setup.depth)
    window = Window(setup.seconds)
    count = 0
    try:
        for slot, buf in enumerate(buffers):
            ring.prepare_read(fd, buf, offset(), slot)
        window.start()
        while time.perf_counter() < window.deadline:
            for completion in ring.wait(None) or ():
                count += 1
                slot = completion.user_data
                ring.prepare_read(fd, buffers[slot], offset(), slot)
        result = window.result("uring-api bare loop", count)
        while ring.pending_count():
            ring.wait(1.0)
    finally:
        ring.close()
        os.close(fd)
    return result


def run_liburing(setup: Setup) -> Result:
    try:
        import liburing
    except ImportError:
        return Result("liburing bare loop", 0, 0, "not installed (pip install liburing)")
    fd, _, buffers, offset = _candidate_io(setup)
    ring, cqe = liburing.Ring(), liburing.Cqe()
    liburing.io_uring_queue_init(setup.depth, ring)
    iovecs = [liburing.Iovec([buf]) for buf in buffers]  # its read takes only a bytearray

    def prepare(slot: int) -> None:
        sqe = liburing.io_uring_get_sqe(ring)
        liburing.io_uring_prep_readv(sqe, fd, iovecs[slot], offset())
        liburing.io_uring_sqe_set_data64(sqe, slot)

    window = Window(setup.seconds)
    count = in_flight = 0
    result = Result("liburing bare loop", 0, 0, "stopped early")
    try:
        for slot in range(setup.depth):
            prepare(slot)
        in_flight = liburing.io_uring_submit(ring)
        window.start()
        running = True
        while in_flight:
            liburing.io_uring_wait_cqe(ring, cqe)
            seen = 0
            for _ in liburing.CqeIter(ring, cqe):
                seen += 1
                if running:
                    prepare(cqe[0].user_data)
            liburing.io_uring_cq_advance(ring, seen)
            count += seen
            in_flight -= seen
            if running and time.perf_counter() >= window.deadline:
                result = window.result("liburing bare loop", count)
                running = False
            if running:
                in_flight += liburing.io_uring_submit(ring)
    finally:
        liburing.io_uring_queue_exit(ring)
        os.close(fd)
    return result


def run_pool(setup: Setup, n_threads: int) -> Result:
    """Requests to ``n_threads`` workers on a queue; results back on a deque + eventfd, which the
    consumer sleeps on after announcing it (so busy periods cost workers no system call)."""
    fd, _, buffers, offset = _candidate_io(setup)
    requests: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
    results: collections.deque[tuple[int, int]] = collections.deque()
    wake = os.eventfd(0, os.EFD_CLOEXEC)
    lock = threading.Lock()
    sleeping = [False]

    def work() -> None:
        while (request := requests.get()) is not None:
            slot, at = request
            results.append((slot, os.preadv(fd, [buffers[slot]], at)))
            with lock:
                if sleeping[0]:
                    sleeping[0] = False
                    os.eventfd_write(wake, 1)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(n_threads)]
    for worker in workers:
        worker.start()
    name = f"pool of {n_threads} threads, preadv"
    window = Window(setup.seconds)
    count = 0
    try:
        for slot in range(setup.depth):
            requests.put((slot, offset()))
        window.start()
        while time.perf_counter() < window.deadline:
            if not results:
                with lock:
                    sleeping[0] = not results
                    asleep = sleeping[0]
                if asleep:
                    os.eventfd_read(wake)
                continue
            while results:
                slot, _ = results.popleft()
                count += 1
                requests.put((slot, offset()))
        result = window.result(name, count)
    finally:
        for _ in workers:
            requests.put(None)
        with lock:
            sleeping[0] = False
        for worker in workers:
            worker.join()
        os.close(wake)
        os.close(fd)
    return result


def unavailable(name: str, setup: Setup) -> Result:
    return Result(name, 0, 0, "unavailable here")


# --- main ---------------------------------------------------------------------------------------


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
    parser.add_argument("--candidates", action="store_true", help="add the bare-loop rows")
    parser.add_argument("--pool", default="8,16,32", help="thread counts of the pool rows")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every row this many times, interleaved, and report the median (other "
        "tenants of the machine move single runs by tens of percent)",
    )
    args = parser.parse_args()

    rows: list[Callable[[Setup], Result]] = []
    if not args.no_fio:
        rows += [partial(run_fio, ioengine="io_uring"), partial(run_fio, ioengine="libaio")]
    if args.candidates:
        rows += [run_uring_api, run_liburing]
        rows += [partial(run_pool, n_threads=int(n)) for n in args.pool.split(",")]
    for backend in args.backend or list(available_backends()):
        if backend in available_backends():
            rows.append(partial(run_engine, backend=backend, spin_s=args.spin_us / 1e6))
        else:
            rows.append(partial(unavailable, f"spdkpy AioEngine {backend}"))

    path = args.file or make_file(args.dir, args.size_mib)
    size_mib = os.stat(path).st_size >> 20 if args.file is None else None
    setup = Setup(path, args.depth, args.io_size, args.seconds)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[Result]] = {}
    try:
        for _ in range(args.rounds):
            for row in rows:
                r = row(setup)
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
        f"{'':32} {'IOPS':>10} {'cores':>6} {'IOPS/core':>10} {'vs best fio':>11}  "
        f"{'IOPS range' if args.rounds > 1 else ''}"
    )
    for name, r in medians.items():
        if not r.iops:
            print(f"{name:32} {'-':>10} {'-':>6} {'-':>10} {'-':>11}  {r.note}")
            continue
        per_core = f"{r.iops / r.cores:10,.0f}" if r.cores else f"{'-':>10}"
        versus = f"{r.iops / best_fio:10.2f}x" if best_fio else f"{'-':>11}"
        iops = [x.iops for x in runs[name]]
        spread = f"{min(iops):,.0f}-{max(iops):,.0f}" if len(iops) > 1 else ""
        print(f"{name:32} {r.iops:10,.0f} {r.cores:6.2f} {per_core} {versus}  {spread} {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
