//! Single-object operations: PutObject, GetObject, HeadObject, DeleteObject,
//! DeleteObjects, and the helpers they share (stored headers, checksums, conditions).

use std::io;

use base64::Engine;
use futures::TryStreamExt;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, TrailingHeaders};

use super::{BucketsS3, MAX_USER_METADATA_BYTES, store_error, timestamp_from_ns, version_header, version_selector};
use crate::error::StoreError;
use crate::format::object::ChecksumAlgorithm as Algorithm;
use crate::storage::checksum::algorithm_name;
use crate::storage::set::Selector;
use crate::storage::{BodyStream, ChecksumVerifier, ObjectInfo, Precondition, PutOptions, ReadPlan, Store};

/// Most keys one DeleteObjects request may name (the S3 limit).
const MAX_DELETE_KEYS: usize = 1000;

/// Standard headers kept with an object, as given at upload.
pub(super) struct StoredHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<Timestamp>,
    pub website_redirect_location: Option<String>,
    pub metadata: Option<Metadata>,
    /// The `x-amz-tagging` request header (`k1=v1&k2=v2`).
    pub tagging: Option<String>,
}

impl StoredHeaders {
    pub fn to_headers(&self) -> S3Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        let pairs = [
            ("content-type", &self.content_type),
            ("content-encoding", &self.content_encoding),
            ("content-disposition", &self.content_disposition),
            ("content-language", &self.content_language),
            ("cache-control", &self.cache_control),
            ("x-amz-website-redirect-location", &self.website_redirect_location),
        ];
        for (name, value) in pairs {
            if let Some(value) = value {
                out.push((name.to_string(), value.clone()));
            }
        }
        if let Some(expires) = &self.expires {
            let mut buffer = Vec::new();
            if expires.format(TimestampFormat::HttpDate, &mut buffer).is_ok() {
                out.push(("expires".to_string(), String::from_utf8_lossy(&buffer).into_owned()));
            }
        }
        if let Some(metadata) = &self.metadata {
            let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
            if size > MAX_USER_METADATA_BYTES {
                return Err(store_error(StoreError::MetadataTooLarge));
            }
            let mut user: Vec<_> = metadata.iter().collect();
            user.sort();
            for (name, value) in user {
                out.push((format!("x-amz-meta-{}", name.to_ascii_lowercase()), value.clone()));
            }
        }
        if let Some(tagging) = &self.tagging {
            super::tagging::replace(&mut out, Some(super::tagging::from_header(tagging)?));
        }
        Ok(out)
    }
}

pub(super) fn user_metadata(info: &ObjectInfo) -> Option<Metadata> {
    let metadata: Metadata = info
        .headers
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("x-amz-meta-").map(|name| (name.to_string(), v.clone())))
        .collect();
    (!metadata.is_empty()).then_some(metadata)
}

fn header(info: &ObjectInfo, name: &str) -> Option<String> {
    info.header(name).map(str::to_string)
}

fn expires(info: &ObjectInfo) -> Option<Timestamp> {
    info.header("expires").and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok())
}

/// The `response-*` overrides of a HEAD or GET (presigned downloads use them).
struct Overrides {
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<Timestamp>,
}

/// HEAD and GET describe an object the same way: its stored headers (or the request's
/// overrides), ETag, Last-Modified, user metadata and, for multipart objects, the part count.
trait DescribeObject: Sized {
    fn describe(self, info: &ObjectInfo, overrides: Overrides) -> Self;
}

macro_rules! impl_describe_object {
    ($($output:ty),*) => {$(
        impl DescribeObject for $output {
            fn describe(mut self, info: &ObjectInfo, overrides: Overrides) -> Self {
                self.content_type = overrides.content_type.or_else(|| header(info, "content-type"));
                self.content_encoding = overrides.content_encoding.or_else(|| header(info, "content-encoding"));
                self.content_disposition =
                    overrides.content_disposition.or_else(|| header(info, "content-disposition"));
                self.content_language = overrides.content_language.or_else(|| header(info, "content-language"));
                self.cache_control = overrides.cache_control.or_else(|| header(info, "cache-control"));
                self.expires = overrides.expires.or_else(|| expires(info));
                self.website_redirect_location = header(info, "x-amz-website-redirect-location");
                self.e_tag = Some(strong_etag(info));
                self.last_modified = Some(timestamp_from_ns(info.modified_ns));
                self.metadata = user_metadata(info);
                self
            }
        }
    )*};
}

