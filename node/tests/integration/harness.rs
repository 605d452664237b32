//! Starts real `buckets-node` processes on temporary drives and gives tests real clients.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub const ACCESS_KEY: &str = "testadmin";
pub const SECRET_KEY: &str = "testadmin-secret";
pub const CLUSTER_SECRET: &str = "test-cluster-secret";

/// Status, lower-case headers, body.
pub type RawResponse = (u16, Vec<(String, String)>, Vec<u8>);

pub fn free_port() -> u16 {
    free_port_on("127.0.0.1")
}

/// Ports for test nodes come from below the kernel's ephemeral range (32768 and up on
/// Linux): a port the kernel hands out for port 0 can be taken by any outgoing connection
/// while its node restarts, and the restarted node then fails with "address in use".
const TEST_PORTS: std::ops::Range<u32> = 20_000..32_000;

pub fn free_port_on(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let offset = std::process::id() * 7919;
    loop {
        let port = TEST_PORTS.start + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        if TcpListener::bind((ip, port as u16)).is_ok() {
            return port as u16;
        }
    }
}

pub struct Node {
    child: Option<Child>,
    pub root: tempfile::TempDir,
    pub drive_count: usize,
    pub s3_port: u16,
    pub admin_port: u16,
    pub env: Vec<(String, String)>,
    /// Loopback address the node listens on (127.0.0.1 alone, 127.0.0.2… in a cluster).
    pub ip: String,
    /// Drive arguments; empty means this node's own `d{1...N}` directories.
    pub drive_args: Vec<String>,
    /// With certificates the node serves HTTPS; this is the CA's PEM that clients trust.
    pub ca_pem: Option<String>,
}

impl Node {
    pub fn start(drive_count: usize) -> Node {
        Self::start_with_env(drive_count, &[])
    }

