//! The other nodes of a cluster, for calls that are not about one drive: topology
//! pushes, opening the drives of a set being added, registry invalidations; and the
//! opener of sets added at runtime (this node's drives served by peer RPC, the others
//! reached through it).

use std::time::Duration;

use crate::rpc::PeerEndpoints;
use crate::rpc::client::{self, PeerTransport};
use crate::rpc::server;

/// Answers of calls that are not about a drive: a status and a short message.
const MAX_CONTROL_ANSWER_BYTES: usize = 64 * 1024;
/// A topology push is a nudge (the peer reads the topology from its drives); a peer that
/// does not answer in time catches up on its own next poll.
const TOPOLOGY_PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Opening a set on a peer reads (or writes) the format of every one of its drives there.
const OPEN_SET_TIMEOUT: Duration = Duration::from_secs(30);
/// Registry invalidations are hints (lookups fall back); a slow peer is not waited for.
const REGISTRY_FORGET_TIMEOUT: Duration = Duration::from_secs(5);

/// The other nodes of a cluster, for calls that are not about one drive.
pub struct Peers {
    pub endpoints: PeerEndpoints,
    pub transport: PeerTransport,
    /// This node's authority (left out of the endpoints).
    pub own_authority: String,
}

/// `scheme://host:port` of every node a topology names, except `own_authority`.
pub fn endpoints_of(topology: &crate::placement::topology::Topology, own_authority: &str) -> Vec<String> {
    let mut endpoints: Vec<String> = topology
        .sets()
        .filter(|(_, s)| s.state != crate::placement::topology::SetState::Removed)
        .flat_map(|(_, s)| s.drives.iter())
        .filter_map(|d| crate::storage::bootstrap::parse_drive_url(d).ok())
        .filter(|u| u.authority != own_authority)
        .map(|u| format!("{}://{}", u.scheme, u.authority))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

pub const TOPOLOGY_PUSH_PATH: &str = "/rpc/v1/topology";
/// A peer answers 204 once it serves the generation in the body (decimal) or newer and
/// has no write in flight that began under an older one (`Store::fence_local`), 409 if
/// that does not happen within `settle::FENCE_WAIT`.
pub const FENCE_PATH: &str = "/rpc/v1/writes/fence";
/// The peer's wait and the trip.
const FENCE_TIMEOUT: Duration = Duration::from_secs(crate::storage::settle::FENCE_WAIT.as_secs() + 10);
/// Peers open (format and serve) their own drives of a set about to be added.
pub const OPEN_SET_PATH: &str = "/rpc/v1/sets/open";

/// Body of `OPEN_SET_PATH`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct OpenSet {
    pub set: crate::placement::ring::SetId,
    pub drives: Vec<String>,
    /// The cluster's id (a node waiting for a topology formats its drives for it).
    #[serde(default)]
    pub cluster_id: Option<uuid::Uuid>,
}

/// Opens the drives of sets added to a cluster at runtime: this node's own (by the
/// authority of their URL) formatted when blank and served by peer RPC, the others as
/// remote drives.
pub struct ClusterSetOpener {
    pub own_authority: String,
    pub transport: PeerTransport,
    pub served: server::ServedDrives,
    pub runtime: tokio::runtime::Handle,
}

impl crate::storage::bootstrap::SetOpener for ClusterSetOpener {
    fn open(
        &self,
        cluster_id: uuid::Uuid,
        set: crate::placement::ring::SetId,
        drives: &[String],
    ) -> Result<Vec<std::sync::Arc<dyn crate::storage::drive::Drive>>, crate::storage::bootstrap::BootstrapError> {
        use crate::storage::bootstrap::{
            added_set_formats, check_added_set_size, open_added_local_drive, parse_drive_url,
        };
        check_added_set_size(drives)?;
        let urls = drives.iter().map(|d| parse_drive_url(d)).collect::<Result<Vec<_>, _>>()?;
        let _entered = self.runtime.enter();
        let mut out: Vec<std::sync::Arc<dyn crate::storage::drive::Drive>> = Vec::with_capacity(urls.len());
        for (url, format) in urls.into_iter().zip(added_set_formats(cluster_id, set, drives.len())) {
            if url.authority == self.own_authority {
                let existing = self.served.read().expect("served drives").get(&url.path).cloned();
                let drive = match existing {
                    Some(drive) if crate::storage::drive::Drive::format(drive.as_ref()) == &format => drive,
                    Some(_) => {
                        return Err(crate::storage::bootstrap::BootstrapError::Argument(
                            url.path,
                            "the drive already serves another set".into(),
                        ));
                    }
                    None => {
                        let drive =
                            std::sync::Arc::new(open_added_local_drive(std::path::Path::new(&url.path), format)?);
                        self.served.write().expect("served drives").insert(url.path.clone(), drive.clone());
                        drive
                    }
                };
                out.push(drive);
            } else {
                out.push(std::sync::Arc::new(client::RemoteDrive::new(
                    format!("{}://{}", url.scheme, url.authority),
                    url.path,
                    format,
                    self.transport.clone(),
                )));
            }
        }
        Ok(out)
    }
}

/// Peers drop the registry cache entries of the keys posted here (postcard `Vec<u128>`).
pub const REGISTRY_FORGET_PATH: &str = "/rpc/v1/registry/forget";
/// Peers drop their cached settings of the bucket named in the body (its settings
/// changed, or it was deleted).
pub const BUCKET_FORGET_PATH: &str = "/rpc/v1/buckets/forget";
/// Most keys sent in one invalidation call.
pub const MAX_FORGET_BATCH: usize = 4096;

impl Peers {
    fn current(&self) -> Vec<String> {
        self.endpoints.read().expect("peer endpoints").clone()
    }

