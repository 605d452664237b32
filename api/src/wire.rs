//! The admin API's other documents: node state, capacity, nodes, and the request bodies.

use serde::{Deserialize, Serialize};

use crate::topology::{SetId, SetState, Topology};

/// Whether a node serves a topology or waits for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeMode {
    Serving,
    /// Started with `--node-address` and no topology yet: bootstrap the cluster or add
    /// its drives as a set.
    AwaitingTopology,
}

/// `GET /admin/v1/node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeState {
    pub state: NodeMode,
    /// The HOST:PORT peers reach the node at (its drive URLs' authority).
    pub node_address: String,
    /// 0 while it waits for a topology.
    pub topology_generation: u64,
}

/// `GET /admin/v1/capacity`: what every set in service holds and can still take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    pub sets: Vec<SetCapacity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetCapacity {
    pub id: SetId,
    pub state: SetState,
    pub drives: usize,
    /// Drives that answered (the sums below are over them).
    pub drives_online: usize,
    pub data_shards: usize,
    pub parity_shards: usize,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Free space of the fullest drive: each object puts one shard on every drive, so
    /// this times `dataShards` is what the set can still take.
    pub min_free_bytes: u64,
    /// Bytes stored on the drives (shards and metadata, parity included).
    pub stored_bytes: u64,
}

/// One node of `GET /admin/v1/nodes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `HOST:PORT` of its admin listener (`local` for the drives of a lone node).
    pub name: String,
    pub online: bool,
    pub drives_total: usize,
    pub drives_online: usize,
    pub drives: Vec<DriveInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveInfo {
    pub drive: String,
    pub set: SetId,
    pub set_state: SetState,
    pub online: bool,
}

/// `POST /admin/v1/bootstrap`: the pools of a new cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootstrapRequest {
    pub pools: Vec<BootstrapPool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootstrapPool {
    pub name: String,
    /// Each set's drive URLs, in set order.
    pub sets: Vec<Vec<String>>,
}

/// `POST /admin/v1/topology`: a compare-and-swap of the whole topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyTopology {
    pub expected_generation: u64,
    pub topology: Topology,
}

/// `POST /admin/v1/topology/preview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRequest {
    pub topology: Topology,
}

/// `POST /admin/v1/sets`: a new set of drives, in a pool (the first pool when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddSet {
    pub pool: Option<String>,
    pub drives: Vec<String>,
    pub expected_generation: Option<u64>,
}

/// Optional body of `POST /admin/v1/sets/ID/ACTION`: the generation the caller saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChange {
    pub expected_generation: Option<u64>,
}

/// `POST /admin/v1/migration/throttle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Throttle {
    pub bytes_per_second: u64,
}

/// The state change of `POST /admin/v1/sets/ID/ACTION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetAction {
    /// Active → Draining: out of the ring for new writes; the migration empties it.
    Drain,
    /// Draining → Removed: retired for good, once empty.
    Remove,
}

impl SetAction {
    /// The last segment of the endpoint's path.
    pub fn as_str(self) -> &'static str {
        match self {
            SetAction::Drain => "drain",
            SetAction::Remove => "remove",
        }
    }

    pub fn parse(segment: &str) -> Option<SetAction> {
        match segment {
            "drain" => Some(SetAction::Drain),
            "remove" => Some(SetAction::Remove),
            _ => None,
        }
    }

    /// The endpoint that applies it to set `id`.
    pub fn path(self, id: SetId) -> String {
        format!("/admin/v1/sets/{id}/{}", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_modes_and_set_actions_have_their_wire_names() {
        assert_eq!(serde_json::to_value(NodeMode::Serving).unwrap(), "serving");
        assert_eq!(serde_json::to_value(NodeMode::AwaitingTopology).unwrap(), "awaitingTopology");
        for action in [SetAction::Drain, SetAction::Remove] {
            assert_eq!(SetAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(SetAction::parse("delete"), None);
        assert_eq!(SetAction::Drain.path(3), "/admin/v1/sets/3/drain");
    }
}
