//! Member nodes (`--node-address` with local drives; how the operator runs its pods): they
//! wait for a topology, a bootstrap through any of them forms the cluster, new member
//! nodes join a running cluster when their drives are added as a set (no restart of the
//! others), and a restarted member opens the cluster from the topology on its drives.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use buckets_api::{MigrationState, MigrationStatus};
use buckets_node::placement::topology::Topology;
use futures::StreamExt;

use crate::harness::{ACCESS_KEY, Node, SECRET_KEY, admin_cli, data, get_bytes, wait_until};
use crate::topology::admin_get;

fn admin_ok(node: &Node, args: &[&str]) -> String {
    let output = admin_cli(node, args);
    assert!(output.status.success(), "buckets-admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn topology_of(node: &Node) -> Topology {
    let (_, body) = admin_get(node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    serde_json::from_slice(&body).unwrap_or_else(|_| panic!("topology: {}", String::from_utf8_lossy(&body)))
}

#[tokio::test(flavor = "multi_thread")]
async fn member_nodes_bootstrap_grow_by_a_set_and_restart_from_their_drives() {
    // Four nodes with two drives each wait for a topology: alive, not ready.
    let mut members = Node::start_members(40, 4, 2);
    for node in &members {
        wait_until("the member answers probes", Duration::from_secs(20), || node.admin_status("/health/live") == 200);
        assert_eq!(node.admin_status("/health/ready"), 503, "not ready before a topology");
    }
    let state = admin_ok(&members[2], &["node", "--json"]);
    assert!(state.contains("awaitingTopology"), "{state}");
    let refused = admin_cli(&members[2], &["topology", "show"]);
    assert!(!refused.status.success(), "no topology to show yet");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("AwaitingTopology"));

    // Bootstrap through one node: two sets of 4, each on all four nodes.
    let sets: Vec<Vec<String>> = (1..=2).map(|d| members.iter().map(|n| n.drive_url(d)).collect()).collect();
    let body = serde_json::json!({ "pools": [{ "name": "fast", "sets": sets }] });
    let (status, answer) = crate::topology::admin_post(&members[1], "/admin/v1/bootstrap", body.to_string().as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    for node in &mut members {
        node.wait_ready();
    }
    let topology = topology_of(&members[3]);
    assert_eq!(topology.generation, 1);
    assert_eq!(topology.sets().map(|(_, s)| s.drives.len()).collect::<Vec<_>>(), vec![4, 4], "the sets as given");
    // A retried bootstrap is answered with the same topology; another one is refused.
    let (status, _) = crate::topology::admin_post(&members[0], "/admin/v1/bootstrap", body.to_string().as_bytes());
    assert_eq!(status, 200, "a retry of the same bootstrap");
    let other = serde_json::json!({ "pools": [{ "name": "other", "sets": [[sets[1][0], sets[1][1], sets[1][2], sets[0][3]]] }] });
    let (status, _) = crate::topology::admin_post(&members[0], "/admin/v1/bootstrap", other.to_string().as_bytes());
    assert_eq!(status, 409);

    let s3 = members[0].client();
    s3.create_bucket().bucket("grow").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> =
        (0..600).map(|n| (format!("g{n:04}"), data(300 + (n * 7919) % 3000, n as u64))).collect();
    let clients: Vec<aws_sdk_s3::Client> = members.iter().map(|n| n.client()).collect();
    futures::stream::iter(objects.iter().enumerate().map(|(n, (key, bytes))| {
        let s3 = clients[n % 4].clone();
        async move {
            s3.put_object().bucket("grow").key(key).body(ByteStream::from(bytes.clone())).send().await.unwrap();
        }
    }))
    .buffer_unordered(8)
    .collect::<Vec<()>>()
    .await;

    // Four new member nodes with one drive each join as a third set.
    let mut joining = Node::start_members(44, 4, 1);
    for node in &joining {
        wait_until("the new member answers probes", Duration::from_secs(20), || {
            node.admin_status("/health/live") == 200
        });
    }
    let drives: Vec<String> = joining.iter().map(|n| n.drive_url(1)).collect();
    let args: Vec<&str> = ["add-set", "--pool", "fast"].into_iter().chain(drives.iter().map(String::as_str)).collect();
    let shown = admin_ok(&members[2], &args);
    assert!(shown.contains("generation 2"), "{shown}");
    for node in &mut joining {
        node.wait_ready();
    }
    for node in members.iter().chain(&joining) {
        wait_until("every node serves generation 2", Duration::from_secs(20), || topology_of(node).generation == 2);
    }
    wait_until("the migration completes", Duration::from_secs(120), || {
        serde_json::from_str::<MigrationStatus>(&admin_ok(&members[0], &["migration", "status", "--json"]))
            .is_ok_and(|s| s.state == MigrationState::Done)
    });
    // Capacity per set: every drive answers, and the stored bytes hold every object
    // with its parity (2 data + 2 parity: twice the object bytes at least).
    let (status, body) = admin_get(&members[0], "/admin/v1/capacity", ACCESS_KEY, SECRET_KEY);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let capacity: buckets_api::wire::Capacity = serde_json::from_slice(&body).unwrap();
    assert_eq!(capacity.sets.len(), 3);
    for set in &capacity.sets {
        assert_eq!((set.drives_online, set.data_shards, set.parity_shards), (4, 2, 2), "{set:?}");
        assert!(set.total_bytes >= set.free_bytes && set.min_free_bytes > 0, "{set:?}");
        assert!(set.stored_bytes > 0, "{set:?}");
    }
    let object_bytes: u64 = objects.iter().map(|(_, b)| b.len() as u64).sum();
    let stored: u64 = capacity.sets.iter().map(|s| s.stored_bytes).sum();
    assert!(stored >= 2 * object_bytes, "stored {stored} for {object_bytes} object bytes");

    // Every object reads back through a joined node, and one written there reads back
    // through an old one.
    let newcomer = joining[1].client();
    for (key, bytes) in &objects {
        assert_eq!(&get_bytes(&newcomer, "grow", key).await, bytes, "{key} through a joined node");
    }
    newcomer
        .put_object()
        .bucket("grow")
        .key("from-newcomer")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&clients[3], "grow", "from-newcomer").await, b"hello");
    let moved = joining
        .iter()
        .flat_map(|n| crate::harness::files_under(&n.drive(0)))
        .filter(|f| f.file_name().is_some_and(|name| name == "%meta"))
        .count();
    assert!(moved > 0, "objects moved onto the new set's drives");

    // kill -9 a joined node and an original one; both come back from their drives.
    joining[2].kill();
    members[1].kill();
    joining[2].launch();
    members[1].launch();
    joining[2].wait_ready();
    members[1].wait_ready();
    let back = joining[2].client();
    for (key, bytes) in objects.iter().step_by(7) {
        assert_eq!(&get_bytes(&back, "grow", key).await, bytes, "{key} after restarts");
    }
    assert_eq!(topology_of(&members[1]).generation, 2);
}
