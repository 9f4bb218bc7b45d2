"""The bdev layer's enumerations and constants: SPDK's values and JSON names (SPEC-STORAGE A1)."""

from __future__ import annotations

import enum
import errno
from typing import Final

__all__ = [
    "IO_TYPE_NAMES",
    "NOMEM_THRESHOLD_COUNT",
    "ZERO_BUFFER_SIZE",
    "BdevEvent",
    "ClaimType",
    "IoStatus",
    "IoType",
    "SubmitStatus",
]


class IoType(enum.IntEnum):
    """``enum spdk_bdev_io_type`` (0 is INVALID)."""

    INVALID = 0
    READ = 1
    WRITE = 2
    UNMAP = 3
    FLUSH = 4
    RESET = 5
    NVME_ADMIN = 6
    NVME_IO = 7
    NVME_IO_MD = 8
    WRITE_ZEROES = 9
    ZCOPY = 10
    GET_ZONE_INFO = 11
    ZONE_MANAGEMENT = 12
    ZONE_APPEND = 13
    COMPARE = 14
    COMPARE_AND_WRITE = 15
    ABORT = 16
    SEEK_HOLE = 17
    SEEK_DATA = 18
    COPY = 19
    NVME_IOV_MD = 20
    NVME_NSSR = 21
    WRITE_UNCORRECTABLE = 22


IO_TYPE_NAMES: Final[tuple[str, ...]] = (
    "read",
    "write",
    "unmap",
    "flush",
    "reset",
    "nvme_admin",
    "nvme_io",
    "nvme_io_md",
    "write_zeroes",
    "zcopy",
    "get_zone_info",
    "zone_management",
    "zone_append",
    "compare",
    "compare_and_write",
    "abort",
    "seek_hole",
    "seek_data",
    "copy",
    "nvme_iov_md",
    "nvme_nssr",
    "write_uncorrectable",
)
"""JSON names of I/O types 1..22, in ``supported_io_types`` key order."""


class IoStatus(enum.IntEnum):
    """``enum spdk_bdev_io_status``; :attr:`json_name` is the ``io_error`` key."""

    AIO_ERROR = -8
    ABORTED = -7
    FIRST_FUSED_FAILED = -6
    MISCOMPARE = -5
    NOMEM = -4
    SCSI_ERROR = -3
    NVME_ERROR = -2
    FAILED = -1
    PENDING = 0
    SUCCESS = 1

    @property
    def json_name(self) -> str:
        return self.name.lower()


class BdevEvent(enum.IntEnum):
    """``enum spdk_bdev_event_type``: what a descriptor's ``event_cb`` is told."""

    REMOVE = 0
    RESIZE = 1
    MEDIA_MANAGEMENT = 2


class ClaimType(enum.Enum):
    """``enum spdk_bdev_claim_type``; the value is the ``claim_type`` JSON name."""

    NONE = "not_claimed"
    EXCL_WRITE = "exclusive_write"
    READ_MANY_WRITE_ONE = "read_many_write_one"
    READ_MANY_WRITE_NONE = "read_many_write_none"
    READ_MANY_WRITE_SHARED = "read_many_write_shared"


class SubmitStatus(enum.IntEnum):
    """What a submit call returns when it does not raise.

    ``SUBMITTED`` (0): the completion callback will run on this thread. ``NOMEM``
    (``-ENOMEM``): no ``BdevIo`` was free; nothing was submitted and no callback follows. Queue a
    :class:`~spdkpy.bdev.BdevIoWaitEntry` with :func:`~spdkpy.bdev.queue_io_wait` right away and
    submit again from its callback (SPDK's ``spdk_bdev_queue_io_wait``).
    """

    SUBMITTED = 0
    NOMEM = -errno.ENOMEM


ZERO_BUFFER_SIZE: Final = 0x100000
"""The shared zero buffer that emulates write_zeroes with writes (``ZERO_BUFFER_SIZE``)."""
NOMEM_THRESHOLD_COUNT: Final = 8
"""Retry module-NOMEM I/O only once this many fewer are outstanding (``NOMEM_THRESHOLD_COUNT``)."""
