"""Schedulers and reactor modes through SPDK's client, on the real app (SPEC §3.6, §4.5)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from tests.rpc.conftest import SPDKPY

from spdkpy.env import available_cores

TWO_CORES = len(available_cores()) >= 2
MASK = "0x3" if TWO_CORES else "0x1"


def wait_for(app, predicate, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        got = app.call("framework_get_scheduler")
        if predicate(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_dynamic_through_spdk_rpc(tgt, cores) -> None:
    app = tgt("-m", MASK)
    assert (
        app.rpc(
            "framework_set_scheduler",
            "dynamic",
            "-p",
            "20000",
            "--load-limit",
            "30",
            "--core-limit",
            "70",
            "--core-busy",
            "90",
        ).rc
        == 0
    )
    got = wait_for(app, lambda g: g["rounds"] >= 3)
    assert got["scheduler_name"] == "dynamic"
    assert got["scheduler_period"] == 20000
    assert (got["load_limit"], got["core_limit"], got["core_busy"]) == (30, 70, 90)
    assert got["rounds"] >= 3
    last = got["last_round"]
    assert last["scheduler"] == "dynamic"
    assert isinstance(last["reason"], str)
    assert set(last) == {
        "round",
        "scheduler",
        "time",
        "moves",
        "interrupt_mode_cores",
        "reason",
        "skipped",
    }
    assert "Setting scheduler load limit to 30" in app.output
    # Only the options it was given change; an option of another scheduler fails as in SPDK.
    assert app.rpc("framework_set_scheduler", "dynamic", "--core-busy", "99").rc == 0
    got = app.call("framework_get_scheduler")
    assert (got["load_limit"], got["core_limit"], got["core_busy"]) == (30, 70, 99)
    assert app.error("framework_set_scheduler", "gscheduler") == {
        "code": -32603,
        "message": "No such device",
    }
    assert app.call("framework_get_scheduler")["scheduler_name"] == "dynamic"
    assert app.call("framework_get_governor") == {}
    # save_config carries the scheduler and its options.
    config = app.call("save_config")
    entry = next(s for s in config["subsystems"] if s["subsystem"] == "scheduler")
    assert entry["config"] == [
        {
            "method": "framework_set_scheduler",
            "params": {
                "name": "dynamic",
                "period": 20000,
                "load_limit": 30,
                "core_limit": 70,
                "core_busy": 99,
            },
        }
    ]
    # Back to static: every thread goes home and the rounds stop.
    assert app.rpc("framework_set_scheduler", "static").rc == 0
    got = wait_for(app, lambda g: g["scheduler_period"] == 0)
    assert got["scheduler_period"] == 0
    assert got["scheduler_name"] == "static"
    assert "load_limit" not in got


@pytest.mark.skipif(not TWO_CORES, reason="needs two cores")
def test_idle_core_goes_to_interrupt_mode_under_dynamic(tgt) -> None:
    app = tgt("-m", "0x3", "--scheduler", "dynamic", "--scheduler-period", "20000")

    def second_in_interrupt() -> bool:
        reactors = app.call("framework_get_reactors")["reactors"]
        return any(r["in_interrupt"] and not r["lw_threads"] for r in reactors)

    deadline = time.monotonic() + 15
    while not second_in_interrupt() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert second_in_interrupt()
    got = app.call("framework_get_scheduler")
    assert got["scheduler_name"] == "dynamic"
    assert got["last_round"]["interrupt_mode_cores"] == [1]


def test_interrupt_mode_option(tgt) -> None:
    app = tgt("-m", MASK, "--interrupt-mode")
    reactors = app.call("framework_get_reactors")["reactors"]
    assert all(r["in_interrupt"] is True for r in reactors)
    app_plain = tgt("-m", MASK, address=tgt.path("plain.sock"))
    assert all(
        r["in_interrupt"] is False for r in app_plain.call("framework_get_reactors")["reactors"]
    )


def test_scheduler_set_options_before_init(tgt, raw) -> None:
    app = tgt("-m", MASK, "--wait-for-rpc")
    assert app.error("scheduler_set_options", "-s", "5") == {
        "code": -32602,
        "message": "Invalid scheduling core.",
    }
    assert app.error("scheduler_set_options", "-i", "0x1") == {
        "code": -32602,
        "message": "Scheduling core cannot be included in isolated core mask.",
    }
    assert app.error("scheduler_set_options", "-i", "zz") == {
        "code": -32602,
        "message": "Invalid isolated core mask",
    }
    if TWO_CORES:
        assert app.rpc("scheduler_set_options", "-i", "0x2").rc == 0
    assert app.rpc("framework_start_init").rc == 0
    assert app.rpc("framework_wait_init").rc == 0
    got = app.call("framework_get_scheduler")
    assert got["isolated_core_mask"] == ("2" if TWO_CORES else "0")
    assert app.error("scheduler_set_options", "-s", "0")["code"] == -1  # STARTUP only


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--busy-poll", "--interrupt-mode"],
            "--busy-poll and --interrupt-mode cannot be used together",
        ),
        (
            ["--scheduler", "fastest"],
            "unknown scheduler 'fastest' (choose from dynamic, gscheduler, static)",
        ),
    ],
)
def test_bad_scheduling_options_are_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [*SPDKPY, "tgt", "-r", str(tmp_path / "s.sock"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert message in lines[0]


def test_scheduler_from_config_file(tgt, tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "subsystems": [
                    {
                        "subsystem": "scheduler",
                        "config": [
                            {
                                "method": "framework_set_scheduler",
                                "params": {"name": "dynamic", "period": 50000},
                            }
                        ],
                    }
                ]
            }
        )
    )
    app = tgt("-m", MASK, "-c", str(config))
    got = app.call("framework_get_scheduler")
    assert got["scheduler_name"] == "dynamic"
    assert got["scheduler_period"] == 50000
