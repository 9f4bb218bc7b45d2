"""The sans-I/O JSON-RPC codec: stream framing, request validation, limits, EOF, encoding
(SPEC §7.2, §7.3), plus two fuzz contracts: valid requests survive any chunking and whitespace, and
arbitrary bytes never make the decoder raise."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spdkpy.errors import InvalidStateError
from spdkpy.rpc._codec import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_JSON_VALUES,
    MAX_RECV_BUFFER,
    METHOD_NOT_FOUND,
    NEED_DATA,
    PARSE_ERROR,
    STATE_ERROR,
    Batch,
    InvalidRequest,
    JsonId,
    ParseError,
    Request,
    Single,
    StreamDecoder,
    encode_error,
    encode_result,
    frame,
)

Message = Single | Batch | ParseError


def drain(decoder: StreamDecoder) -> list[Message]:
    """Every message available now; stops after NEED_DATA or the first ParseError."""
    out: list[Message] = []
    while True:
        msg = decoder.next_message()
        if msg is NEED_DATA:
            return out
        assert isinstance(msg, Single | Batch | ParseError)
        out.append(msg)
        if isinstance(msg, ParseError):
            return out


def decode(data: bytes, *, eof: bool = False, **limits: int) -> list[Message]:
    decoder = StreamDecoder(**limits)
    decoder.feed(data)
    out = drain(decoder)
    if eof and not (out and isinstance(out[-1], ParseError)):
        decoder.feed(b"")
        out += drain(decoder)
    return out


def decode_chunks(chunks: Iterable[bytes], *, eof: bool = False, **limits: int) -> list[Message]:
    decoder = StreamDecoder(**limits)
    out: list[Message] = []
    for chunk in chunks:
        if not chunk:
            continue
        decoder.feed(chunk)
        out += drain(decoder)
        if out and isinstance(out[-1], ParseError):
            return out
    if eof:
        decoder.feed(b"")
        out += drain(decoder)
    return out


def split_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = [0, *sorted(min(c, len(data)) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def req(
    method: str, id: JsonId = None, params: object = None, *, notification: bool = False
) -> Single:
    return Single(Request(method, params, id, notification))  # type: ignore[arg-type]


def one(data: bytes) -> Single | Batch | ParseError:
    msgs = decode(data, eof=True)
    assert len(msgs) == 1, msgs
    return msgs[0]


# --- framing ----------------------------------------------------------------------------------

STREAM = (
    b'{"jsonrpc":"2.0","method":"a","id":1}'
    b'{"method":"b","params":{"x":[1,2,{"y":"}]"}]},"id":"s"}'
    b'{"method":"c\\"}{[\\\\","params":[],"id":2.5}'
    b'[{"method":"d","id":3},{"method":"e"}]'
    b'{"method":"f","id":null,"params":null}'
)
STREAM_MESSAGES: list[Message] = [
    req("a", 1),
    req("b", "s", {"x": [1, 2, {"y": "}]"}]}),
    req('c"}{[\\', 2.5, []),
    Batch((Request("d", None, 3, False), Request("e", None, None, True))),
    req("f", None, None, notification=True),
]


def test_concatenated_requests_without_newlines() -> None:
    assert decode(STREAM) == STREAM_MESSAGES


def test_split_at_every_byte_boundary() -> None:
    for i in range(len(STREAM) + 1):
        assert decode_chunks([STREAM[:i], STREAM[i:]]) == STREAM_MESSAGES, i


def test_one_byte_at_a_time() -> None:
    assert decode_chunks(STREAM[i : i + 1] for i in range(len(STREAM))) == STREAM_MESSAGES


def test_whitespace_between_and_around_values() -> None:
    data = b' \n\t{"method":"a","id":1}\r\n  \t{ "method" : "b" , "id" : 2 }\n\n'
    assert decode(data) == [req("a", 1), req("b", 2)]


def test_complete_value_is_returned_before_the_next_one_arrives() -> None:
    decoder = StreamDecoder()
    decoder.feed(b'{"method":"a","id":1}{"meth')
    assert decoder.next_message() == req("a", 1)
    assert decoder.next_message() is NEED_DATA
    assert decoder.buffered == len(b'{"meth')
    decoder.feed(b'od":"b"}')
    assert decoder.next_message() == req("b", notification=True)
    assert decoder.next_message() is NEED_DATA
    assert decoder.buffered == 0


def test_non_ascii_text_and_utf8_split_across_feeds() -> None:
    data = '{"method":"héllo","params":{"k":"日本"},"id":"ü"}'.encode()
    expected = [req("héllo", "ü", {"k": "日本"})]
    for i in range(len(data) + 1):
        assert decode_chunks([data[:i], data[i:]]) == expected


# --- top-level values that are not requests ---------------------------------------------------


@pytest.mark.parametrize(
    "data", [b"42", b"-1.5e3", b'"x"', b"true", b"false", b"null", b'"{\\"method\\":\\"a\\"}"']
)
def test_non_object_top_level_is_invalid_request(data: bytes) -> None:
    assert decode(data + b" ") == [Single(InvalidRequest(None))]


def test_adjacent_scalars_are_separate_values() -> None:
    assert decode(b'"a""b"1 2[3]{}', eof=True) == [
        Single(InvalidRequest(None)),
        Single(InvalidRequest(None)),
        Single(InvalidRequest(None)),
        Single(InvalidRequest(None)),
        Batch((InvalidRequest(None),)),
        Single(InvalidRequest(None)),
    ]


def test_number_at_end_of_buffer_waits_for_a_delimiter() -> None:
    decoder = StreamDecoder()
    decoder.feed(b"12")
    assert decoder.next_message() is NEED_DATA
    decoder.feed(b"3")
    assert decoder.next_message() is NEED_DATA
    decoder.feed(b"\n")
    assert decoder.next_message() == Single(InvalidRequest(None))
    assert decoder.next_message() is NEED_DATA


@pytest.mark.parametrize("data", [b"[]", b"[ ]", b"[\n]"])
def test_empty_batch_is_a_single_invalid_request(data: bytes) -> None:
    assert decode(data) == [Single(InvalidRequest(None))]


# --- validation of one request ----------------------------------------------------------------


def test_batch_with_mixed_valid_invalid_and_notifications() -> None:
    data = (
        b'[{"jsonrpc":"2.0","method":"a","id":1},'
        b'{"method":"n","params":[1]},'
        b'{"jsonrpc":"1.0","method":"x","id":"bad-version"},'
        b'{"id":7},'
        b'{"method":"y","id":true},'
        b"5,"
        b'"str",'
        b"[],"
        b'{"method":"z","params":"p","id":9}]'
    )
    assert decode(data) == [
        Batch(
            (
                Request("a", None, 1, False),
                Request("n", [1], None, True),
                InvalidRequest("bad-version"),
                InvalidRequest(7),
                InvalidRequest(None),
                InvalidRequest(None),
                InvalidRequest(None),
                InvalidRequest(None),
                InvalidRequest(9),
            )
        )
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # jsonrpc: optional, but exactly the string "2.0" when present
        (b'{"method":"m","id":1}', req("m", 1)),
        (b'{"jsonrpc":"2.0","method":"m","id":1}', req("m", 1)),
        (b'{"jsonrpc":"1.0","method":"m","id":1}', Single(InvalidRequest(1))),
        (b'{"jsonrpc":2.0,"method":"m","id":1}', Single(InvalidRequest(1))),
        (b'{"jsonrpc":null,"method":"m","id":1}', Single(InvalidRequest(1))),
        # method: a string
        (b'{"id":1}', Single(InvalidRequest(1))),
        (b'{"method":5,"id":1}', Single(InvalidRequest(1))),
        (b'{"method":null,"id":"q"}', Single(InvalidRequest("q"))),
        (b'{"method":"","id":1}', req("", 1)),
        # id: string, number or null; a bool is not a number
        (b'{"method":"m","id":"abc"}', req("m", "abc")),
        (b'{"method":"m","id":-3}', req("m", -3)),
        (b'{"method":"m","id":1.25}', req("m", 1.25)),
        (b'{"method":"m","id":null}', req("m", None, notification=True)),
        (b'{"method":"m"}', req("m", None, notification=True)),
        (b'{"method":"m","id":true}', Single(InvalidRequest(None))),
        (b'{"method":"m","id":false}', Single(InvalidRequest(None))),
        (b'{"method":"m","id":[1]}', Single(InvalidRequest(None))),
        (b'{"method":"m","id":{}}', Single(InvalidRequest(None))),
        # an id that overflows to infinity cannot be echoed as JSON
        (b'{"method":"m","id":1e400}', Single(InvalidRequest(None))),
        # params: null is absent; else object or array
        (b'{"method":"m","params":null,"id":1}', req("m", 1, None)),
        (b'{"method":"m","params":{},"id":1}', req("m", 1, {})),
        (b'{"method":"m","params":[null],"id":1}', req("m", 1, [None])),
        (b'{"method":"m","params":"p","id":1}', Single(InvalidRequest(1))),
        (b'{"method":"m","params":3,"id":1}', Single(InvalidRequest(1))),
        (b'{"method":"m","params":true,"id":1}', Single(InvalidRequest(1))),
        # object and array values at top level of a batch element
        (b"[[]]", Batch((InvalidRequest(None),))),
    ],
)
def test_request_validation(data: bytes, expected: Message) -> None:
    assert one(data) == expected


# --- parse errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b'{"method":"a",}',
        b"{method:1}",
        b"[1,]",
        b"[}",
        b"}",
        b"1,2 ",
        b"tru ",
        b"NaN ",
        b"[Infinity]",
        b'{"method":"a","id":-Infinity}',
        b'{"method":"a\x01"}',
        b"\xef\xbb\xbf{}",
        b"[" + b"1" * 5000 + b"]",  # beyond Python's integer digit limit
    ],
)
def test_malformed_json_is_a_parse_error(data: bytes) -> None:
    msgs = decode(data, eof=True)
    assert len(msgs) == 1
    assert isinstance(msgs[0], ParseError)


def test_parse_error_is_sticky() -> None:
    decoder = StreamDecoder()
    decoder.feed(b'{"method":"a","id":1} {"method":,} {"method":"b","id":2}')
    assert decoder.next_message() == req("a", 1)
    error = decoder.next_message()
    assert isinstance(error, ParseError)
    assert decoder.next_message() is error
    decoder.feed(b'{"method":"c","id":3}')
    assert decoder.next_message() is error
    assert decoder.buffered == 0
    decoder.feed(b"")
    assert decoder.next_message() is error


@pytest.mark.parametrize(
    "data",
    [
        b'{"method":"\xff"}',
        b'{"method":"\xc3"}',  # truncated sequence
        b'{"method":"\xed\xa0\x80"}',  # encoded surrogate
        b'{"method":"\xc0\xaf"}',  # overlong
        b"\x80",
    ],
)
def test_invalid_utf8_is_a_parse_error(data: bytes) -> None:
    msgs = decode(data + b" ", eof=True)
    assert len(msgs) == 1
    assert isinstance(msgs[0], ParseError)


def test_escaped_lone_surrogate_is_accepted_and_echoable() -> None:
    msg = one(b'{"method":"\\ud800","id":"\\udc00"}')
    assert msg == req("\ud800", "\udc00")
    assert frame(encode_error("\udc00", METHOD_NOT_FOUND, "Method not found")).startswith(
        b'{"jsonrpc":"2.0","id":"\\udc00"'
    )


# --- limits -----------------------------------------------------------------------------------


def test_request_over_256_kib_is_a_parse_error() -> None:
    data = b'{"method":"m","params":{"blob":"' + b"x" * (300 * 1024) + b'"}}'
    msgs = decode_chunks(data[i : i + 4096] for i in range(0, len(data), 4096))
    assert len(msgs) == 1
    assert isinstance(msgs[0], ParseError)
    assert "too large" in msgs[0].reason


def test_request_exactly_at_the_buffer_limit_is_accepted() -> None:
    data = b'{"method":"m","id":1,"params":["' + b"x" * 100 + b'"]}'
    assert decode_chunks([data[:-1], data[-1:]], max_buffer=len(data)) == [req("m", 1, ["x" * 100])]
    msgs = decode_chunks([data[:-1], data[-1:]], max_buffer=len(data) - 2)
    assert isinstance(msgs[-1], ParseError)


def test_buffer_limit_applies_to_one_pending_value_not_the_whole_stream() -> None:
    value = b'{"method":"m"}'
    data = value * 100
    assert decode(data, max_buffer=len(value)) == [req("m", notification=True)] * 100


def test_ten_thousand_element_batch_is_a_parse_error() -> None:
    data = b"[" + b",".join([b'{"method":"m"}'] * 10_000) + b"]"
    msgs = decode(data)
    assert len(msgs) == 1
    assert isinstance(msgs[0], ParseError)
    assert "values" in msgs[0].reason


def test_value_limit_boundary() -> None:
    # The array itself is one value and each element another.
    ok = b"[" + b",".join([b"1"] * (MAX_JSON_VALUES - 1)) + b"]"
    assert decode(ok) == [Batch((InvalidRequest(None),) * (MAX_JSON_VALUES - 1))]
    over = b"[" + b",".join([b"1"] * MAX_JSON_VALUES) + b"]"
    assert isinstance(decode(over)[0], ParseError)


def test_member_names_count_as_values() -> None:
    data = b'{"method":"m"}'  # object, name, string
    assert decode(data, max_values=3) == [req("m", notification=True)]
    assert isinstance(decode(data, max_values=2)[0], ParseError)


def test_numbers_split_across_feeds_count_once() -> None:
    data = b"[" + b"1234567," * 9 + b"1234567]"
    expected = [Batch((InvalidRequest(None),) * 10)]
    for i in range(len(data) + 1):
        assert decode_chunks([data[:i], data[i:]], max_values=11) == expected, i


def test_too_many_values_is_detected_before_the_value_completes() -> None:
    decoder = StreamDecoder(max_values=10)
    decoder.feed(b"[" + b"1," * 20)
    msg = decoder.next_message()
    assert isinstance(msg, ParseError)


def test_deep_nesting_is_a_parse_error() -> None:
    assert isinstance(decode(b"[" * 100_000)[0], ParseError)
    # Within the value limit, the nesting itself is what json cannot take.
    deep = b"[" * 100_000 + b"]" * 100_000
    msgs = decode(deep, max_values=1_000_000, max_buffer=1_000_000)
    assert len(msgs) == 1
    assert isinstance(msgs[0], ParseError)
    assert "deep" in msgs[0].reason


def test_one_byte_feeds_of_a_large_request_stay_linear() -> None:
    # A long string with escapes and a long number, both split at every byte: a quadratic
    # rescan would take minutes here.
    blob = 'ab\\"' * 12_000
    digits = "0." + "1" * 100_000
    data = ('{"method":"m","params":["' + blob + '",' + digits + "]}").encode()
    decoder = StreamDecoder()
    for i in range(len(data)):
        decoder.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert decoder.next_message() is NEED_DATA
    msg = decoder.next_message()
    assert isinstance(msg, Single)
    assert isinstance(msg.item, Request)
    assert msg.item.params == ['ab"' * 12_000, float(digits)]


# --- EOF --------------------------------------------------------------------------------------


def test_eof_returns_complete_values_then_drops_an_incomplete_one() -> None:
    decoder = StreamDecoder()
    decoder.feed(b'{"method":"a","id":1}{"method":"b"')
    decoder.feed(b"")
    assert decoder.eof
    assert decoder.next_message() == req("a", 1)
    assert decoder.next_message() is NEED_DATA
    assert decoder.buffered == 0
    assert decoder.next_message() is NEED_DATA


def test_eof_ends_a_trailing_bare_scalar() -> None:
    assert decode(b"42", eof=True) == [Single(InvalidRequest(None))]
    assert isinstance(decode(b"tru", eof=True)[0], ParseError)


def test_eof_inside_a_string_drops_it() -> None:
    assert decode(b'"abc', eof=True) == []
    assert decode(b'{"method":"a\\', eof=True) == []


def test_eof_on_an_empty_or_whitespace_stream() -> None:
    assert decode(b"", eof=True) == []
    assert decode(b" \n ", eof=True) == []


def test_feed_after_eof_raises() -> None:
    decoder = StreamDecoder()
    assert not decoder.eof
    decoder.feed(b"")
    decoder.feed(b"")  # repeated EOF is harmless
    with pytest.raises(InvalidStateError):
        decoder.feed(b"{}")


# --- encoding ---------------------------------------------------------------------------------


def test_error_codes() -> None:
    assert (PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR) == (
        -32700,
        -32600,
        -32601,
        -32602,
        -32603,
    )
    assert STATE_ERROR == -1
    assert MAX_RECV_BUFFER == 256 * 1024
    assert MAX_JSON_VALUES == 8192


def test_encode_and_frame() -> None:
    assert frame(encode_result(1, {"version": "SPDK v26.09-pre", "n": [1, 2]})) == (
        b'{"jsonrpc":"2.0","id":1,"result":{"version":"SPDK v26.09-pre","n":[1,2]}}\n'
    )
    assert frame(encode_error(None, INVALID_REQUEST, "Invalid request")) == (
        b'{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}\n'
    )
    batch = [encode_result("a", True), encode_error(2, -19, "No such device")]
    assert frame(batch) == (
        b'[{"jsonrpc":"2.0","id":"a","result":true},'
        b'{"jsonrpc":"2.0","id":2,"error":{"code":-19,"message":"No such device"}}]\n'
    )
    assert frame(encode_result(1, "é")) == b'{"jsonrpc":"2.0","id":1,"result":"\\u00e9"}\n'


def test_frame_refuses_non_json_floats() -> None:
    with pytest.raises(ValueError, match="JSON"):
        frame(encode_result(1, float("nan")))


def test_framed_responses_decode_as_one_stream() -> None:
    data = frame(encode_result(1, True)) + frame([encode_error(None, PARSE_ERROR, "Parse error")])
    assert len(decode(data)) == 2


# --- fuzz -------------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
ids = (
    st.none()
    | st.text(max_size=8)
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
)
ABSENT = object()


@st.composite
def requests(draw: st.DrawFn) -> tuple[dict[str, object], Request]:
    method = draw(st.text(max_size=10))
    obj: dict[str, object] = {"method": method}
    if draw(st.booleans()):
        obj["jsonrpc"] = "2.0"
    params = draw(
        st.sampled_from([ABSENT, None])
        | st.lists(json_values, max_size=3)
        | st.dictionaries(st.text(max_size=5), json_values, max_size=3)
    )
    if params is not ABSENT:
        obj["params"] = params
    request_id = draw(st.sampled_from([ABSENT]) | ids)
    if request_id is not ABSENT:
        obj["id"] = request_id
    keys = draw(st.permutations(list(obj)))
    ordered = {k: obj[k] for k in keys}
    rid = None if request_id is ABSENT else request_id
    expected = Request(method, params if params is not ABSENT else None, rid, rid is None)  # type: ignore[arg-type]
    return ordered, expected


whitespace = st.text(alphabet=" \t\r\n", max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    reqs=st.lists(requests(), max_size=8),
    gaps=st.lists(whitespace, min_size=9, max_size=9),
    ascii_only=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=4096), max_size=12),
)
def test_valid_requests_survive_any_chunking(
    reqs: list[tuple[dict[str, object], Request]],
    gaps: list[str],
    ascii_only: bool,
    cuts: list[int],
) -> None:
    data = gaps[0].encode()
    for (obj, _), gap in zip(reqs, gaps[1:], strict=False):
        data += json.dumps(obj, ensure_ascii=ascii_only).encode() + gap.encode()
    expected = [Single(r) for _, r in reqs]
    assert decode_chunks(split_at(data, cuts), eof=True) == expected


fuzz_atoms = st.sampled_from(
    [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b"\\",
        b" ",
        b"\n",
        b",",
        b":",
        b"1",
        b"-2.5e3",
        b"true",
        b"null",
        b'"method"',
        b'"id"',
        b'"params"',
        b'"jsonrpc":"2.0"',
        b'{"method":"m","id":1}',
        b"\xff",
        b"\xc3",
        b"\xa9",
        b"NaN",
    ]
)
fuzz_bytes = st.binary(max_size=200) | st.lists(
    fuzz_atoms | st.binary(max_size=3), max_size=40
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(
    data=fuzz_bytes,
    cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10),
    max_buffer=st.sampled_from([8, 64, MAX_RECV_BUFFER]),
    max_values=st.sampled_from([2, 16, MAX_JSON_VALUES]),
)
def test_arbitrary_bytes_never_raise(
    data: bytes, cuts: list[int], max_buffer: int, max_values: int
) -> None:
    decoder = StreamDecoder(max_buffer=max_buffer, max_values=max_values)
    error: ParseError | None = None
    for chunk in [*split_at(data, cuts), b""]:
        decoder.feed(chunk)
        for _ in range(len(data) + 2):
            msg = decoder.next_message()
            assert isinstance(msg, Single | Batch | ParseError) or msg is NEED_DATA
            if isinstance(msg, ParseError):
                assert error is None or msg is error
                error = msg
                break
            if msg is NEED_DATA:
                break
        else:
            pytest.fail("next_message never returned NEED_DATA")
    final = decoder.next_message()
    assert final is (error if error is not None else NEED_DATA)
    assert decoder.buffered == 0


@settings(max_examples=300, deadline=None)
@given(data=fuzz_bytes, cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_chunking_never_changes_the_result(data: bytes, cuts: list[int]) -> None:
    assert decode_chunks(split_at(data, cuts), eof=True) == decode(data, eof=True)
