//! A node of a cluster formed through the admin API (`--node-address` with local drive
//! paths; the operator's pods run this way). The node owns its drive directories and is
//! reachable by peers at its node address; its drives join a cluster when a bootstrap
//! names them or a running cluster adds them as a set. Until then it waits: peers may
//! format and serve its drives (open-set), and the operator may bootstrap through it.
//! Once a topology is on its drives, it opens the cluster from that topology at every
//! start. Must never format a drive that holds data or belongs to another cluster.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use crate::cluster::peers::ClusterSetOpener;
use crate::format::topology::TOPOLOGY_FILE;
use crate::metrics::Metrics;
use crate::placement::topology::TopologyRules;
use crate::placement::topology::{SetSpec, SetState, Topology};
use crate::rpc::client::PeerTransport;
use crate::storage::bootstrap::{BootstrapError, parse_drive_url};
use crate::storage::drive::{Drive, LocalDrive};
use crate::storage::set::ErasureSet;
use crate::storage::{HEAL_QUEUE_CAPACITY, HealRequest, Store};

/// Peers are told to join a bootstrap here (body: the topology as JSON).
pub const JOIN_PATH: &str = "/rpc/v1/join";
/// How long a peer may take to format its drives and join.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// A join answers with a status and a short message.
const MAX_JOIN_ANSWER_BYTES: usize = 64 * 1024;

pub use buckets_api::wire::{BootstrapPool, BootstrapRequest};

pub struct Member {
    /// `HOST:PORT` peers reach this node at (the authority of its drive URLs).
    pub own_authority: String,
    pub paths: Vec<PathBuf>,
    /// The cluster secret (a bootstrap derives the cluster id from it).
    pub secret: Vec<u8>,
    pub transport: PeerTransport,
    pub opener: Arc<ClusterSetOpener>,
    /// Woken when a peer says a topology was written on this node's drives (the waiting
    /// loop also looks every second).
    pub topology_written: Notify,
}

/// A deterministic cluster id for a bootstrap: the same request gives the same id, so a
/// retried bootstrap finds the nodes that already joined in agreement.
fn cluster_id_for(secret: &[u8], request: &BootstrapRequest) -> Uuid {
    let mut listing = Vec::new();
    for pool in &request.pools {
        listing.extend_from_slice(format!("pool {}\n", pool.name).as_bytes());
        for set in &pool.sets {
            listing.extend_from_slice(format!("set {}\n", set.join(" ")).as_bytes());
        }
    }
    crate::storage::bootstrap::derived_uuid(&[b"buckets-bootstrap", secret, &listing])
}

/// The first topology of a cluster bootstrapped with `request` (generation 1, every set
/// active, ids in request order).
pub fn bootstrap_topology(secret: &[u8], request: &BootstrapRequest) -> Result<Topology, BootstrapError> {
    Topology::bootstrapped(cluster_id_for(secret, request), &request.pools)
        .map_err(|e| BootstrapError::Topology(e.to_string()))
}

