//! Buckets on the admin API: `/admin/v1/buckets/NAME` (docs/admin-api.md). `PUT` declares
//! a bucket — created when absent, its versioning, object lock and policy — so a
//! declarative client (the operator's BucketsBucket) can send the same request again and
//! again; `GET` reads it back; `DELETE` removes it only when it is empty. Policies are
//! checked exactly as PutBucketPolicy checks them (`Policy::parse` with the bucket's
//! kind, and Block Public Access). Must never bypass the store's own rules (versioning
//! never back to unversioned, object lock only at creation).

use buckets_api::AdminErrorCode as Code;
use buckets_api::bucket::{BucketInfo, BucketVersioning, PutBucket};
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use super::{json_error, json_ok};
use crate::error::StoreError;
use crate::policy::{Kind, Policy};
use crate::storage::{Store, Versioning};

fn refused(error: StoreError) -> Response<Full<Bytes>> {
    let (status, code) = match &error {
        StoreError::NoSuchBucket => (StatusCode::NOT_FOUND, Code::NoSuchBucket),
        StoreError::BucketNotEmpty => (StatusCode::CONFLICT, Code::BucketNotEmpty),
        StoreError::InvalidBucketState(_) => (StatusCode::CONFLICT, Code::InvalidBucketState),
        StoreError::AccessDenied(_) => (StatusCode::FORBIDDEN, Code::AccessDenied),
        StoreError::InvalidRequest(_) | StoreError::InvalidArgument(_) => {
            (StatusCode::BAD_REQUEST, Code::InvalidArgument)
        }
        StoreError::InsufficientQuorum { .. } => (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
        other => {
            tracing::error!(error = %other, "admin bucket request failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Code::InternalError)
        }
    };
    json_error(status, code, &error.to_string())
}

fn versioning_name(versioning: Versioning) -> Option<BucketVersioning> {
    match versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioning::Enabled),
        Versioning::Suspended => Some(BucketVersioning::Suspended),
    }
}

/// Answers `/buckets/…` (the segments after `buckets`).
pub async fn handle(store: &Store, method: &Method, segments: &[&str], body: &Bytes) -> Response<Full<Bytes>> {
    let [name] = segments else {
        return json_error(StatusCode::NOT_FOUND, Code::NotFound, "no such admin endpoint");
    };
    if !s3s::path::check_bucket_name(name) {
        return json_error(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            &format!("{name:?} is not a valid bucket name (3–63 lowercase letters, digits, dots and hyphens)"),
        );
    }
    match *method {
        Method::GET => match describe(store, name).await {
            Ok(info) => json_ok(&info),
            Err(e) => refused(e),
        },
        Method::PUT => {
            let body = if body.is_empty() { b"{}".as_slice() } else { body.as_ref() };
            match serde_json::from_slice::<PutBucket>(body) {
                Ok(request) => put(store, name, request).await,
                Err(e) => json_error(StatusCode::BAD_REQUEST, Code::MalformedRequest, &e.to_string()),
            }
        }
        Method::DELETE => match store.delete_bucket(name).await {
            Ok(()) => json_ok(&serde_json::json!({})),
            Err(e) => refused(e),
        },
        _ => json_error(StatusCode::NOT_FOUND, Code::NotFound, "no such admin endpoint"),
    }
}

async fn describe(store: &Store, name: &str) -> Result<BucketInfo, StoreError> {
    let meta = store.head_bucket(name).await?.meta;
    Ok(BucketInfo {
        name: name.to_string(),
        created: u64::try_from(meta.created_ns / 1_000_000_000).unwrap_or(0),
        versioning: versioning_name(meta.versioning),
        object_lock: meta.object_lock.is_some(),
        policy: meta.policy.as_deref().map(|p| serde_json::from_str(p).unwrap_or(serde_json::Value::String(p.into()))),
        empty: store.bucket_is_empty(name).await?,
    })
}

/// The bucket as `request` declares it. Everything is checked before anything is
/// written: a malformed policy creates no bucket.
async fn put(store: &Store, name: &str, request: PutBucket) -> Response<Full<Bytes>> {
    if request.object_lock && request.versioning == Some(BucketVersioning::Suspended) {
        return json_error(
            StatusCode::BAD_REQUEST,
            Code::InvalidArgument,
            "a bucket with object lock is always versioned: versioning must be Enabled",
        );
    }
    let policy = match &request.policy {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(text)) => Some(text.clone()),
        Some(document) => Some(document.to_string()),
    };
    let checked = match &policy {
        None => None,
        Some(document) => match Policy::parse(document, &Kind::Bucket(name.to_string())) {
            Ok(checked) => Some(checked),
            Err(e) => return json_error(StatusCode::BAD_REQUEST, Code::MalformedPolicy, &e.to_string()),
        },
    };
    match apply(store, name, &request, policy, checked).await {
        Ok(()) => match describe(store, name).await {
            Ok(info) => json_ok(&info),
            Err(e) => refused(e),
        },
        Err(e) => refused(e),
    }
}

async fn apply(
    store: &Store,
    name: &str,
    request: &PutBucket,
    policy: Option<String>,
    checked: Option<Policy>,
) -> Result<(), StoreError> {
    let existing = match store.head_bucket(name).await {
        Ok(info) => Some(info.meta),
        Err(StoreError::NoSuchBucket) => None,
        Err(e) => return Err(e),
    };
    let meta = match existing {
        Some(meta) => {
            match (meta.object_lock.is_some(), request.object_lock) {
                (false, true) => {
                    return Err(StoreError::InvalidBucketState(format!(
                        "bucket {name} exists without object lock: object lock can only be turned on when a bucket is created"
                    )));
                }
                (true, false) => {
                    return Err(StoreError::InvalidBucketState(format!(
                        "bucket {name} has object lock, which cannot be turned off"
                    )));
                }
                _ => {}
            }
            meta
        }
        None => {
            let created = if request.object_lock {
                store.make_bucket_with_object_lock(name).await
            } else {
                store.make_bucket(name).await
            };
            match created {
                // Made by another request in between: go on with it.
                Ok(()) | Err(StoreError::BucketAlreadyOwnedByYou) => {}
                Err(e) => return Err(e),
            }
            store.head_bucket(name).await?.meta
        }
    };
    if let Some(wanted) = request.versioning
        && versioning_name(meta.versioning) != Some(wanted)
    {
        store.put_bucket_versioning(name, wanted == BucketVersioning::Enabled).await?;
    }
    if meta.policy != policy {
        store
            .update_bucket_settings(name, |meta| {
                let block = meta.public_access_block.is_some_and(|b| b.block_public_policy);
                if let Some(why) = checked.as_ref().and_then(|p| p.refused_by_block_public_policy(block)) {
                    return Err(StoreError::AccessDenied(why.into()));
                }
                meta.policy = policy;
                Ok(())
            })
            .await?;
    }
    Ok(())
}
