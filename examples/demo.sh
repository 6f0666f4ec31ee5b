#!/usr/bin/env bash
# Shoal demo: builds Shoal, starts the demo backends that examples/shoal.cfg
# points at, then runs Shoal in the foreground. Ctrl-C stops everything.
#
#   bash examples/demo.sh
#
# Needs only Rust (cargo). Ports used: 8080-8081 (Shoal), 9001-9006 and
# 9101-9102 (backends), all on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --bin shoal --bin shoal-demo-backend

BACKEND=target/release/shoal-demo-backend
LOGDIR=$(mktemp -d -t shoal-demo.XXXXXX)
PIDS=()

cleanup() {
    # Stop the backends we started (by pid), then remove their logs.
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$LOGDIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start MODE NAME PORT: runs one backend and waits for its `listening` line.
start() {
    local mode=$1 name=$2 port=$3 out="$LOGDIR/$2.out"
    "$BACKEND" "$mode" --listen "127.0.0.1:$port" --name "$name" >"$out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        grep -q '^listening ' "$out" && return 0
        if ! kill -0 "$!" 2>/dev/null; then
            echo "demo: backend $name failed to start on port $port:" >&2
            cat "$out" >&2
            exit 1
        fi
        sleep 0.05
    done
    echo "demo: backend $name did not start on port $port" >&2
    exit 1
}

start http web1 9001
start http web2 9002
start http web3 9003
start http backup 9004
start http api1 9005
start http api2 9006
start tcp echo1 9101
start tcp echo2 9102

cat <<'TRY'

Demo backends are up. Shoal listens on 127.0.0.1:8080 (HTTP) and :8081 (TCP).
In another terminal, try:

  curl -s localhost:8080/                      # web1, web2, web3 (2:2:1)
  for i in $(seq 10); do curl -s localhost:8080/; echo; done
  curl -s localhost:8080/api/hello             # api1 or api2 (leastconn)
  curl -si localhost:8080/status/503           # backend status passes through
  curl -s localhost:8080/echo-headers          # headers as the backend sees them

  # TCP line echo, alternating echo1/echo2 (nc or socat work too):
  bash -c 'exec 3<>/dev/tcp/127.0.0.1/8081; printf "hello\nQUIT\n" >&3; cat <&3'

Stop Shoal with Ctrl-C; the backends stop with it.

TRY

# Not `exec`: this shell stays to run the cleanup trap when Shoal exits.
target/release/shoal run -f examples/shoal.cfg
