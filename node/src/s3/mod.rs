//! The S3 API: a thin adapter from s3s's request and response types to the storage
//! engine. One file per operation family; errors are mapped in `error`.
//!
//! Owns: S3 semantics that are about the protocol (conditional requests, ranges, header
//! overrides, pagination tokens, owner and ACL answers). Must never let an s3s type reach
//! `storage`, and never do file I/O itself.

pub mod access;
pub mod acl;
mod attributes;
mod bucket;
mod bucket_policy;
mod copy;
pub mod cors;
pub mod error;
pub mod exchange;
mod lifecycle;
mod list;
mod lock;
mod multipart;
mod object;
pub mod sts;
mod tagging;
mod unconfigured;

use std::sync::Arc;

use s3s::dto::{self, Timestamp};
use s3s::{S3, S3Request, S3Response, S3Result};
use sha2::Digest as _;

use crate::format::version_id::VersionId;
use crate::storage::Store;
use crate::storage::set::Selector;

/// Largest total size of user metadata (x-amz-meta-* names and values), as in AWS.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// The owner's canonical id: stable, derived from the root user, the same in every answer
/// (Owner, ACL grants) and what `x-amz-expected-bucket-owner` is compared with.
pub fn owner_id(root_user: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("buckets-owner:{root_user}").as_bytes()))
}

pub struct BucketsS3 {
    store: Arc<Store>,
    region: String,
    owner_id: String,
    owner_name: String,
    /// The users, for their names in Owner and grant answers.
    iam: Option<Arc<crate::iam::Iam>>,
    /// The access check, for the buckets ListBuckets shows a user.
    access: Option<sts::Identity>,
}

impl BucketsS3 {
    pub fn new(store: Arc<Store>, region: String, root_user: &str) -> Self {
        BucketsS3 {
            store,
            region,
            owner_id: owner_id(root_user),
            owner_name: root_user.to_string(),
            iam: None,
            access: None,
        }
    }

    pub fn with_iam(self, iam: Arc<crate::iam::Iam>, access: sts::Identity) -> Self {
        BucketsS3 { iam: Some(iam), access: Some(access), ..self }
    }
}

pub fn timestamp_from_ns(ns: i64) -> Timestamp {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    // S3 answers in whole milliseconds.
    let time = time.replace_nanosecond((time.nanosecond() / 1_000_000) * 1_000_000).unwrap_or(time);
    Timestamp::from(time)
}

fn store_error(error: crate::error::StoreError) -> s3s::S3Error {
    error::to_s3_error(error)
}

/// The version a request names by `versionId` (`null`: the null version; none: the
/// latest). An id this store could not have made is 400 InvalidArgument, as S3 answers.
fn version_selector(version_id: Option<&str>) -> S3Result<Selector> {
    match version_id {
        None => Ok(Selector::Latest),
        Some(text) => text
            .parse::<VersionId>()
            .map(Selector::Id)
            .map_err(|e| s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidArgument, e.to_string())),
    }
}

/// `x-amz-version-id` of an answer about a version: its id, unless it is the null
/// version of a never-versioned bucket (which S3 does not name).
fn version_header(info: &crate::storage::ObjectInfo) -> Option<String> {
    (!info.version_id.is_null()).then(|| info.version_id.to_string())
}

