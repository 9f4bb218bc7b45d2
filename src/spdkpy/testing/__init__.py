"""Test doubles shipped as public API: a mock clock and deterministic thread and reactor harnesses.

:class:`ThreadHarness` is SPDK's ``ut_multithread``: it initialises the thread library with no
framework and a :class:`MockClock`, allocates N lightweight threads and steps them on the calling
OS thread, so tests can assert ordering and statistics exactly, with no real time passing.

    with ThreadHarness(3) as h:
        h.threads[0].send_msg(fn)
        h.poll_threads()
        h.delay_us(1000)   # timed pollers due now run in the next poll

:class:`ReactorHarness` does the same one layer up: reactors for a core set, never started, whose
iterations the test runs by hand on its own OS thread, so placement and event order are exact.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Final, final

from spdkpy.env import TICKS_PER_SECOND, CpuSet, us_to_ticks
from spdkpy.event import ReactorFramework, reactors_fini, reactors_init
from spdkpy.thread import Thread, get_thread, set_thread, thread_lib_fini, thread_lib_init

__all__ = ["MockClock", "ReactorHarness", "ThreadHarness", "make_self_signed_cert"]


@final
class MockClock:
    """A clock that moves only when told to (``spdk_delay_us`` in SPDK's unit tests)."""

    __slots__ = ("ticks",)

    ticks_per_second: Final = TICKS_PER_SECOND

    def __init__(self, start: int = 1) -> None:
        # Tick 0 means "read the clock" to Thread.poll, so a mock clock starts at 1.
        self.ticks = start

    def now(self) -> int:
        return self.ticks

    def advance(self, ticks: int) -> None:
        if ticks < 0:
            raise ValueError("a clock cannot go backwards")
        self.ticks += ticks

    def delay_us(self, us: int) -> None:
        self.advance(us_to_ticks(us))


@final
class ThreadHarness:
    """N lightweight threads stepped deterministically on one OS thread."""

    def __init__(self, count: int = 1, *, msg_mempool_size: int = 262143) -> None:
        self.clock = MockClock()
        self.library = thread_lib_init(msg_mempool_size=msg_mempool_size, clock=self.clock)
        self.threads: list[Thread] = []
        self.allocate_threads(count)
        if self.threads:
            set_thread(self.threads[0])

    def allocate_threads(self, count: int) -> list[Thread]:
        """Create ``count`` more threads named ``ut_thread<i>``, each with a one-core mask."""
        made: list[Thread] = []
        for _ in range(count):
            i = len(self.threads)
            thread = Thread(f"ut_thread{i}", CpuSet([i % 1024]))
            self.threads.append(thread)
            made.append(thread)
        return made

    def set_thread(self, index: int | None) -> None:
        """Make thread ``index`` current (``None``: no current thread), for direct API calls."""
        set_thread(None if index is None else self.threads[index])

    @property
    def current(self) -> Thread | None:
        return get_thread()

    def poll_thread(self, index: int, max_msgs: int = 0) -> int:
        """Poll thread ``index`` once at the mock time; returns its poll result."""
        thread = self.threads[index]
        if thread.is_exited() and thread.is_idle():
            return 0
        return thread.poll(max_msgs, self.clock.now())

    def poll_threads(self, max_rounds: int = 100_000) -> int:
        """Poll every thread until a whole round does no work; returns the rounds that did."""
        for busy_rounds in range(max_rounds):
            busy = False
            for i in range(len(self.threads)):
                if self.poll_thread(i) > 0:
                    busy = True
            if not busy:
                return busy_rounds
        raise AssertionError(f"threads still busy after {max_rounds} rounds")

    def delay_us(self, us: int) -> None:
        self.clock.delay_us(us)

    def free_threads(self) -> None:
        """Exit every thread, poll until all have exited, destroy them, release the library."""
        for thread in self.threads:
            if thread.is_running():
                set_thread(thread)
                thread.exit()
        set_thread(None)
        for _ in range(1000):
            if all(t.is_exited() for t in self.threads):
                break
            self.poll_threads()
            if not all(t.is_exited() for t in self.threads):
                self.delay_us(1_000_000)
        for thread in self.threads:
            if thread.is_exited():
                thread.destroy()
        self.threads.clear()
        thread_lib_fini()

    def __enter__(self) -> ThreadHarness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.free_threads()
        else:
            # Leave nothing behind for the next test, without masking the real failure.
            set_thread(None)
            thread_lib_fini()


@final
class ReactorHarness:
    """Reactors for ``cores`` on a :class:`MockClock`, stepped by the test on one OS thread.

    Nothing is pinned and no OS thread is started; :meth:`step` runs reactor iterations in core
    order (or the order given), so placement, events and accounting are deterministic.
    """

    def __init__(self, cores: CpuSet, main_core: int | None = None) -> None:
        self.clock = MockClock()
        self.framework: ReactorFramework = reactors_init(cores, main_core, clock=self.clock)

    def step(self, rounds: int = 1, order: list[int] | None = None) -> None:
        """Run ``rounds`` iterations of every reactor, in ``order`` (default: core order)."""
        cores = order if order is not None else list(self.framework.cores)
        for _ in range(rounds):
            for core in cores:
                self.framework.reactor(core).run_once()

    def run_until_idle(self, max_rounds: int = 100_000) -> int:
        """Step until a whole round does no work; returns the rounds that did."""
        for rounds in range(max_rounds):
            worked = False
            for core in self.framework.cores:
                if self.framework.reactor(core).run_once():
                    worked = True
            if not worked:
                return rounds
        raise AssertionError(f"reactors still busy after {max_rounds} rounds")

    def hosted(self) -> dict[str, int]:
        """Which core hosts each thread, by thread name (from the reactors' thread lists)."""
        return {
            lw.thread.name: core
            for core in self.framework.cores
            for lw in self.framework.reactor(core).threads
        }

    def close(self) -> None:
        set_thread(None)
        reactors_fini()

    def __enter__(self) -> ReactorHarness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def make_self_signed_cert(directory: Path, name: str) -> tuple[str, str]:
    """A self-signed P-256 certificate for 127.0.0.1, its own CA: ``(cert_path, key_path)``.

    Made with the ``openssl`` command (``FileNotFoundError`` if it is missing), for TLS tests.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the openssl command is needed to make a test certificate")
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return str(cert), str(key)
