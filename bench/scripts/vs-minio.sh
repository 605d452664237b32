#!/usr/bin/env bash
# Buckets and MinIO side by side on this machine (docs/benchmarks.md): the same warp
# workloads against each server, one after the other, on the same layouts:
#   single  — one node, 4 drives (directories), parity 2 for both;
#   cluster — 4 nodes × 4 drives, one 12+4 set, inside a network namespace this script
#             creates (MinIO refuses loopback node addresses when it believes it runs in
#             a container, and a /.dockerenv exists here), with a test address on its lo.
# Each workload runs on a freshly started server with empty drives. For each it records
# throughput (MiB/s, or obj/s for small objects, listing and deletes), p50 and p99 request
# times, the server's CPU seconds and its peak RSS, and prints one table with the ratios.
#
# Usage: bench/scripts/vs-minio.sh [single|cluster|all] [WORKLOAD...]
# Env:   DURATION (default 20s), BENCH_DIR (default /tmp/buckets-vs-minio),
#        MINIO_BIN / WARP_BIN (default: built once from ../shared/peers into
#        ~/.cache/buckets/peers/bin), BUCKETS_BIN_DIR (default: a release build),
#        SERVERS (default "buckets minio"; one of them to measure it alone).
# Not part of the test suite: a full run takes about 45 minutes (the 200k listing alone about 15).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$(pwd)
MODE=${1:-all}
shift || true
ONLY=("$@")
DURATION=${DURATION:-20s}
ROOT=${BENCH_DIR:-/tmp/buckets-vs-minio}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/buckets/peers
PEERS=${PEERS_DIR:-$REPO/../shared/peers}
USER_NAME=benchadmin
PASSWORD=benchadmin-secret

# --- binaries -----------------------------------------------------------------------
# build_peer NAME ARCHIVE_GLOB: builds the binary once (from the archive in $PEERS) into
# $CACHE/bin/NAME; exits the script with the reason when it can't.
build_peer() {
  local name=$1 glob=$2 bin="$CACHE/bin/$1" archive
  [ -x "$bin" ] && return
  archive=$(compgen -G "$PEERS/$glob" | head -n 1) || true
  if [ -z "$archive" ]; then
    echo "vs-minio.sh: no $glob in $PEERS (the peers' source archives; set PEERS_DIR, or give ${name^^}_BIN)" >&2
    exit 1
  fi
  rm -rf "$CACHE/src/$name"; mkdir -p "$CACHE/src/$name" "$CACHE/bin"
  tar -xzf "$archive" -C "$CACHE/src/$name"
  echo "building $name from $archive" >&2
  (cd "$CACHE/src/$name" && go build -trimpath -o "$bin" .) >&2 || { echo "vs-minio.sh: building $name failed" >&2; exit 1; }
}

if [ -z "${IN_BENCH_NETNS:-}" ]; then
  [ -n "${MINIO_BIN:-}" ] || { build_peer minio 'minio-src-*.tar.gz'; MINIO_BIN=$CACHE/bin/minio; }
  [ -n "${WARP_BIN:-}" ] || { build_peer warp 'warp-src-*.tar.gz'; WARP_BIN=$CACHE/bin/warp; }
  if [ -z "${BUCKETS_BIN_DIR:-}" ]; then
    cargo build --release --quiet -p buckets-node >&2
    BUCKETS_BIN_DIR=${CARGO_TARGET_DIR:-$REPO/target}/release
  fi
  export MINIO_BIN WARP_BIN BUCKETS_BIN_DIR
fi

# --- the cluster runs in a network namespace of its own --------------------------------
if [ "$MODE" = cluster ] || [ "$MODE" = all ]; then
  if [ -z "${IN_BENCH_NETNS:-}" ]; then
    [ "$MODE" = all ] && "$0" single "${ONLY[@]}"
    exec unshare --net env IN_BENCH_NETNS=1 "$0" cluster "${ONLY[@]}"
  fi
  ip link set lo up
  ip addr add 10.99.0.1/32 dev lo
fi

