//! Process wiring: configuration, the S3 and admin listeners, background tasks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::host::{S3Host, VirtualHost};
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::rpc::client::peer_client;
use crate::rpc::lock::{DistributedLocker, LockTable};
use crate::rpc::server::RpcServer;
use crate::s3::BucketsS3;
use crate::storage::bootstrap::{self, BootstrapError, DriveUrl};
use crate::storage::heal::{self, HealConfig};
use crate::tls::TlsSetup;

pub const DEFAULT_ROOT_USER: &str = "bucketsadmin";
pub const DEFAULT_ROOT_PASSWORD: &str = "bucketsadmin";

pub struct ServerConfig {
    pub address: SocketAddr,
    pub admin_address: SocketAddr,
    pub drives: Vec<String>,
    pub root_user: String,
    pub root_password: String,
    pub region: String,
    pub domain: Option<String>,
    pub cluster_secret: Option<String>,
    pub tls: Option<TlsSetup>,
    pub registry_cache_entries: usize,
    pub heal: HealConfig,
    pub migration: crate::storage::migration::MigrationConfig,
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
        Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket)).await {
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

/// A request that asked for `100 Continue` but has no body never gets one (there is
/// nothing to continue), and botocore then keeps a stale status line on the connection
/// and misreads the next response. Closing such connections after the response keeps
/// the AWS CLI and boto3 working (they reconnect at once).
fn expects_continue_without_body<B>(request: &http::Request<B>) -> bool {
    let headers = request.headers();
    let expects = headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let empty = headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()) == Some("0");
    expects && empty
}

/// The drives a node was given: local paths (a node on its own) or drive URLs (a static
/// cluster; the same list on every node).
pub enum DriveList {
    Local(Vec<PathBuf>),
    Cluster(Vec<DriveUrl>),
}

