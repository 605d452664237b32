//! update_status, the pure half: what the cluster's and pools' status say after a
//! reconcile (phase, conditions, sets, migration progress), and which transitions deserve
//! an Event. Conditions keep their lastTransitionTime while their status holds.

use buckets_api::MigrationState;

use crate::build::{pool_selector, selector_string};
use crate::crd::{
    BucketsClusterStatus, BucketsPoolStatus, Condition, MigrationProgress, Operation, OperationKind, PoolSummary,
    SetStatus,
};
use crate::scaling::{Observed, Plan, PoolView, SetState};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// Everything one reconcile learned, for the status.
pub struct Inputs<'a> {
    pub cluster_name: &'a str,
    pub generation: i64,
    pub observed: &'a Observed,
    pub plan: &'a Plan,
    pub migration: Option<MigrationProgress>,
    /// Problems seen (pods not ready, drives offline, nodes unreachable), for Degraded.
    pub problems: Vec<String>,
    pub deleting: bool,
    /// RFC 3339 time of this reconcile.
    pub now: String,
}

/// An Event to publish on the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// When a condition is computed: (generation, now).
type Stamp<'a> = (i64, &'a str);

pub(crate) fn condition(
    previous: &[Condition],
    kind: &str,
    status: bool,
    reason: &str,
    message: String,
    stamp: Stamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = previous
        .iter()
        .find(|c| c.r#type == kind && c.status == status)
        .map_or_else(|| stamp.1.to_string(), |c| c.last_transition_time.clone());
    Condition {
        r#type: kind.into(),
        status,
        reason: reason.into(),
        message,
        last_transition_time,
        observed_generation: stamp.0,
    }
}

fn set_state_name(state: SetState) -> &'static str {
    match state {
        SetState::Active => "Active",
        SetState::Draining => "Draining",
        SetState::Removed => "Removed",
    }
}

fn describe(operation: &Operation) -> String {
    match operation.kind {
        OperationKind::Bootstrap => format!("bootstrap of {} set(s): {}", operation.target_sets, operation.stage),
        kind => format!("{kind} of pool {} to {} set(s): {}", operation.pool, operation.target_sets, operation.stage),
    }
}

pub fn cluster_status(previous: &BucketsClusterStatus, inputs: &Inputs) -> BucketsClusterStatus {
    let stamp = (inputs.generation, inputs.now.as_str());
    let observed = inputs.observed;
    let plan = inputs.plan;
    let topology = observed.topology.as_ref();
    let bootstrapped = topology.is_some();
    let phase = if inputs.deleting {
        "Deleting"
    } else if !bootstrapped {
        if plan.operation.is_some() { "Bootstrapping" } else { "Provisioning" }
    } else if plan.operation.is_some() {
        "Scaling"
    } else if !inputs.problems.is_empty() {
        "Degraded"
    } else {
        "Ready"
    };
    let ready = condition(
        &previous.conditions,
        READY,
        bootstrapped && inputs.problems.is_empty(),
        match (bootstrapped, inputs.problems.is_empty()) {
            (false, _) => "NotBootstrapped",
            (true, true) => "Serving",
            (true, false) => "Degraded",
        },
        if !bootstrapped {
            plan.waiting_for.clone().unwrap_or_else(|| "the cluster has no topology yet".into())
        } else if inputs.problems.is_empty() {
            "every node is serving".into()
        } else {
            inputs.problems.join("; ")
        },
        stamp,
    );
    let migrating =
        inputs.migration.as_ref().is_some_and(|m| matches!(m.state.as_str(), "running" | "pausing" | "paused"));
    let progressing = match (&plan.operation, plan.refusals.first()) {
        (Some(op), _) => condition(
            &previous.conditions,
            PROGRESSING,
            true,
            &format!("{}{}", op.kind, op.stage),
            match &plan.waiting_for {
                Some(why) => format!("{}; {why}", describe(op)),
                None => describe(op),
            },
            stamp,
        ),
        (None, Some(refusal)) => {
            condition(&previous.conditions, PROGRESSING, false, &refusal.reason, refusal.message.clone(), stamp)
        }
        (None, None) if migrating => condition(
            &previous.conditions,
            PROGRESSING,
            true,
            "Migrating",
            plan.waiting_for.clone().unwrap_or_else(|| "objects are moving between sets".into()),
            stamp,
        ),
        (None, None) => condition(
            &previous.conditions,
            PROGRESSING,
            false,
            "Settled",
            plan.waiting_for.clone().unwrap_or_else(|| "every pool has the sets its spec asks for".into()),
            stamp,
        ),
    };
    let degraded = condition(
        &previous.conditions,
        DEGRADED,
        !inputs.problems.is_empty(),
        if inputs.problems.is_empty() { "Healthy" } else { "Unavailable" },
        if inputs.problems.is_empty() { "no problem seen".into() } else { inputs.problems.join("; ") },
        stamp,
    );
    let sets: Vec<SetStatus> = topology
        .map(|t| {
            t.sets
                .iter()
                .map(|s| SetStatus {
                    id: s.id,
                    pool: s.pool.clone(),
                    index: s.index,
                    state: set_state_name(s.state).into(),
                })
                .collect()
        })
        .unwrap_or_default();
    let pools = observed
        .pools
        .iter()
        .map(|pool| {
            let count = |state| sets.iter().filter(|s| s.pool == pool.name && s.state == state).count() as i32;
            PoolSummary {
                name: pool.name.clone(),
                replicas: pool.replicas,
                ready_replicas: pool.ready_ordinals.len() as i32,
                active_sets: count("Active"),
                draining_sets: count("Draining"),
            }
        })
        .collect();
    BucketsClusterStatus {
        phase: phase.into(),
        conditions: vec![ready, progressing, degraded],
        observed_generation: inputs.generation,
        topology_generation: topology.map_or(0, |t| t.generation),
        active_sets: sets.iter().filter(|s| s.state == "Active").count() as i32,
        pools,
        sets,
        migration: inputs.migration.clone(),
        operation: plan.operation.clone(),
    }
}

