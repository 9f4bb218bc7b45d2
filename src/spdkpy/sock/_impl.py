"""The sock implementation registry and per-implementation options (SPDK's ``lib/sock/sock.c``
registry part, SPEC §8.1).

Implementations register themselves once, at import (``posix`` does so in ``_posix`` and makes
itself the default, as SPDK's posix module does with the highest priority). The registry is
process-wide, like SPDK's: a socket's implementation is a property of the process build, not of
one app. Lookup uses the explicit name if one is given, otherwise the default; an unknown name is
a :class:`~spdkpy.errors.SockImplNotFoundError` ("Cannot find <name> sock implementation").
"""

from __future__ import annotations

import dataclasses
import socket
import threading
from dataclasses import dataclass
from typing import Final, Protocol

from spdkpy.errors import InputError, SockImplNotFoundError

__all__ = [
    "SockImpl",
    "SockImplOptions",
    "SockOpts",
    "get_default_impl",
    "get_impl",
    "impl_get_opts",
    "impl_names",
    "impl_set_opts",
    "register_impl",
    "set_default_impl",
]

MIB: Final = 1024 * 1024
_STRING_FIELDS: Final = frozenset(
    {"psk_key", "psk_identity", "tls_cipher_suites", "certfile", "keyfile", "cafile"}
)


