"""Sans-I/O codec for SPDK's JSON-RPC 2.0 stream framing (SPEC §7.2, §7.3).

Nothing here touches a socket, a thread or a clock: bytes go in through
:meth:`StreamDecoder.feed`, messages come out of :meth:`StreamDecoder.next_message`, and responses
are turned into bytes by :func:`frame`. The RPC server owns the socket and decides what to do with
each message (dispatch, reply, close). This is h11's shape (STYLE lesson 6).

Theory of operation
-------------------
A connection carries concatenated JSON texts with no length prefix and no required newline, so the
decoder must find where each top-level value ends before it can hand the bytes to :mod:`json`.
It does that with a small incremental scanner whose state survives between calls:

* **Between values** it skips JSON whitespace (space, tab, CR, LF) and looks at the first byte.
* **Containers** (``{`` or ``[``): the scanner walks *tokens*. Outside strings it only needs the
  brackets (depth up and down), the quote (enter a string) and runs of bare bytes (numbers and
  literals, each one value). Inside a string it only needs the closing quote and backslashes (a
  backslash skips the next byte). The value ends when the depth returns to zero. Brackets are not
  matched against each other here; ``[}`` simply ends the value and :func:`json.loads` rejects it.
* **Top-level strings** end at their closing quote.
* **Top-level bare scalars** (``42``, ``true``, garbage such as ``}``) end at the next whitespace,
  ``{``, ``[`` or ``"``, or at EOF. A scalar at the very end of the buffer is incomplete until more
  data or EOF arrives: ``12`` might still become ``123``.

The scanner remembers how far it got (``_pos``) and never rescans bytes, except that it stops
*before* a backslash that ends the buffer (the escaped byte decides nothing, but must be skipped).
A bare run that ends the buffer is remembered as open, so ``[12`` + ``34]`` counts one number, not
two. Feeding a 200 KiB request one byte at a time therefore stays linear.

It also counts values as it goes, so a request with more than ``max_values`` values is rejected as
soon as the limit is crossed rather than after the whole thing has arrived. Counted: every object,
array, string (object member names included; SPDK's parser counts names too), number and
``true``/``false``/``null``. SPDK also counts the closing bracket of each container, so its limit
bites a little earlier on bracket-heavy input; the difference does not matter for any real request.

Once a value's bytes are known it is decoded as strict UTF-8 and parsed with :func:`json.loads`
(``NaN``/``Infinity`` rejected, since they are not JSON). Failures of any kind (malformed JSON,
invalid UTF-8, nesting deep enough to raise :class:`RecursionError`, integers beyond Python's
digit limit) become :class:`ParseError`. After a :class:`ParseError` the decoder is stuck: SPDK
cannot resynchronise a JSON stream either, so it closes the connection (SPEC §7.2).

Errors and limits
-----------------
* ``max_buffer`` (256 KiB, SPDK's receive buffer): an incomplete value that has grown past it can
  never complete, so it is a :class:`ParseError` ("request too large").
* ``max_values`` (8192, ``SPDK_JSONRPC_MAX_VALUES``): more values in one top-level value is a
  :class:`ParseError`.
* Only :class:`ParseError` reports a broken stream; per-request problems are
  :class:`InvalidRequest` items. For arbitrary input bytes, ``next_message`` returns messages,
  :class:`ParseError` or :data:`NEED_DATA`, and never raises (the fuzz contract in the tests).
"""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import dataclass
from typing import Final, TypeAlias, TypeGuard, final

from spdkpy.errors import InvalidStateError

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MAX_JSON_VALUES",
    "MAX_RECV_BUFFER",
    "METHOD_NOT_FOUND",
    "NEED_DATA",
    "PARSE_ERROR",
    "STATE_ERROR",
    "Batch",
    "InvalidRequest",
    "JsonId",
    "JsonValue",
    "ParseError",
    "Request",
    "Single",
    "StreamDecoder",
    "encode_error",
    "encode_result",
    "frame",
]

# --- constants (SPEC §7.3 error codes, §7.2 limits) -------------------------------------------

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
STATE_ERROR: Final = -1

