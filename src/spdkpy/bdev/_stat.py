"""I/O statistics (``struct spdk_bdev_io_stat``): per channel, plus a per-bdev accumulator of the
channels already destroyed (SPEC-STORAGE A1.11)."""

from __future__ import annotations

from typing import Final, final

__all__ = ["RESET_MODES", "UINT64_MAX", "BdevIoStat"]

UINT64_MAX: Final = 2**64 - 1
RESET_MODES: Final = ("all", "maxmin", "error", "none")

_FIELDS: Final = (
    "bytes_read",
    "num_read_ops",
    "bytes_written",
    "num_write_ops",
    "bytes_unmapped",
    "num_unmap_ops",
    "bytes_copied",
    "num_copy_ops",
    "read_latency_ticks",
    "max_read_latency_ticks",
    "min_read_latency_ticks",
    "write_latency_ticks",
    "max_write_latency_ticks",
    "min_write_latency_ticks",
    "unmap_latency_ticks",
    "max_unmap_latency_ticks",
    "min_unmap_latency_ticks",
    "copy_latency_ticks",
    "max_copy_latency_ticks",
    "min_copy_latency_ticks",
)
_MIN_FIELDS: Final = frozenset(f for f in _FIELDS if f.startswith("min_"))
_MAX_FIELDS: Final = frozenset(f for f in _FIELDS if f.startswith("max_"))


@final
class BdevIoStat:
    """Counters of successful I/O by type, latency in ticks, and failures by status.

    Only the owning thread updates a channel's stat (no lock); readers visit it there with
    ``for_each_channel``. ``io_error`` maps a status JSON name to a count.
    """

    __slots__ = (*_FIELDS, "io_error")

    def __init__(self) -> None:
        self.bytes_read = 0
        self.num_read_ops = 0
        self.bytes_written = 0
        self.num_write_ops = 0
        self.bytes_unmapped = 0
        self.num_unmap_ops = 0
        self.bytes_copied = 0
        self.num_copy_ops = 0
        self.read_latency_ticks = 0
        self.max_read_latency_ticks = 0
        self.min_read_latency_ticks = UINT64_MAX
        self.write_latency_ticks = 0
        self.max_write_latency_ticks = 0
        self.min_write_latency_ticks = UINT64_MAX
        self.unmap_latency_ticks = 0
        self.max_unmap_latency_ticks = 0
        self.min_unmap_latency_ticks = UINT64_MAX
        self.copy_latency_ticks = 0
        self.max_copy_latency_ticks = 0
        self.min_copy_latency_ticks = UINT64_MAX
        self.io_error: dict[str, int] = {}

    def reset(self, mode: str) -> None:
        """``bdev_reset_device_stat``: ``all``, ``maxmin``, ``error`` or ``none``."""
        if mode == "all":
            for name in _FIELDS:
                setattr(self, name, UINT64_MAX if name in _MIN_FIELDS else 0)
            self.io_error.clear()
        elif mode == "maxmin":
            for name in _MAX_FIELDS:
                setattr(self, name, 0)
            for name in _MIN_FIELDS:
                setattr(self, name, UINT64_MAX)
        elif mode == "error":
            self.io_error.clear()

    def add(self, other: BdevIoStat) -> None:
        """Accumulate ``other`` into this one (sums; max of maxima; min of minima)."""
        for name in _FIELDS:
            mine = getattr(self, name)
            theirs = getattr(other, name)
            if name in _MAX_FIELDS:
                setattr(self, name, max(mine, theirs))
            elif name in _MIN_FIELDS:
                setattr(self, name, min(mine, theirs))
            else:
                setattr(self, name, mine + theirs)
        for key, count in other.io_error.items():
            self.io_error[key] = self.io_error.get(key, 0) + count

    def to_json(self, *, with_errors: bool = True) -> dict[str, object]:
        """SPDK's keys in SPDK's order; unset minima print as 0."""
        out: dict[str, object] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            out[name] = 0 if name in _MIN_FIELDS and value == UINT64_MAX else value
        if with_errors:
            out["io_error"] = dict(self.io_error)
        return out
