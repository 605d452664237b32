//! The pod runner: plays kubelet for one Node (`local-node`) of the test bed. It binds
//! every unscheduled pod to that Node, runs each pod's `buckets-node` container as a local
//! process, reports the pod's IP, phase and readiness, restarts crashed containers
//! (restartPolicy Always), and finishes deletions (stops the process, then deletes the
//! pod with grace 0).
//!
//! How a pod runs, as a kubelet with the CNI bridge plugin runs it: each pod gets a
//! sandbox, a network namespace of its own (`ip netns`, named `pod-N`) joined to the
//! bed's bridge by a veth pair, with its pod IP from 10.244.0.0/16 on `eth0`, `lo` up
//! and the default route through the bridge. The container runs in that namespace,
//! with the pod's arguments unchanged (it listens on `0.0.0.0:9000` as its spec says),
//! and in a mount namespace of its own (`unshare --mount`), where every volume claim is a
//! directory of the runner bind-mounted at the container's mount path (so the node sees
//! `/data/d0` as the pod spec says) and `/etc/hosts` is the runner's hosts file. A
//! restarted container keeps its sandbox (namespace and IP); a deleted pod's sandbox
//! goes. Names resolve through that hosts file, which maps every running pod's DNS name
//! (`<hostname>.<subdomain>.<namespace>.svc.cluster.local`, as the StatefulSet's headless
//! Service gives it) to its pod IP. The runner itself lives in the bed's namespace
//! (`crate::in_own_network`), so nothing of this touches the host's network.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub const NODE_NAME: &str = "local-node";
/// How often the runner looks at the pods.
const TICK: Duration = Duration::from_millis(400);
/// Wait before restarting a crashed container (a kubelet starts at 10 s and doubles).
const RESTART_BACKOFF: Duration = Duration::from_secs(5);

/// A pod's network sandbox: its namespace, the bridge end of its veth, its IP.
struct Sandbox {
    uid: String,
    netns: String,
    ip: String,
}

struct Running {
    uid: String,
    child: Child,
    ready: bool,
    restarts: u32,
    started_at: String,
    /// When the process was found dead (it restarts after `RESTART_BACKOFF`).
    crashed_at: Option<std::time::Instant>,
}

#[derive(Default)]
struct State {
    running: HashMap<String, Running>,
    /// Pod (`namespace/name`) → its sandbox, from its first start until it is deleted.
    sandboxes: HashMap<String, Sandbox>,
    /// The next sandbox's number (its namespace, veth and IP follow from it).
    next_sandbox: u32,
    hosts: String,
}

pub struct PodRunner {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<Mutex<State>>,
    pub dir: PathBuf,
    /// On an existing cluster the real kubelet runs pods; this runner only answers
    /// questions through kubectl.
    external: Option<(PathBuf, PathBuf)>,
}

struct Context {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    dir: PathBuf,
    node_binary: PathBuf,
    cluster_domain: String,
}

impl Context {
    fn kubectl(&self, args: &[&str], input: Option<&str>) -> Result<String, String> {
        let mut command = Command::new(&self.kubectl);
        command.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| e.to_string())?;
        if let Some(text) = input {
            let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
        }
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }
}

fn now() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).expect("zero nanoseconds");
    now.format(&time::format_description::well_known::Rfc3339).expect("RFC 3339 formats any time")
}

/// `$(VAR)` references to earlier variables, as the kubelet expands them.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (name, value) in vars {
        out = out.replace(&format!("$({name})"), value);
    }
    out
}

