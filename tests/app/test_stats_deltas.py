"""Deltas beside totals: windows, clients, and which poller keeps a reactor awake."""

from __future__ import annotations

import pytest

from spdkpy.app._stats_deltas import DeltaTracker, DeltaWindowError


def threads(busy: int, msgs: int) -> dict[str, object]:
    return {
        "tick_rate": 1000,
        "threads": [{"name": "t", "id": 1, "busy": busy, "idle": 0, "messages_run": msgs}],
    }


class Client:
    """Stands for a connection: any weak-referenceable object."""


def test_first_snapshot_counts_from_start_then_from_the_previous_one() -> None:
    tracker = DeltaTracker(start_ticks=100)
    first = tracker.annotate("thread_get_stats", threads(50, 3), 600, None, None)
    assert first["interval_ticks"] == 500
    assert first["threads"][0]["delta"] == {  # type: ignore[index]
        "busy": 50,
        "idle": 0,
        "messages_run": 3,
        "messages_refused": 0,
    }
    second = tracker.annotate("thread_get_stats", threads(80, 10), 900, None, None)
    assert second["interval_ticks"] == 300
    assert second["threads"][0]["delta"]["busy"] == 30  # type: ignore[index]
    assert second["threads"][0]["busy"] == 80  # SPDK's total is untouched  # type: ignore[index]


def test_named_windows_and_clients_are_independent() -> None:
    tracker = DeltaTracker(start_ticks=0)
    a, b = Client(), Client()
    tracker.annotate("thread_get_stats", threads(10, 0), 10, "w", None)
    tracker.annotate("thread_get_stats", threads(20, 0), 20, None, a)
    tracker.annotate("thread_get_stats", threads(30, 0), 30, None, b)
    # a's own previous call is its base, not b's later one
    again = tracker.annotate("thread_get_stats", threads(45, 0), 45, None, a)
    assert again["threads"][0]["delta"]["busy"] == 25  # type: ignore[index]
    named = tracker.annotate("thread_get_stats", threads(50, 0), 50, "w", None)
    assert named["interval_ticks"] == 40
    # a fresh client falls back to the shared default window (the last un-named call)
    fresh = tracker.annotate("thread_get_stats", threads(60, 0), 60, None, Client())
    assert fresh["threads"][0]["delta"]["busy"] == 15  # type: ignore[index]


def test_a_reactor_that_never_slept_names_the_busy_pollers_keeping_it_awake() -> None:
    def reactors(busy: int, sleeps: int, spin_busy: int) -> dict[str, object]:
        return {
            "reactors": [
                {
                    "lcore": 0,
                    "busy": busy,
                    "idle": 0,
                    "sleeps": sleeps,
                    "events_run": 0,
                    "active_pollers": [
                        {
                            "thread": "g",
                            "thread_id": 2,
                            "name": "spin",
                            "id": 1,
                            "busy_count": spin_busy,
                        },
                        {"thread": "g", "thread_id": 2, "name": "calm", "id": 2, "busy_count": 0},
                    ],
                }
            ]
        }

    tracker = DeltaTracker(start_ticks=0)
    tracker.annotate("framework_get_reactors", reactors(10, 5, 1), 10, None, None)
    spinning = tracker.annotate("framework_get_reactors", reactors(90, 5, 40), 100, None, None)
    reactor = spinning["reactors"][0]  # type: ignore[index]
    assert reactor["mode"] == "spinning"
    assert reactor["awake_by"] == ["g/spin"]
    sleeping = tracker.annotate("framework_get_reactors", reactors(95, 9, 41), 200, None, None)
    assert sleeping["reactors"][0]["mode"] == "sleeping"  # type: ignore[index]
    assert sleeping["reactors"][0]["awake_by"] == []  # type: ignore[index]


@pytest.mark.parametrize("params", [{"window": ""}, {"window": 3}, {"x": 1}, [1], {}])
def test_only_a_named_window_is_accepted_as_params(params: object) -> None:
    with pytest.raises(DeltaWindowError):
        DeltaTracker.window_of(params)
    assert DeltaTracker.window_of(None) is None
    assert DeltaTracker.window_of({"window": "top"}) == "top"
