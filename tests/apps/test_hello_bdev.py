"""``spdkpy hello_bdev`` as a process (SPEC-STORAGE A4.1): the greeting goes through a malloc
bdev from the ``-c`` config and back; a missing bdev is one error line and exit code 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

CORE_MASK = hex(1 << min(os.sched_getaffinity(0)))


def _config(tmp_path: Path, block_size: int = 512) -> str:
    path = tmp_path / "bdev.json"
    entry = {"name": "Malloc0", "num_blocks": 32768, "block_size": block_size}
    config = {"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_malloc_create", "params": entry},
        {"method": "bdev_wait_for_examine"},
    ]}]}  # fmt: skip
    path.write_text(json.dumps(config))
    return str(path)


def test_hello_bdev_writes_and_reads_back(cli, tmp_path: Path) -> None:
    rc, out, err = cli.run("hello_bdev", "-m", CORE_MASK, "-c", _config(tmp_path))
    assert rc == 0, err
    notices = [line.split("*NOTICE*: ", 1)[1] for line in err.splitlines() if "*NOTICE*" in line]
    flow = [n for n in notices if not n.startswith(("Total cores", "Reactor started"))]
    assert flow == [
        "Successfully started the application",
        "Opening the bdev Malloc0",
        "Opening io channel",
        "Writing to the bdev",
        "bdev io write completed successfully",
        "Reading io",
        "Read string from bdev : Hello World!",
        "Stopping app",
    ]
    assert "*ERROR*" not in err
    assert "Traceback" not in err
    assert out == ""


def test_hello_bdev_4k_blocks(cli, tmp_path: Path) -> None:
    rc, _, err = cli.run("hello_bdev", "-m", CORE_MASK, "-c", _config(tmp_path, 4096))
    assert rc == 0, err
    assert "Read string from bdev : Hello World!" in err


def test_missing_bdev_is_one_error_line_and_rc_1(cli, tmp_path: Path) -> None:
    rc, _, err = cli.run("hello_bdev", "-m", CORE_MASK, "-c", _config(tmp_path), "-b", "Nope")
    assert rc == 1
    errors = [line for line in err.splitlines() if "*ERROR*" in line]
    assert len(errors) == 1
    assert errors[0].endswith("Could not open bdev: Nope")
    assert "Traceback" not in err


def test_without_a_config_malloc0_does_not_exist(cli) -> None:
    rc, _, err = cli.run("hello_bdev", "-m", CORE_MASK)
    assert rc == 1
    assert "Could not open bdev: Malloc0" in err
    assert "Traceback" not in err
