"""``spdkpy bdevperf`` (SPEC-STORAGE A4.2): the real command on malloc and null bdevs from a
``-c`` config, each run about a second. Verify must pass on both modules, and must fail, with
one line naming bdev and offset, when the malloc disk's memory is overwritten under it by a
poller in the same process (a test-only bdev module's poller: the checker itself is real).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from spdkpy.apps.bdevperf import (
    LatencyHistogram,
    RowFigures,
    format_job_row,
    format_total_row,
    parse_capacity,
    verify_pattern,
)

CORES = sorted(os.sched_getaffinity(0))
ONE_CORE = hex(1 << CORES[0])
TWO_CORES = "[" + ",".join(map(str, CORES[:2])) + "]"

ROW = re.compile(
    r"^\t (?P<name>\S+)\s*: +(?P<runtime>[\d.]+) +(?P<iops>[\d.]+) +(?P<mibps>[\d.]+) "
    r"+(?P<fail>[\d.]+) +(?P<to>[\d.]+) +(?P<avg>[\d.]+) +(?P<min>[\d.]+) +(?P<max>[\d.]+)$"
)
TOTAL = re.compile(r"^\r Total\s+: +(?P<iops>[\d.]+) +(?P<mibps>[\d.]+) ")
PCT_ROW = re.compile(r"^\t (?P<name>\S+)\s*: +(?P<p50>[\d.]+) +(?P<p99>[\d.]+) +(?P<p999>[\d.]+)$")
JOB = re.compile(r"^Job: (?P<name>\S+) \(Core Mask 0x(?P<mask>[0-9a-f]+), workload: (?P<w>\w+)")


def _config(tmp_path: Path, *, null: bool = True, malloc_blocks: int = 2048) -> str:
    entries = [
        {
            "method": "bdev_malloc_create",
            "params": {"name": "Malloc0", "num_blocks": malloc_blocks, "block_size": 512},
        }
    ]
    if null:
        entries.append(
            {
                "method": "bdev_null_create",
                "params": {"name": "Null0", "num_blocks": 2048, "block_size": 512},
            }
        )
    entries.append({"method": "bdev_wait_for_examine"})
    path = tmp_path / "bdev.json"
    path.write_text(json.dumps({"subsystems": [{"subsystem": "bdev", "config": entries}]}))
    return str(path)


def _table(stdout: str) -> tuple[dict[str, list[dict[str, float]]], list[str], dict[str, float]]:
    """Rows per job name (SPDK's table, then spdkpy's percentiles), the ``Job:`` lines and
    the Total line."""
    lines = stdout.replace("\r\n", "\n").split("\n")
    rows: dict[str, list[dict[str, float]]] = {}
    jobs: list[str] = []
    total: dict[str, float] = {}
    for line in lines:
        # progress lines are joined by "\r"; the table's own lines start with "\r"
        if (m := ROW.match(line)) is not None:
            rows.setdefault(m["name"], []).append(
                {k: float(v) for k, v in m.groupdict().items() if k != "name"}
            )
        elif (m := JOB.match(line)) is not None:
            jobs.append(line)
        elif (m := TOTAL.match(line)) is not None and not total:
            total = {"iops": float(m["iops"]), "mibps": float(m["mibps"])}
    return rows, jobs, total


def _percentiles(stdout: str) -> dict[str, tuple[float, float, float]]:
    part = stdout.split("Latency percentiles(us)", 1)[1]
    out = {}
    for line in part.split("\n"):
        if (m := PCT_ROW.match(line)) is not None:
            out[m["name"]] = (float(m["p50"]), float(m["p99"]), float(m["p999"]))
    return out


def _no_traceback(err: str) -> None:
    assert "Traceback" not in err
    assert "internal error" not in err
    assert "unhandled" not in err


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("4k", 4096), ("4K", 4096), ("4KiB", 4096), ("1m", 1 << 20), ("2G", 2 << 30)],
)
def test_io_size_takes_capacity_suffixes(text: str, value: int) -> None:
    assert parse_capacity(text) == value


@pytest.mark.parametrize("text", ["", "k", "4x", "4 k", "-4", "4.5k", "4kk"])
def test_bad_capacity(text: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(text) + "$"):
        parse_capacity(text)


def test_histogram_percentiles_are_within_one_bucket() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(10, 1.2)) for _ in range(20_000)] + [5, 90, 127, 128]
    hist = LatencyHistogram()
    for v in values:
        hist.tally(v)
    assert hist.total() == len(values)
    ordered = sorted(values)
    for fraction in (0.5, 0.99, 0.999):
        exact = ordered[math.ceil(fraction * len(values)) - 1]
        got = hist.percentile(fraction)
        # the bucket's upper bound: never below the value, never more than 1/64 above it
        assert exact < got <= exact + max(1, exact // 64) + 1, (fraction, exact, got)
    assert hist.buckets()[0][0] == 5
    assert hist.buckets()[-1][1] > max(values)


def test_histogram_buckets_tile_the_number_line() -> None:
    prev_end = 0
    for index in range(LatencyHistogram.SIZE):
        start, end = LatencyHistogram.bounds(index)
        if index < 128 or index & 127 >= 64:
            assert start == prev_end, index
            assert end > start
            prev_end = end


def test_rows_have_spdk_widths() -> None:
    f = RowFigures(5.0, 1234567.891, 4822.53, 0.0, 0.0, 18.12, 3.5, 250.75)
    row = format_job_row("Malloc0", f)
    assert row == (
        "\t Malloc0             :       5.00 1234567.89    4822.53       0.00     0.00"
        "      18.12       3.50     250.75"
    )
    assert format_total_row(f).startswith("\r Total                       :            1234567.89")
    assert ROW.match(row) is not None


def test_verify_pattern_words() -> None:
    data = verify_pattern(2, 512)
    words = [int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, len(data), 4)]
    assert words[:3] == [0, 4, 8]
    assert words[128:131] == [1, 5, 9]  # block 1: its index plus the byte offset


# ----------------------------------------------------------------------------- the command


def test_verify_on_malloc_and_null_passes(cli, tmp_path: Path) -> None:
    rc, out, err = cli.run(
        "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path), "-q", "16", "-o", "4k",
        "-w", "verify", "-t", "2",
    )  # fmt: skip
    assert rc == 0, err
    _no_traceback(err)
    assert "mismatch" not in out
    assert "Running I/O for 2 seconds..." in out
    assert re.search(r"^ +[\d.]+ IOPS, +[\d.]+ MiB/s\r", out, re.M), "no progress line"
    rows, jobs, total = _table(out)
    assert set(rows) == {"Malloc0", "Null0"}
    for name in ("Malloc0", "Null0"):
        row = rows[name][0]
        assert row["iops"] > 0
        assert row["fail"] == 0
        assert 1.5 < row["runtime"] < 10
        assert row["min"] <= row["avg"] <= row["max"]
    assert [JOB.match(j)["w"] for j in jobs] == ["verify", "verify"]  # type: ignore[index]
    assert out.count("Verification LBA range: start 0x0 length 0x100") == 2
    assert total["iops"] == pytest.approx(rows["Malloc0"][0]["iops"] + rows["Null0"][0]["iops"])
    pct = _percentiles(out)
    for name in ("Malloc0", "Null0"):
        p50, p99, p999 = pct[name]
        assert 0 < p50 <= p99 <= p999
    assert "verify expects zeroes" in err


def test_multithread_jobs_split_the_range(cli, tmp_path: Path) -> None:
    if len(CORES) < 2:
        pytest.skip("needs two cores")
    rc, out, err = cli.run(
        "bdevperf", "-m", TWO_CORES, "-c", _config(tmp_path, null=False), "-q", "4",
        "-o", "4096", "-w", "verify", "-t", "1", "-C",
    )  # fmt: skip
    assert rc == 0, err
    rows, jobs, _ = _table(out)
    assert len(rows["Malloc0"]) == 2
    masks = sorted(JOB.match(j)["mask"] for j in jobs)  # type: ignore[index]
    assert masks == sorted(format(1 << c, "x") for c in CORES[:2])
    assert "Verification LBA range: start 0x0 length 0x80" in out
    assert "Verification LBA range: start 0x80 length 0x80" in out


@pytest.mark.parametrize(
    "workload",
    [
        ["read"],
        ["write"],
        ["randread"],
        ["randwrite"],
        ["rw", "-M", "50"],
        ["randrw", "-M", "70"],
        ["flush"],
        ["unmap"],
        ["write_zeroes"],
    ],
)
def test_each_workload_runs(cli, tmp_path: Path, workload: list[str]) -> None:
    rc, out, err = cli.run(
        "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path, null=False), "-T", "Malloc0",
        "-q", "8", "-o", "4096", "-t", "1", "-w", *workload,
    )  # fmt: skip
    assert rc == 0, err
    _no_traceback(err)
    rows, jobs, total = _table(out)
    assert list(rows) == ["Malloc0"]
    assert rows["Malloc0"][0]["iops"] > 0
    assert rows["Malloc0"][0]["fail"] == 0
    assert total["iops"] > 0
    head = JOB.match(jobs[0])
    assert head is not None
    assert head["w"] == workload[0]
    if workload[0] in ("rw", "randrw"):
        assert f"percentage: {workload[2]}," in jobs[0]


def test_out_of_requests_waits_and_retries(cli, tmp_path: Path) -> None:
    """A 64-request pool for 2 x 64 tasks: submits return NOMEM and wait (queue_io_wait)."""
    path = tmp_path / "small.json"
    entries = [
        {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 64, "bdev_io_cache_size": 8}}
    ]
    for name in ("Malloc0", "Malloc1"):
        params = {"name": name, "num_blocks": 4096, "block_size": 512}
        entries.append({"method": "bdev_malloc_create", "params": params})
    path.write_text(json.dumps({"subsystems": [{"subsystem": "bdev", "config": entries}]}))
    rc, out, err = cli.run(
        "bdevperf", "-m", ONE_CORE, "-c", str(path), "-q", "64", "-o", "4096", "-w", "verify",
        "-t", "1", "-E",
    )  # fmt: skip
    assert rc == 0, err
    _no_traceback(err)
    assert "mismatch" not in out
    rows, _, _ = _table(out)
    assert set(rows) == {"Malloc0", "Malloc1"}
    for name in rows:
        assert rows[name][0]["iops"] > 0
        assert rows[name][0]["fail"] == 0


def test_show_period_prints_the_table_while_running(cli, tmp_path: Path) -> None:
    rc, out, err = cli.run(
        "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path, null=False), "-q", "4",
        "-o", "512", "-w", "randread", "-t", "2", "-S", "1", "-l",
    )  # fmt: skip
    assert rc == 0, err
    rows, _, _ = _table(out)
    assert len(rows["Malloc0"]) >= 2  # at least one periodic table plus the final one
    assert " Latency summary" in out
    assert re.search(r"^ 99\.90000% : +[\d.]+us$", out, re.M)


def test_sigint_ends_the_run_with_its_results(cli, tmp_path: Path) -> None:
    proc = cli(
        "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path, null=False), "-q", "8",
        "-o", "4096", "-w", "randwrite", "-t", "60", "-S", "1",
    )  # fmt: skip
    # -S prints whole lines (the default progress line ends in "\r" only): wait for the first
    # periodic table, so I/O is surely under way.
    proc.wait_for_lines(r"^\r Total ", stream="stdout", timeout=30)
    proc.send(signal.SIGINT)
    assert proc.wait() == 0
    assert re.search(r"Received shutdown signal, test time was about [\d.]+ seconds", proc.stdout)
    rows, _, _ = _table(proc.stdout)
    assert rows["Malloc0"][0]["iops"] > 0
    assert rows["Malloc0"][0]["runtime"] < 30


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-w", "randomread"], "rw must be one of (read, write, randread"),
        (["-o", "4x"], "Invalid IO size: 4x"),
        (["-q", "0"], "queue depth must be > 0"),
        (["-t", "0"], "time must be > 0"),
        (["-w", "rw"], "-M must be specified to value from 0 to 100 for rw or randrw."),
        (["-w", "randrw", "-M", "101"], "-M must be specified to value from 0 to 100"),
    ],
)
def test_option_errors_are_one_line(cli, args: list[str], message: str) -> None:
    given = dict(zip(args[::2], args[1::2], strict=True))
    base = {"-q": "8", "-o": "4096", "-w": "read", "-t": "1"} | given
    argv = [x for kv in base.items() for x in kv]
    rc, out, err = cli.run("bdevperf", "-m", ONE_CORE, *argv)
    assert rc != 0
    assert err.count("\n") <= 1, err
    assert message in err
    assert out == ""


def test_unknown_bdev_is_one_line(cli, tmp_path: Path) -> None:
    rc, _, err = cli.run(
        "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path), "-q", "8", "-o", "4096",
        "-w", "read", "-t", "1", "-T", "Nope",
    )  # fmt: skip
    assert rc == 1
    _no_traceback(err)
    assert [line for line in err.splitlines() if "Nope" in line] == ["Unable to find bdev 'Nope'"]
    assert "*ERROR*" not in err


def test_io_size_not_a_multiple_of_the_block_is_one_error(cli, tmp_path: Path) -> None:
    rc, _, err = cli.run(
        "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path), "-q", "8", "-o", "1000",
        "-w", "read", "-t", "1",
    )  # fmt: skip
    assert rc == 1
    _no_traceback(err)
    errors = [line for line in err.splitlines() if "*ERROR*" in line]
    assert len(errors) == 1
    assert errors[0].endswith(
        "IO size (1000) is not multiples of data block size of bdev Malloc0 (512)"
    )


def test_no_bdevs_is_one_line(cli) -> None:
    rc, _, err = cli.run("bdevperf", "-m", ONE_CORE, "-q", "8", "-o", "4096", "-w", "read",
                         "-t", "1")  # fmt: skip
    assert rc == 1
    assert "No jobs defined or bdevs created" in err
    _no_traceback(err)


def test_unsupported_unmap_fails_the_run(cli, tmp_path: Path) -> None:
    rc, _, err = cli.run(
        "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path), "-T", "Null0", "-q", "8",
        "-o", "4096", "-w", "unmap", "-t", "1",
    )  # fmt: skip
    assert rc == 1
    assert "Skipping Null0 because it does not support unmap" in err


# ----------------------------------------------------------------------------- in a child


_CORRUPTING = r"""
import sys
from spdkpy import bdev as B
from spdkpy.apps import cli
from spdkpy.thread import POLLER_BUSY, get_thread


