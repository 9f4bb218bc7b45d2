"""io_devices and io_channels: per-thread, lock-free access to a shared device.

A device is any object registered with :func:`io_device_register`. Each thread that calls
:func:`get_io_channel` gets its own channel, with a context made by the device's ``create_cb`` on
that thread; the same thread asking again gets the same channel with one more reference. Teardown
is always deferred by a message, so a ``get`` right after the last ``put`` revives the channel.

:func:`for_each_channel` visits every thread holding a channel, one at a time in thread-id order,
and completes on the thread that started it; :func:`for_each_thread` does the same over all
threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, final

from spdkpy.errors import (
    InvalidStateError,
    NoSuchDeviceError,
    ThreadExitedError,
    WrongThreadError,
)
from spdkpy.thread._lib import MAX_NAME_LEN, current_library, get_thread
from spdkpy.thread._thread import Thread, ThreadState

__all__ = [
    "ChannelIterator",
    "IoChannel",
    "IoChannelStatistics",
    "IoDevice",
    "for_each_channel",
    "for_each_thread",
    "get_io_channel",
    "io_device_register",
    "io_device_unregister",
]

log = logging.getLogger("spdkpy.thread")

CtxT = TypeVar("CtxT")


def _require_current(what: str) -> Thread:
    thread = get_thread()
    if thread is None:
        raise WrongThreadError(f"{what} needs a current SPDK thread")
    return thread


@final
class IoDevice(Generic[CtxT]):
    """A registered device: its callbacks, channel count and in-flight walks."""

    __slots__ = (
        "create_cb",
        "destroy_cb",
        "for_each_count",
        "key",
        "name",
        "obj",
        "pending_unregister",
        "refcnt",
        "threads",
        "unregister_cb",
        "unregister_thread",
        "unregistered",
    )

    def __init__(
        self,
        obj: object,
        create_cb: Callable[[object], CtxT],
        destroy_cb: Callable[[object, CtxT], None],
        name: str,
    ) -> None:
        self.obj = obj
        self.key = id(obj)
        self.create_cb = create_cb
        self.destroy_cb = destroy_cb
        self.name = name
        self.refcnt = 0
        self.for_each_count = 0
        self.pending_unregister = False
        self.unregistered = False
        self.unregister_cb: Callable[[], object] | None = None
        self.unregister_thread: Thread | None = None
        # Threads holding a channel, by thread id (walks go in id order).
        self.threads: dict[int, Thread] = {}

    def __repr__(self) -> str:
        return f"<IoDevice {self.name!r} channels={self.refcnt}>"


@dataclass(frozen=True, slots=True)
class IoChannelStatistics:
    """A snapshot of one io_channel (``thread_get_io_channels`` reports ``name`` and ``ref``)."""

    name: str
    thread_id: int
    ref: int
    pending_destroy: int


@final
class IoChannel(Generic[CtxT]):
    """One thread's channel to one device. Use only on its thread; release with :meth:`put`."""

    __slots__ = ("ctx", "destroy_ref", "device", "ref", "thread")

    def __init__(self, device: IoDevice[CtxT], thread: Thread, ctx: CtxT) -> None:
        self.device = device
        self.thread = thread
        self.ctx = ctx
        self.ref = 1
        self.destroy_ref = 0

    def get_ref(self) -> IoChannel[CtxT]:
        """Take one more reference (``spdk_io_channel_ref``)."""
        self.thread._check_owner("reference an io_channel")
        self.ref += 1
        return self

    def put(self) -> None:
        """Drop one reference; at zero the channel is destroyed by a message to this thread."""
        thread = self.thread
        thread._check_owner("put an io_channel")
        if self.ref <= 0:
            raise InvalidStateError(f"io_channel {self.device.name} put more often than got")
        self.ref -= 1
        if self.ref == 0:
            self.destroy_ref += 1
            thread.send_msg(self._deferred_destroy)

    def _deferred_destroy(self) -> None:
        self.destroy_ref -= 1
        if self.ref > 0 or self.destroy_ref > 0:
            return  # revived by a get_io_channel after the last put
        self._release()

    def _release(self) -> None:
        device = self.device
        thread = self.thread
        lock = thread.library.lock
        # Under the library lock: other OS threads read device.threads (walks) and change
        # refcnt/unregistered (get, unregister) concurrently.
        with lock:
            thread.io_channels.pop(device.key, None)
            device.threads.pop(thread.id, None)
        device.destroy_cb(device.obj, self.ctx)
        with lock:
            device.refcnt -= 1
            last = device.unregistered and device.refcnt == 0
        if last:
            _finish_unregister(device)

    def _force_release(self) -> None:
        self.ref = 0
        self.destroy_ref = 0
        self._release()

    def statistics(self) -> IoChannelStatistics:
        """A frozen snapshot: the device, the owning thread and the reference counts."""
        return IoChannelStatistics(self.device.name, self.thread.id, self.ref, self.destroy_ref)

    def __repr__(self) -> str:
        return f"<IoChannel {self.device.name!r} on {self.thread.name!r} ref={self.ref}>"


