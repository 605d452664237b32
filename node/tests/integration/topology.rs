//! The topology: persisted on every drive, served by the admin API to root credentials,
//! and the ring it implies decides where objects go.

use aws_sdk_s3::primitives::ByteStream;
use buckets_node::placement::topology::{SetState, Topology, TopologyRules};

use crate::harness::{ACCESS_KEY, Node, SECRET_KEY, admin_cli, files_under, raw_request_on};

pub(crate) fn admin_get(node: &Node, path: &str, user: &str, password: &str) -> (u16, Vec<u8>) {
    let authorization =
        buckets_api::auth::authorization(user, password.as_bytes(), "GET", path, b"", buckets_node::clock::unix_now());
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

pub(crate) fn admin_post(node: &Node, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let authorization = buckets_api::auth::authorization(
        ACCESS_KEY,
        SECRET_KEY.as_bytes(),
        "POST",
        path,
        body,
        buckets_node::clock::unix_now(),
    );
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nAuthorization: {authorization}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        node.ip,
        node.admin_port,
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let (status, _, body) = raw_request_on(&node.ip, node.admin_port, &request).unwrap();
    (status, body)
}

pub(crate) fn apply_body(expected: u64, topology: &Topology) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "expectedGeneration": expected, "topology": topology })).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn topology_changes_only_by_compare_and_swap_and_reach_every_node() {
    // Four nodes of five drives: 20 drives, two sets of 10 spread over all nodes.
    let cluster = Node::start_cluster(4, 5, &[("BUCKETS_DRIVE_CHECK_SECS", "1")]);
    let (_, body) = admin_get(&cluster[0], "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let current: Topology = serde_json::from_slice(&body).unwrap();
    assert_eq!(current.generation, 1);
    assert_eq!(current.sets().count(), 2);
    let s3 = cluster[0].client();
    s3.create_bucket().bucket("cas").send().await.unwrap();
    for n in 0..20 {
        s3.put_object()
            .bucket("cas")
            .key(format!("before-{n}"))
            .body(ByteStream::from(vec![1u8; 100]))
            .send()
            .await
            .unwrap();
    }

    let mut next = current.clone();
    next.generation = 2;
    next.pools[0].sets[1].state = SetState::Draining;
    // Signed with root credentials, applied through node 0 with the expected generation.
    let (status, body) = admin_post(&cluster[0], "/admin/v1/topology", &apply_body(1, &next));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Topology>(&body).unwrap(), next);
    // A second writer that still believes in generation 1 loses.
    let mut stale = current.clone();
    stale.generation = 2;
    let (status, body) = admin_post(&cluster[1], "/admin/v1/topology", &apply_body(1, &stale));
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    // Changes the rules forbid are refused with a reason.
    let mut dropped = next.clone();
    dropped.generation = 3;
    dropped.pools[0].sets.pop();
    let (status, body) = admin_post(&cluster[2], "/admin/v1/topology", &apply_body(2, &dropped));
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("disappeared"), "{}", String::from_utf8_lossy(&body));
    // Every node serves generation 2, and new objects go to the one active set.
    for node in &cluster {
        let (_, body) = admin_get(node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
        assert_eq!(serde_json::from_slice::<Topology>(&body).unwrap().generation, 2);
    }
    let ring = next.ring();
    for n in 0..20 {
        let key = format!("after-{n}");
        assert_eq!(ring.locate("cas", &key), 0);
        cluster[n % 4]
            .client()
            .put_object()
            .bucket("cas")
            .key(&key)
            .body(ByteStream::from(vec![2u8; 100]))
            .send()
            .await
            .unwrap();
    }
    // Objects written before are all still there, through any node.
    let listed = cluster[3].client().list_objects_v2().bucket("cas").send().await.unwrap();
    assert_eq!(listed.contents().len(), 40);
    for n in 0..20 {
        let got = crate::harness::get_bytes(&cluster[2].client(), "cas", &format!("before-{n}")).await;
        assert_eq!(got, vec![1u8; 100]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_missed_a_topology_change_catches_up_from_the_majority() {
    let mut cluster = Node::start_cluster(4, 5, &[("BUCKETS_DRIVE_CHECK_SECS", "1")]);
    let (_, body) = admin_get(&cluster[0], "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let current: Topology = serde_json::from_slice(&body).unwrap();
    cluster[3].kill();
    let mut next = current.clone();
    next.generation = 2;
    next.pools[0].sets[0].weight = 2.0;
    let (status, body) = admin_post(&cluster[0], "/admin/v1/topology", &apply_body(1, &next));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // The node comes back with generation 1 on its own drives, and no periodic check soon…
    cluster[3].env.push(("BUCKETS_DRIVE_CHECK_SECS".into(), "3600".into()));
    cluster[3].spawn();
    // …yet it serves generation 2 as soon as it is ready: at start it reads every reachable
    // drive and takes the newest generation a majority holds, rewriting its own drives.
    let node = &cluster[3];
    let (_, body) = admin_get(node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    assert_eq!(serde_json::from_slice::<Topology>(&body).unwrap().generation, 2);
    for d in 0..5 {
        let bytes = std::fs::read(node.drive(d).join(".buckets.sys/topology.bkt")).unwrap();
        assert_eq!(Topology::decode(&bytes).unwrap().generation, 2, "drive {d}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_admin_shows_and_applies_the_topology() {
    let node = Node::start(20);
    let shown = admin_cli(&node, &["topology", "show"]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    let table = String::from_utf8_lossy(&shown.stdout).to_string();
    assert!(table.contains("generation 1") && table.contains("Active"), "{table}");
    let json = admin_cli(&node, &["topology", "show", "--json"]);
    let mut topology: Topology = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(topology.generation, 1);

    topology.generation = 2;
    topology.pools[0].sets[1].weight = 0.5;
    let file = node.root.path().join("next.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&topology).unwrap()).unwrap();
    let file = file.to_string_lossy().to_string();
    let applied = admin_cli(&node, &["topology", "apply", &file, "--expected-generation", "1", "--json"]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    assert_eq!(serde_json::from_slice::<Topology>(&applied.stdout).unwrap(), topology);
    // Applying the same change again is a conflict, said plainly, with a failing exit code.
    let again = admin_cli(&node, &["topology", "apply", &file, "--expected-generation", "1"]);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(error.contains("GenerationConflict") && error.contains("generation 2"), "{error}");
    // Wrong credentials are refused.
    let denied = std::process::Command::new(env!("CARGO_BIN_EXE_buckets-admin"))
        .args(["topology", "show"])
        .env("BUCKETS_ENDPOINT", format!("http://{}:{}", node.ip, node.admin_port))
        .env("BUCKETS_ROOT_USER", ACCESS_KEY)
        .env("BUCKETS_ROOT_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("AccessDenied"));
}
