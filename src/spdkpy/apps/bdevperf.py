"""``spdkpy bdevperf``: SPDK's bdev benchmark (``examples/bdev/bdevperf``, SPEC-STORAGE A4.2).

One job per leaf (unclaimed) bdev, or per bdev per core with ``-C``, each on its own SPDK
thread pinned to a core (round-robin from the first core of ``-m``). A job opens its bdev for
writing on the app thread, takes an I/O channel on its own thread and keeps ``-q`` I/Os in
flight: every completion resubmits its task from the callback. After ``-t`` seconds each job
drains, puts its channel and reports to the app thread, which prints SPDK's result table
(plus spdkpy's p50/p99/p99.9 latency table) and stops the app.

Per-I/O path: tasks and buffers are made once per job; the submit and completion functions are
closures over the job's constants and counters (no attribute lookups, no allocation per I/O);
random offsets come from ``random.getrandbits``; latency is ``now - io.submit_tsc`` (the
reactor clock's ticks) tallied into a log-linear histogram (64 buckets per power of two, so a
percentile is within 1/64 of the truth) plus exact sum, min and max.

Deviations: ``verify`` adds each block's LBA to the first 8 bytes of SPDK's pattern (a
misdirected read is caught too) and poisons the read buffer before each read; on a ``null``
bdev, which discards writes, ``verify`` expects zeroes back. ``-k``/``-X`` (timeouts), ``-z``
(RPC mode), ``-j`` (job files), ``-F``, ``-D``, ``-U``, ``-Z`` and ``-N`` are not implemented;
``-H`` is accepted and ignored.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import re
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, final

from spdkpy._log import notice
from spdkpy.app import (
    App,
    AppArgumentParser,
    add_app_options,
    app_start_shutdown,
    opts_from_args,
)
from spdkpy.bdev import (
    NULL_MODULE,
    Bdev,
    BdevEvent,
    BdevIo,
    BdevIoWaitEntry,
    Descriptor,
    IoType,
    alloc_io_buffer,
    bdevs,
    get_bdev,
    open_bdev,
    queue_io_wait,
    register_bdev_subsystem,
)
from spdkpy.env import CpuSet
from spdkpy.errors import BdevError, InvalidStateError, SpdkpyError
from spdkpy.thread import POLLER_BUSY, IoChannel, Poller, Thread, get_thread

__all__ = [
    "WORKLOADS",
    "LatencyHistogram",
    "add_parser",
    "format_job_row",
    "format_total_row",
    "parse_capacity",
    "run",
]

log = logging.getLogger("spdkpy.bdevperf")

WORKLOADS: Final = (
    "read",
    "write",
    "randread",
    "randwrite",
    "rw",
    "randrw",
    "verify",
    "reset",
    "unmap",
    "flush",
    "write_zeroes",
)
PATTERN_TYPES: Final = "(" + ", ".join(WORKLOADS) + ")"
LARGE_BUF_MAX_SIZE: Final = 65536
"""``SPDK_BDEV_LARGE_BUF_MAX_SIZE``: above it SPDK's bdevperf turns zero copy off."""
RESET_PERIOD_US: Final = 10_000_000
"""The ``reset`` workload resets the bdev this often (SPDK: every 10 s)."""
LATENCY_CUTOFFS: Final = (
    0.01,
    0.10,
    0.25,
    0.50,
    0.75,
    0.90,
    0.95,
    0.98,
    0.99,
    0.995,
    0.999,
    0.9999,
    0.99999,
    0.999999,
    0.9999999,
)
PERCENTILES: Final = (0.50, 0.99, 0.999)
RULE: Final = "\r " + "=" * 115
US_PER_S: Final = 1_000_000
_POISON: Final = 0xA5

_READ: Final = int(IoType.READ)
_WRITE: Final = int(IoType.WRITE)
_UNMAP: Final = int(IoType.UNMAP)
_FLUSH: Final = int(IoType.FLUSH)
_WRITE_ZEROES: Final = int(IoType.WRITE_ZEROES)


# ----------------------------------------------------------------------------- pure helpers


_CAPACITY = re.compile(r"(\d+)(?:([kmg])(?:i?b)?)?", re.IGNORECASE)
_SHIFTS: Final = {"k": 10, "m": 20, "g": 30}


def parse_capacity(text: str) -> int:
    """Bytes from ``4096``, ``4k``, ``4KiB``, ``1M``, ``2g`` (``spdk_parse_capacity``: binary
    prefixes). Raises :class:`ValueError` for anything else."""
    m = _CAPACITY.fullmatch(text.strip())
    if m is None:
        raise ValueError(text)
    value = int(m.group(1))
    prefix = m.group(2)
    if prefix:
        value <<= _SHIFTS[prefix.lower()]
    return value


@final
class LatencyHistogram:
    """Log-linear latency buckets (like ``spdk_histogram_data``): values below 128 ticks have a
    bucket each; above, every power of two is split into 64 buckets. Bucket ``i`` of range
    ``s = i >> 7`` (``s >= 1``) holds ``[m << s, (m + 1) << s)`` with ``m = i & 127``.

    The hot path tallies inline (see ``_Job``); :meth:`tally` is the same arithmetic.
    """

    __slots__ = ("counts",)

    SIZE: Final = 64 << 7

    def __init__(self) -> None:
        self.counts = [0] * self.SIZE

    def tally(self, ticks: int) -> None:
        bits = ticks.bit_length()
        if bits > 7:
            shift = bits - 7
            self.counts[(shift << 7) | (ticks >> shift)] += 1
        else:
            self.counts[ticks] += 1

    @staticmethod
    def bounds(index: int) -> tuple[int, int]:
        """``[start, end)`` in ticks of bucket ``index``."""
        shift = index >> 7
        m = index & 127
        if shift == 0:
            return m, m + 1
        return m << shift, (m + 1) << shift

    def total(self) -> int:
        return sum(self.counts)

    def merge(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]

    def buckets(self) -> list[tuple[int, int, int]]:
        """Non-empty buckets in ascending order: ``(start, end, count)``."""
        return [(*self.bounds(i), c) for i, c in enumerate(self.counts) if c]

    def percentile(self, fraction: float) -> int:
        """The upper bound (ticks) of the bucket where the cumulative share reaches
        ``fraction`` (as SPDK's ``-l`` cutoffs); 0 when empty."""
        total = self.total()
        if not total:
            return 0
        so_far = 0
        last_end = 0
        for _, end, count in self.buckets():
            so_far += count
            last_end = end
            if so_far / total >= fraction:
                return end
        return last_end


