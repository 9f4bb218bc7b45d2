"""``spdkpy hello_sock``: SPDK's sock example (``examples/sock/hello_world``, SPEC §8.4).

Client (default): connect to ``-H``:``-P``, send stdin, print what comes back to stdout exactly.
Server (``-S``): listen and echo every connection until SIGINT/SIGTERM.

Deviations from SPDK's example, each to lose nothing and keep tests deterministic:

* The server echoes **with backpressure and no loss**: it reads a connection only while fewer
  than 4 MiB (:data:`~spdkpy.apps._echo.DEFAULT_ECHO_BOUND`) of its echo wait unsent, writes
  what the socket takes and keeps the rest for later polls (SPDK reads 1 KiB and drops what a
  partial write did not take). While a connection's output is full, its group watches it for
  writability instead of readability, so the reactor sleeps instead of spinning. A peer that
  half-closes still gets the rest of its echo before the connection is closed.
* The server serves from one pinned lightweight thread and socket group per core of ``-m``,
  named ``hello_sock_<core>``. The listener is in the first core's group; that thread accepts
  and hands each connection to the group with the fewest connections (inside a message when it
  is another thread's). The app thread keeps no poller, so with ``-m 0x1`` the reactor polls
  one group per iteration, as SPDK's example does.
* The client treats "no data on stdin yet" as no data, not as end of input (SPEC §8.4), and only
  reads stdin once what it read before has been sent. After end of input it waits for echoes
  until one second has passed with nothing received (SPDK: one second after end of input). A
  peer closing after that decision does not change the exit code; a socket error (such as a
  TLS handshake that fails) still makes it -1, as in SPDK.
* ``-N ssl`` speaks TLS 1.2/1.3 with certificates: ``--cert FILE --key FILE`` (a server needs
  both; a client may present them), ``--ca FILE`` (a client verifies the server against it,
  else against the system CAs; a server then requires client certificates). SPDK's PSK
  (``-E``/``-I``) needs Python 3.13+ (TLS 1.3, or TLS 1.2 PSK suites with ``-T 12``); on an older
  Python it is refused with one line. The start-up log says which TLS is in use, and the client
  logs the negotiated version and cipher. SPDK pins the cipher suite to TLS_AES_128_GCM_SHA256;
  Python (3.11 to 3.13) cannot, so OpenSSL's default suites are negotiated. ``-N uring`` says
  spdkpy never registers it. ``-T``/``-k``/``-K``/``-z``/``-Z`` are accepted and explained.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import ssl
import sys
import time
from typing import Any, Final

from spdkpy._log import notice
from spdkpy.app import App, AppArgumentParser, add_app_options, opts_from_args
from spdkpy.apps._echo import EchoBuffer
from spdkpy.env import CpuSet
from spdkpy.errors import InputError, NotSupportedError, SockError
from spdkpy.sock import (
    Sock,
    SockGroup,
    SockOpts,
    connect,
    get_default_impl,
    get_impl,
    impl_get_opts,
    listen,
)
from spdkpy.sock._ssl import describe, parse_psk_key, psk_supported, psk_unsupported_message
from spdkpy.thread import POLLER_BUSY, POLLER_IDLE, Poller, Thread, get_thread

__all__ = ["add_parser", "run"]

log = logging.getLogger("spdkpy.hello_sock")

RECV_CHUNK: Final = 256_000
"""Receive buffer of each worker (uvloop's size). Bulk streams move up to this much per read; not
a power of two on purpose: on loopback (MSS 65483) echoing a full 262144-byte read sends four
full segments and a 212-byte one, and those tiny segments cost both ends more per byte."""
DRAIN_READS: Final = 4
"""Reads one callback may echo while each fills the whole buffer (about 1 MB): a streaming peer
is served in long runs, with fewer polls, as libuv does, and still in turn with the others."""
STDIN_CHUNK: Final = 64 * 1024
CLOSE_DELAY_S: Final = 1.0
_READ_ONLY: Final = (True, False)
_GRACE_CHECK_US: Final = 50_000


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser: AppArgumentParser = commands.add_parser(
        "hello_sock",
        help="SPDK's sock example: an echo client (default) or server (-S)",
        description="Send stdin to an echo server and print the echo, or (-S) be that server.",
    )
    add_app_options(parser, with_rpc=False)
    g = parser.add_argument_group("hello_sock options")
    g.add_argument("-H", dest="host", required=True, help="address to connect to or listen on")
    g.add_argument("-P", dest="port", required=True, type=_port, help="port (0-65535)")
    g.add_argument("-N", dest="impl", help="sock implementation (default: posix)")
    g.add_argument("-S", dest="server", action="store_true", help="server mode")
    g.add_argument("-E", dest="psk_key", metavar="HEXKEY", help="PSK (ssl only)")
    g.add_argument("-I", dest="psk_identity", metavar="ID", help="PSK identity (ssl only)")
    g.add_argument("-T", dest="tls_version", type=int, metavar="N", help="TLS version (ssl only)")
    g.add_argument("-k", dest="ktls", action="store_const", const=False, help="kTLS off")
    g.add_argument("-K", dest="ktls", action="store_const", const=True, help="kTLS on")
    g.add_argument("-z", dest="zcopy", action="store_const", const=False, help="zero copy off")
    g.add_argument("-Z", dest="zcopy", action="store_const", const=True, help="zero copy on")
    g.add_argument("-V", dest="verbose", action="store_true", help="print byte counts at exit")
    t = parser.add_argument_group("TLS certificates (-N ssl; spdkpy additions)")
    t.add_argument("--cert", dest="certfile", metavar="FILE", help="PEM certificate (chain)")
    t.add_argument("--key", dest="keyfile", metavar="FILE", help="PEM private key of --cert")
    t.add_argument(
        "--ca",
        dest="cafile",
        metavar="FILE",
        help="PEM CA bundle: the client verifies the server with it (default: system CAs); "
        "a server requires client certificates signed by it",
    )
    parser.set_defaults(run=run)


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r} (must be 0-65535)") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r} (must be 0-65535)")
    return value


def _check_impl(name: str | None) -> str:
    if name == "uring":
        raise NotSupportedError(
            "the uring sock implementation is not available in spdkpy (use -N posix)"
        )
    return get_impl(name).name if name is not None else get_default_impl()


def _sock_opts(args: argparse.Namespace, impl: str) -> SockOpts:
    """The socket options, with the TLS settings when ``impl`` is ssl. Raises
    :class:`InputError`/:class:`NotSupportedError` (one line, exit 1) on a bad TLS setup."""
    if impl != "ssl":
        return SockOpts(zcopy=bool(args.zcopy))
    if args.psk_key is not None or args.psk_identity is not None:
        if not psk_supported():
            raise NotSupportedError(psk_unsupported_message("certificate files (--cert/--key)"))
        if args.psk_key is None or args.psk_identity is None:
            raise InputError("TLS PSK needs both -E (hex key) and -I (identity)")
        try:
            parse_psk_key(args.psk_key)
        except SockError as exc:
            raise InputError(f"-E: {exc}") from None
    if args.tls_version not in (None, 0, 12, 13):
        raise InputError(f"invalid TLS version -T {args.tls_version} (0, 12 or 13)")
    if args.keyfile is not None and args.certfile is None:
        raise InputError("--key needs --cert")
    if args.server and args.psk_key is None and (args.certfile is None or args.keyfile is None):
        raise InputError("-N ssl as a server needs --cert FILE and --key FILE")
    for path in (args.certfile, args.keyfile, args.cafile):
        if path is not None and not os.path.isfile(path):
            raise InputError(f"cannot read {path}: no such file")
    changes: dict[str, object] = {
        "tls_version": args.tls_version or 0,
        "psk_key": args.psk_key,
        "psk_identity": args.psk_identity,
        "certfile": args.certfile,
        "keyfile": args.keyfile,
        "cafile": args.cafile,
    }
    if args.ktls is not None:
        changes["enable_ktls"] = args.ktls
    impl_opts = impl_get_opts("ssl").replace(**changes)
    return SockOpts(zcopy=bool(args.zcopy), impl_opts=impl_opts)


def _explain_options(args: argparse.Namespace, impl: str) -> None:
    notes: list[str] = []
    tls_args = (args.psk_key, args.psk_identity, args.tls_version, args.certfile, args.cafile)
    if impl != "ssl" and any(a is not None for a in tls_args):
        notes.append("-E/-I/-T/--cert/--key/--ca configure TLS, which only -N ssl uses: ignored")
    if args.ktls is True:
        notes.append(
            "-K: kernel TLS needs the ssl implementation and ssl.OP_ENABLE_KTLS (Python 3.12+); "
            + ("set" if impl == "ssl" and hasattr(ssl, "OP_ENABLE_KTLS") else "ignored")
        )
    elif args.ktls is False:
        notes.append("-k: kernel TLS off (the default)")
    if args.zcopy is True:
        notes.append("-Z: Python sockets cannot send zero-copy (MSG_ZEROCOPY); sends copy")
    elif args.zcopy is False:
        notes.append("-z: zero-copy send off (the default here; Python sends always copy)")
    for note in notes:
        sys.stderr.write(f"hello_sock: {note}\n")


def run(args: argparse.Namespace) -> int:
    impl = _check_impl(args.impl)
    opts = _sock_opts(args, impl)
    _explain_options(args, impl)
    app = App(opts_from_args("hello_sock", args))
    if args.server:
        return _Server(app, args, impl, opts).run()
    return _Client(app, args, impl, opts).run()


def _print_counts(received: int, sent: int) -> None:
    sys.stdout.write(f"** {received} bytes received, {sent} bytes sent **\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------- server


class _Conn:
    """One echoed connection; touched only on its worker's thread."""

    __slots__ = ("buf", "eof", "fast", "interest", "sock", "tls", "worker")

    def __init__(self, worker: _Worker, sock: Sock) -> None:
        self.worker = worker
        self.sock = sock
        self.buf = EchoBuffer()
        self.eof = False
        self.tls = sock.impl_name == "ssl"
        self.interest = _READ_ONLY  # (readable, writable), as the group watches it
        # Nothing waits to be echoed and the group watches for reading only: what arrives can
        # be written straight back from the worker's receive buffer.
        self.fast = True

    def on_ready(self, group: SockGroup, sock: Sock) -> None:
        """The group callback: read, echo what the socket takes, keep the rest."""
        if not self.fast:
            self.worker.echo_pending(group, self)
            return
        worker = self.worker
        rbuf = worker.rbuf
        buf = self.buf
        try:
            # Echo straight from the worker's buffer. A read that fills it says more is
            # waiting: read again, at most DRAIN_READS times (the group's others wait meanwhile).
            for _ in range(DRAIN_READS):
                got = sock.recv_into(rbuf)
                if got is None:
                    return
                if not got:
                    self.eof = True
                    break
                n = sock.writev((rbuf[:got],)) or 0
                if n != got or (self.tls and sock.unsent_bytes):
                    buf.echoed_at_once(got, n, memoryview(bytes(rbuf[n:got])))
                    break
                buf.received += n
                buf.sent += n
                if got < RECV_CHUNK:
                    return
            else:
                return
        except SockError as exc:
            log.info("connection error: %s", exc)
            worker.close(self)
            return
        worker.update(group, self)


class _Worker:
    """One ``hello_sock_<core>`` thread and its group. Its fields are touched only on that
    thread, except what the app thread sets before the thread exists, and :attr:`closed`,
    which the accepting worker reads (a stale value only makes this worker look busier)."""

    def __init__(self, server: _Server, core: int) -> None:
        self.server = server
        self.core = core
        self.name = f"hello_sock_{core}"
        self.group: SockGroup | None = None
        self.poller: Poller | None = None
        self.conns: dict[Sock, _Conn] = {}
        # One receive buffer per worker, reused for every read: the fast path echoes from it
        # without allocating, and copies only what a write did not take.
        self.rbuf = memoryview(bytearray(RECV_CHUNK))
        self.stopping = False
        self.received = 0
        self.sent = 0
        self.closed = 0  # connections handed to this worker that it has closed
        # The accepting worker only: its listener, and how many connections it handed to each
        # worker (a worker's load is that minus what the worker has closed since).
        self.listener: Sock | None = None
        self.assigned: dict[_Worker, int] = {}
        self.thread = Thread(self.name, CpuSet([core]))
        self.thread.send_msg(self._start)

    def _start(self) -> None:
        thread = get_thread()
        assert thread is not None
        self.group = SockGroup(self)
        # The group's poll is the poller itself: its callback count is > 0 exactly when busy.
        self.poller = thread.register_poller(
            self.group.poll, name="hello_sock_group_poll", wake_fd=self.group.fileno()
        )

    # ------------------------------------------------------------------ accepting

    def listen_on(self, listener: Sock) -> None:
        """(message) Accept ``listener``'s connections from this worker's group."""
        assert self.group is not None
        self.listener = listener
        self.assigned = dict.fromkeys(self.server.workers, 0)
        self.group.add_sock(listener, self._on_listener)

    def _on_listener(self, group: SockGroup, listener: Sock) -> None:
        while True:
            try:
                sock = listener.accept()
            except SockError as exc:
                log.error("accept failed: %s", exc)
                return
            if sock is None:
                return
            try:
                addrs = sock.getaddr()
            except SockError as exc:
                log.error("%s", exc)
                sock.close()
                continue
            notice(
                log,
                "Accepting a new connection from (%s, %d) to (%s, %d)",
                addrs.caddr,
                addrs.cport,
                addrs.saddr,
                addrs.sport,
            )
            assigned = self.assigned
            worker = min(assigned, key=lambda w: (assigned[w] - w.closed, w.core))
            assigned[worker] += 1
            notice(log, "Connection (%s, %d) served by %s", addrs.caddr, addrs.cport, worker.name)
            if worker is self:
                self.adopt(sock)
            else:
                # The socket moves to the worker's thread inside the message; we never touch
                # it again.
                worker.thread.send_msg(worker.adopt, sock)

    def stop_listening(self) -> None:
        """(message, from the app thread) Close the listener, then stop every worker. The
        stops are sent from here, behind every connection this worker has handed out."""
        listener = self.listener
        if listener is not None:
            self.listener = None
            assert self.group is not None
            self.group.remove_sock(listener)
            listener.close()
        for worker in self.server.workers:
            worker.thread.send_msg(worker.stop)

    # ------------------------------------------------------------------ connections

    def adopt(self, sock: Sock) -> None:
        """A connection accepted by the listening worker is ours from now on (a message,
        unless this worker accepted it)."""
        if self.stopping or self.group is None:
            sock.close()
            self.closed += 1
            return
        conn = _Conn(self, sock)
        self.conns[sock] = conn
        self.group.add_sock(sock, conn.on_ready)

    def echo_pending(self, group: SockGroup, conn: _Conn) -> None:
        """The slow path: bytes wait to be echoed, or the peer has stopped sending."""
        sock = conn.sock
        buf = conn.buf
        try:
            budget = buf.read_budget()
            if budget and not conn.eof:
                data = sock.recv(min(budget, RECV_CHUNK))
                if data == b"":
                    conn.eof = True
                elif data is not None:
                    buf.feed(data)
            if buf.pending:
                written = sock.writev(buf.iovecs())
                if written:
                    buf.consume(written)
            # TLS: records the kernel could not take yet are held by the socket; the echo is
            # complete only once they are sent.
            unsent = sock.unsent_bytes
            if unsent and not buf.pending:
                sock.flush()
                unsent = sock.unsent_bytes
        except SockError as exc:
            log.info("connection error: %s", exc)
            self.close(conn)
            return
        if conn.eof and not buf.pending and not unsent:
            self.close(conn)
            return
        self.update(group, conn, unsent)

    def update(self, group: SockGroup, conn: _Conn, unsent: int | None = None) -> None:
        """Close a finished connection, or watch it for what it needs next."""
        buf = conn.buf
        sock = conn.sock
        if unsent is None:
            unsent = sock.unsent_bytes
        if conn.eof and not buf.pending and not unsent:
            self.close(conn)
            return
        interest = (not conn.eof and buf.read_budget() > 0, buf.pending > 0 or unsent > 0)
        if interest != conn.interest:
            conn.interest = interest
            group.set_interest(sock, readable=interest[0], writable=interest[1])
        conn.fast = interest == _READ_ONLY and not buf.pending and not conn.eof

    def close(self, conn: _Conn) -> None:
        notice(log, "Connection closed")
        assert self.group is not None
        self.group.remove_sock(conn.sock)
        conn.sock.close()
        del self.conns[conn.sock]
        self.received += conn.buf.received
        self.sent += conn.buf.sent
        self.closed += 1

    def stop(self) -> None:
        """(message) Close every connection and the group, then exit the thread."""
        self.stopping = True
        group = self.group
        for conn in list(self.conns.values()):
            self.received += conn.buf.received
            self.sent += conn.buf.sent
            if group is not None:
                group.remove_sock(conn.sock)
            conn.sock.close()
        self.conns.clear()
        if self.poller is not None:
            self.poller.unregister()
            self.poller = None
        if group is not None:
            group.close()
        thread = get_thread()
        assert thread is not None
        self.server.app_thread.send_msg(self.server.worker_done, self)
        thread.exit()


class _Server:
    def __init__(self, app: App, args: argparse.Namespace, impl: str, opts: SockOpts) -> None:
        self.app = app
        self.args = args
        self.impl = impl
        self.opts = opts
        self.workers: list[_Worker] = []
        self.done = 0
        self.quitting = False

    @property
    def app_thread(self) -> Thread:
        thread = self.app.app_thread
        assert thread is not None
        return thread

    def run(self) -> int:
        return self.app.start(self._start, self._quit)

    def _start(self) -> None:
        args = self.args
        try:
            listener = listen(args.host, args.port, self.impl, self.opts)
        except SockError as exc:
            log.error("%s", exc)
            self.app.stop(1)
            return
        port = listener.getaddr().sport
        for core in self.app.core_mask:
            self.workers.append(_Worker(self, core))
        # The first core's worker accepts: the app thread keeps no poller, so the main reactor
        # polls one group per iteration, as SPDK's example does. Connections that arrive before
        # the worker's first poll wait in the listen backlog.
        acceptor = self.workers[0]
        acceptor.thread.send_msg(acceptor.listen_on, listener)
        notice(log, "Listening connection on %s:%d with sock_impl(%s)", args.host, port, self.impl)
        if self.opts.impl_opts is not None and self.impl == "ssl":
            notice(log, "TLS: %s", describe(self.opts.impl_opts, server=True))

    def _quit(self) -> None:
        """(app thread; the shutdown callback) Stop accepting, then stop every worker."""
        if self.quitting:
            return
        self.quitting = True
        if not self.workers:
            self.app.stop(0)
            return
        acceptor = self.workers[0]
        acceptor.thread.send_msg(acceptor.stop_listening)

    def worker_done(self, worker: _Worker) -> None:
        self.done += 1
        if self.done < len(self.workers):
            return
        if self.args.verbose:
            _print_counts(sum(w.received for w in self.workers), sum(w.sent for w in self.workers))
        self.app.stop(0)


# ---------------------------------------------------------------------------------- client


class _Client:
    def __init__(self, app: App, args: argparse.Namespace, impl: str, opts: SockOpts) -> None:
        self.app = app
        self.args = args
        self.impl = impl
        self.opts = opts
        self.sock: Sock | None = None
        self.group: SockGroup | None = None
        self.group_poller: Poller | None = None
        self.writer: Poller | None = None
        self.timer: Poller | None = None
        self.leftover = memoryview(b"")
        self.received = 0
        self.sent = 0
        self.rc = 0
        self.quitting = False
        self.quit_at = 0.0
        self.last_rx = 0.0
        self.out = sys.stdout.buffer

    def run(self) -> int:
        try:
            was_blocking: bool | None = os.get_blocking(0)
        except OSError:
            was_blocking = None
        try:
            return self.app.start(self._start, self._shutdown)
        finally:
            if was_blocking is not None:
                try:
                    os.set_blocking(0, was_blocking)
                except OSError:
                    pass

    def _start(self) -> None:
        args = self.args
        notice(
            log,
            "Connecting to the server on %s:%d with sock_impl(%s)",
            args.host,
            args.port,
            self.impl,
        )
        if self.opts.impl_opts is not None and self.impl == "ssl":
            notice(log, "TLS: %s", describe(self.opts.impl_opts, server=False))
        try:
            sock = connect(args.host, args.port, self.impl, self.opts)
        except SockError as exc:
            log.error("%s", exc)
            self.app.stop(1)
            return
        self.sock = sock
        addrs = sock.getaddr()
        notice(
            log,
            "Connection accepted from (%s, %d) to (%s, %d)",
            addrs.caddr,
            addrs.cport,
            addrs.saddr,
            addrs.sport,
        )
        try:
            os.set_blocking(0, False)
        except OSError:
            pass
        self.group = SockGroup(self)
        self.group.add_sock(sock, self._on_ready)
        thread = self.app.app_thread
        assert thread is not None
        self.group_poller = thread.register_poller(
            self._poll, name="hello_sock_group_poll", wake_fd=self.group.fileno()
        )
        # Stdin wakes the reactor when it has data (a pipe or terminal; a regular file cannot be
        # slept on, and the reactor then polls it every 10 ms instead).
        self.writer = thread.register_poller(
            self._write, name="hello_sock_writer", wake_fd=sys.stdin.fileno()
        )

    def _poll(self) -> int:
        assert self.group is not None
        return POLLER_BUSY if self.group.poll() else POLLER_IDLE

    def _write(self) -> int:
        sock = self.sock
        assert sock is not None
        try:
            if self.leftover:
                n = sock.writev([self.leftover])
                if n:
                    self.sent += n
                    self.leftover = self.leftover[n:]
                if self.leftover:
                    return POLLER_BUSY if n else POLLER_IDLE
            try:
                data = os.read(0, STDIN_CHUNK)
            except (BlockingIOError, InterruptedError):
                return POLLER_IDLE  # no input yet (SPDK would quit here)
            except OSError as exc:
                log.error("read from stdin failed: %s", os.strerror(exc.errno or errno.EIO))
                data = b""
            if not data:
                notice(log, "Closing connection...")
                self._quit(0)
                return POLLER_IDLE
            n = sock.writev([data])
            self.sent += n or 0
            self.leftover = memoryview(data)[n or 0 :]
        except SockError as exc:
            log.error("%s", exc)
            self._quit(-1)
        return POLLER_BUSY

    def _on_ready(self, group: SockGroup, sock: Sock) -> None:
        failed = False
        try:
            data = sock.recv(RECV_CHUNK)
        except SockError as exc:
            log.error("%s", exc)
            data = b""
            failed = True
        if data is None:
            return
        if not data:
            if not self.quitting:
                self._quit(-1)
            elif failed and self.rc == 0:
                self.rc = -1  # an error (e.g. a failed TLS handshake) is not a quiet close
            self._finish()  # nothing more can arrive
            return
        if not self.received and self.impl == "ssl":
            info = sock.tls_info()
            if info is not None:
                notice(log, "TLS session: %s, cipher %s", info[0], info[1])
        self.received += len(data)
        self.last_rx = time.monotonic()
        self.out.write(data)
        self.out.flush()

    def _shutdown(self) -> None:
        self._quit(0)

    def _quit(self, rc: int) -> None:
        if self.quitting:
            return
        self.quitting = True
        self.rc = rc
        if self.writer is not None:
            self.writer.unregister()
            self.writer = None
        if self.sock is None:
            self.app.stop(rc)
            return
        self.quit_at = time.monotonic()
        thread = self.app.app_thread
        assert thread is not None
        self.timer = thread.register_poller(
            self._grace, period_us=_GRACE_CHECK_US, name="hello_sock_close_timer"
        )

    def _grace(self) -> int:
        if time.monotonic() - max(self.quit_at, self.last_rx) >= CLOSE_DELAY_S:
            self._finish()
        return POLLER_IDLE

    def _finish(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        notice(log, "Connection closed")
        for poller in (self.timer, self.group_poller, self.writer):
            if poller is not None:
                poller.unregister()
        self.timer = self.group_poller = self.writer = None
        group = self.group
        assert group is not None
        group.remove_sock(sock)
        sock.close()
        group.close()
        if self.args.verbose:
            _print_counts(self.received, self.sent)
        self.app.stop(self.rc)
