//! Lifecycle rules through the AWS SDK with a shortened day (`BUCKETS_LIFECYCLE_DAY_SECS`):
//! current versions expire into delete markers, noncurrent versions go (keeping the
//! newest asked for), a lone delete marker goes, stale uploads are aborted, locked
//! versions stay, `x-amz-expiration` says when; on a 4-node cluster each object is
//! handled exactly once (the nodes' metrics add up to the objects, not to a multiple).

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectLockMode,
    VersioningConfiguration,
};

use crate::harness::{Node, wait_until};

/// A day of two seconds, passes every second.
const FAST: &[(&str, &str)] = &[("BUCKETS_LIFECYCLE_DAY_SECS", "2"), ("BUCKETS_LIFECYCLE_INTERVAL_SECS", "1")];

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

async fn versioned(s3: &Client, bucket: &str) {
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
}

async fn put(s3: &Client, bucket: &str, key: &str) -> String {
    let out = s3.put_object().bucket(bucket).key(key).body(ByteStream::from_static(b"data")).send().await.unwrap();
    out.version_id().unwrap_or("null").to_string()
}

/// (version id, delete marker) of every version of `key`, newest first.
async fn versions_of(s3: &Client, bucket: &str, key: &str) -> Vec<(String, bool)> {
    let page = s3.list_object_versions().bucket(bucket).prefix(key).send().await.unwrap();
    let mut out: Vec<(String, bool, i64)> = Vec::new();
    for v in page.versions().iter().filter(|v| v.key() == Some(key)) {
        out.push((v.version_id().unwrap().into(), false, v.last_modified().unwrap().as_nanos() as i64));
    }
    for m in page.delete_markers().iter().filter(|m| m.key() == Some(key)) {
        out.push((m.version_id().unwrap().into(), true, m.last_modified().unwrap().as_nanos() as i64));
    }
    out.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
    out.into_iter().map(|(id, marker, _)| (id, marker)).collect()
}

