# spdkpy.env: the bottom layer; imports nothing from spdkpy except spdkpy.errors.
#
#   _cpuset.py  CpuSet, the immutable 1024-bit core set; parse/format as spdk_cpuset
#   _cores.py   available cores, -m / -p validation, pinned OS threads (thread_launch_pinned)
#   _ring.py    Ring, the bounded all-or-nothing FIFO (spdk_ring)
#   _mempool.py Mempool, the fixed-size element pool (spdk_mempool)
#   _clock.py   Clock protocol and the monotonic tick clock
#   _waker.py   Waker, the eventfd + epoll sleep/wakeup of idle reactors
"""The environment layer: cores, cpusets, rings, mempools, time and wakeups (SPEC §1, §5)."""

from ._clock import TICKS_PER_SECOND as TICKS_PER_SECOND
from ._clock import Clock as Clock
from ._clock import MonotonicClock as MonotonicClock
from ._clock import us_to_ticks as us_to_ticks
from ._cores import available_cores as available_cores
from ._cores import current_core as current_core
from ._cores import launch_pinned as launch_pinned
from ._cores import parse_app_mask as parse_app_mask
from ._cores import parse_main_core as parse_main_core
from ._cores import pin_current_thread as pin_current_thread
from ._cores import refresh_available_cores as refresh_available_cores
from ._cores import unpin_current_thread as unpin_current_thread
from ._cores import wait_all as wait_all
from ._cpuset import MAX_CPUSET_BITS as MAX_CPUSET_BITS
from ._cpuset import MAX_LCORES as MAX_LCORES
from ._cpuset import CpuSet as CpuSet
from ._mempool import Mempool as Mempool
from ._mempool import MempoolStatistics as MempoolStatistics
from ._mempool import cache_size_for as cache_size_for
from ._ring import DEFAULT_RING_SIZE as DEFAULT_RING_SIZE
from ._ring import Ring as Ring
from ._ring import RingStatistics as RingStatistics
from ._ring import RingType as RingType
from ._waker import Waker as Waker

__all__ = [
    "DEFAULT_RING_SIZE",
    "MAX_CPUSET_BITS",
    "MAX_LCORES",
    "TICKS_PER_SECOND",
    "Clock",
    "CpuSet",
    "Mempool",
    "MempoolStatistics",
    "MonotonicClock",
    "Ring",
    "RingStatistics",
    "RingType",
    "Waker",
    "available_cores",
    "cache_size_for",
    "current_core",
    "launch_pinned",
    "parse_app_mask",
    "parse_main_core",
    "pin_current_thread",
    "refresh_available_cores",
    "unpin_current_thread",
    "us_to_ticks",
    "wait_all",
]