impl Member {
    fn own_drives<'a>(&'a self, topology: &'a Topology) -> impl Iterator<Item = (&'a SetSpec, String)> + 'a {
        topology.sets().flat_map(move |(_, set)| {
            set.drives.iter().filter_map(move |drive| {
                let url = parse_drive_url(drive).ok()?;
                (url.authority == self.own_authority).then_some((set, url.path))
            })
        })
    }

    /// The newest topology on this node's formatted drives.
    pub fn local_topology(&self) -> Result<Option<Topology>, BootstrapError> {
        let mut drives = Vec::new();
        for path in &self.paths {
            let format = LocalDrive::read_format(path)
                .map_err(|source| BootstrapError::Io { path: path.display().to_string(), source })?;
            drives.extend(format.map(|format| LocalDrive::new(path.clone(), format)));
        }
        crate::storage::bootstrap::newest_topology(drives.iter().map(|d| d as &dyn Drive), None)
    }

    /// Formats and serves this node's drives of every set of `topology` and writes the
    /// topology on them. Joining the same cluster again is a no-op; another cluster's
    /// topology is refused.
    pub fn join(&self, topology: &Topology) -> Result<(), BootstrapError> {
        topology.validate().map_err(|e| BootstrapError::Topology(e.to_string()))?;
        if let Some(current) = self.local_topology()? {
            if current.cluster_id != topology.cluster_id {
                return Err(BootstrapError::Topology(format!(
                    "this node's drives belong to cluster {}",
                    current.cluster_id
                )));
            }
            if current.generation >= topology.generation {
                return Ok(());
            }
        }
        let known: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        for (_, path) in self.own_drives(topology) {
            if !known.contains(&path) {
                return Err(BootstrapError::Argument(
                    path,
                    "the topology names a drive this node does not have".into(),
                ));
            }
        }
        let bytes = topology.encode();
        for (_, set) in topology.sets().filter(|(_, s)| s.state != SetState::Removed) {
            if !self.own_drives_of(set) {
                continue;
            }
            let drives = self.open_set(topology, set)?;
            for drive in drives.iter().filter(|d| d.is_local()) {
                drive
                    .write_system_file(TOPOLOGY_FILE, &bytes)
                    .map_err(|source| BootstrapError::Io { path: drive.name(), source })?;
            }
        }
        Ok(())
    }

    /// The drives of one set of `topology`: this node's local, the others through peer RPC.
    fn open_set(&self, topology: &Topology, set: &SetSpec) -> Result<Vec<Arc<dyn Drive>>, BootstrapError> {
        crate::storage::bootstrap::SetOpener::open(self.opener.as_ref(), topology.cluster_id, set.id, &set.drives)
    }

    fn own_drives_of(&self, set: &SetSpec) -> bool {
        set.drives.iter().any(|d| parse_drive_url(d).is_ok_and(|u| u.authority == self.own_authority))
    }

    /// The store of `topology`: every set still in it, this node's drives local, the
    /// others through peer RPC.
    pub fn open_store(
        &self,
        topology: Topology,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Store>, mpsc::Receiver<HealRequest>), BootstrapError> {
        let (heal_sender, heal_receiver) = mpsc::channel(HEAL_QUEUE_CAPACITY);
        let locks = Arc::new(crate::storage::locks::NamespaceLocks::default());
        let mut sets = Vec::new();
        let mut drives_total = 0;
        for (_, spec) in topology.sets().filter(|(_, s)| s.state != SetState::Removed) {
            let drives = self.open_set(&topology, spec)?;
            drives_total += drives.len();
            sets.push(Arc::new(ErasureSet::new(spec.id, drives, locks.clone(), heal_sender.clone(), metrics.clone())));
        }
        if sets.is_empty() {
            return Err(BootstrapError::Topology("the topology has no set left".into()));
        }
        metrics.drives_total.set(drives_total as i64);
        Ok((Arc::new(Store::new(topology, sets, metrics)), heal_receiver))
    }

    /// Bootstraps a cluster from this waiting node: every named node joins (the others by
    /// RPC, then this one); returns the topology. Retrying the same request is safe.
    pub async fn bootstrap(self: &Arc<Self>, request: &BootstrapRequest) -> Result<Topology, String> {
        let topology = bootstrap_topology(&self.secret, request).map_err(|e| e.to_string())?;
        let mut authorities: Vec<(String, String)> = topology
            .sets()
            .flat_map(|(_, s)| s.drives.iter())
            .filter_map(|d| parse_drive_url(d).ok())
            .filter(|u| u.authority != self.own_authority)
            .map(|u| (u.authority.clone(), format!("{}://{}", u.scheme, u.authority)))
            .collect();
        authorities.sort();
        authorities.dedup();
        let body = bytes::Bytes::from(serde_json::to_vec(&topology).expect("topology serializes"));
        let calls = authorities.iter().map(|(_, endpoint)| {
            let body = body.clone();
            async move {
                let answer = self
                    .transport
                    .call(endpoint, JOIN_PATH, body, JOIN_TIMEOUT, MAX_JOIN_ANSWER_BYTES)
                    .await
                    .map_err(|e| format!("{endpoint}: {e}"))?;
                if answer.status.is_success() {
                    return Ok(());
                }
                Err(format!("{endpoint}: {}", String::from_utf8_lossy(&answer.body).trim()))
            }
        });
        let failures: Vec<String> =
            futures::future::join_all(calls).await.into_iter().filter_map(Result::err).collect();
        if !failures.is_empty() {
            return Err(format!("nodes could not join: {}", failures.join("; ")));
        }
        if self.own_drives(&topology).next().is_some() {
            let this = self.clone();
            let joined = topology.clone();
            tokio::task::spawn_blocking(move || this.join(&joined))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            self.topology_written.notify_one();
        }
        Ok(topology)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(sets: &[usize]) -> BootstrapRequest {
        let mut pools = vec![BootstrapPool { name: "fast".into(), sets: Vec::new() }];
        let mut node = 0;
        for &size in sets {
            pools[0].sets.push(
                (0..size)
                    .map(|_| {
                        node += 1;
                        format!("http://node{node}:9001/data/d0")
                    })
                    .collect(),
            );
        }
        BootstrapRequest { pools }
    }

    #[test]
    fn bootstrap_topology_keeps_the_sets_given_and_is_deterministic() {
        let topology = bootstrap_topology(b"secret", &request(&[4, 4])).unwrap();
        assert_eq!(topology.generation, 1);
        let sets: Vec<_> = topology.sets().map(|(_, s)| (s.id, s.drives.len())).collect();
        assert_eq!(sets, vec![(0, 4), (1, 4)], "two sets of 4, not one of 8");
        assert_eq!(topology.cluster_id, bootstrap_topology(b"secret", &request(&[4, 4])).unwrap().cluster_id);
        assert_ne!(topology.cluster_id, bootstrap_topology(b"other", &request(&[4, 4])).unwrap().cluster_id);
    }

    #[test]
    fn bad_bootstraps_are_refused() {
        assert!(bootstrap_topology(b"s", &request(&[])).unwrap_err().to_string().contains("at least one set"));
        assert!(bootstrap_topology(b"s", &request(&[3])).is_err(), "sets of 3 drives");
        let mut duplicate = request(&[4]);
        let first = duplicate.pools[0].sets[0].clone();
        duplicate.pools[0].sets.push(first);
        assert!(bootstrap_topology(b"s", &duplicate).is_err(), "a drive in two sets");
        let mut relative = request(&[4]);
        relative.pools[0].sets[0][0] = "/data/d0".into();
        assert!(bootstrap_topology(b"s", &relative).is_err(), "a path is not a drive URL");
    }
}
