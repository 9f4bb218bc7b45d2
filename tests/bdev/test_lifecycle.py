"""Registry, descriptors, claims, hot remove, resize, reset, splitting, examine and fini
(SPEC-STORAGE A1, A1.1, A1.6, A1.8-A1.10, A1.12)."""

from __future__ import annotations

import errno
import uuid

import pytest

from spdkpy import bdev as B
from spdkpy.errors import BdevError, WrongThreadError

# ---------------------------------------------------------------------------- registry / open


def test_names_and_aliases_share_one_namespace(env) -> None:
    fixed = uuid.UUID("12345678-1234-5678-1234-567812345678")
    bdev = env.malloc("Malloc0", uuid=fixed)
    assert bdev.aliases == [str(fixed)]
    assert B.get_bdev(str(fixed)) is bdev
    B.bdev_alias_add(bdev, "boot")
    for name, kw in [("Malloc0", {}), ("boot", {}), ("Other", {"uuid": fixed})]:
        with pytest.raises(BdevError) as exc:
            env.malloc(name, **kw)
        assert exc.value.errno == errno.EEXIST
    assert [b.name for b in B.bdevs()] == ["Malloc0"]
    # A UUID equal to the name is not added twice.
    same = B.create_null_bdev(
        B.NullOpts(name=str(uuid.UUID(int=7)), num_blocks=8, block_size=512, uuid=uuid.UUID(int=7))
    )
    assert same.aliases == []


def test_auto_names_and_bad_geometry(env) -> None:
    env.on(0)
    names = [B.create_malloc_disk(B.MallocOpts(num_blocks=8, block_size=512)).name for _ in "ab"]
    assert names == ["Malloc0", "Malloc1"]
    for kw in ({"num_blocks": 0}, {"block_size": 0}, {"block_size": 1000}, {"md_size": 7}):
        opts = {"num_blocks": 8, "block_size": 512, "name": "X", **kw}
        with pytest.raises(BdevError) as exc:
            B.create_malloc_disk(B.MallocOpts(**opts))
        assert exc.value.errno == errno.EINVAL


def test_open_refusals(env) -> None:
    env.malloc()
    with pytest.raises(BdevError) as exc:
        env.open("NoSuch")
    assert exc.value.errno == errno.ENODEV
    env.on(1)
    with pytest.raises(BdevError) as exc:
        B.open_bdev("Malloc0", True, None)  # type: ignore[arg-type]
    assert exc.value.errno == errno.EINVAL
    env.on(None)
    with pytest.raises(BdevError) as exc:
        B.open_bdev("Malloc0", True, lambda e, b: None)
    assert exc.value.errno == errno.ENOTSUP
    desc = env.open("Malloc0", thread=1)
    env.on(2)
    with pytest.raises(WrongThreadError):
        desc.close()
    env.close(desc)


# ---------------------------------------------------------------------------- claims


def test_v1_claim_blocks_writers_and_second_claims(env) -> None:
    bdev = env.malloc()
    reader = env.open("Malloc0", write=False)
    module = B.MALLOC_MODULE
    B.bdev_module_claim_bdev(bdev, reader, module)
    assert reader.writable  # upgraded by the claim
    info = bdev.to_json()
    assert (info["claimed"], info["claim_type"]) == (True, "exclusive_write")
    with pytest.raises(BdevError) as exc:
        B.bdev_module_claim_bdev(bdev, None, module)
    assert exc.value.errno == errno.EPERM
    with pytest.raises(BdevError) as exc:
        env.open("Malloc0", write=True)
    assert exc.value.errno == errno.EPERM
    other_reader = env.open("Malloc0", write=False)  # readers still may
    B.bdev_module_release_bdev(bdev)
    assert "claim_type" not in bdev.to_json()
    assert bdev.to_json()["claimed"] is False
    for desc in (env.open("Malloc0", write=True), other_reader, reader):
        env.close(desc)


def test_v2_claims_follow_their_descriptor(env) -> None:
    bdev = env.malloc()
    module = B.NULL_MODULE
    d1 = env.open("Malloc0", write=False)
    d2 = env.open("Malloc0", write=False)
    with pytest.raises(BdevError) as exc:
        B.bdev_module_claim_bdev_desc(d1, B.ClaimType.READ_MANY_WRITE_SHARED, module)
    assert exc.value.errno == errno.EINVAL  # shared needs a key
    B.bdev_module_claim_bdev_desc(d1, B.ClaimType.READ_MANY_WRITE_NONE, module)
    B.bdev_module_claim_bdev_desc(d2, B.ClaimType.READ_MANY_WRITE_NONE, module)  # shareable
    d3 = env.open("Malloc0", write=False)
    with pytest.raises(BdevError) as exc:
        B.bdev_module_claim_bdev_desc(d3, B.ClaimType.READ_MANY_WRITE_ONE, module)
    assert exc.value.errno == errno.EBUSY
    assert bdev.to_json()["claim_type"] == "read_many_write_none"
    env.close(d1)
    assert bdev.claimed
    env.close(d2)
    assert not bdev.claimed  # released with the last claiming descriptor
    B.bdev_module_claim_bdev_desc(d3, B.ClaimType.READ_MANY_WRITE_ONE, module)
    assert d3.writable
    env.close(d3)


