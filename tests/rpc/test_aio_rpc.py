"""The aio bdev methods through SPDK's client against a real ``spdkpy tgt`` (SPEC-STORAGE A2):
``bdev_aio_create`` / ``bdev_aio_rescan`` / ``bdev_aio_delete`` with SPDK's argument order,
replies and error codes, the bdev's ``driver_specific``, and ``save_config`` -> ``tgt -c``
recreating the same aio bdevs on the same files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DECODE_FAILED = {"code": -32603, "message": "spdk_json_decode_object failed"}


def _file(path: Path, size: int) -> str:
    path.write_bytes(os.urandom(size))
    return str(path)


def _created(app, *args: str) -> str:
    run = app.rpc(*args)
    assert run.rc == 0, run.stdout + run.stderr
    return run.stdout.strip()


def test_aio_create_rescan_delete_through_spdks_client(tgt, raw, tmp_path: Path) -> None:
    app = tgt()
    disk = _file(tmp_path / "disk0", 64 * 1024)
    # spdk-rpc bdev_aio_create FILENAME NAME [BLOCK_SIZE]
    assert _created(app, "bdev_aio_create", disk, "Aio0", "512") == "Aio0"
    [info] = app.call("bdev_get_bdevs", "-b", "Aio0")
    assert (info["product_name"], info["block_size"], info["num_blocks"]) == ("AIO disk", 512, 128)
    assert info["aliases"] == [info["uuid"]]
    assert info["driver_specific"] == {
        "aio": {
            "filename": disk,
            "block_size_override": True,
            "readonly": False,
            "fallocate": False,
            "nowait": False,
        }
    }
    types = info["supported_io_types"]
    assert (types["read"], types["write"], types["flush"], types["reset"]) == (True,) * 4
    assert (types["unmap"], types["write_zeroes"]) == (False, True)  # zeroes: the layer's writes
    # Errors as SPDK answers them.
    missing = str(tmp_path / "missing")
    assert app.error("bdev_aio_create", missing, "Aio1", "512") == {
        "code": -2,
        "message": "No such file or directory",
    }
    invalid = {"code": -22, "message": "Invalid argument"}
    assert app.error("bdev_aio_create", disk, "Aio1") == invalid  # regular file: not detected
    assert app.error("bdev_aio_create", disk, "Aio1", "256") == invalid
    assert app.error("bdev_aio_create", disk, "Aio1", "3072") == invalid
    assert app.error("bdev_aio_create", disk, "Aio0", "512") == {
        "code": -17,
        "message": "File exists",
    }
    assert app.error("bdev_aio_create", disk, "Aio1", "512", "--no-wait") == {
        "code": -95,
        "message": "Operation not supported",
    }
    client = raw(app.address)
    assert client.call("bdev_aio_create", {"name": "Aio1"})["error"] == DECODE_FAILED
    assert client.call("bdev_aio_rescan", {})["error"] == DECODE_FAILED
    # A second disk, read-only with fallocate.
    other = _file(tmp_path / "disk1", 8192)
    assert _created(app, "bdev_aio_create", other, "Aio1", "4096", "-r", "--fallocate") == "Aio1"
    [info1] = app.call("bdev_get_bdevs", "-b", "Aio1")
    assert info1["driver_specific"]["aio"]["readonly"] is True
    assert info1["supported_io_types"]["unmap"] is True
    # Rescan: the file grew.
    os.truncate(disk, 96 * 1024)
    assert app.call("bdev_aio_rescan", "Aio0") is True
    assert app.call("bdev_get_bdevs", "-b", "Aio0")[0]["num_blocks"] == 192
    assert app.call("bdev_aio_rescan", "Aio0") is True  # no change
    assert app.error("bdev_aio_rescan", "NoSuch") == {"code": -19, "message": "No such device"}
    _created(app, "bdev_malloc_create", "1", "512", "-b", "Malloc0")
    assert app.error("bdev_aio_rescan", "Malloc0") == {"code": -19, "message": "No such device"}
    # Delete.
    assert app.error("bdev_aio_delete", "NoSuch") == {"code": -19, "message": "No such device"}
    assert app.error("bdev_aio_delete", "Malloc0") == {"code": -19, "message": "No such device"}
    assert app.call("bdev_aio_delete", "Aio0") is None  # true: the client prints nothing
    assert [b["name"] for b in app.call("bdev_get_bdevs")] == ["Aio1", "Malloc0"]
    # A rescan that finds the file empty removes the bdev.
    os.truncate(other, 0)
    assert app.call("bdev_aio_rescan", "Aio1") is True
    deadline = time.monotonic() + 10  # the removal runs after the reply, on the app thread
    while [b["name"] for b in app.call("bdev_get_bdevs")] != ["Malloc0"]:
        assert time.monotonic() < deadline, "Aio1 was not hot-removed"
        time.sleep(0.05)
    assert app.error("bdev_aio_delete", "Aio1") == {"code": -19, "message": "No such device"}


def test_aio_save_config_then_tgt_c_recreates_the_bdevs(tgt, tmp_path: Path) -> None:
    first = tgt()
    plain = _file(tmp_path / "plain", 16 * 4096)
    special = _file(tmp_path / "special", 8 * 4096)
    _created(first, "bdev_aio_create", plain, "AioPlain", "4096")
    _created(
        first,
        "bdev_aio_create",
        special,
        "AioSpecial",
        "512",
        "-r",
        "--fallocate",
        "-u",
        "0f0e0d0c-0b0a-0908-0706-050403020100",
    )
    config = first.call("save_config")
    [bdev_cfg] = [s for s in config["subsystems"] if s["subsystem"] == "bdev"]
    entries = [e for e in bdev_cfg["config"] if e["method"] == "bdev_aio_create"]
    assert entries[1] == {
        "method": "bdev_aio_create",
        "params": {
            "name": "AioSpecial",
            "block_size": 512,
            "filename": special,
            "readonly": True,
            "fallocate": True,
            "uuid": "0f0e0d0c-0b0a-0908-0706-050403020100",
            "nowait": False,
        },
    }
    assert bdev_cfg["config"][-1] == {"method": "bdev_wait_for_examine"}
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(config))
    second = tgt("-c", str(path), address=tgt.path("second.sock"))
    assert second.call("bdev_get_bdevs") == first.call("bdev_get_bdevs")
    assert second.call("save_config") == config