class Corrupter(B.BdevModule):
    '''Test-only module: 300 ms after init, overwrite Malloc0's memory on every poll of the
    app thread (which shares the core with the job, so it lands between write and read).'''

    name = "test_corrupter"

    def module_init(self):
        self.pollers = [get_thread().register_poller(self.arm, period_us=300_000)]
        return 0

    def arm(self):
        self.pollers.pop().unregister()
        self.pollers.append(get_thread().register_poller(self.corrupt))
        return POLLER_BUSY

    def corrupt(self):
        view = B.get_bdev("Malloc0").ctxt.view
        view[:] = b"\xee" * len(view)
        return POLLER_BUSY

    def fini_start(self):
        for poller in self.pollers:
            poller.unregister()
        self.pollers = []


B.bdev_module_register(Corrupter())
sys.exit(cli.main(sys.argv[1:]))
"""


def test_corrupted_memory_fails_verify(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CORRUPTING, "bdevperf", "-m", ONE_CORE, "-c",
         _config(tmp_path, malloc_blocks=256), "-T", "Malloc0", "-q", "4", "-o", "4096",
         "-w", "verify", "-t", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    _no_traceback(proc.stderr)
    mismatches = re.findall(
        r"^Buffer mismatch! Target: Malloc0 Disk Offset: (\d+) \(first difference in block "
        r"(\d+), byte (\d+): expected 0x[0-9a-f]{2}, read 0xee\)$",
        proc.stdout,
        re.M,
    )
    assert mismatches, proc.stdout
    assert 1 <= len(mismatches) <= 4  # only what was in flight: the job stops at the first
    for offset, block, _ in mismatches:
        assert int(offset) % 8 == 0
        assert int(offset) <= int(block) < int(offset) + 8
    assert "verify failed on bdev Malloc0" in proc.stderr


_RESETTING = r"""
import sys
from spdkpy.apps import bdevperf, cli

