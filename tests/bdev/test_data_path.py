"""Reads, writes, unmap, write_zeroes, flush through malloc and null: data, statuses, the
synchronous refusals of SPEC-STORAGE A1.3, and where completions run (A1.4)."""

from __future__ import annotations

import errno

import pytest

from spdkpy import bdev as B
from spdkpy.errors import BdevError


def _pattern(blocks: int, block_size: int = 512, seed: int = 1) -> bytearray:
    return bytearray((seed * 31 + i * 7) % 251 for i in range(blocks * block_size))


def test_malloc_read_after_write_contiguous_and_vectored(env, completions) -> None:
    env.malloc()
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    data = _pattern(4)
    assert desc.write_blocks(ch, data, 10, 4, completions, "w") == B.SubmitStatus.SUBMITTED
    env.poll()
    # Read it back in three pieces of different sizes.
    parts = [bytearray(512), bytearray(1024), bytearray(512)]
    desc.readv_blocks(ch, parts, 10, 4, completions, "rv")
    got = bytearray(2048)
    desc.read_blocks(ch, got, 10, 4, completions, "r")
    env.poll()
    assert completions.tags(success=True) == ["w", "rv", "r"]
    assert bytes(got) == bytes(data)
    assert b"".join(parts) == bytes(data)
    # A gathered write from two buffers lands in order.
    desc.writev_blocks(ch, [bytearray(b"\x01" * 512), bytearray(b"\x02" * 512)], 0, 2, completions)
    env.poll()
    back = bytearray(1024)
    desc.read(ch, back, 0, 1024, completions, "bytes")
    env.poll()
    assert back == b"\x01" * 512 + b"\x02" * 512
    env.close(desc, ch)


def test_malloc_read_without_a_buffer_points_at_the_disk(env, completions) -> None:
    env.malloc()
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    desc.write_blocks(ch, _pattern(1, seed=5), 3, 1, completions)
    desc.read_blocks(ch, None, 3, 1, completions, "nobuf")
    env.poll()
    assert completions.data["nobuf"] == bytes(_pattern(1, seed=5))
    env.close(desc, ch)


def test_malloc_unmap_and_write_zeroes_read_back_zeroes(env, completions) -> None:
    env.malloc()
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    desc.write_blocks(ch, _pattern(16), 0, 16, completions)
    env.poll()
    desc.unmap_blocks(ch, 2, 3, completions, "unmap")
    desc.write_zeroes_blocks(ch, 8, 4, completions, "wz")
    desc.flush_blocks(ch, 0, 16, completions, "flush")
    env.poll()
    assert completions.tags(success=True)[-3:] == ["unmap", "wz", "flush"]
    out = bytearray(16 * 512)
    desc.read_blocks(ch, out, 0, 16, completions)
    env.poll()
    expected = bytearray(_pattern(16))
    expected[2 * 512 : 5 * 512] = bytes(3 * 512)
    expected[8 * 512 : 12 * 512] = bytes(4 * 512)
    assert out == expected
    stat = env.stat(desc.bdev)
    assert stat.num_unmap_ops == 1
    assert stat.bytes_unmapped == 3 * 512
    env.close(desc, ch)


def test_unmap_of_zero_blocks_completes_by_message(env, completions) -> None:
    env.malloc()
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    desc.unmap_blocks(ch, 0, 0, completions, "empty")
    assert completions.done == []  # never inline
    env.poll()
    assert completions.tags(success=True) == ["empty"]
    env.close(desc, ch)


def test_null_discards_writes_reads_zeroes(env, completions) -> None:
    env.null(num_blocks=32)
    desc = env.open("Null0")
    ch = env.channel(desc)
    desc.write_blocks(ch, _pattern(2), 0, 2, completions, "w")
    buf = bytearray(b"\xff" * 1024)
    desc.read_blocks(ch, buf, 0, 2, completions, "r")
    desc.read_blocks(ch, None, 4, 2, completions, "nobuf")
    desc.write_zeroes_blocks(ch, 0, 32, completions, "wz")
    desc.unmap_blocks(ch, 0, 4, completions, "unmap")
    env.poll()
    assert buf == bytes(1024)
    assert completions.data["nobuf"] == bytes(1024)
    assert completions.tags(success=True) == ["w", "r", "nobuf", "wz"]
    # null has no unmap: the module fails it (the layer does not check unmap support).
    assert completions.tags(success=False) == ["unmap"]
    assert completions.status_of("unmap") == B.IoStatus.FAILED
    with pytest.raises(BdevError) as exc:
        desc.flush_blocks(ch, 0, 1, completions)
    assert exc.value.errno == errno.ENOTSUP
    assert env.stat(desc.bdev).io_error == {"failed": 1}
    env.close(desc, ch)


def test_null_with_metadata_counts_it_in_the_block(env, completions) -> None:
    bdev = env.null(md_size=8, dif_type=1)
    assert bdev.block_size == 520
    info = bdev.to_json()
    assert info["md_size"] == 8
    assert info["md_interleave"] is True
    assert info["dif_type"] == 1
    with pytest.raises(BdevError) as exc:
        env.null("Null1", md_size=12)
    assert exc.value.errno == errno.EINVAL


