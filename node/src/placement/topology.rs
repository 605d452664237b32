//! The cluster topology: pools → erasure sets → drives, each set Active, Draining or
//! Removed, stamped with a generation. It is persisted on every drive and changes only by
//! compare-and-swap on the generation.
//!
//! The document itself is the admin API's (`buckets_api::topology`): what a user applies
//! is what the drives store (`format::topology` owns the file). Owns: the rules for a
//! valid topology and a valid next generation, the transitions an operator asks for (add
//! a set, drain, remove), and the ring a topology implies (`TopologyRules`, in scope
//! wherever a topology is checked or placed). Must never do I/O.

use uuid::Uuid;

use super::ring::{Ring, RingMember, SetId};
use crate::format::FormatError;

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
    #[error("the topology has no set {0}")]
    NoSuchSet(SetId),
    #[error("set {0} is already draining")]
    AlreadyDraining(SetId),
    #[error("set {0} is active: drain it first (buckets-admin drain-set {0})")]
    NotDrained(SetId),
    #[error("set {0} was removed")]
    SetRemoved(SetId),
    #[error("set {0} is the last active set: draining it would leave nowhere to write")]
    LastActiveSet(SetId),
    #[error("set {0} already exists")]
    SetExists(SetId),
    #[error("drive {0} is given twice")]
    DriveTwice(String),
    #[error("drive {drive} already belongs to set {set}")]
    DriveInUse { drive: String, set: SetId },
    #[error("a bootstrap needs at least one set")]
    NoSets,
    #[error("at most {MAX_BOOTSTRAP_SETS} sets per bootstrap")]
    TooManySets,
    #[error("a pool needs a name")]
    PoolName,
    #[error("{0}")]
    DriveUrl(#[from] buckets_api::drive::DriveUrlError),
}

/// Most sets a bootstrap may name (bounds the work one request can cause).
pub const MAX_BOOTSTRAP_SETS: usize = 1024;

/// A change an operator asks for, applied to the current topology by
/// `TopologyRules::with_change`.
#[derive(Debug, Clone, PartialEq)]
pub enum TopologyChange {
    /// A whole next topology (`POST /admin/v1/topology`), checked against the rules.
    Replace(Topology),
    /// New drives as set `id`, Active with weight 1, in `pool` (created when absent; the
    /// first pool when `None`).
    AddSet { id: SetId, pool: Option<String>, drives: Vec<String> },
    /// Active → Draining: out of the ring, emptied by the migration.
    Drain(SetId),
    /// Draining → Removed: retired for good (the store refuses while it holds anything).
    Remove(SetId),
}

