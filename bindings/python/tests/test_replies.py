"""Arguments in, replies out: every RESP type, under RESP3 and RESP2, with and without
decode_responses, across the extension's 32-element chunks."""

from __future__ import annotations

import math

import pytest

import brisk


def test_versions():
    assert len(brisk.version().split(".")) == 3
    assert brisk._native.HEADER_VERSION == brisk.version()


def test_binary_round_trip(client, key):
    k = key()
    value = b"bytes \x00 with \r\n inside \xff"
    assert client.execute_command("SET", k, value) == b"OK"
    assert client.execute_command("GET", k) == value
    assert client.execute_command("DEL", k) == 1


def test_argument_types(client, key):
    k = key()
    client.execute_command("SET", k, 41)
    assert client.execute_command("INCRBY", k.encode(), 1) == 42
    client.execute_command("SET", k, 1.5)
    assert client.execute_command("GET", k) == b"1.5"
    client.execute_command("SET", k, 2**70)
    assert client.execute_command("GET", k) == str(2**70).encode()
    client.execute_command("SET", k, -(2**63))
    assert client.execute_command("GET", k) == b"-9223372036854775808"
    client.execute_command("SET", bytearray(k.encode()), memoryview(b"mv"))
    assert client.execute_command("GET", k) == b"mv"
    client.execute_command("SET", k, "h\u00e9llo \u2603")
    assert client.execute_command("GET", k) == "h\u00e9llo \u2603".encode()
    # Many arguments (past the stack-sized fast path).
    fields = [x for i in range(40) for x in (f"f{i}", i)]
    assert client.execute_command("HSET", key("h"), *fields) == 40


@pytest.mark.parametrize("bad", [True, None, object(), [1]])
def test_arguments_redis_cannot_take_are_data_errors(client, bad):
    with pytest.raises(brisk.DataError, match="Invalid input of type"):
        client.execute_command("SET", "py:never", bad)


def test_resp3_types(client, key):
    h, z, s = key("h"), key("z"), key("s")
    assert client.execute_command("GET", key("missing")) is None
    assert client.execute_command("PING") == b"PONG"
    client.execute_command("HSET", h, "f", "v", "g", "w")
    assert client.execute_command("HGETALL", h) == {b"f": b"v", b"g": b"w"}
    client.execute_command("ZADD", z, "1.5", "m", "+inf", "top")
    assert client.execute_command("ZSCORE", z, "m") == 1.5
    assert client.execute_command("ZSCORE", z, "top") == math.inf
    client.execute_command("SADD", s, "a", "b")
    assert client.execute_command("SMEMBERS", s) == {b"a", b"b"}
    assert client.execute_command("EVAL", "redis.setresp(3); return true", 0) is True
    assert client.execute_command("EVAL", "redis.setresp(3); return false", 0) is False
    big = 1234567890123456789012345678901234567890
    assert client.execute_command("EVAL", f"redis.setresp(3); return {{big_number='{big}'}}", 0) == big
    info = client.execute_command("CLIENT", "INFO")  # verbatim: the text without "txt:"
    assert isinstance(info, bytes) and info.startswith(b"id=")
    nested = client.execute_command("EVAL", "return {1, {2, 'x', {}}, 'y', -7}", 0)
    assert nested == [1, [2, b"x", []], b"y", -7]


def test_resp2_types(server, key):
    with brisk.Client("127.0.0.1", server.port, protocol=2) as c:
        h = key("h")
        c.execute_command("HSET", h, "f", "v")
        assert c.execute_command("HGETALL", h) == [b"f", b"v"]  # RESP2: a flat array
        z = key("z")
        c.execute_command("ZADD", z, "2.5", "m")
        assert c.execute_command("ZSCORE", z, "m") == b"2.5"  # RESP2: doubles are strings
        assert c.execute_command("EVAL", "return false", 0) is None


def test_decode_responses(server, key):
    with brisk.Client("127.0.0.1", server.port, decode_responses=True) as c:
        h = key("h")
        c.execute_command("HSET", h, "f\u00e9", "v\u2603")
        assert c.execute_command("HGETALL", h) == {"f\u00e9": "v\u2603"}
        assert c.execute_command("PING") == "PONG"
        k = key()
        c.execute_command("SET", k, b"\xff")
        with pytest.raises(UnicodeDecodeError):
            c.execute_command("GET", k)


def test_other_encoding(server, key):
    with brisk.Client("127.0.0.1", server.port, decode_responses=True, encoding="latin-1") as c:
        k = key()
        c.execute_command("SET", k, "caf\u00e9")
        assert c.execute_command("STRLEN", k) == 4  # one byte per character in latin-1
        assert c.execute_command("GET", k) == "caf\u00e9"


@pytest.mark.parametrize("n", [0, 1, 31, 32, 33, 64, 65, 1000])
def test_long_lists_keep_every_element_in_order(client, key, n):
    k = key()
    values = [f"{i:016d}".encode() for i in range(n)]
    if values:
        client.execute_command("RPUSH", k, *values)
    assert client.execute_command("LRANGE", k, 0, -1) == values


@pytest.mark.parametrize("n", [1, 16, 17, 100])
def test_large_maps_and_sets(client, key, n):
    h, s = key("h"), key("s")
    client.execute_command("HSET", h, *[x for i in range(n) for x in (f"f{i}", f"v{i}")])
    assert client.execute_command("HGETALL", h) == {f"f{i}".encode(): f"v{i}".encode() for i in range(n)}
    client.execute_command("SADD", s, *range(n))
    assert client.execute_command("SMEMBERS", s) == {str(i).encode() for i in range(n)}


def test_unhashable_keys_become_tuples(client):
    # A map whose keys are arrays, and a set of arrays: Python needs hashable keys and members.
    r = client.execute_command("EVAL", "redis.setresp(3); return {map={[{1, 'a'}]='v'}}", 0)
    assert r == {(1, b"a"): b"v"}
    r = client.execute_command("EVAL", "redis.setresp(3); return {set={[{'x'}]=true}}", 0)
    assert r == {(b"x",)}


def test_error_elements_are_exception_objects(client):
    r = client.execute_command("EVAL", "return {1, redis.error_reply('MYERR boom'), 'x'}", 0)
    assert r[0] == 1 and r[2] == b"x"
    assert isinstance(r[1], brisk.ResponseError)
    assert str(r[1]) == "MYERR boom" and r[1].prefix == "MYERR"


def test_example_hello_runs(server):
    import os
    import subprocess
    import sys

    example = os.path.join(os.path.dirname(__file__), "..", "examples", "hello.py")
    out = subprocess.run([sys.executable, example, server.url], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "round-tripped intact: True" in out.stdout and out.stdout.endswith("ok\n")
    assert "pipeline[1]: ResponseError('WRONGTYPE" in out.stdout
