"""``spdkpy tgt -c FILE``: JSON config files through the real command (SPEC §6.3 step 9, §6.7).

A bad file fails at startup with rc 1 and one line; a good one whose entries belong to subsystems
this app does not have (vhost_blk) starts, skips them with a NOTICE and stops cleanly on SIGINT.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

CORE_MASK = hex(1 << min(os.sched_getaffinity(0)))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        pytest.param("{bad", "is not valid JSON", id="not-json"),
        pytest.param("", "is not valid JSON", id="empty-file"),
        pytest.param("[" * 100_000, "is not valid JSON", id="nesting-too-deep"),
        pytest.param("[]", "the root must be an object", id="root-array"),
        pytest.param('{"subsystems": {}}', "'subsystems' must be an array", id="subsystems-object"),
        pytest.param('{"subsystems": [42]}', "needs a 'subsystem' name", id="entry-not-object"),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": [{"params": {}}]}]}',
            "needs a 'method' string",
            id="no-method",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": [{"method": "m", "params": 3}]}]}',
            "'params' of m must be an object",
            id="params-not-object",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": {"method": "m"}}]}',
            "config of bdev must be an array",
            id="config-not-array",
        ),
    ],
)
def test_bad_config_file_rc_1_one_line(cli, tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    rc, out, err = cli.run("tgt", "--no-rpc-server", "-m", CORE_MASK, "-c", str(path))
    assert rc == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert fragment in lines[0]
    assert str(path) in lines[0]
    assert "Traceback" not in err
    assert "Reactor started" not in err
    assert out == ""


def test_missing_config_file_rc_1_one_line(cli, tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    rc, _, err = cli.run("tgt", "--no-rpc-server", "-m", CORE_MASK, "--json", str(path))
    assert rc == 1
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert str(path) in lines[0]
    assert "Traceback" not in err


def _run_until_started(cli, path: Path):
    proc = cli("tgt", "--no-rpc-server", "-m", CORE_MASK, "-c", str(path))
    proc.wait_for_lines(r"spdk_tgt running on cores")
    proc.send(signal.SIGINT)
    rc = proc.wait(5.0)
    assert rc == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "*ERROR*" not in proc.stderr
    return proc


def test_entries_of_an_absent_subsystem_are_skipped(cli, tmp_path: Path) -> None:
    config = {
        "other_key": "ignored",
        "subsystems": [
            {
                "subsystem": "vhost_blk",
                "config": [
                    {
                        "method": "vhost_create_blk_controller",
                        "params": {"ctrlr": "vhost.0", "dev_name": "Malloc0"},
                    },
                    [{"method": "vhost_controller_set_coalescing"}],
                ],
            },
            {"subsystem": "scheduler", "config": None},
        ],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    proc = _run_until_started(cli, path)
    skipped = [line for line in proc.stderr_lines if "*NOTICE*" in line and "Skipping" in line]
    assert any("vhost_create_blk_controller" in line and "vhost_blk" in line for line in skipped)
    assert any("vhost_controller_set_coalescing" in line for line in skipped), skipped


def test_config_without_subsystems_key_warns_and_starts(cli, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"something_else": 1}')
    proc = _run_until_started(cli, path)
    assert any("*WARNING*" in line and "subsystems" in line for line in proc.stderr_lines)


def test_config_file_not_utf8_rc_1_one_line(cli, tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"subsystems": [], "name": "caf\xe9"}')
    rc, _, err = cli.run("tgt", "--no-rpc-server", "-m", CORE_MASK, "-c", str(path))
    assert rc == 1, err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert "not valid UTF-8" in lines[0]
    assert "internal error" not in lines[0]
