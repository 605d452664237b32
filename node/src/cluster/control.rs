//! The cluster's calls, carried by peer RPC (`rpc::server::ControlCalls`) and handled
//! here: a member node joins a bootstrap, a node reloads a topology it is told of, drops
//! registry cache entries, and opens its drives of a set being added.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures::future::BoxFuture;
use http::StatusCode;

use super::member::{JOIN_PATH, Member};
use super::peers::{
    BUCKET_FORGET_PATH, FENCE_PATH, MAX_FORGET_BATCH, OPEN_SET_PATH, OpenSet, REGISTRY_FORGET_PATH, TOPOLOGY_PUSH_PATH,
};
use crate::rpc::server::{ControlAnswer, ControlCalls};
use crate::storage::Store;

/// Body of a join call (a topology).
const MAX_JOIN_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Body of the other cluster calls (open-set, topology push).
const MAX_CONTROL_BODY_BYTES: usize = 64 * 1024;

fn answer(status: StatusCode, body: Vec<u8>) -> ControlAnswer {
    ControlAnswer { status, body }
}

fn bad_request(message: &str) -> ControlAnswer {
    answer(StatusCode::BAD_REQUEST, message.as_bytes().to_vec())
}

/// This node's side of the cluster's calls.
pub struct ClusterControl {
    /// Set once the node serves a topology (a member node waits for one first).
    store: OnceLock<Arc<Store>>,
    /// A member node: joins bootstraps and opens sets before it has a store.
    member: Option<Arc<Member>>,
}

impl ClusterControl {
    pub fn new(member: Option<Arc<Member>>) -> Self {
        ClusterControl { store: OnceLock::new(), member }
    }

    /// The node serves `store` from now on.
    pub fn set_store(&self, store: Arc<Store>) {
        let _ = self.store.set(store);
    }

    /// Joins a bootstrap (a member node without a topology) or confirms it already did.
    async fn join(&self, body: &[u8]) -> ControlAnswer {
        let topology: crate::placement::topology::Topology = match serde_json::from_slice(body) {
            Ok(topology) => topology,
            Err(e) => return bad_request(&format!("malformed join call: {e}")),
        };
        if let Some(store) = self.store.get() {
            return if store.cluster_id == topology.cluster_id {
                answer(StatusCode::NO_CONTENT, Vec::new())
            } else {
                answer(StatusCode::CONFLICT, format!("this node serves cluster {}", store.cluster_id).into_bytes())
            };
        }
        let Some(member) = self.member.clone() else {
            return answer(StatusCode::CONFLICT, b"this node was started with its cluster's drives\n".to_vec());
        };
        let joiner = member.clone();
        match tokio::task::spawn_blocking(move || joiner.join(&topology)).await.expect("join panicked") {
            Ok(()) => {
                member.topology_written.notify_one();
                answer(StatusCode::NO_CONTENT, Vec::new())
            }
            Err(e) => answer(StatusCode::CONFLICT, e.to_string().into_bytes()),
        }
    }

    async fn run(&self, path: &str, body: Bytes) -> ControlAnswer {
        match path {
            TOPOLOGY_PUSH_PATH => {
                let Some(store) = self.store.get() else {
                    if let Some(member) = &self.member {
                        member.topology_written.notify_one();
                    }
                    return answer(StatusCode::NO_CONTENT, Vec::new());
                };
                match store.reload_topology().await {
                    Ok(_) => answer(StatusCode::NO_CONTENT, Vec::new()),
                    Err(e) => answer(StatusCode::CONFLICT, e.to_string().into_bytes()),
                }
            }
            JOIN_PATH => self.join(&body).await,
            FENCE_PATH => {
                let Some(generation) = std::str::from_utf8(&body).ok().and_then(|text| text.parse::<u64>().ok()) else {
                    return bad_request("malformed fence call: expected a generation");
                };
                match self.store.get() {
                    Some(store) if store.fence_local(generation, crate::storage::settle::FENCE_WAIT).await => {
                        answer(StatusCode::NO_CONTENT, Vec::new())
                    }
                    _ => {
                        answer(StatusCode::CONFLICT, b"this node is behind or still writes by an older ring\n".to_vec())
                    }
                }
            }
            REGISTRY_FORGET_PATH => match postcard::from_bytes::<Vec<u128>>(&body) {
                Ok(keys) => {
                    if let Some(store) = self.store.get() {
                        for key in keys {
                            store.registry.forget(key);
                        }
                    }
                    answer(StatusCode::NO_CONTENT, Vec::new())
                }
                Err(e) => bad_request(&format!("malformed registry invalidation: {e}")),
            },
            BUCKET_FORGET_PATH => match std::str::from_utf8(&body) {
                Ok(bucket) => {
                    if let Some(store) = self.store.get() {
                        store.forget_settings(bucket);
                    }
                    answer(StatusCode::NO_CONTENT, Vec::new())
                }
                Err(_) => bad_request("malformed bucket name"),
            },
            OPEN_SET_PATH => {
                let call: OpenSet = match serde_json::from_slice(&body) {
                    Ok(call) => call,
                    Err(e) => return bad_request(&format!("malformed open-set call: {e}")),
                };
                let store = self.store.get().cloned();
                let member = self.member.clone();
                let opened = tokio::task::spawn_blocking(move || match (store, member, call.cluster_id) {
                    (Some(store), _, _) => store.open_set_drives(call.set, &call.drives).map_err(|e| e.to_string()),
                    // A waiting member node: its drives join a running cluster.
                    (None, Some(member), Some(cluster_id)) => crate::storage::bootstrap::SetOpener::open(
                        member.opener.as_ref(),
                        cluster_id,
                        call.set,
                        &call.drives,
                    )
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                    _ => Err("this node has no topology and was given no cluster id".to_string()),
                })
                .await
                .expect("open-set panicked");
                match opened {
                    Ok(()) => answer(StatusCode::NO_CONTENT, Vec::new()),
                    Err(e) => answer(StatusCode::CONFLICT, e.into_bytes()),
                }
            }
            _ => answer(StatusCode::NOT_FOUND, b"unknown RPC\n".to_vec()),
        }
    }
}

impl ControlCalls for ClusterControl {
    fn body_limit(&self, path: &str) -> Option<usize> {
        match path {
            JOIN_PATH => Some(MAX_JOIN_BODY_BYTES),
            REGISTRY_FORGET_PATH => Some(MAX_FORGET_BATCH * 16 + 1024),
            BUCKET_FORGET_PATH | FENCE_PATH => Some(1024),
            TOPOLOGY_PUSH_PATH | OPEN_SET_PATH => Some(MAX_CONTROL_BODY_BYTES),
            _ => None,
        }
    }

    fn call<'a>(&'a self, path: &'a str, body: Bytes) -> BoxFuture<'a, Option<ControlAnswer>> {
        Box::pin(async move {
            self.body_limit(path)?;
            Some(self.run(path, body).await)
        })
    }

    fn drive(&self, drive_id: uuid::Uuid) -> Option<Arc<dyn crate::storage::drive::Drive>> {
        self.store.get()?.all_drives().into_iter().find(|drive| drive.format().drive_id == drive_id)
    }
}