bdevperf.RESET_PERIOD_US = 200_000  # SPDK resets every 10 s; a test cannot wait that long
sys.exit(cli.main(sys.argv[1:]))
"""


def test_reset_workload_resets_and_keeps_verifying(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _RESETTING, "bdevperf", "-m", ONE_CORE, "-L", "bdevperf",
         "-c", _config(tmp_path, null=False), "-q", "8", "-o", "4096", "-w", "reset",
         "-t", "1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc.stderr)
    assert proc.stderr.count("Reset of bdev Malloc0 done") >= 2
    assert "mismatch" not in proc.stdout
    rows, jobs, _ = _table(proc.stdout)
    assert rows["Malloc0"][0]["iops"] > 0
    assert "workload: reset" in jobs[0]
    assert "ended in about" not in proc.stdout  # aborted I/O during a reset is no failure


_REMOVING = r"""
import sys
from spdkpy import bdev as B
from spdkpy.apps import cli
from spdkpy.thread import POLLER_BUSY, get_thread


class Remover(B.BdevModule):
    '''Test-only module: 300 ms after init, delete Malloc0 (a hot remove under load).'''

    name = "test_remover"

    def module_init(self):
        self.pollers = [get_thread().register_poller(self.remove, period_us=300_000)]
        return 0

    def remove(self):
        self.pollers.pop().unregister()
        B.delete_malloc_disk("Malloc0", lambda rc: print("deleted", rc, file=sys.stderr))
        return POLLER_BUSY

    def fini_start(self):
        for poller in self.pollers:
            poller.unregister()


