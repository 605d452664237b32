//! The raw HTTP exchange around s3s: what S3 clients see that s3s leaves out. Every
//! answer carries an `x-amz-request-id`, and an error body names the same id; a presigned
//! URL's `X-Amz-Expires` is checked as S3 checks it; GetObjectAttributes gives its ETag
//! unquoted; a form upload that breaks a condition of its policy is 403 AccessDenied.

use s3s::{Body, HttpResponse, S3Error, S3ErrorCode};

/// Subresources of operations newer than the S3 model s3s routes by, which it would take
/// for another operation (RenameObject and UpdateObjectEncryption for a PutObject of an
/// empty or XML body, PutBucketAbac for a CreateBucket, GetBucketAbac for a listing).
/// Buckets serves none of them; they answer NotImplemented instead.
const UNSERVED_SUBRESOURCES: &[(&str, &str)] = &[
    ("renameObject", "RenameObject"),
    ("abac", "GetBucketAbac / PutBucketAbac"),
    ("metadataConfiguration", "S3 Metadata configurations"),
    ("metadataTable", "S3 Metadata table configurations"),
    ("metadataInventoryTable", "UpdateBucketMetadataInventoryTableConfiguration"),
    ("metadataJournalTable", "UpdateBucketMetadataJournalTableConfiguration"),
    ("session", "CreateSession"),
];

/// The longest a presigned URL may be valid: seven days, in seconds.
pub const MAX_PRESIGNED_EXPIRES_SECONDS: i64 = 7 * 24 * 3600;

/// A fresh request id, 16 hexadecimal characters as S3's.
pub fn new_request_id() -> String {
    let bytes = uuid::Uuid::new_v4();
    hex::encode_upper(&bytes.as_bytes()[..8])
}

/// What the request is, for the touches its answer gets.
pub struct Exchange {
    request_id: String,
    object_attributes: bool,
    /// A browser form upload (POST object).
    form_upload: bool,
}

impl Exchange {
    pub fn of<B>(request: &http::Request<B>) -> Exchange {
        let object_attributes =
            request.method() == http::Method::GET && query_pairs(request.uri()).any(|(name, _)| name == "attributes");
        let form_upload = request.method() == http::Method::POST
            && request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        Exchange { request_id: new_request_id(), object_attributes, form_upload }
    }

    /// An error given before the request reaches s3s (or `None`): an operation Buckets does
    /// not serve that s3s would mistake for another, or a presigned URL whose
    /// `X-Amz-Expires` is not a number of seconds within a week.
    pub fn early_error<B>(&self, request: &http::Request<B>) -> Option<HttpResponse> {
        if let Some(operation) = unserved_operation(request) {
            let error = S3Error::with_message(S3ErrorCode::NotImplemented, format!("{operation} is not implemented"));
            return error.to_http_response().ok();
        }
        let (_, expires) = query_pairs(request.uri()).find(|(name, _)| name == "X-Amz-Expires")?;
        let message = match expires.parse::<i64>() {
            Err(_) => "X-Amz-Expires should be a number".to_string(),
            Ok(seconds) if seconds < 0 => "X-Amz-Expires must be non-negative".to_string(),
            Ok(seconds) if seconds > MAX_PRESIGNED_EXPIRES_SECONDS => {
                format!("X-Amz-Expires must be less than a week (in seconds) that is; {MAX_PRESIGNED_EXPIRES_SECONDS}")
            }
            Ok(_) => return None,
        };
        let mut error = S3Error::with_message(S3ErrorCode::Custom("AuthorizationQueryParametersError".into()), message);
        error.set_status_code(http::StatusCode::BAD_REQUEST);
        error.to_http_response().ok()
    }

