"""``spdkpy top --once`` against a live app, and its one-line error when nothing listens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_BIN = Path(sys.executable).parent
_SCRIPT = _BIN / "spdkpy"
SPDKPY = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "spdkpy.apps.cli"]


def _top(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SPDKPY, "top", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_top_once_prints_each_tab_from_a_live_app(tgt, cores) -> None:  # type: ignore[no-untyped-def]
    app = tgt()
    threads = _top("-r", app.address, "--once", "-d", "0.2")
    assert threads.returncode == 0, threads.stderr
    assert "app_thread" in threads.stdout
    assert "busy %" in threads.stdout
    reactors = _top("-r", app.address, "--once", "-d", "0.2", "--tab", "cores", "--sort", "core")
    assert reactors.returncode == 0, reactors.stderr
    for core in cores:
        assert f"│    {core} │" in reactors.stdout or f" {core} " in reactors.stdout
    pollers = _top("-r", app.address, "--once", "-d", "0.2", "--tab", "pollers")
    assert pollers.returncode == 0, pollers.stderr
    assert "rpc_subsystem_poll" in pollers.stdout


def test_top_without_a_server_is_one_line(tmp_path: Path) -> None:
    done = _top("-r", str(tmp_path / "nothing.sock"), "--once")
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1
    assert "cannot connect" in done.stderr
    assert "Traceback" not in done.stderr


def test_top_rejects_an_unknown_sort_column(tgt) -> None:  # type: ignore[no-untyped-def]
    app = tgt()
    done = _top("-r", app.address, "--once", "-d", "0.1", "--sort", "nonsense")
    assert done.returncode == 1
    assert "no column 'nonsense'" in done.stderr
