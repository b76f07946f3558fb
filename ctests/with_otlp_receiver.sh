#!/usr/bin/env bash
# with_otlp_receiver.sh CMD [ARGS...]
# Starts otlp_receiver.py on a free loopback port, runs CMD with @OTLP_URL@ in its arguments
# replaced by the receiver's URL, then checks that the receiver got protobuf bodies on
# /v1/traces and /v1/metrics. Used to run examples/otel.c end to end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir=$(mktemp -d)
receiver=
cleanup() {
  if [[ -n $receiver ]]; then
    kill "$receiver" 2>/dev/null || true
    wait "$receiver" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
python3 "$here/otlp_receiver.py" "$dir/port" "$dir/log" &
receiver=$!
for _ in $(seq 1 200); do
  [[ -s $dir/port ]] && break
  kill -0 "$receiver" 2>/dev/null || { echo "otlp_receiver.py died" >&2; exit 1; }
  sleep 0.05
done
[[ -s $dir/port ]] || { echo "otlp_receiver.py did not start" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$dir/port")"
args=()
for arg in "$@"; do
  args+=("${arg//@OTLP_URL@/$url}")
done
"${args[@]}"
touch "$dir/log"
echo "collector received:" && sort "$dir/log" | uniq -c | awk '{print "  " $0}'
for path in /v1/traces /v1/metrics; do
  if ! grep -q "^$path application/x-protobuf [1-9]" "$dir/log"; then
    echo "MISMATCH: no protobuf body on $path" >&2
    exit 1
  fi
done
