//! ListObjects (v1 and v2) and ListObjectVersions: pagination markers and tokens,
//! delimiters and common prefixes, `encoding-type=url`.

use base64::Engine;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{BucketsS3, store_error, timestamp_from_ns, version_selector};
use crate::storage::ListEntry;
use crate::storage::set::Selector;

/// S3 returns at most this many keys per page, whatever max-keys asks.
const MAX_LIST_KEYS: i32 = 1000;

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        Some(n) if n < 0 => {
            Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "max-keys must be a non-negative integer"))
        }
        Some(n) => Ok(n.min(MAX_LIST_KEYS) as usize),
        None => Ok(MAX_LIST_KEYS as usize),
    }
}

fn wants_url_encoding(encoding_type: Option<&EncodingType>) -> S3Result<bool> {
    match encoding_type {
        None => Ok(false),
        Some(e) if e.as_str() == EncodingType::URL => Ok(true),
        Some(_) => {
            Err(S3Error::with_message(S3ErrorCode::InvalidArgument, "Invalid Encoding Method specified in Request"))
        }
    }
}

/// Percent-encodes like S3's `encoding-type=url`: everything but unreserved characters
/// and `/`.
pub(super) fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

struct Page {
    entries: Vec<ListEntry>,
    truncated: bool,
}