impl_describe_object!(HeadObjectOutput, GetObjectOutput);

/// The byte range of part `number` of an object: (start, length). An object not uploaded
/// in parts is one part.
fn part_range(info: &ObjectInfo, number: i32) -> Result<(u64, u64), StoreError> {
    let whole = [crate::format::object::PartInfo {
        number: 1,
        size: info.size,
        etag: info.etag.clone(),
        checksums: Vec::new(),
    }];
    let parts = if info.etag.contains('-') { &info.parts[..] } else { &whole[..] };
    let index =
        usize::try_from(number).ok().filter(|n| (1..=parts.len()).contains(n)).ok_or(StoreError::InvalidPartNumber)?;
    let start: u64 = parts[..index - 1].iter().map(|p| p.size).sum();
    Ok((start, parts[index - 1].size))
}

/// The range a GET or HEAD asks for: `Range`, or `partNumber` (not both).
fn requested_range(
    info: &ObjectInfo,
    range: Option<&Range>,
    part: Option<i32>,
) -> Result<Option<(u64, u64)>, StoreError> {
    match (range, part) {
        (Some(_), Some(_)) => {
            Err(StoreError::InvalidRequest("Cannot specify both Range header and partNumber query parameter".into()))
        }
        (Some(range), None) => {
            let bytes = range.check(info.size).map_err(|_| StoreError::InvalidRange)?;
            Ok(Some((bytes.start, bytes.end - bytes.start)))
        }
        (None, Some(number)) => part_range(info, number).map(Some),
        (None, None) => Ok(None),
    }
}

/// `x-amz-mp-parts-count`: given when a part was asked for, of objects uploaded in parts.
fn parts_count(info: &ObjectInfo, part: Option<i32>) -> Option<i32> {
    (part.is_some() && info.etag.contains('-')).then_some(info.parts.len() as i32)
}

pub(super) fn body_stream(blob: StreamingBlob) -> BodyStream {
    Box::pin(blob.map_err(io::Error::other))
}

pub(super) fn parse_content_md5(value: Option<&String>) -> S3Result<Option<[u8; 16]>> {
    let Some(value) = value else { return Ok(None) };
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(value).map_err(|_| store_error(StoreError::InvalidDigest))?;
    let digest: [u8; 16] = bytes.try_into().map_err(|_| store_error(StoreError::InvalidDigest))?;
    Ok(Some(digest))
}

pub(super) fn parse_algorithm(name: &str) -> S3Result<Algorithm> {
    match name.to_ascii_uppercase().as_str() {
        "CRC32" => Ok(Algorithm::Crc32),
        "CRC32C" => Ok(Algorithm::Crc32c),
        "CRC64NVME" => Ok(Algorithm::Crc64Nvme),
        "SHA1" => Ok(Algorithm::Sha1),
        "SHA256" => Ok(Algorithm::Sha256),
        other => {
            Err(S3Error::with_message(S3ErrorCode::InvalidRequest, format!("Unsupported checksum algorithm {other}")))
        }
    }
}

/// The checksums a client sent in headers, and the algorithms to compute.
pub(super) struct ChecksumRequest {
    pub algorithms: Vec<Algorithm>,
    pub expected: Vec<(Algorithm, String)>,
}

impl ChecksumRequest {
    pub fn new(
        algorithm: Option<&ChecksumAlgorithm>,
        crc32: Option<&String>,
        crc32c: Option<&String>,
        crc64nvme: Option<&String>,
        sha1: Option<&String>,
        sha256: Option<&String>,
    ) -> S3Result<Self> {
        let mut expected = Vec::new();
        for (algo, value) in [
            (Algorithm::Crc32, crc32),
            (Algorithm::Crc32c, crc32c),
            (Algorithm::Crc64Nvme, crc64nvme),
            (Algorithm::Sha1, sha1),
            (Algorithm::Sha256, sha256),
        ] {
            if let Some(value) = value {
                expected.push((algo, value.clone()));
            }
        }
        let mut algorithms: Vec<Algorithm> = expected.iter().map(|(a, _)| *a).collect();
        if let Some(algorithm) = algorithm {
            let algorithm = parse_algorithm(algorithm.as_str())?;
            if !algorithms.contains(&algorithm) {
                algorithms.push(algorithm);
            }
        }
        Ok(ChecksumRequest { algorithms, expected })
    }

