//! Process wiring: configuration, the S3 and admin listeners, background tasks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::cluster::control::ClusterControl;
use crate::metrics::Metrics;
use crate::rpc::client::PeerTransport;
use crate::rpc::lock::{DistributedLocker, LockTable};
use crate::rpc::server::RpcServer;
use crate::s3::BucketsS3;
use crate::storage::bootstrap::{self, BootstrapError, DriveUrl};
use crate::storage::heal::{self, HealConfig};
use crate::tls::TlsSetup;

pub const DEFAULT_ROOT_USER: &str = "bucketsadmin";
pub const DEFAULT_ROOT_PASSWORD: &str = "bucketsadmin";
/// A client that has not finished its TLS handshake by then is dropped, so idle sockets
/// cannot hold the accept loop's tasks.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a node without a topology looks for one (besides being told of a write).
const TOPOLOGY_WAIT_POLL: Duration = Duration::from_secs(1);
/// How often the peer list is brought in line with the topology (nodes join and leave
/// with their sets).
const PEER_FOLLOW_INTERVAL: Duration = Duration::from_secs(1);
/// After a failed accept (out of file descriptors, say), a pause instead of a hot loop.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);

pub struct ServerConfig {
    pub address: SocketAddr,
    pub admin_address: SocketAddr,
    pub drives: Vec<String>,
    pub root_user: String,
    pub root_password: String,
    pub region: String,
    pub domain: Option<String>,
    pub cluster_secret: Option<String>,
    /// `HOST:PORT` peers reach this node's admin listener at (default: --admin-address).
    pub node_address: Option<String>,
    pub tls: Option<TlsSetup>,
    pub registry_cache_entries: usize,
    pub heal: HealConfig,
    pub migration: crate::storage::migration::MigrationConfig,
    pub lifecycle: crate::storage::lifecycle::LifecycleConfig,
}

/// Virtual-hosted-style requests under `BUCKETS_DOMAIN`; anything else is path style.
struct DomainHost {
    domain: String,
}

impl S3Host for DomainHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<VirtualHost<'a>> {
        let name =
            host.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(n, _)| n);
        if let Some(bucket) = name.strip_suffix(self.domain.as_str()).and_then(|b| b.strip_suffix('.'))
            && !bucket.is_empty()
        {
            return Ok(VirtualHost::new(self.domain.as_str()).with_bucket(bucket));
        }
        Ok(VirtualHost::new(name))
    }
}

/// A connection's byte stream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Completes the TLS handshake when the node has certificates (a failed handshake just
/// drops the connection).
async fn accept_io(socket: tokio::net::TcpStream, acceptor: Option<&tokio_rustls::TlsAcceptor>) -> Option<Box<dyn Io>> {
    match acceptor {
        None => Some(Box::new(socket)),
        Some(acceptor) => match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
            Ok(Ok(stream)) => Some(Box::new(stream)),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
            Err(_) => None,
        },
    }
}

/// Counts a request in flight while alive.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a std::sync::atomic::AtomicUsize) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The address to tell a local user: a wildcard bind is reachable on loopback.
fn reachable(address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], address.port())) } else { address }
}

/// Whether a request asked for `100 Continue`, and with an empty body.
struct ContinueFacts {
    expects: bool,
    empty: bool,
}

impl ContinueFacts {
    fn of<B>(request: &http::Request<B>) -> Self {
        let headers = request.headers();
        let expects = headers
            .get(http::header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let empty = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) == Some("0");
        ContinueFacts { expects, empty }
    }

    /// Whether the connection must close after the answer: a request without a body
    /// never gets its `100 Continue` (there is nothing to continue), and one refused
    /// before its body was read (an error status) never sends it, so the connection
    /// cannot carry another request. Botocore, if the connection stays open, keeps a
    /// stale status line on it and misreads the next response; told to close, the AWS
    /// CLI and boto3 reconnect at once.
    fn close_after(&self, status: http::StatusCode) -> bool {
        self.expects && (self.empty || status.is_client_error() || status.is_server_error())
    }
}

/// The drives a node was given: local paths (a node on its own) or drive URLs (a static
/// cluster; the same list on every node).
pub enum DriveList {
    Local(Vec<PathBuf>),
    Cluster(Vec<DriveUrl>),
}

pub fn expand_drives(arguments: &[String]) -> Result<DriveList, BootstrapError> {
    let mut expanded = Vec::new();
    for argument in arguments {
        expanded.extend(bootstrap::expand_ellipses(argument)?);
    }
    let urls = expanded.iter().filter(|a| a.contains("://")).count();
    if urls == 0 {
        return Ok(DriveList::Local(expanded.into_iter().map(PathBuf::from).collect()));
    }
    if urls != expanded.len() {
        return Err(BootstrapError::Argument(
            arguments.join(" "),
            "give either local paths or drive URLs, not both".into(),
        ));
    }
    Ok(DriveList::Cluster(expanded.iter().map(|u| bootstrap::parse_drive_url(u)).collect::<Result<_, _>>()?))
}

