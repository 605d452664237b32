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
