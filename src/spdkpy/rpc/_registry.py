"""The JSON-RPC method registry, RPC states and the request object handlers answer through.

A registry belongs to one application (no module-level method list): each layer offers a
``register_*_methods(registry)`` function and the app calls them. A handler gets an
:class:`RpcRequest` and must answer exactly once, with :meth:`RpcRequest.result` or
:meth:`RpcRequest.error`, at once or later, from any OS thread.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import final

from spdkpy.errors import ConfigError, SpdkpyError
from spdkpy.rpc._codec import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    STATE_ERROR,
    JsonId,
)

__all__ = ["RpcError", "RpcMethod", "RpcRegistry", "RpcRequest", "RpcState"]

log = logging.getLogger("spdkpy.rpc")


class RpcState(enum.Flag):
    """When a method may run (``SPDK_RPC_STARTUP`` = 0x1, ``SPDK_RPC_RUNTIME`` = 0x2)."""

    STARTUP = 1
    RUNTIME = 2


STARTUP_MESSAGE = (
    "Method may only be called after framework is initialized using framework_start_init RPC."
)
RUNTIME_MESSAGE = (
    "Method may only be called before framework is initialized. Use --wait-for-rpc command "
    "line parameter and then issue this RPC before the framework_start_init RPC."
)


class RpcError(SpdkpyError):
    """Raise from a handler to answer with a JSON-RPC error (``code``, ``message``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[["RpcRequest"], None]


@dataclass(frozen=True, slots=True)
class RpcMethod:
    """A registered method: its handler and the states it may run in."""

    name: str
    handler: Handler
    states: RpcState
    alias_of: str | None = None


@final
class RpcRequest:
    """One call of a method. Answer exactly once; later answers are dropped with an error log."""

    __slots__ = (
        "_answered",
        "_lock",
        "_send",
        "client",
        "id",
        "is_notification",
        "method",
        "params",
    )

    def __init__(
        self,
        method: str,
        params: dict[str, object] | list[object] | None,
        id: JsonId,
        is_notification: bool,
        send: Callable[[RpcRequest, object, tuple[int, str] | None], None],
        client: object = None,
    ) -> None:
        self.method = method
        self.params = params
        self.id = id
        self.is_notification = is_notification
        self._send = send
        self.client = client
        """An opaque, weak-referenceable key of the connection the call came on (or ``None``)."""
        self._answered = False
        self._lock = threading.Lock()

    def _claim(self) -> bool:
        with self._lock:
            if self._answered:
                log.error("method %s answered more than once; later answer dropped", self.method)
                return False
            self._answered = True
            return True

    @property
    def answered(self) -> bool:
        return self._answered

    def result(self, value: object) -> None:
        """Answer with a result (callable from any OS thread)."""
        if self._claim():
            self._send(self, value, None)

    def error(self, code: int, message: str) -> None:
        """Answer with an error ``code`` and ``message``."""
        if self._claim():
            self._send(self, None, (code, message))

    # ------------------------------------------------------------------ param helpers

    def no_params(self) -> bool:
        """For methods that take none: answers -32602 and returns ``False`` if some were given
        (SPDK's ``if (params != NULL)``: an empty ``{}`` or ``[]`` counts as given)."""
        if self.params is not None:
            self.error(INVALID_PARAMS, f"{self.method} requires no parameters")
            return False
        return True

    def object_params(self) -> dict[str, object]:
        """The params as an object (``{}`` when absent); raises :class:`RpcError` otherwise."""
        if self.params is None:
            return {}
        if not isinstance(self.params, dict):
            raise RpcError(INVALID_PARAMS, "Invalid parameters")
        return self.params


@final
class RpcRegistry:
    """Methods by name, the current RPC state and the optional allowlist."""

    def __init__(self) -> None:
        self._methods: dict[str, RpcMethod] = {}
        self.state = RpcState.STARTUP
        self.allowlist: frozenset[str] | None = None
        self._warned_aliases: set[str] = set()

    def register(self, name: str, handler: Handler, states: RpcState) -> None:
        """Add a method; a second registration of one name is a :class:`ConfigError`."""
        if name in self._methods:
            raise ConfigError(f"RPC method {name} is already registered")
        self._methods[name] = RpcMethod(name, handler, states)

    def register_alias(self, alias: str, name: str) -> None:
        """A deprecated name for ``name`` (warned about once when used)."""
        target = self._methods[name]
        self._methods[alias] = RpcMethod(alias, target.handler, target.states, alias_of=name)

    def __iter__(self) -> Iterator[RpcMethod]:
        return iter(self._methods.values())

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def get(self, name: str) -> RpcMethod | None:
        """The method, or ``None`` if it does not exist or is not allowed."""
        method = self._methods.get(name)
        if method is None:
            return None
        real = method.alias_of or name
        if self.allowlist is not None and real not in self.allowlist:
            return None
        return method

    def names(self, *, current: bool = False, include_aliases: bool = False) -> list[str]:
        """What ``rpc_get_methods`` lists."""
        out: list[str] = []
        for method in self._methods.values():
            if method.alias_of is not None and not include_aliases:
                continue
            if self.get(method.name) is None:
                continue
            if current and not (method.states & self.state):
                continue
            out.append(method.name)
        return out

    def dispatch(self, request: RpcRequest) -> None:
        """Look the method up, check state, and run its handler (SPEC §7.3 dispatch)."""
        method = self.get(request.method)
        if method is None:
            request.error(METHOD_NOT_FOUND, "Method not found")
            return
        if method.alias_of is not None and method.name not in self._warned_aliases:
            self._warned_aliases.add(method.name)
            log.warning("RPC method %s is deprecated; use %s", method.name, method.alias_of)
        if (method.states & self.state) != self.state:
            message = STARTUP_MESSAGE if self.state is RpcState.STARTUP else RUNTIME_MESSAGE
            request.error(STATE_ERROR, message)
            return
        try:
            method.handler(request)
        except RpcError as exc:
            if not request.answered:
                request.error(exc.code, exc.message)
            else:
                log.error("method %s raised after answering: %s", request.method, exc)
        except SpdkpyError as exc:
            if not request.answered:
                request.error(-exc.errno, str(exc))
        except Exception as exc:  # a bug in a handler must not take the server down
            log.error("method %s failed: %r", request.method, exc)
            if not request.answered:
                request.error(INTERNAL_ERROR, f"{request.method} failed: {exc}")
