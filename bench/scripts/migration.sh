#!/usr/bin/env bash
# Migration benchmark (docs/benchmarks.md): a 4-node cluster on 127.0.0.2–5, 5 drives
# each (two sets of 10, 6+4), filled with 1 MiB objects by buckets-load; then
#   A. a raw `cp -r` + sync of set 1's drive directories, and set 1 drained alone
#      (migration throughput against the raw copy of the same bytes), each started with
#      the page cache dropped;
#   B. on a fresh cluster with the same fill, set 1 drained: the same load in rounds
#      with the migration paused and with it moving, alternating in pairs until the drain
#      is done (at most PAIRS pairs, default 24; a 12 s fill takes about 8): user
#      throughput with and without moves on the same data, the load running for the
#      whole migration.
# Usage: bench/scripts/migration.sh [FILL_SECONDS] [LOAD_SECONDS]   (release binaries)
#        PARTS=A or PARTS=B runs one part only; PARTS=C (not in the default) measures what a
#        topology change costs users apart from the moves: the same load (3 rounds each)
#        before the change, with set 1 drained and the migration paused at once (nothing
#        moves), after the migration is done, and once placement is settled on every node.
#        DURING_DRAIN=cmd runs cmd 2 s into part A's drain (a profiler; waiting for a line
#        of this script's output instead can match its header and profile the fill).
#        TIMELINE=1 polls the status every 0.1 s instead of 0.5 s and prints each change
#        of a set's phase or counts, seconds after the drain began.
#        CONTROL=1 makes part B an A/A control: its "moving" rounds leave the drain paused,
#        so the ratio shows the spread of the rounds themselves (it runs all PAIRS pairs).
set -euo pipefail
cd "$(dirname "$0")/../.."
FILL=${1:-20}
LOAD=${2:-8}
TARGET=${CARGO_TARGET_DIR:-target}/release
ROOT=${BENCH_DIR:-/tmp/buckets-migration-bench}
export BUCKETS_CLUSTER_SECRET=bench-secret BUCKETS_ROOT_USER=admin BUCKETS_ROOT_PASSWORD=adminadmin
export AWS_ACCESS_KEY_ID=admin AWS_SECRET_ACCESS_KEY=adminadmin
export BUCKETS_ENDPOINT=http://127.0.0.2:29001 BUCKETS_LOG=${BUCKETS_LOG:-warn}
ENDPOINTS=""; for n in 2 3 4 5; do ENDPOINTS="$ENDPOINTS --endpoint http://127.0.0.$n:29000"; done
. bench/scripts/cluster.sh

load() { "$TARGET/buckets-load" $ENDPOINTS --size 1048576 --concurrency 16 --seconds "$1" --bucket "$2"; }

# The raw copy and the drain each start from the disk: everything written is synced and
# the page cache dropped (when allowed), so neither reads what the other left cached.
cold() {
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "note: the page cache could not be dropped" >&2
}

