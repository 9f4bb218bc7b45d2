"""Run ``spdkpy tgt`` with its RPC server and drive it with SPDK's own client (``spdk-rpc``) or a
raw socket.

Every app a test starts goes through the ``tgt`` fixture (or the module-scoped ``shared_tgt``):
its finalizer stops the app with SIGINT, reaps it, and checks that the socket and ``.lock`` files
are gone. Socket paths live in short ``/tmp`` directories (``sun_path`` holds 107 bytes). Tests
get the helpers through fixtures: with ``--import-mode=importlib`` a test module cannot import
this conftest.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_BIN = Path(sys.executable).parent
SPDK_RPC = str(_BIN / "spdk-rpc")
_SCRIPT = _BIN / "spdkpy"
SPDKPY: list[str] = (
    [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "spdkpy.apps.cli"]
)
CORES: list[int] = sorted(c for c in os.sched_getaffinity(0) if c < 128)[:2]
MASK = hex(sum(1 << c for c in CORES))
START_TIMEOUT_S = 15.0
EXIT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RpcRun:
    """One ``spdk-rpc`` run."""

    args: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str

    def result(self) -> object:
        """The printed result (``None`` when the client prints nothing, e.g. for ``true``)."""
        assert self.rc == 0, f"spdk-rpc {self.args}: rc {self.rc}\n{self.stdout}{self.stderr}"
        return json.loads(self.stdout) if self.stdout.strip() else None

    def error(self) -> dict[str, object]:
        """The JSON-RPC error object the client printed (after ``response:``)."""
        assert self.rc == 1, f"spdk-rpc {self.args}: rc {self.rc}\n{self.stdout}{self.stderr}"
        assert "Got JSON-RPC error response" in self.stdout, self.stdout + self.stderr
        err = json.loads(self.stdout.split("response:", 1)[1])
        assert isinstance(err, dict)
        return err


class Tgt:
    """One ``spdkpy tgt`` process serving RPC on ``address``; output goes to a log file."""

    def __init__(self, workdir: str, *extra: str, address: str | None = None) -> None:
        self.workdir = workdir
        self.address = address if address is not None else os.path.join(workdir, "spdk.sock")
        self.is_unix = address is None or address.startswith("/")
        self.log_path = os.path.join(workdir, f"tgt-{time.monotonic_ns()}.log")
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                [*SPDKPY, "tgt", "-m", MASK, "-r", self.address, *extra],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self.stopped_by_us = False

    @property
    def output(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def rpc(self, *args: str, timeout: float = 10.0, retries: int = 0) -> RpcRun:
        cmd = [SPDK_RPC, "-s", self.address, "-t", str(timeout)]
        if retries:
            cmd += ["-r", str(retries)]
        proc = subprocess.run(
            [*cmd, *args],
            capture_output=True,
            text=True,
            timeout=timeout + retries * 0.2 + 10,
            check=False,
        )
        return RpcRun(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    def call(self, *args: str, timeout: float = 10.0) -> object:
        return self.rpc(*args, timeout=timeout).result()

    def error(self, *args: str) -> dict[str, object]:
        return self.rpc(*args).error()

    def wait_ready(self, method: str = "framework_wait_init") -> None:
        """Connect with the client's own retry (every 0.2 s) and call ``method``."""
        run = self.rpc(method, timeout=START_TIMEOUT_S, retries=int(START_TIMEOUT_S / 0.2))
        if run.rc != 0:
            self.kill()
            pytest.fail(f"tgt never served {method}: {run.stdout}{run.stderr}\n{self.output}")

    def wait(self, timeout: float = EXIT_TIMEOUT_S) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"tgt did not exit within {timeout} s\n{self.output}")

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Signal the app (if it still runs) and reap it; its exit code."""
        self.stopped_by_us = True
        if self.popen.poll() is None:
            self.popen.send_signal(signum)
        return self.wait()

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(EXIT_TIMEOUT_S)

    def check_files_removed(self) -> None:
        if self.is_unix:
            assert not os.path.exists(self.address), f"{self.address} left behind"
            assert not os.path.exists(self.address + ".lock"), f"{self.address}.lock left behind"

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TgtFactory:
    """Starts apps in one short directory; the finalizer stops, reaps and checks them."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="spdkpy-rpc-", dir="/tmp")
        self.apps: list[Tgt] = []

    def __call__(self, *extra: str, address: str | None = None, ready: bool = True) -> Tgt:
        app = Tgt(self.dir, *extra, address=address)
        self.apps.append(app)
        if ready:
            waiting = "--wait-for-rpc" in extra  # framework_wait_init would wait for the RPC
            app.wait_ready("spdk_get_version" if waiting else "framework_wait_init")
        return app

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def finish(self) -> None:
        failures: list[str] = []
        try:
            for app in self.apps:
                if app.popen.poll() is None:
                    rc = app.stop()
                    if rc != 0:
                        failures.append(f"tgt exited {rc} on SIGINT:\n{app.output}")
                if app.popen.returncode != 0:
                    continue  # refused to start, or killed on purpose: checked by its test
                if "Traceback" in app.output:
                    failures.append(f"traceback in the tgt output:\n{app.output}")
                try:
                    app.check_files_removed()
                except AssertionError as exc:
                    failures.append(str(exc))
        finally:
            for app in self.apps:
                app.kill()
            shutil.rmtree(self.dir, ignore_errors=True)
        if failures:
            pytest.fail("\n".join(failures))


