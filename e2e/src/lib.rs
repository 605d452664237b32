//! End-to-end Kubernetes scenarios for Buckets: a test bed of etcd, kube-apiserver and
//! kube-controller-manager built from Go modules (`testbed/build.sh`, cached under
//! `~/.cache/buckets/testbed`), started per test binary (`testbed/up.sh`), driven with the
//! built kubectl; `runner` plays kubelet so node pods run as local processes.
//!
//! Every scenario runs in a network of its own (`in_own_network`): the test process
//! re-executes itself in new network, PID and mount namespaces, where the whole bed, the
//! pods (each in a namespace of its own on a bridge) and the test's clients live. The
//! host's network never sees a bed address, and nothing the bed made can outlive it:
//! when the scenario's process ends, the kernel ends every process of its PID namespace
//! and with them every namespace, veth and bridge.

pub mod runner;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Set in a scenario's re-executed process, which runs inside the bed's namespaces.
const INSIDE_ENV: &str = "BUCKETS_E2E_IN_OWN_NETWORK";
/// A file the re-executed process writes when the scenario's body returned: a test
/// filter that matched nothing would otherwise end the run "ok" with nothing run.
const DONE_ENV: &str = "BUCKETS_E2E_DONE_FILE";

/// The bed's pod network (what a CNI bridge plugin would give a node): a bridge in the
/// bed's namespace with the first address of `POD_CIDR`; every pod joins it by a veth.
pub const POD_BRIDGE: &str = "cni0";
pub const POD_GATEWAY: &str = "10.244.0.1";
pub const POD_PREFIX_LENGTH: u8 = 16;

/// Runs the scenario `test` (the name of the `#[test]` function calling this) in a
/// network of its own: the test binary runs itself again, filtered to `test`, under
/// `unshare --net --pid --mount` (root is needed, as for the pod runner), and this
/// process watches the host's addresses meanwhile. Fails when the scenario fails, did
/// not run, or the host's network gained an address during the run. Against an existing
/// cluster (`BUCKETS_E2E_KUBECONFIG`) the body runs here, in the host's network.
pub fn in_own_network(test: &str, body: impl FnOnce()) {
    if std::env::var_os(INSIDE_ENV).is_some() {
        body();
        if let Some(done) = std::env::var_os(DONE_ENV) {
            std::fs::write(done, test).expect("the scenario's completion is recorded");
        }
        return;
    }
    if std::env::var_os("BUCKETS_E2E_KUBECONFIG").is_some() {
        return body();
    }
    let scratch = tempfile::tempdir().unwrap();
    let done = scratch.path().join("done");
    let output = scratch.path().join("output");
    let before = host_addresses();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (stop, before) = (stop.clone(), before.clone());
        std::thread::spawn(move || {
            let mut gained = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                gained.extend(host_addresses().into_iter().filter(|a| !before.contains(a)));
                std::thread::sleep(Duration::from_millis(250));
            }
            gained
        })
    };
    let log = std::fs::File::create(&output).unwrap();
    let status = Command::new("unshare")
        .args(["--net", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "private", "--mount-proc", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(INSIDE_ENV, "1")
        .env(DONE_ENV, &done)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .status()
        .expect("unshare runs (util-linux)");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let gained = watcher.join().unwrap();
    // Shown with the failure (the harness captures this process's output); prefixed so
    // the inner harness's own summary line is not counted twice by the test command.
    for line in std::fs::read_to_string(&output).unwrap_or_default().lines() {
        eprintln!("  | {line}");
    }
    assert!(status.success(), "{test} failed in its own network ({status}); its output is above");
    assert_eq!(std::fs::read_to_string(&done).ok().as_deref(), Some(test), "{test} ran to its end");
    assert!(gained.is_empty(), "the host's network gained addresses during {test}: {gained:?}");
    let after = host_addresses();
    assert_eq!(after, before, "the host's addresses changed across {test}");
    assert!(!after.iter().any(|a| a.contains(" 10.244.")), "a pod address is on the host: {after:?}");
}

/// The host's IPv4 addresses as `interface address/prefix`, sorted.
fn host_addresses() -> Vec<String> {
    let output = Command::new("ip").args(["-4", "-o", "addr", "show"]).output().expect("ip runs (iproute2)");
    assert!(output.status.success(), "ip -4 addr: {}", String::from_utf8_lossy(&output.stderr));
    let mut addresses: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let at = fields.iter().position(|f| *f == "inet")?;
            Some(format!("{} {}", fields.get(1)?, fields.get(at + 1)?))
        })
        .collect();
    addresses.sort();
    addresses
}

/// A running control plane (stopped when dropped), or an existing cluster.
pub struct TestBed {
    /// Directory of kubectl (the built one, or the one on PATH for an existing cluster).
    pub bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// An existing cluster named by `BUCKETS_E2E_KUBECONFIG`: nothing is started or
    /// stopped, and a real kubelet runs the pods.
    pub external: bool,
}

