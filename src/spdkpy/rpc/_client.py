"""A small blocking JSON-RPC client for spdkpy's own tools (``spdkpy top``); scripts may use
SPDK's ``spdk-rpc`` instead, which speaks the same protocol.

It keeps one connection, so a server that computes per-client deltas sees one client.
"""

from __future__ import annotations

import json
import socket
import time
from types import TracebackType
from typing import final

from spdkpy.errors import InputError, SpdkpyError

__all__ = ["RpcClient", "RpcClientError"]


class RpcClientError(SpdkpyError):
    """The server answered with a JSON-RPC error, or could not be reached or understood."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@final
class RpcClient:
    """A connection to an RPC server at a Unix socket path or ``host:port``."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._next_id = 1
        self._buffer = b""
        try:
            if not address.startswith("/") and ":" in address:
                host, _, port = address.rpartition(":")
                self._sock = socket.create_connection((host.strip("[]"), int(port)), timeout)
            else:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(address)
        except ValueError:
            raise InputError(f"bad RPC address {address!r}") from None
        except OSError as exc:
            raise RpcClientError(
                f"cannot connect to the RPC server at {address}: {exc.strerror or exc}"
            ) from exc

    def call(self, method: str, params: dict[str, object] | None = None) -> object:
        """Call ``method`` and return its result; raises :class:`RpcClientError` on an error."""
        request_id = self._next_id
        self._next_id += 1
        request: dict[str, object] = {"jsonrpc": "2.0", "method": method, "id": request_id}
        if params is not None:
            request["params"] = params
        try:
            self._sock.sendall(json.dumps(request).encode())
        except OSError as exc:
            raise RpcClientError(f"RPC server at {self.address} went away: {exc}") from exc
        deadline = time.monotonic() + self.timeout
        while True:
            response = self._read_response(deadline)
            if response.get("id") != request_id:
                continue  # completion order: an answer to something else
            error = response.get("error")
            if isinstance(error, dict):
                raise RpcClientError(
                    f"{method}: {error.get('message')} (code {error.get('code')})",
                    code=error.get("code") if isinstance(error.get("code"), int) else None,
                )
            return response.get("result")

    def _read_response(self, deadline: float) -> dict[str, object]:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RpcClientError(f"no answer from the RPC server at {self.address}")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                raise RpcClientError(f"RPC server at {self.address} went away: {exc}") from exc
            if not chunk:
                raise RpcClientError(f"RPC server at {self.address} closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise RpcClientError(f"unreadable answer from {self.address}: {exc}") from exc
        if not isinstance(value, dict):
            raise RpcClientError(f"unexpected answer from {self.address}: {line[:80]!r}")
        return value

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
