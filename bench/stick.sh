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
#   BENCH_RATES=50000,100000  offered `set table` rates of part 1, per second
#   BENCH_SKIP_BUILD=1      use the binaries already in target/release
#   SHOAL_BIN=PATH          Shoal binary (default: target/release/shoal)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SHOAL=${SHOAL_BIN:-$ROOT/target/release/shoal}
BACKEND=$ROOT/target/release/shoal-demo-backend
RESULTS=$ROOT/bench/results/stick-latest.md

BENCH_NAME=stick
BENCH_TITLE="Shoal stick tables in a cluster"
# shellcheck source=bench/cluster_setup.sh
source "$ROOT/bench/cluster_setup.sh"

python3 "$ROOT/bench/stick.py" --shoal "$SHOAL" --config "$WORK/stick.cfg" \
    --work "$WORK" --results "$RESULTS" "${PINNED[@]}" "${HEAD_ARGS[@]}" \
    --rounds "${BENCH_ROUNDS:-3}" --seconds-wrk "${BENCH_SECONDS:-10}" \
    --warmup "${BENCH_WARMUP:-2}" --conns "${BENCH_CONNS:-50}" --parts "${BENCH_PARTS:-1,3}" \
    --rates "${BENCH_RATES:-50000,100000}" &
DRIVER=$!
status=0
wait "$DRIVER" || status=$?
DRIVER=
exit "$status"
