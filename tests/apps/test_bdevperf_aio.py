"""``spdkpy bdevperf -w verify`` on an aio bdev (a file in ``tmp_path``) with each engine backend
that works here: every byte read back must match (SPEC-STORAGE A4.2, issue 6 acceptance)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from spdkpy.bdev._aio_engine import available_backends

ONE_CORE = hex(1 << sorted(os.sched_getaffinity(0))[0])
ROW = re.compile(r"^\t Aio0\s+: +(?P<runtime>[\d.]+) +(?P<iops>[\d.]+) +[\d.]+ +(?P<fail>[\d.]+)")


@pytest.mark.parametrize("backend", ["io_uring", "threads"])
def test_verify_on_an_aio_bdev_passes(cli, tmp_path: Path, backend: str) -> None:
    if backend not in available_backends():
        pytest.skip(f"{backend} backend unavailable here")
    disk = tmp_path / "disk"
    disk.write_bytes(os.urandom(2 << 20))
    config = tmp_path / "bdev.json"
    entries = [
        {
            "method": "bdev_aio_create",
            "params": {"name": "Aio0", "filename": str(disk), "block_size": 512},
        },
        {"method": "bdev_wait_for_examine"},
    ]
    config.write_text(json.dumps({"subsystems": [{"subsystem": "bdev", "config": entries}]}))
    proc = cli(
        "bdevperf", "-m", ONE_CORE, "-c", str(config), "-q", "16", "-o", "4k", "-w", "verify",
        "-t", "2",
        env={**os.environ, "SPDKPY_AIO_BACKEND": backend},
    )  # fmt: skip
    rc = proc.wait(60)
    out, err = proc.stdout, proc.stderr
    assert rc == 0, err
    assert "Traceback" not in err
    assert "mismatch" not in out + err
    assert f"aio: {'io_uring' if backend == 'io_uring' else 'thread-pool'} backend" in err
    rows = [m for line in out.split("\n") if (m := ROW.match(line)) is not None]
    assert rows, out
    assert float(rows[0]["iops"]) > 0
    assert float(rows[0]["fail"]) == 0
    assert "Verification LBA range: start 0x0 length 0x200" in out  # 2 MiB / 4 KiB