# --- servers --------------------------------------------------------------------------
PIDS=()
stop_servers() {
  for p in "${PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}
trap stop_servers EXIT

wait_ready() { # wait_ready URL...
  for url in "$@"; do
    local tries=0
    until curl -sf -o /dev/null "$url"; do
      tries=$((tries + 1)); [ $tries -lt 300 ] || { echo "not ready: $url" >&2; exit 1; }
      sleep 0.2
    done
  done
}

start_server() { # start_server buckets|minio single|cluster → sets HOSTS
  local server=$1 layout=$2
  rm -rf "$ROOT/data"; mkdir -p "$ROOT/data"
  if [ "$server" = buckets ] && [ "$layout" = single ]; then
    BUCKETS_ROOT_USER=$USER_NAME BUCKETS_ROOT_PASSWORD=$PASSWORD BUCKETS_LOG=warn \
      "$BUCKETS_BIN_DIR/buckets-node" server --address 127.0.0.1:19000 --admin-address 127.0.0.1:19001 \
      "$ROOT"/data/d{1..4} >"$ROOT/server.log" 2>&1 &
    PIDS+=($!)
    HOSTS=127.0.0.1:19000
    wait_ready http://127.0.0.1:19001/health/ready
  elif [ "$server" = minio ] && [ "$layout" = single ]; then
    MINIO_ROOT_USER=$USER_NAME MINIO_ROOT_PASSWORD=$PASSWORD MINIO_ROOTDRIVE_THRESHOLD_SIZE=1B \
      MINIO_BROWSER=off "$MINIO_BIN" server --quiet --address 127.0.0.1:19000 \
      "$ROOT/data/d{1...4}" >"$ROOT/server.log" 2>&1 &
    PIDS+=($!)
    HOSTS=127.0.0.1:19000
    wait_ready http://127.0.0.1:19000/minio/health/ready
  elif [ "$server" = buckets ]; then
    local drives=""; for n in 1 2 3 4; do drives="$drives http://10.99.0.1:1910$n$ROOT/data/n$n/d{1...4}"; done
    HOSTS=""
    for n in 1 2 3 4; do
      BUCKETS_ROOT_USER=$USER_NAME BUCKETS_ROOT_PASSWORD=$PASSWORD BUCKETS_LOG=warn \
        BUCKETS_CLUSTER_SECRET=bench-cluster-secret \
        "$BUCKETS_BIN_DIR/buckets-node" server --address 10.99.0.1:1900$n --admin-address 10.99.0.1:1910$n \
        $drives >"$ROOT/server$n.log" 2>&1 &
      PIDS+=($!)
      HOSTS="$HOSTS${HOSTS:+,}10.99.0.1:1900$n"
    done
    for n in 1 2 3 4; do wait_ready "http://10.99.0.1:1910$n/health/ready"; done
  else
    local drives=""; for n in 1 2 3 4; do drives="$drives http://10.99.0.1:1900$n$ROOT/data/n$n/d{1...4}"; done
    HOSTS=""
    for n in 1 2 3 4; do
      MINIO_ROOT_USER=$USER_NAME MINIO_ROOT_PASSWORD=$PASSWORD MINIO_ROOTDRIVE_THRESHOLD_SIZE=1B \
        MINIO_BROWSER=off "$MINIO_BIN" server --quiet --address 10.99.0.1:1900$n $drives \
        >"$ROOT/server$n.log" 2>&1 &
      PIDS+=($!)
      HOSTS="$HOSTS${HOSTS:+,}10.99.0.1:1900$n"
    done
    for n in 1 2 3 4; do wait_ready "http://10.99.0.1:1900$n/minio/health/cluster"; done
  fi
  sleep 1
}

cpu_seconds() { # summed user+system CPU of the servers
  local ticks=0 hz; hz=$(getconf CLK_TCK)
  for p in "${PIDS[@]}"; do
    local stat; stat=$(cut -d')' -f2 "/proc/$p/stat")
    ticks=$((ticks + $(echo "$stat" | awk '{print $12 + $13}')))
  done
  awk -v t=$ticks -v hz="$hz" 'BEGIN {printf "%.1f", t / hz}'
}

rss_mb() { # rss_mb VmRSS|VmHWM → the largest of the servers' current (VmRSS: idle, right
  # after start) or peak (VmHWM) resident set, MB
  local most=0
  for p in "${PIDS[@]}"; do
    local kb; kb=$(awk -v field="$1:" '$1 == field {print $2}' "/proc/$p/status")
    [ "$kb" -gt "$most" ] && most=$kb
  done
  echo $((most / 1024))
}

# --- workloads ------------------------------------------------------------------------
# name | warp arguments | unit (MiB/s or obj/s) | layouts [| duration, when DURATION is too
# short for the workload's requests]
WORKLOADS=(
  "put-1MiB|put --obj.size 1MiB --concurrent 16|MiB/s|single cluster"
  "get-1MiB|get --obj.size 1MiB --concurrent 16 --objects 400|MiB/s|single cluster"
  "put-4KiB|put --obj.size 4KiB --concurrent 32|obj/s|single cluster"
  "get-4KiB|get --obj.size 4KiB --concurrent 32 --objects 2500|obj/s|single cluster"
  "put-64MiB|put --obj.size 64MiB --concurrent 4|MiB/s|single"
  "get-64MiB|get --obj.size 64MiB --concurrent 4 --objects 16|MiB/s|single"
  "mixed-1MiB|mixed --obj.size 1MiB --concurrent 16 --objects 400|MiB/s|single"
  "list-10k|list --obj.size 1KiB --concurrent 4 --objects 10000|obj/s|single"
  "delete-batch10|delete --obj.size 4KiB --concurrent 8 --objects 20000 --batch 10|obj/s|single"
  # Versioned listing: 2,500 keys × 4 versions, listed with ListObjectVersions.
  "list-versions|list --obj.size 1KiB --concurrent 4 --objects 2500 --versions 4|obj/s|single"
  # Memory under the largest requests: one 5 GiB PUT (S3's largest single PUT) at a time,
  # GETs of one 5 GiB object, and listings of a whole 200,000-key bucket (every worker
  # lists all of it, 1,000 keys per page). The 200k upload alone takes 5–10 minutes.
  # PUT 5 GiB runs 30 s: at ~400 MiB/s and parity 2 of 4 that stores ~25 GB, and a disk
  # that fills up during the run slows the faster server most.
  "put-5GiB|put --obj.size 5GiB --concurrent 1 --disable-multipart|MiB/s|single|30s"
  "get-5GiB|get --obj.size 5GiB --concurrent 1 --objects 1 --disable-multipart|MiB/s|single|60s"
  "list-200k|list --obj.size 1KiB --concurrent 16 --objects 200000 --noprefix --max-keys 1000|obj/s|single|60s"
)

# parse_warp FILE UNIT → "throughput p50 p99" of the run's total (the last Average line).
parse_warp() {
  awk -v unit="$2" '
    /Report: / { report = $0 }
    /\* Average:/ {
      for (i = 3; i < NF; i++) {
        if ($(i + 1) ~ /^obj\/s/) obj = $i
        if ($(i + 1) ~ /^KiB\/s/) mib = $i / 1024
        if ($(i + 1) ~ /^MiB\/s/) mib = $i
        if ($(i + 1) ~ /^GiB\/s/) mib = $i * 1024
      }
    }
    /\* Reqs: Avg:/ { for (i = 1; i <= NF; i++) { if ($i == "50%:") p50 = $(i + 1); if ($i == "99%:") p99 = $(i + 1) } }
    END { sub(/,$/, "", p50); sub(/,$/, "", p99); printf "%s %s %s\n", (unit == "MiB/s" ? mib : obj), p50, p99 }
  ' "$1"
}

RESULTS="$ROOT/results-$MODE.txt"
mkdir -p "$ROOT"; : >"$RESULTS"

run_layout() { # run_layout single|cluster
  local layout=$1
  for entry in "${WORKLOADS[@]}"; do
    IFS='|' read -r name args unit layouts duration <<<"$entry"
    [[ " $layouts " == *" $layout "* ]] || continue
    if [ ${#ONLY[@]} -gt 0 ] && [[ ! " ${ONLY[*]} " == *" $name "* ]]; then continue; fi
    for server in ${SERVERS:-buckets minio}; do
      start_server "$server" "$layout"
      local idle; idle=$(rss_mb VmRSS)
      local before; before=$(cpu_seconds)
      # shellcheck disable=SC2086
      "$WARP_BIN" $args --host "$HOSTS" --access-key $USER_NAME --secret-key $PASSWORD \
        --bucket warp-bench --duration "${duration:-$DURATION}" --noclear --benchdata "$ROOT/$layout-$name-$server" \
        >"$ROOT/$layout-$name-$server.txt" 2>&1 || { echo "warp failed: see $ROOT/$layout-$name-$server.txt" >&2; }
      local cpu; cpu=$(awk -v a="$(cpu_seconds)" -v b="$before" 'BEGIN {printf "%.1f", a - b}')
      local rss; rss=$(rss_mb VmHWM)
      stop_servers
      rm -rf "$ROOT/data" # a 5 GiB run leaves tens of GB behind
      read -r rate p50 p99 < <(parse_warp "$ROOT/$layout-$name-$server.txt" "$unit")
      echo "$layout $name $server $rate $unit $p50 $p99 $cpu $rss $idle" | tee -a "$RESULTS" >&2
    done
  done
}

case $MODE in
  single) run_layout single ;;
  cluster | all) run_layout cluster ;;
  *) echo "usage: $0 [single|cluster|all] [WORKLOAD...]" >&2; exit 2 ;;
