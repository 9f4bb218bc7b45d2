"""Sleep until work arrives: an eventfd in an epoll set, armed only while its owner sleeps.

Theory of operation (deviation 3, idle reactors sleep). The owner (a reactor) calls :meth:`arm`,
then checks every source of work once more, and only then :meth:`sleep`. Producers first enqueue
their work, then call :meth:`notify`, which writes the eventfd only if the owner is armed, so a
busy owner costs its producers one attribute read and no system call. Either the owner's re-check
sees the work, or the producer sees ``armed`` and writes: the two sides order their steps store
then load, and both pass through a lock release (the ring's, the arm lock's), which is a full
barrier in CPython, so the protocol holds without the GIL as well.
"""

from __future__ import annotations

import os
import select
import threading
from typing import final

__all__ = ["Waker"]


@final
class Waker:
    """An epoll set with one eventfd; extra fds (signal pipes, sockets) may be added."""

    __slots__ = ("_arm_lock", "_epoll", "_fd", "armed", "wakeups")

    def __init__(self) -> None:
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll = select.epoll()
        self._epoll.register(self._fd, select.EPOLLIN)
        self._arm_lock = threading.Lock()
        self.armed = False
        self.wakeups = 0

    def add_fd(self, fd: int) -> None:
        """Also wake when ``fd`` becomes readable (the caller drains it)."""
        self._epoll.register(fd, select.EPOLLIN)

    def remove_fd(self, fd: int) -> None:
        self._epoll.unregister(fd)

    def arm(self) -> None:
        """Announce that the owner is about to sleep; re-check for work after this."""
        with self._arm_lock:
            self.armed = True

    def disarm(self) -> None:
        self.armed = False

    def notify(self) -> None:
        """Wake the owner if it sleeps or is about to. Callable from any OS thread."""
        if self.armed:
            self.armed = False
            os.eventfd_write(self._fd, 1)

    def sleep(self, timeout_s: float) -> list[int]:
        """Block until notified, an added fd is ready, or ``timeout_s`` passes (-1: no limit).

        Returns the ready fds other than the internal eventfd.
        """
        events = self._epoll.poll(timeout_s)
        self.armed = False
        ready: list[int] = []
        for fd, _ in events:
            if fd == self._fd:
                self.wakeups += 1
                try:
                    os.eventfd_read(self._fd)
                except BlockingIOError:
                    pass
            else:
                ready.append(fd)
        return ready

    def close(self) -> None:
        self._epoll.close()
        os.close(self._fd)
