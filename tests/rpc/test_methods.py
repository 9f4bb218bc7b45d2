"""The framework, thread, reactor, scheduler and log methods through SPDK's client (SPEC §4.5,
§6.4, §6.6, §7.4): exit code, result keys, error codes and messages as ``spdk-rpc`` sees them.
Where ``spdk-rpc`` cannot send a request (params it never sends), a raw socket does.
"""

from __future__ import annotations

import os
import signal
import sysconfig
import time
from pathlib import Path

import pytest

STARTUP_MESSAGE = (
    "Method may only be called after framework is initialized using framework_start_init RPC."
)
RUNTIME_MESSAGE = (
    "Method may only be called before framework is initialized. Use --wait-for-rpc command "
    "line parameter and then issue this RPC before the framework_start_init RPC."
)
TICK_RATE = 1_000_000_000
RUNTIME_METHODS = [
    "framework_get_reactors",
    "framework_get_scheduler",
    "framework_set_scheduler",
    "thread_get_stats",
    "thread_get_pollers",
    "thread_get_io_channels",
    "thread_set_cpumask",
    "log_set_flag",
    "log_clear_flag",
    "log_get_flags",
    "log_set_level",
    "log_get_level",
    "log_set_print_level",
    "log_get_print_level",
]
THREAD_STATS_KEYS = {
    "name",
    "id",
    "cpumask",
    "busy",
    "idle",
    "active_pollers_count",
    "timed_pollers_count",
    "paused_pollers_count",
}
THREAD_STATS_EXTRA_KEYS = {
    "messages_run",
    "queue_depth",
    "queue_high_water",
    "messages_refused",
    "slow_work",
    "delta",
}
REACTOR_KEYS = {
    "lcore",
    "numa_id",
    "tid",
    "busy",
    "idle",
    "in_interrupt",
    "irq",
    "sys",
    "usr",
    "lw_threads",
}
REACTOR_EXTRA_KEYS = {
    "sleeping",
    "sleeps",
    "events_run",
    "slow_events",
    "active_pollers",
    "delta",
    "mode",
    "awake_by",
}


def _hex(cores: list[int]) -> str:
    return format(sum(1 << c for c in cores), "x")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _reactor_of_thread(app, name: str) -> int | None:
    result = app.call("framework_get_reactors")
    for reactor in result["reactors"]:
        if any(t["name"] == name for t in reactor["lw_threads"]):
            return reactor["lcore"]
    return None


