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
