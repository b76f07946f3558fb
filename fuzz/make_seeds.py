#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/, from the replies below and the real ones in
fuzz/seeds/ (captured from redis-server 7.0.15, RESP2 and RESP3; see fuzz/README.md).

Deterministic: running it again writes the same files. Run it after changing a target's input
layout (fuzz/src/input.rs) or adding a sample, and commit the result.

    python3 fuzz/make_seeds.py
"""
import hashlib
import pathlib
import shutil

FUZZ = pathlib.Path(__file__).resolve().parent
SEEDS = FUZZ / "seeds"
CORPUS = FUZZ / "corpus"


def resp(*lines):
    """RESP bytes from lines (CRLF added after each)."""
    return b"".join(line + b"\r\n" for line in lines)


def command(*args):
    """A RESP array of bulk strings: a command, or the argument list of the command_table target."""
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


# One reply (or a short pipeline of them) of every kind the decoder reads.
REPLIES = {
    "status": resp(b"+OK"),
    "long-status": resp(b"+" + b"s" * 70),  # past the decoder's short-status fast path
    "error": resp(b"-ERR unknown command 'foo', with args beginning with: "),
    "integer": resp(b":-42", b":9223372036854775807"),
    "bulk": resp(b"$5", b"hello"),
    "bulk-with-crlf": resp(b"$4", b"a\r\nb"),
    "empty-bulk": resp(b"$0", b""),
    "nulls": resp(b"$-1", b"*-1", b"_"),
    "booleans": resp(b"#t", b"#f"),
    "doubles": resp(b",3.25", b",inf", b",-nan", b",1e10", b",-0.5E-3"),
    "big-number": resp(b"(3492890328409238509324850943850943825024385"),
    "verbatim": resp(b"=15", b"txt:Some string"),
    "blob-error": resp(b"!21", b"SYNTAX invalid syntax"),
    "nested-array": resp(b"*3", b":1", b"*2", b"+a", b"$1", b"b", b"*0"),
    "map": resp(b"%2", b"+first", b":1", b"+second", b"$6", b"second"),
    "set": resp(b"~3", b"+a", b"+b", b"_"),
    "push-message": resp(b">3", b"$7", b"message", b"$2", b"ch", b"$3", b"msg"),
    "attribute": resp(b"|1", b"+key-popularity", b"%2", b"$1", b"a", b",0.19", b"$1", b"b",
                      b",0.05", b"*2", b":2039123", b":9543892"),
    "streamed-string": resp(b"$?", b";4", b"Hell", b";5", b"o wor", b";1", b"d", b";0"),
    "streamed-array": resp(b"*?", b":1", b"$1", b"x", b"*?", b".", b"."),
    "streamed-map": resp(b"%?", b"+a", b":1", b"+b", b"#t", b"."),
    "streamed-attribute": resp(b"|?", b"+k", b"+v", b".", b"+OK"),
    "deep": resp(*[b"*1"] * 12, b":1"),
    # A RESP2 subscribe confirmation: two bulks and an integer.
    "resp2-pubsub": resp(b"*3", b"$9", b"subscribe", b"$2", b"ch", b":1"),
    "pipeline": resp(b"+OK", b"$5", b"hello", b":42", b">2", b"$10", b"invalidate", b"*1",
                     b"$1", b"k", b"*2", b"$1", b"a", b"_", b"-MOVED 3999 127.0.0.1:6381",
                     b"$-1", b",1.5"),
}

REAL = {p.name: p.read_bytes() for p in sorted(SEEDS.iterdir())}

# Parameters put before the RESP bytes (fuzz/src/input.rs): chunk sizes are the byte + 1.
CHUNKINGS = [
    bytes([0, 0]),            # byte by byte
    bytes([0, 2]),            # 3 bytes a read
    bytes([1, 4, 0]),         # 5, 1, 5, 1, ...
    bytes([2, 15, 0, 1]),     # 16, 1, 2, ...
    bytes([0, 255]),          # 256 bytes a read
]
BATCHES = [0x00, 0x02, 0x09, 0x0F]  # sizes 1, 3, 2 (one reply each), 8 (one reply each)
LIMITS = [
    bytes([7, 15, 255, 255]),
    bytes([3, 4, 16, 8]),
    bytes([1, 2, 5, 3]),
    bytes([2, 8, 64, 64]),
]

URLS = [
    "redis://localhost",
    "redis://127.0.0.1:6380/2",
    "rediss://user:secret@cache.example.com:6390/0?tls_server_name=cache&tls_insecure_skip_verify=no",
    "redis://:p%40ss%2Fword@[::1]:7000",
    "redis://[fe80::1%25eth0]:6379",
    "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002?read_timeout=250",
    "rediss+cluster://u:p@h1:1,h2:2/0",
    "unix:///var/run/redis.sock?db=3&client_name=worker%201",
    "unix://user:pw@/tmp/redis%20x.sock",
    "redis://h?connect_timeout=100&read_timeout=200&write_timeout=300&command_deadline=400",
    "redis://h?pool_size=8&pool_min_idle=2&pool_max_wait=50&pool_idle_timeout=60000",
    "redis://h?pool_max_lifetime=1&health_check_interval=1000&max_retries=3&protocol=2",
    "redis://h/1?db=1",
    "redis://u:se/cret@h",
    "redis://u:se?cret@h:6379",
    "REDIS://H:65535",
    "redis://h:0",
    "redis://h#frag",
    "http://h",
    "redis://h?unknown=1&&db=",
    "redis://%ff@h",
]

COMMAND_ARGS = {
    "command-info-eval-xread.resp3": command(b"return 1", b"2", b"k1", b"k2", b"STREAMS", b"s", b"0"),
    "command-info-get-set-mget.resp2": command(b"k1", b"v1", b"k2"),
    "command-info-sort-georadius-migrate.resp3": command(b"h", b"6379", b"", b"0", b"5000", b"KEYS",
                                                         b"a", b"b", b"STORE", b"dst"),
}
# An entry as servers before 7 give it: no key specs, the first/last/step triple.
OLD_COMMAND = resp(b"*2",
                   b"*6", b"$3", b"get", b":2", b"*2", b"+readonly", b"+fast", b":1", b":1", b":1",
                   b"*7", b"$4", b"mset", b":-3", b"*2", b"+write", b"+denyoom", b":1", b":-1",
                   b":2", b"*2", b"+@write", b"+@string")

SHARDS_WITH_REPLICAS = resp(
    b"*2",
    b"%2", b"$5", b"slots", b"*2", b":0", b":8191",
    b"$5", b"nodes", b"*2",
    b"%5", b"$2", b"id", b"$1", b"a", b"$4", b"port", b":7000", b"$8", b"endpoint",
    b"$12", b"node-a.local", b"$4", b"role", b"$6", b"master", b"$6", b"health", b"$6", b"online",
    b"%5", b"$2", b"id", b"$1", b"b", b"$8", b"tls-port", b":7100", b"$2", b"ip",
    b"$8", b"10.0.0.2", b"$4", b"role", b"$7", b"replica", b"$6", b"health", b"$6", b"online",
    b"*4", b"$5", b"slots", b"*2", b"$4", b"8192", b"$5", b"16383",
    b"$5", b"nodes", b"*1",
    b"*8", b"$4", b"port", b"$4", b"7001", b"$4", b"role", b"$6", b"master",
    b"$6", b"health", b"$4", b"fail", b"$2", b"ip", b"$1", b"?",
)
SLOTS_WITH_REPLICAS = resp(
    b"*3",
    b"*4", b":0", b":5460", b"*3", b"$8", b"10.0.0.1", b":7000", b"$1", b"a",
    b"*3", b"$8", b"10.0.0.2", b":7001", b"$1", b"b",
    b"*3", b":5461", b":10922", b"*3", b"$0", b"", b":7002", b"$1", b"c",
    b"*3", b":10923", b":16383", b"*4", b"$8", b"10.0.0.1", b":7000", b"$1", b"a",
    b"%1", b"$8", b"hostname", b"$5", b"node1",
)

# Inputs that once crashed a target, kept so that every run (scripts/test's short one too) tries
# them first.
REGRESSIONS = {
    # Issue 15 item 4 (fixed on the decoder branch): with max_line_len 0, a bulk whose bytes are
    # all there was accepted by the fast path, which skips the line-length check; read byte by
    # byte, the same bulk was rejected. Limits (depth 3, elements 4, bulk 16, line 0), one-byte
    # reads, batches of 3.
    ("resp_limits", "regression-bulk-fast-path-line-limit"):
        bytes([3, 4, 16, 0]) + bytes([0, 0]) + bytes([2]) + resp(b"$4", b"inva"),
    # EVAL with movable keys and no key specs falls back to the built-in positions, which read
    # the key count at argument 2 of ["EVAL", "return 1"].
    ("command_table", "regression-eval-without-key-count"):
        resp(b"*1", b"*6", b"$4", b"eval", b":-3", b"*1", b"+movablekeys", b":0", b":0", b":0")
        + command(b"return 1"),
    # A keynum key spec with first key -5: positions before the name, cast to huge indexes.
    ("command_table", "regression-keynum-negative-first-key"):
        resp(b"*1", b"*10", b"$3", b"cmd", b":-2", b"~0", b":0", b":0", b":0", b"~0", b"~0", b"~1",
             b"%2", b"$12", b"begin_search", b"%2", b"$4", b"type", b"$5", b"index", b"$4", b"spec",
             b"%1", b"$5", b"index", b":1", b"$9", b"find_keys", b"%2", b"$4", b"type", b"$6",
             b"keynum", b"$4", b"spec", b"%3", b"$9", b"keynumidx", b":0", b"$8", b"firstkey",
             b":-5", b"$7", b"keystep", b":1", b"~0")
        + command(b"3", b"a", b"b"),
}


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    samples = dict(REPLIES)
    samples.update(REAL)
    for i, (name, data) in enumerate(sorted(samples.items())):
        write("resp_decode", name, data)
        chunking = CHUNKINGS[i % len(CHUNKINGS)]
        batch = bytes([BATCHES[i % len(BATCHES)]])
        write("resp_split", name, chunking + data)
        write("resp_batched", name, chunking + batch + data)
        write("resp_limits", name, LIMITS[i % len(LIMITS)] + chunking + batch + data)
    for url in URLS:
        write("url", hashlib.sha1(url.encode()).hexdigest()[:12], url.encode())
    for name, data in REAL.items():
        if name.startswith("command-info"):
            write("command_table", name, data + COMMAND_ARGS.get(name, b""))
    write("command_table", "pre-7-entries", OLD_COMMAND + command(b"k1", b"v1", b"k2", b"v2"))
    for target, prefix, extra in [("cluster_shards", "cluster-shards", SHARDS_WITH_REPLICAS),
                                  ("cluster_slots", "cluster-slots", SLOTS_WITH_REPLICAS)]:
        for name, data in REAL.items():
            if name.startswith(prefix):
                write(target, name, data)
        write(target, "replicas-and-hostnames", extra)
    for (target, name), data in REGRESSIONS.items():
        write(target, name, data)


if __name__ == "__main__":
    main()
