"""The client, its pipelines, transactions and sessions, and the asyncio bridge."""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
import weakref
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

from . import _native
from .constants import Stat
from .exceptions import WatchError
from .options import build_config, seconds_to_ms

if TYPE_CHECKING:
    from .pubsub import Subscriber

EncodableT = Union[bytes, bytearray, memoryview, str, int, float]
ResponseT = Any
"""What a command returns: bytes (str with ``decode_responses``), int, float, bool, None, list,
dict, set, or an exception object for an error element inside an aggregate."""

_T = TypeVar("_T")


class _Codec(NamedTuple):
    """How str arguments are encoded and replies decoded (redis-py's options)."""

    decode_responses: bool
    encoding: str
    encoding_errors: str

# Clients still open when the interpreter exits are closed first, so that brisk's threads never
# call into a Python that is shutting down (event callbacks take the GIL).
_open_clients: "weakref.WeakSet[Client]" = weakref.WeakSet()
_open_lock = threading.Lock()


@atexit.register
def _close_open_clients() -> None:
    with _open_lock:
        clients = list(_open_clients)
    for client in clients:
        client.close()


class Client(_native.Client):
    """A Redis/Valkey client: a pool of connections shared by every thread.

    ``Client()`` talks to localhost:6379; ``Client(host, port, **options)`` or
    ``Client.from_url("redis://...", **options)`` elsewhere. Options (keyword arguments; the
    redis-py name in parentheses where it differs; durations in seconds, ``None`` = no limit):

    - address and identity: ``unix_socket_path``, ``username``, ``password``, ``db``,
      ``client_name``, ``protocol`` (3, the default, or 2)
    - timeouts: ``connect_timeout`` (``socket_connect_timeout``), ``socket_timeout`` (read and
      write), ``read_timeout``, ``write_timeout``, ``command_deadline`` (one whole command,
      retries included), ``tcp_keepalive`` (``(idle_s, interval_s, probes)`` or None/False)
    - pool: ``pool_size`` (``max_connections``), ``pool_max_wait`` (``pool_timeout``),
      ``pool_min_idle``, ``pool_idle_timeout``, ``pool_max_lifetime``,
      ``health_check_interval``
    - TLS: ``tls`` (``ssl``), ``tls_ca_file`` (``ssl_ca_certs``), ``tls_client_cert``
      (``(cert, key)``, or ``ssl_certfile`` + ``ssl_keyfile``), ``tls_server_name``,
      ``tls_insecure_skip_verify`` (or ``ssl_cert_reqs="none"``)
    - retries: ``retry`` (a :class:`brisk.Retry`), ``retry_on_timeout``, ``retry_on_error``
      (exception classes or statuses), ``retry_writes`` (``"safe"``, the default: a write that
      may have reached the server is never replayed; or ``"always"``)
    - topology: ``mode`` (``"standalone"``, ``"cluster"``, ``"sentinel"``), ``nodes``
      (``startup_nodes``: ``[("host", port), "host:port", ...]``; the sentinels in Sentinel
      mode), ``cluster_error_retry_attempts``, ``cluster_refresh_interval``, ``read_from``
      (``"primary"``, ``"replica_preferred"``, ``"any"``), ``sentinel_master``
      (``service_name``), ``sentinel_auth`` (``(username or None, password)``),
      ``sentinel_timeout``
    - observability: ``event_callback`` (called with a :class:`brisk.Event` for every command,
      retry, connect, ...: on the thread that did the work, so keep it short)
    - OpenTelemetry (spans and metrics over OTLP/HTTP, see :meth:`flush_telemetry` and
      :func:`brisk.set_trace_parent`): ``otel_endpoint`` (the collector's base URL,
      ``"http://host:4318"``; turns it on), ``otel_traces_sample_ratio`` (0..1),
      ``otel_export_interval``, ``otel_export_timeout``
    - client-side caching (RESP3 or RESP2; the server must track, Redis 6+ or Valkey):
      ``client_cache`` (max entries, or ``(max_entries, ttl_s)``; TTL 300 s unless given,
      None in the tuple: no TTL), ``client_cache_max_bytes``, ``client_cache_mode``
      (``"default"``, ``"broadcast"``, ``"optin"``), ``client_cache_prefixes`` (a list); see
      :meth:`cache_flush` and the ``cache_*`` stats
    - Pub/Sub (:meth:`pubsub`): ``pubsub_queue`` (max queued messages per subscriber, or
      ``(max, overflow)`` with overflow ``"drop_oldest"``, the default, ``"drop_newest"`` or
      ``"block"``), ``pubsub_health_check`` (``(interval_s, timeout_s)`` of the PINGs on an
      idle subscriber connection, or None: no PINGs)
    - replies: ``decode_responses`` (str instead of bytes), ``encoding``, ``encoding_errors``
    - ``max_reply_bytes``: the most memory one reply may take.

    Replies follow redis-py's types: bytes (or str), int, float, bool, None, list, dict, set;
    an error element inside an aggregate is an exception object. Commands are not mapped to
    methods: ``client.execute_command("SET", "k", "v")``.
    """

    def __init__(
        self,
        host: Optional[str] = None,
        port: Optional[int] = None,
        *,
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
        **options: Any,
    ) -> None:
        self._init(None, host, port, decode_responses, encoding, encoding_errors, options)

    def _init(
        self,
        url: Optional[str],
        host: Optional[str],
        port: Optional[int],
        decode_responses: bool,
        encoding: str,
        encoding_errors: str,
        options: Dict[str, Any],
    ) -> None:
        self._bridges: Dict[asyncio.AbstractEventLoop, _native.AsyncBridge] = {}
        self._codec = _Codec(decode_responses, encoding, encoding_errors)
        config = build_config(url, host, port, options)
        super().__init__(config, *self._codec)
        with _open_lock:
            _open_clients.add(self)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        decode_responses: bool = False,
        encoding: str = "utf-8",
        encoding_errors: str = "strict",
        **options: Any,
    ) -> "Client":
        """A client from ``redis://[user[:password]@]host[:port][/db][?option=value&...]``,
        ``rediss://`` (TLS), ``redis+cluster://`` or ``unix:///path``; options given here
        override the URL's. The URL options are brisk's (see brisk.h,
        ``brisk_config_set_url``)."""
        client = cls.__new__(cls)
        client._init(url, None, None, decode_responses, encoding, encoding_errors, options)
        return client

    # execute_command(*args), ping(), stat(which), telemetry_dropped() and cache_flush() (drops
    # every client-side cache entry now) are the extension's.

    def pubsub(self) -> "Subscriber":
        """A Pub/Sub subscriber on this client (see :class:`brisk.Subscriber`): its own
        connections, opened by its first subscription. Use it as a context manager."""
        from .pubsub import Subscriber

        return Subscriber(self)

    def flush_telemetry(self, timeout: float = 2.0) -> bool:
        """Exports the OpenTelemetry spans and metrics buffered now (see ``otel_endpoint``),
        waiting at most ``timeout`` seconds for the collector: True when sent (or OpenTelemetry
        is off), False when the time ran out (the export goes on in the background). Telemetry
        a collector refuses is dropped and counted (``telemetry_dropped()``), not raised."""
        return self._flush_telemetry(seconds_to_ms("timeout", timeout))

    def pipeline(self, transaction: bool = False) -> "Pipeline":
        """A pipeline: ``execute_command`` queues, ``execute()`` sends all in one round trip.
        ``transaction=True`` wraps them in MULTI/EXEC (unlike redis-py, not the default)."""
        return Pipeline(self, transaction)

    def transaction(
        self,
        func: Optional[Callable[["Session"], _T]] = None,
        *watches: EncodableT,
        value_from_callable: bool = False,
        watch_delay: Optional[float] = None,
        max_attempts: Optional[int] = None,
    ) -> Any:
        """Without ``func``: a MULTI/EXEC pipeline (``client.pipeline(transaction=True)``).

        With ``func``: redis-py's optimistic transaction. On a session, WATCH ``watches``, call
        ``func(session)`` (its commands run at once, so it can read; after
        ``session.multi()`` they are queued), then EXEC the queue; when a watched key changed
        meanwhile (:class:`WatchError`), start again (after ``watch_delay`` seconds, at most
        ``max_attempts`` times if given). Returns EXEC's results, or ``func``'s value with
        ``value_from_callable``.
        """
        if func is None:
            if watches:
                raise TypeError("watches need a func: transaction(func, *watches)")
            return Pipeline(self, True)
        attempts = 0
        while True:
            with self.session() as session:
                try:
                    if watches:
                        session.watch(*watches)
                    value = func(session)
                    results = session.execute()
                    return value if value_from_callable else results
                except WatchError:
                    attempts += 1
                    if max_attempts is not None and attempts >= max_attempts:
                        raise
            if watch_delay:
                time.sleep(watch_delay)

    def session(self) -> "Session":
        """A session: one pooled connection pinned for commands that must share it (WATCH,
        MULTI/EXEC, blocking commands, CLIENT ...). Use it as a context manager."""
        return Session(self)

    def execute_command_async(self, *args: EncodableT) -> "asyncio.Future[ResponseT]":
        """Starts a command without blocking and returns an asyncio future of its reply (in the
        running loop). Concurrent async commands share one pipelined connection per node."""
        loop = asyncio.get_running_loop()
        bridge = self._bridges.get(loop)
        if bridge is None:
            bridge = _native.AsyncBridge(*self._codec)
            loop.add_reader(bridge.fileno(), _deliver, bridge)
            self._bridges[loop] = bridge
        future = loop.create_future()
        self._command_async(bridge, future, *args)
        return future

    def stats(self) -> Dict[str, int]:
        """Every counter and gauge, by lower-case name (``{"commands": 5, ...}``)."""
        return {s.name.lower(): self.stat(s) for s in Stat}

    def close(self) -> None:
        """Closes every connection. Waits for calls in flight on other threads; pending async
        commands fail with :class:`ClientClosedError`. Idempotent."""
        super().close()
        with _open_lock:
            _open_clients.discard(self)
        bridges = getattr(self, "_bridges", {})
        for loop, bridge in list(bridges.items()):
            _retire(loop, bridge)
        bridges.clear()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<brisk.Client{' (closed)' if self.closed else ''}>"