@dataclass
class JobStats:
    """One job's results (``struct bdevperf_stats`` inputs), in ticks and counts."""

    completed: int = 0
    failed: int = 0
    timeout: int = 0
    total_ticks: int = 0
    min_ticks: int = 0
    max_ticks: int = 0
    run_time_us: int = 0


@dataclass
class RowFigures:
    """What one table row prints."""

    runtime_s: float
    iops: float
    mibps: float
    fail_s: float
    timeout_s: float
    avg_us: float
    min_us: float
    max_us: float


def job_figures(stats: JobStats, time_us: int, io_size: int, hz: int) -> RowFigures:
    """A job's row from its counters over ``time_us`` (SPDK's ``bdevperf_job_get_stats``,
    cumulative average)."""
    t = max(time_us, 1)
    iops = stats.completed * US_PER_S / t
    ios = stats.completed + stats.failed
    avg = stats.total_ticks / ios * US_PER_S / hz if ios else 0.0
    return RowFigures(
        runtime_s=time_us / US_PER_S,
        iops=iops,
        mibps=iops * io_size / (1024 * 1024),
        fail_s=stats.failed * US_PER_S / t,
        timeout_s=stats.timeout * US_PER_S / t,
        avg_us=avg,
        min_us=stats.min_ticks * US_PER_S / hz,
        max_us=stats.max_ticks * US_PER_S / hz,
    )


def format_header() -> list[str]:
    return [
        f"{'Latency(us)':>107}",
        "\r {:<28}: {:>10} {:>10} {:>10} {:>10} {:>8} {:>10} {:>10} {:>10}".format(
            "Device Information",
            "runtime(s)",
            "IOPS",
            "MiB/s",
            "Fail/s",
            "TO/s",
            "Average",
            "min",
            "max",
        ),
    ]


def format_job_row(name: str, f: RowFigures) -> str:
    """``\\t %-20s: %10.2f ...`` (SPDK's ``performance_dump_job_stdout`` figures line)."""
    return (
        f"\t {name:<20}: {f.runtime_s:10.2f} {f.iops:10.2f} {f.mibps:10.2f} "
        f"{f.fail_s:10.2f} {f.timeout_s:8.2f} {f.avg_us:10.2f} {f.min_us:10.2f} {f.max_us:10.2f}"
    )


def format_total_row(f: RowFigures) -> str:
    """The ``Total`` line (empty runtime column)."""
    return (
        f"\r {'Total':<28}: {'':>10} {f.iops:10.2f} {f.mibps:10.2f} "
        f"{f.fail_s:10.2f} {f.timeout_s:8.2f} {f.avg_us:10.2f} {f.min_us:10.2f} {f.max_us:10.2f}"
    )


def total_figures(rows: Sequence[tuple[RowFigures, JobStats]], hz: int) -> RowFigures:
    """SPDK's aggregate: rates summed, average over every I/O, min of mins, max of maxes."""
    ios = sum(s.completed + s.failed for _, s in rows)
    ticks = sum(s.total_ticks for _, s in rows)
    mins = [f.min_us for f, s in rows if s.completed + s.failed]
    return RowFigures(
        runtime_s=0.0,
        iops=sum(f.iops for f, _ in rows),
        mibps=sum(f.mibps for f, _ in rows),
        fail_s=sum(f.fail_s for f, _ in rows),
        timeout_s=sum(f.timeout_s for f, _ in rows),
        avg_us=ticks / ios * US_PER_S / hz if ios else 0.0,
        min_us=min(mins) if mins else 0.0,
        max_us=max((f.max_us for f, _ in rows), default=0.0),
    )


def verify_pattern(num_blocks: int, block_size: int) -> bytearray:
    """SPDK's verify data: each 4-byte word of a block is the block's index within the I/O
    plus the word's byte offset inside the block (native order, as SPDK writes it)."""
    words = block_size // 4
    out = bytearray()
    for block in range(num_blocks):
        out += struct.pack(f"={words}I", *(block + 4 * i for i in range(words)))
    out += bytes(block_size * num_blocks - len(out))
    return out


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class PerfOptions:
    """The bdevperf part of the command line, validated."""

    queue_depth: int
    io_size: int
    workload: str
    time_s: int
    rw_percentage: int
    multithread: bool
    bdev_name: str | None
    show_period_s: int
    ema_period: int
    continue_on_failure: bool
    latency_level: int
    thread_per_core: bool


