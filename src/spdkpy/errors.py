"""spdkpy's one exception hierarchy.

Every error spdkpy raises on purpose derives from :class:`SpdkpyError`. The branches say who is at
fault, so a caller can decide what to do without parsing messages:

* :class:`InputError`: the caller or the user gave something invalid (a core mask, an option, a
  config file). User-facing commands print it as one line and exit 1.
* :class:`ResourceError`: a bounded resource refused work (a full ring, an empty pool, an exited
  thread). SPDK aborts here; spdkpy raises at the call site (deviation 1), and every API that raises
  one also has a ``try_`` form that returns ``False`` or ``None`` instead.
* :class:`WrongThreadError`: a call made off the thread that owns the object.
* :class:`InternalError`: an invariant broke inside spdkpy; please file a bug.

Each error carries an ``errno`` (positive value; SPDK reports ``-errno``) so RPC layers can turn it
into SPDK's negative error codes.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable

__all__ = [
    "AlignmentError",
    "BdevError",
    "ConfigError",
    "EventPoolExhaustedError",
    "InputError",
    "InternalError",
    "InvalidCpuMaskError",
    "InvalidStateError",
    "NoSuchDeviceError",
    "NotSupportedError",
    "PoolExhaustedError",
    "QueueFullError",
    "ResourceError",
    "SockError",
    "SockImplNotFoundError",
    "SpdkpyError",
    "ThreadExitedError",
    "WrongThreadError",
]


class SpdkpyError(Exception):
    """Root of every error spdkpy raises on purpose."""

    errno: int = _errno.EINVAL


# --- input and configuration ------------------------------------------------------------------


class InputError(SpdkpyError):
    """Something the caller or user supplied is invalid; the message says what and why."""


class InvalidCpuMaskError(InputError):
    """A core mask or core list is malformed, empty, too wide, or names unavailable cores.

    ``mask`` is the text as given, ``reason`` the specific fault (the bad character, the bad range,
    the cores that do not exist) and ``available`` the cores this process may run on, when known.
    """

    def __init__(self, mask: str, reason: str, available: Iterable[int] | None = None) -> None:
        self.mask = mask
        self.reason = reason
        self.available: tuple[int, ...] | None = (
            None if available is None else tuple(sorted(available))
        )
        text = f"invalid core mask {mask!r}: {reason}"
        if self.available is not None:
            text += f" (available cores: {_format_core_list(self.available)})"
        super().__init__(text)


class ConfigError(InputError):
    """A JSON configuration file or app option set cannot be used."""


class NoSuchDeviceError(InputError):
    """No io_device (or other named object) is registered under that key."""

    errno = _errno.ENODEV


class SockImplNotFoundError(InputError):
    """No sock implementation is registered under that name (SPDK: "Cannot find %s sock
    implementation"). ``name`` is the name asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Cannot find {name} sock implementation")


class AlignmentError(InputError):
    """An I/O breaks the alignment direct I/O (``O_DIRECT``) needs: its offset, a buffer's length
    or a buffer's address is not a multiple of the required alignment. The message says which
    and the alignment; buffers from ``alloc_aligned`` are page-aligned."""


class NotSupportedError(SpdkpyError):
    """The framework in use does not support this operation (SPDK's ``-ENOTSUP``)."""

    errno = _errno.ENOTSUP


class InvalidStateError(SpdkpyError):
    """The object is not in a state that allows this call (e.g. registering on an exited thread)."""

    errno = _errno.EPERM


# --- resources --------------------------------------------------------------------------------


class ResourceError(SpdkpyError):
    """A bounded resource refused work. Never silent: every refusal is also counted."""

    errno = _errno.ENOMEM


class QueueFullError(ResourceError):
    """A bounded ring or message queue has no room; nothing was enqueued."""

    errno = _errno.EAGAIN


class PoolExhaustedError(ResourceError):
    """A fixed-size mempool has no free element."""


class EventPoolExhaustedError(PoolExhaustedError):
    """The global event mempool is empty, so no event could be allocated."""


class ThreadExitedError(ResourceError):
    """The target lightweight thread has exited and accepts no more work."""

    errno = _errno.ESHUTDOWN


# --- sockets ----------------------------------------------------------------------------------


class SockError(SpdkpyError):
    """A socket call failed; ``errno`` is the positive errno (SPDK returns ``-errno``).

    Raised by the sock layer for OS failures (``ECONNREFUSED``, ``ECONNRESET``, ...) and for
    misuse SPDK reports with an errno: closing a socket still in a group or a group still holding
    sockets (``EBUSY``), adding a socket to a second group (``EINVAL``), using a closed socket
    (``EBADF``). The OS error, when there is one, is ``__cause__``.
    """

    errno = _errno.EIO

    def __init__(self, errno: int, message: str) -> None:
        self.errno = errno
        super().__init__(message)


# --- block devices ----------------------------------------------------------------------------


class BdevError(SpdkpyError):
    """A bdev call was refused; ``errno`` is the positive errno SPDK returns negated.

    ``ENODEV`` (no such bdev, or it is being removed), ``EEXIST`` (name or alias taken),
    ``EINVAL`` (out-of-range or misaligned I/O, bad geometry), ``EBADF`` (a write through a
    read-only descriptor), ``ENOTSUP`` (I/O type not supported), ``EPERM``/``EBUSY`` (claims,
    shrinking an open bdev). Raised synchronously: no completion callback follows.
    """

    errno = _errno.EINVAL

    def __init__(self, errno: int, message: str) -> None:
        self.errno = errno
        super().__init__(message)


# --- misuse and bugs --------------------------------------------------------------------------


class WrongThreadError(SpdkpyError):
    """A call was made from a thread that does not own the object (SPDK asserts here)."""

    errno = _errno.EPERM


class InternalError(SpdkpyError):
    """An invariant inside spdkpy broke. This is a bug in spdkpy: please file it."""

    errno = _errno.EFAULT


def _format_core_list(cores: Iterable[int]) -> str:
    """Render cores as SPDK's list form with ranges: ``[0-3,8]``."""
    ordered = sorted(set(cores))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return "[" + ",".join(parts) + "]"