/// The pool a set is added to when none is named and the topology has none.
pub const DEFAULT_POOL: &str = "pool-0";

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
    /// The first topology of a cluster formed through the admin API: the sets of every
    /// pool in order (drive URLs), ids from 0, each Active with weight 1, generation 1.
    fn bootstrapped(cluster_id: Uuid, pools: &[buckets_api::wire::BootstrapPool]) -> Result<Self, TopologyError>;
    /// The id a set added next gets (ids are never reused).
    fn next_set_id(&self) -> SetId;
    /// The next generation with `change` applied, checked by `check_next`.
    fn with_change(&self, change: &TopologyChange) -> Result<Self, TopologyError>;
    /// `with_change(AddSet)`.
    fn with_set_added(&self, id: SetId, pool: Option<&str>, drives: &[String]) -> Result<Self, TopologyError>;
    /// `with_change(Drain)`.
    fn with_set_draining(&self, id: SetId) -> Result<Self, TopologyError>;
    /// `with_change(Remove)`.
    fn with_set_removed(&self, id: SetId) -> Result<Self, TopologyError>;
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
        crate::format::topology::encode(self)
    }

    /// Decodes a stored topology; one that is not valid on its own is refused (a node
    /// never adopts it).
    fn decode(bytes: &[u8]) -> Result<Topology, FormatError> {
        let topology = crate::format::topology::decode(bytes)?;
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
        Topology { cluster_id, generation: 1, pools: vec![Pool { name: DEFAULT_POOL.into(), sets }] }
    }

    fn bootstrapped(cluster_id: Uuid, pools: &[buckets_api::wire::BootstrapPool]) -> Result<Topology, TopologyError> {
        let count: usize = pools.iter().map(|p| p.sets.len()).sum();
        if count == 0 {
            return Err(TopologyError::NoSets);
        }
        if count > MAX_BOOTSTRAP_SETS {
            return Err(TopologyError::TooManySets);
        }
        let mut ids = 0..;
        let mut seen = std::collections::HashSet::new();
        let mut topology = Topology { cluster_id, generation: 1, pools: Vec::new() };
        for pool in pools {
            if pool.name.is_empty() {
                return Err(TopologyError::PoolName);
            }
            let mut sets = Vec::new();
            for drives in &pool.sets {
                let id = ids.next().expect("unbounded");
                for drive in drives {
                    buckets_api::DriveUrl::parse(drive)?;
                    if !seen.insert(drive) {
                        return Err(TopologyError::DriveTwice(drive.clone()));
                    }
                }
                sets.push(SetSpec { id, state: SetState::Active, drives: drives.clone(), weight: 1.0 });
            }
            topology.pools.push(Pool { name: pool.name.clone(), sets });
        }
        topology.validate()?;
        Ok(topology)
    }

    fn next_set_id(&self) -> SetId {
        self.sets().map(|(_, s)| s.id).max().map_or(0, |max| max + 1)
    }

    fn with_change(&self, change: &TopologyChange) -> Result<Topology, TopologyError> {
        match change {
            TopologyChange::Replace(next) => {
                self.check_next(next)?;
                Ok(next.clone())
            }
            TopologyChange::AddSet { id, pool, drives } => self.with_set_added(*id, pool.as_deref(), drives),
            TopologyChange::Drain(id) => self.with_set_draining(*id),
            TopologyChange::Remove(id) => self.with_set_removed(*id),
        }
    }

    fn with_set_added(&self, id: SetId, pool: Option<&str>, drives: &[String]) -> Result<Topology, TopologyError> {
        if self.set(id).is_some() {
            return Err(TopologyError::SetExists(id));
        }
        let mut seen = std::collections::HashSet::new();
        for drive in drives {
            if !seen.insert(drive) {
                return Err(TopologyError::DriveTwice(drive.clone()));
            }
            if let Some((_, set)) = self.sets().find(|(_, s)| s.drives.contains(drive)) {
                return Err(TopologyError::DriveInUse { drive: drive.clone(), set: set.id });
            }
        }
        let mut next = self.clone();
        next.generation += 1;
        let spec = SetSpec { id, state: SetState::Active, drives: drives.to_vec(), weight: 1.0 };
        let pool = pool.or_else(|| self.pools.first().map(|p| p.name.as_str())).unwrap_or(DEFAULT_POOL);
        match next.pools.iter_mut().find(|p| p.name == pool) {
            Some(existing) => existing.sets.push(spec),
            None => next.pools.push(Pool { name: pool.to_string(), sets: vec![spec] }),
        }
        self.check_next(&next)?;
        Ok(next)
    }

    fn with_set_draining(&self, id: SetId) -> Result<Topology, TopologyError> {
        let next = self.with_set_state(id, |state| match state {
            SetState::Active => Ok(SetState::Draining),
            SetState::Draining => Err(TopologyError::AlreadyDraining(id)),
            SetState::Removed => Err(TopologyError::SetRemoved(id)),
        })?;
        if !next.sets().any(|(_, s)| s.state == SetState::Active) {
            return Err(TopologyError::LastActiveSet(id));
        }
        self.check_next(&next)?;
        Ok(next)
    }

    fn with_set_removed(&self, id: SetId) -> Result<Topology, TopologyError> {
        let next = self.with_set_state(id, |state| match state {
            SetState::Draining => Ok(SetState::Removed),
            SetState::Active => Err(TopologyError::NotDrained(id)),
            SetState::Removed => Err(TopologyError::SetRemoved(id)),
        })?;
        self.check_next(&next)?;
        Ok(next)
    }
}

/// Helpers of the transitions, private to this module.
trait SetStateChange: Sized {
    /// The next generation with set `id` in the state `change` gives for its current one.
    fn with_set_state(
        &self,
        id: SetId,
        change: impl FnOnce(SetState) -> Result<SetState, TopologyError>,
    ) -> Result<Self, TopologyError>;
}

