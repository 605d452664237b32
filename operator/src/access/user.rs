//! BucketsUser: the user (named as the resource), its policies and groups as the spec
//! lists them, and an access key in the user's Secret. A key is made when the Secret is
//! missing or holds a key the user no longer has; the user's other keys are then
//! removed, so deleting the Secret rotates the key. Deleting the resource removes the
//! user (its keys stop working) and, through the owner reference, its Secret.

use std::collections::BTreeSet;
use std::sync::Arc;

use buckets_api::AdminErrorCode;
use buckets_api::iam::{Attachment, MemberChange};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::{ACCESS_FINALIZER, Connection, Outcome, Reach, counted, is, publish, reach, ready_condition};
use crate::access_crd::{BucketsUser, BucketsUserStatus};
use crate::apply::{self, kube_error};
use crate::build::secret::{ACCESS_KEY_ID_KEY, SECRET_ACCESS_KEY_KEY, build_user_secret};
use crate::controller::{Context, Error, now, publish_event};

pub async fn reconcile(user: Arc<BucketsUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = user.namespace().ok_or_else(|| Error::NotNamespaced(user.name_any()))?;
    let api: Api<BucketsUser> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, ACCESS_FINALIZER, user, |event| async {
        match event {
            Finalizer::Apply(user) => apply(&user, &ctx).await,
            Finalizer::Cleanup(user) => cleanup(&user, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(user: &BucketsUser, ctx: &Context) -> Result<Action, Error> {
    let namespace = user.namespace().unwrap_or_default();
    let previous = user.status.clone().unwrap_or_default();
    let (outcome, access_key) = match reach(ctx, &namespace, &user.spec.cluster_ref.name).await? {
        Reach::Connected(connection) => sync(user, ctx, &connection).await?,
        Reach::Gone(outcome) | Reach::NotBootstrapped(outcome) | Reach::Unreachable(outcome) => {
            (outcome, previous.access_key_id.clone())
        }
    };
    let generation = user.metadata.generation.unwrap_or(0);
    let next = BucketsUserStatus {
        conditions: vec![ready_condition(&previous.conditions, &outcome, generation, &now())],
        observed_generation: generation,
        secret_name: access_key.as_ref().map(|_| user.secret_name()),
        access_key_id: access_key,
    };
    publish(ctx, user, &previous, &next, &outcome).await?;
    Ok(super::next_action(&outcome))
}

/// Refuses with the node's reason: `return refused!(…)` ends the sync with it.
macro_rules! node {
    ($ctx:expr, $action:expr, $call:expr, $key:expr) => {
        match counted($ctx, $action, $call.await) {
            Ok(value) => value,
            Err(e) => return Ok((Outcome::from_node($action, &e), $key)),
        }
    };
}

/// Makes the cluster's user as the spec says; the outcome and the key in the Secret.
async fn sync(user: &BucketsUser, ctx: &Context, connection: &Connection) -> Result<(Outcome, Option<String>), Error> {
    let nodes = ctx.nodes.as_ref();
    let (endpoint, credentials) = (connection.endpoint.as_str(), &connection.credentials);
    let name = user.name_any();
    let cluster = connection.cluster.name_any();
    let known_key = user.status.as_ref().and_then(|s| s.access_key_id.clone());

    let info = match counted(ctx, "user", nodes.user(endpoint, credentials, &name).await) {
        Ok(info) => info,
        Err(e) if is(&e, AdminErrorCode::NoSuchUser) => {
            let info = node!(ctx, "add-user", nodes.add_user(endpoint, credentials, &name), None);
            publish_event(ctx, user, false, "UserCreated", format!("user {name} created in cluster {cluster}")).await;
            info
        }
        Err(e) => return Ok((Outcome::from_node("user", &e), known_key)),
    };

    // Policies and groups: exactly the spec's.
    let wanted: BTreeSet<&String> = user.spec.policies.iter().collect();
    let attached: BTreeSet<&String> = info.policies.iter().collect();
    let to_user = Attachment { user: Some(name.clone()), group: None };
    for policy in wanted.difference(&attached) {
        let result = counted(ctx, "attach", nodes.attach(endpoint, credentials, policy, &to_user, true).await);
        match result {
            Ok(_) => {}
            Err(e) if is(&e, AdminErrorCode::NoSuchPolicy) => {
                let message = format!(
                    "policy {policy} does not exist in cluster {cluster}: create a BucketsPolicy named {policy}, or \
                     name a built-in policy (readwrite, readonly, writeonly, admin)"
                );
                return Ok((Outcome::refused("PolicyNotFound", message), known_key));
            }
            Err(e) => return Ok((Outcome::from_node(&format!("attaching policy {policy}"), &e), known_key)),
        }
    }
    for policy in attached.difference(&wanted) {
        let action = format!("detaching policy {policy}");
        node!(ctx, "detach", nodes.attach(endpoint, credentials, policy, &to_user, false), known_key);
        tracing::debug!(user = %name, "{action}");
    }
    let wanted: BTreeSet<&String> = user.spec.groups.iter().collect();
    let member_of: BTreeSet<&String> = info.groups.iter().collect();
    for group in wanted.difference(&member_of) {
        let change = MemberChange { add: vec![name.clone()], remove: Vec::new() };
        match counted(ctx, "members", nodes.change_members(endpoint, credentials, group, &change).await) {
            Ok(_) => {}
            Err(e) if is(&e, AdminErrorCode::NoSuchGroup) => {
                let message = format!("group {group} does not exist in cluster {cluster}: make it with buckets-admin");
                return Ok((Outcome::refused("GroupNotFound", message), known_key));
            }
            Err(e) => return Ok((Outcome::from_node(&format!("joining group {group}"), &e), known_key)),
        }
    }
    for group in member_of.difference(&wanted) {
        let change = MemberChange { add: Vec::new(), remove: vec![name.clone()] };
        node!(ctx, "members", nodes.change_members(endpoint, credentials, group, &change), known_key);
    }

    // The key Secret.
    let namespace = user.namespace().unwrap_or_default();
    let secret_name = user.secret_name();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = secrets.get_opt(&secret_name).await.map_err(kube_error(format!("reading secret {secret_name}")))?;
    if let Some(secret) = &existing
        && !secret.owner_references().iter().any(|o| Some(&o.uid) == user.uid().as_ref())
    {
        let message = format!(
            "Secret {secret_name} exists and does not belong to this BucketsUser: delete it, or name another \
             Secret in spec.secretName"
        );
        return Ok((Outcome::refused("SecretConflict", message), None));
    }
    let value = |key: &str| {
        let data = existing.as_ref()?.data.as_ref()?;
        Some(String::from_utf8_lossy(&data.get(key)?.0).into_owned())
    };
    let held = match (value(ACCESS_KEY_ID_KEY), value(SECRET_ACCESS_KEY_KEY)) {
        (Some(id), Some(secret)) if info.keys.iter().any(|k| k.access_key == id) => Some((id, secret)),
        _ => None,
    };
    let (access_key, secret_key, fresh) = match held {
        Some((id, secret)) => (id, secret, false),
        None => {
            let key = node!(ctx, "create-key", nodes.create_key(endpoint, credentials, &name), known_key);
            (key.access_key, key.secret_key, true)
        }
    };
    let desired = build_user_secret(user, &connection.cluster, &ctx.settings, &access_key, &secret_key);
    if existing.as_ref().and_then(|s| s.data.as_ref()) != desired.data.as_ref() {
        apply::apply(&ctx.client, &namespace, &desired).await?;
    }
    if fresh {
        // The Secret holds the new key: every other key of the user goes (a deleted
        // Secret's key, or one made by a reconcile that did not get to write it).
        for old in info.keys.iter().filter(|k| k.access_key != access_key) {
            match counted(ctx, "remove-key", nodes.remove_key(endpoint, credentials, &old.access_key).await) {
                Ok(()) => {}
                Err(e) if is(&e, AdminErrorCode::NoSuchKey) => {}
                Err(e) => return Ok((Outcome::from_node("removing an old key", &e), Some(access_key))),
            }
        }
        let message = format!("access key {access_key} written to Secret {secret_name}");
        publish_event(ctx, user, false, "KeyCreated", message).await;
    }
    let policies = if user.spec.policies.is_empty() { "no policy".to_string() } else { user.spec.policies.join(", ") };
    let message = format!("user {name} in cluster {cluster} ({policies}); its key is in Secret {secret_name}");
    Ok((Outcome::ready("UserReady", message), Some(access_key)))
}

/// The resource is being deleted: the user goes (its keys with it). A cluster that is
/// gone or never served has nothing to remove.
async fn cleanup(user: &BucketsUser, ctx: &Context) -> Result<Action, Error> {
    let namespace = user.namespace().unwrap_or_default();
    let name = user.name_any();
    match reach(ctx, &namespace, &user.spec.cluster_ref.name).await? {
        Reach::Gone(_) | Reach::NotBootstrapped(_) => Ok(Action::await_change()),
        Reach::Unreachable(outcome) => Err(Error::Waiting(outcome.message)),
        Reach::Connected(connection) => {
            let result = ctx.nodes.remove_user(&connection.endpoint, &connection.credentials, &name).await;
            match counted(ctx, "remove-user", result) {
                Ok(()) => {}
                Err(e) if is(&e, AdminErrorCode::NoSuchUser) => {}
                Err(e) => return Err(Error::Node(format!("removing user {name}: {e}"))),
            }
            let cluster = connection.cluster.name_any();
            publish_event(ctx, user, false, "UserRemoved", format!("user {name} removed from cluster {cluster}")).await;
            Ok(Action::await_change())
        }
    }
}
