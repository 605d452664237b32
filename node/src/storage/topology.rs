//! The store's side of a topology change: the mechanics the cluster's topology
//! coordinator (`cluster::topology`) runs in order, and the catching up of a node that
//! learns of a newer generation. Which topology comes next is placement's rule; who
//! decides and tells the other nodes is the coordinator's; this module opens the drives
//! of added sets, refuses to retire a set that still holds anything, writes a topology
//! to a majority of drives and installs it (topology, ring and sets as one `Placement`).
//!
//! Must never install a topology that a majority of drives does not hold.

use std::sync::Arc;

use super::set::ErasureSet;
use super::{Store, blocking, bootstrap, drive};
use crate::error::StoreError;
use crate::format::JsonFile;
use crate::format::topology::TOPOLOGY_FILE;
use crate::placement::ring::SetId;
use crate::placement::topology::{SetState, Topology, TopologyError, TopologyRules};
use crate::storage::locks::WriteGuard;

#[derive(Debug, thiserror::Error)]
pub enum TopologyChangeError {
    #[error("the topology is at generation {actual}, not the expected {expected}")]
    Conflict { expected: u64, actual: u64 },
    #[error("invalid topology: {0}")]
    Invalid(TopologyError),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    NotEmpty(String),
    #[error("{0}")]
    Drives(String),
    #[error("{0}")]
    Store(StoreError),
}

/// The lock every topology change holds, cluster-wide: a name no key lock can have
/// (key locks are `bucket/key`, and a bucket name never starts with NUL).
const TOPOLOGY_LOCK: &str = "\0topology";

/// Objects counted in a set that should be empty before the refusal says "at least".
const COUNT_UP_TO: usize = 1000;

impl Store {
    /// Taken by the one change of the topology in progress anywhere in the cluster.
    pub async fn lock_topology(&self) -> Result<WriteGuard, TopologyChangeError> {
        self.locks.write(TOPOLOGY_LOCK).await.map_err(TopologyChangeError::Store)
    }

    /// How this store opens the drives of sets added at runtime (set once, at start).
    pub fn set_opener(&self, opener: Arc<dyn bootstrap::SetOpener>) {
        let _ = self.opener.set(opener);
    }

    fn opener(&self) -> Arc<dyn bootstrap::SetOpener> {
        self.opener.get().cloned().unwrap_or_else(|| Arc::new(bootstrap::LocalSetOpener))
    }

    /// Opens the drives of set `id` on this node (formatting and serving its own): what a
    /// peer asks before it adds a set whose drives are partly here.
    pub fn open_set_drives(&self, id: SetId, drives: &[String]) -> Result<(), TopologyChangeError> {
        self.opener()
            .open(self.cluster_id, id, drives)
            .map(|_| ())
            .map_err(|e| TopologyChangeError::Drives(e.to_string()))
    }

    /// The sets this store runs under `next`: the current ones, minus those `next` removes,
    /// plus those it adds (prepared by `prepare_added_set`, or opened now).
    fn sets_for(&self, next: &Topology) -> Result<Vec<Arc<ErasureSet>>, TopologyChangeError> {
        let current = self.sets();
        let mut out = Vec::new();
        for (_, spec) in next.sets().filter(|(_, s)| s.state != SetState::Removed) {
            let pending = self.pending_sets.lock().expect("pending sets").get(&spec.id).cloned();
            match current.iter().find(|s| s.id == spec.id).cloned().or(pending) {
                Some(set) => out.push(set),
                None => {
                    let drives = self
                        .opener()
                        .open(self.cluster_id, spec.id, &spec.drives)
                        .map_err(|e| TopologyChangeError::Drives(e.to_string()))?;
                    out.push(Arc::new(current[0].sibling(spec.id, drives)));
                }
            }
        }
        if out.is_empty() {
            return Err(TopologyChangeError::Unsupported("a topology needs at least one set in service".into()));
        }
        Ok(out)
    }

