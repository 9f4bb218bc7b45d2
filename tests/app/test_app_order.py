"""``App.start`` order of events, in a child process (SPEC §6.3, §6.4, §6.5 step 2-3).

An app owns the process (signals, the main thread, pinning), so each case runs a small script in
a fresh interpreter that registers subsystems and config methods, records what runs in which
order and prints it as JSON: STARTUP config → subsystem init → RUNTIME config → ``start_fn`` →
stop → subsystem fini in reverse.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CORE = min(os.sched_getaffinity(0))

_SCRIPT = r"""
import json, sys
from spdkpy.app import App, AppOptions, MethodSpec, RpcState, Subsystem, SubsystemRegistry, get_app

case = json.loads(sys.argv[1])
events = []

def make_subsystem(name, deps, init_rc):
    def init(done):
        events.append("init " + name)
        done(init_rc)
    def fini(done):
        events.append("fini " + name)
        done()
    return Subsystem(name, init=init, fini=fini, depends_on=tuple(deps))

registry = SubsystemRegistry()
for name, deps, init_rc in case["subsystems"]:
    registry.register(make_subsystem(name, deps, init_rc))

def make_method(name):
    def handler(params):
        events.append("method " + name)
        if params and params.get("fail"):
            raise RuntimeError("asked to fail")
    return handler

states = {"startup": RpcState.STARTUP, "runtime": RpcState.RUNTIME,
          "both": RpcState.STARTUP | RpcState.RUNTIME}
methods = {name: MethodSpec(name, make_method(name), states[state])
           for name, state in case["methods"].items()}

opts = AppOptions(name="order", reactor_mask=case["mask"], rpc_addr=None,
                  json_config_file=case.get("config"),
                  json_config_ignore_errors=case.get("ignore_errors", False))
app = App(opts, subsystems=registry, methods=methods)

def start():
    events.append("start_fn")
    get_app().stop(case.get("stop_rc", 0))

rc = app.start(start)
events.append(f"rc {rc}")
print(json.dumps(events))
"""

SUBSYSTEMS = [["iobuf", [], 0], ["accel", ["iobuf"], 0], ["sock", [], 0], ["bdev", ["accel"], 0]]
METHODS = {"set_opts": "startup", "create": "runtime", "get": "both"}


def _run(tmp_path: Path, config: object | None = None, **case: object) -> tuple[list[str], str]:
    spec: dict[str, object] = {
        "mask": hex(1 << CORE),
        "subsystems": SUBSYSTEMS,
        "methods": METHODS,
        **case,
    }
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        spec["config"] = str(path)
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(spec)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_init_start_stop_fini_order(tmp_path: Path) -> None:
    events, _ = _run(tmp_path)
    assert events == [
        "init iobuf",
        "init accel",
        "init sock",
        "init bdev",
        "start_fn",
        "fini bdev",
        "fini sock",
        "fini accel",
        "fini iobuf",
        "rc 0",
    ]


def test_config_passes_around_subsystem_init(tmp_path: Path) -> None:
    config = {
        "subsystems": [
            {
                "subsystem": "bdev",
                "config": [
                    {"method": "create"},
                    {"method": "set_opts"},
                    {"method": "get"},
                ],
            },
            {"subsystem": "nvmf", "config": [{"method": "nvmf_create_transport"}]},
        ]
    }
    events, err = _run(tmp_path, config)
    init = ["init iobuf", "init accel", "init sock", "init bdev"]
    fini = ["fini bdev", "fini sock", "fini accel", "fini iobuf"]
    assert events == [
        "method set_opts",  # STARTUP pass: STARTUP-only and both
        "method get",
        *init,
        "method create",  # RUNTIME pass: RUNTIME-only; "get" already ran
        "start_fn",
        *fini,
        "rc 0",
    ]
    assert "nvmf_create_transport" in err  # the NOTICE for a subsystem this app lacks


def test_failing_subsystem_init_stops_before_start_fn(tmp_path: Path) -> None:
    subsystems = [["iobuf", [], 0], ["accel", ["iobuf"], -12], ["sock", [], 0]]
    events, err = _run(tmp_path, subsystems=subsystems)
    assert events == ["init iobuf", "init accel", "fini iobuf", "rc 1"]
    assert "Init subsystem accel failed" in err
    assert "Subsystem initialization failed" in err


def test_missing_dependency_fails_the_app(tmp_path: Path) -> None:
    events, err = _run(tmp_path, subsystems=[["bdev", ["accel"], 0]])
    assert events == ["rc 1"]
    assert "subsystem bdev dependency accel is missing" in err


def test_unknown_method_of_a_linked_subsystem_fails_before_init(tmp_path: Path) -> None:
    config = {"subsystems": [{"subsystem": "bdev", "config": [{"method": "nope"}]}]}
    events, err = _run(tmp_path, config)
    assert events == ["rc 1"]
    assert "Method 'nope' was not found" in err


def test_failing_runtime_method_stops_without_start_fn(tmp_path: Path) -> None:
    failing = {"method": "create", "params": {"fail": 1}}
    config = {"subsystems": [{"subsystem": "bdev", "config": [failing]}]}
    events, err = _run(tmp_path, config)
    assert "start_fn" not in events
    assert events[:5] == ["init iobuf", "init accel", "init sock", "init bdev", "method create"]
    assert events[-1] == "rc 1"
    assert events[5:-1] == ["fini bdev", "fini sock", "fini accel", "fini iobuf"]
    assert "asked to fail" in err


def test_ignore_errors_keeps_going(tmp_path: Path) -> None:
    config = {
        "subsystems": [
            {
                "subsystem": "bdev",
                "config": [{"method": "nope"}, {"method": "create", "params": {"fail": 1}}],
            }
        ]
    }
    events, _ = _run(tmp_path, config, ignore_errors=True)
    assert "start_fn" in events
    assert events[-1] == "rc 0"


@pytest.mark.parametrize(("stop_rc", "exit_rc"), [(0, 0), (3, 3), (-5, 1), (300, 1)])
def test_stop_rc_becomes_the_exit_code(tmp_path: Path, stop_rc: int, exit_rc: int) -> None:
    events, _ = _run(tmp_path, stop_rc=stop_rc)
    assert events[-1] == f"rc {exit_rc}"
