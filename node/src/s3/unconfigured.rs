//! Bucket configurations Buckets does not keep (policy, CORS, lifecycle, encryption, tags,
//! website, object lock, replication, ownership controls, logging, request payment,
//! notifications, transfer acceleration). Their GETs answer as AWS does for a bucket that
//! has none, so tools that read every setting of a bucket (Terraform, rclone, mc) work;
//! setting them stays NotImplemented, never silently ignored.

use s3s::dto::*;
use s3s::{S3ErrorCode, S3Response, S3Result};

use super::{BucketsS3, store_error};

impl BucketsS3 {
    /// NoSuchBucket for a missing bucket, else the "not configured" error of the setting
    /// (404 for every one of them, as in AWS).
    pub(super) async fn not_configured<T>(&self, bucket: &str, code: S3ErrorCode, message: &str) -> S3Result<T> {
        self.store.head_bucket(bucket).await.map_err(store_error)?;
        Err(super::error::not_found(code, message))
    }

    /// The answer of a setting whose default is an empty document.
    pub(super) async fn default_setting<T>(&self, bucket: &str, value: T) -> S3Result<S3Response<T>> {
        self.store.head_bucket(bucket).await.map_err(store_error)?;
        Ok(S3Response::new(value))
    }

    pub(super) fn request_payment() -> GetBucketRequestPaymentOutput {
        GetBucketRequestPaymentOutput { payer: Some(Payer::from_static(Payer::BUCKET_OWNER)) }
    }
}