/// This crate's directory. Cargo sets CARGO_MANIFEST_DIR for the tests it runs: a test
/// binary reused from a build in another checkout (a shared build cache) reads this
/// checkout's files, not the ones it was compiled from.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn testbed_dir() -> PathBuf {
    manifest_dir().join("testbed")
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    manifest_dir().join("..")
}

impl TestBed {
    /// Builds the binaries if needed (`BUCKETS_TESTBED_BIN` skips that) and starts etcd,
    /// kube-apiserver and kube-controller-manager.
    pub fn start() -> TestBed {
        if let Some(kubeconfig) = std::env::var_os("BUCKETS_E2E_KUBECONFIG") {
            let kubectl = Command::new("sh").args(["-c", "command -v kubectl"]).output().unwrap();
            let kubectl = PathBuf::from(String::from_utf8(kubectl.stdout).unwrap().trim());
            assert!(kubectl.is_file(), "BUCKETS_E2E_KUBECONFIG needs kubectl on PATH");
            return TestBed {
                bin: kubectl.parent().unwrap().to_path_buf(),
                dir: tempfile::tempdir().unwrap(),
                kubeconfig: PathBuf::from(kubeconfig),
                external: true,
            };
        }
        let bin = match std::env::var_os("BUCKETS_TESTBED_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => {
                let output = Command::new(testbed_dir().join("build.sh")).output().expect("testbed/build.sh runs");
                assert!(output.status.success(), "building the test bed: {}", String::from_utf8_lossy(&output.stderr));
                PathBuf::from(String::from_utf8(output.stdout).unwrap().lines().last().unwrap().trim())
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new(testbed_dir().join("up.sh"))
            .arg(&bin)
            .arg(dir.path())
            .env("BUCKETS_TESTBED_BRIDGE", POD_BRIDGE)
            .env("BUCKETS_TESTBED_GATEWAY", format!("{POD_GATEWAY}/{POD_PREFIX_LENGTH}"))
            .output()
            .unwrap();
        let logs = |dir: &Path| {
            ["etcd", "kube-apiserver", "kube-controller-manager"]
                .iter()
                .map(|name| {
                    let log = std::fs::read_to_string(dir.join(format!("logs/{name}.log"))).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    format!("--- {name}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            output.status.success(),
            "starting the test bed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            logs(dir.path())
        );
        let kubeconfig = dir.path().join("kubeconfig");
        TestBed { bin, dir, kubeconfig, external: false }
    }

    /// Runs kubectl against the test bed.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_input(args, None)
    }

    pub fn kubectl_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut command = Command::new(self.bin.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("kubectl runs");
        if let Some(text) = input {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(output.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// A kubeconfig for `service_account` in `namespace` (a bound token), to act with
    /// exactly that account's RBAC.
    pub fn kubeconfig_for(&self, namespace: &str, service_account: &str) -> PathBuf {
        let token = self.kubectl_ok(&["-n", namespace, "create", "token", service_account, "--duration", "1h"]);
        let admin = std::fs::read_to_string(&self.kubeconfig).unwrap();
        let text: String = admin
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("token:") {
                    format!("    token: {}", token.trim())
                } else {
                    line.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = self.dir.path().join(format!("{namespace}-{service_account}.kubeconfig"));
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        if !self.external {
            let _ = Command::new(testbed_dir().join("down.sh"))
                .arg(self.dir.path())
                .env("BUCKETS_TESTBED_BRIDGE", POD_BRIDGE)
                .output();
        }
    }
}

/// A process killed when dropped (the operator under test).
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
}

impl Process {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workspace binary next to the test executable (`target/debug/NAME`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(path.exists(), "{} is not built (cargo test --workspace builds it)", path.display());
    path
}

/// Polls `check` until it holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("timed out waiting for {what}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Applies `crds/` server-side and waits until the API server serves both kinds.
pub fn install_crds(bed: &TestBed) {
    bed.kubectl_ok(&["apply", "--server-side", "-f", repo_root().join("crds").to_str().unwrap()]);
    bed.kubectl_ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/bucketsclusters.buckets.io",
        "crd/bucketspools.buckets.io",
        "crd/bucketsusers.buckets.io",
        "crd/bucketspolicies.buckets.io",
        "crd/bucketsbuckets.buckets.io",
        "--timeout",
        "60s",
    ]);
}

/// Installs the CRDs and the chart's objects (release `ops` in `buckets-system`; its
/// Deployment scaled to 0: the operator runs as a process instead) and returns a
/// kubeconfig of the chart's service account.
pub fn install_operator_chart(bed: &TestBed) -> PathBuf {
    let root = repo_root();
    install_crds(bed);
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: buckets-system}\n";
    let created = bed.kubectl_with_input(&["apply", "-f", "-"], Some(namespace));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let helm = std::env::var("BUCKETS_HELM").unwrap_or_else(|_| "helm".into());
    let rendered = Command::new(helm)
        .args([
            "template",
            "ops",
            "charts/buckets-operator",
            "--namespace",
            "buckets-system",
            "--kube-version",
            "1.34.4",
        ])
        .current_dir(&root)
        .output()
        .expect("helm runs (set BUCKETS_HELM)");
    assert!(rendered.status.success(), "{}", String::from_utf8_lossy(&rendered.stderr));
    let chart = String::from_utf8(rendered.stdout).unwrap();
    let applied = bed.kubectl_with_input(&["apply", "--server-side", "-f", "-"], Some(&chart));
    assert!(
        applied.status.success(),
        "the chart's objects pass the API server: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    bed.kubectl_ok(&["-n", "buckets-system", "scale", "deployment/ops-buckets-operator", "--replicas", "0"]);
    bed.kubeconfig_for("buckets-system", "ops-buckets-operator")
}

/// The operator binary as a process with `kubeconfig`, leader election on, named `name`.
pub fn start_operator(bed: &TestBed, kubeconfig: &Path, name: &str) -> Process {
    let log = bed.dir.path().join(format!("{name}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(workspace_binary("buckets-operator"))
        .args(["run", "--leader-election", "--metrics-address", &format!("127.0.0.1:{}", free_port())])
        .env("KUBECONFIG", kubeconfig)
        .env("POD_NAMESPACE", "buckets-system")
        .env("POD_NAME", name)
        .env("BUCKETS_LOG", "info,kube=warn")
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    Process { child, log }
}

/// Creates `namespace` and waits for its default service account (pods are refused
/// until the controller manager made it).
pub fn create_namespace(bed: &TestBed, namespace: &str) {
    bed.kubectl_ok(&["create", "namespace", namespace]);
    wait_until("the namespace's default service account", Duration::from_secs(60), || {
        bed.kubectl(&["-n", namespace, "get", "serviceaccount", "default"]).status.success()
    });
}

/// The chart's operator running, and the samples (`config/samples`: cluster `demo`
/// with pool `fast`) applied in namespace `store` and Ready; fails with the cluster's
/// status, the pods, the operator's log and node 0's log otherwise.
pub fn start_sample_cluster(bed: &TestBed) -> (runner::PodRunner, Process) {
    let runner = runner::PodRunner::start(bed, workspace_binary("buckets-node"));
    let kubeconfig = install_operator_chart(bed);
    let operator = start_operator(bed, &kubeconfig, "operator");
    create_namespace(bed, "store");
    let samples = repo_root().join("config/samples");
    bed.kubectl_ok(&["-n", "store", "apply", "-f", samples.to_str().unwrap()]);
    let waited = bed.kubectl(&["-n", "store", "wait", "bc/demo", "--for=condition=Ready", "--timeout=240s"]);
    if !waited.status.success() {
        let status = bed.kubectl_ok(&["-n", "store", "get", "bc/demo", "-o", "jsonpath={.status}"]);
        panic!(
            "the cluster did not become Ready: {}\nstatus: {status}\npods: {}\noperator:\n{}\nnode 0:\n{}",
            String::from_utf8_lossy(&waited.stderr),
            bed.kubectl_ok(&["-n", "store", "get", "pods", "-o", "wide"]),
            operator.log(),
            runner.log("store", "demo-fast-0")
        );
    }
    (runner, operator)
}

/// The root credentials the operator generated for a cluster (Secret `<cluster>-root`).
pub fn root_credentials(bed: &TestBed, namespace: &str, cluster: &str) -> (String, String) {
    let key = |key: &str| {
        let encoded = bed.kubectl_ok(&[
            "-n",
            namespace,
            "get",
            "secret",
            &format!("{cluster}-root"),
            "-o",
            &format!("jsonpath={{.data.{key}}}"),
        ]);
        decode_base64(&encoded)
    };
    (key("rootUser"), key("rootPassword"))
}

/// The AWS CLI (`BUCKETS_AWS_CLI`, else `aws`) against one S3 endpoint.
#[derive(Clone)]
pub struct AwsCli {
    pub endpoint: String,
    pub user: String,
    pub password: String,
}

impl AwsCli {
    /// Runs an `aws` command that must succeed; returns its stdout.
    pub fn run(&self, args: &[&str]) -> String {
        self.try_run(args, true).unwrap_or_else(|e| panic!("aws {args:?}: {e}"))
    }

    /// Runs an `aws` command; its stdout, or its stderr when it failed. Without
    /// `retries` the CLI makes one attempt per request, so every failure a user would
    /// see shows.
    pub fn try_run(&self, args: &[&str], retries: bool) -> Result<String, String> {
        let mut command = Command::new(std::env::var("BUCKETS_AWS_CLI").unwrap_or_else(|_| "aws".into()));
        command
            .args(["--endpoint-url", &self.endpoint])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.user)
            .env("AWS_SECRET_ACCESS_KEY", &self.password)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        if !retries {
            command.env("AWS_RETRY_MODE", "standard").env("AWS_MAX_ATTEMPTS", "1");
        }
        let output = command.output().expect("the AWS CLI runs (set BUCKETS_AWS_CLI)");
        if output.status.success() {
            Ok(String::from_utf8(output.stdout).unwrap())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

/// A Secret's `data` value as text.
pub fn decode_base64(encoded: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).expect("Secret data is base64");
    String::from_utf8(bytes).expect("Secret data is text")
}
