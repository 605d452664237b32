//! What an S3 request is to a policy: the IAM action of its operation (`s3:GetObject`),
//! the resource it touches (`arn:aws:s3:::bucket/key`) and its condition keys
//! (`aws:SourceIp`, `s3:prefix`, …), as AWS documents them for S3.

use std::net::IpAddr;
use std::sync::Arc;

use s3s::path::S3Path;

use crate::iam::Caller;
use crate::policy::Context;

/// The connection a request came on, put into the request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    pub peer: IpAddr,
    pub secure: bool,
}

/// Who signed a request, put into its extensions by the access check.
#[derive(Debug, Clone)]
pub enum Requester {
    /// The root user, or temporary credentials of the root user.
    Root,
    User(Arc<Caller>),
    /// No signature: only a bucket policy can allow it.
    Anonymous,
}

/// Which keys of a DeleteObjects request the requester may not delete (by position),
/// put into its extensions by the access check.
#[derive(Debug, Clone)]
pub struct RefusedDeletes(pub Vec<bool>);

impl Requester {
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Requester::User(caller) => Some(caller),
            _ => None,
        }
    }
}

/// The IAM action of an S3 operation (s3s's operation name). `versioned`: the request
/// names a version (`versionId`), which has actions of its own for reads and deletes.
pub fn action_of(operation: &str, versioned: bool) -> String {
    let name = match (operation, versioned) {
        ("ListBuckets", _) => "ListAllMyBuckets",
        ("HeadBucket" | "ListObjects" | "ListObjectsV2", _) => "ListBucket",
        ("ListObjectVersions", _) => "ListBucketVersions",
        ("ListMultipartUploads", _) => "ListBucketMultipartUploads",
        ("ListParts", _) => "ListMultipartUploadParts",
        ("GetObject" | "HeadObject", false) => "GetObject",
        ("GetObject" | "HeadObject", true) => "GetObjectVersion",
        ("GetObjectAttributes", true) => "GetObjectVersionAttributes",
        ("GetObjectTagging", true) => "GetObjectVersionTagging",
        ("PutObjectTagging", true) => "PutObjectVersionTagging",
        ("DeleteObjectTagging", true) => "DeleteObjectVersionTagging",
        ("GetObjectAcl", true) => "GetObjectVersionAcl",
        ("PutObjectAcl", true) => "PutObjectVersionAcl",
        ("DeleteObject", true) => "DeleteObjectVersion",
        (
            "PutObject"
            | "PostObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload"
            | "CopyObject",
            _,
        ) => "PutObject",
        // Multi-object delete: each key is checked as a DeleteObject (`delete_objects`).
        ("DeleteObjects", _) => "DeleteObject",
        ("GetBucketLifecycleConfiguration", _) => "GetLifecycleConfiguration",
        ("PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle", _) => "PutLifecycleConfiguration",
        ("GetObjectLockConfiguration", _) => "GetBucketObjectLockConfiguration",
        ("PutObjectLockConfiguration", _) => "PutBucketObjectLockConfiguration",
        ("GetBucketCors", _) => "GetBucketCORS",
        ("PutBucketCors" | "DeleteBucketCors", _) => "PutBucketCORS",
        ("DeleteBucketTagging", _) => "PutBucketTagging",
        ("GetBucketEncryption", _) => "GetEncryptionConfiguration",
        ("PutBucketEncryption" | "DeleteBucketEncryption", _) => "PutEncryptionConfiguration",
        ("DeleteBucketOwnershipControls", _) => "PutBucketOwnershipControls",
        ("GetPublicAccessBlock", _) => "GetBucketPublicAccessBlock",
        ("PutPublicAccessBlock" | "DeletePublicAccessBlock", _) => "PutBucketPublicAccessBlock",
        ("GetBucketNotificationConfiguration", _) => "GetBucketNotification",
        ("PutBucketNotificationConfiguration", _) => "PutBucketNotification",
        ("GetBucketAccelerateConfiguration", _) => "GetAccelerateConfiguration",
        ("PutBucketAccelerateConfiguration", _) => "PutAccelerateConfiguration",
        ("GetBucketReplication", _) => "GetReplicationConfiguration",
        ("PutBucketReplication" | "DeleteBucketReplication", _) => "PutReplicationConfiguration",
        (other, _) => other,
    };
    format!("s3:{name}")
}

/// The ARN of what a request touches.
pub fn resource_of(path: &S3Path) -> String {
    match path {
        S3Path::Root => "arn:aws:s3:::*".to_string(),
        S3Path::Bucket { bucket } => format!("arn:aws:s3:::{bucket}"),
        S3Path::Object { bucket, key } => format!("arn:aws:s3:::{bucket}/{key}"),
    }
}

/// The parts of a request its condition keys come from.
pub struct Facts<'a> {
    pub headers: &'a http::HeaderMap,
    pub query: Option<&'a str>,
    pub connection: Option<Connection>,
}

