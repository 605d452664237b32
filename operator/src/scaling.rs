//! The scaling state machine: from what the operator observed (pools' specs and pods,
//! the nodes' topology and migration) and the step in flight (kept in the cluster's
//! status), the next step and the admin calls that make it. Pure and synchronous, so
//! every transition — and a restart between any two — is a table-driven unit test.
//!
//! Steps, one at a time per cluster:
//! - Bootstrap: every pod of every pool ready → one topology (generation 1) with all sets.
//! - ScaleUp(pool, target): grow the StatefulSet → the new sets' pods ready → add the
//!   sets (all in one reconcile, so the data moves once) → migration done → Ready.
//! - ScaleDown(pool, target) and DeletePool(pool): drain the highest sets → each drained
//!   set empty → remove it → shrink the StatefulSet → (DeletePool) release the pool.
//!
//! A step never changes its target once started; a spec change meanwhile waits for the
//! next step (queued, not lost). The StatefulSet never shrinks below the pods that hold a
//! set still in the topology. Unsafe requests are refused, never half done.

use std::collections::{BTreeMap, BTreeSet};

use crate::build::Geometry;
use crate::crd::{Operation, OperationKind, OperationStage};
use buckets_api::MigrationState;

/// A pool as observed.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolView {
    pub name: String,
    pub geometry: Geometry,
    /// `spec.replicas` (ignored while the pool is being deleted).
    pub replicas: i32,
    /// The pool has a deletion timestamp.
    pub deleting: bool,
    /// Ordinals of the pool's pods that are ready to serve their drives.
    pub ready_ordinals: BTreeSet<i32>,
    /// Pods the StatefulSet has now (its status), None when it does not exist.
    pub statefulset_pods: Option<i32>,
}

impl PoolView {
    /// Sets the spec asks for.
    pub fn wanted_sets(&self) -> i32 {
        if self.deleting { 0 } else { self.geometry.sets_for_replicas(self.replicas) }
    }

    fn pods_ready_for(&self, index: i32) -> bool {
        self.geometry.set_drives(index).iter().all(|(ordinal, _)| self.ready_ordinals.contains(ordinal))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetState {
    Active,
    Draining,
    Removed,
}

/// A set of the topology that belongs to a pool of this cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct SetView {
    pub id: i64,
    pub pool: String,
    pub index: i32,
    pub state: SetState,
    /// Drives in the set.
    pub drives: i32,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct TopologyView {
    pub generation: i64,
    pub sets: Vec<SetView>,
}

impl TopologyView {
    fn live_sets<'a>(&'a self, pool: &'a str) -> impl Iterator<Item = &'a SetView> + 'a {
        self.sets.iter().filter(move |s| s.pool == pool && s.state != SetState::Removed)
    }

    fn active_indices(&self, pool: &str) -> BTreeSet<i32> {
        self.live_sets(pool).filter(|s| s.state == SetState::Active).map(|s| s.index).collect()
    }

    /// Pods the pool needs for the sets still in the topology.
    fn highest_live_index(&self, pool: &str) -> Option<i32> {
        self.live_sets(pool).map(|s| s.index).max()
    }

    fn active_total(&self) -> usize {
        self.sets.iter().filter(|s| s.state == SetState::Active).count()
    }
}

/// Migration as the nodes report it.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MigrationView {
    /// None when no serving node answered.
    pub state: Option<MigrationState>,
    /// Draining sets the migration has emptied (their pass for this generation is done).
    pub drained_sets: BTreeSet<i64>,
}

impl MigrationView {
    fn finished(&self) -> bool {
        self.state.is_some_and(|state| !state.in_progress())
    }
}

/// What a set holds and can take, as the nodes report it.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct SetCapacityView {
    /// Bytes on the set's drives, parity included.
    pub stored_bytes: u64,
    /// Free space of the set's fullest drive.
    pub min_free_bytes: u64,
    pub data_shards: u64,
    pub parity_shards: u64,
}

impl SetCapacityView {
    /// Object bytes the set holds (its stored bytes without parity).
    fn object_bytes(&self) -> f64 {
        let shards = (self.data_shards + self.parity_shards).max(1) as f64;
        self.stored_bytes as f64 * self.data_shards as f64 / shards
    }

    /// Object bytes the set can still take: one shard per drive, so the fullest drive
    /// limits it.
    fn room_bytes(&self) -> f64 {
        self.min_free_bytes as f64 * self.data_shards as f64
    }
}