/// Which node the process is: alone on local paths, one of a static cluster (drive
/// URLs), or a member of a cluster formed through the admin API (local paths and
/// `--node-address`).
enum Mode {
    Lone(Vec<PathBuf>),
    Static(Vec<DriveUrl>),
    Member(Arc<crate::cluster::member::Member>),
}

/// What the admin listener dispatches to; the admin API appears once the store is open.
struct AdminRouting {
    rpc: Option<Arc<RpcServer>>,
    admin: std::sync::OnceLock<Arc<crate::admin::Admin>>,
    member: Option<Arc<crate::cluster::member::Member>>,
    metrics: Arc<Metrics>,
    root_user: Arc<str>,
    root_password: Arc<str>,
}

impl AdminRouting {
    async fn route(
        self: Arc<Self>,
        request: http::Request<hyper::body::Incoming>,
        remote: SocketAddr,
    ) -> Result<http::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
        if let Some(rpc) = &self.rpc
            && RpcServer::handles(request.uri().path())
        {
            return Ok(rpc.clone().handle(request, remote).await);
        }
        if let Some(admin) = self.admin.get() {
            return crate::admin::handle(admin.clone(), request).await;
        }
        match &self.member {
            Some(member) => {
                crate::admin::handle_awaiting(
                    member.clone(),
                    self.metrics.clone(),
                    self.root_user.clone(),
                    self.root_password.clone(),
                    request,
                )
                .await
            }
            None => Ok(http::Response::builder()
                .status(http::StatusCode::SERVICE_UNAVAILABLE)
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"starting\n")))
                .expect("static response")),
        }
    }
}

/// Serves the admin listener (admin API, probes, metrics, peer RPC) until the process ends.
fn serve_admin(listener: TcpListener, acceptor: Option<tokio_rustls::TlsAcceptor>, routing: Arc<AdminRouting>) {
    tokio::spawn(async move {
        loop {
            let Ok((socket, remote)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let routing = routing.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Some(io) = accept_io(socket, acceptor.as_ref()).await else { return };
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    routing.clone().route(request, remote)
                });
                let _ = ConnBuilder::new(TokioExecutor::new()).serve_connection(TokioIo::new(io), service).await;
            });
        }
    });
}

