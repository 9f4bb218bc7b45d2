"""hello_sock's echo logic, sans I/O (STYLE lesson 6): what to read, what to write, no sockets.

An :class:`EchoBuffer` holds the bytes received and not yet echoed. The server reads only while
fewer than ``bound`` bytes wait (backpressure: unlike SPDK's hello_sock, which drops what a
partial write did not take, nothing is ever lost), hands the waiting bytes to a vectored write
and is told how many were taken.
"""

from __future__ import annotations

from collections import deque
from typing import Final, final

__all__ = ["DEFAULT_ECHO_BOUND", "EchoBuffer"]

DEFAULT_ECHO_BOUND: Final = 4 * 1024 * 1024
"""Unsent bytes per connection above which the server stops reading it (4 MiB)."""
_MAX_IOVS: Final = 64


@final
class EchoBuffer:
    """Bytes waiting to be echoed, in order."""

    __slots__ = ("_chunks", "bound", "pending", "received", "sent")

    def __init__(self, bound: int = DEFAULT_ECHO_BOUND) -> None:
        if bound <= 0:
            raise ValueError("the echo bound must be > 0")
        self.bound = bound
        self._chunks: deque[memoryview] = deque()
        self.pending = 0
        self.received = 0
        self.sent = 0

    def read_budget(self) -> int:
        """How many bytes may be read now (0: the peer must wait until we have written)."""
        return max(0, self.bound - self.pending)

    def feed(self, data: bytes) -> None:
        """Bytes just received."""
        if data:
            self._chunks.append(memoryview(data))
            self.pending += len(data)
            self.received += len(data)

    def echoed_at_once(self, received: int, sent: int, rest: memoryview | None) -> None:
        """Bytes received and written straight back (the common case, no copy kept): ``rest``
        is what the write did not take, kept for later."""
        self.received += received
        self.sent += sent
        if rest is not None and len(rest):
            self._chunks.append(rest)
            self.pending += len(rest)

    def iovecs(self) -> list[memoryview]:
        """The waiting bytes as at most 64 buffers, oldest first (do not keep them)."""
        out: list[memoryview] = []
        for chunk in self._chunks:
            out.append(chunk)
            if len(out) >= _MAX_IOVS:
                break
        return out

    def consume(self, n: int) -> None:
        """``n`` bytes of :meth:`iovecs` were written."""
        if n < 0 or n > self.pending:
            raise ValueError(f"cannot consume {n} of {self.pending} pending bytes")
        self.pending -= n
        self.sent += n
        chunks = self._chunks
        while n:
            head = chunks[0]
            if n >= len(head):
                n -= len(head)
                chunks.popleft()
            else:
                chunks[0] = head[n:]
                n = 0
