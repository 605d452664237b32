#!/usr/bin/env bash
# Starts the test bed's control plane in DIR: etcd, kube-apiserver (RBAC, static admin
# token, self-signed serving certificate) and kube-controller-manager (every controller
# but node lifecycle: the pod runner plays kubelet for one fake Node). Writes
# DIR/kubeconfig and DIR/pids; `down.sh DIR` stops everything.
# Usage: up.sh BIN DIR
set -euo pipefail
BIN="$1"
DIR="$2"
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
  --service-cluster-ip-range 10.96.0.0/16 \
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