def io_device_register(
    obj: object,
    create_cb: Callable[[object], CtxT],
    destroy_cb: Callable[[object, CtxT], None],
    name: str | None = None,
) -> IoDevice[CtxT]:
    """Register ``obj`` as an io_device (``spdk_io_device_register``); needs a current thread.

    ``create_cb(obj)`` builds a channel's context on the thread that asks for the channel and
    ``destroy_cb(obj, ctx)`` tears it down there. Registering the same object twice logs an error
    and keeps the first registration.
    """
    _require_current("io_device_register")
    lib = current_library()
    dev_name = name if name is not None else f"{id(obj):#x}"
    device: IoDevice[CtxT] = IoDevice(obj, create_cb, destroy_cb, dev_name[:MAX_NAME_LEN])
    with lib.lock:
        existing = lib.io_devices.get(device.key)
        if existing is not None:
            log.error("io_device %s already registered (old %s)", dev_name, existing.name)
            return existing  # type: ignore[return-value]
        lib.io_devices[device.key] = device  # type: ignore[assignment]
    return device


def io_device_unregister(obj: object, unregister_cb: Callable[[], object] | None = None) -> None:
    """Unregister ``obj``; new channels fail at once, and the device is released when its last
    channel is destroyed. ``unregister_cb()`` then runs as a message on the calling thread.
    """
    thread = _require_current("io_device_unregister")
    lib = current_library()
    with lib.lock:
        device = lib.io_devices.get(id(obj))
        if device is None:
            raise NoSuchDeviceError(f"io_device {obj!r} is not registered")
        if device.for_each_count > 0:
            if device.pending_unregister:
                raise InvalidStateError(
                    f"io_device {device.name} already has an unregister pending"
                )
            device.pending_unregister = True
            device.unregister_cb = unregister_cb
            device.unregister_thread = thread
            return
        del lib.io_devices[device.key]
        # Decided under the lock, so exactly one of us and a racing last release finishes it.
        device.unregistered = True
        device.unregister_cb = unregister_cb
        device.unregister_thread = thread
        last = device.refcnt == 0
    if unregister_cb is not None:
        thread.pending_unregister_count += 1
    if last:
        _finish_unregister(device)


def _finish_unregister(device: IoDevice[CtxT]) -> None:
    cb = device.unregister_cb
    thread = device.unregister_thread
    device.unregister_cb = None
    if cb is not None and thread is not None:
        thread.send_msg(_unregister_done, thread, cb)


def _unregister_done(thread: Thread, cb: Callable[[], object]) -> None:
    thread.pending_unregister_count -= 1
    cb()


def get_io_channel(obj: object) -> IoChannel[object]:
    """The current thread's channel to ``obj``, created (``create_cb`` runs now) if needed.

    Raises :class:`NoSuchDeviceError` if ``obj`` is not registered, :class:`ThreadExitedError`
    if the current thread has exited, :class:`WrongThreadError` with no current thread.
    """
    thread = _require_current("get_io_channel")
    if thread.state is ThreadState.EXITED:
        raise ThreadExitedError(f"thread {thread.name} has exited; no new io_channel")
    lib = current_library()
    key = id(obj)
    with lib.lock:
        device = lib.io_devices.get(key)
        if device is None:
            raise NoSuchDeviceError(f"io_device {obj!r} is not registered")
        channel = thread.io_channels.get(key)
        if channel is not None:
            channel.ref += 1
            return channel
        device.refcnt += 1
        device.threads[thread.id] = thread
    try:
        ctx = device.create_cb(obj)
    except BaseException:
        with lib.lock:
            device.refcnt -= 1
            device.threads.pop(thread.id, None)
        raise
    channel = IoChannel(device, thread, ctx)
    thread.io_channels[key] = channel
    return channel


# --------------------------------------------------------------------------- walks