impl BucketsS3 {
    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        marker: &str,
        limit: usize,
    ) -> S3Result<Page> {
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut entries =
            self.store.list_objects(bucket, prefix, delimiter, marker, limit + 1).await.map_err(store_error)?;
        // max-keys=0 still checks the bucket, and reports nothing truncated.
        let truncated = limit > 0 && entries.len() > limit;
        entries.truncate(limit);
        Ok(Page { entries, truncated })
    }

    fn split(&self, entries: Vec<ListEntry>, encode: bool, owner: Option<Owner>) -> (Vec<Object>, Vec<CommonPrefix>) {
        let encode_name = |name: String| if encode { url_encode(&name) } else { name };
        let mut objects = Vec::new();
        let mut prefixes = Vec::new();
        for entry in entries {
            match entry {
                ListEntry::Object(info) => objects.push(Object {
                    key: Some(encode_name(info.key)),
                    size: Some(i64::try_from(info.size).unwrap_or(i64::MAX)),
                    e_tag: Some(ETag::Strong(info.etag)),
                    last_modified: Some(timestamp_from_ns(info.modified_ns)),
                    storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
                    owner: owner.clone(),
                    ..Default::default()
                }),
                ListEntry::Prefix(prefix) => prefixes.push(CommonPrefix { prefix: Some(encode_name(prefix)) }),
            }
        }
        (objects, prefixes)
    }

    pub(super) async fn list_objects_impl(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let limit = max_keys(input.max_keys)?;
        let encode = wants_url_encoding(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let marker = input.marker.clone().unwrap_or_default();
        let page = self.list_page(&input.bucket, &prefix, input.delimiter.as_deref(), &marker, limit).await?;
        let next_marker = page.truncated.then(|| page.entries.last().map(|e| e.name().to_string())).flatten();
        let owner = self.bucket_owner_answer(&input.bucket).await;
        let (objects, prefixes) = self.split(page.entries, encode, Some(owner));
        let maybe_encode = |v: Option<String>| v.map(|v| if encode { url_encode(&v) } else { v });
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(maybe_encode(input.prefix).unwrap_or_default()),
            marker: Some(maybe_encode(input.marker).unwrap_or_default()),
            delimiter: maybe_encode(input.delimiter),
            max_keys: Some(limit as i32),
            is_truncated: Some(page.truncated),
            next_marker: maybe_encode(next_marker),
            contents: (!objects.is_empty()).then_some(objects),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_objects_v2_impl(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let limit = max_keys(input.max_keys)?;
        let encode = wants_url_encoding(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let token_marker = match &input.continuation_token {
            Some(token) => Some(decode_token(token)?),
            None => None,
        };
        let start_after = input.start_after.clone().unwrap_or_default();
        let marker = match token_marker {
            Some(token) if token > start_after => token,
            _ => start_after,
        };
        let page = self.list_page(&input.bucket, &prefix, input.delimiter.as_deref(), &marker, limit).await?;
        let next_token = page.truncated.then(|| page.entries.last().map(|e| encode_token(e.name()))).flatten();
        let key_count = page.entries.len() as i32;
        let owner = match input.fetch_owner {
            Some(true) => Some(self.bucket_owner_answer(&input.bucket).await),
            _ => None,
        };
        let (objects, prefixes) = self.split(page.entries, encode, owner);
        let maybe_encode = |v: Option<String>| v.map(|v| if encode { url_encode(&v) } else { v });
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(maybe_encode(input.prefix).unwrap_or_default()),
            delimiter: maybe_encode(input.delimiter),
            max_keys: Some(limit as i32),
            key_count: Some(key_count),
            is_truncated: Some(page.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token: next_token,
            start_after: maybe_encode(input.start_after),
            contents: (!objects.is_empty()).then_some(objects),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    pub(super) async fn list_object_versions_impl(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let limit = max_keys(input.max_keys)?;
        let encode = wants_url_encoding(input.encoding_type.as_ref())?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let key_marker = input.key_marker.clone().unwrap_or_default();
        let version_id_marker = match input.version_id_marker.as_deref() {
            // A version id marker means nothing without a key marker (S3 refuses it).
            Some(_) if key_marker.is_empty() => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "A version-id marker cannot be specified without a key marker.",
                ));
            }
            Some(marker) => match version_selector(Some(marker))? {
                Selector::Id(id) => Some(id),
                Selector::Latest => None,
            },
            None => None,
        };
        let delimiter = input.delimiter.as_deref().filter(|d| !d.is_empty());
        let page = self
            .store
            .list_object_versions(&input.bucket, &prefix, delimiter, &key_marker, version_id_marker, limit)
            .await
            .map_err(store_error)?;
        let owner = self.bucket_owner_answer(&input.bucket).await;
        let encode_name = |name: String| if encode { url_encode(&name) } else { name };
        let mut versions = Vec::new();
        let mut markers = Vec::new();
        let mut prefixes = Vec::new();
        for entry in page.entries {
            match entry {
                ListEntry::Object(info) if info.delete_marker => markers.push(DeleteMarkerEntry {
                    key: Some(encode_name(info.key)),
                    version_id: Some(info.version_id.to_string()),
                    is_latest: Some(info.is_latest),
                    last_modified: Some(timestamp_from_ns(info.modified_ns)),
                    owner: Some(owner.clone()),
                }),
                ListEntry::Object(info) => versions.push(ObjectVersion {
                    key: Some(encode_name(info.key)),
                    version_id: Some(info.version_id.to_string()),
                    is_latest: Some(info.is_latest),
                    size: Some(i64::try_from(info.size).unwrap_or(i64::MAX)),
                    e_tag: Some(ETag::Strong(info.etag)),
                    last_modified: Some(timestamp_from_ns(info.modified_ns)),
                    owner: Some(owner.clone()),
                    storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
                    ..Default::default()
                }),
                ListEntry::Prefix(prefix) => prefixes.push(CommonPrefix { prefix: Some(encode_name(prefix)) }),
            }
        }
        let maybe_encode = |v: Option<String>| v.map(|v| if encode { url_encode(&v) } else { v });
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(maybe_encode(input.prefix).unwrap_or_default()),
            delimiter: maybe_encode(input.delimiter),
            key_marker: Some(maybe_encode(input.key_marker).unwrap_or_default()),
            version_id_marker: input.version_id_marker,
            max_keys: Some(limit as i32),
            is_truncated: Some(page.truncated),
            next_version_id_marker: page.next_version_id_marker.map(|id| id.to_string()),
            next_key_marker: maybe_encode(page.next_key_marker),
            versions: (!versions.is_empty()).then_some(versions),
            delete_markers: (!markers.is_empty()).then_some(markers),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }
}

pub(super) fn encode_token(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name.as_bytes())
}

pub(super) fn decode_token(token: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| {
            S3Error::with_message(S3ErrorCode::InvalidArgument, "The continuation token provided is incorrect")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes() {
        assert_eq!(url_encode("a b/c+d%é"), "a%20b/c%2Bd%25%C3%A9");
    }

    #[test]
    fn tokens_round_trip() {
        for name in ["", "a/b", "ünï cödé/../x"] {
            assert_eq!(decode_token(&encode_token(name)).unwrap(), name);
        }
        assert!(decode_token("!!!").is_err());
    }
}