def _deliver(bridge: _native.AsyncBridge) -> None:
    for future, ok, value in bridge.drain():
        if future.done():  # cancelled meanwhile
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _retire(loop: asyncio.AbstractEventLoop, bridge: _native.AsyncBridge) -> None:
    """After the client was freed (every callback done): settles the futures and unhooks."""
    if loop.is_closed():
        bridge.drain()
        return
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None

    def finish() -> None:
        loop.remove_reader(bridge.fileno())
        _deliver(bridge)

    if current is loop:
        finish()
    else:
        loop.call_soon_threadsafe(finish)


class Pipeline(_native.Pipeline):
    """Commands sent in one round trip; with ``transaction``, between MULTI and EXEC.

    ``execute_command(*args)`` queues a command and returns the pipeline (so calls chain);
    ``execute()`` sends them and returns one result per command. Use one pipeline per thread;
    after ``execute()`` it is empty and can be reused. As a context manager it is closed at
    the end.
    """

    def __init__(self, client: Client, transaction: bool = False) -> None:
        super().__init__(client, transaction)
        self.transaction = transaction

    def execute(self, raise_on_error: bool = True) -> List[ResponseT]:
        """Sends every queued command; returns their results in order. A command's error reply
        is an exception object in the list; with ``raise_on_error`` (redis-py's default) the
        first of them is raised instead. A transaction whose WATCHed key changed raises
        :class:`WatchError`; one the server discarded raises :class:`ExecAbortError`."""
        return self._execute(raise_on_error)

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __bool__(self) -> bool:
        return True  # an empty pipeline is still a pipeline (as in redis-py)


