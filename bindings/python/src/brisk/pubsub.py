"""Pub/Sub: a pull-style subscriber over libbrisk's (``brisk_subscriber_*``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Set, Union

from . import _native
from .constants import Stat, Subscription
from .exceptions import ClientClosedError

if TYPE_CHECKING:
    from .client import Client

Message = _native.Message
"""One message: ``kind`` (a :class:`Subscription`), ``channel``, ``pattern`` (None unless a
pattern subscription delivered it) and ``payload``; bytes, or str with ``decode_responses``
(a named tuple)."""

Name = Union[bytes, bytearray, memoryview, str, int, float]

_PUBSUB_STATS = (Stat.PUBSUB_MESSAGES, Stat.PUBSUB_DROPPED, Stat.PUBSUB_RESUBSCRIBES)


class Subscriber(_native.Subscriber):
    """Subscriptions to channels, patterns and shard channels, and the messages they bring.

    Made by :meth:`Client.pubsub` (or ``Subscriber(client)``). Its connections are its own, not
    the client's pool, and are opened by the first subscription; after a lost connection it
    reconnects and subscribes again by itself (at most once delivery: what is published while
    it is down is lost). Messages wait in a bounded queue (option ``pubsub_queue``) until taken:

    - ``get_message(timeout=0.0)``: the next message, or None (redis-py's name);
    - ``listen()``: iterate, waiting for each;
    - ``await aget_message(timeout=None)`` and ``async for message in subscriber``: from
      asyncio, without a thread (the loop waits on :meth:`fileno`);
    - ``fileno()``: a descriptor readable exactly while messages wait, for select/poll.

    Unlike redis-py, subscribe confirmations are never messages: ``subscribe()`` returns once
    the server confirmed (a round trip; it raises when the server refused). Names are bytes or
    str (encoded with the client's ``encoding``). Thread-safe; a context manager.
    """

    def __init__(self, client: "Client") -> None:
        super().__init__(client)
        self._encoding = client._codec.encoding
        self._subscribed: Dict[Subscription, Set[bytes]] = {kind: set() for kind in Subscription}

    # --- subscriptions ------------------------------------------------------------------------

    def _key(self, name: Name) -> bytes:
        if isinstance(name, str):
            return name.encode(self._encoding)
        if isinstance(name, (bytes, bytearray, memoryview)):
            return bytes(name)
        return str(name).encode()

    def _subscribe(self, kind: Subscription, names: tuple[Name, ...]) -> None:
        if not names:
            raise TypeError("subscribe needs at least one name")
        self._change(True, int(kind), *names)
        self._subscribed[kind].update(self._key(n) for n in names)

    def _unsubscribe(self, kind: Subscription, names: tuple[Name, ...]) -> None:
        targets = names or tuple(self._subscribed[kind])
        if not targets:
            return
        self._change(False, int(kind), *targets)
        self._subscribed[kind].difference_update(self._key(n) for n in targets)

    def subscribe(self, *channels: Name) -> None:
        """Subscribes to channels; returns once the server confirmed all of them (on failure
        none of them stays subscribed)."""
        self._subscribe(Subscription.CHANNEL, channels)

    def psubscribe(self, *patterns: Name) -> None:
        """Subscribes to glob-style patterns (``news.*``)."""
        self._subscribe(Subscription.PATTERN, patterns)

    def ssubscribe(self, *shard_channels: Name) -> None:
        """Subscribes to shard channels (on a cluster, at the node owning each one's slot)."""
        self._subscribe(Subscription.SHARD, shard_channels)

    def unsubscribe(self, *channels: Name) -> None:
        """Unsubscribes from channels (none given: from every channel); once it returns no
        message of them is delivered, save those already queued."""
        self._unsubscribe(Subscription.CHANNEL, channels)

    def punsubscribe(self, *patterns: Name) -> None:
        """Unsubscribes from patterns (none given: from every pattern)."""
        self._unsubscribe(Subscription.PATTERN, patterns)

    def sunsubscribe(self, *shard_channels: Name) -> None:
        """Unsubscribes from shard channels (none given: from every shard channel)."""
        self._unsubscribe(Subscription.SHARD, shard_channels)

    @property
    def channels(self) -> Set[bytes]:
        """The channels subscribed to through this object (as bytes)."""
        return set(self._subscribed[Subscription.CHANNEL])

    @property
    def patterns(self) -> Set[bytes]:
        return set(self._subscribed[Subscription.PATTERN])

    @property
    def shard_channels(self) -> Set[bytes]:
        return set(self._subscribed[Subscription.SHARD])

    @property
    def subscribed(self) -> bool:
        return any(self._subscribed.values())

    # --- messages -----------------------------------------------------------------------------

    def get_message(
        self, ignore_subscribe_messages: bool = False, timeout: Optional[float] = 0.0
    ) -> Optional[Message]:
        """The next message, waiting up to ``timeout`` seconds for one (0, the default: not at
        all; None: without limit); None when none came. Raises :class:`ClientClosedError` once
        the client was closed and every queued message was taken. ``ignore_subscribe_messages``
        is accepted for redis-py's sake: there are no subscribe messages to ignore."""
        if timeout is None:
            return self._next(-1)
        if timeout < 0:
            raise ValueError("timeout cannot be negative")
        ms = int(round(timeout * 1000))
        return self._next(1 if ms == 0 and timeout > 0 else ms)

    def listen(self) -> Iterator[Message]:
        """Every message as it comes, until the subscriber or its client is closed."""
        while True:
            try:
                message = self._next(-1)
            except ClientClosedError:
                return
            if message is not None:
                yield message

    async def aget_message(self, timeout: Optional[float] = None) -> Optional[Message]:
        """The next message, awaited on the running event loop (it watches :meth:`fileno`, no
        thread is used); None when none came within ``timeout`` seconds (None: no limit).
        Raises :class:`ClientClosedError` as :meth:`get_message`. One awaiting consumer per
        subscriber and loop (the loop keeps one reader per descriptor)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._next(0)
            if message is not None:
                return message
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            readable = loop.create_future()
            fd = self.fileno()
            loop.add_reader(fd, _settle, readable)
            try:
                await asyncio.wait_for(readable, left)
            except asyncio.TimeoutError:
                return None
            finally:
                loop.remove_reader(fd)

    def __aiter__(self) -> "Subscriber":
        return self

    async def __anext__(self) -> Message:
        try:
            message = await self.aget_message()
        except ClientClosedError:
            raise StopAsyncIteration from None
        assert message is not None  # no timeout
        return message

    def __iter__(self) -> Iterator[Message]:
        return self.listen()

    # --- the rest -----------------------------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """This subscriber's messages, dropped messages and resubscriptions
        (``{"pubsub_messages": ..., "pubsub_dropped": ..., "pubsub_resubscribes": ...}``);
        the client's ``stats()`` sums them over its subscribers."""
        return {s.name.lower(): self.stat(s) for s in _PUBSUB_STATS}

    def close(self) -> None:
        """Closes its connections (waiting for calls in flight on other threads) and drops
        what is still queued. Idempotent."""
        super().close()

    def reset(self) -> None:
        """redis-py's name for :meth:`close`."""
        self.close()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<brisk.Subscriber{' (closed)' if self.closed else ''}>"


def _settle(future: "asyncio.Future[Any]") -> None:
    if not future.done():
        future.set_result(None)


PubSub = Subscriber
"""redis-py's name."""

__all__ = ["Message", "PubSub", "Subscriber"]
