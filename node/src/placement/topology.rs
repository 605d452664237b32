//! The cluster topology: pools → erasure sets → drives, each set Active, Draining or
//! Removed, stamped with a generation. It is persisted on every drive and changes only by
//! compare-and-swap on the generation.
//!
//! The document itself is the admin API's (`buckets_api::topology`): what a user applies
//! is what the drives store. Owns: its on-disk encoding, the rules for a valid topology
//! and a valid next generation, and the ring a topology implies (`TopologyRules`, in
//! scope wherever a topology is checked or placed). Must never do I/O.

use uuid::Uuid;

use super::ring::{Ring, RingMember, SetId};
use crate::format::{FormatError, decode_frame, encode_frame};

pub const TOPOLOGY_MAGIC: &[u8; 8] = b"BKTTOPOL";
pub const TOPOLOGY_VERSION: u16 = 1;
/// File name of the topology in every drive's system directory.
pub const TOPOLOGY_FILE: &str = "topology.bkt";

pub use buckets_api::topology::{Pool, SetSpec, SetState, Topology};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TopologyError {
    #[error("expected generation {expected}, but the topology is at generation {actual}")]
    GenerationConflict { expected: u64, actual: u64 },
    #[error("a new topology must have generation {expected}, not {found}")]
    Generation { expected: u64, found: u64 },
    #[error("the topology belongs to cluster {found}, not {expected}")]
    Cluster { expected: Uuid, found: Uuid },
    #[error("set {0} appears more than once")]
    DuplicateSet(SetId),
    #[error("pool {0:?} appears more than once")]
    DuplicatePool(String),
    #[error("set {0} disappeared; sets are drained and removed, never dropped")]
    SetDropped(SetId),
    #[error("set {0} changed its drives")]
    DrivesChanged(SetId),
    #[error("set {0} moved to another pool")]
    PoolChanged(SetId),
    #[error("set {set} cannot go from {from:?} to {to:?}")]
    StateChange { set: SetId, from: SetState, to: SetState },
    #[error("set {set} has {drives} drives; a set has 4 to 16")]
    SetSize { set: SetId, drives: usize },
    #[error("set {0} has a weight that is not positive")]
    Weight(SetId),
    #[error("no set is active: objects would have nowhere to go")]
    NoActiveSet,
}

/// What the node knows about a topology beyond its document: the ring, the rules, the
/// on-disk encoding.
pub trait TopologyRules: Sized {
    /// The ring of the Active sets.
    fn ring(&self) -> Ring;
    /// Checks a topology on its own.
    fn validate(&self) -> Result<(), TopologyError>;
    /// Checks that `next` may replace `self`.
    fn check_next(&self, next: &Self) -> Result<(), TopologyError>;
    fn encode(&self) -> Vec<u8>;
    /// Decodes a stored topology; one that is not valid on its own is refused.
    fn decode(bytes: &[u8]) -> Result<Self, FormatError>;
    /// The first topology of a cluster: one pool, every set Active with weight 1.
    fn initial(cluster_id: Uuid, drive_names: &[String], set_drives: usize) -> Self;
}

impl TopologyRules for Topology {
    /// The ring of the Active sets.
    fn ring(&self) -> Ring {
        let (k0, k1) = self.cluster_id.as_u64_pair();
        let members: Vec<RingMember> = self
            .sets()
            .filter(|(_, set)| set.state == SetState::Active)
            .map(|(_, set)| RingMember { set: set.id, weight: set.weight })
            .collect();
        Ring::new((k0, k1), &members)
    }

    /// Checks a topology on its own.
    fn validate(&self) -> Result<(), TopologyError> {
        let mut ids = std::collections::HashSet::new();
        let mut pools = std::collections::HashSet::new();
        for pool in &self.pools {
            if !pools.insert(pool.name.as_str()) {
                return Err(TopologyError::DuplicatePool(pool.name.clone()));
            }
        }
        for (_, set) in self.sets() {
            if !ids.insert(set.id) {
                return Err(TopologyError::DuplicateSet(set.id));
            }
            if !(4..=16).contains(&set.drives.len()) {
                return Err(TopologyError::SetSize { set: set.id, drives: set.drives.len() });
            }
            if !(set.weight > 0.0 && set.weight.is_finite()) {
                return Err(TopologyError::Weight(set.id));
            }
        }
        if !self.sets().any(|(_, set)| set.state == SetState::Active) {
            return Err(TopologyError::NoActiveSet);
        }
        Ok(())
    }

