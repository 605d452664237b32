//! Object tags: PutObjectTagging, GetObjectTagging, DeleteObjectTagging, and the
//! `x-amz-tagging` header of PutObject, CreateMultipartUpload and CopyObject. Tags are kept
//! with the object's stored headers (`x-amz-tagging`, form-encoded, in the order given), so
//! they move, heal and replicate with the object; changing them rewrites only metadata.

use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::{BucketsS3, store_error, version_header, version_selector};
use crate::error::StoreResult;

/// The stored header holding an object's tags.
pub(super) const TAGGING_HEADER: &str = "x-amz-tagging";
/// S3's limits on object tags.
const MAX_TAGS: usize = 10;
const MAX_KEY_CHARS: usize = 128;
const MAX_VALUE_CHARS: usize = 256;

fn invalid_tag(message: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidTag, message.into())
}

/// Tag keys and values: letters, digits, spaces and `+ - = . _ : / @` (AWS's rule).
fn allowed(text: &str) -> bool {
    text.chars().all(|c| c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c))
}

/// Checks a tag set against S3's rules and encodes it for storage.
fn encode(tags: &[(String, String)]) -> S3Result<String> {
    if tags.len() > MAX_TAGS {
        return Err(invalid_tag(format!("Object tags cannot be greater than {MAX_TAGS}")));
    }
    for (index, (key, value)) in tags.iter().enumerate() {
        if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
            return Err(invalid_tag(format!(
                "The TagKey you have provided is invalid: it must be 1 to {MAX_KEY_CHARS} characters"
            )));
        }
        if value.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid_tag(format!("The TagValue you have provided is too long, max {MAX_VALUE_CHARS}")));
        }
        if !allowed(key) || !allowed(value) {
            return Err(invalid_tag(format!(
                "The TagKey or TagValue you have provided is invalid: {key:?}={value:?} (letters, digits, spaces and + - = . _ : / @)"
            )));
        }
        if tags[..index].iter().any(|(other, _)| other == key) {
            return Err(invalid_tag(format!("Cannot provide multiple Tags with the same key: {key:?}")));
        }
    }
    Ok(form_urlencoded::Serializer::new(String::new()).extend_pairs(tags).finish())
}

/// The tags of an `x-amz-tagging` header (`k1=v1&k2=v2`, URL-encoded), checked, as stored.
pub(super) fn from_header(value: &str) -> S3Result<String> {
    let tags: Vec<(String, String)> =
        form_urlencoded::parse(value.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    encode(&tags)
}

/// The tags stored with an object.
pub(super) fn stored(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .find(|(name, _)| name == TAGGING_HEADER)
        .map(|(_, value)| {
            form_urlencoded::parse(value.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
        })
        .unwrap_or_default()
}

/// Replaces the stored tags in `headers` (none: removes them).
pub(super) fn replace(headers: &mut Vec<(String, String)>, encoded: Option<String>) {
    headers.retain(|(name, _)| name != TAGGING_HEADER);
    if let Some(encoded) = encoded.filter(|e| !e.is_empty()) {
        headers.push((TAGGING_HEADER.to_string(), encoded));
    }
}

impl BucketsS3 {
    /// Sets (or, with `None`, removes) the tags of the version `version_id` names (the
    /// latest when none); returns that version's id for the answer.
    async fn set_tags(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        encoded: Option<String>,
    ) -> S3Result<Option<String>> {
        let selector = version_selector(version_id)?;
        let change = move |headers: &mut Vec<(String, String)>| -> StoreResult<()> {
            replace(headers, encoded.clone());
            Ok(())
        };
        let info = self.store.update_object_headers(bucket, key, selector, &change).await.map_err(store_error)?;
        Ok(version_header(&info))
    }

    pub(super) async fn put_object_tagging_impl(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        let tags: Vec<(String, String)> = input
            .tagging
            .tag_set
            .into_iter()
            .map(|tag| (tag.key.unwrap_or_default(), tag.value.unwrap_or_default()))
            .collect();
        let encoded = encode(&tags)?;
        let version_id = self.set_tags(&input.bucket, &input.key, input.version_id.as_deref(), Some(encoded)).await?;
        Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
    }

    pub(super) async fn get_object_tagging_impl(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        let selector = version_selector(input.version_id.as_deref())?;
        let info = self.store.head_version(&input.bucket, &input.key, selector).await.map_err(store_error)?;
        let tag_set =
            stored(&info.headers).into_iter().map(|(key, value)| Tag { key: Some(key), value: Some(value) }).collect();
        Ok(S3Response::new(GetObjectTaggingOutput { tag_set, version_id: version_header(&info) }))
    }

    pub(super) async fn delete_object_tagging_impl(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        let version_id = self.set_tags(&input.bucket, &input.key, input.version_id.as_deref(), None).await?;
        Ok(S3Response::with_status(DeleteObjectTaggingOutput { version_id }, http::StatusCode::NO_CONTENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tags_round_trip_through_the_stored_header() {
        let tags = pairs(&[("Environment", "Test"), ("path", "a/b c+d"), ("empty", ""), ("ünï", "cödé")]);
        let mut headers = vec![("content-type".to_string(), "text/plain".to_string())];
        replace(&mut headers, Some(encode(&tags).unwrap()));
        assert_eq!(stored(&headers), tags);
        assert_eq!(stored(&headers[..1]), Vec::new());
        replace(&mut headers, None);
        assert_eq!(headers, pairs(&[("content-type", "text/plain")]));
        // The request header form decodes the same way.
        assert_eq!(from_header("a=1&b=x%20y").unwrap(), encode(&pairs(&[("a", "1"), ("b", "x y")])).unwrap());
    }

    #[test]
    fn s3_rules_refuse_bad_tag_sets() {
        let code = |tags: Vec<(String, String)>| encode(&tags).unwrap_err().code().clone();
        let eleven: Vec<_> = (0..11).map(|i| (format!("k{i}"), "v".to_string())).collect();
        assert_eq!(code(eleven), S3ErrorCode::InvalidTag);
        assert_eq!(code(pairs(&[("a", "1"), ("a", "2")])), S3ErrorCode::InvalidTag);
        assert_eq!(code(pairs(&[("", "1")])), S3ErrorCode::InvalidTag);
        assert_eq!(code(vec![("k".repeat(129), String::new())]), S3ErrorCode::InvalidTag);
        assert_eq!(code(vec![("k".into(), "v".repeat(257))]), S3ErrorCode::InvalidTag);
        assert_eq!(code(pairs(&[("semi;colon", "1")])), S3ErrorCode::InvalidTag);
        assert!(encode(&(0..10).map(|i| (format!("k{i}"), "v".repeat(256))).collect::<Vec<_>>()).is_ok());
        assert_eq!(from_header("a=1&a=2").unwrap_err().code(), &S3ErrorCode::InvalidTag);
    }
}