    /// Compares what was computed against the header values and the trailer values that
    /// arrive after the body.
    pub fn verifier(self, trailers: Option<TrailingHeaders>) -> ChecksumVerifier {
        Box::new(move |computed: &[(Algorithm, String)]| {
            let mut expected = self.expected;
            if let Some(trailers) = trailers.and_then(|t| t.take()) {
                for (algorithm, _) in computed {
                    let name = format!("x-amz-checksum-{}", algorithm_name(*algorithm).to_ascii_lowercase());
                    if let Some(value) = trailers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
                        expected.push((*algorithm, value.to_string()));
                    }
                }
            }
            for (algorithm, value) in expected {
                if let Some((_, actual)) = computed.iter().find(|(a, _)| *a == algorithm)
                    && *actual != value
                {
                    return Err(StoreError::ChecksumMismatch(algorithm_name(algorithm)));
                }
            }
            Ok(())
        })
    }
}

/// s3s outputs that carry the five x-amz-checksum-* fields, filled from stored checksums.
pub(super) trait WithChecksums: Sized {
    fn with_checksums(self, checksums: &[(Algorithm, String)]) -> Self;
}

macro_rules! impl_with_checksums {
    ($($output:ty),* $(,)?) => {$(
        impl WithChecksums for $output {
            fn with_checksums(mut self, checksums: &[(Algorithm, String)]) -> Self {
                for (algorithm, value) in checksums {
                    let slot = match algorithm {
                        Algorithm::Crc32 => &mut self.checksum_crc32,
                        Algorithm::Crc32c => &mut self.checksum_crc32c,
                        Algorithm::Crc64Nvme => &mut self.checksum_crc64nvme,
                        Algorithm::Sha1 => &mut self.checksum_sha1,
                        Algorithm::Sha256 => &mut self.checksum_sha256,
                    };
                    *slot = Some(value.clone());
                }
                self
            }
        }
    )*};
}

impl_with_checksums!(
    PutObjectOutput,
    GetObjectOutput,
    HeadObjectOutput,
    UploadPartOutput,
    CompleteMultipartUploadOutput,
    CopyPartResult,
    Part,
    Checksum,
    ObjectPart,
);

fn strong_etag(info: &ObjectInfo) -> ETag {
    ETag::Strong(info.etag.clone())
}

fn etag_matches(condition: &ETagCondition, info: &ObjectInfo) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(etag) => etag.value() == info.etag,
    }
}

/// Last-Modified has one-second resolution on the wire; conditions compare at that grain.
fn modified_seconds(info: &ObjectInfo) -> i64 {
    info.modified_ns.div_euclid(1_000_000_000)
}

fn timestamp_seconds(timestamp: &Timestamp) -> i64 {
    time::OffsetDateTime::from(timestamp.clone()).unix_timestamp()
}

/// The GET/HEAD conditional rules of RFC 9110 as S3 applies them.
pub(super) fn check_read_conditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> Result<(), StoreError> {
    match if_match {
        Some(condition) if !etag_matches(condition, info) => {
            return Err(StoreError::PreconditionFailed);
        }
        Some(_) => {}
        None => {
            if let Some(since) = if_unmodified_since
                && modified_seconds(info) > timestamp_seconds(since)
            {
                return Err(StoreError::PreconditionFailed);
            }
        }
    }
    match if_none_match {
        Some(condition) if etag_matches(condition, info) => return Err(StoreError::NotModified),
        Some(_) => {}
        None => {
            if let Some(since) = if_modified_since
                && modified_seconds(info) <= timestamp_seconds(since)
            {
                return Err(StoreError::NotModified);
            }
        }
    }
    Ok(())
}

