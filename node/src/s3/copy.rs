//! CopyObject and UploadPartCopy: read the source through the engine (verifying every
//! shard) and write it as a new object or part. Copy-source conditions fail with 412.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::object::{StoredHeaders, WithChecksums, check_read_conditions};
use super::tagging;
use super::{BucketsS3, store_error, timestamp_from_ns, version_header, version_selector};
use crate::error::StoreError;
use crate::storage::set::Selector;
use crate::storage::{ObjectInfo, PutOptions, ReadPlan};

/// The source bucket, key and version of a copy (`?versionId=` on the source).
fn source_of(copy_source: &CopySource) -> S3Result<(String, String, Selector)> {
    match copy_source {
        CopySource::Bucket { bucket, key, version_id } => {
            Ok((bucket.to_string(), key.to_string(), version_selector(version_id.as_deref())?))
        }
        _ => Err(S3Error::with_message(S3ErrorCode::NotImplemented, "Only bucket/key copy sources are supported")),
    }
}

/// Copy-source conditions, checked on the source version being read: any failure is 412,
/// never 304.
struct CopyConditions {
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    if_modified_since: Option<Timestamp>,
    if_unmodified_since: Option<Timestamp>,
}

impl CopyConditions {
    fn of(
        if_match: &Option<ETagCondition>,
        if_none_match: &Option<ETagCondition>,
        if_modified_since: &Option<Timestamp>,
        if_unmodified_since: &Option<Timestamp>,
    ) -> Self {
        CopyConditions {
            if_match: if_match.clone(),
            if_none_match: if_none_match.clone(),
            if_modified_since: if_modified_since.clone(),
            if_unmodified_since: if_unmodified_since.clone(),
        }
    }

    fn check(&self, info: &ObjectInfo) -> Result<(), StoreError> {
        match check_read_conditions(
            info,
            self.if_match.as_ref(),
            self.if_none_match.as_ref(),
            self.if_modified_since.as_ref(),
            self.if_unmodified_since.as_ref(),
        ) {
            Err(StoreError::NotModified) => Err(StoreError::PreconditionFailed),
            other => other,
        }
    }
}

/// Parses `bytes=first-last` of x-amz-copy-source-range against the source size:
/// (start, length).
fn parse_copy_range(range: &str, size: u64) -> Result<(u64, u64), StoreError> {
    let invalid = || {
        StoreError::InvalidArgument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy".into(),
        )
    };
    let spec = range.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (first, last) = spec.split_once('-').ok_or_else(invalid)?;
    let first: u64 = first.parse().map_err(|_| invalid())?;
    let last: u64 = last.parse().map_err(|_| invalid())?;
    if first > last {
        return Err(invalid());
    }
    if last >= size {
        return Err(StoreError::InvalidRange);
    }
    Ok((first, last - first + 1))
}

