"""``spdk_json_decode_object`` for bdev RPC params: named, typed fields, unknown keys refused.

bdev module RPCs answer a decode failure with -32603 "spdk_json_decode_object failed"
(SPEC-STORAGE conventions); callers that answer differently catch :class:`DecodeError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Final

from spdkpy.rpc import INTERNAL_ERROR, RpcError

__all__ = ["DECODE_FAILED_MESSAGE", "DecodeError", "Field", "decode_failed", "decode_object"]

DECODE_FAILED_MESSAGE: Final = "spdk_json_decode_object failed"

_LIMITS: Final = {
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


class DecodeError(ValueError):
    """A param is missing, of the wrong type, out of range, or unknown."""


class Field:
    """One decoder entry: JSON ``kind`` (``string``, ``bool``, ``uint32``, ``uint64``,
    ``int32``, ``int64``, ``uuid``, ``string_array``) and whether it is required."""

    __slots__ = ("kind", "required")

    def __init__(self, kind: str, required: bool = False) -> None:
        if kind not in (*_LIMITS, "string", "bool", "uuid", "string_array"):
            raise ValueError(f"unknown JSON decoder kind {kind!r}")
        self.kind = kind
        self.required = required


def _decode_value(name: str, kind: str, value: object) -> object:
    if kind == "string":
        if not isinstance(value, str):
            raise DecodeError(f"{name} must be a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise DecodeError(f"{name} must be true or false")
        return value
    if kind == "uuid":
        if not isinstance(value, str):
            raise DecodeError(f"{name} must be a UUID string")
        try:
            return uuid.UUID(value)
        except ValueError:
            raise DecodeError(f"{name} is not a UUID: {value!r}") from None
    if kind == "string_array":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DecodeError(f"{name} must be an array of strings")
        return list(value)
    lo, hi = _LIMITS[kind]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DecodeError(f"{name} must be a {kind}")
    return value


def decode_object(params: object, fields: Mapping[str, Field]) -> dict[str, object]:
    """Decode ``params`` (a JSON object, or ``None`` when nothing is required) by ``fields``.

    Returns only the keys present. Raises :class:`DecodeError` on any fault.
    """
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise DecodeError("params must be an object")
    unknown = set(params) - set(fields)
    if unknown:
        raise DecodeError(f"unknown key(s): {', '.join(sorted(unknown))}")
    out: dict[str, object] = {}
    for name, field in fields.items():
        if name not in params:
            if field.required:
                raise DecodeError(f"{name} is required")
            continue
        out[name] = _decode_value(name, field.kind, params[name])
    return out


def decode_failed() -> RpcError:
    """The error bdev module RPCs answer on a decode failure."""
    return RpcError(INTERNAL_ERROR, DECODE_FAILED_MESSAGE)
