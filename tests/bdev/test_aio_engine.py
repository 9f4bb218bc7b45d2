"""The aio module's I/O engine on real files: both backends where they work, O_DIRECT rules,
end of file, the depth limit, close with I/O in flight, the wake fd, and a real sleeping reactor."""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import spdkpy.bdev._aio_engine as aio_engine
from spdkpy.bdev._aio_engine import AioEngine, alloc_aligned, available_backends
from spdkpy.env import CpuSet, available_cores
from spdkpy.errors import (
    AlignmentError,
    InputError,
    InvalidStateError,
    NotSupportedError,
    QueueFullError,
    SpdkpyError,
)

BS = 4096
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["io_uring", "threads"])
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name not in available_backends():
        pytest.skip(f"{name} backend unavailable here: {aio_engine._io_uring_refusal()}")
    return name


def pattern(block: int, size: int = BS) -> bytes:
    """Distinct, position-dependent bytes for each block."""
    head = block.to_bytes(4, "little")
    return (head + bytes((block * 7 + i) % 251 for i in range(252)))[:256] * (size // 256)


def make_file(path: Path, blocks: int) -> Path:
    path.write_bytes(b"".join(pattern(b) for b in range(blocks)))
    return path


class Recorder:
    """``on_complete`` that records results, optionally running a hook after each."""

    def __init__(self) -> None:
        self.results: dict[Any, int] = {}
        self.order: list[Any] = []
        self.hook: Callable[[Any, int], None] | None = None

    def __call__(self, cookie: Any, result: int) -> None:
        assert cookie not in self.results, f"{cookie!r} completed twice"
        self.results[cookie] = result
        self.order.append(cookie)
        if self.hook is not None:
            self.hook(cookie, result)


def drive(engine: AioEngine[Any], done: Callable[[], bool], max_events: int = 128) -> None:
    """Poll until ``done()``, sleeping on ``wake_fd`` after *every* poll, busy or not: stricter
    than a reactor (which polls again after a busy poll), so it also checks that once ``poll``
    returns, all work still pending (submitted from callbacks, or more finished I/O than it took)
    will make the fd readable. A quiet fd fails the test instead of hanging it."""
    sleeper = select.epoll()
    sleeper.register(engine.wake_fd, select.EPOLLIN)
    try:
        while True:
            engine.poll(max_events)
            if done():
                return
            if not sleeper.poll(10.0) and not done():
                pytest.fail(f"wake fd stayed quiet with {engine.in_flight} I/Os in flight")
    finally:
        sleeper.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def engines() -> Iterator[list[AioEngine[Any]]]:
    made: list[AioEngine[Any]] = []
    yield made
    for engine in made:
        engine.close()


def open_engine(
    engines: list[AioEngine[Any]], path: Path, recorder: Recorder, backend: str, **kw: Any
) -> AioEngine[Any]:
    engine: AioEngine[Any] = AioEngine(path, BS, recorder, backend=backend, **kw)  # type: ignore[arg-type]
    engines.append(engine)
    return engine


# --- data ---------------------------------------------------------------------------------------


def test_read_after_write_is_byte_exact_with_o_direct(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 16)
    engine = open_engine(engines, path, recorder, backend, depth=8)
    assert engine.backend == backend
    if not engine.direct:
        pytest.skip("this file system refuses O_DIRECT")
    data = alloc_aligned(3 * BS)
    data[:] = os.urandom(3 * BS)
    # One write from three buffers, read back as one buffer and as a different split.
    engine.submit_write(5 * BS, [data[:BS], data[BS : 2 * BS], data[2 * BS :]], "w")
    drive(engine, lambda: "w" in recorder.results)
    whole, first, rest = alloc_aligned(3 * BS), alloc_aligned(2 * BS), alloc_aligned(BS)
    engine.submit_read(5 * BS, whole, "r1")
    engine.submit_read(5 * BS, [first, rest], "r2")
    engine.submit_flush("f")
    drive(engine, lambda: len(recorder.results) == 4)
    assert recorder.results == {"w": 3 * BS, "r1": 3 * BS, "r2": 3 * BS, "f": 0}
    assert bytes(whole) == bytes(data) == bytes(first) + bytes(rest)
    engine.close()
    on_disk = path.read_bytes()
    assert on_disk[5 * BS : 8 * BS] == bytes(data)
    assert on_disk[4 * BS : 5 * BS] == pattern(4)
    assert on_disk[8 * BS : 9 * BS] == pattern(8)


def test_fallocate_punches_holes_and_zeroes_ranges(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 8)
    engine = open_engine(engines, path, recorder, backend)
    punch = aio_engine.FALLOC_FL_PUNCH_HOLE | aio_engine.FALLOC_FL_KEEP_SIZE
    engine.submit_fallocate(punch, 2 * BS, 2 * BS, "unmap")
    engine.submit_fallocate(aio_engine.FALLOC_FL_ZERO_RANGE, 6 * BS, BS, "zeroes")
    engine.submit_fallocate(0x7FFF0000, 0, BS, "bad mode")  # no such mode bits: -EOPNOTSUPP
    drive(engine, lambda: len(recorder.results) == 3)
    assert recorder.results["unmap"] == 0
    assert recorder.results["zeroes"] == 0
    assert recorder.results["bad mode"] < 0
    with pytest.raises(InputError):
        engine.submit_fallocate(punch, 0, 0, "empty")
    engine.close()
    on_disk = path.read_bytes()
    assert len(on_disk) == 8 * BS  # KEEP_SIZE
    expected = [pattern(b) for b in range(8)]
    expected[2] = expected[3] = expected[6] = bytes(BS)
    assert on_disk == b"".join(expected)


def test_buffered_mode_takes_any_offset_and_buffer(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 2)
    engine = open_engine(engines, path, recorder, backend, direct=False)
    assert not engine.direct
    engine.submit_write(100, b"hello, aio", "w")
    drive(engine, lambda: "w" in recorder.results)
    buf = bytearray(10)
    engine.submit_read(100, memoryview(buf), "r")
    drive(engine, lambda: "r" in recorder.results)
    assert recorder.results == {"w": 10, "r": 10}
    assert buf == b"hello, aio"


def test_non_byte_buffers_are_taken_as_bytes(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 2)
    engine = open_engine(engines, path, recorder, backend)
    words = alloc_aligned(BS).cast("I")  # 1024 unsigned ints over the same memory
    engine.submit_read(BS, words, "r")
    drive(engine, lambda: "r" in recorder.results)
    assert recorder.results["r"] == BS
    assert words.cast("B").tobytes() == pattern(1)


def test_qd32_every_completion_matches_its_cookie(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    blocks, total, depth = 64, 320, 32
    path = make_file(tmp_path / "f", blocks)
    engine = open_engine(engines, path, recorder, backend, depth=depth)
    buffers = {slot: alloc_aligned(BS) for slot in range(depth)}
    expected: dict[tuple[int, int], int] = {}  # cookie (seq, slot) -> block read into the slot
    peak = [0]

    def submit(seq: int, slot: int) -> None:
        block = (seq * 37) % blocks
        expected[(seq, slot)] = block
        engine.submit_read(block * BS, buffers[slot], (seq, slot))

    def on_done(cookie: Any, result: int) -> None:
        _seq, slot = cookie
        assert result == BS
        assert bytes(buffers[slot]) == pattern(expected[cookie]), f"{cookie} got other data"
        peak[0] = max(peak[0], engine.in_flight + 1)  # + this one, counted out before the call
        nxt = len(expected)
        if nxt < total:
            submit(nxt, slot)  # resubmitted from inside poll(): entered at its end

    recorder.hook = on_done
    for slot in range(depth):
        submit(slot, slot)
    assert engine.in_flight == depth
    drive(engine, lambda: len(recorder.results) == total)
    assert set(recorder.results) == set(expected)
    assert engine.in_flight == 0
    assert peak[0] == depth


def test_io_submitted_from_a_callback_reaches_the_kernel_when_poll_returns(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 8)
    engine = open_engine(engines, path, recorder, backend, depth=1)
    buf = alloc_aligned(BS)

    def next_read(cookie: Any, result: int) -> None:
        assert result == BS
        assert bytes(buf) == pattern(cookie)
        if cookie < 7:
            engine.submit_read((cookie + 1) * BS, buf, cookie + 1)  # the only I/O in flight

    recorder.hook = next_read
    engine.submit_read(0, buf, 0)
    drive(engine, lambda: len(recorder.results) == 8)
    assert recorder.order == list(range(8))


def test_depth_is_a_hard_limit_and_refusals_are_counted(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 8)
    engine = open_engine(engines, path, recorder, backend, depth=4)
    buffers = [alloc_aligned(BS) for _ in range(5)]
    for i in range(4):
        engine.submit_read(i * BS, buffers[i], i)
    with pytest.raises(QueueFullError, match="4 I/Os in flight"):
        engine.submit_read(0, buffers[4], 4)
    assert not engine.try_submit_read(0, buffers[4], 4)
    assert not engine.try_submit_flush(5)
    assert engine.refused == 3
    assert engine.in_flight == 4
    drive(engine, lambda: len(recorder.results) == 4)
    assert engine.try_submit_read(0, buffers[4], 4)
    drive(engine, lambda: len(recorder.results) == 5)
    assert recorder.results == dict.fromkeys(range(5), BS)


# --- errors and end of file --------------------------------------------------------------------


def test_o_direct_misalignment_is_a_typed_error_and_submits_nothing(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 4)
    engine = open_engine(engines, path, recorder, backend)
    if not engine.direct:
        pytest.skip("this file system refuses O_DIRECT")
    block = alloc_aligned(2 * BS)
    with pytest.raises(AlignmentError, match="offset 512 is not a multiple of 4096"):
        engine.submit_read(512, block[:BS], "a")
    with pytest.raises(AlignmentError, match="buffer length 512 is not a multiple"):
        engine.submit_read(0, [block[:BS], block[BS : BS + 512]], "b")
    with pytest.raises(AlignmentError, match=r"buffer address 0x[0-9a-f]+ is not aligned to 4096"):
        engine.submit_read(0, block[1 : BS + 1], "c")
    with pytest.raises(AlignmentError, match="buffer address"):
        engine.submit_write(0, block[8 : BS + 8].toreadonly(), "d")  # read-only memory too
    with pytest.raises(AlignmentError, match="buffer length"):
        engine.try_submit_write(0, b"x" * 100, "e")
    assert engine.in_flight == 0
    assert engine.refused == 0
    err = AlignmentError("x")
    assert isinstance(err, InputError)
    assert isinstance(err, SpdkpyError)
    assert err.errno == errno.EINVAL
    engine.submit_write(BS, block[:BS].toreadonly(), "ok")  # aligned read-only memory is fine
    drive(engine, lambda: "ok" in recorder.results)
    assert recorder.results == {"ok": BS}


def test_unusable_arguments_are_input_errors(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 4)
    engine = open_engine(engines, path, recorder, backend, direct=False)
    with pytest.raises(InputError, match="read-only buffer"):
        engine.submit_read(0, b"immutable", "a")
    with pytest.raises(InputError, match="at least one buffer"):
        engine.submit_read(0, [], "b")
    with pytest.raises(InputError, match="contiguous"):
        engine.submit_read(0, memoryview(bytearray(64))[::2], "s")
    with pytest.raises(InputError, match="must not be empty"):
        engine.submit_write(0, b"", "c")
    with pytest.raises(InputError, match="offset must be >= 0"):
        engine.submit_write(-1, b"x", "d")
    with pytest.raises(InputError, match="at most"):
        engine.submit_write(0, [b"x"] * (aio_engine.IOV_MAX + 1), "e")
    for kwargs in ({"depth": 0}, {"workers": 0}, {"backend": "spdk"}):
        with pytest.raises(InputError):
            AioEngine(path, BS, recorder, **kwargs)
    with pytest.raises(InputError, match="power of two"):
        AioEngine(path, 1000, recorder)
    with pytest.raises(FileNotFoundError):
        AioEngine(tmp_path / "missing", BS, recorder)
    assert engine.in_flight == 0
    assert not recorder.results


def test_reads_at_and_across_end_of_file_are_short(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 3)
    engine = open_engine(engines, path, recorder, backend)
    assert engine.size() == 3 * BS
    a, b, c = alloc_aligned(2 * BS), alloc_aligned(BS), alloc_aligned(BS)
    engine.submit_read(2 * BS, a, "across")  # 1 block left
    engine.submit_read(3 * BS, b, "at")
    engine.submit_read(2 * BS, [b, c], "split")  # second buffer entirely past the end
    drive(engine, lambda: len(recorder.results) == 3)
    assert recorder.results == {"across": BS, "at": 0, "split": BS}
    assert bytes(a[:BS]) == pattern(2)


def test_a_short_unaligned_file_reads_to_its_end(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"s" * 5000)
    engine = open_engine(engines, path, recorder, backend, direct=False)
    buf = bytearray(8192)
    engine.submit_read(0, buf, "r")
    drive(engine, lambda: "r" in recorder.results)
    assert recorder.results == {"r": 5000}
    assert buf[:5000] == b"s" * 5000
    assert buf[5000:] == bytes(3192)


def test_an_os_error_comes_back_as_a_negative_errno(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 2)
    engine = open_engine(engines, path, recorder, backend, readonly=True)
    engine.submit_write(0, alloc_aligned(BS), "w")
    drive(engine, lambda: "w" in recorder.results)
    assert recorder.results == {"w": -errno.EBADF}
    assert path.read_bytes() == pattern(0) + pattern(1)


# --- close ------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, None])
def test_close_with_io_in_flight_accounts_for_every_request(
    tmp_path: Path, backend: str, recorder: Recorder, workers: int | None
) -> None:
    path = make_file(tmp_path / "f", 64)
    engine: AioEngine[Any] = AioEngine(
        path, BS, recorder, depth=64, backend=backend, workers=workers
    )  # type: ignore[arg-type]
    buffers = [alloc_aligned(BS) for _ in range(63)]
    for i, buf in enumerate(buffers):
        engine.submit_read(i * BS, buf, i)
    engine.submit_flush("flush")
    engine.close()
    assert engine.closed
    assert engine.in_flight == 0
    assert set(recorder.results) == {*range(63), "flush"}  # each exactly once (Recorder checks)
    cancelled = -errno.ECANCELED
    for i in range(63):
        assert recorder.results[i] in (BS, cancelled)
        if recorder.results[i] == BS:
            assert bytes(buffers[i]) == pattern(i)
    assert recorder.results["flush"] in (0, cancelled)
    with pytest.raises(InvalidStateError, match="closed"):
        engine.submit_read(0, buffers[0], "late")
    with pytest.raises(InvalidStateError):
        engine.size()
    assert engine.poll() == 0
    engine.close()  # idempotent


def test_close_from_a_completion_callback_delivers_the_rest_once(
    tmp_path: Path, backend: str, recorder: Recorder
) -> None:
    path = make_file(tmp_path / "f", 16)
    engine: AioEngine[Any] = AioEngine(path, BS, recorder, depth=16, backend=backend)  # type: ignore[arg-type]
    for i in range(16):
        engine.submit_read(i * BS, alloc_aligned(BS), i)
    recorder.hook = lambda cookie, result: engine.close()
    drive(engine, lambda: bool(recorder.results))
    assert engine.closed
    assert sorted(recorder.results) == list(range(16))
    assert engine.in_flight == 0


def test_a_raising_callback_loses_no_completion(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 8)
    engine = open_engine(engines, path, recorder, backend)
    for i in range(8):
        engine.submit_read(i * BS, alloc_aligned(BS), i)

    def explode(cookie: Any, result: int) -> None:
        if cookie == 0:
            raise RuntimeError("callback failed")

    recorder.hook = explode
    with pytest.raises(RuntimeError, match="callback failed"):
        drive(engine, lambda: 0 in recorder.results)  # the poll that delivers 0 raises
    drive(engine, lambda: len(recorder.results) == 8)
    assert recorder.results == dict.fromkeys(range(8), BS)
    assert engine.in_flight == 0


# --- wake fd and backends ----------------------------------------------------------------------


def test_wake_fd_is_readable_exactly_while_completions_wait(
    tmp_path: Path, backend: str, recorder: Recorder, engines: list[AioEngine[Any]]
) -> None:
    path = make_file(tmp_path / "f", 8)
    engine = open_engine(engines, path, recorder, backend)
    recorder2 = Recorder()
    buffered = open_engine(engines, path, recorder2, backend, direct=False)
    watcher, watcher2 = select.epoll(), select.epoll()
    watcher.register(engine.wake_fd, select.EPOLLIN)
    watcher2.register(buffered.wake_fd, select.EPOLLIN)
    try:
        assert watcher.poll(0) == []
        engine.submit_read(0, alloc_aligned(BS), "r")
        assert watcher.poll(10.0) == [(engine.wake_fd, select.EPOLLIN)]
        drive(engine, lambda: "r" in recorder.results)
        assert watcher.poll(0) == []
        engine.submit_flush("f")  # the io_uring backend's flushes come from a helper thread
        assert watcher.poll(10.0) == [(engine.wake_fd, select.EPOLLIN)]
        drive(engine, lambda: "f" in recorder.results)
        assert watcher.poll(0) == []
        # More finished than one poll takes: the fd stays readable until all are delivered.
        # Cached reads finish at once; give them a moment so one poll finds several.
        for i in range(6):
            buffered.submit_read(i * BS, bytearray(BS), i)
        assert watcher2.poll(10.0)
        threading.Event().wait(0.05)
        while len(recorder2.results) < 6:
            assert watcher2.poll(10.0), "completions left undelivered but the wake fd is quiet"
            assert buffered.poll(max_events=1) <= 1
        assert watcher2.poll(0) == []
    finally:
        watcher.close()
        watcher2.close()


def test_backend_choice_is_logged_and_falls_back_to_threads(
    tmp_path: Path,
    recorder: Recorder,
    engines: list[AioEngine[Any]],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = make_file(tmp_path / "f", 2)
    monkeypatch.setattr(aio_engine, "_logged", set())
    with caplog.at_level(logging.INFO, logger="spdkpy.aio"):
        engine = open_engine(engines, path, recorder, "auto")
    assert engine.backend == available_backends()[0]
    lines = [r.getMessage() for r in caplog.records if r.name == "spdkpy.aio"]
    assert len(lines) == 1
    assert f"{'io_uring' if engine.backend == 'io_uring' else 'thread-pool'} backend" in lines[0]

    # As if the kernel refused io_uring (seccomp in a container, io_uring_disabled=2).
    caplog.clear()
    monkeypatch.setattr(aio_engine, "_uring_refusal", ["the kernel refuses io_uring (test)"])
    with caplog.at_level(logging.INFO, logger="spdkpy.aio"):
        fallback = open_engine(engines, path, recorder, "auto")
    assert fallback.backend == "threads"
    assert available_backends() == ("threads",)
    lines = [r.getMessage() for r in caplog.records if r.name == "spdkpy.aio"]
    assert lines == [
        "aio: thread-pool backend (os.preadv/os.pwritev); io_uring not used: "
        "the kernel refuses io_uring (test)"
    ]
    with pytest.raises(NotSupportedError, match="the kernel refuses io_uring"):
        AioEngine(path, BS, recorder, backend="io_uring")
    fallback.submit_read(0, alloc_aligned(BS), "r")
    drive(fallback, lambda: "r" in recorder.results)
    assert recorder.results == {"r": BS}


@pytest.mark.parametrize("alignment", [512, 4096, 1 << 21])
def test_alloc_aligned_gives_zeroed_aligned_writable_memory(alignment: int) -> None:
    buf = alloc_aligned(3 * 4096, alignment)
    assert buf.nbytes == 3 * 4096
    assert not buf.readonly
    assert aio_engine._address(buf) % alignment == 0
    assert bytes(buf) == bytes(3 * 4096)
    with pytest.raises(InputError):
        alloc_aligned(0)
    with pytest.raises(InputError):
        alloc_aligned(4096, 3000)


# --- under a real reactor ----------------------------------------------------------------------


def test_a_sleeping_reactor_is_woken_by_the_engine(tmp_path: Path, backend: str) -> None:
    """Write, flush and read back from an SPDK thread whose poller sleeps on ``wake_fd``: with
    no other poller or timer, a wake fd that never became readable would hang the app."""
    from spdkpy.event import reactors_fini, reactors_init
    from spdkpy.thread import POLLER_BUSY, POLLER_IDLE, Thread

    path = make_file(tmp_path / "f", 4)
    framework = reactors_init(CpuSet(sorted(available_cores())[:1]))
    seen: list[tuple[str, int]] = []
    data = alloc_aligned(BS)
    data[:] = os.urandom(BS)
    back = alloc_aligned(BS)

    def start(app: Thread) -> None:
        def on_complete(step: str, result: int) -> None:
            seen.append((step, result))
            if step == "write":
                engine.submit_flush("flush")
            elif step == "flush":
                engine.submit_read(2 * BS, back, "read")
            else:
                poller.unregister()
                engine.close()
                framework.stop()

        engine: AioEngine[str] = AioEngine(path, BS, on_complete, backend=backend)  # type: ignore[arg-type]
        poller = app.register_poller(
            lambda: POLLER_BUSY if engine.poll() else POLLER_IDLE,
            name="aio_group_poll",
            wake_fd=engine.wake_fd,
        )
        engine.submit_write(2 * BS, data, "write")

    def run() -> None:
        try:
            app = Thread("app_thread", CpuSet([framework.main_core]))
            app.send_msg(start, app)
            framework.start()
        finally:
            reactors_fini()

    # On its own OS thread: start() leaves the calling thread's current_core() set.
    host = threading.Thread(target=run, name="aio_test_main")
    host.start()
    host.join()
    assert seen == [("write", BS), ("flush", 0), ("read", BS)]
    assert bytes(back) == bytes(data)


def test_hand_back_channel_loses_no_wakeup_under_racing_producers() -> None:
    """Four OS threads hand back ops while the consumer takes small batches and sleeps on the
    eventfd whenever it finds nothing: every op arrives once, and the fd never stays quiet while
    ops wait (on free-threaded CPython too, where nothing here holds a GIL)."""
    producers, per_producer = 4, 3000
    done = aio_engine._Completions(producers * per_producer, "test")
    sleeper = select.epoll()
    sleeper.register(done.fd, select.EPOLLIN)

    def produce(base: int) -> None:
        for i in range(per_producer):
            done.put(aio_engine._Op(aio_engine._READ, base + i, 0, []))

    threads = [threading.Thread(target=produce, args=(p * per_producer,)) for p in range(producers)]
    for t in threads:
        t.start()
    seen: list[int] = []
    try:
        while len(seen) < producers * per_producer:
            ops = done.take(7)
            seen.extend(op.cookie for op in ops)
            if not ops and len(seen) < producers * per_producer and not sleeper.poll(10.0):
                pytest.fail(f"eventfd quiet with {len(done.ring)} ops waiting")
    finally:
        for t in threads:
            t.join()
        sleeper.close()
    assert sorted(seen) == list(range(producers * per_producer))
    assert done.take(7) == []
    assert sleeper_is_quiet(done.fd)
    done.close()


def sleeper_is_quiet(fd: int) -> bool:
    with select.epoll() as watcher:
        watcher.register(fd, select.EPOLLIN)
        return watcher.poll(0) == []
