"""brisk's exceptions: redis-py's class names and hierarchy, with brisk's status and category.

Every exception brisk raises is a :class:`RedisError` (also importable as ``BriskError``) and
carries:

- ``status``: the :class:`~brisk.Status` of the failed call (``Status.SERVER``, ...);
- ``category``: its :class:`~brisk.Category` (connection, access control, data, generic), the
  families the production guides of redis-py, go-redis and Jedis document;
- ``prefix`` (also ``status_code``, redis-py's name): the server's error code, the first word
  of its message (``"WRONGTYPE"``, ``"NOPERM"``), for errors the server sent; else ``None``.

The message is the server's whole text for server errors (``"WRONGTYPE Operation against a key
holding the wrong kind of value"``), brisk's explanation otherwise.

Which class: by status (CONNECTION -> :class:`ConnectionError`, TIMEOUT ->
:class:`TimeoutError`, SERVER -> :class:`ResponseError`, ...), refined by the server's prefix
as redis-py does (``NOSCRIPT`` -> :class:`NoScriptError`, ``EXECABORT`` ->
:class:`ExecAbortError`, ``NOPERM`` -> :class:`NoPermissionError`, ...). An error element of a
pipeline or transaction is such an exception object in the result list.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type

from . import _native
from .constants import Category, Status


class RedisError(Exception):
    """Base class of every brisk error (redis-py's ``RedisError``)."""

    status: Status
    category: Category
    prefix: Optional[str]

    def __init__(
        self,
        *args: object,
        status: int = Status.INTERNAL,
        prefix: Optional[str] = None,
    ) -> None:
        super().__init__(*args)
        self.status = Status(status) if status in Status._value2member_map_ else status  # type: ignore[assignment]
        self.category = Category(_native.status_category(int(status)))
        self.prefix = prefix

    @property
    def status_code(self) -> Optional[str]:
        """The server's error code (redis-py's attribute name); same as ``prefix``."""
        return self.prefix

    @property
    def is_retryable(self) -> bool:
        """Whether brisk's default retry policy retries this status."""
        return bool(_native.status_is_retryable(int(self.status)))

    def __reduce__(self) -> Tuple[Any, ...]:  # keeps status and prefix through pickling
        return (_rebuild, (type(self), self.args, int(self.status), self.prefix))


def _rebuild(
    cls: Type["RedisError"], args: Tuple[object, ...], status: int, prefix: Optional[str]
) -> "RedisError":
    return cls(*args, status=status, prefix=prefix)


BriskError = RedisError


class ConnectionError(RedisError):
    """Connection refused, reset or lost; DNS failure (status CONNECTION)."""


class TimeoutError(RedisError):
    """A connect, read or write timeout, or the command deadline (status TIMEOUT)."""


class AuthenticationError(ConnectionError):
    """WRONGPASS, NOAUTH: the credentials were refused (status AUTH)."""


class AuthorizationError(ConnectionError):
    """redis-py's class for authorization failures at connect time (kept for compatibility)."""


class BusyLoadingError(ConnectionError):
    """LOADING: the server is loading its dataset (status BUSY_LOADING)."""


class TLSError(ConnectionError):
    """The TLS handshake or certificate check failed, or TLS files are unusable (status TLS)."""


class MaxConnectionsError(ConnectionError):
    """No pooled connection became free within the pool's max wait (status POOL_EXHAUSTED)."""


class MasterNotFoundError(ConnectionError):
    """Sentinels answered but none monitors the master name (status SENTINEL)."""


class InvalidResponse(RedisError):
    """The peer sent bytes that are not valid RESP, or past brisk's limits (status PROTOCOL)."""


class ResponseError(RedisError):
    """An error reply from the server (status SERVER); the message is the server's text."""


class DataError(RedisError):
    """Bad input: an argument of a type Redis cannot take, a malformed URL or option, a command
    refused before sending (status INVALID_ARGUMENT)."""


class PubSubError(RedisError):
    """A Pub/Sub misuse (redis-py's class)."""


class WatchError(RedisError):
    """A transaction was aborted because a WATCHed key changed (status WATCH)."""


class ClientClosedError(RedisError):
    """The client, pipeline or session was closed (status CLOSED)."""


class InternalError(RedisError):
    """A bug in brisk (status INTERNAL): please report it."""


class NoScriptError(ResponseError):
    """NOSCRIPT: no script with that SHA1."""


class OutOfMemoryError(ResponseError):
    """OOM: the server is out of memory (maxmemory with noeviction)."""


class ExecAbortError(ResponseError):
    """EXECABORT: the transaction was discarded because a command in it was refused."""


class ReadOnlyError(ResponseError):
    """READONLY: a write reached a replica (status READONLY)."""


class NoPermissionError(ResponseError):
    """NOPERM: the ACL user may not run this command or touch this key (status AUTH)."""


class ModuleError(ResponseError):
    """A module could not be loaded or unloaded."""


class ClusterError(RedisError):
    """Base of cluster errors."""


class ClusterDownError(ClusterError, ResponseError):
    """CLUSTERDOWN (and TRYAGAIN once retries are spent) (status CLUSTER_DOWN)."""


class MasterDownError(ClusterDownError):
    """MASTERDOWN: the replica lost its link to its primary."""


class TryAgainError(ResponseError):
    """TRYAGAIN: a multi-key command during resharding."""


class ClusterCrossSlotError(ResponseError):
    """CROSSSLOT: the keys of a command are in different slots."""


class AskError(ResponseError):
    """ASK (brisk follows redirections; seen only in raw replies)."""


class MovedError(AskError):
    """MOVED (brisk follows redirections; seen only in raw replies)."""


_BY_STATUS: Dict[int, Type[RedisError]] = {
    Status.INVALID_ARGUMENT: DataError,
    Status.CONNECTION: ConnectionError,
    Status.TIMEOUT: TimeoutError,
    Status.AUTH: AuthenticationError,
    Status.SERVER: ResponseError,
    Status.BUSY_LOADING: BusyLoadingError,
    Status.CLUSTER_DOWN: ClusterDownError,
    Status.READONLY: ReadOnlyError,
    Status.WATCH: WatchError,
    Status.POOL_EXHAUSTED: MaxConnectionsError,
    Status.PROTOCOL: InvalidResponse,
    Status.TLS: TLSError,
    Status.SENTINEL: MasterNotFoundError,
    Status.CLOSED: ClientClosedError,
    Status.INTERNAL: InternalError,
}

# The server's error codes: their class, and the status brisk gives them (as a failed call; an
# error element has no status of its own, so it gets this one).
_BY_PREFIX: Dict[str, Tuple[Type[RedisError], Status]] = {
    "OOM": (OutOfMemoryError, Status.SERVER),
    "EXECABORT": (ExecAbortError, Status.SERVER),
    "NOSCRIPT": (NoScriptError, Status.SERVER),
    "CROSSSLOT": (ClusterCrossSlotError, Status.SERVER),
    "TRYAGAIN": (TryAgainError, Status.SERVER),
    "ASK": (AskError, Status.SERVER),
    "MOVED": (MovedError, Status.SERVER),
    "MASTERDOWN": (MasterDownError, Status.SERVER),
    "LOADING": (BusyLoadingError, Status.BUSY_LOADING),
    "READONLY": (ReadOnlyError, Status.READONLY),
    "CLUSTERDOWN": (ClusterDownError, Status.CLUSTER_DOWN),
    "WRONGPASS": (AuthenticationError, Status.AUTH),
    "NOAUTH": (AuthenticationError, Status.AUTH),
    "NOPERM": (NoPermissionError, Status.AUTH),
}

# Statuses whose message is the server's text, which starts with its error code.
_SERVER_TEXT = frozenset(
    {Status.AUTH, Status.SERVER, Status.BUSY_LOADING, Status.CLUSTER_DOWN, Status.READONLY}
)


def _prefix_of(message: str) -> Optional[str]:
    word = message.split(" ", 1)[0]
    return word if word and word.isupper() and word.replace("_", "").isalnum() else None


def _from_status(status: int, message: str) -> RedisError:
    """The exception for a failed call (called by the extension)."""
    cls = _BY_STATUS.get(status, RedisError)
    prefix = _prefix_of(message) if status in _SERVER_TEXT else None
    if prefix is not None and prefix in _BY_PREFIX:
        refined, refined_status = _BY_PREFIX[prefix]
        if refined_status == status:
            cls = refined
    return cls(message, status=status, prefix=prefix)


def _from_reply(text: str) -> RedisError:
    """The exception object for an error element of a reply (called by the extension)."""
    prefix = _prefix_of(text)
    cls, status = _BY_PREFIX.get(prefix or "", (ResponseError, Status.SERVER))
    return cls(text, status=status, prefix=prefix)


def _annotate(exc: BaseException, index: int) -> None:
    """Says which command of a pipeline failed, as redis-py does (called by the extension)."""
    if exc.args:
        exc.args = (f"Command # {index} of pipeline caused error: {exc.args[0]}",) + exc.args[1:]
