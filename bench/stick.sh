#!/usr/bin/env bash
# Benchmarks stick-table replication in a three-node Shoal cluster on
# loopback (127.0.0.11-13): entries replicated per second, visibility of a
# new entry on the other nodes, and data-plane CPU per request with
# stickiness on (clustered against standalone). Prints a markdown table
# (also saved to bench/results/stick-latest.md). Driver: bench/stick.py.
#
#   flock /tmp/shoal-bench.lock bash bench/stick.sh
#
# Environment:
#   BENCH_ROUNDS=3          standalone/clustered rounds (part 3)
#   BENCH_SECONDS=10        wrk duration of each measured run
#   BENCH_WARMUP=2          wrk warm-up seconds (part 3)
#   BENCH_CONNS=50          wrk connections
#   BENCH_PARTS=1,3         which measurements to run (2 runs with 1)
#   BENCH_SKIP_BUILD=1      use the binaries already in target/release
#   SHOAL_BIN=PATH          Shoal binary (default: target/release/shoal)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SHOAL=${SHOAL_BIN:-$ROOT/target/release/shoal}
BACKEND=$ROOT/target/release/shoal-demo-backend
RESULTS=$ROOT/bench/results/stick-latest.md

log() { echo "stick bench: $*" >&2; }

# --- tools -----------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    SUDO=; [[ $(id -u) == 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The measured node on core 0; wrk, the backends and the other nodes on
# core 1 (when there are two cores).
PINNED=()
if [[ $(nproc) -ge 2 ]] && command -v taskset >/dev/null; then
    LOAD_CPU=(taskset -c 1); PINNED=(--pinned)
else
    log "warning: fewer than 2 cores or no taskset; running unpinned"
    LOAD_CPU=()
fi

if [[ ${BENCH_SKIP_BUILD:-} != 1 ]]; then
    cargo build --release -p shoal-node
fi
[[ -x $SHOAL ]] || { log "no $SHOAL"; exit 1; }

# --- helpers ---------------------------------------------------------------
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

# The driver starts the shoal processes and stops them itself; should it
# be killed first, the pids it wrote are stopped here too.
# shellcheck disable=SC2317  # called from the trap
stop_all() {
    if [[ -n ${DRIVER:-} ]]; then kill "$DRIVER" 2>/dev/null || true; wait "$DRIVER" 2>/dev/null || true; fi
    if [[ -n ${BENCH_KEEP_LOGS:-} ]]; then
        mkdir -p "$BENCH_KEEP_LOGS"
        for f in "$WORK"/node*/shoal.log "$WORK"/standalone/shoal.log; do
            [[ -f $f ]] && cp "$f" "$BENCH_KEEP_LOGS/$(basename "$(dirname "$f")").log"
        done
    fi
    if [[ -f $WORK/shoal.pids ]]; then
        # Only a process that is still one of ours (its arguments name $WORK).
        while read -r pid; do
            if grep -qF "$WORK" "/proc/$pid/cmdline" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
        done <"$WORK/shoal.pids"
    fi
    cleanup
}
trap stop_all EXIT

# --- run -------------------------------------------------------------------
start_backend s1; SERVER1=$ADDR
start_backend s2; SERVER2=$ADDR
log "backends on $SERVER1 and $SERVER2"
sed -e "s/@SERVER1@/$SERVER1/" -e "s/@SERVER2@/$SERVER2/" "$ROOT/bench/stick.cfg" >"$WORK/stick.cfg"

HEAD=(
    "## Shoal stick tables in a cluster, $(date -u '+%Y-%m-%d %H:%M UTC')"
    ""
    "- Shoal $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)'), release build; 3 nodes on 127.0.0.11-13 (QUIC, mutual TLS, sled on $(df -P "$WORK" | awk 'NR == 2 { print $1 }'))"
    "- $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r); load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    "- the machine may be shared: figures are noisy; compare rows of one run, and repeat"
)
HEAD_ARGS=()
for line in "${HEAD[@]}"; do HEAD_ARGS+=(--head "$line"); done

python3 "$ROOT/bench/stick.py" --shoal "$SHOAL" --config "$WORK/stick.cfg" \
    --work "$WORK" --results "$RESULTS" "${PINNED[@]}" "${HEAD_ARGS[@]}" \
    --rounds "${BENCH_ROUNDS:-3}" --seconds-wrk "${BENCH_SECONDS:-10}" \
    --warmup "${BENCH_WARMUP:-2}" --conns "${BENCH_CONNS:-50}" --parts "${BENCH_PARTS:-1,3}" &
DRIVER=$!
status=0
wait "$DRIVER" || status=$?
DRIVER=
exit "$status"