/// The condition keys S3 sets for a request by `caller`.
pub fn context_of(facts: &Facts<'_>, caller: Option<&Caller>) -> Context {
    let mut context = Context::default();
    let now = time::OffsetDateTime::now_utc();
    context.insert("aws:CurrentTime", now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default());
    context.insert("aws:EpochTime", now.unix_timestamp().to_string());
    if let Some(connection) = facts.connection {
        context.insert("aws:SourceIp", connection.peer.to_canonical().to_string());
        context.insert("aws:SecureTransport", connection.secure.to_string());
    }
    match caller {
        Some(caller) => {
            context.insert("aws:username", caller.name.clone());
            context.insert("aws:userid", caller.canonical_id.clone());
            context.insert("aws:PrincipalArn", caller.arn.clone());
            context.insert("aws:PrincipalType", "User");
            context.insert("aws:PrincipalAccount", crate::iam::ACCOUNT);
        }
        None => context.insert("aws:PrincipalType", "Anonymous"),
    }
    let header = |name: &str| facts.headers.get(name).and_then(|v| v.to_str().ok());
    for (name, key) in [("user-agent", "aws:UserAgent"), ("referer", "aws:Referer")] {
        if let Some(value) = header(name) {
            context.insert(key, value);
        }
    }
    let query: Vec<(String, String)> = facts
        .query
        .map(|q| form_urlencoded::parse(q.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
        .unwrap_or_default();
    for (name, value) in &query {
        match name.as_str() {
            "prefix" | "delimiter" | "max-keys" => context.insert(&format!("s3:{name}"), value.clone()),
            "versionId" => context.insert("s3:VersionId", value.clone()),
            _ => {}
        }
    }
    let presigned = query.iter().any(|(name, _)| name == "X-Amz-Signature");
    context.insert("s3:authType", if presigned { "REST-QUERY-STRING" } else { "REST-HEADER" });
    context.insert("s3:signatureversion", "AWS4-HMAC-SHA256");
    for name in [
        "x-amz-acl",
        "x-amz-server-side-encryption",
        "x-amz-server-side-encryption-aws-kms-key-id",
        "x-amz-storage-class",
        "x-amz-copy-source",
        "x-amz-metadata-directive",
        "x-amz-grant-read",
        "x-amz-grant-write",
        "x-amz-grant-read-acp",
        "x-amz-grant-write-acp",
        "x-amz-grant-full-control",
        "x-amz-content-sha256",
    ] {
        if let Some(value) = header(name) {
            context.insert(&format!("s3:{name}"), value);
        }
    }
    for (name, key) in [
        ("x-amz-object-lock-mode", "s3:object-lock-mode"),
        ("x-amz-object-lock-retain-until-date", "s3:object-lock-retain-until-date"),
        ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"),
    ] {
        if let Some(value) = header(name) {
            context.insert(key, value);
        }
    }
    if let Some(until) = header("x-amz-object-lock-retain-until-date")
        .and_then(|d| time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok())
    {
        let days = ((until - now).whole_seconds().max(0) + 86_399) / 86_400;
        context.insert("s3:object-lock-remaining-retention-days", days.to_string());
    }
    if let Some(tagging) = header("x-amz-tagging") {
        for (name, value) in form_urlencoded::parse(tagging.as_bytes()) {
            context.insert(&format!("s3:RequestObjectTag/{name}"), value.into_owned());
            context.insert("s3:RequestObjectTagKeys", name.into_owned());
        }
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_the_actions_aws_checks() {
        let table = [
            ("GetObject", false, "s3:GetObject"),
            ("HeadObject", true, "s3:GetObjectVersion"),
            ("ListObjectsV2", false, "s3:ListBucket"),
            ("HeadBucket", false, "s3:ListBucket"),
            ("ListObjectVersions", false, "s3:ListBucketVersions"),
            ("CreateMultipartUpload", false, "s3:PutObject"),
            ("CompleteMultipartUpload", false, "s3:PutObject"),
            ("PostObject", false, "s3:PutObject"),
            ("DeleteObject", true, "s3:DeleteObjectVersion"),
            ("ListBuckets", false, "s3:ListAllMyBuckets"),
            ("DeleteBucketLifecycle", false, "s3:PutLifecycleConfiguration"),
            ("PutObjectLockConfiguration", false, "s3:PutBucketObjectLockConfiguration"),
            ("PutObjectRetention", false, "s3:PutObjectRetention"),
            ("GetBucketPolicy", false, "s3:GetBucketPolicy"),
        ];
        for (operation, versioned, action) in table {
            assert_eq!(action_of(operation, versioned), action, "{operation}");
            assert!(crate::policy::S3_ACTIONS.contains(&action), "{action} is a known action");
        }
    }

    #[test]
    fn condition_keys_come_from_the_request() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-tagging", "team=blue&env=prod".parse().unwrap());
        headers.insert("x-amz-acl", "public-read".parse().unwrap());
        let facts = Facts {
            headers: &headers,
            query: Some("list-type=2&prefix=home%2Falice%2F&max-keys=10"),
            connection: Some(Connection { peer: "::ffff:127.0.0.1".parse().unwrap(), secure: false }),
        };
        let context = context_of(&facts, None);
        assert_eq!(context.get("s3:prefix"), Some(&["home/alice/".to_string()][..]));
        assert_eq!(context.get("s3:max-keys"), Some(&["10".to_string()][..]));
        assert_eq!(context.get("aws:SourceIp"), Some(&["127.0.0.1".to_string()][..]));
        assert_eq!(context.get("aws:SecureTransport"), Some(&["false".to_string()][..]));
        assert_eq!(context.get("s3:RequestObjectTag/team"), Some(&["blue".to_string()][..]));
        assert_eq!(context.get("s3:RequestObjectTagKeys").map(<[String]>::len), Some(2));
        assert_eq!(context.get("s3:x-amz-acl"), Some(&["public-read".to_string()][..]));
        assert_eq!(context.get("s3:authType"), Some(&["REST-HEADER".to_string()][..]));
        assert_eq!(context.get("aws:username"), None);
    }
}
