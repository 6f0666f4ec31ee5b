#!/usr/bin/env bash
# Builds the image and runs deploy/docker/compose.yaml for real on this
# Linux host (Docker, or Podman as root: the checks reach the nodes at
# 172.28.0.11-13 from the host, which rootless Podman does not route),
# then checks the cluster it starts through the nodes' addresses: every node ready, three voters, traffic through every node
# to both demo backends, a weight set through node 2 followed by node 3,
# node 3 restarted in a new container with that state kept (its data
# volume), and drain/ready moving /ready.
# Everything it started is removed at the end (`compose down -v`).
#
#   bash deploy/docker/verify.sh                 # Docker (docker compose)
#   ENGINE=podman COMPOSE=podman-compose bash deploy/docker/verify.sh
#
# Environment:
#   ENGINE=docker          the container engine (docker or podman)
#   COMPOSE="docker compose"  the compose command
#   COMPOSE_EXTRA=FILE     an extra compose file layered on top, for a
#                          host's quirks (limits it cannot raise, ...)
#   SKIP_BUILD=1           use the image shoal:local already built
set -euo pipefail
cd "$(dirname "$0")/../.."

ENGINE=${ENGINE:-docker}
COMPOSE=${COMPOSE:-"$ENGINE compose"}
PROJECT=shoal-verify
ENV_FILE=deploy/docker/.env
files=(-f deploy/docker/compose.yaml)
if [ -n "${COMPOSE_EXTRA:-}" ]; then
    files+=(-f "$COMPOSE_EXTRA")
fi
# shellcheck disable=SC2086  # COMPOSE may be two words
compose() { $COMPOSE -p "$PROJECT" "${files[@]}" "$@"; }

made_env=
cleanup() {
    compose down -v > /dev/null 2>&1 || true
    if [ -n "$made_env" ]; then rm -f "$ENV_FILE"; fi
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# Poll `probe` (a command) once a second until it succeeds or `secs` pass.
within() {
    local secs=$1; shift
    local deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 1
    done
}

ready_is() { # NODE CODE
    [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://172.28.0.1$1:9090/ready")" = "$2" ]
}
answers() { # NODE: the backends that answered 6 requests, sorted, unique
    for _ in 1 2 3 4 5 6; do curl -sf -m 5 "http://172.28.0.1$1/"; echo; done | sort -u | tr '\n' ' '
}
only_web2() { [ "$(answers "$1")" = "web2 " ]; }
shoal_on() { # NODE ARGS...: the CLI inside that node's container
    local n=$1; shift
    compose exec -T "node$n" shoal "$@" --admin "172.28.0.1$n:9090"
}

if [ ! -f "$ENV_FILE" ]; then
    printf 'SHOAL_ADMIN_TOKEN=%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" > "$ENV_FILE"
    made_env=1
fi
if [ -z "${SKIP_BUILD:-}" ]; then
    "$ENGINE" build -f deploy/docker/Dockerfile -t shoal:local .
fi
compose up -d

for n in 1 2 3; do
    within 120 ready_is "$n" 200 || fail "node $n: /ready is not 200 after 120 s"
done
pass "every node answers 200 on /ready"

voters() { [ "$(shoal_on 1 cluster status | grep -c ' voter  *yes ')" = 3 ]; }
within 60 voters || fail "cluster status does not show three reachable voters"
pass "three reachable voters"

for n in 1 2 3; do
    [ "$(answers "$n")" = "web1 web2 " ] || fail "node $n: answers from '$(answers "$n")', not both backends"
done
pass "every node balances over web1 and web2"

shoal_on 2 server weight web/web1 0 > /dev/null
within 30 only_web2 3 || fail "node 3 still sends to web1 after weight 0 through node 2"
pass "a weight set through node 2 is followed by node 3"

# Replace node 3's container (as an image upgrade would), keeping its
# data volume. (`compose restart` would do for Docker; Podman refuses to
# restart a container whose one-shot dependency has exited.)
node3_id() {
    "$ENGINE" ps -q --filter "label=com.docker.compose.project=$PROJECT" \
        --filter label=com.docker.compose.service=node3
}
before=$(node3_id)
compose up -d --force-recreate --no-deps node3 > /dev/null
[ "$(node3_id)" != "$before" ] || fail "node 3's container was not replaced"
within 60 ready_is 3 200 || fail "node 3 is not ready again after a restart"
only_web2 3 || fail "node 3 forgot the weight across its restart"
pass "node 3 restarted in a new container and kept the cluster's state"

shoal_on 1 node drain 3 > /dev/null
within 30 ready_is 3 503 || fail "node 3's /ready is not 503 after drain"
shoal_on 1 node ready 3 > /dev/null
within 30 ready_is 3 200 || fail "node 3's /ready is not 200 after ready"
pass "drain and ready move node 3's /ready"

echo "deploy/docker: all checks passed"
