"""The ``aio`` bdev module on real files in ``tmp_path``, through the bdev layer: data byte-exact
(contiguous, vectored, misaligned buffers bounced), flush, fallocate-backed unmap/write_zeroes,
read-only disks, out-of-range I/O, NOMEM when a channel is full, reset, rescan (grow, shrink,
size 0), delete with I/O in flight, create errors, info/config JSON, and a real reactor that
sleeps until aio completions wake it (SPEC-STORAGE A2)."""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spdkpy import bdev as B
from spdkpy.bdev import _aio
from spdkpy.bdev._aio_engine import available_backends
from spdkpy.errors import BdevError

BS = 512
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["io_uring", "threads"])
def backend(request: pytest.FixtureRequest, env: Any) -> str:
    """Both engine backends (the module's ``backend`` is set after the layer's init)."""
    name: str = request.param
    if name not in available_backends():
        pytest.skip(f"{name} backend unavailable here")
    B.AIO_MODULE.backend = name
    return name


def pattern(blocks: int, seed: int = 1, block_size: int = BS) -> bytes:
    return bytes((seed * 31 + i * 7) % 251 for i in range(blocks * block_size))


def make_file(path: Path, blocks: int, block_size: int = BS) -> str:
    path.write_bytes(pattern(blocks, seed=9, block_size=block_size))
    return str(path)


def wait_for(env: Any, cond: Callable[[], bool], what: str = "completions") -> None:
    """Poll the harness threads (and move the mock clock) until ``cond()``: the file I/O
    finishes in real time, outside the harness."""
    deadline = time.monotonic() + 20
    while not cond():
        env.poll()
        env.h.delay_us(100)
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.0002)
    env.poll()


def aio(env: Any, path: str, name: str = "Aio0", **kw: Any) -> B.Bdev:
    env.on(0)
    return B.create_aio_bdev(B.AioOpts(name=name, filename=path, **kw))


def aligned(nbytes: int, data: bytes | None = None) -> memoryview:
    buf = B.alloc_io_buffer(nbytes, 4096)
    if data is not None:
        buf[:] = data
    return buf


# ---------------------------------------------------------------------------- data


def test_read_after_write_byte_exact_on_the_submitting_thread(
    env: Any, completions: Any, backend: str, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "disk", 64)
    bdev = aio(env, path, block_size=BS)
    assert (bdev.block_size, bdev.num_blocks, bdev.product_name) == (BS, 64, "AIO disk")
    desc = env.open("Aio0")
    ch = env.channel(desc)
    data = pattern(4, seed=2)
    rc = desc.write_blocks(ch, aligned(4 * BS, data), 10, 4, completions, "w")
    assert rc == B.SubmitStatus.SUBMITTED
    wait_for(env, lambda: len(completions.done) == 1)
    got = aligned(4 * BS)
    desc.read_blocks(ch, got, 10, 4, completions, "r")
    # Misaligned pieces (bytearrays, odd lengths) are bounced through an aligned buffer.
    parts = [bytearray(100), bytearray(1000), bytearray(948)]
    desc.readv_blocks(ch, parts, 10, 4, completions, "rv")
    desc.read_blocks(ch, None, 10, 4, completions, "nobuf")
    wait_for(env, lambda: len(completions.done) == 4)
    assert sorted(completions.tags(success=True)) == ["nobuf", "r", "rv", "w"]
    assert {thread for _, _, thread, _ in completions.done} == {"ut_thread1"}
    assert bytes(got) == data
    assert b"".join(parts) == data
    assert completions.data["nobuf"] == data
    # A gathered write from unaligned buffers, and a write from a longer buffer.
    env.on(2)
    ch2 = desc.get_io_channel()  # another thread's channel: its own engine
    desc.writev_blocks(ch2, [bytearray(b"\x01" * 700), bytearray(b"\x02" * 324)], 0, 2, completions)
    long_buf = bytearray(b"\x03" * (3 * BS))
    desc.write_blocks(ch2, long_buf, 2, 2, completions, "long")
    wait_for(env, lambda: len(completions.done) == 6)
    assert completions.done[-1][2] == "ut_thread2"
    assert all(ok for _, ok, _, _ in completions.done)
    env.close(desc, ch)
    env.on(2)
    ch2.put()
    env.poll()
    on_disk = Path(path).read_bytes()
    assert on_disk[: 4 * BS] == b"\x01" * 700 + b"\x02" * 324 + b"\x03" * (2 * BS)
    assert on_disk[10 * BS : 14 * BS] == data
    assert on_disk[4 * BS : 10 * BS] == pattern(64, seed=9)[4 * BS : 10 * BS]
    stat = env.stat(bdev)
    assert (stat.num_read_ops, stat.num_write_ops) == (3, 3)
    assert stat.bytes_read == 12 * BS


