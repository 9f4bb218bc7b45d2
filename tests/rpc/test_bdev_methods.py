"""The bdev methods through SPDK's client against a real ``spdkpy tgt`` (SPEC §7.4,
SPEC-STORAGE A2-A3): replies with SPDK's keys in SPDK's order, SPDK's error codes, and a
``save_config`` file that ``tgt -c`` turns back into the same bdevs."""

from __future__ import annotations

import json
from pathlib import Path

BDEV_KEYS = [
    "name",
    "aliases",
    "product_name",
    "block_size",
    "num_blocks",
    "preferred_write_alignment",
    "preferred_write_granularity",
    "optimal_write_size",
    "preferred_unmap_alignment",
    "preferred_unmap_granularity",
    "uuid",
    "numa_id",
    "assigned_rate_limits",
    "claimed",
    "zoned",
    "supported_io_types",
    "driver_specific",
]
IO_TYPES = [
    "read",
    "write",
    "unmap",
    "flush",
    "reset",
    "nvme_admin",
    "nvme_io",
    "nvme_io_md",
    "write_zeroes",
    "zcopy",
    "get_zone_info",
    "zone_management",
    "zone_append",
    "compare",
    "compare_and_write",
    "abort",
    "seek_hole",
    "seek_data",
    "copy",
    "nvme_iov_md",
    "nvme_nssr",
    "write_uncorrectable",
]
STAT_KEYS = [
    "name",
    "bytes_read",
    "num_read_ops",
    "bytes_written",
    "num_write_ops",
    "bytes_unmapped",
    "num_unmap_ops",
    "bytes_copied",
    "num_copy_ops",
    "read_latency_ticks",
    "max_read_latency_ticks",
    "min_read_latency_ticks",
    "write_latency_ticks",
    "max_write_latency_ticks",
    "min_write_latency_ticks",
    "unmap_latency_ticks",
    "max_unmap_latency_ticks",
    "min_unmap_latency_ticks",
    "copy_latency_ticks",
    "max_copy_latency_ticks",
    "min_copy_latency_ticks",
    "io_error",
]
DECODE_FAILED = {"code": -32603, "message": "spdk_json_decode_object failed"}


def _created(app, *args: str) -> str:
    """A create method's result: ``spdk-rpc`` prints the bdev name as plain text."""
    run = app.rpc(*args)
    assert run.rc == 0, run.stdout + run.stderr
    return run.stdout.strip()


