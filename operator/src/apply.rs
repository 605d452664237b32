//! apply: puts the builders' objects into the API server — server-side apply with one
//! field manager for everything the operator owns, create-if-absent for the Secrets
//! (never overwritten), deletes for orphans (found by label) and for released pools.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{FIELD_MANAGER, LABEL_CLUSTER, LABEL_POOL};

#[derive(Debug, thiserror::Error)]
#[error("{action} {kind} {name}: {source}")]
pub struct ApplyError {
    pub action: &'static str,
    pub kind: String,
    pub name: String,
    pub source: Box<kube::Error>,
}

fn apply_error<K: Resource<DynamicType = ()>>(
    action: &'static str,
    name: &str,
) -> impl FnOnce(kube::Error) -> ApplyError {
    let name = name.to_string();
    move |source| ApplyError { action, kind: K::kind(&()).to_string(), name, source: Box::new(source) }
}

/// Server-side apply of an owned object (the operator's field manager, forced: the
/// operator is the only writer of these fields).
pub async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K, ApplyError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let name = object.name_any();
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .map_err(apply_error::<K>("applying", &name))
}

/// Creates a Secret unless one of that name exists (credentials are never overwritten).
pub async fn create_secret_if_absent(client: &Client, namespace: &str, secret: &Secret) -> Result<bool, ApplyError> {
    let name = secret.name_any();
    match Api::<Secret>::namespaced(client.clone(), namespace).create(&PostParams::default(), secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(apply_error::<Secret>("creating", &name)(e)),
    }
}

/// Whether the API server knows a CRD (the ServiceMonitor is applied only then).
pub async fn crd_exists(client: &Client, name: &str) -> Result<bool, ApplyError> {
    Api::<CustomResourceDefinition>::all(client.clone())
        .get_opt(name)
        .await
        .map(|crd| crd.is_some())
        .map_err(apply_error::<CustomResourceDefinition>("reading", name))
}

pub async fn apply_dynamic(
    client: &Client,
    namespace: &str,
    resource: &kube::api::ApiResource,
    object: &DynamicObject,
) -> Result<(), ApplyError> {
    let name = object.name_any();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, resource)
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .map(|_| ())
        .map_err(|source| ApplyError {
            action: "applying",
            kind: resource.kind.clone(),
            name,
            source: Box::new(source),
        })
}

/// Deletes an object; one that is already gone is fine.
pub async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<(), ApplyError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    match Api::<K>::namespaced(client.clone(), namespace).delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(apply_error::<K>("deleting", name)(e)),
    }
}

/// Deletes the StatefulSets and budgets of pools that no longer exist (by label).
pub async fn delete_orphans(
    client: &Client,
    namespace: &str,
    cluster_name: &str,
    live_pools: &BTreeSet<String>,
) -> Result<Vec<String>, ApplyError> {
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={cluster_name},{LABEL_POOL}"));
    let mut deleted = Vec::new();
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .list(&selector)
        .await
        .map_err(apply_error::<StatefulSet>("listing", cluster_name))?;
    for sts in statefulsets {
        if !sts.labels().get(LABEL_POOL).is_some_and(|p| live_pools.contains(p)) {
            delete::<StatefulSet>(client, namespace, &sts.name_any()).await?;
            deleted.push(format!("StatefulSet {}", sts.name_any()));
        }
    }
    let budgets = Api::<PodDisruptionBudget>::namespaced(client.clone(), namespace)
        .list(&selector)
        .await
        .map_err(apply_error::<PodDisruptionBudget>("listing", cluster_name))?;
    for pdb in budgets {
        if !pdb.labels().get(LABEL_POOL).is_some_and(|p| live_pools.contains(p)) {
            delete::<PodDisruptionBudget>(client, namespace, &pdb.name_any()).await?;
            deleted.push(format!("PodDisruptionBudget {}", pdb.name_any()));
        }
    }
    Ok(deleted)
}
