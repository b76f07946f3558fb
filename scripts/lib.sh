# Shared helpers for scripts/demo, scripts/test and scripts/fuzz. Source it; do not run it.

BRISK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BRISK_BUILD_DIR:-$BRISK_ROOT/build}

say() { printf '\n==> %s\n' "$*"; }

# Installs those of the given Debian packages that are missing (apt-get, with sudo when not root).
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

# Installs the Debian packages brisk's build and tests need, when any is missing.
ensure_packages() {
  install_missing redis-server redis-tools cmake pkg-config valgrind openssl python3 \
    python3-pytest gcc make libhiredis-dev
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: brisk needs a Rust toolchain (1.85 or newer), e.g. from https://rustup.rs" >&2
    exit 1
  fi
}

# Makes a Valkey server available for a second test pass. Sets VALKEY_SERVER and VALKEY_CLI (paths
# to valkey-server and valkey-cli) and returns 0; returns 1 with the reason in VALKEY_MISSING when
# there is no Valkey to be had, 2 when its source does not build (or BRISK_VALKEY_SOURCE names
# no file).
# Uses valkey-server and valkey-cli from PATH when both are there; otherwise builds them (with TLS)
# from a source tarball, $BRISK_VALKEY_SOURCE or the newest ../shared/servers/valkey-*.tar.gz
# beside the repository, into a cache outside it ($BRISK_VALKEY_CACHE, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/brisk/<tarball name>) that later runs reuse while the tarball
# is the same (its sha256 is kept with the binaries).
ensure_valkey() {
  VALKEY_SERVER= VALKEY_CLI= VALKEY_MISSING=
  if command -v valkey-server >/dev/null && command -v valkey-cli >/dev/null; then
    VALKEY_SERVER=$(command -v valkey-server) VALKEY_CLI=$(command -v valkey-cli)
    return 0
  fi
  local tarball=${BRISK_VALKEY_SOURCE:-}
  if [ -z "$tarball" ]; then
    tarball=$(ls -1 "$BRISK_ROOT"/../shared/servers/valkey-*.tar.gz 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$tarball" ]; then
      VALKEY_MISSING="no valkey-server and valkey-cli in PATH, and no Valkey source: neither"
      VALKEY_MISSING+=" BRISK_VALKEY_SOURCE (a valkey-X.Y.Z.tar.gz) nor"
      VALKEY_MISSING+=" $(cd "$BRISK_ROOT/.." && pwd)/shared/servers/valkey-*.tar.gz"
      return 1
    fi
  elif [ ! -f "$tarball" ]; then
    echo "BRISK_VALKEY_SOURCE=$tarball: no such file" >&2
    return 2
  fi
  local name sum cache lock status=0
  name=$(basename "$tarball" .tar.gz)
  sum=$(sha256sum "$tarball" | cut -d' ' -f1)
  cache=${BRISK_VALKEY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/brisk}/$name
  mkdir -p "$(dirname "$cache")" || return 2
  # One build at a time: parallel test runs on one machine share the cache.
  exec {lock}>"$cache.lock" && flock "$lock" || return 2
  if [ ! -x "$cache/bin/valkey-server" ] || [ ! -x "$cache/bin/valkey-cli" ] ||
    [ "$(cat "$cache/source.sha256" 2>/dev/null)" != "$sum" ]; then
    build_valkey "$tarball" "$name" "$sum" "$cache" || status=2
  fi
  exec {lock}>&-
  [ "$status" -eq 0 ] || return "$status"
  VALKEY_SERVER=$cache/bin/valkey-server VALKEY_CLI=$cache/bin/valkey-cli
}

# build_valkey <tarball> <name> <sha256> <cache dir>: builds valkey-server and valkey-cli (with
# TLS) in a scratch directory beside the cache and moves only the binaries into the cache, at once,
# so that an interrupted build never leaves a half-filled cache behind. Hold the cache's lock.
build_valkey() {
  local tarball=$1 name=$2 sum=$3 cache=$4 work started=$SECONDS
  install_missing gcc make pkg-config libssl-dev
  say "building $name from $tarball into $cache (once: later runs reuse it)" >&2
  rm -rf "$cache".build.* # what an earlier failed or interrupted build left
  work=$(mktemp -d "$cache.build.XXXXXX") || return 1
  if ! tar xzf "$tarball" -C "$work" ||
    ! make -C "$work/$name" -j "$(nproc)" BUILD_TLS=yes >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2 2>/dev/null
    echo "building $name failed (log above; the tree is kept in $work)" >&2
    return 1
  fi
  if ! { mkdir -p "$work/out/bin" &&
    cp "$work/$name/src/valkey-server" "$work/$name/src/valkey-cli" "$work/out/bin/" &&
    echo "$sum" >"$work/out/source.sha256" && rm -rf "$cache" && mv "$work/out" "$cache"; }; then
    echo "could not put the $name build into $cache" >&2
    return 1
  fi
  rm -rf "$work"
  echo "built $name in $((SECONDS - started)) s" >&2
}

# Configures and builds the library, examples and C tests with CMake (which runs cargo).
cmake_build() {
  cmake -S "$BRISK_ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

# Prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a throwaway redis-server on a free loopback port; sets THROWAWAY_URL, THROWAWAY_PID and
# THROWAWAY_DIR. stop_throwaway_redis removes it again.
start_throwaway_redis() {
  THROWAWAY_DIR=$(mktemp -d)
  local port attempt
  for attempt in 1 2 3 4 5; do
    port=$(free_port)
    redis-server --port "$port" --bind 127.0.0.1 --dir "$THROWAWAY_DIR" --save "" --appendonly no \
      --daemonize no --logfile "$THROWAWAY_DIR/redis.log" &
    THROWAWAY_PID=$!
    local deadline=$((SECONDS + 10))
    while [ $SECONDS -lt $deadline ] && kill -0 "$THROWAWAY_PID" 2>/dev/null; do
      if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
        THROWAWAY_URL="redis://127.0.0.1:$port"
        return 0
      fi
      sleep 0.05
    done
    kill "$THROWAWAY_PID" 2>/dev/null; wait "$THROWAWAY_PID" 2>/dev/null
  done
  echo "could not start redis-server (see $THROWAWAY_DIR/redis.log)" >&2
  return 1
}

stop_throwaway_redis() {
  if [ -n "${THROWAWAY_PID:-}" ]; then
    kill "$THROWAWAY_PID" 2>/dev/null
    wait "$THROWAWAY_PID" 2>/dev/null
  fi
  [ -n "${THROWAWAY_DIR:-}" ] && rm -rf "$THROWAWAY_DIR"
  THROWAWAY_PID=
}

# Prints a python interpreter that has pytest, installing pytest with pip if none has it.
python_with_pytest() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import pytest' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  python3 -m pip install --quiet pytest >&2 && echo python3
}

# Makes sure `cargo +nightly fuzz` works: the nightly toolchain must be there (rustup), and
# cargo-fuzz is installed from crates.io when missing.
ensure_cargo_fuzz() {
  if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the fuzz targets need the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked --quiet
  fi
}

# "N execs (R/s), corpus C" from a libFuzzer log: its final stats, or its last status line when
# it stopped at a crash before printing them.
fuzz_summary() {
  local log=$1 execs rate units
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  units=$(grep -oE '^#[0-9]+.* corp: [0-9]+' "$log" | tail -1 | sed -E 's/.*corp: //')
  if [ -z "$execs" ]; then
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
    rate=$(grep -oE 'exec/s: [0-9]+' "$log" | tail -1 | sed 's/exec\/s: //')
  fi
  printf '%s execs (%s/s), corpus %s' "${execs:-?}" "${rate:-?}" "${units:-?}"
}
