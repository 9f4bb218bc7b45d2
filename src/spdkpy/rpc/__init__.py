"""The JSON-RPC server that SPDK's own client (``spdk-rpc``) drives (SPDK's ``lib/jsonrpc`` and
``lib/rpc``).

Layout: ``_codec`` is the sans-I/O framing (bytes in, requests out; responses to bytes), with no
socket code; ``_registry`` holds methods, RPC states and the request object handlers answer
through; ``_server`` moves bytes between sockets and the codec on the app thread. Built on
``env``, ``thread`` and ``event``; the app layer registers the framework's methods.
"""

from spdkpy.rpc._client import RpcClient as RpcClient
from spdkpy.rpc._client import RpcClientError as RpcClientError
from spdkpy.rpc._codec import INTERNAL_ERROR as INTERNAL_ERROR
from spdkpy.rpc._codec import INVALID_PARAMS as INVALID_PARAMS
from spdkpy.rpc._codec import INVALID_REQUEST as INVALID_REQUEST
from spdkpy.rpc._codec import METHOD_NOT_FOUND as METHOD_NOT_FOUND
from spdkpy.rpc._codec import PARSE_ERROR as PARSE_ERROR
from spdkpy.rpc._codec import STATE_ERROR as STATE_ERROR
from spdkpy.rpc._codec import StreamDecoder as StreamDecoder
from spdkpy.rpc._registry import RpcError as RpcError
from spdkpy.rpc._registry import RpcMethod as RpcMethod
from spdkpy.rpc._registry import RpcRegistry as RpcRegistry
from spdkpy.rpc._registry import RpcRequest as RpcRequest
from spdkpy.rpc._registry import RpcState as RpcState
from spdkpy.rpc._server import RPC_MAX_CONNECTIONS as RPC_MAX_CONNECTIONS
from spdkpy.rpc._server import RPC_POLL_PERIOD_US as RPC_POLL_PERIOD_US
from spdkpy.rpc._server import RpcServer as RpcServer

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RPC_MAX_CONNECTIONS",
    "RPC_POLL_PERIOD_US",
    "STATE_ERROR",
    "RpcClient",
    "RpcClientError",
    "RpcError",
    "RpcMethod",
    "RpcRegistry",
    "RpcRequest",
    "RpcServer",
    "RpcState",
    "StreamDecoder",
]
