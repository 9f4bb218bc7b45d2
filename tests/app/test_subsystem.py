"""Subsystem ordering, init and fini (SPEC §6.6, SPDK's ``lib/init/subsystem.c``).

The registry is driven directly: ``init``/``fini`` callbacks may complete at once or later, and
these tests complete them by hand to check each step.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import pytest

from spdkpy.app import Subsystem, SubsystemRegistry
from spdkpy.errors import ConfigError

# SPEC §6.6's table, in SPDK's registration order.
SPDK_TABLE: list[tuple[str, tuple[str, ...]]] = [
    ("iobuf", ()),
    ("accel", ("iobuf",)),
    ("keyring", ()),
    ("vmd", ()),
    ("sock", ()),
    ("scheduler", ()),
    ("bdev", ("accel", "keyring", "vmd", "sock", "iobuf")),
    ("nvmf", ("bdev", "keyring", "sock", "accel", "iobuf")),
]


class Recorder:
    """Subsystems whose init and fini record themselves and complete at once or on demand."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.pending_init: dict[str, Callable[[int], None]] = {}
        self.pending_fini: dict[str, Callable[[], None]] = {}
        self.init_rc: dict[str, int] = {}
        self.async_init: set[str] = set()
        self.async_fini: set[str] = set()

    def subsystem(
        self,
        name: str,
        depends_on: tuple[str, ...] = (),
        *,
        with_init: bool = True,
        with_fini: bool = True,
    ) -> Subsystem:
        def init(done: Callable[[int], None]) -> None:
            self.events.append(f"init {name}")
            if name in self.async_init:
                self.pending_init[name] = done
            else:
                done(self.init_rc.get(name, 0))

        def fini(done: Callable[[], None]) -> None:
            self.events.append(f"fini {name}")
            if name in self.async_fini:
                self.pending_fini[name] = done
            else:
                done()

        return Subsystem(
            name,
            init=init if with_init else None,
            fini=fini if with_fini else None,
            depends_on=depends_on,
        )


def _registry(rec: Recorder, table: list[tuple[str, tuple[str, ...]]]) -> SubsystemRegistry:
    reg = SubsystemRegistry()
    for name, deps in table:
        reg.register(rec.subsystem(name, deps))
    return reg


def _names(subsystems: list[Subsystem]) -> list[str]:
    return [s.name for s in subsystems]


# ----------------------------------------------------------------------------- ordering


def test_without_dependencies_registration_order_is_kept() -> None:
    rec = Recorder()
    reg = _registry(rec, [(n, ()) for n in ("c", "a", "b", "z")])
    assert _names(reg.sorted()) == ["c", "a", "b", "z"]


def test_spdk_table_in_registration_order() -> None:
    reg = _registry(Recorder(), SPDK_TABLE)
    assert _names(reg.sorted()) == [name for name, _ in SPDK_TABLE]


def test_spdk_table_registered_in_reverse() -> None:
    reg = _registry(Recorder(), list(reversed(SPDK_TABLE)))
    # Pass 1 takes every subsystem without a pending dependency, in registration order; accel,
    # bdev and nvmf each need one more pass.
    expected = ["scheduler", "sock", "vmd", "keyring", "iobuf", "accel", "bdev", "nvmf"]
    assert _names(reg.sorted()) == expected


def test_a_subsystem_moved_earlier_in_a_pass_counts_for_the_rest_of_that_pass() -> None:
    # SPDK's subsystem_sort moves each subsystem into the sorted list at once, so "c" (after "a"
    # in registration order) is sorted in the same pass as "a", ahead of "b".
    reg = _registry(Recorder(), [("a", ()), ("c", ("a",)), ("b", ())])
    assert _names(reg.sorted()) == ["a", "c", "b"]


def test_dependency_registered_later_waits_for_the_next_pass() -> None:
    reg = _registry(Recorder(), [("c", ("a",)), ("b", ()), ("a", ())])
    assert _names(reg.sorted()) == ["b", "a", "c"]