@dataclass(frozen=True, slots=True)
class SockImplOptions:
    """One implementation's options (``struct spdk_sock_impl_opts``); posix defaults.

    Field names up to ``tls_cipher_suites`` are SPDK's JSON keys. spdkpy's posix applies
    ``recv_buf_size``/``send_buf_size`` (SO_RCVBUF/SO_SNDBUF) and ``enable_quickack``; the
    zero-copy and placement fields are stored and reported so that SPDK configs load, but
    Python's socket API offers no zero-copy send. The TLS fields belong to the ``ssl``
    implementation (see :mod:`spdkpy.sock._ssl`).

    spdkpy additions for ``ssl`` (SPDK's ssl speaks PSK only; Python 3.11 cannot, so spdkpy
    also speaks certificates): ``certfile``/``keyfile`` (PEM; a server needs both, a client
    presents them for mutual TLS), ``cafile`` (PEM CA bundle: a client verifies the server
    against it, a server then requires and verifies client certificates) and ``verify_peer``
    (client: verify the server's certificate and name; ``True`` by default, against ``cafile``
    or else the system CAs; ``False`` turns verification off and must be asked for).
    ``sock_impl_get_options`` answers SPDK's keys (:meth:`to_json`) and, for ``ssl``, these
    beside them (:meth:`tls_to_json`).
    """

    recv_buf_size: int = 2 * MIB
    send_buf_size: int = 2 * MIB
    enable_recv_pipe: bool = True
    enable_quickack: bool = False
    enable_placement_id: int = 0
    enable_zerocopy_send_server: bool = True
    enable_zerocopy_send_client: bool = False
    zerocopy_threshold: int = 0
    tls_version: int = 0
    enable_ktls: bool = False
    psk_key: str | None = None
    psk_identity: str | None = None
    tls_cipher_suites: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    verify_peer: bool = True

    def to_json(self) -> dict[str, object]:
        """What ``sock_impl_get_options`` returns: SPDK's keys, without the write-only PSK."""
        return {
            "recv_buf_size": self.recv_buf_size,
            "send_buf_size": self.send_buf_size,
            "enable_recv_pipe": self.enable_recv_pipe,
            "enable_quickack": self.enable_quickack,
            "enable_placement_id": self.enable_placement_id,
            "enable_zerocopy_send_server": self.enable_zerocopy_send_server,
            "enable_zerocopy_send_client": self.enable_zerocopy_send_client,
            "zerocopy_threshold": self.zerocopy_threshold,
            "tls_version": self.tls_version,
            "enable_ktls": self.enable_ktls,
        }

    def tls_to_json(self) -> dict[str, object]:
        """What ``sock_impl_get_options`` adds for ``ssl``: the certificate files in effect
        (``null`` when not set), ``verify_peer``, and ``psk_identity`` when one is set. Never
        the PSK itself."""
        out: dict[str, object] = {
            "certfile": self.certfile,
            "keyfile": self.keyfile,
            "cafile": self.cafile,
            "verify_peer": self.verify_peer,
        }
        if self.psk_identity is not None:
            out["psk_identity"] = self.psk_identity
        return out

    def replace(self, **changes: object) -> SockImplOptions:
        """A copy with ``changes``; unknown fields or wrong types are an :class:`InputError`."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields:
                raise InputError(f"unknown sock option {key!r}")
            current = getattr(self, key)
            if current is None or key in _STRING_FIELDS:
                if value is not None and not isinstance(value, str):
                    raise InputError(f"sock option {key} must be a string")
            elif isinstance(current, bool):
                if not isinstance(value, bool):
                    raise InputError(f"sock option {key} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InputError(f"sock option {key} must be an integer >= 0")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SockOpts:
    """Per-socket options (``struct spdk_sock_opts``), given to ``connect``/``listen``.

    ``connect_timeout_ms`` bounds how long :func:`connect` waits for the handshake (SPDK's posix
    connect polls for it too); 0 means the spdkpy default of 10 s. ``impl_opts`` overrides the
    implementation's options for this socket only. An accepted socket inherits its listener's.
    """

    priority: int = 0
    zcopy: bool = True
    ack_timeout: int = 0
    connect_timeout_ms: int = 0
    impl_opts: SockImplOptions | None = None


class SockImpl(Protocol):
    """What an implementation provides: make connected or listening sockets.

    Both return a non-blocking Python socket, or raise :class:`~spdkpy.errors.SockError`.
    """

    @property
    def name(self) -> str: ...

    def connect(
        self, host: str, port: int, opts: SockOpts, impl_opts: SockImplOptions
    ) -> socket.socket: ...

    def listen(
        self, host: str, port: int, opts: SockOpts, impl_opts: SockImplOptions
    ) -> socket.socket: ...

    def configure_accepted(self, sock: socket.socket, impl_opts: SockImplOptions) -> None: ...


_lock: Final = threading.Lock()
_impls: dict[str, SockImpl] = {}
_opts: dict[str, SockImplOptions] = {}
_default: list[str] = []  # at most one name: the default implementation


def register_impl(impl: SockImpl, defaults: SockImplOptions, *, make_default: bool) -> None:
    """Register ``impl`` with its default options (at import of its module)."""
    with _lock:
        if impl.name in _impls:
            raise InputError(f"sock implementation {impl.name} is already registered")
        _impls[impl.name] = impl
        _opts[impl.name] = defaults
        if make_default or not _default:
            _default[:] = [impl.name]


def impl_names() -> list[str]:
    """The registered implementations, in registration order."""
    with _lock:
        return list(_impls)


def get_impl(name: str | None = None) -> SockImpl:
    """The implementation called ``name`` (default one when ``None``)."""
    with _lock:
        key = name if name is not None else (_default[0] if _default else "")
        impl = _impls.get(key)
    if impl is None:
        # SPDK logs this; here the error carries the same text and the caller reports it once.
        raise SockImplNotFoundError(key)
    return impl


def get_default_impl() -> str:
    """The default implementation's name (``spdk_sock_get_default_impl``)."""
    with _lock:
        return _default[0] if _default else ""


def set_default_impl(name: str) -> None:
    """Make ``name`` the default (``spdk_sock_set_default_impl``)."""
    get_impl(name)
    with _lock:
        _default[:] = [name]


def impl_get_opts(name: str) -> SockImplOptions:
    """The current options of implementation ``name`` (``spdk_sock_impl_get_opts``)."""
    get_impl(name)
    with _lock:
        return _opts[name]


def impl_set_opts(name: str, opts: SockImplOptions) -> None:
    """Replace the options of ``name``; sockets made afterwards use them."""
    get_impl(name)
    with _lock:
        _opts[name] = opts