def test_out_of_range_and_short_buffers_are_refused_at_submit(
    env: Any, completions: Any, tmp_path: Path
) -> None:
    aio(env, make_file(tmp_path / "disk", 16), block_size=BS)
    desc = env.open("Aio0")
    ch = env.channel(desc)
    for offset, num in ((16, 1), (15, 2), (-1, 1)):
        with pytest.raises(BdevError) as exc:
            desc.read_blocks(ch, aligned(2 * BS), offset, num, completions)
        assert exc.value.errno == errno.EINVAL
    with pytest.raises(BdevError) as exc:
        desc.write_blocks(ch, aligned(BS), 0, 2, completions)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(BdevError) as exc:
        desc.read(ch, aligned(BS), 100, BS, completions)  # byte offset not a block multiple
    assert exc.value.errno == errno.EINVAL
    env.poll()
    assert completions.done == []
    env.close(desc, ch)


def test_flush_unmap_and_write_zeroes_with_fallocate(
    env: Any, completions: Any, backend: str, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "disk", 32)
    bdev = aio(env, path, block_size=BS, fallocate=True)
    supported = bdev.to_json()["supported_io_types"]
    assert isinstance(supported, dict)
    assert (supported["unmap"], supported["write_zeroes"], supported["flush"]) == (True,) * 3
    desc = env.open("Aio0")
    ch = env.channel(desc)
    desc.unmap_blocks(ch, 2, 3, completions, "unmap")
    desc.write_zeroes_blocks(ch, 8, 4, completions, "wz")
    desc.flush_blocks(ch, 0, 32, completions, "flush")
    wait_for(env, lambda: len(completions.done) == 3)
    assert sorted(completions.tags(success=True)) == ["flush", "unmap", "wz"]
    out = aligned(32 * BS)
    desc.read_blocks(ch, out, 0, 32, completions, "r")
    wait_for(env, lambda: len(completions.done) == 4)
    expected = bytearray(pattern(32, seed=9))
    expected[2 * BS : 5 * BS] = bytes(3 * BS)
    expected[8 * BS : 12 * BS] = bytes(4 * BS)
    assert bytes(out) == bytes(expected)
    assert os.path.getsize(path) == 32 * BS  # the punched hole keeps the size
    assert env.stat(bdev).num_unmap_ops == 1
    env.close(desc, ch)


def test_without_fallocate_unmap_fails_and_write_zeroes_is_emulated(
    env: Any, completions: Any, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "disk", 16)
    bdev = aio(env, path, block_size=BS)
    supported = bdev.to_json()["supported_io_types"]
    assert isinstance(supported, dict)
    assert supported["unmap"] is False
    assert supported["write_zeroes"] is True  # the layer writes zeroes itself
    desc = env.open("Aio0")
    ch = env.channel(desc)
    desc.unmap_blocks(ch, 0, 2, completions, "unmap")
    desc.write_zeroes_blocks(ch, 4, 2, completions, "wz")
    wait_for(env, lambda: len(completions.done) == 2)
    assert completions.tags(success=False) == ["unmap"]
    assert completions.status_of("unmap") == B.IoStatus.AIO_ERROR  # SPDK: aio status -ENOTSUP
    assert completions.tags(success=True) == ["wz"]
    env.close(desc, ch)
    on_disk = Path(path).read_bytes()
    assert on_disk[4 * BS : 6 * BS] == bytes(2 * BS)
    assert on_disk[: 4 * BS] == pattern(16, seed=9)[: 4 * BS]


