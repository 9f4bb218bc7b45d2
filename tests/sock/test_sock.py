"""The sock layer in-process (SPEC §8.1-8.3): real sockets on 127.0.0.1 with free ports, groups
polled by hand from the test thread (no reactor), the registry and the sock RPC methods.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from spdkpy.errors import SockError, SockImplNotFoundError
from spdkpy.rpc import INVALID_PARAMS, RpcRegistry, RpcRequest, RpcState
from spdkpy.sock import (
    IOV_BATCH_SIZE,
    MAX_EVENTS_PER_POLL,
    Sock,
    SockGroup,
    SockOpts,
    connect,
    get_default_impl,
    get_impl,
    impl_get_opts,
    impl_set_opts,
    listen,
    register_sock_methods,
    set_default_impl,
)

HOST = "127.0.0.1"


def _until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


@pytest.fixture
def listener() -> Iterator[Sock]:
    sock = listen(HOST, 0)
    try:
        yield sock
    finally:
        if sock.group is not None:
            sock.group.remove_sock(sock)
        sock.close()


def _accept(listener: Sock) -> Sock:
    got: list[Sock] = []

    def ready() -> bool:
        s = listener.accept()
        if s is not None:
            got.append(s)
        return bool(got)

    _until(ready)
    return got[0]


@pytest.fixture
def pair(listener: Sock) -> Iterator[tuple[Sock, Sock]]:
    """(client, server-side) connected socks."""
    client = connect(HOST, listener.getaddr().sport)
    server = _accept(listener)
    try:
        yield client, server
    finally:
        for s in (client, server):
            if s.group is not None:
                s.group.remove_sock(s)
            s.close()


def _recv_exact(sock: Sock, n: int, timeout: float = 5.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while len(out) < n:
        data = sock.recv(n - len(out))
        if data is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
            continue
        assert data, "unexpected EOF"
        out += data
    return bytes(out)


# ------------------------------------------------------------------------------ registry


def test_posix_is_registered_and_default() -> None:
    assert get_default_impl() == "posix"
    assert get_impl().name == "posix"
    assert get_impl("posix").name == "posix"


def test_unknown_impl_is_a_typed_error() -> None:
    with pytest.raises(SockImplNotFoundError, match="Cannot find nope sock implementation"):
        get_impl("nope")
    with pytest.raises(SockImplNotFoundError):
        set_default_impl("nope")
    with pytest.raises(SockImplNotFoundError):
        connect(HOST, 1, impl="uring")
    assert get_default_impl() == "posix"


def test_posix_default_options() -> None:
    opts = impl_get_opts("posix")
    assert opts.to_json() == {
        "recv_buf_size": 2 * 1024 * 1024,
        "send_buf_size": 2 * 1024 * 1024,
        "enable_recv_pipe": True,
        "enable_quickack": False,
        "enable_placement_id": 0,
        "enable_zerocopy_send_server": True,
        "enable_zerocopy_send_client": False,
        "zerocopy_threshold": 0,
        "tls_version": 0,
        "enable_ktls": False,
    }


def test_impl_options_set_and_validate() -> None:
    before = impl_get_opts("posix")
    try:
        impl_set_opts("posix", before.replace(recv_buf_size=65536, enable_quickack=True))
        assert impl_get_opts("posix").recv_buf_size == 65536
        assert impl_get_opts("posix").enable_quickack is True
    finally:
        impl_set_opts("posix", before)
    with pytest.raises(Exception, match="unknown sock option"):
        before.replace(bogus=1)
    with pytest.raises(Exception, match="true or false"):
        before.replace(enable_ktls=1)


# ------------------------------------------------------------------------------ sockets


def test_connect_refused_carries_errno() -> None:
    holder = socket.socket()
    holder.bind((HOST, 0))  # bound, not listening: connecting is refused
    try:
        with pytest.raises(SockError, match="Connection refused") as info:
            connect(HOST, holder.getsockname()[1])
        assert info.value.errno == errno.ECONNREFUSED
    finally:
        holder.close()


def test_bad_port_is_einval() -> None:
    with pytest.raises(SockError) as info:
        connect(HOST, 70000)
    assert info.value.errno == errno.EINVAL


def test_accept_recv_would_block_and_eof(listener: Sock) -> None:
    assert listener.accept() is None
    client = connect(HOST, listener.getaddr().sport)
    server = _accept(listener)
    try:
        assert server.recv(10) is None
        assert server.recv_into(bytearray(10)) is None
        assert client.writev([b"ab", bytearray(b"cd"), memoryview(b"ef")]) == 6
        assert _recv_exact(server, 6) == b"abcdef"
        addrs = server.getaddr()
        assert (addrs.saddr, addrs.sport) == (HOST, listener.getaddr().sport)
        assert (addrs.caddr, addrs.cport) == (HOST, client.getaddr().sport)
        assert server.is_ipv4()
        assert not server.is_ipv6()
        assert server.is_connected()
        client.close()
        _until(lambda: server.recv(10) == b"")
    finally:
        client.close()
        server.close()


def test_writev_partial_then_would_block(listener: Sock) -> None:
    small = SockOpts(impl_opts=impl_get_opts("posix").replace(send_buf_size=4096))
    client = connect(HOST, listener.getaddr().sport, opts=small)
    server = _accept(listener)
    try:
        big = os.urandom(8 * 1024 * 1024)
        first = client.writev([big])
        assert first is not None
        assert 0 < first < len(big)
        total = first
        while True:
            n = client.writev([memoryview(big)[total:]])
            if n is None:
                break
            total += n
        assert total < len(big)
        assert _recv_exact(server, total) == big[:total]
    finally:
        client.close()
        server.close()


def test_closed_sock_raises_ebadf(pair: tuple[Sock, Sock]) -> None:
    client, _ = pair
    client.close()
    with pytest.raises(SockError) as info:
        client.recv(1)
    assert info.value.errno == errno.EBADF
    client.close()  # twice is fine


# ------------------------------------------------------------------------------ async writes


def test_writev_async_completes_in_order_on_group_poll(pair: tuple[Sock, Sock]) -> None:
    client, server = pair
    group = SockGroup()
    group.add_sock(client, lambda g, s: None)
    done: list[tuple[int, int]] = []
    for i in range(3):
        client.writev_async([b"x" * 10, b"y" * i], lambda err, i=i: done.append((i, err)))
    assert done == []  # queued: nothing written before a flush
    assert client.queued_iovcnt == 5
    group.poll()
    assert done == [(0, 0), (1, 0), (2, 0)]
    assert client.queued_iovcnt == 0
    assert _recv_exact(server, 33) == b"x" * 10 + b"x" * 10 + b"y" + b"x" * 10 + b"yy"
    group.remove_sock(client)
    group.close()


def test_writev_async_flushes_at_64_iovecs(pair: tuple[Sock, Sock]) -> None:
    client, server = pair
    done: list[int] = []
    client.writev_async([b"a"] * (IOV_BATCH_SIZE - 1), done.append)
    assert done == []
    client.writev_async([b"b"], done.append)
    assert done == [0, 0]
    assert _recv_exact(server, IOV_BATCH_SIZE) == b"a" * (IOV_BATCH_SIZE - 1) + b"b"


def test_writev_waits_behind_unflushed_async_writes(listener: Sock) -> None:
    small = SockOpts(impl_opts=impl_get_opts("posix").replace(send_buf_size=4096))
    client = connect(HOST, listener.getaddr().sport, opts=small)
    server = _accept(listener)
    try:
        done: list[int] = []
        client.writev_async([os.urandom(16 * 1024 * 1024)], done.append)
        client.flush()
        assert done == []  # too big to go at once
        assert client.writev([b"later"]) is None
    finally:
        client.close()
        server.close()
    assert done == [-errno.ECANCELED]


def test_writev_async_on_closed_sock_fails_at_once(pair: tuple[Sock, Sock]) -> None:
    client, _ = pair
    client.close()
    done: list[int] = []
    client.writev_async([b"x"], done.append)
    assert done == [-errno.EBADF]


def test_remove_sock_aborts_queued_requests(pair: tuple[Sock, Sock]) -> None:
    client, _ = pair
    group = SockGroup()
    group.add_sock(client, lambda g, s: None)
    done: list[int] = []
    client.writev_async([b"x"], done.append)
    group.remove_sock(client)
    assert done == [-errno.ECANCELED]
    group.close()


# ------------------------------------------------------------------------------ close rules


def test_close_rules(pair: tuple[Sock, Sock]) -> None:
    client, _server = pair
    group = SockGroup()
    other = SockGroup()
    with pytest.raises(SockError) as info:
        group.add_sock(client, None)  # type: ignore[arg-type]
    assert info.value.errno == errno.EINVAL
    group.add_sock(client, lambda g, s: None)
    with pytest.raises(SockError) as info:
        other.add_sock(client, lambda g, s: None)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(SockError) as info:
        client.close()
    assert info.value.errno == errno.EBUSY
    with pytest.raises(SockError) as info:
        group.close()
    assert info.value.errno == errno.EBUSY
    group.remove_sock(client)
    group.close()
    other.close()
    client.close()
    with pytest.raises(SockError) as info:
        SockGroup().add_sock(client, lambda g, s: None)
    assert info.value.errno == errno.EBADF


def test_close_inside_callback_is_deferred(pair: tuple[Sock, Sock]) -> None:
    client, server = pair
    group = SockGroup()
    seen: list[bool] = []

    def cb(g: SockGroup, s: Sock) -> None:
        g.remove_sock(s)
        s.close()
        seen.append(s.closed)  # not yet: the teardown waits for the callback to return

    group.add_sock(server, cb)
    client.writev([b"hi"])
    _until(lambda: group.poll() or seen)
    assert seen == [False]
    assert server.closed
    group.close()


# ------------------------------------------------------------------------------ groups


def test_group_reports_readable_socks(pair: tuple[Sock, Sock]) -> None:
    client, server = pair
    group = SockGroup()
    got: list[bytes] = []
    group.add_sock(server, lambda g, s: got.append(s.recv(100) or b""))
    assert group.poll() == 0
    client.writev([b"ping"])
    _until(lambda: group.poll())
    assert got == [b"ping"]
    assert group.poll() == 0
    group.remove_sock(server)
    group.close()


def test_set_interest_writable_and_paused(pair: tuple[Sock, Sock]) -> None:
    client, server = pair
    group = SockGroup()
    calls: list[Sock] = []
    group.add_sock(server, lambda g, s: calls.append(s))
    group.set_interest(server, readable=False, writable=True)
    assert group.poll() == 1  # writable right away
    group.set_interest(server, readable=False, writable=False)
    client.writev([b"data"])
    time.sleep(0.05)
    assert group.poll() == 0  # paused: data waits, nothing spins
    group.set_interest(server)
    _until(lambda: group.poll())
    group.remove_sock(server)
    group.close()


def test_rotation_is_fair_beyond_32_ready_socks(listener: Sock) -> None:
    count = MAX_EVENTS_PER_POLL + 13
    clients: list[Sock] = []
    servers: list[Sock] = []
    group = SockGroup()
    served: list[int] = []
    try:
        for i in range(count):
            clients.append(connect(HOST, listener.getaddr().sport))
            server = _accept(listener)
            servers.append(server)
            # The callback does not read: every sock stays ready, the worst case for fairness.
            group.add_sock(server, lambda g, s, i=i: served.append(i))
        for c in clients:
            c.writev([b"x"])
        time.sleep(0.1)
        rounds: list[list[int]] = []
        for _ in range(4):
            served.clear()
            assert group.poll() == MAX_EVENTS_PER_POLL
            rounds.append(list(served))
        # Within two polls every sock is served; each poll serves distinct socks.
        assert set(rounds[0]) | set(rounds[1]) == set(range(count))
        for r in rounds:
            assert len(set(r)) == len(r)
        # Those left out of one poll are served first in the next.
        left_out = set(range(count)) - set(rounds[0])
        assert set(rounds[1][: len(left_out)]) == left_out
    finally:
        for s in servers:
            if s.group is not None:
                group.remove_sock(s)
            s.close()
        for c in clients:
            c.close()
        group.close()


def _ready_socks(listener: Sock, count: int) -> tuple[list[Sock], list[Sock]]:
    """``count`` connected pairs whose server ends each have one byte to read."""
    clients = [connect(HOST, listener.getaddr().sport) for _ in range(count)]
    servers = [_accept(listener) for _ in clients]
    for c in clients:
        c.writev([b"x"])
    return clients, servers


def test_poll_serves_at_most_max_events_in_turn(listener: Sock) -> None:
    clients, servers = _ready_socks(listener, 10)
    group = SockGroup()
    served: list[int] = []
    try:
        for i, server in enumerate(servers):
            group.add_sock(server, lambda g, s, i=i: served.append(i))  # never reads
        time.sleep(0.1)
        rounds = []
        for _ in range(3):
            served.clear()
            assert group.poll(max_events=4) == 4
            rounds.append(list(served))
        # Three polls of 4 serve all 10 once before any twice.
        assert len(set(rounds[0] + rounds[1])) == 8
        assert set(rounds[0] + rounds[1] + rounds[2][:2]) == set(range(10))
    finally:
        for s in servers:
            group.remove_sock(s)
            s.close()
        for c in clients:
            c.close()
        group.close()


def test_callback_removing_another_ready_sock_skips_it(listener: Sock) -> None:
    clients, servers = _ready_socks(listener, 2)
    group = SockGroup()
    called: list[Sock] = []

    def cb(g: SockGroup, s: Sock) -> None:
        called.append(s)
        for other in servers:
            if other is not s and other.group is g:
                g.remove_sock(other)

    try:
        for server in servers:
            group.add_sock(server, cb)
        _until(lambda: group.poll())
        assert len(called) == 1  # the other one was ready too, but left the group first
        assert group.poll() == 1
        assert called[1] is called[0]
    finally:
        for s in servers:
            if s.group is not None:
                group.remove_sock(s)
            s.close()
        for c in clients:
            c.close()
        group.close()


# ------------------------------------------------------------------------------ RPC


def _call(
    registry: RpcRegistry, method: str, params: dict[str, object] | None
) -> tuple[object, tuple[int, str] | None]:
    answers: list[tuple[object, tuple[int, str] | None]] = []
    request = RpcRequest(method, params, 1, False, lambda r, v, e: answers.append((v, e)))
    registry.dispatch(request)
    assert len(answers) == 1
    return answers[0]


def test_sock_rpc_methods() -> None:
    registry = RpcRegistry()
    register_sock_methods(registry)
    assert _call(registry, "sock_get_default_impl", None) == ({"impl_name": "posix"}, None)
    result, err = _call(registry, "sock_impl_get_options", {"impl_name": "posix"})
    assert err is None
    assert result == impl_get_opts("posix").to_json()
    assert _call(registry, "sock_impl_get_options", {"impl_name": "nope"})[1] == (
        INVALID_PARAMS,
        "Invalid parameters",
    )
    assert _call(registry, "sock_impl_get_options", None)[1] == (
        INVALID_PARAMS,
        "Invalid parameters",
    )
    assert _call(registry, "sock_set_default_impl", {"impl_name": "posix"}) == (True, None)
    assert _call(registry, "sock_set_default_impl", {"impl_name": "uring"})[1] is not None
    ssl_opts, err = _call(registry, "sock_impl_get_options", {"impl_name": "ssl"})
    assert err is None
    assert isinstance(ssl_opts, dict)
    assert ssl_opts["recv_buf_size"] == ssl_opts["send_buf_size"] == 4096
    before = impl_get_opts("posix")
    try:
        assert _call(
            registry,
            "sock_impl_set_options",
            {"impl_name": "posix", "recv_buf_size": 4096, "enable_zerocopy_send_server": False},
        ) == (True, None)
        got, _ = _call(registry, "sock_impl_get_options", {"impl_name": "posix"})
        assert isinstance(got, dict)
        assert got["recv_buf_size"] == 4096
        assert got["enable_zerocopy_send_server"] is False
        assert _call(registry, "sock_impl_set_options", {"impl_name": "posix", "nope": 1})[1] == (
            INVALID_PARAMS,
            "Invalid parameters",
        )
        # STARTUP only.
        registry.state = RpcState.RUNTIME
        assert (
            _call(registry, "sock_impl_set_options", {"impl_name": "posix", "recv_buf_size": 1})[1]
            is not None
        )
        assert impl_get_opts("posix").recv_buf_size == 4096
    finally:
        impl_set_opts("posix", before)
