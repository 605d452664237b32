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

/// A Kubernetes API call that failed, with what it was doing (every module of the
/// operator reports its API errors this way).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct KubeCallError {
    pub what: String,
    pub source: Box<kube::Error>,
}

/// `map_err` adapter: the call's error, said as `what`.
pub fn kube_error(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeCallError {
    let what = what.into();
    move |source| KubeCallError { what, source: Box::new(source) }
}

fn apply_error<K: Resource<DynamicType = ()>>(
    action: &'static str,
    name: &str,
) -> impl FnOnce(kube::Error) -> KubeCallError {
    kube_error(format!("{action} {} {name}", K::kind(&())))
}

/// Server-side apply of an owned object (the operator's field manager, forced: the
/// operator is the only writer of these fields).
pub async fn apply<K>(client: &Client, namespace: &str, object: &K) -> Result<K, KubeCallError>
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
pub async fn create_secret_if_absent(client: &Client, namespace: &str, secret: &Secret) -> Result<bool, KubeCallError> {
    let name = secret.name_any();
    match Api::<Secret>::namespaced(client.clone(), namespace).create(&PostParams::default(), secret).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(apply_error::<Secret>("creating", &name)(e)),
    }
}

/// Whether the API server knows a CRD (the ServiceMonitor is applied only then).
pub async fn crd_exists(client: &Client, name: &str) -> Result<bool, KubeCallError> {
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
) -> Result<(), KubeCallError> {
    let name = object.name_any();
    Api::<DynamicObject>::namespaced_with(client.clone(), namespace, resource)
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(object))
        .await
        .map(|_| ())
        .map_err(kube_error(format!("applying {} {name}", resource.kind)))
}

/// Deletes an object; one that is already gone is fine.
pub async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<(), KubeCallError>
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
) -> Result<Vec<String>, KubeCallError> {
    let mut deleted = delete_orphans_of::<StatefulSet>(client, namespace, cluster_name, live_pools).await?;
    deleted.extend(delete_orphans_of::<PodDisruptionBudget>(client, namespace, cluster_name, live_pools).await?);
    Ok(deleted)
}

/// Deletes the objects of kind `K` labelled with the cluster and a pool not in
/// `live_pools`; returns what it deleted.
async fn delete_orphans_of<K>(
    client: &Client,
    namespace: &str,
    cluster_name: &str,
    live_pools: &BTreeSet<String>,
) -> Result<Vec<String>, KubeCallError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={cluster_name},{LABEL_POOL}"));
    let objects = Api::<K>::namespaced(client.clone(), namespace)
        .list(&selector)
        .await
        .map_err(apply_error::<K>("listing", cluster_name))?;
    let mut deleted = Vec::new();
    for object in objects {
        if !object.labels().get(LABEL_POOL).is_some_and(|p| live_pools.contains(p)) {
            delete::<K>(client, namespace, &object.name_any()).await?;
            deleted.push(format!("{} {}", K::kind(&()), object.name_any()));
        }
    }
    Ok(deleted)
}