impl PodRunner {
    /// Starts the runner against a test bed; pods' processes are `node_binary`.
    pub fn start(bed: &crate::TestBed, node_binary: PathBuf) -> PodRunner {
        let dir = bed.dir.path().join("runner");
        if bed.external {
            return PodRunner {
                stop: Arc::new(AtomicBool::new(true)),
                thread: None,
                state: Arc::default(),
                dir,
                external: Some((bed.bin.join("kubectl"), bed.kubeconfig.clone())),
            };
        }
        std::fs::create_dir_all(dir.join("claims")).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(dir.join("hosts"), "127.0.0.1 localhost\n").unwrap();
        let context = Context {
            kubectl: bed.bin.join("kubectl"),
            kubeconfig: bed.kubeconfig.clone(),
            dir: dir.clone(),
            node_binary,
            cluster_domain: "cluster.local".into(),
        };
        let node = json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": { "name": NODE_NAME, "labels": { "kubernetes.io/hostname": NODE_NAME } },
            "status": { "conditions": [{ "type": "Ready", "status": "True", "reason": "PodRunner", "message": "the e2e pod runner" }] }
        });
        context.kubectl(&["apply", "-f", "-"], Some(&node.to_string())).expect("the runner's Node is created");
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State { next_sandbox: 1, ..State::default() }));
        let (thread_stop, thread_state) = (stop.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                if let Err(e) = tick(&context, &thread_state) {
                    eprintln!("pod runner: {e}");
                }
                std::thread::sleep(TICK);
            }
            let mut state = thread_state.lock().unwrap();
            for (_, mut pod) in state.running.drain() {
                let _ = pod.child.kill();
                let _ = pod.child.wait();
            }
            for (_, sandbox) in state.sandboxes.drain() {
                remove_sandbox(&sandbox);
            }
        });
        PodRunner { stop, thread: Some(thread), state, dir, external: None }
    }

    fn external_kubectl(&self, args: &[&str]) -> Option<String> {
        let (kubectl, kubeconfig) = self.external.as_ref()?;
        let output = Command::new(kubectl).arg("--kubeconfig").arg(kubeconfig).args(args).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The pod IP of `namespace/name`, once it runs.
    pub fn pod_ip(&self, namespace: &str, name: &str) -> Option<String> {
        if self.external.is_some() {
            return self
                .external_kubectl(&["-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.podIP}"])
                .filter(|ip| !ip.is_empty());
        }
        self.state.lock().unwrap().sandboxes.get(&format!("{namespace}/{name}")).map(|s| s.ip.clone())
    }

    /// `kill -9` of a pod's process (the runner restarts it, as a kubelet would).
    pub fn kill(&self, namespace: &str, name: &str) -> bool {
        if self.external.is_some() {
            return self.external_kubectl(&["-n", namespace, "exec", name, "--", "sh", "-c", "kill -9 1"]).is_some();
        }
        let mut state = self.state.lock().unwrap();
        match state.running.get_mut(&format!("{namespace}/{name}")) {
            Some(pod) => pod.child.kill().is_ok(),
            None => false,
        }
    }

    /// The log of a pod's process.
    pub fn log(&self, namespace: &str, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("logs/{namespace}_{name}.log"))).unwrap_or_default()
    }
}

impl Drop for PodRunner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn tick(context: &Context, state: &Mutex<State>) -> Result<(), String> {
    let list: Value = serde_json::from_str(&context.kubectl(&["get", "pods", "-A", "-o", "json"], None)?)
        .map_err(|e| e.to_string())?;
    let pods = list["items"].as_array().cloned().unwrap_or_default();
    let mut seen = Vec::new();
    for pod in &pods {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let key = format!("{namespace}/{name}");
        seen.push(key.clone());
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            stop_pod(state, &key);
            let _ = context.kubectl(
                &["-n", &namespace, "delete", "pod", &name, "--grace-period=0", "--force", "--wait=false"],
                None,
            );
            continue;
        }
        if pod["spec"]["nodeName"].is_null() {
            let binding = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": { "name": name, "namespace": namespace },
                "target": { "apiVersion": "v1", "kind": "Node", "name": NODE_NAME }
            });
            context.kubectl(&["create", "-f", "-"], Some(&binding.to_string()))?;
            continue;
        }
        if pod["spec"]["nodeName"] != NODE_NAME {
            continue;
        }
        ensure_running(context, state, pod, &key, &uid)?;
    }
    // Pods gone from the API: stop their processes, remove their sandboxes.
    let gone: Vec<String> = {
        let state = state.lock().unwrap();
        state.running.keys().chain(state.sandboxes.keys()).filter(|k| !seen.contains(k)).cloned().collect()
    };
    for key in gone {
        stop_pod(state, &key);
        if let Some(sandbox) = state.lock().unwrap().sandboxes.remove(&key) {
            remove_sandbox(&sandbox);
        }
    }
    write_hosts(context, state, &pods);
    Ok(())
}