    /// Adds the request id to the answer (header, and error body) and unquotes a
    /// GetObjectAttributes ETag.
    pub fn finish(&self, response: &mut HttpResponse) {
        if let Ok(value) = http::HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert("x-amz-request-id", value);
        }
        // s3s answers a broken condition of a form's policy 400 InvalidPolicyDocument;
        // S3 answers 403 AccessDenied ("Invalid according to Policy").
        if self.form_upload && response.status() == http::StatusCode::BAD_REQUEST {
            let mut refused = false;
            self.rewrite_body(response, |text, _| {
                let rewritten = policy_condition_refusal(text)?;
                refused = true;
                Some(rewritten)
            });
            if refused {
                *response.status_mut() = http::StatusCode::FORBIDDEN;
            }
        }
        let status = response.status();
        if status.is_client_error() || status.is_server_error() {
            self.rewrite_body(response, with_request_id);
        } else if self.object_attributes && status == http::StatusCode::OK {
            self.rewrite_body(response, |text, _| unquote_etag(text));
        }
    }

    /// Applies `rewrite` to a buffered XML body (s3s buffers every XML answer); streamed
    /// bodies (object data) are left alone.
    fn rewrite_body(&self, response: &mut HttpResponse, mut rewrite: impl FnMut(&str, &str) -> Option<String>) {
        let Some(bytes) = response.body_mut().take_bytes() else { return };
        let rewritten = std::str::from_utf8(&bytes).ok().and_then(|text| rewrite(text, &self.request_id));
        match rewritten {
            Some(text) => {
                response.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(text.len()));
                *response.body_mut() = Body::from(text);
            }
            None => *response.body_mut() = Body::from(bytes),
        }
    }
}

/// The name of an operation Buckets does not serve that `request` asks for, if it does.
fn unserved_operation<B>(request: &http::Request<B>) -> Option<&'static str> {
    for (name, _) in query_pairs(request.uri()) {
        if let Some((_, operation)) = UNSERVED_SUBRESOURCES.iter().find(|(subresource, _)| name == *subresource) {
            return Some(operation);
        }
        // UpdateObjectEncryption is `PUT /bucket/key?encryption`; the bucket's
        // PutBucketEncryption (`PUT /bucket?encryption`) is not served either.
        if name == "encryption" && request.method() == http::Method::PUT {
            return Some("UpdateObjectEncryption / PutBucketEncryption");
        }
    }
    None
}

fn query_pairs(uri: &http::Uri) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
}

/// An S3 error body with `<RequestId>` set to `id`: filled in where the body has one (the
/// STS error shape), added at the end of `<Error>` otherwise.
fn with_request_id(text: &str, id: &str) -> Option<String> {
    if let (Some(open), Some(close)) = (text.find("<RequestId>"), text.find("</RequestId>")) {
        let start = open + "<RequestId>".len();
        return (close >= start).then(|| format!("{}{id}{}", &text[..start], &text[close..]));
    }
    let end = text.rfind("</Error>")?;
    Some(format!("{}<RequestId>{id}</RequestId>{}", &text[..end], &text[end..]))
}

/// The error body S3 gives a form upload that breaks a condition of its policy, for the
/// one s3s gives (`InvalidPolicyDocument`, "Policy condition … failed").
fn policy_condition_refusal(text: &str) -> Option<String> {
    if !text.contains("<Code>InvalidPolicyDocument</Code>") {
        return None;
    }
    let open = text.find("<Message>")? + "<Message>".len();
    let close = text[open..].find("</Message>")? + open;
    let message = &text[open..close];
    if !message.starts_with("Policy condition") {
        return None;
    }
    Some(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code><Message>Invalid according to Policy: Policy Condition failed: {message}</Message></Error>"
    ))
}

