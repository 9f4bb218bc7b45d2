"""Pins the public API: a name added or removed here is a deliberate, reviewed change."""

from __future__ import annotations

import importlib

import pytest

PUBLIC_API: dict[str, list[str]] = {
    "spdkpy.env": [
        "Clock",
        "CpuSet",
        "DEFAULT_RING_SIZE",
        "MAX_CPUSET_BITS",
        "MAX_LCORES",
        "Mempool",
        "MempoolStatistics",
        "MonotonicClock",
        "Ring",
        "RingStatistics",
        "RingType",
        "TICKS_PER_SECOND",
        "Waker",
        "available_cores",
        "cache_size_for",
        "current_core",
        "launch_pinned",
        "parse_app_mask",
        "parse_main_core",
        "pin_current_thread",
        "refresh_available_cores",
        "us_to_ticks",
        "wait_all",
    ],
    "spdkpy.thread": [
        "ChannelIterator",
        "DEFAULT_MSG_MEMPOOL_SIZE",
        "IoChannel",
        "IoChannelStatistics",
        "IoDevice",
        "MSG_BATCH_SIZE",
        "POLLER_BUSY",
        "POLLER_IDLE",
        "Poller",
        "PollerState",
        "PollerStatistics",
        "THREAD_EXIT_TIMEOUT_S",
        "Thread",
        "ThreadLibrary",
        "ThreadOp",
        "ThreadOpFn",
        "ThreadOpSupportedFn",
        "ThreadState",
        "ThreadStatistics",
        "current_library",
        "for_each_channel",
        "for_each_thread",
        "get_io_channel",
        "get_thread",
        "io_device_register",
        "io_device_unregister",
        "library_or_none",
        "set_thread",
        "thread_lib_fini",
        "thread_lib_init",
    ],
    "spdkpy.event": [
        "CoreInfo",
        "DynamicOptions",
        "EVENT_BATCH_SIZE",
        "EVENT_POOL_SIZE",
        "Event",
        "LwThread",
        "Placement",
        "Reactor",
        "ReactorFramework",
        "ReactorState",
        "ReactorStatistics",
        "ThreadInfo",
        "balance_dynamic",
        "balance_static",
        "busy_pct",
        "current_reactor",
        "event_allocate",
        "event_call",
        "for_each_reactor",
        "get_framework",
        "reactors_fini",
        "reactors_init",
    ],
    "spdkpy.app": [
        "App",
        "AppArgumentParser",
        "AppOptions",
        "ConfigEntry",
        "CoreLocks",
        "DEFAULT_RPC_ADDR",
        "JsonConfig",
        "MethodSpec",
        "RpcState",
        "Subsystem",
        "SubsystemRegistry",
        "add_app_options",
        "app_start_shutdown",
        "app_stop",
        "get_app",
        "opts_from_args",
        "replay_config",
    ],
    "spdkpy.errors": [
        "AlignmentError",
        "ConfigError",
        "EventPoolExhaustedError",
        "InputError",
        "InternalError",
        "InvalidCpuMaskError",
        "InvalidStateError",
        "NoSuchDeviceError",
        "NotSupportedError",
        "PoolExhaustedError",
        "QueueFullError",
        "ResourceError",
        "SockError",
        "SockImplNotFoundError",
        "SpdkpyError",
        "ThreadExitedError",
        "WrongThreadError",
    ],
    "spdkpy.sock": [
        "BytesLike",
        "IOV_BATCH_SIZE",
        "MAX_EVENTS_PER_POLL",
        "SOCK_RPC_METHODS",
        "Sock",
        "SockAddrs",
        "SockCallback",
        "SockGroup",
        "SockImpl",
        "SockImplOptions",
        "SockOpts",
        "WriteCallback",
        "connect",
        "get_default_impl",
        "get_impl",
        "impl_get_opts",
        "impl_names",
        "impl_set_opts",
        "listen",
        "register_sock_methods",
        "set_default_impl",
    ],
    "spdkpy.testing": [
        "MockClock",
        "ReactorHarness",
        "ThreadHarness",
        "make_self_signed_cert",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_public_names_are_exactly_the_pinned_ones(module: str) -> None:
    mod = importlib.import_module(module)
    assert sorted(mod.__all__) == PUBLIC_API[module]
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is exported but missing"


def test_every_error_derives_from_the_root() -> None:
    import spdkpy.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.SpdkpyError)
        assert isinstance(cls.errno, int)
        assert cls.errno > 0
