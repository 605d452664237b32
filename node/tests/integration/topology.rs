//! The topology: persisted on every drive, served by the admin API to root credentials,
//! and the ring it implies decides where objects go.

use aws_sdk_s3::primitives::ByteStream;
use buckets_node::placement::topology::{SetState, Topology};

use crate::harness::{ACCESS_KEY, Node, SECRET_KEY, files_under, raw_request_on};

fn admin_get(node: &Node, path: &str, user: &str, password: &str) -> (u16, Vec<u8>) {
    let authorization = buckets_node::admin::auth::authorization(
        user,
        password.as_bytes(),
        "GET",
        path,
        b"",
        buckets_node::rpc::unix_now(),
    );
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n",
        node.ip, node.admin_port
    );
    let (status, _, body) = raw_request_on(&node.ip, node.admin_port, request.as_bytes()).unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_serves_the_persisted_topology_to_root_only() {
    // 20 drives form two sets of 10.
    let mut node = Node::start(20);
    let (status, body) = admin_get(&node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let topology: Topology = serde_json::from_slice(&body).unwrap();
    assert_eq!(topology.generation, 1);
    assert_eq!(topology.pools.len(), 1);
    let sets: Vec<_> = topology.sets().map(|(_, s)| s.clone()).collect();
    assert_eq!(sets.len(), 2);
    assert!(sets.iter().all(|s| s.state == SetState::Active && s.drives.len() == 10));
    for drive in 0..20 {
        assert!(node.drive(drive).join(".buckets.sys/topology.bkt").exists());
    }
    // Refused without the root password, or without any signature.
    let (status, _) = admin_get(&node, "/admin/v1/topology", ACCESS_KEY, "wrong-password");
    assert_eq!(status, 403);
    let request = "GET /admin/v1/topology HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (status, _, body) = raw_request_on(&node.ip, node.admin_port, request.as_bytes()).unwrap();
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));

    // Objects land in the set the topology's ring names.
    let s3 = node.client();
    s3.create_bucket().bucket("placed").send().await.unwrap();
    let ring = topology.ring();
    let mut per_set = [0usize; 2];
    for n in 0..40 {
        let key = format!("item-{n}");
        s3.put_object().bucket("placed").key(&key).body(ByteStream::from(vec![n as u8; 10])).send().await.unwrap();
        let set = ring.locate("placed", &key) as usize;
        per_set[set] += 1;
        let first_drive = set * 10;
        assert!(node.drive(first_drive).join("placed").join(&key).join("%meta").exists(), "{key} on set {set}");
        assert!(!node.drive((1 - set) * 10).join("placed").join(&key).exists(), "{key} also on the other set");
    }
    assert!(per_set.iter().all(|&n| n > 5), "both sets receive objects: {per_set:?}");

    // A restart reads the same topology back.
    node.kill();
    node.spawn();
    let (_, body) = admin_get(&node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    assert_eq!(serde_json::from_slice::<Topology>(&body).unwrap(), topology);
    let files = files_under(&node.drive(0).join("placed"));
    assert!(!files.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_stay_readable_when_the_ring_moves_away_from_them() {
    let mut node = Node::start(20); // two sets of 10
    let s3 = node.client();
    s3.create_bucket().bucket("moved").send().await.unwrap();
    let (_, body) = admin_get(&node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let topology: Topology = serde_json::from_slice(&body).unwrap();
    let ring = topology.ring();
    let keys: Vec<String> = (0..30).map(|n| format!("k{n}")).collect();
    for key in &keys {
        s3.put_object().bucket("moved").key(key).body(ByteStream::from(key.as_bytes().to_vec())).send().await.unwrap();
    }
    let in_set_one: Vec<&String> = keys.iter().filter(|k| ring.locate("moved", k) == 1).collect();
    assert!(!in_set_one.is_empty());
    // Generation 2 drains set 1: the ring now sends every key to set 0, though half the
    // objects still sit in set 1 (no migration runs yet).
    node.kill();
    let mut next = topology.clone();
    next.generation = 2;
    next.pools[0].sets[1].state = SetState::Draining;
    topology.check_next(&next).unwrap();
    for drive in 0..20 {
        std::fs::write(node.drive(drive).join(".buckets.sys/topology.bkt"), next.encode()).unwrap();
    }
    node.spawn();
    let s3 = node.client();
    for key in &keys {
        let got = crate::harness::get_bytes(&s3, "moved", key).await;
        assert_eq!(got, key.as_bytes(), "{key} after its set left the ring");
        s3.head_object().bucket("moved").key(key).send().await.unwrap();
    }
    let listed = s3.list_objects_v2().bucket("moved").send().await.unwrap();
    assert_eq!(listed.contents().len(), keys.len());
    // Overwrite and delete keys that still sit in set 1: no stale copy resurfaces.
    let overwritten = in_set_one[0];
    s3.put_object().bucket("moved").key(overwritten).body(ByteStream::from_static(b"new")).send().await.unwrap();
    assert_eq!(crate::harness::get_bytes(&s3, "moved", overwritten).await, b"new");
    let listed = s3.list_objects_v2().bucket("moved").prefix(overwritten.as_str()).send().await.unwrap();
    let sizes: Vec<i64> =
        listed.contents().iter().filter(|o| o.key() == Some(overwritten)).filter_map(|o| o.size()).collect();
    assert_eq!(sizes, vec![3]);
    assert!(!node.drive(10).join("moved").join(overwritten).join("%meta").exists(), "stale copy left in set 1");
    if let Some(deleted) = in_set_one.get(1) {
        s3.delete_object().bucket("moved").key(deleted.as_str()).send().await.unwrap();
        assert!(s3.head_object().bucket("moved").key(deleted.as_str()).send().await.is_err(), "{deleted} resurrected");
    }
}
