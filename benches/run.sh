#!/usr/bin/env bash
# brisk vs hiredis (C) and brisk vs redis-rs (Rust), side by side, on this machine.
#
#   benches/run.sh [--quick] [--no-profile] [--rust|--no-rust] [bench options...]
#
# Builds libbrisk (cargo rustc --release, LTO'd) and benches/bench.c (-O2, against libbrisk, Debian's
# hiredis and, for hiredis's async API, libevent), starts a throwaway redis-server on a free
# loopback port, runs every workload through both clients alternately; then builds and runs the
# Rust side bench (benches/rust: brisk's Rust API against the redis crate, same workloads); then
# runs the sync, pipeline, LRANGE and async loops of each client under callgrind and strace to
# report instructions, allocations and syscalls per command, and a table of every client's
# instructions side by side. Prints Markdown tables.
#
#   --quick        a smoke run (CI): each measurement runs 0.1 s, one repeat, small profile
#                  runs; the Rust side bench is skipped (it says so) unless --rust is given
#   --no-profile   skip the callgrind/strace part (with --only, it profiles only the loops of
#                  the workloads named there)
#   --rust         run the Rust side bench (the default without --quick)
#   --no-rust      skip it
#   anything else  passed to bench: --repeats N, --duration S, --only sync,pipeline,threads,
#                  lrange,async,otel,pubsub,cache,heap, --heap-conns N (see benches/bench.c); --repeats,
#                  --duration and --only (sync,pipeline,lrange,async) also to the Rust bench
#
# Environment: BRISK_LIB_DIR=dir uses an already built libbrisk.so there instead of running
# cargo; BRISK_BENCH_DIR=dir puts the build and profile files there (default build-bench/);
# BRISK_BENCH_TIMEOUT=seconds bounds each program run (default 1800, 300 with --quick);
# BRISK_BENCH_RUST_TARGET=dir is the Rust bench's cargo target directory (default
# target/bench-rust, kept between runs: the first build compiles brisk, tokio and redis-rs).
# Installs missing Debian packages (redis-server, redis-tools, libhiredis-dev, libevent-dev,
# valgrind, strace, gcc, python3) with apt-get. Only loopback is used; the server is removed on
# any exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BRISK_BENCH_DIR:-$ROOT/build-bench}
cd "$ROOT"

