"""Cores: -m validation (deviation 2), -p parsing, and pinned OS threads (SPEC §1, §5.3, §5.4)."""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator

import pytest

from spdkpy.env import (
    MAX_LCORES,
    CpuSet,
    available_cores,
    current_core,
    launch_pinned,
    parse_app_mask,
    parse_main_core,
    pin_current_thread,
    refresh_available_cores,
    wait_all,
)
from spdkpy.errors import InputError, InternalError, InvalidCpuMaskError, InvalidStateError

AVAILABLE = available_cores()
# Enough cores to show one thread per core without launching hundreds on big machines.
SOME_CORES = [c for c in AVAILABLE if c < MAX_LCORES][:8]


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    wait_all()  # a test that leaves a failed or running pinned thread fails here


def allowed_cpus_of_calling_thread() -> str:
    """The kernel's view of this OS thread's affinity, not Python's."""
    path = f"/proc/self/task/{threading.get_native_id()}/status"
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list in {path}")


def check_one_line(err: InvalidCpuMaskError, mask: str) -> str:
    text = str(err)
    assert "\n" not in text
    assert mask[:60] in text
    assert f"available cores: {AVAILABLE.format_list()}" in text
    assert err.mask == mask
    return text


# --- -m --------------------------------------------------------------------------------------


def test_available_cores_is_this_process_affinity() -> None:
    # The test process's main thread is never pinned, so its affinity is the process's.
    assert set(AVAILABLE) == {c for c in os.sched_getaffinity(0) if c < 1024}
    assert AVAILABLE


def test_mask_of_available_cores_is_accepted() -> None:
    usable = CpuSet(SOME_CORES)
    assert parse_app_mask(usable.format()) == usable
    assert parse_app_mask("0x" + usable.format()) == usable
    assert parse_app_mask(usable.format_list()) == usable
    assert parse_app_mask(f"[{SOME_CORES[0]}]") == CpuSet([SOME_CORES[0]])


def test_0xffffffff_names_the_missing_cores() -> None:
    missing = CpuSet(range(32)) - AVAILABLE
    if not missing:
        pytest.skip("this machine really has cores 0-31")
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask("0xFFFFFFFF")
    text = check_one_line(info.value, "0xFFFFFFFF")
    assert missing.format_list() in text
    assert "not available" in text


def test_1025_core_list_is_one_line() -> None:
    mask = "[" + ",".join(str(c) for c in range(1025)) + "]"
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask(mask)
    text = check_one_line(info.value, mask)
    assert "Core number 1024 is out of range" in text
    assert len(text) < 300


def test_core_beyond_max_lcores() -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask("[200]")
    text = check_one_line(info.value, "[200]")
    assert "[200]" in info.value.reason
    assert "128" in text


def test_wide_hex_mask_names_cores_beyond_limit() -> None:
    mask = "f" * 64  # cores 0-255
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask(mask)
    assert "[128-255]" in check_one_line(info.value, mask)


@pytest.mark.parametrize("mask", ["0x", "0", "0x0,0", ","])
def test_empty_mask(mask: str) -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask(mask)
    assert "the mask selects no core" in check_one_line(info.value, mask)


@pytest.mark.parametrize("mask", ["-l 0", "--lcores=0", " -c 0x1"])
def test_eal_arguments_rejected(mask: str) -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask(mask)
    assert "EAL" in check_one_line(info.value, mask)


@pytest.mark.parametrize(
    ("mask", "fault"), [("0xg", "'g'"), ("[3-1]", "3-1"), ("[0", "Unexpected end")]
)
def test_malformed_mask_carries_available_cores(mask: str, fault: str) -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask(mask)
    assert fault in check_one_line(info.value, mask)


def test_long_garbage_is_one_short_line() -> None:
    mask = "0x" + "z\n" * 400
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask(mask)
    text = str(info.value)
    assert "\n" not in text
    assert "…" in text
    assert len(text) < 300
    assert info.value.mask == mask


def test_explicit_available_set() -> None:
    assert parse_app_mask("0x5", available=CpuSet([0, 2, 3])) == CpuSet([0, 2])
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_app_mask("[0-3]", available=CpuSet([0, 2]))
    assert "cores [1,3] are not available" in str(info.value)
    assert "available cores: [0,2]" in str(info.value)


# --- -p --------------------------------------------------------------------------------------

MASK = CpuSet([1, 2, 8])


@pytest.mark.parametrize(
    ("text", "core"),
    [("2", 2), ("0x2", 2), ("0X8", 8), ("010", 8), ("+2", 2), (" 8\t", 8), ("0", 1), ("-0", 1)],
)
def test_main_core_accepted(text: str, core: int) -> None:
    # "0" (and "-0") mean "the lowest core of the mask": SPDK passes --main-lcore only above 0.
    assert parse_main_core(text, MASK) == core


@pytest.mark.parametrize(
    "text", ["", " ", "abc", "0x", "08", "1_0", "2.0", "2a", "0x-2", "\u0662", "--2"]
)
def test_main_core_malformed(text: str) -> None:
    with pytest.raises(InputError, match="invalid main core") as info:
        parse_main_core(text, MASK)
    assert not isinstance(info.value, InvalidCpuMaskError)


@pytest.mark.parametrize("text", ["-1", "-0x2"])
def test_main_core_negative(text: str) -> None:
    with pytest.raises(InputError, match="negative"):
        parse_main_core(text, MASK)


