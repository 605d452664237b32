//! Four node processes on 127.0.0.2–127.0.0.5, four drives each, one erasure set spread
//! over all of them, reached through peer RPC.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::harness::{
    CLUSTER_SECRET, Node, RawResponse, complete_upload, data, files_under, get_bytes, raw_request_on, upload_part,
    wait_until,
};

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
    // Deleted through one node, gone through every node: NoSuchKey, not some error.
    let deleted: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).chain(["mpu", "copied"]).collect();
    for client in &clients {
        for key in &deleted {
            let error = client.get_object().bucket("shared").key(*key).send().await.unwrap_err();
            assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(404), "{key}");
            assert!(error.into_service_error().is_no_such_key(), "{key}");
        }
    }
    clients[2].delete_bucket().bucket("shared").send().await.unwrap();
    for client in &clients {
        let error = client.head_bucket().bucket("shared").send().await.unwrap_err();
        assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(404));
        let error = client.get_object().bucket("shared").key("mpu").send().await.unwrap_err();
        assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&error.into_service_error()), Some("NoSuchBucket"));
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

/// `request` (a captured HTTP request) with its `x-buckets-auth` header replaced by
/// `auth` (removed with `None`) and its body by `body`, sent to `node`'s admin listener:
/// (status, headers, body).
fn send_call(node: &Node, request: &[u8], auth: Option<&str>, body: &[u8]) -> RawResponse {
    let head_length = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&request[..head_length - 4]).to_string();
    let mut lines: Vec<String> = head
        .split("\r\n")
        .filter(|l| {
            let name = l.split(':').next().unwrap_or_default().to_ascii_lowercase();
            !["x-buckets-auth", "content-length", "connection"].contains(&name.as_str())
        })
        .map(str::to_string)
        .collect();
    if let Some(auth) = auth {
        lines.push(format!("x-buckets-auth: {auth}"));
    }
    lines.push(format!("content-length: {}", body.len()));
    lines.push("connection: close".into());
    let mut bytes = format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes();
    bytes.extend_from_slice(body);
    raw_request_on(&node.ip, node.admin_port, &bytes).unwrap()
}

fn auth_of(request: &[u8]) -> String {
    let head = String::from_utf8_lossy(request);
    head.lines().find_map(|l| l.strip_prefix("x-buckets-auth: ")).unwrap().trim().to_string()
}

