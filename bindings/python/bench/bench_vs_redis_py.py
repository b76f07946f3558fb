"""brisk against redis-py, side by side, on one throwaway redis-server.

    pip install ./bindings/python 'redis>=8,<9' hiredis
    python bindings/python/bench/bench_vs_redis_py.py [--quick] [--rounds N]

Three clients, each the way its users write it:
  brisk            client.execute_command(...), client.pipeline()
  redis-py+hiredis redis.Redis(...).set/.get, .pipeline(transaction=False) (hiredis parser)
  redis-py         the same with redis-py's pure-Python parser (_RESP2Parser)
and three workloads:
  SET/GET      one command per call, alternating SET and GET of a 16-byte value
  pipeline100  pipelines of 100 commands (50 SET, 50 GET)
  LRANGE1000   LRANGE of a 1,000-element list of 16-byte values
Each workload runs in rounds, the clients interleaved so that a busy machine slows them alike;
the median round counts. Printed per client: operations per second (wall clock) and client CPU
per operation (process time: the cost on the client's side, steadier on a busy machine), then
brisk's ratios to each redis-py (>1: brisk is better).

--callgrind adds user-space instructions per operation, the steadiest figure on a shared
machine: each client and workload runs in a process of its own under callgrind twice, with
different iteration counts, and the difference is divided by the difference in operations, so
start-up (imports, connecting, the warm-up) cancels out.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import brisk

try:
    import hiredis  # noqa: F401
    import redis
    from redis._parsers import _RESP2Parser
except ImportError:
    sys.exit("needs redis-py 8 and hiredis: pip install 'redis>=8,<9' hiredis")

VALUE = b"v" * 16
LIST_LEN = 1000


def start_server():
    workdir = tempfile.mkdtemp(prefix="brisk-bench-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [os.environ.get("BRISK_TEST_SERVER") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--dir", workdir, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port, workdir
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("redis-server did not start")


class Brisk:
    name = "brisk"

    def __init__(self, port):
        self.c = brisk.Client("127.0.0.1", port)

    def setget(self, n):
        cmd = self.c.execute_command
        for i in range(n // 2):
            cmd("SET", "bench:k", VALUE)
            cmd("GET", "bench:k")

    def pipeline(self, n):
        p = self.c.pipeline()
        for _ in range(n):
            for _ in range(50):
                p.execute_command("SET", "bench:p", VALUE)
                p.execute_command("GET", "bench:p")
            p.execute()

    def lrange(self, n):
        cmd = self.c.execute_command
        for _ in range(n):
            cmd("LRANGE", "bench:list", 0, -1)

    def close(self):
        self.c.close()


class RedisPy:
    def __init__(self, port, hiredis_parser):
        self.name = "redis-py+hiredis" if hiredis_parser else "redis-py"
        kwargs = {} if hiredis_parser else {"parser_class": _RESP2Parser}
        pool = redis.ConnectionPool(host="127.0.0.1", port=port, **kwargs)
        self.r = redis.Redis(connection_pool=pool)

    def setget(self, n):
        r = self.r
        for i in range(n // 2):
            r.set("bench:k", VALUE)
            r.get("bench:k")

    def pipeline(self, n):
        for _ in range(n):
            p = self.r.pipeline(transaction=False)
            for _ in range(50):
                p.set("bench:p", VALUE)
                p.get("bench:p")
            p.execute()

    def lrange(self, n):
        r = self.r
        for _ in range(n):
            r.lrange("bench:list", 0, -1)

    def close(self):
        self.r.close()


def make_client(name, port):
    if name == "brisk":
        return Brisk(port)
    return RedisPy(port, name == "redis-py+hiredis")


def worker(name, method, calls, port):
    """--worker: one client, one workload, `calls` calls after a warm-up (run under callgrind)."""
    client = make_client(name, port)
    getattr(client, method)(2)
    getattr(client, method)(calls)
    client.close()


def instructions(name, method, calls, port):
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         os.path.abspath(__file__), "--worker", name, method, str(calls), str(port)],
        capture_output=True, text=True, check=True)
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"no callgrind total for {name} {method}: {out.stderr[-500:]}")


def measure(fn, n):
    wall, cpu = time.perf_counter(), time.process_time()
    fn(n)
    return time.perf_counter() - wall, time.process_time() - cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a few operations each (a smoke test)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--callgrind", action="store_true",
                    help="also count instructions per operation under callgrind (needs valgrind)")
    ap.add_argument("--worker", nargs=4, metavar=("CLIENT", "METHOD", "CALLS", "PORT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        name, method, calls, port = args.worker
        worker(name, method, int(calls), int(port))
        return
    scale = 0.02 if args.quick else 1.0
    rounds = 1 if args.quick else args.rounds
    # (workload, method, calls per round, operations per call)
    workloads = [
        ("SET/GET", "setget", int(20000 * scale) or 2, 1),
        ("pipeline100", "pipeline", int(400 * scale) or 1, 100),
        ("LRANGE1000", "lrange", int(600 * scale) or 1, 1),
    ]
    proc, port, workdir = start_server()
    try:
        seed = redis.Redis(host="127.0.0.1", port=port)
        seed.delete("bench:list")
        seed.rpush("bench:list", *[f"{i:016d}" for i in range(LIST_LEN)])
        clients = [Brisk(port), RedisPy(port, True), RedisPy(port, False)]
        for c in clients:  # warm up: connections open, code paths hot
            c.setget(200)
            c.pipeline(2)
            c.lrange(5)
        # Same replies from everyone (the benchmark compares like with like).
        assert clients[0].c.execute_command("LRANGE", "bench:list", 0, -1) == clients[1].r.lrange(
            "bench:list", 0, -1) == clients[2].r.lrange("bench:list", 0, -1)
        print(f"brisk {brisk.__version__} (libbrisk {brisk.version()}), redis-py {redis.__version__}"
              f" with hiredis {hiredis.__version__}, Python {sys.version.split()[0]}, "
              f"{rounds} round(s), median")
        print(f"{'workload':<12} {'client':<17} {'ops/s':>10} {'CPU us/op':>10}")
        summary = []
        for label, method, calls, per_call in workloads:
            walls = {c.name: [] for c in clients}
            cpus = {c.name: [] for c in clients}
            for r in range(rounds):
                order = clients[r % len(clients):] + clients[:r % len(clients)]
                for c in order:
                    wall, cpu = measure(getattr(c, method), calls)
                    ops = calls * per_call
                    walls[c.name].append(ops / wall)
                    cpus[c.name].append(cpu / ops * 1e6)
            med = {c.name: (statistics.median(walls[c.name]), statistics.median(cpus[c.name]))
                   for c in clients}
            for c in clients:
                print(f"{label:<12} {c.name:<17} {med[c.name][0]:>10,.0f} {med[c.name][1]:>10.2f}")
            summary.append((label, med))
        print()
        print("brisk's advantage (ops/s ratio; CPU ratio = their CPU per op / brisk's):")
        for label, med in summary:
            b_ops, b_cpu = med["brisk"]
            parts = []
            for other in ("redis-py+hiredis", "redis-py"):
                o_ops, o_cpu = med[other]
                parts.append(f"vs {other}: {b_ops / o_ops:.2f}x ops/s, {o_cpu / b_cpu:.2f}x CPU")
            print(f"  {label:<12} " + "; ".join(parts))
        if args.callgrind:
            print()
            print("user-space instructions per operation (callgrind; their count / brisk's):")
            # (method, small and large call counts): the difference is what is measured
            counts = {"setget": (200, 2200), "pipeline": (5, 45), "lrange": (10, 60)}
            for label, method, _, per_call in workloads:
                small, large = counts[method]
                per_op = {}
                for c in clients:
                    extra = instructions(c.name, method, large, port) - instructions(
                        c.name, method, small, port)
                    per_op[c.name] = extra / ((large - small) * per_call)
                others = ", ".join(f"{n} {per_op[n]:,.0f} ({per_op[n] / per_op['brisk']:.1f}x)"
                                   for n in ("redis-py+hiredis", "redis-py"))
                print(f"  {label:<12} brisk {per_op['brisk']:,.0f}; {others}")
        for c in clients:
            c.close()
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