# ---------------------------------------------------------------------------- hot remove


def test_hot_remove_with_io_in_flight(env, completions) -> None:
    bdev = env.malloc()
    desc = env.open("Malloc0", thread=1)
    ch = env.channel(desc, thread=1)
    for i in range(8):
        desc.write_blocks(ch, bytearray(512), i, 1, completions, i)
    rcs = env.unregister(bdev)
    with pytest.raises(BdevError) as exc:
        env.open("Malloc0", thread=2)  # removal has begun
    assert exc.value.errno == errno.ENODEV
    env.poll()
    # Every in-flight I/O completed (malloc finishes them normally); the opener got REMOVE on
    # its own thread; nothing is destroyed while the descriptor is open.
    assert sorted(completions.tags(success=True)) == list(range(8))
    assert env.events == [("Malloc0", B.BdevEvent.REMOVE, "ut_thread1")]
    assert rcs == []
    assert B.get_bdev("Malloc0") is bdev
    env.close(desc, ch)
    env.poll()
    assert rcs == [0]
    assert B.get_bdev("Malloc0") is None
    assert B.get_bdev(str(bdev.uuid)) is None
    assert env.unregister(bdev) == []  # a second unregister: EBUSY by message
    env.poll()


def test_hot_remove_aborts_what_waits_in_the_nomem_queue(env, scripted, completions) -> None:
    disk = scripted()
    disk.nomem = 1
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    desc.read_blocks(ch, bytearray(512), 0, 1, completions, "held")
    env.poll()  # NOMEM with nothing outstanding: parked for the retry poller
    rcs = env.unregister(disk.bdev)
    env.poll()
    assert completions.tags(success=False) == ["held"]
    assert completions.status_of("held") == B.IoStatus.ABORTED
    env.close(desc, ch)
    env.poll()
    assert rcs == [0]
    assert disk.destructed == 1


def test_second_unregister_gets_ebusy(env) -> None:
    bdev = env.malloc()
    desc = env.open("Malloc0")
    first = env.unregister(bdev)
    second = env.unregister(bdev)
    env.poll()
    assert second == [-errno.EBUSY]
    env.close(desc)
    env.poll()
    assert first == [0]


# ---------------------------------------------------------------------------- resize


def test_resize_event_and_shrink_refused_while_open(env, completions) -> None:
    bdev = env.null(num_blocks=2048)  # 1 MiB
    desc = env.open("Null0", thread=2)
    ch = env.channel(desc, thread=2)
    env.on(0)
    B.resize_null_bdev("Null0", 2)
    env.poll()
    assert bdev.num_blocks == 4096
    assert env.events == [("Null0", B.BdevEvent.RESIZE, "ut_thread2")]
    env.on(2)
    desc.read_blocks(ch, bytearray(512), 4095, 1, completions, "new end")
    env.poll()
    assert completions.tags(success=True) == ["new end"]
    env.on(0)
    with pytest.raises(BdevError) as exc:
        B.resize_null_bdev("Null0", 1)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(BdevError) as exc:
        B.bdev_notify_blockcnt_change(bdev, 10)
    assert exc.value.errno == errno.EBUSY
    env.close(desc, ch, thread=2)
    B.bdev_notify_blockcnt_change(bdev, 10)  # no descriptor open: shrinking is fine
    assert bdev.num_blocks == 10


# ---------------------------------------------------------------------------- reset