fn stop_pod(state: &Mutex<State>, key: &str) {
    if let Some(mut pod) = state.lock().unwrap().running.remove(key) {
        let _ = pod.child.kill();
        let _ = pod.child.wait();
    }
}

fn ensure_running(context: &Context, state: &Mutex<State>, pod: &Value, key: &str, uid: &str) -> Result<(), String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let (netns, ip) = sandbox_of(state, key, uid)?;
    let mut restarted = false;
    {
        let mut guard = state.lock().unwrap();
        if let Some(running) = guard.running.get_mut(key) {
            if running.uid != uid {
                // A new pod of the same name: the old process goes.
                let _ = running.child.kill();
                let _ = running.child.wait();
                guard.running.remove(key);
            } else if let Ok(Some(_)) = running.child.try_wait() {
                // Crashed: not ready at once, restarted after a back-off (as a kubelet).
                match running.crashed_at {
                    None => {
                        running.crashed_at = Some(std::time::Instant::now());
                        running.ready = false;
                        drop(guard);
                        return report(context, state, namespace, name, key, &ip, false);
                    }
                    Some(at) if at.elapsed() < RESTART_BACKOFF => return Ok(()),
                    Some(_) => restarted = true,
                }
            }
        }
    }
    let needs_start = !state.lock().unwrap().running.contains_key(key) || restarted;
    if needs_start {
        let previous_restarts = state.lock().unwrap().running.get(key).map_or(0, |r| r.restarts + u32::from(restarted));
        let child = start_container(context, pod, &netns, &ip)?;
        state.lock().unwrap().running.insert(
            key.to_string(),
            Running {
                uid: uid.to_string(),
                child,
                ready: false,
                restarts: previous_restarts,
                started_at: now(),
                crashed_at: None,
            },
        );
        report(context, state, namespace, name, key, &ip, false)?;
        return Ok(());
    }
    // Readiness from the container's readiness probe (HTTP GET on a named port).
    let container = &pod["spec"]["containers"][0];
    let probe = &container["readinessProbe"]["httpGet"];
    let ready = if probe.is_null() {
        true
    } else {
        let port = match &probe["port"] {
            Value::Number(n) => n.as_u64().unwrap_or(0),
            Value::String(named) => container["ports"]
                .as_array()
                .and_then(|ports| ports.iter().find(|p| p["name"] == named.as_str()))
                .and_then(|p| p["containerPort"].as_u64())
                .unwrap_or(0),
            _ => 0,
        };
        http_ok(&ip, port as u16, probe["path"].as_str().unwrap_or("/"))
    };
    let changed = state.lock().unwrap().running.get(key).is_some_and(|r| r.ready != ready);
    let phase_reported = pod["status"]["podIP"].as_str() == Some(ip.as_str());
    if changed || !phase_reported {
        if let Some(running) = state.lock().unwrap().running.get_mut(key) {
            running.ready = ready;
        }
        report(context, state, namespace, name, key, &ip, ready)?;
    }
    Ok(())
}

