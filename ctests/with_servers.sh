#!/usr/bin/env bash
# with_servers.sh CMD [ARGS...]
# Runs CMD with every @KEY@ in its arguments replaced by KEY's value from
# $BRISK_TEST_DIR/servers.env (written by servers.sh start). Used to run the examples, which
# take a URL on the command line, against the CTest fixture servers.
set -euo pipefail
env_file=${BRISK_TEST_DIR:?BRISK_TEST_DIR is not set}/servers.env
if [[ ! -f $env_file ]]; then
  echo "with_servers.sh: $env_file not found (fixture not started?)" >&2
  exit 1
fi
declare -A values
while IFS='=' read -r key value; do
  [[ -n $key ]] && values[$key]=$value
done <"$env_file"
args=()
for arg in "$@"; do
  for key in "${!values[@]}"; do
    arg=${arg//@$key@/${values[$key]}}
  done
  args+=("$arg")
done
exec "${args[@]}"
