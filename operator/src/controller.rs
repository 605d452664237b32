//! The reconciler: one BucketsCluster at a time, woken by its pools, StatefulSets and
//! pods. Each reconcile runs dereference → validate (the state machine's refusals) →
//! build → apply → update_status, and records the step it is about to take in the status
//! *before* calling the nodes, so a restarted operator resumes from the status.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::admin::{BootstrapPool, Credentials, NodeApi, NodeMode};
use crate::apply::{self, KubeCallError, kube_error};
use crate::build::{self, LABEL_CLUSTER, Settings};
use crate::crd::{BucketsCluster, BucketsClusterStatus, BucketsPool, BucketsPoolStatus};
use crate::dereference::{self, DereferenceError, KubeState, NodeAnswers};
use crate::metrics::Metrics;
use crate::scaling::{self, NodeAction, Observed, Plan};
use crate::status::{self, Inputs};
use buckets_api::{AdminErrorCode, SetAction, SetId};

/// Keeps a cluster until the operator has cleaned up after it.
pub const CLUSTER_FINALIZER: &str = "buckets.io/cleanup";
/// Keeps a pool until its sets are drained and removed.
pub const POOL_FINALIZER: &str = "buckets.io/drain";
/// Requeue while a step is in flight (migration progress is polled this often).
const BUSY_REQUEUE: Duration = Duration::from_secs(5);
/// Requeue of a settled cluster (its health and migration state still refresh).
const IDLE_REQUEUE: Duration = Duration::from_secs(60);
/// Requeue after an error.
const ERROR_REQUEUE: Duration = Duration::from_secs(15);
/// After a write refused as stale (409): soon, the fresh object is already there.
const CONFLICT_REQUEUE: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Kube(#[from] KubeCallError),
    #[error("node admin API: {0}")]
    Node(String),
    #[error("BucketsCluster {0} has no namespace")]
    NotNamespaced(String),
    #[error(transparent)]
    Finalizer(#[from] Box<finalizer::Error<Error>>),
    /// A deletion that cannot finish yet (a bucket that still holds objects, a policy
    /// still attached): the finalizer stays and the reconcile runs again.
    #[error("deletion waits: {0}")]
    Waiting(String),
}

pub struct Context {
    pub client: Client,
    pub nodes: Arc<dyn NodeApi>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub reporter: Reporter,
}

pub async fn reconcile(cluster: Arc<BucketsCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = cluster.namespace().ok_or_else(|| Error::NotNamespaced(cluster.name_any()))?;
    let api: Api<BucketsCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, CLUSTER_FINALIZER, cluster, |event| async {
        match event {
            Finalizer::Apply(cluster) => reconcile_cluster(&cluster, &ctx).await,
            Finalizer::Cleanup(cluster) => cleanup(&cluster, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[outcome]).inc();
    ctx.metrics.reconcile_duration.with_label_values(&[outcome]).observe(started.elapsed().as_secs_f64());
    result
}

pub fn error_policy(cluster: Arc<BucketsCluster>, error: &Error, _ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        // The object changed under this reconcile: run again soon, on the fresh object.
        tracing::debug!(cluster = %cluster.name_any(), %error, "reconcile saw a stale object");
        return Action::requeue(CONFLICT_REQUEUE);
    }
    tracing::warn!(cluster = %cluster.name_any(), %error, "reconcile failed");
    Action::requeue(ERROR_REQUEUE)
}

impl Error {
    /// A write refused because the object changed since it was read (409 Conflict).
    pub fn is_conflict(&self) -> bool {
        let kube_error = match self {
            Error::Kube(e) => Some(e.source.as_ref()),
            Error::Finalizer(e) => match e.as_ref() {
                finalizer::Error::ApplyFailed(Error::Kube(e)) | finalizer::Error::CleanupFailed(Error::Kube(e)) => {
                    Some(e.source.as_ref())
                }
                _ => None,
            },
            _ => None,
        };
        matches!(kube_error, Some(kube::Error::Api(status)) if status.code == 409)
    }
}

pub(crate) fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

async fn reconcile_cluster(cluster: &BucketsCluster, ctx: &Context) -> Result<Action, Error> {
    let client = &ctx.client;
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();

    // The Secrets and Services first: pods need them to start.
    let (root_secret, cluster_secret) = {
        let mut rng = rand::rng();
        (build::secret::build_root_secret(cluster, &mut rng), build::secret::build_cluster_secret(cluster, &mut rng))
    };
    apply::create_secret_if_absent(client, &namespace, &root_secret).await?;
    apply::create_secret_if_absent(client, &namespace, &cluster_secret).await?;
    apply::apply(client, &namespace, &build::service::build_headless_service(cluster)).await?;
    apply::apply(client, &namespace, &build::service::build_client_service(cluster)).await?;

    let mut kube = dereference::kube_state(client, cluster).await?;
    for pool in kube.pools.iter_mut().filter(|p| p.metadata.deletion_timestamp.is_none()) {
        if !pool.finalizers().iter().any(|f| f == POOL_FINALIZER) {
            // The pool as the write left it: its status is written from that version.
            *pool = add_pool_finalizer(client, &namespace, pool).await?;
        }
    }
    let answers = dereference::ask_nodes(&kube, ctx.nodes.as_ref()).await;
    let pools = dereference::pool_views(cluster, &kube, &answers);
    let previous = cluster.status.clone().unwrap_or_default();
    let topology = answers.serving.as_ref().map(|(_, topology, _)| topology);
    let migration = answers.serving.as_ref().map(|(_, _, migration)| migration);
    let observed = Observed {
        topology: topology.map(|t| dereference::topology_view(cluster, t, &ctx.settings, &pools)),
        migration: match (migration, topology) {
            (Some(m), Some(t)) => dereference::migration_view(m, t),
            _ => Default::default(),
        },
        capacity: answers.capacity.as_ref().map(dereference::capacity_view),
        pools,
    };

    if observed.topology.is_none() && previous.topology_generation > 0 {
        // Bootstrapped before, yet no node serves now: never bootstrap twice. Report and
        // wait for the nodes.
        let problems = vec![format!(
            "no node of the cluster answers with its topology (generation {} was seen): {}",
            previous.topology_generation,
            describe_errors(&answers)
        )];
        let plan = Plan { waiting_for: Some("waiting for the nodes to come back".into()), ..Plan::default() };
        let kept = Observed { topology: None, ..observed };
        let mut next = status::cluster_status(&previous, &status_inputs(cluster, &kept, &plan, None, problems));
        next.topology_generation = previous.topology_generation;
        next.sets = previous.sets.clone();
        next.operation = previous.operation.clone();
        next.phase = "Degraded".into();
        publish_status(ctx, cluster, &previous, &next).await?;
        return Ok(Action::requeue(BUSY_REQUEUE));
    }

    let plan = scaling::plan(&observed, previous.operation.as_ref(), &now());

    // build + apply: the pools' StatefulSets and budgets, at the state machine's size.
    let released: BTreeSet<&String> = plan.release_pools.iter().collect();
    for pool in kube.pools.iter().filter(|p| !released.contains(&p.name_any())) {
        let replicas = plan.statefulset_replicas.get(&pool.name_any()).copied().unwrap_or(0);
        apply::apply(
            client,
            &namespace,
            &build::statefulset::build_statefulset(cluster, pool, replicas, &ctx.settings),
        )
        .await?;
        apply::apply(client, &namespace, &build::pdb::build_pdb(cluster, pool)).await?;
    }
    if cluster.spec.monitoring.service_monitor
        && apply::crd_exists(client, "servicemonitors.monitoring.coreos.com").await?
    {
        let resource = build::servicemonitor::service_monitor_resource();
        apply::apply_dynamic(client, &namespace, &resource, &build::servicemonitor::build_service_monitor(cluster))
            .await?;
    }

    // update_status before acting: the step is on record before it is taken.
    let problems = problems(&observed, &answers, migration);
    let progress = migration.map(|m| {
        status::migration_progress(
            m.state,
            m.percent,
            (m.moved_objects, m.moved_bytes),
            (m.total_objects, m.total_bytes),
            m.rate_bytes_per_second,
            m.eta_seconds,
            m.last_error.clone(),
        )
    });
    let inputs = status_inputs(cluster, &observed, &plan, progress, problems);
    let next = status::cluster_status(&previous, &inputs);
    publish_status(ctx, cluster, &previous, &next).await?;
    for (pool, view) in kube.pools.iter().zip(&observed.pools) {
        let previous = pool.status.clone().unwrap_or_default();
        let next = status::pool_status(&previous, &inputs, view, pool.metadata.generation.unwrap_or(0));
        if next != previous {
            patch_pool_status(client, &namespace, pool, &previous, &next).await?;
        }
    }

    // The nodes' side of the step.
    if let Some(credentials) = &kube.credentials {
        execute(ctx, cluster, &kube, &answers, credentials, &plan).await?;
        if let Some((endpoint, _, migration)) = &answers.serving {
            let wanted = cluster.spec.migration_bytes_per_second.max(0) as u64;
            if migration.bytes_per_second_limit != wanted {
                node_call(ctx, "throttle", ctx.nodes.throttle(endpoint, credentials, wanted).await)?;
            }
        }
    }
    for pool in &plan.release_pools {
        release_pool(client, &namespace, &name, &kube, pool).await?;
        publish_event(ctx, cluster, false, "PoolRemoved", format!("pool {pool} drained, removed and released")).await;
    }
    let live: BTreeSet<String> =
        kube.pools.iter().map(|p| p.name_any()).filter(|p| !plan.release_pools.contains(p)).collect();
    for orphan in apply::delete_orphans(client, &namespace, &name, &live).await? {
        tracing::info!(cluster = %name, %orphan, "deleted an orphan");
    }
    let busy = plan.operation.is_some() || !plan.actions.is_empty() || plan.waiting_for.is_some();
    Ok(Action::requeue(if busy { BUSY_REQUEUE } else { IDLE_REQUEUE }))
}

fn status_inputs<'a>(
    cluster: &'a BucketsCluster,
    observed: &'a Observed,
    plan: &'a Plan,
    migration: Option<crate::crd::MigrationProgress>,
    problems: Vec<String>,
) -> Inputs<'a> {
    Inputs {
        cluster_name: cluster.meta().name.as_deref().unwrap_or_default(),
        generation: cluster.metadata.generation.unwrap_or(0),
        observed,
        plan,
        migration,
        problems,
        deleting: cluster.metadata.deletion_timestamp.is_some(),
        now: now(),
    }
}