def _positive(name: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {name} {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {value}")
        if value >= 2**31 - 1:
            raise argparse.ArgumentTypeError(f"{name} too large: {value}")
        return value

    return parse


def _io_size(text: str) -> int:
    try:
        value = parse_capacity(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"Invalid IO size: {text}") from None
    if value <= 0 or value >= 2**31:
        raise argparse.ArgumentTypeError(f"Invalid IO size: {text} (must be 1 B .. 2 GiB - 1)")
    return value


def _workload(text: str) -> str:
    if text not in WORKLOADS:
        raise argparse.ArgumentTypeError(f"rw must be one of {PATTERN_TYPES}, got {text!r}")
    return text


def _percentage(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid -M {text!r}") from None


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser: AppArgumentParser = commands.add_parser(
        "bdevperf",
        help="SPDK's bdev benchmark: keep -q I/Os in flight on each bdev for -t seconds",
        description=(
            "Run a workload on every leaf bdev of the -c config (or -T NAME) and print SPDK's "
            "result table, plus p50/p99/p99.9 latencies."
        ),
    )
    add_app_options(parser, with_rpc=False)
    g = parser.add_argument_group("bdevperf options")
    g.add_argument(
        "-q",
        dest="queue_depth",
        type=_positive("queue depth"),
        metavar="DEPTH",
        required=True,
        help="I/Os in flight per job",
    )
    g.add_argument(
        "-o",
        dest="io_size",
        type=_io_size,
        metavar="SIZE",
        required=True,
        help="I/O size in bytes; k/M/G suffixes (binary) allowed",
    )
    g.add_argument(
        "-w",
        dest="workload",
        type=_workload,
        metavar="TYPE",
        required=True,
        help=f"I/O pattern, one of {PATTERN_TYPES}",
    )
    g.add_argument(
        "-t",
        dest="time_s",
        type=_positive("time"),
        metavar="SEC",
        required=True,
        help="run time in seconds",
    )
    g.add_argument(
        "-M",
        dest="rw_percentage",
        type=_percentage,
        metavar="PCT",
        help="read share for rw/randrw, 0..100",
    )
    g.add_argument(
        "-C",
        dest="multithread",
        action="store_true",
        help="one job per core per bdev, the LBA range split between them",
    )
    g.add_argument(
        "-T",
        dest="bdev_name",
        metavar="NAME",
        help="run on this bdev only (default: every leaf bdev)",
    )
    g.add_argument(
        "-S",
        dest="show_period_s",
        type=_positive("period"),
        metavar="SEC",
        help="print the full table every SEC s instead of a one-line summary",
    )
    g.add_argument(
        "-P",
        dest="ema_period",
        type=_positive("EMA period"),
        metavar="N",
        help="with -S: show an exponential moving average of N periods",
    )
    g.add_argument(
        "-f", dest="continue_on_failure", action="store_true", help="keep going after a failed I/O"
    )
    g.add_argument(
        "-l",
        dest="latency_level",
        action="count",
        default=0,
        help="latency summary (-l) or histogram (-ll)",
    )
    g.add_argument(
        "-E",
        dest="thread_per_core",
        action="store_true",
        help="jobs on one core share one SPDK thread",
    )
    g.add_argument("-H", dest="nohuge", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def perf_options(args: argparse.Namespace) -> PerfOptions:
    """Validate what argparse cannot (SPDK's ``verify_test_params``); raises
    :class:`~spdkpy.errors.SpdkpyError` with one line."""
    workload: str = args.workload
    pct: int | None = args.rw_percentage
    if workload in ("rw", "randrw"):
        if pct is None or not 0 <= pct <= 100:
            raise SpdkpyError("-M must be specified to value from 0 to 100 for rw or randrw.")
    elif pct is not None:
        sys.stderr.write(
            "Ignoring -M option... Please use -M option only when using rw or randrw.\n"
        )
    if args.ema_period and not args.show_period_s:
        raise SpdkpyError("-P option must be specified with -S option")
    return PerfOptions(
        queue_depth=args.queue_depth,
        io_size=args.io_size,
        workload=workload,
        time_s=args.time_s,
        rw_percentage=pct if pct is not None else 0,
        multithread=args.multithread,
        bdev_name=args.bdev_name,
        show_period_s=args.show_period_s or 0,
        ema_period=args.ema_period or 0,
        continue_on_failure=args.continue_on_failure,
        latency_level=args.latency_level,
        thread_per_core=args.thread_per_core,
    )


def run(args: argparse.Namespace) -> int:
    opts = perf_options(args)
    app = App(opts_from_args("bdevperf", args))
    register_bdev_subsystem(app)
    return BdevPerf(app, opts).run()


def _out(text: str, end: str = "\n") -> None:
    try:
        sys.stdout.write(text + end)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``bdevperf ... | head``). The app ignores SIGPIPE, as SPDK's does,
        # so end the run as SIGINT would; later output goes nowhere.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        with contextlib.suppress(InvalidStateError):  # no app running: nothing to stop
            app_start_shutdown()


def _exit_current_thread() -> None:
    thread = get_thread()
    if thread is not None:
        thread.exit()


# ----------------------------------------------------------------------------- the job


@final
class _Task:
    """One I/O slot of a job (``struct bdevperf_task``); made once, reused.

    Buffers are memoryviews from ``alloc_io_buffer`` (a module copies into a memoryview much
    faster than into a bytearray); verify compares them through :func:`_same`.
    """

    __slots__ = ("buf", "kind", "offset_blocks", "start_tsc", "vbuf", "wait")

    def __init__(self, buf: memoryview, vbuf: memoryview | None) -> None:
        self.buf = buf
        self.vbuf = vbuf
        self.offset_blocks = 0
        self.kind = 0
        self.start_tsc = 0
        self.wait: BdevIoWaitEntry | None = None


@final
class _Job:
    """One bdevperf job: one bdev (or LBA range of it) driven from one SPDK thread."""

    def __init__(
        self,
        perf: BdevPerf,
        bdev: Bdev,
        desc: Descriptor,
        thread: Thread,
        core_mask: str,
        offset_blocks: int,
        length_blocks: int,
    ) -> None:
        o = perf.opts
        self.perf = perf
        self.name = bdev.name
        self.bdev = bdev
        self.desc: Descriptor | None = desc
        self.thread = thread
        self.core_mask = core_mask
        self.workload = o.workload
        self.io_size = o.io_size
        self.queue_depth = o.queue_depth
        self.continue_on_failure = o.continue_on_failure
        w = o.workload
        self.is_random = w in ("randread", "randwrite", "randrw")
        self.reset = w == "reset"
        self.verify = w in ("verify", "reset")
        self.rw_percentage = {"read": 100, "randread": 100, "write": 0, "randwrite": 0}.get(
            w, o.rw_percentage
        )
        if self.verify or w in ("unmap", "flush", "write_zeroes"):
            self.rw_percentage = 0
        self.kind = {"unmap": _UNMAP, "flush": _FLUSH, "write_zeroes": _WRITE_ZEROES}.get(w, 0)
        self.block_size = bdev.block_size
        # Metadata interleaved in a block is not data: sizes count data bytes (as SPDK).
        self.data_block_size = bdev.block_size - (bdev.md_len if bdev.md_interleave else 0)
        self.io_size_blocks = o.io_size // self.data_block_size
        self.buf_size = self.io_size_blocks * bdev.block_size
        per_io = max(self.io_size_blocks, 1)  # 0 (an I/O below one block) fails check()
        if length_blocks:
            self.size_in_ios = length_blocks // per_io
            self.ios_base = offset_blocks // per_io
        else:
            self.size_in_ios = bdev.num_blocks // per_io
            self.ios_base = 0
        # A null bdev discards writes: what reads must return is zeroes.
        self.expect_zeroes = bdev.module is NULL_MODULE
        self.ch: IoChannel[Any] | None = None
        self.hist = LatencyHistogram()
        self.stats = JobStats()
        self.run_time_us = 0
        self.mismatches = 0
        self.ema_iops = 0.0
        self.prev_completed = 0
        self.started = False  # app thread: start sent
        self.ended = False  # app thread: job_ended received
        # Job thread only: set by start(); before it, a drain request is remembered.
        self.running = False
        self.drain_pending = False
        self.drain: Callable[[], None] = _nothing
        self.snapshot: Callable[[], JobStats] = lambda: self.stats

    def check(self) -> str | None:
        """Why this job cannot run (SPDK's checks in ``bdevperf_construct_job``), or None."""
        if self.io_size % self.data_block_size:
            return (
                f"IO size ({self.io_size}) is not multiples of data block size of bdev "
                f"{self.name} ({self.data_block_size})"
            )
        if self.size_in_ios == 0:
            return f"bdev {self.name} has no room for one {self.io_size}-byte I/O"
        if self.workload == "unmap" and not self.bdev.io_type_supported(IoType.UNMAP):
            return f"Skipping {self.name} because it does not support unmap"
        return None

    # -- on the job thread ---------------------------------------------------------------

    def construct(self) -> None:
        """Take this thread's channel (``_bdevperf_construct_job``)."""
        assert self.desc is not None
        rc = 0
        try:
            self.ch = self.desc.get_io_channel()
        except SpdkpyError as exc:
            log.error("Could not get io_channel for device %s (%s)", self.name, exc)
            rc = -1
        self.perf.app_thread.send_msg(self.perf.job_constructed, rc)

    def request_drain(self) -> None:
        """Stop submitting and end once in-flight I/O is back (hot remove, shutdown, another
        job's failure)."""
        if self.running:
            self.drain()
        else:
            self.drain_pending = True

    def release(self) -> None:
        """A job that never started: put its channel, then let the app thread close."""
        if self.ch is not None:
            self.ch.put()
            self.ch = None
        self.perf.app_thread.send_msg(self.perf.job_released, self)

    def start(self, start_tsc: int, hz: int) -> None:
        """Build the per-I/O closures and submit the first ``queue_depth`` I/Os
        (``bdevperf_job_run``)."""
        thread = get_thread()
        assert thread is not None
        assert self.desc is not None
        assert self.ch is not None
        perf = self.perf
        desc = self.desc
        ch = self.ch
        bdev = self.bdev
        name = self.name
        now = thread.library.clock.now
        nblocks = self.io_size_blocks
        block_size = self.block_size
        size = self.size_in_ios
        base = self.ios_base
        buf_size = self.buf_size
        pct = self.rw_percentage
        fixed_kind = self.kind
        is_random = self.is_random
        verify = self.verify
        resetting = self.reset
        keep_going = self.continue_on_failure or resetting
        expect_zeroes = self.expect_zeroes
        counts = self.hist.counts
        getrandbits = random.Random(int.from_bytes(os.urandom(8), "little")).getrandbits
        read_blocks = desc.read_blocks
        write_blocks = desc.write_blocks
        zero_view = memoryview(bytearray(buf_size))
        poison = bytes([_POISON]) * buf_size
        outstanding = bytearray(size) if verify else bytearray()
        lba_header = struct.Struct("<Q")
        depth = self.queue_depth
        if verify and depth > size:
            log.warning(
                "Due to constraints of verify job, queue depth (-q, %d) can't exceed the number "
                "of IO requests which can be submitted to the bdev %s simultaneously (%d). "
                "Queue depth is limited to %d",
                depth,
                name,
                size,
                size,
            )
            depth = size
        align = 1 << bdev.required_alignment
        pattern = verify_pattern(nblocks, block_size) if verify else b""
        tasks: list[_Task] = []
        for _ in range(depth + (1 if resetting else 0)):
            buf = alloc_io_buffer(buf_size, align)
            if verify:
                buf[:] = pattern
            tasks.append(_Task(buf, alloc_io_buffer(buf_size, align) if verify else None))
        reset_task = tasks.pop() if resetting else None

        completed = 0
        failed = 0
        qd = 0
        total = 0
        lo = 1 << 63
        hi = 0
        draining = False
        emptied = False
        offset_in_ios = 0
        reset_inflight = False
        run_timer: Poller | None = None
        reset_timer: Poller | None = None

        failure_reported = False

        def snapshot() -> JobStats:
            return JobStats(
                completed, failed, 0, total, lo if lo != 1 << 63 else 0, hi, self.run_time_us
            )

        def job_empty() -> None:
            nonlocal emptied
            if emptied:
                return
            emptied = True
            self.running = False
            self.run_time_us = (now() - start_tsc) * US_PER_S // hz
            self.stats = snapshot()
            self.ch = None
            ch.put()
            perf.app_thread.send_msg(perf.job_ended, self)

        def drain() -> None:
            nonlocal draining, run_timer, reset_timer
            if run_timer is not None:
                run_timer.unregister()
                run_timer = None
            if reset_timer is not None:
                reset_timer.unregister()
                reset_timer = None
            draining = True

        def drain_and_check() -> None:
            drain()
            if qd == 0 and not reset_inflight:
                job_empty()

        def end_task(task: _Task) -> None:
            """``task`` is done and will not be resubmitted (``bdevperf_end_task``)."""
            if draining and qd == 0 and not reset_inflight:
                job_empty()

        def fail(task: _Task) -> None:
            nonlocal failed, failure_reported
            failed += 1
            if not keep_going:
                drain()
                if not failure_reported:
                    failure_reported = True
                    _out(f"task offset: {task.offset_blocks} on job bdev={name} fails")
                    perf.fail_run(stop_all=True)

        def release_slot(task: _Task) -> None:
            if verify:
                outstanding[task.offset_blocks // nblocks - base] = 0

        def submit_error(task: _Task, exc: BdevError) -> None:
            _out(f"Failed to submit bdev_io: {-exc.errno}")
            release_slot(task)
            drain()
            perf.fail_run()
            end_task(task)

        def wait_for_io(task: _Task, retry: Callable[[_Task], None]) -> None:
            entry = task.wait
            if entry is None:
                entry = task.wait = BdevIoWaitEntry(bdev, retry, task)
            entry.cb = retry
            queue_io_wait(bdev, ch, entry)

        # ---- completion (the hot path for every workload but verify)

        def on_done(io: BdevIo, success: bool, task: _Task) -> None:
            nonlocal qd, completed, total, lo, hi
            d = now() - io.submit_tsc
            io.free()
            qd -= 1
            if success:
                completed += 1
            else:
                fail(task)
            total += d
            if d > hi:
                hi = d
            if d < lo:
                lo = d
            bits = d.bit_length()
            if bits > 7:
                bits -= 7
                counts[(bits << 7) | (d >> bits)] += 1
            else:
                counts[d] += 1
            if draining:
                end_task(task)
                return
            submit_single(task)

        # ---- submission

        def submit_task(task: _Task) -> None:
            """Submit ``task`` as prepared (``bdevperf_submit_task``); also the io_wait retry."""
            nonlocal qd
            kind = task.kind
            try:
                if kind == _READ:
                    rc = read_blocks(ch, task.buf, task.offset_blocks, nblocks, on_done, task)
                elif kind == _WRITE:
                    cb = on_verify_written if verify else on_done
                    rc = write_blocks(ch, task.buf, task.offset_blocks, nblocks, cb, task)
                elif kind == _UNMAP:
                    rc = desc.unmap_blocks(ch, task.offset_blocks, nblocks, on_done, task)
                elif kind == _FLUSH:
                    rc = desc.flush_blocks(ch, task.offset_blocks, nblocks, on_done, task)
                else:
                    rc = desc.write_zeroes_blocks(ch, task.offset_blocks, nblocks, on_done, task)
            except BdevError as exc:
                submit_error(task, exc)
                return
            if rc:
                wait_for_io(task, submit_task)
                return
            qd += 1

        def next_sequential() -> int:
            nonlocal offset_in_ios
            slot = offset_in_ios
            offset_in_ios += 1
            if offset_in_ios == size:
                offset_in_ios = 0
            return slot

        def submit_mixed(task: _Task) -> None:
            """Any workload but pure reads/writes and verify (``bdevperf_submit_single``)."""
            slot = getrandbits(64) % size if is_random else next_sequential()
            task.offset_blocks = (slot + base) * nblocks
            if fixed_kind:
                task.kind = fixed_kind
            elif pct == 100 or (pct and getrandbits(32) % 100 < pct):
                task.kind = _READ
            else:
                task.kind = _WRITE
            submit_task(task)

        def submit_random_read(task: _Task) -> None:
            nonlocal qd
            offset = (getrandbits(64) % size + base) * nblocks
            task.offset_blocks = offset
            try:
                rc = read_blocks(ch, task.buf, offset, nblocks, on_done, task)
            except BdevError as exc:
                submit_error(task, exc)
                return
            if rc:
                task.kind = _READ
                wait_for_io(task, submit_task)
                return
            qd += 1

        def submit_random_write(task: _Task) -> None:
            nonlocal qd
            offset = (getrandbits(64) % size + base) * nblocks
            task.offset_blocks = offset
            try:
                rc = write_blocks(ch, task.buf, offset, nblocks, on_done, task)
            except BdevError as exc:
                submit_error(task, exc)
                return
            if rc:
                task.kind = _WRITE
                wait_for_io(task, submit_task)
                return
            qd += 1

        # ---- verify: write the pattern, read it back, compare every byte

        def submit_verify(task: _Task) -> None:
            slot = next_sequential()
            while outstanding[slot]:
                slot = next_sequential()
            outstanding[slot] = 1
            offset = (slot + base) * nblocks
            task.offset_blocks = offset
            task.kind = _WRITE
            buf = task.buf
            for i in range(nblocks):
                lba_header.pack_into(buf, i * block_size, offset + i)
            task.start_tsc = now()
            submit_task(task)

        def on_verify_written(io: BdevIo, success: bool, task: _Task) -> None:
            if not success:
                verify_done(io, False, task)
                return
            io.free()
            submit_verify_read(task)

        def submit_verify_read(task: _Task) -> None:
            nonlocal qd
            vbuf = task.vbuf
            assert vbuf is not None
            vbuf[:] = poison  # a read that leaves the buffer alone cannot pass
            try:
                rc = read_blocks(ch, vbuf, task.offset_blocks, nblocks, verify_done, task)
            except BdevError as exc:
                _out(f"Failed to submit read: {-exc.errno}")
                qd -= 1
                release_slot(task)
                drain()
                perf.fail_run()
                end_task(task)
                return
            if rc:
                wait_for_io(task, submit_verify_read)

        def verify_done(io: BdevIo, success: bool, task: _Task) -> None:
            nonlocal qd, completed, total, lo, hi
            d = now() - task.start_tsc
            io.free()
            if success:
                vbuf = task.vbuf
                assert vbuf is not None
                expected = zero_view if expect_zeroes else task.buf
                if not _same(vbuf, expected):
                    report_mismatch(task, expected)
                    drain()
                    perf.fail_run()
            qd -= 1
            if success:
                completed += 1
            else:
                fail(task)
            release_slot(task)
            total += d
            hi = max(hi, d)
            lo = min(lo, d)
            bits = d.bit_length()
            if bits > 7:
                bits -= 7
                counts[(bits << 7) | (d >> bits)] += 1
            else:
                counts[d] += 1
            if draining:
                end_task(task)
                return
            submit_verify(task)

        def report_mismatch(task: _Task, expected: memoryview) -> None:
            got = task.vbuf
            assert got is not None
            at = next(i for i in range(buf_size) if got[i] != expected[i])
            self.mismatches += 1
            _out(
                f"Buffer mismatch! Target: {name} Disk Offset: {task.offset_blocks} "
                f"(first difference in block {task.offset_blocks + at // block_size}, byte "
                f"{at % block_size}: expected 0x{expected[at]:02x}, read 0x{got[at]:02x})"
            )

        # ---- reset every RESET_PERIOD_US (the reset workload)

        def reset_job() -> int:
            nonlocal reset_timer, reset_inflight
            if reset_timer is not None:
                reset_timer.unregister()
                reset_timer = None
            assert reset_task is not None
            rc: int
            try:
                rc = int(desc.reset(ch, reset_done, reset_task))
            except BdevError as exc:
                rc = -exc.errno
            if rc:
                _out(f"Reset failed: {rc}")
                drain()
                perf.fail_run()
            else:
                reset_inflight = True
            return POLLER_BUSY

        def reset_done(io: BdevIo, success: bool, task: _Task) -> None:
            nonlocal reset_inflight, reset_timer
            reset_inflight = False
            io.free()
            if not success:
                _out(f"Reset blockdev={name} failed")
                drain()
                perf.fail_run()
            else:
                log.debug("Reset of bdev %s done", name)
            if draining:
                if qd == 0:
                    job_empty()
                return
            reset_timer = thread.register_poller(
                reset_job, period_us=RESET_PERIOD_US, name="bdevperf_reset"
            )

        def drain_timer() -> int:
            drain_and_check()
            return POLLER_BUSY

        if verify:
            submit_single = submit_verify
        elif fixed_kind == 0 and is_random and pct == 100:
            submit_single = submit_random_read
        elif fixed_kind == 0 and is_random and pct == 0:
            submit_single = submit_random_write
        else:
            submit_single = submit_mixed

        self.drain = drain_and_check
        self.snapshot = snapshot
        self.running = True
        if self.drain_pending:
            drain()
        run_timer = thread.register_poller(
            drain_timer, period_us=perf.opts.time_s * US_PER_S, name="bdevperf_run_timer"
        )
        if resetting:
            reset_timer = thread.register_poller(
                reset_job, period_us=RESET_PERIOD_US, name="bdevperf_reset"
            )
        for task in tasks:
            if draining:
                end_task(task)
            else:
                submit_single(task)


def _nothing() -> None:
    return None


def _same(a: memoryview, b: memoryview) -> bool:
    """Byte equality of two I/O buffers at memcmp speed (``memoryview ==`` compares item by
    item, ~40x slower)."""
    x, y = a.obj, b.obj
    if isinstance(x, bytearray) and isinstance(y, bytearray) and len(x) == len(y) == len(a):
        return x == y
    return a.tobytes() == b.tobytes()


# ----------------------------------------------------------------------------- the run


@dataclass(frozen=True)
class _JobConfig:
    bdev: Bdev
    lcore: int
    offset: int = 0
    length: int = 0


@final
class BdevPerf:
    """One bdevperf run on the app thread: construct jobs, run them, print, stop."""

    def __init__(self, app: App, opts: PerfOptions) -> None:
        self.app = app
        self.opts = opts
        self.jobs: list[_Job] = []
        self.lcore_threads: dict[int, Thread] = {}
        self.rc = 0
        self.error_to_exit = False
        self.shutdown = False
        self.constructing = 0
        self.running = 0
        self.start_tsc = 0
        self.hz = 1
        self.perf_timer: Poller | None = None
        self.period_num = 0
        self.dump_active = False
        self.done = False
        self.releasing = 0
        self._app_thread: Thread | None = None

    @property
    def app_thread(self) -> Thread:
        assert self._app_thread is not None
        return self._app_thread

    def run(self) -> int:
        return self.app.start(self._start, self._on_shutdown)

    def fail_run(self, rc: int = -1, *, stop_all: bool = False) -> None:
        """Any thread: the run fails with ``rc`` (SPDK's ``g_run_rc``; the first code wins);
        ``stop_all`` drains every job (SPDK's ``g_error_to_exit``, set by a failed I/O)."""
        if get_thread() is self._app_thread:
            self._failed(rc, stop_all)
        else:
            self.app_thread.send_msg(self._failed, rc, stop_all)

    def _failed(self, rc: int, stop_all: bool) -> None:
        if not self.rc:
            self.rc = rc
        if stop_all and not self.error_to_exit:
            self.error_to_exit = True
            for job in self.jobs:
                if job.started and not job.ended:
                    job.thread.send_msg(job.request_drain)

    # -- construction (app thread) --------------------------------------------------------

    def _start(self) -> None:
        thread = get_thread()
        assert thread is not None
        self._app_thread = thread
        framework = self.app.framework
        assert framework is not None
        self.hz = framework.clock.ticks_per_second
        cores = list(framework.cores)
        configs = self._job_configs(cores)
        if configs is None:
            self._test_done()
            return
        if not configs:
            sys.stderr.write("No jobs defined or bdevs created\n")
            self.fail_run()
            self._test_done()
            return
        if self.opts.thread_per_core:
            for core in cores:
                self.lcore_threads[core] = Thread(f"lcore_{core}", CpuSet([core]))
        self.constructing = 1  # never 0 until every job is sent off
        for config in configs:
            if not self._construct_job(config):
                break
        self.job_constructed(0)

    def _job_configs(self, cores: list[int]) -> list[_JobConfig] | None:
        name = self.opts.bdev_name
        if name is not None:
            bdev = get_bdev(name)
            if bdev is None:
                sys.stderr.write(f"Unable to find bdev '{name}'\n")
                self.fail_run()
                return None
            targets = [bdev]
        else:
            targets = [b for b in bdevs() if not b.claimed]
        configs: list[_JobConfig] = []
        next_core = 0

        def core() -> int:
            nonlocal next_core
            c = cores[next_core % len(cores)]
            next_core += 1
            return c

        for bdev in targets:
            if self.opts.multithread:
                per_job = bdev.num_blocks // len(cores)
                configs.extend(
                    _JobConfig(bdev, core(), i * per_job, per_job) for i in range(len(cores))
                )
            else:
                configs.append(_JobConfig(bdev, core()))
        return configs

    def _construct_job(self, config: _JobConfig) -> bool:
        bdev = config.bdev
        if self.opts.thread_per_core:
            thread = self.lcore_threads[config.lcore]
        else:
            thread = Thread(bdev.name, CpuSet([config.lcore]))
        try:
            desc = open_bdev(bdev.name, True, self._on_bdev_event)
        except BdevError as exc:
            sys.stderr.write(f"Could not open leaf bdev {bdev.name}, error={-exc.errno}\n")
            self._exit_unused(thread)
            self.fail_run(-exc.errno)
            return False
        job = _Job(
            self, bdev, desc, thread, CpuSet([config.lcore]).format(), config.offset, config.length
        )
        problem = job.check()
        if problem is not None:
            log.error("%s", problem)
            desc.close()
            self._exit_unused(thread)
            self.fail_run(-95)  # -ENOTSUP, as SPDK
            return False
        if job.verify and job.expect_zeroes:
            notice(log, "bdev %s discards writes (null module): verify expects zeroes", bdev.name)
        self.jobs.append(job)
        self.constructing += 1
        thread.send_msg(job.construct)
        return True

    def _exit_unused(self, thread: Thread) -> None:
        if not self.opts.thread_per_core:
            thread.send_msg(_exit_current_thread)

    def _on_bdev_event(self, event: BdevEvent, bdev: Bdev) -> None:
        if event is BdevEvent.REMOVE:
            for job in self.jobs:
                if job.bdev is bdev and not job.ended:
                    job.thread.send_msg(job.request_drain)

    def job_constructed(self, rc: int) -> None:
        if rc:
            self.fail_run(rc)
        self.constructing -= 1
        if self.constructing:
            return
        if self.rc or self.shutdown:
            self._test_done()
            return
        self._test()

    # -- the run (app thread) -------------------------------------------------------------

    def _test(self) -> None:
        opts = self.opts
        _out(f"Running I/O for {opts.time_s} seconds...")
        framework = self.app.framework
        assert framework is not None
        self.start_tsc = framework.clock.now()
        if opts.show_period_s:
            for line in format_header():
                _out(line)
        period = (opts.show_period_s or 1) * US_PER_S
        self.perf_timer = self.app_thread.register_poller(
            self._perf_tick, period_us=period, name="bdevperf_stats"
        )
        for job in self.jobs:
            self.running += 1
            job.started = True
            job.thread.send_msg(job.start, self.start_tsc, self.hz)

    def _perf_tick(self) -> int:
        if self.dump_active or not self.jobs:
            return POLLER_BUSY
        self.dump_active = True
        self.period_num += 1
        period_us = (self.opts.show_period_s or 1) * US_PER_S
        dump = _Dump(self.period_num * period_us)
        self.jobs[0].thread.send_msg(self._dump_job, dump, 0)
        return POLLER_BUSY

    def _dump_job(self, dump: _Dump, index: int) -> None:
        """On job ``index``'s thread: take its counters, then on to the next job."""
        job = self.jobs[index]
        dump.stats.append(job.snapshot())
        if index + 1 < len(self.jobs):
            self.jobs[index + 1].thread.send_msg(self._dump_job, dump, index + 1)
        else:
            self.app_thread.send_msg(self._dump_done, dump)

    def _dump_done(self, dump: _Dump) -> None:
        self.dump_active = False
        if self.done:
            return
        opts = self.opts
        rows: list[tuple[RowFigures, JobStats]] = []
        for job, stats in zip(self.jobs, dump.stats, strict=True):
            failed_early = stats.failed and not job.continue_on_failure and stats.run_time_us
            time_us = stats.run_time_us if failed_early else dump.time_us
            figures = job_figures(stats, time_us, job.io_size, self.hz)
            if opts.ema_period:
                period_iops = (
                    (stats.completed - job.prev_completed)
                    * US_PER_S
                    / (opts.show_period_s * US_PER_S)
                )
                job.prev_completed = stats.completed
                job.ema_iops += (period_iops - job.ema_iops) * 2 / (opts.ema_period + 1)
                figures.iops = job.ema_iops
                figures.mibps = job.ema_iops * job.io_size / (1024 * 1024)
            rows.append((figures, stats))
            if opts.show_period_s:
                for line in self._job_lines(job):
                    _out(line)
                _out(format_job_row(job.name, figures))
        total = total_figures(rows, self.hz)
        if opts.show_period_s:
            _out(RULE)
            _out(format_total_row(total))
            _out("")
        else:
            _out(f"{total.iops:12.2f} IOPS, {total.mibps:8.2f} MiB/s", end="\r")

    def job_ended(self, job: _Job) -> None:
        """Message from a job thread that drained and put its channel (``bdevperf_job_end``)."""
        job.ended = True
        if job.desc is not None:
            job.desc.close()
            job.desc = None
        self.running -= 1
        if self.running == 0:
            self._test_done()

    def _on_shutdown(self) -> None:
        self.shutdown = True
        if self.constructing:
            return  # job_constructed ends the run
        if self.running == 0:
            self._test_done()
            return
        for job in self.jobs:
            if not job.ended:
                job.thread.send_msg(job.request_drain)

    # -- results (app thread) -------------------------------------------------------------

    def _job_lines(self, job: _Job) -> list[str]:
        if job.workload in ("rw", "randrw"):
            head = (
                f"Job: {job.name} (Core Mask 0x{job.core_mask}, workload: {job.workload}, "
                f"percentage: {job.rw_percentage}, depth: {job.queue_depth}, "
                f"IO size: {job.io_size})"
            )
        else:
            head = (
                f"Job: {job.name} (Core Mask 0x{job.core_mask}, workload: {job.workload}, "
                f"depth: {job.queue_depth}, IO size: {job.io_size})"
            )
        lines = [head]
        if job.stats.failed and not job.reset and not job.continue_on_failure:
            lines.append(
                f"Job: {job.name} ended in about {job.run_time_us / US_PER_S:.2f} seconds "
                "with error"
            )
        if job.verify:
            lines.append(
                f"\t Verification LBA range: start 0x{job.ios_base:x} length 0x{job.size_in_ios:x}"
            )
        return lines

    def _test_done(self) -> None:
        if self.done:
            return
        if self.dump_active:
            # A progress walk is still visiting the jobs: finish after it (as SPDK does).
            self.app_thread.send_msg(self._test_done)
            return
        self.done = True
        if self.perf_timer is not None:
            self.perf_timer.unregister()
            self.perf_timer = None
        framework = self.app.framework
        assert framework is not None
        if self.shutdown and self.start_tsc:
            elapsed_us = (framework.clock.now() - self.start_tsc) * US_PER_S // self.hz
            test_us = min(elapsed_us, self.opts.time_s * US_PER_S)
            _out(f"Received shutdown signal, test time was about {test_us / US_PER_S:.6f} seconds")
        if self.start_tsc:
            self._print_results()
        for job in self.jobs:
            if job.mismatches:
                log.error(
                    "verify failed on bdev %s: %d mismatched read(s)", job.name, job.mismatches
                )
        # Jobs that never started still hold a channel: release it on their thread first.
        unstarted = [job for job in self.jobs if not job.started]
        self.releasing = len(unstarted)
        for job in unstarted:
            job.thread.send_msg(job.release)
        if not self.releasing:
            self._finish()

    def job_released(self, job: _Job) -> None:
        if job.desc is not None:
            job.desc.close()
            job.desc = None
        self.releasing -= 1
        if not self.releasing:
            self._finish()

    def _finish(self) -> None:
        if not self.opts.thread_per_core:
            for job in self.jobs:
                job.thread.send_msg(_exit_current_thread)
        for thread in self.lcore_threads.values():
            thread.send_msg(_exit_current_thread)
        self.app.stop(self.rc)

    def _print_results(self) -> None:
        hz = self.hz
        _out("")
        for line in format_header():
            _out(line)
        rows: list[tuple[RowFigures, JobStats]] = []
        for job in self.jobs:
            figures = job_figures(job.stats, job.run_time_us, job.io_size, hz)
            rows.append((figures, job.stats))
            for line in self._job_lines(job):
                _out(line)
            _out(format_job_row(job.name, figures))
        _out(RULE)
        _out(format_total_row(total_figures(rows, hz)))
        self._print_percentiles()
        if self.opts.latency_level:
            self._print_latency_summary()

    def _print_percentiles(self) -> None:
        """spdkpy's addition: p50 / p99 / p99.9 per job and over all jobs."""
        us = US_PER_S / self.hz
        labels = [f"p{p * 100:g}" for p in PERCENTILES]
        _out("")
        _out("\r {:<28}: {:>10} {:>10} {:>10}".format("Latency percentiles(us)", *labels))
        merged = LatencyHistogram()
        for job in self.jobs:
            merged.merge(job.hist)
            values = [job.hist.percentile(p) * us for p in PERCENTILES]
            _out("\t {:<20}: {:10.2f} {:10.2f} {:10.2f}".format(job.name, *values))
        values = [merged.percentile(p) * us for p in PERCENTILES]
        _out("\r {:<28}: {:10.2f} {:10.2f} {:10.2f}".format("Total", *values))

    def _print_latency_summary(self) -> None:
        us = US_PER_S / self.hz
        _out("")
        _out(" Latency summary")
        for job in self.jobs:
            _out("\r =============================================")
            _out(f"\r Job: {job.name} (Core Mask 0x{job.core_mask})")
            total = job.hist.total()
            so_far = 0
            cutoffs = list(LATENCY_CUTOFFS)
            for _, end, count in job.hist.buckets():
                so_far += count
                while cutoffs and so_far / total >= cutoffs[0]:
                    _out(f"{cutoffs.pop(0) * 100:9.5f}% : {end * us:9.3f}us")
            _out("")
        if self.opts.latency_level < 2:
            return
        _out("\r Latency histogram")
        for job in self.jobs:
            _out("\r =============================================")
            _out(f"\r Job: {job.name} (Core Mask 0x{job.core_mask})")
            total = job.hist.total()
            so_far = 0
            for start, end, count in job.hist.buckets():
                so_far += count
                _out(
                    f"{start * us:9.3f} - {end * us:9.3f}: {so_far * 100 / total:9.4f}%  "
                    f"({count:9d})"
                )
            _out("")


@final
class _Dump:
    """One progress walk over the jobs."""

    __slots__ = ("stats", "time_us")

    def __init__(self, time_us: int) -> None:
        self.time_us = time_us
        self.stats: list[JobStats] = []
