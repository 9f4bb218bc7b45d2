"""The ``ssl`` sock implementation: TLS 1.2/1.3 over ``posix`` with Python's :mod:`ssl` (SPDK's
``module/sock/posix`` in its ssl flavour). Registered at import, not the default.

What is used, and how it differs from SPDK:

* **Certificates** (spdkpy addition; SPDK's ssl speaks PSK only). A listener needs
  ``certfile`` and ``keyfile``; with ``cafile`` it also requires and verifies client
  certificates. A client verifies the server's certificate and address by default, against
  ``cafile`` if given, else against the system CAs; only ``verify_peer=False`` turns that off. A
  client with ``certfile``/``keyfile`` presents them (mutual TLS).
* **PSK** (``psk_key`` hex, at most 200 bytes, with ``psk_identity``) needs
  ``SSLContext.set_psk_client_callback``/``set_psk_server_callback``, new in Python 3.13. On an
  older Python any PSK request is refused with one :class:`~spdkpy.errors.SockError`
  (``ENOTSUP``) before a socket is made. Where it works (tested on 3.13 with OpenSSL 3.0):

  - TLS 1.3 (``tls_version`` 0 or 13): OpenSSL's PSK callbacks make an external PSK whose hash
    is SHA-256, so a SHA-256 suite is negotiated (``TLS_CHACHA20_POLY1305_SHA256`` or
    ``TLS_AES_128_GCM_SHA256``; OpenSSL 3.0 picks the former). No certificate is sent or
    needed, and TLS 1.2's identity hint does not exist.
  - TLS 1.2 (``tls_version`` 12, an spdkpy addition: SPDK's ssl refuses 12): the TLS 1.2 list is
    the AEAD PSK suites, forward-secret first (``ECDHE-PSK-CHACHA20-POLY1305``, then
    ``DHE-PSK-*`` and plain ``PSK-*`` with AES-GCM or ChaCha20), plus the usual ECDHE suites
    when a certificate is loaded as well.

  A server answers an unknown identity with no key, which fails the handshake.
* **Versions**: ``tls_version`` 0 negotiates TLS 1.2 or 1.3, 12 and 13 force one.
* **Cipher suites**: SPDK pins TLS 1.3 to ``TLS_AES_128_GCM_SHA256``. Python's
  :class:`ssl.SSLContext` (3.11 to 3.13) has no ``set_ciphersuites``, so spdkpy leaves
  OpenSSL's default TLS 1.3 suites (which include that one, so an SPDK peer that pins it still
  finds it offered) and refuses an explicit ``tls_cipher_suites`` with ``ENOTSUP``; where the
  method exists, ``tls_cipher_suites`` is applied.
* **kTLS**: ``enable_ktls`` sets ``ssl.OP_ENABLE_KTLS`` where Python has it (3.12+), and is
  otherwise ignored (nothing changes on the wire).
* **Buffer sizes**: SPDK's ssl defaults of 4 KiB for ``recv_buf_size``/``send_buf_size`` are
  its floor; a value of 4 KiB or less leaves the kernel's auto-tuned socket buffers.

I/O (:class:`TlsStream`, one per connected socket). The handshake is non-blocking: it progresses
from every ``recv``/``writev``/``flush`` and from each poll of the socket's group; a call that
needs the handshake to progress returns "would block". A write hands at most 64 KiB of
plaintext to OpenSSL; if the kernel cannot take all the records at once, the rest is held by the
stream (OpenSSL requires the same bytes again) and the write still counts as done, as bytes in
the kernel's send buffer do. The group arms EPOLLOUT for such a stream and finishes it; until
then :attr:`~spdkpy.sock.Sock.unsent_bytes` says how much waits. OpenSSL can hold decrypted bytes
that epoll does not see; the group reports such sockets again on its next poll (SPDK's "has
data" list), so a callback need not drain a socket.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import ssl
import sys
from collections.abc import Sequence
from typing import Final, final

from spdkpy.errors import SockError
from spdkpy.sock._impl import SockImplOptions, SockOpts, register_impl
from spdkpy.sock._posix import PosixSockImpl, configure_stream

__all__ = [
    "PSK_MAX_BYTES",
    "SslSockImpl",
    "TlsStream",
    "parse_psk_key",
    "psk_supported",
    "psk_unsupported_message",
]

PSK_MAX_BYTES: Final = 200
SSL_MIN_BUF_SIZE: Final = 4096
PSK_TLS12_CIPHERS: Final = (
    "kECDHEPSK+CHACHA20:kDHEPSK+AESGCM:kDHEPSK+CHACHA20:kPSK+AESGCM:kPSK+CHACHA20"
)
"""The TLS 1.2 suites of a PSK context (OpenSSL cipher list syntax); TLS 1.3 is unaffected."""
_CERT_TLS12_CIPHERS: Final = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
WRITE_CHUNK: Final = 64 * 1024
"""Most plaintext bytes one write hands to OpenSSL (four TLS records)."""

_BytesLike = bytes | bytearray | memoryview
_POSIX: Final = PosixSockImpl()
_SSL_PREFIX = re.compile(r"^\[SSL: [A-Z0-9_]+\]\s*")
_SSL_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")


def psk_supported() -> bool:
    """Whether this Python's :mod:`ssl` can do TLS PSK (3.13+)."""
    return hasattr(ssl.SSLContext, "set_psk_client_callback")


