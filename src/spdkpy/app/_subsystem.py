"""Subsystems with dependencies, initialised in order and torn down in reverse (``lib/init``).

A subsystem's ``init`` and ``fini`` may finish later: ``init(done)`` must call ``done(rc)`` and
``fini(done)`` must call ``done()``, on the app thread, at once or from a later message. The order
is SPDK's: repeatedly move, in registration order, every subsystem whose dependencies have all been
moved already, so the result depends only on registration order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import final

from spdkpy.errors import ConfigError, InvalidStateError

__all__ = ["Subsystem", "SubsystemRegistry"]

log = logging.getLogger("spdkpy.app")

InitFn = Callable[[Callable[[int], None]], None]
FiniFn = Callable[[Callable[[], None]], None]
ConfigFn = Callable[[], list[dict[str, object]] | None]


@dataclass(frozen=True, slots=True)
class Subsystem:
    """One subsystem: every field but ``name`` is optional, as in SPDK."""

    name: str
    init: InitFn | None = None
    fini: FiniFn | None = None
    write_config_json: ConfigFn | None = None
    depends_on: tuple[str, ...] = field(default=())


@final
class SubsystemRegistry:
    """The registered subsystems and the progress of their init and fini."""

    def __init__(self) -> None:
        self._registered: list[Subsystem] = []
        self.initialized: list[Subsystem] = []
        self._sorted: list[Subsystem] = []
        self._init_cb: Callable[[int], None] | None = None
        self._fini_cb: Callable[[], None] | None = None
        self._fini_stack: list[Subsystem] = []
        self._init_generation = 0  # bumped by fini(), so late init completions are ignored

    def register(self, subsystem: Subsystem) -> None:
        if any(s.name == subsystem.name for s in self._registered):
            raise ConfigError(f"subsystem {subsystem.name} is already registered")
        self._registered.append(subsystem)

    def get(self, name: str) -> Subsystem | None:
        return next((s for s in self._registered if s.name == name), None)

    @property
    def registered(self) -> Sequence[Subsystem]:
        return tuple(self._registered)

    def sorted(self) -> list[Subsystem]:
        """Initialisation order; :class:`ConfigError` if a dependency is missing."""
        names = {s.name for s in self._registered}
        for s in self._registered:
            for dep in s.depends_on:
                if dep not in names:
                    raise ConfigError(f"subsystem {s.name} dependency {dep} is missing")
        remaining = list(self._registered)
        done: list[Subsystem] = []
        done_names: set[str] = set()
        while remaining:
            # As SPDK's subsystem_sort: a subsystem moved earlier in this same pass already
            # counts as sorted for the ones after it.
            still: list[Subsystem] = []
            for s in remaining:
                if all(d in done_names for d in s.depends_on):
                    done.append(s)
                    done_names.add(s.name)
                else:
                    still.append(s)
            if len(still) == len(remaining):
                cycle = ", ".join(s.name for s in remaining)
                raise ConfigError(f"subsystems depend on each other in a cycle: {cycle}")
            remaining = still
        return done

    def init(self, cb: Callable[[int], None]) -> None:
        """Initialise every subsystem in order; ``cb(rc)`` gets 0 or the first failure."""
        if self._init_cb is not None:
            raise InvalidStateError("subsystem init is already running")
        try:
            self._sorted = self.sorted()
        except ConfigError as exc:
            log.error("%s", exc)
            cb(-exc.errno)
            return
        self.initialized = []
        self._init_cb = cb
        self._init_next(0)

    def _init_next(self, rc: int) -> None:
        cb = self._init_cb
        assert cb is not None
        if rc:
            failed = self._sorted[len(self.initialized)].name
            log.error("Init subsystem %s failed", failed)
            self._init_cb = None
            cb(rc)
            return
        while len(self.initialized) < len(self._sorted):
            subsystem = self._sorted[len(self.initialized)]
            if subsystem.init is None:
                self.initialized.append(subsystem)
                continue
            subsystem.init(self._make_init_done(subsystem))
            return
        self._init_cb = None
        cb(0)

    def _make_init_done(self, subsystem: Subsystem) -> Callable[[int], None]:
        called = False
        generation = self._init_generation

        def done(rc: int) -> None:
            nonlocal called
            if called:
                log.error("subsystem %s completed its init twice", subsystem.name)
                return
            called = True
            if generation != self._init_generation or self._init_cb is None:
                # fini() interrupted the init (SPDK: g_subsystems_init_interrupted): ignore it.
                log.info("init of subsystem %s completed after fini started", subsystem.name)
                return
            if rc == 0:
                self.initialized.append(subsystem)
            self._init_next(rc)

        return done

    def fini(self, cb: Callable[[], None]) -> None:
        """Tear down, in reverse, the subsystems that were initialised; then ``cb()``."""
        self._init_generation += 1
        self._init_cb = None  # an init still running is interrupted; its completion is ignored
        self._fini_stack = list(self.initialized)
        self._fini_cb = cb
        self._fini_next()

    def _fini_next(self) -> None:
        while self._fini_stack:
            subsystem = self._fini_stack.pop()
            self.initialized.remove(subsystem)
            if subsystem.fini is not None:
                subsystem.fini(self._fini_next)
                return
        cb = self._fini_cb
        self._fini_cb = None
        if cb is not None:
            cb()