# Waits for the migration to finish; prints seconds taken and the bytes it moved.
drain_and_wait() {
  local start; start=$(date +%s.%N)
  "$TARGET/buckets-admin" drain-set 1 >/dev/null
  local status last=""
  while true; do
    status=$("$TARGET/buckets-admin" migration status --json)
    if [[ -n ${TIMELINE:-} ]]; then
      local line; line=$(python3 -c '
import json, sys
s = json.load(sys.stdin)
print(" ".join("set %s %s pass %s: %s/%s" % (x["set"], x["phase"], x["passes"], x["movedObjects"], x["totalObjects"]) for x in s["sets"]))' <<<"$status")
      [[ $line != "$last" ]] && printf 'timeline: %5.2f s  %s\n' "$(python3 -c "print($(date +%s.%N) - $start)")" "$line"
      last=$line
    fi
    grep -q '"state": "done"' <<<"$status" && break
    sleep "$([[ -n ${TIMELINE:-} ]] && echo 0.1 || echo 0.5)"
  done
  local end; end=$(date +%s.%N)
  "$TARGET/buckets-admin" migration status --json | python3 -c "
import json, sys
status = json.load(sys.stdin)
seconds = $end - $start
mib = status['totalBytes'] / 1048576
print(f\"migration: {status['totalObjects']} objects, {mib:.0f} MiB in {seconds:.1f} s = {mib / seconds:.1f} MiB/s\")"
}

PARTS=${PARTS:-AB}
if [[ $PARTS == *A* ]]; then
echo "== A: a raw copy of set 1, then the drain alone"
start_cluster "$TARGET" "$ROOT" 5
load "$FILL" fill | sed 's/^/fill: /'
# The drives of set 1 (the second run of 10 in the node-interleaved order).
SET1=$("$TARGET/buckets-admin" topology show --json | python3 -c '
import json,sys
t=json.load(sys.stdin)
print(" ".join(d.split(":29001",1)[1] for d in t["pools"][0]["sets"][1]["drives"]))')
SET1_BYTES=$(du -sbc $SET1 | tail -1 | cut -f1)
rm -rf "$ROOT/rawcopy"; mkdir -p "$ROOT/rawcopy"; cold
START=$(date +%s.%N)
i=0; for d in $SET1; do cp -r "$d" "$ROOT/rawcopy/$i"; i=$((i+1)); done; sync
END=$(date +%s.%N)
python3 -c "s=$END-$START; print(f'raw copy of set 1 drives: {$SET1_BYTES/1048576:.0f} MiB on disk in {s:.1f} s = {$SET1_BYTES/1048576/s:.1f} MiB/s')"
rm -rf "$ROOT/rawcopy"
cold
# DURING_DRAIN: a command run 2 s into the drain (a profiler: `perf record -a -- sleep 5`).
HOOK=""
if [ -n "${DURING_DRAIN:-}" ]; then (sleep 2; eval "$DURING_DRAIN") & HOOK=$!; fi
drain_and_wait
[ -z "$HOOK" ] || wait "$HOOK"
stop
fi

if [[ $PARTS == *C* ]]; then
echo "== C: the load before the change, with the drain paused, after it is done"
rounds() { for _ in 1 2 3; do load "$LOAD" bench | grep -E '^(PUT|GET):' | sed "s/^/$1: /"; done; }
start_cluster "$TARGET" "$ROOT" 5
load "$FILL" fill | sed 's/^/fill: /'
rounds "generation 1"
"$TARGET/buckets-admin" drain-set 1 >/dev/null
"$TARGET/buckets-admin" migration pause >/dev/null
rounds "drained, paused"
"$TARGET/buckets-admin" migration resume >/dev/null
until "$TARGET/buckets-admin" migration status --json | grep -q '"state": "done"'; do sleep 0.5; done
rounds "migration done"
# Then once every node knows placement settled (writes and lookups touch one set again).
settled_everywhere() {
  for n in 2 3 4 5; do
    local metrics; metrics=$(curl -s "http://127.0.0.$n:29001/metrics") || return 1
    grep -q '^buckets_placement_settled_generation 2$' <<<"$metrics" || return 1
  done
}
for _ in $(seq 120); do settled_everywhere && break; sleep 0.5; done
settled_everywhere || { echo "placement did not settle within 60 s" >&2; exit 1; }
rounds "settled"
stop
fi

[[ $PARTS == *B* ]] || exit 0
echo "== B: the load with the drain paused and with it moving, round after round"
start_cluster "$TARGET" "$ROOT" 5
load "$FILL" fill | sed 's/^/fill: /'
# Set 1 drained and paused at once: from here on the two kinds of rounds differ only in
# whether objects move (part C measures what the topology change itself costs). They
# alternate in pairs, in turn paused-first and moving-first, so that the drift of a
# filling cluster (the load rewrites its keys; replaced data waits in trash) falls on
# both alike.
"$TARGET/buckets-admin" drain-set 1 >/dev/null
pause() {
  "$TARGET/buckets-admin" migration pause >/dev/null
  until "$TARGET/buckets-admin" migration status --json | grep -qE '"state": "(paused|done)"'; do sleep 0.2; done
}
moved_bytes() { "$TARGET/buckets-admin" migration status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["movedBytes"])'; }
pause
: >"$ROOT/paused.txt"; : >"$ROOT/moving.txt"
paused_round() { load "$LOAD" bench | tee -a "$ROOT/paused.txt" | sed 's/^/paused: /'; }
moving_round() {
  local before; before=$(moved_bytes)
  [[ -n ${CONTROL:-} ]] || "$TARGET/buckets-admin" migration resume >/dev/null
  load "$LOAD" bench | tee -a "$ROOT/moving.txt" | sed 's/^/moving: /'
  # Counted at checkpoints: a confirmed pause has saved them. The moves still running
  # when the load ends run unloaded until the pause holds (its wait is printed).
  local asked; asked=$(date +%s.%N)
  pause
  local after; after=$(moved_bytes)
  python3 -c "print(f'moving: the drain moved {($after - $before) / 1048576:.0f} MiB in the round ({$LOAD} s PUT + {$LOAD} s GET), paused {$(date +%s.%N) - $asked:.1f} s after it')"
}
for pair in $(seq "${PAIRS:-24}"); do
  # The load rewrites its keys and replaced data waits in trash for ten minutes: many
  # pairs can fill a small disk. They stop short of that.
  if (( $(df --output=avail -k "$ROOT" | tail -1) < ${MIN_FREE_GB:-6} * 1024 * 1024 )); then
    echo "stopped after $((pair - 1)) pairs: less than ${MIN_FREE_GB:-6} GB free" >&2
    break
  fi
  if (( pair % 2 )); then paused_round; moving_round; else moving_round; paused_round; fi
  if "$TARGET/buckets-admin" migration status --json | grep -q '"state": "done"'; then
    echo "the drain finished in pair $pair, after $pair moving rounds of load ($((pair * LOAD * 2)) s)"
    break
  fi
done
"$TARGET/buckets-admin" migration status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
moved, total, state = s["movedObjects"], s["totalObjects"], s["state"]
print(f"drain: {moved} of {total} objects moved, state {state}")'
stop
python3 - "$ROOT/paused.txt" "$ROOT/moving.txt" <<'PY'
import re, sys
def rates(path):
    found = {"PUT": [], "GET": []}
    for line in open(path):
        m = re.match(r"(PUT|GET): ([0-9.]+) MiB/s", line.strip())
        if m:
            found[m.group(1)].append(float(m.group(2)))
    return found
paused, moving = rates(sys.argv[1]), rates(sys.argv[2])
for op in ("PUT", "GET"):
    pairs = list(zip(paused[op], moving[op]))
    if pairs:
        ratios = [m / p for p, m in pairs]
        base = sum(p for p, _ in pairs) / len(pairs)
        mean = sum(m for _, m in pairs) / len(pairs)
        # The pairs' spread: the standard error of their mean ratio.
        average = sum(ratios) / len(ratios)
        spread = (sum((r - average) ** 2 for r in ratios) / max(len(ratios) - 1, 1) / len(ratios)) ** 0.5
        print(f"user {op}: {base:.1f} MiB/s paused, {mean:.1f} MiB/s moving (means of {len(pairs)} pairs) = "
              f"{mean / base:.2f}x; pairs {min(ratios):.2f}-{max(ratios):.2f}x, their mean {average:.2f} +- {spread:.2f}")
PY
