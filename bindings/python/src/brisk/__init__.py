"""brisk: a fast Redis and Valkey client for Python, on libbrisk.

    import brisk

    with brisk.Client("localhost", 6379) as r:        # or brisk.Client.from_url("redis://...")
        r.execute_command("SET", "greeting", "hello")
        r.execute_command("GET", "greeting")           # b'hello'
        with r.pipeline() as p:
            p.execute_command("INCR", "n").execute_command("GET", "n")
            p.execute()                                # [1, b'1']

The C library does the networking (pooling, retries, timeouts, health checks, cluster); this
package is a thin compiled layer over its C API with redis-py's conventions: reply types,
exception classes, option names. See :class:`Client`.
"""

from typing import Optional

from . import _native
from .client import AsyncClient, Client, Pipeline, Session
from .constants import (
    BackoffKind,
    CacheMode,
    CacheReason,
    Category,
    EventKind,
    Mode,
    Overflow,
    ReadFrom,
    RetryWrites,
    Stat,
    Status,
    Subscription,
)
from .exceptions import (
    AskError,
    AuthenticationError,
    AuthorizationError,
    BriskError,
    BusyLoadingError,
    ClientClosedError,
    ClusterCrossSlotError,
    ClusterDownError,
    ClusterError,
    ConnectionError,
    DataError,
    ExecAbortError,
    InternalError,
    InvalidResponse,
    MasterDownError,
    MasterNotFoundError,
    MaxConnectionsError,
    ModuleError,
    MovedError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    PubSubError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
    TLSError,
    TryAgainError,
    WatchError,
    _annotate,
    _from_reply,
    _from_status,
)
from .pubsub import Message, PubSub, Subscriber
from .retry import (
    ConstantBackoff,
    DecorrelatedJitterBackoff,
    EqualJitterBackoff,
    ExponentialBackoff,
    FullJitterBackoff,
    NoBackoff,
    Retry,
)

_native._install(_from_status, _from_reply, _annotate, DataError)

__version__ = "0.1.0"

Event = _native.Event
"""What ``event_callback`` receives: kind, status, command, duration_us, attempt,
server_address, error_type, batch_size, db, cache_reason (a named tuple; never arguments or
values)."""


def version() -> str:
    """The version of libbrisk in use (``brisk_version()``)."""
    return _native.version()


def set_trace_parent(traceparent: Optional[str]) -> None:
    """Makes the spans of the commands this thread issues next (OpenTelemetry, see the
    ``otel_endpoint`` option) children of the application's span: ``traceparent`` is a W3C
    value, ``"00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"``, whose sampled flag decides
    whether they are recorded; ``None`` clears it. Per thread, until changed (an async command
    takes the parent of the thread that starts it). :class:`DataError` for a malformed value
    (the parent is then left as it was)."""
    _native.set_trace_parent(traceparent)


def status_name(status: int) -> str:
    """The C constant's name of a status, e.g. ``"BRISK_ERR_TIMEOUT"``."""
    return _native.status_name(status)


__all__ = [
    "AskError",
    "AsyncClient",
    "AuthenticationError",
    "AuthorizationError",
    "BackoffKind",
    "BriskError",
    "BusyLoadingError",
    "CacheMode",
    "CacheReason",
    "Category",
    "Client",
    "ClientClosedError",
    "ClusterCrossSlotError",
    "ClusterDownError",
    "ClusterError",
    "ConnectionError",
    "ConstantBackoff",
    "DataError",
    "DecorrelatedJitterBackoff",
    "EqualJitterBackoff",
    "Event",
    "EventKind",
    "ExecAbortError",
    "ExponentialBackoff",
    "FullJitterBackoff",
    "InternalError",
    "InvalidResponse",
    "MasterDownError",
    "MasterNotFoundError",
    "MaxConnectionsError",
    "Message",
    "Mode",
    "ModuleError",
    "MovedError",
    "NoBackoff",
    "NoPermissionError",
    "NoScriptError",
    "OutOfMemoryError",
    "Overflow",
    "Pipeline",
    "PubSub",
    "PubSubError",
    "ReadFrom",
    "ReadOnlyError",
    "RedisError",
    "ResponseError",
    "Retry",
    "RetryWrites",
    "Session",
    "Stat",
    "Status",
    "Subscriber",
    "Subscription",
    "TLSError",
    "TimeoutError",
    "TryAgainError",
    "WatchError",
    "set_trace_parent",
    "status_name",
    "version",
]