/// Share of the remaining free space a drain may fill (the rest is headroom for users'
/// writes during and after the drain).
const DRAIN_FILL_LIMIT: f64 = 0.9;

/// Everything the state machine looks at.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Observed {
    /// Pools of the cluster, sorted by name.
    pub pools: Vec<PoolView>,
    /// None until the cluster is bootstrapped.
    pub topology: Option<TopologyView>,
    pub migration: MigrationView,
    /// Per set id; None when the nodes did not say (the drain is then not checked).
    pub capacity: Option<BTreeMap<i64, SetCapacityView>>,
}

/// One admin API call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAction {
    /// The first topology: these sets (pool, index) of every pool.
    Bootstrap {
        sets: Vec<(String, i32)>,
    },
    AddSet {
        pool: String,
        index: i32,
    },
    DrainSet {
        id: i64,
    },
    RemoveSet {
        id: i64,
    },
}

/// A request the operator will not carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub pool: String,
    pub reason: String,
    pub message: String,
}

/// The next step.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// The step in flight after this reconcile (None: nothing to do).
    pub operation: Option<Operation>,
    /// Admin calls to make now, in order.
    pub actions: Vec<NodeAction>,
    /// Pods each pool's StatefulSet should have.
    pub statefulset_replicas: BTreeMap<String, i32>,
    /// Pools whose deletion is complete (their finalizer can go).
    pub release_pools: Vec<String>,
    pub refusals: Vec<Refusal>,
    /// Why the step waits (for the Progressing condition), if it does.
    pub waiting_for: Option<String>,
}

fn operation(kind: OperationKind, pool: &str, target_sets: i32, stage: OperationStage, started_at: &str) -> Operation {
    Operation { kind, pool: pool.into(), target_sets, stage, started_at: started_at.into() }
}

/// Pods each pool's StatefulSet should have: enough for the sets the topology still holds
/// and, during a scale up, for the sets being added.
fn statefulset_replicas(observed: &Observed, current: Option<&Operation>) -> BTreeMap<String, i32> {
    observed
        .pools
        .iter()
        .map(|pool| {
            let mut sets = match &observed.topology {
                None => pool.wanted_sets(),
                Some(topology) => topology.highest_live_index(&pool.name).map_or(0, |i| i + 1),
            };
            if let Some(op) = current
                && op.pool == pool.name
                && op.kind == OperationKind::ScaleUp
            {
                sets = sets.max(op.target_sets);
            }
            (pool.name.clone(), pool.geometry.replicas_for_sets(sets))
        })
        .collect()
}

/// Checks a pool's sets in the topology against its shape.
fn shape_refusal(pool: &PoolView, topology: &TopologyView) -> Option<Refusal> {
    let wrong = topology.live_sets(&pool.name).find(|s| s.drives != pool.geometry.set_size)?;
    Some(Refusal {
        pool: pool.name.clone(),
        reason: "SetShapeChanged".into(),
        message: format!(
            "set {} of pool {} has {} drives but the pool's setSize is {}: a set's shape cannot change; create a new pool",
            wrong.id, pool.name, wrong.drives, pool.geometry.set_size
        ),
    })
}

/// The next step, given what was observed and the step in flight. `now` stamps a new
/// step (RFC 3339).
pub fn plan(observed: &Observed, current: Option<&Operation>, now: &str) -> Plan {
    let mut plan = Plan::default();
    let Some(topology) = &observed.topology else {
        // A bootstrap in flight keeps the time it started.
        let started = current.filter(|op| op.kind == OperationKind::Bootstrap).map_or(now, |op| op.started_at.as_str());
        bootstrap(observed, started, &mut plan);
        plan.statefulset_replicas = statefulset_replicas(observed, None);
        return plan;
    };
    for pool in &observed.pools {
        plan.refusals.extend(shape_refusal(pool, topology));
    }
    let refused: BTreeSet<String> = plan.refusals.iter().map(|r| r.pool.clone()).collect();
    let current = match current {
        // A bootstrap that happened (the topology exists) is over.
        Some(op) if op.kind == OperationKind::Bootstrap => None,
        Some(op) if refused.contains(&op.pool) => None,
        other => other.cloned(),
    };
    if let Some(op) = current {
        continue_operation(observed, topology, op, &mut plan);
    }
    // The step in flight is over (or there was none): start the next one at once.
    let idle = plan.operation.is_none() && plan.actions.is_empty() && plan.release_pools.is_empty();
    if idle && let Some(op) = next_operation(observed, topology, &refused, now, &mut plan) {
        continue_operation(observed, topology, op, &mut plan);
    }
    if plan.operation.is_none() && plan.waiting_for.is_none() && !observed.migration.finished() {
        plan.waiting_for = Some("a migration started outside the operator is running".into());
    }
    plan.statefulset_replicas = statefulset_replicas(observed, plan.operation.as_ref());
    plan
}

