"""Socket groups (SPDK's ``spdk_sock_group``, SPEC §8.3): one epoll set polled from a period-0
poller.

Theory of operation. :meth:`SockGroup.poll` first flushes the sockets that have queued
asynchronous writes, then asks epoll (timeout 0) for at most 32 ready sockets. In the common
case, where no socket is left over from an earlier poll and no more are ready than the poll may
serve, it calls their callbacks straight from epoll's answer: level-triggered epoll itself moves
a socket it has reported behind the others, so the next poll starts with those not reported.
Otherwise the ready sockets are appended to an ordered "ready" list and the callbacks of at most
``max_events`` sockets are called from its head, removing each one called; those not reached
stay at the head for the next poll, and epoll reports a socket that still has data again, which
appends it at the tail. Either way, with more ready sockets than one poll serves, every one is
served within a bounded number of polls, in turn.

Sleeping (deviation 3). The group's epoll fd is itself readable whenever a socket in it is
ready. Register the group's period-0 poller with ``wake_fd=group.fileno()``
(:meth:`~spdkpy.thread.Thread.register_poller`): the hosting reactor then sleeps on that fd and
wakes when data arrives, wherever the thread runs.

TLS (``ssl`` sockets). Before asking epoll, each poll also services every TLS socket: it
progresses handshakes and held output, and reports again a socket whose OpenSSL buffer holds
decrypted bytes epoll cannot see (SPDK's "has data" list) or that failed, so its callback's
next call raises. A TLS socket holding output the kernel could not take is watched for
EPOLLOUT as well (the reactor then wakes to finish it); that wake-up alone does not call the
callback unless the caller asked for writability.

spdkpy extension: :meth:`SockGroup.set_interest` lets a socket be watched for writability
instead of (or as well as) readability, so an app applying backpressure stops reading without
making the group spin on a socket it will not read, and learns when it can write again.
"""

from __future__ import annotations

import errno
import select
from collections.abc import Callable
from typing import Final, final

from spdkpy.errors import SockError
from spdkpy.sock._sock import Sock

__all__ = ["MAX_EVENTS_PER_POLL", "SockCallback", "SockGroup"]

MAX_EVENTS_PER_POLL: Final = 32

SockCallback = Callable[["SockGroup", Sock], object]
"""``cb(group, sock)``: ``sock`` is ready (readable, at EOF, in error, or writable if asked)."""


