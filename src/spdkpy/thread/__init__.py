"""Lightweight threads, messages, pollers, io_devices and io_channels (SPDK's ``lib/thread``).

Layout: ``_lib`` holds the library's process-wide state and the current-thread thread-local,
``_thread`` the :class:`Thread` and its poll step, ``_poller`` pollers, ``_io_channel`` devices,
channels and the ``for_each`` walks. This layer knows nothing of reactors: a framework places
threads through the thread-op hook given to :func:`thread_lib_init`.
"""

from spdkpy.thread._io_channel import ChannelIterator as ChannelIterator
from spdkpy.thread._io_channel import IoChannel as IoChannel
from spdkpy.thread._io_channel import IoChannelStatistics as IoChannelStatistics
from spdkpy.thread._io_channel import IoDevice as IoDevice
from spdkpy.thread._io_channel import for_each_channel as for_each_channel
from spdkpy.thread._io_channel import for_each_thread as for_each_thread
from spdkpy.thread._io_channel import get_io_channel as get_io_channel
from spdkpy.thread._io_channel import io_device_register as io_device_register
from spdkpy.thread._io_channel import io_device_unregister as io_device_unregister
from spdkpy.thread._lib import DEFAULT_MSG_MEMPOOL_SIZE as DEFAULT_MSG_MEMPOOL_SIZE
from spdkpy.thread._lib import MSG_BATCH_SIZE as MSG_BATCH_SIZE
from spdkpy.thread._lib import THREAD_EXIT_TIMEOUT_S as THREAD_EXIT_TIMEOUT_S
from spdkpy.thread._lib import ThreadLibrary as ThreadLibrary
from spdkpy.thread._lib import ThreadOp as ThreadOp
from spdkpy.thread._lib import ThreadOpFn as ThreadOpFn
from spdkpy.thread._lib import ThreadOpSupportedFn as ThreadOpSupportedFn
from spdkpy.thread._lib import current_library as current_library
from spdkpy.thread._lib import get_thread as get_thread
from spdkpy.thread._lib import library_or_none as library_or_none
from spdkpy.thread._lib import set_thread as set_thread
from spdkpy.thread._lib import thread_lib_fini as thread_lib_fini
from spdkpy.thread._lib import thread_lib_init as thread_lib_init
from spdkpy.thread._poller import POLLER_BUSY as POLLER_BUSY
from spdkpy.thread._poller import POLLER_IDLE as POLLER_IDLE
from spdkpy.thread._poller import Poller as Poller
from spdkpy.thread._poller import PollerState as PollerState
from spdkpy.thread._poller import PollerStatistics as PollerStatistics
from spdkpy.thread._thread import Thread as Thread
from spdkpy.thread._thread import ThreadState as ThreadState
from spdkpy.thread._thread import ThreadStatistics as ThreadStatistics

__all__ = [
    "DEFAULT_MSG_MEMPOOL_SIZE",
    "MSG_BATCH_SIZE",
    "POLLER_BUSY",
    "POLLER_IDLE",
    "THREAD_EXIT_TIMEOUT_S",
    "ChannelIterator",
    "IoChannel",
    "IoChannelStatistics",
    "IoDevice",
    "Poller",
    "PollerState",
    "PollerStatistics",
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
]
