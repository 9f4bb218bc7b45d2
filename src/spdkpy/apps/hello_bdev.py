"""``spdkpy hello_bdev``: SPDK's bdev example (``examples/bdev/hello_world``, SPEC-STORAGE A4.1).

On the app thread: open the bdev ``-b`` (default ``Malloc0``) for writing, take an I/O channel,
write "Hello World!" to block 0, read it back, log it, close and stop. The bdevs come from the
``-c`` JSON config (e.g. one ``bdev_malloc_create``); there is no RPC server. Any failure logs
one error line and exits 1.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Final

from spdkpy._log import notice
from spdkpy.app import App, AppArgumentParser, add_app_options, opts_from_args
from spdkpy.bdev import (
    Bdev,
    BdevEvent,
    BdevIo,
    BdevIoWaitEntry,
    Descriptor,
    SubmitStatus,
    alloc_io_buffer,
    open_bdev,
    queue_io_wait,
    register_bdev_subsystem,
)
from spdkpy.errors import BdevError
from spdkpy.thread import IoChannel

__all__ = ["add_parser", "run"]

log = logging.getLogger("spdkpy.hello_bdev")

GREETING: Final = b"Hello World!\n"


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser: AppArgumentParser = commands.add_parser(
        "hello_bdev",
        help="SPDK's bdev example: write 'Hello World!' to a bdev and read it back",
        description="Open a bdev from the -c config, write a greeting to block 0, read it back.",
    )
    add_app_options(parser, with_rpc=False)
    g = parser.add_argument_group("hello_bdev options")
    g.add_argument(
        "-b", dest="bdev_name", default="Malloc0", metavar="NAME", help="bdev (default Malloc0)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    app = App(opts_from_args("hello_bdev", args))
    register_bdev_subsystem(app)
    return _Hello(app, args.bdev_name).run()


class _Hello:
    def __init__(self, app: App, bdev_name: str) -> None:
        self.app = app
        self.bdev_name = bdev_name
        self.desc: Descriptor | None = None
        self.ch: IoChannel[Any] | None = None
        self.buf: memoryview = memoryview(bytearray(0))
        self.wait: BdevIoWaitEntry | None = None

    def run(self) -> int:
        return self.app.start(self._start)

    def _start(self) -> None:
        notice(log, "Successfully started the application")
        notice(log, "Opening the bdev %s", self.bdev_name)
        try:
            desc = open_bdev(self.bdev_name, True, self._on_event)
        except BdevError:
            log.error("Could not open bdev: %s", self.bdev_name)
            self.app.stop(-1)
            return
        self.desc = desc
        notice(log, "Opening io channel")
        try:
            self.ch = desc.get_io_channel()
        except BdevError as exc:
            log.error("Could not create bdev I/O channel!! (%s)", exc)
            self._finish(-1)
            return
        bdev = desc.bdev
        length = bdev.block_size * bdev.write_unit_size
        self.buf = alloc_io_buffer(length, 1 << bdev.required_alignment)
        self.buf[: len(GREETING)] = GREETING
        self._write()

    def _on_event(self, event: BdevEvent, bdev: Bdev) -> None:
        notice(log, "Unsupported bdev event: type %d", int(event))

    def _submit(self, what: str, submit: Any, retry: Any) -> None:
        desc, ch = self.desc, self.ch
        assert desc is not None
        assert ch is not None
        try:
            rc = submit(ch, self.buf, 0, len(self.buf), self._io_done, what)
        except BdevError as exc:
            log.error("%s error while %s bdev: %d", exc, what, -exc.errno)
            self._finish(-1)
            return
        if rc == SubmitStatus.NOMEM:
            notice(log, "Queueing io")
            self.wait = BdevIoWaitEntry(desc.bdev, lambda arg: retry())
            queue_io_wait(desc.bdev, ch, self.wait)

    def _write(self) -> None:
        notice(log, "Writing to the bdev")
        assert self.desc is not None
        self._submit("writing to", self.desc.write, self._write)

    def _read(self) -> None:
        notice(log, "Reading io")
        assert self.desc is not None
        self._submit("reading from", self.desc.read, self._read)

    def _io_done(self, io: BdevIo, success: bool, what: str) -> None:
        io.free()
        if what == "writing to":
            if not success:
                log.error("bdev io write error: %d", 5)  # EIO, as SPDK's example
                self._finish(-1)
                return
            notice(log, "bdev io write completed successfully")
            self.buf[:] = bytes(len(self.buf))
            self._read()
            return
        if success:
            text = bytes(self.buf).split(b"\0", 1)[0].decode("utf-8", "replace")
            notice(log, "Read string from bdev : %s", text.rstrip("\n"))
        else:
            log.error("bdev io read error")
        self._finish(0 if success else -1)

    def _finish(self, rc: int) -> None:
        if self.ch is not None:
            self.ch.put()
            self.ch = None
        if self.desc is not None:
            self.desc.close()
            self.desc = None
        notice(log, "Stopping app")
        self.app.stop(rc)