/// Sum over nodes of a labelled counter (`name{labels}` lines holding every label given).
fn counter(nodes: &[&Node], name: &str, labels: &[&str]) -> f64 {
    nodes
        .iter()
        .map(|node| {
            let (_, body) = node.admin_get("/metrics").unwrap();
            String::from_utf8(body)
                .unwrap()
                .lines()
                .filter(|l| l.starts_with(name) && labels.iter().all(|label| l.contains(label)))
                .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                .sum::<f64>()
        })
        .sum()
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(future))
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_rules_expire_versions_markers_and_uploads() {
    let node = Node::start_with_env(4, FAST);
    let s3 = node.client();
    versioned(&s3, "life").await;
    let rules = BucketLifecycleConfiguration::builder()
        .rules(rule("expire", "tmp/").expiration(LifecycleExpiration::builder().days(1).build()).build().unwrap())
        .rules(
            rule("old", "keep/")
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder().noncurrent_days(1).newer_noncurrent_versions(1).build(),
                )
                .build()
                .unwrap(),
        )
        .rules(
            rule("markers", "gone/")
                .expiration(LifecycleExpiration::builder().expired_object_delete_marker(true).build())
                .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
                .build()
                .unwrap(),
        )
        .rules(
            rule("uploads", "up/")
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(1).build(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration().bucket("life").lifecycle_configuration(rules).send().await.unwrap();
    let read = s3.get_bucket_lifecycle_configuration().bucket("life").send().await.unwrap();
    assert_eq!(read.rules().len(), 4);

    // The write names its expiry: two short days away, rule "expire".
    let out = s3.put_object().bucket("life").key("tmp/a").body(ByteStream::from_static(b"a")).send().await.unwrap();
    let expiration = out.expiration().expect("x-amz-expiration on the PUT");
    assert!(expiration.starts_with("expiry-date=\"") && expiration.ends_with("rule-id=\"expire\""), "{expiration}");
    assert!(s3.head_object().bucket("life").key("tmp/a").send().await.unwrap().expiration().is_some());
    assert!(put_and_head_expiration(&s3, "keep/b").await.is_none(), "no rule expires keep/b's current version");
    // keep/b: four versions; the rule keeps the newest noncurrent one.
    let mut keep: Vec<String> = Vec::new();
    for _ in 0..3 {
        keep.push(put(&s3, "life", "keep/b").await);
    }
    // gone/c: its only version deleted; once that noncurrent version goes, the lone
    // marker goes too.
    put(&s3, "life", "gone/c").await;
    s3.delete_object().bucket("life").key("gone/c").send().await.unwrap();
    let upload = s3.create_multipart_upload().bucket("life").key("up/big").send().await.unwrap();
    let kept_upload = s3.create_multipart_upload().bucket("life").key("other/big").send().await.unwrap();

    wait_until("the rules have done their work", Duration::from_secs(60), || {
        let tmp = block_on(versions_of(&s3, "life", "tmp/a"));
        let keep_b = block_on(versions_of(&s3, "life", "keep/b"));
        let gone = block_on(versions_of(&s3, "life", "gone/c"));
        // tmp/a: expired into a marker; its version, noncurrent now, matches no
        // noncurrent rule: kept.
        tmp.len() == 2 && tmp[0].1 && !tmp[1].1 && keep_b.len() == 2 && gone.is_empty()
    });
    let keep_b = versions_of(&s3, "life", "keep/b").await;
    assert_eq!(keep_b.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), [keep[2].clone(), keep[1].clone()]);
    let uploads = s3.list_multipart_uploads().bucket("life").send().await.unwrap();
    let ids: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.upload_id()).collect();
    assert_eq!(ids, [kept_upload.upload_id().unwrap()], "the stale upload under up/ is aborted, not the other");
    assert!(!ids.contains(&upload.upload_id().unwrap()));
    assert!(counter(&[&node], "buckets_lifecycle_actions_total", &["action=\"expire\"", "outcome=\"done\""]) >= 1.0);
    assert!(counter(&[&node], "buckets_lifecycle_passes_total", &[]) >= 1.0);

    // Locked versions stay: a COMPLIANCE version made noncurrent is refused to the rule.
    s3.create_bucket().bucket("locked-life").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let old = BucketLifecycleConfiguration::builder()
        .rules(
            rule("old", "")
                .noncurrent_version_expiration(NoncurrentVersionExpiration::builder().noncurrent_days(1).build())
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration().bucket("locked-life").lifecycle_configuration(old).send().await.unwrap();
    let until = DateTime::from_secs(DateTime::from(std::time::SystemTime::now()).secs() + 3600);
    s3.put_object()
        .bucket("locked-life")
        .key("record")
        .body(ByteStream::from_static(b"v1"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .send()
        .await
        .unwrap();
    put(&s3, "locked-life", "record").await;
    wait_until("the rule tried the locked version", Duration::from_secs(60), || {
        counter(&[&node], "buckets_lifecycle_actions_total", &["action=\"delete_noncurrent\"", "outcome=\"locked\""])
            >= 1.0
    });
    assert_eq!(versions_of(&s3, "locked-life", "record").await.len(), 2, "the locked version is still there");

    s3.delete_bucket_lifecycle().bucket("life").send().await.unwrap();
    let gone = s3.get_bucket_lifecycle_configuration().bucket("life").send().await.unwrap_err();
    assert_eq!(gone.raw_response().map(|r| r.status().as_u16()), Some(404));
}

async fn put_and_head_expiration(s3: &Client, key: &str) -> Option<String> {
    put(s3, "life", key).await;
    s3.head_object().bucket("life").key(key).send().await.unwrap().expiration().map(str::to_string)
}

/// On a 4-node cluster every node runs the worker over the sets it owns: 40 objects
/// expire into exactly 40 delete markers and the nodes' counters add up to 40.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_expires_each_object_once() {
    let cluster = Node::start_cluster(4, 4, FAST);
    let s3 = cluster[0].client();
    versioned(&s3, "expiring").await;
    let keys: Vec<String> = (0..40).map(|n| format!("k{n:02}")).collect();
    for (n, key) in keys.iter().enumerate() {
        let client = cluster[n % 4].client();
        put(&client, "expiring", key).await;
    }
    let rules = BucketLifecycleConfiguration::builder()
        .rules(rule("expire", "").expiration(LifecycleExpiration::builder().days(1).build()).build().unwrap())
        .build()
        .unwrap();
    s3.put_bucket_lifecycle_configuration().bucket("expiring").lifecycle_configuration(rules).send().await.unwrap();
    let nodes: Vec<&Node> = cluster.iter().collect();
    wait_until("every object expired", Duration::from_secs(90), || {
        counter(&nodes, "buckets_lifecycle_actions_total", &["action=\"expire\"", "outcome=\"done\""]) >= 40.0
    });
    // A few more passes: nothing is expired twice.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(counter(&nodes, "buckets_lifecycle_actions_total", &["action=\"expire\"", "outcome=\"done\""]), 40.0);
    for key in &keys {
        let versions = versions_of(&cluster[3].client(), "expiring", key).await;
        assert_eq!(versions.iter().filter(|(_, marker)| *marker).count(), 1, "{key}: one delete marker");
        assert_eq!(versions.len(), 2, "{key}");
    }
    let listed = s3.list_objects_v2().bucket("expiring").send().await.unwrap();
    assert!(listed.contents().is_empty(), "every key reads as deleted");
}