/// A pool's status: its pods, its sets, and what the cluster is doing with it.
pub fn pool_status(
    previous: &BucketsPoolStatus,
    inputs: &Inputs,
    pool: &PoolView,
    generation: i64,
) -> BucketsPoolStatus {
    let plan = inputs.plan;
    let active_sets = inputs
        .observed
        .topology
        .as_ref()
        .map_or(0, |t| t.sets.iter().filter(|s| s.pool == pool.name && s.state == SetState::Active).count() as i32);
    let refusal = plan.refusals.iter().find(|r| r.pool == pool.name);
    let operation = plan.operation.as_ref().filter(|op| op.pool == pool.name);
    let phase = match (pool.deleting, refusal, operation) {
        (true, _, _) => "Deleting",
        (false, Some(_), _) => "Refused",
        (false, None, Some(op)) if op.kind == OperationKind::ScaleDown => "Draining",
        (false, None, Some(_)) => "Scaling",
        (false, None, None) if inputs.observed.topology.is_none() => "Pending",
        (false, None, None) => "Ready",
    };
    let stamp = (generation, inputs.now.as_str());
    let accepted = match (refusal, operation) {
        (Some(refusal), _) => {
            condition(&previous.conditions, PROGRESSING, false, &refusal.reason, refusal.message.clone(), stamp)
        }
        (None, Some(op)) => {
            condition(&previous.conditions, PROGRESSING, true, &format!("{}{}", op.kind, op.stage), describe(op), stamp)
        }
        (None, None) => condition(
            &previous.conditions,
            PROGRESSING,
            false,
            "Settled",
            format!("{active_sets} active set(s)"),
            stamp,
        ),
    };
    BucketsPoolStatus {
        replicas: pool.statefulset_pods.unwrap_or(0),
        selector: selector_string(&pool_selector(inputs.cluster_name, &pool.name)),
        ready_replicas: pool.ready_ordinals.len() as i32,
        active_sets,
        phase: phase.into(),
        conditions: vec![accepted],
        observed_generation: generation,
    }
}

/// Why a pool whose cluster does not exist is waiting. `spec.cluster` cannot change, so
/// the message says both ways out.
pub const CLUSTER_NOT_FOUND: &str = "ClusterNotFound";

/// The status of a pool that names a BucketsCluster its namespace does not have: nothing
/// is built for it until that cluster exists (the cluster's reconciler then takes over
/// its status).
pub fn orphan_pool_status(
    previous: &BucketsPoolStatus,
    namespace: &str,
    pool: &str,
    cluster: &str,
    generation: i64,
    now: &str,
) -> BucketsPoolStatus {
    let message = format!(
        "BucketsCluster {cluster} does not exist in namespace {namespace}: create it, or delete this pool and \
         create one that names an existing cluster (spec.cluster cannot change)"
    );
    BucketsPoolStatus {
        replicas: 0,
        selector: selector_string(&pool_selector(cluster, pool)),
        ready_replicas: 0,
        active_sets: 0,
        phase: "Pending".into(),
        conditions: vec![condition(
            &previous.conditions,
            PROGRESSING,
            false,
            CLUSTER_NOT_FOUND,
            message,
            (generation, now),
        )],
        observed_generation: generation,
    }
}

