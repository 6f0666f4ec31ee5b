#!/usr/bin/env bash
# A three-node Shoal cluster on this machine, for trying Shoal out and for
# demos: nodes on 127.0.0.11, .12 and .13 (HTTP on port 8080, admin API on
# 9090, cluster on 7000), two example backends on 127.0.0.1:9001-9002, the
# cluster's own CA and node certificates, examples/cluster.cfg.
#
#   deploy/local-cluster.sh start    build (release), start, init, wait for 3 voters
#   deploy/local-cluster.sh status   which of its processes run; `shoal cluster status`
#   deploy/local-cluster.sh stop     stop what `start` started (nothing else)
#
# Files (certificates, admin token, data, logs, pids) live in
# $SHOAL_LOCAL_DIR (default: target/local-cluster). `stop` keeps them, so
# `start` again brings the same cluster back with its state; remove the
# directory to start afresh.
#
# Environment:
#   SHOAL_BIN=DIR        use the shoal and shoal-demo-backend binaries in DIR
#                        instead of building target/release
#   SHOAL_LOCAL_DIR=DIR  where its files live
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${SHOAL_LOCAL_DIR:-$ROOT/target/local-cluster}
NODES=(1 2 3)
BACKENDS=(web1:127.0.0.1:9001 web2:127.0.0.1:9002)

die() { echo "local-cluster: $*" >&2; exit 1; }

# `pid starttime` of a running process: a pid recorded by `start` is only
# ours while its start time matches (pids are reused).
ident() { [ -r "/proc/$1/stat" ] && echo "$1 $(cut -d' ' -f22 "/proc/$1/stat")"; }

# Whether the process recorded in pid file $1 is still the one we started.
alive() {
    local f=$1 pid start
    [ -f "$f" ] || return 1
    read -r pid start < "$f" || return 1
    [ "$(ident "$pid" 2>/dev/null)" = "$pid $start" ]
}

# Launch "$@" in the background with its own session (so the shell that
# ran `start` may exit), output to log $1, identity to pid file $2.
launch() {
    local log=$1 pidfile=$2
    shift 2
    setsid "$@" > "$log" 2>&1 < /dev/null &
    local pid=$!
    ident "$pid" > "$pidfile" || die "$* exited at once; see $log"
}

# Fail when anything already listens on one of our addresses.
check_free() {
    local addr
    for addr in 127.0.0.11:7000 127.0.0.12:7000 127.0.0.13:7000 \
        127.0.0.11:8080 127.0.0.12:8080 127.0.0.13:8080 \
        127.0.0.11:9090 127.0.0.12:9090 127.0.0.13:9090 127.0.0.1:9001 127.0.0.1:9002; do
        if (exec 3<> "/dev/tcp/${addr%:*}/${addr#*:}") 2> /dev/null; then
            die "$addr is already in use (another cluster, or the README walkthrough?)"
        fi
    done
}

# Poll "$@" every 0.2 s until it succeeds, for at most $1 seconds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" > /dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "$what: not within $secs s (logs in $DIR)"
        sleep 0.2
    done
}

voters() {
    [ "$(shoal cluster status --json --admin 127.0.0.11:9090 | grep -c '"voter"')" = 3 ]
}

binaries() {
    if [ -n "${SHOAL_BIN:-}" ]; then
        BIN=$SHOAL_BIN
    else
        echo "building shoal (release)..."
        (cd "$ROOT" && cargo build --release --bin shoal --bin shoal-demo-backend)
        BIN=$ROOT/target/release
    fi
    [ -x "$BIN/shoal" ] && [ -x "$BIN/shoal-demo-backend" ] || die "no shoal binaries in $BIN"
    export PATH="$BIN:$PATH"
}