esac

# One table: each workload with both servers' numbers and the ratio.
echo
echo "## $MODE ($(date -u +%F), $(nproc) cores, warp $DURATION per workload; p50/p99 in ms-or-s as warp prints them)"
echo
echo "| layout | workload | Buckets | MinIO | Buckets / MinIO | p50 B / M | p99 B / M | CPU s B / M | peak RSS MB B / M | idle RSS MB B / M |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk '
  { key = $1 " " $2; unit[key] = $5
    if ($3 == "buckets") { b[key] = $4; bp50[key] = $6; bp99[key] = $7; bcpu[key] = $8; brss[key] = $9; bidle[key] = $10; order[++n] = key }
    else { m[key] = $4; mp50[key] = $6; mp99[key] = $7; mcpu[key] = $8; mrss[key] = $9; midle[key] = $10 } }
  END { for (i = 1; i <= n; i++) { k = order[i]; split(k, kk, " ")
      ratio = (m[k] > 0) ? sprintf("%.2f", b[k] / m[k]) : "n/a"
      printf "| %s | %s | %s %s | %s %s | **%s** | %s / %s | %s / %s | %s / %s | %s / %s | %s / %s |\n", kk[1], kk[2], b[k], unit[k], m[k], unit[k], ratio, bp50[k], mp50[k], bp99[k], mp99[k], bcpu[k], mcpu[k], brss[k], mrss[k], bidle[k], midle[k] } }
' "$RESULTS"
