# The setup bench/cluster.sh and bench/stick.sh share (sourced, not run):
# tools, core pinning, the release build, two demo backends, the config
# bench/$BENCH_NAME.cfg with their addresses ($WORK/$BENCH_NAME.cfg), the
# report's head (HEAD_ARGS), and stopping whatever the driver started.
#
# The caller sets ROOT, SHOAL, BACKEND, BENCH_NAME and BENCH_TITLE, then
# runs its driver in the background as DRIVER.

log() { echo "$BENCH_NAME bench: $*" >&2; }

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
sed -e "s/@SERVER1@/$SERVER1/" -e "s/@SERVER2@/$SERVER2/" "$ROOT/bench/$BENCH_NAME.cfg" >"$WORK/$BENCH_NAME.cfg"

HEAD=(
    "## $BENCH_TITLE, $(date -u '+%Y-%m-%d %H:%M UTC')"
    ""
    "- Shoal $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '(no commit)'), release build; 3 nodes on 127.0.0.11-13 (QUIC, mutual TLS, sled on $(df -P "$WORK" | awk 'NR == 2 { print $1 }'))"
    "- $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), Linux $(uname -r); load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
    "- the machine may be shared: figures are noisy; compare rows of one run, and repeat"
)
HEAD_ARGS=()
for line in "${HEAD[@]}"; do HEAD_ARGS+=(--head "$line"); done