def test_duplicate_name_is_refused() -> None:
    reg = SubsystemRegistry()
    reg.register(Subsystem("bdev"))
    with pytest.raises(ConfigError, match="already registered"):
        reg.register(Subsystem("bdev"))
    assert _names(list(reg.registered)) == ["bdev"]
    assert reg.get("bdev") is not None
    assert reg.get("nvmf") is None


def test_missing_dependency_fails_init_with_negative_rc(app_log) -> None:
    rec = Recorder()
    reg = _registry(rec, [("a", ()), ("bdev", ("a", "accel"))])
    with pytest.raises(ConfigError, match="subsystem bdev dependency accel is missing"):
        reg.sorted()
    results: list[int] = []
    reg.init(results.append)
    assert len(results) == 1
    assert results[0] < 0
    assert results[0] == -errno.EINVAL
    assert rec.events == []  # nothing was initialised
    assert any("subsystem bdev dependency accel is missing" in m for m in app_log.at(logging.ERROR))


def test_cycle_fails_init_with_negative_rc(app_log) -> None:
    rec = Recorder()
    reg = _registry(rec, [("ok", ()), ("x", ("y",)), ("y", ("x",))])
    with pytest.raises(ConfigError, match="cycle"):
        reg.sorted()
    results: list[int] = []
    reg.init(results.append)
    assert len(results) == 1
    assert results[0] < 0
    assert rec.events == []
    errors = app_log.at(logging.ERROR)
    assert any("cycle" in m and "x" in m and "y" in m for m in errors), errors


def test_self_dependency_is_a_cycle() -> None:
    reg = _registry(Recorder(), [("x", ("x",))])
    with pytest.raises(ConfigError, match="cycle"):
        reg.sorted()


# ----------------------------------------------------------------------------- init


def test_init_runs_in_sorted_order_then_calls_back_0() -> None:
    rec = Recorder()
    reg = _registry(rec, SPDK_TABLE)
    results: list[int] = []
    reg.init(results.append)
    assert results == [0]
    assert rec.events == [f"init {name}" for name, _ in SPDK_TABLE]
    assert _names(reg.initialized) == [name for name, _ in SPDK_TABLE]


def test_subsystem_without_init_counts_as_done() -> None:
    rec = Recorder()
    reg = SubsystemRegistry()
    reg.register(rec.subsystem("a"))
    reg.register(rec.subsystem("b", with_init=False))
    reg.register(rec.subsystem("c", ("b",)))
    results: list[int] = []
    reg.init(results.append)
    assert results == [0]
    assert rec.events == ["init a", "init c"]
    assert _names(reg.initialized) == ["a", "b", "c"]


def test_empty_registry_initialises_at_once() -> None:
    results: list[int] = []
    SubsystemRegistry().init(results.append)
    assert results == [0]


def test_async_init_waits_for_each_completion() -> None:
    rec = Recorder()
    rec.async_init = {"a", "b"}
    reg = _registry(rec, [("a", ()), ("b", ("a",)), ("c", ())])
    results: list[int] = []
    reg.init(results.append)
    assert rec.events == ["init a"]
    assert results == []
    rec.pending_init.pop("a")(0)
    assert rec.events == ["init a", "init b"]
    assert results == []
    rec.pending_init.pop("b")(0)
    assert rec.events == ["init a", "init b", "init c"]
    assert results == [0]
    assert _names(reg.initialized) == ["a", "b", "c"]


def test_init_completed_twice_is_logged_and_ignored(app_log) -> None:
    rec = Recorder()
    rec.async_init = {"a"}
    reg = _registry(rec, [("a", ()), ("b", ())])
    results: list[int] = []
    reg.init(results.append)
    done = rec.pending_init.pop("a")
    done(0)
    done(0)
    assert results == [0]
    assert rec.events == ["init a", "init b"]
    assert any("twice" in m for m in app_log.at(logging.ERROR))