fn describe_errors(answers: &NodeAnswers) -> String {
    if answers.errors.is_empty() {
        return "no pod is running".into();
    }
    answers.errors.iter().map(|((pool, ordinal), e)| format!("{pool}-{ordinal}: {e}")).collect::<Vec<_>>().join("; ")
}

/// What is wrong now: nodes holding live sets that do not serve, migration errors.
fn problems(
    observed: &Observed,
    answers: &NodeAnswers,
    migration: Option<&buckets_api::MigrationStatus>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(topology) = &observed.topology else { return problems };
    for pool in &observed.pools {
        let highest = topology
            .sets
            .iter()
            .filter(|s| s.pool == pool.name && s.state != scaling::SetState::Removed)
            .map(|s| s.index)
            .max();
        let Some(highest) = highest else { continue };
        let needed = pool.geometry.replicas_for_sets(highest + 1);
        let down: Vec<String> = (0..needed)
            .filter(|o| {
                answers.states.get(&(pool.name.clone(), *o)).is_none_or(|s| s.state == NodeMode::AwaitingTopology)
            })
            .map(|o| format!("{}-{o}", pool.name))
            .collect();
        if !down.is_empty() {
            problems.push(format!("node(s) of pool {} not serving: {}", pool.name, down.join(", ")));
        }
    }
    if let Some(migration) = migration
        && migration.failed_objects > 0
    {
        problems.push(format!(
            "migration: {} object(s) failed to move{}",
            migration.failed_objects,
            migration.last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
        ));
    }
    problems
}

