#!/usr/bin/env python3
"""Per-operation figures from callgrind and strace runs of `bench callgrind-MODE` (C) and
`brisk-rust-bench callgrind-MODE` (Rust).

Each client is run twice, with N_SMALL and N_LARGE iterations of the MODE loop; subtracting the
small run from the large one removes process start, connection setup, warm-up and teardown, so
what is left is the cost of (N_LARGE - N_SMALL) iterations:
    sync      SET + GET, one command at a time        2 commands per iteration
    pipeline  a batch of 100 SETs, a batch of 100 GETs  200 commands per iteration
    pipeline-bulk  the same, brisk's C API reading each batch's replies with one
              brisk_reply_strings call instead of two calls per reply (the summary shows the
              other clients' pipeline figures beside it)
    pipeline-items  the same with one brisk_reply_elements call (typed items)
    lrange    LRANGE of a 1,000-element list          1 reply per iteration
    lrange-bulk  the same, brisk's C API reading the elements with brisk_reply_strings
              (64 per call instead of two calls per element; the summary shows the other
              clients' lrange figures beside it)
    async     async SET or GET, one thread keeping 50 in flight   1 command per iteration
    async-cb  async SET or GET, the next one issued on completion  1 command per iteration

    profile_report.py DIR MODE N_SMALL N_LARGE [--top K] [--clients A,B]
    profile_report.py DIR --summary

DIR holds, for CLIENT in A and B (default brisk and hiredis) and N in N_SMALL and N_LARGE:
    callgrind.MODE.CLIENT.N.out   (valgrind --tool=callgrind --callgrind-out-file=...)
    strace.MODE.CLIENT.N.txt      (strace -f -c -o ...), optional
Prints Markdown: a summary table and the top functions per operation of each client (A is
compared with B). With --summary: one table of instructions per operation of every client and
mode found in DIR (the peer table: brisk's C and Rust APIs, hiredis, redis-rs).
"""

MODES = {  # ops per iteration, what an op is (singular, plural), a title
    "sync": (2, ("command", "commands"), "Sync SET+GET loop"),
    "pipeline": (200, ("command", "commands"), "Pipelined SET and GET, batches of 100"),
    "pipeline-bulk": (200, ("command", "commands"),
                      "Pipelined SET and GET, batches of 100, brisk's C API reading each batch's"
                      " replies with brisk_reply_strings"),
    "pipeline-items": (200, ("command", "commands"),
                       "Pipelined SET and GET, batches of 100, brisk's C API reading each batch's"
                       " replies with brisk_reply_elements"),
    "lrange": (1, ("reply", "replies"), "LRANGE of 1,000 x 16 B"),
    "lrange-bulk": (1, ("reply", "replies"),
                    "LRANGE of 1,000 x 16 B, brisk's C API walking it with brisk_reply_strings"),
    "async": (1, ("command", "commands"), "Async SET/GET, the caller keeping 50 in flight"),
    "async-cb": (1, ("command", "commands"),
                 "Async SET/GET, the next command issued on completion (50 chains)"),
    "async-dispatch": (1, ("command", "commands"),
                       "Async SET/GET, the caller keeping 50 in flight, brisk's caller dispatch"
                       " (hiredis: its async loop)"),
    "async-dispatch-cb": (1, ("command", "commands"),
                          "Async SET/GET, the next command issued on completion (50 chains),"
                          " brisk's caller dispatch (hiredis: its async loop)"),
}

import collections
import os
import re
import subprocess
import sys

NEW_FUNCS = {"malloc", "calloc", "posix_memalign", "aligned_alloc", "memalign", "valloc",
             "pvalloc"}
REALLOC_FUNCS = {"realloc"}
FREE_FUNCS = {"free"}
ALLOC_FUNCS = NEW_FUNCS | REALLOC_FUNCS
# The allocator's own functions (glibc's entry points and internals, Rust's allocation shims),
# by whole name: a substring test also counted the clients' functions that merely contain
# "free" (brisk_reply_free, freeReplyObject).
ALLOCATOR = re.compile(r"^(malloc|free|cfree|realloc|calloc|posix_memalign|aligned_alloc|"
                       r"memalign|valloc|pvalloc|_mid_memalign|_int_malloc|_int_free|"
                       r"_int_realloc|_int_memalign|sysmalloc|malloc_consolidate|alloc_perturb|"
                       r"unlink_chunk(\..*)?|tcache_\w+|__libc_\w*(alloc|free)\w*)$|"
                       r"(^|::)__rdl_|(^|::)__rust_(alloc|dealloc|realloc|alloc_zeroed)")


