//! Bucket operations.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::access::{Connection, Facts, Requester};
use super::{BucketsS3, store_error, timestamp_from_ns};
use crate::storage::Versioning;

/// S3's largest page of buckets, and the page when none is asked for.
const MAX_LIST_BUCKETS: i32 = 10_000;

impl BucketsS3 {
    pub(super) async fn list_buckets_impl(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let owner = self.owner_of(&self.requester_id(req.extensions.get()));
        let input = &req.input;
        let max_buckets = input.max_buckets.unwrap_or(MAX_LIST_BUCKETS);
        if !(1..=MAX_LIST_BUCKETS).contains(&max_buckets) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                format!("Argument max-buckets must be an integer between 1 and {MAX_LIST_BUCKETS}"),
            ));
        }
        let after = input.continuation_token.as_deref().map(super::list::decode_token).transpose()?;
        let prefix = input.prefix.as_deref().unwrap_or("");
        // Every bucket lives in this server's one region.
        let in_region = input.bucket_region.as_deref().is_none_or(|region| region == self.region);
        let mut buckets = self.store.list_buckets().await.map_err(store_error)?;
        // A user sees the buckets they may list (their own, and those a policy or an ACL
        // opens to them); the root user sees every bucket.
        if let (Some(access), Some(requester @ Requester::User(caller))) =
            (&self.access, req.extensions.get::<Requester>())
        {
            let connection = req.extensions.get::<Connection>().copied();
            let facts = Facts { headers: &req.headers, query: None, connection };
            let context = super::access::context_of(&facts, Some(caller));
            let mut visible = Vec::with_capacity(buckets.len());
            for bucket in buckets {
                if access.may_list(requester, &bucket.name, &context).await {
                    visible.push(bucket);
                }
            }
            buckets = visible;
        }
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        let mut matching = buckets
            .into_iter()
            .filter(|b| in_region && b.name.starts_with(prefix))
            .filter(|b| after.as_deref().is_none_or(|after| b.name.as_str() > after))
            .peekable();
        let mut page = Vec::new();
        while page.len() < max_buckets as usize
            && let Some(b) = matching.next()
        {
            page.push(b);
        }
        let continuation_token =
            matching.peek().is_some().then(|| page.last().map(|b| super::list::encode_token(&b.name))).flatten();
        let buckets = page
            .into_iter()
            .map(|b| Bucket {
                name: Some(b.name),
                creation_date: Some(timestamp_from_ns(b.created_ns)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(owner),
            continuation_token,
            prefix: input.prefix.clone(),
        }))
    }

    pub(super) async fn create_bucket_impl(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let mut meta = self.new_bucket_meta(&req)?;
        if req.input.object_lock_enabled_for_bucket == Some(true) {
            meta.versioning = Versioning::Enabled;
            meta.object_lock = Some(crate::format::bucket::ObjectLockConfig::default());
        }
        let bucket = req.input.bucket;
        self.store.make_bucket_with(&bucket, meta).await.map_err(store_error)?;
        Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{bucket}")) }))
    }

    pub(super) async fn head_bucket_impl(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?;
        Ok(S3Response::new(HeadBucketOutput { bucket_region: Some(self.region.clone()), ..Default::default() }))
    }

    pub(super) async fn delete_bucket_impl(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.store.delete_bucket(&req.input.bucket).await.map_err(store_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(super) async fn get_bucket_location_impl(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?;
        // AWS answers an empty constraint for us-east-1.
        let location_constraint =
            (self.region != "us-east-1").then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput { location_constraint }))
    }

    pub(super) async fn get_bucket_versioning_impl(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        let info = self.store.head_bucket(&req.input.bucket).await.map_err(store_error)?;
        // Never-versioned buckets answer with no Status element.
        let status = match info.versioning() {
            Versioning::Unversioned => None,
            Versioning::Enabled => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::ENABLED)),
            Versioning::Suspended => Some(BucketVersioningStatus::from_static(BucketVersioningStatus::SUSPENDED)),
        };
        Ok(S3Response::new(GetBucketVersioningOutput { status, ..Default::default() }))
    }

    pub(super) async fn put_bucket_versioning_impl(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        let input = req.input;
        let enabled = match input.versioning_configuration.status.as_ref().map(|s| s.as_str()) {
            Some(BucketVersioningStatus::ENABLED) => true,
            Some(BucketVersioningStatus::SUSPENDED) => false,
            _ => {
                return Err(S3Error::with_message(
                    S3ErrorCode::MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema",
                ));
            }
        };
        if input.versioning_configuration.mfa_delete.as_ref().is_some_and(|m| m.as_str() == MFADelete::ENABLED) {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "MFA Delete is not supported: MFA authentication is not available here",
            ));
        }
        self.store.put_bucket_versioning(&input.bucket, enabled).await.map_err(store_error)?;
        Ok(S3Response::new(PutBucketVersioningOutput::default()))
    }
}
