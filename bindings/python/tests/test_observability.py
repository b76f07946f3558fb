"""Events and stats."""

from __future__ import annotations

import threading

import pytest

import brisk
from brisk import EventKind, Status


def test_events_report_commands_and_errors(server, key):
    events = []
    lock = threading.Lock()

    def on_event(event):
        with lock:
            events.append(event)

    k = key()
    with brisk.Client("127.0.0.1", server.port, event_callback=on_event) as c:
        c.execute_command("SET", k, "x")
        with pytest.raises(brisk.ResponseError):
            c.execute_command("LPUSH", k, "y")
        with c.pipeline() as p:
            p.execute_command("GET", k).execute_command("GET", k)
            p.execute()
    with lock:
        commands = [e for e in events if e.kind == EventKind.COMMAND]
        kinds = {e.kind for e in events}
    assert EventKind.CONNECT in kinds
    assert [e.command for e in commands] == ["SET", "LPUSH", "PIPELINE"]
    ok, failed, pipe = commands
    assert ok.status == Status.OK and ok.error_type is None and ok.attempt == 1
    assert ok.server_address == f"127.0.0.1:{server.port}" and ok.db == 0
    assert ok.duration_us > 0
    assert failed.status == Status.SERVER and failed.error_type == "WRONGTYPE"
    assert pipe.batch_size == 2
    assert isinstance(ok, brisk.Event)


def test_a_failing_callback_does_not_break_commands(server, key):
    seen = []

    def broken(event):
        seen.append(event)
        raise RuntimeError("callback bug")

    unraisable = []
    import sys

    old = sys.unraisablehook
    sys.unraisablehook = lambda u: unraisable.append(u)
    try:
        with brisk.Client("127.0.0.1", server.port, event_callback=broken) as c:
            assert c.execute_command("SET", key(), 1) == b"OK"
    finally:
        sys.unraisablehook = old
    assert seen and unraisable
    assert isinstance(unraisable[0].exc_value, RuntimeError)


def test_stats(server, key):
    with brisk.Client("127.0.0.1", server.port) as c:
        for _ in range(5):
            c.execute_command("INCR", key())
        with pytest.raises(brisk.ResponseError):
            c.execute_command("NOSUCHCOMMAND")
        stats = c.stats()
        assert stats["commands"] == 6 and stats["errors"] == 1
        assert stats["connects"] == 1 and stats["pool_open"] == 1
        assert c.stat(brisk.Stat.COMMANDS) == 6
        assert set(stats) == {s.name.lower() for s in brisk.Stat}
