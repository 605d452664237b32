//! The topology document: pools → erasure sets → drives, each set Active, Draining or
//! Removed, stamped with a generation. `GET /admin/v1/topology` answers with it and
//! `POST /admin/v1/topology` takes it; it is also the body of `topology.bkt` on every
//! drive, so a change here changes the on-disk format (pinned by the node's golden files).
//! The rules for a valid topology and its ring live in the node (`placement`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An erasure set's id in the topology (never reused).
pub type SetId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum SetState {
    /// In the ring: receives new objects.
    Active,
    /// Out of the ring: keeps serving what it holds while migration empties it.
    Draining,
    /// Empty and gone; its id is never reused.
    Removed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetSpec {
    pub id: SetId,
    pub state: SetState,
    /// Drive paths (a node on its own) or drive URLs (a cluster), in set order.
    pub drives: Vec<String>,
    /// Relative capacity on the ring.
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    pub name: String,
    pub sets: Vec<SetSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    pub cluster_id: Uuid,
    pub generation: u64,
    pub pools: Vec<Pool>,
}

impl Topology {
    pub fn sets(&self) -> impl Iterator<Item = (&Pool, &SetSpec)> {
        self.pools.iter().flat_map(|pool| pool.sets.iter().map(move |set| (pool, set)))
    }

    pub fn set(&self, id: SetId) -> Option<&SetSpec> {
        self.sets().map(|(_, set)| set).find(|set| set.id == id)
    }
}