MAX_RECV_BUFFER: Final = 256 * 1024
MAX_JSON_VALUES: Final = 8192

JsonId: TypeAlias = str | int | float | None
JsonValue: TypeAlias = bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"] | None


# --- messages ---------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Request:
    """One request that passed SPEC §7.2 validation.

    ``params`` is ``None`` when the member was absent or JSON ``null``. ``is_notification`` is true
    when ``"id"`` was absent or ``null``: a successful result is then not sent, but an error is
    (with ``"id": null``).
    """

    method: str
    params: dict[str, object] | list[object] | None
    id: JsonId
    is_notification: bool


@final
@dataclass(frozen=True, slots=True)
class InvalidRequest:
    """One value that failed SPEC §7.2 validation; answer it with -32600 "Invalid request".

    ``id`` is the request's id when the value was an object with a valid id, else ``None``.
    """

    id: JsonId


@final
@dataclass(frozen=True, slots=True)
class Single:
    """A top-level value that was not an array (or was an empty array)."""

    item: Request | InvalidRequest


@final
@dataclass(frozen=True, slots=True)
class Batch:
    """A non-empty top-level array: one item per element, in order."""

    items: tuple[Request | InvalidRequest, ...]


@final
@dataclass(frozen=True, slots=True)
class ParseError:
    """The stream is broken: reply -32700 "Parse error" (optionally) and close the connection.

    ``reason`` is for logs only; it never goes on the wire.
    """

    reason: str


@final
class _NeedData:
    """Type of :data:`NEED_DATA`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""Returned by :meth:`StreamDecoder.next_message` when no complete value is buffered."""


# --- validation (SPEC §7.2) -------------------------------------------------------------------


def _valid_id(value: object) -> TypeGuard[JsonId]:
    # bool is an int subclass but not a JSON number. Non-finite floats come only from overflowing
    # literals such as 1e400; they cannot be echoed as JSON, so such an id is refused.
    if value is None or isinstance(value, str):
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _validate(value: object) -> Request | InvalidRequest:
    if not isinstance(value, dict):
        return InvalidRequest(None)
    raw_id = value.get("id")
    if not _valid_id(raw_id):
        return InvalidRequest(None)
    request_id: JsonId = raw_id
    method = value.get("method")
    if not isinstance(method, str):
        return InvalidRequest(request_id)
    if "jsonrpc" in value and value["jsonrpc"] != "2.0":
        return InvalidRequest(request_id)
    params = value.get("params")
    if params is not None and not isinstance(params, dict | list):
        return InvalidRequest(request_id)
    return Request(
        method=method,
        params=params,
        id=request_id,
        is_notification=request_id is None,
    )


def _to_message(value: object) -> Single | Batch:
    if isinstance(value, list):
        if not value:
            return Single(InvalidRequest(None))
        return Batch(tuple(_validate(element) for element in value))
    return Single(_validate(value))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


# --- the incremental scanner ------------------------------------------------------------------

_WHITESPACE: Final = frozenset(b" \t\r\n")
_SKIP_WHITESPACE: Final = re.compile(rb"[ \t\r\n]*")
# Inside a container, outside strings: a bracket, a quote, or a run of bare bytes (one number or
# literal, or garbage that json.loads will reject). Commas, colons and whitespace are skipped.
_CONTAINER_TOKEN: Final = re.compile(rb'[{}\[\]"]|[^{}\[\]", :\t\r\n]+')
# Inside a string: the next byte that matters.
_STRING_SPECIAL: Final = re.compile(rb'["\\]')
# End of a top-level bare scalar.
_BARE_END: Final = re.compile(rb'[ \t\r\n{\["]')

_OPEN: Final = frozenset(b"{[")
_CLOSE: Final = frozenset(b"}]")
_QUOTE: Final = ord('"')


class _Mode(enum.Enum):
    """What the scanner is inside of."""

    IDLE = enum.auto()  # between top-level values
    CONTAINER = enum.auto()  # a top-level object or array
    STRING = enum.auto()  # a top-level string
    BARE = enum.auto()  # a top-level number, literal or garbage