fn bootstrap(observed: &Observed, now: &str, plan: &mut Plan) {
    let sets: Vec<(String, i32)> =
        observed.pools.iter().flat_map(|p| (0..p.wanted_sets()).map(|i| (p.name.clone(), i))).collect();
    if sets.is_empty() {
        plan.waiting_for = Some("no pool asks for an erasure set yet: create a BucketsPool for this cluster".into());
        return;
    }
    let pending: Vec<String> = observed
        .pools
        .iter()
        .filter(|p| p.wanted_sets() > 0)
        .filter(|p| (0..p.wanted_sets()).any(|i| !p.pods_ready_for(i)))
        .map(|p| {
            let pods = p.geometry.replicas_for_sets(p.wanted_sets());
            format!("{} ({} of {} pods ready)", p.name, p.ready_ordinals.iter().filter(|o| **o < pods).count(), pods)
        })
        .collect();
    if pending.is_empty() {
        plan.operation =
            Some(operation(OperationKind::Bootstrap, "", sets.len() as i32, OperationStage::Bootstrapping, now));
        plan.actions.push(NodeAction::Bootstrap { sets });
    } else {
        plan.operation =
            Some(operation(OperationKind::Bootstrap, "", sets.len() as i32, OperationStage::WaitingForPods, now));
        plan.waiting_for = Some(format!("waiting for pods: {}", pending.join(", ")));
    }
}

/// Starts the next step, if any pool's spec differs from the topology. Deleted pools go
/// first, then pools by name.
fn next_operation(
    observed: &Observed,
    topology: &TopologyView,
    refused: &BTreeSet<String>,
    now: &str,
    plan: &mut Plan,
) -> Option<Operation> {
    let mut order: Vec<&PoolView> = observed.pools.iter().filter(|p| !refused.contains(&p.name)).collect();
    order.sort_by_key(|p| (!p.deleting, p.name.clone()));
    for pool in order {
        let active = topology.active_indices(&pool.name);
        let live = topology.live_sets(&pool.name).count() as i32;
        let wanted = pool.wanted_sets();
        if pool.deleting && live == 0 {
            // Nothing of it left in the topology: shrink and release.
            return Some(operation(OperationKind::DeletePool, &pool.name, 0, OperationStage::Shrinking, now));
        }
        if (wanted as usize) < active.len() || (pool.deleting && live > 0) {
            let removing = active.len() - (wanted as usize).min(active.len());
            if removing > 0 && removing >= topology.active_total() {
                plan.refusals.push(Refusal {
                    pool: pool.name.clone(),
                    reason: if pool.deleting { "LastPool".into() } else { "BelowOneSet".into() },
                    message: format!(
                        "pool {} cannot go to {} set(s): the cluster would have no active erasure set left; \
                         add capacity in another pool first",
                        pool.name, wanted
                    ),
                });
                continue;
            }
            if let Some(refusal) = capacity_refusal(observed, topology, pool, wanted) {
                plan.refusals.push(refusal);
                continue;
            }
            let kind = if pool.deleting { OperationKind::DeletePool } else { OperationKind::ScaleDown };
            return Some(operation(kind, &pool.name, wanted, OperationStage::Draining, now));
        }
        if live > active.len() as i32 {
            // Draining sets with no step recorded (the status update was lost): finish
            // removing them before anything else.
            return Some(operation(
                OperationKind::ScaleDown,
                &pool.name,
                active.len() as i32,
                OperationStage::Migrating,
                now,
            ));
        }
        if (0..wanted).any(|i| !active.contains(&i)) {
            if !observed.migration.finished() {
                plan.waiting_for = Some(format!(
                    "pool {} asks for {wanted} set(s): queued until the running migration finishes",
                    pool.name
                ));
                return None;
            }
            return Some(operation(OperationKind::ScaleUp, &pool.name, wanted, OperationStage::WaitingForPods, now));
        }
    }
    None
}

