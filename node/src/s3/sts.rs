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

use s3s::path::S3Path;

use super::access::{self, Connection, Facts, Requester};
use super::acl::{self, AclFacts, Who};
use crate::clock::unix_seconds;
use crate::format::bucket::BucketMeta;
use crate::iam::{Iam, KeyLookup};
use crate::policy::{Context, Decision, Effect, Kind, Policy, Principal, Request};
use crate::storage::Store;
use crate::storage::set::Selector;

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
    /// Where bucket policies are read.
    store: Option<Arc<Store>>,
}

impl Identity {
    pub fn new(root_user: String, root_password: String) -> Self {
        Identity { root_user, root_password, iam: None, store: None }
    }

    /// Also accepts the access keys of the store's users and anonymous requests, within
    /// their policies and the buckets' policies.
    pub fn with_iam(self, iam: Arc<Iam>, store: Arc<Store>) -> Self {
        Identity { iam: Some(iam), store: Some(store), ..self }
    }

    fn mac(&self, purpose: &str, access_key: &str) -> [u8; 32] {
        self.mac_of(purpose, access_key, b"")
    }

    fn mac_of(&self, purpose: &str, access_key: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(self.root_password.as_bytes()).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(access_key.as_bytes());
        if !data.is_empty() {
            mac.update(&[0]);
            mac.update(data);
        }
        mac.finalize().into_bytes().into()
    }

    fn temporary_secret(&self, access_key: &str) -> String {
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&self.mac("buckets-sts-secret", access_key)[..30])
    }

    /// The session token of temporary credentials: for the root user's a MAC of the
    /// access key; for a user's, `v2.` + the claims (who, and the session policy) + a MAC
    /// over the access key and the claims, so the credentials stay stateless.
    fn session_token(&self, access_key: &str, claims: &Claims) -> String {
        if claims.user.is_none() {
            return base64::engine::general_purpose::STANDARD.encode(self.mac("buckets-sts-session-token", access_key));
        }
        let json = serde_json::to_vec(claims).expect("claims serialise");
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mac = self.mac_of("buckets-sts-session-token-v2", access_key, &json);
        format!("{TOKEN_V2}{}.{}", url.encode(&json), url.encode(mac))
    }

    /// The claims of a token this cluster issued for `access_key`, or `None`.
    fn verify_token(&self, access_key: &str, token: &str) -> Option<Claims> {
        let Some(rest) = token.strip_prefix(TOKEN_V2) else {
            let expected = self.session_token(access_key, &Claims::default());
            return same_bytes(token.as_bytes(), expected.as_bytes()).then(Claims::default);
        };
        let (claims, mac) = rest.split_once('.')?;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let json = url.decode(claims).ok()?;
        let expected = self.mac_of("buckets-sts-session-token-v2", access_key, &json);
        if !same_bytes(&url.decode(mac).ok()?, &expected) {
            return None;
        }
        serde_json::from_slice(&json).ok()
    }

    /// New temporary credentials valid until `expires` (Unix seconds).
    fn issue(&self, expires: u64, claims: &Claims) -> Temporary {
        let random = uuid::Uuid::new_v4();
        let access_key = format!("{TEMPORARY_PREFIX}{expires:010X}{}", hex::encode_upper(&random.as_bytes()[..8]));
        Temporary {
            secret_key: self.temporary_secret(&access_key),
            session_token: self.session_token(&access_key, claims),
            access_key,
            expires,
        }
    }

    /// Who temporary credentials act as: the root user, or a user (still enabled) with
    /// their policies narrowed by the session policy.
    fn temporary_requester(&self, access_key: &str, token: Option<String>) -> S3Result<Requester> {
        let invalid = || s3_error!(InvalidToken, "The security token included in the request is invalid.");
        let claims = token.and_then(|t| self.verify_token(access_key, &t)).ok_or_else(invalid)?;
        let Some(name) = claims.user else { return Ok(Requester::Root) };
        let Some(mut caller) = self.iam.as_ref().and_then(|iam| iam.enabled_user(&name)) else {
            return Err(s3_error!(
                InvalidToken,
                "The user these temporary credentials were issued to no longer exists or is disabled."
            ));
        };
        if let Some(document) = claims.policy {
            caller.session = Some(Arc::new(Policy::parse(&document, &Kind::Identity).map_err(|_| invalid())?));
        }
        Ok(Requester::User(Arc::new(caller)))
    }
}