fn body_of(request: &[u8]) -> Vec<u8> {
    request[request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..].to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn peer_rpc_refuses_replayed_altered_and_foreign_calls() {
    use buckets_node::rpc::auth::PeerKey;
    use buckets_node::rpc::protocol::{DriveCall, decode_batch, decode_request, encode_request};
    // Peers reach node 1 through a relay that captures what they send it.
    let (cluster, relays) = Node::start_cluster_relayed(4, 4, ENV, None, &[1]);
    let (node, relay) = (&cluster[1], &relays[0]);
    let client = cluster[0].client();
    client.create_bucket().bucket("wire").send().await.unwrap();
    let body = data(300_000, 9);
    client.put_object().bucket("wire").key("k").body(ByteStream::from(body.clone())).send().await.unwrap();

    // A shard write node 0 sent node 1 for that PUT (alone or in a batch of calls),
    // captured on the wire, and the path of a single call to that drive.
    let is_shard_write = |request: &[u8]| {
        matches!(
            decode_request(request),
            Ok((DriveCall::WriteShard { offset: 0, .. } | DriveCall::WriteShardSynced { offset: 0, .. }, _))
        )
    };
    let (captured, single_path) = relay
        .captured_requests()
        .into_iter()
        .find_map(|r| {
            let body = bytes::Bytes::from(body_of(&r));
            let path = String::from_utf8_lossy(&r).split(' ').nth(1)?.to_string();
            if path == "/rpc/v1/drives" {
                let (drive, _) = decode_batch(&body).ok()?.into_iter().find(|(_, request)| is_shard_write(request))?;
                Some((r, buckets_node::rpc::batch::drive_call_path(&drive)))
            } else {
                (path.starts_with("/rpc/v1/drive?") && is_shard_write(&body)).then_some((r, path))
            }
        })
        .expect("node 0 wrote shards to node 1 through the relay");
    let refused = |reason: &str| node.metric(&format!("buckets_rpc_refused_calls_total{{reason=\"{reason}\"}}"));
    let (replayed_before, forged_before) = (refused("replayed"), refused("forged"));

    // Replayed as it was: refused, counted, logged.
    let (status, _, answer) = send_call(node, &captured, Some(&auth_of(&captured)), &body_of(&captured));
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("replay"), "{}", String::from_utf8_lossy(&answer));
    assert_eq!(refused("replayed"), replayed_before + 1.0);
    wait_until("the refusal is logged", Duration::from_secs(5), || {
        node.log().lines().any(|l| l.contains("refused a peer RPC call") && l.contains("replayed"))
    });

    // Replayed with another body (its last payload byte changed): refused as forged.
    let mut altered = body_of(&captured);
    *altered.last_mut().unwrap() ^= 0xff;
    let (status, _, _) = send_call(node, &captured, Some(&auth_of(&captured)), &altered);
    assert_eq!(status, 403);
    assert_eq!(refused("forged"), forged_before + 1.0);

    // The same call signed by another cluster, unsigned, or with a garbage signature.
    let path = {
        let head = String::from_utf8_lossy(&captured);
        head.split(' ').nth(1).unwrap().to_string()
    };
    let now = buckets_node::clock::unix_now();
    let (foreign, _) = PeerKey::new(b"another-cluster").sign("POST", &relay.authority(), &path, &altered, now);
    for auth in [Some(foreign.as_str()), None, Some("2:0:00:1:00")] {
        let (status, _, _) = send_call(node, &captured, auth, &altered);
        assert_eq!(status, 403, "{auth:?}");
    }
    assert_eq!(refused("forged"), forged_before + 2.0);
    assert_eq!(refused("unsigned"), 1.0);
    assert_eq!(refused("malformed"), 1.0);

    // A fresh call with the cluster's secret is answered, and its answer is signed; the
    // same call sent to another node (whose authority it does not name) is refused.
    let list = encode_request(&DriveCall::ListBuckets, b"");
    let single = {
        let head = String::from_utf8_lossy(&captured).replacen(&path, &single_path, 1);
        head.into_bytes()
    };
    let secret = PeerKey::new(CLUSTER_SECRET.as_bytes());
    let (signed, _) = secret.sign("POST", &relay.authority(), &single_path, &list, now);
    let (status, headers, _) = send_call(node, &single, Some(&signed), &list);
    assert_eq!(status, 200);
    assert!(headers.iter().any(|(name, _)| name == "x-buckets-answer-auth"), "{headers:?}");
    let (status, _, _) = send_call(&cluster[2], &single, Some(&signed), &list);
    assert_eq!(status, 403);

    // None of it disturbed the cluster: the object reads back through every node.
    for peer in &cluster {
        assert!(get_bytes(&peer.client(), "wire", "k").await == body);
    }
    assert_eq!(refused("replayed"), replayed_before + 1.0, "normal traffic was never refused");
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

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_while_a_node_is_down_stays_deleted_when_it_returns() {
    // Four nodes of one drive: one 2+2 set, write quorum 3.
    let mut cluster = Node::start_cluster(4, 1, ENV);
    let client = cluster[0].client();
    client.create_bucket().bucket("gone").send().await.unwrap();
    for (key, size) in [("small", 1000), ("large", 400_000)] {
        client.put_object().bucket("gone").key(key).body(ByteStream::from(data(size, 3))).send().await.unwrap();
    }
    // Node 3 is killed and misses the deletes: its drive keeps both objects.
    cluster[3].kill();
    let not_found = async |node: &Node, key: &str| {
        let error = node.client().get_object().bucket("gone").key(key).send().await.unwrap_err();
        let status = error.raw_response().map(|r| r.status().as_u16());
        (status, error.into_service_error().is_no_such_key())
    };
    for key in ["small", "large"] {
        client.delete_object().bucket("gone").key(key).send().await.unwrap();
        assert_eq!(not_found(&cluster[1], key).await, (Some(404), true), "{key} deleted");
    }
    // Back with its stale copies: they are outvoted (the objects stay deleted, neither
    // back nor "lost"), and the healer removes copies and tombstones alike.
    cluster[3].spawn();
    for node in &cluster {
        wait_until("every node sees every drive", Duration::from_secs(30), || {
            node.metric("buckets_drives_online") >= 4.0
        });
    }
    for node in &cluster {
        for key in ["small", "large"] {
            assert_eq!(not_found(node, key).await, (Some(404), true), "{key} after node 3 returned");
        }
    }
    wait_until("the stale copies and the tombstones are removed", Duration::from_secs(60), || {
        cluster.iter().all(|n| files_under(&n.drive(0).join("gone")).iter().all(|f| !f.ends_with("%meta")))
    });
    assert!(client.list_objects_v2().bucket("gone").send().await.unwrap().contents().is_empty());
    client.delete_bucket().bucket("gone").send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn create_only_writes_racing_through_different_nodes_let_exactly_one_win() {
    let cluster = Node::start_cluster(4, 4, ENV);
    let clients: Vec<_> = cluster.iter().map(Node::client).collect();
    clients[0].create_bucket().bucket("race").send().await.unwrap();
    for round in 0..4 {
        let key = format!("claim-{round}");
        let winner = crate::harness::race_create_only(&clients, "race", &key, 300_000).await;
        for client in &clients {
            assert!(
                get_bytes(client, "race", &key).await == vec![winner; 300_000],
                "round {round}: the winner's bytes"
            );
        }
    }
}

/// The small drive calls a node sends a peer at once travel in one request
/// (`buckets_rpc_drive_batches_total`), and every call gets its own answer: objects
/// written through one node are read whole through the other, a missing key is 404,
/// deletes and listings see exactly what is left. Against peers that answer batches as
/// an earlier version does (unknown), the same holds with every call sent alone.
#[tokio::test(flavor = "multi_thread")]
async fn small_calls_to_a_peer_travel_together_and_each_gets_its_own_answer() {
    for refused in [false, true] {
        let env = if refused { vec![ENV[0], ("BUCKETS_PEER_REFUSES", "Batch")] } else { ENV.to_vec() };
        let cluster = Node::start_cluster(2, 4, &env);
        let (writer, reader) = (cluster[0].client(), cluster[1].client());
        writer.create_bucket().bucket("batched").send().await.unwrap();
        let objects: Vec<(String, Vec<u8>)> =
            (0..40).map(|n| (format!("k{n:02}"), data(if n % 2 == 0 { 700 } else { 300_000 }, n as u64))).collect();
        let puts = objects.iter().map(|(key, body)| {
            writer.put_object().bucket("batched").key(key).body(ByteStream::from(body.clone())).send()
        });
        for result in futures::future::join_all(puts).await {
            result.unwrap();
        }
        for (key, body) in &objects {
            assert!(&get_bytes(&reader, "batched", key).await == body, "{key} (batches refused: {refused})");
        }
        let missing = reader.head_object().bucket("batched").key("k99").send().await.unwrap_err();
        assert_eq!(missing.raw_response().map(|r| r.status().as_u16()), Some(404));
        let deletes =
            objects.iter().step_by(3).map(|(key, _)| reader.delete_object().bucket("batched").key(key).send());
        for result in futures::future::join_all(deletes).await {
            result.unwrap();
        }
        let listed: Vec<String> = writer
            .list_objects_v2()
            .bucket("batched")
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .filter_map(|o| o.key().map(String::from))
            .collect();
        let left: Vec<String> =
            objects.iter().enumerate().filter(|(n, _)| n % 3 != 0).map(|(_, (key, _))| key.clone()).collect();
        assert_eq!(listed, left, "batches refused: {refused}");
        let batched: f64 = cluster.iter().map(|n| n.metric("buckets_rpc_drive_calls_total{request=\"batched\"}")).sum();
        let batches: f64 = cluster.iter().map(|n| n.metric("buckets_rpc_drive_batches_total")).sum();
        if refused {
            assert_eq!((batched, batches), (0.0, 0.0), "a peer that refuses batches was sent none it served");
        } else {
            assert!(batches > 0.0 && batched >= 2.0 * batches, "{batched} calls in {batches} batches");
        }
    }
}
