#!/usr/bin/env bash
# What users pay for a topology change, apart from the moves (docs/benchmarks.md): the
# cluster of bench/scripts/migration.sh (4 nodes on 127.0.0.2–5, two sets of 10, 6+4),
# filled with 1 MiB objects, then the same PUT/GET load in three states:
#   gen1    before any change;
#   paused  set 1 drained, the migration paused at once (nothing moves; objects in both sets);
#   done    the migration finished (every object in its ring set, set 1 empty).
# Usage: bench/scripts/migration-cost.sh [FILL_SECONDS] [LOAD_SECONDS]   (release binaries)
set -euo pipefail
cd "$(dirname "$0")/../.."
FILL=${1:-12}
LOAD=${2:-8}
TARGET=${CARGO_TARGET_DIR:-target}/release
ROOT=${BENCH_DIR:-/tmp/buckets-migration-bench}
export BUCKETS_CLUSTER_SECRET=bench-secret BUCKETS_ROOT_USER=admin BUCKETS_ROOT_PASSWORD=adminadmin
export AWS_ACCESS_KEY_ID=admin AWS_SECRET_ACCESS_KEY=adminadmin
export BUCKETS_ENDPOINT=http://127.0.0.2:29001 BUCKETS_LOG=warn
ENDPOINTS=""; for n in 2 3 4 5; do ENDPOINTS="$ENDPOINTS --endpoint http://127.0.0.$n:29000"; done
. bench/scripts/cluster.sh

load() { "$TARGET/buckets-load" $ENDPOINTS --size 1048576 --concurrency 16 --seconds "$1" --bucket "$2"; }
rounds() { # rounds LABEL: three rounds of the load
  for _ in 1 2 3; do load "$LOAD" bench | grep -E '^(PUT|GET):' | sed "s/^/$1: /"; done
}

start_cluster "$TARGET" "$ROOT" 5
load "$FILL" bench | sed 's/^/fill: /'
rounds gen1
"$TARGET/buckets-admin" drain-set 1 >/dev/null
"$TARGET/buckets-admin" migration pause >/dev/null
rounds paused
"$TARGET/buckets-admin" migration resume >/dev/null
until "$TARGET/buckets-admin" migration status --json | grep -q '"state": "done"'; do sleep 0.5; done
"$TARGET/buckets-admin" migration status | head -n 1
rounds done
stop