/// Prefix of the session tokens of users' temporary credentials.
const TOKEN_V2: &str = "v2.";
/// Longest session policy AssumeRole takes, in characters (AWS's packed size limit).
const MAX_SESSION_POLICY_CHARS: usize = 2048;

/// What a user's session token says: whose the credentials are, and the session policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Claims {
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    policy: Option<String>,
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

#[async_trait::async_trait]
impl S3Auth for Identity {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.root_user {
            return Ok(SecretKey::from(self.root_password.clone()));
        }
        match temporary_expiry(access_key) {
            Some(expires) if expires <= unix_seconds() => {
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

/// The condition key prefix of an object's existing tags.
const EXISTING_OBJECT_TAG: &str = "s3:ExistingObjectTag/";

/// The key of an object's ARN in `bucket` (`None` for the bucket's own ARN).
fn object_key<'a>(bucket: &str, resource: &'a str) -> Option<&'a str> {
    resource.strip_prefix("arn:aws:s3:::")?.strip_prefix(bucket)?.strip_prefix('/')
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
        // A request that expects another owner of its bucket (or of its copy source's
        // bucket) is refused.
        let source_bucket = cx.headers().get("x-amz-copy-source").and_then(|v| v.to_str().ok()).and_then(|source| {
            let source = source.trim_start_matches('/');
            source.split_once('/').map(|(bucket, _)| bucket.to_string())
        });
        let target_bucket = match cx.s3_path() {
            S3Path::Root => None,
            S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
        };
        for (header, bucket) in
            [("x-amz-expected-bucket-owner", target_bucket), ("x-amz-source-expected-bucket-owner", source_bucket)]
        {
            if let Some(expected) = cx.headers().get(header).cloned()
                && expected.as_bytes() != self.owner_of_bucket(bucket.as_deref()).await.as_bytes()
            {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        let requester = match cx.credentials() {
            None => Requester::Anonymous,
            Some(credentials) => {
                let access_key = credentials.access_key.clone();
                if temporary_expiry(&access_key).is_some() {
                    self.temporary_requester(&access_key, session_token_of(cx))?
                } else if access_key == self.root_user {
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
                }
            }
        };
        // A form upload names its key in the form, which `post_object` checks; a
        // multi-object delete is checked key by key (`delete_objects`).
        if !matches!(requester, Requester::Root) && !matches!(cx.s3_op().name(), "PostObject" | "DeleteObjects") {
            let versioned = cx
                .uri()
                .query()
                .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(name, _)| name == "versionId"));
            let action = access::action_of(cx.s3_op().name(), versioned);
            let resource = access::resource_of(cx.s3_path());
            let bucket = match cx.s3_path() {
                S3Path::Root => None,
                S3Path::Bucket { bucket } | S3Path::Object { bucket, .. } => Some(bucket.to_string()),
            };
            let connection = cx.extensions_mut().get::<Connection>().copied();
            let facts = Facts { headers: cx.headers(), query: cx.uri().query(), connection };
            let context = access::context_of(&facts, requester.caller());
            if !self.authorize(&requester, bucket.as_deref(), &action, &resource, &context).await {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
            let bypass = cx
                .headers()
                .get("x-amz-bypass-governance-retention")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
            if bypass
                && !self
                    .authorize(&requester, bucket.as_deref(), "s3:BypassGovernanceRetention", &resource, &context)
                    .await
            {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
        }
        cx.extensions_mut().insert(requester);
        Ok(())
    }

    async fn copy_object(&self, req: &mut S3Request<s3s::dto::CopyObjectInput>) -> S3Result<()> {
        self.check_copy_source(req, &req.input.copy_source).await
    }

    async fn upload_part_copy(&self, req: &mut S3Request<s3s::dto::UploadPartCopyInput>) -> S3Result<()> {
        self.check_copy_source(req, &req.input.copy_source).await
    }

    async fn post_object(&self, req: &mut S3Request<s3s::dto::PostObjectInput>) -> S3Result<()> {
        let requester = req.extensions.get::<Requester>().cloned().unwrap_or(Requester::Anonymous);
        let (bucket, key) = (req.input.bucket.as_str(), req.input.key.as_str());
        let resource = format!("arn:aws:s3:::{bucket}/{key}");
        let connection = req.extensions.get::<Connection>().copied();
        let context = access::context_of(&Facts { headers: &req.headers, query: None, connection }, requester.caller());
        if !self.authorize(&requester, Some(bucket), "s3:PutObject", &resource, &context).await {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(())
    }

    async fn delete_objects(&self, req: &mut S3Request<s3s::dto::DeleteObjectsInput>) -> S3Result<()> {
        let requester = req.extensions.get::<Requester>().cloned().unwrap_or(Requester::Anonymous);
        if matches!(requester, Requester::Root) {
            return Ok(());
        }
        // Each key is its own s3:DeleteObject; the keys refused are answered as errors
        // in the result while the others are deleted, as S3 does.
        let connection = req.extensions.get::<Connection>().copied();
        let bucket = req.input.bucket.as_str();
        let mut refused = Vec::with_capacity(req.input.delete.objects.len());
        for object in &req.input.delete.objects {
            let action = access::action_of("DeleteObject", object.version_id.is_some());
            let resource = format!("arn:aws:s3:::{bucket}/{}", object.key);
            let facts = Facts { headers: &req.headers, query: None, connection };
            let mut context = access::context_of(&facts, requester.caller());
            if let Some(version) = &object.version_id {
                context.insert("s3:VersionId", version.clone());
            }
            refused.push(!self.authorize(&requester, Some(bucket), &action, &resource, &context).await);
        }
        req.extensions.insert(access::RefusedDeletes(refused));
        Ok(())
    }
}

impl Identity {
    /// Whether the policies that apply allow a request by a user or by anyone: the
    /// user's and their groups' policies and the bucket's policy, an explicit Deny in any
    /// of them winning, then an Allow in any. A public bucket policy grants nothing to
    /// anonymous requests when the bucket's Block Public Access restricts public buckets.
    async fn authorize(
        &self,
        requester: &Requester,
        bucket: Option<&str>,
        action: &str,
        resource: &str,
        context: &Context,
    ) -> bool {
        let (principal, caller) = match requester {
            Requester::Root => return true,
            Requester::Anonymous => (Principal::Anonymous, None),
            Requester::User(caller) => (
                Principal::User { arn: caller.arn.clone(), canonical_id: caller.canonical_id.clone() },
                Some(caller.as_ref()),
            ),
        };
        let settings = match (bucket, &self.store) {
            (Some(bucket), Some(store)) => match store.bucket_settings(bucket).await {
                Ok(meta) => Some(meta),
                Err(crate::error::StoreError::NoSuchBucket) => None,
                Err(_) => None,
            },
            _ => None,
        };
        let missing_bucket = bucket.is_some() && settings.is_none();
        let bucket_policy = match (bucket, &settings) {
            (Some(bucket), Some(meta)) => {
                meta.policy.as_deref().and_then(|doc| Policy::parse(doc, &Kind::Bucket(bucket.to_string())).ok())
            }
            _ => None,
        };
        // `s3:ExistingObjectTag/<key>`: the tags of the object the request touches, read
        // only when a policy that applies asks for them.
        let mut with_tags = None;
        let policies = caller
            .map(|c| c.policies.iter().map(Arc::as_ref).chain(c.session.as_deref()).collect::<Vec<_>>())
            .unwrap_or_default();
        if let (Some(bucket), Some(store)) = (bucket, &self.store)
            && let Some(key) = object_key(bucket, resource)
            && policies.iter().copied().chain(bucket_policy.as_ref()).any(|p| p.uses_key(EXISTING_OBJECT_TAG))
        {
            let version = context.get("s3:VersionId").and_then(|v| v.first()).and_then(|v| v.parse().ok());
            let selector = version.map(Selector::Id).unwrap_or(Selector::Latest);
            if let Ok(info) = store.head_version(bucket, key, selector).await {
                let mut tagged = context.clone();
                for (name, value) in super::tagging::stored(&info.headers) {
                    tagged.insert(&format!("{EXISTING_OBJECT_TAG}{name}"), value);
                }
                with_tags = Some(tagged);
            }
        }
        let context = with_tags.as_ref().unwrap_or(context);
        let request = Request { principal: &principal, action, resource, context };
        let identity = match caller {
            Some(caller) => crate::policy::decide(caller.policies.iter().map(Arc::as_ref), &request),
            None => Decision::ImplicitDeny,
        };
        if identity == Decision::ExplicitDeny {
            return false;
        }
        // A session policy narrows everything the session may do.
        if let Some(session) = caller.and_then(|c| c.session.as_deref())
            && session.effect_on(&request) != Some(Effect::Allow)
        {
            return false;
        }
        // A bucket that does not exist is answered as such (404 NoSuchBucket), as S3
        // does, unless this is the request that would create it.
        if missing_bucket {
            return action != "s3:CreateBucket" || identity == Decision::Allow;
        }
        let bucket_effect = bucket_policy.as_ref().zip(settings.as_ref()).and_then(|(policy, meta)| {
            let effect = policy.effect_on(&request)?;
            let restricted = meta.public_access_block.is_some_and(|b| b.restrict_public_buckets);
            if effect == Effect::Allow && restricted && policy.is_public() && principal == Principal::Anonymous {
                return None;
            }
            Some(effect)
        });
        match bucket_effect {
            Some(Effect::Deny) => false,
            Some(Effect::Allow) => true,
            None if identity == Decision::Allow => true,
            None => match (bucket, settings) {
                (Some(bucket), Some(meta)) => {
                    self.acl_allows(requester, bucket, &meta, action, resource, context).await
                }
                _ => false,
            },
        }
    }

    /// Whether `requester` may list `bucket` (and so see it in ListBuckets): owns it, or a
    /// policy or ACL grants it `s3:ListBucket`.
    pub async fn may_list(&self, requester: &Requester, bucket: &str, context: &Context) -> bool {
        self.authorize(requester, Some(bucket), "s3:ListBucket", &format!("arn:aws:s3:::{bucket}"), context).await
    }

    /// The canonical id of a bucket's owner (the root user's for a bucket not found).
    async fn owner_of_bucket(&self, bucket: Option<&str>) -> String {
        let owner = match (bucket, &self.store) {
            (Some(bucket), Some(store)) => store.bucket_settings(bucket).await.ok().and_then(|meta| meta.owner.clone()),
            _ => None,
        };
        owner.unwrap_or_else(|| super::owner_id(&self.root_user))
    }

    /// Whether owning the bucket or the object, or an ACL grant, allows what no policy did.
    async fn acl_allows(
        &self,
        requester: &Requester,
        bucket: &str,
        meta: &BucketMeta,
        action: &str,
        resource: &str,
        context: &Context,
    ) -> bool {
        let who = match requester {
            Requester::Root => return true,
            Requester::User(caller) => Who::User(&caller.canonical_id),
            Requester::Anonymous => Who::Anonymous,
        };
        let key = resource
            .strip_prefix("arn:aws:s3:::")
            .and_then(|r| r.strip_prefix(bucket))
            .and_then(|r| r.strip_prefix('/'));
        let bucket_owner = meta.owner.clone().unwrap_or_else(|| super::owner_id(&self.root_user));
        // An object's own ACL counts only with ACLs enabled, and only for reading it or
        // its ACL (writes and deletes are the bucket's).
        let mut object = None;
        if let (Some(key), Some(store)) = (key, &self.store)
            && meta.ownership.acls_enabled()
            && !acl::is_bucket_write(action)
        {
            let version = context.get("s3:VersionId").and_then(|v| v.first()).and_then(|v| v.parse().ok());
            let selector = version.map(Selector::Id).unwrap_or(Selector::Latest);
            if let Ok(info) = store.head_version(bucket, key, selector).await {
                object = acl::stored_object_acl(&info);
            }
        }
        let facts = AclFacts {
            bucket_owner: &bucket_owner,
            ownership: meta.ownership,
            bucket_grants: meta.acl.as_deref(),
            object: object.as_ref(),
            ignore_public: meta.public_access_block.is_some_and(|b| b.ignore_public_acls),
        };
        acl::allows(&facts, who, action, key.is_some())
    }

    /// A copy also reads its source: `s3:GetObject` (or `s3:GetObjectVersion`) on it.
    async fn check_copy_source<T>(&self, req: &S3Request<T>, source: &s3s::dto::CopySource) -> S3Result<()> {
        let requester = req.extensions.get::<Requester>().cloned().unwrap_or(Requester::Anonymous);
        if matches!(requester, Requester::Root) {
            return Ok(());
        }
        let s3s::dto::CopySource::Bucket { bucket, key, version_id } = source else {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        };
        let action = access::action_of("GetObject", version_id.is_some());
        let resource = format!("arn:aws:s3:::{bucket}/{key}");
        let connection = req.extensions.get::<Connection>().copied();
        let context = access::context_of(&Facts { headers: &req.headers, query: None, connection }, requester.caller());
        if !self.authorize(&requester, Some(bucket), &action, &resource, &context).await {
            return Err(s3_error!(AccessDenied, "Access Denied"));
        }
        Ok(())
    }
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
                "Temporary credentials cannot assume a role; sign AssumeRole with a user's or the root user's key",
            );
        }
        // The root user's sessions act as the root user; a user's carry the user's name.
        let user = if caller == self.identity.root_user {
            None
        } else {
            match self.identity.iam.as_ref().and_then(|iam| iam.caller(caller)) {
                Some(user) => Some(user.name),
                None => return sts_error(http::StatusCode::FORBIDDEN, "AccessDenied", "Unknown caller"),
            }
        };
        let policy = match field("Policy").filter(|p| !p.is_empty()) {
            None => None,
            Some(document) if document.chars().filter(|c| !c.is_whitespace()).count() > MAX_SESSION_POLICY_CHARS => {
                return sts_error(
                    http::StatusCode::BAD_REQUEST,
                    "PackedPolicyTooLarge",
                    &format!("The session policy is longer than {MAX_SESSION_POLICY_CHARS} characters"),
                );
            }
            Some(document) => match Policy::parse(document, &Kind::Identity) {
                Ok(_) => Some(document.to_string()),
                Err(e) => {
                    return sts_error(http::StatusCode::BAD_REQUEST, "MalformedPolicyDocument", &e.to_string());
                }
            },
        };
        if user.is_none() && policy.is_some() {
            return bad("A session policy narrows a user's rights; the root user's sessions take none");
        }
        let claims = Claims { user, policy };
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
        let credentials = self.identity.issue(unix_seconds() + duration, &claims);
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
        let credentials = identity.issue(unix_seconds() + 60, &Claims::default());
        assert_eq!(temporary_expiry(&credentials.access_key), Some(credentials.expires));
        let secret = identity.get_secret_key(&credentials.access_key).await.unwrap();
        assert_eq!(secret.expose(), credentials.secret_key);

        // Another root password knows nothing of them; an expired key is refused.
        let other = Identity::new("admin".into(), "another-password".into());
        assert_ne!(other.get_secret_key(&credentials.access_key).await.unwrap().expose(), credentials.secret_key);
        assert_ne!(other.session_token(&credentials.access_key, &Claims::default()), credentials.session_token);
        let expired = identity.issue(unix_seconds() - 1, &Claims::default());
        let error = identity.get_secret_key(&expired.access_key).await.unwrap_err();
        assert_eq!(error.code(), &S3ErrorCode::ExpiredToken);
        let error = identity.get_secret_key("someone").await.unwrap_err();
        assert_eq!(error.code(), &S3ErrorCode::InvalidAccessKeyId);
        assert_eq!(identity.get_secret_key("admin").await.unwrap().expose(), "root-password");
        assert_eq!(temporary_expiry("BKTSnothex"), None);
    }

