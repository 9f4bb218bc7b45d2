"""``spdkpy hello_sock`` as real processes on 127.0.0.1 (SPEC §8.4): echo round trips, binary
data, many concurrent clients over two reactors, backpressure without loss, signals and errors.

Servers listen on port 0 and the test reads the port from the "Listening connection" line, so no
port is ever guessed. Clients run with ``start_new_session`` and are killed in ``finally``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from spdkpy.testing import make_self_signed_cert

HOST = "127.0.0.1"
_SCRIPT = Path(sys.executable).with_name("spdkpy")
SPDKPY = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "spdkpy.apps.cli"]
OPENSSL = shutil.which("openssl")
PSK_SUPPORTED = sys.version_info >= (3, 13)
TWO_CORES = len(os.sched_getaffinity(0)) >= 2
MASK = hex(sum(1 << c for c in sorted(os.sched_getaffinity(0))[:2]))


def _server(cli, *extra: str, impl: str = "posix"):
    proc = cli("hello_sock", "-S", "-H", HOST, "-P", "0", *extra)
    line = proc.wait_for_lines(
        rf"Listening connection on 127\.0\.0\.1:\d+ with sock_impl\({impl}\)"
    )
    port = int(re.search(r":(\d+) with", line[0]).group(1))  # type: ignore[union-attr]
    return proc, port


def _client(port: int, data: bytes, *extra: str, timeout: float = 30.0):
    proc = subprocess.Popen(
        [*SPDKPY, "hello_sock", "-H", HOST, "-P", str(port), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(data, timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err.decode(errors="replace")


def _stop(proc) -> None:
    proc.send(signal.SIGINT)
    rc = proc.wait(10)
    assert rc == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def _echo(port: int, payload: bytes, results: dict[int, bytes], key: int) -> None:
    with socket.create_connection((HOST, port), timeout=20) as s:
        got = bytearray()

        def reader() -> None:
            while len(got) < len(payload):
                chunk = s.recv(65536)
                if not chunk:
                    return
                got.extend(chunk)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(payload)
        t.join(20)
        results[key] = bytes(got)


def test_text_round_trip(cli) -> None:
    server, port = _server(cli)
    rc, out, err = _client(port, b"hello\n", "-V")
    assert rc == 0, err
    assert b"hello\n" in out
    assert b"** 6 bytes received, 6 bytes sent **" in out
    assert f"Connecting to the server on 127.0.0.1:{port} with sock_impl(posix)" in err
    server.wait_for_lines(r"Accepting a new connection from \(127\.0\.0\.1, \d+\) to")
    _stop(server)


def test_one_mib_of_random_bytes_is_byte_exact(cli) -> None:
    server, port = _server(cli)
    data = os.urandom(1024 * 1024)
    rc, out, err = _client(port, data)
    assert rc == 0, err
    assert out == data
    _stop(server)


@pytest.mark.skipif(not TWO_CORES, reason="needs two cores")
def test_many_clients_spread_over_two_reactors(cli) -> None:
    server, port = _server(cli, "-m", MASK)
    count = 200  # the issue asks for 200 concurrent connections, each echoing 64 KiB
    payloads = {i: os.urandom(64 * 1024) for i in range(count)}
    results: dict[int, bytes] = {}
    threads = [
        threading.Thread(target=_echo, args=(port, payloads[i], results, i)) for i in range(count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == count
    assert all(results[i] == payloads[i] for i in range(count))
    served = server.wait_for_lines(r"served by hello_sock_\d+", count=count)
    by_thread = {line.rsplit(" ", 1)[1] for line in served}
    assert len(by_thread) == 2, by_thread
    _stop(server)


def test_client_dropping_mid_stream_leaves_server_serving(cli) -> None:
    server, port = _server(cli)
    rude = socket.create_connection((HOST, port), timeout=10)
    rude.sendall(os.urandom(512 * 1024))
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    rude.close()  # RST with unread echo pending
    server.wait_for_lines(r"Connection closed")
    results: dict[int, bytes] = {}
    payload = os.urandom(64 * 1024)
    _echo(port, payload, results, 0)
    assert results[0] == payload
    _stop(server)


def test_sixteen_mib_without_reading_is_not_lost(cli) -> None:
    server, port = _server(cli)
    data = os.urandom(16 * 1024 * 1024)
    with socket.create_connection((HOST, port), timeout=30) as s:
        sent = [0]

        def sender() -> None:
            view = memoryview(data)
            while sent[0] < len(data):
                sent[0] += s.send(view[sent[0] : sent[0] + 1024 * 1024])

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        # Read nothing until the sender finished or stalled: the server must hold, not drop.
        last, stable_since = -1, time.monotonic()
        while t.is_alive() and time.monotonic() - stable_since < 0.5:
            if sent[0] != last:
                last, stable_since = sent[0], time.monotonic()
            time.sleep(0.05)
        got = bytearray()
        while len(got) < len(data):
            chunk = s.recv(1024 * 1024)
            assert chunk, "server closed early"
            got.extend(chunk)
        t.join(10)
    assert bytes(got) == data
    _stop(server)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_server_stops_on_signal_with_open_connection(cli, signum: int) -> None:
    server, port = _server(cli, "-V")
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(b"abc")
        assert s.recv(3) == b"abc"
        server.send(signum)
        assert server.wait(10) == 0, server.stderr
    assert "Traceback" not in server.stderr
    assert "** 3 bytes received, 3 bytes sent **" in server.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-N", "nope"], "Cannot find nope sock implementation"),
        (["-N", "ssl", "-T", "11"], "invalid TLS version -T 11"),
        (["-N", "ssl", "--ca", "/nonexistent/ca.pem"], "cannot read /nonexistent/ca.pem"),
        (["-N", "uring"], "uring sock implementation is not available"),
        (["-P", "70000"], "invalid port '70000'"),
        (["-P", "abc"], "invalid port 'abc'"),
    ],
)
def test_bad_options_are_one_line(cli, args: list[str], message: str) -> None:
    base = {"-H": HOST, "-P": "1", **dict(zip(args[::2], args[1::2], strict=True))}
    argv = [x for kv in base.items() for x in kv]
    rc, _out, err = cli.run("hello_sock", *argv)
    assert rc != 0
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_unreachable_port_fails_cleanly() -> None:
    holder = socket.socket()
    holder.bind((HOST, 0))  # bound, never listening: refused
    try:
        rc, _out, err = _client(holder.getsockname()[1], b"x", timeout=15)
    finally:
        holder.close()
    assert rc == 1
    assert "Connection refused" in err
    assert "Traceback" not in err


def test_options_are_explained(cli) -> None:
    server, _port = _server(cli, "-Z", "-K")
    assert any("zero-copy" in line for line in server.stderr_lines)
    assert any("kernel TLS" in line for line in server.stderr_lines)
    _stop(server)


# ------------------------------------------------------------------------------ -N ssl


def _make_cert(directory: Path, name: str) -> tuple[str, str]:
    """A self-signed P-256 certificate for 127.0.0.1 (its own CA): (cert, key)."""
    return make_self_signed_cert(directory, name)


@pytest.fixture
def cert_files(tmp_path: Path) -> tuple[str, str, str]:
    """(server cert, server key, an unrelated cert used as a wrong CA)."""
    if OPENSSL is None:
        pytest.skip("the openssl command is not installed: cannot make test certificates")
    cert, key = _make_cert(tmp_path, "server")
    other, _ = _make_cert(tmp_path, "other")
    return cert, key, other


def test_ssl_round_trip_with_certificates(cli, cert_files: tuple[str, str, str]) -> None:
    cert, key, _other = cert_files
    server, port = _server(cli, "-N", "ssl", "--cert", cert, "--key", key, impl="ssl")
    server.wait_for_lines(
        rf"TLS: TLS 1\.2 or 1\.3 \(negotiated\), with certificate {re.escape(cert)}"
    )
    rc, out, err = _client(port, b"hello over TLS\n", "-N", "ssl", "--ca", cert, "-V")
    assert rc == 0, err
    assert b"hello over TLS\n" in out
    assert b"** 15 bytes received, 15 bytes sent **" in out
    assert f"verifying the server against {cert}" in err
    assert "TLS session: TLSv1.3, cipher" in err
    data = os.urandom(1024 * 1024)
    rc, out, err = _client(port, data, "-N", "ssl", "--ca", cert, "-T", "12")
    assert rc == 0, err
    assert out == data
    assert "TLS session: TLSv1.2, cipher" in err
    _stop(server)


def test_ssl_wrong_ca_fails_cleanly(cli, cert_files: tuple[str, str, str]) -> None:
    cert, key, other = cert_files
    server, port = _server(cli, "-N", "ssl", "--cert", cert, "--key", key, impl="ssl")
    rc, out, err = _client(port, b"secret\n", "-N", "ssl", "--ca", other, timeout=15)
    assert rc != 0
    assert b"secret" not in out
    assert "TLS handshake failed: certificate verify failed" in err
    assert "Traceback" not in err
    server.wait_for_lines(r"Connection closed")
    # The server keeps serving.
    rc, out, err = _client(port, b"again\n", "-N", "ssl", "--ca", cert)
    assert rc == 0, err
    assert b"again\n" in out
    _stop(server)


PSK = ("-E", "1234567890abcdef1234567890abcdef", "-I", "psk.spdk.io")


@pytest.mark.skipif(not PSK_SUPPORTED, reason="TLS PSK needs Python 3.13+")
def test_ssl_round_trip_with_psk(cli) -> None:
    """SPDK's ``-N ssl -E key -I identity``: no certificate on either side."""
    server, port = _server(cli, "-N", "ssl", *PSK, impl="ssl")
    server.wait_for_lines(r"TLS: TLS 1\.2 or 1\.3 \(negotiated\) with PSK identity psk\.spdk\.io")
    rc, out, err = _client(port, b"hello over TLS-PSK\n", "-N", "ssl", *PSK, "-V")
    assert rc == 0, err
    assert b"hello over TLS-PSK\n" in out
    assert b"** 19 bytes received, 19 bytes sent **" in out
    assert "TLS session: TLSv1.3, cipher TLS_" in err
    data = os.urandom(256 * 1024)
    rc, out, err = _client(port, data, "-N", "ssl", *PSK, "-T", "12")
    assert rc == 0, err
    assert out == data
    assert re.search(r"TLS session: TLSv1\.2, cipher \S*PSK-", err), err
    # A wrong key fails that client's handshake only.
    rc, out, err = _client(port, b"secret\n", "-N", "ssl", "-E", "ff" * 16, "-I", "psk.spdk.io")
    assert rc != 0
    assert b"secret" not in out
    assert "TLS handshake failed" in err
    assert "Traceback" not in err
    rc, out, err = _client(port, b"again\n", "-N", "ssl", *PSK)
    assert rc == 0, err
    assert b"again\n" in out
    _stop(server)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-S", "-N", "ssl"], "-N ssl as a server needs --cert FILE and --key FILE"),
        pytest.param(
            ["-N", "ssl", "-E", "00112233445566778899aabbccddeeff", "-I", "spdkpy"],
            "TLS PSK needs Python 3.13 or newer; this is 3.",
            marks=pytest.mark.skipif(PSK_SUPPORTED, reason="this Python supports TLS PSK"),
        ),
        pytest.param(
            ["-S", "-N", "ssl", "-E", "00112233445566778899aabbccddeeff"],
            "TLS PSK needs both -E (hex key) and -I (identity)",
            marks=pytest.mark.skipif(not PSK_SUPPORTED, reason="TLS PSK needs Python 3.13+"),
        ),
        pytest.param(
            ["-S", "-N", "ssl", "-E", "xyz", "-I", "spdkpy"],
            "the PSK must be hexadecimal",
            marks=pytest.mark.skipif(not PSK_SUPPORTED, reason="TLS PSK needs Python 3.13+"),
        ),
    ],
    ids=["server-without-cert", "psk-on-old-python", "psk-without-identity", "psk-not-hex"],
)
def test_ssl_setup_errors_are_one_line(cli, args: list[str], message: str) -> None:
    rc, _out, err = cli.run("hello_sock", "-H", HOST, "-P", "0", *args)
    assert rc == 1
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