@pytest.mark.parametrize(("text", "core"), [("3", 3), ("0x3", 3), ("07", 7), ("1023", 1023)])
def test_main_core_not_in_mask(text: str, core: int) -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_main_core(text, MASK)
    assert f"main core {core} is not in the core mask" in str(info.value)
    assert "[1-2,8]" in str(info.value)


def test_main_core_huge_number_is_one_line() -> None:
    with pytest.raises(InvalidCpuMaskError) as info:
        parse_main_core("9" * 500, MASK)
    assert "\n" not in str(info.value)
    assert len(str(info.value)) < 300


# --- pinned threads --------------------------------------------------------------------------


def test_launched_threads_are_pinned_and_block_signals() -> None:
    seen: dict[int, tuple[str, int | None, bool]] = {}
    lock = threading.Lock()

    def body() -> None:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        record = (
            allowed_cpus_of_calling_thread(),
            current_core(),
            {signal.SIGINT, signal.SIGTERM} <= blocked,
        )
        with lock:
            seen[threading.get_native_id()] = record

    threads = [launch_pinned(core, body, name=f"t{core}") for core in SOME_CORES]
    assert [t.name for t in threads] == [f"t{c}" for c in SOME_CORES]
    wait_all()
    assert sorted(seen.values(), key=lambda r: r[1] or 0) == [
        (str(core), core, True) for core in SOME_CORES
    ]
    # The launching thread is neither pinned nor recorded, and its signals stay deliverable.
    assert current_core() is None
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_current_core_is_none_on_other_threads() -> None:
    seen: list[int | None] = []
    t = threading.Thread(target=lambda: seen.append(current_core()))
    t.start()
    t.join()
    assert seen == [None]


def test_pin_current_thread() -> None:
    core = SOME_CORES[-1]
    seen: list[tuple[str, int | None]] = []

    def body() -> None:
        pin_current_thread(core)
        seen.append((allowed_cpus_of_calling_thread(), current_core()))

    # A helper thread, so that pinning does not shrink the test process's main thread.
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [(str(core), core)]
    assert current_core() is None


def test_second_launch_on_same_core_is_refused() -> None:
    core = SOME_CORES[0]
    release = threading.Event()
    launch_pinned(core, release.wait)
    try:
        with pytest.raises(InvalidStateError, match=f"core {core}"):
            launch_pinned(core, lambda: None)
    finally:
        release.set()
    wait_all()
    launch_pinned(core, lambda: None)  # forgotten after wait_all, so the core is free again
    wait_all()


@pytest.mark.parametrize("core", [-1, MAX_LCORES, 1000])
def test_launch_outside_lcore_range(core: int) -> None:
    with pytest.raises(InvalidCpuMaskError, match="outside the lcore range"):
        launch_pinned(core, lambda: None)
    with pytest.raises(InvalidCpuMaskError, match="outside the lcore range"):
        pin_current_thread(core)


def test_launch_on_unavailable_core() -> None:
    original = available_cores()
    refresh_available_cores([SOME_CORES[0]])
    try:
        other = SOME_CORES[0] + 1
        with pytest.raises(InvalidCpuMaskError, match=f"core {other} is not available") as info:
            launch_pinned(other, lambda: None)
        assert "\n" not in str(info.value)
        with pytest.raises(InvalidCpuMaskError, match="not available"):
            pin_current_thread(other)
    finally:
        refresh_available_cores(original)
    assert available_cores() == original


def test_wait_all_reraises_first_failure() -> None:
    core = SOME_CORES[0]

    def boom() -> None:
        raise ValueError("boom")

    launch_pinned(core, boom)
    with pytest.raises(InternalError) as info:
        wait_all()
    assert str(info.value) == f"pinned thread on core {core} failed: ValueError('boom')"
    assert isinstance(info.value.__cause__, ValueError)
    wait_all()  # the failure was reported once and forgotten


def test_wait_all_reports_every_failure() -> None:
    if len(SOME_CORES) < 2:
        pytest.skip("needs two available cores")
    first_done = threading.Event()

    def fail_first() -> None:
        try:
            raise KeyError("first")
        finally:
            first_done.set()

    def fail_second() -> None:
        first_done.wait()
        raise RuntimeError("second")

    launch_pinned(SOME_CORES[0], fail_first)
    launch_pinned(SOME_CORES[1], fail_second)
    with pytest.raises(InternalError, match="KeyError") as info:
        wait_all()
    assert any("RuntimeError('second')" in note for note in info.value.__notes__)


def test_wait_all_from_launched_thread_is_refused() -> None:
    errors: list[BaseException] = []

    def body() -> None:
        try:
            wait_all()
        except InvalidStateError as exc:
            errors.append(exc)

    launch_pinned(SOME_CORES[0], body)
    wait_all()
    assert len(errors) == 1


def test_pin_failure_is_reported_by_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, cpus: object) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    ran: list[bool] = []
    with pytest.raises(InvalidCpuMaskError, match="cannot pin a thread to core") as info:
        launch_pinned(SOME_CORES[0], lambda: ran.append(True))
    assert isinstance(info.value.__cause__, OSError)
    assert ran == []
    monkeypatch.undo()
    launch_pinned(SOME_CORES[0], lambda: ran.append(True))  # the core was released
    wait_all()
    assert ran == [True]