    /// Opens the drives of set `id` (in a cluster, their nodes have opened their own
    /// first) and creates every bucket on them, so the set can take objects the moment
    /// its topology is installed. It waits as pending until `forget_added_set`.
    pub async fn prepare_added_set(&self, id: SetId, drives: &[String]) -> Result<(), TopologyChangeError> {
        let (cluster_id, paths, opener) = (self.cluster_id, drives.to_vec(), self.opener());
        let opened = blocking(move || opener.open(cluster_id, id, &paths))
            .await
            .map_err(|e| TopologyChangeError::Drives(e.to_string()))?;
        let set = Arc::new(self.sets()[0].sibling(id, opened));
        for bucket in self.list_all_buckets().await.map_err(TopologyChangeError::Store)? {
            let meta = bucket.meta.encode();
            let (set_drives, name) = (set.drives().to_vec(), bucket.name.clone());
            let made = blocking(move || {
                set_drives.iter().filter(|d| d.is_online() && d.make_bucket(&name, &meta).is_ok()).count()
            })
            .await;
            if made < set.erasure().write_quorum() {
                return Err(TopologyChangeError::Store(StoreError::InsufficientQuorum {
                    operation: "create buckets on the new set",
                    needed: set.erasure().write_quorum(),
                    available: made,
                }));
            }
        }
        self.pending_sets.lock().expect("pending sets").insert(id, set);
        Ok(())
    }

    /// Drops a set `prepare_added_set` opened (installed by now, or refused).
    pub fn forget_added_set(&self, id: SetId) {
        self.pending_sets.lock().expect("pending sets").remove(&id);
    }

    /// Refuses to retire a set that still holds objects or uploads, saying what is left.
    async fn check_empty(&self, set: &Arc<ErasureSet>) -> Result<(), TopologyChangeError> {
        let mut objects = 0;
        let mut uploads = 0;
        let mut buckets = Vec::new();
        for bucket in self.list_buckets().await.map_err(TopologyChangeError::Store)? {
            let found = set
                .list(&bucket.name, "", None, "", COUNT_UP_TO, super::set::Listing::AllKeys)
                .await
                .map_err(TopologyChangeError::Store)?;
            let drives = set.drives().to_vec();
            let name = bucket.name.clone();
            let in_progress = blocking(move || {
                let mut ids = std::collections::BTreeSet::new();
                for drive in drives.iter().filter(|d| d.is_online()) {
                    ids.extend(drive.list_uploads(&name).unwrap_or_default());
                }
                ids.len()
            })
            .await;
            if !found.is_empty() || in_progress > 0 {
                buckets.push(bucket.name.clone());
            }
            objects += found.len();
            uploads += in_progress;
        }
        if objects == 0 && uploads == 0 {
            return Ok(());
        }
        let objects = if objects >= COUNT_UP_TO { format!("at least {objects}") } else { objects.to_string() };
        Err(TopologyChangeError::NotEmpty(format!(
            "set {} still holds {objects} object(s) and {uploads} multipart upload(s) (buckets: {}); drain it and let the migration finish (and the uploads complete or be aborted) before removing it",
            set.id,
            buckets.join(", ")
        )))
    }

    /// Installs a newer topology already on the drives (pushed by the node that applied it,
    /// or found by the periodic check), and wakes the migration. Returns whether anything
    /// changed.
    pub fn adopt_topology(&self, next: Topology) -> Result<bool, TopologyChangeError> {
        let current = self.topology();
        if next.generation <= current.generation {
            return Ok(false);
        }
        next.validate().map_err(TopologyChangeError::Invalid)?;
        let sets = self.sets_for(&next)?;
        let ring = Arc::new(next.ring());
        {
            let mut placement = self.placement.write().expect("placement lock");
            placement.ring = ring;
            placement.topology = Arc::new(next);
            placement.sets = Arc::new(sets);
        }
        self.migrate_now.notify_one();
        Ok(true)
    }

