"""The JSON-RPC server over real sockets (SPEC §7.1-§7.3, deviation 8): framing, bad input,
the 64-connection limit, the lock file and stale sockets, and the TCP extension.

Bad input goes through raw sockets (SPDK's client never sends it); every test also checks that
another client is still served afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

MAX_CONNECTIONS = 64


def _served(app, raw) -> None:
    """A fresh client gets an answer (the server survived whatever came before)."""
    response = raw(app.address).call("spdk_get_version", id=77)
    assert response["id"] == 77
    assert response["result"]["fields"]["major"] == 26


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- framing


def test_two_requests_without_a_newline_get_two_lines(shared_tgt, raw) -> None:
    client = raw(shared_tgt.address)
    client.send(
        b'{"jsonrpc":"2.0","method":"spdk_get_version","id":1}'
        b'{"jsonrpc":"2.0","method":"spdk_get_version","id":2}'
    )
    lines = client.lines(2)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert sorted(json.loads(line)["id"] for line in lines) == [1, 2]


def test_a_request_split_across_writes(shared_tgt, raw) -> None:
    client = raw(shared_tgt.address)
    text = b'{"jsonrpc":"2.0","method":"spdk_get_version","id":3}'
    for i in range(0, len(text), 7):
        client.send(text[i : i + 7])
        time.sleep(0.001)
    assert client.responses(1)[0]["id"] == 3


def test_unknown_method(shared_tgt, raw) -> None:
    response = raw(shared_tgt.address).call("no_such_method", id=5)
    assert response == {
        "jsonrpc": "2.0",
        "id": 5,
        "error": {"code": -32601, "message": "Method not found"},
    }


@pytest.mark.parametrize(
    "request_",
    [
        {"method": 5, "id": 1},
        {"jsonrpc": "1.0", "method": "spdk_get_version", "id": 1},
        {"method": "spdk_get_version", "id": 1, "params": 5},
        {"method": "spdk_get_version", "id": {"a": 1}},
        [],
        b"5\n",  # a bare scalar ends at whitespace
    ],
    ids=["method-not-string", "bad-version", "params-scalar", "id-object", "empty-batch", "num"],
)
def test_invalid_requests(shared_tgt, raw, request_: object) -> None:
    client = raw(shared_tgt.address)
    client.send(request_)
    (response,) = client.responses(1)
    assert isinstance(response, dict)  # an empty batch gets one object, not an array
    assert response["error"] == {"code": -32600, "message": "Invalid request"}
    _served(shared_tgt, raw)


def test_notifications(shared_tgt, raw) -> None:
    client = raw(shared_tgt.address)
    # A successful notification gets no reply...
    client.send({"jsonrpc": "2.0", "method": "spdk_get_version"})
    client.send({"jsonrpc": "2.0", "method": "spdk_get_version", "id": None})
    client.send({"jsonrpc": "2.0", "method": "spdk_get_version", "id": 9})
    (response,) = client.responses(1)
    assert response["id"] == 9
    # ...but an error is sent anyway, with a null id.
    client.send({"jsonrpc": "2.0", "method": "no_such_method"})
    (response,) = client.responses(1)
    assert response == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32601, "message": "Method not found"},
    }
    assert client.silent_for(0.1)


def test_batches(shared_tgt, raw) -> None:
    client = raw(shared_tgt.address)
    client.send(
        [
            {"jsonrpc": "2.0", "method": "spdk_get_version", "id": 1},
            {"jsonrpc": "2.0", "method": "no_such_method", "id": 2},
            {"jsonrpc": "2.0", "method": "thread_get_stats", "id": 3},
        ]
    )
    (line,) = client.lines(1)
    batch = json.loads(line)
    assert isinstance(batch, list)
    assert sorted(r["id"] for r in batch) == [1, 2, 3]
    by_id = {r["id"]: r for r in batch}
    assert "result" in by_id[1]
    assert by_id[2]["error"]["code"] == -32601
    assert by_id[3]["result"]["threads"][0]["name"] == "app_thread"
    # A batch of notifications only gets no reply at all.
    client.send([{"jsonrpc": "2.0", "method": "spdk_get_version"}] * 2)
    assert client.silent_for(0.1)


# ---------------------------------------------------------------------------- bad input


def test_malformed_json_closes_only_that_connection(shared_tgt, raw) -> None:
    other = raw(shared_tgt.address)  # connected at the same time, before the bad one
    other.call("spdk_get_version")
    bad = raw(shared_tgt.address)
    bad.send(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":1,]}')
    data = bad.read_to_eof()
    if data:  # SPDK only closes; spdkpy may say why first
        response = json.loads(data)
        assert response["error"] == {"code": -32700, "message": "Parse error"}
        assert response["id"] is None
    assert other.call("spdk_get_version", id=2)["id"] == 2
    _served(shared_tgt, raw)


def test_a_request_over_256_kib_drops_the_connection(shared_tgt, raw) -> None:
    other = raw(shared_tgt.address)
    other.call("spdk_get_version")
    big = raw(shared_tgt.address)
    payload = b'{"jsonrpc":"2.0","method":"spdk_get_version","id":1,"params":{"a":"'
    payload += b"x" * (300 * 1024) + b'"}}'
    try:
        big.send(payload)
    except OSError:
        pass  # the server may close before it has read everything
    data = big.read_to_eof()
    assert b'"result"' not in data
    assert other.call("spdk_get_version", id=2)["id"] == 2
    _served(shared_tgt, raw)


def test_a_batch_of_10000_requests_is_a_parse_error(shared_tgt, raw) -> None:
    client = raw(shared_tgt.address)
    # Small enough for the 256 KiB buffer, but 30 000 JSON values, over the 8192 limit.
    client.send(b"[" + b",".join([b'{"method":"a"}'] * 10_000) + b"]")
    data = client.read_to_eof()
    if data:
        assert json.loads(data)["error"]["code"] == -32700
    _served(shared_tgt, raw)


def test_a_client_vanishing_mid_request(shared_tgt, raw) -> None:
    client = raw(shared_tgt.address)
    client.send(b'{"jsonrpc":"2.0","method":"spdk_get_ver')
    client.close()
    # Half-closed after a complete request: its answer still goes out.
    half = raw(shared_tgt.address)
    half.send(b'{"jsonrpc":"2.0","method":"spdk_get_version","id":4}')
    half.sock.shutdown(socket.SHUT_WR)
    assert json.loads(half.read_to_eof())["id"] == 4
    _served(shared_tgt, raw)


def test_65_clients(tgt, raw) -> None:
    app = tgt()
    clients = [raw(app.address) for _ in range(MAX_CONNECTIONS)]
    for i, client in enumerate(clients):
        assert client.call("spdk_get_version", id=i)["id"] == i  # all 64 accepted
    waiting = raw(app.address)  # the kernel queues it in the backlog
    waiting.send({"jsonrpc": "2.0", "method": "spdk_get_version", "id": 65})
    cpu_before = app.cpu_seconds()
    assert waiting.silent_for(0.5)
    # A client waiting in the backlog must not keep the server awake (deviation 3).
    assert app.cpu_seconds() - cpu_before < 0.25
    clients[0].close()
    (response,) = waiting.responses(1)
    assert response["id"] == 65
    assert clients[1].call("spdk_get_version", id=1)["id"] == 1


# ---------------------------------------------------------------------------- addresses


def test_a_second_app_on_the_same_path_is_refused(tgt) -> None:
    first = tgt()
    second = tgt(address=first.address, ready=False)
    assert second.wait() == 1
    lines = second.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "in use" in lines[0]
    assert first.address in lines[0]
    assert first.call("spdk_get_version")["fields"]["major"] == 26
    assert os.path.exists(first.address + ".lock")


def test_a_stale_socket_file_is_recovered(tgt, raw) -> None:
    path = tgt.path("stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)  # the file stays behind, with nobody listening and no lock held
    assert os.path.exists(path)
    with pytest.raises(ConnectionRefusedError):
        raw(path)
    app = tgt(address=path)
    assert app.call("spdk_get_version")["fields"]["major"] == 26


def test_tcp_listener_on_loopback(tgt, raw) -> None:
    address = f"127.0.0.1:{_free_port()}"
    app = tgt(address=address, ready=False)
    deadline = time.monotonic() + 15
    while True:
        try:
            client = raw(address)
            break
        except ConnectionRefusedError:
            assert app.popen.poll() is None, app.output
            assert time.monotonic() < deadline, app.output
            time.sleep(0.05)
    response = client.call("framework_wait_init", id=11)
    assert response == {"jsonrpc": "2.0", "id": 11, "result": True}
    assert client.call("thread_get_stats", id=12)["result"]["threads"][0]["id"] == 1


def test_a_non_loopback_tcp_address_is_refused(tgt) -> None:
    # Refused before anything starts: nothing listens on, or connects to, 10.0.0.1.
    app = tgt(address="10.0.0.1:5260", ready=False)
    assert app.wait() == 1
    lines = app.output.strip().splitlines()
    assert len(lines) == 1, lines
    assert "10.0.0.1:5260" in lines[0]
    assert "loopback" in lines[0]
