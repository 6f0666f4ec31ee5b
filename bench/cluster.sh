#!/usr/bin/env bash
# Benchmarks a three-node Shoal cluster on loopback (127.0.0.11-13): commit
# latency and throughput of weight changes, propagation to every node,
# leader failover after kill -9, and data-plane CPU per request of a
# clustered node against a standalone one. Prints a markdown table (also
# saved to bench/results/cluster-latest.md). See bench/README.md, "Cluster".
#
# Run it under the machine-wide lock, so that benchmarks never overlap:
#   flock /tmp/shoal-bench.lock bash bench/cluster.sh
#
# Environment:
#   BENCH_CHANGES=500       sequential weight changes per row (part 1)
#   BENCH_CLIENTS=1,8,32    concurrent clients (part 1)
#   BENCH_TPUT_SECONDS=5    duration of each concurrent run (part 1)
#   BENCH_PROPAGATION=200   changes per row (part 2)
#   BENCH_TRIALS=5          failover trials (part 3)
#   BENCH_ROUNDS=9          standalone/clustered rounds (part 4; the median is the figure)
#   BENCH_SECONDS=10        wrk duration of each measured run (part 4)
#   BENCH_WARMUP=2          wrk warm-up seconds before each run (part 4)
#   BENCH_CONNS=50          wrk connections (part 4)
#   BENCH_PARTS=1,2,3,4     which measurements to run
#   BENCH_SKIP_BUILD=1      use the binaries already in target/release
#   BENCH_KEEP_LOGS=DIR     keep the nodes' logs there (SHOAL_LOG sets their level)
#   SHOAL_BIN=PATH          Shoal binary (default: target/release/shoal)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SHOAL=${SHOAL_BIN:-$ROOT/target/release/shoal}
BACKEND=$ROOT/target/release/shoal-demo-backend
RESULTS=$ROOT/bench/results/cluster-latest.md

BENCH_NAME=cluster
BENCH_TITLE="Shoal cluster"
# shellcheck source=bench/cluster_setup.sh
source "$ROOT/bench/cluster_setup.sh"

python3 "$ROOT/bench/cluster.py" --shoal "$SHOAL" --config "$WORK/cluster.cfg" \
    --work "$WORK" --results "$RESULTS" "${PINNED[@]}" "${HEAD_ARGS[@]}" \
    --changes "${BENCH_CHANGES:-500}" --clients "${BENCH_CLIENTS:-1,8,32}" \
    --seconds-tput "${BENCH_TPUT_SECONDS:-5}" --propagation "${BENCH_PROPAGATION:-200}" \
    --trials "${BENCH_TRIALS:-5}" --rounds "${BENCH_ROUNDS:-9}" \
    --seconds-wrk "${BENCH_SECONDS:-10}" --warmup "${BENCH_WARMUP:-2}" \
    --conns "${BENCH_CONNS:-50}" --parts "${BENCH_PARTS:-1,2,3,4}" &
DRIVER=$!
status=0
wait "$DRIVER" || status=$?
DRIVER=
exit "$status"