def _wait_for_core(app, name: str, core: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (where := _reactor_of_thread(app, name)) != core:
        assert time.monotonic() < deadline, f"{name} stayed on core {where}, not {core}"
        time.sleep(0.02)


# ---------------------------------------------------------------------------- framework


def test_spdk_get_version(shared_tgt) -> None:
    result = shared_tgt.call("spdk_get_version")
    assert result["version"] == "SPDK v26.09-pre"
    assert result["fields"] == {"major": 26, "minor": 9, "patch": 0, "suffix": "-pre"}


def test_rpc_get_methods_lists_every_method(shared_tgt) -> None:
    methods = shared_tgt.call("rpc_get_methods")
    for name in [
        "spdk_get_version",
        "rpc_get_methods",
        "framework_start_init",
        "framework_wait_init",
        "framework_get_subsystems",
        "framework_get_config",
        "spdk_kill_instance",
        *RUNTIME_METHODS,
    ]:
        assert name in methods
    current = shared_tgt.call("rpc_get_methods", "--current")
    assert "framework_start_init" not in current
    assert "framework_get_reactors" in current


def test_framework_wait_init_in_runtime(shared_tgt) -> None:
    run = shared_tgt.rpc("framework_wait_init")
    assert run.rc == 0
    assert run.result() is None  # the client prints nothing for ``true``


def test_save_config_and_subsystems(shared_tgt) -> None:
    subsystems = shared_tgt.call("framework_get_subsystems")
    assert isinstance(subsystems, list)
    config = shared_tgt.call("save_config")
    assert set(config) == {"subsystems"}
    assert [s["subsystem"] for s in config["subsystems"]] == [s["subsystem"] for s in subsystems]


def test_framework_get_config_of_an_unknown_subsystem(shared_tgt) -> None:
    err = shared_tgt.error("save_subsystem_config", "-n", "no_such_subsystem")
    assert err == {"code": -32602, "message": "Subsystem 'no_such_subsystem' not found"}


# ---------------------------------------------------------------------------- reactors, threads


def test_framework_get_reactors(shared_tgt, cores) -> None:
    result = shared_tgt.call("framework_get_reactors")
    assert set(result) == {"tick_rate", "pid", "gil_enabled", "reactors", "interval_ticks"}
    assert result["tick_rate"] == TICK_RATE
    # The server runs this interpreter; spdkpy imports no extension module that turns the GIL on.
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        assert result["gil_enabled"] is (os.environ.get("PYTHON_GIL") == "1")
    else:
        assert result["gil_enabled"] is True
    assert result["pid"] == shared_tgt.pid
    reactors = result["reactors"]
    assert [r["lcore"] for r in reactors] == cores  # core order
    tasks = {int(t) for t in os.listdir(f"/proc/{shared_tgt.pid}/task")}
    for reactor in reactors:
        assert set(reactor) == REACTOR_KEYS | REACTOR_EXTRA_KEYS
        assert reactor["numa_id"] == 0
        assert reactor["in_interrupt"] is False
        assert isinstance(reactor["sleeping"], bool)
        for key in ("busy", "idle", "irq", "sys", "usr", "sleeps", "events_run"):
            assert _is_count(reactor[key]), (key, reactor[key])
        assert reactor["tid"] in tasks
        comm = Path(f"/proc/{shared_tgt.pid}/task/{reactor['tid']}/comm").read_text().strip()
        assert comm == f"reactor_{reactor['lcore']}"
        for lw in reactor["lw_threads"]:
            assert set(lw) == {"name", "id", "cpumask", "elapsed"}
            assert _is_count(lw["elapsed"])
    # The main reactor runs on the process's main thread.
    assert reactors[0]["tid"] == shared_tgt.pid
    assert len({r["tid"] for r in reactors}) == len(reactors)
    (app_thread,) = [t for r in reactors for t in r["lw_threads"] if t["name"] == "app_thread"]
    assert app_thread["id"] == 1
    assert app_thread["cpumask"] == _hex(cores[:1])


def test_thread_get_stats(shared_tgt, cores) -> None:
    result = shared_tgt.call("thread_get_stats")
    assert set(result) == {"tick_rate", "threads", "interval_ticks"}
    assert result["tick_rate"] == TICK_RATE
    threads = result["threads"]
    assert [t["id"] for t in threads] == sorted(t["id"] for t in threads)  # creation order
    app_thread = threads[0]
    assert set(app_thread) == THREAD_STATS_KEYS | THREAD_STATS_EXTRA_KEYS
    assert app_thread["name"] == "app_thread"
    assert app_thread["id"] == 1
    assert app_thread["cpumask"] == _hex(cores[:1])
    # The RPC server's poller is running: we are talking to it.
    assert app_thread["timed_pollers_count"] >= 1
    assert app_thread["messages_run"] > 0
    for key in (THREAD_STATS_KEYS | THREAD_STATS_EXTRA_KEYS) - {"name", "cpumask", "delta"}:
        assert _is_count(app_thread[key]), key


def test_thread_get_pollers(shared_tgt) -> None:
    result = shared_tgt.call("thread_get_pollers")
    assert set(result) == {"tick_rate", "threads", "interval_ticks"}
    app_thread = result["threads"][0]
    assert set(app_thread) == {"name", "id", "active_pollers", "timed_pollers", "paused_pollers"}
    assert app_thread["name"] == "app_thread"
    assert app_thread["id"] == 1
    (rpc_poller,) = [p for p in app_thread["timed_pollers"] if p["name"] == "rpc_subsystem_poll"]
    assert set(rpc_poller) == {
        "name",
        "id",
        "state",
        "run_count",
        "busy_count",
        "period_ticks",
        "delta",
    }
    assert rpc_poller["period_ticks"] == 4000 * 1000  # 4 000 µs in ns ticks
    assert rpc_poller["state"] in {"waiting", "running"}
    assert rpc_poller["run_count"] >= rpc_poller["busy_count"] >= 0
    for poller in app_thread["active_pollers"]:
        assert "period_ticks" not in poller


def test_thread_get_io_channels(shared_tgt) -> None:
    result = shared_tgt.call("thread_get_io_channels")
    assert set(result) == {"tick_rate", "threads"}
    app_thread = result["threads"][0]
    assert set(app_thread) == {"name", "io_channels"}
    assert app_thread["name"] == "app_thread"
    for channel in app_thread["io_channels"]:
        assert set(channel) == {"name", "ref"}


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("spdk_get_version", "spdk_get_version method requires no parameters"),
        ("framework_get_reactors", "`framework_get_reactors` requires no arguments"),
        ("framework_get_scheduler", "'rpc_get_scheduler' requires no arguments"),
        ("framework_get_subsystems", "framework_get_subsystems requires no parameters"),
        ("thread_get_stats", "'thread_get_stats' requires no arguments"),
        ("thread_get_pollers", "'thread_get_pollers' requires no arguments"),
        ("thread_get_io_channels", "'thread_get_io_channels' requires no arguments"),
        ("log_get_flags", "log_get_flags requires no parameters"),
        ("log_get_level", "log_get_level requires no parameters"),
        ("log_get_print_level", "log_get_print_level requires no parameters"),
    ],
)
def test_methods_without_params_refuse_them(shared_tgt, raw, method: str, message: str) -> None:
    client = raw(shared_tgt.address)
    for params in ({}, {"x": 1}, []):
        response = client.call(method, params)
        assert response["error"] == {"code": -32602, "message": message}, params