def parse_callgrind(path):
    """Returns (total Ir, {function: exclusive Ir}, {callee: calls from outside the allocator})."""
    names = {}  # (kind, id) -> name, for name compression
    exclusive = collections.Counter()
    calls = collections.Counter()
    edges = collections.Counter()  # (caller, callee) -> [calls, inclusive Ir]
    edge_ir = collections.Counter()
    total = 0
    current_fn = None
    pending_callee = None  # set by cfn=, consumed by calls=
    after_calls = False  # the line after calls= is the inclusive cost of the call: skip it
    rx_name = re.compile(r"^(fn|cfn|fl|fi|fe|cfi|cfl|ob|cob)=(?:\((\d+)\))?\s*(.*)$")
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if after_calls:
                    after_calls = False
                    parts = line.split()
                    if len(parts) >= 2 and parts[1].isdigit():
                        edge_ir[(current_fn, pending_callee)] += int(parts[1])
                    continue
                parts = line.split()
                if len(parts) >= 2 and current_fn is not None:
                    try:
                        ir = int(parts[1])
                    except ValueError:
                        continue
                    exclusive[current_fn] += ir
                    total += ir
                continue
            m = rx_name.match(line)
            if m:
                kind, ident, name = m.group(1), m.group(2), m.group(3)
                table = "fn" if kind in ("fn", "cfn") else ("fl" if kind in ("fl", "fi", "fe", "cfi", "cfl") else "ob")
                if ident is not None:
                    if name:
                        names[(table, ident)] = name
                    else:
                        name = names.get((table, ident), "?")
                if kind == "fn":
                    current_fn = name
                elif kind == "cfn":
                    pending_callee = name
                continue
            if line.startswith("calls="):
                count = int(line[6:].split()[0])
                if pending_callee is not None and current_fn not in ALLOC_FUNCS | FREE_FUNCS:
                    calls[pending_callee] += count
                edges[(current_fn, pending_callee)] += count
                after_calls = True
                continue
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
    return total, exclusive, calls, edges, edge_ir


def parse_strace(path):
    counts = collections.Counter()
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 5 or not parts[0][0].isdigit() or parts[-1] == "total":
                continue
            # % time, seconds, usecs/call, calls, [errors], syscall
            try:
                counts[parts[-1]] += int(parts[3])
            except ValueError:
                pass
    return counts


# Thin wrappers between real code and the allocator, credited to their callers: Rust's alloc
# shims, and functions without a symbol (static functions of a stripped library such as
# Debian's libhiredis, e.g. its reply-object constructors).
SHIM = re.compile(r"^0x[0-9a-f]+$|^__rustc::|^__rust_|^__rdl_|^alloc::alloc::|"
                  r"^<alloc::alloc::Global|^alloc::raw_vec::|^<alloc::raw_vec::")


def attributed_callers(edge_calls, edge_cost, is_target):
    """[(caller, calls per op, Ir per op)] of the functions is_target accepts, looking through
    shims: a call made by a shim is credited to the shim's callers, pro rata."""
    result = collections.Counter()
    cost = collections.Counter()

    def credit(fn, calls, ir, depth):
        incoming = [(caller, c) for (caller, callee), c in edge_calls.items()
                    if callee == fn and c > 0 and caller != fn]
        total = sum(c for _, c in incoming)
        if depth > 4 or not SHIM.search(fn) or total <= 0:
            result[fn] += calls
            cost[fn] += ir
            return
        for caller, c in incoming:
            credit(caller, calls * c / total, ir * c / total, depth + 1)

    for (caller, callee), c in edge_calls.items():
        if callee and is_target(callee) and not is_target(caller or "") and c > 0:
            credit(caller, c, edge_cost[(caller, callee)], 0)
    return [(fn, result[fn], cost[fn]) for fn in result if result[fn] >= 0.01]


def short(name, width=80):
    if re.match(r"^0x[0-9a-f]+$", name):
        return name + " (no symbol: a static function of a stripped library)"
    if len(name) > width:
        name = re.sub(r"<[^<>]*(<[^<>]*>[^<>]*)*>", "<..>", name)
    return name if len(name) <= width else name[: width - 3] + "..."


