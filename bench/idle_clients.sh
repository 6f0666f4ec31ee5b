#!/usr/bin/env bash
# What idle and abusive clients cost: Shoal beside HAProxy, same config
# (bench/idle.cfg). Prints a markdown table of the proxy's open
# descriptors and resident memory (VmRSS) before and while holding:
#   idle:  N keep-alive clients that made one request each and sit idle;
#   heads: M clients each sending an unfinished 400 KB header.
#
# Environment:
#   IDLE_CLIENTS=5000   HEAD_CLIENTS=200   HEAD_KB=400
#   BENCH_PROXIES="haproxy shoal"   BENCH_SKIP_BUILD=1   SHOAL_BIN=PATH
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${IDLE_CLIENTS:-5000}
M=${HEAD_CLIENTS:-200}
KB=${HEAD_KB:-400}
PROXIES=${BENCH_PROXIES:-haproxy shoal}
SHOAL=${SHOAL_BIN:-$ROOT/target/release/shoal}
BACKEND=$ROOT/target/release/shoal-demo-backend

log() { echo "idle: $*" >&2; }
command -v python3 >/dev/null || { log "python3 is required"; exit 1; }
command -v haproxy >/dev/null || { log "haproxy is required"; exit 1; }
if [[ ${BENCH_SKIP_BUILD:-} != 1 ]]; then
    cargo build --release -p shoal-node
fi
ulimit -n "$(ulimit -Hn)"

LOAD_CPU=()
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 | wc -l; }

start_backend s1; SERVER1=$ADDR

ROWS=()
# measure PROXY SCENARIO ARGS...: start the proxy, hold the clients, read /proc.
measure() {
    local proxy=$1 scenario=$2 port cfg pid
    shift 2
    port=$(free_port)
    cfg=$WORK/$proxy-$scenario.cfg
    sed -e "s/@PORT@/$port/" -e "s/@SERVER1@/$SERVER1/" "$ROOT/bench/idle.cfg" >"$cfg"
    case $proxy in
        haproxy) haproxy -db -f "$cfg" >"$WORK/$proxy.out" 2>&1 & ;;
        shoal) (cd "$WORK" && exec "$SHOAL" run -f "$cfg") >"$WORK/$proxy.out" 2>&1 & ;;
    esac
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$port/" || true) == 200 ]] && break
        sleep 0.1
    done
    local rss0 fds0 rss1 fds1 fifo=$WORK/hold-$proxy-$scenario
    rss0=$(rss_kb "$pid"); fds0=$(fds "$pid")
    mkfifo "$fifo"
    python3 "$ROOT/bench/idle_clients.py" "$scenario" "$port" "$@" <"$fifo" >"$WORK/client.out" 2>&1 &
    local client=$!
    exec 9>"$fifo"
    for _ in $(seq 600); do grep -q '^ready' "$WORK/client.out" && break; sleep 0.1; done
    sleep 1 # let the proxy settle what it received
    rss1=$(rss_kb "$pid"); fds1=$(fds "$pid")
    exec 9>&-
    wait "$client" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local clients=$1
    ROWS+=("$(awk -v p="$proxy" -v s="$scenario" -v c="$clients" -v f0="$fds0" -v f1="$fds1" -v r0="$rss0" -v r1="$rss1" \
        'BEGIN { printf "| %s | %s | %d | %d | %d | %.1f | %.1f | %.1f |", p, s, c, f0, f1, r0/1024, r1/1024, (r1-r0)*1024/c/1024 }')")
}

for proxy in $PROXIES; do
    measure "$proxy" idle "$N"
    measure "$proxy" heads "$M" "$KB"
done

echo "## Idle and abusive clients, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- Shoal $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)'); $(haproxy -v | head -n 1 | cut -d' ' -f1-3)"
echo "- idle: clients that made one keep-alive request and sit idle; heads: clients sending an unfinished ${KB} KB header"
echo
echo "| proxy | scenario | clients | fds before | fds holding | RSS MB before | RSS MB holding | KB per client |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
