"""CPU sets (``spdk_cpuset``): immutable 1024-bit sets of cores, parsed and formatted as SPDK does.

Theory of operation. A :class:`CpuSet` is a Python ``int`` used as a bitmap (bit *n* = core *n*),
wrapped so it cannot change once made: every operation returns a new set, so a set can be shared
between reactors and used as a dict key without copying.

Parsing follows ``spdk_cpuset_parse`` (SPEC §5.1) with two deliberate tightenings, both for input
SPDK accepts only by accident of ``strtoul``, and with more precise errors:

* digits are ASCII only: ``str.isdigit`` is also true for Arabic-Indic, fullwidth and superscript
  digits, which must not become cores;
* a ``+`` sign or a second ``-`` inside one list item (``[0-1-2]``, which SPDK reads as ``1-2``) is
  rejected;
* errors name the offending character and its position, not only the mask.

Positions in error messages count from 0 in the text exactly as given (before blanks are stripped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Final, final

from spdkpy.errors import InvalidCpuMaskError

__all__ = ["MAX_CPUSET_BITS", "MAX_LCORES", "CpuSet"]

MAX_CPUSET_BITS: Final = 1024
"""Bits in a cpuset (``SPDK_CPUSET_SIZE``)."""

MAX_LCORES: Final = 128
"""Highest lcore index + 1 the env accepts (``CONFIG_MAX_LCORES``/``RTE_MAX_LCORE``)."""

_ALL_BITS: Final = (1 << MAX_CPUSET_BITS) - 1
_HEX_DIGITS_KEPT: Final = MAX_CPUSET_BITS // 4
# Explicit ASCII sets: str.isdigit()/int() also accept other scripts' digits.
_DEC: Final = frozenset("0123456789")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_BLANKS: Final = " \t"  # C isblank(): space and tab only, not newlines


@final
class CpuSet:
    """An immutable set of cores 0..1023. Hashable; safe to share between OS threads.

    ``CpuSet(cores)`` raises :class:`ValueError` for a core outside 0..1023. User text goes through
    :meth:`parse`, which raises :class:`~spdkpy.errors.InvalidCpuMaskError` instead.
    """

    __slots__ = ("_bits",)
    _bits: int

    def __init__(self, cores: Iterable[int] = ()) -> None:
        bits = 0
        for core in cores:
            _check_core(core)
            bits |= 1 << core
        object.__setattr__(self, "_bits", bits)

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_bits(cls, bits: int) -> CpuSet:
        """The set whose bit *n* is core *n*; ``ValueError`` if ``bits`` is negative or too wide."""
        if bits < 0 or bits > _ALL_BITS:
            raise ValueError(f"cpuset bitmap must fit in {MAX_CPUSET_BITS} bits")
        obj = object.__new__(cls)
        object.__setattr__(obj, "_bits", bits)
        return obj

    @classmethod
    def all(cls) -> CpuSet:
        """All 1024 cores: what SPDK uses when a thread is created with a NULL cpumask."""
        return cls.from_bits(_ALL_BITS)

    @classmethod
    def parse(cls, text: str) -> CpuSet:
        """Parse a hex mask (``0x3``, ``ff,ffffffff``) or a core list (``[0-3, 8]``).

        Exactly ``spdk_cpuset_parse`` apart from the tightenings in the module docstring: hex is
        not decimal (``"10"`` is core 4), ``"0x"`` alone is the empty set, hex bits beyond 1024
        are dropped, anything after a list's ``]`` is ignored. Raises
        :class:`~spdkpy.errors.InvalidCpuMaskError` whose ``reason`` names the fault.
        """
        stripped = text.lstrip(_BLANKS)
        start = len(text) - len(stripped)
        stripped = stripped.rstrip(_BLANKS)
        if not stripped:
            raise InvalidCpuMaskError(text, "the mask is empty")
        if stripped[0] == "[":
            return cls.from_bits(_parse_list(text, stripped, start))
        return cls.from_bits(_parse_hex(text, stripped, start))

    # --- value access -------------------------------------------------------------------------

    @property
    def bits(self) -> int:
        """The bitmap: bit *n* set means core *n* is in the set."""
        return self._bits

    def format(self) -> str:
        """``spdk_cpuset_fmt``: lowercase hex, no prefix, no leading zeros; empty set is ``"0"``."""
        return format(self._bits, "x")

    def format_list(self) -> str:
        """The list form with ranges, ``[0-3,8]``; the empty set is ``[]`` (which parse rejects)."""
        return "[" + ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self._ranges()) + "]"

    def _ranges(self) -> Iterator[tuple[int, int]]:
        """Maximal runs of consecutive cores as inclusive ``(first, last)`` pairs, ascending."""
        bits = self._bits
        while bits:
            lo = (bits & -bits).bit_length() - 1
            # Adding the lowest set bit carries through the whole run and clears it.
            run_end = (bits + (1 << lo)) & -(bits + (1 << lo))
            hi = run_end.bit_length() - 2
            yield lo, hi
            bits &= ~(run_end - 1)

    def first(self) -> int:
        """The lowest core; ``ValueError`` if the set is empty."""
        if not self._bits:
            raise ValueError("empty cpuset has no first core")
        return (self._bits & -self._bits).bit_length() - 1

    def last(self) -> int:
        """The highest core; ``ValueError`` if the set is empty."""
        if not self._bits:
            raise ValueError("empty cpuset has no last core")
        return self._bits.bit_length() - 1

    def issubset(self, other: CpuSet) -> bool:
        return self._bits & ~other._bits == 0

    def with_cpu(self, core: int) -> CpuSet:
        """A copy with ``core`` added (``spdk_cpuset_set_cpu(.., true)``)."""
        _check_core(core)
        return CpuSet.from_bits(self._bits | (1 << core))

    def without_cpu(self, core: int) -> CpuSet:
        """A copy with ``core`` removed (``spdk_cpuset_set_cpu(.., false)``)."""
        _check_core(core)
        return CpuSet.from_bits(self._bits & ~(1 << core))

    def negate(self) -> CpuSet:
        """The complement within the 1024 bits (``spdk_cpuset_negate``)."""
        return CpuSet.from_bits(~self._bits & _ALL_BITS)

    # --- protocols ----------------------------------------------------------------------------

    def __contains__(self, core: object) -> bool:
        if not isinstance(core, int) or core < 0:
            return False
        return bool(self._bits >> core & 1)

    def __iter__(self) -> Iterator[int]:
        """Cores in ascending order (``SPDK_ENV_FOREACH_CORE`` order)."""
        bits = self._bits
        while bits:
            low = bits & -bits
            yield low.bit_length() - 1
            bits ^= low

    def __len__(self) -> int:
        return self._bits.bit_count()

    def __bool__(self) -> bool:
        return self._bits != 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CpuSet):
            return NotImplemented
        return self._bits == other._bits

    def __hash__(self) -> int:
        return hash((CpuSet, self._bits))

    def __and__(self, other: CpuSet) -> CpuSet:
        if not isinstance(other, CpuSet):
            return NotImplemented
        return CpuSet.from_bits(self._bits & other._bits)

    def __or__(self, other: CpuSet) -> CpuSet:
        if not isinstance(other, CpuSet):
            return NotImplemented
        return CpuSet.from_bits(self._bits | other._bits)

    def __xor__(self, other: CpuSet) -> CpuSet:
        if not isinstance(other, CpuSet):
            return NotImplemented
        return CpuSet.from_bits(self._bits ^ other._bits)

    def __sub__(self, other: CpuSet) -> CpuSet:
        if not isinstance(other, CpuSet):
            return NotImplemented
        return CpuSet.from_bits(self._bits & ~other._bits)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"CpuSet({self.format_list()!r})"

    if not TYPE_CHECKING:
        # Hidden from mypy, which would otherwise accept assignments to any attribute name.

        def __setattr__(self, name: str, value: object) -> None:
            raise AttributeError(f"CpuSet is immutable (cannot set {name!r})")

        def __delattr__(self, name: str) -> None:
            raise AttributeError(f"CpuSet is immutable (cannot delete {name!r})")

    def __reduce__(self) -> tuple[object, tuple[int]]:
        # Default slot pickling restores state through __setattr__, which we forbid.
        return (CpuSet.from_bits, (self._bits,))


def _check_core(core: int) -> None:
    if not 0 <= core < MAX_CPUSET_BITS:
        raise ValueError(f"core {core} is outside 0..{MAX_CPUSET_BITS - 1}")


def _parse_hex(text: str, s: str, start: int) -> int:
    """Hex form; ``s`` is ``text`` without blanks and begins at ``text[start]``."""
    body_at = 2 if s[:2] in ("0x", "0X") else 0
    for i in range(body_at, len(s)):
        ch = s[i]
        if ch not in _HEX and ch != ",":
            raise InvalidCpuMaskError(
                text,
                f"invalid character {ch!r} at position {start + i} "
                "(a mask is hex digits with optional 0x and commas, or a [core list])",
            )
    # Linux's sysfs writes commas every 32 bits; SPDK skips commas wherever they are.
    digits = s[body_at:].replace(",", "")
    # Only the lowest 1024 bits count; cutting first keeps huge input cheap.
    digits = digits[-_HEX_DIGITS_KEPT:]
    return int(digits, 16) if digits else 0


def _parse_list(text: str, s: str, start: int) -> int:
    """List form ``[a,b-c,...]``; ``s`` begins with ``[`` at ``text[start]``."""
    bits = 0
    i = 1
    n = len(s)

    def skip_blanks(j: int) -> int:
        while j < n and s[j] in _BLANKS:
            j += 1
        return j

    def fail_at(j: int) -> InvalidCpuMaskError:
        if j >= n:
            return InvalidCpuMaskError(text, "Unexpected end of core list")
        return InvalidCpuMaskError(
            text, f"Parsing of core list failed on character {s[j]!r} at position {start + j}"
        )

    def number(j: int) -> tuple[int, int]:
        j = skip_blanks(j)
        k = j
        while k < n and s[k] in _DEC:
            k += 1
        if k == j:
            raise fail_at(j)
        digits = s[j:k].lstrip("0") or "0"
        # Checking the length first keeps int() away from huge digit strings.
        if len(digits) > 4 or int(digits) >= MAX_CPUSET_BITS:
            shown = digits if len(digits) <= 12 else digits[:12] + "…"
            raise InvalidCpuMaskError(text, f"Core number {shown} is out of range")
        return int(digits), skip_blanks(k)

    while True:
        lo, i = number(i)
        hi = lo
        if i < n and s[i] == "-":
            hi, i = number(i + 1)
            if lo > hi:
                raise InvalidCpuMaskError(text, f"Invalid range of CPUs {lo}-{hi} ({lo} > {hi})")
        if i >= n or s[i] not in ",]":
            raise fail_at(i)
        bits |= ((1 << (hi - lo + 1)) - 1) << lo
        if s[i] == "]":
            return bits  # SPDK ignores anything after the closing bracket
        i += 1
