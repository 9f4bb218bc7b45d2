"""The socket API (SPDK's ``spdk_sock_*``, SPEC §8.2): one :class:`Sock` over a non-blocking
Python socket.

The Python contract for I/O ("would block" is not an error, and never an exception):

* ``recv(n)`` returns the bytes read, ``b""`` at end of stream, or ``None`` when nothing can be
  read now (SPDK's ``-EAGAIN``); ``recv_into(buf)`` returns a count, ``0`` at end of stream, or
  ``None``;
* ``writev(buffers)`` returns how many bytes were written (possibly only part), or ``None`` when
  nothing could be written now, including while queued asynchronous writes are still unflushed;
* every other failure raises :class:`~spdkpy.errors.SockError` carrying the errno.

A socket of the ``ssl`` implementation carries a :class:`~spdkpy.sock._ssl.TlsStream` and
keeps the same contract: the handshake progresses inside these calls and the group's polls, and
a call that needs it to progress returns "would block"; TLS failures (a certificate that does
not verify, an alert from the peer) are a :class:`SockError` (``EPROTO``).

Ownership: a socket and its group are used from one SPDK thread at a time. A socket not in a
group may be handed to another thread (inside a message); afterwards only that thread touches it.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, NamedTuple, final

from spdkpy.errors import SockError
from spdkpy.sock import _posix as _posix  # registers "posix" before any lookup
from spdkpy.sock._impl import SockImpl, SockImplOptions, SockOpts, get_impl, impl_get_opts
from spdkpy.sock._ssl import TlsStream  # registers "ssl" (not the default)

if TYPE_CHECKING:
    from spdkpy.sock._group import SockGroup

__all__ = [
    "IOV_BATCH_SIZE",
    "BytesLike",
    "Sock",
    "SockAddrs",
    "WriteCallback",
    "connect",
    "listen",
]

BytesLike = bytes | bytearray | memoryview
"""What the write calls accept (``collections.abc.Buffer`` needs Python 3.12)."""

IOV_BATCH_SIZE: Final = 64
"""Queued iovecs that trigger a flush, and the most one ``sendmsg`` of queued writes carries."""
_MAX_IOV: Final = 1024  # IOV_MAX on Linux: the most buffers one sendmsg takes

WriteCallback = Callable[[int], object]
"""``cb(err)``: 0 once every byte of the request is written, ``-errno`` if it was not."""


class SockAddrs(NamedTuple):
    """``getaddr``: the local (server) and peer (client) address and port."""

    saddr: str
    sport: int
    caddr: str
    cport: int


@final
class _Request:
    __slots__ = ("cb", "iovs")

    def __init__(self, iovs: list[memoryview], cb: WriteCallback) -> None:
        self.iovs = iovs  # what is left to send, in order
        self.cb = cb


def _os_error(exc: OSError, what: str) -> SockError:
    code = exc.errno or errno.EIO
    err = SockError(code, f"{what}: {os.strerror(code)}")
    err.__cause__ = exc
    return err


@final
class Sock:
    """A connected or listening socket. Made by :func:`connect`, :func:`listen` or
    :meth:`accept`; never constructed directly.
    """

    __slots__ = (
        "_close_pending",
        "_impl",
        "_in_cb",
        "_peer",
        "_queue",
        "_queued_iovcnt",
        "_sock",
        "_tls",
        "closed",
        "group",
        "group_cb",
        "impl_name",
        "impl_opts",
        "listening",
        "opts",
    )

    def __init__(
        self,
        raw: socket.socket,
        impl: SockImpl,
        opts: SockOpts,
        impl_opts: SockImplOptions,
        *,
        listening: bool,
        peer: tuple[str, int] | None = None,
    ) -> None:
        self._sock = raw
        self._tls = TlsStream(raw) if isinstance(raw, ssl.SSLSocket) and not listening else None
        # Known at accept: a peer that already reset the connection has no getpeername().
        self._peer = peer
        self._impl = impl
        self.impl_name = impl.name
        self.opts = opts
        self.impl_opts = impl_opts
        self.listening = listening
        self.closed = False
        self.group: SockGroup | None = None
        self.group_cb: Callable[[SockGroup, Sock], object] | None = None
        self._queue: deque[_Request] = deque()
        self._queued_iovcnt = 0
        self._in_cb = False
        self._close_pending = False

    # ------------------------------------------------------------------ basics

    def fileno(self) -> int:
        """The OS file descriptor (-1 once closed)."""
        return self._sock.fileno()

    def getaddr(self) -> SockAddrs:
        """Local and peer address; a listener's peer is ``("", 0)``."""
        self._check_open()
        try:
            local = self._sock.getsockname()
            if self.listening:
                peer: tuple[str, int] = ("", 0)
            elif self._peer is not None:
                peer = self._peer
            else:
                peer = self._sock.getpeername()
        except OSError as exc:
            raise _os_error(exc, "getaddr failed") from exc
        return SockAddrs(str(local[0]), int(local[1]), str(peer[0]), int(peer[1]))

    def is_ipv4(self) -> bool:
        return self._sock.family == socket.AF_INET

    def is_ipv6(self) -> bool:
        return self._sock.family == socket.AF_INET6

    def is_connected(self) -> bool:
        """Whether the peer is still there (a zero-byte peek does not say EOF)."""
        if self.closed or self.listening:
            return False
        tls = self._tls
        if tls is not None:
            if tls.error is not None:
                return False
            if tls.pending():
                return True
        try:
            # The TCP bytes themselves (an SSLSocket refuses recv flags).
            return socket.socket.recv(self._sock, 1, socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    @property
    def queued_iovcnt(self) -> int:
        """Buffers of asynchronous writes waiting to be sent."""
        return self._queued_iovcnt

    @property
    def unsent_bytes(self) -> int:
        """Bytes this socket took (queued asynchronous writes, TLS records held because the
        kernel was full) that the kernel has not taken yet. :meth:`flush` sends them; a
        server that closes after its last write should wait until this is 0.
        """
        queued = sum(len(v) for req in self._queue for v in req.iovs) if self._queue else 0
        return queued + (self._tls.unsent if self._tls is not None else 0)

    def tls_info(self) -> tuple[str, str] | None:
        """``(protocol, cipher)`` of an ``ssl`` socket once its handshake is done (e.g.
        ``("TLSv1.3", "TLS_AES_256_GCM_SHA384")``); ``None`` before, or for ``posix``."""
        return self._tls.info() if self._tls is not None else None

    def _check_open(self) -> None:
        if self.closed:
            raise SockError(errno.EBADF, "socket is closed")

    # ------------------------------------------------------------------ accept / recv

    def accept(self) -> Sock | None:
        """A new connection, or ``None`` when none is pending. It inherits this listener's
        options and is in no group. Raises :class:`SockError` on other failures.
        """
        self._check_open()
        try:
            raw, address = self._sock.accept()
        except BlockingIOError:
            return None
        except OSError as exc:
            raise _os_error(exc, "accept failed") from exc
        try:
            self._impl.configure_accepted(raw, self.impl_opts)
        except OSError as exc:
            raw.close()
            raise _os_error(exc, "accept failed") from exc
        peer = (str(address[0]), int(address[1])) if isinstance(address, tuple) else None
        return Sock(raw, self._impl, self.opts, self.impl_opts, listening=False, peer=peer)

    def recv(self, n: int) -> bytes | None:
        """Up to ``n`` bytes; ``b""`` at end of stream; ``None`` if nothing is there now."""
        self._check_open()
        if self._tls is not None:
            return self._tls.recv(n)
        try:
            return self._sock.recv(n)
        except BlockingIOError:
            return None
        except InterruptedError:
            return None
        except OSError as exc:
            raise _os_error(exc, "recv failed") from exc

    def recv_into(self, buffer: bytearray | memoryview) -> int | None:
        """Read into ``buffer``; the count, 0 at end of stream, ``None`` if nothing is there."""
        if self._tls is not None or self.closed:
            self._check_open()
            assert self._tls is not None
            return self._tls.recv_into(buffer)
        try:
            return self._sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise _os_error(exc, "recv failed") from exc

    # ------------------------------------------------------------------ writes

    def writev(self, buffers: Sequence[BytesLike]) -> int | None:
        """Write what the socket takes now, in order; may be only part. ``None`` when nothing
        could be written, or when earlier :meth:`writev_async` requests still wait (they are
        flushed first, so ordering holds). At most 1024 buffers go in one call.
        """
        if self.closed:
            raise SockError(errno.EBADF, "socket is closed")
        if self._queue:
            self.flush()
            if self._queue:
                return None
        if self._tls is not None:
            return self._tls.write(buffers) if buffers else 0
        try:
            # One buffer (the common echo and PDU case) goes through send(): sendmsg's message
            # header costs more than the whole call on small writes.
            if len(buffers) == 1:
                sent = self._sock.send(buffers[0])
            elif not buffers:
                return 0
            else:
                sent = self._sock.sendmsg(buffers[:_MAX_IOV])
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise _os_error(exc, "writev failed") from exc
        return sent if sent else None

    def writev_async(self, buffers: Sequence[BytesLike], cb: WriteCallback) -> None:
        """Queue ``buffers`` to be written in order; ``cb(0)`` once all are written, or
        ``cb(-errno)`` if they cannot be. The queue is flushed when 64 or more buffers wait, on
        every poll of the socket's group, and by :meth:`flush`. On a closed socket ``cb(-EBADF)``
        runs at once; otherwise ``cb`` runs later, or inside this call if a flush completes it.
        """
        if self.closed:
            cb(-errno.EBADF)
            return
        iovs = [memoryview(b).cast("B") for b in buffers]
        iovs = [v for v in iovs if len(v)]
        self._queue.append(_Request(iovs, cb))
        self._queued_iovcnt += len(iovs)
        if self.group is not None:
            self.group._flush_pending.add(self)
        if self._queued_iovcnt >= IOV_BATCH_SIZE:
            self.flush()

    def flush(self) -> int:
        """Send queued asynchronous writes until done or the socket is full; returns the bytes
        sent. Completed requests get ``cb(0)``; on an error every queued request gets
        ``cb(-errno)`` and the error is returned as ``-errno`` (nothing raises).
        """
        if self._tls is not None:
            return self._flush_tls(self._tls)
        total = 0
        queue = self._queue
        while queue and not self.closed:
            iovs: list[memoryview] = []
            for req in queue:
                iovs.extend(req.iovs[: IOV_BATCH_SIZE - len(iovs)])
                if len(iovs) >= IOV_BATCH_SIZE:
                    break
            if not iovs:
                sent = 0
            else:
                try:
                    sent = self._sock.sendmsg(iovs)
                except (BlockingIOError, InterruptedError):
                    return total
                except OSError as exc:
                    self._abort_requests(-(exc.errno or errno.EIO))
                    return -(exc.errno or errno.EIO)
            total += sent
            wanted = sum(len(v) for v in iovs)
            self._consume(sent)
            if sent < wanted:
                return total
        return total

    def _flush_tls(self, tls: TlsStream) -> int:
        total = 0
        queue = self._queue
        try:
            if not tls.flush_out():
                return 0
            while queue and not self.closed:
                iovs: list[memoryview] = []
                for req in queue:
                    iovs.extend(req.iovs)
                    if len(iovs) >= IOV_BATCH_SIZE:
                        break
                taken = tls.write(iovs) if iovs else 0
                if taken is None:
                    return total
                total += taken
                self._consume(taken)
                if tls.unsent:
                    return total  # the kernel is full: the group finishes it when writable
        except SockError as exc:
            self._abort_requests(-exc.errno)
            return -exc.errno
        return total

    def _consume(self, sent: int) -> None:
        queue = self._queue
        while queue:
            req = queue[0]
            while req.iovs and sent:
                head = req.iovs[0]
                if sent >= len(head):
                    sent -= len(head)
                    req.iovs.pop(0)
                    self._queued_iovcnt -= 1
                else:
                    req.iovs[0] = head[sent:]
                    sent = 0
            if req.iovs:
                return
            queue.popleft()
            req.cb(0)

    def _abort_requests(self, err: int) -> None:
        queue = self._queue
        while queue:
            req = queue.popleft()
            self._queued_iovcnt -= len(req.iovs)
            req.cb(err)
        self._queued_iovcnt = 0

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Close (``spdk_sock_close``). Raises :class:`SockError` ``EBUSY`` while the socket is
        in a group (remove it first). Queued writes get ``cb(-ECANCELED)``. Called from inside
        this socket's group callback, the teardown waits until that callback returns. Closing
        twice does nothing.
        """
        if self.closed:
            return
        if self.group is not None:
            raise SockError(errno.EBUSY, "socket is still in a group; remove it first")
        if self._in_cb:
            self._close_pending = True
            return
        self._teardown()

    def _teardown(self) -> None:
        self.closed = True
        self._abort_requests(-errno.ECANCELED)
        if self._tls is not None:
            self._tls.close()
        self._sock.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("listening" if self.listening else "open")
        return f"<Sock {self.impl_name} fd={self._sock.fileno()} {state}>"


def _resolve(
    impl_name: str | None, opts: SockOpts | None
) -> tuple[SockImpl, SockOpts, SockImplOptions]:
    impl = get_impl(impl_name)
    sock_opts = opts if opts is not None else SockOpts()
    impl_opts = sock_opts.impl_opts if sock_opts.impl_opts is not None else impl_get_opts(impl.name)
    return impl, sock_opts, impl_opts


def connect(host: str, port: int, impl: str | None = None, opts: SockOpts | None = None) -> Sock:
    """Connect to ``host:port`` (``spdk_sock_connect_ext``) with implementation ``impl`` (the
    default when ``None``). Waits for the handshake up to the connect timeout, then the socket
    is non-blocking. Raises :class:`SockError` (e.g. ``ECONNREFUSED``) or
    :class:`~spdkpy.errors.SockImplNotFoundError`.
    """
    implementation, sock_opts, impl_opts = _resolve(impl, opts)
    raw = implementation.connect(host, port, sock_opts, impl_opts)
    return Sock(raw, implementation, sock_opts, impl_opts, listening=False)


def listen(host: str, port: int, impl: str | None = None, opts: SockOpts | None = None) -> Sock:
    """Listen on ``host:port`` (``spdk_sock_listen_ext``); port 0 picks a free port (see
    :meth:`Sock.getaddr`). Raises :class:`SockError` (e.g. ``EADDRINUSE``).
    """
    implementation, sock_opts, impl_opts = _resolve(impl, opts)
    raw = implementation.listen(host, port, sock_opts, impl_opts)
    return Sock(raw, implementation, sock_opts, impl_opts, listening=True)