/// If-Match / If-None-Match on PutObject and CompleteMultipartUpload, as AWS evaluates
/// them: against the key's latest version when the request arrives (412, or 404 for
/// If-Match on no object), and again at commit, under the key's lock: a write or delete
/// of the key that committed in between is a conflict (409), to retry.
pub(super) async fn write_precondition(
    store: &Store,
    bucket: &str,
    key: &str,
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
) -> Result<Option<Precondition>, StoreError> {
    if if_match.is_none() && if_none_match.is_none() {
        return Ok(None);
    }
    let observed = match store.head_object(bucket, key).await {
        Ok(info) => Some(info),
        Err(StoreError::NoSuchKey | StoreError::DeleteMarker { .. }) => None,
        Err(e) => return Err(e),
    };
    if let Some(condition) = &if_match {
        match &observed {
            Some(info) if etag_matches(condition, info) => {}
            Some(_) => return Err(StoreError::PreconditionFailed),
            None => return Err(StoreError::NoSuchKey),
        }
    }
    if let Some(condition) = &if_none_match
        && let Some(info) = &observed
        && etag_matches(condition, info)
    {
        return Err(StoreError::PreconditionFailed);
    }
    let seen = observed.map(|info| (info.version_id, info.modified_ns));
    Ok(Some(Box::new(move |current: Option<&ObjectInfo>| {
        let now = current.map(|info| (info.version_id, info.modified_ns));
        if now == seen { Ok(()) } else { Err(StoreError::ConditionalConflict) }
    })))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl BucketsS3 {
    pub(super) async fn put_object_impl(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let acl = self
            .write_acl(&req.input.bucket, req.extensions.get(), &super::acl::object_acl_request!(req.input))
            .await?;
        let trailers = req.trailing_headers;
        let input = req.input;
        let mut headers = StoredHeaders {
            content_type: input.content_type.clone(),
            content_encoding: input.content_encoding.clone(),
            content_disposition: input.content_disposition.clone(),
            content_language: input.content_language.clone(),
            cache_control: input.cache_control.clone(),
            expires: input.expires.clone(),
            website_redirect_location: input.website_redirect_location.clone(),
            metadata: input.metadata.clone(),
            tagging: input.tagging.clone(),
        }
        .to_headers()?;
        headers.extend(acl);
        let checksums = ChecksumRequest::new(
            input.checksum_algorithm.as_ref(),
            input.checksum_crc32.as_ref(),
            input.checksum_crc32c.as_ref(),
            input.checksum_crc64nvme.as_ref(),
            input.checksum_sha1.as_ref(),
            input.checksum_sha256.as_ref(),
        )?;
        let options = PutOptions {
            headers,
            content_length: input.content_length.and_then(|l| u64::try_from(l).ok()),
            expected_md5: parse_content_md5(input.content_md5.as_ref())?,
            checksum_algorithms: checksums.algorithms.clone(),
            verify_checksums: Some(checksums.verifier(trailers)),
            precondition: write_precondition(
                &self.store,
                &input.bucket,
                &input.key,
                input.if_match.clone(),
                input.if_none_match.clone(),
            )
            .await
            .map_err(store_error)?,
            lock: super::lock::requested_lock(
                input.object_lock_mode.as_ref(),
                input.object_lock_retain_until_date.as_ref(),
                input.object_lock_legal_hold_status.as_ref(),
            )?,
            ..Default::default()
        };
        let body: BodyStream = match input.body {
            Some(blob) => body_stream(blob),
            None => Box::pin(futures::stream::empty()),
        };
        let info = self.store.put_object(&input.bucket, &input.key, body, options).await.map_err(store_error)?;
        Ok(S3Response::new(
            PutObjectOutput {
                e_tag: Some(strong_etag(&info)),
                version_id: version_header(&info),
                expiration: self.store.expiration_header(&info).await,
                ..Default::default()
            }
            .with_checksums(&info.checksums),
        ))
    }

    pub(super) async fn head_object_impl(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let selector = version_selector(input.version_id.as_deref())?;
        let info = self.store.head_version(&input.bucket, &input.key, selector).await.map_err(store_error)?;
        check_read_conditions(
            &info,
            input.if_match.as_ref(),
            input.if_none_match.as_ref(),
            input.if_modified_since.as_ref(),
            input.if_unmodified_since.as_ref(),
        )
        .map_err(store_error)?;
        let (content_length, content_range) =
            match requested_range(&info, input.range.as_ref(), input.part_number).map_err(store_error)? {
                Some((start, length)) => {
                    (length, Some(format!("bytes {}-{}/{}", start, start + length.max(1) - 1, info.size)))
                }
                None => (info.size, None),
            };
        let with_checksums = input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let checksums: &[(Algorithm, String)] = if with_checksums { &info.checksums } else { &[] };
        let overrides = Overrides {
            content_type: input.response_content_type,
            content_encoding: input.response_content_encoding,
            content_disposition: input.response_content_disposition,
            content_language: input.response_content_language,
            cache_control: input.response_cache_control,
            expires: input.response_expires,
        };
        let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) =
            super::lock::lock_headers(&info.lock);
        Ok(S3Response::new(
            HeadObjectOutput {
                parts_count: parts_count(&info, input.part_number),
                expiration: self.store.expiration_header(&info).await,
                object_lock_mode,
                object_lock_retain_until_date,
                object_lock_legal_hold_status,
                accept_ranges: Some("bytes".into()),
                content_length: Some(to_i64(content_length)),
                content_range,
                version_id: input.version_id.or_else(|| version_header(&info)),
                ..Default::default()
            }
            .describe(&info, overrides)
            .with_checksums(checksums),
        ))
    }

    pub(super) async fn get_object_impl(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let selector = version_selector(input.version_id.as_deref())?;
        let (if_match, if_none_match) = (input.if_match.clone(), input.if_none_match.clone());
        let (if_modified_since, if_unmodified_since) =
            (input.if_modified_since.clone(), input.if_unmodified_since.clone());
        let (range, part) = (input.range, input.part_number);
        let plan: ReadPlan = Box::new(move |info: &ObjectInfo| {
            check_read_conditions(
                info,
                if_match.as_ref(),
                if_none_match.as_ref(),
                if_modified_since.as_ref(),
                if_unmodified_since.as_ref(),
            )?;
            Ok(requested_range(info, range.as_ref(), part)?.unwrap_or((0, info.size)))
        });
        let read = self.store.get_version(&input.bucket, &input.key, selector, plan).await.map_err(store_error)?;
        let (info, stream, length) = (read.info, read.body, read.length);
        let content_range = (input.range.is_some() || input.part_number.is_some())
            .then(|| format!("bytes {}-{}/{}", read.start, read.start + length.max(1) - 1, info.size));
        let full = content_range.is_none();
        let with_checksums = full && input.checksum_mode.as_ref().is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        let checksums: &[(Algorithm, String)] = if with_checksums { &info.checksums } else { &[] };
        let tag_count = super::tagging::stored(&info.headers).len() as i32;
        let overrides = Overrides {
            content_type: input.response_content_type,
            content_encoding: input.response_content_encoding,
            content_disposition: input.response_content_disposition,
            content_language: input.response_content_language,
            cache_control: input.response_cache_control,
            expires: input.response_expires,
        };
        let (object_lock_mode, object_lock_retain_until_date, object_lock_legal_hold_status) =
            super::lock::lock_headers(&info.lock);
        Ok(S3Response::new(
            GetObjectOutput {
                parts_count: parts_count(&info, input.part_number),
                expiration: self.store.expiration_header(&info).await,
                object_lock_mode,
                object_lock_retain_until_date,
                object_lock_legal_hold_status,
                tag_count: (tag_count > 0).then_some(tag_count),
                body: Some(StreamingBlob::wrap(stream)),
                accept_ranges: Some("bytes".into()),
                content_length: Some(to_i64(length)),
                content_range,
                version_id: input.version_id.or_else(|| version_header(&info)),
                ..Default::default()
            }
            .describe(&info, overrides)
            .with_checksums(checksums),
        ))
    }

    pub(super) async fn delete_object_impl(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        let version = match version_selector(input.version_id.as_deref())? {
            Selector::Latest => None,
            Selector::Id(id) => Some(id),
        };
        // Deleting a key that does not exist succeeds, as in S3.
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        let deleted =
            self.store.delete_object_version(&input.bucket, &input.key, version, bypass).await.map_err(store_error)?;
        let output = DeleteObjectOutput {
            version_id: deleted.version_id.map(|id| id.to_string()),
            delete_marker: deleted.delete_marker.then_some(true),
            ..Default::default()
        };
        Ok(S3Response::with_status(output, http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn delete_objects_impl(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let refused = req.extensions.get::<super::access::RefusedDeletes>().map(|r| r.0.clone()).unwrap_or_default();
        let input = req.input;
        if input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                format!("at most {MAX_DELETE_KEYS} keys per request"),
            ));
        }
        self.store.head_bucket(&input.bucket).await.map_err(store_error)?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let bypass = input.bypass_governance_retention.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for (index, object) in input.delete.objects.into_iter().enumerate() {
            if refused.get(index).copied().unwrap_or(false) {
                errors.push(Error {
                    code: Some("AccessDenied".to_string()),
                    message: Some("Access Denied".to_string()),
                    key: Some(object.key),
                    version_id: object.version_id,
                });
                continue;
            }
            let version = match version_selector(object.version_id.as_deref()) {
                Ok(Selector::Latest) => Ok(None),
                Ok(Selector::Id(id)) => Ok(Some(id)),
                Err(e) => Err(e),
            };
            let result = match version {
                Ok(version) => self
                    .store
                    .delete_object_version(&input.bucket, &object.key, version, bypass)
                    .await
                    .map_err(store_error),
                Err(e) => Err(e),
            };
            match result {
                Ok(done) => {
                    if !quiet {
                        // A marker added (no id asked for) or removed (its id asked for)
                        // is named as DeleteMarkerVersionId.
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            version_id: object.version_id.clone(),
                            delete_marker: done.delete_marker.then_some(true),
                            delete_marker_version_id: done
                                .delete_marker
                                .then(|| done.version_id.map(|id| id.to_string()))
                                .flatten(),
                        });
                    }
                }
                Err(error) => {
                    errors.push(Error {
                        code: Some(error.code().as_str().to_string()),
                        message: error.message().map(str::to_string),
                        key: Some(object.key),
                        version_id: object.version_id,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted.is_empty()).then_some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(etag: &str, modified_seconds: i64) -> ObjectInfo {
        ObjectInfo {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            etag: etag.into(),
            modified_ns: modified_seconds * 1_000_000_000 + 500_000_000,
            headers: vec![],
            checksums: vec![],
            parts: vec![],
            version_id: crate::format::version_id::VersionId::NULL,
            delete_marker: false,
            is_latest: false,
            lock: Default::default(),
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from(time::OffsetDateTime::from_unix_timestamp(seconds).unwrap())
    }

    #[test]
    fn read_conditions_follow_rfc_precedence() {
        let object = info("abc", 1000);
        let matching = ETagCondition::ETag(ETag::Strong("abc".into()));
        let other = ETagCondition::ETag(ETag::Strong("zzz".into()));
        // If-Match wins over If-Unmodified-Since.
        assert!(check_read_conditions(&object, Some(&matching), None, None, Some(&at(10))).is_ok());
        assert!(matches!(
            check_read_conditions(&object, Some(&other), None, None, None),
            Err(StoreError::PreconditionFailed)
        ));
        assert!(matches!(
            check_read_conditions(&object, None, None, None, Some(&at(999))),
            Err(StoreError::PreconditionFailed)
        ));
        assert!(check_read_conditions(&object, None, None, None, Some(&at(1000))).is_ok());
        // If-None-Match wins over If-Modified-Since.
        assert!(matches!(
            check_read_conditions(&object, None, Some(&matching), None, None),
            Err(StoreError::NotModified)
        ));
        assert!(check_read_conditions(&object, None, Some(&other), Some(&at(2000)), None).is_ok());
        assert!(matches!(
            check_read_conditions(&object, None, None, Some(&at(1000)), None),
            Err(StoreError::NotModified)
        ));
        assert!(check_read_conditions(&object, None, None, Some(&at(999)), None).is_ok());
    }
}
