"""``spdkpy top``'s tables are pure functions of two snapshots: CPU % and rates are deltas."""

from __future__ import annotations

import pytest

from spdkpy.apps.top import Snapshot, build_views, sort_view
from spdkpy.errors import InputError


def snapshot(taken: float, busy: int, idle: int, runs: int, msgs: int) -> Snapshot:
    return Snapshot(
        taken=taken,
        reactors={
            "tick_rate": 1_000_000_000,
            "reactors": [
                {
                    "lcore": 0,
                    "busy": busy,
                    "idle": idle,
                    "sleeps": runs,
                    "sleeping": False,
                    "lw_threads": [{"name": "app_thread", "id": 1, "cpumask": "1", "elapsed": 0}],
                },
                {"lcore": 1, "busy": 0, "idle": idle, "sleeping": True, "lw_threads": []},
            ],
        },
        threads={
            "tick_rate": 1000,
            "threads": [
                {
                    "name": "app_thread",
                    "id": 1,
                    "cpumask": "1",
                    "busy": busy,
                    "idle": idle,
                    "messages_run": msgs,
                    "active_pollers_count": 1,
                    "timed_pollers_count": 0,
                    "paused_pollers_count": 0,
                }
            ],
        },
        pollers={
            "tick_rate": 1_000_000_000,
            "threads": [
                {
                    "name": "app_thread",
                    "id": 1,
                    "active_pollers": [
                        {
                            "name": "p",
                            "id": 1,
                            "state": "waiting",
                            "run_count": runs,
                            "busy_count": runs // 2,
                        }
                    ],
                    "timed_pollers": [],
                    "paused_pollers": [],
                }
            ],
        },
    )


def test_percentages_and_rates_come_from_deltas_not_totals() -> None:
    # Totals say 90 % busy; in the 2 s interval (2000 ticks at 1000 ticks/s) the thread was
    # busy 500 ticks, 25 %, and its reactor 250 of 1000 polled ticks, 25 % too.
    before = snapshot(10.0, busy=900, idle=100, runs=1000, msgs=50)
    after = snapshot(12.0, busy=900 + 500, idle=100 + 1500, runs=1000 + 400, msgs=50 + 20)
    views = build_views(before, after)
    threads = views["threads"]
    row = dict(zip(threads.columns, threads.rows[0], strict=True))
    assert row["busy %"] == 25.0
    assert row["msgs/s"] == 10
    assert row["core"] == 0
    pollers = views["pollers"]
    prow = dict(zip(pollers.columns, pollers.rows[0], strict=True))
    assert prow["runs/s"] == 200
    assert prow["busy %"] == 50.0
    assert prow["type"] == "active"
    cores = {row[0]: row for row in views["cores"].rows}
    assert cores[0][2] == 25.0  # 500 busy of 2000 reactor ticks
    assert cores[1][3] == "sleeping"
    assert cores[0][4] == 200  # sleeps/s


def test_sorting_by_a_column_and_unknown_columns() -> None:
    before = snapshot(0.0, 0, 0, 0, 0)
    view = build_views(before, snapshot(1.0, 10, 10, 5, 5))["cores"]
    ordered = sort_view(view, "core", reverse=False)
    assert [row[0] for row in ordered.rows] == [0, 1]
    with pytest.raises(InputError, match="no column"):
        sort_view(view, "nonsense")


def test_rendering_snapshot() -> None:
    from rich.console import Console

    from spdkpy.apps.top import TableView, render

    view = TableView(
        "Cores", ("core", "busy %", "kept awake by"), ((0, 12.5, "g/spin"), (1, 0.0, "-"))
    )
    console = Console(width=60, record=True, color_system=None, force_terminal=False)
    console.print(render(view))
    assert console.export_text() == (
        "              Cores              \n"
        "┏━━━━━━┳━━━━━━━━┳━━━━━━━━━━━━━━━┓\n"
        "┃ core ┃ busy % ┃ kept awake by ┃\n"
        "┡━━━━━━╇━━━━━━━━╇━━━━━━━━━━━━━━━┩\n"
        "│    0 │   12.5 │ g/spin        │\n"
        "│    1 │    0.0 │ -             │\n"
        "└──────┴────────┴───────────────┘\n"
    )
