//! S3 versioning through the AWS SDK: versions, the null version of a suspended bucket,
//! delete markers, reads and deletes by version id, version listings across pages, copies
//! and tags of a version; and a versioned key moved by the migration with `kill -9` at
//! every crash point, every version arriving whole, in order, exactly once.

use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, Delete, ObjectIdentifier, Tag, Tagging, VersioningConfiguration};
use buckets_api::{MigrationState, MigrationStatus};
use buckets_node::placement::topology::{Topology, TopologyRules};

use crate::harness::{Node, admin_cli, data, files_under, wait_until};

fn status_of<E>(error: &aws_sdk_s3::error::SdkError<E>) -> u16 {
    error.raw_response().map_or(0, |r| r.status().as_u16())
}

fn header_of<E>(error: &aws_sdk_s3::error::SdkError<E>, name: &str) -> Option<String> {
    error.raw_response().and_then(|r| r.headers().get(name)).map(str::to_string)
}

async fn set_versioning(s3: &Client, bucket: &str, status: BucketVersioningStatus) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .unwrap();
}

async fn put(s3: &Client, bucket: &str, key: &str, bytes: &[u8]) -> Option<String> {
    let out = s3.put_object().bucket(bucket).key(key).body(ByteStream::from(bytes.to_vec())).send().await.unwrap();
    out.version_id().map(str::to_string)
}