/// (authority, `scheme://host:port`) of every node named in the drive URLs, each once.
fn peer_endpoints(arguments: &[String]) -> Result<Vec<(String, String)>, BootstrapError> {
    let DriveList::Cluster(urls) = expand_drives(arguments)? else { return Ok(Vec::new()) };
    let mut endpoints: Vec<(String, String)> =
        urls.into_iter().map(|u| (u.authority.clone(), format!("{}://{}", u.scheme, u.authority))).collect();
    endpoints.sort();
    endpoints.dedup();
    Ok(endpoints)
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

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let (store, heal_requests, cluster) = match expand_drives(&config.drives)? {
        DriveList::Local(paths) => {
            let (store, heal) = tokio::task::spawn_blocking(move || bootstrap::open_store(paths, metrics)).await??;
            (store, heal, None::<(Arc<RpcServer>, Arc<crate::rpc::Peers>)>)
        }
        DriveList::Cluster(urls) => {
            let secret = config.cluster_secret.clone().ok_or_else(|| {
                anyhow::anyhow!("a multi-node cluster needs BUCKETS_CLUSTER_SECRET (the same on every node)")
            })?;
            let own_authority = config.admin_address.to_string();
            let own = own_authority.clone();
            let client = peer_client(config.tls.as_ref().map(|t| t.client.clone()));
            let runtime = tokio::runtime::Handle::current();
            let bootstrap_client = client.clone();
            let served: crate::rpc::server::ServedDrives = Default::default();
            let opener = Arc::new(crate::rpc::ClusterSetOpener {
                own_authority: own_authority.clone(),
                secret: secret.clone().into_bytes(),
                client: client.clone(),
                served: served.clone(),
                runtime: runtime.clone(),
            });
            let bootstrap_opener = opener.clone();
            let (store, heal, local) = tokio::task::spawn_blocking(move || {
                let _entered = runtime.enter();
                bootstrap::open_cluster_store(
                    urls,
                    &own,
                    secret.as_bytes(),
                    bootstrap_client,
                    metrics,
                    bootstrap_opener.as_ref(),
                )
            })
            .await??;
            served.write().expect("served drives").extend(local);
            store.set_opener(opener);
            let secret = config.cluster_secret.clone().unwrap_or_default().into_bytes();
            let lock_table = Arc::new(LockTable::default());
            let peers: Vec<String> = peer_endpoints(&config.drives)?
                .into_iter()
                .filter(|(authority, _)| *authority != own_authority)
                .map(|(_, endpoint)| endpoint)
                .collect();
            let locker =
                Arc::new(DistributedLocker::new(lock_table.clone(), peers.clone(), secret.clone(), client.clone()));
            for set in store.sets().iter() {
                set.locks.set_cluster_lock(Arc::new(locker.clone()));
            }
            let rpc = RpcServer::new(secret.clone(), served, lock_table, store.clone());
            let peers = Arc::new(crate::rpc::Peers { endpoints: peers, secret, client });
            let (forget_sender, forget_receiver) = tokio::sync::mpsc::unbounded_channel();
            store.registry.set_broadcast(forget_sender);
            tokio::spawn(peers.clone().run_registry_invalidations(forget_receiver));
            (store, heal, Some((Arc::new(rpc), peers)))
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

    let mut builder = S3ServiceBuilder::new(BucketsS3::new(store.clone(), config.region.clone(), &config.root_user));
    builder.set_auth(SimpleAuth::from_single(config.root_user.clone(), config.root_password.clone()));
    if let Some(domain) = &config.domain {
        builder.set_host(DomainHost { domain: domain.clone() });
    }
    let s3_service = builder.build();

    let s3_listener = TcpListener::bind(config.address).await?;
    let admin_listener = TcpListener::bind(config.admin_address).await?;
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    if config.tls.is_none() {
        tracing::warn!("no certificates given (--certs-dir): S3, admin and peer RPC are served over plain HTTP");
    }
    let acceptor = config.tls.as_ref().map(|t| tokio_rustls::TlsAcceptor::from(t.server.clone()));
    println!("Buckets S3 endpoint: {scheme}://{}", reachable(s3_listener.local_addr()?));
    println!("Admin endpoint (metrics, health): {scheme}://{}", reachable(admin_listener.local_addr()?));
    println!("Credentials: access key {}  secret key {}", config.root_user, config.root_password);
    println!(
        "Region: {}   Drives: {} in {} set(s), {}+{} erasure",
        config.region,
        drive_count,
        store.sets().len(),
        erasure.data_shards,
        erasure.parity_shards
    );

    let admin_store = Arc::new(crate::admin::Admin {
        store: store.clone(),
        root_user: config.root_user.clone(),
        root_password: config.root_password.clone(),
        peers: cluster.as_ref().map(|(_, peers)| peers.clone()),
    });
    let rpc = cluster.map(|(rpc, _)| rpc);
    let admin_acceptor = acceptor.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = admin_listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let store = admin_store.clone();
            let rpc = rpc.clone();
            let acceptor = admin_acceptor.clone();
            tokio::spawn(async move {
                let Some(io) = accept_io(socket, acceptor.as_ref()).await else { return };
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    let rpc = rpc.clone();
                    async move {
                        match rpc {
                            Some(rpc) if RpcServer::handles(request.uri().path()) => {
                                Ok::<_, std::convert::Infallible>(rpc.handle(request).await)
                            }
                            _ => crate::admin::handle(store, request).await,
                        }
                    }
                });
                let _ = ConnBuilder::new(TokioExecutor::new()).serve_connection(TokioIo::new(io), service).await;
            });
        }
    });

    loop {
        let (socket, _) = match s3_listener.accept().await {
            Ok(connection) => connection,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let service = s3_service.clone();
        let metrics = store.metrics.clone();
        let acceptor = acceptor.clone();
        let store = store.clone();
        tokio::spawn(async move {
            let Some(io) = accept_io(socket, acceptor.as_ref()).await else { return };
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let service = service.clone();
                let metrics = metrics.clone();
                let store = store.clone();
                async move {
                    let method = request.method().as_str().to_string();
                    let started = Instant::now();
                    let close_after = expects_continue_without_body(&request);
                    // Counted until the response headers: the migration engine yields
                    // while users wait.
                    let _in_flight = InFlight::new(&store.user_requests);
                    let mut response = hyper::service::Service::call(&service, request).await;
                    if close_after && let Ok(response) = response.as_mut() {
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
