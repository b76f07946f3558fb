"""Pipelines, transactions, sessions and WATCH flows."""

from __future__ import annotations

import pytest

import brisk


def test_pipeline_chains_and_returns_results_in_order(client, key):
    k = key()
    with client.pipeline() as p:
        assert p.execute_command("SET", k, 1) is p
        p.execute_command("INCR", k).execute_command("GET", k)
        assert len(p) == 3 and bool(p)
        assert p.execute() == [b"OK", 2, b"2"]
        assert len(p) == 0
        assert p.execute() == []  # empty, and reusable
        p.execute_command("INCR", k)
        assert p.execute() == [3]


def test_pipeline_of_many(client, key):
    k = key()
    p = client.pipeline()
    for i in range(250):
        p.execute_command("RPUSH", k, i)
    assert p.execute() == list(range(1, 251))
    p.close()
    with pytest.raises(brisk.ClientClosedError):
        p.execute_command("PING")


def test_pipeline_error_element_is_an_exception_object(client, key):
    s = key()
    client.execute_command("SET", s, "x")
    with client.pipeline() as p:
        p.execute_command("INCR", key()).execute_command("LPUSH", s, "y").execute_command("GET", s)
        results = p.execute(raise_on_error=False)
    assert results[0] == 1 and results[2] == b"x"
    err = results[1]
    assert isinstance(err, brisk.ResponseError) and not isinstance(err, bytes)
    assert str(err).startswith("WRONGTYPE") and err.prefix == "WRONGTYPE"
    assert err.status is brisk.Status.SERVER


def test_pipeline_raise_on_error_says_which_command(client, key):
    s = key()
    client.execute_command("SET", s, "x")
    with client.pipeline() as p:
        p.execute_command("PING").execute_command("LPUSH", s, "y")
        with pytest.raises(brisk.ResponseError, match=r"Command # 2 of pipeline caused error: WRONGTYPE"):
            p.execute()


def test_pipeline_reset_drops_the_queue(client, key):
    k = key()
    with client.pipeline() as p:
        p.execute_command("SET", k, "never")
        p.reset()
        assert len(p) == 0 and p.execute() == []
    assert client.execute_command("GET", k) is None


def test_transaction(client, key):
    k = key()
    with client.transaction() as t:
        t.execute_command("SET", k, 10).execute_command("INCRBY", k, 5)
        assert t.execute() == [b"OK", 15]
    with client.pipeline(transaction=True) as t:
        t.execute_command("GET", k)
        assert t.execute() == [b"15"]


def test_transaction_the_server_discards_is_exec_abort(client, key):
    with client.transaction() as t:
        t.execute_command("SET", key()).execute_command("SET", key(), "v")  # wrong arity first
        with pytest.raises(brisk.ExecAbortError) as e:
            t.execute()
    assert e.value.prefix == "EXECABORT"


def test_session_watch_multi_exec(server, client, key):
    k = key()
    client.execute_command("SET", k, 1)
    with client.session() as s:
        s.watch(k)
        value = int(s.execute_command("GET", k))
        s.multi()
        assert s.execute_command("SET", k, value + 1) is s  # queued
        assert s.execute() == [b"OK"]
    assert client.execute_command("GET", k) == b"2"
    # A change by someone else between WATCH and EXEC aborts it.
    with client.session() as s:
        s.watch(k)
        client.execute_command("SET", k, 100)
        s.multi()
        s.execute_command("SET", k, 3)
        with pytest.raises(brisk.WatchError) as e:
            s.execute()
        assert e.value.status is brisk.Status.WATCH
    assert client.execute_command("GET", k) == b"100"


def test_session_runs_connection_state_commands(client, key):
    with client.session() as s:
        assert s.execute_command("CLIENT", "SETNAME", "py-session") == b"OK"
        assert s.execute_command("CLIENT", "GETNAME") == b"py-session"
        assert s.execute_command("SELECT", 1) == b"OK"
        s.execute_command("SET", key(), "in db 1")
    s.close()  # idempotent
    with pytest.raises(brisk.ClientClosedError):
        s.execute_command("PING")


def test_transaction_with_watches_retries_until_it_wins(client, key):
    k = key()
    client.execute_command("SET", k, 0)
    calls = []

    def increment(session):
        calls.append(1)
        current = int(session.execute_command("GET", k))
        if len(calls) < 3:  # someone else writes meanwhile, twice
            client.execute_command("INCRBY", k, 100)
        session.multi()
        session.execute_command("SET", k, current + 1)
        return current + 1

    assert client.transaction(increment, k, value_from_callable=True) == 201
    assert len(calls) == 3
    assert client.execute_command("GET", k) == b"201"


def test_transaction_with_watches_gives_up_after_max_attempts(client, key):
    k = key()

    def always_loses(session):
        client.execute_command("INCR", k)
        session.multi()
        session.execute_command("SET", k, "mine")

    with pytest.raises(brisk.WatchError):
        client.transaction(always_loses, k, max_attempts=2)
    assert client.execute_command("GET", k) == b"2"


def test_session_queue_errors_raise_after_exec(client, key):
    k = key()
    with client.session() as s:
        s.multi()
        s.execute_command("SET", k, "v")
        s.execute_command("SET", k)  # the server refuses to queue it
        with pytest.raises(brisk.ResponseError, match="Command # 2"):
            s.execute()
        assert s.execute_command("PING") == b"PONG"  # the connection is usable: no open MULTI
    assert client.execute_command("GET", k) is None