    #[test]
    fn users_session_tokens_carry_their_claims_and_cannot_be_altered() {
        let identity = Identity::new("admin".into(), "root-password".into());
        let claims = Claims { user: Some("alice".into()), policy: Some("{}".into()) };
        let credentials = identity.issue(unix_seconds() + 60, &claims);
        assert!(credentials.session_token.starts_with(TOKEN_V2));
        assert_eq!(identity.verify_token(&credentials.access_key, &credentials.session_token), Some(claims.clone()));
        // Another key, another root password, or changed claims: refused.
        let other = identity.issue(unix_seconds() + 60, &claims);
        assert_eq!(identity.verify_token(&other.access_key, &credentials.session_token), None);
        let stranger = Identity::new("admin".into(), "another".into());
        assert_eq!(stranger.verify_token(&credentials.access_key, &credentials.session_token), None);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mac = credentials.session_token.rsplit('.').next().unwrap();
        let forged = format!("{TOKEN_V2}{}.{mac}", url.encode(br#"{"u":"admin"}"#));
        assert_eq!(identity.verify_token(&credentials.access_key, &forged), None);
        assert_eq!(identity.verify_token(&credentials.access_key, "v2.garbage"), None);
        // The root user's tokens keep their format and carry no user.
        let root = identity.issue(unix_seconds() + 60, &Claims::default());
        assert!(!root.session_token.starts_with(TOKEN_V2));
        assert_eq!(identity.verify_token(&root.access_key, &root.session_token), Some(Claims::default()));
    }
}