def psk_unsupported_message(instead: str = "certificate files (certfile/keyfile)") -> str:
    """The one line that refuses a PSK request on this Python."""
    version = ".".join(str(v) for v in sys.version_info[:3])
    return f"TLS PSK needs Python 3.13 or newer; this is {version} — use {instead} instead"


def parse_psk_key(hexkey: str) -> bytes:
    """The PSK bytes of ``hexkey``; :class:`SockError` ``EINVAL`` if it is not 1-200 bytes of
    hexadecimal."""
    try:
        key = bytes.fromhex(hexkey)
    except ValueError:
        raise SockError(errno.EINVAL, "the PSK must be hexadecimal") from None
    if not key or len(key) > PSK_MAX_BYTES:
        raise SockError(errno.EINVAL, f"the PSK must be 1-{PSK_MAX_BYTES} bytes")
    return key


def _versions(tls_version: int) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    if tls_version == 0:
        return ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3
    if tls_version == 12:
        return ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2
    if tls_version == 13:
        return ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3
    raise SockError(errno.EINVAL, f"invalid tls_version {tls_version} (0, 12 or 13)")


def _load_error(what: str, path: str | None, exc: Exception) -> SockError:
    if isinstance(exc, ssl.SSLError):
        return SockError(errno.EINVAL, f"cannot load {what} {path}: {_ssl_reason(exc)}")
    code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EINVAL
    return SockError(code, f"cannot load {what} {path}: {os.strerror(code)}")