B.bdev_module_register(Remover())
sys.exit(cli.main(sys.argv[1:]))
"""


def test_hot_remove_drains_the_job(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _REMOVING, "bdevperf", "-m", ONE_CORE, "-c",
         _config(tmp_path, null=False), "-q", "16", "-o", "4096", "-w", "randwrite", "-t", "60"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _no_traceback(proc.stderr)
    assert "deleted 0" in proc.stderr  # the removal finished: every descriptor was closed
    rows, _, _ = _table(proc.stdout)
    assert rows["Malloc0"][0]["iops"] > 0
    assert rows["Malloc0"][0]["fail"] == 0
    assert rows["Malloc0"][0]["runtime"] < 30  # drained on the event, not at -t


def test_a_closed_stdout_ends_the_run(tmp_path: Path) -> None:
    """``spdkpy bdevperf ... | head`` must not leave bdevperf running once head exits."""
    script = Path(sys.executable).with_name("spdkpy")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "spdkpy.apps.cli"]
    proc = subprocess.Popen(
        [*cmd, "bdevperf", "-m", ONE_CORE, "-c", _config(tmp_path, null=False), "-q", "4",
         "-o", "4096", "-w", "randread", "-t", "60"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.read(1)  # the run has started printing
        proc.stdout.close()  # the reader goes away, as head does
        assert proc.wait(timeout=20) == 0  # stopped as by SIGINT, well before -t 60
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
