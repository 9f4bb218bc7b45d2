"""The event framework: one reactor per core, events, and thread placement (SPDK's ``lib/event``
reactor part).

Layout: ``_scheduler`` holds the schedulers' pure ``balance`` functions over frozen snapshots;
``_scheduling`` the scheduler framework (registry, period, rounds and how placements are applied);
``_reactor`` holds :class:`Reactor` and its loop (one pinned OS thread each) and the
pooled :class:`Event`; ``_framework`` holds the set of reactors, the event pool, the thread-op
hook that places new threads, and start/stop. Built only on ``spdkpy.env`` and ``spdkpy.thread``.
"""

from spdkpy.event._framework import EVENT_POOL_SIZE as EVENT_POOL_SIZE
from spdkpy.event._framework import ReactorFramework as ReactorFramework
from spdkpy.event._framework import ReactorState as ReactorState
from spdkpy.event._framework import event_allocate as event_allocate
from spdkpy.event._framework import event_call as event_call
from spdkpy.event._framework import for_each_reactor as for_each_reactor
from spdkpy.event._framework import get_framework as get_framework
from spdkpy.event._framework import reactors_fini as reactors_fini
from spdkpy.event._framework import reactors_init as reactors_init
from spdkpy.event._reactor import EVENT_BATCH_SIZE as EVENT_BATCH_SIZE
from spdkpy.event._reactor import Event as Event
from spdkpy.event._reactor import LwThread as LwThread
from spdkpy.event._reactor import Reactor as Reactor
from spdkpy.event._reactor import ReactorStatistics as ReactorStatistics
from spdkpy.event._reactor import current_reactor as current_reactor
from spdkpy.event._scheduler import CoreInfo as CoreInfo
from spdkpy.event._scheduler import DynamicOptions as DynamicOptions
from spdkpy.event._scheduler import FrequencyStep as FrequencyStep
from spdkpy.event._scheduler import Placement as Placement
from spdkpy.event._scheduler import ThreadInfo as ThreadInfo
from spdkpy.event._scheduler import balance_dynamic as balance_dynamic
from spdkpy.event._scheduler import balance_gscheduler as balance_gscheduler
from spdkpy.event._scheduler import balance_static as balance_static
from spdkpy.event._scheduler import busy_pct as busy_pct
from spdkpy.event._scheduling import DEFAULT_PERIOD_US as DEFAULT_SCHEDULER_PERIOD_US
from spdkpy.event._scheduling import CpufreqGovernor as CpufreqGovernor
from spdkpy.event._scheduling import DynamicScheduler as DynamicScheduler
from spdkpy.event._scheduling import Governor as Governor
from spdkpy.event._scheduling import GScheduler as GScheduler
from spdkpy.event._scheduling import RoundReport as RoundReport
from spdkpy.event._scheduling import Scheduler as Scheduler
from spdkpy.event._scheduling import Scheduling as Scheduling
from spdkpy.event._scheduling import StaticScheduler as StaticScheduler
from spdkpy.event._scheduling import register_scheduler as register_scheduler
from spdkpy.event._scheduling import scheduler_names as scheduler_names

__all__ = [
    "DEFAULT_SCHEDULER_PERIOD_US",
    "EVENT_BATCH_SIZE",
    "EVENT_POOL_SIZE",
    "CoreInfo",
    "CpufreqGovernor",
    "DynamicOptions",
    "DynamicScheduler",
    "Event",
    "FrequencyStep",
    "GScheduler",
    "Governor",
    "LwThread",
    "Placement",
    "Reactor",
    "ReactorFramework",
    "ReactorState",
    "ReactorStatistics",
    "RoundReport",
    "Scheduler",
    "Scheduling",
    "StaticScheduler",
    "ThreadInfo",
    "balance_dynamic",
    "balance_gscheduler",
    "balance_static",
    "busy_pct",
    "current_reactor",
    "event_allocate",
    "event_call",
    "for_each_reactor",
    "get_framework",
    "reactors_fini",
    "reactors_init",
    "register_scheduler",
    "scheduler_names",
]