class Session(_native.Session):
    """One pooled connection pinned for commands that must share it.

    ``execute_command`` runs a command at once, on this connection. For optimistic
    transactions, as redis-py's pipelines in immediate mode: ``watch(*keys)``, read, then
    ``multi()``: from there ``execute_command`` queues (and returns the session) until
    ``execute()`` sends MULTI, the queue and EXEC, and returns EXEC's results (or raises
    :class:`WatchError` when a watched key changed). Closing the session (the end of a ``with``
    block) gives the connection back, UNWATCHed and without an open MULTI.
    """

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self._queue: Optional[List[Tuple[EncodableT, ...]]] = None

    def execute_command(self, *args: EncodableT) -> Any:
        if self._queue is not None:
            self._queue.append(args)
            return self
        return super().execute_command(*args)

    def watch(self, *keys: EncodableT) -> None:
        """WATCH keys: EXEC fails with :class:`WatchError` if any changes before it."""
        if self._queue is not None:
            raise RuntimeError("WATCH after multi() is not allowed")
        super().execute_command("WATCH", *keys)

    def unwatch(self) -> None:
        """Forgets every WATCHed key."""
        super().execute_command("UNWATCH")

    def multi(self) -> None:
        """From now on ``execute_command`` queues; ``execute()`` runs the queue atomically."""
        if self._queue is not None:
            raise RuntimeError("multi() called twice")
        self._queue = []

    def execute(self, raise_on_error: bool = True) -> List[ResponseT]:
        """Sends MULTI, the queued commands and EXEC; returns EXEC's results (error elements are
        exception objects; with ``raise_on_error`` the first one, or the first command the
        server refused to queue, is raised). ``[]`` if ``multi()`` was not called."""
        queue, self._queue = self._queue, None
        if queue is None:
            return []
        run = super().execute_command
        refused: Optional[BaseException] = None
        run("MULTI")
        for index, args in enumerate(queue, 1):
            try:
                run(*args)
            except WatchError:
                raise
            except Exception as exc:  # the server refused to queue it: EXEC will abort
                if refused is None:
                    _annotate_refusal(exc, index)
                    refused = exc
        try:
            results: List[ResponseT] = run("EXEC")
        except Exception:
            if refused is not None:
                raise refused from None
            raise
        if raise_on_error:
            for index, item in enumerate(results, 1):
                if isinstance(item, Exception):
                    _annotate_refusal(item, index)
                    raise item
        return results

    def reset(self) -> None:
        """Drops the queue and UNWATCHes."""
        self._queue = None
        self.unwatch()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _annotate_refusal(exc: BaseException, index: int) -> None:
    from .exceptions import _annotate

    _annotate(exc, index)


