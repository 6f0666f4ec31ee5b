# Shared by the bench scripts (sourced, not run): a scratch directory and
# the processes to stop when the script ends, a free port for a proxy's
# config, and demo backends.
#
# The caller sets ROOT, BACKEND, a `log` function, and optionally
# LOAD_CPU=(taskset -c N) to pin backends.

WORK=$(mktemp -d -t shoal-bench.XXXXXX)
PIDS=()
# shellcheck disable=SC2317  # called from the trap
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A TCP port nobody on this machine uses right now (both proxies get the
# same config file, and HAProxy cannot announce a port 0 it bound).
free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local used port hex
    used=$(awk 'NR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 |
        while read -r hex; do echo $((16#$hex)); done)
    while :; do
        port=$((20000 + RANDOM % 40000))
        grep -qx "$port" <<<"$used" || { echo "$port"; return; }
    done
}

# start_backend NAME [ARGS...]: runs one HTTP demo backend (one thread) on
# a port it picks; sets ADDR to its address.
start_backend() {
    local name=$1 out=$WORK/$1.out
    shift
    "${LOAD_CPU[@]}" "$BACKEND" http --listen 127.0.0.1:0 --name "$name" --threads 1 "$@" >"$out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 100); do
        if grep -q '^listening ' "$out"; then ADDR=$(awk '{ print $2; exit }' "$out"); return; fi
        sleep 0.05
    done
    log "backend $name did not start:"; cat "$out" >&2; exit 1
}
