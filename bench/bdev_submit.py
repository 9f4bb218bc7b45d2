"""The bdev data path alone: 4 KiB random reads at queue depth 32 on one malloc bdev, one
lightweight thread polled in a bare loop (no reactor, no bdevperf), each completion submitting
the next read. Prints IOPS per wall second and per CPU second of this process (the second is
the one to compare on a loaded machine). Not part of ``run_all.py``: ``spdkpy bdevperf`` is the
benchmark of record; this isolates the layer's own cost per I/O.

    python bench/bdev_submit.py [-t SECONDS] [-q DEPTH]
"""

from __future__ import annotations

import argparse
import random
import time

from spdkpy import bdev
from spdkpy.thread import Thread, set_thread, thread_lib_fini, thread_lib_init

BLOCK_SIZE = 4096
NUM_BLOCKS = 65536  # 256 MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("-q", type=int, default=32, help="queue depth (default 32)")
    args = parser.parse_args()
    thread_lib_init()
    thread = Thread("bench")
    set_thread(thread)
    bdev.bdev_initialize(lambda rc: None)
    bdev.create_malloc_disk(
        bdev.MallocOpts(num_blocks=NUM_BLOCKS, block_size=BLOCK_SIZE, name="Malloc0")
    )
    desc = bdev.open_bdev("Malloc0", False, lambda event, b: None)
    ch = desc.get_io_channel()
    randrange = random.Random(1).randrange
    read_blocks = desc.read_blocks
    count = 0
    running = True

    def done(io: bdev.BdevIo, success: bool, buf: bytearray) -> None:
        nonlocal count
        io.free()
        count += 1
        if running:
            read_blocks(ch, buf, randrange(NUM_BLOCKS), 1, done, buf)

    for _ in range(args.q):
        buf = bytearray(BLOCK_SIZE)
        read_blocks(ch, buf, randrange(NUM_BLOCKS), 1, done, buf)
    poll = thread.poll
    wall0, cpu0 = time.perf_counter(), time.process_time()
    end = wall0 + args.t
    while time.perf_counter() < end:
        for _ in range(64):
            poll()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    running = False
    print(f"qd {args.q} 4 KiB randread on malloc, {count} I/Os in {wall:.2f} s")
    print(f"{count / wall:,.0f} IOPS (wall)  {count / cpu:,.0f} IOPS per CPU second")
    while ch.ctx.io_outstanding:
        poll()
    ch.put()
    desc.close()
    bdev.bdev_finish(lambda: None)
    for _ in range(16):
        poll()
    thread.exit()
    while not thread.is_exited():
        poll()
    thread.destroy()
    thread_lib_fini()


if __name__ == "__main__":
    main()