/// The pod's sandbox (namespace, IP), made at its first start; a new pod of the same
/// name (another uid) gets a new one.
fn sandbox_of(state: &Mutex<State>, key: &str, uid: &str) -> Result<(String, String), String> {
    let mut state = state.lock().unwrap();
    if let Some(sandbox) = state.sandboxes.get(key) {
        if sandbox.uid == uid {
            return Ok((sandbox.netns.clone(), sandbox.ip.clone()));
        }
        // A new pod of the same name: its old process goes first (`ensure_running`), and
        // its old sandbox now.
        if let Some(mut running) = state.running.remove(key) {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
        let old = state.sandboxes.remove(key).expect("present");
        remove_sandbox(&old);
    }
    let number = state.next_sandbox;
    state.next_sandbox += 1;
    let sandbox = create_sandbox(number, uid)?;
    let found = (sandbox.netns.clone(), sandbox.ip.clone());
    state.sandboxes.insert(key.to_string(), sandbox);
    Ok(found)
}

/// Most pods one bed runs: addresses come from 10.244.0.2 up, below the /16's broadcast.
const MAX_SANDBOXES: u32 = 60_000;

/// A network namespace `pod-N` joined to the bed's bridge by the veth pair `vethN` /
/// `eth0`, with IP 10.244.0.0/16 + N + 1, `lo` up and the default route via the bridge.
fn create_sandbox(number: u32, uid: &str) -> Result<Sandbox, String> {
    assert!(number < MAX_SANDBOXES, "the pod network has room for {MAX_SANDBOXES} pods");
    let host = number + 1;
    let ip = format!("10.244.{}.{}", host / 256, host % 256);
    let (netns, veth) = (format!("pod-{number}"), format!("veth{number}"));
    let address = format!("{ip}/{}", crate::POD_PREFIX_LENGTH);
    let steps: [&[&str]; 7] = [
        &["netns", "add", &netns],
        &["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns],
        &["link", "set", &veth, "master", crate::POD_BRIDGE, "up"],
        &["-n", &netns, "link", "set", "lo", "up"],
        &["-n", &netns, "addr", "add", &address, "dev", "eth0"],
        &["-n", &netns, "link", "set", "eth0", "up"],
        &["-n", &netns, "route", "add", "default", "via", crate::POD_GATEWAY],
    ];
    let sandbox = Sandbox { uid: uid.to_string(), netns: netns.clone(), ip };
    for step in steps {
        let output = Command::new("ip").args(step).output().map_err(|e| format!("ip {step:?}: {e}"))?;
        if !output.status.success() {
            remove_sandbox(&sandbox);
            return Err(format!("ip {step:?}: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
    }
    Ok(sandbox)
}

/// Deletes the sandbox's namespace; its `eth0` goes with it, and so the veth's other end.
fn remove_sandbox(sandbox: &Sandbox) {
    let _ = Command::new("ip").args(["netns", "del", &sandbox.netns]).output();
}

fn http_ok(ip: &str, port: u16, path: &str) -> bool {
    use std::io::Read;
    let Ok(mut stream) =
        std::net::TcpStream::connect_timeout(&format!("{ip}:{port}").parse().unwrap(), Duration::from_millis(300))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {ip}\r\nConnection: close\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn report(
    context: &Context,
    state: &Mutex<State>,
    namespace: &str,
    name: &str,
    key: &str,
    ip: &str,
    ready: bool,
) -> Result<(), String> {
    let (restarts, started_at) =
        state.lock().unwrap().running.get(key).map_or((0, now()), |r| (r.restarts, r.started_at.clone()));
    let flag = if ready { "True" } else { "False" };
    let status = json!({ "status": {
        "phase": "Running",
        "hostIP": crate::POD_GATEWAY,
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "startTime": started_at,
        "conditions": [
            { "type": "PodScheduled", "status": "True" },
            { "type": "Initialized", "status": "True" },
            { "type": "ContainersReady", "status": flag },
            { "type": "Ready", "status": flag }
        ],
        "containerStatuses": [{
            "name": "node", "ready": ready, "started": true, "restartCount": restarts,
            "image": "buckets-node", "imageID": "",
            "state": { "running": { "startedAt": started_at } }
        }]
    }});
    context.kubectl(
        &["-n", namespace, "patch", "pod", name, "--subresource=status", "--type=merge", "-p", &status.to_string()],
        None,
    )?;
    Ok(())
}

/// The container's environment, as the kubelet resolves it.
fn environment(context: &Context, pod: &Value, ip: &str) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let mut vars = BTreeMap::new();
    for entry in pod["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default() {
        let name = entry["name"].as_str().unwrap_or_default().to_string();
        let value = if let Some(value) = entry["value"].as_str() {
            expand(value, &vars)
        } else if let Some(path) = entry["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match path {
                "metadata.name" => pod["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                "metadata.namespace" => namespace.to_string(),
                "status.podIP" => ip.to_string(),
                other => return Err(format!("unsupported fieldRef {other}")),
            }
        } else if !entry["valueFrom"]["secretKeyRef"].is_null() {
            let reference = &entry["valueFrom"]["secretKeyRef"];
            let secret = reference["name"].as_str().unwrap_or_default();
            let key = reference["key"].as_str().unwrap_or_default();
            let encoded = context.kubectl(
                &["-n", namespace, "get", "secret", secret, "-o", &format!("jsonpath={{.data.{key}}}")],
                None,
            )?;
            crate::decode_base64(&encoded)
        } else {
            String::new()
        };
        vars.insert(name, value);
    }
    Ok(vars)
}

fn start_container(context: &Context, pod: &Value, netns: &str, ip: &str) -> Result<Child, String> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let container = &pod["spec"]["containers"][0];
    let vars = environment(context, pod, ip)?;
    let args: Vec<String> = container["args"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.as_str())
        .map(|a| expand(a, &vars))
        .collect();
    // Mounts: every claim is a directory of the runner, bound at its mount path.
    let mut script = String::from("set -e\n");
    let mut parents = std::collections::BTreeSet::new();
    let mut binds = Vec::new();
    for mount in container["volumeMounts"].as_array().cloned().unwrap_or_default() {
        let volume_name = mount["name"].as_str().unwrap_or_default();
        let volume = pod["spec"]["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == volume_name))
            .cloned()
            .unwrap_or(Value::Null);
        let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() else { continue };
        let source = context.dir.join("claims").join(namespace).join(claim);
        std::fs::create_dir_all(&source).map_err(|e| e.to_string())?;
        let target = mount["mountPath"].as_str().unwrap_or_default().to_string();
        if let Some(parent) = Path::new(&target).parent() {
            parents.insert(parent.display().to_string());
        }
        binds.push((source, target));
    }
    for parent in &parents {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        script.push_str(&format!("mount -t tmpfs tmpfs '{parent}'\n"));
    }
    for (source, target) in &binds {
        script.push_str(&format!("mkdir -p '{target}'\nmount --bind '{}' '{target}'\n", source.display()));
    }
    script.push_str(&format!("mount --bind '{}' /etc/hosts\n", context.dir.join("hosts").display()));
    script.push_str("exec \"$@\"\n");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(context.dir.join(format!("logs/{namespace}_{name}.log")))
        .map_err(|e| e.to_string())?;
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["--", "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", &script, "sh"])
        .arg(&context.node_binary)
        .args(&args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&vars)
        .stdout(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(log));
    command.spawn().map_err(|e| format!("starting {namespace}/{name}: {e}"))
}

/// Every running pod's DNS names → its IP, written in place (the pods' /etc/hosts is
/// this file, bind-mounted: a rename would leave them the old one).
fn write_hosts(context: &Context, state: &Mutex<State>, pods: &[Value]) {
    let mut text = String::from("127.0.0.1 localhost\n");
    let state_guard = state.lock().unwrap();
    for pod in pods {
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let Some(ip) = state_guard.sandboxes.get(&format!("{namespace}/{name}")).map(|s| &s.ip) else { continue };
        let hostname = pod["spec"]["hostname"].as_str().unwrap_or(name);
        match pod["spec"]["subdomain"].as_str() {
            Some(subdomain) => text.push_str(&format!(
                "{ip} {hostname}.{subdomain}.{namespace}.svc.{domain} {hostname}.{subdomain}.{namespace}.svc {hostname}\n",
                domain = context.cluster_domain
            )),
            None => text.push_str(&format!("{ip} {hostname}\n")),
        }
    }
    drop(state_guard);
    let mut state_guard = state.lock().unwrap();
    if state_guard.hosts != text {
        if let Ok(mut file) = std::fs::OpenOptions::new().write(true).truncate(true).open(context.dir.join("hosts")) {
            let _ = file.write_all(text.as_bytes());
        }
        state_guard.hosts = text;
    }
}