def measure(directory, mode, client, n_small, n_large):
    """The per-op figures of one client in one mode, or None when its files are not there."""
    ops = MODES[mode][0] * (n_large - n_small)
    small = os.path.join(directory, f"callgrind.{mode}.{client}.{n_small}.out")
    large = os.path.join(directory, f"callgrind.{mode}.{client}.{n_large}.out")
    if not (os.path.exists(small) and os.path.exists(large)):
        return None
    t_s, ex_s, calls_s, edges_s, edge_ir_s = parse_callgrind(small)
    t_l, ex_l, calls_l, edges_l, edge_ir_l = parse_callgrind(large)
    # Per-op call edges (large run minus small run).
    edge_calls = collections.Counter()
    edge_cost = collections.Counter()
    for key, n in edges_l.items():
        edge_calls[key] = (n - edges_s.get(key, 0)) / ops
        edge_cost[key] = (edge_ir_l[key] - edge_ir_s.get(key, 0)) / ops
    callers = {
        "memcpy": attributed_callers(edge_calls, edge_cost, lambda f: "memcpy" in f),
        "allocation": attributed_callers(edge_calls, edge_cost, lambda f: f in NEW_FUNCS),
    }
    per_fn = {fn: (ex_l[fn] - ex_s.get(fn, 0)) / ops for fn in ex_l}
    inclusive = collections.Counter(per_fn)
    for (caller, callee), ir in edge_cost.items():
        if caller and callee and caller != callee:
            inclusive[caller] += ir

    def per_op(funcs):
        return sum(calls_l[f] - calls_s.get(f, 0) for f in funcs) / ops

    mallocs, reallocs, frees = per_op(NEW_FUNCS), per_op(REALLOC_FUNCS), per_op(FREE_FUNCS)
    st_s = parse_strace(os.path.join(directory, f"strace.{mode}.{client}.{n_small}.txt"))
    st_l = parse_strace(os.path.join(directory, f"strace.{mode}.{client}.{n_large}.txt"))
    sys_per_op = sys_detail = None
    if st_s is not None and st_l is not None:
        diff = {k: (st_l[k] - st_s.get(k, 0)) / ops for k in st_l}
        sys_per_op = sum(diff.values())
        sys_detail = ", ".join(f"{k} {v:.2f}" for k, v in
                               sorted(diff.items(), key=lambda kv: -kv[1]) if v >= 0.01)
    alloc_ir = sum(v for fn, v in per_fn.items() if ALLOCATOR.search(fn))
    return dict(ir=(t_l - t_s) / ops, per_fn=per_fn, mallocs=mallocs, reallocs=reallocs,
                frees=frees, callers=callers, inclusive=inclusive, sys=sys_per_op,
                sys_detail=sys_detail, alloc_ir=alloc_ir)


def report(directory, mode, n_small, n_large, top, clients):
    per_iter, (unit, units), title = MODES[mode]
    ops = per_iter * (n_large - n_small)
    results = {}
    for client in clients:
        r = measure(directory, mode, client, n_small, n_large)
        if r is not None:
            results[client] = r
    if not results:
        print("no callgrind data")
        return
    a, b = clients
    print(f"{title}, per {unit} (callgrind and strace; {n_large} - {n_small} "
          f"iterations subtracted = {ops} {units}):\n")
    print(f"| per {unit} | {a} | {b} | {a}/{b} |")
    print("|---|---:|---:|---:|")

    def row(label, key, fmt):
        x = results.get(a, {}).get(key)
        y = results.get(b, {}).get(key)
        fx = fmt.format(x) if x is not None else "-"
        fy = fmt.format(y) if y is not None else "-"
        ratio = f"{x / y:.2f}x" if x is not None and y else "-"
        print(f"| {label} | {fx} | {fy} | {ratio} |")

    row("instructions (Ir, all threads)", "ir", "{:,.0f}")
    row("  of which in malloc/free", "alloc_ir", "{:,.0f}")
    row("allocations (malloc, calloc, posix_memalign calls)", "mallocs", "{:.2f}")
    row("realloc calls", "reallocs", "{:.2f}")
    row("free calls", "frees", "{:.2f}")
    row("syscalls (strace -f)", "sys", "{:.2f}")
    print()
    for client, r in results.items():
        if r["sys_detail"]:
            print(f"{client} syscalls per {unit}: {r['sys_detail']}  ")
    for client, r in results.items():
        print(f"\nTop functions of {client} per {unit} (exclusive Ir):\n")
        print(f"| Ir/{unit} | share | function |")
        print("|---:|---:|---|")
        for fn, v in sorted(r["per_fn"].items(), key=lambda kv: -kv[1])[:top]:
            print(f"| {v:,.0f} | {100 * v / r['ir']:.1f}% | `{short(fn)}` |")
        print(f"\n{client}, inclusive (the function and what it calls), per {unit}:\n")
        print(f"| Ir/{unit} | share | function |")
        print("|---:|---:|---|")
        shown = 0
        for fn, v in sorted(r["inclusive"].items(), key=lambda kv: -kv[1]):
            if fn in ("main", "(below main)") or fn.startswith("__libc_start") or \
                    re.match(r"^0x[0-9a-f]+$", fn) or v > 1.05 * r["ir"]:
                continue
            print(f"| {v:,.0f} | {100 * v / r['ir']:.1f}% | `{short(fn)}` |")
            shown += 1
            if shown == top:
                break
        for what, rows in sorted(r["callers"].items()):
            if not rows:
                continue
            print(f"\n{client}: {what} calls per {unit}, by caller:\n")
            print(f"| calls/{unit} | Ir/{unit} | caller |")
            print("|---:|---:|---|")
            for caller, c, ir in sorted(rows, key=lambda x: -x[2])[:8]:
                print(f"| {c:.2f} | {ir:,.0f} | `{short(caller)}` |")