/// Refuses a drain whose objects would not fit in the free space of the sets that stay.
fn capacity_refusal(observed: &Observed, topology: &TopologyView, pool: &PoolView, wanted: i32) -> Option<Refusal> {
    let capacity = observed.capacity.as_ref()?;
    let leaving: BTreeSet<i64> = topology
        .live_sets(&pool.name)
        .filter(|s| s.state == SetState::Active && s.index >= wanted)
        .map(|s| s.id)
        .collect();
    let to_move: f64 = leaving.iter().filter_map(|id| capacity.get(id)).map(SetCapacityView::object_bytes).sum();
    let room: f64 = topology
        .sets
        .iter()
        .filter(|s| s.state == SetState::Active && !leaving.contains(&s.id))
        .filter_map(|s| capacity.get(&s.id))
        .map(SetCapacityView::room_bytes)
        .sum::<f64>()
        * DRAIN_FILL_LIMIT;
    if to_move <= room {
        return None;
    }
    let gib = |bytes: f64| bytes / (1u64 << 30) as f64;
    Some(Refusal {
        pool: pool.name.clone(),
        reason: "InsufficientCapacity".into(),
        message: format!(
            "draining pool {}'s set(s) {:?} would move about {:.1} GiB into {:.1} GiB of usable free space in the sets \
             that stay; add capacity first",
            pool.name,
            leaving,
            gib(to_move),
            gib(room)
        ),
    })
}