    pub fn start_with_env(drive_count: usize, env: &[(&str, &str)]) -> Node {
        let root = tempfile::tempdir().unwrap();
        let mut node = Node {
            child: None,
            root,
            drive_count,
            s3_port: free_port(),
            admin_port: free_port(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ip: "127.0.0.1".into(),
            drive_args: Vec::new(),
            ca_pem: env
                .iter()
                .find(|(k, _)| *k == "BUCKETS_CERTS_DIR")
                .and_then(|(_, dir)| std::fs::read_to_string(std::path::Path::new(dir).join("ca.crt")).ok()),
        };
        node.spawn();
        node
    }

    /// A handle with this node's addresses and no process (for clients with other settings).
    pub fn detached(&self) -> Node {
        Node {
            child: None,
            root: tempfile::tempdir().unwrap(),
            drive_count: self.drive_count,
            s3_port: self.s3_port,
            admin_port: self.admin_port,
            env: Vec::new(),
            ip: self.ip.clone(),
            drive_args: Vec::new(),
            ca_pem: self.ca_pem.clone(),
        }
    }

    /// `nodes` processes on 127.0.0.2, 127.0.0.3, … each with `drives_per_node` drives, all
    /// given the same list of drive URLs; returns once every node is ready.
    pub fn start_cluster(nodes: usize, drives_per_node: usize, env: &[(&str, &str)]) -> Vec<Node> {
        Self::start_cluster_with(nodes, drives_per_node, env, None)
    }

    /// A cluster whose nodes serve HTTPS with certificates signed by `tls` (a certs dir
    /// and the CA's PEM) and reach each other over `https://` drive URLs.
    pub fn start_cluster_with(
        nodes: usize,
        drives_per_node: usize,
        env: &[(&str, &str)],
        tls: Option<(&std::path::Path, &str)>,
    ) -> Vec<Node> {
        Self::start_cluster_relayed(nodes, drives_per_node, env, tls, &[]).0
    }

    /// A cluster where peers reach the nodes at `relayed` through a `Relay` each (their
    /// drive URLs and `--node-address` name the relay): what peers send those nodes can
    /// be captured on the wire, as an attacker would. Returns the relays in that order.
    pub fn start_cluster_relayed(
        nodes: usize,
        drives_per_node: usize,
        env: &[(&str, &str)],
        tls: Option<(&std::path::Path, &str)>,
        relayed: &[usize],
    ) -> (Vec<Node>, Vec<Relay>) {
        let mut cluster: Vec<Node> = (0..nodes)
            .map(|index| {
                let ip = format!("127.0.0.{}", index + 2);
                Node {
                    child: None,
                    root: tempfile::tempdir().unwrap(),
                    drive_count: drives_per_node,
                    s3_port: free_port_on(&ip),
                    admin_port: free_port_on(&ip),
                    env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                    ip,
                    drive_args: Vec::new(),
                    ca_pem: None,
                }
            })
            .collect();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let relays: Vec<Relay> =
            relayed.iter().map(|&index| Relay::start(&cluster[index].ip, cluster[index].admin_port)).collect();
        for (&index, relay) in relayed.iter().zip(&relays) {
            cluster[index].env.push(("BUCKETS_NODE_ADDRESS".into(), relay.authority()));
        }
        let urls: Vec<String> = cluster
            .iter()
            .enumerate()
            .map(|(index, n)| {
                let authority = match relayed.iter().position(|&r| r == index) {
                    Some(at) => relays[at].authority(),
                    None => format!("{}:{}", n.ip, n.admin_port),
                };
                format!("{scheme}://{authority}{}/d{{1...{}}}", n.root.path().display(), drives_per_node)
            })
            .collect();
        for node in &mut cluster {
            if let Some((dir, ca)) = tls {
                node.env.push(("BUCKETS_CERTS_DIR".into(), dir.display().to_string()));
                node.ca_pem = Some(ca.to_string());
            }
            node.drive_args = urls.clone();
            node.env.push(("BUCKETS_CLUSTER_SECRET".into(), CLUSTER_SECRET.into()));
            node.launch();
        }
        for node in &mut cluster {
            node.wait_ready();
        }
        // Ready means write quorum; tests start from a settled cluster where every node
        // has reached every drive (as a user's healthy cluster would be).
        let total = (nodes * drives_per_node) as f64;
        for node in &cluster {
            wait_until("every node sees every drive", Duration::from_secs(30), || {
                node.metric("buckets_drives_online") >= total
            });
        }
        (cluster, relays)
    }

    /// `count` member nodes (`--node-address`, own drives `d1…dN`) on loopback addresses
    /// from 127.0.0.`first_ip`; they wait for a topology (not ready yet).
    pub fn start_members(first_ip: usize, count: usize, drives_per_node: usize) -> Vec<Node> {
        (0..count)
            .map(|index| {
                let ip = format!("127.0.0.{}", first_ip + index);
                let admin_port = free_port_on(&ip);
                let mut node = Node {
                    child: None,
                    root: tempfile::tempdir().unwrap(),
                    drive_count: drives_per_node,
                    s3_port: free_port_on(&ip),
                    admin_port,
                    env: vec![
                        ("BUCKETS_CLUSTER_SECRET".into(), CLUSTER_SECRET.into()),
                        ("BUCKETS_NODE_ADDRESS".into(), format!("{ip}:{admin_port}")),
                    ],
                    ip,
                    drive_args: Vec::new(),
                    ca_pem: None,
                };
                node.launch();
                node
            })
            .collect()
    }

    /// The drive URL of this node's drive `index` (1-based, as named on disk).
    pub fn drive_url(&self, index: usize) -> String {
        format!("http://{}:{}{}/d{index}", self.ip, self.admin_port, self.root.path().display())
    }

    /// Status of a GET on the admin listener (0 when it does not answer).
    pub fn admin_status(&self, path: &str) -> u16 {
        self.admin_get(path).map_or(0, |(status, _)| status)
    }

    pub fn drive(&self, index: usize) -> PathBuf {
        self.root.path().join(format!("d{}", index + 1))
    }

    pub fn drive_argument(&self) -> String {
        format!("{}/d{{1...{}}}", self.root.path().display(), self.drive_count)
    }

    pub fn spawn(&mut self) {
        self.launch();
        self.wait_ready();
    }

    pub fn launch(&mut self) {
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.root.path().join("node.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_buckets-node"));
        command
            .arg("server")
            .arg("--address")
            .arg(format!("{}:{}", self.ip, self.s3_port))
            .arg("--admin-address")
            .arg(format!("{}:{}", self.ip, self.admin_port))
            .args(if self.drive_args.is_empty() { vec![self.drive_argument()] } else { self.drive_args.clone() })
            .env("BUCKETS_ROOT_USER", ACCESS_KEY)
            .env("BUCKETS_ROOT_PASSWORD", SECRET_KEY)
            .env("BUCKETS_DRIVE_CHECK_SECS", "1")
            .env("BUCKETS_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (k, v) in &self.env {
            command.env(k, v);
        }
        self.child = Some(command.spawn().expect("buckets-node starts"));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("node.log")).unwrap_or_default()
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("buckets-node exited with {status}:\n{}", self.log());
            }
            if let Some((200, _)) = self.admin_get("/health/ready") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("buckets-node did not become ready:\n{}", self.log());
    }

    /// Waits until the process ends on its own (a failpoint); false on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(_))) | None => {
                    self.child = None;
                    return true;
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        false
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.ca_pem.is_some() { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.ip, self.s3_port)
    }

    /// GET on the admin listener (through curl with the CA when the node serves HTTPS).
    pub fn admin_get(&self, path: &str) -> Option<(u16, Vec<u8>)> {
        match &self.ca_pem {
            None => http_get_on(&self.ip, self.admin_port, path).ok().map(|(status, _, body)| (status, body)),
            Some(ca) => {
                let ca_file = self.root.path().join("ca-for-curl.pem");
                std::fs::write(&ca_file, ca).ok()?;
                let output = Command::new("curl")
                    .args(["-s", "--cacert"])
                    .arg(&ca_file)
                    .args(["-o", "-", "-w", "\n%{http_code}"])
                    .arg(format!("https://{}:{}{}", self.ip, self.admin_port, path))
                    .output()
                    .ok()?;
                let text = output.stdout;
                let split = text.iter().rposition(|&b| b == b'\n')?;
                let status = std::str::from_utf8(&text[split + 1..]).ok()?.trim().parse().ok()?;
                Some((status, text[..split].to_vec()))
            }
        }
    }

    pub fn client(&self) -> Client {
        self.client_with(ACCESS_KEY, SECRET_KEY)
    }

    pub fn client_with(&self, access: &str, secret: &str) -> Client {
        let mut config = aws_sdk_s3::Config::builder();
        if let Some(ca) = &self.ca_pem {
            config = config.http_client(https_client_trusting(ca));
        }
        let config = config
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(access, secret, None, None, "test"))
            .force_path_style(true)
            .build();
        Client::from_conf(config)
    }

    pub fn metric(&self, name: &str) -> f64 {
        let (_, body) = self.admin_get("/metrics").unwrap();
        let text = String::from_utf8(body).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP relay in front of a node's admin listener that keeps every byte its clients
/// send, one buffer per connection: a capture of the wire. Its threads live as long as
/// the test process.
pub struct Relay {
    pub ip: String,
    pub port: u16,
    captured: Captures,
}

/// The bytes clients sent through a relay, one buffer per connection.
type Captures = std::sync::Arc<std::sync::Mutex<Vec<std::sync::Arc<std::sync::Mutex<Vec<u8>>>>>>;

impl Relay {
    pub fn start(ip: &str, target_port: u16) -> Relay {
        let port = free_port_on(ip);
        let listener = TcpListener::bind((ip, port)).unwrap();
        let captured: Captures = Default::default();
        let (target, connections) = (format!("{ip}:{target_port}"), captured.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let Ok(mut server) = TcpStream::connect(&target) else { continue };
                let record = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
                connections.lock().unwrap().push(record.clone());
                let (mut client_reader, mut server_writer) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 64 * 1024];
                    while let Ok(n) = client_reader.read(&mut buffer) {
                        // Recorded before it is passed on: by the time a call is answered,
                        // it is in the capture.
                        record.lock().unwrap().extend_from_slice(&buffer[..n]);
                        if n == 0 || server_writer.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = server_writer.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                    let _ = client.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Relay { ip: ip.to_string(), port, captured }
    }

    /// `host:port` peers reach the relayed node at.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Every whole HTTP request captured so far (head and body, as sent), in order per
    /// connection.
    pub fn captured_requests(&self) -> Vec<Vec<u8>> {
        let mut requests = Vec::new();
        for connection in self.captured.lock().unwrap().iter() {
            let bytes = connection.lock().unwrap().clone();
            let mut at = 0;
            while let Some(head_length) = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4) {
                let head = String::from_utf8_lossy(&bytes[at..at + head_length]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if at + head_length + length > bytes.len() {
                    break;
                }
                requests.push(bytes[at..at + head_length + length].to_vec());
                at += head_length + length;
            }
        }
        requests
    }
}

/// A minimal HTTP/1.1 exchange over a fresh connection: (status, headers, body).
pub fn raw_request(port: u16, request: &[u8]) -> std::io::Result<RawResponse> {
    raw_request_on("127.0.0.1", port, request)
}

pub fn raw_request_on(ip: &str, port: u16, request: &[u8]) -> std::io::Result<RawResponse> {
    let mut stream = TcpStream::connect((ip, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(request)?;
    read_response(&mut stream)
}

pub fn read_response(stream: &mut TcpStream) -> std::io::Result<RawResponse> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed before headers"));
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let length: usize =
        headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.parse().unwrap()).unwrap_or(0);
    let mut body = buffer[header_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, headers, body))
}

pub fn http_get(port: u16, path: &str) -> std::io::Result<RawResponse> {
    http_get_on("127.0.0.1", port, path)
}

pub fn http_get_on(ip: &str, port: u16, path: &str) -> std::io::Result<RawResponse> {
    raw_request_on(
        ip,
        port,
        format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The whole body of an object, read with the SDK.
pub async fn get_bytes(s3: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let response = s3.get_object().bucket(bucket).key(key).send().await.unwrap();
    response.body.collect().await.unwrap().into_bytes().to_vec()
}

/// An HTTPS client for the SDK that trusts only `ca_pem`.
pub fn https_client_trusting(ca_pem: &str) -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    let trust = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(ca_pem.as_bytes().to_vec());
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(tls::TlsContext::builder().with_trust_store(trust).build().unwrap())
        .build_https()
}

/// A CA and a certificate for 127.0.0.1–127.0.0.9 and localhost, written as a certs dir
/// (public.crt, private.key, ca.crt); returns the CA's PEM.
pub fn make_certs(dir: &std::path::Path) -> String {
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SanType};
    let named = |name: &str| {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name = named("Buckets test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    // Subject and issuer must differ, or verifiers take the certificate for self-signed.
    params.distinguished_name = named("buckets-node");
    for last in 1..10 {
        params.subject_alt_names.push(SanType::IpAddress(format!("127.0.0.{last}").parse().unwrap()));
    }
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("public.crt"), certificate.pem()).unwrap();
    std::fs::write(dir.join("private.key"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    ca.pem()
}

/// Polls `check` until it holds, or fails the test after `timeout`.
pub fn wait_until(what: &str, timeout: std::time::Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Runs `buckets-admin` against a node's admin endpoint with the root credentials.
pub fn admin_cli(node: &Node, args: &[&str]) -> std::process::Output {
    admin_command(node, args).output().expect("buckets-admin runs")
}

/// `buckets-admin` with `args`, set up to reach `node` as root, not started.
pub fn admin_command(node: &Node, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_buckets-admin"));
    command
        .args(args)
        .env("BUCKETS_ENDPOINT", format!("http://{}:{}", node.ip, node.admin_port))
        .env("BUCKETS_ROOT_USER", ACCESS_KEY)
        .env("BUCKETS_ROOT_PASSWORD", SECRET_KEY);
    command
}

/// Uploads part `number` of an upload; returns its ETag.
pub async fn upload_part(s3: &Client, bucket: &str, key: &str, upload_id: &str, number: i32, bytes: &[u8]) -> String {
    let answer = s3
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .part_number(number)
        .body(aws_sdk_s3::primitives::ByteStream::from(bytes.to_vec()))
        .send()
        .await
        .unwrap();
    answer.e_tag().unwrap().to_string()
}

/// Completes an upload from its (part number, ETag) pairs.
pub async fn complete_upload(s3: &Client, bucket: &str, key: &str, upload_id: &str, parts: &[(i32, String)]) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let parts = parts.iter().map(|(number, etag)| CompletedPart::builder().part_number(*number).e_tag(etag).build());
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts.collect())).build())
        .send()
        .await
        .unwrap();
}

/// Wipes `dir` the way a lost disk does, while the node keeps running: a node healing
/// at that moment may create files in it again (a bucket's directory, a healed copy), so
/// the removal is retried until it wins the race.
pub fn wipe(dir: &std::path::Path) {
    for _ in 0..50 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("wiping {}: {e}", dir.display()),
        }
    }
    panic!("{} kept filling up while being wiped", dir.display());
}

/// Eight PUTs of `key` with `If-None-Match: *` at once, spread over `clients` (the nodes
/// of a cluster, or one): exactly one may succeed, the others lose with 412 (at arrival)
/// or 409 ConditionalRequestConflict (at commit). Returns the winner's byte, which fills
/// its body of `size` bytes.
pub async fn race_create_only(clients: &[Client], bucket: &str, key: &str, size: usize) -> u8 {
    let tasks: Vec<_> = (0..8u8)
        .map(|writer| {
            let client = clients[writer as usize % clients.len()].clone();
            let (bucket, key) = (bucket.to_string(), key.to_string());
            tokio::spawn(async move {
                let result = client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .if_none_match("*")
                    .body(aws_sdk_s3::primitives::ByteStream::from(vec![writer; size]))
                    .send()
                    .await;
                let status = match &result {
                    Ok(_) => 200,
                    Err(error) => error.raw_response().map_or(0, |r| r.status().as_u16()),
                };
                (writer, status)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (writer, status) = task.await.unwrap();
        match status {
            200 => winners.push(writer),
            412 | 409 => {}
            other => panic!("{key}: writer {writer} got {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "{key}: winners {winners:?}");
    winners[0]
}