# brisk C API loops without a counterpart in the other clients: the mode whose figures the
# summary shows for them.
BRISK_C_ONLY = {"lrange-bulk": "lrange", "pipeline-bulk": "pipeline", "pipeline-items": "pipeline"}

# The peer table's columns (client file names) and ratio columns, in order.
PEERS = [("brisk", "brisk C API"), ("brisk-rust", "brisk Rust API"), ("hiredis", "hiredis"),
         ("redis-rs", "redis-rs")]
PEER_RATIOS = [("brisk", "hiredis"), ("brisk-rust", "redis-rs"), ("brisk", "brisk-rust")]


def summary(directory):
    """Instructions per operation of every client and mode in DIR, side by side."""
    rx = re.compile(r"^callgrind\.(.+)\.([^.]+)\.(\d+)\.out$")
    runs = collections.defaultdict(set)  # (mode, client) -> iteration counts
    for name in os.listdir(directory):
        m = rx.match(name)
        if m and m.group(1) in MODES:
            runs[(m.group(1), m.group(2))].add(int(m.group(3)))
    names = dict(PEERS)
    print("Instructions per operation (callgrind, all threads, user space; each client run "
          "with two iteration counts and subtracted):\n")
    header = [names[c] for c, _ in PEERS] + [f"{names[a]} / {names[b]}" for a, b in PEER_RATIOS]
    print("| per operation | " + " | ".join(header) + " |")
    print("|---|" + "---:|" * len(header))
    for mode, (_, (unit, _), title) in MODES.items():
        ir = {}
        for client, _ in PEERS:
            # lrange-bulk, pipeline-bulk and pipeline-items are brisk C API loops: the others
            # walk the replies as in lrange and pipeline.
            run_mode = BRISK_C_ONLY.get(mode, mode) if client != "brisk" else mode
            counts = sorted(runs.get((run_mode, client), ()))
            if len(counts) >= 2:
                r = measure(directory, run_mode, client, counts[0], counts[-1])
                if r is not None:
                    ir[client] = r["ir"]
        if not ir or (mode in BRISK_C_ONLY and "brisk" not in ir):
            continue
        cells = [f"{ir[c]:,.0f}" if c in ir else "-" for c, _ in PEERS]
        cells += [f"{ir[a] / ir[b]:.2f}x" if a in ir and b in ir and ir[b] else "-"
                  for a, b in PEER_RATIOS]
        print(f"| {title} (per {unit}) | " + " | ".join(cells) + " |")


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[1] == "--summary":
        summary(args[0])
        return
    top = 15
    clients = ("brisk", "hiredis")
    if "--top" in args:
        i = args.index("--top")
        top = int(args[i + 1])
        del args[i : i + 2]
    if "--clients" in args:
        i = args.index("--clients")
        clients = tuple(args[i + 1].split(","))
        del args[i : i + 2]
        if len(clients) != 2:
            sys.exit("--clients takes two names, A,B")
    directory, mode, n_small, n_large = args[0], args[1], int(args[2]), int(args[3])
    report(directory, mode, n_small, n_large, top, clients)


if __name__ == "__main__":
    main()
