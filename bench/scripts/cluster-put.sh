#!/usr/bin/env bash
# 4-node PUT/GET (docs/benchmarks.md): 4 nodes on 127.0.0.2–5, 4 drives each (one 12+4
# set), 1 MiB objects from 16 buckets-load workers spread over the four nodes, on a fresh
# cluster per run. With several release directories (for example one built from an
# earlier commit), the runs alternate between them round by round, so the machine's
# drift over the minutes falls on every build alike.
# Usage: bench/scripts/cluster-put.sh [ROUNDS] [SECONDS] [RELEASE_DIR...]
#   (default: 3 rounds of 10 s, $CARGO_TARGET_DIR/release or target/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-10}
shift $(($# < 2 ? $# : 2))
DIRS=("$@")
[ ${#DIRS[@]} -gt 0 ] || DIRS=("${CARGO_TARGET_DIR:-target}/release")
ROOT=${BENCH_DIR:-/tmp/buckets-cluster-put-bench}
export BUCKETS_CLUSTER_SECRET=bench-secret BUCKETS_ROOT_USER=admin BUCKETS_ROOT_PASSWORD=adminadmin
export AWS_ACCESS_KEY_ID=admin AWS_SECRET_ACCESS_KEY=adminadmin BUCKETS_LOG=warn
ENDPOINTS=""; for n in 2 3 4 5; do ENDPOINTS="$ENDPOINTS --endpoint http://127.0.0.$n:29000"; done
. bench/scripts/cluster.sh

run() { # run RELEASE_DIR
  local bin=$1
  start_cluster "$bin" "$ROOT" 4
  "$bin/buckets-load" $ENDPOINTS --size 1048576 --concurrency 16 --seconds "$SECONDS_PER_RUN" --bucket bench
  stop
}

for round in $(seq 1 "$ROUNDS"); do
  for dir in "${DIRS[@]}"; do
    run "$dir" | sed "s|^|round $round, $dir: |"
  done
done