async fn publish_status(
    ctx: &Context,
    cluster: &BucketsCluster,
    previous: &BucketsClusterStatus,
    next: &BucketsClusterStatus,
) -> Result<(), Error> {
    if next != previous {
        let api: Api<BucketsCluster> = Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
        let patch = status_patch(previous, next, cluster.resource_version());
        api.patch_status(&cluster.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(kube_error(format!("updating the status of BucketsCluster {}", cluster.name_any())))?;
    }
    for note in status::transitions(previous, next) {
        publish_event(ctx, cluster, note.warning, &note.reason, note.message).await;
    }
    Ok(())
}

/// A merge patch from one status to the next: fields the next status leaves out (an
/// operation that ended, a migration that is gone) are sent as null, so they are removed
/// rather than kept. It names the resourceVersion the status was computed from: if the
/// object changed since (another writer, or a cache behind the API server), the API
/// server refuses it with 409 Conflict and the reconcile runs again on the fresh object,
/// so a step is never recorded, nor taken, from a stale view.
pub(crate) fn status_patch<T: serde::Serialize>(
    previous: &T,
    next: &T,
    resource_version: Option<String>,
) -> serde_json::Value {
    let mut next = serde_json::to_value(next).unwrap_or_default();
    if let (Some(next), Ok(serde_json::Value::Object(previous))) =
        (next.as_object_mut(), serde_json::to_value(previous))
    {
        for key in previous.keys() {
            next.entry(key.clone()).or_insert(serde_json::Value::Null);
        }
    }
    serde_json::json!({ "metadata": { "resourceVersion": resource_version }, "status": next })
}

/// A merge patch of an object's finalizers, on the condition that the object is still at
/// `resource_version` (a list written from a stale copy would drop another's finalizer).
pub(crate) fn finalizers_patch(finalizers: &[String], resource_version: Option<String>) -> serde_json::Value {
    serde_json::json!({ "metadata": { "finalizers": finalizers, "resourceVersion": resource_version } })
}

async fn patch_pool_status(
    client: &Client,
    namespace: &str,
    pool: &BucketsPool,
    previous: &BucketsPoolStatus,
    status: &BucketsPoolStatus,
) -> Result<(), Error> {
    Api::<BucketsPool>::namespaced(client.clone(), namespace)
        .patch_status(
            &pool.name_any(),
            &PatchParams::default(),
            &Patch::Merge(status_patch(previous, status, pool.resource_version())),
        )
        .await
        .map(|_| ())
        .map_err(|e| kube_error(format!("updating the status of BucketsPool {}", pool.name_any()))(e).into())
}

/// Events are best effort: a lost Event never fails a reconcile.
/// The API server refuses Events whose reason or note is longer (in bytes) than these
/// (events.k8s.io/v1 validation).
const EVENT_REASON_MAX_BYTES: usize = 128;
const EVENT_NOTE_MAX_BYTES: usize = 1024;
/// Bursts of watch events (a StatefulSet's pods starting together) make one reconcile.
const RECONCILE_DEBOUNCE: Duration = Duration::from_secs(1);

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

pub(crate) async fn publish_event<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    warning: bool,
    reason: &str,
    message: String,
) {
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    let event = KubeEvent {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: truncated(reason, EVENT_REASON_MAX_BYTES),
        note: Some(truncated(&message, EVENT_NOTE_MAX_BYTES)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::debug!(error = %e, "could not publish an event");
    }
}

async fn add_pool_finalizer(client: &Client, namespace: &str, pool: &BucketsPool) -> Result<BucketsPool, Error> {
    let mut finalizers = pool.finalizers().to_vec();
    finalizers.push(POOL_FINALIZER.into());
    Api::<BucketsPool>::namespaced(client.clone(), namespace)
        .patch(
            &pool.name_any(),
            &PatchParams::default(),
            &Patch::Merge(finalizers_patch(&finalizers, pool.resource_version())),
        )
        .await
        .map_err(|e| kube_error(format!("adding the finalizer of BucketsPool {}", pool.name_any()))(e).into())
}

async fn remove_pool_finalizer(client: &Client, namespace: &str, pool: &BucketsPool) -> Result<(), Error> {
    let finalizers: Vec<String> = pool.finalizers().iter().filter(|f| *f != POOL_FINALIZER).cloned().collect();
    match Api::<BucketsPool>::namespaced(client.clone(), namespace)
        .patch(
            &pool.name_any(),
            &PatchParams::default(),
            &Patch::Merge(finalizers_patch(&finalizers, pool.resource_version())),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(kube_error(format!("releasing BucketsPool {}", pool.name_any()))(e).into()),
    }
}

/// A drained and removed pool: its StatefulSet and budget go, then its finalizer.
async fn release_pool(
    client: &Client,
    namespace: &str,
    cluster_name: &str,
    kube: &KubeState,
    pool_name: &str,
) -> Result<(), Error> {
    let sts = build::statefulset_name(cluster_name, pool_name);
    apply::delete::<StatefulSet>(client, namespace, &sts).await?;
    apply::delete::<PodDisruptionBudget>(client, namespace, &build::pdb_name(cluster_name, pool_name)).await?;
    if let Some(pool) = kube.pools.iter().find(|p| p.name_any() == pool_name) {
        remove_pool_finalizer(client, namespace, pool).await?;
    }
    Ok(())
}

fn node_call<T>(ctx: &Context, action: &str, result: Result<T, buckets_api::AdminError>) -> Result<T, Error> {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.node_actions.with_label_values(&[action, outcome]).inc();
    result.map_err(|e| Error::Node(format!("{action}: {e}")))
}

/// Carries out the plan's admin calls in order, each with the generation the previous
/// one produced.
async fn execute(
    ctx: &Context,
    cluster: &BucketsCluster,
    kube: &KubeState,
    answers: &NodeAnswers,
    credentials: &Credentials,
    plan: &Plan,
) -> Result<(), Error> {
    let nodes = ctx.nodes.as_ref();
    let mut generation = answers.serving.as_ref().map_or(0, |(_, t, _)| t.generation);
    let serving = answers.serving.as_ref().map(|(endpoint, _, _)| endpoint.clone());
    let pool = |name: &str| kube.pools.iter().find(|p| p.name_any() == name);
    for action in &plan.actions {
        match action {
            NodeAction::Bootstrap { sets } => {
                let mut pools: Vec<BootstrapPool> = Vec::new();
                for (pool_name, index) in sets {
                    let Some(pool) = pool(pool_name) else { continue };
                    let drives = build::set_drive_urls(cluster, pool, *index, &ctx.settings);
                    match pools.iter_mut().find(|p| p.name == *pool_name) {
                        Some(entry) => entry.sets.push(drives),
                        None => pools.push(BootstrapPool { name: pool_name.clone(), sets: vec![drives] }),
                    }
                }
                // Any node that waits for a topology can bootstrap the cluster.
                let endpoint = kube
                    .pods
                    .iter()
                    .flat_map(|(pool, pods)| pods.iter().map(move |(ordinal, pod)| (pool, ordinal, pod)))
                    .filter(|(pool, ordinal, _)| {
                        answers
                            .states
                            .get(&((*pool).clone(), **ordinal))
                            .is_some_and(|s| s.state == NodeMode::AwaitingTopology)
                    })
                    .find_map(|(_, _, pod)| dereference::pod_endpoint(pod))
                    .ok_or_else(|| Error::Node("bootstrap: no node waits for a topology".into()))?;
                let topology = node_call(ctx, "bootstrap", nodes.bootstrap(&endpoint, credentials, pools).await)?;
                publish_event(
                    ctx,
                    cluster,
                    false,
                    "Bootstrapped",
                    format!("topology generation {} with {} set(s)", topology.generation, sets.len()),
                )
                .await;
            }
            NodeAction::AddSet { pool: pool_name, index } => {
                let endpoint = serving.as_deref().ok_or_else(|| Error::Node("add set: no node serves".into()))?;
                let Some(pool) = pool(pool_name) else { continue };
                let drives = build::set_drive_urls(cluster, pool, *index, &ctx.settings);
                let topology = node_call(
                    ctx,
                    "add-set",
                    nodes.add_set(endpoint, credentials, pool_name, drives, generation).await,
                )?;
                generation = topology.generation;
                publish_event(ctx, cluster, false, "SetAdded", format!("pool {pool_name} set {index} added")).await;
            }
            NodeAction::DrainSet { id } | NodeAction::RemoveSet { id } => {
                let endpoint = serving.as_deref().ok_or_else(|| Error::Node("set change: no node serves".into()))?;
                let set_action =
                    if matches!(action, NodeAction::DrainSet { .. }) { SetAction::Drain } else { SetAction::Remove };
                let verb = set_action.as_str();
                let set = SetId::try_from(*id).map_err(|_| Error::Node(format!("{verb}: set id {id} out of range")))?;
                let result = nodes.change_set(endpoint, credentials, set, set_action, generation).await;
                // Not empty yet (something arrived after the pass): the next reconcile asks
                // again once the migration says so.
                if let Err(e) = &result
                    && e.code() == Some(&AdminErrorCode::SetNotEmpty)
                {
                    ctx.metrics.node_actions.with_label_values(&[verb, "not-empty"]).inc();
                    tracing::info!(set = id, error = %e, "set not empty yet");
                    continue;
                }
                generation = node_call(ctx, verb, result)?.generation;
                let reason = match set_action {
                    SetAction::Drain => "SetDraining",
                    SetAction::Remove => "SetRemoved",
                };
                publish_event(ctx, cluster, false, reason, format!("set {id}: {verb}")).await;
            }
        }
    }
    Ok(())
}

/// The cluster is being deleted: its pools go with it (their data is the cluster's);
/// everything else it owns is deleted by the garbage collector through owner references.
async fn cleanup(cluster: &BucketsCluster, ctx: &Context) -> Result<Action, Error> {
    let namespace = cluster.namespace().unwrap_or_default();
    let api: Api<BucketsPool> = Api::namespaced(ctx.client.clone(), &namespace);
    let pools = api.list(&ListParams::default()).await.map_err(kube_error("listing BucketsPools"))?;
    for pool in pools.items.into_iter().filter(|p| p.spec.cluster == cluster.name_any()) {
        remove_pool_finalizer(&ctx.client, &namespace, &pool).await?;
        match api.delete(&pool.name_any(), &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(kube_error(format!("deleting BucketsPool {}", pool.name_any()))(e).into()),
        }
    }
    publish_event(ctx, cluster, false, "Deleted", "the cluster and its pools are being deleted".into()).await;
    Ok(Action::await_change())
}

/// Pools are reconciled with their cluster; this only speaks for a pool whose cluster does
/// not exist (no cluster reconcile ever sees it): status Pending with ClusterNotFound and
/// a Warning Event, so `kubectl get bp` and `kubectl describe bp` say what is wrong.
pub async fn reconcile_pool(pool: Arc<BucketsPool>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = pool.namespace().ok_or_else(|| Error::NotNamespaced(pool.name_any()))?;
    if pool.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let clusters: Api<BucketsCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let cluster = clusters
        .get_opt(&pool.spec.cluster)
        .await
        .map_err(kube_error(format!("reading BucketsCluster {}", pool.spec.cluster)))?;
    if cluster.is_some() {
        // The cluster's reconciler owns this pool's status.
        return Ok(Action::await_change());
    }
    let previous = pool.status.clone().unwrap_or_default();
    let next = status::orphan_pool_status(
        &previous,
        &namespace,
        &pool.name_any(),
        &pool.spec.cluster,
        pool.metadata.generation.unwrap_or(0),
        &now(),
    );
    // The condition keeps its transition time, so an unchanged status compares equal.
    if next != previous {
        patch_pool_status(&ctx.client, &namespace, &pool, &previous, &next).await?;
        let message = next.conditions.first().map(|c| c.message.clone()).unwrap_or_default();
        publish_event(&ctx, pool.as_ref(), true, status::CLUSTER_NOT_FOUND, message).await;
    }
    Ok(Action::await_change())
}

pub fn pool_error_policy(pool: Arc<BucketsPool>, error: &Error, _ctx: Arc<Context>) -> Action {
    if error.is_conflict() {
        return Action::requeue(CONFLICT_REQUEUE);
    }
    tracing::warn!(pool = %pool.name_any(), %error, "pool reconcile failed");
    Action::requeue(ERROR_REQUEUE)
}

/// Runs the controllers (clusters, pools without one, and the access resources) until a
/// shutdown signal.
pub async fn run(ctx: Arc<Context>) {
    let pools = Controller::new(Api::<BucketsPool>::all(ctx.client.clone()), watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile_pool, pool_error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "pool reconcile error");
            }
        });
    tokio::join!(run_clusters(ctx.clone()), pools, run_access(ctx));
}