#[async_trait::async_trait]
impl S3 for BucketsS3 {
    async fn list_buckets(
        &self,
        req: S3Request<dto::ListBucketsInput>,
    ) -> S3Result<S3Response<dto::ListBucketsOutput>> {
        self.list_buckets_impl(req).await
    }
    async fn create_bucket(
        &self,
        req: S3Request<dto::CreateBucketInput>,
    ) -> S3Result<S3Response<dto::CreateBucketOutput>> {
        self.create_bucket_impl(req).await
    }
    async fn head_bucket(&self, req: S3Request<dto::HeadBucketInput>) -> S3Result<S3Response<dto::HeadBucketOutput>> {
        self.head_bucket_impl(req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<dto::DeleteBucketInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOutput>> {
        self.delete_bucket_impl(req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<dto::GetBucketLocationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLocationOutput>> {
        self.get_bucket_location_impl(req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<dto::GetBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::GetBucketVersioningOutput>> {
        self.get_bucket_versioning_impl(req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<dto::PutBucketVersioningInput>,
    ) -> S3Result<S3Response<dto::PutBucketVersioningOutput>> {
        self.put_bucket_versioning_impl(req).await
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<dto::GetBucketAclInput>,
    ) -> S3Result<S3Response<dto::GetBucketAclOutput>> {
        self.get_bucket_acl_impl(req).await
    }
    async fn get_object_acl(
        &self,
        req: S3Request<dto::GetObjectAclInput>,
    ) -> S3Result<S3Response<dto::GetObjectAclOutput>> {
        self.get_object_acl_impl(req).await
    }
    async fn put_object(&self, req: S3Request<dto::PutObjectInput>) -> S3Result<S3Response<dto::PutObjectOutput>> {
        self.put_object_impl(req).await
    }
    async fn get_object(&self, req: S3Request<dto::GetObjectInput>) -> S3Result<S3Response<dto::GetObjectOutput>> {
        self.get_object_impl(req).await
    }
    async fn head_object(&self, req: S3Request<dto::HeadObjectInput>) -> S3Result<S3Response<dto::HeadObjectOutput>> {
        self.head_object_impl(req).await
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<dto::GetObjectAttributesInput>,
    ) -> S3Result<S3Response<dto::GetObjectAttributesOutput>> {
        self.get_object_attributes_impl(req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<dto::DeleteObjectInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectOutput>> {
        self.delete_object_impl(req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<dto::DeleteObjectsInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectsOutput>> {
        self.delete_objects_impl(req).await
    }
    async fn copy_object(&self, req: S3Request<dto::CopyObjectInput>) -> S3Result<S3Response<dto::CopyObjectOutput>> {
        self.copy_object_impl(req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<dto::ListObjectsInput>,
    ) -> S3Result<S3Response<dto::ListObjectsOutput>> {
        self.list_objects_impl(req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<dto::ListObjectsV2Input>,
    ) -> S3Result<S3Response<dto::ListObjectsV2Output>> {
        self.list_objects_v2_impl(req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<dto::ListObjectVersionsInput>,
    ) -> S3Result<S3Response<dto::ListObjectVersionsOutput>> {
        self.list_object_versions_impl(req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<dto::CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CreateMultipartUploadOutput>> {
        self.create_multipart_upload_impl(req).await
    }
    async fn upload_part(&self, req: S3Request<dto::UploadPartInput>) -> S3Result<S3Response<dto::UploadPartOutput>> {
        self.upload_part_impl(req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<dto::UploadPartCopyInput>,
    ) -> S3Result<S3Response<dto::UploadPartCopyOutput>> {
        self.upload_part_copy_impl(req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<dto::CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::CompleteMultipartUploadOutput>> {
        self.complete_multipart_upload_impl(req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<dto::AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<dto::AbortMultipartUploadOutput>> {
        self.abort_multipart_upload_impl(req).await
    }
    async fn list_parts(&self, req: S3Request<dto::ListPartsInput>) -> S3Result<S3Response<dto::ListPartsOutput>> {
        self.list_parts_impl(req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<dto::ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<dto::ListMultipartUploadsOutput>> {
        self.list_multipart_uploads_impl(req).await
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<dto::PutObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::PutObjectTaggingOutput>> {
        self.put_object_tagging_impl(req).await
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<dto::GetObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::GetObjectTaggingOutput>> {
        self.get_object_tagging_impl(req).await
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<dto::DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<dto::DeleteObjectTaggingOutput>> {
        self.delete_object_tagging_impl(req).await
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<dto::GetBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyOutput>> {
        self.get_bucket_policy_impl(req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<dto::PutBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::PutBucketPolicyOutput>> {
        self.put_bucket_policy_impl(req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<dto::DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketPolicyOutput>> {
        self.delete_bucket_policy_impl(req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<dto::GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<dto::GetBucketPolicyStatusOutput>> {
        self.get_bucket_policy_status_impl(req).await
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<dto::PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::PutPublicAccessBlockOutput>> {
        self.put_public_access_block_impl(req).await
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<dto::GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::GetPublicAccessBlockOutput>> {
        self.get_public_access_block_impl(req).await
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<dto::DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<dto::DeletePublicAccessBlockOutput>> {
        self.delete_public_access_block_impl(req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<dto::GetBucketCorsInput>,
    ) -> S3Result<S3Response<dto::GetBucketCorsOutput>> {
        self.get_bucket_cors_impl(req).await
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<dto::PutBucketCorsInput>,
    ) -> S3Result<S3Response<dto::PutBucketCorsOutput>> {
        self.put_bucket_cors_impl(req).await
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<dto::DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketCorsOutput>> {
        self.delete_bucket_cors_impl(req).await
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<dto::GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketLifecycleConfigurationOutput>> {
        self.get_bucket_lifecycle_configuration_impl(req).await
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<dto::PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutBucketLifecycleConfigurationOutput>> {
        self.put_bucket_lifecycle_configuration_impl(req).await
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<dto::DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketLifecycleOutput>> {
        self.delete_bucket_lifecycle_impl(req).await
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<dto::GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<dto::GetBucketEncryptionOutput>> {
        self.not_configured(
            &req.input.bucket,
            s3s::S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
            "The server side encryption configuration was not found",
        )
        .await
    }
    async fn get_bucket_tagging(
        &self,
        req: S3Request<dto::GetBucketTaggingInput>,
    ) -> S3Result<S3Response<dto::GetBucketTaggingOutput>> {
        self.not_configured(&req.input.bucket, s3s::S3ErrorCode::NoSuchTagSet, "The TagSet does not exist").await
    }
    async fn get_bucket_website(
        &self,
        req: S3Request<dto::GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<dto::GetBucketWebsiteOutput>> {
        self.not_configured(
            &req.input.bucket,
            s3s::S3ErrorCode::NoSuchWebsiteConfiguration,
            "The specified bucket does not have a website configuration",
        )
        .await
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<dto::GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetObjectLockConfigurationOutput>> {
        self.get_object_lock_configuration_impl(req).await
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<dto::PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<dto::PutObjectLockConfigurationOutput>> {
        self.put_object_lock_configuration_impl(req).await
    }
    async fn put_object_retention(
        &self,
        req: S3Request<dto::PutObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::PutObjectRetentionOutput>> {
        self.put_object_retention_impl(req).await
    }
    async fn get_object_retention(
        &self,
        req: S3Request<dto::GetObjectRetentionInput>,
    ) -> S3Result<S3Response<dto::GetObjectRetentionOutput>> {
        self.get_object_retention_impl(req).await
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<dto::PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::PutObjectLegalHoldOutput>> {
        self.put_object_legal_hold_impl(req).await
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<dto::GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<dto::GetObjectLegalHoldOutput>> {
        self.get_object_legal_hold_impl(req).await
    }
    async fn get_bucket_replication(
        &self,
        req: S3Request<dto::GetBucketReplicationInput>,
    ) -> S3Result<S3Response<dto::GetBucketReplicationOutput>> {
        self.not_configured(
            &req.input.bucket,
            s3s::S3ErrorCode::ReplicationConfigurationNotFoundError,
            "The replication configuration was not found",
        )
        .await
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<dto::GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::GetBucketOwnershipControlsOutput>> {
        self.get_bucket_ownership_controls_impl(req).await
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<dto::PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::PutBucketOwnershipControlsOutput>> {
        self.put_bucket_ownership_controls_impl(req).await
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<dto::DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<dto::DeleteBucketOwnershipControlsOutput>> {
        self.delete_bucket_ownership_controls_impl(req).await
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<dto::PutBucketAclInput>,
    ) -> S3Result<S3Response<dto::PutBucketAclOutput>> {
        self.put_bucket_acl_impl(req).await
    }
    async fn put_object_acl(
        &self,
        req: S3Request<dto::PutObjectAclInput>,
    ) -> S3Result<S3Response<dto::PutObjectAclOutput>> {
        self.put_object_acl_impl(req).await
    }
    async fn get_bucket_logging(
        &self,
        req: S3Request<dto::GetBucketLoggingInput>,
    ) -> S3Result<S3Response<dto::GetBucketLoggingOutput>> {
        self.default_setting(&req.input.bucket, dto::GetBucketLoggingOutput::default()).await
    }
    async fn get_bucket_request_payment(
        &self,
        req: S3Request<dto::GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<dto::GetBucketRequestPaymentOutput>> {
        self.default_setting(&req.input.bucket, Self::request_payment()).await
    }
    async fn get_bucket_notification_configuration(
        &self,
        req: S3Request<dto::GetBucketNotificationConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketNotificationConfigurationOutput>> {
        self.default_setting(&req.input.bucket, dto::GetBucketNotificationConfigurationOutput::default()).await
    }
    async fn get_bucket_accelerate_configuration(
        &self,
        req: S3Request<dto::GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<dto::GetBucketAccelerateConfigurationOutput>> {
        self.default_setting(&req.input.bucket, dto::GetBucketAccelerateConfigurationOutput::default()).await
    }
}