def _context(impl_opts: SockImplOptions, *, server: bool) -> ssl.SSLContext:
    """An :class:`ssl.SSLContext` for one listener or one client connection."""
    use_psk = impl_opts.psk_key is not None or impl_opts.psk_identity is not None
    if use_psk and not psk_supported():
        raise SockError(errno.ENOTSUP, psk_unsupported_message())
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version, ctx.maximum_version = _versions(impl_opts.tls_version)
    if impl_opts.tls_cipher_suites:
        set_suites = getattr(ctx, "set_ciphersuites", None)
        if set_suites is None:
            raise SockError(
                errno.ENOTSUP,
                "tls_cipher_suites needs SSLContext.set_ciphersuites, which this Python lacks "
                "(OpenSSL's default TLS 1.3 suites are used when it is not set)",
            )
        set_suites(impl_opts.tls_cipher_suites)
    if impl_opts.enable_ktls and hasattr(ssl, "OP_ENABLE_KTLS"):
        ctx.options |= ssl.OP_ENABLE_KTLS
    certfile, keyfile, cafile = impl_opts.certfile, impl_opts.keyfile, impl_opts.cafile
    if server and not use_psk and not certfile:
        raise SockError(
            errno.EINVAL, "a TLS listener needs a certificate and its key (certfile, keyfile)"
        )
    if certfile:
        try:
            ctx.load_cert_chain(certfile, keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise _load_error("certificate/key", certfile, exc) from exc
    elif keyfile:
        raise SockError(errno.EINVAL, "a TLS key (keyfile) needs its certificate (certfile)")
    if use_psk:
        _set_psk(ctx, impl_opts, server=server)
        ctx.set_ciphers(PSK_TLS12_CIPHERS + (":" + _CERT_TLS12_CIPHERS if certfile else ""))
        if not server and not cafile:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    if cafile:
        try:
            ctx.load_verify_locations(cafile)
        except (ssl.SSLError, OSError) as exc:
            raise _load_error("CA file", cafile, exc) from exc
        if server:
            ctx.verify_mode = ssl.CERT_REQUIRED
    elif not server and not use_psk:
        if impl_opts.verify_peer:
            ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _set_psk(ctx: ssl.SSLContext, impl_opts: SockImplOptions, *, server: bool) -> None:
    # Python 3.13+ only (checked by the caller); reached through getattr so that type checking
    # against older stubs holds.
    if impl_opts.psk_key is None or not impl_opts.psk_identity:
        raise SockError(errno.EINVAL, "TLS PSK needs both a key and an identity")
    key = parse_psk_key(impl_opts.psk_key)
    identity = impl_opts.psk_identity
    if server:

        def server_cb(client_identity: str | None) -> bytes:
            return key if client_identity == identity else b""

        ctx.set_psk_server_callback(server_cb, None)  # type: ignore[attr-defined]
    else:

        def client_cb(hint: str | None) -> tuple[str, bytes]:
            return identity, key

        ctx.set_psk_client_callback(client_cb)  # type: ignore[attr-defined]


def _tcp_opts(impl_opts: SockImplOptions) -> SockImplOptions:
    """The options the TCP socket under TLS gets: SPDK's 4 KiB floor means "kernel default"."""
    changes: dict[str, object] = {}
    if impl_opts.recv_buf_size <= SSL_MIN_BUF_SIZE:
        changes["recv_buf_size"] = 0
    if impl_opts.send_buf_size <= SSL_MIN_BUF_SIZE:
        changes["send_buf_size"] = 0
    return impl_opts.replace(**changes) if changes else impl_opts


def describe(impl_opts: SockImplOptions, *, server: bool) -> str:
    """One line saying what TLS a socket made with ``impl_opts`` uses (for start-up logs)."""
    versions = {0: "TLS 1.2 or 1.3 (negotiated)", 12: "TLS 1.2", 13: "TLS 1.3"}
    text = versions.get(impl_opts.tls_version, f"TLS version {impl_opts.tls_version}")
    if impl_opts.psk_key is not None:
        text = f"{text} with PSK identity {impl_opts.psk_identity}"
        if impl_opts.tls_version == 12:
            text += " (PSK cipher suites)"
        return text
    parts = [text]
    if impl_opts.certfile:
        parts.append(f"with certificate {impl_opts.certfile}")
    if server:
        if impl_opts.cafile:
            parts.append(f"requiring client certificates signed by {impl_opts.cafile}")
    elif impl_opts.cafile:
        parts.append(f"verifying the server against {impl_opts.cafile}")
    elif impl_opts.verify_peer:
        parts.append("verifying the server against the system CAs")
    else:
        parts.append("WITHOUT verifying the server")
    return ", ".join(parts)


@final
class SslSockImpl:
    """``ssl``: see the module docstring."""

    @property
    def name(self) -> str:
        return "ssl"

    def connect(
        self, host: str, port: int, opts: SockOpts, impl_opts: SockImplOptions
    ) -> socket.socket:
        ctx = _context(impl_opts, server=False)  # bad files or PSK fail before connecting
        raw = _POSIX.connect(host, port, opts, _tcp_opts(impl_opts))
        hostname = host if ctx.check_hostname else None
        try:
            return ctx.wrap_socket(
                raw, server_side=False, do_handshake_on_connect=False, server_hostname=hostname
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raw.close()
            raise SockError(errno.EINVAL, f"cannot start TLS to {host}:{port}: {exc}") from exc

    def listen(
        self, host: str, port: int, opts: SockOpts, impl_opts: SockImplOptions
    ) -> socket.socket:
        ctx = _context(impl_opts, server=True)
        raw = _POSIX.listen(host, port, opts, _tcp_opts(impl_opts))
        # A wrapped listener's accept() returns server-side TLS sockets, handshake not started.
        try:
            return ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raw.close()
            raise SockError(errno.EINVAL, f"cannot listen for TLS on {host}:{port}: {exc}") from exc

    def configure_accepted(self, sock: socket.socket, impl_opts: SockImplOptions) -> None:
        configure_stream(sock, _tcp_opts(impl_opts))


def _ssl_reason(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return _SSL_SUFFIX.sub("", _SSL_PREFIX.sub("", text)) or str(exc.reason or exc)


def _gather(buffers: Sequence[_BytesLike], limit: int) -> bytes:
    """At most ``limit`` bytes from the head of ``buffers``, as one immutable copy."""
    if len(buffers) == 1:
        only = buffers[0]
        if isinstance(only, bytes) and len(only) <= limit:
            return only
        return bytes(memoryview(only).cast("B")[:limit])
    parts: list[memoryview] = []
    size = 0
    for buf in buffers:
        view = memoryview(buf).cast("B")[: limit - size]
        if view:
            parts.append(view)
            size += len(view)
            if size >= limit:
                break
    return b"".join(parts)


@final
class TlsStream:
    """The TLS side of one connected :class:`~spdkpy.sock.Sock` (see the module docstring).

    ``error`` is set once the connection failed; every later call raises it again.
    """

    __slots__ = ("_out", "_sock", "error", "handshake_done", "want_write")

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self._sock = sock
        self._out: memoryview | None = None  # plaintext OpenSSL has, or must get again
        self.error: SockError | None = None
        self.handshake_done = False
        self.want_write = False  # the last TLS call needs the socket writable to progress

    # ------------------------------------------------------------------ state

    @property
    def unsent(self) -> int:
        return len(self._out) if self._out is not None else 0

    def pending(self) -> int:
        """Decrypted bytes waiting in OpenSSL (epoll does not see them)."""
        if self.error is not None:
            return 0
        try:
            return self._sock.pending()
        except (ssl.SSLError, OSError, ValueError):
            return 0

    def wants_write(self) -> bool:
        return self.error is None and (self._out is not None or self.want_write)

    def info(self) -> tuple[str, str] | None:
        """``(protocol version, cipher)`` once the handshake is done."""
        if not self.handshake_done:
            return None
        cipher = self._sock.cipher()
        version = self._sock.version()
        if cipher is None or version is None:
            return None
        return version, cipher[0]

    def _fail(self, exc: BaseException, what: str) -> SockError:
        if self.error is not None:
            return self.error
        stage = what if self.handshake_done else "handshake"
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
            err = SockError(errno.EPROTO, f"TLS {stage} failed: {_ssl_reason(exc)}")
        elif isinstance(exc, ssl.SSLEOFError):
            err = SockError(errno.ECONNRESET, f"TLS {stage} failed: the peer closed the connection")
        else:
            code = (exc.errno if isinstance(exc, OSError) else None) or errno.EIO
            err = SockError(code, f"TLS {stage} failed: {os.strerror(code)}")
        err.__cause__ = exc
        self.error = err
        self._out = None
        return err

    # ------------------------------------------------------------------ handshake

    def handshake(self) -> bool:
        """Progress the handshake; ``True`` once it is done. Raises :class:`SockError`."""
        if self.handshake_done:
            return True
        if self.error is not None:
            raise self.error
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self.want_write = False
            return False
        except ssl.SSLWantWriteError:
            self.want_write = True
            return False
        except (BlockingIOError, InterruptedError):
            return False
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise self._fail(exc, "handshake") from exc
        self.handshake_done = True
        self.want_write = False
        return True

    def service(self) -> bool:
        """One group-poll step: progress the handshake and held output. ``True`` when the
        socket should be reported to its callback now (it failed, or OpenSSL holds data)."""
        if self.error is not None:
            return True
        try:
            if not self.handshake_done and not self.handshake():
                return False
            if self._out is not None:
                self.flush_out()
        except SockError:
            return True
        return self._sock.pending() > 0

    # ------------------------------------------------------------------ reads

    def recv(self, n: int) -> bytes | None:
        buffer = bytearray(n)
        count = self.recv_into(buffer)
        return None if count is None else bytes(buffer[:count])

    def recv_into(self, buffer: bytearray | memoryview) -> int | None:
        if self.error is not None:
            raise self.error
        if not self.handshake_done and not self.handshake():
            return None
        try:
            count = self._sock.recv_into(buffer)
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLWantWriteError:
            self.want_write = True
            return None
        except (BlockingIOError, InterruptedError):
            return None
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise self._fail(exc, "recv") from exc
        self.want_write = False
        return count

    # ------------------------------------------------------------------ writes

    def flush_out(self) -> bool:
        """Send held output; ``True`` when none is left. Raises :class:`SockError`."""
        if self.error is not None:
            raise self.error
        out = self._out
        if out is None:
            return True
        if not self.handshake_done and not self.handshake():
            return False
        self._send(out)
        return self._out is None

    def write(self, buffers: Sequence[_BytesLike]) -> int | None:
        """Take up to 64 KiB from the head of ``buffers``; the count taken, or ``None`` while
        earlier output is still held. Raises :class:`SockError`."""
        if self._out is not None and not self.flush_out():
            return None
        if self.error is not None:
            raise self.error
        chunk = _gather(buffers, WRITE_CHUNK)
        if not chunk:
            return 0
        if not self.handshake_done and not self.handshake():
            self._out = memoryview(chunk)  # sent once the handshake is done
            return len(chunk)
        self._send(memoryview(chunk))
        return len(chunk)

    def _send(self, view: memoryview) -> None:
        while view:
            try:
                n = self._sock.send(view)
            except ssl.SSLWantReadError:
                self._out = view
                self.want_write = False
                return
            except ssl.SSLWantWriteError:
                self._out = view
                self.want_write = True
                return
            except (BlockingIOError, InterruptedError):
                self._out = view
                self.want_write = True
                return
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise self._fail(exc, "send") from exc
            view = view[n:]
        self._out = None
        self.want_write = False

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Best effort: send what is held and a close_notify, without waiting."""
        if self.error is not None or not self.handshake_done:
            return
        try:
            if self._out is not None:
                self.flush_out()
            if self._out is None:
                self._sock.unwrap()
        except (ssl.SSLError, OSError, ValueError, SockError):
            pass


register_impl(
    SslSockImpl(),
    SockImplOptions(recv_buf_size=SSL_MIN_BUF_SIZE, send_buf_size=SSL_MIN_BUF_SIZE),
    make_default=False,
)
