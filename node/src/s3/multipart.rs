//! Multipart uploads: create, upload part, complete (ETag "md5-of-md5s-N", part order and
//! size rules), abort, list parts, list uploads.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::object::{
    ChecksumRequest, StoredHeaders, WithChecksums, body_stream, parse_algorithm, parse_content_md5, write_precondition,
};
use super::{BucketsS3, store_error, timestamp_from_ns};
use crate::error::StoreError;
use crate::format::object::ChecksumAlgorithm as Algorithm;
use crate::storage::multipart::{MultipartChecksum, RequestedPart};
use crate::storage::{BodyStream, PutOptions};

/// The checksum a CreateMultipartUpload asks for (x-amz-checksum-algorithm and
/// x-amz-checksum-type), with S3's rules: COMPOSITE is the default except for CRC64NVME,
/// which is FULL_OBJECT only; FULL_OBJECT needs a CRC.
fn multipart_checksum(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<MultipartChecksum>> {
    let invalid = |message: String| Err(S3Error::with_message(S3ErrorCode::InvalidRequest, message));
    let algorithm = algorithm.map(|a| parse_algorithm(a.as_str())).transpose()?;
    let Some(algorithm) = algorithm else {
        return match kind {
            Some(_) => invalid(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.".into(),
            ),
            None => Ok(None),
        };
    };
    let crc = matches!(algorithm, Algorithm::Crc32 | Algorithm::Crc32c | Algorithm::Crc64Nvme);
    let full_object = match kind.map(ChecksumType::as_str) {
        None => algorithm == Algorithm::Crc64Nvme,
        Some(ChecksumType::FULL_OBJECT) if crc => true,
        Some(ChecksumType::COMPOSITE) if algorithm != Algorithm::Crc64Nvme => false,
        Some(kind @ (ChecksumType::FULL_OBJECT | ChecksumType::COMPOSITE)) => {
            return invalid(format!(
                "The {kind} checksum type cannot be used with the {} checksum algorithm.",
                crate::storage::checksum::algorithm_name(algorithm).to_ascii_lowercase()
            ));
        }
        Some(other) => return invalid(format!("Value for x-amz-checksum-type header is invalid: {other}")),
    };
    Ok(Some(MultipartChecksum { algorithm, full_object }))
}

/// The checksums a request lists (CRC32, CRC32C, CRC64NVME, SHA1, SHA256, in that order).
fn listed_checksums(values: [Option<String>; 5]) -> Vec<(Algorithm, String)> {
    [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme, Algorithm::Sha1, Algorithm::Sha256]
        .into_iter()
        .zip(values)
        .filter_map(|(algorithm, value)| Some((algorithm, value?)))
        .collect()
}

fn checksum_type(checksum: &MultipartChecksum) -> ChecksumType {
    ChecksumType::from_static(if checksum.full_object { ChecksumType::FULL_OBJECT } else { ChecksumType::COMPOSITE })
}

/// Most parts or uploads listed per page (the S3 limit).
const MAX_LIST_PARTS: i32 = 1000;

impl BucketsS3 {
    pub(super) async fn create_multipart_upload_impl(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let acl = self
            .write_acl(&req.input.bucket, req.extensions.get(), &super::acl::object_acl_request!(req.input))
            .await?;
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
        let checksum = multipart_checksum(input.checksum_algorithm.as_ref(), input.checksum_type.as_ref())?;
        let lock = super::lock::requested_lock(
            input.object_lock_mode.as_ref(),
            input.object_lock_retain_until_date.as_ref(),
            input.object_lock_legal_hold_status.as_ref(),
        )?;
        let upload_id = self
            .store
            .create_multipart_upload(&input.bucket, &input.key, headers, checksum, lock)
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: checksum.and(input.checksum_algorithm),
            checksum_type: checksum.as_ref().map(checksum_type),
            ..Default::default()
        }))
    }

    pub(super) async fn upload_part_impl(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let trailers = req.trailing_headers;
        let input = req.input;
        let number = u32::try_from(input.part_number).map_err(|_| {
            store_error(StoreError::InvalidArgument(
                "Part number must be an integer between 1 and 10000, inclusive".into(),
            ))
        })?;
        let checksums = ChecksumRequest::new(
            input.checksum_algorithm.as_ref(),
            input.checksum_crc32.as_ref(),
            input.checksum_crc32c.as_ref(),
            input.checksum_crc64nvme.as_ref(),
            input.checksum_sha1.as_ref(),
            input.checksum_sha256.as_ref(),
        )?;
        let options = PutOptions {
            content_length: input.content_length.and_then(|l| u64::try_from(l).ok()),
            expected_md5: parse_content_md5(input.content_md5.as_ref())?,
            checksum_algorithms: checksums.algorithms.clone(),
            verify_checksums: Some(checksums.verifier(trailers)),
            ..Default::default()
        };
        let body: BodyStream = match input.body {
            Some(blob) => body_stream(blob),
            None => Box::pin(futures::stream::empty()),
        };
        let part = self
            .store
            .upload_part(&input.bucket, &input.key, &input.upload_id, number, body, options)
            .await
            .map_err(store_error)?;
        Ok(S3Response::new(
            UploadPartOutput { e_tag: Some(ETag::Strong(part.etag)), ..Default::default() }
                .with_checksums(&part.checksums),
        ))
    }

    pub(super) async fn complete_multipart_upload_impl(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let parts = input.multipart_upload.and_then(|m| m.parts).unwrap_or_default();
        let mut requested = Vec::with_capacity(parts.len());
        for part in parts {
            let number = part.part_number.and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
                S3Error::with_message(S3ErrorCode::InvalidPart, "Every part needs a PartNumber between 1 and 10000")
            })?;
            let etag = part.e_tag.map(|e| e.value().to_string()).unwrap_or_default();
            let checksums = listed_checksums([
                part.checksum_crc32,
                part.checksum_crc32c,
                part.checksum_crc64nvme,
                part.checksum_sha1,
                part.checksum_sha256,
            ]);
            requested.push(RequestedPart { number, etag, checksums });
        }
        let expected = listed_checksums([
            input.checksum_crc32,
            input.checksum_crc32c,
            input.checksum_crc64nvme,
            input.checksum_sha1,
            input.checksum_sha256,
        ]);
        let precondition =
            write_precondition(&self.store, &input.bucket, &input.key, input.if_match, input.if_none_match)
                .await
                .map_err(store_error)?;
        let info = self
            .store
            .complete_multipart_upload(&input.bucket, &input.key, &input.upload_id, &requested, &expected, precondition)
            .await
            .map_err(store_error)?;
        let kind = info.checksums.first().map(|(_, value)| {
            ChecksumType::from_static(if value.contains('-') {
                ChecksumType::COMPOSITE
            } else {
                ChecksumType::FULL_OBJECT
            })
        });
        Ok(S3Response::new(
            CompleteMultipartUploadOutput {
                bucket: Some(input.bucket.clone()),
                key: Some(input.key.clone()),
                location: Some(format!("/{}/{}", input.bucket, input.key)),
                e_tag: Some(ETag::Strong(info.etag.clone())),
                checksum_type: kind,
                version_id: super::version_header(&info),
                ..Default::default()
            }
            .with_checksums(&info.checksums),
        ))
    }

    pub(super) async fn abort_multipart_upload_impl(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.store.abort_multipart_upload(&input.bucket, &input.key, &input.upload_id).await.map_err(store_error)?;
        Ok(S3Response::with_status(AbortMultipartUploadOutput::default(), http::StatusCode::NO_CONTENT))
    }

    pub(super) async fn list_parts_impl(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let max_parts = input.max_parts.unwrap_or(MAX_LIST_PARTS).clamp(0, MAX_LIST_PARTS) as usize;
        let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
        let all = self.store.list_parts(&input.bucket, &input.key, &input.upload_id).await.map_err(store_error)?;
        let owner = self.bucket_owner_answer(&input.bucket).await;
        let remaining: Vec<_> = all.into_iter().filter(|p| p.number > marker).collect();
        let truncated = remaining.len() > max_parts;
        let page: Vec<_> = remaining.into_iter().take(max_parts).collect();
        let next_marker = page.last().map(|p| p.number as i32);
        let parts = page
            .into_iter()
            .map(|p| {
                Part {
                    part_number: Some(p.number as i32),
                    e_tag: Some(ETag::Strong(p.etag.clone())),
                    size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                    last_modified: Some(timestamp_from_ns(p.modified_ns)),
                    ..Default::default()
                }
                .with_checksums(&p.checksums)
            })
            .collect::<Vec<_>>();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max_parts as i32),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next_marker,
            is_truncated: Some(truncated),
            owner: Some(owner.clone()),
            initiator: Some(Initiator { id: Some(self.owner_id.clone()), display_name: Some(self.owner_name.clone()) }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            parts: (!parts.is_empty()).then_some(parts),
            ..Default::default()
        }))
    }

    pub(super) async fn list_multipart_uploads_impl(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let max_uploads = input.max_uploads.unwrap_or(MAX_LIST_PARTS).clamp(0, MAX_LIST_PARTS) as usize;
        let prefix = input.prefix.clone().unwrap_or_default();
        let all = self.store.list_multipart_uploads(&input.bucket, &prefix).await.map_err(store_error)?;
        let owner = self.bucket_owner_answer(&input.bucket).await;
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let upload_marker = input.upload_id_marker.clone();
        let remaining: Vec<_> = all
            .into_iter()
            .filter(|u| match &upload_marker {
                // With an upload-id marker, uploads of the marker key after that id follow.
                Some(id) if !key_marker.is_empty() => {
                    u.key > key_marker || (u.key == key_marker && u.upload_id.as_str() > id.as_str())
                }
                _ => key_marker.is_empty() || u.key > key_marker,
            })
            .collect();
        let truncated = remaining.len() > max_uploads;
        let page: Vec<_> = remaining.into_iter().take(max_uploads).collect();
        let next = page.last().map(|u| (u.key.clone(), u.upload_id.clone()));
        let uploads = page
            .into_iter()
            .map(|u| MultipartUpload {
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                initiated: Some(timestamp_from_ns(u.initiated_ns)),
                owner: Some(owner.clone()),
                initiator: Some(Initiator {
                    id: Some(self.owner_id.clone()),
                    display_name: Some(self.owner_name.clone()),
                }),
                storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                ..Default::default()
            })
            .collect::<Vec<_>>();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(max_uploads as i32),
            is_truncated: Some(truncated),
            next_key_marker: truncated.then(|| next.as_ref().map(|n| n.0.clone())).flatten(),
            next_upload_id_marker: truncated.then(|| next.as_ref().map(|n| n.1.clone())).flatten(),
            uploads: (!uploads.is_empty()).then_some(uploads),
            ..Default::default()
        }))
    }
}
