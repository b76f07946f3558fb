#!/usr/bin/env bash
# A Sentinel deployment for the C tests and examples, all on loopback:
#
#   sentinel.sh run <dir> CMD [ARGS...]
#
# makes <dir> afresh and starts in it a master, its replica (diskless replication, no delay)
# and three sentinels (`$BRISK_TEST_SERVER --sentinel`) watching the master as "mymaster"
# (quorum 2, down-after 1000 ms, failover-timeout 3000 ms); waits (with a deadline) until the
# replica's link is up and every sentinel knows the replica and the two other sentinels; writes
# <dir>/servers.env:
#   MASTER_NAME MASTER_PORT REPLICA_PORT MASTER_PID REPLICA_PID
#   SENTINEL_PORT_1 SENTINEL_PORT_2 SENTINEL_PORT_3 CLOSED_PORT
# then runs CMD with BRISK_TEST_DIR=<dir> (so bt_env() reads that file) and every @KEY@ in its
# arguments replaced by KEY's value, stops everything it started, removes <dir>, and exits with
# CMD's status. The helpers (ports, start and stop, PING waits) are servers.sh's.
set -euo pipefail
# shellcheck source=servers.sh
source "$(dirname "${BASH_SOURCE[0]}")/servers.sh"

readonly MASTER_NAME=mymaster
readonly SETTLE_DEADLINE_S=60

data_conf() {
  local dir=$1 port=$2
  common_conf "$dir"
  cat <<EOF2
port $port
dbfilename dump-$port.rdb
repl-diskless-sync yes
repl-diskless-sync-delay 0
EOF2
  if [[ -n ${REPLICA_OF:-} ]]; then
    echo "replicaof $HOST $REPLICA_OF"
  fi
}

sentinel_conf() {
  local dir=$1 port=$2
  cat <<EOF2
bind $HOST
port $port
daemonize no
dir $dir
sentinel monitor $MASTER_NAME $HOST $MASTER_PORT 2
sentinel down-after-milliseconds $MASTER_NAME 1000
sentinel failover-timeout $MASTER_NAME 3000
sentinel parallel-syncs $MASTER_NAME 1
EOF2
}

# The value of <field> in `$CLI -p <port> SENTINEL MASTER mymaster` (one item per line).
sentinel_field() {
  local port=$1 field=$2
  timeout 5 "$CLI" -h "$HOST" -p "$port" SENTINEL MASTER "$MASTER_NAME" 2>/dev/null |
    awk -v f="$field" 'prev == f { print; exit } { prev = $0 }'
}

settled() {
  local port
  timeout 5 "$CLI" -h "$HOST" -p "$REPLICA_PORT" INFO replication 2>/dev/null |
    grep -q 'master_link_status:up' || return 1
  for port in "${SENTINEL_PORTS[@]}"; do
    [[ $(sentinel_field "$port" num-slaves) == 1 ]] || return 1
    [[ $(sentinel_field "$port" num-other-sentinels) == 2 ]] || return 1
  done
}

cmd_run() {
  local dir=$1
  shift
  require_tools
  if [[ -e $dir ]]; then
    cmd_stop "$dir"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  trap 'cmd_stop "'"$dir"'"' EXIT

  MASTER_PORT=$(start_redis "$dir" master data_conf -h "$HOST")
  REPLICA_PORT=$(REPLICA_OF=$MASTER_PORT start_redis "$dir" replica data_conf -h "$HOST")
  SENTINEL_PORTS=()
  local i deadline
  SERVER_ARGS=(--sentinel)
  for i in 1 2 3; do
    SENTINEL_PORTS+=("$(start_redis "$dir" "sentinel$i" sentinel_conf -h "$HOST")")
  done
  SERVER_ARGS=()
  deadline=$(($(now_ms) + SETTLE_DEADLINE_S * 1000))
  until settled; do
    (($(now_ms) <= deadline)) || die "the sentinel deployment did not settle within ${SETTLE_DEADLINE_S}s"
    sleep 0.1
  done

  cat >"$dir/servers.env" <<EOF2
MASTER_NAME=$MASTER_NAME
MASTER_PORT=$MASTER_PORT
REPLICA_PORT=$REPLICA_PORT
MASTER_PID=$(<"$dir/master.pid")
REPLICA_PID=$(<"$dir/replica.pid")
SENTINEL_PORT_1=${SENTINEL_PORTS[0]}
SENTINEL_PORT_2=${SENTINEL_PORTS[1]}
SENTINEL_PORT_3=${SENTINEL_PORTS[2]}
CLOSED_PORT=$(free_port)
EOF2
  echo "sentinel.sh: started $("$SERVER" --version | head -n 1) in $dir:"
  cat "$dir/servers.env"

  declare -A values
  local key value arg args=()
  while IFS='=' read -r key value; do
    [[ -n $key ]] && values[$key]=$value
  done <"$dir/servers.env"
  for arg in "$@"; do
    for key in "${!values[@]}"; do
      arg=${arg//@$key@/${values[$key]}}
    done
    args+=("$arg")
  done
  local status=0
  BRISK_TEST_DIR=$dir "${args[@]}" || status=$?
  return "$status"
}

(($# >= 3)) && [[ $1 == run ]] || {
  echo "usage: $0 run <dir> CMD [ARGS...]" >&2
  exit 2
}
shift
cmd_run "$@"