async fn get_version(s3: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = s3.get_object().bucket(bucket).key(key).version_id(version).send().await.unwrap();
    assert_eq!(out.version_id(), Some(version), "{key} names the version it returns");
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// (key, version id, is latest, delete marker) of every entry of a version listing,
/// read page by page with `page_size` entries a page.
async fn all_versions(s3: &Client, bucket: &str, page_size: i32) -> Vec<(String, String, bool, bool)> {
    let mut out = Vec::new();
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page_size)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        let mut entries: Vec<(String, String, bool, bool, i64)> = Vec::new();
        for v in page.versions() {
            let time = v.last_modified().unwrap().as_nanos() as i64;
            entries.push((
                v.key().unwrap().into(),
                v.version_id().unwrap().into(),
                v.is_latest().unwrap(),
                false,
                time,
            ));
        }
        for m in page.delete_markers() {
            let time = m.last_modified().unwrap().as_nanos() as i64;
            entries.push((m.key().unwrap().into(), m.version_id().unwrap().into(), m.is_latest().unwrap(), true, time));
        }
        // The answer lists versions and markers apart; their order is by key, then newest.
        entries.sort_by(|a, b| a.0.cmp(&b.0).then(b.4.cmp(&a.4)).then(b.1.cmp(&a.1)));
        assert!(entries.len() <= page_size as usize, "a page holds at most max-keys entries");
        out.extend(entries.into_iter().map(|(k, v, latest, marker, _)| (k, v, latest, marker)));
        if !page.is_truncated().unwrap_or(false) {
            return out;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
        assert!(key_marker.is_some(), "a truncated page says where the next starts");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_delete_markers_and_the_null_version() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("versioned").send().await.unwrap();
    // A new bucket is unversioned: no Status, and its objects carry no version id.
    assert!(s3.get_bucket_versioning().bucket("versioned").send().await.unwrap().status().is_none());
    assert_eq!(put(&s3, "versioned", "before", b"unversioned").await, None);

    set_versioning(&s3, "versioned", BucketVersioningStatus::Enabled).await;
    let versioning = s3.get_bucket_versioning().bucket("versioned").send().await.unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    let bodies: Vec<Vec<u8>> = (0..3).map(|n| data(if n == 1 { 2_500_000 } else { 1000 + n }, n as u64)).collect();
    let mut ids = Vec::new();
    for body in &bodies {
        ids.push(put(&s3, "versioned", "doc", body).await.expect("a versioned write names its version"));
    }
    assert!(ids[0] < ids[1] && ids[1] < ids[2], "version ids are time-ordered: {ids:?}");
    assert_eq!(crate::harness::get_bytes(&s3, "versioned", "doc").await, bodies[2]);
    for (id, body) in ids.iter().zip(&bodies) {
        assert_eq!(&get_version(&s3, "versioned", "doc", id).await, body);
        let head = s3.head_object().bucket("versioned").key("doc").version_id(id).send().await.unwrap();
        assert_eq!(head.content_length(), Some(body.len() as i64));
    }
    // The object written before versioning is the null version.
    assert_eq!(get_version(&s3, "versioned", "before", "null").await, b"unversioned");

    // A delete adds a marker; the key reads as absent, the marker by id is 405.
    let deleted = s3.delete_object().bucket("versioned").key("doc").send().await.unwrap();
    assert_eq!(deleted.delete_marker(), Some(true));
    let marker = deleted.version_id().unwrap().to_string();
    let gone = s3.get_object().bucket("versioned").key("doc").send().await.unwrap_err();
    assert_eq!(status_of(&gone), 404);
    assert_eq!(header_of(&gone, "x-amz-delete-marker").as_deref(), Some("true"));
    assert_eq!(header_of(&gone, "x-amz-version-id"), Some(marker.clone()));
    let head = s3.head_object().bucket("versioned").key("doc").send().await.unwrap_err();
    assert_eq!(status_of(&head), 404);
    let not_allowed = s3.get_object().bucket("versioned").key("doc").version_id(&marker).send().await.unwrap_err();
    assert_eq!(status_of(&not_allowed), 405);
    assert_eq!(header_of(&not_allowed, "x-amz-delete-marker").as_deref(), Some("true"));
    // Older versions stay readable; the key is gone from plain listings.
    assert_eq!(get_version(&s3, "versioned", "doc", &ids[0]).await, bodies[0]);
    let listed = s3.list_objects_v2().bucket("versioned").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["before"]);
    let versions = all_versions(&s3, "versioned", 1000).await;
    let expected = vec![
        ("before".to_string(), "null".to_string(), true, false),
        ("doc".into(), marker.clone(), true, true),
        ("doc".into(), ids[2].clone(), false, false),
        ("doc".into(), ids[1].clone(), false, false),
        ("doc".into(), ids[0].clone(), false, false),
    ];
    assert_eq!(versions, expected);
    // The same, one entry a page: every page boundary, inside a key's versions too.
    assert_eq!(all_versions(&s3, "versioned", 1).await, expected);
    assert_eq!(all_versions(&s3, "versioned", 2).await, expected);

    // Removing the marker brings the latest version back; removing a version by id
    // removes that one only.
    let removed = s3.delete_object().bucket("versioned").key("doc").version_id(&marker).send().await.unwrap();
    assert_eq!((removed.delete_marker(), removed.version_id()), (Some(true), Some(marker.as_str())));
    assert_eq!(crate::harness::get_bytes(&s3, "versioned", "doc").await, bodies[2]);
    s3.delete_object().bucket("versioned").key("doc").version_id(&ids[1]).send().await.unwrap();
    let missing = s3.get_object().bucket("versioned").key("doc").version_id(&ids[1]).send().await.unwrap_err();
    assert_eq!((status_of(&missing), missing.into_service_error().meta().code()), (404, Some("NoSuchVersion")));
    let malformed = s3.get_object().bucket("versioned").key("doc").version_id("not-an-id").send().await.unwrap_err();
    assert_eq!(status_of(&malformed), 400);

    // Copy from an older version, tags on one version only.
    let copied = s3
        .copy_object()
        .bucket("versioned")
        .key("copy")
        .copy_source(format!("versioned/doc?versionId={}", ids[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(copied.copy_source_version_id(), Some(ids[0].as_str()));
    assert!(copied.version_id().is_some());
    assert_eq!(crate::harness::get_bytes(&s3, "versioned", "copy").await, bodies[0]);
    let tagging = Tagging::builder().tag_set(Tag::builder().key("old").value("yes").build().unwrap()).build().unwrap();
    s3.put_object_tagging().bucket("versioned").key("doc").version_id(&ids[0]).tagging(tagging).send().await.unwrap();
    let tags = s3.get_object_tagging().bucket("versioned").key("doc").version_id(&ids[0]).send().await.unwrap();
    assert_eq!(tags.tag_set().len(), 1);
    let latest_tags = s3.get_object_tagging().bucket("versioned").key("doc").send().await.unwrap();
    assert!(latest_tags.tag_set().is_empty(), "the latest version keeps its own (no) tags");

    // Suspended: writes replace the null version and keep the others.
    set_versioning(&s3, "versioned", BucketVersioningStatus::Suspended).await;
    assert_eq!(
        s3.get_bucket_versioning().bucket("versioned").send().await.unwrap().status(),
        Some(&BucketVersioningStatus::Suspended)
    );
    put(&s3, "versioned", "doc", b"null one").await;
    put(&s3, "versioned", "doc", b"null two").await;
    assert_eq!(get_version(&s3, "versioned", "doc", "null").await, b"null two");
    let doc: Vec<String> =
        all_versions(&s3, "versioned", 1000).await.into_iter().filter(|e| e.0 == "doc").map(|e| e.1).collect();
    assert_eq!(doc, ["null".to_string(), ids[2].clone(), ids[0].clone()]);
    // A delete while suspended is a null delete marker, in place of the null version.
    let deleted = s3.delete_object().bucket("versioned").key("doc").send().await.unwrap();
    assert_eq!((deleted.delete_marker(), deleted.version_id()), (Some(true), Some("null")));
    let doc: Vec<(String, bool)> =
        all_versions(&s3, "versioned", 1000).await.into_iter().filter(|e| e.0 == "doc").map(|e| (e.1, e.3)).collect();
    assert_eq!(doc, [("null".to_string(), true), (ids[2].clone(), false), (ids[0].clone(), false)]);

    // Batch deletes by version id; a bucket holding versions is not empty.
    let objects = [ids[2].as_str(), ids[0].as_str(), "null"]
        .iter()
        .map(|id| ObjectIdentifier::builder().key("doc").version_id(*id).build().unwrap())
        .collect::<Vec<_>>();
    let batch = s3
        .delete_objects()
        .bucket("versioned")
        .delete(Delete::builder().set_objects(Some(objects)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(batch.deleted().len(), 3);
    assert!(batch.errors().is_empty());
    let marker_entry = batch.deleted().iter().find(|d| d.version_id() == Some("null")).unwrap();
    assert_eq!(marker_entry.delete_marker(), Some(true));
    assert!(all_versions(&s3, "versioned", 1000).await.iter().all(|e| e.0 != "doc"), "every version of doc is gone");
    let not_empty = s3.delete_bucket().bucket("versioned").send().await.unwrap_err();
    assert_eq!(status_of(&not_empty), 409);
    // Versioning cannot go back to unversioned: S3 takes Enabled or Suspended only.
    let bad = s3
        .put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(VersioningConfiguration::builder().build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status_of(&bad), 400);
}

fn admin_ok(node: &Node, args: &[&str]) -> String {
    let output = admin_cli(node, args);
    assert!(output.status.success(), "buckets-admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn migration(node: &Node) -> MigrationStatus {
    serde_json::from_str(&admin_ok(node, &["migration", "status", "--json"])).unwrap()
}

/// Keys with many versions (objects inline and in shard files, a delete marker on some)
/// move from a drained set with `kill -9` at each point of a move: every version arrives,
/// in order, with its bytes, exactly once, and nothing is left in the drained set.
/// Kills the node at each crash point of a move, in turn, while the migration just
/// started runs; between crashes every version reads back whole and the listing is
/// unchanged. Leaves the migration running to its end.
async fn crash_at_every_move_point(
    node: &mut Node,
    before: &[(String, String, bool, bool)],
    versions: &[(String, String, Vec<u8>)],
) {
    for point in ["move-after-copy", "move-after-commit", "move-after-registry"] {
        node.kill();
        node.env.retain(|(k, _)| k != "BUCKETS_FAILPOINT");
        node.env.push(("BUCKETS_FAILPOINT".into(), format!("{point}:3")));
        node.spawn();
        admin_ok(node, &["migration", "resume"]);
        assert!(node.wait_exit(Duration::from_secs(60)), "the node did not reach {point}");
        node.env.retain(|(k, _)| k != "BUCKETS_FAILPOINT");
        node.spawn();
        admin_ok(node, &["migration", "pause"]);
        let s3 = node.client();
        assert_eq!(all_versions(&s3, "moving", 1000).await, before, "after {point}");
        for (key, id, bytes) in versions.iter().step_by(5) {
            assert_eq!(&get_version(&s3, "moving", key, id).await, bytes, "{key} {id} after {point}");
        }
    }
    admin_ok(node, &["migration", "resume"]);
    wait_until("the migration completes", Duration::from_secs(120), || migration(node).state == MigrationState::Done);
}

/// The set of the ring that holds each key now.
fn homes(node: &Node, keys: &[String]) -> Vec<u32> {
    let topology: Topology = serde_json::from_str(&admin_ok(node, &["topology", "show", "--json"])).unwrap();
    let ring = topology.ring();
    keys.iter().map(|key| ring.locate("moving", key)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn versioned_keys_move_whole_through_every_crash_point() {
    let mut node = Node::start(20); // two sets of 10
    let s3 = node.client();
    s3.create_bucket().bucket("moving").send().await.unwrap();
    set_versioning(&s3, "moving", BucketVersioningStatus::Enabled).await;
    let mut versions: Vec<(String, String, Vec<u8>)> = Vec::new();
    for n in 0..24 {
        let key = format!("k{n:02}");
        for v in 0..4 {
            let bytes = data(if (n + v) % 9 == 0 { 1_200_000 } else { 300 + n * 11 + v }, (n * 10 + v) as u64);
            let id = put(&s3, "moving", &key, &bytes).await.unwrap();
            versions.push((key.clone(), id, bytes));
        }
        if n % 3 == 0 {
            s3.delete_object().bucket("moving").key(&key).send().await.unwrap();
        }
    }
    // Deep keys: 20 versions each, then a delete marker.
    // Twelve, so that the random ring gives the drained and the added set one each (all
    // twelve on one side: 1 in 4096).
    let deep: Vec<String> = (0..12).map(|n| format!("deep-{n}")).collect();
    for (n, key) in deep.iter().enumerate() {
        for v in 0..20 {
            let bytes = data(if v % 7 == 3 { 700_000 } else { 100 + v * 13 }, (1000 + n * 100 + v) as u64);
            let id = put(&s3, "moving", key, &bytes).await.unwrap();
            versions.push((key.clone(), id, bytes));
        }
        s3.delete_object().bucket("moving").key(key).send().await.unwrap();
    }
    let before = all_versions(&s3, "moving", 1000).await;
    assert_eq!(before.len(), 24 * 4 + 8 + deep.len() * 21);
    let deep_homes = homes(&node, &deep);

    // Drain set 1: its keys move to set 0.
    admin_ok(&node, &["migration", "pause"]);
    admin_ok(&node, &["drain-set", "1"]);
    crash_at_every_move_point(&mut node, &before, &versions).await;
    assert!(deep_homes.contains(&1), "a deep key moves in the drain: {deep_homes:?}");
    let s3 = node.client();
    assert_eq!(all_versions(&s3, "moving", 1000).await, before);
    assert_eq!(all_versions(&s3, "moving", 7).await, before);
    for (key, id, bytes) in &versions {
        assert_eq!(&get_version(&s3, "moving", key, id).await, bytes, "{key} {id}");
    }
    // Every key's file only on set 0's drives now, nothing staged anywhere.
    for d in 10..20 {
        let left: Vec<_> = files_under(&node.drive(d).join("moving"));
        assert!(left.iter().all(|f| !f.ends_with("%meta")), "drive {d} of the drained set: {left:?}");
    }

    // Add a set: the keys the ring gives it move there, through the same crash points.
    admin_ok(&node, &["migration", "pause"]);
    admin_ok(&node, &["remove-set", "1"]);
    let added = format!("{}/added/e{{1...10}}", node.root.path().display());
    admin_ok(&node, &["add-set", &added]);
    crash_at_every_move_point(&mut node, &before, &versions).await;
    let deep_homes_now = homes(&node, &deep);
    assert!(deep_homes_now.iter().any(|&home| home != 0), "a deep key moves to the added set: {deep_homes_now:?}");
    let s3 = node.client();
    assert_eq!(all_versions(&s3, "moving", 1000).await, before);
    assert_eq!(all_versions(&s3, "moving", 7).await, before);
    for (key, id, bytes) in &versions {
        assert_eq!(&get_version(&s3, "moving", key, id).await, bytes, "{key} {id} after the set was added");
    }
    for d in 0..20 {
        let staged = files_under(&node.drive(d).join(".buckets.sys/tmp"));
        assert!(staged.is_empty(), "staged files left on drive {d}: {staged:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_through_every_node_of_a_cluster() {
    let mut cluster = Node::start_cluster(4, 4, &[("BUCKETS_DRIVE_CHECK_SECS", "1")]);
    let clients: Vec<Client> = cluster.iter().map(Node::client).collect();

    // Every node writes to an unversioned bucket (and keeps its settings), then versioning
    // is enabled through one node: the very next writes through the others keep versions.
    clients[0].create_bucket().bucket("switch").send().await.unwrap();
    for client in &clients {
        assert_eq!(put(client, "switch", "k", b"unversioned").await, None);
    }
    set_versioning(&clients[0], "switch", BucketVersioningStatus::Enabled).await;
    let mut kept = Vec::new();
    for (n, client) in clients.iter().enumerate().skip(1) {
        kept.push(put(client, "switch", "k", format!("v{n}").as_bytes()).await.expect("a version id"));
    }
    let versions = all_versions(&clients[3], "switch", 100).await;
    assert_eq!(versions.len(), 4, "three versions and the null one: {versions:?}");
    assert!(kept.iter().all(|id| versions.iter().any(|(_, v, ..)| v == id)), "{versions:?}");

    clients[0].create_bucket().bucket("shared").send().await.unwrap();
    set_versioning(&clients[1], "shared", BucketVersioningStatus::Enabled).await;

    // One version written through each node, inline and multi-block.
    let mut written = Vec::new();
    for (n, client) in clients.iter().enumerate() {
        let bytes = data(if n % 2 == 0 { 900 + n } else { 1_500_000 + n }, 40 + n as u64);
        let id = put(client, "shared", "doc", &bytes).await.unwrap();
        written.push((id, bytes));
    }
    let marker = clients[2].delete_object().bucket("shared").key("doc").send().await.unwrap();
    assert_eq!(marker.delete_marker(), Some(true));
    let marker_id = marker.version_id().unwrap().to_string();

    let mut expected: Vec<(String, String, bool, bool)> = vec![("doc".into(), marker_id.clone(), true, true)];
    expected.extend(written.iter().rev().map(|(id, _)| ("doc".to_string(), id.clone(), false, false)));
    for (n, client) in clients.iter().enumerate() {
        let error = client.get_object().bucket("shared").key("doc").send().await.unwrap_err();
        assert_eq!(status_of(&error), 404, "through node {n}");
        assert_eq!(header_of(&error, "x-amz-delete-marker").as_deref(), Some("true"));
        assert_eq!(all_versions(client, "shared", 2).await, expected, "listing through node {n}");
        for (id, bytes) in &written {
            assert_eq!(&get_version(client, "shared", "doc", id).await, bytes, "{id} through node {n}");
        }
    }

    // With a node down: a version deleted by id stays deleted when the node returns, and
    // a version written meanwhile is healed onto it.
    cluster[3].kill();
    let survivors = &clients[..3];
    survivors[0].delete_object().bucket("shared").key("doc").version_id(&written[0].0).send().await.unwrap();
    let late = data(2_000_000, 99);
    let late_id = put(&survivors[1], "shared", "doc", &late).await.unwrap();
    cluster[3].spawn();
    let revived = cluster[3].client();
    let mut now_expected =
        vec![("doc".to_string(), late_id.clone(), true, false), (expected[0].0.clone(), marker_id, false, true)];
    now_expected.extend(written[1..].iter().rev().map(|(id, _)| ("doc".to_string(), id.clone(), false, false)));
    for (n, client) in survivors.iter().chain(std::iter::once(&revived)).enumerate() {
        assert_eq!(all_versions(client, "shared", 1000).await, now_expected, "listing through node {n}");
        let gone = client.get_object().bucket("shared").key("doc").version_id(&written[0].0).send().await.unwrap_err();
        assert_eq!(status_of(&gone), 404, "the deleted version stays deleted (node {n})");
        assert_eq!(get_version(client, "shared", "doc", &late_id).await, late);
    }

    // Object lock is enforced by every node.
    clients[0].create_bucket().bucket("vault").object_lock_enabled_for_bucket(true).send().await.unwrap();
    let held =
        clients[1].put_object().bucket("vault").key("k").body(ByteStream::from_static(b"kept")).send().await.unwrap();
    let held_id = held.version_id().unwrap().to_string();
    clients[2]
        .put_object_legal_hold()
        .bucket("vault")
        .key("k")
        .version_id(&held_id)
        .legal_hold(
            aws_sdk_s3::types::ObjectLockLegalHold::builder()
                .status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for (n, client) in clients.iter().enumerate() {
        let refused = client.delete_object().bucket("vault").key("k").version_id(&held_id).send().await.unwrap_err();
        assert_eq!(status_of(&refused), 403, "through node {n}");
    }
    assert_eq!(get_version(&clients[3], "vault", "k", &held_id).await, b"kept");
}
