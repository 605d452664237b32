use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::harness::{Node, get_bytes, http_get, raw_request};

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_and_wrongly_signed_requests_are_refused() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("private").send().await.unwrap();
    s3.put_object().bucket("private").key("secret").body(ByteStream::from_static(b"top secret")).send().await.unwrap();

    let (status, _, body) = http_get(node.s3_port, "/private/secret").unwrap();
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("<Code>AccessDenied</Code>"));
    let (status, _, _) = http_get(node.s3_port, "/").unwrap();
    assert_eq!(status, 403);
    let request = format!(
        "PUT /private/planted HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
        node.s3_port
    );
    let (status, _, _) = raw_request(node.s3_port, request.as_bytes()).unwrap();
    assert_eq!(status, 403);

    let wrong_secret = node.client_with(crate::harness::ACCESS_KEY, "not-the-secret");
    let error =
        wrong_secret.get_object().bucket("private").key("secret").send().await.unwrap_err().into_service_error();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&error), Some("SignatureDoesNotMatch"));
    let unknown_user = node.client_with("nobody", "whatever-secret");
    let error = unknown_user.list_buckets().send().await.unwrap_err().into_service_error();
    assert!(matches!(
        aws_sdk_s3::error::ProvideErrorMetadata::code(&error),
        Some("InvalidAccessKeyId") | Some("NotSignedUp")
    ));
    // Nothing planted.
    assert!(s3.head_object().bucket("private").key("planted").send().await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn presigned_urls_work_until_they_expire() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("share").send().await.unwrap();
    s3.put_object()
        .bucket("share")
        .key("file.txt")
        .body(ByteStream::from_static(b"shared bytes"))
        .send()
        .await
        .unwrap();

    let presigned = s3
        .get_object()
        .bucket("share")
        .key("file.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    let (status, _, body) = http_get(node.s3_port, uri.path_and_query().unwrap().as_str()).unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, b"shared bytes");

    // Tampered signature.
    let original = uri.path_and_query().unwrap().as_str();
    let at = original.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let flipped = if &original[at..at + 1] == "0" { "1" } else { "0" };
    let tampered = format!("{}{}{}", &original[..at], flipped, &original[at + 1..]);
    let (status, _, _) = http_get(node.s3_port, &tampered).unwrap();
    assert_eq!(status, 403);

    // Expired: signed an hour ago, valid for a minute.
    let config = PresigningConfig::builder()
        .start_time(std::time::SystemTime::now() - Duration::from_secs(3600))
        .expires_in(Duration::from_secs(60))
        .build()
        .unwrap();
    let expired = s3.get_object().bucket("share").key("file.txt").presigned(config).await.unwrap();
    let uri: http::Uri = expired.uri().parse().unwrap();
    let (status, _, body) = http_get(node.s3_port, uri.path_and_query().unwrap().as_str()).unwrap();
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("<Code>AccessDenied</Code>"), "{}", String::from_utf8_lossy(&body));

    // Presigned PUT with an unsigned payload.
    let put = s3
        .put_object()
        .bucket("share")
        .key("uploaded")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = put.uri().parse().unwrap();
    let request = format!(
        "PUT {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        uri.path_and_query().unwrap(),
        node.s3_port
    );
    let (status, _, _) = raw_request(node.s3_port, request.as_bytes()).unwrap();
    assert_eq!(status, 200);
    let got = get_bytes(&s3, "share", "uploaded").await;
    assert_eq!(&got[..], b"hello");
}
