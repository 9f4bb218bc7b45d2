"""``spdkpy poll_groups``: the seed's demonstration of SPDK threads on reactors.

Like the nvmf target (with deviation 4, pinned groups), the app creates one lightweight thread per
core of the mask, named ``nvmf_tgt_poll_group_<core>`` with the one-core mask of that core, and
sends each a message that creates its poll group: a poller that counts its runs. It prints the
reactor each thread landed on, lets the groups run for ``-t`` seconds, then has each group
unregister its poller, report its run count and exit, prints the counts and stops cleanly.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from spdkpy.app import App, AppArgumentParser, add_app_options, opts_from_args
from spdkpy.env import CpuSet
from spdkpy.event import current_reactor
from spdkpy.thread import POLLER_IDLE, Poller, Thread, get_thread

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser: AppArgumentParser = commands.add_parser(
        "poll_groups",
        help="one pinned poll-group thread per core, each counting its poller runs",
        description="Create nvmf_tgt_poll_group_<core> threads, run them, report, stop.",
    )
    add_app_options(parser)
    parser.add_argument(
        "-t",
        "--time",
        dest="time",
        type=_run_time,
        default=3.0,
        metavar="SECONDS",
        help="how long the poll groups run (default 3)",
    )
    parser.set_defaults(run=run)


def _run_time(text: str) -> float:
    """``-t``: a positive, finite number of seconds (it becomes a poller period in µs)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"time must be a finite number > 0 seconds, got {text!r}")
    return value


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class _PollGroup:
    """One group's state; touched only on its own thread, except ``runs`` read at the end."""

    def __init__(self, core: int) -> None:
        self.core = core
        self.runs = 0
        self.poller: Poller | None = None

    def poll(self) -> int:
        self.runs += 1
        return POLLER_IDLE  # no connections to serve: nothing keeps the reactor awake


def _app_thread(app: App) -> Thread:
    thread = app.app_thread
    assert thread is not None, "the app thread exists while the app runs"
    return thread


def run(args: argparse.Namespace) -> int:
    app = App(opts_from_args("nvmf_tgt", args))
    groups_by_thread: dict[str, _PollGroup] = {}
    landed: dict[str, int] = {}
    finished: dict[str, int] = {}
    stopping = [False]

    def create_poll_group(group: _PollGroup) -> None:
        thread = get_thread()
        reactor = current_reactor()
        assert thread is not None
        assert reactor is not None
        group.poller = thread.register_poller(group.poll, name="nvmf_poll_group_poll")
        _app_thread(app).send_msg(report_landed, thread.name, reactor.lcore)

    def report_landed(name: str, lcore: int) -> None:
        landed[name] = lcore
        _print(f"{name} landed on reactor {lcore}")

    def destroy_poll_group(group: _PollGroup) -> None:
        thread = get_thread()
        assert thread is not None
        if group.poller is not None:
            group.poller.unregister()
            group.poller = None
        _app_thread(app).send_msg(report_finished, thread.name, group.runs)
        thread.exit()

    def report_finished(name: str, runs: int) -> None:
        finished[name] = runs
        if len(finished) == len(threads):
            for thread in threads:
                _print(f"{thread.name}: {finished[thread.name]} poller runs")
            app.stop(0)

    def stop_groups() -> None:
        if stopping[0]:
            return
        stopping[0] = True
        for end in end_pollers:
            end.unregister()
        for thread in threads:
            thread.send_msg(destroy_poll_group, groups_by_thread[thread.name])

    def time_up() -> int:
        stop_groups()
        return POLLER_IDLE

    threads: list[Thread] = []
    end_pollers: list[Poller] = []

    def start() -> None:
        me = get_thread()
        assert me is not None
        for core in app.core_mask:
            group = _PollGroup(core)
            groups_by_thread[f"nvmf_tgt_poll_group_{core}"] = group
            thread = Thread(f"nvmf_tgt_poll_group_{core}", CpuSet([core]))
            threads.append(thread)
            thread.send_msg(create_poll_group, group)
        end_pollers.append(me.register_poller(time_up, period_us=int(args.time * 1_000_000)))

    return app.start(start, stop_groups)
