"""Core lock files (SPEC §5.4, deviation 9), in a temporary lock directory.

fcntl locks are per process, so the "someone else holds it" cases use a helper process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import spdkpy.app._core_locks as core_locks
from spdkpy.app import CoreLocks
from spdkpy.env import CpuSet
from spdkpy.errors import ConfigError, InputError

_HOLDER = """
import fcntl, os, sys
fds = []
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    fds.append(fd)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(core_locks, "LOCK_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def hold() -> Iterator[object]:
    """``hold(paths)`` locks ``paths`` from another process until the test ends; its pid."""
    procs: list[subprocess.Popen[str]] = []

    def start(paths: list[Path]) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, *map(str, paths)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        return proc.pid

    try:
        yield start
    finally:
        for proc in procs:
            proc.communicate(timeout=10)  # closing stdin lets the holder exit


def _lock(lock_dir: Path, core: int) -> Path:
    return lock_dir / f"spdk_cpu_lock_{core:03d}"


def test_lock_path_format(lock_dir: Path) -> None:
    assert core_locks.lock_path(7) == f"{lock_dir}/spdk_cpu_lock_007"
    assert core_locks.lock_path(127) == f"{lock_dir}/spdk_cpu_lock_127"


def test_claim_writes_pid_and_release_removes(lock_dir: Path) -> None:
    locks = CoreLocks.claim(CpuSet([0, 1, 5]))
    try:
        assert locks.cores == CpuSet([0, 1, 5])
        for core in (0, 1, 5):
            assert _lock(lock_dir, core).read_text() == str(os.getpid())
        assert not _lock(lock_dir, 2).exists()
    finally:
        locks.release()
    assert list(lock_dir.iterdir()) == []
    assert locks.cores == CpuSet()
    locks.release()  # a second release is harmless


def test_stale_lock_file_is_taken_over(lock_dir: Path) -> None:
    _lock(lock_dir, 3).write_text("999999999 and more text")
    locks = CoreLocks.claim(CpuSet([3]))
    try:
        assert _lock(lock_dir, 3).read_text() == str(os.getpid())
    finally:
        locks.release()
    assert not _lock(lock_dir, 3).exists()


def test_held_lock_names_the_holder(lock_dir: Path, hold) -> None:
    pid = hold([_lock(lock_dir, 1)])
    with pytest.raises(ConfigError) as info:
        CoreLocks.claim(CpuSet([1]))
    message = str(info.value)
    assert isinstance(info.value, InputError)
    assert f"Cannot create lock on core 1, probably process {pid} has claimed it" in message
    assert "Unable to acquire lock on assigned core mask - exiting." in message
    assert "\n" not in message
    assert _lock(lock_dir, 1).read_text() == str(pid)  # the holder's file is untouched


def test_claim_is_all_or_nothing(lock_dir: Path, hold) -> None:
    hold([_lock(lock_dir, 2)])
    with pytest.raises(ConfigError, match="core 2"):
        CoreLocks.claim(CpuSet([0, 1, 2, 3]))
    # Cores 0 and 1 were claimed before core 2 failed: given back and their files removed.
    assert not _lock(lock_dir, 0).exists()
    assert not _lock(lock_dir, 1).exists()
    assert not _lock(lock_dir, 3).exists()
    locks = CoreLocks.claim(CpuSet([0, 1]))
    locks.release()


def test_empty_lock_file_holder_is_unknown(lock_dir: Path, tmp_path: Path) -> None:
    # A holder that has not written its pid yet (or an SPDK build that writes nothing).
    script = tmp_path / "empty_holder.py"
    script.write_text(_HOLDER.replace("os.write(fd, str(os.getpid()).encode())", "pass"))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(_lock(lock_dir, 4))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match="probably process unknown has claimed it"):
            CoreLocks.claim(CpuSet([4]))
    finally:
        proc.communicate(timeout=10)


def test_lock_released_by_holder_exit_can_be_claimed(lock_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(_lock(lock_dir, 6))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    proc.communicate(timeout=10)
    locks = CoreLocks.claim(CpuSet([6]))
    try:
        assert _lock(lock_dir, 6).read_text() == str(os.getpid())
    finally:
        locks.release()