/// The BucketsUser, BucketsPolicy and BucketsBucket controllers. Users do not watch
/// their Secrets (that needs the right to list every Secret); a deleted one is made
/// again at the next periodic reconcile.
async fn run_access(ctx: Arc<Context>) {
    use crate::access;
    use crate::access_crd::{BucketsBucket, BucketsPolicy, BucketsUser};
    let client = ctx.client.clone();
    let users = Controller::new(Api::<BucketsUser>::all(client.clone()), watcher::Config::default())
        .shutdown_on_signal()
        .run(access::user::reconcile, access::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "user reconcile error");
            }
        });
    let policies = Controller::new(Api::<BucketsPolicy>::all(client.clone()), watcher::Config::default())
        .shutdown_on_signal()
        .run(access::policy::reconcile, access::error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "policy reconcile error");
            }
        });
    let buckets = Controller::new(Api::<BucketsBucket>::all(client), watcher::Config::default())
        .shutdown_on_signal()
        .run(access::bucket::reconcile, access::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "bucket reconcile error");
            }
        });
    tokio::join!(users, policies, buckets);
}

async fn run_clusters(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let clusters: Api<BucketsCluster> = Api::all(client.clone());
    let owned = watcher::Config::default().labels(LABEL_CLUSTER);
    Controller::new(clusters, watcher::Config::default())
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .watches(Api::<BucketsPool>::all(client.clone()), watcher::Config::default(), |pool| {
            pool.namespace().map(|ns| ObjectRef::<BucketsCluster>::new(&pool.spec.cluster).within(&ns))
        })
        .watches(Api::<Pod>::all(client.clone()), owned, |pod| {
            let cluster = pod.labels().get(LABEL_CLUSTER).cloned();
            match (cluster, pod.namespace()) {
                (Some(cluster), Some(ns)) => Some(ObjectRef::<BucketsCluster>::new(&cluster).within(&ns)),
                _ => None,
            }
        })
        .with_config(kube::runtime::controller::Config::default().debounce(RECONCILE_DEBOUNCE))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile error");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::{Value, json};

    use super::*;
    use crate::testing::{FakeApi, FakeNodes, fake_client};

    const NS: &str = "storage";
    const CLUSTER_PATH: &str = "/apis/buckets.io/v1alpha1/namespaces/storage/bucketsclusters/demo";
    const POOL_PATH: &str = "/apis/buckets.io/v1alpha1/namespaces/storage/bucketspools/fast";
    const STS_PATH: &str = "/apis/apps/v1/namespaces/storage/statefulsets/demo-fast";

    /// A pool of four one-drive nodes (one set of 4) in `cluster`.
    fn pool(name: &str, cluster: &str) -> Value {
        json!({
            "apiVersion": "buckets.io/v1alpha1", "kind": "BucketsPool",
            "metadata": { "name": name, "namespace": NS },
            "spec": { "cluster": cluster, "replicas": 4, "drivesPerNode": 1, "setSize": 4, "storage": { "size": "1Gi" } }
        })
    }

    struct Bed {
        api: Arc<Mutex<FakeApi>>,
        nodes: Arc<FakeNodes>,
        ctx: Arc<Context>,
    }

    impl Bed {
        fn new() -> Self {
            let api = Arc::new(Mutex::new(FakeApi::default()));
            {
                let mut fake = api.lock().unwrap();
                fake.insert(
                    CLUSTER_PATH,
                    json!({
                        "apiVersion": "buckets.io/v1alpha1", "kind": "BucketsCluster",
                        "metadata": { "name": "demo", "namespace": NS },
                        "spec": { "image": "buckets/buckets-node:test" }
                    }),
                );
                fake.insert(POOL_PATH, pool("fast", "demo"));
            }
            let nodes = Arc::new(FakeNodes::default());
            let ctx = Bed::context(&api, &nodes);
            Bed { api, nodes, ctx }
        }

        /// A fresh operator process: new client and context, same API server and nodes.
        fn context(api: &Arc<Mutex<FakeApi>>, nodes: &Arc<FakeNodes>) -> Arc<Context> {
            Arc::new(Context {
                client: fake_client(api.clone()),
                nodes: nodes.clone(),
                settings: Settings::default(),
                metrics: Arc::new(Metrics::new()),
                reporter: Reporter { controller: "buckets-operator".into(), instance: None },
            })
        }

        fn object(&self, path: &str) -> Value {
            self.api.lock().unwrap().get(path).cloned().unwrap_or(Value::Null)
        }

        async fn reconcile(&self) -> Action {
            let cluster: BucketsCluster = serde_json::from_value(self.object(CLUSTER_PATH)).unwrap();
            self.api.lock().unwrap().calls.clear();
            reconcile(Arc::new(cluster), self.ctx.clone()).await.expect("reconcile")
        }

        fn calls(&self) -> Vec<String> {
            self.api.lock().unwrap().calls.clone()
        }

        /// Plays kubelet: the StatefulSet's pods run, with IPs.
        fn start_pods(&self) {
            let replicas = self.object(STS_PATH)["spec"]["replicas"].as_i64().unwrap();
            let mut api = self.api.lock().unwrap();
            for ordinal in 0..replicas {
                let path = format!("/api/v1/namespaces/{NS}/pods/demo-fast-{ordinal}");
                if api.get(&path).is_none() {
                    api.insert(
                        &path,
                        json!({
                            "apiVersion": "v1", "kind": "Pod",
                            "metadata": { "name": format!("demo-fast-{ordinal}"), "namespace": NS,
                                          "labels": { "buckets.io/cluster": "demo", "buckets.io/pool": "fast" } },
                            "status": { "phase": "Running", "podIP": format!("10.0.0.{}", ordinal + 1) }
                        }),
                    );
                }
            }
            // The StatefulSet controller reports its pods.
            if let Some(sts) = api.objects.get_mut(STS_PATH) {
                sts["status"] = json!({ "replicas": replicas, "readyReplicas": replicas });
            }
        }

        fn set_replicas(&self, replicas: i64) {
            let mut api = self.api.lock().unwrap();
            let pool = api.objects.get_mut(POOL_PATH).unwrap();
            pool["spec"]["replicas"] = json!(replicas);
            pool["metadata"]["generation"] = json!(pool["metadata"]["generation"].as_i64().unwrap() + 1);
        }

        fn status(&self) -> Value {
            self.object(CLUSTER_PATH)["status"].clone()
        }

        fn condition(&self, kind: &str) -> Value {
            self.status()["conditions"].as_array().unwrap().iter().find(|c| c["type"] == kind).cloned().unwrap()
        }

        fn node_calls(&self) -> Vec<String> {
            self.nodes.state.lock().unwrap().calls.clone()
        }
    }

    #[test]
    fn event_texts_are_cut_to_the_api_servers_byte_limits_at_character_boundaries() {
        assert_eq!(truncated("short", EVENT_REASON_MAX_BYTES), "short");
        let long = "ü".repeat(EVENT_NOTE_MAX_BYTES);
        let cut = truncated(&long, EVENT_NOTE_MAX_BYTES);
        assert_eq!(cut.len(), EVENT_NOTE_MAX_BYTES, "two-byte characters fill it exactly");
        let cut = truncated(&format!("a{long}"), EVENT_NOTE_MAX_BYTES);
        assert_eq!(cut.len(), EVENT_NOTE_MAX_BYTES - 1, "never half a character");
        assert!(cut.ends_with('ü'));
    }

    fn position(calls: &[String], needle: &str) -> usize {
        calls.iter().position(|c| c.contains(needle)).unwrap_or_else(|| panic!("no call like {needle} in {calls:#?}"))
    }

    #[tokio::test]
    async fn a_new_cluster_gets_its_objects_then_bootstraps_once_every_pod_is_up() {
        let bed = Bed::new();
        // First pass: only the finalizer.
        bed.reconcile().await;
        assert_eq!(bed.calls(), vec![format!("PATCH {CLUSTER_PATH}")]);
        assert_eq!(bed.object(CLUSTER_PATH)["metadata"]["finalizers"][0], CLUSTER_FINALIZER);

        bed.reconcile().await;
        let calls = bed.calls();
        // Credentials and Services before the pods that need them; status last.
        assert!(position(&calls, "POST /api/v1/namespaces/storage/secrets") < position(&calls, "services/demo-hl"));
        assert!(position(&calls, "services/demo-hl") < position(&calls, "statefulsets/demo-fast"));
        assert!(position(&calls, "statefulsets/demo-fast") < position(&calls, "bucketsclusters/demo/status"));
        assert_eq!(bed.object(POOL_PATH)["metadata"]["finalizers"][0], POOL_FINALIZER);
        let root = bed.object("/api/v1/namespaces/storage/secrets/demo-root");
        assert_eq!(root["stringData"]["rootPassword"].as_str().unwrap().len(), 32);
        assert_eq!(bed.object(STS_PATH)["spec"]["replicas"], 4);
        assert_eq!(bed.status()["phase"], "Bootstrapping");
        assert_eq!(bed.condition("Progressing")["reason"], "BootstrapWaitingForPods");
        assert!(bed.node_calls().is_empty(), "no node is up: nothing is asked");

        // The root Secret is never overwritten, and nothing changed: no status write (a
        // write would wake the controller again, a loop).
        bed.reconcile().await;
        assert!(bed.api.lock().unwrap().calls_matching("bucketsclusters/demo/status").is_empty(), "{:?}", bed.calls());
        assert_eq!(bed.object("/api/v1/namespaces/storage/secrets/demo-root")["stringData"], root["stringData"]);

        bed.start_pods();
        bed.reconcile().await;
        let node_calls = bed.node_calls();
        assert_eq!(node_calls.len(), 1, "{node_calls:?}");
        assert!(node_calls[0].starts_with("bootstrap via http://10.0.0."), "{node_calls:?}");
        // The status recorded the step before the call.
        assert_eq!(bed.status()["operation"]["stage"], "Bootstrapping");

        bed.reconcile().await;
        let status = bed.status();
        assert_eq!(status["phase"], "Ready");
        assert_eq!(status["activeSets"], 1);
        assert_eq!(status["topologyGeneration"], 1);
        assert_eq!(bed.condition("Ready")["status"], "True");
        assert!(status.get("operation").is_none_or(|o| o.is_null()));
        let pool = bed.object(POOL_PATH)["status"].clone();
        assert_eq!(pool["replicas"], 4);
        assert_eq!(pool["activeSets"], 1);
        assert_eq!(pool["phase"], "Ready");
        assert!(pool["selector"].as_str().unwrap().contains("buckets.io/pool=fast"));
        assert_eq!(bed.node_calls().len(), 1, "bootstrap happens once");
    }

    async fn ready_bed() -> Bed {
        let bed = Bed::new();
        bed.reconcile().await;
        bed.reconcile().await;
        bed.start_pods();
        bed.reconcile().await;
        bed.reconcile().await;
        assert_eq!(bed.status()["phase"], "Ready");
        bed
    }

    #[tokio::test]
    async fn scale_up_and_down_step_by_step_and_survive_an_operator_restart() {
        let mut bed = ready_bed().await;
        bed.set_replicas(8);
        bed.reconcile().await;
        assert_eq!(bed.object(STS_PATH)["spec"]["replicas"], 8, "the StatefulSet grows first");
        assert_eq!(bed.condition("Progressing")["reason"], "ScaleUpWaitingForPods");
        assert_eq!(bed.node_calls().len(), 1, "no set before its pods are up");

        bed.start_pods();
        bed.reconcile().await;
        let calls = bed.node_calls();
        assert_eq!(
            calls.last().unwrap(),
            "add-set fast http://demo-fast-4.demo-hl.storage.svc.cluster.local:9001/data/d0"
        );
        assert_eq!(bed.status()["operation"]["kind"], "ScaleUp");

        // The operator restarts mid-migration: the new process resumes from the status.
        bed.ctx = Bed::context(&bed.api, &bed.nodes);
        bed.reconcile().await;
        let status = bed.status();
        assert_eq!(status["phase"], "Scaling");
        assert_eq!(status["operation"]["stage"], "Migrating");
        assert_eq!(status["migration"]["progress"], "50%");
        assert_eq!(bed.condition("Progressing")["reason"], "ScaleUpMigrating");
        assert_eq!(bed.node_calls().len(), 2, "nothing is added twice");

        bed.nodes.finish_migration();
        bed.reconcile().await;
        assert_eq!(bed.status()["phase"], "Ready");
        assert_eq!(bed.status()["activeSets"], 2);

        // Scale down: drain the highest set, wait, remove it, then shrink.
        bed.set_replicas(4);
        bed.reconcile().await;
        assert_eq!(bed.node_calls().last().unwrap(), "drain 1");
        assert_eq!(bed.object(STS_PATH)["spec"]["replicas"], 8, "pods stay while their set drains");
        bed.reconcile().await;
        assert_eq!(bed.status()["operation"]["stage"], "Migrating");
        assert!(!bed.node_calls().iter().any(|c| c == "remove 1"), "no removal before the set is empty");
        bed.nodes.finish_migration();
        bed.reconcile().await;
        assert_eq!(bed.node_calls().last().unwrap(), "remove 1");
        bed.reconcile().await;
        assert_eq!(bed.object(STS_PATH)["spec"]["replicas"], 4, "the StatefulSet shrinks after the removal");
        let sets = bed.status()["sets"].clone();
        assert_eq!(sets[1]["state"], "Removed");
    }

    #[tokio::test]
    async fn a_reconcile_of_a_stale_object_is_refused_and_the_retry_takes_no_step_twice() {
        let bed = ready_bed().await;
        bed.set_replicas(8);
        bed.reconcile().await;
        assert_eq!(bed.condition("Progressing")["reason"], "ScaleUpWaitingForPods");
        // The cluster as a lagging cache would hand it over: read before the next step.
        let stale: BucketsCluster = serde_json::from_value(bed.object(CLUSTER_PATH)).unwrap();
        bed.start_pods();
        bed.reconcile().await;
        assert_eq!(bed.node_calls().len(), 2, "the bootstrap, then one add-set");
        let (status, statefulset) = (bed.status(), bed.object(STS_PATH));

        // Reconciled from the stale object, the status write is refused (409) before any
        // node is asked to do anything; the error policy retries soon.
        let error = reconcile(Arc::new(stale), bed.ctx.clone()).await.expect_err("a stale status write is refused");
        assert!(error.is_conflict(), "{error}");
        let cluster = Arc::new(serde_json::from_value::<BucketsCluster>(bed.object(CLUSTER_PATH)).unwrap());
        assert_eq!(error_policy(cluster, &error, bed.ctx.clone()), Action::requeue(CONFLICT_REQUEUE));
        assert_eq!(bed.node_calls().len(), 2, "nothing was asked of the nodes from the stale view");
        assert_eq!(bed.status(), status, "the stored status is the fresh reconcile's");
        assert_eq!(bed.object(STS_PATH)["spec"], statefulset["spec"]);

        // Another writer changed the cluster in between (its labels): the operator's next
        // write, from its copy, is refused too, and the retry on the fresh object goes on
        // from the recorded step without adding the set again.
        let copy: BucketsCluster = serde_json::from_value(bed.object(CLUSTER_PATH)).unwrap();
        bed.api
            .lock()
            .unwrap()
            .touch(CLUSTER_PATH, |cluster| cluster["metadata"]["labels"] = json!({ "team": "data" }));
        let error = reconcile(Arc::new(copy), bed.ctx.clone()).await.expect_err("the copy is stale");
        assert!(error.is_conflict(), "{error}");
        bed.reconcile().await;
        assert_eq!(bed.status()["operation"]["stage"], "Migrating");
        assert_eq!(bed.object(CLUSTER_PATH)["metadata"]["labels"]["team"], "data", "the other write is kept");
        assert_eq!(bed.node_calls().len(), 2, "nothing is added twice");
        bed.nodes.finish_migration();
        bed.reconcile().await;
        assert_eq!(bed.status()["phase"], "Ready");
        assert_eq!(bed.status()["activeSets"], 2);
    }

    #[tokio::test]
    async fn refusing_to_remove_the_last_set_changes_nothing() {
        let bed = ready_bed().await;
        bed.set_replicas(0);
        bed.reconcile().await;
        assert_eq!(bed.condition("Progressing")["reason"], "BelowOneSet");
        assert_eq!(bed.object(STS_PATH)["spec"]["replicas"], 4);
        assert_eq!(bed.object(POOL_PATH)["status"]["phase"], "Refused");
        assert_eq!(bed.node_calls().len(), 1, "only the bootstrap");
        let events = bed.api.lock().unwrap().calls_matching("events");
        assert!(!events.is_empty(), "the refusal is an Event");
    }

    #[tokio::test]
    async fn a_drain_without_room_is_refused_with_the_numbers() {
        let bed = ready_bed().await;
        bed.set_replicas(8);
        bed.reconcile().await;
        bed.start_pods();
        bed.reconcile().await;
        bed.nodes.finish_migration();
        bed.reconcile().await;
        assert_eq!(bed.status()["activeSets"], 2);
        // The set that would stay has almost no free space left.
        bed.nodes.state.lock().unwrap().free_per_drive = 1000;
        bed.set_replicas(4);
        bed.reconcile().await;
        let progressing = bed.condition("Progressing");
        assert_eq!(progressing["reason"], "InsufficientCapacity");
        assert!(progressing["message"].as_str().unwrap().contains("GiB"), "{progressing}");
        assert!(!bed.node_calls().iter().any(|c| c.starts_with("drain")), "nothing drained");
        assert_eq!(bed.object(STS_PATH)["spec"]["replicas"], 8);
    }

    #[tokio::test]
    async fn a_pool_naming_a_missing_cluster_says_so_once() {
        let bed = Bed::new();
        let lost_path = "/apis/buckets.io/v1alpha1/namespaces/storage/bucketspools/lost";
        bed.api.lock().unwrap().insert(lost_path, pool("lost", "gone"));
        let reconcile = |path: &'static str| {
            let pool: BucketsPool = serde_json::from_value(bed.object(path)).unwrap();
            bed.api.lock().unwrap().calls.clear();
            reconcile_pool(Arc::new(pool), bed.ctx.clone())
        };

        reconcile(lost_path).await.expect("reconcile");
        let status = bed.object(lost_path)["status"].clone();
        assert_eq!(status["phase"], "Pending");
        assert_eq!(status["conditions"][0]["type"], "Progressing");
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][0]["reason"], "ClusterNotFound");
        let message = status["conditions"][0]["message"].as_str().unwrap();
        assert!(message.contains("BucketsCluster gone does not exist in namespace storage"), "{message}");
        assert_eq!(bed.api.lock().unwrap().calls_matching("events").len(), 1, "{:?}", bed.calls());
        assert!(bed.object("/apis/apps/v1/namespaces/storage/statefulsets/gone-lost").is_null(), "nothing built");

        // Nothing changed: no second write, no second Event.
        reconcile(lost_path).await.expect("reconcile");
        assert_eq!(bed.calls(), vec![format!("GET /apis/buckets.io/v1alpha1/namespaces/{NS}/bucketsclusters/gone")]);

        // A pool whose cluster exists is left to the cluster's reconciler.
        reconcile(POOL_PATH).await.expect("reconcile");
        assert_eq!(bed.calls(), vec![format!("GET {CLUSTER_PATH}")]);
        assert!(bed.object(POOL_PATH)["status"].is_null());
    }

    #[tokio::test]
    async fn deleting_the_cluster_deletes_its_pools() {
        let bed = ready_bed().await;
        {
            let mut api = bed.api.lock().unwrap();
            let cluster = api.objects.get_mut(CLUSTER_PATH).unwrap();
            cluster["metadata"]["deletionTimestamp"] = json!("2026-11-26T00:00:02Z");
        }
        bed.reconcile().await;
        let mut api = bed.api.lock().unwrap();
        api.collect_garbage();
        assert!(api.get(POOL_PATH).is_none(), "the pool went with its cluster");
        assert!(api.get(CLUSTER_PATH).is_none(), "the cluster's finalizer was released");
    }
}
