"""Exceptions: redis-py's classes, brisk's statuses and categories, the server's prefix."""

from __future__ import annotations

import pickle
import time

import pytest

import brisk
from brisk import Category, Status
from servers import SilentServer, closed_port


def test_server_error_keeps_the_servers_text_and_prefix(client, key):
    k = key()
    client.execute_command("SET", k, "x")
    with pytest.raises(brisk.ResponseError) as e:
        client.execute_command("LPUSH", k, "y")
    err = e.value
    assert str(err).startswith("WRONGTYPE Operation against a key")
    assert err.prefix == err.status_code == "WRONGTYPE"
    assert err.status is Status.SERVER and err.category is Category.DATA
    assert not err.is_retryable
    assert isinstance(err, brisk.RedisError) and isinstance(err, brisk.BriskError)


def test_prefixes_choose_redis_py_classes(client):
    with pytest.raises(brisk.NoScriptError) as e:
        client.execute_command("EVALSHA", "0" * 40, 0)
    assert e.value.prefix == "NOSCRIPT" and e.value.status is Status.SERVER
    with pytest.raises(brisk.ResponseError) as e:
        client.execute_command("NOSUCHCOMMAND")
    assert type(e.value) is brisk.ResponseError and e.value.prefix == "ERR"


def test_connection_refused(key):
    with brisk.Client("127.0.0.1", closed_port(), retry=brisk.Retry(brisk.NoBackoff(), 0)) as c:
        with pytest.raises(brisk.ConnectionError) as e:
            c.execute_command("GET", key())
    assert e.value.status is Status.CONNECTION
    assert e.value.category is Category.CONNECTION and e.value.is_retryable
    assert e.value.prefix is None


def test_timeout_against_a_silent_server():
    silent = SilentServer()
    try:
        with brisk.Client("127.0.0.1", silent.port, socket_timeout=0.2,
                          retry=brisk.Retry(brisk.NoBackoff(), 0)) as c:
            started = time.monotonic()
            with pytest.raises(brisk.TimeoutError) as e:
                c.execute_command("PING")
            assert time.monotonic() - started < 10
        assert e.value.status is Status.TIMEOUT and e.value.category is Category.CONNECTION
    finally:
        silent.stop()


def test_authentication_and_permissions(server, client, key):
    user = key("user").replace(":", "_")
    client.execute_command("ACL", "SETUSER", user, "on", ">right", "~*", "-@all", "+get")
    try:
        with brisk.Client("127.0.0.1", server.port, username=user, password="wrong") as c:
            with pytest.raises(brisk.AuthenticationError) as e:
                c.execute_command("GET", "x")
            assert e.value.status is Status.AUTH and e.value.category is Category.ACCESS_CONTROL
            assert "wrong" not in str(e.value)
            assert isinstance(e.value, brisk.ConnectionError)  # as in redis-py
        with brisk.Client("127.0.0.1", server.port, username=user, password="right") as c:
            assert c.execute_command("GET", key()) is None
            with pytest.raises(brisk.NoPermissionError) as e:
                c.execute_command("SET", key(), "v")
            assert e.value.prefix == "NOPERM" and e.value.status is Status.AUTH
            assert e.value.category is Category.ACCESS_CONTROL
            assert isinstance(e.value, brisk.ResponseError)  # as in redis-py
    finally:
        client.execute_command("ACL", "DELUSER", user)


def test_bad_url_is_a_data_error_without_the_password():
    with pytest.raises(brisk.DataError) as e:
        brisk.Client.from_url("redis://:secret@host:notaport")
    assert e.value.status is Status.INVALID_ARGUMENT and e.value.category is Category.GENERIC
    assert "secret" not in str(e.value)


def test_connection_state_commands_need_a_session(client):
    with pytest.raises(brisk.DataError, match="session"):
        client.execute_command("MULTI")


def test_closed_client(server):
    c = brisk.Client("127.0.0.1", server.port)
    c.close()
    c.close()  # idempotent
    assert c.closed
    with pytest.raises(brisk.ClientClosedError) as e:
        c.execute_command("PING")
    assert e.value.status is Status.CLOSED


def test_unknown_options_are_type_errors():
    with pytest.raises(TypeError, match="nonsense"):
        brisk.Client(nonsense=1)
    with pytest.raises(TypeError, match="twice"):
        brisk.Client(pool_size=2, max_connections=3)


def test_exceptions_pickle_with_their_status(client, key):
    k = key()
    client.execute_command("SET", k, "x")
    try:
        client.execute_command("LPUSH", k, "y")
    except brisk.ResponseError as err:
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is brisk.ResponseError
        assert copy.args == err.args and copy.status == err.status and copy.prefix == "WRONGTYPE"


def test_status_names_are_the_c_constants():
    assert brisk.status_name(Status.TIMEOUT) == "BRISK_ERR_TIMEOUT"
    assert brisk.status_name(999) == "BRISK_ERR_UNKNOWN"
