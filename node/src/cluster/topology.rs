//! The topology coordinator: the one place a node changes the cluster's topology. Every
//! change (the admin API's apply, add a set, drain, remove) runs the same steps here:
//! take the cluster-wide topology lock → reload the newest generation a majority of drives
//! holds → check the caller's expected generation → the pure transition
//! (`TopologyRules::with_change`, which checks the rules) → for an added set, have its
//! nodes open their drives and prepare it here → write to a majority of drives and install
//! (`Store::install_topology`, which also refuses to retire a set that is not empty),
//! after revoking a settled placement of the current one (`Store::revoke_settled`) →
//! push to every other node. Installing wakes the migration.
//!
//! Must never install a generation that was not computed from the newest one under the
//! lock. A cluster's first topology is not a change: `member::bootstrap` writes it.

use std::sync::Arc;

use crate::cluster::peers::Peers;
use crate::placement::ring::SetId;
use crate::placement::topology::{TopologyChange, TopologyRules};
use crate::storage::{Store, TopologyChangeError};
use buckets_api::Topology;

/// What an operator asks for; set ids of added sets are chosen under the lock.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Replace(Topology),
    AddSet { pool: Option<String>, drives: Vec<String> },
    Drain(SetId),
    Remove(SetId),
}

pub struct TopologyCoordinator {
    store: Arc<Store>,
    /// The other nodes (none for a lone node).
    peers: Option<Arc<Peers>>,
}

impl TopologyCoordinator {
    pub fn new(store: Arc<Store>, peers: Option<Arc<Peers>>) -> Self {
        TopologyCoordinator { store, peers }
    }

    /// Applies `change` to the current generation, which must be `expected` when given.
    /// Returns the installed topology, which every reachable node was told of.
    pub async fn change(&self, expected: Option<u64>, change: Change) -> Result<Arc<Topology>, TopologyChangeError> {
        let lock = self.store.lock_topology().await?;
        self.store.reload_topology().await?;
        let current = self.store.topology();
        if let Some(expected) = expected
            && expected != current.generation
        {
            return Err(TopologyChangeError::Conflict { expected, actual: current.generation });
        }
        let (change, added) = match change {
            Change::Replace(next) => (TopologyChange::Replace(next), None),
            Change::Drain(id) => (TopologyChange::Drain(id), None),
            Change::Remove(id) => (TopologyChange::Remove(id), None),
            Change::AddSet { pool, drives } => {
                let id = current.next_set_id();
                (TopologyChange::AddSet { id, pool, drives }, Some(id))
            }
        };
        let next = current.with_change(&change).map_err(|e| match (e, added) {
            // What is wrong with a new set is its drives (given twice, in use, too many).
            (e, Some(_)) => TopologyChangeError::Drives(e.to_string()),
            (e, None) => TopologyChangeError::Invalid(e),
        })?;
        // No node may write by the current ring alone once the next one is installed.
        let settled = self.store.revoke_settled(current.generation).await.map_err(TopologyChangeError::Store)?;
        if settled {
            self.store.record_base(next.generation, &current).await.map_err(TopologyChangeError::Store)?;
        }
        let installed = match (&change, added) {
            (TopologyChange::AddSet { id, drives, .. }, Some(_)) => {
                let result = self.add_set(*id, drives, next).await;
                self.store.forget_added_set(*id);
                result?
            }
            _ => self.store.install_topology(next).await?,
        };
        drop(lock);
        if let Some(peers) = &self.peers {
            peers.push_topology(&installed).await;
        }
        Ok(installed)
    }

    /// Opens set `id` (on the nodes that hold its drives, then here) and installs `next`.
    async fn add_set(
        &self,
        id: SetId,
        drives: &[String],
        next: Topology,
    ) -> Result<Arc<Topology>, TopologyChangeError> {
        if let Some(peers) = &self.peers {
            peers.open_set(self.store.cluster_id, id, drives).await.map_err(TopologyChangeError::Drives)?;
        }
        self.store.prepare_added_set(id, drives).await?;
        self.store.install_topology(next).await
    }
}
