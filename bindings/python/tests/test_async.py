"""Async commands completed on the asyncio event loop."""

from __future__ import annotations

import asyncio

import pytest

import brisk


def test_many_concurrent_commands(client, key):
    k = key()

    async def main():
        return await asyncio.gather(*(client.execute_command_async("INCR", k) for _ in range(500)))

    results = asyncio.run(main())
    assert sorted(results) == list(range(1, 501))


def test_errors_are_raised_from_await(client, key):
    k = key()
    client.execute_command("SET", k, "x")

    async def main():
        with pytest.raises(brisk.ResponseError) as e:
            await client.execute_command_async("LPUSH", k, "y")
        assert e.value.prefix == "WRONGTYPE"
        # Bad arguments fail at once, before anything is started.
        with pytest.raises(brisk.DataError):
            client.execute_command_async("SET", k, None)

    asyncio.run(main())


def test_replies_follow_the_clients_codec(server, key):
    async def main():
        async with brisk.AsyncClient("127.0.0.1", server.port, decode_responses=True) as c:
            k = key()
            await c.execute_command("HSET", k, "f", "v")
            assert await c.execute_command("HGETALL", k) == {"f": "v"}
            assert await c.ping()

    asyncio.run(main())


def test_async_client_from_url(server, key):
    async def main():
        c = brisk.AsyncClient.from_url(server.url)
        try:
            k = key()
            assert await c.execute_command("SET", k, b"\x00v") == b"OK"
            assert await c.execute_command("GET", k) == b"\x00v"
            assert c.stats()["commands"] >= 2
        finally:
            await c.aclose()

    asyncio.run(main())


def test_closing_fails_pending_commands(server, key):
    c = brisk.Client("127.0.0.1", server.port)

    async def main():
        pending = c.execute_command_async("BLPOP", key(), 30)  # would wait 30 s
        await asyncio.sleep(0)
        c.close()
        with pytest.raises(brisk.ClientClosedError):
            await asyncio.wait_for(pending, 10)

    asyncio.run(main())


def test_a_cancelled_future_does_not_disturb_the_others(client, key):
    k = key()

    async def main():
        slow = client.execute_command_async("BLPOP", k, 2)
        slow.cancel()
        assert await client.execute_command_async("SET", k + "x", 1) == b"OK"
        client.execute_command("RPUSH", k, "v")  # ends the BLPOP; its reply goes nowhere
        await asyncio.sleep(0)
        return await asyncio.gather(*(client.execute_command_async("PING") for _ in range(10)))

    assert asyncio.run(main()) == [b"PONG"] * 10


def test_two_event_loops_one_after_the_other(client, key):
    k = key()
    for expected in (1, 2):
        assert asyncio.run(_incr(client, k)) == expected


async def _incr(client, k):
    return await client.execute_command_async("INCR", k)
