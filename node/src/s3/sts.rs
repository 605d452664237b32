//! Credentials: the root user, the users of the identity store (`iam`) whose policies
//! decide each request (`access`), and temporary credentials from STS `AssumeRole` (the
//! `POST /` form request AWS SDKs send to an STS endpoint, here the S3 endpoint itself).
//!
//! Temporary credentials are stateless, so every node of a cluster accepts them without
//! sharing anything but the root credentials: the access key carries its expiry and a
//! random part, its secret key is an HMAC of the access key under the root password, and
//! so is its session token (which S3 requests signed with it must send in
//! `x-amz-security-token`, as AWS requires). They act as the root user until they expire;
//! changing the root password revokes them all. Only the root user may call AssumeRole.

use std::sync::Arc;

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use super::access::{self, Connection, Facts, Requester};
use crate::iam::{Iam, KeyLookup};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Prefix of temporary access keys.
const TEMPORARY_PREFIX: &str = "BKTS";
/// Bounds of `DurationSeconds` (AWS: 15 minutes to the role's maximum, 12 hours here).
const MIN_DURATION_SECONDS: u64 = 900;
const MAX_DURATION_SECONDS: u64 = 43_200;
const DEFAULT_DURATION_SECONDS: u64 = 3_600;
/// Largest AssumeRole form accepted.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The root credentials every node is given (temporary credentials derive from them),
/// and the users of the identity store.
#[derive(Clone)]
pub struct Identity {
    root_user: String,
    root_password: String,
    iam: Option<Arc<Iam>>,
}

impl Identity {
    pub fn new(root_user: String, root_password: String) -> Self {
        Identity { root_user, root_password, iam: None }
    }

    /// Also accepts the access keys of the store's users, within their policies.
    pub fn with_iam(self, iam: Arc<Iam>) -> Self {
        Identity { iam: Some(iam), ..self }
    }

    fn mac(&self, purpose: &str, access_key: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(self.root_password.as_bytes()).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(access_key.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn temporary_secret(&self, access_key: &str) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.mac("buckets-sts-secret", access_key)[..30])
    }

    fn session_token(&self, access_key: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.mac("buckets-sts-session-token", access_key))
    }

    /// New temporary credentials valid until `expires` (Unix seconds).
    fn issue(&self, expires: u64) -> Temporary {
        let random = uuid::Uuid::new_v4();
        let access_key = format!("{TEMPORARY_PREFIX}{expires:010X}{}", hex::encode_upper(&random.as_bytes()[..8]));
        Temporary {
            secret_key: self.temporary_secret(&access_key),
            session_token: self.session_token(&access_key),
            access_key,
            expires,
        }
    }
}

struct Temporary {
    access_key: String,
    secret_key: String,
    session_token: String,
    expires: u64,
}

/// The expiry (Unix seconds) a temporary access key carries, if it is one.
fn temporary_expiry(access_key: &str) -> Option<u64> {
    let rest = access_key.strip_prefix(TEMPORARY_PREFIX)?;
    if rest.len() != 26 || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(&rest[..10], 16).ok()
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[async_trait::async_trait]
impl S3Auth for Identity {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root_user {
            return Ok(SecretKey::from(self.root_password.clone()));
        }
        match temporary_expiry(access_key) {
            Some(expires) if expires <= now_seconds() => {
                Err(S3Error::with_message(S3ErrorCode::ExpiredToken, "The provided token has expired."))
            }
            Some(_) => Ok(SecretKey::from(self.temporary_secret(access_key))),
            None => match self.iam.as_ref().map(|iam| iam.key(access_key)) {
                Some(KeyLookup::Valid { secret }) => Ok(SecretKey::from(secret)),
                Some(KeyLookup::Expired) => {
                    Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided has expired."))
                }
                Some(KeyLookup::Disabled) => {
                    Err(s3_error!(InvalidAccessKeyId, "The AWS Access Key Id you provided is not active."))
                }
                Some(KeyLookup::Unknown) | None => Err(s3_error!(
                    InvalidAccessKeyId,
                    "The AWS Access Key Id you provided does not exist in our records."
                )),
            },
        }
    }
}

/// Equality that takes the same time wherever the first difference is.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session token a request carries (header, or query parameter of a presigned URL).
fn session_token_of(cx: &S3AccessContext<'_>) -> Option<String> {
    if let Some(token) = cx.headers().get("x-amz-security-token").and_then(|v| v.to_str().ok()) {
        return Some(token.to_string());
    }
    let query = cx.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name.eq_ignore_ascii_case("X-Amz-Security-Token"))
        .map(|(_, value)| value.into_owned())
}

