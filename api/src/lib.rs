//! The admin API of a Buckets node (`/admin/v1/` on its admin listener) as the node, the
//! `buckets-admin` CLI and the operator share it: the JSON documents on the wire
//! (`topology`, `migration`, `wire`, `iam`, `bucket`), the error codes (`error`), the request signature
//! (`auth`), drive URLs (`drive`), the client (`client`) and the logging setup every
//! binary uses (`logging`).
//!
//! Owns: what crosses the wire between processes. Must never depend on the node's
//! storage engine: the operator reaches nodes only through this crate.

pub mod auth;
pub mod bucket;
pub mod client;
pub mod drive;
pub mod error;
pub mod iam;
pub mod logging;
pub mod migration;
pub mod topology;
pub mod wire;

pub use client::{AdminClient, AdminError};
pub use drive::DriveUrl;
pub use error::AdminErrorCode;
pub use migration::{MigrationState, MigrationStatus};
pub use topology::{Pool, SetId, SetSpec, SetState, Topology};
pub use wire::SetAction;
