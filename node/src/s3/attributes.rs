//! GetObjectAttributes: what HeadObject and ListParts would tell, in one call, for the
//! attributes asked for (`x-amz-object-attributes`).

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::object::WithChecksums;
use super::{BucketsS3, store_error, timestamp_from_ns, version_header, version_selector};
use crate::format::object::PartInfo;
use crate::storage::ObjectInfo;

/// S3's default and largest page of parts.
const MAX_ATTRIBUTE_PARTS: i32 = 1000;

fn invalid_argument(message: &str) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidArgument, message.to_string())
}

/// The attributes asked for, checked against S3's names.
#[derive(Default)]
struct Wanted {
    etag: bool,
    checksum: bool,
    parts: bool,
    storage_class: bool,
    size: bool,
}

fn wanted(attributes: &[ObjectAttributes]) -> S3Result<Wanted> {
    let mut wanted = Wanted::default();
    for attribute in attributes {
        // A header may carry several names separated by commas.
        for name in attribute.as_str().split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                ObjectAttributes::ETAG => wanted.etag = true,
                ObjectAttributes::CHECKSUM => wanted.checksum = true,
                ObjectAttributes::OBJECT_PARTS => wanted.parts = true,
                ObjectAttributes::STORAGE_CLASS => wanted.storage_class = true,
                ObjectAttributes::OBJECT_SIZE => wanted.size = true,
                other => return Err(invalid_argument(&format!("Invalid attribute name specified: {other}"))),
            }
        }
    }
    if !(wanted.etag || wanted.checksum || wanted.parts || wanted.storage_class || wanted.size) {
        return Err(invalid_argument(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        ));
    }
    Ok(wanted)
}

/// The object's checksum as an attribute: a composite one without its "-N" part count,
/// and which kind it is.
fn checksum(info: &ObjectInfo) -> Option<Checksum> {
    let (_, value) = info.checksums.first()?;
    let composite = value.contains('-');
    let plain: Vec<_> = info
        .checksums
        .iter()
        .map(|(algorithm, value)| (*algorithm, value.split('-').next().unwrap_or("").to_string()))
        .collect();
    let checksum = Checksum {
        checksum_type: Some(ChecksumType::from_static(if composite {
            ChecksumType::COMPOSITE
        } else {
            ChecksumType::FULL_OBJECT
        })),
        ..Default::default()
    }
    .with_checksums(&plain);
    Some(checksum)
}

/// ObjectParts, for objects uploaded in parts: the count, and a page of the parts when
/// they carry checksums (S3 lists parts only then).
fn object_parts(
    info: &ObjectInfo,
    max_parts: Option<i32>,
    marker: Option<i32>,
) -> S3Result<Option<GetObjectAttributesParts>> {
    if !info.etag.contains('-') {
        return Ok(None);
    }
    let max_parts = max_parts.unwrap_or(MAX_ATTRIBUTE_PARTS);
    if max_parts < 0 {
        return Err(invalid_argument("Argument max-parts must be an integer between 0 and 2147483647"));
    }
    let start = marker.unwrap_or(0);
    if start < 0 {
        return Err(invalid_argument("Argument part-number-marker must be an integer between 0 and 2147483647"));
    }
    let max_parts = max_parts.min(MAX_ATTRIBUTE_PARTS);
    let listed = info.parts.iter().any(|part| !part.checksums.is_empty());
    let remaining: Vec<&PartInfo> =
        info.parts.iter().filter(|part| i64::from(part.number) > i64::from(start)).collect();
    let page: Vec<&PartInfo> = remaining.iter().take(max_parts as usize).copied().collect();
    Ok(Some(GetObjectAttributesParts {
        total_parts_count: Some(info.parts.len() as i32),
        part_number_marker: Some(start),
        next_part_number_marker: Some(page.last().map_or(start, |part| part.number as i32)),
        max_parts: Some(max_parts),
        is_truncated: Some(remaining.len() > page.len()),
        parts: listed.then(|| {
            page.iter()
                .map(|part| {
                    ObjectPart {
                        part_number: Some(part.number as i32),
                        size: Some(part.size as i64),
                        ..Default::default()
                    }
                    .with_checksums(&part.checksums)
                })
                .collect()
        }),
    }))
}

impl BucketsS3 {
    pub(super) async fn get_object_attributes_impl(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let input = req.input;
        let wanted = wanted(&input.object_attributes)?;
        let selector = version_selector(input.version_id.as_deref())?;
        let info = self.store.head_version(&input.bucket, &input.key, selector).await.map_err(store_error)?;
        let object_parts = match wanted.parts {
            true => object_parts(&info, input.max_parts, input.part_number_marker)?,
            false => None,
        };
        Ok(S3Response::new(GetObjectAttributesOutput {
            // Unquoted in this answer, as S3 gives it (`server::unquote_attribute_etag`).
            e_tag: wanted.etag.then(|| ETag::Strong(info.etag.clone())),
            checksum: if wanted.checksum { checksum(&info) } else { None },
            object_parts,
            object_size: wanted.size.then_some(info.size as i64),
            storage_class: wanted.storage_class.then(|| StorageClass::from_static(StorageClass::STANDARD)),
            last_modified: Some(timestamp_from_ns(info.modified_ns)),
            version_id: input.version_id.or_else(|| version_header(&info)),
            ..Default::default()
        }))
    }
}