@final
class StreamDecoder:
    """Incremental decoder for one connection's receive stream.

    Not thread-safe; use it from the thread that owns the connection. Typical use::

        decoder.feed(chunk)              # b"" on EOF
        while True:
            msg = decoder.next_message()
            if msg is NEED_DATA:
                break
            if isinstance(msg, ParseError):
                ...                      # reply -32700 if wanted, then close
                break
            ...                          # dispatch Single / Batch

    ``max_buffer`` bounds the size of one incomplete value and ``max_values`` the number of JSON
    values in one top-level value; exceeding either is a :class:`ParseError`.
    """

    __slots__ = (
        "_buf",
        "_count",
        "_depth",
        "_eof",
        "_error",
        "_in_bare",
        "_in_string",
        "_max_buffer",
        "_max_values",
        "_mode",
        "_pos",
        "_start",
    )

    def __init__(
        self, max_buffer: int = MAX_RECV_BUFFER, max_values: int = MAX_JSON_VALUES
    ) -> None:
        self._max_buffer = max_buffer
        self._max_values = max_values
        self._buf = bytearray()
        self._start = 0  # where the current (or next) value begins in _buf
        self._pos = 0  # how far the scanner has got
        self._mode = _Mode.IDLE
        self._depth = 0
        # Only meaningful in _CONTAINER mode: inside a string; inside a bare run that touched the
        # end of the buffer (already counted, so its continuation must not be counted again).
        self._in_string = False
        self._in_bare = False
        self._count = 0
        self._eof = False
        self._error: ParseError | None = None

    # --- public API ---------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a message."""
        return len(self._buf) - self._start

    @property
    def eof(self) -> bool:
        """Whether :meth:`feed` has been given ``b""``."""
        return self._eof

    def feed(self, data: bytes) -> None:
        """Append received bytes; ``b""`` marks EOF (the peer half-closed).

        Raises :class:`~spdkpy.errors.InvalidStateError` when non-empty data follows EOF (a bug in
        the caller, as in h11). After a :class:`ParseError` the data is discarded.
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise InvalidStateError("StreamDecoder.feed: data after EOF")
        if self._error is not None:
            return
        self._buf += data

    def next_message(self) -> Single | Batch | ParseError | _NeedData:
        """Return the next complete message, a :class:`ParseError`, or :data:`NEED_DATA`.

        Once a :class:`ParseError` has been returned, every later call returns the same one. After
        EOF, complete values still buffered are returned; an incomplete trailing value is dropped
        (a trailing bare scalar counts as complete at EOF) and then :data:`NEED_DATA` is returned
        for ever. Never raises.
        """
        if self._error is not None:
            return self._error
        try:
            end = self._scan()
        except _TooManyValues:
            return self._fail(f"more than {self._max_values} JSON values in one request")
        if end is None:
            return self._need_data()
        raw = bytes(self._buf[self._start : end])
        self._start = end
        self._reset_value_state()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return self._fail(f"invalid UTF-8 at byte {exc.start}")
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            return self._fail("JSON nested too deeply")
        except ValueError as exc:  # JSONDecodeError, NaN/Infinity, int digit limit
            return self._fail(f"malformed JSON: {exc}")
        return _to_message(value)

    # --- internals ----------------------------------------------------------------------------

    def _fail(self, reason: str) -> ParseError:
        self._error = ParseError(reason)
        self._buf = bytearray()
        self._start = self._pos = 0
        return self._error

    def _reset_value_state(self) -> None:
        self._pos = self._start
        self._mode = _Mode.IDLE
        self._depth = 0
        self._in_string = False
        self._in_bare = False
        self._count = 0

    def _need_data(self) -> ParseError | _NeedData:
        # Drop the consumed prefix so the buffer holds only the pending value.
        if self._start:
            del self._buf[: self._start]
            self._pos -= self._start
            self._start = 0
        if self._eof:
            # An incomplete value can never complete now; SPDK just closes. Drop it.
            self._buf = bytearray()
            self._reset_value_state()
            return NEED_DATA
        if len(self._buf) > self._max_buffer:
            return self._fail(
                f"request too large: {len(self._buf)} bytes buffered without a complete JSON "
                f"value (limit {self._max_buffer})"
            )
        return NEED_DATA

    def _counted(self) -> None:
        self._count += 1
        if self._count > self._max_values:
            raise _TooManyValues

    def _scan(self) -> int | None:
        """Advance the scanner; return the end offset of a complete value, or ``None``."""
        buf = self._buf
        size = len(buf)
        if self._mode is _Mode.IDLE:
            ws = _SKIP_WHITESPACE.match(buf, self._start)
            assert ws is not None  # the pattern matches the empty string
            self._start = self._pos = ws.end()
            if self._start == size:
                return None
            first = buf[self._start]
            self._pos = self._start + 1
            self._counted()
            if first in _OPEN:
                self._mode = _Mode.CONTAINER
                self._depth = 1
            elif first == _QUOTE:
                self._mode = _Mode.STRING
            else:
                self._mode = _Mode.BARE
        if self._mode is _Mode.CONTAINER:
            return self._scan_container(buf, size)
        if self._mode is _Mode.STRING:
            return self._scan_string(buf, size)
        # _Mode.BARE
        match = _BARE_END.search(buf, self._pos)
        if match is not None:
            return match.start()
        self._pos = size
        return size if self._eof else None

    def _scan_string(self, buf: bytearray, size: int) -> int | None:
        """Scan inside a string from ``_pos``; return the offset after the closing quote."""
        pos = self._pos
        while True:
            match = _STRING_SPECIAL.search(buf, pos)
            if match is None:
                self._pos = size
                return None
            if buf[match.start()] == _QUOTE:
                self._pos = match.end()
                return self._pos
            # A backslash escapes the next byte; if that byte has not arrived, stop before the
            # backslash and look at it again next time.
            if match.end() >= size:
                self._pos = match.start()
                return None
            pos = match.end() + 1

    def _scan_container(self, buf: bytearray, size: int) -> int | None:
        while True:
            if self._in_string:
                end = self._scan_string(buf, size)
                if end is None:
                    return None
                self._in_string = False
            match = _CONTAINER_TOKEN.search(buf, self._pos)
            if match is None:
                self._pos = size
                return None
            continued = self._in_bare and match.start() == self._pos
            self._in_bare = False
            byte = buf[match.start()]
            if byte in _OPEN:
                self._counted()
                self._depth += 1
            elif byte in _CLOSE:
                self._depth -= 1
                if self._depth == 0:
                    self._pos = match.end()
                    return self._pos
            elif byte == _QUOTE:
                self._counted()
                self._in_string = True
            else:
                # A bare run (number or literal). One that touches the end of the buffer may go on
                # in the next chunk: remember that, so the continuation is not counted twice.
                if not continued:
                    self._counted()
                if match.end() >= size:
                    self._in_bare = True
                    self._pos = size
                    return None
            self._pos = match.end()


class _TooManyValues(Exception):
    """Internal: the value count passed ``max_values`` during a scan."""


# --- encoding (SPEC §7.3) ---------------------------------------------------------------------


def encode_result(id: JsonId, result: object) -> dict[str, object]:
    """Build a success response: ``{"jsonrpc":"2.0","id":id,"result":result}``."""
    return {"jsonrpc": "2.0", "id": id, "result": result}


def encode_error(id: JsonId, code: int, message: str) -> dict[str, object]:
    """Build an error response: ``{"jsonrpc":"2.0","id":id,"error":{"code":…,"message":…}}``."""
    return {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}


def frame(response: dict[str, object] | list[dict[str, object]]) -> bytes:
    """Serialise one response (or a batch's list of responses) as compact JSON plus ``"\\n"``.

    Non-ASCII text is written as ``\\u`` escapes, so strings that came from the peer (even lone
    surrogates) always encode. Raises :class:`ValueError` for NaN or infinite floats and
    :class:`TypeError` for values JSON cannot represent; both are bugs in the handler that built
    the result.
    """
    text = json.dumps(response, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii") + b"\n"
