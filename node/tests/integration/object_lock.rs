//! S3 object lock through the AWS SDK: a bucket created with object lock (versioned for
//! good), retention in COMPLIANCE and GOVERNANCE mode (with and without the bypass),
//! legal hold, default retention, multipart uploads with a lock, and AWS's errors for
//! every refusal.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, DefaultRetention, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode, ObjectLockRetention,
    ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};

use crate::harness::{Node, data};

fn status_of<E>(error: &aws_sdk_s3::error::SdkError<E>) -> u16 {
    error.raw_response().map_or(0, |r| r.status().as_u16())
}

fn code_of<E: aws_sdk_s3::error::ProvideErrorMetadata>(error: aws_sdk_s3::error::SdkError<E>) -> String {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    error.code().unwrap_or_default().to_string()
}

fn in_seconds(seconds: u64) -> DateTime {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    DateTime::from_secs((now + seconds) as i64)
}

async fn put_locked(s3: &Client, key: &str, mode: ObjectLockMode, until: DateTime) -> String {
    s3.put_object()
        .bucket("vault")
        .key(key)
        .body(ByteStream::from_static(b"keep me"))
        .object_lock_mode(mode)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string()
}

async fn delete_version(s3: &Client, key: &str, id: &str, bypass: bool) -> Result<(), u16> {
    let mut request = s3.delete_object().bucket("vault").key(key).version_id(id);
    if bypass {
        request = request.bypass_governance_retention(true);
    }
    request.send().await.map(|_| ()).map_err(|e| status_of(&e))
}

#[tokio::test(flavor = "multi_thread")]
async fn object_lock_keeps_locked_versions() {
    let node = Node::start(4);
    let s3 = node.client();
    // Buckets without object lock refuse its requests with AWS's codes.
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let missing = s3.get_object_lock_configuration().bucket("plain").send().await.unwrap_err();
    assert_eq!(code_of(missing), "ObjectLockConfigurationNotFoundError");
    let refused = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_seconds(60))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&refused), 400);
    let enabled = ObjectLockConfiguration::builder().object_lock_enabled(ObjectLockEnabled::Enabled).build();
    let unversioned = s3
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(enabled.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(unversioned), "InvalidBucketState");

    // A bucket created with object lock is versioned, for good.
    s3.create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let versioning = s3.get_bucket_versioning().bucket("vault").send().await.unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    let suspend = s3
        .put_bucket_versioning()
        .bucket("vault")
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Suspended).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code_of(suspend), "InvalidBucketState");
    let config = s3.get_object_lock_configuration().bucket("vault").send().await.unwrap();
    let config = config.object_lock_configuration().unwrap();
    assert_eq!(config.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(config.rule().is_none());

    // COMPLIANCE: nobody removes the version before its date, nor shortens it; a delete
    // marker can still be added; after the date the version goes.
    // (Dates far enough apart that a slow machine's request still names a future date: a
    // past one is a 400, not the 403 of a shortened compliance date.)
    let compliance = put_locked(&s3, "ledger", ObjectLockMode::Compliance, in_seconds(8)).await;
    let head = s3.head_object().bucket("vault").key("ledger").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert!(head.object_lock_retain_until_date().is_some());
    assert_eq!(delete_version(&s3, "ledger", &compliance, true).await, Err(403));
    let shorten = s3
        .put_object_retention()
        .bucket("vault")
        .key("ledger")
        .version_id(&compliance)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(in_seconds(6))
                .build(),
        )
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&shorten), 403);
    let marker = s3.delete_object().bucket("vault").key("ledger").send().await.unwrap();
    assert_eq!(marker.delete_marker(), Some(true));
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(delete_version(&s3, "ledger", &compliance, false).await, Ok(()));

    // GOVERNANCE: refused, unless the request bypasses governance retention.
    let governed = put_locked(&s3, "draft", ObjectLockMode::Governance, in_seconds(3600)).await;
    assert_eq!(delete_version(&s3, "draft", &governed, false).await, Err(403));
    let retention = s3.get_object_retention().bucket("vault").key("draft").version_id(&governed).send().await.unwrap();
    assert_eq!(retention.retention().unwrap().mode(), Some(&ObjectLockRetentionMode::Governance));
    assert_eq!(delete_version(&s3, "draft", &governed, true).await, Ok(()));

    // Legal hold: on, nothing removes the version; off, it goes.
    let held =
        s3.put_object().bucket("vault").key("evidence").body(ByteStream::from_static(b"e")).send().await.unwrap();
    let held = held.version_id().unwrap().to_string();
    let none = s3.get_object_retention().bucket("vault").key("evidence").version_id(&held).send().await.unwrap_err();
    assert_eq!(code_of(none), "NoSuchObjectLockConfiguration");
    let hold = |status| ObjectLockLegalHold::builder().status(status).build();
    s3.put_object_legal_hold()
        .bucket("vault")
        .key("evidence")
        .version_id(&held)
        .legal_hold(hold(ObjectLockLegalHoldStatus::On))
        .send()
        .await
        .unwrap();
    let status = s3.get_object_legal_hold().bucket("vault").key("evidence").version_id(&held).send().await.unwrap();
    assert_eq!(status.legal_hold().unwrap().status(), Some(&ObjectLockLegalHoldStatus::On));
    assert_eq!(delete_version(&s3, "evidence", &held, true).await, Err(403));
    s3.put_object_legal_hold()
        .bucket("vault")
        .key("evidence")
        .version_id(&held)
        .legal_hold(hold(ObjectLockLegalHoldStatus::Off))
        .send()
        .await
        .unwrap();
    assert_eq!(delete_version(&s3, "evidence", &held, false).await, Ok(()));

    // A default retention applies to every new version, multipart uploads included.
    let bad = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(0).build(),
                )
                .build(),
        )
        .build();
    let zero =
        s3.put_object_lock_configuration().bucket("vault").object_lock_configuration(bad).send().await.unwrap_err();
    assert_eq!(status_of(&zero), 400);
    let default = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .rule(
            ObjectLockRule::builder()
                .default_retention(
                    DefaultRetention::builder().mode(ObjectLockRetentionMode::Governance).days(1).build(),
                )
                .build(),
        )
        .build();
    s3.put_object_lock_configuration().bucket("vault").object_lock_configuration(default).send().await.unwrap();
    let defaulted =
        s3.put_object().bucket("vault").key("daily").body(ByteStream::from_static(b"d")).send().await.unwrap();
    let head = s3.head_object().bucket("vault").key("daily").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Governance));
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((until - now - 86_400).abs() < 120, "a day from now: {until} vs {now}");
    assert_eq!(delete_version(&s3, "daily", defaulted.version_id().unwrap(), false).await, Err(403));

    let upload = s3
        .create_multipart_upload()
        .bucket("vault")
        .key("archive")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_seconds(7200))
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let part = data(5 << 20, 3);
    let etag = crate::harness::upload_part(&s3, "vault", "archive", id, 1, &part).await;
    let done = s3
        .complete_multipart_upload()
        .bucket("vault")
        .key("archive")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("vault").key("archive").send().await.unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(delete_version(&s3, "archive", done.version_id().unwrap(), true).await, Err(403));
}
