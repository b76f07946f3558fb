"""hello: examples/hello.c in Python. Connects (default redis://127.0.0.1:6379), writes a
binary-safe value, reads it back, runs a pipeline, and shows how a failure is reported.

    python hello.py [redis://host:port]
"""

import sys

import brisk

url = sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379"
print(f"brisk {brisk.version()}, connecting to {url}")
try:
    with brisk.Client.from_url(url, client_name="brisk-hello") as c:
        c.ping()
        value = b"hi\x00!"  # binary-safe: a NUL inside
        c.execute_command("SET", "brisk:hello", value)
        got = c.execute_command("GET", "brisk:hello")
        print(f"GET brisk:hello -> {len(got)} bytes, round-tripped intact: {got == value}")

        with c.pipeline() as p:  # three commands, one round trip, replies in order
            p.execute_command("INCR", "brisk:hello:counter")
            p.execute_command("LPUSH", "brisk:hello", "x")  # WRONGTYPE: an error element
            p.execute_command("INCR", "brisk:hello:counter")
            for i, r in enumerate(p.execute(raise_on_error=False)):
                print(f"  pipeline[{i}]: {r!r}")

        try:  # the exception's class and status say what kind, the message what
            c.execute_command("LPUSH", "brisk:hello", "x")
        except brisk.ResponseError as e:
            print(f"LPUSH on a string -> {e.status.name} (category {e.category.name}): {e}")
        c.execute_command("DEL", "brisk:hello", "brisk:hello:counter")
        print("ok")
except brisk.RedisError as e:
    sys.exit(f"failed: {type(e).__name__}: {e}")
