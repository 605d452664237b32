//! Per-object reader/writer locks. Readers (GET) hold a read lock for the whole response
//! so an overwrite on this node cannot delete the shard files under them; writers hold the
//! write lock only around the metadata commit, never while a body uploads. In a cluster
//! the write lock is also taken on a majority of nodes (`ClusterLock`), so two nodes never
//! commit the same key at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// A lock held on a majority of the cluster's nodes; released when dropped.
pub type ClusterLockGuard = Box<dyn Send + Sync>;

/// Cluster-wide mutual exclusion for writers (implemented over peer RPC).
#[async_trait::async_trait]
pub trait ClusterLock: Send + Sync {
    /// Waits (bounded) for the lock on a majority of nodes.
    async fn lock(&self, resource: &str) -> Result<ClusterLockGuard, crate::error::StoreError>;
}

/// Entries the lock table keeps before it drops those nobody holds: it stays as small as
/// the set of busy keys.
const SWEEP_AT_ENTRIES: usize = 1024;

#[derive(Default)]
pub struct NamespaceLocks {
    locks: Mutex<HashMap<String, Arc<RwLock<()>>>>,
    cluster: std::sync::OnceLock<Arc<dyn ClusterLock>>,
}

pub struct ReadGuard {
    _guard: OwnedRwLockReadGuard<()>,
}

pub struct WriteGuard {
    _guard: OwnedRwLockWriteGuard<()>,
    _cluster: Option<ClusterLockGuard>,
}

impl NamespaceLocks {
    fn entry(&self, name: &str) -> Arc<RwLock<()>> {
        let mut locks = self.locks.lock().expect("lock table poisoned");
        if locks.len() > SWEEP_AT_ENTRIES {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(name.to_string()).or_default().clone()
    }

    pub async fn read(&self, name: &str) -> ReadGuard {
        ReadGuard { _guard: self.entry(name).read_owned().await }
    }

    /// Makes writers also lock across the cluster (set once, at start).
    pub fn set_cluster_lock(&self, cluster: Arc<dyn ClusterLock>) {
        let _ = self.cluster.set(cluster);
    }

    pub async fn write(&self, name: &str) -> Result<WriteGuard, crate::error::StoreError> {
        let guard = self.entry(name).write_owned().await;
        let cluster = match self.cluster.get() {
            Some(cluster) => Some(cluster.lock(name).await?),
            None => None,
        };
        Ok(WriteGuard { _guard: guard, _cluster: cluster })
    }
}