@final
class SockGroup:
    """A set of sockets polled together. Use it from one SPDK thread.

    ``ctx`` is the caller's (``group_get_ctx``).
    """

    __slots__ = (
        "_armed",
        "_epoll",
        "_flush_pending",
        "_interest",
        "_ready",
        "_socks",
        "_tls",
        "closed",
        "ctx",
    )

    def __init__(self, ctx: object = None) -> None:
        self.ctx = ctx
        self._epoll = select.epoll()
        self._socks: dict[int, Sock] = {}
        self._ready: dict[Sock, None] = {}  # insertion-ordered: the head is served first
        # Sockets with queued writev_async requests: a poll flushes these, not every socket.
        self._flush_pending: set[Sock] = set()
        self._interest: dict[Sock, int] = {}  # the epoll events the caller asked for
        self._tls: dict[Sock, None] = {}  # the TLS sockets, serviced on every poll
        self._armed: set[Sock] = set()  # TLS sockets also watched for EPOLLOUT
        self.closed = False

    def fileno(self) -> int:
        """The group's epoll fd: readable while some socket in the group is ready."""
        return self._epoll.fileno()

    def __len__(self) -> int:
        return len(self._socks)

    @property
    def socks(self) -> list[Sock]:
        return list(self._socks.values())

    # ------------------------------------------------------------------ membership

    def add_sock(self, sock: Sock, cb: SockCallback) -> None:
        """Watch ``sock`` for reading; ``cb(group, sock)`` runs from :meth:`poll` when ready.

        Raises :class:`SockError` ``EINVAL`` without ``cb`` or if ``sock`` is already in a group,
        ``EBADF`` if it is closed.
        """
        self._check_open()
        if cb is None:
            raise SockError(errno.EINVAL, "a sock group callback is required")
        if sock.closed:
            raise SockError(errno.EBADF, "socket is closed")
        if sock.group is not None:
            raise SockError(errno.EINVAL, "socket is already in a group")
        fd = sock.fileno()
        events = select.EPOLLIN | select.EPOLLERR
        self._epoll.register(fd, events)
        self._socks[fd] = sock
        self._interest[sock] = events
        if sock._tls is not None:
            self._tls[sock] = None
        sock.group = self
        if sock.queued_iovcnt:
            self._flush_pending.add(sock)
        sock.group_cb = cb

    def remove_sock(self, sock: Sock) -> None:
        """Stop watching ``sock``; its queued asynchronous writes get ``cb(-ECANCELED)``.

        Raises :class:`SockError` ``EINVAL`` if ``sock`` is not in this group.
        """
        if sock.group is not self:
            raise SockError(errno.EINVAL, "socket is not in this group")
        fd = sock.fileno()
        self._socks.pop(fd, None)
        self._ready.pop(sock, None)
        self._flush_pending.discard(sock)
        self._interest.pop(sock, None)
        self._tls.pop(sock, None)
        self._armed.discard(sock)
        try:
            self._epoll.unregister(fd)
        except OSError:
            pass
        sock.group = None
        sock.group_cb = None
        sock._abort_requests(-errno.ECANCELED)

    def set_interest(self, sock: Sock, *, readable: bool = True, writable: bool = False) -> None:
        """spdkpy extension: what readiness of ``sock`` triggers its callback (errors always
        do). Watching neither pauses the socket; the default is SPDK's ``readable`` only.
        """
        if sock.group is not self:
            raise SockError(errno.EINVAL, "socket is not in this group")
        events = select.EPOLLERR
        if readable:
            events |= select.EPOLLIN
        if writable:
            events |= select.EPOLLOUT
        self._interest[sock] = events
        if sock in self._armed:
            events |= select.EPOLLOUT
        self._epoll.modify(sock.fileno(), events)
        if not readable:
            self._ready.pop(sock, None)

    # ------------------------------------------------------------------ poll

    def poll(self, max_events: int = MAX_EVENTS_PER_POLL) -> int:
        """One pass (``spdk_sock_group_poll``): flush queued writes, collect ready sockets, call
        at most ``max_events`` callbacks, fairly rotated. Returns the callbacks made.

        A callback may remove its socket and close it (the close then completes once the
        callback returns), or add and remove other sockets.
        """
        if self.closed:
            raise SockError(errno.EBADF, "sock group is closed")
        if self._flush_pending:
            self._flush()
        socks = self._socks
        if not socks:
            return 0
        if self._tls:
            return self._poll_tls(max_events)
        events = self._epoll.poll(0, MAX_EVENTS_PER_POLL)
        if self._ready or len(events) > max_events:
            return self._serve_rotated(events, max_events)
        # The common case: nothing left over from an earlier poll and no more ready sockets
        # than callbacks allowed, so every one is served now, in epoll's order (level-triggered
        # epoll itself moves a reported socket behind the others). No list to keep.
        count = 0
        for fd, _ in events:
            sock = socks.get(fd)
            if sock is None:
                continue  # removed by an earlier callback of this pass
            cb = sock.group_cb
            if cb is None:
                continue
            count += 1
            sock._in_cb = True
            try:
                cb(self, sock)
            finally:
                sock._in_cb = False
                if sock._close_pending:
                    sock._close_pending = False
                    sock._teardown()
        return count

    def _flush(self) -> None:
        pending = self._flush_pending
        for sock in list(pending):
            sock.flush()
            if not sock.queued_iovcnt:
                pending.discard(sock)

    def _poll_tls(self, max_events: int) -> int:
        self._service_tls()
        tls_socks = self._tls
        socks = self._socks
        ready = self._ready
        for fd, events in self._epoll.poll(0, MAX_EVENTS_PER_POLL):
            found = socks.get(fd)
            if found is not None and found not in ready:
                if (
                    events == select.EPOLLOUT
                    and found in tls_socks
                    and not self._tls_writable(found)
                ):
                    continue
                ready[found] = None
        count = self._serve_ready(max_events)
        if self._tls:
            self._arm_tls()
        return count

    def _serve_rotated(self, events: list[tuple[int, int]], max_events: int) -> int:
        socks = self._socks
        ready = self._ready
        for fd, _ in events:
            found = socks.get(fd)
            if found is not None and found not in ready:
                ready[found] = None
        return self._serve_ready(max_events)

    def _serve_ready(self, max_events: int) -> int:
        """Call the callbacks of at most ``max_events`` sockets from the head of the ready
        list; the rest stay at its head for the next poll."""
        ready = self._ready
        count = 0
        while ready and count < max_events:
            sock = next(iter(ready))
            del ready[sock]
            cb = sock.group_cb
            if cb is None or sock.group is not self:
                continue
            count += 1
            sock._in_cb = True
            try:
                cb(self, sock)
            finally:
                sock._in_cb = False
                if sock._close_pending:
                    sock._close_pending = False
                    sock._teardown()
        return count

    def _service_tls(self) -> None:
        ready = self._ready
        interest = self._interest
        for sock in self._tls:
            tls = sock._tls
            assert tls is not None
            if (
                tls.service()
                and sock not in ready
                and (tls.error is not None or interest[sock] & select.EPOLLIN)
            ):
                ready[sock] = None

    def _tls_writable(self, sock: Sock) -> bool:
        """A TLS socket is writable and the caller did not ask for that: finish its held
        output; ``True`` if its callback should run anyway."""
        tls = sock._tls
        assert tls is not None
        read_blocked = tls.want_write and tls.unsent == 0  # a read that needs to write
        tls.service()
        if tls.error is not None:
            return True
        if self._interest[sock] & select.EPOLLOUT:
            return True
        return read_blocked and bool(self._interest[sock] & select.EPOLLIN)

    def _arm_tls(self) -> None:
        armed = self._armed
        for sock in self._tls:
            tls = sock._tls
            assert tls is not None
            want = tls.wants_write()
            if want is (sock in armed) or sock.closed:
                continue
            if want:
                armed.add(sock)
            else:
                armed.discard(sock)
            events = self._interest[sock] | (select.EPOLLOUT if want else 0)
            self._epoll.modify(sock.fileno(), events)

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Close the group (``spdk_sock_group_close``). Raises :class:`SockError` ``EBUSY``
        while any socket remains in it.
        """
        if self.closed:
            return
        if self._socks:
            raise SockError(errno.EBUSY, f"sock group still holds {len(self._socks)} socket(s)")
        self.closed = True
        self._epoll.close()

    def _check_open(self) -> None:
        if self.closed:
            raise SockError(errno.EBADF, "sock group is closed")

    def __repr__(self) -> str:
        return f"<SockGroup socks={len(self._socks)}{' closed' if self.closed else ''}>"