def test_reset_freezes_channels_and_queued_resets_share_its_status(
    env, scripted, completions
) -> None:
    disk = scripted()
    desc = env.open("Scripted0", thread=1)
    ch1 = env.channel(desc, thread=1)
    ch2 = env.channel(desc, thread=2)
    env.on(1)
    disk.mode = "hold"
    desc.read_blocks(ch1, bytearray(512), 0, 1, completions, "in flight")
    desc.reset(ch1, completions, "reset1")
    env.on(2)
    desc.reset(ch2, completions, "reset2")  # queued behind reset1
    env.poll()  # both channels frozen, the reset is at the module
    resets = [s for s in disk.submitted if s[0] == B.IoType.RESET]
    assert len(resets) == 1
    env.on(2)
    desc.read_blocks(ch2, bytearray(512), 0, 1, completions, "while frozen")
    env.poll()
    assert completions.tags() == ["while frozen"]
    assert completions.status_of("while frozen") == B.IoStatus.ABORTED
    disk.status = B.IoStatus.FAILED
    disk.release()  # the I/O in flight and the reset both fail
    env.poll()
    assert completions.status_of("reset1") == B.IoStatus.FAILED
    assert completions.status_of("reset2") == B.IoStatus.FAILED
    assert {t: th for t, _, th, _ in completions.done}["reset2"] == "ut_thread2"
    disk.status = B.IoStatus.SUCCESS
    disk.mode = "poll"
    env.on(1)
    desc.read_blocks(ch1, bytearray(512), 0, 1, completions, "thawed")
    env.poll()
    assert completions.status_of("thawed") == B.IoStatus.SUCCESS
    env.on(2)
    ch2.put()
    env.close(desc, ch1)


def test_reset_with_drain_timeout_completes_without_the_module(env, scripted, completions):
    disk = scripted(reset_io_drain_timeout=5)
    disk.mode = "hold"
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    desc.read_blocks(ch, bytearray(512), 0, 1, completions, "slow")
    desc.reset(ch, completions, "reset")
    env.poll()
    env.h.delay_us(1_000_000)
    env.poll()
    assert completions.done == []  # one I/O still outstanding
    disk.release()
    env.h.delay_us(1_000_000)
    env.poll()
    assert completions.tags(success=True) == ["slow", "reset"]
    assert all(s[0] != B.IoType.RESET for s in disk.submitted)
    env.close(desc, ch)


def test_malloc_reset(env, completions) -> None:
    env.malloc()
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    desc.reset(ch, completions, "reset")
    env.poll()
    assert completions.tags(success=True) == ["reset"]
    env.close(desc, ch)


# ---------------------------------------------------------------------------- splitting


def test_split_on_optimal_io_boundary(env, completions) -> None:
    bdev = env.malloc(optimal_io_boundary=8)
    desc = env.open("Malloc0")
    ch = env.channel(desc)
    data = bytearray(i % 253 for i in range(20 * 512))
    desc.write_blocks(ch, data, 4, 20, completions, "w")  # children 4-7, 8-15, 16-23
    env.poll()
    assert completions.tags(success=True) == ["w"]
    assert env.stat(bdev).num_write_ops == 3
    parts = [bytearray(3 * 512), bytearray(17 * 512)]
    desc.readv_blocks(ch, parts, 4, 20, completions, "r")
    env.poll()
    assert b"".join(parts) == bytes(data)
    assert env.stat(bdev).num_read_ops == 3
    env.close(desc, ch)


def test_split_by_max_rw_size_and_segments(env, scripted, completions) -> None:
    disk = scripted(max_rw_size=4, max_num_segments=2)
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    desc.read_blocks(ch, bytearray(10 * 512), 0, 10, completions, "big")
    desc.readv_blocks(ch, [bytearray(512)] * 3, 20, 3, completions, "iovs")
    env.poll()
    assert completions.tags(success=True) == ["big", "iovs"]
    reads = [(offset, n) for kind, offset, n, _ in disk.submitted]
    assert reads == [(0, 4), (4, 4), (8, 2), (20, 2), (22, 1)]
    env.close(desc, ch)


def test_write_zeroes_is_emulated_with_writes(env, scripted, completions) -> None:
    disk = scripted(num_blocks=8192)
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    desc.write_zeroes_blocks(ch, 0, 4096, completions, "wz")  # 2 MiB: two 1 MiB writes
    env.poll()
    assert completions.tags(success=True) == ["wz"]
    assert [(k, o, n) for k, o, n, _ in disk.submitted] == [
        (B.IoType.WRITE, 0, 2048),
        (B.IoType.WRITE, 2048, 2048),
    ]
    assert disk.bdev.io_type_supported(B.IoType.WRITE_ZEROES)
    env.close(desc, ch)


def test_a_failed_child_fails_the_parent(env, scripted, completions) -> None:
    disk = scripted(optimal_io_boundary=2, split_on_optimal_io_boundary=True)
    disk.status = B.IoStatus.FAILED
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    desc.write_blocks(ch, bytearray(6 * 512), 0, 6, completions, "w")
    env.poll()
    assert completions.tags(success=False) == ["w"]
    env.close(desc, ch)


