//! BucketsBucket: the cluster's bucket with the spec's versioning, object lock and
//! policy, declared with one idempotent admin call (`PUT /admin/v1/buckets/NAME`).
//! Deleting the resource deletes the bucket only when it is empty (deletionPolicy
//! DeleteIfEmpty): until then the finalizer stays and the Ready condition and a Warning
//! Event say why, and once the bucket is emptied the next reconcile finishes. With
//! Retain the bucket stays.

use std::sync::Arc;

use buckets_api::AdminErrorCode;
use buckets_api::bucket::{BucketVersioning, PutBucket};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::{ACCESS_FINALIZER, Outcome, Reach, counted, is, publish, reach, ready_condition};
use crate::access_crd::{BucketsBucket, BucketsBucketStatus, RETAIN};
use crate::controller::{Context, Error, now, publish_event};

pub async fn reconcile(bucket: Arc<BucketsBucket>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = bucket.namespace().ok_or_else(|| Error::NotNamespaced(bucket.name_any()))?;
    let api: Api<BucketsBucket> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, ACCESS_FINALIZER, bucket, |event| async {
        match event {
            Finalizer::Apply(bucket) => apply(&bucket, &ctx).await,
            Finalizer::Cleanup(bucket) => cleanup(&bucket, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The admin API's declaration of the spec.
pub fn declaration(bucket: &BucketsBucket) -> PutBucket {
    PutBucket {
        versioning: match bucket.spec.versioning.as_deref() {
            Some("Enabled") => Some(BucketVersioning::Enabled),
            Some("Suspended") => Some(BucketVersioning::Suspended),
            _ => None,
        },
        object_lock: bucket.spec.object_lock,
        policy: bucket.spec.policy.clone(),
    }
}

async fn apply(bucket: &BucketsBucket, ctx: &Context) -> Result<Action, Error> {
    let namespace = bucket.namespace().unwrap_or_default();
    let name = bucket.bucket_name();
    let outcome = match reach(ctx, &namespace, &bucket.spec.cluster_ref.name).await? {
        Reach::Connected(connection) => {
            let (endpoint, credentials) = (connection.endpoint.as_str(), &connection.credentials);
            let result = ctx.nodes.put_bucket(endpoint, credentials, &name, &declaration(bucket)).await;
            match counted(ctx, "put-bucket", result) {
                Ok(info) => {
                    let versioning = info.versioning.map_or("unversioned", |v| v.as_str());
                    let lock = if info.object_lock { ", object lock" } else { "" };
                    let policy = if info.policy.is_some() { ", with a bucket policy" } else { "" };
                    let cluster = connection.cluster.name_any();
                    let message = format!("bucket {name} in cluster {cluster} ({versioning}{lock}{policy})");
                    Outcome::ready("BucketReady", message)
                }
                Err(e) => Outcome::from_node(&format!("declaring bucket {name}"), &e),
            }
        }
        Reach::Gone(outcome) | Reach::NotBootstrapped(outcome) | Reach::Unreachable(outcome) => outcome,
    };
    publish_status(ctx, bucket, &outcome).await?;
    Ok(super::next_action(&outcome))
}

async fn publish_status(ctx: &Context, bucket: &BucketsBucket, outcome: &Outcome) -> Result<(), Error> {
    let previous = bucket.status.clone().unwrap_or_default();
    let generation = bucket.metadata.generation.unwrap_or(0);
    let next = BucketsBucketStatus {
        conditions: vec![ready_condition(&previous.conditions, outcome, generation, &now())],
        observed_generation: generation,
        bucket_name: Some(bucket.bucket_name()),
    };
    publish(ctx, bucket, &previous, &next, outcome).await
}

async fn cleanup(bucket: &BucketsBucket, ctx: &Context) -> Result<Action, Error> {
    let namespace = bucket.namespace().unwrap_or_default();
    let name = bucket.bucket_name();
    if bucket.spec.deletion_policy == RETAIN {
        publish_event(ctx, bucket, false, "BucketRetained", format!("bucket {name} stays (deletionPolicy Retain)"))
            .await;
        return Ok(Action::await_change());
    }
    let connection = match reach(ctx, &namespace, &bucket.spec.cluster_ref.name).await? {
        Reach::Gone(_) | Reach::NotBootstrapped(_) => return Ok(Action::await_change()),
        Reach::Unreachable(outcome) => return Err(Error::Waiting(outcome.message)),
        Reach::Connected(connection) => connection,
    };
    let result = ctx.nodes.delete_bucket(&connection.endpoint, &connection.credentials, &name).await;
    match counted(ctx, "delete-bucket", result) {
        Ok(()) => {}
        Err(e) if is(&e, AdminErrorCode::NoSuchBucket) => {}
        Err(e) if is(&e, AdminErrorCode::BucketNotEmpty) => {
            let outcome = Outcome::refused(
                "BucketNotEmpty",
                format!(
                    "bucket {name} still holds objects (versions and delete markers count too): it is deleted once \
                     it is empty, or set spec.deletionPolicy to Retain to keep it"
                ),
            );
            publish_status(ctx, bucket, &outcome).await?;
            return Err(Error::Waiting(outcome.message));
        }
        Err(e) => return Err(Error::Node(format!("deleting bucket {name}: {e}"))),
    }
    let cluster = connection.cluster.name_any();
    publish_event(ctx, bucket, false, "BucketDeleted", format!("bucket {name} deleted from cluster {cluster}")).await;
    Ok(Action::await_change())
}
