"""``spdkpy poll_groups`` and the ``spdkpy perf`` tools: their output and exit codes (SPEC §9, §10).

No performance number is asserted beyond "positive": these tests check meaning and format.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

MAX_LCORES = 128
AVAILABLE = sorted(c for c in os.sched_getaffinity(0) if c < MAX_LCORES)
TWO_CORES = AVAILABLE[:2]
ONE_CORE = AVAILABLE[0]
ONE_MASK = hex(1 << ONE_CORE)  # the tools default to 0x1; core 0 need not be available
needs_two_cores = pytest.mark.skipif(len(TWO_CORES) < 2, reason="needs two available cores")


def _mask(cores: list[int]) -> str:
    return hex(sum(1 << c for c in cores))


def _assert_clean(rc: int, out: str, err: str) -> None:
    assert rc == 0, f"rc={rc}\nstdout={out}\nstderr={err}"
    assert "Traceback" not in out + err
    assert "*ERROR*" not in err


# ----------------------------------------------------------------------------- poll_groups


@needs_two_cores
def test_poll_groups_land_on_their_own_reactor(cli) -> None:
    rc, out, err = cli.run("poll_groups", "--no-rpc-server", "-m", _mask(TWO_CORES), "-t", "0.5")
    _assert_clean(rc, out, err)
    lines = out.splitlines()
    for core in TWO_CORES:
        assert f"nvmf_tgt_poll_group_{core} landed on reactor {core}" in lines
        runs = [line for line in lines if line.startswith(f"nvmf_tgt_poll_group_{core}: ")]
        assert len(runs) == 1, lines
        m = re.fullmatch(rf"nvmf_tgt_poll_group_{core}: (\d+) poller runs", runs[0])
        assert m is not None, runs[0]
        assert int(m.group(1)) > 0
    # Every "landed" line comes before the run counts.
    landed_at = max(i for i, line in enumerate(lines) if "landed on reactor" in line)
    counted_at = min(i for i, line in enumerate(lines) if line.endswith("poller runs"))
    assert landed_at < counted_at


def test_poll_groups_one_core(cli) -> None:
    core = ONE_CORE
    rc, out, err = cli.run("poll_groups", "--no-rpc-server", "-m", _mask([core]), "-t", "0.2")
    _assert_clean(rc, out, err)
    assert f"nvmf_tgt_poll_group_{core} landed on reactor {core}" in out.splitlines()


def test_poll_groups_sigint_reports_and_exits_0(cli) -> None:
    core = ONE_CORE
    proc = cli("poll_groups", "--no-rpc-server", "-m", _mask([core]), "-t", "30")
    proc.wait_for_lines(r"landed on reactor", stream="stdout")
    proc.send(signal.SIGINT)
    rc = proc.wait(5.0)
    _assert_clean(rc, proc.stdout, proc.stderr)
    assert re.search(rf"nvmf_tgt_poll_group_{core}: \d+ poller runs", proc.stdout)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1e400", "soon"])
def test_poll_groups_bad_time_rc_2_one_line(cli, value: str) -> None:
    rc, out, err = cli.run("poll_groups", "--no-rpc-server", f"--time={value}")
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert repr(value) in lines[0]
    assert out == ""


# ----------------------------------------------------------------------------- perf reactor


def test_perf_reactor(cli) -> None:
    rc, out, err = cli.run("perf", "reactor", "-m", ONE_MASK, "-q", "4", "-t", "1")
    _assert_clean(rc, out, err)
    lines = out.splitlines()
    assert lines[:2] == ["test_start", "test_end"]
    m = re.fullmatch(r"Performance: +(\d+) events per second", lines[-1])
    assert m is not None, lines
    assert int(m.group(1)) > 0


@needs_two_cores
def test_perf_reactor_deepest_queue_still_stops_cleanly(cli) -> None:
    # The stop path needs events of its own (one per reactor) while all these are in flight.
    rc, out, err = cli.run("perf", "reactor", "-m", _mask(TWO_CORES), "-q", "8191", "-t", "1")
    _assert_clean(rc, out, err)
    assert out.splitlines()[:2] == ["test_start", "test_end"]


def test_perf_reactor_sigint_prints_test_abort(cli) -> None:
    proc = cli("perf", "reactor", "-m", ONE_MASK, "-t", "30")
    proc.wait_for_lines(r"^test_start$", stream="stdout")
    proc.send(signal.SIGINT)
    rc = proc.wait(5.0)
    _assert_clean(rc, proc.stdout, proc.stderr)
    lines = proc.stdout_lines
    assert "test_abort" in lines
    assert "test_end" not in lines
    assert re.fullmatch(r"Performance: +\d+ events per second", lines[-1])


# ----------------------------------------------------------------------------- perf event


@needs_two_cores
def test_perf_event(cli) -> None:
    rc, out, err = cli.run("perf", "event", "-m", _mask(TWO_CORES), "-t", "1")
    _assert_clean(rc, out, err)
    lines = out.splitlines()
    assert lines.count("Running I/O for 1 seconds...") == 2
    assert lines[-1] == "done."
    per_core = [line for line in lines if line.startswith("lcore")]
    assert len(per_core) == len(TWO_CORES)
    for core, line in zip(TWO_CORES, per_core, strict=True):
        m = re.fullmatch(rf"lcore {core:2d}: +(\d+)", line)
        assert m is not None, line
        assert int(m.group(1)) > 0


def test_perf_event_one_core(cli) -> None:
    rc, out, err = cli.run("perf", "event", "-m", ONE_MASK, "-t", "1")
    _assert_clean(rc, out, err)
    lines = out.splitlines()
    assert re.fullmatch(rf"lcore {ONE_CORE:2d}: +\d+", lines[-2]), lines
    assert lines[-1] == "done."


# ----------------------------------------------------------------------------- perf poller


@pytest.mark.parametrize("period", ["0", "1"])
def test_perf_poller(cli, period: str) -> None:
    rc, out, err = cli.run("perf", "poller", "-m", ONE_MASK, "-b", "10", "-l", period, "-t", "1")
    _assert_clean(rc, out, err)
    lines = out.split("\n")  # not splitlines(): that would also split at the "\r" prefixes
    assert lines[0] == f"Running 10 pollers for 1 seconds with {period} microseconds period."
    body = [line.removeprefix("\r ") for line in lines[1:]]
    assert all(line.startswith("\r ") for line in lines[1:]), lines
    assert re.fullmatch(r"busy:\d+ \(cyc\)", body[1]), body
    runs = re.fullmatch(r"total_run_count: (\d+)", body[2])
    assert runs is not None, body
    assert int(runs.group(1)) > 0
    assert body[3] == "tsc_hz: 1000000000 (cyc)"
    cost = re.fullmatch(r"poller_cost: (\d+) \(cyc\), (\d+) \(nsec\)", body[5])
    assert cost is not None, body
    assert int(cost.group(1)) == int(cost.group(2))  # 1 GHz ticks: cycles are nanoseconds


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["poller", "-b", "10", "-l", "0", "-t", "0"], id="poller-t-0"),
        pytest.param(["poller", "-b", "10", "-l", "0"], id="poller-no-t"),
        pytest.param(["poller", "-b", "0", "-l", "0", "-t", "1"], id="poller-b-0"),
        pytest.param(["poller", "-b", "1001", "-l", "0", "-t", "1"], id="poller-b-1001"),
        pytest.param(["poller", "-b", "10", "-l", "-1", "-t", "1"], id="poller-l-negative"),
        pytest.param(["poller", "-b", "x", "-l", "0", "-t", "1"], id="poller-b-not-a-number"),
        pytest.param(["reactor", "-t", "0"], id="reactor-t-0"),
        pytest.param(["reactor"], id="reactor-no-t"),
        pytest.param(["reactor", "-q", "0", "-t", "1"], id="reactor-q-0"),
        pytest.param(["reactor", "-q", "8192", "-t", "1"], id="reactor-q-beyond-half-the-pool"),
        pytest.param(["event", "-t", "0"], id="event-t-0"),
        pytest.param(["event"], id="event-no-t"),
        pytest.param([], id="no-tool"),
        pytest.param(["nosuchtool"], id="unknown-tool"),
    ],
)
def test_perf_bad_arguments_rc_2_one_line(cli, args: list[str]) -> None:
    rc, out, err = cli.run("perf", *args)
    assert rc == 2, err
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert out == ""


def test_perf_event_bad_mask_rc_1_one_line(cli) -> None:
    rc, out, err = cli.run("perf", "event", "-m", "xyz", "-t", "1")
    assert rc == 1
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert "'xyz'" in lines[0]
    assert "Traceback" not in out + err