def test_malloc_create_then_get_bdevs_through_spdks_client(tgt, raw) -> None:
    app = tgt()
    assert _created(app, "bdev_malloc_create", "64", "512", "-b", "Malloc0") == "Malloc0"
    [info] = app.call("bdev_get_bdevs")
    assert list(info) == BDEV_KEYS
    assert info["name"] == "Malloc0"
    assert info["product_name"] == "Malloc disk"
    assert (info["block_size"], info["num_blocks"]) == (512, 64 * 1024 * 1024 // 512)
    assert info["aliases"] == [info["uuid"]]
    assert (info["numa_id"], info["claimed"], info["zoned"]) == (-1, False, False)
    assert list(info["supported_io_types"]) == IO_TYPES
    assert info["supported_io_types"]["read"] is True
    assert info["driver_specific"] == {}
    assert app.call("bdev_get_bdevs", "-b", info["uuid"]) == [info]  # alias lookup
    # Auto names count up from Malloc0 whether or not the name was free (SPDK's counter).
    assert app.error("bdev_malloc_create", "1", "4096")["code"] == -17
    assert _created(app, "bdev_malloc_create", "1", "4096") == "Malloc1"
    # Errors exactly as SPDK's client shows them.
    assert app.error("bdev_malloc_create", "64", "512", "-b", "Malloc0") == {
        "code": -17,
        "message": "File exists",
    }
    assert app.error("bdev_malloc_create", "0", "512", "-b", "M") == {
        "code": -22,
        "message": "Invalid argument",
    }
    assert app.error("bdev_malloc_create", "1", "1000", "-b", "M")["code"] == -22
    assert app.error("bdev_get_bdevs", "-b", "NoSuch") == {"code": -19, "message": "No such device"}
    assert app.error("bdev_get_bdevs", "-b", "NoSuch", "-t", "150") == {
        "code": -110,
        "message": "Connection timed out",
    }
    assert app.error("bdev_malloc_delete", "NoSuch") == {"code": -19, "message": "No such device"}
    client = raw(app.address)
    assert client.call("bdev_get_bdevs", {"bogus": 1})["error"] == DECODE_FAILED
    assert client.call("bdev_malloc_create", {"block_size": 512})["error"] == DECODE_FAILED
    assert client.call("bdev_wait_for_examine", {})["error"] == {
        "code": -32602,
        "message": "bdev_wait_for_examine requires no parameters",
    }
    # null: create, resize (MiB, grow only), delete.
    assert _created(app, "bdev_null_create", "Null0", "8", "512") == "Null0"
    [null] = app.call("bdev_get_bdevs", "-b", "Null0")
    assert (null["product_name"], null["num_blocks"]) == ("Null disk", 16384)
    assert "numa_id" not in null
    assert app.call("bdev_null_resize", "Null0", "16") is True
    assert app.call("bdev_get_bdevs", "-b", "Null0")[0]["num_blocks"] == 32768
    assert app.error("bdev_null_resize", "Null0", "4")["code"] == -22
    assert app.error("bdev_null_resize", "Malloc0", "64")["code"] == -22
    stats = app.call("bdev_get_iostat")
    assert list(stats) == ["tick_rate", "ticks", "bdevs"]
    assert [list(b) for b in stats["bdevs"]] == [STAT_KEYS] * len(stats["bdevs"])
    per_channel = app.call("bdev_get_iostat", "--names", "Null0", "-c")
    assert list(per_channel) == ["tick_rate", "ticks", "name", "channels"]
    assert app.error("bdev_get_iostat", "-c")["code"] == -22
    assert app.call("bdev_null_delete", "Null0") is None
    assert app.call("bdev_malloc_delete", "Malloc0") is None
    assert [b["name"] for b in app.call("bdev_get_bdevs")] == ["Malloc1"]
    assert app.call("bdev_wait_for_examine") is None


def test_save_config_then_tgt_c_recreates_the_bdevs(tgt, tmp_path: Path) -> None:
    first = tgt("--wait-for-rpc")
    assert first.error("bdev_set_options", "-p", "100", "-c", "64") == {
        "code": -32602,
        "message": "Pool size 100 too small for cache size 64",
    }
    assert first.call("bdev_set_options", "-p", "4095", "-c", "32") is None
    assert first.error("bdev_malloc_create", "1", "512")["code"] == -1  # not yet RUNTIME
    first.call("framework_start_init")
    assert first.error("bdev_set_options", "-p", "4095")["code"] == -1  # STARTUP only
    _created(
        first,
        "bdev_malloc_create",
        "2",
        "4096",
        "-b",
        "Disk",
        "-u",
        "0f0e0d0c-0b0a-0908-0706-050403020100",
    )
    _created(first, "bdev_malloc_create", "1", "512", "-o", "8")
    _created(first, "bdev_null_create", "Nil", "4", "512")
    config = first.call("save_config")
    [bdev_cfg] = [s for s in config["subsystems"] if s["subsystem"] == "bdev"]
    methods = [entry["method"] for entry in bdev_cfg["config"]]
    assert methods[0] == "bdev_set_options"
    assert methods[-1] == "bdev_wait_for_examine"
    assert bdev_cfg["config"][0]["params"]["bdev_io_pool_size"] == 4095
    path = tmp_path / "saved.json"
    path.write_text(json.dumps(config))
    second = tgt("-c", str(path))
    assert second.call("bdev_get_bdevs") == first.call("bdev_get_bdevs")
    assert second.call("save_config") == config
