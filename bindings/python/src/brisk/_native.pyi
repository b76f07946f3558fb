"""Type stubs of the compiled extension (see _native.c)."""

from typing import Any, Callable, Iterable, List, NamedTuple, Optional, Tuple

HEADER_VERSION: str

class Event(NamedTuple):
    kind: int
    status: int
    command: str
    duration_us: int
    attempt: int
    server_address: Optional[str]
    error_type: Optional[str]
    batch_size: int
    db: int
    cache_reason: int

class Message(NamedTuple):
    kind: int
    channel: Any
    pattern: Any
    payload: Any

class Config:
    def __init__(self) -> None: ...
    def set(self, name: str, *values: Any) -> None: ...
    @classmethod
    def setters(cls) -> List[str]: ...
    def set_event_callback(self, fn: Optional[Callable[[Event], Any]]) -> None: ...
    def set_retry(self, backoff: int, base_ms: int, cap_ms: int, retries: int) -> None: ...
    def set_retry_on_errors(self, statuses: Iterable[int]) -> None: ...

class AsyncBridge:
    def __init__(
        self, decode_responses: bool = ..., encoding: str = ..., encoding_errors: str = ...
    ) -> None: ...
    def drain(self) -> List[Tuple[Any, bool, Any]]: ...
    def fileno(self) -> int: ...

class Client:
    closed: bool
    def __init__(
        self,
        config: Config,
        decode_responses: bool = ...,
        encoding: str = ...,
        encoding_errors: str = ...,
    ) -> None: ...
    def execute_command(self, *args: Any) -> Any: ...
    def ping(self) -> bool: ...
    def _command_async(self, bridge: AsyncBridge, token: Any, *args: Any) -> None: ...
    def stat(self, which: int) -> int: ...
    def _flush_telemetry(self, timeout_ms: int) -> bool: ...
    def telemetry_dropped(self) -> int: ...
    def cache_flush(self) -> None: ...
    def close(self) -> None: ...

class Subscriber:
    closed: bool
    def __init__(self, client: Client) -> None: ...
    def _change(self, subscribe: bool, kind: int, *names: Any) -> None: ...
    def _next(self, timeout_ms: int) -> Optional[Message]: ...
    def fileno(self) -> int: ...
    def stat(self, which: int) -> int: ...
    def close(self) -> None: ...

class Pipeline:
    def __init__(self, client: Client, transaction: bool = ...) -> None: ...
    def execute_command(self, *args: Any) -> Any: ...
    def _execute(self, raise_on_error: bool) -> List[Any]: ...
    def reset(self) -> None: ...
    def close(self) -> None: ...
    def __len__(self) -> int: ...

class Session:
    def __init__(self, client: Client) -> None: ...
    def execute_command(self, *args: Any) -> Any: ...
    def close(self) -> None: ...

def _install(
    from_status: Callable[[int, str], BaseException],
    from_reply: Callable[[str], BaseException],
    annotate: Callable[[BaseException, int], None],
    data_error: type,
) -> None: ...
def version() -> str: ...
def set_trace_parent(traceparent: Optional[str]) -> None: ...
def status_name(status: int) -> str: ...
def status_category(status: int) -> int: ...
def status_is_retryable(status: int) -> bool: ...
def retry_backoff_ms(backoff: int, base_ms: int, cap_ms: int, retries: int, attempt: int) -> int: ...

OK: int
ERR_INVALID_ARGUMENT: int
ERR_CONNECTION: int
ERR_TIMEOUT: int
ERR_AUTH: int
ERR_SERVER: int
ERR_BUSY_LOADING: int
ERR_CLUSTER_DOWN: int
ERR_READONLY: int
ERR_WATCH: int
ERR_POOL_EXHAUSTED: int
ERR_PROTOCOL: int
ERR_TLS: int
ERR_SENTINEL: int
ERR_CLOSED: int
ERR_INTERNAL: int
CATEGORY_NONE: int
CATEGORY_CONNECTION: int
CATEGORY_ACCESS_CONTROL: int
CATEGORY_DATA: int
CATEGORY_GENERIC: int
STAT_COMMANDS: int
STAT_ERRORS: int
STAT_RETRIES: int
STAT_TIMEOUTS: int
STAT_CONNECTS: int
STAT_RECONNECTS: int
STAT_HEALTH_CHECKS: int
STAT_HEALTH_CHECK_FAILURES: int
STAT_POOL_WAITS: int
STAT_POOL_EXHAUSTED: int
STAT_POOL_OPEN: int
STAT_POOL_IDLE: int
STAT_CACHE_HITS: int
STAT_CACHE_MISSES: int
STAT_CACHE_INVALIDATIONS: int
STAT_TOPOLOGY_REFRESHES: int
STAT_REDIRECTS: int
STAT_CACHE_ENTRIES: int
STAT_CACHE_BYTES: int
STAT_CACHE_EVICTIONS: int
STAT_PUBSUB_MESSAGES: int
STAT_PUBSUB_DROPPED: int
STAT_PUBSUB_RESUBSCRIBES: int
EVENT_COMMAND: int
EVENT_RETRY: int
EVENT_CONNECT: int
EVENT_DISCONNECT: int
EVENT_HEALTH_CHECK: int
EVENT_POOL_WAIT: int
EVENT_TOPOLOGY: int
EVENT_CACHE_INVALIDATE: int
EVENT_RESUBSCRIBE: int
CACHE_REASON_NONE: int
CACHE_REASON_INVALIDATION: int
CACHE_REASON_FLUSH: int
CACHE_REASON_CONNECTION_LOST: int
CACHE_REASON_TOPOLOGY: int
CACHE_DEFAULT: int
CACHE_BROADCAST: int
CACHE_OPTIN: int
OVERFLOW_DROP_OLDEST: int
OVERFLOW_DROP_NEWEST: int
OVERFLOW_BLOCK: int
SUBSCRIPTION_CHANNEL: int
SUBSCRIPTION_PATTERN: int
SUBSCRIPTION_SHARD: int
MODE_STANDALONE: int
MODE_CLUSTER: int
MODE_SENTINEL: int
READ_PRIMARY: int
READ_REPLICA_PREFERRED: int
READ_ANY: int
RETRY_WRITES_SAFE: int
RETRY_WRITES_ALWAYS: int
BACKOFF_NONE: int
BACKOFF_CONSTANT: int
BACKOFF_EXPONENTIAL: int
BACKOFF_FULL_JITTER: int
BACKOFF_EQUAL_JITTER: int
BACKOFF_DECORRELATED_JITTER: int