/// GetObjectAttributes names the ETag without the quotes every other answer gives it
/// (s3s writes all ETags quoted).
fn unquote_etag(text: &str) -> Option<String> {
    let open = text.find("<ETag>\"")?;
    let close = text[open..].find("\"</ETag>")? + open;
    let value = &text[open + "<ETag>\"".len()..close];
    Some(format!("{}<ETag>{value}</ETag>{}", &text[..open], &text[close + "\"</ETag>".len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_name_the_request_id() {
        let s3 = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>";
        assert_eq!(
            with_request_id(s3, "ABC").unwrap(),
            "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><RequestId>ABC</RequestId></Error>"
        );
        let sts = "<ErrorResponse><Error><Code>X</Code></Error><RequestId>old</RequestId></ErrorResponse>";
        assert_eq!(
            with_request_id(sts, "ABC").unwrap(),
            "<ErrorResponse><Error><Code>X</Code></Error><RequestId>ABC</RequestId></ErrorResponse>"
        );
        assert_eq!(with_request_id("not xml", "ABC"), None);
    }

    #[test]
    fn a_broken_form_policy_condition_is_access_denied() {
        let s3s = "<?xml version=\"1.0\"?><Error><Code>InvalidPolicyDocument</Code><Message>Policy condition 'eq' for field 'x-amz-meta-a' failed: expected 'b', got 'c'</Message></Error>";
        let rewritten = policy_condition_refusal(s3s).unwrap();
        assert!(rewritten.contains("<Code>AccessDenied</Code>"), "{rewritten}");
        assert!(rewritten.contains("Invalid according to Policy: Policy Condition failed: Policy condition 'eq'"));
        let malformed =
            "<Error><Code>InvalidPolicyDocument</Code><Message>failed to parse POST policy</Message></Error>";
        assert_eq!(policy_condition_refusal(malformed), None, "a malformed policy stays 400");
        assert_eq!(policy_condition_refusal("<Error><Code>EntityTooLarge</Code></Error>"), None);
    }

    #[test]
    fn attribute_etags_lose_their_quotes() {
        let body = "<GetObjectAttributesResponse><ETag>\"abc-2\"</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>";
        assert_eq!(
            unquote_etag(body).unwrap(),
            "<GetObjectAttributesResponse><ETag>abc-2</ETag><ObjectSize>3</ObjectSize></GetObjectAttributesResponse>"
        );
        assert_eq!(unquote_etag("<ObjectSize>3</ObjectSize>"), None);
    }

    #[test]
    fn presigned_expiry_is_a_week_at_most() {
        let status = |query: &str| {
            let request = http::Request::get(format!("/b/k?X-Amz-Signature=00&{query}")).body(()).unwrap();
            Exchange::of(&request).early_error(&request).map(|r| r.status().as_u16())
        };
        assert_eq!(status("X-Amz-Expires=604800"), None);
        assert_eq!(status("X-Amz-Expires=0"), None);
        assert_eq!(status("X-Amz-Expires=604801"), Some(400));
        assert_eq!(status("X-Amz-Expires=-1"), Some(400));
        assert_eq!(status("X-Amz-Expires=soon"), Some(400));
        assert_eq!(status("other=1"), None);
    }

    #[test]
    fn operations_s3s_would_mistake_are_not_served() {
        let status = |method: &str, uri: &str| {
            let request = http::Request::builder().method(method).uri(uri).body(()).unwrap();
            Exchange::of(&request).early_error(&request).map(|r| r.status().as_u16())
        };
        assert_eq!(status("PUT", "/b/k?renameObject"), Some(501));
        assert_eq!(status("PUT", "/b/k?encryption"), Some(501));
        assert_eq!(status("PUT", "/b?abac"), Some(501));
        assert_eq!(status("GET", "/b?abac"), Some(501));
        assert_eq!(status("GET", "/b?metadataConfiguration"), Some(501));
        assert_eq!(status("PUT", "/b?metadataJournalTable"), Some(501));
        assert_eq!(status("GET", "/b?encryption"), None, "GetBucketEncryption is answered");
        assert_eq!(status("PUT", "/b/k"), None);
        assert_eq!(status("GET", "/b?list-type=2&prefix=renameObject"), None, "a value is not a subresource");
    }

    #[test]
    fn request_ids_look_like_s3_ones() {
        let id = new_request_id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
        assert_ne!(id, new_request_id());
    }
}