def test_a_readonly_disk_fails_writes_and_serves_reads(
    env: Any, completions: Any, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "disk", 8)
    bdev = aio(env, path, block_size=BS, readonly=True)
    desc = env.open("Aio0", write=True)  # the descriptor may write; the disk refuses
    ch = env.channel(desc)
    desc.write_blocks(ch, aligned(BS, pattern(1, seed=4)), 0, 1, completions, "w")
    got = aligned(BS)
    desc.read_blocks(ch, got, 1, 1, completions, "r")
    wait_for(env, lambda: len(completions.done) == 2)
    assert completions.tags(success=False) == ["w"]
    assert completions.status_of("w") == B.IoStatus.FAILED
    assert bytes(got) == pattern(8, seed=9)[BS : 2 * BS]
    assert Path(path).read_bytes() == pattern(8, seed=9)
    info = bdev.to_json()["driver_specific"]
    assert info == {
        "aio": {
            "filename": path,
            "block_size_override": True,
            "readonly": True,
            "fallocate": False,
            "nowait": False,
        }
    }
    env.close(desc, ch)


def test_a_full_channel_answers_nomem_and_the_layer_retries(
    env: Any, completions: Any, backend: str, tmp_path: Path
) -> None:
    aio(env, make_file(tmp_path / "disk", 64), block_size=BS)
    desc = env.open("Aio0")
    ch = env.channel(desc)
    count = _aio.AIO_QUEUE_DEPTH + 72
    bufs = [aligned(BS) for _ in range(count)]
    for i, buf in enumerate(bufs):
        desc.read_blocks(ch, buf, i % 64, 1, completions, i)
    fch = ch.ctx.module_ch.ctx
    assert fch.engine.refused >= 1  # the 129th found the engine full: NOMEM, queued
    wait_for(env, lambda: len(completions.done) == count)
    assert sorted(completions.tags(success=True)) == list(range(count))
    data = pattern(64, seed=9)
    assert all(bytes(buf) == data[(i % 64) * BS : (i % 64 + 1) * BS] for i, buf in enumerate(bufs))
    env.close(desc, ch)


def test_reset_completes_after_the_io_in_flight(env: Any, completions: Any, tmp_path: Path) -> None:
    aio(env, make_file(tmp_path / "disk", 64), block_size=BS)
    desc = env.open("Aio0")
    ch = env.channel(desc)
    for i in range(16):
        desc.read_blocks(ch, aligned(4 * BS), 4 * (i % 16), 4, completions, i)
    desc.reset(ch, completions, "reset")
    wait_for(env, lambda: len(completions.done) == 17)
    assert completions.done[-1][0] == "reset"
    assert all(ok for _, ok, _, _ in completions.done)
    env.close(desc, ch)


# ---------------------------------------------------------------------------- rescan / delete


def test_rescan_grows_refuses_to_shrink_and_size_zero_removes(
    env: Any, completions: Any, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "disk", 16)
    bdev = aio(env, path, block_size=BS)
    desc = env.open("Aio0")
    ch = env.channel(desc)
    os.truncate(path, 40 * BS)
    env.on(0)
    B.rescan_aio_bdev("Aio0")
    env.poll()
    assert bdev.num_blocks == 40
    assert env.events == [("Aio0", B.BdevEvent.RESIZE, "ut_thread1")]
    desc.read_blocks(ch, aligned(BS), 39, 1, completions, "new end")  # the grown part reads
    wait_for(env, lambda: len(completions.done) == 1)
    assert completions.tags(success=True) == ["new end"]
    # A shrink is refused: the rescan holds a descriptor of its own (as SPDK's does).
    os.truncate(path, 8 * BS)
    env.on(0)
    with pytest.raises(BdevError) as exc:
        B.rescan_aio_bdev("Aio0")
    assert exc.value.errno == errno.EBUSY
    assert bdev.num_blocks == 40
    # Reading past the file's new end is short: FAILED.
    desc.read_blocks(ch, aligned(BS), 20, 1, completions, "gone")
    wait_for(env, lambda: len(completions.done) == 2)
    assert completions.status_of("gone") == B.IoStatus.FAILED
    # Size 0: hot remove. The open descriptor is told; the bdev goes once it is closed.
    os.truncate(path, 0)
    env.on(0)
    B.rescan_aio_bdev("Aio0")
    env.poll()
    assert env.events[-1] == ("Aio0", B.BdevEvent.REMOVE, "ut_thread1")
    env.close(desc, ch)
    env.poll()
    assert B.get_bdev("Aio0") is None
    with pytest.raises(BdevError) as exc:
        B.rescan_aio_bdev("Aio0")
    assert exc.value.errno == errno.ENODEV