@pytest.mark.parametrize(
    ("offset", "blocks"),
    [(64, 1), (60, 5), (-1, 1), (0, -1), (2**64 - 1, 2)],
)
def test_out_of_range_is_einval_with_no_callback(env, completions, offset, blocks) -> None:
    env.malloc(num_blocks=64)
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    for submit in (
        lambda: desc.read_blocks(ch, bytearray(4096), offset, blocks, completions),
        lambda: desc.write_blocks(ch, bytearray(4096), offset, blocks, completions),
        lambda: desc.unmap_blocks(ch, offset, blocks, completions),
        lambda: desc.write_zeroes_blocks(ch, offset, blocks, completions),
    ):
        with pytest.raises(BdevError) as exc:
            submit()
        assert exc.value.errno == errno.EINVAL
    env.poll()
    assert completions.done == []
    env.close(desc, ch)


def test_misaligned_short_buffer_and_read_only_refusals(env, completions) -> None:
    env.malloc()
    desc = env.open("Malloc0", write=False)
    ch = env.channel(desc)
    with pytest.raises(BdevError) as exc:
        desc.read(ch, bytearray(512), 100, 512, completions)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(BdevError) as exc:
        desc.read(ch, bytearray(1024), 0, 700, completions)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(BdevError) as exc:
        desc.read_blocks(ch, bytearray(511), 0, 1, completions)
    assert exc.value.errno == errno.EINVAL
    # Write types through a read-only descriptor: EBADF, checked first.
    for submit in (
        lambda: desc.write_blocks(ch, bytearray(512), 0, 1, completions),
        lambda: desc.write_blocks(ch, bytearray(512), 10_000, 1, completions),
        lambda: desc.unmap_blocks(ch, 0, 1, completions),
        lambda: desc.write_zeroes_blocks(ch, 0, 1, completions),
        lambda: desc.flush_blocks(ch, 0, 1, completions),
        lambda: desc.writev_blocks(ch, [bytearray(512)], 0, 1, completions),
    ):
        with pytest.raises(BdevError) as exc:
            submit()
        assert exc.value.errno == errno.EBADF
    env.poll()
    assert completions.done == []
    env.close(desc, ch)


def test_completions_run_on_the_submitting_thread_never_inline(env, completions) -> None:
    env.malloc()
    desc = env.open("Malloc0", thread=1)
    ch1 = env.channel(desc, thread=1)
    ch2 = env.channel(desc, thread=2)
    assert ch1.ctx is not ch2.ctx
    env.on(1)
    desc.write_blocks(ch1, _pattern(1), 0, 1, completions, "t1")
    env.on(2)
    desc.read_blocks(ch2, bytearray(512), 0, 1, completions, "t2")
    assert completions.done == []
    env.poll()
    where = {tag: thread for tag, _, thread, _ in completions.done}
    assert where == {"t1": "ut_thread1", "t2": "ut_thread2"}
    env.on(2)
    ch2.put()
    env.close(desc, ch1)


def test_inline_module_completion_is_deferred_by_message(env, scripted, completions) -> None:
    disk = scripted()
    disk.mode = "inline"
    desc = env.open("Scripted0", thread=2)
    ch = env.channel(desc, thread=2)
    resubmitted: list[int] = []

    def again(io: B.BdevIo, success: bool, depth: int) -> None:
        io.free()
        resubmitted.append(depth)
        if depth < 50:
            # Resubmitting from the callback must not recurse on the stack.
            assert desc.read_blocks(ch, bytearray(512), 0, 1, again, depth + 1) == 0
            assert resubmitted[-1] == depth

    desc.read_blocks(ch, bytearray(512), 0, 1, again, 0)
    assert resubmitted == []
    env.poll()
    assert resubmitted == list(range(51))
    assert {t for _, _, _, t in disk.submitted} == {"ut_thread2"}
    env.close(desc, ch, thread=2)


def test_statistics_per_bdev_and_per_channel(env, completions) -> None:
    bdev = env.malloc()
    desc = env.open("Malloc0")
    ch1 = env.channel(desc, thread=1)
    ch2 = env.channel(desc, thread=2)
    env.on(1)
    desc.write_blocks(ch1, _pattern(2), 0, 2, completions)
    env.on(2)
    desc.read_blocks(ch2, bytearray(512), 0, 1, completions)
    desc.read_blocks(ch2, bytearray(512), 1, 1, completions)
    env.h.delay_us(5)
    env.poll()
    total = env.stat(bdev)
    assert (total.num_write_ops, total.bytes_written) == (1, 1024)
    assert (total.num_read_ops, total.bytes_read) == (2, 1024)
    env.on(0)
    per_channel: list = []
    B.bdev_get_channel_stats(bdev, per_channel.append)
    env.poll()
    [channels] = per_channel
    by_thread = {tid: s.num_read_ops for tid, s in channels}
    assert by_thread == {env.h.threads[1].id: 0, env.h.threads[2].id: 2}
    # A channel's totals survive it (retired stats), and reset modes apply.
    env.on(2)
    ch2.put()
    env.poll()
    assert env.stat(bdev).num_read_ops == 2
    env.on(0)
    B.bdev_reset_device_stat(bdev, "all", lambda: None)
    env.poll()
    assert env.stat(bdev).to_json()["num_read_ops"] == 0
    env.close(desc, ch1)


def test_a_module_that_raises_fails_the_request(env, completions, caplog) -> None:
    env.malloc()
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    desc.read_blocks(ch, b"\0" * 512, 0, 1, completions, "read into bytes")  # read-only buffer
    assert completions.done == []
    env.poll()
    assert completions.tags(success=False) == ["read into bytes"]
    assert ch.ctx.io_outstanding == 0
    assert "malloc module raised" in caplog.text
    env.close(desc, ch)