    /// Follows `topology`: its nodes are the peers from now on.
    pub fn follow(&self, topology: &crate::placement::topology::Topology) {
        let next = endpoints_of(topology, &self.own_authority);
        let mut endpoints = self.endpoints.write().expect("peer endpoints");
        if *endpoints != next {
            tracing::info!(peers = next.len(), "peer list follows topology generation {}", topology.generation);
            *endpoints = next;
        }
    }

    /// Asks every node of `topology` (other than this one) to load the newest topology
    /// from its drives; a peer that misses it finds it at its next periodic check.
    pub async fn push_topology(&self, topology: &crate::placement::topology::Topology) {
        self.follow(topology);
        let endpoints = self.current();
        let calls = endpoints.iter().map(|endpoint| async move {
            let answer = self
                .transport
                .call(
                    endpoint,
                    TOPOLOGY_PUSH_PATH,
                    bytes::Bytes::new(),
                    TOPOLOGY_PUSH_TIMEOUT,
                    MAX_CONTROL_ANSWER_BYTES,
                )
                .await;
            if !matches!(answer, Ok(ref answer) if answer.status.is_success()) {
                tracing::warn!(peer = %endpoint, "topology push not acknowledged; the peer will find it on its drives");
            }
        });
        futures::future::join_all(calls).await;
    }
}

impl Peers {
    /// Asks every peer to open its own drives of set `set` (format and serve them) before
    /// the set is added; fails with the first peer that cannot.
    pub async fn open_set(
        &self,
        cluster_id: uuid::Uuid,
        set: crate::placement::ring::SetId,
        drives: &[String],
    ) -> Result<(), String> {
        let body = bytes::Bytes::from(
            serde_json::to_vec(&OpenSet { set, drives: drives.to_vec(), cluster_id: Some(cluster_id) })
                .expect("serialises"),
        );
        // The nodes holding the set's drives: peers, or nodes joining with this set.
        let mut endpoints: Vec<String> = drives
            .iter()
            .filter_map(|d| crate::storage::bootstrap::parse_drive_url(d).ok())
            .filter(|u| u.authority != self.own_authority)
            .map(|u| format!("{}://{}", u.scheme, u.authority))
            .collect();
        endpoints.sort();
        endpoints.dedup();
        for endpoint in &endpoints {
            let answer = self
                .transport
                .call(endpoint, OPEN_SET_PATH, body.clone(), OPEN_SET_TIMEOUT, MAX_CONTROL_ANSWER_BYTES)
                .await
                .map_err(|e| format!("{endpoint}: {e}"))?;
            if !answer.status.is_success() {
                return Err(format!("{endpoint}: {}", String::from_utf8_lossy(&answer.body)));
            }
        }
        Ok(())
    }

    /// Tells every peer to forget cached locations of `keys`. Best effort: a peer that
    /// misses it serves from a stale entry at most once per key (a wrong hint is dropped
    /// on the first read that disproves it).
    pub async fn forget_registry_keys(&self, keys: &[u128]) {
        let body = bytes::Bytes::from(postcard::to_stdvec(keys).expect("keys serialise"));
        for endpoint in self.post_to_all(REGISTRY_FORGET_PATH, body).await {
            tracing::debug!(peer = %endpoint, "registry invalidation not acknowledged");
        }
    }

    /// Posts `body` to `path` on every peer at once; returns the peers that did not
    /// acknowledge it in `REGISTRY_FORGET_TIMEOUT`.
    async fn post_to_all(&self, path: &str, body: bytes::Bytes) -> Vec<String> {
        let endpoints = self.current();
        let calls = endpoints.iter().map(|endpoint| {
            let body = body.clone();
            async move {
                let answer =
                    self.transport.call(endpoint, path, body, REGISTRY_FORGET_TIMEOUT, MAX_CONTROL_ANSWER_BYTES).await;
                (!matches!(answer, Ok(ref answer) if answer.status.is_success())).then(|| endpoint.clone())
            }
        });
        futures::future::join_all(calls).await.into_iter().flatten().collect()
    }

    /// Sends the keys `forget_everywhere` queues to every peer, in batches, until the
    /// queue closes.
    pub async fn run_registry_invalidations(
        self: std::sync::Arc<Self>,
        mut keys: tokio::sync::mpsc::UnboundedReceiver<u128>,
    ) {
        while let Some(first) = keys.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_FORGET_BATCH
                && let Ok(key) = keys.try_recv()
            {
                batch.push(key);
            }
            self.forget_registry_keys(&batch).await;
        }
    }
}

#[async_trait::async_trait]
impl crate::storage::PeerCalls for Peers {
    async fn forget_bucket(&self, bucket: &str) {
        let body = bytes::Bytes::from(bucket.as_bytes().to_vec());
        for endpoint in self.post_to_all(BUCKET_FORGET_PATH, body).await {
            tracing::warn!(peer = %endpoint, bucket, "bucket settings change not acknowledged; the peer sees it within a second");
        }
    }

    async fn fence(&self, generation: u64) -> bool {
        let endpoints = self.current();
        let body = bytes::Bytes::from(generation.to_string());
        let calls = endpoints.iter().map(|endpoint| {
            let body = body.clone();
            async move {
                let answer =
                    self.transport.call(endpoint, FENCE_PATH, body, FENCE_TIMEOUT, MAX_CONTROL_ANSWER_BYTES).await;
                let held = matches!(answer, Ok(ref answer) if answer.status.is_success());
                if !held {
                    tracing::info!(peer = %endpoint, generation, "the peer does not hold the fence yet");
                }
                held
            }
        });
        futures::future::join_all(calls).await.into_iter().all(|held| held)
    }
}
