"""The sock layer: non-blocking sockets, socket groups and the implementation registry (SPDK's
``lib/sock`` with ``module/sock/posix``).

Layout: ``_impl`` the implementation registry and the per-implementation and per-socket options,
``_posix`` the ``posix`` implementation (registered and default at import), ``_sock`` the
:class:`Sock` API and its I/O contract, ``_group`` :class:`SockGroup` (one epoll set, polled from
a period-0 poller, able to wake a sleeping reactor), ``_rpc`` the ``sock_*`` JSON-RPC methods.
Built on ``env``, ``thread``, ``event`` and ``rpc``.
"""

from spdkpy.sock._group import MAX_EVENTS_PER_POLL as MAX_EVENTS_PER_POLL
from spdkpy.sock._group import SockCallback as SockCallback
from spdkpy.sock._group import SockGroup as SockGroup
from spdkpy.sock._impl import SockImpl as SockImpl
from spdkpy.sock._impl import SockImplOptions as SockImplOptions
from spdkpy.sock._impl import SockOpts as SockOpts
from spdkpy.sock._impl import get_default_impl as get_default_impl
from spdkpy.sock._impl import get_impl as get_impl
from spdkpy.sock._impl import impl_get_opts as impl_get_opts
from spdkpy.sock._impl import impl_names as impl_names
from spdkpy.sock._impl import impl_set_opts as impl_set_opts
from spdkpy.sock._impl import set_default_impl as set_default_impl
from spdkpy.sock._rpc import SOCK_RPC_METHODS as SOCK_RPC_METHODS
from spdkpy.sock._rpc import register_sock_methods as register_sock_methods
from spdkpy.sock._sock import IOV_BATCH_SIZE as IOV_BATCH_SIZE
from spdkpy.sock._sock import BytesLike as BytesLike
from spdkpy.sock._sock import Sock as Sock
from spdkpy.sock._sock import SockAddrs as SockAddrs
from spdkpy.sock._sock import WriteCallback as WriteCallback
from spdkpy.sock._sock import connect as connect
from spdkpy.sock._sock import listen as listen

__all__ = [
    "IOV_BATCH_SIZE",
    "MAX_EVENTS_PER_POLL",
    "SOCK_RPC_METHODS",
    "BytesLike",
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
]
