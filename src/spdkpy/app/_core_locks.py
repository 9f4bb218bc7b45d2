"""Core lock files (``/var/tmp/spdk_cpu_lock_NNN``), claimed as SPDK does, with an fcntl write
lock and the owner's pid inside.

spdkpy claims them only when it busy-polls (deviation 9): sleeping reactors can share a core, so
locks would only stop things that work. A busy-polling spdkpy app and an SPDK app on the same core
refuse each other, exactly as two SPDK apps do.
"""

from __future__ import annotations

import fcntl
import os
from typing import Final, final

from spdkpy.env import CpuSet
from spdkpy.errors import ConfigError

__all__ = ["CoreLocks"]

LOCK_DIR: Final = "/var/tmp"


def lock_path(core: int) -> str:
    return f"{LOCK_DIR}/spdk_cpu_lock_{core:03d}"


@final
class CoreLocks:
    """Locks held on a set of cores; :meth:`release` gives them back."""

    def __init__(self, held: dict[int, int]) -> None:
        self._held = held  # core -> fd

    @classmethod
    def claim(cls, cores: CpuSet) -> CoreLocks:
        """Claim every core of ``cores`` or none; :class:`ConfigError` names the holder."""
        held: dict[int, int] = {}
        try:
            for core in cores:
                fd = os.open(lock_path(core), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    holder = _read_pid(fd)
                    os.close(fd)
                    raise ConfigError(
                        f"Cannot create lock on core {core}, probably process {holder} has "
                        "claimed it. Unable to acquire lock on assigned core mask - exiting."
                    ) from None
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
                held[core] = fd
        except BaseException:
            CoreLocks(held).release()
            raise
        return cls(held)

    @property
    def cores(self) -> CpuSet:
        return CpuSet(self._held)

    def release(self) -> None:
        for core, fd in self._held.items():
            try:
                os.unlink(lock_path(core))
            except FileNotFoundError:
                pass
            os.close(fd)
        self._held.clear()


def _read_pid(fd: int) -> str:
    try:
        data = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return "unknown"
    return data or "unknown"
