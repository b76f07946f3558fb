#!/usr/bin/env bash
# brisk vs hiredis, side by side, on this machine.
#
#   benches/run.sh [--quick] [--no-profile] [bench options...]
#
# Builds libbrisk (cargo build --release) and benches/bench.c (-O2, against libbrisk and Debian's
# hiredis), starts a throwaway redis-server on a free loopback port, runs every workload through
# both clients alternately, then runs the sync SET/GET loop of each client under callgrind and
# strace to report instructions, allocations and syscalls per command. Prints Markdown tables.
#
#   --quick        a smoke run (CI): each measurement runs 0.1 s, one repeat, small profile runs
#   --no-profile   skip the callgrind/strace part
#   anything else  passed to bench: --repeats N, --duration S, --only sync,pipeline,threads,
#                  lrange,async,heap, --heap-conns N (see benches/bench.c)
#
# Environment: BRISK_LIB_DIR=dir uses an already built libbrisk.so there instead of running
# cargo; BRISK_BENCH_DIR=dir puts the build and profile files there (default build-bench/);
# BRISK_BENCH_TIMEOUT=seconds bounds each program run (default 1800, 300 with --quick).
# Installs missing Debian packages (redis-server, redis-tools, libhiredis-dev, valgrind, strace,
# gcc, python3) with apt-get. Only loopback is used; the server is removed on any exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BRISK_BENCH_DIR:-$ROOT/build-bench}
cd "$ROOT"

quick=0
profile=1
bench_args=()
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1; bench_args+=(--quick) ;;
    --no-profile) profile=0 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) bench_args+=("$arg") ;;
  esac
done

# install_missing, free_port: the project's script library.
source "$ROOT/scripts/lib.sh"
say() { printf '\n==> %s\n' "$*" >&2; }

bench_packages() {
  local wanted=(redis-server redis-tools libhiredis-dev gcc python3)
  [ "$profile" = 1 ] && wanted+=(valgrind strace)
  install_missing "${wanted[@]}"
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
  say "cargo build --release"
  cargo build --release --quiet
  LIBDIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
[ -f "$LIBDIR/libbrisk.so" ] || { echo "no libbrisk.so in $LIBDIR" >&2; exit 1; }

say "building benches/bench.c"
mkdir -p "$OUT/lib"
# The library's soname is libbrisk.so.0; point both names at the build.
ln -sf "$(cd "$LIBDIR" && pwd)/libbrisk.so" "$OUT/lib/libbrisk.so"
ln -sf "$(cd "$LIBDIR" && pwd)/libbrisk.so" "$OUT/lib/libbrisk.so.0"
defines=()
if grep -q 'brisk_command_async' include/brisk.h; then
  defines+=(-DBRISK_HAVE_ASYNC)
fi
if grep -q 'brisk_client_cache_flush' include/brisk.h; then
  defines+=(-DBRISK_HAVE_CACHE)
fi
hiredis_flags=$(pkg-config --cflags --libs hiredis 2>/dev/null || echo -lhiredis)
# shellcheck disable=SC2086
${CC:-cc} -O2 -g -std=c11 -Wall -Wextra "${defines[@]}" -I include benches/bench.c \
  -o "$OUT/bench" -L "$OUT/lib" -lbrisk $hiredis_flags -lpthread -lm -Wl,-rpath,"$OUT/lib"

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

if [ "$profile" = 1 ]; then
  if ! command -v valgrind >/dev/null; then
    echo "valgrind not found: skipping the profile" >&2
  else
    PROF="$OUT/profile"
    rm -rf "$PROF"
    mkdir -p "$PROF"
    # mode:small:large iterations (sync: 2 commands each, pipeline: 200, lrange: 1 reply)
    if [ "$quick" = 1 ]; then
      runs=(sync:100:600 pipeline:3:13 lrange:5:25)
    else
      runs=(sync:2000:12000 pipeline:30:180 lrange:40:240)
    fi
    for run in "${runs[@]}"; do
      IFS=: read -r mode small large <<<"$run"
      say "callgrind and strace of the $mode loop ($small and $large iterations)"
      for client in brisk hiredis; do
        for n in $small $large; do
          timeout -k 10 "$bench_timeout" valgrind --tool=callgrind --callgrind-out-file="$PROF/callgrind.$mode.$client.$n.out" \
            "$OUT/bench" "callgrind-$mode" "$client" "$n" --host 127.0.0.1 --port "$PORT" \
            2>"$PROF/callgrind.$mode.$client.$n.log"
          if command -v strace >/dev/null; then
            timeout -k 10 "$bench_timeout" strace -f -c -o "$PROF/strace.$mode.$client.$n.txt" \
              "$OUT/bench" "callgrind-$mode" "$client" "$n" --host 127.0.0.1 --port "$PORT"
          fi
        done
      done
      top=8
      [ "$mode" = sync ] && top=15
      {
        echo
        python3 "$ROOT/benches/profile_report.py" "$PROF" "$mode" "$small" "$large" --top "$top"
      } | tee -a "$OUT/results.md"
    done
    echo | tee -a "$OUT/results.md"
    echo "Profiles: $PROF (open with callgrind_annotate, e.g. $PROF/callgrind.sync.brisk.N.out)" |
      tee -a "$OUT/results.md"
  fi
fi
echo >&2
echo "results: $OUT/results.md" >&2
