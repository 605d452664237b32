//! Four node processes on 127.0.0.2–127.0.0.5, four drives each, one erasure set spread
//! over all of them, reached through peer RPC.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::harness::{Node, complete_upload, data, files_under, get_bytes, raw_request_on, upload_part, wait_until};

const ENV: &[(&str, &str)] = &[("BUCKETS_DRIVE_CHECK_SECS", "1")];

#[tokio::test(flavor = "multi_thread")]
async fn every_node_serves_every_operation_of_the_cluster() {
    let cluster = Node::start_cluster(4, 4, ENV);
    let clients: Vec<_> = cluster.iter().map(Node::client).collect();
    clients[0].create_bucket().bucket("shared").send().await.unwrap();
    for client in &clients {
        client.head_bucket().bucket("shared").send().await.unwrap();
        let names: Vec<String> = client
            .list_buckets()
            .send()
            .await
            .unwrap()
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(String::from))
            .collect();
        assert_eq!(names, vec!["shared"]);
    }
    // Objects written through each node, read back through every other.
    let mut objects = Vec::new();
    for (index, client) in clients.iter().enumerate() {
        for (n, size) in [0usize, 1000, 300_000, 2_500_000].into_iter().enumerate() {
            let key = format!("from-node-{index}/object-{n}");
            let body = data(size, (index * 10 + n) as u64);
            client.put_object().bucket("shared").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
            objects.push((key, body));
        }
    }
    for client in &clients {
        for (key, body) in &objects {
            assert!(get_bytes(client, "shared", key).await == *body, "{key}");
        }
        let listed = client.list_objects_v2().bucket("shared").send().await.unwrap();
        let mut keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort();
        assert_eq!(listed.contents().iter().map(|o| o.key().unwrap()).collect::<Vec<_>>(), keys);
        let page = client.list_objects_v2().bucket("shared").delimiter("/").send().await.unwrap();
        assert_eq!(page.common_prefixes().len(), 4);
    }
    // A multipart upload created on one node, parts through two others, completed on a fourth.
    let upload_id = clients[0]
        .create_multipart_upload()
        .bucket("shared")
        .key("mpu")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let part_one = data(5 * 1024 * 1024, 1);
    let part_two = data(1234, 2);
    let first = upload_part(&clients[1], "shared", "mpu", &upload_id, 1, &part_one).await;
    let second = upload_part(&clients[2], "shared", "mpu", &upload_id, 2, &part_two).await;
    complete_upload(&clients[3], "shared", "mpu", &upload_id, &[(1, first), (2, second)]).await;
    let expected: Vec<u8> = part_one.iter().chain(part_two.iter()).copied().collect();
    assert!(get_bytes(&clients[1], "shared", "mpu").await == expected);
    // Copy through one node, delete through another.
    clients[2]
        .copy_object()
        .bucket("shared")
        .key("copied")
        .copy_source("shared/from-node-0/object-2")
        .send()
        .await
        .unwrap();
    assert!(get_bytes(&clients[0], "shared", "copied").await == objects[2].1);
    let identifiers: Vec<ObjectIdentifier> =
        objects.iter().map(|(k, _)| ObjectIdentifier::builder().key(k).build().unwrap()).collect();
    clients[3]
        .delete_objects()
        .bucket("shared")
        .delete(Delete::builder().set_objects(Some(identifiers)).build().unwrap())
        .send()
        .await
        .unwrap();
    clients[0].delete_object().bucket("shared").key("mpu").send().await.unwrap();
    clients[1].delete_object().bucket("shared").key("copied").send().await.unwrap();
    clients[2].delete_bucket().bucket("shared").send().await.unwrap();
    for client in &clients {
        assert!(client.head_bucket().bucket("shared").send().await.is_err());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_costs_nothing_and_heals_when_it_returns() {
    let mut cluster = Node::start_cluster(4, 4, ENV);
    let client = cluster[0].client();
    client.create_bucket().bucket("durable").send().await.unwrap();
    let mut objects = Vec::new();
    for n in 0..8usize {
        let key = format!("before/{n}");
        let body = data(n * 150_000 + 7, n as u64);
        client.put_object().bucket("durable").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        objects.push((key, body));
    }
    cluster[2].kill(); // kill -9
    let survivors: Vec<_> = [0, 1, 3].iter().map(|&i| cluster[i].client()).collect();
    for (index, survivor) in survivors.iter().enumerate() {
        for (key, body) in &objects {
            match survivor.get_object().bucket("durable").key(key).send().await {
                Ok(response) => assert!(response.body.collect().await.unwrap().into_bytes() == body[..], "{key}"),
                Err(e) => {
                    for node in &cluster {
                        eprintln!("=== log of {}\n{}", node.ip, node.log());
                    }
                    panic!("{key} through survivor {index} with a node down: {e:?}");
                }
            }
        }
    }
    let mut written = Vec::new();
    for (n, survivor) in survivors.iter().enumerate() {
        let key = format!("during/{n}");
        let body = data(400_000 + n, 100 + n as u64);
        survivor.put_object().bucket("durable").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        written.push((key, body));
    }
    // Back up: the node's drives receive what it missed.
    cluster[2].spawn();
    let drives: Vec<_> = (0..4).map(|d| cluster[2].drive(d)).collect();
    wait_until("the restarted node healed the objects it missed", Duration::from_secs(30), || {
        drives.iter().all(|drive| {
            let metas =
                files_under(&drive.join("durable").join("during")).into_iter().filter(|f| f.ends_with("%meta")).count();
            metas == written.len()
        })
    });
    let revived = cluster[2].client();
    for (key, body) in objects.iter().chain(written.iter()) {
        assert!(get_bytes(&revived, "durable", key).await == *body, "{key} through the revived node");
    }
}

/// Status of a ListBuckets drive call to `node` carrying `auth` (or no auth header).
fn rpc_status(node: &Node, drive: &str, auth: Option<String>) -> u16 {
    let body = b"\x01\x00\x00\x00\x09"; // a ListBuckets call
    let header = auth.map(|a| format!("x-buckets-auth: {a}\r\n")).unwrap_or_default();
    let request = format!(
        "POST /rpc/v1/drive?drive={drive} HTTP/1.1\r\nHost: {}:{}\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n",
        node.ip,
        node.admin_port,
        body.len()
    );
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    raw_request_on(&node.ip, node.admin_port, &bytes).unwrap().0
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_rpc_refuses_unauthenticated_and_wrongly_signed_calls() {
    let cluster = Node::start_cluster(4, 4, ENV);
    let node = &cluster[1];
    let drive = hex::encode(format!("{}/d1", node.root.path().display()));
    let path = format!("/rpc/v1/drive?drive={drive}");
    let now = buckets_node::rpc::unix_now();
    let forged = format!("{now}:{}", "ab".repeat(32));
    let foreign = buckets_node::rpc::sign(b"another-cluster", "POST", &path, now);
    for auth in [None, Some("0:00".to_string()), Some(forged), Some(foreign)] {
        assert_eq!(rpc_status(node, &drive, auth), 403);
    }
    // With the cluster's secret the same call is answered.
    let signed = buckets_node::rpc::sign(crate::harness::CLUSTER_SECRET.as_bytes(), "POST", &path, now);
    assert_eq!(rpc_status(node, &drive, Some(signed)), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_of_one_key_through_different_nodes_leave_one_whole_version() {
    let cluster = Node::start_cluster(4, 4, ENV);
    let clients: Vec<_> = cluster.iter().map(Node::client).collect();
    clients[0].create_bucket().bucket("race").send().await.unwrap();
    for round in 0..6u64 {
        let bodies: Vec<Vec<u8>> = (0..4).map(|n| data(200_000 + n * 1000, round * 10 + n as u64)).collect();
        let writes = clients.iter().zip(bodies.iter()).map(|(client, body)| {
            client.put_object().bucket("race").key("contended").body(ByteStream::from(body.clone())).send()
        });
        for result in futures::future::join_all(writes).await {
            result.unwrap();
        }
        // Every node reads the same, whole version: one of the bodies written.
        let mut seen = Vec::new();
        for client in &clients {
            let got = get_bytes(client, "race", "contended").await;
            assert!(bodies.contains(&got), "round {round}: a body nobody wrote");
            seen.push(got);
        }
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "round {round}: nodes disagree");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_in_progress_on_one_node_survives_an_overwrite_through_another() {
    let cluster = Node::start_cluster(4, 4, ENV);
    let (reader, writer) = (cluster[1].client(), cluster[2].client());
    reader.create_bucket().bucket("streams").send().await.unwrap();
    let original = data(12 * 1024 * 1024, 1);
    writer.put_object().bucket("streams").key("big").body(ByteStream::from(original.clone())).send().await.unwrap();
    let mut response = reader.get_object().bucket("streams").key("big").send().await.unwrap();
    let mut received = response.body.next().await.unwrap().unwrap().to_vec();
    // Replace the object through another node while the first download is under way.
    let replacement = data(3 * 1024 * 1024, 2);
    writer.put_object().bucket("streams").key("big").body(ByteStream::from(replacement.clone())).send().await.unwrap();
    while let Some(chunk) = response.body.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert!(received == original, "the download in progress finished with the version it started");
    assert!(get_bytes(&reader, "streams", "big").await == replacement);
}
