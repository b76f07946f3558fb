"""Smoke tests of the ctypes binding against a throwaway redis-server.

The server program is $BRISK_TEST_SERVER (a name in PATH or a path, e.g. valkey-server) when set.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

import brisk


@pytest.fixture(scope="module")
def redis_url():
    server = os.environ.get("BRISK_TEST_SERVER") or "redis-server"
    workdir = tempfile.mkdtemp()
    for _ in range(5):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        if proc.poll() is None:
            break
    else:
        pytest.fail(f"could not start {server}")
    yield f"redis://127.0.0.1:{port}"
    proc.kill()
    proc.wait()
    shutil.rmtree(workdir, ignore_errors=True)


def test_version_is_semver():
    assert len(brisk.version().split(".")) == 3


def test_round_trip_binary_value(redis_url):
    with brisk.Client(redis_url) as c:
        value = b"bytes \x00 with \r\n inside"
        assert c.command("SET", "py:k", value) == b"OK"
        assert c.command("GET", "py:k") == value
        assert c.command("DEL", "py:k") == 1


def test_resp3_types(redis_url):
    with brisk.Client(redis_url) as c:
        c.command("HSET", "py:h", "f", "v")
        assert c.command("HGETALL", "py:h") == {b"f": b"v"}
        c.command("ZADD", "py:z", "1.5", "m")
        assert c.command("ZSCORE", "py:z", "m") == 1.5
        assert c.command("GET", "py:missing") is None
        c.command("DEL", "py:h", "py:z")


def test_errors_carry_status_and_server_text(redis_url):
    with brisk.Client(redis_url) as c:
        c.command("SET", "py:s", "x")
        with pytest.raises(brisk.BriskError) as e:
            c.command("LPUSH", "py:s", "y")
        assert e.value.name == "BRISK_ERR_SERVER"
        assert e.value.message.startswith("WRONGTYPE")
        c.command("DEL", "py:s")


def test_bad_url_is_invalid_argument():
    with pytest.raises(brisk.BriskError) as e:
        brisk.Client("redis://:secret@host:notaport")
    assert e.value.name == "BRISK_ERR_INVALID_ARGUMENT"
    assert "secret" not in e.value.message


def test_pubsub_pulled_from_an_asyncio_loop(redis_url):
    """The pull API from an event loop: asyncio waits on the subscriber's descriptor
    (loop.add_reader) and takes what waits; a binary payload and a pattern message arrive with
    their fields, in order; once all are taken the descriptor is quiet again."""
    import asyncio
    import select

    with brisk.Client(redis_url) as publisher, brisk.Client(redis_url) as client:
        with brisk.Subscriber(client) as sub:
            sub.subscribe(b"py:chan")
            sub.subscribe(b"py:pat*", kind=brisk.PATTERN)
            assert not select.select([sub.fileno()], [], [], 0)[0], "readable with nothing queued"
            payloads = [b"one", b"two \x00 binary", b"three"]

            async def receive():
                loop = asyncio.get_running_loop()
                got = []
                done = loop.create_future()

                def readable():
                    while (m := sub.take()) is not None:
                        got.append(m)
                    if len(got) == 2 * len(payloads) and not done.done():
                        done.set_result(None)

                loop.add_reader(sub.fileno(), readable)
                try:
                    for p in payloads:
                        # Each reaches the channel and the pattern subscription.
                        assert publisher.command("PUBLISH", "py:chan", p) == 1
                        assert publisher.command("PUBLISH", "py:pattern", p) == 1
                    await asyncio.wait_for(done, 30)
                finally:
                    loop.remove_reader(sub.fileno())
                return got

            got = asyncio.run(receive())
            channel = [m for m in got if m.kind == brisk.CHANNEL]
            pattern = [m for m in got if m.kind == brisk.PATTERN]
            assert [m.payload for m in channel] == payloads
            assert all(m.channel == b"py:chan" and m.pattern is None for m in channel)
            assert [m.payload for m in pattern] == payloads
            assert all(m.channel == b"py:pattern" and m.pattern == b"py:pat*" for m in pattern)
            assert not select.select([sub.fileno()], [], [], 0)[0], "readable after all were taken"
            assert sub.take() is None

            sub.unsubscribe(b"py:chan")
            assert publisher.command("PUBLISH", "py:chan", b"gone") == 0
