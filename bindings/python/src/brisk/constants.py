"""The C API's constants as IntEnums; the numbers come from brisk.h through the extension."""

from __future__ import annotations

from enum import IntEnum

from . import _native as _n


class Status(IntEnum):
    """The outcome of a call (``brisk_status``)."""

    OK = _n.OK
    INVALID_ARGUMENT = _n.ERR_INVALID_ARGUMENT
    CONNECTION = _n.ERR_CONNECTION
    TIMEOUT = _n.ERR_TIMEOUT
    AUTH = _n.ERR_AUTH
    SERVER = _n.ERR_SERVER
    BUSY_LOADING = _n.ERR_BUSY_LOADING
    CLUSTER_DOWN = _n.ERR_CLUSTER_DOWN
    READONLY = _n.ERR_READONLY
    WATCH = _n.ERR_WATCH
    POOL_EXHAUSTED = _n.ERR_POOL_EXHAUSTED
    PROTOCOL = _n.ERR_PROTOCOL
    TLS = _n.ERR_TLS
    SENTINEL = _n.ERR_SENTINEL
    CLOSED = _n.ERR_CLOSED
    INTERNAL = _n.ERR_INTERNAL


class Category(IntEnum):
    """The error families of the redis-py, go-redis and Jedis production guides."""

    NONE = _n.CATEGORY_NONE
    CONNECTION = _n.CATEGORY_CONNECTION
    ACCESS_CONTROL = _n.CATEGORY_ACCESS_CONTROL
    DATA = _n.CATEGORY_DATA
    GENERIC = _n.CATEGORY_GENERIC


class Stat(IntEnum):
    """What ``Client.stat()`` reads: counters since the client was made, and gauges (POOL_OPEN,
    POOL_IDLE, CACHE_ENTRIES, CACHE_BYTES)."""

    COMMANDS = _n.STAT_COMMANDS
    ERRORS = _n.STAT_ERRORS
    RETRIES = _n.STAT_RETRIES
    TIMEOUTS = _n.STAT_TIMEOUTS
    CONNECTS = _n.STAT_CONNECTS
    RECONNECTS = _n.STAT_RECONNECTS
    HEALTH_CHECKS = _n.STAT_HEALTH_CHECKS
    HEALTH_CHECK_FAILURES = _n.STAT_HEALTH_CHECK_FAILURES
    POOL_WAITS = _n.STAT_POOL_WAITS
    POOL_EXHAUSTED = _n.STAT_POOL_EXHAUSTED
    POOL_OPEN = _n.STAT_POOL_OPEN
    POOL_IDLE = _n.STAT_POOL_IDLE
    CACHE_HITS = _n.STAT_CACHE_HITS
    CACHE_MISSES = _n.STAT_CACHE_MISSES
    CACHE_INVALIDATIONS = _n.STAT_CACHE_INVALIDATIONS
    TOPOLOGY_REFRESHES = _n.STAT_TOPOLOGY_REFRESHES
    REDIRECTS = _n.STAT_REDIRECTS
    CACHE_ENTRIES = _n.STAT_CACHE_ENTRIES
    CACHE_BYTES = _n.STAT_CACHE_BYTES
    CACHE_EVICTIONS = _n.STAT_CACHE_EVICTIONS
    PUBSUB_MESSAGES = _n.STAT_PUBSUB_MESSAGES
    PUBSUB_DROPPED = _n.STAT_PUBSUB_DROPPED
    PUBSUB_RESUBSCRIBES = _n.STAT_PUBSUB_RESUBSCRIBES


class EventKind(IntEnum):
    """``Event.kind``."""

    COMMAND = _n.EVENT_COMMAND
    RETRY = _n.EVENT_RETRY
    CONNECT = _n.EVENT_CONNECT
    DISCONNECT = _n.EVENT_DISCONNECT
    HEALTH_CHECK = _n.EVENT_HEALTH_CHECK
    POOL_WAIT = _n.EVENT_POOL_WAIT
    TOPOLOGY = _n.EVENT_TOPOLOGY
    CACHE_INVALIDATE = _n.EVENT_CACHE_INVALIDATE
    RESUBSCRIBE = _n.EVENT_RESUBSCRIBE


class CacheReason(IntEnum):
    """``Event.cache_reason``: why client-side cache entries were dropped (CACHE_INVALIDATE
    events; NONE for the others)."""

    NONE = _n.CACHE_REASON_NONE
    INVALIDATION = _n.CACHE_REASON_INVALIDATION
    FLUSH = _n.CACHE_REASON_FLUSH
    CONNECTION_LOST = _n.CACHE_REASON_CONNECTION_LOST
    TOPOLOGY = _n.CACHE_REASON_TOPOLOGY


class CacheMode(IntEnum):
    """How the server tracks what the client-side cache keeps (option ``client_cache_mode``)."""

    DEFAULT = _n.CACHE_DEFAULT
    BROADCAST = _n.CACHE_BROADCAST
    OPTIN = _n.CACHE_OPTIN


class Overflow(IntEnum):
    """What a subscriber's full queue does with a new message (option ``pubsub_queue``)."""

    DROP_OLDEST = _n.OVERFLOW_DROP_OLDEST
    DROP_NEWEST = _n.OVERFLOW_DROP_NEWEST
    BLOCK = _n.OVERFLOW_BLOCK


class Subscription(IntEnum):
    """The kind of a subscription, and ``Message.kind``."""

    CHANNEL = _n.SUBSCRIPTION_CHANNEL
    PATTERN = _n.SUBSCRIPTION_PATTERN
    SHARD = _n.SUBSCRIPTION_SHARD


class Mode(IntEnum):
    """The topology a client talks to (option ``mode``)."""

    STANDALONE = _n.MODE_STANDALONE
    CLUSTER = _n.MODE_CLUSTER
    SENTINEL = _n.MODE_SENTINEL


class ReadFrom(IntEnum):
    """Which cluster nodes serve read-only commands (option ``read_from``)."""

    PRIMARY = _n.READ_PRIMARY
    REPLICA_PREFERRED = _n.READ_REPLICA_PREFERRED
    ANY = _n.READ_ANY


class RetryWrites(IntEnum):
    """Whether a write that may have reached the server is retried (option ``retry_writes``)."""

    SAFE = _n.RETRY_WRITES_SAFE
    ALWAYS = _n.RETRY_WRITES_ALWAYS


class BackoffKind(IntEnum):
    """How the delay between attempts grows (``brisk_backoff``)."""

    NONE = _n.BACKOFF_NONE
    CONSTANT = _n.BACKOFF_CONSTANT
    EXPONENTIAL = _n.BACKOFF_EXPONENTIAL
    FULL_JITTER = _n.BACKOFF_FULL_JITTER
    EQUAL_JITTER = _n.BACKOFF_EQUAL_JITTER
    DECORRELATED_JITTER = _n.BACKOFF_DECORRELATED_JITTER
