//! The access reconcilers: `BucketsUser` (`user`), `BucketsPolicy` (`policy`) and
//! `BucketsBucket` (`bucket`). Each reaches its BucketsCluster the way the cluster's
//! reconciler does — the root Secret's credentials and a serving pod's admin endpoint —
//! and declares its object there through the admin API only. Each ends in an `Outcome`
//! (Ready, or why not) that becomes the Ready condition and, when it changes, an Event.
//! A finalizer removes the object from the cluster when the resource is deleted. Must
//! never touch a cluster's pods, StatefulSets or topology.

pub mod bucket;
pub mod policy;
pub mod user;

use std::time::Duration;

use buckets_api::{AdminError, AdminErrorCode};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::admin::{Credentials, NodeMode};
use crate::apply::kube_error;
use crate::build::{LABEL_CLUSTER, root_secret_name};
use crate::controller::{Context, Error, publish_event, status_patch};
use crate::crd::{BucketsCluster, Condition};
use crate::status::{READY, condition};

/// Keeps an access resource until its user, policy or bucket is gone from the cluster.
pub const ACCESS_FINALIZER: &str = "buckets.io/remove-from-cluster";
/// Requeue of a resource that is as its spec says: someone may change the cluster behind
/// the operator's back with buckets-admin, or delete a user's Secret (the operator does
/// not watch Secrets: that would take the right to list every Secret of the cluster);
/// this puts it back within a minute.
const SETTLED_REQUEUE: Duration = Duration::from_secs(60);
/// Requeue while waiting for the cluster, or after the cluster refused something that
/// may resolve itself (a policy not created yet, a bucket not emptied yet).
pub(crate) const WAIT_REQUEUE: Duration = Duration::from_secs(15);

/// How to reach a cluster's admin API.
pub struct Connection {
    pub cluster: BucketsCluster,
    pub endpoint: String,
    pub credentials: Credentials,
}

/// Where a cluster stands for its access resources.
pub enum Reach {
    Connected(Box<Connection>),
    /// No such BucketsCluster, or it is being deleted: nothing of it is left to change.
    Gone(Outcome),
    /// The cluster has never served (no topology): nothing was ever made in it.
    NotBootstrapped(Outcome),
    /// Bootstrapped, and no node answers now.
    Unreachable(Outcome),
}

/// How one reconcile ended: the Ready condition's status, reason and message, whether
/// that deserves a Warning, and when to look again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ready: bool,
    pub reason: String,
    pub message: String,
    pub warning: bool,
    pub requeue: Duration,
}

impl Outcome {
    pub fn ready(reason: &str, message: String) -> Self {
        Outcome { ready: true, reason: reason.into(), message, warning: false, requeue: SETTLED_REQUEUE }
    }

    pub fn waiting(reason: &str, message: String) -> Self {
        Outcome { ready: false, reason: reason.into(), message, warning: false, requeue: WAIT_REQUEUE }
    }

    pub fn refused(reason: &str, message: String) -> Self {
        Outcome { ready: false, reason: reason.into(), message, warning: true, requeue: WAIT_REQUEUE }
    }

    /// The cluster refused a call (its error code is the reason) or did not answer.
    pub fn from_node(action: &str, error: &AdminError) -> Self {
        match error {
            AdminError::Refused { code, message, .. } => {
                Outcome::refused(code.as_str(), format!("{action}: {message}"))
            }
            other => Outcome::waiting("ClusterUnreachable", format!("{action}: {other}")),
        }
    }
}

/// Whether a node answered with `code`.
pub fn is(error: &AdminError, code: AdminErrorCode) -> bool {
    error.code() == Some(&code)
}

/// Counts a node call in the operator's metrics and hands its result back.
pub fn counted<T>(ctx: &Context, action: &str, result: Result<T, AdminError>) -> Result<T, AdminError> {
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.node_actions.with_label_values(&[action, outcome]).inc();
    result
}

