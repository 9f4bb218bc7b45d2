"""CpuSet: parsing and formatting as spdk_cpuset (SPEC §5.1, §5.2), set operations, immutability."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spdkpy.env import MAX_CPUSET_BITS, CpuSet
from spdkpy.errors import InvalidCpuMaskError

ALL_BITS = (1 << MAX_CPUSET_BITS) - 1

cpusets = st.one_of(
    st.frozensets(st.integers(0, MAX_CPUSET_BITS - 1), max_size=64).map(CpuSet),
    st.integers(0, ALL_BITS).map(CpuSet.from_bits),
)


def sysfs_style(hex_digits: str) -> str:
    """Insert a comma every 8 hex digits counting from the right, as /sys/.../cpumap does."""
    groups = []
    end = len(hex_digits)
    while end > 0:
        groups.append(hex_digits[max(0, end - 8) : end])
        end -= 8
    return ",".join(reversed(groups))


# --- round trips ----------------------------------------------------------------------------


@given(cpusets)
def test_hex_round_trip(s: CpuSet) -> None:
    assert CpuSet.parse(s.format()) == s
    assert CpuSet.parse("0x" + s.format()) == s
    assert CpuSet.parse("0X" + s.format().upper()) == s


@given(cpusets)
def test_sysfs_commas_round_trip(s: CpuSet) -> None:
    text = sysfs_style(s.format())
    assert CpuSet.parse(text) == s
    assert CpuSet.parse("0x" + text) == s


@given(cpusets.filter(bool))
def test_list_round_trip(s: CpuSet) -> None:
    # Only non-empty sets: SPDK's list syntax has no empty list ("[]" is an error, tested below).
    assert CpuSet.parse(s.format_list()) == s
    assert CpuSet.parse(" \t" + s.format_list().replace(",", " , ") + "\t ") == s


@given(cpusets)
def test_format_has_no_prefix_and_no_leading_zero(s: CpuSet) -> None:
    text = s.format()
    assert text == format(s.bits, "x")
    assert text == "0" or not text.startswith("0")
    assert str(s) == text


@given(st.frozensets(st.integers(0, MAX_CPUSET_BITS - 1), max_size=64))
def test_container_protocols_match_frozenset(cores: frozenset[int]) -> None:
    s = CpuSet(cores)
    assert list(s) == sorted(cores)
    assert len(s) == len(cores)
    assert bool(s) == bool(cores)
    assert all(c in s for c in cores)
    assert s.bits == sum(1 << c for c in cores)


@given(cpusets, cpusets)
def test_operations_match_frozenset(a: CpuSet, b: CpuSet) -> None:
    fa, fb = frozenset(a), frozenset(b)
    assert frozenset(a & b) == fa & fb
    assert frozenset(a | b) == fa | fb
    assert frozenset(a ^ b) == fa ^ fb
    assert frozenset(a - b) == fa - fb
    assert a.issubset(b) == fa.issubset(fb)
    assert frozenset(a.negate()) == frozenset(range(MAX_CPUSET_BITS)) - fa
    assert (a == b) == (fa == fb)
    if a == b:
        assert hash(a) == hash(b)


# --- SPEC examples --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("f", range(4)),
        ("0xf", range(4)),
        ("0XF", range(4)),
        ("10", [4]),  # no decimal form
        ("0x", []),
        (",", []),
        ("0", []),
        ("ff,ffffffff", range(40)),
        ("0xff,ffff,ffff", range(40)),
        ("[0,1,10]", [0, 1, 10]),
        ("[0-3, 8]", [0, 1, 2, 3, 8]),
        ("[ 0 - 3 ,\t8 ]", [0, 1, 2, 3, 8]),
        ("[0-3]xyz", range(4)),  # anything after ']' is ignored
        ("[5]]]", [5]),
        ("[0003]", [3]),
        ("[1023]", [1023]),
        ("[3-3]", [3]),
        (" \t0x3\t ", [0, 1]),
        ("f" * 300, range(MAX_CPUSET_BITS)),  # bits beyond 1024 dropped silently
        ("1" + "0" * 256, []),
    ],
)
def test_parse_examples(text: str, cores: range | list[int]) -> None:
    assert CpuSet.parse(text) == CpuSet(cores)


@pytest.mark.parametrize(
    ("cores", "hex_text", "list_text"),
    [
        ([], "0", "[]"),
        (range(4), "f", "[0-3]"),
        (range(32), "ffffffff", "[0-31]"),
        ([0, 1, 2, 3, 8], "10f", "[0-3,8]"),
        ([0, 2, 4], "15", "[0,2,4]"),
        ([1023], "8" + "0" * 255, "[1023]"),
    ],
)
def test_format_examples(cores: range | list[int], hex_text: str, list_text: str) -> None:
    s = CpuSet(cores)
    assert s.format() == hex_text
    assert s.format_list() == list_text
    assert repr(s) == f"CpuSet({list_text!r})"


# --- malformed masks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("\t \t", "empty"),
        ("xo3", "'x' at position 0"),
        ("0xg", "'g' at position 2"),
        ("0x-1", "'-' at position 2"),
        ("1.5", "'.' at position 1"),
        ("0x1 2", "' ' at position 3"),
        ("  0x1 2", "' ' at position 5"),
        ("0x1\n", "'\\n'"),
        ("0x0x1", "'x' at position 3"),
        ("1_0", "'_'"),  # int(.., 16) would accept the separator
        ("-1", "'-'"),
        ("0x1,,g", "'g' at position 5"),
        ("[3-1]", "3-1"),
        ("[0,]", "']' at position 3"),
        ("[]", "']' at position 1"),
        ("[", "Unexpected end of core list"),
        ("[0", "Unexpected end of core list"),
        ("[0-", "Unexpected end of core list"),
        ("[0,1", "Unexpected end of core list"),
        ("[-1]", "'-' at position 1"),
        ("[1024]", "Core number 1024 is out of range"),
        ("[0-1024]", "Core number 1024 is out of range"),
        ("[99999999999999999999999999]", "out of range"),
        ("[0-]", "']' at position 3"),
        ("[,0]", "',' at position 1"),
        ("[0 1]", "'1' at position 3"),
        ("[0;1]", "';' at position 2"),
        ("[0-1-2]", "'-' at position 4"),
        ("[+1]", "'+' at position 1"),
        ("[0x1]", "'x' at position 2"),
        # Non-ASCII digits: str.isdigit() is True for each of them.
        ("[\u0661]", "'\u0661' at position 1"),  # ARABIC-INDIC DIGIT ONE
        ("[\u00b9]", "'\u00b9' at position 1"),  # SUPERSCRIPT ONE
        ("[\uff11]", "'\uff11' at position 1"),  # FULLWIDTH DIGIT ONE
        ("\uff10x1", "'\uff10' at position 0"),  # FULLWIDTH DIGIT ZERO
        ("0x[1]", "'[' at position 2"),
    ],
)
def test_parse_rejects(text: str, fault: str) -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        CpuSet.parse(text)
    err = info.value
    assert err.mask == text
    assert fault in err.reason
    assert fault in str(err)
    assert "\n" not in str(err)


def test_huge_invalid_input_gives_short_message() -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        CpuSet.parse("[" + "9" * 10_000 + "]")
    assert len(info.value.reason) < 80


# --- construction and single-core operations -------------------------------------------------


@pytest.mark.parametrize("core", [-1, MAX_CPUSET_BITS, 5000])
def test_constructor_rejects_out_of_range(core: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        CpuSet([core])
    with pytest.raises(ValueError, match="outside"):
        CpuSet().with_cpu(core)
    with pytest.raises(ValueError, match="outside"):
        CpuSet().without_cpu(core)


@pytest.mark.parametrize("bits", [-1, 1 << MAX_CPUSET_BITS])
def test_from_bits_rejects_out_of_range(bits: int) -> None:
    with pytest.raises(ValueError, match="bits"):
        CpuSet.from_bits(bits)


def test_all_and_empty() -> None:
    everything = CpuSet.all()
    assert len(everything) == MAX_CPUSET_BITS
    assert everything.first() == 0
    assert everything.last() == MAX_CPUSET_BITS - 1
    assert everything.negate() == CpuSet()
    assert not CpuSet()
    assert CpuSet().format() == "0"
    with pytest.raises(ValueError, match="empty"):
        CpuSet().first()
    with pytest.raises(ValueError, match="empty"):
        CpuSet().last()


def test_with_and_without_cpu_return_new_sets() -> None:
    s = CpuSet([1])
    t = s.with_cpu(3)
    assert s == CpuSet([1])
    assert t == CpuSet([1, 3])
    assert t.without_cpu(1) == CpuSet([3])
    assert t.without_cpu(7) == t
    assert (t.first(), t.last()) == (1, 3)


def test_contains_is_false_for_non_cores() -> None:
    s = CpuSet([0, 1])
    assert 0 in s
    assert 2 not in s
    assert -1 not in s
    assert MAX_CPUSET_BITS not in s
    assert "0" not in s


def test_immutable_hashable_picklable() -> None:
    s = CpuSet([0, 5])
    with pytest.raises(AttributeError):
        s._bits = 1
    with pytest.raises(AttributeError):
        s.extra = 1  # type: ignore[attr-defined]
    assert {s: "x"}[CpuSet.parse("[0,5]")] == "x"
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s
    assert s != "21"
    with pytest.raises(TypeError):
        _ = s & 3  # type: ignore[operator]