/// The Events a status change deserves: phase changes, new refusals, Degraded turning on.
pub fn transitions(previous: &BucketsClusterStatus, next: &BucketsClusterStatus) -> Vec<EventNote> {
    let mut notes = Vec::new();
    if previous.phase != next.phase {
        notes.push(EventNote {
            warning: next.phase == "Degraded",
            reason: next.phase.clone(),
            message: match &next.operation {
                Some(op) => format!("{} → {}: {}", phase_or_new(previous), next.phase, describe(op)),
                None => format!("{} → {}", phase_or_new(previous), next.phase),
            },
        });
    }
    let find = |status: &BucketsClusterStatus, kind: &str| status.conditions.iter().find(|c| c.r#type == kind).cloned();
    if let Some(progressing) = find(next, PROGRESSING) {
        let before = find(previous, PROGRESSING);
        let refused = progressing.status == "False" && !matches!(progressing.reason.as_str(), "Settled");
        if refused && before.as_ref().is_none_or(|b| b.reason != progressing.reason || b.message != progressing.message)
        {
            notes.push(EventNote {
                warning: true,
                reason: progressing.reason.clone(),
                message: progressing.message.clone(),
            });
        }
        if progressing.status == "True"
            && before.as_ref().is_none_or(|b| b.reason != progressing.reason)
            && previous.phase == next.phase
        {
            notes.push(EventNote {
                warning: false,
                reason: progressing.reason.clone(),
                message: progressing.message.clone(),
            });
        }
    }
    if let Some(degraded) = find(next, DEGRADED)
        && degraded.status == "True"
        && find(previous, DEGRADED).is_none_or(|b| b.status != "True")
    {
        notes.push(EventNote { warning: true, reason: "Degraded".into(), message: degraded.message });
    }
    notes
}

/// The phase for an Event's message (`New` before the first status).
fn phase_or_new(status: &BucketsClusterStatus) -> &str {
    if status.phase.is_empty() { "New" } else { &status.phase }
}

/// The printer column's text and the integer percent of a migration.
pub fn migration_progress(
    state: MigrationState,
    percent: f64,
    moved: (u64, u64),
    total: (u64, u64),
    rate_bytes_per_second: f64,
    eta_seconds: Option<u64>,
    last_error: Option<String>,
) -> MigrationProgress {
    let percent = percent.clamp(0.0, 100.0).floor() as i32;
    MigrationProgress {
        state: state.to_string(),
        percent,
        progress: if state.in_progress() { format!("{percent}%") } else { "-".into() },
        objects_moved: moved.0 as i64,
        bytes_moved: moved.1 as i64,
        objects_total: total.0 as i64,
        bytes_total: total.1 as i64,
        rate_bytes_per_second: rate_bytes_per_second as i64,
        eta_seconds: eta_seconds.map(|s| s as i64),
        last_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::Geometry;
    use crate::scaling::{MigrationView, SetView, TopologyView, plan};
    use std::collections::BTreeSet;

    fn pool(replicas: i32, ready: i32) -> PoolView {
        PoolView {
            name: "fast".into(),
            geometry: Geometry { drives_per_node: 1, set_size: 4 },
            replicas,
            deleting: false,
            ready_ordinals: (0..ready).collect(),
            statefulset_pods: Some(ready),
        }
    }

    fn observed(replicas: i32, sets: i32, migration: MigrationState) -> Observed {
        Observed {
            pools: vec![pool(replicas, replicas.max(sets * 4))],
            topology: Some(TopologyView {
                generation: 3,
                sets: (0..sets)
                    .map(|i| SetView {
                        id: i as i64,
                        pool: "fast".into(),
                        index: i,
                        state: SetState::Active,
                        drives: 4,
                    })
                    .collect(),
            }),
            migration: MigrationView { state: Some(migration), drained_sets: BTreeSet::new() },
            capacity: None,
        }
    }

    fn inputs<'a>(observed: &'a Observed, plan: &'a Plan, problems: Vec<String>, now: &'a str) -> Inputs<'a> {
        Inputs {
            cluster_name: "demo",
            generation: 2,
            observed,
            plan,
            migration: None,
            problems,
            deleting: false,
            now: now.to_string(),
        }
    }

    fn get<'a>(status: &'a BucketsClusterStatus, kind: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.r#type == kind).unwrap()
    }

    #[test]
    fn settled_cluster_is_ready_and_keeps_transition_times() {
        let observed = observed(8, 2, MigrationState::Idle);
        let plan = plan(&observed, None, "t0");
        let first = cluster_status(&BucketsClusterStatus::default(), &inputs(&observed, &plan, vec![], "t0"));
        assert_eq!(first.phase, "Ready");
        assert_eq!(first.active_sets, 2);
        assert_eq!(first.topology_generation, 3);
        assert_eq!(get(&first, READY).status, "True");
        assert_eq!(get(&first, PROGRESSING).reason, "Settled");
        assert_eq!(get(&first, DEGRADED).status, "False");
        let again = cluster_status(&first, &inputs(&observed, &plan, vec![], "t1"));
        assert_eq!(get(&again, READY).last_transition_time, "t0", "no change, no new transition time");
        assert!(transitions(&first, &again).is_empty());
        let events = transitions(&BucketsClusterStatus::default(), &first);
        assert_eq!(events[0].reason, "Ready");
    }

    #[test]
    fn scaling_shows_progressing_with_the_step_and_an_event() {
        let before = observed(8, 2, MigrationState::Idle);
        let settled = cluster_status(
            &BucketsClusterStatus::default(),
            &inputs(&before, &plan(&before, None, "t0"), vec![], "t0"),
        );
        let scaled = observed(12, 2, MigrationState::Idle);
        let step = plan(&scaled, None, "t1");
        let status = cluster_status(&settled, &inputs(&scaled, &step, vec![], "t1"));
        assert_eq!(status.phase, "Scaling");
        let progressing = get(&status, PROGRESSING);
        assert_eq!(progressing.status, "True");
        assert_eq!(progressing.reason, "ScaleUpAddingSets");
        assert!(progressing.message.contains("pool fast to 3 set(s)"), "{}", progressing.message);
        assert_eq!(get(&status, READY).status, "True", "a scaling cluster keeps serving");
        assert_eq!(status.operation.as_ref().unwrap().target_sets, 3);
        let events = transitions(&settled, &status);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].reason, "Scaling");
        assert!(!events[0].warning);
        let pool =
            pool_status(&BucketsPoolStatus::default(), &inputs(&scaled, &step, vec![], "t1"), &scaled.pools[0], 5);
        assert_eq!(pool.phase, "Scaling");
        assert_eq!(pool.selector, "app.kubernetes.io/component=node,buckets.io/cluster=demo,buckets.io/pool=fast");
        assert_eq!(pool.replicas, 12);
        assert_eq!(pool.observed_generation, 5);
    }

    #[test]
    fn refusal_is_a_condition_and_a_warning_once() {
        let observed = observed(0, 1, MigrationState::Idle);
        let step = plan(&observed, None, "t0");
        let status = cluster_status(&BucketsClusterStatus::default(), &inputs(&observed, &step, vec![], "t0"));
        let progressing = get(&status, PROGRESSING);
        assert_eq!((progressing.status.as_str(), progressing.reason.as_str()), ("False", "BelowOneSet"));
        let events = transitions(&BucketsClusterStatus::default(), &status);
        assert!(events.iter().any(|e| e.warning && e.reason == "BelowOneSet"));
        let again = cluster_status(&status, &inputs(&observed, &step, vec![], "t1"));
        assert!(transitions(&status, &again).is_empty(), "the same refusal is not repeated");
        let pool =
            pool_status(&BucketsPoolStatus::default(), &inputs(&observed, &step, vec![], "t0"), &observed.pools[0], 1);
        assert_eq!(pool.phase, "Refused");
        assert!(pool.conditions[0].message.contains("no active erasure set left"));
    }

    #[test]
    fn problems_make_the_cluster_degraded() {
        let observed = observed(8, 2, MigrationState::Idle);
        let step = plan(&observed, None, "t0");
        let healthy = cluster_status(&BucketsClusterStatus::default(), &inputs(&observed, &step, vec![], "t0"));
        let sick =
            cluster_status(&healthy, &inputs(&observed, &step, vec!["pod demo-fast-3 is not ready".into()], "t1"));
        assert_eq!(sick.phase, "Degraded");
        assert_eq!(get(&sick, READY).status, "False");
        assert_eq!(get(&sick, DEGRADED).message, "pod demo-fast-3 is not ready");
        assert_eq!(get(&sick, DEGRADED).last_transition_time, "t1");
        let events = transitions(&healthy, &sick);
        assert!(events.iter().all(|e| e.warning));
        assert_eq!(events.len(), 2, "phase change and Degraded: {events:?}");
    }

    #[test]
    fn migration_progress_for_the_printer_column() {
        let running = migration_progress(MigrationState::Running, 42.7, (10, 1000), (30, 3000), 512.0, Some(4), None);
        assert_eq!((running.percent, running.progress.as_str()), (42, "42%"));
        assert_eq!(running.bytes_total, 3000);
        let idle = migration_progress(MigrationState::Idle, 0.0, (0, 0), (0, 0), 0.0, None, None);
        assert_eq!(idle.progress, "-");
        assert_eq!(migration_progress(MigrationState::Running, 250.0, (0, 0), (0, 0), 0.0, None, None).percent, 100);
    }
}
