"""Bad core masks and main cores fail before anything starts (deviation 2, SPEC §5.3, §5.4, §6.2).

Each case runs ``spdkpy tgt`` for real: exit code 1, exactly one line on stderr naming the mask and
the cores available, nothing on stdout, never a traceback, and no reactor started.
"""

from __future__ import annotations

import os

import pytest

import spdkpy

AVAILABLE = sorted(os.sched_getaffinity(0))
SHOWN_CHARS = 60  # the CLI echoes at most this many characters of the mask


def _core_list(cores: list[int]) -> str:
    """``[0-3,8]``, written independently of spdkpy's own formatter."""
    parts: list[str] = []
    i = 0
    while i < len(cores):
        j = i
        while j + 1 < len(cores) and cores[j + 1] == cores[j] + 1:
            j += 1
        parts.append(str(cores[i]) if i == j else f"{cores[i]}-{cores[j]}")
        i = j + 1
    return "[" + ",".join(parts) + "]"


AVAILABLE_TEXT = f"available cores: {_core_list(AVAILABLE)}"
NOT_AVAILABLE = max(AVAILABLE) + 1


def _squash(text: str) -> str:
    return " ".join(text.split())


def _mask_cases() -> list[object]:
    cases: list[object] = [
        pytest.param(
            "0xFFFFFFFF",
            marks=pytest.mark.skipif(
                set(range(32)) <= set(AVAILABLE), reason="this machine has cores 0-31"
            ),
            id="0xFFFFFFFF",
        ),
        pytest.param("xo3", id="letter-o"),
        pytest.param("0x", id="0x-alone"),
        pytest.param("0x0", id="zero"),
        pytest.param(",", id="comma-only"),
        pytest.param("[3-1]", id="reversed-range"),
        pytest.param("[0,]", id="trailing-comma"),
        pytest.param("[]", id="empty-list"),
        pytest.param("[0-1024]", id="1025-core-list"),
        pytest.param("0x1" + "0" * 256, id="1025-bit-hex-bit-1024-only"),
        pytest.param("0x" + "f" * 257, id="1028-bit-hex-all-ones"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blanks"),
        pytest.param("\t", id="tab"),
        pytest.param("[\u0661]", id="arabic-indic-digit"),
        pytest.param("\uff10x1", id="fullwidth-zero"),
        pytest.param("0x1_0", id="underscore-hex"),
        pytest.param("[1_0]", id="underscore-list"),
        pytest.param("[200]", id="core-200"),
        pytest.param("[128]", id="core-128"),
        pytest.param("[99999999999999999999999]", id="huge-core"),
        pytest.param("0x1 2", id="inner-blank"),
        pytest.param("[0 1]", id="list-inner-blank"),
        pytest.param("[0-]", id="open-range"),
        pytest.param("[,0]", id="leading-comma"),
        pytest.param("[-1]", id="negative-in-list"),
        pytest.param("[0-1-2]", id="double-range"),
        pytest.param("[1024]", id="core-1024"),
        pytest.param("0xg", id="0xg"),
        pytest.param("[0", id="unclosed"),
        pytest.param(f"[{NOT_AVAILABLE}]", id="core-not-available"),
        pytest.param(hex(1 << NOT_AVAILABLE), id="hex-core-not-available"),
        pytest.param("-l0", id="eal-args"),
        pytest.param("-1", id="minus-one"),
    ]
    return cases


def _check_one_line(rc: int, stdout: str, stderr: str) -> str:
    assert "Traceback" not in stderr + stdout
    assert rc == 1, f"rc={rc}\nstdout={stdout!r}\nstderr={stderr!r}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"want exactly one line on stderr, got {lines!r}"
    assert stdout == ""
    assert "Reactor started" not in stderr
    return lines[0]


@pytest.mark.parametrize("mask", _mask_cases())
def test_bad_mask_is_one_line_and_rc_1(cli, mask: str) -> None:
    # "-m=..." so that argparse takes a mask that starts with '-' as the value.
    rc, out, err = cli.run("tgt", "--no-rpc-server", f"--cpumask={mask}")
    line = _check_one_line(rc, out, err)
    shown = repr(mask[:SHOWN_CHARS])
    if len(mask) > SHOWN_CHARS:
        shown = shown[:-1]  # the echo is cut and continues with an ellipsis
    assert _squash(shown) in line
    assert AVAILABLE_TEXT in line


@pytest.mark.parametrize("mask", ["-l0", "-1"])
def test_mask_with_dash_after_short_option(cli, mask: str) -> None:
    rc, out, err = cli.run("tgt", "--no-rpc-server", f"-m={mask}")
    line = _check_one_line(rc, out, err)
    assert repr(mask) in line
    assert AVAILABLE_TEXT in line


@pytest.mark.parametrize("value", ["0x100", "9" * 40])
def test_main_core_far_outside_mask(cli, value: str) -> None:
    rc, out, err = cli.run("tgt", "--no-rpc-server", "-m", hex(1 << min(AVAILABLE)), "-p", value)
    line = _check_one_line(rc, out, err)
    assert "main core" in line
    assert AVAILABLE_TEXT in line


def test_wait_for_rpc_without_server_refused_in_one_line(cli) -> None:
    rc, out, err = cli.run(
        "tgt", "-m", hex(1 << min(AVAILABLE)), "--wait-for-rpc", "--no-rpc-server"
    )
    line = _check_one_line(rc, out, err)
    assert "--wait-for-rpc" in line


def test_main_core_outside_mask(cli) -> None:
    main = 5 if min(AVAILABLE) != 5 else 6
    mask = hex(1 << min(AVAILABLE))
    rc, out, err = cli.run("tgt", "--no-rpc-server", "-m", mask, "-p", str(main))
    line = _check_one_line(rc, out, err)
    assert f"main core {main}" in line
    assert AVAILABLE_TEXT in line


@pytest.mark.parametrize("value", ["-1", "abc", "0x", "1.5", "\uff10", "1_0", ""])
def test_bad_main_core(cli, value: str) -> None:
    rc, out, err = cli.run("tgt", "--no-rpc-server", f"--main-core={value}")
    line = _check_one_line(rc, out, err)
    assert repr(value) in line


def test_unknown_option_is_rc_2_and_one_line(cli) -> None:
    rc, out, err = cli.run("tgt", "--no-such-option")
    assert rc == 2
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert "--no-such-option" in lines[0]
    assert out == ""


def test_unknown_log_flag_is_rc_2_and_one_line(cli) -> None:
    rc, out, err = cli.run("tgt", "--no-rpc-server", "-L", "nosuchflag")
    assert rc == 2
    lines = err.splitlines()
    assert len(lines) == 1, lines
    assert "nosuchflag" in lines[0]
    assert "Traceback" not in err
    assert out == ""


def test_missing_option_value_is_rc_2(cli) -> None:
    rc, _, err = cli.run("tgt", "-m")
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err


def test_tgt_help(cli) -> None:
    rc, out, err = cli.run("tgt", "-h")
    assert rc == 0
    assert "--cpumask" in out
    assert "--busy-poll" in out
    assert err == ""


def test_version(cli) -> None:
    rc, out, err = cli.run("--version")
    assert rc == 0
    assert spdkpy.__version__ in out
    assert "SPDK v" in out
    assert err == ""


def test_no_command_is_rc_2(cli) -> None:
    rc, out, err = cli.run()
    assert rc == 2
    assert "Traceback" not in err + out
