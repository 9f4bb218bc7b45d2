"""Helpers for running the ``spdkpy`` command as a subprocess.

Every process a test starts goes through the ``cli`` fixture, which kills (SIGKILL to the
process group the child leads) and reaps whatever is still running when the test ends, so no test
leaves a reactor spinning behind it. Output is read by background threads into queues, so a test
can wait for a line with a deadline instead of sleeping. (Tests get these through the fixture:
with ``--import-mode=importlib`` a test module cannot import this conftest.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

_SCRIPT = Path(sys.executable).with_name("spdkpy")
SPDKPY: list[str] = (
    [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "spdkpy.apps.cli"]
)
"""How to run the console script (the venv's ``spdkpy``, else the module)."""

EXIT_TIMEOUT_S = 10.0


class Proc:
    """One running ``spdkpy`` process whose stdout and stderr lines are collected as they come."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.popen = subprocess.Popen(
            [*SPDKPY, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        self.pid = self.popen.pid
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._ended: set[str] = set()
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True)
            for name in ("stdout", "stderr")
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str) -> None:
        stream = self.popen.stdout if name == "stdout" else self.popen.stderr
        assert stream is not None
        sink = self.stdout_lines if name == "stdout" else self.stderr_lines
        # Bytes, split on "\n" only: perf poller's lines start with "\r", which text mode would
        # turn into line breaks.
        for raw in stream:
            line = raw.decode("utf-8", errors="replace").removesuffix("\n")
            with self._changed:
                sink.append(line)
                self._changed.notify_all()
        with self._changed:
            self._ended.add(name)
            self._changed.notify_all()

    def wait_for_lines(
        self, pattern: str, count: int = 1, stream: str = "stderr", timeout: float = 10.0
    ) -> list[str]:
        """Wait until ``count`` lines of ``stream`` (from its start) match ``pattern``; returns
        them. Lines are never consumed, so waits for different patterns do not interfere.
        """
        rx = re.compile(pattern)
        lines = self.stdout_lines if stream == "stdout" else self.stderr_lines
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [line for line in lines if rx.search(line)]
                left = deadline - time.monotonic()
                if len(found) >= count or stream in self._ended or left <= 0:
                    break
                self._changed.wait(left)
        if len(found) < count:
            self.kill()
            pytest.fail(
                f"spdkpy {' '.join(self.args)}: wanted {count} {stream} lines matching "
                f"{pattern!r}, saw {len(found)}\nstdout: {self.stdout_lines}\n"
                f"stderr: {self.stderr_lines}"
            )
        return found[:count]

    def send(self, signum: int) -> None:
        self.popen.send_signal(signum)

    def wait(self, timeout: float = EXIT_TIMEOUT_S) -> int:
        """Wait for the exit and for all its output; the exit code."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"spdkpy {' '.join(self.args)} did not exit within {timeout} s\n"
                f"stdout: {self.stdout_lines}\nstderr: {self.stderr_lines}"
            )
        self._close()
        return rc

    def kill(self) -> None:
        """SIGKILL the process group this child leads (only ours: start_new_session) and reap."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(EXIT_TIMEOUT_S)
        self._close()

    def _close(self) -> None:
        for reader in self._readers:
            reader.join(EXIT_TIMEOUT_S)
        for stream in (self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)


class Spawner:
    """Starts ``spdkpy`` processes and guarantees they are gone when the test ends."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        proc = Proc(args, env)
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 30.0) -> tuple[int, str, str]:
        """Run to completion; ``(rc, stdout, stderr)``."""
        proc = self(*args)
        rc = proc.wait(timeout)
        return rc, proc.stdout, proc.stderr

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.kill()


@pytest.fixture
def cli() -> Iterator[Spawner]:
    spawner = Spawner()
    try:
        yield spawner
    finally:
        spawner.cleanup()
