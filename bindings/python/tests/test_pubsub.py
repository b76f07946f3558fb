"""Pub/Sub subscribers against a real server: pulled from asyncio, blocking, binary, patterns."""

from __future__ import annotations

import asyncio
import select
import threading
import time

import pytest

import brisk
from brisk import Subscription


def readable(sub: brisk.Subscriber) -> bool:
    return bool(select.select([sub.fileno()], [], [], 0)[0])


def test_pulled_from_an_asyncio_loop(server, key):
    """asyncio waits on the subscriber (no thread); a binary payload and a pattern message
    arrive with their fields, in order; once all are taken the descriptor is quiet again."""
    chan, pattern_chan = key("chan"), key("pattern")
    pattern = pattern_chan[: -len("pattern")] + "pat*"
    payloads = [b"one", b"two \x00 binary \xff", b"three"]
    with brisk.Client("127.0.0.1", server.port) as publisher, \
            brisk.Client("127.0.0.1", server.port) as client, client.pubsub() as sub:
        sub.subscribe(chan)
        sub.psubscribe(pattern)
        assert sub.channels == {chan.encode()} and sub.patterns == {pattern.encode()}
        assert not readable(sub), "readable with nothing queued"

        async def receive():
            got = []
            for p in payloads:
                # Each reaches the channel and the pattern subscription.
                assert publisher.execute_command("PUBLISH", chan, p) == 1
                assert publisher.execute_command("PUBLISH", pattern_chan, p) == 1
            async for message in sub:
                got.append(message)
                if len(got) == 2 * len(payloads):
                    return got

        got = asyncio.run(asyncio.wait_for(receive(), 30))
        by_channel = [m for m in got if m.kind == Subscription.CHANNEL]
        by_pattern = [m for m in got if m.kind == Subscription.PATTERN]
        assert [m.payload for m in by_channel] == payloads
        assert all(m.channel == chan.encode() and m.pattern is None for m in by_channel)
        assert [m.payload for m in by_pattern] == payloads
        assert all(m.channel == pattern_chan.encode() and m.pattern == pattern.encode()
                   for m in by_pattern)
        assert isinstance(got[0], brisk.Message)
        assert not readable(sub), "readable after all were taken"
        assert sub.get_message() is None

        # aget_message times out with None when nothing comes.
        started = time.monotonic()
        assert asyncio.run(sub.aget_message(timeout=0.2)) is None
        assert time.monotonic() - started >= 0.15

        assert sub.stats()["pubsub_messages"] == 2 * len(payloads)
        assert client.stats()["pubsub_messages"] == 2 * len(payloads)


def test_blocking_get_message_and_unsubscribe(server, key):
    chan, other = key("chan"), key("other")
    with brisk.Client("127.0.0.1", server.port) as publisher, \
            brisk.Client("127.0.0.1", server.port) as client, client.pubsub() as sub:
        sub.subscribe(chan, other.encode())
        assert publisher.execute_command("PUBLISH", other, b"\x00\x01") == 1
        message = sub.get_message(timeout=10)
        assert message is not None
        assert (message.kind, message.channel, message.payload) == (
            Subscription.CHANNEL, other.encode(), b"\x00\x01")

        # A message published while get_message waits on another thread wakes it.
        got = []
        waiter = threading.Thread(target=lambda: got.append(sub.get_message(timeout=30)))
        waiter.start()
        assert publisher.execute_command("PUBLISH", chan, "late") == 1
        waiter.join(60)
        assert not waiter.is_alive() and got[0] is not None and got[0].payload == b"late"

        sub.unsubscribe(chan)
        assert sub.channels == {other.encode()}
        assert publisher.execute_command("PUBLISH", chan, "gone") == 0
        sub.unsubscribe()  # every channel
        assert not sub.subscribed
        assert publisher.execute_command("PUBLISH", other, "gone") == 0
        assert sub.get_message(timeout=0.1) is None


def test_shard_channels_and_decoded_messages(server, key):
    chan = key("shard")
    with brisk.Client("127.0.0.1", server.port) as publisher, \
            brisk.Client("127.0.0.1", server.port, decode_responses=True) as client:
        with client.pubsub() as sub:
            sub.ssubscribe(chan)
            assert publisher.execute_command("SPUBLISH", chan, "héllo") == 1
            message = sub.get_message(timeout=10)
            assert message == (Subscription.SHARD, chan, None, "héllo")
            sub.sunsubscribe()
            assert publisher.execute_command("SPUBLISH", chan, "gone") == 0


def test_listen_ends_when_the_client_closes(server, key):
    chan = key("chan")
    client = brisk.Client("127.0.0.1", server.port)
    with brisk.Client("127.0.0.1", server.port) as publisher, client.pubsub() as sub:
        sub.subscribe(chan)
        publisher.execute_command("PUBLISH", chan, "before close")
        # Wait (bounded) until the message is queued, then close the client.
        deadline = time.monotonic() + 10
        while not readable(sub) and time.monotonic() < deadline:
            time.sleep(0.02)
        client.close()
        got = [m.payload for m in sub.listen()]  # what was queued, then the end
        assert got == [b"before close"]
        with pytest.raises(brisk.ClientClosedError):
            sub.get_message()
    with pytest.raises(brisk.ClientClosedError):
        sub.subscribe(chan)  # the subscriber itself is closed


def test_a_queue_option_that_drops(server, key):
    chan = key("chan")
    with brisk.Client("127.0.0.1", server.port) as publisher, \
            brisk.Client("127.0.0.1", server.port, pubsub_queue=(2, "drop_newest"),
                         pubsub_health_check=(1, 2)) as client, client.pubsub() as sub:
        sub.subscribe(chan)
        for i in range(5):
            publisher.execute_command("PUBLISH", chan, str(i))
        deadline = time.monotonic() + 10
        while sub.stats()["pubsub_messages"] < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sub.stats()["pubsub_dropped"] == 3
        assert [sub.get_message().payload, sub.get_message().payload] == [b"0", b"1"]
        assert sub.get_message() is None
    with pytest.raises(brisk.DataError):
        brisk.Client(pubsub_queue=0)
    with pytest.raises(ValueError, match="overflow"):
        brisk.Client(pubsub_queue=(10, "sometimes"))


def test_resubscribes_after_its_connection_is_killed(server, key):
    chan = key("chan")
    events = []
    with brisk.Client("127.0.0.1", server.port) as publisher, \
            brisk.Client("127.0.0.1", server.port, event_callback=events.append) as client, client.pubsub() as sub:
        sub.subscribe(chan)
        publisher.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        deadline = time.monotonic() + 30
        while sub.stats()["pubsub_resubscribes"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sub.stats()["pubsub_resubscribes"] >= 1
        assert any(e.kind == brisk.EventKind.RESUBSCRIBE for e in list(events))
        assert publisher.execute_command("PUBLISH", chan, "after") == 1
        message = sub.get_message(timeout=10)
        assert message is not None and message.payload == b"after"