def test_io_failing_on_an_emptied_file_hot_removes_the_bdev(
    env: Any, completions: Any, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "disk", 16)
    aio(env, path, block_size=BS)
    desc = env.open("Aio0")
    ch = env.channel(desc)
    os.truncate(path, 0)
    desc.read_blocks(ch, aligned(BS), 3, 1, completions, "r")
    wait_for(env, lambda: len(completions.done) == 1 and bool(env.events))
    assert completions.status_of("r") == B.IoStatus.AIO_ERROR  # -ENODEV
    assert env.events == [("Aio0", B.BdevEvent.REMOVE, "ut_thread1")]
    env.close(desc, ch)
    env.poll()
    assert B.get_bdev("Aio0") is None


def test_delete_with_io_in_flight_completes_every_io(
    env: Any, completions: Any, backend: str, tmp_path: Path
) -> None:
    path = make_file(tmp_path / "disk", 64)
    bdev = aio(env, path, block_size=BS)
    disk = bdev.ctxt
    assert isinstance(disk, _aio.AioDisk)
    users = []
    for thread in (1, 2):
        desc = env.open("Aio0", thread=thread)
        ch = env.channel(desc, thread=thread)
        users.append((thread, desc, ch))
        for i in range(32):
            desc.read_blocks(ch, aligned(2 * BS), 2 * i, 2, completions, (thread, i))
    rcs: list[int] = []
    env.on(0)
    B.delete_aio_bdev("Aio0", rcs.append)
    env.poll()
    # REMOVE, each on its descriptor's thread.
    assert sorted(env.events) == [
        ("Aio0", B.BdevEvent.REMOVE, "ut_thread1"),
        ("Aio0", B.BdevEvent.REMOVE, "ut_thread2"),
    ]
    wait_for(env, lambda: len(completions.done) == 64)
    assert len(completions.tags(success=True)) == 64
    assert all(thread == f"ut_thread{tag[0]}" for tag, _, thread, _ in completions.done)
    for thread, desc, ch in users:
        env.close(desc, ch, thread=thread)
    wait_for(env, lambda: rcs == [0], "the unregister")
    assert B.get_bdev("Aio0") is None
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(disk.fd)  # the disk's file is closed
    env.on(0)
    with pytest.raises(BdevError) as exc:
        B.delete_aio_bdev("Aio0")
    assert exc.value.errno == errno.ENODEV


# ---------------------------------------------------------------------------- create


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_create_errors_are_spdks_and_leak_nothing(env: Any, tmp_path: Path) -> None:
    path = make_file(tmp_path / "disk", 8)
    odd = tmp_path / "odd"
    odd.write_bytes(bytes(1000))
    before = _open_fds()
    cases: list[tuple[dict[str, Any], int]] = [
        ({"filename": str(tmp_path / "missing"), "block_size": BS}, errno.ENOENT),
        ({"filename": path}, errno.EINVAL),  # a regular file: no size to detect
        ({"filename": path, "block_size": 256}, errno.EINVAL),
        ({"filename": path, "block_size": 1536}, errno.EINVAL),
        ({"filename": str(odd), "block_size": BS}, errno.EINVAL),
        ({"filename": path, "block_size": BS, "nowait": True}, errno.ENOTSUP),
    ]
    for kw, code in cases:
        with pytest.raises(BdevError) as exc:
            aio(env, kw.pop("filename"), name="Bad", **kw)
        assert exc.value.errno == code, kw
    aio(env, path, block_size=BS)
    with pytest.raises(BdevError) as exc:
        aio(env, path, block_size=BS)  # the same name again
    assert exc.value.errno == errno.EEXIST
    assert [b.name for b in B.bdevs()] == ["Aio0"]
    assert _open_fds() == before + 1  # Aio0's own descriptor only


