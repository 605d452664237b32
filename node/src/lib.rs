//! Buckets storage node: S3 over erasure-coded drives.
//!
//! Dependencies point inward: `s3` and `admin` → `cluster` → `storage` and `rpc` →
//! `erasure`, `format`, `placement`; nothing below `cluster` imports it. (One edge is
//! left to re-house: `storage::bootstrap` opens a cluster's remote drives through
//! `rpc::client`.)
//! See docs/ARCHITECTURE.md for the map.

pub mod admin;
pub mod clock;
pub mod cluster;
pub mod erasure;
pub mod error;
pub mod format;
pub mod metrics;
pub mod placement;
pub mod rpc;
pub mod s3;
pub mod server;
pub mod storage;
pub mod tls;

/// Logs to stderr, filtered by `BUCKETS_LOG` (default `info`), as JSON when
/// `BUCKETS_LOG_FORMAT=json` (the node and the operator log alike).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUCKETS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("BUCKETS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
