//! Users on a 4-node cluster: made through one node with `buckets-admin`, their keys and
//! policies honoured by every node, a disabled user and a removed key refused by every
//! node within a second, and changes made through any node.

use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;

use crate::harness::{Node, admin_cli};

const ENV: &[(&str, &str)] = &[("BUCKETS_DRIVE_CHECK_SECS", "1")];

fn cli_json(node: &Node, args: &[&str]) -> serde_json::Value {
    let output = admin_cli(node, args);
    assert!(output.status.success(), "buckets-admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
}

fn ok(node: &Node, args: &[&str]) {
    let output = admin_cli(node, args);
    assert!(output.status.success(), "buckets-admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

async fn lists(client: &aws_sdk_s3::Client) -> Result<(), String> {
    match client.list_objects_v2().bucket("team").send().await {
        Ok(_) => Ok(()),
        Err(e) => Err(e.into_service_error().meta().code().unwrap_or("none").to_string()),
    }
}

/// Waits until every client's listing fails with `code`; how long the slowest took.
async fn refused_everywhere(clients: &[aws_sdk_s3::Client], code: &str) -> Duration {
    let started = Instant::now();
    for client in clients {
        loop {
            if lists(client).await.err().as_deref() == Some(code) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "a node still accepts the key after 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_made_on_one_node_are_honoured_and_revoked_on_every_node() {
    let cluster = Node::start_cluster(4, 4, ENV);
    cluster[0].client().create_bucket().bucket("team").send().await.unwrap();
    cluster[0]
        .client()
        .put_object()
        .bucket("team")
        .key("plan.txt")
        .body(ByteStream::from_static(b"plan"))
        .send()
        .await
        .unwrap();

    ok(&cluster[1], &["user", "add", "app"]);
    ok(&cluster[2], &["policy", "attach", "readonly", "--user", "app"]);
    let key = cli_json(&cluster[3], &["key", "create", "app", "--json"]);
    let (access, secret) = (key["accessKey"].as_str().unwrap(), key["secretKey"].as_str().unwrap());
    let clients: Vec<_> = cluster.iter().map(|node| node.client_with(access, secret)).collect();

    // Within a second every node knows the user: it reads, and may not write.
    let started = Instant::now();
    for client in &clients {
        while lists(client).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(1), "a node does not know the new key after 1 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = client.get_object().bucket("team").key("plan.txt").send().await.unwrap().body.collect().await;
        assert_eq!(body.unwrap().into_bytes().as_ref(), b"plan");
        let write = client.put_object().bucket("team").key("x").body(ByteStream::from_static(b"x")).send().await;
        assert_eq!(write.unwrap_err().into_service_error().meta().code(), Some("AccessDenied"));
    }

    // Disabled through one node: refused by all within a second; enabled again: accepted.
    ok(&cluster[2], &["user", "disable", "app"]);
    let took = refused_everywhere(&clients, "InvalidAccessKeyId").await;
    eprintln!("disabled user refused by every node after {took:?}");
    ok(&cluster[0], &["user", "enable", "app"]);
    for client in &clients {
        let started = Instant::now();
        while lists(client).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(1), "a node still refuses the enabled user");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // A node that was down during a change knows it when it is back.
    let mut cluster = cluster;
    cluster[3].kill();
    ok(&cluster[1], &["policy", "detach", "readonly", "--user", "app"]);
    cluster[3].launch();
    cluster[3].wait_ready();
    let back = cluster[3].client_with(access, secret);
    assert_eq!(lists(&back).await.err().as_deref(), Some("AccessDenied"));

    // The key removed through another node: refused by all within a second.
    ok(&cluster[3], &["policy", "attach", "readonly", "--user", "app"]);
    ok(&cluster[0], &["key", "remove", access]);
    let clients: Vec<_> = cluster.iter().map(|node| node.client_with(access, secret)).collect();
    let took = refused_everywhere(&clients, "InvalidAccessKeyId").await;
    eprintln!("removed key refused by every node after {took:?}");
}