#[async_trait::async_trait]
impl S3Access for Identity {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        if temporary_expiry(&credentials.access_key).is_some() {
            let expected = self.session_token(&credentials.access_key);
            if !session_token_of(cx).is_some_and(|given| same_bytes(given.as_bytes(), expected.as_bytes())) {
                return Err(s3_error!(InvalidToken, "The security token included in the request is invalid."));
            }
        }
        // Every bucket has one owner; a request that expects another is refused (the
        // source bucket's owner of a copy too).
        for header in ["x-amz-expected-bucket-owner", "x-amz-source-expected-bucket-owner"] {
            if let Some(expected) = cx.headers().get(header)
                && expected.as_bytes() != super::owner_id(&self.root_user).as_bytes()
            {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        let access_key = credentials.access_key.clone();
        let requester = if access_key == self.root_user || temporary_expiry(&access_key).is_some() {
            Requester::Root
        } else {
            match self.iam.as_ref().and_then(|iam| iam.caller(&access_key)) {
                Some(caller) => Requester::User(Arc::new(caller)),
                None => {
                    return Err(s3_error!(
                        InvalidAccessKeyId,
                        "The AWS Access Key Id you provided does not exist in our records."
                    ));
                }
            }
        };
        if let Requester::User(caller) = &requester {
            let versioned = cx
                .uri()
                .query()
                .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "versionId"));
            let action = access::action_of(cx.s3_op().name(), versioned);
            let resource = access::resource_of(cx.s3_path());
            let connection = cx.extensions_mut().get::<Connection>().copied();
            let facts = Facts { headers: cx.headers(), query: cx.uri().query(), connection };
            let context = access::context_of(&facts, Some(caller));
            if !access::allows(caller, &action, &resource, &context) {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
            let bypass = cx
                .headers()
                .get("x-amz-bypass-governance-retention")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            if bypass && !access::allows(caller, "s3:BypassGovernanceRetention", &resource, &context) {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        cx.extensions_mut().insert(requester);
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<s3s::dto::CopyObjectInput>) -> S3Result<()> {
        check_copy_source(req, &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<s3s::dto::UploadPartCopyInput>) -> S3Result<()> {
        check_copy_source(req, &req.input.copy_source)
    }

    async fn delete_objects(&self, req: &mut S3Request<s3s::dto::DeleteObjectsInput>) -> S3Result<()> {
        let Some(Requester::User(caller)) = req.extensions.get::<Requester>() else { return Ok(()) };
        let connection = req.extensions.get::<Connection>().copied();
        for object in &req.input.delete.objects {
            let action = access::action_of("DeleteObject", object.version_id.is_some());
            let resource = format!("arn:aws:s3:::{}/{}", req.input.bucket, object.key);
            let mut context =
                access::context_of(&Facts { headers: &req.headers, query: None, connection }, Some(caller));
            if let Some(version) = &object.version_id {
                context.insert("s3:VersionId", version.clone());
            }
            if !access::allows(caller, &action, &resource, &context) {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        Ok(())
    }
}

/// A copy also reads its source: a user needs `s3:GetObject` (or `s3:GetObjectVersion`)
/// on it.
fn check_copy_source<T>(req: &S3Request<T>, source: &s3s::dto::CopySource) -> S3Result<()> {
    let Some(Requester::User(caller)) = req.extensions.get::<Requester>() else { return Ok(()) };
    let s3s::dto::CopySource::Bucket { bucket, key, version_id } = source else {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    };
    let action = access::action_of("GetObject", version_id.is_some());
    let resource = format!("arn:aws:s3:::{bucket}/{key}");
    let connection = req.extensions.get::<Connection>().copied();
    let context = access::context_of(&Facts { headers: &req.headers, query: None, connection }, Some(caller));
    if !access::allows(caller, &action, &resource, &context) {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    Ok(())
}

/// STS AssumeRole on the S3 endpoint.
pub struct AssumeRoleRoute {
    pub identity: Identity,
}

/// An STS error response (the awsQuery protocol's shape).
fn sts_error(status: http::StatusCode, code: &str, message: &str) -> S3Response<Body> {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code>\
         <Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        xml_escape(message),
        uuid::Uuid::new_v4()
    );
    xml_response(status, body)
}

fn xml_response(status: http::StatusCode, body: String) -> S3Response<Body> {
    let mut response = S3Response::with_status(Body::from(body), status);
    response.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/xml"));
    response
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn format_time(seconds: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(seconds as i64).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl AssumeRoleRoute {
    fn assume_role(&self, form: &[(String, String)], caller: &str) -> S3Response<Body> {
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let bad = |message: &str| sts_error(http::StatusCode::BAD_REQUEST, "ValidationError", message);
        if temporary_expiry(caller).is_some() {
            return sts_error(
                http::StatusCode::FORBIDDEN,
                "AccessDenied",
                "Temporary credentials cannot assume a role; sign AssumeRole with the root credentials",
            );
        }
        match field("Version") {
            Some("2011-06-15") | None => {}
            Some(other) => return bad(&format!("Unsupported Version {other}: use 2011-06-15")),
        }
        let Some(role_arn) = field("RoleArn").filter(|v| !v.is_empty()) else {
            return bad("RoleArn is required");
        };
        let Some(session) = field("RoleSessionName").filter(|v| !v.is_empty()) else {
            return bad("RoleSessionName is required");
        };
        if !(2..=64).contains(&session.len())
            || !session.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_".contains(c))
        {
            return bad("RoleSessionName must be 2 to 64 characters of letters, digits and +=,.@-_");
        }
        let duration = match field("DurationSeconds").map(str::parse::<u64>) {
            None => DEFAULT_DURATION_SECONDS,
            Some(Ok(d)) if (MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&d) => d,
            Some(_) => {
                return bad(&format!(
                    "DurationSeconds must be between {MIN_DURATION_SECONDS} and {MAX_DURATION_SECONDS}"
                ));
            }
        };
        let credentials = self.identity.issue(now_seconds() + duration);
        let role = role_arn.rsplit(['/', ':']).next().unwrap_or(role_arn);
        let body = format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
             <AssumedRoleUser><Arn>arn:aws:sts::buckets:assumed-role/{role}/{session}</Arn>\
             <AssumedRoleId>{access_key}:{session}</AssumedRoleId></AssumedRoleUser>\
             <Credentials><AccessKeyId>{access_key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
             <SessionToken>{token}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
             </AssumeRoleResult><ResponseMetadata><RequestId>{request}</RequestId></ResponseMetadata>\
             </AssumeRoleResponse>",
            role = xml_escape(role),
            session = xml_escape(session),
            access_key = credentials.access_key,
            secret = credentials.secret_key,
            token = credentials.session_token,
            expiration = format_time(credentials.expires),
            request = uuid::Uuid::new_v4(),
        );
        xml_response(http::StatusCode::OK, body)
    }
}

#[async_trait::async_trait]
impl S3Route for AssumeRoleRoute {
    fn is_match(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        _: &mut http::Extensions,
    ) -> bool {
        // No query string: S3's POST requests on a bucket root (DeleteObjects) have one.
        method == http::Method::POST
            && uri.path() == "/"
            && uri.query().is_none()
            && headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        // The form is what grants credentials, so the signature must cover it: a request
        // signed for STS, in headers, with the body's hash (never a presigned URL or an
        // unsigned or streamed payload, which a holder could reuse with another body).
        let payload = req.headers.get("x-amz-content-sha256").and_then(|v| v.to_str().ok());
        let body_signed = payload.is_none_or(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()));
        if req.service.as_deref() != Some("sts") || !body_signed {
            return Ok(sts_error(
                http::StatusCode::FORBIDDEN,
                "AccessDenied",
                "AssumeRole must be signed for the sts service in headers, over the request body",
            ));
        }
        let form = match req.input.store_all_limited(MAX_FORM_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
                return Ok(sts_error(
                    http::StatusCode::BAD_REQUEST,
                    "ValidationError",
                    "The request body is not a form of at most 64 KiB",
                ));
            }
        };
        let form: Vec<(String, String)> =
            form_urlencoded::parse(&form).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let caller = req.credentials.as_ref().map(|c| c.access_key.clone()).unwrap_or_default();
        match form.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.as_str()) {
            Some("AssumeRole") => Ok(self.assume_role(&form, &caller)),
            other => Ok(sts_error(
                http::StatusCode::BAD_REQUEST,
                "InvalidAction",
                &format!("Unsupported STS action {}: only AssumeRole is served", other.unwrap_or("(none)")),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn temporary_credentials_derive_from_the_root_password_and_expire() {
        let identity = Identity::new("admin".into(), "root-password".into());
        let credentials = identity.issue(now_seconds() + 60);
        assert_eq!(temporary_expiry(&credentials.access_key), Some(credentials.expires));
        let secret = identity.get_secret_key(&credentials.access_key).await.unwrap();
        assert_eq!(secret.expose(), credentials.secret_key);

        // Another root password knows nothing of them; an expired key is refused.
        let other = Identity::new("admin".into(), "another-password".into());
        assert_ne!(other.get_secret_key(&credentials.access_key).await.unwrap().expose(), credentials.secret_key);
        assert_ne!(other.session_token(&credentials.access_key), credentials.session_token);
        let expired = identity.issue(now_seconds() - 1);
        let error = identity.get_secret_key(&expired.access_key).await.unwrap_err();
        assert_eq!(error.code(), &S3ErrorCode::ExpiredToken);
        let error = identity.get_secret_key("someone").await.unwrap_err();
        assert_eq!(error.code(), &S3ErrorCode::InvalidAccessKeyId);
        assert_eq!(identity.get_secret_key("admin").await.unwrap().expose(), "root-password");
        assert_eq!(temporary_expiry("BKTSnothex"), None);
    }
}