/// Finds the cluster `name` of `namespace`, its root credentials and a serving node.
pub async fn reach(ctx: &Context, namespace: &str, name: &str) -> Result<Reach, Error> {
    let client = &ctx.client;
    let cluster = Api::<BucketsCluster>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(kube_error(format!("reading BucketsCluster {name}")))?;
    let Some(cluster) = cluster else {
        return Ok(Reach::Gone(Outcome::refused(
            "ClusterNotFound",
            format!("BucketsCluster {name} does not exist in namespace {namespace}"),
        )));
    };
    if cluster.metadata.deletion_timestamp.is_some() {
        return Ok(Reach::Gone(Outcome::refused("ClusterDeleting", format!("BucketsCluster {name} is being deleted"))));
    }
    let status = cluster.status.clone().unwrap_or_default();
    if status.topology_generation == 0 {
        let phase = if status.phase.is_empty() { "new".to_string() } else { status.phase };
        return Ok(Reach::NotBootstrapped(Outcome::waiting(
            "ClusterNotReady",
            format!("BucketsCluster {name} does not serve yet (phase {phase}); waiting for it"),
        )));
    }
    let secret_name = root_secret_name(&cluster);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(&secret_name)
        .await
        .map_err(kube_error(format!("reading secret {secret_name}")))?;
    let Some(secret) = secret else {
        return Ok(Reach::Unreachable(Outcome::waiting(
            "ClusterNotReady",
            format!("the root credentials Secret {secret_name} of BucketsCluster {name} does not exist"),
        )));
    };
    let credentials = match crate::dereference::credentials_from(&secret_name, &secret) {
        Ok(credentials) => credentials,
        Err(e) => return Ok(Reach::Unreachable(Outcome::refused("ClusterNotReady", e.to_string()))),
    };
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}"));
    let pods = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&selector)
        .await
        .map_err(kube_error(format!("listing the pods of BucketsCluster {name}")))?;
    let mut why = Vec::new();
    for endpoint in pods.items.iter().filter_map(crate::dereference::pod_endpoint) {
        match ctx.nodes.node_state(&endpoint, &credentials).await {
            Ok(state) if state.state == NodeMode::Serving => {
                return Ok(Reach::Connected(Box::new(Connection { cluster, endpoint, credentials })));
            }
            Ok(_) => why.push(format!("{endpoint}: waits for a topology")),
            Err(e) => why.push(format!("{endpoint}: {e}")),
        }
    }
    let why = if why.is_empty() { "no pod is running".to_string() } else { why.join("; ") };
    Ok(Reach::Unreachable(Outcome::waiting(
        "ClusterUnreachable",
        format!("no node of BucketsCluster {name} serves: {why}"),
    )))
}

/// The Ready condition after `outcome`, keeping its transition time while its status
/// holds.
pub fn ready_condition(previous: &[Condition], outcome: &Outcome, generation: i64, now: &str) -> Condition {
    condition(previous, READY, outcome.ready, &outcome.reason, outcome.message.clone(), (generation, now))
}

/// Writes `next` as the status of `object` when it differs from `previous`, and
/// publishes an Event when the Ready condition changed its status or reason.
pub async fn publish<K, S>(ctx: &Context, object: &K, previous: &S, next: &S, outcome: &Outcome) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if next == previous {
        return Ok(());
    }
    let name = object.name_any();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let patch = status_patch(previous, next, object.resource_version());
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(kube_error(format!("updating the status of {} {name}", K::kind(&()))))?;
    let ready = |status: &S| -> Option<(String, String)> {
        let value = serde_json::to_value(status).ok()?;
        let conditions = value.get("conditions")?.as_array()?.clone();
        let ready = conditions.into_iter().find(|c| c["type"] == READY)?;
        Some((ready["status"].as_str()?.to_string(), ready["reason"].as_str()?.to_string()))
    };
    if ready(previous) != ready(next) {
        publish_event(ctx, object, outcome.warning, &outcome.reason, outcome.message.clone()).await;
    }
    Ok(())
}

/// The action after a reconcile that ended in `outcome`.
pub fn next_action(outcome: &Outcome) -> Action {
    Action::requeue(outcome.requeue)
}

/// Error policy of the access controllers: a stale object soon, a deletion that waits
/// (already said in the status) or any other error after a while.
pub fn error_policy<K: ResourceExt>(object: std::sync::Arc<K>, error: &Error, _ctx: std::sync::Arc<Context>) -> Action {
    if error.is_conflict() {
        return Action::requeue(Duration::from_millis(500));
    }
    match waiting(error) {
        true => tracing::info!(name = %object.name_any(), %error, "deletion waits"),
        false => tracing::warn!(name = %object.name_any(), %error, "access reconcile failed"),
    }
    Action::requeue(WAIT_REQUEUE)
}

fn waiting(error: &Error) -> bool {
    use kube::runtime::finalizer::Error as F;
    match error {
        Error::Waiting(_) => true,
        Error::Finalizer(e) => matches!(e.as_ref(), F::CleanupFailed(Error::Waiting(_))),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
