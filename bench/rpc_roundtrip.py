"""RPC round trips per second through SPDK's own Python client library on one connection.

Starts ``spdkpy tgt`` (reactors otherwise idle) with its own socket, calls ``spdk_get_version``
in a loop for ``-t`` seconds with ``spdk.rpc.client.JSONRPCClient`` (the library behind
``spdk-rpc``), and prints calls/s with the ratio to the issue's anchors: SPDK's C target answers
about 250 calls/s on this machine (it polls its RPC socket every 4 ms); the goal is >= 2,000.

    python bench/rpc_roundtrip.py [-t SECONDS]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPDK_C_CALLS_PER_S = 250.0
GOAL_CALLS_PER_S = 2000.0


def _spdkpy() -> list[str]:
    script = Path(sys.executable).parent / "spdkpy"
    return [str(script)] if script.exists() else [sys.executable, "-m", "spdkpy.apps.cli"]


def measure(seconds: float) -> float:
    from spdk.rpc.client import JSONRPCClient  # the library spdk-rpc is built on

    workdir = tempfile.mkdtemp(prefix="spdkpy-rpcb-", dir="/tmp")
    sock = os.path.join(workdir, "spdk.sock")
    app = subprocess.Popen(
        [*_spdkpy(), "tgt", "-m", "0x1", "-r", sock],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not os.path.exists(sock):
            if time.monotonic() > deadline or app.poll() is not None:
                raise RuntimeError("spdkpy tgt did not start")
            time.sleep(0.05)
        client = JSONRPCClient(sock, timeout=5.0)
        client.call("framework_wait_init")
        calls = 0
        start = time.perf_counter()
        end = start + seconds
        while time.perf_counter() < end:
            client.call("spdk_get_version")
            calls += 1
        elapsed = time.perf_counter() - start
        client.close()
        return calls / elapsed
    finally:
        app.send_signal(signal.SIGINT)
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()
        for name in os.listdir(workdir):
            os.unlink(os.path.join(workdir, name))
        os.rmdir(workdir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-t", type=float, default=3.0, metavar="SECONDS")
    args = parser.parse_args()
    rate = measure(args.t)
    verdict = "PASS" if rate >= GOAL_CALLS_PER_S else "MISS"
    print(f"spdk_get_version round trips, one JSONRPCClient connection: {rate:,.0f} calls/s")
    print(f"  vs SPDK C target (~{SPDK_C_CALLS_PER_S:,.0f}/s): {rate / SPDK_C_CALLS_PER_S:.1f}x")
    print(f"  vs goal {GOAL_CALLS_PER_S:,.0f}/s: {rate / GOAL_CALLS_PER_S:.2f}x {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
