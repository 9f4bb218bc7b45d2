"""The ``ssl`` sock implementation in-process: TLS socket pairs on 127.0.0.1 polled through real
sock groups by hand from the test thread, with certificates made by the ``openssl`` CLI.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from spdkpy.errors import SockError
from spdkpy.sock import (
    Sock,
    SockGroup,
    SockImplOptions,
    SockOpts,
    connect,
    get_default_impl,
    impl_get_opts,
    impl_names,
    listen,
)
from spdkpy.testing import make_self_signed_cert

HOST = "127.0.0.1"
OPENSSL = shutil.which("openssl")
PSK_SUPPORTED = sys.version_info >= (3, 13)


@dataclass(frozen=True)
class CertPair:
    cert: str
    key: str


def make_cert(directory: Path, name: str) -> CertPair:
    """A self-signed P-256 certificate for 127.0.0.1 (its own CA)."""
    return CertPair(*make_self_signed_cert(directory, name))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[CertPair, CertPair]:
    """(the server's pair, an unrelated pair: a wrong CA)."""
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed: cannot make test certificates")
    directory = tmp_path_factory.mktemp("certs")
    return make_cert(directory, "server"), make_cert(directory, "other")


def _until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.0005)


def _opts(**changes: object) -> SockOpts:
    return SockOpts(impl_opts=impl_get_opts("ssl").replace(**changes))


@dataclass
class Pair:
    client: Sock
    server: Sock
    group: SockGroup


@pytest.fixture
def make_pair(certs: tuple[CertPair, CertPair]) -> Iterator[Callable[..., Pair]]:
    """Connect an ssl client to an ssl listener; both sides in one group polled by hand."""
    made: list[Sock] = []
    groups: list[SockGroup] = []

    def make(tls_version: int = 0, cafile: str | None = None) -> Pair:
        server_pair = certs[0]
        listener = listen(
            HOST,
            0,
            "ssl",
            _opts(certfile=server_pair.cert, keyfile=server_pair.key, tls_version=tls_version),
        )
        made.append(listener)
        port = listener.getaddr().sport
        client = connect(
            HOST, port, "ssl", _opts(cafile=cafile or server_pair.cert, tls_version=tls_version)
        )
        made.append(client)
        accepted: list[Sock] = []

        def accept() -> bool:
            s = listener.accept()
            if s is not None:
                accepted.append(s)
            return bool(accepted)

        _until(accept)
        made.append(accepted[0])
        group = SockGroup()
        groups.append(group)
        return Pair(client, accepted[0], group)

    yield make
    for s in made:
        if s.group is not None:
            s.group.remove_sock(s)
        s.close()
    for g in groups:
        g.close()


def _echo_through_group(pair: Pair, payload: bytes, timeout: float = 10.0) -> bytes:
    """Client sends ``payload``; the server callback echoes what it reads (with held bytes);
    the client callback collects. Everything runs from ``group.poll()``."""
    group, client, server = pair.group, pair.client, pair.server
    back = bytearray()
    echo = bytearray()

    def on_server(g: SockGroup, s: Sock) -> None:
        data = s.recv(1024)  # small reads: OpenSSL keeps the rest of a record buffered
        if data:
            echo.extend(data)
        if echo:
            n = s.writev([echo])
            if n:
                del echo[:n]

    def on_client(g: SockGroup, s: Sock) -> None:
        data = s.recv(65536)
        if data:
            back.extend(data)

    group.add_sock(server, on_server)
    group.add_sock(client, on_client)
    view = memoryview(payload)
    sent = 0
    deadline = time.monotonic() + timeout
    while len(back) < len(payload):
        assert time.monotonic() < deadline, f"echo stalled at {len(back)} of {len(payload)}"
        if sent < len(payload):
            n = client.writev([view[sent:]])
            sent += n or 0
        if echo:
            n = server.writev([echo])
            if n:
                del echo[:n]
        if not group.poll():
            time.sleep(0.0002)
    return bytes(back)


# ------------------------------------------------------------------------------ registry