impl SetStateChange for Topology {
    fn with_set_state(
        &self,
        id: SetId,
        change: impl FnOnce(SetState) -> Result<SetState, TopologyError>,
    ) -> Result<Topology, TopologyError> {
        let mut next = self.clone();
        next.generation += 1;
        let set = next
            .pools
            .iter_mut()
            .flat_map(|p| p.sets.iter_mut())
            .find(|s| s.id == id)
            .ok_or(TopologyError::NoSuchSet(id))?;
        set.state = change(set.state)?;
        Ok(next)
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

    /// A topology file whose frame is intact but whose body a bug or a hostile peer
    /// changed: never a panic, and whatever decodes is a valid topology that survives its
    /// own round trip (a node adopts nothing else).
    #[test]
    fn mutated_topology_bodies_decode_only_into_valid_topologies() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xb0d1e5);
        let body = serde_json::to_vec(&two_sets()).unwrap();
        let (mut refused, mut accepted) = (0, 0);
        for _ in 0..20_000 {
            let mutated = crate::format::fuzz::mutate(&mut rng, &body);
            let frame = crate::format::encode_frame(crate::format::topology::TOPOLOGY_MAGIC, 1, &mutated);
            match Topology::decode(&frame) {
                Ok(decoded) => {
                    accepted += 1;
                    assert_eq!(decoded.validate(), Ok(()), "an invalid topology decoded: {decoded:?}");
                    assert_eq!(Topology::decode(&decoded.encode()).as_ref(), Ok(&decoded));
                }
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 10_000 && accepted > 100, "both outcomes: {refused} refused, {accepted} accepted");
    }

    /// The transitions an operator asks for, each from the same two-set topology: the
    /// next generation it makes, or why it is refused.
    #[test]
    fn operator_transitions() {
        let current = two_sets();
        let mut draining = current.with_set_draining(1).unwrap();
        assert_eq!((draining.generation, draining.pools[0].sets[1].state), (2, SetState::Draining));
        let removed = draining.with_set_removed(1).unwrap();
        assert_eq!((removed.generation, removed.pools[0].sets[1].state), (3, SetState::Removed));
        let added = current.with_set_added(2, None, &drives("c", 4)).unwrap();
        assert_eq!(added.generation, 2);
        assert_eq!(
            added.pools[0].sets[2],
            SetSpec { id: 2, state: SetState::Active, drives: drives("c", 4), weight: 1.0 }
        );
        let in_new_pool = current.with_set_added(2, Some("fast"), &drives("c", 4)).unwrap();
        assert_eq!((in_new_pool.pools[1].name.as_str(), in_new_pool.pools[1].sets[0].id), ("fast", 2));
        assert_eq!(current.next_set_id(), 2);
        assert_eq!(removed.next_set_id(), 2, "a removed set's id is never reused");
        let refused: Vec<(Result<Topology, TopologyError>, TopologyError)> = vec![
            (current.with_set_draining(7), TopologyError::NoSuchSet(7)),
            (draining.with_set_draining(1), TopologyError::AlreadyDraining(1)),
            (current.with_set_removed(1), TopologyError::NotDrained(1)),
            (removed.with_set_draining(1), TopologyError::SetRemoved(1)),
            (removed.with_set_removed(1), TopologyError::SetRemoved(1)),
            (draining.with_set_draining(0), TopologyError::LastActiveSet(0)),
            (current.with_set_added(1, None, &drives("c", 4)), TopologyError::SetExists(1)),
            (
                current.with_set_added(2, None, &["/c/d0".into(), "/c/d0".into(), "/c/d1".into(), "/c/d2".into()]),
                TopologyError::DriveTwice("/c/d0".into()),
            ),
            (
                current.with_set_added(2, None, &[drives("c", 3), drives("b", 1)].concat()),
                TopologyError::DriveInUse { drive: "/b/d0".into(), set: 1 },
            ),
            (current.with_set_added(2, None, &drives("c", 3)), TopologyError::SetSize { set: 2, drives: 3 }),
        ];
        for (result, expected) in refused {
            assert_eq!(result, Err(expected));
        }
        // Draining back to Active is a replacement the rules allow.
        draining.generation += 1;
        draining.pools[0].sets[1].state = SetState::Active;
        let back = removed.clone();
        assert!(current.with_set_draining(1).unwrap().with_change(&TopologyChange::Replace(draining)).is_ok());
        assert_eq!(
            current.with_change(&TopologyChange::Replace(back)),
            Err(TopologyError::Generation { expected: 2, found: 3 })
        );
    }

    #[test]
    fn draining_a_set_takes_it_out_of_the_ring() {
        let mut next = two_sets();
        next.generation = 2;
        next.pools[0].sets[1].state = SetState::Draining;
        assert_eq!(next.ring().sets(), vec![0]);
    }
}