def test_thread_set_cpumask(tgt, raw, cores) -> None:
    app = tgt()
    assert app.rpc("thread_set_cpumask", "-i", "1", "-m", hex(1 << cores[0])).rc == 0
    # A mask wider than the app is cut down to the app's cores (spdk_app_parse_core_mask).
    assert app.rpc("thread_set_cpumask", "-i", "1", "-m", "0x" + "f" * 32).rc == 0
    stats = app.call("thread_get_stats")
    assert stats["threads"][0]["cpumask"] == _hex(cores)
    if len(cores) > 1:
        # Move the app thread, which hosts the RPC server, and keep talking to it.
        assert app.rpc("thread_set_cpumask", "-i", "1", "-m", hex(1 << cores[1])).rc == 0
        _wait_for_core(app, "app_thread", cores[1])
        assert app.call("thread_get_stats")["threads"][0]["cpumask"] == _hex(cores[1:])
        assert app.rpc("thread_set_cpumask", "-i", "1", "-m", f"[{cores[0]}]").rc == 0
        _wait_for_core(app, "app_thread", cores[0])
        # And leave it on the other core: the finalizer's SIGINT must still stop the app.
        assert app.rpc("thread_set_cpumask", "-i", "1", "-m", hex(1 << cores[1])).rc == 0
        _wait_for_core(app, "app_thread", cores[1])

    assert app.error("thread_set_cpumask", "-i", "999", "-m", "0x1") == {
        "code": -32602,
        "message": "Thread 999 does not exist",
    }
    assert app.error("thread_set_cpumask", "-i", "1", "-m", "zz") == {
        "code": -32603,
        "message": "Invalid cpumask zz",
    }
    assert app.error("thread_set_cpumask", "-i", "1", "-m", hex(1 << 100)) == {
        "code": -32603,
        "message": f"No CPU is selected from reactor mask {_hex(cores)}",
    }
    client = raw(app.address)
    for params in (None, {"id": 1}, {"cpumask": "0x1"}, {"id": "1", "cpumask": "1"}):
        response = client.call("thread_set_cpumask", params)
        assert response["error"] == {
            "code": -32602,
            "message": "spdk_json_decode_object failed",
        }, params


# ---------------------------------------------------------------------------- scheduler


def _settled_scheduler(app) -> dict:
    """framework_get_scheduler once static's round has run and set the period back to 0."""
    deadline = time.monotonic() + 10
    while True:
        got = app.call("framework_get_scheduler")
        if got["scheduler_period"] == 0 or time.monotonic() > deadline:
            return got
        time.sleep(0.01)


def test_scheduler(tgt, raw, cores) -> None:
    app = tgt()
    assert app.call("framework_get_scheduler") == {
        "scheduler_name": "static",
        "scheduler_period": 0,
        "isolated_core_mask": "0",
        "scheduling_core": cores[0],
        "rounds": 0,
        "migrations": 0,
    }
    # No period given: SPDK's default of 1 s is set; static is already current, so its init does
    # not run again, and its balance (due at once: no round ran yet) puts the period back to 0.
    assert app.rpc("framework_set_scheduler", "static").rc == 0
    got = _settled_scheduler(app)
    assert got["scheduler_period"] == 0
    assert got["rounds"] == 1
    assert got["last_round"]["scheduler"] == "static"
    assert got["last_round"]["reason"] == "no change"
    # static's option: thread:core mappings, every pair checked first; a round applies them.
    assert app.rpc("framework_set_scheduler", "static", "--mappings", f"1:{cores[0]}").rc == 0
    got = _settled_scheduler(app)
    assert got["scheduler_period"] == 0
    assert got["rounds"] == 2
    assert app.error("framework_set_scheduler", "no_such_scheduler") == {
        "code": -32603,
        "message": "Invalid argument",
    }
    assert app.call("framework_get_scheduler")["scheduler_name"] == "static"
    client = raw(app.address)
    for params in (None, {}, {"name": 5}, {"name": "static", "period": -1}):
        response = client.call("framework_set_scheduler", params)
        assert response["error"] == {"code": -32602, "message": "Invalid parameters"}, params


