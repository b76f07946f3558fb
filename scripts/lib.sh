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