def test_info_and_config_entries(env: Any, tmp_path: Path) -> None:
    path = make_file(tmp_path / "disk", 8, block_size=4096)
    fixed = uuid.UUID("0f0e0d0c-0b0a-0908-0706-050403020100")
    bdev = aio(env, path, block_size=4096, fallocate=True, uuid=fixed)
    assert bdev.required_alignment == 12  # nothing detected: the block size
    assert bdev.write_cache is True
    assert bdev.to_json()["aliases"] == [str(fixed)]
    [entry] = bdev.fn_table.write_config_json()
    assert entry == {
        "method": "bdev_aio_create",
        "params": {
            "name": "Aio0",
            "block_size": 4096,
            "filename": path,
            "readonly": False,
            "fallocate": True,
            "uuid": str(fixed),
            "nowait": False,
        },
    }
    methods = [e["method"] for e in B.bdev_config_json()]
    assert methods == ["bdev_set_options", "bdev_aio_create", "bdev_wait_for_examine"]


# ---------------------------------------------------------------------------- a real reactor


def test_a_sleeping_reactor_is_woken_by_aio_completions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Write, flush and read back through the bdev layer from an SPDK thread on a real reactor
    whose only poller is the aio group poller, with no timer: it sleeps on the group's wake fd
    (the flush's fsync is made slow so that it surely sleeps), and a wake fd that never became
    readable would leave the run stuck for good (the test then fails after 30 s)."""
    from spdkpy.env import CpuSet, available_cores
    from spdkpy.event import reactors_fini, reactors_init
    from spdkpy.thread import Thread, get_thread

    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.05)  # on the engine's helper thread, never on the reactor
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    path = make_file(tmp_path / "disk", 16)
    framework = reactors_init(CpuSet(sorted(available_cores())[:1]))
    reactor = framework.reactor(framework.main_core)
    seen: list[tuple[str, bool, str]] = []
    data = pattern(2, seed=5)
    back = aligned(2 * BS)
    state: dict[str, Any] = {}

    def start(app: Thread) -> None:
        B.bdev_initialize(lambda rc: None)
        B.create_aio_bdev(B.AioOpts(name="Aio0", filename=path, block_size=BS))
        desc = B.open_bdev("Aio0", True, lambda event, bdev: None)
        ch = desc.get_io_channel()
        state["sleeps"] = reactor.sleeps

        def done(io: B.BdevIo, ok: bool, step: str) -> None:
            io.free()
            current = get_thread()
            seen.append((step, ok, current.name if current is not None else "?"))
            if step == "write":
                desc.flush_blocks(ch, 0, 16, done, "flush")
            elif step == "flush":
                desc.read_blocks(ch, back, 3, 2, done, "read")
            else:
                state["slept"] = reactor.sleeps - state["sleeps"]
                ch.put()
                desc.close()
                B.bdev_finish(framework.stop)

        desc.write_blocks(ch, aligned(2 * BS, data), 3, 2, done, "write")

    def run() -> None:
        try:
            app = Thread("app_thread", CpuSet([framework.main_core]))
            app.send_msg(start, app)
            framework.start()
        finally:
            reactors_fini()

    host = threading.Thread(target=run, name="aio_bdev_test_main")
    host.start()
    host.join(30)
    if host.is_alive():
        framework.stop()
        host.join(10)
        pytest.fail("the reactor was never woken by the aio completions")
    assert seen == [
        ("write", True, "app_thread"),
        ("flush", True, "app_thread"),
        ("read", True, "app_thread"),
    ]
    assert bytes(back) == data
    assert state["slept"] >= 1  # it did sleep between submissions and completions
