//! `buckets-node`: the storage node binary.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use buckets_node::server::{self, DEFAULT_ROOT_PASSWORD, DEFAULT_ROOT_USER, ServerConfig};
use buckets_node::storage::heal::HealConfig;

#[derive(Parser)]
#[command(name = "buckets-node", version, about = "Buckets storage node: S3 over erasure-coded drives")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve S3 from the given drives (4 to 16 per erasure set; `/data/d{1...4}` expands).
    Server {
        /// S3 listen address.
        #[arg(long, default_value = "0.0.0.0:9000")]
        address: SocketAddr,
        /// Admin listen address: /metrics, /health/live, /health/ready.
        #[arg(long, default_value = "0.0.0.0:9001")]
        admin_address: SocketAddr,
        /// Seconds between background heal scans of every object.
        #[arg(long, env = "BUCKETS_HEAL_INTERVAL_SECS", default_value_t = 3600)]
        heal_interval_secs: u64,
        /// Every N-th heal scan also verifies every shard's checksum (0 = never).
        #[arg(long, env = "BUCKETS_DEEP_HEAL_EVERY", default_value_t = 8)]
        deep_heal_every: u32,
        /// Seconds between checks that each drive still has its format file.
        #[arg(long, env = "BUCKETS_DRIVE_CHECK_SECS", default_value_t = 5)]
        drive_check_secs: u64,
        /// Directory with public.crt, private.key and optionally ca.crt: serve HTTPS and
        /// verify peers against ca.crt (or public.crt).
        #[arg(long, env = "BUCKETS_CERTS_DIR")]
        certs_dir: Option<std::path::PathBuf>,
        /// Entries of this node's cache of object locations (0 turns it off).
        #[arg(long, env = "BUCKETS_REGISTRY_CACHE_ENTRIES", default_value_t = buckets_node::storage::registry::DEFAULT_CACHE_ENTRIES)]
        registry_cache_entries: usize,
        /// Seconds in a lifecycle "day": rules of N days act after N of these (shorten it to
        /// test lifecycle rules; a real deployment keeps a day).
        #[arg(long, env = "BUCKETS_LIFECYCLE_DAY_SECS", default_value_t = 86_400)]
        lifecycle_day_secs: u64,
        /// Seconds between two lifecycle passes over every bucket.
        #[arg(long, env = "BUCKETS_LIFECYCLE_INTERVAL_SECS", default_value_t = 3_600)]
        lifecycle_interval_secs: u64,
        /// Objects moved at once by each migrating set (default: twice the cores, 2 to 16).
        #[arg(long, env = "BUCKETS_MIGRATION_WORKERS")]
        migration_workers: Option<usize>,
        /// `HOST:PORT` other nodes reach this node's admin listener at. With local drive
        /// paths it makes this node a member of a cluster formed through the admin API
        /// (bootstrap, or its drives added as a set); with drive URLs it names this node's
        /// drives (default: --admin-address).
        #[arg(long, env = "BUCKETS_NODE_ADDRESS")]
        node_address: Option<String>,
        /// Drive directories, or drive URLs of a static cluster.
        #[arg(required = true)]
        drives: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    buckets_api::logging::init_logging();
    match cli.command {
        Command::Server {
            address,
            admin_address,
            heal_interval_secs,
            deep_heal_every,
            drive_check_secs,
            certs_dir,
            registry_cache_entries,
            lifecycle_day_secs,
            lifecycle_interval_secs,
            migration_workers,
            node_address,
            drives,
        } => {
            let tls = match certs_dir {
                Some(dir) => Some(buckets_node::tls::TlsSetup::from_dir(&dir).context("loading certificates")?),
                None => None,
            };
            let root_user = std::env::var("BUCKETS_ROOT_USER").ok();
            let root_password = std::env::var("BUCKETS_ROOT_PASSWORD").ok();
            let (root_user, root_password) = match (root_user, root_password) {
                (Some(user), Some(password)) => {
                    anyhow::ensure!(user.len() >= 3, "BUCKETS_ROOT_USER must be at least 3 characters");
                    anyhow::ensure!(password.len() >= 8, "BUCKETS_ROOT_PASSWORD must be at least 8 characters");
                    (user, password)
                }
                (None, None) => {
                    tracing::warn!(
                        "BUCKETS_ROOT_USER and BUCKETS_ROOT_PASSWORD are not set: using the default credentials {DEFAULT_ROOT_USER}/{DEFAULT_ROOT_PASSWORD}. \
                         Anyone who can reach this port can read and write everything. Set both variables for any real use."
                    );
                    (DEFAULT_ROOT_USER.to_string(), DEFAULT_ROOT_PASSWORD.to_string())
                }
                _ => anyhow::bail!("set both BUCKETS_ROOT_USER and BUCKETS_ROOT_PASSWORD, or neither"),
            };
            let config = ServerConfig {
                address,
                admin_address,
                drives,
                root_user,
                root_password,
                region: std::env::var("BUCKETS_REGION").unwrap_or_else(|_| "us-east-1".to_string()),
                domain: std::env::var("BUCKETS_DOMAIN").ok().filter(|d| !d.is_empty()),
                cluster_secret: std::env::var("BUCKETS_CLUSTER_SECRET").ok().filter(|s| !s.is_empty()),
                node_address: node_address.filter(|a| !a.is_empty()),
                tls,
                registry_cache_entries,
                migration: {
                    let mut migration = buckets_node::storage::migration::MigrationConfig::default();
                    if let Some(workers) = migration_workers {
                        anyhow::ensure!(workers > 0, "--migration-workers must be at least 1");
                        migration.workers = workers;
                    }
                    migration
                },
                lifecycle: buckets_node::storage::lifecycle::LifecycleConfig {
                    day: Duration::from_secs(lifecycle_day_secs.max(1)),
                    interval: Duration::from_secs(lifecycle_interval_secs.max(1)),
                },
                heal: HealConfig {
                    scan_interval: Duration::from_secs(heal_interval_secs.max(1)),
                    deep_scan_every: deep_heal_every,
                    drive_check_interval: Duration::from_secs(drive_check_secs.max(1)),
                },
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(server::run(config))
        }
    }
}