# ---------------------------------------------------------------------------- examine / fini


class _Examiner(B.BdevModule):
    name = "examiner"

    def __init__(self) -> None:
        super().__init__()
        self.configs: list[str] = []
        self.disks: list[B.Bdev] = []

    def examine_config(self, bdev: B.Bdev) -> None:
        self.configs.append(bdev.name)
        B.bdev_module_examine_done(self)

    def examine_disk(self, bdev: B.Bdev) -> None:
        self.disks.append(bdev)  # finishes later, as a module doing I/O would


def test_examine_and_wait_for_examine(env) -> None:
    examiner = _Examiner()
    B.bdev_module_register(examiner)
    try:
        env.malloc()
        assert examiner.configs == ["Malloc0"]
        waited: list[int] = []
        env.on(0)
        B.bdev_wait_for_examine(lambda: waited.append(1))
        env.poll()
        assert waited == []
        B.bdev_module_examine_done(examiner)
        env.poll()
        assert waited == [1]
        with pytest.raises(BdevError) as exc:
            B.bdev_examine("Malloc0")  # auto examine is on
        assert exc.value.errno == errno.EINVAL
    finally:
        env.on(0)
        B.bdev_unregister(B.get_bdev("Malloc0"))  # type: ignore[arg-type]
        env.poll()
        B.bdev_module_unregister(examiner)


def test_fini_unregisters_unclaimed_bdevs_first(env) -> None:
    first = env.malloc("First")
    env.malloc("Second")
    B.bdev_module_claim_bdev(first, None, B.MALLOC_MODULE)
    order: list[str] = []
    env.on(0)
    for bdev in B.bdevs():
        bdev.fn_table.destruct = (  # type: ignore[method-assign]
            lambda name=bdev.name, orig=bdev.fn_table.destruct: order.append(name) or orig()
        )
    done: list[int] = []
    B.bdev_finish(lambda: done.append(1))
    env.poll()
    assert done == [1]
    assert order == ["Second", "First"]
    assert not B.bdev_is_initialized()


def test_unmap_split_and_write_unit_checks(env, scripted, completions) -> None:
    disk = scripted(
        types={B.IoType.READ, B.IoType.WRITE, B.IoType.UNMAP},
        max_unmap=4,
        max_unmap_segments=1,
        write_unit_size=4,
        split_on_write_unit=True,
    )
    desc = env.open("Scripted0")
    ch = env.channel(desc)
    desc.unmap_blocks(ch, 0, 10, completions, "unmap")
    desc.write_blocks(ch, bytearray(2 * 512), 0, 2, completions, "short write")
    desc.write_blocks(ch, bytearray(8 * 512), 4, 8, completions, "write")
    # Split on the write unit from block 2: the first child (2-3) is short, so it fails.
    desc.write_blocks(ch, bytearray(6 * 512), 2, 6, completions, "unaligned write")
    env.poll()
    assert completions.tags(success=True) == ["unmap", "write"]
    assert completions.tags(success=False) == ["short write", "unaligned write"]
    sent = [(kind, offset, n) for kind, offset, n, _ in disk.submitted]
    assert sent == [
        (B.IoType.UNMAP, 0, 4),
        (B.IoType.UNMAP, 4, 4),
        (B.IoType.UNMAP, 8, 2),
        (B.IoType.WRITE, 4, 4),
        (B.IoType.WRITE, 8, 4),
        (B.IoType.WRITE, 4, 4),
    ]
    env.close(desc, ch)


def test_manual_examine_with_auto_examine_off(env) -> None:
    env.on(0)
    B.bdev_finish(lambda: None)
    env.poll()
    B.set_bdev_opts(B.BdevOpts(bdev_auto_examine=False))
    B.bdev_initialize(lambda rc: None)
    examiner = _Examiner()
    B.bdev_module_register(examiner)
    try:
        B.bdev_examine("Wanted")
        with pytest.raises(BdevError) as exc:
            B.bdev_examine("Wanted")
        assert exc.value.errno == errno.EEXIST
        env.malloc("Other")
        env.malloc("Wanted")
        assert examiner.configs == ["Wanted"]
        B.bdev_module_examine_done(examiner)
        config = B.bdev_config_json()
        assert config[0]["params"]["bdev_auto_examine"] is False
        assert config[1] == {"method": "bdev_examine", "params": {"name": "Wanted"}}
        assert config[-1] == {"method": "bdev_wait_for_examine"}
    finally:
        env.on(0)
        for bdev in B.bdevs():
            B.bdev_unregister(bdev)
        env.poll()
        B.bdev_module_unregister(examiner)
