//! The location registry across a 4-node cluster (contract 5): objects left in a set the
//! ring no longer names are found, recorded once and then found in one step from any
//! node; records deleted by hand and caches made stale by another node's writes never
//! hide an object or bring back a deleted one.

use aws_sdk_s3::primitives::ByteStream;
use buckets_node::placement::topology::{SetState, Topology, TopologyRules};
use buckets_node::storage::registry::REGISTRY_BUCKET;

use crate::harness::{ACCESS_KEY, Node, SECRET_KEY, complete_upload, data, get_bytes, upload_part, wait_until};
use crate::topology::{admin_get, admin_post, apply_body};

#[tokio::test(flavor = "multi_thread")]
async fn registry_records_and_caches_never_hide_objects_across_nodes() {
    // Four nodes of five drives: two sets of 10, each spread over all four nodes.
    let cluster = Node::start_cluster(4, 5, &[("BUCKETS_DRIVE_CHECK_SECS", "1")]);
    let s3: Vec<_> = cluster.iter().map(|n| n.client()).collect();
    s3[0].create_bucket().bucket("reg").send().await.unwrap();
    let (_, body) = admin_get(&cluster[0], "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let topology: Topology = serde_json::from_slice(&body).unwrap();
    let ring = topology.ring();
    // Small (inline) and multi-block objects, written before the topology changes.
    let keys: Vec<String> = (0..24).map(|n| format!("obj-{n}")).collect();
    let body_of =
        |n: usize| if n.is_multiple_of(6) { data(3 * 1024 * 1024 + n, n as u64) } else { data(1000 + n, n as u64) };
    for (n, key) in keys.iter().enumerate() {
        s3[n % 4].put_object().bucket("reg").key(key).body(ByteStream::from(body_of(n))).send().await.unwrap();
    }
    let away: Vec<usize> = (0..keys.len()).filter(|n| ring.locate("reg", &keys[*n]) == 1).collect();
    assert!(away.len() >= 4, "only {} objects in set 1", away.len());
    // A multipart upload of a key in set 1 starts before the change and completes after it.
    let upload_key = (0..).map(|n| format!("upload-{n}")).find(|k| ring.locate("reg", k) == 1).unwrap();
    let upload = s3[1].create_multipart_upload().bucket("reg").key(&upload_key).send().await.unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    let part_one = data(5 * 1024 * 1024, 77);
    let etag_one = upload_part(&s3[1], "reg", &upload_key, &upload_id, 1, &part_one).await;

    // With the migration paused, objects stay where they are: generation 2 reweighs the
    // sets and, before it settles, generation 3 takes set 1 out of the ring. A change from
    // an unsettled generation leaves keys possibly anywhere: the registry's case.
    let (status, body) = admin_post(&cluster[0], "/admin/v1/migration/pause", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let mut next = topology.clone();
    next.generation = 2;
    next.pools[0].sets[0].weight = 2.0;
    let (status, body) = admin_post(&cluster[0], "/admin/v1/topology", &apply_body(1, &next));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    next.generation = 3;
    next.pools[0].sets[1].state = SetState::Draining;
    let (status, body) = admin_post(&cluster[0], "/admin/v1/topology", &apply_body(2, &next));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    for node in &cluster {
        wait_until("every node has generation 3", std::time::Duration::from_secs(10), || {
            let (_, body) = admin_get(node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
            serde_json::from_slice::<Topology>(&body).unwrap().generation == 3
        });
    }

    // Node 0 finds the objects of set 1 by asking every set and records where they are…
    for (n, key) in keys.iter().enumerate() {
        assert_eq!(get_bytes(&s3[0], "reg", key).await, body_of(n), "{key} through node 0");
    }
    assert_eq!(cluster[0].metric("buckets_registry_fallback_reads_total"), away.len() as f64);
    assert_eq!(cluster[0].metric("buckets_registry_records_written_total"), away.len() as f64);
    // …so node 1 finds them through the records, without asking every set, and then
    // from its cache.
    for (n, key) in keys.iter().enumerate() {
        assert_eq!(get_bytes(&s3[1], "reg", key).await, body_of(n), "{key} through node 1");
        s3[1].head_object().bucket("reg").key(key).send().await.unwrap();
    }
    assert_eq!(cluster[1].metric("buckets_registry_fallback_reads_total"), 0.0);
    assert!(cluster[1].metric("buckets_registry_cache_hits_total") >= away.len() as f64);

    // The upload started in set 1 completes there, through another node, and is recorded.
    let part_two = data(1000, 78);
    let etag_two = upload_part(&s3[2], "reg", &upload_key, &upload_id, 2, &part_two).await;
    complete_upload(&s3[2], "reg", &upload_key, &upload_id, &[(1, etag_one), (2, etag_two)]).await;
    let expected_upload = [part_one, part_two].concat();
    assert_eq!(get_bytes(&s3[3], "reg", &upload_key).await, expected_upload);
    assert_eq!(cluster[3].metric("buckets_registry_fallback_reads_total"), 0.0, "the completed upload was recorded");

    // Every record deleted by hand, on every drive: objects are still found.
    for node in &cluster {
        for drive in 0..5 {
            let records = node.drive(drive).join(REGISTRY_BUCKET).join("reg");
            if records.exists() {
                std::fs::remove_dir_all(&records).unwrap();
            }
        }
    }
    for (n, key) in keys.iter().enumerate() {
        assert_eq!(get_bytes(&s3[3], "reg", key).await, body_of(n), "{key} after its record was deleted");
    }
    assert_eq!(get_bytes(&s3[3], "reg", &upload_key).await, expected_upload);

    // Node 1 caches where the objects of set 1 are; node 2 overwrites one (it moves to
    // set 0) and deletes another. Node 1's cache entries are now wrong: node 2 tells it
    // to forget them, and even an entry it still held would only cost a failed probe.
    let (overwritten, deleted) = (&keys[away[0]], &keys[away[1]]);
    for n in &away {
        assert_eq!(get_bytes(&s3[1], "reg", &keys[*n]).await, body_of(*n));
    }
    let forgotten_before = cluster[1].metric("buckets_registry_cache_invalidations_total");
    s3[2].put_object().bucket("reg").key(overwritten).body(ByteStream::from_static(b"new")).send().await.unwrap();
    s3[2].delete_object().bucket("reg").key(deleted).send().await.unwrap();
    wait_until("node 1 forgets the changed locations", std::time::Duration::from_secs(10), || {
        cluster[1].metric("buckets_registry_cache_invalidations_total") >= forgotten_before + 2.0
    });
    for client in &s3 {
        assert_eq!(get_bytes(client, "reg", overwritten).await, b"new");
        let gone = client.get_object().bucket("reg").key(deleted).send().await;
        assert!(gone.is_err(), "{deleted} came back");
    }
    let listed = s3[1].list_objects_v2().bucket("reg").send().await.unwrap();
    assert_eq!(listed.contents().len(), keys.len()); // one deleted, one upload completed

    // The registry is no bucket a user can reach.
    let refused = s3[0].list_objects_v2().bucket(REGISTRY_BUCKET).send().await;
    assert!(refused.is_err());
    let buckets = s3[0].list_buckets().send().await.unwrap();
    let names: Vec<&str> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec!["reg"]);
}
