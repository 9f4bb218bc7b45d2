"""The JSON-RPC server: the socket side of SPDK's RPC (``lib/jsonrpc``, ``lib/rpc``).

Everything here runs on the app thread, polled, never blocking: a timed poller (every 4 000 µs,
as in SPDK) accepts, reads, dispatches and writes, and the server's sockets are also in the
hosting reactor's epoll set, so a request wakes a sleeping reactor at once instead of waiting for
the next period. While no client is connected the poller is paused and only the listening socket
can wake the reactor: an idle app costs nothing.

Framing and validation are the sans-I/O codec's (``_codec``); this module only moves bytes.
Handlers may answer later and from any OS thread; answers are handed back to the app thread by
message. Responses go out in completion order, a batch's as one array once all its calls have
answered. A slow client gets its output buffered (up to 32 MiB, then it is dropped); it never
stalls the others.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import logging
import os
import socket
from typing import Final, final

from spdkpy.errors import ConfigError, InvalidStateError
from spdkpy.event import Reactor, current_reactor
from spdkpy.rpc._codec import (
    INTERNAL_ERROR,
    INVALID_REQUEST,
    MAX_RECV_BUFFER,
    NEED_DATA,
    PARSE_ERROR,
    Batch,
    InvalidRequest,
    ParseError,
    Request,
    Single,
    StreamDecoder,
    encode_error,
    encode_result,
    frame,
)
from spdkpy.rpc._registry import RpcRegistry, RpcRequest
from spdkpy.thread import POLLER_BUSY, POLLER_IDLE, Poller, Thread, get_thread

__all__ = ["RPC_MAX_CONNECTIONS", "RPC_POLL_PERIOD_US", "RpcServer"]

log = logging.getLogger("spdkpy.rpc")

RPC_POLL_PERIOD_US: Final = 4000
RPC_MAX_CONNECTIONS: Final = 64
RPC_LISTEN_BACKLOG: Final = 512
RPC_MAX_SEND_BUFFER: Final = 32 * 1024 * 1024
_RECV_CHUNK: Final = 64 * 1024
_SUN_PATH_MAX: Final = 107


def _is_tcp(address: str) -> bool:
    return not address.startswith("/") and ":" in address


def _parse_tcp(address: str) -> tuple[str, int, socket.AddressFamily]:
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"RPC address {address!r}: port {port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"RPC address {address!r}: port {port} is out of range")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"RPC address {address!r}: {host!r} is not an IP address") from None
    if not ip.is_loopback:
        raise ConfigError(f"RPC address {address!r}: only loopback addresses may be served")
    return host, port, socket.AF_INET6 if ip.version == 6 else socket.AF_INET


@final
class _Connection:
    __slots__ = ("__weakref__", "closed", "decoder", "fd", "out", "pending", "read_closed", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = StreamDecoder()
        self.out = bytearray()
        self.pending = 0  # calls dispatched and not yet answered
        self.read_closed = False
        self.closed = False


@final
class _Batch:
    __slots__ = ("conn", "responses", "waiting")

    def __init__(self, conn: _Connection, size: int) -> None:
        self.conn = conn
        self.waiting = size
        self.responses: list[dict[str, object]] = []


@final
class RpcServer:
    """A JSON-RPC listener on a Unix socket path, or ``host:port`` on loopback (an extension)."""

    def __init__(self, address: str, registry: RpcRegistry) -> None:
        self.address = address
        self.registry = registry
        self._listener: socket.socket | None = None
        self._lock_fd = -1
        self._thread: Thread | None = None
        self._reactor: Reactor | None = None
        self._poller: Poller | None = None
        self._conns: dict[int, _Connection] = {}
        self._paused = False
        self._watched: set[int] = set()  # fds in the reactor's wake set
        self._wake_pending = False
        self.requests_served = 0

    # ------------------------------------------------------------------ lifecycle

    def listen(self) -> None:
        """Claim the address (lock file, stale socket recovery, bind, listen) from any thread,
        so an app can refuse a busy path before it starts anything. Raises :class:`ConfigError`.
        """
        if self._listener is None:
            self._listener = self._listen_tcp() if _is_tcp(self.address) else self._listen_unix()
            self._listener.setblocking(False)

    def start(self) -> None:
        """Listen (if not yet) and start serving; call on the app thread, which must stay on its
        reactor. Raises :class:`ConfigError` when the address is in use or unusable.
        """
        thread = get_thread()
        reactor = current_reactor()
        if thread is None or reactor is None:
            raise InvalidStateError("the RPC server starts on an SPDK thread hosted by a reactor")
        self.listen()
        assert self._listener is not None
        self._thread = thread
        self._reactor = reactor
        self._sync_listener_watch()
        self._poller = thread.register_poller(
            self._poll, period_us=RPC_POLL_PERIOD_US, name="rpc_subsystem_poll"
        )
        self._poller.pause()  # nothing to poll until a client connects
        log.info("RPC server listening on %s", self.address)

    def _listen_unix(self) -> socket.socket:
        path = self.address
        if len(os.fsencode(path)) > _SUN_PATH_MAX:
            raise ConfigError(f"RPC Listen address Unix socket path too long: {path}")
        lock_path = path + ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot open RPC lock file {lock_path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                f"RPC Unix domain socket path {path} in use. Specify another."
            ) from None
        self._lock_fd = fd
        # We hold the lock, so a socket file there is a stale one from a killed app.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(RPC_LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            self._release_lock()
            raise ConfigError(f"cannot listen on RPC socket {path}: {exc.strerror}") from exc
        return sock

    def _listen_tcp(self) -> socket.socket:
        host, port, family = _parse_tcp(self.address)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(RPC_LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"cannot listen on RPC address {self.address}: {exc.strerror}"
            ) from exc
        return sock

    def _release_lock(self) -> None:
        if self._lock_fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address + ".lock")
            os.close(self._lock_fd)
            self._lock_fd = -1

    def pause(self) -> None:
        """Stop serving (no accept, no reads) until :meth:`resume`; used during subsystem init."""
        self._paused = True
        if self._poller is not None:
            self._poller.pause()
        # Unwatched too: a readable fd nobody reads would wake the reactor over and over.
        for conn in self._conns.values():
            self._watch(conn.fd, False)
        self._sync_listener_watch()

    def resume(self) -> None:
        self._paused = False
        for conn in self._conns.values():
            if not conn.read_closed:
                self._watch(conn.fd, True)
        self._sync_listener_watch()
        if self._poller is not None and self._conns:
            self._poller.resume()
        self._schedule_poll()

    def close(self) -> None:
        """Close every connection and the listener; remove the socket and lock files."""
        for conn in list(self._conns.values()):
            self._close_conn(conn)
        if self._poller is not None:
            self._poller.unregister()
            self._poller = None
        if self._listener is not None:
            self._watch(self._listener.fileno(), False)
            self._listener.close()
            self._listener = None
            if not _is_tcp(self.address):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.address)
        self._release_lock()

    # ------------------------------------------------------------------ polling (app thread)

    def _watch(self, fd: int, on: bool) -> None:
        """Put ``fd`` in the hosting reactor's wake set, or take it out (idempotent)."""
        reactor = self._reactor
        if reactor is None:
            return
        if on and fd not in self._watched:
            reactor.add_wake_fd(fd, self._on_fd_ready)
            self._watched.add(fd)
        elif not on and fd in self._watched:
            reactor.remove_wake_fd(fd)
            self._watched.discard(fd)

    def _sync_listener_watch(self) -> None:
        # The listener wakes the reactor only while a connection could be accepted: at 64
        # connections, or paused, a waiting client would keep it readable and the reactor awake.
        if self._listener is not None:
            can_accept = not self._paused and len(self._conns) < RPC_MAX_CONNECTIONS
            self._watch(self._listener.fileno(), can_accept)

    def _on_fd_ready(self, fd: int) -> None:
        # Runs on the reactor, outside any SPDK thread: hand the work to the app thread.
        self._schedule_poll()

    def _schedule_poll(self) -> None:
        if self._wake_pending or self._thread is None:
            return
        self._wake_pending = True
        if not self._thread.try_send_msg(self._poll_now):
            self._wake_pending = False

    def _poll_now(self) -> None:
        self._wake_pending = False
        self._poll()

    def _poll(self) -> int:
        if self._paused or self._listener is None:
            return POLLER_IDLE
        busy = self._accept()
        for conn in list(self._conns.values()):
            busy |= self._service(conn)
        if self._poller is not None:
            if self._conns:
                self._poller.resume()
            else:
                self._poller.pause()
        return POLLER_BUSY if busy else POLLER_IDLE

    def _accept(self) -> bool:
        listener = self._listener
        assert listener is not None
        accepted = False
        while len(self._conns) < RPC_MAX_CONNECTIONS:
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.error("RPC accept failed: %s", exc)
                break
            sock.setblocking(False)
            conn = _Connection(sock)
            self._conns[conn.fd] = conn
            self._watch(conn.fd, True)
            accepted = True
        self._sync_listener_watch()
        return accepted

    def _service(self, conn: _Connection) -> bool:
        busy = False
        if not conn.read_closed:
            # SPDK's receive buffer is fixed (256 KiB): never hold more than it would. Full and
            # still no complete request means the request can never complete.
            room = MAX_RECV_BUFFER - conn.decoder.buffered
            if room <= 0:
                self._parse_error(conn, "request larger than the receive buffer")
                return True
            try:
                data = conn.sock.recv(min(_RECV_CHUNK, room))
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._close_conn(conn)
                return True
            if data is not None:
                busy = True
                if not data:
                    conn.read_closed = True
                    self._watch(conn.fd, False)  # EOF stays readable: never wake on it again
                    conn.decoder.feed(b"")
                else:
                    conn.decoder.feed(data)
                self._handle_messages(conn)
        if conn.closed:
            return True
        if conn.out:
            busy |= self._flush(conn)
        if conn.read_closed and conn.pending == 0 and not conn.out and not conn.closed:
            self._close_conn(conn)
        return busy

    def _handle_messages(self, conn: _Connection) -> None:
        while not conn.closed:
            message = conn.decoder.next_message()
            if message is NEED_DATA:
                return
            if isinstance(message, ParseError):
                self._parse_error(conn, message.reason)
                return
            if isinstance(message, Single):
                self._dispatch(conn, message.item, None)
            elif isinstance(message, Batch):
                batch = _Batch(conn, len(message.items))
                for item in message.items:
                    self._dispatch(conn, item, batch)

    def _parse_error(self, conn: _Connection, reason: str) -> None:
        log.info("RPC parse error (%s); closing the connection", reason)
        conn.out += frame(encode_error(None, PARSE_ERROR, "Parse error"))
        self._flush(conn)
        self._close_conn(conn)

    def _dispatch(
        self, conn: _Connection, item: Request | InvalidRequest, batch: _Batch | None
    ) -> None:
        conn.pending += 1
        self.requests_served += 1
        if isinstance(item, InvalidRequest):
            self._deliver(conn, batch, encode_error(item.id, INVALID_REQUEST, "Invalid request"))
            return
        request = RpcRequest(
            item.method,
            item.params,
            item.id,
            item.is_notification,
            lambda req, value, err: self._answer(conn, batch, req, value, err),
            client=conn,
        )
        self.registry.dispatch(request)

    def _answer(
        self,
        conn: _Connection,
        batch: _Batch | None,
        request: RpcRequest,
        value: object,
        err: tuple[int, str] | None,
    ) -> None:
        if err is not None:
            response: dict[str, object] | None = encode_error(
                None if request.is_notification else request.id, err[0], err[1]
            )
        elif request.is_notification:
            response = None  # a notification's result is not sent (its errors are)
        else:
            try:
                response = encode_result(request.id, value)
                frame(response)  # fail here, not later, if the result cannot be encoded
            except (TypeError, ValueError) as exc:
                response = encode_error(request.id, INTERNAL_ERROR, f"unencodable result: {exc}")
        thread = self._thread
        assert thread is not None
        if get_thread() is thread:
            self._deliver(conn, batch, response)
        else:
            thread.send_msg(self._deliver, conn, batch, response)

    def _deliver(
        self, conn: _Connection, batch: _Batch | None, response: dict[str, object] | None
    ) -> None:
        conn.pending -= 1
        if batch is not None:
            if response is not None:
                batch.responses.append(response)
            batch.waiting -= 1
            if batch.waiting:
                return
            if not batch.responses:
                return  # a batch of notifications gets no reply
            payload = frame(batch.responses)
        elif response is None:
            return
        else:
            payload = frame(response)
        if conn.closed:
            log.warning("attempt to send response on closed connection")
            return
        conn.out += payload
        if len(conn.out) > RPC_MAX_SEND_BUFFER:
            log.error("RPC client does not read its responses; dropping the connection")
            self._close_conn(conn)
            return
        self._flush(conn)
        if conn.read_closed and conn.pending == 0 and not conn.out:
            self._close_conn(conn)

    def _flush(self, conn: _Connection) -> bool:
        if not conn.out or conn.closed:
            return False
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET):
                log.info("RPC send failed: %s", exc)
            self._close_conn(conn)
            return True
        del conn.out[:sent]
        return sent > 0

    def _close_conn(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.pop(conn.fd, None)
        self._watch(conn.fd, False)
        conn.sock.close()
        conn.out.clear()
        self._sync_listener_watch()

    @property
    def connection_count(self) -> int:
        return len(self._conns)