class AsyncClient:
    """The asyncio face of a :class:`Client`: ``await client.execute_command(...)``.

    Takes the same arguments as :class:`Client` (``AsyncClient.from_url`` too). Commands are
    brisk's async commands, pipelined onto one connection per node and completed on the event
    loop. Pipelines and sessions are the blocking client's (``.sync``).
    """

    def __init__(self, host: Optional[str] = None, port: Optional[int] = None, **options: Any):
        self.sync = Client(host, port, **options)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "AsyncClient":
        client = cls.__new__(cls)
        client.sync = Client.from_url(url, **options)
        return client

    def execute_command(self, *args: EncodableT) -> Awaitable[ResponseT]:
        """A future of the command's reply (awaitable)."""
        return self.sync.execute_command_async(*args)

    async def ping(self) -> bool:
        return await self.execute_command("PING") in (b"PONG", "PONG")

    def stats(self) -> Dict[str, int]:
        return self.sync.stats()

    def flush_telemetry(self, timeout: float = 2.0) -> bool:
        """See :meth:`Client.flush_telemetry` (blocks for at most ``timeout`` seconds)."""
        return self.sync.flush_telemetry(timeout)

    def telemetry_dropped(self) -> int:
        return self.sync.telemetry_dropped()

    def pubsub(self) -> "Subscriber":
        """A subscriber (see :meth:`Client.pubsub`); from asyncio, take its messages with
        ``await sub.aget_message()`` or ``async for message in sub``."""
        return self.sync.pubsub()

    def cache_flush(self) -> None:
        """Drops every client-side cache entry now (see :meth:`Client.cache_flush`)."""
        self.sync.cache_flush()

    async def aclose(self) -> None:
        """Closes the client (pending commands fail with :class:`ClientClosedError`)."""
        self.sync.close()

    close = aclose

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


__all__: Sequence[str] = ["Client", "Pipeline", "Session", "AsyncClient"]
