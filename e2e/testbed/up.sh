#!/usr/bin/env bash
# Starts the test bed's control plane in DIR: etcd, kube-apiserver (RBAC, static admin
# token, self-signed serving certificate) and kube-controller-manager (every controller
# but node lifecycle: the pod runner plays kubelet for one fake Node). Writes
# DIR/kubeconfig and DIR/pids; `down.sh DIR` stops everything.
#
# It must run in a network namespace of its own, made for the bed (the e2e library runs
# each scenario under `unshare --net`): it brings up lo and the pod bridge
# BUCKETS_TESTBED_BRIDGE with address BUCKETS_TESTBED_GATEWAY (what a node's CNI bridge
# has), and the default route through it (kube-apiserver takes its advertise address
# from the default route). It refuses to touch a namespace that has other interfaces,
# such as the host's.
# Usage: up.sh BIN DIR
set -euo pipefail
BIN="$1"
DIR="$2"
BRIDGE="${BUCKETS_TESTBED_BRIDGE:?the pod bridge name}"
GATEWAY="${BUCKETS_TESTBED_GATEWAY:?the pod gateway address with its prefix, e.g. 10.244.0.1/16}"

others=$(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -vx -e lo -e "$BRIDGE" -e 'veth[0-9]*' || true)
if [ -n "$others" ]; then
  echo "up.sh: this network namespace has interfaces of its own ($(echo $others)); the test bed runs only in a namespace made for it (unshare --net)" >&2
  exit 1
fi
ip link set lo up
if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
  ip link add "$BRIDGE" type bridge
  ip addr add "$GATEWAY" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  ip route add default dev "$BRIDGE"
fi
# Pods' namespaces are named (ip netns) in a tmpfs of the bed's own mount namespace, so
# they vanish with it.
mkdir -p /run/netns
[ "$(findmnt -n -o SOURCE /run/netns 2>/dev/null)" = tmpfs-buckets-e2e ] || mount -t tmpfs -o size=1m,mode=755 tmpfs-buckets-e2e /run/netns
mkdir -p "$DIR/certs" "$DIR/etcd" "$DIR/logs"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ETCD_CLIENT=$(free_port); ETCD_PEER=$(free_port); API_PORT=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
[ -f "$DIR/certs/sa.key" ] || openssl genrsa -out "$DIR/certs/sa.key" 2048 2>/dev/null
echo "$TOKEN,admin,admin,system:masters" > "$DIR/certs/tokens.csv"

"$BIN/etcd" --data-dir "$DIR/etcd" --name testbed \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "testbed=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync \
  > "$DIR/logs/etcd.log" 2>&1 &
echo $! > "$DIR/pids"

"$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_CLIENT" \
  --bind-address 127.0.0.1 --secure-port "$API_PORT" --cert-dir "$DIR/certs" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-signing-key-file "$DIR/certs/sa.key" --service-account-key-file "$DIR/certs/sa.key" \
  --token-auth-file "$DIR/certs/tokens.csv" --authorization-mode RBAC \
  --service-cluster-ip-range 10.96.0.0/16 --advertise-address "${GATEWAY%/*}" \
  > "$DIR/logs/kube-apiserver.log" 2>&1 &
echo $! >> "$DIR/pids"

cat > "$DIR/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $DIR/certs/apiserver.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: testbed
  context: {cluster: testbed, user: admin}
current-context: testbed
KUBECONFIG

for _ in $(seq 1 120); do
  if [ -f "$DIR/certs/apiserver.crt" ] && "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get --raw /readyz >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
"$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" get --raw /readyz >/dev/null

"$BIN/kube-controller-manager" --kubeconfig "$DIR/kubeconfig" \
  --authentication-kubeconfig "$DIR/kubeconfig" --authorization-kubeconfig "$DIR/kubeconfig" \
  --root-ca-file "$DIR/certs/apiserver.crt" --service-account-private-key-file "$DIR/certs/sa.key" \
  --leader-elect=false --use-service-account-credentials=false \
  --controllers '*,-node-lifecycle-controller' --secure-port 0 \
  > "$DIR/logs/kube-controller-manager.log" 2>&1 &
echo $! >> "$DIR/pids"
echo "$DIR/kubeconfig"
