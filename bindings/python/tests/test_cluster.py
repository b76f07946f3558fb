"""Cluster mode against a real 3-primary cluster."""

from __future__ import annotations

import asyncio

import brisk


def test_commands_reach_the_node_of_their_slot(cluster, key):
    nodes = [("127.0.0.1", n.port) for n in cluster.nodes[:1]]  # one seed is enough
    with brisk.Client(mode="cluster", nodes=nodes) as c:
        keys = [key(str(i)) for i in range(60)]
        for i, k in enumerate(keys):
            c.execute_command("SET", k, i)
        assert [c.execute_command("GET", k) for k in keys] == [str(i).encode() for i in range(60)]
        # Each node holds some of them: the keys really were spread.
        held = [int(n.cli("DBSIZE").strip() or 0) for n in cluster.nodes]
        assert sum(held) >= 60 and all(h > 0 for h in held)
        # A pipeline spans nodes; replies come back in order.
        with c.pipeline() as p:
            for k in keys:
                p.execute_command("INCR", k)
            assert p.execute() == list(range(1, 61))
        assert c.stats()["topology_refreshes"] >= 1


def test_cluster_url_and_async(cluster, key):
    url = f"redis+cluster://127.0.0.1:{cluster.nodes[0].port}"
    with brisk.Client.from_url(url, decode_responses=True) as c:
        keys = [key(str(i)) for i in range(20)]

        async def main():
            await asyncio.gather(*(c.execute_command_async("SET", k, k) for k in keys))
            return await asyncio.gather(*(c.execute_command_async("GET", k) for k in keys))

        assert asyncio.run(main()) == keys


def test_transactions_stay_on_one_slot(cluster, key):
    with brisk.Client(mode="cluster", nodes=[f"127.0.0.1:{cluster.nodes[1].port}"]) as c:
        tag = key()
        a, b = "{%s}:a" % tag, "{%s}:b" % tag
        with c.transaction() as t:
            t.execute_command("SET", a, 1).execute_command("SET", b, 2)
            assert t.execute() == [b"OK", b"OK"]
        assert c.execute_command("MGET", a, b) == [b"1", b"2"]
