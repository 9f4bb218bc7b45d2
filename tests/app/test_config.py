"""JSON config files: parsing, validation and the two-pass replay (SPEC §6.4, §6.7)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import pytest

from spdkpy.app import ConfigEntry, JsonConfig, MethodSpec, RpcState, replay_config
from spdkpy.errors import ConfigError, InputError

BOTH = RpcState.STARTUP | RpcState.RUNTIME


def _config(*subsystems: dict[str, object], **root: object) -> JsonConfig:
    return JsonConfig.from_text(json.dumps({"subsystems": list(subsystems), **root}))


# ----------------------------------------------------------------------------- parsing


def test_entries_in_file_order() -> None:
    cfg = _config(
        {
            "subsystem": "bdev",
            "config": [
                {"method": "bdev_set_options", "params": {"bdev_io_pool_size": 65535}},
                {"method": "bdev_malloc_create", "params": {"name": "Malloc0"}},
            ],
        },
        {"subsystem": "nvmf", "config": [{"method": "nvmf_set_config"}]},
        other="ignored",
    )
    assert cfg.entries == [
        ConfigEntry("bdev", "bdev_set_options", {"bdev_io_pool_size": 65535}),
        ConfigEntry("bdev", "bdev_malloc_create", {"name": "Malloc0"}),
        ConfigEntry("nvmf", "nvmf_set_config", None),
    ]


def test_batch_arrays_are_flattened_in_order() -> None:
    cfg = _config(
        {
            "subsystem": "bdev",
            "config": [
                {"method": "one"},
                [{"method": "two"}, {"method": "three", "params": {"x": 1}}],
                [],
                {"method": "four"},
            ],
        }
    )
    assert [e.method for e in cfg.entries] == ["one", "two", "three", "four"]
    assert cfg.entries[2].params == {"x": 1}


def test_null_or_absent_config_has_no_entries() -> None:
    cfg = _config({"subsystem": "scheduler", "config": None}, {"subsystem": "sock"})
    assert cfg.entries == []


def test_missing_subsystems_key_warns_and_loads_nothing(app_log) -> None:
    cfg = JsonConfig.from_text('{"version": 1}', "my.json")
    assert cfg.entries == []
    warnings = app_log.at(logging.WARNING)
    assert any("my.json" in m and "subsystems" in m for m in warnings), warnings


def test_empty_subsystems_array() -> None:
    assert JsonConfig.from_text('{"subsystems": []}').entries == []


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("{bad", "is not valid JSON", id="not-json"),
        pytest.param("", "is not valid JSON", id="empty"),
        pytest.param('{"subsystems": []} trailing', "is not valid JSON", id="trailing-garbage"),
        pytest.param("[" * 100_000, "is not valid JSON", id="nesting-too-deep"),
        pytest.param('{"x": ' + "1" * 5000 + "}", "is not valid JSON", id="integer-too-long"),
        pytest.param("[]", "the root must be an object", id="root-array"),
        pytest.param('"text"', "the root must be an object", id="root-string"),
        pytest.param("null", "the root must be an object", id="root-null"),
        pytest.param('{"subsystems": {}}', "'subsystems' must be an array", id="subsystems-object"),
        pytest.param('{"subsystems": null}', "'subsystems' must be an array", id="subsystems-null"),
        pytest.param('{"subsystems": [1]}', r"subsystems\[0\] needs a 'subsystem'", id="item-int"),
        pytest.param('{"subsystems": [{}]}', "needs a 'subsystem' name", id="item-no-name"),
        pytest.param(
            '{"subsystems": [{"subsystem": 5}]}', "needs a 'subsystem' name", id="name-not-str"
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": {}}]}',
            "config of bdev must be an array",
            id="config-object",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": [{"params": {}}]}]}',
            r"bdev config\[0\] needs a 'method' string",
            id="no-method",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": [{"method": 3}]}]}',
            "needs a 'method' string",
            id="method-not-str",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": ["bdev_x"]}]}',
            "needs a 'method' string",
            id="entry-string",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "bdev", "config": [{"method": "m", "params": []}]}]}',
            "'params' of m must be an object",
            id="params-array",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "b", "config": [[{"method": "m", "params": 1}]]}]}',
            "'params' of m must be an object",
            id="params-in-batch",
        ),
        pytest.param(
            '{"subsystems": [{"subsystem": "b", "config": [[[{"method": "m"}]]]}]}',
            "needs a 'method' string",
            id="batch-in-batch",
        ),
    ],
)
def test_invalid_config_text(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        JsonConfig.from_text(text, "cfg.json")
    assert isinstance(info.value, InputError)
    assert "\n" not in str(info.value)
    if "JSON" in match:
        assert "cfg.json" in str(info.value)


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"subsystems": [{"subsystem": "s", "config": [{"method": "m"}]}]}')
    cfg = JsonConfig.from_file(str(path))
    assert cfg.source == str(path)
    assert [e.method for e in cfg.entries] == ["m"]


def test_from_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read JSON config"):
        JsonConfig.from_file(str(tmp_path / "absent.json"))
    with pytest.raises(ConfigError, match="cannot read JSON config"):
        JsonConfig.from_file(str(tmp_path))  # a directory


def test_from_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'{"subsystems": [], "x": "\xff"}')
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        JsonConfig.from_file(str(path))


# ----------------------------------------------------------------------------- replay


class Methods:
    """Method specs that record their calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Mapping[str, object] | None]] = []
        self.specs: dict[str, MethodSpec] = {}

    def add(self, name: str, states: RpcState, *, fail: bool = False) -> None:
        def handler(params: Mapping[str, object] | None) -> object:
            self.calls.append((name, params))
            if fail:
                raise ValueError(f"{name} refused")
            return True

        self.specs[name] = MethodSpec(name, handler, states)

    def called(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def methods() -> Methods:
    m = Methods()
    m.add("startup_only", RpcState.STARTUP)
    m.add("runtime_only", RpcState.RUNTIME)
    m.add("both", BOTH)
    return m


def _entries_config(*names: str, subsystem: str = "sub") -> JsonConfig:
    return _config(
        {"subsystem": subsystem, "config": [{"method": n, "params": {"n": n}} for n in names]}
    )


def test_startup_pass_runs_startup_and_both(methods: Methods) -> None:
    cfg = _entries_config("runtime_only", "startup_only", "both")
    replay_config(cfg, RpcState.STARTUP, methods.specs, {"sub"}, ignore_errors=False)
    assert methods.called() == ["startup_only", "both"]
    assert methods.calls[0][1] == {"n": "startup_only"}


def test_runtime_pass_skips_methods_allowed_in_both(methods: Methods) -> None:
    cfg = _entries_config("runtime_only", "startup_only", "both")
    replay_config(cfg, RpcState.RUNTIME, methods.specs, {"sub"}, ignore_errors=False)
    assert methods.called() == ["runtime_only"]


def test_two_passes_run_each_method_once(methods: Methods) -> None:
    cfg = _entries_config("both", "runtime_only", "startup_only", "runtime_only")
    for state in (RpcState.STARTUP, RpcState.RUNTIME):
        replay_config(cfg, state, methods.specs, {"sub"}, ignore_errors=False)
    assert methods.called() == ["both", "startup_only", "runtime_only", "runtime_only"]


def test_unknown_method_of_an_absent_subsystem_is_skipped_with_a_notice(
    methods: Methods, app_log
) -> None:
    cfg = _config(
        {"subsystem": "bdev", "config": [{"method": "bdev_malloc_create"}]},
        {"subsystem": "sub", "config": [{"method": "both"}]},
    )
    for state in (RpcState.STARTUP, RpcState.RUNTIME):
        replay_config(cfg, state, methods.specs, {"sub"}, ignore_errors=False)
    assert methods.called() == ["both"]
    notices = app_log.at(25)
    assert any("bdev_malloc_create" in m and "bdev" in m for m in notices), notices


def test_unknown_method_of_a_linked_subsystem_fails(methods: Methods) -> None:
    cfg = _config(
        {"subsystem": "sub", "config": [{"method": "both"}, {"method": "x"}, {"method": "both"}]}
    )
    with pytest.raises(ConfigError, match="Method 'x' was not found"):
        replay_config(cfg, RpcState.STARTUP, methods.specs, {"sub"}, ignore_errors=False)
    assert methods.called() == ["both"]  # stopped at the unknown method


def test_ignore_errors_skips_unknown_methods(methods: Methods) -> None:
    cfg = _config({"subsystem": "sub", "config": [{"method": "x"}, {"method": "startup_only"}]})
    replay_config(cfg, RpcState.STARTUP, methods.specs, {"sub"}, ignore_errors=True)
    assert methods.called() == ["startup_only"]


def test_failing_method_stops_the_load(methods: Methods) -> None:
    methods.add("broken", RpcState.STARTUP, fail=True)
    cfg = _entries_config("startup_only", "broken", "both")
    with pytest.raises(ConfigError, match="broken") as info:
        replay_config(cfg, RpcState.STARTUP, methods.specs, {"sub"}, ignore_errors=False)
    assert "refused" in str(info.value)
    assert methods.called() == ["startup_only", "broken"]


def test_ignore_errors_keeps_going_after_a_failing_method(methods: Methods, app_log) -> None:
    methods.add("broken", RpcState.STARTUP, fail=True)
    cfg = _entries_config("startup_only", "broken", "both")
    replay_config(cfg, RpcState.STARTUP, methods.specs, {"sub"}, ignore_errors=True)
    assert methods.called() == ["startup_only", "broken", "both"]
    assert any("broken" in m for m in app_log.at(logging.WARNING))


def test_method_not_allowed_in_the_state_is_skipped_silently(methods: Methods, app_log) -> None:
    cfg = _entries_config("runtime_only")
    replay_config(cfg, RpcState.STARTUP, methods.specs, {"sub"}, ignore_errors=False)
    assert methods.called() == []
    assert app_log.messages() == []


def test_batches_replay_in_order(methods: Methods) -> None:
    cfg = _config(
        {
            "subsystem": "sub",
            "config": [[{"method": "both"}, {"method": "startup_only"}], {"method": "both"}],
        }
    )
    replay_config(cfg, RpcState.STARTUP, methods.specs, {"sub"}, ignore_errors=False)
    assert methods.called() == ["both", "startup_only", "both"]
