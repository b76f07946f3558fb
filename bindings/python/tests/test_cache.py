"""Client-side caching against a real server: hits, invalidation by another client's write."""

from __future__ import annotations

import threading
import time

import pytest

import brisk
from brisk import CacheReason, EventKind, Stat


def read_until_a_hit(client: brisk.Client, k: str, expected: bytes) -> None:
    """GETs until one is served from the cache. A hit needs the node's recent answer to a PING
    (brisk.h), which a busy machine may delay: poll with a deadline."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hits = client.stat(Stat.CACHE_HITS)
        assert client.execute_command("GET", k) == expected
        if client.stat(Stat.CACHE_HITS) > hits:
            return
    raise AssertionError(f"no cache hit within 10 s: {client.stats()}")


def test_hits_and_invalidation_by_another_clients_write(server, key):
    k = key()
    events = []
    lock = threading.Lock()

    def on_event(event):
        if event.kind == EventKind.CACHE_INVALIDATE:
            with lock:
                events.append(event)

    with brisk.Client("127.0.0.1", server.port) as writer, \
            brisk.Client("127.0.0.1", server.port, client_cache=(1000, 60),
                         client_cache_max_bytes=1 << 20, event_callback=on_event) as cached:
        writer.execute_command("SET", k, "v1")
        assert cached.execute_command("GET", k) == b"v1"
        read_until_a_hit(cached, k, b"v1")
        assert cached.stat(Stat.CACHE_ENTRIES) == 1 and cached.stat(Stat.CACHE_BYTES) > 0

        invalidations = cached.stat(Stat.CACHE_INVALIDATIONS)
        writer.execute_command("SET", k, "v2")
        deadline = time.monotonic() + 10
        while cached.stat(Stat.CACHE_INVALIDATIONS) == invalidations and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cached.stat(Stat.CACHE_INVALIDATIONS) > invalidations
        assert cached.execute_command("GET", k) == b"v2"
        with lock:
            reasons = [e.cache_reason for e in events]
        assert CacheReason.INVALIDATION in reasons, events

        # The new value is cached in turn; cache_flush drops it.
        read_until_a_hit(cached, k, b"v2")
        cached.cache_flush()
        assert cached.stat(Stat.CACHE_ENTRIES) == 0
        with lock:
            assert events[-1].cache_reason == CacheReason.FLUSH
        stats = cached.stats()
        assert stats["cache_hits"] >= 2 and stats["cache_misses"] >= 2


def test_own_writes_and_prefixes(server, key):
    cached_key, other_key = key("cached"), key("other")
    prefix = cached_key[: -len("cached")]
    with brisk.Client("127.0.0.1", server.port, client_cache=100,
                      client_cache_mode="broadcast",
                      client_cache_prefixes=[prefix + "cach"]) as c:
        c.execute_command("SET", cached_key, "a")
        c.execute_command("SET", other_key, "b")
        read_until_a_hit(c, cached_key, b"a")
        hits = c.stat(Stat.CACHE_HITS)
        for _ in range(3):
            assert c.execute_command("GET", other_key) == b"b"  # not under the prefix
        assert c.stat(Stat.CACHE_HITS) == hits
        c.execute_command("SET", cached_key, "a2")  # read-your-own-writes
        assert c.execute_command("GET", cached_key) == b"a2"


def test_cache_options_are_checked():
    with pytest.raises(ValueError, match="client_cache_mode"):
        brisk.Client(client_cache=10, client_cache_mode="sometimes")
    with pytest.raises(brisk.DataError):
        brisk.Client(client_cache=10, client_cache_prefixes=[""])
    with pytest.raises(TypeError, match="list"):
        brisk.Client(client_cache=10, client_cache_prefixes="user:")
    # A client without the cache: cache_flush is a no-op.
    with brisk.Client("127.0.0.1", 1) as c:
        c.cache_flush()