quick=0
profile=1
rust=
bench_args=()
rust_args=() # the options the Rust bench shares with bench.c
only_list=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  arg=${args[i]}
  case "$arg" in
    --quick) quick=1; bench_args+=(--quick); rust_args+=(--quick) ;;
    --no-profile) profile=0 ;;
    --rust) rust=1 ;;
    --no-rust) rust=0 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    --repeats|--duration)
      [ $((i + 1)) -lt ${#args[@]} ] || { echo "$arg needs a value" >&2; exit 2; }
      bench_args+=("$arg" "${args[i + 1]}"); rust_args+=("$arg" "${args[i + 1]}"); i=$((i + 1)) ;;
    --only)
      [ $((i + 1)) -lt ${#args[@]} ] || { echo "$arg needs a value" >&2; exit 2; }
      bench_args+=("$arg" "${args[i + 1]}"); only_list=${args[i + 1]}; i=$((i + 1)) ;;
    *) bench_args+=("$arg") ;;
  esac
done
[ -n "$rust" ] || { [ "$quick" = 1 ] && rust=0 || rust=1; }
# The Rust bench runs the workloads of --only it has (sync, pipeline, lrange, async), or none.
if [ -n "$only_list" ]; then
  rust_list=$(tr ',' '\n' <<<"$only_list" | grep -xE 'sync|pipeline|lrange|async' | paste -sd, || true)
  if [ -z "$rust_list" ]; then
    rust_skip="--only $only_list selects none of its workloads (sync, pipeline, lrange, async)"
  else
    rust_args+=(--only "$rust_list")
  fi
fi

# install_missing, free_port: the project's script library.
source "$ROOT/scripts/lib.sh"
say() { printf '\n==> %s\n' "$*" >&2; }

bench_packages() {
  local wanted=(redis-server redis-tools libhiredis-dev gcc python3 pkg-config)
  [ "$profile" = 1 ] && wanted+=(valgrind strace)
  install_missing "${wanted[@]}"
  # Optional: without libevent, hiredis's async rows are reported as not measured.
  install_missing libevent-dev ||
    echo "WARNING: could not install libevent-dev: hiredis's async API will NOT be measured" >&2
}

SERVER_PID=
SERVER_DIR=
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  [ -n "$SERVER_DIR" ] && rm -rf "$SERVER_DIR"
  SERVER_PID=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server() {
  SERVER_DIR=$(mktemp -d)
  local deadline
  for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
      --maxclients 4096 --dir "$SERVER_DIR" --logfile "$SERVER_DIR/redis.log" --daemonize no &
    SERVER_PID=$!
    deadline=$((SECONDS + 10))
    while [ $SECONDS -lt $deadline ] && kill -0 "$SERVER_PID" 2>/dev/null; do
      if redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null | grep -q PONG; then
        return 0
      fi
      sleep 0.05
    done
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  done
  echo "could not start redis-server (see $SERVER_DIR/redis.log)" >&2
  return 1
}

bench_packages

bench_timeout=${BRISK_BENCH_TIMEOUT:-1800}
[ "$quick" = 1 ] && bench_timeout=${BRISK_BENCH_TIMEOUT:-300}

# Enough descriptors for 1,000 connections (client side) and the server's maxclients.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4200 ]; then
  echo "note: ulimit -n is $(ulimit -n); the heap workload opens 1,000 connections" >&2
fi

if [ -n "${BRISK_LIB_DIR:-}" ]; then
  LIBDIR=$BRISK_LIB_DIR
else
  # Only the C library's crate types, so that the release profile's LTO applies (with the
  # rlib among them cargo skips it, rust-lang/cargo#9672), as in the CMake build.
  say "cargo rustc --release --lib --crate-type cdylib"
  cargo rustc --release --lib --crate-type cdylib --quiet
  LIBDIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
[ -f "$LIBDIR/libbrisk.so" ] || { echo "no libbrisk.so in $LIBDIR" >&2; exit 1; }

say "building benches/bench.c"
mkdir -p "$OUT/lib"
# Point both the link name and the soname (libbrisk.so.0.1 while 0.1.x) at the build.
soname=$(readelf -d "$LIBDIR/libbrisk.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
ln -sf "$(cd "$LIBDIR" && pwd)/libbrisk.so" "$OUT/lib/libbrisk.so"
ln -sf "$(cd "$LIBDIR" && pwd)/libbrisk.so" "$OUT/lib/${soname:-libbrisk.so.0}"
defines=()
if grep -q 'brisk_command_async' include/brisk.h; then
  defines+=(-DBRISK_HAVE_ASYNC)
fi
if grep -q 'brisk_client_async_dispatch' include/brisk.h; then
  defines+=(-DBRISK_HAVE_ASYNC_DISPATCH)
fi
if grep -q 'brisk_config_set_async_batch_end' include/brisk.h; then
  defines+=(-DBRISK_HAVE_ASYNC_BATCH_END)
fi
if grep -q 'brisk_config_set_otel_endpoint' include/brisk.h; then
  defines+=(-DBRISK_HAVE_OTEL)
fi
if grep -q 'brisk_subscriber_new' include/brisk.h; then
  defines+=(-DBRISK_HAVE_PUBSUB)
fi
if grep -q 'brisk_client_cache_flush' include/brisk.h; then
  defines+=(-DBRISK_HAVE_CACHE)
fi
hiredis_flags=$(pkg-config --cflags --libs hiredis 2>/dev/null || echo -lhiredis)
libevent_flags=
if pkg-config --exists libevent && [ -f /usr/include/hiredis/adapters/libevent.h ]; then
  defines+=(-DBENCH_HAVE_LIBEVENT)
  libevent_flags=$(pkg-config --cflags --libs libevent)
else
  echo "WARNING: no libevent (Debian's libevent-dev) or no hiredis libevent adapter:" \
    "hiredis's async API will NOT be measured (the async table says so)" >&2
fi
# shellcheck disable=SC2086
${CC:-cc} -O2 -g -std=c11 -Wall -Wextra "${defines[@]}" -I include benches/bench.c \
  -o "$OUT/bench" -L "$OUT/lib" -lbrisk $hiredis_flags $libevent_flags -lpthread -lm \
  -Wl,-rpath,"$OUT/lib"

# The Rust side bench: its own crate and workspace (brisk's build never compiles it), built with
# brisk's release profile into a target directory of its own that later runs reuse.
RUST_BIN=
if [ "$rust" = 1 ] && [ -z "${rust_skip:-}" ]; then
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: the Rust side bench needs a Rust toolchain (or pass --no-rust)" >&2
    exit 1
  fi
  say "building the Rust side bench (benches/rust: brisk's Rust API and redis-rs)"
  rust_target=${BRISK_BENCH_RUST_TARGET:-${CARGO_TARGET_DIR:-$ROOT/target}/bench-rust}
  CARGO_TARGET_DIR=$rust_target cargo build --release --quiet --manifest-path benches/rust/Cargo.toml
  RUST_BIN=$rust_target/release/brisk-rust-bench
fi

say "starting a throwaway redis-server"
start_server
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$PORT" >&2

say "benchmark"
{
  echo "Machine: $(nproc) vCPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
    "$(awk '/MemTotal/ {printf "%.0f GB RAM", $2/1048576}' /proc/meminfo)," \
    "$(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), kernel $(uname -r)," \
    "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')," \
    "hiredis $(dpkg-query -W -f='${Version}' libhiredis-dev 2>/dev/null || echo '?')," \
    "brisk $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"
  echo
  # A bound, so that a client that never answers fails the run instead of hanging it.
  timeout -k 10 "$bench_timeout" "$OUT/bench" --host 127.0.0.1 --port "$PORT" "${bench_args[@]}"
} | tee "$OUT/results.md"

{
  echo
  echo "Rust API: brisk against the redis crate ($(sed -n 's/^redis = { version = "=\([^"]*\)".*/redis-rs \1/p' benches/rust/Cargo.toml), tokio)"
  echo
  if [ -n "$RUST_BIN" ]; then
    timeout -k 10 "$bench_timeout" "$RUST_BIN" --host 127.0.0.1 --port "$PORT" "${rust_args[@]}"
  elif [ -n "${rust_skip:-}" ]; then
    echo "**Skipped: $rust_skip.**"
  else
    echo "**Skipped** (--quick runs without it; pass --rust to include it)."
  fi
} | tee -a "$OUT/results.md"

# profile_runs BIN MODE SMALL LARGE CLIENT...: callgrind and strace of BIN's callgrind-MODE loop,
# with SMALL and LARGE iterations, for each client; a failing run fails the whole run.
profile_runs() {
  local bin=$1 mode=$2 small=$3 large=$4 client n log
  shift 4
  for client in "$@"; do
    for n in $small $large; do
      log="$PROF/callgrind.$mode.$client.$n.log"
      if ! timeout -k 10 "$bench_timeout" valgrind --tool=callgrind \
        --callgrind-out-file="$PROF/callgrind.$mode.$client.$n.out" \
        "$bin" "callgrind-$mode" "$client" "$n" --host 127.0.0.1 --port "$PORT" 2>"$log"; then
        tail -n 20 "$log" >&2
        echo "callgrind-$mode $client $n failed (log: $log)" >&2
        return 1
      fi
      if command -v strace >/dev/null; then
        timeout -k 10 "$bench_timeout" strace -f -c -o "$PROF/strace.$mode.$client.$n.txt" \
          "$bin" "callgrind-$mode" "$client" "$n" --host 127.0.0.1 --port "$PORT"
      fi
    done
  done
}

if [ "$profile" = 1 ]; then
  if ! command -v valgrind >/dev/null; then
    echo "valgrind not found: skipping the profile" >&2
  else
    PROF="$OUT/profile"
    rm -rf "$PROF"
    mkdir -p "$PROF"
    # mode:small:large iterations (sync: 2 commands each, pipeline: 200, lrange: 1 reply,
    # async and async-cb: 1 command)
    if [ "$quick" = 1 ]; then
      runs=(sync:100:600 pipeline:3:13 pipeline-bulk:3:13 pipeline-items:3:13 lrange:5:25
        lrange-bulk:5:25 async:300:1800
        async-cb:300:1800 async-dispatch:300:1800 async-dispatch-cb:300:1800)
    else
      runs=(sync:2000:12000 pipeline:30:180 pipeline-bulk:30:180 pipeline-items:30:180
        lrange:40:240 lrange-bulk:40:240 async:2000:12000
        async-cb:2000:12000 async-dispatch:2000:12000
        async-dispatch-cb:2000:12000)
    fi
    # With --only, only the loops of the workloads it names (async: async, async-cb,
    # async-dispatch and async-dispatch-cb; pipeline: pipeline, pipeline-bulk and
    # pipeline-items; lrange: lrange and lrange-bulk).
    if [ -n "$only_list" ]; then
      selected=()
      for run in "${runs[@]}"; do
        mode=${run%%:*}
        base=${mode%-cb}
        base=${base%-bulk}
        base=${base%-items}
        base=${base%-dispatch}
        if [[ ",$only_list," == *",$base,"* ]]; then selected+=("$run"); fi
      done
      runs=(${selected[@]+"${selected[@]}"})
    fi
    for run in ${runs[@]+"${runs[@]}"}; do
      IFS=: read -r mode small large <<<"$run"
      c_clients=(brisk hiredis)
      # brisk_reply_strings and brisk_reply_elements are brisk's: the other clients' walk is
      # the lrange or pipeline loop's.
      case $mode in lrange-bulk | pipeline-bulk | pipeline-items) c_clients=(brisk) ;; esac
      if [[ $mode == async* ]] && [ -z "$libevent_flags" ]; then
        echo "WARNING: no hiredis $mode profile (built without libevent)" >&2
        c_clients=(brisk)
      fi
      say "callgrind and strace of the $mode loop ($small and $large iterations)"
      profile_runs "$OUT/bench" "$mode" "$small" "$large" "${c_clients[@]}"
      top=8
      [ "$mode" = sync ] && top=15
      {
        echo
        python3 "$ROOT/benches/profile_report.py" "$PROF" "$mode" "$small" "$large" --top "$top"
      } | tee -a "$OUT/results.md"
    done
    if [ -n "$RUST_BIN" ]; then
      for run in ${runs[@]+"${runs[@]}"}; do
        IFS=: read -r mode small large <<<"$run"
        # C API loops only
        case $mode in lrange-bulk | pipeline-bulk | pipeline-items | async-dispatch*) continue ;; esac
        say "callgrind and strace of the Rust $mode loop ($small and $large iterations)"
        profile_runs "$RUST_BIN" "$mode" "$small" "$large" brisk-rust redis-rs
        {
          echo
          echo "Rust API:"
          python3 "$ROOT/benches/profile_report.py" "$PROF" "$mode" "$small" "$large" --top 8 \
            --clients brisk-rust,redis-rs
        } | tee -a "$OUT/results.md"
      done
    fi
    if [[ " ${defines[*]} " == *" -DBRISK_HAVE_OTEL "* ]] &&
      { [ -z "$only_list" ] || [[ ",$only_list," == *",otel,"* ]]; }; then
      # OpenTelemetry off / metrics only / traces at ratio 1: instructions per sync GET, all
      # threads (the exporter's too), the same subtraction of two runs.
      if [ "$quick" = 1 ]; then small=200; large=1200; else small=2000; large=12000; fi
      say "callgrind of the OpenTelemetry modes ($small and $large GETs)"
      declare -A otel_instr
      for otel_mode in off metrics traces; do
        for n in $small $large; do
          timeout -k 10 "$bench_timeout" valgrind --tool=callgrind \
            --callgrind-out-file="$PROF/callgrind.otel.$otel_mode.$n.out" \
            "$OUT/bench" callgrind-otel "$otel_mode" "$n" --host 127.0.0.1 --port "$PORT" \
            2>"$PROF/callgrind.otel.$otel_mode.$n.log"
        done
        a=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$PROF/callgrind.otel.$otel_mode.$small.out" | head -1)
        b=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$PROF/callgrind.otel.$otel_mode.$large.out" | head -1)
        otel_instr[$otel_mode]=$(( (b - a) / (large - small) ))
      done
      {
        echo
        echo "OpenTelemetry, instructions per sync GET (callgrind, all threads)"
        echo
        echo "| OTel off | metrics only (ratio 0) | traces (ratio 1.0) |"
        echo "|---:|---:|---:|"
        echo "| ${otel_instr[off]} | ${otel_instr[metrics]} | ${otel_instr[traces]} |"
      } | tee -a "$OUT/results.md"
    fi
    {
      echo
      python3 "$ROOT/benches/profile_report.py" "$PROF" --summary
      echo
      echo "Profiles: $PROF (open with callgrind_annotate, e.g. $PROF/callgrind.sync.brisk.N.out)"
    } | tee -a "$OUT/results.md"
  fi
fi
echo >&2
echo "results: $OUT/results.md" >&2