fn continue_operation(observed: &Observed, topology: &TopologyView, mut op: Operation, plan: &mut Plan) {
    let Some(pool) = observed.pools.iter().find(|p| p.name == op.pool) else {
        // The pool is gone (its finalizer was released): the step is over.
        return;
    };
    match op.kind {
        OperationKind::ScaleUp => {
            let active = topology.active_indices(&pool.name);
            let missing: Vec<i32> = (0..op.target_sets).filter(|i| !active.contains(i)).collect();
            if !missing.is_empty() {
                if missing.iter().all(|i| pool.pods_ready_for(*i)) {
                    op.stage = OperationStage::AddingSets;
                    plan.actions
                        .extend(missing.iter().map(|&index| NodeAction::AddSet { pool: pool.name.clone(), index }));
                } else {
                    op.stage = OperationStage::WaitingForPods;
                    plan.waiting_for = Some(format!(
                        "waiting for the pods of pool {}'s new set(s) {missing:?} to be ready",
                        pool.name
                    ));
                }
                plan.operation = Some(op);
                return;
            }
            if !observed.migration.finished() {
                op.stage = OperationStage::Migrating;
                plan.waiting_for = Some("migrating objects to the new sets".into());
                plan.operation = Some(op);
            }
            // Sets added and migration finished: done.
        }
        OperationKind::ScaleDown | OperationKind::DeletePool => {
            let excess: Vec<&crate::scaling::SetView> = {
                let mut v: Vec<_> = topology
                    .live_sets(&pool.name)
                    .filter(|s| s.state == SetState::Active && s.index >= op.target_sets)
                    .collect();
                v.sort_by_key(|s| std::cmp::Reverse(s.index));
                v
            };
            if !excess.is_empty() {
                op.stage = OperationStage::Draining;
                plan.actions.extend(excess.iter().map(|s| NodeAction::DrainSet { id: s.id }));
                plan.operation = Some(op);
                return;
            }
            let draining: Vec<&SetView> =
                topology.live_sets(&pool.name).filter(|s| s.state == SetState::Draining).collect();
            if !draining.is_empty() {
                let drained: Vec<i64> =
                    draining.iter().filter(|s| observed.migration.drained_sets.contains(&s.id)).map(|s| s.id).collect();
                if drained.is_empty() {
                    op.stage = OperationStage::Migrating;
                    plan.waiting_for = Some(format!(
                        "draining set(s) {:?} of pool {}",
                        draining.iter().map(|s| s.id).collect::<Vec<_>>(),
                        pool.name
                    ));
                } else {
                    op.stage = OperationStage::Removing;
                    plan.actions.extend(drained.into_iter().map(|id| NodeAction::RemoveSet { id }));
                }
                plan.operation = Some(op);
                return;
            }
            // Every set above the target is removed: the StatefulSet shrinks (its
            // replicas follow the topology); wait until its pods are gone.
            let pods = pool.geometry.replicas_for_sets(op.target_sets);
            if pool.statefulset_pods.is_some_and(|n| n > pods) {
                op.stage = OperationStage::Shrinking;
                plan.waiting_for =
                    Some(format!("waiting for pool {}'s StatefulSet to shrink to {pods} pod(s)", pool.name));
                plan.operation = Some(op);
                return;
            }
            if op.kind == OperationKind::DeletePool {
                plan.release_pools.push(pool.name.clone());
            }
        }
        OperationKind::Bootstrap => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-26T00:00:00Z";

    fn pool(name: &str, replicas: i32, ready: i32) -> PoolView {
        PoolView {
            name: name.into(),
            geometry: Geometry { drives_per_node: 1, set_size: 4 },
            replicas,
            deleting: false,
            ready_ordinals: (0..ready).collect(),
            statefulset_pods: Some(ready),
        }
    }

    fn set(id: i64, pool: &str, index: i32, state: SetState) -> SetView {
        SetView { id, pool: pool.into(), index, state, drives: 4 }
    }

    fn topology(sets: Vec<SetView>) -> Option<TopologyView> {
        Some(TopologyView { generation: 1, sets })
    }

    fn idle() -> MigrationView {
        MigrationView { state: Some(MigrationState::Idle), drained_sets: BTreeSet::new() }
    }

    fn running() -> MigrationView {
        MigrationView { state: Some(MigrationState::Running), drained_sets: BTreeSet::new() }
    }

    /// Applies a plan's node actions to the observed world the way the nodes would, and
    /// the StatefulSet replicas the way Kubernetes would (pods become ready at once).
    fn world_after(observed: &Observed, plan: &Plan) -> Observed {
        let mut next = observed.clone();
        let mut next_id = observed.topology.as_ref().map_or(0, |t| t.sets.iter().map(|s| s.id + 1).max().unwrap_or(0));
        for action in &plan.actions {
            let topology = next.topology.get_or_insert_with(TopologyView::default);
            match action {
                NodeAction::Bootstrap { sets } => {
                    for (pool, index) in sets {
                        topology.sets.push(set(next_id, pool, *index, SetState::Active));
                        next_id += 1;
                    }
                }
                NodeAction::AddSet { pool, index } => {
                    topology.sets.push(set(next_id, pool, *index, SetState::Active));
                    next_id += 1;
                    next.migration.state = Some(MigrationState::Running);
                }
                NodeAction::DrainSet { id } => {
                    topology.sets.iter_mut().find(|s| s.id == *id).unwrap().state = SetState::Draining;
                    next.migration.state = Some(MigrationState::Running);
                }
                NodeAction::RemoveSet { id } => {
                    assert!(next.migration.drained_sets.contains(id), "removing a set that is not empty");
                    topology.sets.iter_mut().find(|s| s.id == *id).unwrap().state = SetState::Removed;
                }
            }
            topology.generation += 1;
        }
        for pool in &mut next.pools {
            if let Some(&replicas) = plan.statefulset_replicas.get(&pool.name) {
                pool.statefulset_pods = Some(replicas);
                pool.ready_ordinals = (0..replicas).collect();
            }
        }
        next
    }

    /// Finishes a running migration: every draining set is empty.
    fn migration_finishes(observed: &mut Observed) {
        observed.migration.state = Some(MigrationState::Done);
        if let Some(topology) = &observed.topology {
            observed.migration.drained_sets =
                topology.sets.iter().filter(|s| s.state == SetState::Draining).map(|s| s.id).collect();
        }
    }

    /// Runs reconciles until the plan is empty, finishing migrations whenever the plan
    /// waits for one. Returns every plan, and checks the StatefulSet never drops pods that
    /// hold a live set.
    fn converge(mut observed: Observed, mut current: Option<Operation>) -> (Observed, Vec<Plan>) {
        let mut plans = Vec::new();
        for _ in 0..50 {
            let plan = plan(&observed, current.as_ref(), NOW);
            if let Some(topology) = &observed.topology {
                for pool in &observed.pools {
                    let needed = topology.highest_live_index(&pool.name).map_or(0, |i| i + 1);
                    assert!(
                        plan.statefulset_replicas[&pool.name] >= pool.geometry.replicas_for_sets(needed),
                        "pool {} would lose pods holding live sets",
                        pool.name
                    );
                }
            }
            let done = plan.operation.is_none() && plan.actions.is_empty() && observed.migration.finished();
            current = plan.operation.clone();
            observed = world_after(&observed, &plan);
            for released in &plan.release_pools {
                observed.pools.retain(|p| &p.name != released);
            }
            // A running migration finishes on its own while the operator waits.
            let waits_for_migration = plan.actions.is_empty();
            plans.push(plan);
            if waits_for_migration {
                migration_finishes(&mut observed);
            }
            if done {
                return (observed, plans);
            }
        }
        panic!("no convergence: {plans:#?}");
    }

    fn active(observed: &Observed, pool: &str) -> Vec<i32> {
        observed.topology.as_ref().unwrap().active_indices(pool).into_iter().collect()
    }

    #[test]
    fn bootstrap_waits_for_every_pod_then_creates_all_sets_at_once() {
        let observed = Observed {
            pools: vec![pool("a", 8, 5), pool("b", 4, 4)],
            topology: None,
            migration: idle(),
            capacity: None,
        };
        let waiting = plan(&observed, None, NOW);
        assert!(waiting.actions.is_empty());
        assert_eq!(waiting.operation.as_ref().unwrap().stage, OperationStage::WaitingForPods);
        assert!(waiting.waiting_for.as_ref().unwrap().contains("a (5 of 8 pods ready)"));
        assert_eq!(waiting.statefulset_replicas, BTreeMap::from([("a".into(), 8), ("b".into(), 4)]));

        let later = plan(&observed, waiting.operation.as_ref(), "2026-11-26T00:05:00Z");
        assert_eq!(later, waiting, "waiting again changes nothing, not even the start time");

        let mut ready = observed.clone();
        ready.pools[0].ready_ordinals = (0..8).collect();
        let go = plan(&ready, waiting.operation.as_ref(), NOW);
        assert_eq!(
            go.actions,
            vec![NodeAction::Bootstrap { sets: vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 0)] }]
        );
        // Restart right after the call: the topology exists, so bootstrap is over.
        let after = world_after(&ready, &go);
        let next = plan(&after, go.operation.as_ref(), NOW);
        assert!(next.actions.is_empty() && next.operation.is_none(), "{next:?}");
    }

    #[test]
    fn no_pool_means_no_bootstrap() {
        let plan = plan(&Observed { pools: vec![], topology: None, migration: idle(), capacity: None }, None, NOW);
        assert!(plan.actions.is_empty());
        assert!(plan.waiting_for.unwrap().contains("create a BucketsPool"));
    }

    #[test]
    fn scale_up_grows_pods_then_adds_sets_then_waits_for_migration() {
        let observed = Observed {
            pools: vec![pool("a", 12, 8)],
            topology: topology(vec![set(0, "a", 0, SetState::Active), set(1, "a", 1, SetState::Active)]),
            migration: idle(),
            capacity: None,
        };
        let first = plan(&observed, None, NOW);
        let op = first.operation.clone().unwrap();
        assert_eq!((op.kind, op.target_sets, op.stage), (OperationKind::ScaleUp, 3, OperationStage::WaitingForPods));
        assert_eq!(first.statefulset_replicas["a"], 12, "the StatefulSet grows first");
        assert!(first.actions.is_empty());

        let mut pods_up = observed.clone();
        pods_up.pools[0].ready_ordinals = (0..12).collect();
        let second = plan(&pods_up, Some(&op), NOW);
        assert_eq!(second.actions, vec![NodeAction::AddSet { pool: "a".into(), index: 2 }]);

        let (end, plans) = converge(pods_up, second.operation.clone());
        assert_eq!(active(&end, "a"), vec![0, 1, 2]);
        assert!(plans.iter().any(|p| p.operation.as_ref().is_some_and(|o| o.stage == OperationStage::Migrating)));
    }

    #[test]
    fn scale_down_drains_highest_sets_removes_them_then_shrinks() {
        let observed = Observed {
            pools: vec![pool("a", 4, 12)],
            topology: topology(vec![
                set(0, "a", 0, SetState::Active),
                set(1, "a", 1, SetState::Active),
                set(2, "a", 2, SetState::Active),
            ]),
            migration: idle(),
            capacity: None,
        };
        let first = plan(&observed, None, NOW);
        assert_eq!(first.actions, vec![NodeAction::DrainSet { id: 2 }, NodeAction::DrainSet { id: 1 }]);
        assert_eq!(first.statefulset_replicas["a"], 12, "no pod goes before its set is removed");

        let draining = world_after(&observed, &first);
        let waiting = plan(&draining, first.operation.as_ref(), NOW);
        assert_eq!(waiting.operation.as_ref().unwrap().stage, OperationStage::Migrating);
        assert!(waiting.actions.is_empty(), "nothing is removed before it is empty");

        let mut half = draining.clone();
        half.migration.drained_sets = BTreeSet::from([2]);
        let remove = plan(&half, waiting.operation.as_ref(), NOW);
        assert_eq!(remove.actions, vec![NodeAction::RemoveSet { id: 2 }]);
        assert_eq!(remove.statefulset_replicas["a"], 12, "set 1 still lives on pods 4–7, and set 2's pods wait too");

        let (end, plans) = converge(draining, waiting.operation.clone());
        assert_eq!(active(&end, "a"), vec![0]);
        assert_eq!(end.pools[0].statefulset_pods, Some(4));
        assert!(plans.iter().any(|p| p.operation.as_ref().is_some_and(|o| o.stage == OperationStage::Shrinking)));
    }

    #[test]
    fn deleting_a_pool_drains_it_then_releases_it() {
        let mut doomed = pool("b", 4, 4);
        doomed.deleting = true;
        let observed = Observed {
            pools: vec![pool("a", 4, 4), doomed],
            topology: topology(vec![set(0, "a", 0, SetState::Active), set(1, "b", 0, SetState::Active)]),
            migration: idle(),
            capacity: None,
        };
        let first = plan(&observed, None, NOW);
        assert_eq!(first.operation.as_ref().unwrap().kind, OperationKind::DeletePool);
        assert_eq!(first.actions, vec![NodeAction::DrainSet { id: 1 }]);
        let (end, plans) = converge(observed, None);
        assert!(plans.iter().any(|p| p.release_pools == vec!["b".to_string()]));
        assert_eq!(end.pools.len(), 1);
        assert_eq!(active(&end, "a"), vec![0]);
    }

    #[test]
    fn unsafe_requests_are_refused_and_nothing_changes() {
        // The last set of the only pool.
        let mut observed = Observed {
            pools: vec![pool("a", 0, 4)],
            topology: topology(vec![set(0, "a", 0, SetState::Active)]),
            migration: idle(),
            capacity: None,
        };
        let refused = plan(&observed, None, NOW);
        assert_eq!(refused.refusals[0].reason, "BelowOneSet");
        assert!(refused.actions.is_empty() && refused.operation.is_none());
        assert_eq!(refused.statefulset_replicas["a"], 4, "the pods of the live set stay");
        // Deleting the last pool.
        observed.pools[0].replicas = 4;
        observed.pools[0].deleting = true;
        let refused = plan(&observed, None, NOW);
        assert_eq!(refused.refusals[0].reason, "LastPool");
        assert!(refused.actions.is_empty() && refused.release_pools.is_empty());
        // A pool whose sets in the topology have another shape.
        let mut reshaped = pool("a", 8, 8);
        reshaped.geometry.set_size = 8;
        let observed = Observed {
            pools: vec![reshaped],
            topology: topology(vec![set(0, "a", 0, SetState::Active)]),
            migration: idle(),
            capacity: None,
        };
        let refused = plan(&observed, None, NOW);
        assert_eq!(refused.refusals[0].reason, "SetShapeChanged");
        assert!(refused.actions.is_empty());
    }

    #[test]
    fn a_drain_that_would_not_fit_is_refused() {
        let mut observed = Observed {
            pools: vec![pool("a", 4, 8)],
            topology: topology(vec![set(0, "a", 0, SetState::Active), set(1, "a", 1, SetState::Active)]),
            migration: idle(),
            capacity: None,
        };
        let view = |stored: u64, free: u64| SetCapacityView {
            stored_bytes: stored,
            min_free_bytes: free,
            data_shards: 2,
            parity_shards: 2,
        };
        // Set 1 holds 400 object bytes (800 stored with parity); set 0 can take 2 × 150.
        observed.capacity = Some(BTreeMap::from([(0, view(100, 150)), (1, view(800, 1000))]));
        let refused = plan(&observed, None, NOW);
        assert_eq!(refused.refusals[0].reason, "InsufficientCapacity");
        assert!(refused.actions.is_empty() && refused.operation.is_none());
        // With room (2 × 250 × 0.9 = 450 ≥ 400) the drain starts.
        observed.capacity = Some(BTreeMap::from([(0, view(100, 250)), (1, view(800, 1000))]));
        let go = plan(&observed, None, NOW);
        assert!(go.refusals.is_empty(), "{:?}", go.refusals);
        assert_eq!(go.actions, vec![NodeAction::DrainSet { id: 1 }]);
    }

    #[test]
    fn a_spec_change_during_a_step_is_queued_not_lost() {
        let observed = Observed {
            pools: vec![pool("a", 12, 12)],
            topology: topology(vec![set(0, "a", 0, SetState::Active), set(1, "a", 1, SetState::Active)]),
            migration: idle(),
            capacity: None,
        };
        let first = plan(&observed, None, NOW);
        let mut world = world_after(&observed, &first);
        let second = plan(&world, first.operation.as_ref(), NOW);
        world = world_after(&world, &second);
        assert_eq!(world.migration.state, Some(MigrationState::Running));
        // Mid-migration the user asks for 4 sets: the step keeps its target…
        world.pools[0].replicas = 16;
        let third = plan(&world, second.operation.as_ref(), NOW);
        assert_eq!(third.operation.as_ref().unwrap().target_sets, 3);
        assert!(third.actions.is_empty());
        assert_eq!(third.statefulset_replicas["a"], 12);
        // …and the next step takes it up once the migration is done.
        let (end, _) = converge(world, third.operation.clone());
        assert_eq!(active(&end, "a"), vec![0, 1, 2, 3]);
        assert_eq!(end.pools[0].statefulset_pods, Some(16));
    }

    #[test]
    fn a_new_step_waits_for_a_running_migration() {
        let observed = Observed {
            pools: vec![pool("a", 12, 12)],
            topology: topology(vec![set(0, "a", 0, SetState::Active), set(1, "a", 1, SetState::Active)]),
            migration: running(),
            capacity: None,
        };
        let plan = plan(&observed, None, NOW);
        assert!(plan.operation.is_none() && plan.actions.is_empty());
        assert!(plan.waiting_for.unwrap().contains("queued"));
    }

    /// Restart between any two steps: a fresh operator holding only the status's
    /// operation (or none, when the status update was lost) reaches the same end.
    #[test]
    fn restart_between_any_two_steps_converges_to_the_same_end() {
        let scenarios: Vec<Observed> = vec![
            Observed { pools: vec![pool("a", 8, 8)], topology: None, migration: idle(), capacity: None },
            Observed {
                pools: vec![pool("a", 16, 8)],
                topology: topology(vec![set(0, "a", 0, SetState::Active), set(1, "a", 1, SetState::Active)]),
                migration: idle(),
                capacity: None,
            },
            Observed {
                pools: vec![pool("a", 4, 12)],
                topology: topology(vec![
                    set(0, "a", 0, SetState::Active),
                    set(1, "a", 1, SetState::Active),
                    set(2, "a", 2, SetState::Active),
                ]),
                migration: idle(),
                capacity: None,
            },
            Observed {
                pools: vec![pool("a", 4, 4), PoolView { deleting: true, ..pool("b", 8, 8) }],
                topology: topology(vec![
                    set(0, "a", 0, SetState::Active),
                    set(1, "b", 0, SetState::Active),
                    set(2, "b", 1, SetState::Active),
                ]),
                migration: idle(),
                capacity: None,
            },
        ];
        for start in scenarios {
            let (expected, plans) = converge(start.clone(), None);
            let expected_active = active(&expected, "a");
            // Replay up to step k, then restart with the status's operation or with none.
            for k in 0..plans.len() {
                for keep_status in [true, false] {
                    let mut world = start.clone();
                    let mut current: Option<Operation> = None;
                    for _ in 0..k {
                        let step = plan(&world, current.as_ref(), NOW);
                        current = step.operation.clone();
                        let waits = step.actions.is_empty();
                        world = world_after(&world, &step);
                        if waits {
                            migration_finishes(&mut world);
                        }
                    }
                    let resumed = if keep_status { current } else { None };
                    let (end, _) = converge(world, resumed);
                    assert_eq!(
                        active(&end, "a"),
                        expected_active,
                        "restart after step {k}, status kept: {keep_status}"
                    );
                    assert_eq!(end.pools, expected.pools, "restart after step {k}, status kept: {keep_status}");
                }
            }
        }
    }
}
