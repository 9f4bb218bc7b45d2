"""The bdev layer on real reactors (one OS thread per core), in a child process: worker threads
pinned to each core write and read back their own blocks of one malloc bdev, with completions
checked to land on the submitting thread; then the same while the bdev is hot-removed under
them (the workers never stop on their own there, so they are busy when it happens). The app, its
signal handlers and its pinned OS threads own the process, hence the child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CORES = sorted(c for c in os.sched_getaffinity(0))[:2]

_SCRIPT = r"""
import json, sys
from spdkpy import bdev as B
from spdkpy.app import App, AppOptions
from spdkpy.env import CpuSet
from spdkpy.thread import POLLER_BUSY, POLLER_IDLE, Thread, get_thread

cores, remove = json.loads(sys.argv[1])
BS, PER, DEPTH = 512, 256, 8
IOS = 10**9 if remove else 300  # under removal, workers run until told to stop
app = App(AppOptions(name="bdev_mt", reactor_mask="[" + ",".join(map(str, cores)) + "]",
                     rpc_addr=None, disable_signal_handlers=True))
B.register_bdev_subsystem(app)
out = {"errors": [], "workers": [], "events": [], "unregister": None}
workers = []
started = []
closed = []


class Worker:
    def __init__(self, index, core):
        self.index = index
        self.thread = Thread(f"worker{index}", CpuSet([core]))
        self.thread.send_msg(self.start)

    def start(self):
        self.desc = B.open_bdev("Malloc0", True, self.event)
        self.ch = self.desc.get_io_channel()
        self.left, self.inflight, self.ok, self.bad = IOS, 0, 0, 0
        self.removed = self.reported = False
        for slot in range(DEPTH):
            self.submit(slot)
        app.app_thread.send_msg(started.append, self.index)

    def event(self, event, bdev):
        out["events"].append([self.thread.name, get_thread().name, int(event)])
        self.removed = True
        self.drained_if_idle()

    def check_thread(self):
        if get_thread() is not self.thread:
            out["errors"].append(f"completion of {self.thread.name} on {get_thread().name}")

    def submit(self, slot):
        if self.left == 0 or self.removed:
            self.drained_if_idle()
            return
        self.left -= 1
        lba = self.index * PER + (slot * 37 + self.left) % PER
        data = bytes((lba * 7 + i) & 0xFF for i in range(BS))
        self.inflight += 1
        self.desc.write_blocks(self.ch, data, lba, 1, self.written, (slot, lba, data))

    def written(self, io, ok, arg):
        io.free()
        self.check_thread()
        slot, lba, data = arg
        if not ok:
            self.bad += 1
            self.inflight -= 1
            self.submit(slot)
            return
        buf = bytearray(BS)
        self.desc.read_blocks(self.ch, buf, lba, 1, self.read_back, (slot, data, buf))

    def read_back(self, io, ok, arg):
        io.free()
        self.check_thread()
        self.inflight -= 1
        slot, data, buf = arg
        if ok and buf == data:
            self.ok += 1
        else:
            self.bad += 1
        self.submit(slot)

    def drained_if_idle(self):
        if self.inflight or self.reported:
            return
        self.reported = True
        report = {"name": self.thread.name, "ok": self.ok, "bad": self.bad}
        app.app_thread.send_msg(worker_drained, report)
        if self.removed:
            self.close()  # a removed bdev waits for its descriptors to close

    def close(self):
        self.ch.put()
        self.desc.close()
        app.app_thread.send_msg(worker_closed, self.index)
        self.thread.exit()


def worker_drained(report):
    out["workers"].append(report)
    if len(out["workers"]) < len(workers) or remove:
        return
    # Every worker is idle but still holds its channel: the walk reads them on their threads.
    def got(stat):
        out["stat"] = {"reads": stat.num_read_ops, "writes": stat.num_write_ops}
        for worker in workers:
            worker.thread.send_msg(worker.close)

    B.bdev_get_device_stat(B.get_bdev("Malloc0"), got)


def worker_closed(index):
    closed.append(index)
    maybe_stop()


def maybe_stop():
    if len(closed) < len(workers) or (remove and out["unregister"] is None):
        return
    print(json.dumps(out), flush=True)
    app.stop(0)


def start():
    bdev = B.create_malloc_disk(B.MallocOpts(num_blocks=PER * len(cores), block_size=BS,
                                             name="Malloc0"))
    for i, core in enumerate(cores):
        workers.append(Worker(i, core))
    if remove:
        def unregister():
            if len(started) < len(workers):
                return POLLER_IDLE  # every worker has opened the bdev and is busy
            poller.unregister()

            def gone(rc):
                out["unregister"] = rc
                maybe_stop()

            B.bdev_unregister(bdev, gone)
            return POLLER_BUSY

        poller = app.app_thread.register_poller(unregister, period_us=1000)


sys.exit(app.start(start))
"""


def _run(remove: bool) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps([CORES, remove])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "*ERROR*" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_workers_on_every_core_read_back_what_they_wrote() -> None:
    out = _run(remove=False)
    assert out["errors"] == []
    assert sorted(w["name"] for w in out["workers"]) == [f"worker{i}" for i in range(len(CORES))]
    assert all(w == {"name": w["name"], "ok": 300, "bad": 0} for w in out["workers"])
    assert out["stat"] == {"reads": 300 * len(CORES), "writes": 300 * len(CORES)}


def test_hot_remove_under_load_on_real_reactors() -> None:
    out = _run(remove=True)
    assert out["errors"] == []
    assert out["unregister"] == 0
    # Every worker got REMOVE on its own thread, drained and closed; nothing failed.
    assert sorted(e[0] for e in out["events"]) == [f"worker{i}" for i in range(len(CORES))]
    assert all(e[0] == e[1] and e[2] == 0 for e in out["events"])
    assert all(w["bad"] == 0 for w in out["workers"])