start() {
    local n b running=0
    for f in "$DIR"/*.pid; do alive "$f" && running=1; done
    [ "$running" = 0 ] || die "already running (see: $0 status); stop it first"
    command -v curl > /dev/null || die "curl is needed (apt-get install -y curl)"
    binaries
    check_free
    mkdir -p "$DIR"
    local fresh=0
    [ -d "$DIR/node1/data" ] || fresh=1
    if [ ! -f "$DIR/token" ]; then
        head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/token"
        chmod 600 "$DIR/token"
    fi
    SHOAL_ADMIN_TOKEN=$(cat "$DIR/token")
    export SHOAL_ADMIN_TOKEN
    if [ ! -f "$DIR/ca/ca.pem" ]; then
        shoal cluster ca --out "$DIR/ca" > /dev/null
        for n in "${NODES[@]}"; do
            shoal cluster cert --ca "$DIR/ca" --node-id "$n" --out "$DIR/certs$n" > /dev/null
        done
    fi
    for b in "${BACKENDS[@]}"; do
        launch "$DIR/${b%%:*}.log" "$DIR/${b%%:*}.pid" \
            shoal-demo-backend http --listen "${b#*:}" --name "${b%%:*}"
    done
    for n in "${NODES[@]}"; do
        mkdir -p "$DIR/node$n"
        local join=()
        [ "$n" = 1 ] || join=(--join 127.0.0.11:7000)
        launch "$DIR/node$n.log" "$DIR/node$n.pid" \
            env NODE_IP="127.0.0.1$n" SHOAL_DIR="$DIR/node$n" shoal run -f "$ROOT/examples/cluster.cfg" --node-id "$n" \
            --data-dir "$DIR/node$n/data" --certs "$DIR/certs$n" \
            --cluster-addr "127.0.0.1$n:7000" --admin "127.0.0.1$n:9090" "${join[@]}"
    done
    for n in "${NODES[@]}"; do
        wait_for 30 "node $n's admin API" curl -sf "127.0.0.1$n:9090/live"
    done
    if [ "$fresh" = 1 ]; then
        shoal cluster init --admin 127.0.0.11:9090 > /dev/null
    fi
    wait_for 60 "three voters" voters
    for n in "${NODES[@]}"; do
        wait_for 30 "node $n ready" curl -sf "127.0.0.1$n:9090/ready"
    done
    cat << EOF
A three-node Shoal cluster runs (files in $DIR).

  HTTP:       curl 127.0.0.11:8080/   (also .12 and .13)
  admin API:  export SHOAL_ADMIN_TOKEN=\$(cat $DIR/token)
              export PATH=$BIN:\$PATH
              shoal cluster status --admin 127.0.0.11:9090
              shoal server weight web/web1 0 --admin 127.0.0.12:9090
  runtime:    echo "show stat" | socat - $DIR/node1/admin.sock
  stats page: http://127.0.0.11:9090/stats (token as above)
  logs:       $DIR/node1.log ...
  stop:       $0 stop
EOF
}

status() {
    local f any=0
    for f in "$DIR"/*.pid; do
        [ -f "$f" ] || continue
        if alive "$f"; then
            echo "$(basename "$f" .pid): running (pid $(cut -d' ' -f1 "$f"))"
            any=1
        else
            echo "$(basename "$f" .pid): stopped"
        fi
    done
    [ "$any" = 1 ] || { echo "not running"; return 3; }
    local bin=${SHOAL_BIN:-$ROOT/target/release}
    SHOAL_ADMIN_TOKEN=$(cat "$DIR/token") "$bin/shoal" cluster status --admin 127.0.0.11:9090 ||
        SHOAL_ADMIN_TOKEN=$(cat "$DIR/token") "$bin/shoal" cluster status --admin 127.0.0.12:9090
}

stop() {
    local f pid left
    for f in "$DIR"/*.pid; do
        [ -f "$f" ] || continue
        alive "$f" && kill -TERM "$(cut -d' ' -f1 "$f")" 2> /dev/null || true
    done
    local deadline=$((SECONDS + 15))
    while :; do
        left=()
        for f in "$DIR"/*.pid; do [ -f "$f" ] && alive "$f" && left+=("$f"); done
        [ "${#left[@]}" = 0 ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            for f in "${left[@]}"; do kill -KILL "$(cut -d' ' -f1 "$f")" 2> /dev/null || true; done
            break
        fi
        sleep 0.2
    done
    rm -f "$DIR"/*.pid
    echo "stopped (state kept in $DIR)"
}

case "${1:-}" in
    start) start ;;
    status) status ;;
    stop) stop ;;
    *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