impl BucketsS3 {
    pub(super) async fn copy_object_impl(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let acl = self
            .write_acl(&req.input.bucket, req.extensions.get(), &super::acl::object_acl_request!(req.input))
            .await?;
        let input = req.input;
        let (source_bucket, source_key, selector) = source_of(&input.copy_source)?;
        let conditions = CopyConditions::of(
            &input.copy_source_if_match,
            &input.copy_source_if_none_match,
            &input.copy_source_if_modified_since,
            &input.copy_source_if_unmodified_since,
        );
        let replace = input.metadata_directive.as_ref().is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        if !replace && source_bucket == input.bucket && source_key == input.key && selector == Selector::Latest {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
            ));
        }
        let plan: ReadPlan = Box::new(move |info: &ObjectInfo| {
            conditions.check(info)?;
            Ok((0, info.size))
        });
        let read = self.store.get_version(&source_bucket, &source_key, selector, plan).await.map_err(store_error)?;
        let source = read.info;
        let headers = if replace {
            StoredHeaders {
                content_type: input.content_type.clone(),
                content_encoding: input.content_encoding.clone(),
                content_disposition: input.content_disposition.clone(),
                content_language: input.content_language.clone(),
                cache_control: input.cache_control.clone(),
                expires: input.expires.clone(),
                website_redirect_location: input.website_redirect_location.clone(),
                metadata: input.metadata.clone(),
                tagging: None,
            }
            .to_headers()?
        } else {
            source.headers.clone()
        };
        // Tags follow x-amz-tagging-directive, whatever the metadata directive says.
        let mut headers = headers;
        let replace_tags = input.tagging_directive.as_ref().is_some_and(|d| d.as_str() == TaggingDirective::REPLACE);
        let tags = if replace_tags {
            input.tagging.as_deref().map(tagging::from_header).transpose()?
        } else {
            source.headers.iter().find(|(name, _)| name == tagging::TAGGING_HEADER).map(|(_, value)| value.clone())
        };
        tagging::replace(&mut headers, tags);
        // A copy gets the ACL its request names (or the default), never the source's.
        headers.retain(|(name, _)| name != crate::format::acl::OBJECT_ACL_HEADER);
        headers.extend(acl);
        let body = read.body;
        let options = PutOptions {
            headers,
            content_length: Some(source.size),
            checksum_algorithms: source.checksums.iter().map(|(a, _)| *a).collect(),
            // A copy is a new version: it takes the lock its request names (or the
            // bucket's default), never the source's.
            lock: super::lock::requested_lock(
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )?,
            ..Default::default()
        };
        let info = self.store.put_object(&input.bucket, &input.key, body, options).await.map_err(|e| match e {
            StoreError::EntityTooLarge => S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
            ),
            other => store_error(other),
        })?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(info.etag.clone())),
                last_modified: Some(timestamp_from_ns(info.modified_ns)),
                ..Default::default()
            }),
            version_id: version_header(&info),
            copy_source_version_id: version_header(&source),
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_copy_impl(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        let (source_bucket, source_key, selector) = source_of(&input.copy_source)?;
        let conditions = CopyConditions::of(
            &input.copy_source_if_match,
            &input.copy_source_if_none_match,
            &input.copy_source_if_modified_since,
            &input.copy_source_if_unmodified_since,
        );
        let part_number = u32::try_from(input.part_number).map_err(|_| {
            store_error(StoreError::InvalidArgument(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ))
        })?;
        let range = input.copy_source_range.clone();
        let plan: ReadPlan = Box::new(move |info: &ObjectInfo| {
            conditions.check(info)?;
            match &range {
                Some(range) => parse_copy_range(range, info.size),
                None => Ok((0, info.size)),
            }
        });
        let read = self.store.get_version(&source_bucket, &source_key, selector, plan).await.map_err(store_error)?;
        let copy_source_version_id = version_header(&read.info);
        let (body, length) = (read.body, read.length);
        let options = PutOptions { content_length: Some(length), ..Default::default() };
        let part = self
            .store
            .upload_part(&input.bucket, &input.key, &input.upload_id, part_number, body, options)
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(
                CopyPartResult {
                    e_tag: Some(ETag::Strong(part.etag)),
                    last_modified: Some(timestamp_from_ns(part.modified_ns)),
                    ..Default::default()
                }
                .with_checksums(&part.checksums),
            ),
            copy_source_version_id,
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_ranges() {
        assert_eq!(parse_copy_range("bytes=0-9", 100).unwrap(), (0, 10));
        assert_eq!(parse_copy_range("bytes=99-99", 100).unwrap(), (99, 1));
        assert!(matches!(parse_copy_range("bytes=0-100", 100), Err(StoreError::InvalidRange)));
        for bad in ["0-9", "bytes=9-0", "bytes=-5", "bytes=a-b", "bytes=1"] {
            assert!(matches!(parse_copy_range(bad, 100), Err(StoreError::InvalidArgument(_))), "{bad}");
        }
    }
}
