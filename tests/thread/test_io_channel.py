"""io_devices and io_channels: synchronous create, deferred destroy and revival, unregister with its
asynchronous callback, for_each_channel (thread-id order, one at a time, asynchronous continue,
early stop, -ENODEV, skipped threads, deferred unregister) and for_each_thread."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field

import pytest

from spdkpy.errors import (
    InvalidStateError,
    NoSuchDeviceError,
    ThreadExitedError,
    WrongThreadError,
)
from spdkpy.testing import ThreadHarness
from spdkpy.thread import (
    ChannelIterator,
    IoChannel,
    Thread,
    ThreadState,
    for_each_channel,
    for_each_thread,
    get_io_channel,
    get_thread,
    io_device_register,
    io_device_unregister,
)

POOL = 16383


@dataclass
class Device:
    """A device whose callbacks record what ran, where, with which context."""

    name: str = "dev"
    created: list[Thread | None] = field(default_factory=list)
    destroyed: list[tuple[Thread | None, object]] = field(default_factory=list)
    fail_create: bool = False

    def create(self, obj: object) -> str:
        assert obj is self
        thread = get_thread()
        self.created.append(thread)
        if self.fail_create:
            raise OSError(errno.EIO, "create failed")
        assert thread is not None
        return f"ctx-{thread.name}-{len(self.created)}"

    def destroy(self, obj: object, ctx: object) -> None:
        assert obj is self
        self.destroyed.append((get_thread(), ctx))

    def register(self) -> None:
        io_device_register(self, self.create, self.destroy, self.name)


def channel_on(h: ThreadHarness, index: int, dev: object) -> IoChannel[object]:
    h.set_thread(index)
    try:
        return get_io_channel(dev)
    finally:
        h.set_thread(0)


def put_on(h: ThreadHarness, index: int, ch: IoChannel[object]) -> None:
    h.set_thread(index)
    try:
        ch.put()
    finally:
        h.set_thread(0)


# ------------------------------------------------------------------ get / put


def test_get_io_channel_creates_synchronously_and_shares_per_thread() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t0, t1 = h.threads
        dev = Device()
        dev.register()
        ch = get_io_channel(dev)
        assert dev.created == [t0]  # create_cb ran inline, on the calling thread
        assert isinstance(ch, IoChannel)
        assert ch.ctx == "ctx-ut_thread0-1"
        assert ch.thread is t0
        assert ch.ref == 1
        again = get_io_channel(dev)
        assert again is ch
        assert ch.ref == 2
        assert dev.created == [t0]
        other = channel_on(h, 1, dev)
        assert other is not ch
        assert other.thread is t1
        assert other.ctx == "ctx-ut_thread1-2"
        assert dev.created == [t0, t1]
        device = ch.device
        assert device.refcnt == 2
        assert sorted(device.threads) == [t0.id, t1.id]
        assert t0.statistics().io_channels == 1
        assert ch.get_ref() is ch
        assert ch.ref == 3
        for _ in range(3):
            ch.put()
        put_on(h, 1, other)
        h.poll_threads()
        assert sorted(c for _, c in dev.destroyed) == ["ctx-ut_thread0-1", "ctx-ut_thread1-2"]
        assert device.refcnt == 0
        assert device.threads == {}
        io_device_unregister(dev)


def test_put_destroys_by_a_message_on_the_owner_thread() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        t1 = h.threads[1]
        dev = Device()
        dev.register()
        ch = channel_on(h, 1, dev)
        ch2 = channel_on(h, 1, dev)
        assert ch2 is ch
        put_on(h, 1, ch)
        assert ch.ref == 1
        assert t1.queue_depth() == 0  # not the last reference: no message
        put_on(h, 1, ch)
        assert ch.ref == 0
        assert dev.destroyed == []  # deferred
        assert t1.io_channels  # still linked
        assert t1.queue_depth() == 1
        h.poll_thread(0)
        assert dev.destroyed == []
        h.poll_thread(1)
        assert dev.destroyed == [(t1, "ctx-ut_thread1-1")]
        assert t1.io_channels == {}
        assert ch.device.refcnt == 0
        io_device_unregister(dev)


def test_get_between_last_put_and_destroy_revives_the_channel() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        dev = Device()
        dev.register()
        ch = get_io_channel(dev)
        ch.put()
        revived = get_io_channel(dev)
        assert revived is ch
        assert ch.ref == 1
        h.poll_thread(0)
        assert dev.destroyed == []
        assert dev.created == [t]
        assert t.io_channels
        # put / get / put again: two destroy messages; only the last one destroys
        ch.put()
        assert get_io_channel(dev) is ch
        ch.put()
        assert t.queue_depth() == 2
        h.poll_thread(0)
        assert dev.destroyed == [(t, "ctx-ut_thread0-1")]
        assert t.io_channels == {}
        io_device_unregister(dev)


def test_put_more_often_than_got_and_from_the_wrong_thread() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = Device()
        dev.register()
        ch = get_io_channel(dev)
        h.set_thread(1)
        with pytest.raises(WrongThreadError):
            ch.put()
        with pytest.raises(WrongThreadError):
            ch.get_ref()
        h.set_thread(None)
        with pytest.raises(WrongThreadError):
            get_io_channel(dev)
        h.set_thread(0)
        assert ch.ref == 1
        ch.put()
        with pytest.raises(InvalidStateError, match="put more often"):
            ch.put()
        h.poll_threads()
        assert len(dev.destroyed) == 1
        io_device_unregister(dev)


def test_create_cb_raising_leaves_no_channel_behind() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        t = h.threads[0]
        dev = Device(fail_create=True)
        dev.register()
        with pytest.raises(OSError, match="create failed"):
            get_io_channel(dev)
        assert t.io_channels == {}
        device = h.library.io_devices[id(dev)]
        assert device.refcnt == 0
        assert device.threads == {}
        assert t.exit_blockers() == []
        dev.fail_create = False
        ch = get_io_channel(dev)
        assert ch.ref == 1
        assert device.refcnt == 1
        assert len(dev.created) == 2
        ch.put()
        h.poll_threads()
        io_device_unregister(dev)


def test_get_io_channel_on_exited_thread_raises() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = Device()
        dev.register()
        t1 = h.threads[1]
        t1.send_msg(t1.exit)
        h.poll_thread(1)
        assert t1.state is ThreadState.EXITED
        h.set_thread(1)
        with pytest.raises(ThreadExitedError):
            get_io_channel(dev)
        h.set_thread(0)
        assert dev.created == []
        io_device_unregister(dev)


def test_get_io_channel_while_exiting_is_allowed() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = Device()
        dev.register()
        t1 = h.threads[1]
        h.set_thread(1)
        t1.exit()
        ch = get_io_channel(dev)
        h.set_thread(0)
        h.poll_thread(1)
        assert t1.state is ThreadState.EXITING
        put_on(h, 1, ch)
        h.poll_thread(1)
        assert t1.state is ThreadState.EXITED
        io_device_unregister(dev)


# ------------------------------------------------------------------ register / unregister


def test_duplicate_register_keeps_the_first(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="spdkpy.thread")
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        dev = Device()
        first = io_device_register(dev, dev.create, dev.destroy, "first")
        second = io_device_register(dev, lambda d: "other", lambda d, c: None, "second")
        assert second is first
        assert first.name == "first"
        errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "already registered" in errors[0]
        ch = get_io_channel(dev)
        assert ch.ctx == "ctx-ut_thread0-1"  # the first create_cb
        ch.put()
        h.poll_threads()
        io_device_unregister(dev)


def test_register_and_unregister_need_a_current_thread() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        dev = Device()
        h.set_thread(None)
        with pytest.raises(WrongThreadError):
            dev.register()
        h.set_thread(0)
        dev.register()
        h.set_thread(None)
        with pytest.raises(WrongThreadError):
            io_device_unregister(dev)
        h.set_thread(0)
        io_device_unregister(dev)
        with pytest.raises(NoSuchDeviceError):
            io_device_unregister(dev)


def test_unregister_fails_new_gets_and_calls_back_after_the_last_channel() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        t0, t1, t2 = h.threads
        dev = Device()
        dev.register()
        ch0 = get_io_channel(dev)
        ch1 = channel_on(h, 1, dev)
        done: list[Thread | None] = []
        h.set_thread(2)
        io_device_unregister(dev, lambda: done.append(get_thread()))
        h.set_thread(0)
        assert t2.pending_unregister_count == 1
        for index in range(3):
            h.set_thread(index)
            with pytest.raises(NoSuchDeviceError):
                get_io_channel(dev)
        h.set_thread(0)
        h.poll_threads()
        assert done == []
        ch0.put()
        h.poll_threads()
        assert dev.destroyed == [(t0, "ctx-ut_thread0-1")]
        assert done == []
        assert t2.pending_unregister_count == 1
        put_on(h, 1, ch1)
        assert t2.queue_depth() == 0
        h.poll_thread(1)  # the last channel goes: the callback is sent to t2 ...
        assert dev.destroyed[-1] == (t1, "ctx-ut_thread1-2")
        assert done == []
        assert t2.queue_depth() == 1
        assert t2.pending_unregister_count == 1
        h.poll_thread(2)  # ... and runs there
        assert done == [t2]
        assert t2.pending_unregister_count == 0


def test_unregister_with_no_channels_still_calls_back_asynchronously() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = Device()
        dev.register()
        done: list[Thread | None] = []
        h.set_thread(1)
        io_device_unregister(dev, lambda: done.append(get_thread()))
        assert done == []
        assert h.threads[1].pending_unregister_count == 1
        h.set_thread(0)
        h.poll_thread(0)
        assert done == []
        h.poll_thread(1)
        assert done == [h.threads[1]]
        assert h.threads[1].pending_unregister_count == 0


def test_unregister_without_callback_counts_nothing() -> None:
    with ThreadHarness(1, msg_mempool_size=POOL) as h:
        dev = Device()
        dev.register()
        ch = get_io_channel(dev)
        io_device_unregister(dev)
        assert h.threads[0].pending_unregister_count == 0
        assert h.threads[0].queue_depth() == 0
        ch.put()
        h.poll_threads()
        assert len(dev.destroyed) == 1
        dev.register()  # the key is free again
        io_device_unregister(dev)


# ------------------------------------------------------------------ for_each_channel


@dataclass
class Walk:
    """Records a for_each_channel walk; ``hold`` keeps iterators instead of continuing."""

    hold: bool = False
    statuses: dict[int, int] = field(default_factory=dict)
    visits: list[tuple[Thread | None, object, object]] = field(default_factory=list)
    held: list[ChannelIterator] = field(default_factory=list)
    completions: list[tuple[Thread | None, int, object]] = field(default_factory=list)

    def fn(self, it: ChannelIterator) -> None:
        thread = get_thread()
        assert it.channel is not None
        assert it.channel.thread is thread
        self.visits.append((thread, it.channel.ctx, it.ctx))
        if self.hold:
            self.held.append(it)
        else:
            assert thread is not None
            it.done(self.statuses.get(thread.id, 0))

    def cpl(self, it: ChannelIterator, status: int) -> None:
        self.completions.append((get_thread(), status, it.io_device))


def test_for_each_channel_visits_holders_in_thread_id_order() -> None:
    with ThreadHarness(4, msg_mempool_size=POOL) as h:
        t = h.threads
        dev = Device()
        dev.register()
        # taken out of id order on purpose
        chans = {i: channel_on(h, i, dev) for i in (3, 1, 2)}
        walk = Walk()
        for_each_channel(dev, walk.fn, walk.cpl, ctx="walk-ctx")
        assert walk.visits == []  # nothing inline
        assert t[0].for_each_count == 1
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1], t[2], t[3]]
        assert [v[1] for v in walk.visits] == [chans[i].ctx for i in (1, 2, 3)]
        assert all(v[2] == "walk-ctx" for v in walk.visits)
        assert walk.completions == [(t[0], 0, dev)]
        assert t[0].for_each_count == 0
        assert h.library.io_devices[id(dev)].for_each_count == 0
        for i, ch in chans.items():
            put_on(h, i, ch)
        h.poll_threads()
        io_device_unregister(dev)


def test_for_each_channel_is_one_at_a_time_and_may_continue_later() -> None:
    with ThreadHarness(4, msg_mempool_size=POOL) as h:
        t = h.threads
        dev = Device()
        dev.register()
        chans = {i: channel_on(h, i, dev) for i in (0, 2, 3)}
        walk = Walk(hold=True)
        h.set_thread(1)
        for_each_channel(dev, walk.fn, walk.cpl)
        h.set_thread(0)
        for expected in (0, 2, 3):
            h.poll_threads()
            assert [v[0] for v in walk.visits][-1] is t[expected]
            assert len(walk.held) == len(walk.visits)  # only this one was visited
            assert walk.completions == []
            it = walk.held[-1]
            assert it.thread is t[expected]
            # continuing is only allowed on the visited thread ...
            h.set_thread((expected + 1) % 4)
            with pytest.raises(WrongThreadError):
                it.done(0)
            # ... and may happen later, from a message on that thread
            t[expected].send_msg(it.done, 0)
            h.set_thread(0)
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[0], t[2], t[3]]
        assert walk.completions == [(t[1], 0, dev)]  # cpl on the origin thread
        assert t[1].for_each_count == 0
        for i, ch in chans.items():
            put_on(h, i, ch)
        h.poll_threads()
        io_device_unregister(dev)


def test_for_each_channel_nonzero_status_stops_the_walk() -> None:
    with ThreadHarness(4, msg_mempool_size=POOL) as h:
        t = h.threads
        dev = Device()
        dev.register()
        chans = {i: channel_on(h, i, dev) for i in (1, 2, 3)}
        walk = Walk(statuses={t[2].id: -errno.EBUSY})
        h.set_thread(3)
        for_each_channel(dev, walk.fn, walk.cpl)
        h.set_thread(0)
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1], t[2]]
        assert walk.completions == [(t[3], -errno.EBUSY, dev)]
        assert t[3].for_each_count == 0
        for i, ch in chans.items():
            put_on(h, i, ch)
        h.poll_threads()
        io_device_unregister(dev)


def test_for_each_channel_on_missing_device_completes_with_enodev() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        walk = Walk()
        missing = Device()
        h.set_thread(1)
        for_each_channel(missing, walk.fn, walk.cpl)
        assert walk.completions == []  # still asynchronous
        assert h.threads[1].for_each_count == 1
        h.set_thread(0)
        h.poll_threads()
        assert walk.completions == [(h.threads[1], -errno.ENODEV, None)]
        assert walk.visits == []
        assert h.threads[1].for_each_count == 0


def test_for_each_channel_with_no_holders_completes_with_zero() -> None:
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        dev = Device()
        dev.register()
        walk = Walk()
        for_each_channel(dev, walk.fn, walk.cpl)
        assert walk.completions == []
        assert h.threads[0].queue_depth() == 1
        h.poll_threads()
        assert walk.completions == [(h.threads[0], 0, dev)]
        assert walk.visits == []
        assert h.library.io_devices[id(dev)].for_each_count == 0
        assert h.threads[0].for_each_count == 0
        io_device_unregister(dev)


def test_for_each_channel_skips_a_thread_whose_channel_went_away() -> None:
    with ThreadHarness(4, msg_mempool_size=POOL) as h:
        t = h.threads
        dev = Device()
        dev.register()
        chans = {i: channel_on(h, i, dev) for i in (1, 2, 3)}
        walk = Walk(hold=True)
        for_each_channel(dev, walk.fn, walk.cpl)
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1]]
        # t2 drops its channel; the destroy message is queued on t2 ...
        put_on(h, 2, chans.pop(2))
        # ... then t1 continues: t2 still held a channel at that moment, so it gets the visit
        # message, behind the destroy; when it runs, the channel is gone and t2 is skipped.
        h.set_thread(1)
        walk.held[0].done(0)
        h.set_thread(0)
        assert t[2].queue_depth() == 2
        h.poll_thread(2)
        assert dev.destroyed == [(t[2], "ctx-ut_thread2-2")]
        assert [v[0] for v in walk.visits] == [t[1]]
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1], t[3]]
        t[3].send_msg(walk.held[-1].done, 0)
        h.poll_threads()
        assert walk.completions == [(t[0], 0, dev)]
        for i, ch in chans.items():
            put_on(h, i, ch)
        h.poll_threads()
        io_device_unregister(dev)


def test_for_each_channel_next_holder_is_chosen_when_continuing() -> None:
    with ThreadHarness(4, msg_mempool_size=POOL) as h:
        t = h.threads
        dev = Device()
        dev.register()
        chans = {i: channel_on(h, i, dev) for i in (1, 3)}
        walk = Walk(hold=True)
        for_each_channel(dev, walk.fn, walk.cpl)
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1]]
        chans[2] = channel_on(h, 2, dev)  # a new holder appears mid-walk, after t1
        h.set_thread(1)
        walk.held[0].done(0)
        h.set_thread(0)
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1], t[2]]
        t[2].send_msg(walk.held[-1].done, 0)
        h.poll_threads()
        t[3].send_msg(walk.held[-1].done, 0)
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1], t[2], t[3]]
        assert walk.completions == [(t[0], 0, dev)]
        for i, ch in chans.items():
            put_on(h, i, ch)
        h.poll_threads()
        io_device_unregister(dev)


def test_unregister_during_for_each_channel_is_deferred_until_the_walk_ends() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        t = h.threads
        dev = Device()
        dev.register()
        ch1 = channel_on(h, 1, dev)
        walk = Walk(hold=True)
        for_each_channel(dev, walk.fn, walk.cpl)
        h.poll_threads()
        assert [v[0] for v in walk.visits] == [t[1]]
        unregistered: list[Thread | None] = []
        h.set_thread(2)
        io_device_unregister(dev, lambda: unregistered.append(get_thread()))
        with pytest.raises(InvalidStateError, match="pending"):
            io_device_unregister(dev)
        h.set_thread(0)
        # the device is being unregistered: another walk gets -ENODEV
        other = Walk()
        for_each_channel(dev, other.fn, other.cpl)
        h.poll_threads()
        assert other.completions == [(t[0], -errno.ENODEV, None)]
        assert id(dev) in h.library.io_devices  # not removed yet
        # the walk ends; then the unregister is replayed on t2
        h.set_thread(1)
        walk.held[0].done(0)
        h.set_thread(0)
        h.poll_threads()
        assert walk.completions == [(t[0], 0, dev)]
        assert id(dev) not in h.library.io_devices
        h.set_thread(1)
        with pytest.raises(NoSuchDeviceError):
            get_io_channel(dev)
        h.set_thread(0)
        assert t[2].pending_unregister_count == 1
        assert unregistered == []
        put_on(h, 1, ch1)
        h.poll_threads()
        assert unregistered == [t[2]]
        assert t[2].pending_unregister_count == 0


# ------------------------------------------------------------------ for_each_thread


def test_for_each_thread_visits_running_threads_in_creation_order() -> None:
    with ThreadHarness(4, msg_mempool_size=POOL) as h:
        t = h.threads
        visits: list[Thread | None] = []
        done: list[Thread | None] = []
        h.set_thread(2)
        for_each_thread(lambda: visits.append(get_thread()), lambda: done.append(get_thread()))
        assert visits == []
        assert t[2].for_each_count == 1
        h.set_thread(0)
        h.poll_threads()
        assert visits == t
        assert done == [t[2]]
        assert t[2].for_each_count == 0


def test_for_each_thread_is_serial() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        t = h.threads
        visits: list[Thread | None] = []
        done: list[int] = []
        for_each_thread(lambda: visits.append(get_thread()), lambda: done.append(1))
        # t2 polled first: nothing for it yet
        assert h.poll_thread(2) == 0
        assert h.poll_thread(1) == 0
        assert h.poll_thread(0) == 1
        assert visits == [t[0]]
        assert h.poll_thread(2) == 0
        assert h.poll_thread(1) == 1
        assert visits == [t[0], t[1]]
        assert h.poll_thread(2) == 1
        assert visits == t
        assert done == []
        assert h.poll_thread(0) == 1
        assert done == [1]


def test_for_each_thread_skips_exited_threads_and_includes_new_ones() -> None:
    with ThreadHarness(3, msg_mempool_size=POOL) as h:
        t = h.threads
        t[1].send_msg(t[1].exit)
        h.poll_thread(1)
        assert t[1].state is ThreadState.EXITED
        visits: list[Thread | None] = []
        made: list[Thread] = []
        done: list[Thread | None] = []

        def fn() -> None:
            visits.append(get_thread())
            if not made:
                made.extend(h.allocate_threads(1))  # created during the walk

        for_each_thread(fn, lambda: done.append(get_thread()))
        h.poll_threads()
        assert visits == [t[0], t[2], made[0]]
        assert done == [t[0]]


def test_for_each_thread_without_current_thread_completes_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="spdkpy.thread")
    with ThreadHarness(2, msg_mempool_size=POOL) as h:
        visits: list[Thread | None] = []
        done: list[int] = []
        h.set_thread(None)
        for_each_thread(lambda: visits.append(get_thread()), lambda: done.append(1))
        assert done == [1]
        h.set_thread(0)
        h.poll_threads()
        assert visits == []
        assert any("no current thread" in r.getMessage() for r in caplog.records)


def test_io_channel_statistics_snapshot() -> None:
    from spdkpy.testing import ThreadHarness
    from spdkpy.thread import (
        IoChannelStatistics,
        get_io_channel,
        io_device_register,
        io_device_unregister,
    )

    device = object()
    with ThreadHarness(1, msg_mempool_size=16383) as h:
        h.set_thread(0)
        io_device_register(device, lambda _obj: "ctx", lambda _obj, _ctx: None, "dev0")
        channel = get_io_channel(device)
        channel.get_ref()
        assert channel.statistics() == IoChannelStatistics("dev0", h.threads[0].id, 2, 0)
        channel.put()
        channel.put()
        assert channel.statistics().pending_destroy == 1
        h.poll_threads()
        io_device_unregister(device)
        h.poll_threads()
