//! Buckets storage node: S3 over erasure-coded drives.
//!
//! Dependencies point inward: `s3` and `admin` → `storage` → `erasure`, `format`.
//! See docs/ARCHITECTURE.md for the map.

pub mod admin;
pub mod erasure;
pub mod error;
pub mod format;
pub mod member;
pub mod metrics;
pub mod placement;
pub mod rpc;
pub mod s3;
pub mod server;
pub mod storage;
pub mod tls;
