#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, Rust unit and integration tests
# (real buckets-node processes driven by the Rust AWS SDK), and the AWS CLI and boto3
# tests. Installs what it needs (Python clients into a venv); caches builds outside the
# clone so repeated runs are fast.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${BUCKETS_CACHE:-$HOME/.cache/buckets}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
export CARGO_TERM_COLOR=never
mkdir -p "$CACHE"

step() { printf '\n=== %s\n' "$*"; }

# Every build leaves new test executables beside the old ones (hundreds of MB each);
# keep the newest of each so the cache does not fill the disk over many runs.
prune_stale_test_binaries() {
  local deps="$CARGO_TARGET_DIR/debug/deps"
  [ -d "$deps" ] || return 0
  find "$deps" -maxdepth 1 -type f -perm -u+x ! -name '*.*' -printf '%T@ %f\n' | sort -rn |
    awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $2 }' |
    while read -r stale; do rm -f "$deps/$stale"; done
}
prune_stale_test_binaries

step "Debian packages the client tests drive (rclone, chromium)"
missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { "${as_root[@]}" apt-get update -qq && "${as_root[@]}" apt-get install -y -qq "${missing[@]}"; }
fi
rclone version | sed -n 1p
chromium --version

step "Python clients (AWS CLI, boto3, pytest)"
VENV="$CACHE/venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
REQUIREMENTS=node/tests/clients/requirements.txt
if ! cmp -s "$REQUIREMENTS" "$VENV/.installed-requirements" 2>/dev/null; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/.installed-requirements"
fi

step "helm (built from Go modules once, cached)"
# The chart tests (operator/tests/chart.rs) run helm lint and helm template.
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
HELM_VERSION=v3.22.0
HELM="$CACHE/go/bin/helm-$HELM_VERSION"
if [ ! -x "$HELM" ]; then
  mkdir -p "$CACHE/go/bin"
  GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOBIN="$CACHE/go/bin" GOFLAGS=-mod=mod \
    go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$CACHE/go/bin/helm" "$HELM"
fi
export BUCKETS_HELM="$HELM"
"$HELM" version --short

step "Kubernetes test bed (etcd, kube-apiserver, kube-controller-manager, kubectl; built from Go modules once, cached)"
BUCKETS_TESTBED_BIN="$(./e2e/testbed/build.sh | tail -n 1)"
export BUCKETS_TESTBED_BIN
"$BUCKETS_TESTBED_BIN/kubectl" version --client=true -o yaml | sed -n "s/^  gitVersion: //p"

step "s3s-e2e (the s3s project's S3 test suite, built from its crate once, cached)"
S3S_E2E_VERSION=0.14.1
S3S_E2E="$CACHE/s3s-e2e-$S3S_E2E_VERSION/bin/s3s-e2e"
if [ ! -x "$S3S_E2E" ]; then
  CARGO_TARGET_DIR="$CACHE/s3s-e2e-build" cargo install --quiet --locked s3s-e2e --version "$S3S_E2E_VERSION" \
    --root "$CACHE/s3s-e2e-$S3S_E2E_VERSION"
  rm -rf "$CACHE/s3s-e2e-build"
fi
export BUCKETS_S3S_E2E="$S3S_E2E"
"$S3S_E2E" --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

export BUCKETS_AWS_CLI="$VENV/bin/aws"

step "cargo test"
CARGO_LOG="$CACHE/cargo-test.log"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$CARGO_LOG"
cargo_status=${PIPESTATUS[0]}
set -e

step "AWS CLI and boto3 against buckets-node"
set +e
rm -f "$CACHE/s3s-e2e-summary.txt"
PATH="$VENV/bin:$PATH" BUCKETS_NODE_BIN="$CARGO_TARGET_DIR/debug/buckets-node" \
  BUCKETS_S3S_E2E_SUMMARY="$CACHE/s3s-e2e-summary.txt" \
  "$VENV/bin/python" -m pytest -q node/tests/clients 2>&1 | tee "$CACHE/pytest.log"
pytest_status=${PIPESTATUS[0]}
set -e

# One summary over both runners.
count() { # count WORD FILE LINE-PATTERN: sums "N WORD" over the lines matching the pattern
  { grep -hE "$3" "$2" || true; } | { grep -oE "[0-9]+ $1" || true; } | awk '{s+=$1} END {print s+0}'
}
passed=$(( $(count passed "$CARGO_LOG" '^test result:') + $(count passed "$CACHE/pytest.log" ' in [0-9.]+s') ))
failed=$(( $(count failed "$CARGO_LOG" '^test result:') + $(count failed "$CACHE/pytest.log" ' in [0-9.]+s') ))
echo
if [ -f "$CACHE/s3s-e2e-summary.txt" ]; then cat "$CACHE/s3s-e2e-summary.txt"; fi
echo "all tests: $passed passed, $failed failed"
if [ "$cargo_status" -ne 0 ] || [ "$pytest_status" -ne 0 ]; then
  exit 1
fi