# ---------------------------------------------------------------------------- log


def test_log_flags(shared_tgt, raw) -> None:
    app = shared_tgt
    flags = app.call("log_get_flags")
    assert list(flags) == sorted(flags, key=str.lower)
    assert {"reactor", "thread", "app"} <= set(flags)
    assert all(value is False for value in flags.values())
    try:
        assert app.rpc("log_set_flag", "reactor").rc == 0
        assert app.call("log_get_flags")["reactor"] is True
        assert app.rpc("log_clear_flag", "REACTOR").rc == 0  # case-insensitive
        assert app.call("log_get_flags")["reactor"] is False
        assert app.rpc("log_set_flag", "th*").rc == 0  # a glob
        assert app.call("log_get_flags")["thread"] is True
        assert app.rpc("log_set_flag", "all").rc == 0
        assert all(app.call("log_get_flags").values())
    finally:
        assert app.rpc("log_clear_flag", "all").rc == 0
    assert not any(app.call("log_get_flags").values())
    for method in ("log_set_flag", "log_clear_flag"):
        assert app.error(method, "no_such_flag") == {
            "code": -32602,
            "message": "invalid log flag",
        }
        client = raw(app.address)
        for params in (None, {}, {"flag": 5}, {"flag": "app", "x": 1}):
            response = client.call(method, params)
            assert response["error"] == {
                "code": -32603,
                "message": "spdk_json_decode_object failed",
            }, (method, params)


@pytest.mark.parametrize("kind", ["print_level", "level"])
def test_log_levels(shared_tgt, raw, kind: str) -> None:
    app = shared_tgt
    get, set_ = f"log_get_{kind}", f"log_set_{kind}"
    assert app.call(get) == "NOTICE"
    try:
        for level in ("ERROR", "WARNING", "INFO", "DEBUG", "NOTICE"):
            assert app.rpc(set_, level).rc == 0
            assert app.call(get) == level
        client = raw(app.address)
        assert client.call(set_, {"level": "warning"})["result"] is True  # any case
        assert app.call(get) == "WARNING"
        assert client.call(set_, {"level": "LOUD"})["error"] == {
            "code": -32602,
            "message": "invalid log level",
        }
        for params in (None, {}, {"level": 3}):
            assert client.call(set_, params)["error"] == {
                "code": -32603,
                "message": "spdk_json_decode_object failed",
            }
    finally:
        assert app.rpc(set_, "NOTICE").rc == 0


# ---------------------------------------------------------------------------- states


def test_wait_for_rpc_states_and_kill_instance(tgt) -> None:
    app = tgt("--wait-for-rpc")
    assert app.error("framework_get_reactors") == {"code": -1, "message": STARTUP_MESSAGE}
    current = app.call("rpc_get_methods", "--current")
    assert "framework_start_init" in current
    assert "framework_get_reactors" not in current
    # STARTUP and RUNTIME methods work before init; no scheduler is chosen yet.
    assert "scheduler_name" not in app.call("framework_get_scheduler")
    assert app.rpc("log_set_flag", "app").rc == 0
    assert app.call("log_get_flags")["app"] is True

    assert app.rpc("framework_start_init").rc == 0
    assert app.rpc("framework_wait_init").rc == 0
    assert len(app.call("framework_get_reactors")["reactors"]) >= 1
    assert app.call("framework_get_scheduler")["scheduler_name"] == "static"
    assert app.error("framework_start_init") == {"code": -1, "message": RUNTIME_MESSAGE}

    assert app.rpc("spdk_kill_instance", "SIGTERM").rc == 0
    assert app.wait() == 0, app.output
    app.check_files_removed()


def test_kill_instance_sigint(tgt) -> None:
    app = tgt()
    assert app.rpc("spdk_kill_instance", "SIGINT").rc == 0
    assert app.wait() == 0, app.output
    app.check_files_removed()
    assert "Traceback" not in app.output


def test_framework_start_init_refuses_params(tgt, raw) -> None:
    app = tgt("--wait-for-rpc")
    response = raw(app.address).call("framework_start_init", {})
    assert response["error"] == {
        "code": -32602,
        "message": "framework_start_init requires no parameters",
    }
    # Still in STARTUP: the refused call did not start the framework.
    assert app.error("framework_get_reactors")["code"] == -1
    assert app.stop(signal.SIGTERM) == 0