    /// Reads the topology from every reachable drive and adopts the newest generation that
    /// a majority of all drives hold (an applied topology always reaches one), then brings
    /// this node's own drives up to it. Returns whether the topology changed.
    pub async fn reload_topology(&self) -> Result<bool, TopologyChangeError> {
        let drives: Vec<Arc<dyn drive::Drive>> = self.all_drives();
        let cluster_id = self.cluster_id;
        let majority = drives.len() / 2 + 1;
        let found: Vec<(bool, Option<Topology>)> = blocking(move || {
            drives
                .iter()
                .map(|d| {
                    let topology = d
                        .is_online()
                        .then(|| d.read_system_file(TOPOLOGY_FILE).ok().flatten())
                        .flatten()
                        .and_then(|bytes| Topology::decode(&bytes).ok())
                        .filter(|t| t.cluster_id == cluster_id);
                    (d.is_local(), topology)
                })
                .collect()
        })
        .await;
        let mut generations: Vec<u64> = found.iter().filter_map(|(_, t)| t.as_ref().map(|t| t.generation)).collect();
        generations.sort_unstable();
        let newest_with_majority = generations
            .iter()
            .rev()
            .find(|g| generations.iter().filter(|other| *other >= *g).count() >= majority)
            .copied();
        let Some(generation) = newest_with_majority else { return Ok(false) };
        let Some(topology) = found.iter().filter_map(|(_, t)| t.clone()).find(|t| t.generation == generation) else {
            return Ok(false);
        };
        let changed = self.adopt_topology(topology.clone())?;
        let stale_local = found.iter().any(|(local, t)| *local && t.as_ref().is_none_or(|t| t.generation < generation));
        if stale_local {
            let local: Vec<Arc<dyn drive::Drive>> = self.all_drives().into_iter().filter(|d| d.is_local()).collect();
            let encoded = topology.encode();
            blocking(move || {
                for drive in local {
                    let current =
                        drive.read_system_file(TOPOLOGY_FILE).ok().flatten().and_then(|b| Topology::decode(&b).ok());
                    if current.is_none_or(|t| t.generation < generation) {
                        let _ = drive.write_system_file(TOPOLOGY_FILE, &encoded);
                    }
                }
            })
            .await;
        }
        Ok(changed)
    }

    /// Installs `next`, a checked successor of the current topology, for the whole cluster:
    /// refuses it while a set it removes holds anything, writes it to a majority of all
    /// drives (those of the sets it adds included), then serves it. The caller holds
    /// `lock_topology` and reloaded the topology under it.
    pub async fn install_topology(&self, next: Topology) -> Result<Arc<Topology>, TopologyChangeError> {
        let next_sets = self.sets_for(&next)?;
        let retiring: Vec<Arc<ErasureSet>> = next
            .sets()
            .filter(|(_, s)| s.state == SetState::Removed)
            .filter_map(|(_, spec)| self.set_by_id(spec.id))
            .collect();
        // A write begun under an older ring (here or on a node that missed a change) could
        // still land in a set the current ring left: every node must be done with those
        // before the set is found empty.
        let generation = self.topology().generation;
        if !retiring.is_empty() && !self.fence_cluster(generation).await {
            return Err(TopologyChangeError::NotEmpty(format!(
                "a node is behind generation {generation} or still writes by an older ring; try again"
            )));
        }
        for set in &retiring {
            self.check_empty(set).await?;
        }
        // Every drive of the current sets and of the sets `next` adds: a node whose only
        // drives are in a new set learns its cluster's topology from them.
        let mut drives: Vec<Arc<dyn drive::Drive>> = self.all_drives();
        for set in next_sets.iter().filter(|set| self.set_by_id(set.id).is_none()) {
            drives.extend(set.drives().iter().cloned());
        }
        let needed = drives.len() / 2 + 1;
        let encoded = next.encode();
        let written = blocking(move || {
            drives.iter().filter(|d| d.is_online() && d.write_system_file(TOPOLOGY_FILE, &encoded).is_ok()).count()
        })
        .await;
        if written < needed {
            return Err(TopologyChangeError::Store(StoreError::InsufficientQuorum {
                operation: "write topology",
                needed,
                available: written,
            }));
        }
        self.adopt_topology(next)?;
        self.load_base().await;
        Ok(self.topology())
    }
}
