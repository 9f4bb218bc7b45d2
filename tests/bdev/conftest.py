"""A bdev layer on a :class:`ThreadHarness`: thread 0 is the app thread, 1 and 2 submit.

Every test gets the layer initialised (``bdev_initialize``) and torn down at the end
(``bdev_finish``, which must finish: every bdev unregistered, every channel released), with no
real OS threads or time. Tests get the helpers through the ``env`` fixture (with
``--import-mode=importlib`` a test module cannot import this conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from spdkpy import bdev as B
from spdkpy.bdev import _bdev as _bdev_core
from spdkpy.testing import ThreadHarness
from spdkpy.thread import get_thread


class Completions:
    """A completion callback that records ``(tag, success, thread name, status)`` and frees."""

    def __init__(self) -> None:
        self.done: list[tuple[Any, bool, str, int]] = []
        self.data: dict[Any, bytes] = {}

    def __call__(self, io: B.BdevIo, success: bool, tag: Any) -> None:
        thread = get_thread()
        assert thread is not None
        self.done.append((tag, success, thread.name, io.status))
        if io.buf is not None:
            self.data[tag] = bytes(io.buf[: io.num_blocks * io.bdev.block_size])
        io.free()

    def tags(self, success: bool | None = None) -> list[Any]:
        return [t for t, ok, _, _ in self.done if success is None or ok == success]

    def status_of(self, tag: Any) -> int:
        return next(s for t, _, _, s in self.done if t == tag)


class BdevEnv:
    def __init__(self, harness: ThreadHarness) -> None:
        self.h = harness
        self.events: list[tuple[str, B.BdevEvent, str]] = []

    def on(self, index: int) -> None:
        self.h.set_thread(index)

    def poll(self) -> None:
        self.h.poll_threads()

    def malloc(self, name: str = "Malloc0", num_blocks: int = 64, block_size: int = 512, **kw: Any):
        self.on(0)
        return B.create_malloc_disk(
            B.MallocOpts(num_blocks=num_blocks, block_size=block_size, name=name, **kw)
        )

    def null(self, name: str = "Null0", num_blocks: int = 64, block_size: int = 512, **kw: Any):
        self.on(0)
        return B.create_null_bdev(
            B.NullOpts(name=name, num_blocks=num_blocks, block_size=block_size, **kw)
        )

    def open(self, name: str, write: bool = True, thread: int = 1) -> B.Descriptor:
        """Open on ``thread``; events are recorded as ``(bdev name, event, thread name)``."""
        self.on(thread)

        def on_event(event: B.BdevEvent, bdev: B.Bdev) -> None:
            current = get_thread()
            assert current is not None
            self.events.append((bdev.name, event, current.name))

        return B.open_bdev(name, write, on_event)

    def channel(self, desc: B.Descriptor, thread: int = 1):
        self.on(thread)
        return desc.get_io_channel()

    def close(self, desc: B.Descriptor, ch: Any = None, thread: int = 1) -> None:
        self.on(thread)
        if ch is not None:
            ch.put()
        desc.close()

    def stat(self, bdev: B.Bdev) -> B.BdevIoStat:
        self.on(0)
        got: list[B.BdevIoStat] = []
        B.bdev_get_device_stat(bdev, got.append)
        self.poll()
        assert len(got) == 1
        return got[0]

    def unregister(self, bdev: B.Bdev) -> list[int]:
        self.on(0)
        rcs: list[int] = []
        B.bdev_unregister(bdev, rcs.append)
        return rcs


@pytest.fixture
def env() -> Iterator[BdevEnv]:
    with ThreadHarness(3, msg_mempool_size=16383) as harness:
        harness.set_thread(0)
        rcs: list[int] = []
        B.bdev_initialize(rcs.append)
        assert rcs == [0]
        env = BdevEnv(harness)
        try:
            yield env
        finally:
            harness.set_thread(0)
            if B.bdev_is_initialized():
                B.bdev_finish(lambda: None)
                harness.poll_threads()
            stuck = B.bdev_is_initialized()
            if stuck:
                # Leave nothing behind for the next test, then report.
                _bdev_core._mgr = None
                _bdev_core._opts = B.BdevOpts()
            assert not stuck, "bdev_finish did not complete"


@pytest.fixture
def completions() -> Completions:
    return Completions()


class ScriptedDisk(B.BdevFnTable):
    """A back-end whose behaviour a test scripts, to reach paths malloc and null never take.

    ``mode``: ``"poll"`` completes from a poller on the next poll, ``"inline"`` inside
    ``submit_request``, ``"hold"`` keeps requests until :meth:`release`. The first ``nomem``
    completions are NOMEM. ``submitted`` records ``(type, offset, blocks, thread name)``.
    """

    def __init__(self, name: str, types: set[B.IoType] | None = None, **bdev_kw: Any) -> None:
        from spdkpy.thread import io_device_register

        self.types = types or {B.IoType.READ, B.IoType.WRITE, B.IoType.RESET, B.IoType.FLUSH}
        self.mode = "poll"
        self.nomem = 0
        self.status = B.IoStatus.SUCCESS
        self.submitted: list[tuple[int, int, int, str]] = []
        self.held: list[B.BdevIo] = []
        self.destructed = 0
        self._pollers: dict[int, Any] = {}
        kw: dict[str, Any] = {"block_size": 512, "num_blocks": 64}
        kw.update(bdev_kw)
        self.bdev = B.Bdev(name, fn_table=self, module=SCRIPTED_MODULE, **kw)
        io_device_register(self, self._create, self._destroy, f"scripted_{name}")

    def _create(self, obj: object) -> list[B.BdevIo]:
        thread = get_thread()
        assert thread is not None
        queue: list[B.BdevIo] = []
        poller = thread.register_poller(self._poll, queue, name="scripted_poller")
        self._pollers[id(queue)] = poller
        return queue

    def _destroy(self, obj: object, queue: list[B.BdevIo]) -> None:
        self._pollers.pop(id(queue)).unregister()

    def _poll(self, queue: list[B.BdevIo]) -> int:
        if not queue:
            return 0
        batch = list(queue)
        queue.clear()
        for io in batch:
            self._complete(io)
        return 1

    def _complete(self, io: B.BdevIo) -> None:
        if self.nomem and io.type != B.IoType.RESET:
            self.nomem -= 1
            io.complete(B.IoStatus.NOMEM)
            return
        io.complete(self.status)

    def release(self) -> None:
        """Complete the held requests, each by a message to the thread that owns it."""
        held, self.held = self.held, []
        for io in held:
            io.ch.thread.send_msg(self._complete, io)

    def submit_request(self, ch: Any, io: B.BdevIo) -> None:
        thread = get_thread()
        assert thread is not None
        self.submitted.append((io.type, io.offset_blocks, io.num_blocks, thread.name))
        if self.mode == "inline":
            self._complete(io)
        elif self.mode == "hold":
            self.held.append(io)
        else:
            ch.ctx.append(io)

    def io_type_supported(self, io_type: B.IoType) -> bool:
        return io_type in self.types

    def get_io_channel(self) -> Any:
        from spdkpy.thread import get_io_channel

        return get_io_channel(self)

    def destruct(self) -> int:
        from spdkpy.thread import io_device_unregister

        self.destructed += 1
        io_device_unregister(self)
        return 0


class _ScriptedModule(B.BdevModule):
    name = "scripted"


SCRIPTED_MODULE = _ScriptedModule()


@pytest.fixture
def scripted(env: BdevEnv):
    """``scripted(name, types=None, **bdev_fields)`` registers a :class:`ScriptedDisk`."""

    def make(name: str = "Scripted0", types: set[B.IoType] | None = None, **kw: Any):
        env.on(0)
        disk = ScriptedDisk(name, types, **kw)
        B.bdev_register(disk.bdev)
        return disk

    return make