/// Waits until this member node's drives hold a topology (a bootstrap or a running
/// cluster wrote it there).
async fn await_topology(
    member: &crate::cluster::member::Member,
) -> anyhow::Result<crate::placement::topology::Topology> {
    let mut announced = false;
    loop {
        if let Some(topology) = member.local_topology()? {
            return Ok(topology);
        }
        if !announced {
            tracing::info!(
                node_address = %member.own_authority,
                "waiting for a topology: bootstrap the cluster (POST /admin/v1/bootstrap) or add this node's drives as a set"
            );
            announced = true;
        }
        tokio::select! {
            _ = member.topology_written.notified() => {}
            _ = tokio::time::sleep(TOPOLOGY_WAIT_POLL) => {}
        }
    }
}

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let own_authority = config.node_address.clone().unwrap_or_else(|| config.admin_address.to_string());
    let served: crate::rpc::server::ServedDrives = Default::default();
    let secret = config.cluster_secret.clone().unwrap_or_default().into_bytes();
    let transport = PeerTransport::new(config.tls.as_ref().map(|t| t.client.clone()), &secret);
    let opener = Arc::new(crate::cluster::peers::ClusterSetOpener {
        own_authority: own_authority.clone(),
        transport: transport.clone(),
        served: served.clone(),
        runtime: tokio::runtime::Handle::current(),
    });
    let mode = match (expand_drives(&config.drives)?, &config.node_address) {
        (DriveList::Local(paths), None) => Mode::Lone(paths),
        (DriveList::Local(paths), Some(_)) => Mode::Member(Arc::new(crate::cluster::member::Member {
            own_authority: own_authority.clone(),
            paths,
            secret: secret.clone(),
            transport: transport.clone(),
            opener: opener.clone(),
            topology_written: tokio::sync::Notify::new(),
        })),
        (DriveList::Cluster(urls), _) => Mode::Static(urls),
    };
    if !matches!(mode, Mode::Lone(_)) && config.cluster_secret.is_none() {
        anyhow::bail!("a multi-node cluster needs BUCKETS_CLUSTER_SECRET (the same on every node)");
    }
    let member = match &mode {
        Mode::Member(member) => Some(member.clone()),
        _ => None,
    };
    let lock_table = Arc::new(LockTable::default());
    let control = Arc::new(ClusterControl::new(member.clone()));
    let rpc = (!matches!(mode, Mode::Lone(_))).then(|| {
        let verifier = crate::rpc::auth::CallVerifier::new(&secret, &own_authority);
        Arc::new(RpcServer::new(verifier, served.clone(), lock_table.clone(), control.clone(), metrics.clone()))
    });
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let acceptor = config.tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.server.clone()));
    // The admin listener comes first: a member node answers probes, bootstrap and peers'
    // RPC while it waits for a topology.
    let admin_listener = TcpListener::bind(config.admin_address).await?;
    let routing = Arc::new(AdminRouting {
        rpc: rpc.clone(),
        admin: std::sync::OnceLock::new(),
        member: member.clone(),
        metrics: metrics.clone(),
        root_user: config.root_user.as_str().into(),
        root_password: config.root_password.as_str().into(),
    });
    println!("Admin endpoint (metrics, health): {scheme}://{}", reachable(admin_listener.local_addr()?));
    serve_admin(admin_listener, acceptor.clone(), routing.clone());

    let (store, heal_requests) = match mode {
        Mode::Lone(paths) => {
            let metrics = metrics.clone();
            tokio::task::spawn_blocking(move || bootstrap::open_store(paths, metrics)).await??
        }
        Mode::Static(urls) => {
            let runtime = tokio::runtime::Handle::current();
            let (own, bootstrap_transport, bootstrap_opener, cluster_secret, metrics) =
                (own_authority.clone(), transport.clone(), opener.clone(), secret.clone(), metrics.clone());
            let (store, heal, local) = tokio::task::spawn_blocking(move || {
                let _entered = runtime.enter();
                crate::cluster::open::open_cluster_store(
                    urls,
                    &own,
                    &cluster_secret,
                    bootstrap_transport,
                    metrics,
                    bootstrap_opener.as_ref(),
                )
            })
            .await??;
            served.write().expect("served drives").extend(local);
            (store, heal)
        }
        Mode::Member(member) => {
            let topology = await_topology(&member).await?;
            let metrics = metrics.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let _entered = runtime.enter();
                member.open_store(topology, metrics)
            })
            .await??
        }
    };
    let peers = match &rpc {
        None => None,
        Some(_) => {
            store.set_opener(opener.clone());
            let endpoints: crate::rpc::PeerEndpoints = Arc::new(std::sync::RwLock::new(
                crate::cluster::peers::endpoints_of(&store.topology(), &own_authority),
            ));
            let locker = Arc::new(DistributedLocker::new(lock_table.clone(), endpoints.clone(), transport.clone()));
            store.locks().set_cluster_lock(Arc::new(locker.clone()));
            control.set_store(store.clone());
            let peers = Arc::new(crate::cluster::peers::Peers {
                endpoints,
                transport: transport.clone(),
                own_authority: own_authority.clone(),
            });
            let (forget_sender, forget_receiver) = tokio::sync::mpsc::unbounded_channel();
            store.registry.set_broadcast(forget_sender);
            store.set_peer_calls(peers.clone());
            tokio::spawn(peers.clone().run_registry_invalidations(forget_receiver));
            // The peer list follows the topology: nodes join and leave with their sets.
            let (following, followed) = (peers.clone(), store.clone());
            tokio::spawn(async move {
                loop {
                    following.follow(&followed.topology());
                    tokio::time::sleep(PEER_FOLLOW_INTERVAL).await;
                }
            });
            Some(peers)
        }
    };
    store.registry.set_capacity(config.registry_cache_entries);
    // The own drives gave a first topology; the newest one a majority of all drives hold
    // wins (a node that was down during a change starts with the cluster's, not its own).
    if let Err(e) = store.reload_topology().await {
        tracing::warn!(error = %e, "could not read the cluster's topology at start; using this node's drives' copy");
    }
    store.ensure_system_buckets().await;
    let drive_count: usize = store.sets().iter().map(|s| s.drives().len()).sum();
    let erasure = store.sets()[0].erasure();
    tracing::info!(
        cluster_id = %store.cluster_id,
        sets = store.sets().len(),
        drives = drive_count,
        data_shards = erasure.data_shards,
        parity_shards = erasure.parity_shards,
        "storage ready"
    );
    let drive_check = config.heal.drive_check_interval;
    tokio::spawn(heal::run_healer(store.clone(), heal_requests, config.heal));
    tokio::spawn(heal::run_drive_monitor(store.clone(), drive_check));
    tokio::spawn(crate::storage::migration::run_migrations(store.clone(), config.migration.clone()));
    store.set_lifecycle_day(config.lifecycle.day);
    tokio::spawn(crate::storage::lifecycle::run_lifecycle(store.clone(), config.lifecycle.clone()));

    // The root user, and temporary credentials from STS AssumeRole on the same endpoint.
    // Secret keys are sealed under the cluster secret (a lone node without one: the root
    // password).
    let sealing_secret = config.cluster_secret.clone().unwrap_or_else(|| config.root_password.clone());
    let iam = crate::iam::Iam::open(store.clone(), sealing_secret.as_bytes()).await;
    tokio::spawn(iam.clone().run_refresh());
    let identity = crate::s3::sts::Identity::new(config.root_user.clone(), config.root_password.clone())
        .with_iam(iam.clone(), store.clone());
    let mut builder = S3ServiceBuilder::new(
        BucketsS3::new(store.clone(), config.region.clone(), &config.root_user).with_iam(iam.clone(), identity.clone()),
    );
    builder.set_auth(identity.clone());
    builder.set_access(identity.clone());
    builder.set_route(crate::s3::sts::AssumeRoleRoute { identity });
    if let Some(domain) = &config.domain {
        builder.set_host(DomainHost { domain: domain.clone() });
    }
    let s3_service = builder.build();

    let s3_listener = TcpListener::bind(config.address).await?;
    if config.tls.is_none() {
        tracing::warn!("no certificates given (--certs-dir): S3, admin and peer RPC are served over plain HTTP");
    }
    println!("Buckets S3 endpoint: {scheme}://{}", reachable(s3_listener.local_addr()?));
    println!("Credentials: access key {}  secret key {}", config.root_user, config.root_password);
    println!(
        "Region: {}   Drives: {} in {} set(s), {}+{} erasure",
        config.region,
        drive_count,
        store.sets().len(),
        erasure.data_shards,
        erasure.parity_shards
    );
    let _ = routing.admin.set(Arc::new(crate::admin::Admin {
        store: store.clone(),
        root_user: config.root_user.clone(),
        root_password: config.root_password.clone(),
        topology: crate::cluster::topology::TopologyCoordinator::new(store.clone(), peers),
        node_address: if rpc.is_some() { own_authority.clone() } else { "local".into() },
        iam,
    }));

    loop {
        let (socket, peer) = match s3_listener.accept().await {
            Ok(connection) => connection,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let service = s3_service.clone();
        let metrics = store.metrics.clone();
        let acceptor = acceptor.clone();
        let store = store.clone();
        let connection = crate::s3::access::Connection { peer: peer.ip(), secure: acceptor.is_some() };
        let domain = config.domain.clone();
        tokio::spawn(async move {
            let Some(io) = accept_io(socket, acceptor.as_ref()).await else { return };
            let service = service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(connection);
                let service = service.clone();
                let metrics = metrics.clone();
                let store = store.clone();
                let domain = domain.clone();
                async move {
                    let method = request.method().as_str().to_string();
                    let started = Instant::now();
                    let continue_facts = ContinueFacts::of(&request);
                    let exchange = crate::s3::exchange::Exchange::of(&request);
                    // Counted until the response headers: the migration engine yields
                    // while users wait.
                    let _in_flight = InFlight::new(&store.user_requests);
                    // Browsers' CORS: a preflight is answered from the bucket's rules
                    // (no signature); an actual request gets the allowing rule's headers.
                    let cross_origin = crate::s3::cors::CrossOrigin::of(&request, domain.as_deref());
                    let mut response = match (exchange.early_error(&request), &cross_origin) {
                        (Some(refused), _) => Ok(refused),
                        (None, Some(preflight)) if preflight.is_preflight() => {
                            Ok(preflight.answer_preflight(&store).await)
                        }
                        (None, _) => hyper::service::Service::call(&service, request).await,
                    };
                    if let (Some(cross_origin), Ok(response)) = (&cross_origin, response.as_mut())
                        && !cross_origin.is_preflight()
                    {
                        cross_origin.decorate(&store, response.headers_mut()).await;
                    }
                    if let Ok(response) = response.as_mut() {
                        exchange.finish(response);
                    }
                    if let Ok(response) = response.as_mut()
                        && continue_facts.close_after(response.status())
                    {
                        response
                            .headers_mut()
                            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                    }
                    let status = match &response {
                        Ok(r) => r.status().as_u16().to_string(),
                        Err(_) => "error".to_string(),
                    };
                    metrics.s3_requests.with_label_values(&[method.as_str(), status.as_str()]).inc();
                    metrics
                        .s3_request_duration
                        .with_label_values(&[method.as_str()])
                        .observe(started.elapsed().as_secs_f64());
                    response
                }
            });
            let mut builder = ConnBuilder::new(TokioExecutor::new());
            // Bound header size: a request with larger headers gets 431, never a buffer
            // that grows without limit.
            builder.http1().max_buf_size(64 * 1024);
            let _ = builder.serve_connection(TokioIo::new(io), service).await;
        });
    }
}
