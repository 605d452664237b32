//! The cluster's control plane, above storage and the peer transport: membership (a
//! node formed through the admin API: `member`), the other nodes and the sets added at
//! runtime (`peers`), and the cluster's calls this node answers (`control`).
//!
//! Depends on `storage` and `rpc`; neither depends on it.

pub mod control;
pub mod member;
pub mod peers;
