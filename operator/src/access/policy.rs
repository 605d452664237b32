//! BucketsPolicy: the cluster's IAM policy named as the resource, with the spec's
//! document. A document the cluster refuses is the Ready condition's reason
//! (MalformedPolicy and the cluster's words) and a Warning Event. Deleting the resource
//! removes the policy; while users or groups still have it attached the deletion waits
//! (PolicyInUse), so nobody's rights change behind their back.

use std::sync::Arc;

use buckets_api::AdminErrorCode;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::{ACCESS_FINALIZER, Outcome, Reach, counted, is, publish, reach, ready_condition};
use crate::access_crd::{BucketsPolicy, BucketsPolicyStatus};
use crate::controller::{Context, Error, now, publish_event};

pub async fn reconcile(policy: Arc<BucketsPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or_else(|| Error::NotNamespaced(policy.name_any()))?;
    let api: Api<BucketsPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, ACCESS_FINALIZER, policy, |event| async {
        match event {
            Finalizer::Apply(policy) => apply(&policy, &ctx).await,
            Finalizer::Cleanup(policy) => cleanup(&policy, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(policy: &BucketsPolicy, ctx: &Context) -> Result<Action, Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let outcome = match reach(ctx, &namespace, &policy.spec.cluster_ref.name).await? {
        Reach::Connected(connection) => {
            let (endpoint, credentials) = (connection.endpoint.as_str(), &connection.credentials);
            let name = policy.name_any();
            let cluster = connection.cluster.name_any();
            let stored = counted(ctx, "policy", ctx.nodes.policy(endpoint, credentials, &name).await);
            let result = match stored {
                Ok(stored) if stored.builtin => Err(Outcome::refused(
                    "BuiltinPolicy",
                    format!("{name} is a built-in policy of the cluster and cannot be replaced: rename this resource"),
                )),
                Ok(stored) if stored.document == policy.spec.document => Ok(()),
                Err(e) if !is(&e, AdminErrorCode::NoSuchPolicy) => Err(Outcome::from_node("reading the policy", &e)),
                _ => {
                    let document = policy.spec.document.to_string();
                    let result = ctx.nodes.put_policy(endpoint, credentials, &name, &document).await;
                    counted(ctx, "put-policy", result)
                        .map(|_| ())
                        .map_err(|e| Outcome::from_node("storing the policy", &e))
                }
            };
            match result {
                Ok(()) => Outcome::ready("PolicyReady", format!("policy {name} is stored in cluster {cluster}")),
                Err(outcome) => outcome,
            }
        }
        Reach::Gone(outcome) | Reach::NotBootstrapped(outcome) | Reach::Unreachable(outcome) => outcome,
    };
    publish_status(ctx, policy, &outcome).await?;
    Ok(super::next_action(&outcome))
}

async fn publish_status(ctx: &Context, policy: &BucketsPolicy, outcome: &Outcome) -> Result<(), Error> {
    let previous = policy.status.clone().unwrap_or_default();
    let generation = policy.metadata.generation.unwrap_or(0);
    let next = BucketsPolicyStatus {
        conditions: vec![ready_condition(&previous.conditions, outcome, generation, &now())],
        observed_generation: generation,
    };
    publish(ctx, policy, &previous, &next, outcome).await
}

async fn cleanup(policy: &BucketsPolicy, ctx: &Context) -> Result<Action, Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    let connection = match reach(ctx, &namespace, &policy.spec.cluster_ref.name).await? {
        Reach::Gone(_) | Reach::NotBootstrapped(_) => return Ok(Action::await_change()),
        Reach::Unreachable(outcome) => return Err(Error::Waiting(outcome.message)),
        Reach::Connected(connection) => connection,
    };
    let (endpoint, credentials) = (connection.endpoint.as_str(), &connection.credentials);
    // A built-in policy of that name was never this resource's to remove.
    if counted(ctx, "policy", ctx.nodes.policy(endpoint, credentials, &name).await).is_ok_and(|p| p.builtin) {
        return Ok(Action::await_change());
    }
    match counted(ctx, "remove-policy", ctx.nodes.remove_policy(endpoint, credentials, &name).await) {
        Ok(()) => {}
        Err(e) if is(&e, AdminErrorCode::NoSuchPolicy) => {}
        Err(e) if is(&e, AdminErrorCode::PolicyInUse) => {
            let users = counted(ctx, "policy", ctx.nodes.policy(endpoint, credentials, &name).await)
                .map(|p| p.users.into_iter().chain(p.groups.into_iter().map(|g| format!("group {g}"))).collect())
                .unwrap_or_else(|_| Vec::<String>::new());
            let outcome = Outcome::refused(
                "PolicyInUse",
                format!(
                    "policy {name} is still attached ({}): it is removed once nothing uses it",
                    if users.is_empty() { "to users or groups".to_string() } else { users.join(", ") }
                ),
            );
            publish_status(ctx, policy, &outcome).await?;
            return Err(Error::Waiting(outcome.message));
        }
        Err(e) => return Err(Error::Node(format!("removing policy {name}: {e}"))),
    }
    let cluster = connection.cluster.name_any();
    publish_event(ctx, policy, false, "PolicyRemoved", format!("policy {name} removed from cluster {cluster}")).await;
    Ok(Action::await_change())
}
