"""The ``bdev`` subsystem: init and fini with the app, and its ``save_config`` entries
(SPEC-STORAGE A1.12, A3 "save_config / JSON config")."""

from __future__ import annotations

from collections.abc import Callable

from spdkpy.app import App, Subsystem
from spdkpy.bdev._bdev import (
    bdev_finish,
    bdev_initialize,
    bdev_is_initialized,
    bdev_modules,
    bdevs,
    examine_allowlist,
    get_bdev_opts,
)
from spdkpy.bdev._rpc import register_bdev_methods

__all__ = ["bdev_config_json", "bdev_subsystem", "register_bdev_subsystem"]


def bdev_config_json() -> list[dict[str, object]]:
    """The subsystem's config, in SPDK's order: ``bdev_set_options``, one ``bdev_examine`` per
    allow-listed name, each module's entries, each bdev's own entries, and always last
    ``bdev_wait_for_examine``."""
    out: list[dict[str, object]] = [
        {"method": "bdev_set_options", "params": get_bdev_opts().to_json()}
    ]
    if bdev_is_initialized():
        out.extend(
            {"method": "bdev_examine", "params": {"name": name}} for name in examine_allowlist()
        )
        for module in bdev_modules():
            out.extend(module.config_json())
        for bdev in bdevs():
            out.extend(bdev.fn_table.write_config_json())
    out.append({"method": "bdev_wait_for_examine"})
    return out


def _init(done: Callable[[int], None]) -> None:
    bdev_initialize(done)


def _fini(done: Callable[[], None]) -> None:
    bdev_finish(done)


def bdev_subsystem() -> Subsystem:
    """The ``bdev`` :class:`~spdkpy.app.Subsystem` for an app's registry.

    SPDK's bdev depends on accel, keyring, vmd, sock and iobuf; spdkpy has none of them as
    subsystems yet, so it depends on nothing.
    """
    return Subsystem("bdev", init=_init, fini=_fini, write_config_json=bdev_config_json)


def register_bdev_subsystem(app: App) -> None:
    """Give ``app`` the bdev subsystem and the bdev RPC methods (call before ``app.start``)."""
    app.subsystems.register(bdev_subsystem())
    register_bdev_methods(app.rpc)
