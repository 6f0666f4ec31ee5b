#!/usr/bin/env bash
# Benchmarks Shoal and HAProxy with the same wrk load on loopback, in HTTP
# and TCP mode, and prints a markdown table (also saved to
# bench/results/latest.md). See bench/README.md.
#
# Environment:
#   BENCH_SECONDS=10        wrk duration of each measured run
#   BENCH_WARMUP=2          wrk warm-up seconds before each run
#   BENCH_CONNS=50          wrk connections
#   BENCH_PROXIES="haproxy shoal"
#   BENCH_MODES="http tcp"
#   BENCH_BODY_SIZE=        backend response body size in bytes (default: tiny)
#   BENCH_SKIP_BUILD=1      use the binaries already in target/release
#   SHOAL_BIN=PATH          Shoal binary (default: target/release/shoal)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECONDS_RUN=${BENCH_SECONDS:-10}
WARMUP=${BENCH_WARMUP:-2}
CONNS=${BENCH_CONNS:-50}
PROXIES=${BENCH_PROXIES:-haproxy shoal}
MODES=${BENCH_MODES:-http tcp}
SHOAL=${SHOAL_BIN:-$ROOT/target/release/shoal}
BACKEND=$ROOT/target/release/shoal-demo-backend
RESULTS=$ROOT/bench/results/latest.md

log() { echo "bench: $*" >&2; }

# --- tools -----------------------------------------------------------------
missing=()
command -v haproxy >/dev/null || missing+=(haproxy)
command -v wrk >/dev/null || missing+=(wrk)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Proxy on core 0, wrk and backends on core 1 (when there are two cores).
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    PROXY_CPU=(taskset -c 0); LOAD_CPU=(taskset -c 1)
else
    log "warning: fewer than 2 cores or no taskset; running unpinned"
    PROXY_CPU=(); LOAD_CPU=()
fi

if [[ ${BENCH_SKIP_BUILD:-} != 1 ]]; then
    cargo build --release -p shoal-node
fi

# --- helpers ---------------------------------------------------------------
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# user+sys clock ticks of a process (all its threads), from /proc/PID/stat.
cpu_ticks() {
    # Drop "pid (comm) " first: comm may contain spaces. utime and stime are
    # fields 14 and 15, i.e. 12 and 13 after the cut.
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# wait_serving PID PORT: true once the proxy answers 200 on PORT.
wait_serving() {
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || return 1
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$2/" || true) == 200 ]] && return 0
        sleep 0.1
    done
    return 1
}

ROWS=()
FAILED=0
fail_row() { # proxy mode reason log
    ROWS+=("| $1 | $2 | FAILED: $3 | - | - | - | - | - |")
    FAILED=1
    log "$1 $2: $3; last lines of its output:"
    tail -n 20 "$4" >&2 || true
}

# bench_one PROXY MODE
bench_one() {
    local proxy=$1 mode=$2 port cfg out=$WORK/$1-$2.log wrk_out=$WORK/$1-$2.wrk pid
    port=$(free_port)
    cfg=$WORK/$proxy-$mode.cfg
    sed -e "s/@PORT@/$port/" -e "s/@SERVER1@/$SERVER1/" -e "s/@SERVER2@/$SERVER2/" \
        "$ROOT/bench/$mode.cfg" >"$cfg"

    case $proxy in
        haproxy) "${PROXY_CPU[@]}" haproxy -db -f "$cfg" >"$out" 2>&1 & ;;
        shoal)
            if [[ ! -x $SHOAL ]]; then
                echo "no $SHOAL" >"$out"; fail_row shoal "$mode" "binary missing" "$out"; return
            fi
            # Own working directory, so its ./shoal-data is thrown away after.
            mkdir -p "$WORK/shoal-$mode"
            (cd "$WORK/shoal-$mode" && exec "${PROXY_CPU[@]}" "$SHOAL" run -f "$cfg") >"$out" 2>&1 &
            ;;
        *) log "unknown proxy $proxy"; exit 2 ;;
    esac
    pid=$!
    PIDS+=("$pid")

    if ! wait_serving "$pid" "$port"; then
        fail_row "$proxy" "$mode" "does not serve HTTP on 127.0.0.1:$port" "$out"
        kill "$pid" 2>/dev/null || true
        return
    fi

    local url=http://127.0.0.1:$port/
    log "$proxy $mode: warm-up ${WARMUP}s, then ${SECONDS_RUN}s with $CONNS connections"
    "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${WARMUP}s" "$url" >/dev/null || true
    local t0 t1 c0 c1
    c0=$(cpu_ticks "$pid"); t0=$(date +%s.%N)
    "${LOAD_CPU[@]}" wrk -t1 -c"$CONNS" -d"${SECONDS_RUN}s" --latency "$url" >"$wrk_out" || true
    t1=$(date +%s.%N)
    if ! c1=$(cpu_ticks "$pid" 2>/dev/null); then
        fail_row "$proxy" "$mode" "proxy died during the run" "$out"; return
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true

    # wrk output: "N requests in ...", "Requests/sec: X", latency distribution
    # lines "50% 1.2ms", optional "Non-2xx or 3xx responses: N" and
    # "Socket errors: connect A, read B, write C, timeout D".
    local row
    row=$(awk -v proxy="$proxy" -v mode="$mode" -v dt=$((c1 - c0)) \
        -v hz="$(getconf CLK_TCK)" -v secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" '
        /requests in/ { reqs = $1 }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = $2 }
        $1 == "99%" { p99 = $2 }
        /Non-2xx/ { errs += $NF }
        /Socket errors:/ { gsub(/,/, ""); errs += $4 + $6 + $8 + $10 }
        END {
            if (reqs == 0) { print "| " proxy " | " mode " | FAILED: no requests served | - | - | - | - | - |"; exit }
            printf "| %s | %s | %.0f | %s | %s | %.1f | %.0f%% | %d |\n", proxy, mode, rps, p50, p99,
                dt * 1e6 / hz / reqs, dt / hz / secs * 100, errs
        }' "$wrk_out")
    [[ $row == *FAILED* ]] && FAILED=1
    ROWS+=("$row")
}

# --- run -------------------------------------------------------------------
BODY=()
[[ -n ${BENCH_BODY_SIZE:-} ]] && BODY=(--body-size "$BENCH_BODY_SIZE")
start_backend s1 "${BODY[@]}"; SERVER1=$ADDR
start_backend s2 "${BODY[@]}"; SERVER2=$ADDR
log "backends on $SERVER1 and $SERVER2"

for mode in $MODES; do
    for proxy in $PROXIES; do
        bench_one "$proxy" "$mode"
    done
done

mkdir -p "$(dirname "$RESULTS")"
{
    echo "## Shoal vs HAProxy, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- Shoal $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)'); $(haproxy -v | head -n 1 | cut -d' ' -f1-3)"
    echo "- $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r)"
    echo "- proxy: 1 thread pinned to core 0; wrk (-t1 -c$CONNS -d${SECONDS_RUN}s, ${WARMUP}s warm-up) and 2 demo backends on core 1"
    echo "- CPU µs/req: the proxy's user+sys time over the run divided by requests served; CPU %: of one core"
    echo
    echo "| proxy | mode | requests/s | p50 latency | p99 latency | proxy CPU µs/req | proxy CPU % | errors |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$RESULTS"

exit "$FAILED"
