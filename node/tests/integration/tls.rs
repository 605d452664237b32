//! HTTPS with certificates made by rcgen: S3 and admin on one node, and a cluster whose
//! peer RPC runs over TLS verified against the CA.

use aws_sdk_s3::primitives::ByteStream;

use crate::harness::{Node, data, get_bytes, make_certs, raw_request_on};

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_certificates_serves_https_only() {
    let certs = tempfile::tempdir().unwrap();
    let ca = make_certs(certs.path());
    let certs_dir = certs.path().display().to_string();
    let node = Node::start_with_env(4, &[("BUCKETS_CERTS_DIR", certs_dir.as_str())]);
    assert_eq!(node.ca_pem.as_deref(), Some(ca.as_str()));
    let s3 = node.client();
    s3.create_bucket().bucket("secure").send().await.unwrap();
    let body = data(500_000, 9);
    s3.put_object().bucket("secure").key("k").body(ByteStream::from(body.clone())).send().await.unwrap();
    assert!(get_bytes(&s3, "secure", "k").await == body);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = raw_request_on("127.0.0.1", node.s3_port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(!matches!(plain, Ok((200, _, _))), "plain HTTP must not be served: {plain:?}");
    // A client that does not trust the CA refuses the server.
    let other_certs = tempfile::tempdir().unwrap();
    let other_ca = make_certs(other_certs.path());
    let mut stranger = node.detached();
    stranger.ca_pem = Some(other_ca);
    assert!(stranger.client().list_buckets().send().await.is_err());
    assert!(node.metric("buckets_drives_online") >= 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_talks_to_itself_over_verified_tls() {
    let certs = tempfile::tempdir().unwrap();
    let ca = make_certs(certs.path());
    let cluster = Node::start_cluster_with(4, 4, &[("BUCKETS_DRIVE_CHECK_SECS", "1")], Some((certs.path(), &ca)));
    let first = cluster[0].client();
    let last = cluster[3].client();
    first.create_bucket().bucket("tls-cluster").send().await.unwrap();
    let body = data(3_000_000, 4);
    first.put_object().bucket("tls-cluster").key("object").body(ByteStream::from(body.clone())).send().await.unwrap();
    assert!(get_bytes(&last, "tls-cluster", "object").await == body);
}
