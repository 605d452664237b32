//! Buckets storage node: S3 over erasure-coded drives.
//!
//! Dependencies point inward: `server` → `s3`, `admin` → `cluster` → `rpc` → `storage`
//! → `placement` → `format`, `erasure`; the table in `layering` is checked by a test.
//! See docs/ARCHITECTURE.md for the map.

pub mod admin;
pub mod clock;
pub mod cluster;
pub mod erasure;
pub mod error;
pub mod format;
pub mod iam;
#[cfg(test)]
mod layering;
pub mod lifecycle;
pub mod metrics;
pub mod placement;
pub mod policy;
pub mod rpc;
pub mod s3;
pub mod server;
pub mod storage;
pub mod tls;