def test_ssl_is_registered_not_default() -> None:
    assert "ssl" in impl_names()
    assert get_default_impl() == "posix"
    opts = impl_get_opts("ssl")
    assert opts.recv_buf_size == opts.send_buf_size == 4096
    assert opts.tls_version == 0
    assert opts.verify_peer is True
    assert "certfile" not in opts.to_json()  # sock_impl_get_options keeps SPDK's keys


# ------------------------------------------------------------------------------ echo


def test_text_echo_and_tls_info(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    assert pair.client.tls_info() is None  # no handshake yet
    assert _echo_through_group(pair, b"hello over TLS\n") == b"hello over TLS\n"
    info = pair.client.tls_info()
    assert info is not None
    assert info[0] == "TLSv1.3"
    assert pair.server.tls_info() == info
    assert pair.client.is_connected()
    assert pair.client.unsent_bytes == 0


def test_one_mib_echo_is_byte_exact(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    payload = os.urandom(1024 * 1024)
    assert _echo_through_group(pair, payload) == payload


@pytest.mark.parametrize(("tls_version", "name"), [(12, "TLSv1.2"), (13, "TLSv1.3")])
def test_forced_tls_version(make_pair: Callable[..., Pair], tls_version: int, name: str) -> None:
    pair = make_pair(tls_version=tls_version)
    payload = os.urandom(100_000)
    assert _echo_through_group(pair, payload) == payload
    info = pair.client.tls_info()
    assert info is not None
    assert info[0] == name


def test_writev_async_and_eof(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair()
    got = bytearray()
    eof: list[bool] = []

    def on_server(g: SockGroup, s: Sock) -> None:
        data = s.recv(65536)
        if data == b"":
            eof.append(True)
            g.remove_sock(s)
        elif data:
            got.extend(data)

    pair.group.add_sock(pair.server, on_server)
    pair.group.add_sock(pair.client, lambda g, s: s.recv(10))
    done: list[int] = []
    chunks = [os.urandom(50_000) for _ in range(5)]
    for c in chunks:
        pair.client.writev_async([c], done.append)
    _until(lambda: pair.group.poll() < 0 or len(got) == 250_000)
    assert done == [0] * 5
    assert bytes(got) == b"".join(chunks)
    pair.group.remove_sock(pair.client)
    pair.client.close()  # close_notify, then FIN: the server reads a clean end of stream
    _until(lambda: pair.group.poll() < 0 or eof)
    assert eof == [True]


# ------------------------------------------------------------------------------ failures


def _drive_until_error(pair: Pair, timeout: float = 5.0) -> list[SockError]:
    errors: list[SockError] = []

    def cb(g: SockGroup, s: Sock) -> None:
        try:
            s.recv(100)
        except SockError as exc:
            errors.append(exc)
            g.remove_sock(s)

    pair.group.add_sock(pair.client, cb)
    pair.group.add_sock(pair.server, cb)
    deadline = time.monotonic() + timeout
    while len(errors) < 2 and pair.group.socks:
        assert time.monotonic() < deadline, "no handshake error: hung"
        pair.group.poll()
        time.sleep(0.0005)
    return errors


def test_wrong_ca_is_a_sock_error_on_both_sides(
    make_pair: Callable[..., Pair], certs: tuple[CertPair, CertPair]
) -> None:
    pair = make_pair(cafile=certs[1].cert)
    errors = _drive_until_error(pair)
    assert len(errors) == 2
    messages = " | ".join(str(e) for e in errors)
    assert "certificate verify failed" in messages
    assert all(e.errno in (errno.EPROTO, errno.ECONNRESET) for e in errors)
    # The failure sticks: later calls raise the same error, writes included.
    with pytest.raises(SockError, match="TLS handshake failed"):
        pair.client.recv(1)
    with pytest.raises(SockError, match="TLS handshake failed"):
        pair.client.writev([b"x"])


def test_tls_client_against_plain_tcp_server_fails_cleanly() -> None:
    listener = listen(HOST, 0)  # posix: speaks no TLS
    client = connect(
        HOST, listener.getaddr().sport, "ssl", SockOpts(impl_opts=SockImplOptions(cafile=None))
    )
    server: list[Sock] = []
    try:
        _until(lambda: server.append(s) or True if (s := listener.accept()) else False)
        assert client.writev([b"hello"]) == 5  # taken: sent once the handshake is done
        server[0].writev([b"this is not TLS at all, just bytes\n" * 4])
        with pytest.raises(SockError, match="TLS handshake failed"):
            _until(lambda: client.recv(10) is not None)
    finally:
        for s in (client, listener, *server):
            s.close()


def test_listener_needs_certificate_and_key(certs: tuple[CertPair, CertPair]) -> None:
    with pytest.raises(SockError, match="needs a certificate and its key") as info:
        listen(HOST, 0, "ssl")
    assert info.value.errno == errno.EINVAL
    with pytest.raises(SockError, match=r"cannot load certificate/key /nonexistent\.pem"):
        listen(HOST, 0, "ssl", _opts(certfile="/nonexistent.pem", keyfile="/nonexistent.pem"))
    with pytest.raises(SockError, match="cannot load CA file"):
        connect(HOST, 1, "ssl", _opts(cafile=certs[0].key + ".missing"))
    with pytest.raises(SockError, match="invalid tls_version 11"):
        connect(HOST, 1, "ssl", _opts(tls_version=11))


@pytest.mark.skipif(PSK_SUPPORTED, reason="this Python supports TLS PSK")
def test_psk_is_refused_with_one_clear_error() -> None:
    with pytest.raises(
        SockError, match=r"TLS PSK needs Python 3\.13 or newer; this is 3\."
    ) as info:
        connect(HOST, 1, "ssl", _opts(psk_key="00112233445566778899aabbccddeeff", psk_identity="x"))
    assert info.value.errno == errno.ENOTSUP
    with pytest.raises(SockError, match=r"TLS PSK needs Python 3\.13"):
        listen(HOST, 0, "ssl", _opts(psk_key="0011", psk_identity="x"))


PSK_KEY = "1234567890abcdef1234567890abcdef"
PSK_IDENTITY = "psk.spdk.io"
needs_psk = pytest.mark.skipif(not PSK_SUPPORTED, reason="TLS PSK needs Python 3.13+")


def _psk_pair(server: SockOpts, client: SockOpts) -> tuple[Sock, Pair]:
    """(listener, pair) with PSK options on each side; no certificates anywhere."""
    listener = listen(HOST, 0, "ssl", server)
    try:
        client_sock = connect(HOST, listener.getaddr().sport, "ssl", client)
    except BaseException:
        listener.close()
        raise
    accepted: list[Sock] = []
    _until(lambda: (s := listener.accept()) is not None and not accepted.append(s))
    return listener, Pair(client_sock, accepted[0], SockGroup())


def _close_pair(listener: Sock, pair: Pair) -> None:
    for s in (pair.client, pair.server):
        if s.group is not None:
            s.group.remove_sock(s)
        s.close()
    pair.group.close()
    listener.close()


@needs_psk
@pytest.mark.parametrize(
    ("tls_version", "protocol", "cipher_part"),
    [(0, "TLSv1.3", "_SHA256"), (13, "TLSv1.3", "_SHA256"), (12, "TLSv1.2", "PSK-")],
)
def test_psk_echo(tls_version: int, protocol: str, cipher_part: str) -> None:
    opts = _opts(psk_key=PSK_KEY, psk_identity=PSK_IDENTITY, tls_version=tls_version)
    listener, pair = _psk_pair(opts, opts)
    try:
        payload = os.urandom(200_000)
        assert _echo_through_group(pair, payload) == payload
        info = pair.client.tls_info()
        assert info is not None
        assert info[0] == protocol
        assert cipher_part in info[1]  # TLS 1.3: a SHA-256 suite; TLS 1.2: a PSK suite
        assert pair.server.tls_info() == info
    finally:
        _close_pair(listener, pair)


@needs_psk
@pytest.mark.parametrize(
    "client_changes",
    [{"psk_key": "ff" * 16}, {"psk_identity": "someone.else"}],
    ids=["wrong-key", "unknown-identity"],
)
@pytest.mark.parametrize("tls_version", [13, 12])
def test_psk_mismatch_fails_the_handshake(
    client_changes: dict[str, object], tls_version: int
) -> None:
    server = _opts(psk_key=PSK_KEY, psk_identity=PSK_IDENTITY, tls_version=tls_version)
    client = _opts(
        **{"psk_key": PSK_KEY, "psk_identity": PSK_IDENTITY, "tls_version": tls_version}
        | client_changes
    )
    listener, pair = _psk_pair(server, client)
    try:
        errors = _drive_until_error(pair)
        assert errors, "a mismatched PSK was accepted"
        assert all(e.errno in (errno.EPROTO, errno.ECONNRESET) for e in errors)
        assert pair.client.tls_info() is None
    finally:
        _close_pair(listener, pair)


@needs_psk
def test_psk_setup_errors() -> None:
    with pytest.raises(SockError, match="needs both a key and an identity") as info:
        listen(HOST, 0, "ssl", _opts(psk_key=PSK_KEY))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(SockError, match="hexadecimal"):
        connect(HOST, 1, "ssl", _opts(psk_key="not hex", psk_identity="x"))
    with pytest.raises(SockError, match="1-200 bytes"):
        connect(HOST, 1, "ssl", _opts(psk_key="00" * 201, psk_identity="x"))


def _handshake_outcome(listener: Sock, opts: SockOpts) -> SockError | None:
    """Connect a client with ``opts``; the client's handshake error, or None once it is done."""
    client = connect(HOST, listener.getaddr().sport, "ssl", opts)
    accepted: list[Sock] = []
    _until(lambda: (s := listener.accept()) is not None and not accepted.append(s))
    server = accepted[0]
    group = SockGroup()
    outcome: list[SockError] = []

    def on_client(g: SockGroup, s: Sock) -> None:
        try:
            s.recv(100)
        except SockError as exc:
            outcome.append(exc)

    def on_server(g: SockGroup, s: Sock) -> None:
        try:
            s.recv(100)
        except SockError:
            pass  # the client's alert

    group.add_sock(server, on_server)
    group.add_sock(client, on_client)
    try:
        client.writev([b"ping"])
        _until(lambda: group.poll() < 0 or outcome or client.tls_info())
    finally:
        for s in (client, server):
            group.remove_sock(s)
            s.close()
        group.close()
    return outcome[0] if outcome else None


def test_verification_is_on_by_default(certs: tuple[CertPair, CertPair]) -> None:
    """No cafile: the client checks the system CAs, which do not know our self-signed cert;
    only an explicit verify_peer=False connects without verifying."""
    pair_files = certs[0]
    listener = listen(HOST, 0, "ssl", _opts(certfile=pair_files.cert, keyfile=pair_files.key))
    try:
        error = _handshake_outcome(listener, _opts())
        assert error is not None, "an unknown self-signed certificate was accepted"
        assert "certificate verify failed" in str(error)
        assert _handshake_outcome(listener, _opts(verify_peer=False)) is None
    finally:
        listener.close()


def test_held_output_is_finished_by_the_group(make_pair: Callable[..., Pair]) -> None:
    """Write until the kernel is full: the last records stay held by the stream, counted in
    unsent_bytes; group polls alone (no more writes) deliver every byte that was taken."""
    pair = make_pair()
    got = bytearray()
    pair.group.add_sock(pair.client, lambda g, s: s.recv(10))
    payload = os.urandom(16 * 1024 * 1024)
    taken = 0
    deadline = time.monotonic() + 5
    while pair.client.tls_info() is None or pair.server.tls_info() is None:
        assert time.monotonic() < deadline
        pair.client.writev([b""])
        pair.group.poll()
        pair.server.recv(1)  # server side handshake (nothing to read yet)
    while taken < len(payload):
        n = pair.client.writev([memoryview(payload)[taken:]])
        if n is None:
            break
        taken += n
    assert 0 < taken < len(payload)
    assert pair.client.unsent_bytes > 0

    def on_server(g: SockGroup, s: Sock) -> None:
        data = s.recv(65536)
        if data:
            got.extend(data)

    pair.group.add_sock(pair.server, on_server)
    _until(lambda: pair.group.poll() < 0 or len(got) >= taken, timeout=10)
    assert bytes(got) == payload[:taken]
    assert pair.client.unsent_bytes == 0