    /// Checks that `next` may replace `self`: the next generation of the same cluster, every
    /// set kept with its drives and pool, states moving only forward
    /// (Active → Draining → Removed, or Draining back to Active).
    fn check_next(&self, next: &Topology) -> Result<(), TopologyError> {
        if next.cluster_id != self.cluster_id {
            return Err(TopologyError::Cluster { expected: self.cluster_id, found: next.cluster_id });
        }
        if next.generation != self.generation + 1 {
            return Err(TopologyError::Generation { expected: self.generation + 1, found: next.generation });
        }
        next.validate()?;
        for (pool, set) in self.sets() {
            let Some((next_pool, next_set)) = next.sets().find(|(_, s)| s.id == set.id) else {
                return Err(TopologyError::SetDropped(set.id));
            };
            if next_set.drives != set.drives {
                return Err(TopologyError::DrivesChanged(set.id));
            }
            if next_pool.name != pool.name {
                return Err(TopologyError::PoolChanged(set.id));
            }
            use SetState::*;
            let allowed = matches!(
                (set.state, next_set.state),
                (Active, Active)
                    | (Active, Draining)
                    | (Draining, Draining)
                    | (Draining, Active)
                    | (Draining, Removed)
                    | (Removed, Removed)
            );
            if !allowed {
                return Err(TopologyError::StateChange { set: set.id, from: set.state, to: next_set.state });
            }
        }
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec_pretty(self).expect("topology serialises");
        encode_frame(TOPOLOGY_MAGIC, TOPOLOGY_VERSION, &body)
    }

    /// Decodes a stored topology; one that is not valid on its own is refused (a node
    /// never adopts it).
    fn decode(bytes: &[u8]) -> Result<Topology, FormatError> {
        let (_, body) = decode_frame(TOPOLOGY_MAGIC, TOPOLOGY_VERSION, bytes)?;
        let topology: Topology = serde_json::from_slice(body).map_err(|e| FormatError::Body(e.to_string()))?;
        topology.validate().map_err(|e| FormatError::Body(format!("invalid topology: {e}")))?;
        Ok(topology)
    }

    /// The first topology of a cluster: one pool, every set Active with weight 1.
    fn initial(cluster_id: Uuid, drive_names: &[String], set_drives: usize) -> Topology {
        assert!(set_drives > 0 && drive_names.len().is_multiple_of(set_drives), "drives divide into sets");
        let sets = drive_names
            .chunks(set_drives)
            .enumerate()
            .map(|(index, drives)| SetSpec {
                id: index as SetId,
                state: SetState::Active,
                drives: drives.to_vec(),
                weight: 1.0,
            })
            .collect();
        Topology { cluster_id, generation: 1, pools: vec![Pool { name: "pool-0".into(), sets }] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drives(prefix: &str, count: usize) -> Vec<String> {
        (0..count).map(|i| format!("/{prefix}/d{i}")).collect()
    }

    fn two_sets() -> Topology {
        let mut names = drives("a", 4);
        names.extend(drives("b", 4));
        Topology::initial(Uuid::from_u128(9), &names, 4)
    }

    #[test]
    fn initial_topology_is_valid_and_round_trips() {
        let topology = two_sets();
        topology.validate().unwrap();
        assert_eq!(topology.generation, 1);
        assert_eq!(topology.ring().sets(), vec![0, 1]);
        assert_eq!(Topology::decode(&topology.encode()).unwrap(), topology);
    }

    #[test]
    fn transitions() {
        let current = two_sets();
        let next = |edit: &dyn Fn(&mut Topology)| {
            let mut next = current.clone();
            next.generation += 1;
            edit(&mut next);
            current.check_next(&next)
        };
        assert_eq!(next(&|_| {}), Ok(()));
        assert_eq!(next(&|t| t.pools[0].sets[1].state = SetState::Draining), Ok(()));
        let added = SetSpec { id: 2, state: SetState::Active, drives: drives("c", 6), weight: 1.5 };
        assert_eq!(next(&|t| t.pools[0].sets.push(added.clone())), Ok(()));
        assert_eq!(next(&|t| t.generation += 1), Err(TopologyError::Generation { expected: 2, found: 3 }));
        assert_eq!(
            next(&|t| {
                t.pools[0].sets.pop();
            }),
            Err(TopologyError::SetDropped(1))
        );
        assert_eq!(next(&|t| t.pools[0].sets[0].drives[0] = "/x".into()), Err(TopologyError::DrivesChanged(0)));
        assert_eq!(
            next(&|t| t.pools[0].sets[0].state = SetState::Removed),
            Err(TopologyError::StateChange { set: 0, from: SetState::Active, to: SetState::Removed })
        );
        assert_eq!(
            next(&|t| for set in &mut t.pools[0].sets {
                set.state = SetState::Draining
            }),
            Err(TopologyError::NoActiveSet)
        );
        assert_eq!(next(&|t| t.pools[0].sets[1].id = 0), Err(TopologyError::DuplicateSet(0)));
        assert_eq!(next(&|t| t.pools[0].sets[0].drives.truncate(3)), Err(TopologyError::SetSize { set: 0, drives: 3 }));
    }

    #[test]
    fn draining_a_set_takes_it_out_of_the_ring() {
        let mut next = two_sets();
        next.generation = 2;
        next.pools[0].sets[1].state = SetState::Draining;
        assert_eq!(next.ring().sets(), vec![0]);
    }
}
