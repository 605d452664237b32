//! The cluster's control plane, above storage and the peer transport: membership (a
//! node formed through the admin API: `member`), the other nodes and the sets added at
//! runtime (`peers`), the cluster's calls this node answers (`control`), the store of a
//! static cluster's node (`open`), and the one coordinator of topology changes
//! (`topology`).
//!
//! Depends on `storage` and `rpc`; neither depends on it.

pub mod control;
pub mod member;
pub mod open;
pub mod peers;
pub mod topology;
