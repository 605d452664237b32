//! Bucket policies (Put/Get/DeleteBucketPolicy, GetBucketPolicyStatus) and Block Public
//! Access (Put/Get/DeletePublicAccessBlock). A policy is checked with AWS's rules when it
//! is stored and refused with MalformedPolicy and the reason; the access check
//! (`sts.rs`) applies it to every request on the bucket.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::error::not_found;
use super::{BucketsS3, store_error};
use crate::error::StoreError;
use crate::policy::{Kind, Policy};
use crate::storage::PublicAccessBlock;

impl BucketsS3 {
    pub(super) async fn put_bucket_policy_impl(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let input = req.input;
        let policy = Policy::parse(&input.policy, &Kind::Bucket(input.bucket.clone()))
            .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.to_string()))?;
        let document = input.policy;
        self.store
            .update_bucket_settings(&input.bucket, |meta| {
                let block = meta.public_access_block.is_some_and(|b| b.block_public_policy);
                if let Some(why) = policy.refused_by_block_public_policy(block) {
                    return Err(StoreError::AccessDenied(why.into()));
                }
                meta.policy = Some(document);
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::with_status(PutBucketPolicyOutput::default(), http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn get_bucket_policy_impl(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let meta = self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?.meta;
        let policy = meta.policy.ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
        Ok(S3Response::new(GetBucketPolicyOutput { policy: Some(policy) }))
    }

    pub(super) async fn delete_bucket_policy_impl(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        self.store
            .update_bucket_settings(&req.input.bucket, |meta| {
                meta.policy = None;
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::with_status(DeleteBucketPolicyOutput::default(), http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn get_bucket_policy_status_impl(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let bucket = req.input.bucket;
        let meta = self.store.head_bucket(&bucket).await.map_err(store_error)?.meta;
        let document = meta.policy.ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
        let public = Policy::parse(&document, &Kind::Bucket(bucket)).is_ok_and(|p| p.is_public());
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus { is_public: Some(public) }),
        }))
    }

    pub(super) async fn put_public_access_block_impl(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let input = req.input;
        let given = input.public_access_block_configuration;
        let block = PublicAccessBlock {
            block_public_acls: given.block_public_acls.unwrap_or(false),
            ignore_public_acls: given.ignore_public_acls.unwrap_or(false),
            block_public_policy: given.block_public_policy.unwrap_or(false),
            restrict_public_buckets: given.restrict_public_buckets.unwrap_or(false),
        };
        self.store
            .update_bucket_settings(&input.bucket, |meta| {
                meta.public_access_block = Some(block);
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
    }

    pub(super) async fn get_public_access_block_impl(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let meta = self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?.meta;
        let block = meta.public_access_block.ok_or_else(|| {
            not_found(
                S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                "The public access block configuration was not found",
            )
        })?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(PublicAccessBlockConfiguration {
                block_public_acls: Some(block.block_public_acls),
                ignore_public_acls: Some(block.ignore_public_acls),
                block_public_policy: Some(block.block_public_policy),
                restrict_public_buckets: Some(block.restrict_public_buckets),
            }),
        }))
    }

    pub(super) async fn delete_public_access_block_impl(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        self.store
            .update_bucket_settings(&req.input.bucket, |meta| {
                meta.public_access_block = None;
                Ok(())
            })
            .await
            .map_err(store_error)?;
        Ok(S3Response::with_status(DeletePublicAccessBlockOutput::default(), http::StatusCode::NO_CONTENT))
    }
}
