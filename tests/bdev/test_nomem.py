"""The two out-of-memory paths (SPEC-STORAGE A1.2, A1.5): no free ``BdevIo`` (a ``NOMEM``
result and ``queue_io_wait``) and a module that completes with NOMEM (requeue and retry)."""

from __future__ import annotations

import errno

import pytest

from spdkpy import bdev as B
from spdkpy.errors import BdevError


def _restart(env, pool: int, cache: int) -> None:
    env.on(0)
    B.bdev_finish(lambda: None)
    env.poll()
    B.set_bdev_opts(B.BdevOpts(bdev_io_pool_size=pool, bdev_io_cache_size=cache))
    rcs: list[int] = []
    B.bdev_initialize(rcs.append)
    assert rcs == [0]


def test_pool_exhaustion_returns_nomem_and_the_wait_entry_fires(env, scripted) -> None:
    _restart(env, pool=16, cache=2)
    disk = scripted()
    disk.mode = "hold"
    desc = env.open("Scripted0", thread=1)
    ch1 = env.channel(desc, thread=1)
    ch2 = env.channel(desc, thread=2)  # takes its own cache of 2 from the pool
    env.on(1)
    done: list[int] = []

    def cb(io: B.BdevIo, success: bool, tag: int) -> None:
        assert success
        done.append(tag)
        io.free()

    results = [desc.read_blocks(ch1, bytearray(512), 0, 1, cb, i) for i in range(15)]
    assert results == [B.SubmitStatus.SUBMITTED] * 14 + [B.SubmitStatus.NOMEM]
    assert len(disk.held) == 14
    # Refused: the entry names another bdev; fine: this bdev with an empty cache.
    other = B.BdevIoWaitEntry(env.malloc("Malloc9"), lambda arg: None)
    env.on(1)
    with pytest.raises(BdevError) as exc:
        B.queue_io_wait(desc.bdev, ch1, other)
    assert exc.value.errno == errno.EINVAL
    fired: list[str] = []

    def retry(arg: str) -> None:
        fired.append(arg)
        assert desc.read_blocks(ch1, bytearray(512), 0, 1, cb, 99) == B.SubmitStatus.SUBMITTED

    B.queue_io_wait(desc.bdev, ch1, B.BdevIoWaitEntry(desc.bdev, retry, "waited"))
    # Thread 2 gives its cached requests back to the pool; thread 1 still may not jump the
    # queue of its waiting entry.
    env.on(2)
    ch2.put()
    env.poll()
    env.on(1)
    assert desc.read_blocks(ch1, bytearray(512), 0, 1, cb, 100) == B.SubmitStatus.NOMEM
    assert fired == []
    disk.mode = "poll"
    disk.release()  # completes the 14 held: the first free runs the wait entry
    env.poll()
    assert fired == ["waited"]
    assert sorted(done) == [*range(14), 99]
    env.close(desc, ch1)


def test_queue_io_wait_refused_while_the_cache_has_requests(env) -> None:
    env.malloc()
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    entry = B.BdevIoWaitEntry(desc.bdev, lambda arg: None)
    with pytest.raises(BdevError) as exc:
        B.queue_io_wait(desc.bdev, ch, entry)
    assert exc.value.errno == errno.EINVAL
    assert "per-thread cache" in str(exc.value)
    env.close(desc, ch)


def test_channel_creation_fails_when_the_pool_cannot_fill_the_cache(env, scripted) -> None:
    _restart(env, pool=8, cache=2)
    disk = scripted()
    disk.mode = "hold"
    desc = env.open("Scripted0", thread=1)
    ch1 = env.channel(desc, thread=1)
    env.on(1)
    submitted = 0
    while desc.read_blocks(ch1, bytearray(512), 0, 1, lambda io, ok, arg: io.free()) == 0:
        submitted += 1
    assert submitted == 8
    env.on(2)
    with pytest.raises(BdevError) as exc:
        desc.get_io_channel()
    assert exc.value.errno == errno.ENOMEM
    disk.release()
    env.poll()
    env.close(desc, ch1)


def test_pool_smaller_than_the_caches_is_refused() -> None:
    from spdkpy.testing import ThreadHarness

    with ThreadHarness(1, msg_mempool_size=4095) as h:
        h.set_thread(0)
        with pytest.raises(BdevError) as exc:
            B.set_bdev_opts(B.BdevOpts(bdev_io_pool_size=100, bdev_io_cache_size=64))
        assert str(exc.value) == "Pool size 100 too small for cache size 64"
        assert B.get_bdev_opts() == B.BdevOpts()


def test_module_nomem_is_retried_once_completions_drain(env, scripted) -> None:
    disk = scripted()
    disk.nomem = 3
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    done: list[tuple[int, bool]] = []

    def cb(io: B.BdevIo, success: bool, tag: int) -> None:
        done.append((tag, success))
        io.free()

    for i in range(5):
        desc.read_blocks(ch, bytearray(512), i, 1, cb, i)
    env.poll()
    assert sorted(done) == [(i, True) for i in range(5)]
    assert len(disk.submitted) == 8  # three went twice
    assert ch.ctx.shared.io_outstanding == 0
    env.close(desc, ch)


def test_module_nomem_with_nothing_outstanding_retries_from_a_poller(env, scripted) -> None:
    disk = scripted()
    disk.nomem = 1
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    done: list[int] = []

    def cb(io: B.BdevIo, success: bool, tag: int) -> None:
        assert success
        done.append(tag)
        io.free()

    desc.read_blocks(ch, bytearray(512), 0, 1, cb, 0)
    env.poll()
    assert done == []
    assert len(disk.submitted) == 1
    # While the NOMEM queue holds a request, new ones queue behind it, in order.
    env.on(1)
    desc.read_blocks(ch, bytearray(512), 1, 1, cb, 1)
    env.poll()
    assert len(disk.submitted) == 1
    env.h.delay_us(10_000)
    env.poll()
    assert done == [0, 1]
    assert [offset for _, offset, _, _ in disk.submitted] == [0, 0, 1]
    env.close(desc, ch)