def test_init_already_running_is_refused() -> None:
    from spdkpy.errors import InvalidStateError

    rec = Recorder()
    rec.async_init = {"a"}
    reg = _registry(rec, [("a", ())])
    reg.init(lambda rc: None)
    with pytest.raises(InvalidStateError):
        reg.init(lambda rc: None)


def test_failed_init_stops_the_sequence(app_log) -> None:
    rec = Recorder()
    rec.init_rc = {"b": -errno.EIO}
    reg = _registry(rec, [("a", ()), ("b", ()), ("c", ())])
    results: list[int] = []
    reg.init(results.append)
    assert results == [-errno.EIO]
    assert rec.events == ["init a", "init b"]
    assert _names(reg.initialized) == ["a"]
    assert "Init subsystem b failed" in app_log.at(logging.ERROR)


# ----------------------------------------------------------------------------- fini


def test_fini_runs_in_reverse_of_init() -> None:
    rec = Recorder()
    reg = _registry(rec, [("a", ()), ("c", ("a",)), ("b", ())])
    reg.init(lambda rc: None)
    rec.events.clear()
    finished: list[bool] = []
    reg.fini(lambda: finished.append(True))
    assert rec.events == ["fini b", "fini c", "fini a"]
    assert finished == [True]
    assert reg.initialized == []


def test_fini_skips_subsystems_without_fini() -> None:
    rec = Recorder()
    reg = SubsystemRegistry()
    reg.register(rec.subsystem("a"))
    reg.register(rec.subsystem("b", with_fini=False))
    reg.register(rec.subsystem("c"))
    reg.init(lambda rc: None)
    rec.events.clear()
    finished: list[bool] = []
    reg.fini(lambda: finished.append(True))
    assert rec.events == ["fini c", "fini a"]
    assert finished == [True]


def test_async_fini_waits_for_each_completion() -> None:
    rec = Recorder()
    rec.async_fini = {"b", "a"}
    reg = _registry(rec, [("a", ()), ("b", ()), ("c", ())])
    reg.init(lambda rc: None)
    rec.events.clear()
    finished: list[bool] = []
    reg.fini(lambda: finished.append(True))
    assert rec.events == ["fini c", "fini b"]
    assert finished == []
    rec.pending_fini.pop("b")()
    assert rec.events == ["fini c", "fini b", "fini a"]
    assert finished == []
    rec.pending_fini.pop("a")()
    assert finished == [True]


def test_fini_after_failed_init_tears_down_only_what_was_initialised() -> None:
    rec = Recorder()
    rec.init_rc = {"c": -errno.ENOMEM}
    reg = _registry(rec, [("a", ()), ("b", ()), ("c", ()), ("d", ())])
    results: list[int] = []
    reg.init(results.append)
    assert results == [-errno.ENOMEM]
    rec.events.clear()
    finished: list[bool] = []
    reg.fini(lambda: finished.append(True))
    assert rec.events == ["fini b", "fini a"]
    assert finished == [True]


def test_fini_before_any_init_calls_back_at_once() -> None:
    rec = Recorder()
    reg = _registry(rec, [("a", ()), ("b", ())])
    finished: list[bool] = []
    reg.fini(lambda: finished.append(True))
    assert finished == [True]
    assert rec.events == []


def test_fini_during_async_init_interrupts_it() -> None:
    """A stop while a subsystem's init is still running (SPDK: ``g_subsystems_init_interrupted``):
    the initialised ones are torn down, the late completion is ignored, init never calls back."""
    rec = Recorder()
    rec.async_init = {"b"}
    reg = _registry(rec, [("a", ()), ("b", ()), ("c", ())])
    results: list[int] = []
    reg.init(results.append)
    assert rec.events == ["init a", "init b"]
    finished: list[bool] = []
    reg.fini(lambda: finished.append(True))
    assert rec.events == ["init a", "init b", "fini a"]
    assert finished == [True]
    rec.pending_init.pop("b")(0)  # the late completion
    assert rec.events == ["init a", "init b", "fini a"]
    assert results == []
    assert reg.initialized == []
