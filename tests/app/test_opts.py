"""App options and SPDK's standard command line (SPEC §6.1, §6.2), and the checks ``App.start``
makes before it touches anything (§6.3 step 1). No app is started in-process here.
"""

from __future__ import annotations

import pytest

from spdkpy.app import (
    DEFAULT_RPC_ADDR,
    App,
    AppArgumentParser,
    AppOptions,
    add_app_options,
    opts_from_args,
)
from spdkpy.errors import ConfigError


def _parse(*argv: str, with_rpc: bool = True) -> AppOptions:
    parser = AppArgumentParser(prog="t")
    add_app_options(parser, with_rpc=with_rpc)
    return opts_from_args("t", parser.parse_args(list(argv)))


def test_defaults_are_spdk_app_opts_init() -> None:
    opts = _parse()
    assert opts == AppOptions(name="t")
    assert opts.reactor_mask is None  # "0x1" is applied at start
    assert opts.main_core is None
    assert opts.rpc_addr == DEFAULT_RPC_ADDR == "/var/tmp/spdk.sock"
    assert opts.rpcs_allowed is None
    assert opts.json_config_file is None
    assert not opts.json_config_ignore_errors
    assert not opts.delay_subsystem_init
    assert opts.print_level == "NOTICE"
    assert not opts.busy_poll
    assert not opts.disable_cpumask_locks
    assert opts.msg_mempool_size is None


def test_standard_options() -> None:
    opts = _parse(
        "-m",
        "[0-1]",
        "-p",
        "0x1",
        "-c",
        "cfg.json",
        "--json-ignore-init-errors",
        "-r",
        "/tmp/x.sock",
        "--rpcs-allowed",
        "a,,b",
        "-L",
        "thread",
        "--logflag",
        "reactor",
        "--silence-noticelog",
        "--busy-poll",
        "--interrupt-mode",
        "--disable-cpumask-locks",
        "--msg-mempool-size",
        "0x1000",
        "--shutdown-timeout",
        "2.5",
    )
    assert opts.reactor_mask == "[0-1]"
    assert opts.main_core == "0x1"  # parsed later, with strtol base detection
    assert opts.json_config_file == "cfg.json"
    assert opts.json_config_ignore_errors
    assert opts.rpc_addr == "/tmp/x.sock"
    assert opts.rpcs_allowed == ["a", "b"]
    assert opts.log_flags == ["thread", "reactor"]
    assert opts.print_level == "WARNING"
    assert opts.busy_poll
    assert opts.interrupt_mode
    assert opts.disable_cpumask_locks
    assert opts.msg_mempool_size == 0x1000
    assert opts.shutdown_timeout_s == 2.5


@pytest.mark.parametrize(("text", "value"), [("0", 0.0), ("-1", -1.0), ("0.25", 0.25)])
def test_shutdown_timeout_values(text: str, value: float) -> None:
    assert _parse(f"--shutdown-timeout={text}").shutdown_timeout_s == value


@pytest.mark.parametrize("flag", ["all", "ALL", "thread", "Reactor", "thr*", "*"])
def test_known_log_flags_parse(flag: str) -> None:
    assert _parse("-L", flag).log_flags == [flag]


def test_json_is_an_alias_of_config() -> None:
    assert _parse("--json", "a.json").json_config_file == "a.json"


def test_empty_mask_is_kept_for_start_to_refuse() -> None:
    assert _parse("-m", "").reactor_mask == ""


def test_no_rpc_server_and_wait_for_rpc() -> None:
    assert _parse("--no-rpc-server").rpc_addr is None
    assert _parse("--wait-for-rpc").delay_subsystem_init


def test_without_rpc_options() -> None:
    opts = _parse(with_rpc=False)
    assert opts.rpc_addr is None
    parser = AppArgumentParser(prog="t")
    add_app_options(parser, with_rpc=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--no-rpc-server"])


def test_dpdk_options_are_accepted_and_ignored() -> None:
    opts = _parse(
        "-s",
        "1G",
        "-n",
        "4",
        "-g",
        "-R",
        "--huge-dir",
        "/mnt/huge",
        "--no-huge",
        "--iova-mode",
        "va",
        "--base-virtaddr",
        "0x200000000000",
        "--env-context",
        "lib.eal:8",
        "--enforce-numa",
        "-i",
        "-1",
        "-A",
        "0000:00:01.0",
        "-A",
        "0000:00:02.0",
        "-u",
        "-e",
        "0xF",
        "--num-trace-entries",
        "0",
        "-d",
    )
    assert opts == AppOptions(name="t")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--msg-mempool-size", "0"], id="mempool-0"),
        pytest.param(["--msg-mempool-size", "-5"], id="mempool-negative"),
        pytest.param(["--msg-mempool-size", "many"], id="mempool-word"),
        pytest.param(["--bogus"], id="unknown-option"),
        pytest.param(["-m"], id="missing-value"),
        pytest.param(["--shutdown-timeout", "soon"], id="timeout-word"),
        pytest.param(["-L", "bogus"], id="unknown-log-flag"),
        pytest.param(["--logflag", "nvme*"], id="log-flag-glob-matching-nothing"),
        pytest.param(["--shutdown-timeout", "nan"], id="timeout-nan"),
        pytest.param(["--shutdown-timeout", "inf"], id="timeout-inf"),
        pytest.param(["--shutdown-timeout", "1e300"], id="timeout-beyond-timer-limit"),
    ],
)
def test_parse_error_is_one_line_and_exit_2(argv: list[str], capsys) -> None:
    parser = AppArgumentParser(prog="t")
    add_app_options(parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("t: ")


def test_version_option(capsys) -> None:
    parser = AppArgumentParser(prog="t")
    add_app_options(parser)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["-v"])
    assert info.value.code == 0
    assert "SPDK v" in capsys.readouterr().out


def test_start_needs_a_name() -> None:
    with pytest.raises(ConfigError, match="name"):
        App(AppOptions(name="")).start(lambda: None)


def test_wait_for_rpc_needs_the_rpc_server() -> None:
    opts = AppOptions(name="t", rpc_addr=None, delay_subsystem_init=True)
    with pytest.raises(ConfigError, match="--wait-for-rpc"):
        App(opts).start(lambda: None)