@pytest.fixture
def tgt() -> Iterator[TgtFactory]:
    """``tgt(*extra_args, address=None, ready=True)`` starts an app; all stop at the end."""
    factory = TgtFactory()
    try:
        yield factory
    finally:
        factory.finish()


@pytest.fixture(scope="module")
def shared_tgt() -> Iterator[Tgt]:
    """One app for the tests of a module that leave it running (and in a known state)."""
    factory = TgtFactory()
    try:
        yield factory()
    finally:
        factory.finish()


class RawClient:
    """A plain socket speaking JSON-RPC bytes, for what ``spdk-rpc`` cannot send."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        if address.startswith("/"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(address)
            except OSError:
                self.sock.close()
                raise
        else:
            host, _, port = address.rpartition(":")
            self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes | object) -> None:
        payload = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.sock.sendall(payload)

    def lines(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """The next ``count`` raw response lines, each still ending in ``\\n``."""
        deadline = time.monotonic() + timeout
        while self.buf.count(b"\n") < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"wanted {count} lines, have {self.buf!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"EOF after {self.buf!r}")
            self.buf += chunk
        out: list[bytes] = []
        for _ in range(count):
            line, _, self.buf = self.buf.partition(b"\n")
            out.append(line + b"\n")
        return out

    def responses(self, count: int = 1, timeout: float = 5.0) -> list[object]:
        return [json.loads(line) for line in self.lines(count, timeout)]

    def call(self, method: str, params: object = None, id: int = 1) -> dict[str, object]:
        request: dict[str, object] = {"jsonrpc": "2.0", "method": method, "id": id}
        if params is not None:
            request["params"] = params
        self.send(request)
        (response,) = self.responses(1)
        assert isinstance(response, dict)
        return response

    def silent_for(self, seconds: float) -> bool:
        """``True`` if nothing (not even EOF) arrives within ``seconds``."""
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return True
        self.buf += chunk
        return False

    def read_to_eof(self, timeout: float = 5.0) -> bytes:
        """Everything until the server closes the connection (fails after ``timeout``)."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"connection still open; got {data!r}")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Callable[[str], RawClient]]:
    """``raw(address)`` connects a :class:`RawClient`; all are closed at the end."""
    clients: list[RawClient] = []

    def connect(address: str) -> RawClient:
        client = RawClient(address)
        clients.append(client)
        return client

    try:
        yield connect
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def cores() -> list[int]:
    """The cores the apps run on (``-m``): every available core, at most two."""
    return list(CORES)