@final
class ChannelIterator:
    """The state of one :func:`for_each_channel` walk, handed to ``fn`` and ``cpl``."""

    __slots__ = ("_cpl", "_fn", "_origin", "_status", "channel", "ctx", "device", "thread")

    def __init__(
        self,
        device: IoDevice[object] | None,
        ctx: object,
        fn: Callable[[ChannelIterator], object],
        cpl: Callable[[ChannelIterator, int], object],
        origin: Thread,
    ) -> None:
        self.device = device
        self.ctx = ctx
        self._fn = fn
        self._cpl = cpl
        self._origin = origin
        self._status = 0
        self.channel: IoChannel[object] | None = None
        self.thread: Thread | None = None

    @property
    def io_device(self) -> object:
        return self.device.obj if self.device is not None else None

    def done(self, status: int = 0) -> None:
        """Finish this channel (``spdk_for_each_channel_continue``); call on the visited thread.

        A non-zero ``status`` stops the walk; the completion gets it.
        """
        thread = self.thread
        if thread is None or get_thread() is not thread:
            raise WrongThreadError("ChannelIterator.done() must be called on the visited thread")
        self._status = status
        device = self.device
        assert device is not None
        if status == 0:
            with thread.library.lock:  # device.threads changes on other OS threads
                following = [tid for tid in device.threads if tid > thread.id]
                nxt = device.threads[min(following)] if following else None
            if nxt is not None:
                self._visit(nxt)
                return
        self._finish()

    def _visit(self, thread: Thread) -> None:
        self.thread = thread
        thread.send_msg(self._call_fn)

    def _call_fn(self) -> None:
        thread = self.thread
        device = self.device
        assert thread is not None
        assert device is not None
        channel = thread.io_channels.get(device.key)
        if channel is None:
            self.done(0)  # the channel went away meanwhile: skip this thread
            return
        self.channel = channel
        self._fn(self)

    def _finish(self) -> None:
        device = self.device
        if device is not None:
            # Under the lock: io_device_unregister on another OS thread reads for_each_count
            # and sets pending_unregister; unlocked, the replay could be lost.
            with self._origin.library.lock:
                device.for_each_count -= 1
                replay = device.pending_unregister and device.for_each_count == 0
                if replay:
                    device.pending_unregister = False
            if replay:
                origin = device.unregister_thread
                cb = device.unregister_cb
                if origin is not None:
                    origin.send_msg(_replay_unregister, device.obj, cb)
        self.channel = None
        self._origin.send_msg(self._complete)

    def _complete(self) -> None:
        self._origin.for_each_count -= 1
        self._cpl(self, self._status)


def _replay_unregister(obj: object, cb: Callable[[], object] | None) -> None:
    io_device_unregister(obj, cb)


def for_each_channel(
    obj: object,
    fn: Callable[[ChannelIterator], object],
    cpl: Callable[[ChannelIterator, int], object],
    ctx: object = None,
) -> None:
    """Call ``fn(it)`` on each thread holding a channel to ``obj``, in thread-id order.

    ``fn`` must end with ``it.done(status)`` on that thread (at once or later). ``cpl(it, status)``
    then runs as a message on the calling thread: ``-ENODEV`` if the device is missing or being
    unregistered, 0 or the first non-zero status otherwise.
    """
    origin = _require_current("for_each_channel")
    lib = current_library()
    origin.for_each_count += 1
    with lib.lock:
        device = lib.io_devices.get(id(obj))
        usable = device is not None and not device.pending_unregister
        if usable and device is not None:
            device.for_each_count += 1
            holders = sorted(device.threads)
            first = device.threads[holders[0]] if holders else None
    it = ChannelIterator(device if usable else None, ctx, fn, cpl, origin)
    if not usable:
        it._status = -NoSuchDeviceError.errno
        origin.send_msg(it._complete)
        return
    if first is None:
        it._finish()
        return
    it._visit(first)


def for_each_thread(fn: Callable[[], object], cpl: Callable[[], object]) -> None:
    """Run ``fn()`` on every running thread, one after another, then ``cpl()`` on this thread.

    With no current thread, ``cpl`` runs at once (SPDK logs and does the same).
    """
    lib = current_library()
    origin = get_thread()
    if origin is None:
        log.error("for_each_thread called with no current thread; completing at once")
        cpl()
        return
    origin.for_each_count += 1

    def complete() -> None:
        origin.for_each_count -= 1
        cpl()

    def visit(thread: Thread) -> None:
        fn()
        with lib.lock:
            threads = lib.threads
            try:
                start = threads.index(thread) + 1
            except ValueError:
                start = len(threads)
            following = [t for t in threads[start:] if t.state is ThreadState.RUNNING]
        # A thread may exit on its own OS thread between the check and the send: skip it then.
        for thread_next in following:
            if thread_next.try_send_msg(visit, thread_next):
                return
        origin.send_msg(complete)

    with lib.lock:
        # SPDK starts at the head of the list; an exited head could not take a message.
        head = next((t for t in lib.threads if t.state is not ThreadState.EXITED), None)
    if head is None:
        origin.send_msg(complete)
    else:
        head.send_msg(visit, head)
