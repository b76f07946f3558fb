#!/usr/bin/env bash
# Test servers for the C test suite (CTest fixture), all on loopback.
#
#   servers.sh start <dir>   start everything, write <dir>/servers.env
#   servers.sh stop <dir>    stop everything started in <dir>, then remove <dir>
#
# `start` makes <dir> afresh and starts:
#   - a standalone redis-server on a free 127.0.0.1 port, also listening on a Unix socket
#     (<dir>/redis.sock, or in a short /tmp dir when <dir> is too deep; unixsocketperm 700).
#     The default user needs no password; ACL users:
#       app/app-secret          full access
#       limited/limited-secret  everything but SET
#   - a TLS-only redis-server (--port 0 --tls-port P, --tls-auth-clients optional) with a CA,
#     a server certificate for 127.0.0.1/localhost and a client certificate made by openssl;
#   - a "silent" TCP listener (python3) that accepts connections and never answers;
#   - and picks a CLOSED_PORT that nothing listens on.
# It waits (with a deadline) until each server answers PING, then writes <dir>/servers.env:
#   STANDALONE_PORT UNIX_SOCKET TLS_PORT CA_FILE CLIENT_CERT CLIENT_KEY CLOSED_PORT SILENT_PORT
# Every process it starts has its pid in <dir>/*.pid; `stop` kills those (and only those).
#
# The servers are $BRISK_TEST_SERVER (a name in PATH or a path, e.g. valkey-server; default
# redis-server), asked with $BRISK_TEST_CLI (default redis-cli).
#
# Sourced (by sentinel.sh), it only defines its functions.
set -euo pipefail

readonly HOST=127.0.0.1
readonly START_DEADLINE_S=20 # per server, for it to answer PING
readonly PORT_ATTEMPTS=5     # a free port can be taken by someone else before we bind it
readonly SERVER=${BRISK_TEST_SERVER:-redis-server}
readonly CLI=${BRISK_TEST_CLI:-redis-cli}

die() {
  echo "servers.sh: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start|stop <dir>" >&2
  exit 2
}

now_ms() { date +%s%3N; }

# Whether process <pid> is running. A process that exited but was not reaped yet (a zombie:
# our servers outlive this script and are reaped by init, which may take seconds) counts as
# gone, which `kill -0` alone would not tell.
alive() {
  local stat
  kill -0 "$1" 2>/dev/null || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0 # no /proc: trust kill -0
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# A port that was free a moment ago (the kernel's pick for port 0).
free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

require_tools() {
  command -v "$SERVER" >/dev/null ||
    die "$SERVER not found: install it (Debian: apt-get install redis-server redis-tools)"
  command -v "$CLI" >/dev/null ||
    die "$CLI not found: install it (Debian: apt-get install redis-tools)"
  command -v openssl >/dev/null || die "openssl not found: install it (apt-get install openssl)"
  command -v python3 >/dev/null || die "python3 not found: it is used to find free ports"
  command -v timeout >/dev/null || die "timeout not found: install coreutils"
}

# Kills the process in <pidfile> (if alive) and waits, bounded, for it to exit.
kill_pidfile() {
  local pidfile=$1 pid deadline
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  deadline=$(($(now_ms) + 5000))
  while alive "$pid"; do
    if (($(now_ms) > deadline)); then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  rm -f "$pidfile"
}

# Polls until `$CLI "$@" PING` answers PONG, the process in <pidfile> died, or the deadline.
# Returns 0 when up, 1 when the process died (e.g. the port was taken), 2 on timeout.
wait_for_ping() {
  local pidfile=$1
  shift
  local deadline=$(($(now_ms) + START_DEADLINE_S * 1000)) pid
  while :; do
    # `timeout`: whatever else may hold the port could accept and never answer.
    if [[ $(timeout 2 "$CLI" "$@" PING 2>/dev/null) == PONG ]]; then
      return 0
    fi
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ -n $pid ]] && ! alive "$pid"; then
      return 1
    fi
    if (($(now_ms) > deadline)); then
      return 2
    fi
    sleep 0.05
  done
}

