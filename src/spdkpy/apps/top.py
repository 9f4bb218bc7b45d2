"""``spdkpy top``: a live view of an app's threads, pollers and cores over its RPC socket, like
``spdk_top``. CPU % comes from busy/idle *deltas* between two snapshots, never from totals.

``spdkpy top --once`` takes two snapshots ``-d`` seconds apart and prints one table (plain text
when stdout is not a terminal), for scripts. Interactively: ``t``/``p``/``c`` switch tabs, ``s``
cycles the sort column, ``r`` reverses it, ``q`` quits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from rich.console import Console
from rich.live import Live
from rich.table import Table

from spdkpy.app import DEFAULT_RPC_ADDR, AppArgumentParser
from spdkpy.errors import InputError
from spdkpy.rpc import RpcClient

__all__ = ["Snapshot", "TableView", "add_parser", "build_views", "take_snapshot"]

TABS: Final = ("threads", "pollers", "cores")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not 0 < value < 3600:
        raise argparse.ArgumentTypeError(f"must be > 0 and < 3600 seconds, got {text}")
    return value


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser: AppArgumentParser = commands.add_parser(
        "top", help="live threads/pollers/cores view over the RPC socket (spdk_top)"
    )
    parser.add_argument(
        "-r",
        "--rpc-socket",
        dest="rpc_addr",
        default=DEFAULT_RPC_ADDR,
        metavar="ADDR",
        help=f"the app's RPC address (default {DEFAULT_RPC_ADDR})",
    )
    parser.add_argument(
        "-d",
        "--delay",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="refresh period, and the interval of --once (default 1)",
    )
    parser.add_argument("--once", action="store_true", help="print one table and exit")
    parser.add_argument("--tab", choices=TABS, default="threads", help="which table to show")
    parser.add_argument("--sort", metavar="COLUMN", help="sort by this column (default: busy %%)")
    parser.set_defaults(run=run)


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the app said at one moment (the raw RPC results)."""

    taken: float
    reactors: dict[str, Any]
    threads: dict[str, Any]
    pollers: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TableView:
    """One tab: column names and rows of cells (numbers stay numbers for sorting)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]


def take_snapshot(client: RpcClient) -> Snapshot:
    def call(method: str) -> dict[str, Any]:
        result = client.call(method)
        if not isinstance(result, dict):
            raise InputError(f"{method} answered {type(result).__name__}, not an object")
        return result

    return Snapshot(
        time.monotonic(),
        call("framework_get_reactors"),
        call("thread_get_stats"),
        call("thread_get_pollers"),
    )


def _percent(busy: int, idle: int) -> float:
    total = busy + idle
    return round(100.0 * busy / total, 1) if total > 0 else 0.0


def _by_id(items: Sequence[dict[str, Any]], key: str = "id") -> dict[object, dict[str, Any]]:
    return {item.get(key): item for item in items}


def build_views(before: Snapshot, after: Snapshot) -> dict[str, TableView]:
    """The three tabs from two snapshots; every rate and % is a delta between them."""
    seconds = max(after.taken - before.taken, 1e-9)
    core_of: dict[object, object] = {}
    for reactor in after.reactors.get("reactors", []):
        for lw in reactor.get("lw_threads", []):
            core_of[lw.get("id")] = reactor.get("lcore")

    # A thread's idle time counts only its polls, not the time its reactor sleeps, so a thread's
    # busy % is its busy time over the wall-clock interval.
    tick_rate = int(after.threads.get("tick_rate", 1_000_000_000)) or 1
    wall_ticks = round(seconds * tick_rate)
    old_threads = _by_id(before.threads.get("threads", []))
    thread_rows = []
    for t in after.threads.get("threads", []):
        old = old_threads.get(t.get("id"), {})
        busy = int(t.get("busy", 0)) - int(old.get("busy", 0))
        idle = max(0, wall_ticks - busy)
        msgs = int(t.get("messages_run", 0)) - int(old.get("messages_run", 0))
        thread_rows.append(
            (
                t.get("name"),
                t.get("id"),
                core_of.get(t.get("id"), "-"),
                t.get("cpumask"),
                _percent(busy, idle),
                round(msgs / seconds),
                t.get("active_pollers_count"),
                t.get("timed_pollers_count"),
                t.get("paused_pollers_count"),
            )
        )

    old_pollers: dict[tuple[object, str, object], dict[str, Any]] = {}
    for t in before.pollers.get("threads", []):
        for kind in ("active_pollers", "timed_pollers", "paused_pollers"):
            for p in t.get(kind, []):
                old_pollers[(t.get("id"), kind, p.get("id"))] = p
    poller_rows = []
    for t in after.pollers.get("threads", []):
        for kind in ("active_pollers", "timed_pollers", "paused_pollers"):
            for p in t.get(kind, []):
                old = old_pollers.get((t.get("id"), kind, p.get("id")), {})
                runs = int(p.get("run_count", 0)) - int(old.get("run_count", 0))
                busy_runs = int(p.get("busy_count", 0)) - int(old.get("busy_count", 0))
                poller_rows.append(
                    (
                        t.get("name"),
                        p.get("name"),
                        kind.split("_")[0],
                        p.get("state"),
                        round(runs / seconds),
                        _percent(busy_runs, runs - busy_runs),
                        p.get("run_count"),
                        p.get("period_ticks", 0),
                    )
                )

    old_reactors = _by_id(before.reactors.get("reactors", []), "lcore")
    core_rows = []
    for r in after.reactors.get("reactors", []):
        old = old_reactors.get(r.get("lcore"), {})
        busy = int(r.get("busy", 0)) - int(old.get("busy", 0))
        idle = int(r.get("idle", 0)) - int(old.get("idle", 0))
        sleeps = int(r.get("sleeps", 0)) - int(old.get("sleeps", 0))
        core_rows.append(
            (
                r.get("lcore"),
                len(r.get("lw_threads", [])),
                _percent(busy, idle),
                "sleeping" if r.get("sleeping") else "awake",
                round(sleeps / seconds),
                ", ".join(str(name) for name in r.get("awake_by", [])) or "-",
            )
        )
    return {
        "threads": TableView(
            "Threads",
            ("thread", "id", "core", "cpumask", "busy %", "msgs/s", "active", "timed", "paused"),
            tuple(thread_rows),
        ),
        "pollers": TableView(
            "Pollers",
            ("thread", "poller", "type", "state", "runs/s", "busy %", "run_count", "period_ticks"),
            tuple(poller_rows),
        ),
        "cores": TableView(
            "Cores",
            ("core", "threads", "busy %", "state", "sleeps/s", "kept awake by"),
            tuple(core_rows),
        ),
    }


def sort_view(view: TableView, column: str | None, reverse: bool = True) -> TableView:
    """Rows sorted by ``column`` (default: ``busy %``); unknown columns are an input error."""
    name = column or "busy %"
    if name not in view.columns:
        raise InputError(f"no column {name!r} in {view.title} (columns: {', '.join(view.columns)})")
    index = view.columns.index(name)

    def key(row: tuple[object, ...]) -> tuple[int, float, str]:
        cell = row[index]
        if isinstance(cell, int | float):
            return (0, float(cell), "")
        return (1, 0.0, str(cell))

    return TableView(view.title, view.columns, tuple(sorted(view.rows, key=key, reverse=reverse)))


def render(view: TableView, caption: str = "") -> Table:
    table = Table(title=view.title, caption=caption or None, expand=False)
    for column in view.columns:
        left = column in ("thread", "poller", "kept awake by")
        table.add_column(column, justify="left" if left else "right")
    for row in view.rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    return table


# ----------------------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    with RpcClient(args.rpc_addr, timeout=max(5.0, 2 * args.delay)) as client:
        if args.once:
            before = take_snapshot(client)
            time.sleep(args.delay)
            after = take_snapshot(client)
            view = sort_view(build_views(before, after)[args.tab], args.sort)
            # For scripts: never cut a cell to fit an 80-column default when piped.
            width = None if sys.stdout.isatty() else 250
            Console(soft_wrap=True, width=width).print(render(view))
            return 0
        return _interactive(client, args)


@contextlib.contextmanager
def _cbreak() -> Iterator[bool]:
    if not sys.stdin.isatty():
        yield False
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _interactive(client: RpcClient, args: argparse.Namespace) -> int:
    tab: str = args.tab
    sort: str | None = args.sort
    reverse = True
    before = take_snapshot(client)
    console = Console()
    with _cbreak() as keys, Live(console=console, auto_refresh=False) as live:
        while True:
            deadline = time.monotonic() + args.delay
            while keys and (remaining := deadline - time.monotonic()) > 0:
                ready, _, _ = select.select([sys.stdin], [], [], remaining)
                if not ready:
                    break
                key = os.read(sys.stdin.fileno(), 1).decode(errors="ignore").lower()
                if key == "q":
                    return 0
                if key in ("t", "p", "c"):
                    tab = {"t": "threads", "p": "pollers", "c": "cores"}[key]
                    sort = None
                elif key == "s":
                    columns = build_views(before, before)[tab].columns
                    current = sort if sort in columns else "busy %"
                    sort = columns[(columns.index(current) + 1) % len(columns)]
                elif key == "r":
                    reverse = not reverse
            if not keys:
                time.sleep(max(0.0, deadline - time.monotonic()))
            after = take_snapshot(client)
            view = sort_view(build_views(before, after)[tab], sort, reverse)
            live.update(render(view, "t/p/c: tab  s: sort  r: reverse  q: quit"), refresh=True)
            before = after
