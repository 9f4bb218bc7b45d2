"""The ``posix`` sock implementation: TCP over non-blocking Python sockets (SPDK's
``module/sock/posix``).

Registered at import as the default implementation. Connect resolves ``host`` with
``getaddrinfo`` and waits for the handshake with ``poll`` for at most the connect timeout, as
SPDK's posix connect does; everything after that is non-blocking.
"""

from __future__ import annotations

import errno
import os
import select
import socket
from typing import Final, final

from spdkpy.errors import SockError
from spdkpy.sock._impl import SockImplOptions, SockOpts, register_impl

__all__ = ["PosixSockImpl", "configure_stream"]

DEFAULT_CONNECT_TIMEOUT_MS: Final = 10_000
LISTEN_BACKLOG: Final = 512


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise SockError(errno.EINVAL, f"invalid port {port!r} (must be 0-65535)")


def _addresses(
    host: str, port: int, passive: bool
) -> list[tuple[int, tuple[str, int] | tuple[str, int, int, int]]]:
    _check_port(port)
    try:
        infos = socket.getaddrinfo(
            host,
            port,
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE if passive else 0,
        )
    except socket.gaierror as exc:
        raise SockError(errno.EINVAL, f"cannot resolve {host!r}: {exc.strerror}") from exc
    out: list[tuple[int, tuple[str, int] | tuple[str, int, int, int]]] = []
    for family, _, _, _, addr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            out.append((family, addr))  # type: ignore[arg-type]
    if not out:
        raise SockError(errno.EINVAL, f"no IPv4/IPv6 address for {host!r}")
    return out


def _apply(sock: socket.socket, impl_opts: SockImplOptions, priority: int) -> None:
    # Best effort, as SPDK: the kernel clamps the sizes to its limits.
    for level, name, value in (
        (socket.SOL_SOCKET, socket.SO_RCVBUF, impl_opts.recv_buf_size),
        (socket.SOL_SOCKET, socket.SO_SNDBUF, impl_opts.send_buf_size),
    ):
        if value:
            try:
                sock.setsockopt(level, name, value)
            except OSError:
                pass
    if priority and hasattr(socket, "SO_PRIORITY"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, priority)
        except OSError:
            pass


def configure_stream(sock: socket.socket, impl_opts: SockImplOptions) -> None:
    """Set up a connected TCP socket: TCP_NODELAY, quick ACKs if asked, non-blocking."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if impl_opts.enable_quickack and hasattr(socket, "TCP_QUICKACK"):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        except OSError:
            pass
    sock.setblocking(False)


@final
class PosixSockImpl:
    """``posix``: see the module docstring."""

    @property
    def name(self) -> str:
        return "posix"

    def connect(
        self, host: str, port: int, opts: SockOpts, impl_opts: SockImplOptions
    ) -> socket.socket:
        timeout_ms = opts.connect_timeout_ms or DEFAULT_CONNECT_TIMEOUT_MS
        last: SockError | None = None
        for family, addr in _addresses(host, port, passive=False):
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                _apply(sock, impl_opts, opts.priority)
                sock.setblocking(False)
                rc = sock.connect_ex(addr)
                if rc == errno.EINPROGRESS:
                    poller = select.poll()
                    poller.register(sock, select.POLLOUT)
                    if not poller.poll(timeout_ms):
                        rc = errno.ETIMEDOUT
                    else:
                        rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if rc:
                    raise SockError(rc, f"connect to {host}:{port} failed: {os.strerror(rc)}")
                configure_stream(sock, impl_opts)
                return sock
            except SockError as exc:
                sock.close()
                last = exc
            except OSError as exc:
                sock.close()
                code = exc.errno or errno.EIO
                last = SockError(code, f"connect to {host}:{port} failed: {os.strerror(code)}")
        assert last is not None
        raise last

    def listen(
        self, host: str, port: int, opts: SockOpts, impl_opts: SockImplOptions
    ) -> socket.socket:
        family, addr = _addresses(host, port, passive=True)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _apply(sock, impl_opts, opts.priority)
            sock.bind(addr)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            code = exc.errno or errno.EIO
            raise SockError(code, f"cannot listen on {host}:{port}: {os.strerror(code)}") from exc
        return sock

    def configure_accepted(self, sock: socket.socket, impl_opts: SockImplOptions) -> None:
        configure_stream(sock, impl_opts)


register_impl(PosixSockImpl(), SockImplOptions(), make_default=True)
