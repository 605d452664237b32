//! Node-to-node RPC on the admin listener: a node reads and writes the drives of its
//! peers. Every call and every answer is authenticated with the cluster secret, over the
//! whole call (body included) and a nonce, so a captured call can be neither replayed
//! nor altered (`auth`).
//!
//! Owns: call authentication (`auth`), the wire protocol (`protocol`), the server side
//! that serves this node's local drives (`server`), and how a node calls its peers
//! (`client`: `PeerTransport`, and `RemoteDrive`, the `Drive` of a peer; `batch`: the
//! small calls to one peer gathered into one request). Must never serve
//! a drive that is not this node's own, nor a path that did not pass `storage::path`.

pub mod auth;
pub mod batch;
pub mod client;
pub mod lock;
pub mod protocol;
pub mod server;

/// `scheme://host:port` of every other node; follows the topology (nodes join and
/// leave with their sets).
pub type PeerEndpoints = std::sync::Arc<std::sync::RwLock<Vec<String>>>;
