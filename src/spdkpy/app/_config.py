"""JSON configuration files (``-c``/``--json``): reading, validation and the two-pass replay.

The format is SPDK's: ``{"subsystems": [{"subsystem": NAME, "config": [{"method": M, "params":
{...}}, ...]}, ...]}``; other keys at the root are ignored, and an entry of ``config`` may itself
be an array (one JSON-RPC batch). Methods run in two passes: the STARTUP pass before subsystem
init runs the methods allowed at STARTUP; the RUNTIME pass after init runs those allowed only at
RUNTIME. A method of a subsystem this application does not have is skipped with a notice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import final

from spdkpy._log import notice
from spdkpy.errors import ConfigError
from spdkpy.rpc import RpcError, RpcMethod, RpcRegistry, RpcRequest, RpcState

__all__ = [
    "ConfigEntry",
    "JsonConfig",
    "MethodSpec",
    "RpcState",
    "methods_from_registry",
    "replay_config",
]

log = logging.getLogger("spdkpy.app")


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """A method a config entry can name: its handler and the states it is allowed in."""

    name: str
    handler: Callable[[Mapping[str, object] | None], object]
    states: RpcState


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    subsystem: str
    method: str
    params: Mapping[str, object] | None


@final
class JsonConfig:
    """A parsed and validated configuration file."""

    def __init__(self, entries: list[ConfigEntry], source: str) -> None:
        self.entries = entries
        self.source = source

    @classmethod
    def from_file(cls, path: str) -> JsonConfig:
        """Read and validate ``path``; :class:`ConfigError` names the file and the fault."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"cannot read JSON config {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"JSON config {path} is not valid UTF-8: byte {exc.start} cannot be decoded"
            ) from exc
        return cls.from_text(text, path)

    @classmethod
    def from_text(cls, text: str, source: str = "<config>") -> JsonConfig:
        try:
            root = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"JSON config {source} is not valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno}"
            ) from exc
        except (ValueError, RecursionError) as exc:
            # json's other refusals: an integer too long to convert, nesting too deep.
            reason = str(exc).split(":", 1)[0] or type(exc).__name__
            raise ConfigError(f"JSON config {source} is not valid JSON: {reason}") from exc
        if not isinstance(root, dict):
            raise ConfigError(f"JSON config {source}: the root must be an object")
        if "subsystems" not in root:
            log.warning("JSON config %s has no 'subsystems' key; nothing to load", source)
            return cls([], source)
        subsystems = root["subsystems"]
        if not isinstance(subsystems, list):
            raise ConfigError(f"JSON config {source}: 'subsystems' must be an array")
        entries: list[ConfigEntry] = []
        for i, item in enumerate(subsystems):
            if not isinstance(item, dict) or not isinstance(item.get("subsystem"), str):
                raise ConfigError(f"JSON config {source}: subsystems[{i}] needs a 'subsystem' name")
            name = item["subsystem"]
            config = item.get("config")
            if config is None:
                continue
            if not isinstance(config, list):
                raise ConfigError(f"JSON config {source}: config of {name} must be an array")
            for j, entry in enumerate(config):
                batch = entry if isinstance(entry, list) else [entry]
                for call in batch:
                    entries.append(_entry(source, name, j, call))
        return cls(entries, source)


def _entry(source: str, subsystem: str, index: int, call: object) -> ConfigEntry:
    where = f"JSON config {source}: {subsystem} config[{index}]"
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        raise ConfigError(f"{where} needs a 'method' string")
    params = call.get("params")
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"{where}: 'params' of {call['method']} must be an object")
    return ConfigEntry(subsystem, call["method"], params)


def replay_config(
    config: JsonConfig,
    state: RpcState,
    methods: Mapping[str, MethodSpec],
    linked_subsystems: set[str],
    *,
    ignore_errors: bool,
) -> None:
    """Run the entries allowed in ``state`` (one pass); raises :class:`ConfigError` on failure."""
    for entry in config.entries:
        spec = methods.get(entry.method)
        if spec is None:
            if ignore_errors:
                continue
            if entry.subsystem not in linked_subsystems:
                notice(
                    log,
                    "Skipping method %s: subsystem %s is not part of this application",
                    entry.method,
                    entry.subsystem,
                )
                continue
            raise ConfigError(f"Method '{entry.method}' was not found")
        if state not in spec.states:
            continue
        # The RUNTIME pass skips methods allowed in both states: they ran in the STARTUP pass.
        if state is RpcState.RUNTIME and RpcState.STARTUP in spec.states:
            continue
        try:
            spec.handler(entry.params)
        except Exception as exc:
            if ignore_errors:
                log.warning("config method %s failed (ignored): %s", entry.method, exc)
                continue
            raise ConfigError(f"config method {entry.method} failed: {exc}") from exc


def methods_from_registry(registry: RpcRegistry) -> dict[str, MethodSpec]:
    """The registry's methods as config-replay entries.

    A config entry runs its method's handler directly (SPDK replays through a temporary RPC
    server); the handler must answer before it returns, and an error answer fails the entry.
    """
    specs: dict[str, MethodSpec] = {}
    for method in registry:
        specs[method.name] = MethodSpec(method.name, _replayer(method), method.states)
    return specs


def _replayer(method: RpcMethod) -> Callable[[Mapping[str, object] | None], object]:
    def call(params: Mapping[str, object] | None) -> object:
        answer: list[tuple[object, tuple[int, str] | None]] = []
        request = RpcRequest(
            method.name,
            dict(params) if params is not None else None,
            0,
            False,
            lambda _req, value, err: answer.append((value, err)),
        )
        try:
            method.handler(request)
        except RpcError as exc:
            raise ConfigError(f"{exc.message} (code {exc.code})") from exc
        if not answer:
            raise ConfigError(f"method {method.name} did not answer while loading the config")
        value, err = answer[0]
        if err is not None:
            raise ConfigError(f"{err[1]} (code {err[0]})")
        return value

    return call
