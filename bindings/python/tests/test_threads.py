"""One client shared by threads; closing while others are mid-command."""

from __future__ import annotations

import threading
import time

import pytest

import brisk


def test_threads_share_one_client(client, key):
    k = key()
    errors = []

    def work():
        try:
            for _ in range(300):
                client.execute_command("INCR", k)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert client.execute_command("GET", k) == b"2400"


def test_the_gil_is_released_while_a_command_waits(client, key):
    # A BLPOP blocks one thread for 3 s; the main thread runs commands meanwhile. Were the GIL
    # held during the BLPOP, the main thread could not even see it at the server before it ended.
    k = key()
    done = threading.Event()

    def block():
        client.execute_command("BLPOP", k, 3)
        done.set()

    t = threading.Thread(target=block)
    t.start()
    _wait_for_blpop(client)
    assert not done.is_set()
    count = 0
    while not done.is_set() and count < 1_000_000:
        client.execute_command("PING")
        count += 1
    t.join(30)
    assert count > 10


def _wait_for_blpop(client):
    deadline = time.monotonic() + 10
    while b"cmd=blpop" not in client.execute_command("CLIENT", "LIST"):
        assert time.monotonic() < deadline, "the BLPOP never reached the server"


def test_close_waits_for_commands_in_flight_on_other_threads(server, key):
    c = brisk.Client("127.0.0.1", server.port)
    k = key()
    started = threading.Event()
    outcome = []

    def block():
        started.set()
        outcome.append(c.execute_command("BLPOP", k, 1))

    t = threading.Thread(target=block)
    t.start()
    started.wait(10)
    # Wait until the BLPOP is at the server, then close from this thread.
    with brisk.Client("127.0.0.1", server.port) as observer:
        _wait_for_blpop(observer)
    c.close()
    t.join(30)
    assert outcome == [None]  # it finished normally: close() waited for it
    with pytest.raises(brisk.ClientClosedError):
        c.execute_command("PING")
