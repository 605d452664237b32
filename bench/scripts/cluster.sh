# Sourced by the cluster benchmarks: a 4-node cluster on 127.0.0.2–5 (S3 on :29000, admin
# and peer RPC on :29001), started fresh and stopped with kill -9.
PIDS=()
stop() {
  for p in "${PIDS[@]:-}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=()
}
# The drives go at the end (a long run stores tens of GB; the logs stay).
CLUSTER_ROOT=""
trap 'stop; [ -z "$CLUSTER_ROOT" ] || rm -rf "$CLUSTER_ROOT"/n[0-9]*' EXIT

# start_cluster BIN_DIR ROOT DRIVES_PER_NODE: fresh drives under ROOT, logs in ROOT/nodeN.log;
# returns once every node is ready.
start_cluster() {
  local bin=$1 root=$2 drives=$3
  rm -rf "$root"; mkdir -p "$root"; CLUSTER_ROOT=$root
  local args=""; for n in 2 3 4 5; do args="$args http://127.0.0.$n:29001$root/n$n/d{1...$drives}"; done
  for n in 2 3 4 5; do
    "$bin/buckets-node" server --address 127.0.0.$n:29000 --admin-address 127.0.0.$n:29001 $args \
      >"$root/node$n.log" 2>&1 &
    PIDS+=($!)
  done
  for n in 2 3 4 5; do
    until curl -sf "http://127.0.0.$n:29001/health/ready" >/dev/null; do sleep 0.2; done
  done
  sleep 2
}
