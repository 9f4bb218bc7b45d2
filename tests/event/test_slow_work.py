"""The slow-work watchdog names the message or poller that holds a reactor too long."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from spdkpy.env import CpuSet, available_cores
from spdkpy.event import ReactorFramework, reactors_fini, reactors_init
from spdkpy.thread import POLLER_IDLE, Poller, Thread

CORES = CpuSet(sorted(available_cores())[:1])
pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def framework() -> Iterator[ReactorFramework]:
    fw = reactors_init(CORES, slow_work_threshold_us=5_000)
    try:
        yield fw
    finally:
        reactors_fini()


def test_a_slow_message_and_a_slow_poller_are_reported_and_counted(
    framework: ReactorFramework, caplog: pytest.LogCaptureFixture
) -> None:
    app = Thread("app_thread", CpuSet([framework.main_core]))
    pollers: list[Poller] = []

    def dawdling_message() -> None:
        time.sleep(0.06)  # blocks the reactor: exactly what the watchdog is for

    def dawdling_poller() -> int:
        time.sleep(0.06)
        pollers[0].unregister()
        framework.stop()
        return POLLER_IDLE

    def quick_message() -> None:
        pollers.append(app.register_poller(dawdling_poller, period_us=50_000))

    app.send_msg(dawdling_message)
    app.send_msg(quick_message)
    with caplog.at_level(logging.WARNING, logger="spdkpy.reactor"):
        framework.start()
    reports = [r.getMessage() for r in caplog.records if "slow work" in r.getMessage()]
    assert len(reports) == 2, reports
    assert "thread app_thread" in reports[0]
    assert "dawdling_message" in reports[0]
    assert "has run poller " in reports[1]
    assert "dawdling_poller" in reports[1]
    assert "quick_message" not in caplog.text
    assert app.slow_work == 2


def test_the_watchdog_can_be_turned_off() -> None:
    fw = reactors_init(CORES, slow_work_threshold_us=0)
    try:
        app = Thread("app_thread", CpuSet([fw.main_core]))

        def dawdle_then_stop() -> None:
            time.sleep(0.03)
            fw.stop()

        app.send_msg(dawdle_then_stop)
        fw.start()
        assert app.slow_work == 0
    finally:
        reactors_fini()