make_certs() {
  local dir=$1/tls
  mkdir -p "$dir"
  (
    cd "$dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=brisk test CA" \
      -keyout ca.key -out ca.crt 2>/dev/null
    cat >server.ext <<'EOF'
subjectAltName = IP:127.0.0.1, DNS:localhost
extendedKeyUsage = serverAuth
keyUsage = digitalSignature, keyEncipherment
basicConstraints = CA:FALSE
EOF
    cat >client.ext <<'EOF'
extendedKeyUsage = clientAuth
keyUsage = digitalSignature, keyEncipherment
basicConstraints = CA:FALSE
EOF
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout server.key -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile server.ext -out server.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=brisk test client" \
      -keyout client.key -out client.csr 2>/dev/null
    openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile client.ext -out client.crt 2>/dev/null
    chmod 600 ./*.key
  ) || die "openssl could not make the test certificates in $dir"
}

# start_redis <dir> <name> <conf-writer-function> <$CLI args for PING (port appended)...>
# Writes <dir>/<name>.conf via the writer (given the port), starts $SERVER (with the arguments
# in the array SERVER_ARGS, if set, after the config file), waits for PING; retries with a new
# port when the server dies at start (port taken meanwhile). Prints the port.
start_redis() {
  local dir=$1 name=$2 writer=$3
  shift 3
  local attempt port status
  for ((attempt = 1; attempt <= PORT_ATTEMPTS; attempt++)); do
    port=$(free_port)
    "$writer" "$dir" "$port" >"$dir/$name.conf"
    "$SERVER" "$dir/$name.conf" ${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"} >>"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
    status=0
    wait_for_ping "$dir/$name.pid" "$@" -p "$port" || status=$?
    case $status in
      0)
        echo "$port"
        return 0
        ;;
      1) # died: most likely the port was taken between free_port and bind; try another
        kill_pidfile "$dir/$name.pid"
        ;;
      *)
        kill_pidfile "$dir/$name.pid"
        echo "servers.sh: $name did not answer PING within ${START_DEADLINE_S}s;" \
          "log follows" >&2
        tail -n 30 "$dir/$name.log" >&2 || true
        return 1
        ;;
    esac
  done
  echo "servers.sh: $name could not start after $PORT_ATTEMPTS attempts; log follows" >&2
  tail -n 30 "$dir/$name.log" >&2 || true
  return 1
}

common_conf() {
  local dir=$1
  cat <<EOF
bind $HOST
protected-mode yes
daemonize no
save ""
appendonly no
databases 16
loglevel notice
EOF
  echo "dir $dir"
}

standalone_conf() {
  local dir=$1 port=$2
  common_conf "$dir"
  cat <<EOF
port $port
unixsocket $(socket_path "$dir")
unixsocketperm 700
user default on nopass ~* &* +@all
user app on >app-secret ~* &* +@all
user limited on >limited-secret ~* &* +@all -set
EOF
}

tls_conf() {
  local dir=$1 port=$2
  common_conf "$dir"
  cat <<EOF
port 0
tls-port $port
tls-cert-file $dir/tls/server.crt
tls-key-file $dir/tls/server.key
tls-ca-cert-file $dir/tls/ca.crt
tls-auth-clients optional
EOF
}

# A listener that accepts connections and never sends a byte. Prints its port once it listens.
start_silent() {
  local dir=$1 deadline
  python3 - "$dir/silent.port" >>"$dir/silent.log" 2>&1 <<'EOF' &
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
held = []
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write("%d\n" % s.getsockname()[1])
os.rename(tmp, sys.argv[1])
while True:
    conn, _ = s.accept()
    held.append(conn)  # keep it open, never answer
EOF
  echo $! >"$dir/silent.pid"
  deadline=$(($(now_ms) + START_DEADLINE_S * 1000))
  until [[ -s $dir/silent.port ]]; do
    alive "$(<"$dir/silent.pid")" || die "the silent listener died; see $dir/silent.log"
    (($(now_ms) <= deadline)) || die "the silent listener did not start within ${START_DEADLINE_S}s"
    sleep 0.05
  done
  cat "$dir/silent.port"
}

# Where the Unix socket goes: <dir>/redis.sock, unless that path is too long for a socket
# address (108 bytes on Linux; deep build trees get there), then a short directory in /tmp,
# recorded in <dir>/socket.dir so that `stop` removes it.
socket_path() {
  local dir=$1
  if ((${#dir} + 11 <= 100)); then
    echo "$dir/redis.sock"
    return
  fi
  if [[ ! -s $dir/socket.dir ]]; then
    mktemp -d "${TMPDIR:-/tmp}/brisk-sock.XXXXXX" >"$dir/socket.dir"
  fi
  echo "$(<"$dir/socket.dir")/redis.sock"
}

cmd_start() {
  local dir=$1
  require_tools
  if [[ -e $dir ]]; then
    # A leftover from an aborted run: stop what it recorded, then start afresh.
    cmd_stop "$dir"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # Whatever fails from here on, leave nothing running.
  trap 'status=$?; if ((status != 0)); then cmd_stop "'"$dir"'"; fi' EXIT

  local standalone_port tls_port silent_port closed_port
  standalone_port=$(start_redis "$dir" standalone standalone_conf -h "$HOST")
  make_certs "$dir"
  tls_port=$(start_redis "$dir" tls tls_conf -h "$HOST" --tls --cacert "$dir/tls/ca.crt")
  silent_port=$(start_silent "$dir")
  closed_port=$(free_port)

  local socket
  socket=$(socket_path "$dir")
  [[ $(timeout 5 "$CLI" -s "$socket" PING 2>/dev/null) == PONG ]] ||
    die "the standalone server does not answer on $socket"

  cat >"$dir/servers.env.tmp" <<EOF
STANDALONE_PORT=$standalone_port
UNIX_SOCKET=$socket
TLS_PORT=$tls_port
CA_FILE=$dir/tls/ca.crt
CLIENT_CERT=$dir/tls/client.crt
CLIENT_KEY=$dir/tls/client.key
CLOSED_PORT=$closed_port
SILENT_PORT=$silent_port
EOF
  mv "$dir/servers.env.tmp" "$dir/servers.env"
  trap - EXIT
  echo "servers.sh: started $("$SERVER" --version | head -n 1) in $dir:"
  cat "$dir/servers.env"
}

cmd_stop() {
  local dir=$1 pidfile
  [[ -d $dir ]] || return 0
  shopt -s nullglob
  for pidfile in "$dir"/*.pid; do
    kill_pidfile "$pidfile"
  done
  shopt -u nullglob
  if [[ -s $dir/socket.dir ]]; then
    rm -rf "$(<"$dir/socket.dir")"
  fi
  rm -rf "$dir"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  (($# == 2)) || usage
  case $1 in
    start) cmd_start "$2" ;;
    stop) cmd_stop "$2" ;;
    *) usage ;;
  esac
fi
