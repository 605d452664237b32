use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, MetadataDirective};
use base64::Engine;

use crate::harness::{Node, data, get_bytes, md5_hex, raw_request};

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(error: &E) -> String {
    error.code().unwrap_or("<none>").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn objects_of_every_size_round_trip() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("sizes").send().await.unwrap();
    let block = 1024 * 1024;
    let sizes = [0, 1, 63, 64, 1000, 128 * 1024, 128 * 1024 + 1, block - 1, block, block + 1, 3 * block + 12345];
    for (index, size) in sizes.into_iter().enumerate() {
        let body = data(size, index as u64);
        let key = format!("size/{size}");
        let put = s3.put_object().bucket("sizes").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        assert_eq!(put.e_tag().unwrap(), format!("\"{}\"", md5_hex(&body)), "etag of {size}");
        let head = s3.head_object().bucket("sizes").key(&key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(size as i64), "HEAD length of {size}");
        assert_eq!(head.e_tag(), put.e_tag());
        let got = get_bytes(&s3, "sizes", &key).await;
        assert!(got == body, "body of {size} differs");
    }

    // Ranges inside one block, across shard-block boundaries, suffix, open-ended.
    let size = 3 * block + 12345;
    let body = data(size, 10);
    let key = format!("size/{size}");
    for (range, start, end) in [
        ("bytes=0-0", 0, 1),
        ("bytes=100-200", 100, 201),
        (&*format!("bytes={}-{}", block - 10, block + 10), block - 10, block + 11),
        (&*format!("bytes={}-{}", block / 2, 2 * block + 7), block / 2, 2 * block + 8),
        ("bytes=-500", size - 500, size),
        (&*format!("bytes={}-", 3 * block), 3 * block, size),
    ] {
        let response = s3.get_object().bucket("sizes").key(&key).range(range).send().await.unwrap();
        assert_eq!(response.content_length(), Some((end - start) as i64), "{range}");
        assert_eq!(response.content_range(), Some(format!("bytes {}-{}/{}", start, end - 1, size).as_str()));
        let got = response.body.collect().await.unwrap().into_bytes();
        assert!(got[..] == body[start..end], "range {range}");
    }
    let unsatisfiable =
        s3.get_object().bucket("sizes").key(&key).range(format!("bytes={size}-")).send().await.unwrap_err();
    assert_eq!(code(&unsatisfiable.into_service_error()), "InvalidRange");

    let missing = s3.get_object().bucket("sizes").key("nope").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&missing), "NoSuchKey");
    let missing = s3.head_object().bucket("sizes").key("nope").send().await.unwrap_err();
    assert_eq!(missing.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_conditions_and_overrides() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("meta").send().await.unwrap();
    let put = s3
        .put_object()
        .bucket("meta")
        .key("doc.txt")
        .body(ByteStream::from_static(b"hello world"))
        .content_type("text/plain")
        .content_encoding("identity")
        .content_disposition("attachment; filename=\"doc.txt\"")
        .content_language("en")
        .cache_control("max-age=60")
        .expires(aws_smithy_types::DateTime::from_secs(2_000_000_000))
        .metadata("color", "blue")
        .metadata("Mixed-Case", "Value With Spaces")
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();
    let head = s3.head_object().bucket("meta").key("doc.txt").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.content_encoding(), Some("identity"));
    assert_eq!(head.content_disposition(), Some("attachment; filename=\"doc.txt\""));
    assert_eq!(head.content_language(), Some("en"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(head.expires_string(), Some("Wed, 18 May 2033 03:33:20 GMT"));
    let metadata = head.metadata().unwrap();
    assert_eq!(metadata.get("color").map(String::as_str), Some("blue"));
    assert_eq!(metadata.get("mixed-case").map(String::as_str), Some("Value With Spaces"));
    let modified = head.last_modified().unwrap().to_owned();

    // Conditional GETs.
    let ok = s3.get_object().bucket("meta").key("doc.txt").if_match(&etag).send().await;
    assert!(ok.is_ok());
    let failed = s3.get_object().bucket("meta").key("doc.txt").if_match("\"nope\"").send().await.unwrap_err();
    assert_eq!(failed.raw_response().map(|r| r.status().as_u16()), Some(412));
    let not_modified = s3.get_object().bucket("meta").key("doc.txt").if_none_match(&etag).send().await.unwrap_err();
    assert_eq!(not_modified.raw_response().map(|r| r.status().as_u16()), Some(304));
    let not_modified =
        s3.get_object().bucket("meta").key("doc.txt").if_modified_since(modified).send().await.unwrap_err();
    assert_eq!(not_modified.raw_response().map(|r| r.status().as_u16()), Some(304));
    let earlier = aws_smithy_types::DateTime::from_secs(modified.secs() - 3600);
    assert!(s3.get_object().bucket("meta").key("doc.txt").if_modified_since(earlier).send().await.is_ok());
    let failed = s3.get_object().bucket("meta").key("doc.txt").if_unmodified_since(earlier).send().await.unwrap_err();
    assert_eq!(failed.raw_response().map(|r| r.status().as_u16()), Some(412));

    // response-* overrides.
    let response = s3
        .get_object()
        .bucket("meta")
        .key("doc.txt")
        .response_content_type("application/x-override")
        .response_content_disposition("inline")
        .response_cache_control("no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(response.content_type(), Some("application/x-override"));
    assert_eq!(response.content_disposition(), Some("inline"));
    assert_eq!(response.cache_control(), Some("no-cache"));

    // Conditional PUT: If-None-Match "*" refuses to overwrite.
    let refused = s3
        .put_object()
        .bucket("meta")
        .key("doc.txt")
        .if_none_match("*")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(refused.unwrap_err().raw_response().map(|r| r.status().as_u16()), Some(412));
    assert_eq!(get_bytes(&s3, "meta", "doc.txt").await, b"hello world");

    // User metadata beyond 2 KB.
    let too_large = s3
        .put_object()
        .bucket("meta")
        .key("big-meta")
        .metadata("a", "x".repeat(2100))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&too_large), "MetadataTooLarge");
}

#[tokio::test(flavor = "multi_thread")]
async fn checksums_and_content_md5() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("sums").send().await.unwrap();
    let body = data(300_000, 3);
    for algorithm in
        [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32C, ChecksumAlgorithm::Sha1, ChecksumAlgorithm::Sha256]
    {
        let key = format!("with-{}", algorithm.as_str());
        let put = s3
            .put_object()
            .bucket("sums")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let sent = [put.checksum_crc32(), put.checksum_crc32_c(), put.checksum_sha1(), put.checksum_sha256()];
        assert_eq!(sent.iter().flatten().count(), 1, "{algorithm:?}: one checksum answered");
        let got = s3.get_object().bucket("sums").key(&key).checksum_mode(ChecksumMode::Enabled).send().await.unwrap();
        let returned = [got.checksum_crc32(), got.checksum_crc32_c(), got.checksum_sha1(), got.checksum_sha256()];
        assert_eq!(sent, returned, "{algorithm:?} returned on GET");
        assert!(got.body.collect().await.unwrap().into_bytes()[..] == body[..]);
    }

    // A wrong checksum value is refused and nothing is stored.
    let wrong = s3
        .put_object()
        .bucket("sums")
        .key("wrong-crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&wrong), "BadDigest");
    let missing = s3.head_object().bucket("sums").key("wrong-crc").send().await;
    assert!(missing.is_err());

    // Content-MD5: right, wrong, malformed.
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5_digest(&body));
    s3.put_object()
        .bucket("sums")
        .key("md5-ok")
        .content_md5(md5)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let other = base64::engine::general_purpose::STANDARD.encode([0u8; 16]);
    let bad = s3
        .put_object()
        .bucket("sums")
        .key("md5-bad")
        .content_md5(other)
        .body(ByteStream::from(body.clone()))
        .send()
        .await;
    assert_eq!(code(&bad.unwrap_err().into_service_error()), "BadDigest");
    let malformed = s3
        .put_object()
        .bucket("sums")
        .key("md5-bad")
        .content_md5("not base64!")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(&malformed.unwrap_err().into_service_error()), "InvalidDigest");
}

fn md5_digest(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(bytes).into()
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_object_directives_and_conditions() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("src").send().await.unwrap();
    s3.create_bucket().bucket("dst").send().await.unwrap();
    let body = data(2 * 1024 * 1024 + 5, 7);
    let put = s3
        .put_object()
        .bucket("src")
        .key("original")
        .content_type("image/png")
        .metadata("k", "v")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();

    let copied = s3.copy_object().bucket("dst").key("copy").copy_source("src/original").send().await.unwrap();
    assert_eq!(copied.copy_object_result().unwrap().e_tag(), Some(etag.as_str()));
    let head = s3.head_object().bucket("dst").key("copy").send().await.unwrap();
    assert_eq!(head.content_type(), Some("image/png"));
    assert_eq!(head.metadata().unwrap().get("k").map(String::as_str), Some("v"));
    assert!(get_bytes(&s3, "dst", "copy").await == body);

    s3.copy_object()
        .bucket("dst")
        .key("replaced")
        .copy_source("src/original")
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("new", "1")
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("dst").key("replaced").send().await.unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    let metadata = head.metadata().unwrap();
    assert_eq!(metadata.get("new").map(String::as_str), Some("1"));
    assert!(!metadata.contains_key("k"));

    // Copy onto itself: refused without REPLACE, allowed with it.
    let itself = s3.copy_object().bucket("src").key("original").copy_source("src/original").send().await.unwrap_err();
    assert_eq!(code(&itself.into_service_error()), "InvalidRequest");
    s3.copy_object()
        .bucket("src")
        .key("original")
        .copy_source("src/original")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("k", "changed")
        .send()
        .await
        .unwrap();
    let head = s3.head_object().bucket("src").key("original").send().await.unwrap();
    assert_eq!(head.metadata().unwrap().get("k").map(String::as_str), Some("changed"));
    assert!(get_bytes(&s3, "src", "original").await == body);

    // Copy-source conditions.
    let failed = s3
        .copy_object()
        .bucket("dst")
        .key("c2")
        .copy_source("src/original")
        .copy_source_if_match("\"bad\"")
        .send()
        .await;
    assert_eq!(failed.unwrap_err().raw_response().map(|r| r.status().as_u16()), Some(412));
    let failed = s3
        .copy_object()
        .bucket("dst")
        .key("c2")
        .copy_source("src/original")
        .copy_source_if_none_match(&etag)
        .send()
        .await;
    assert_eq!(failed.unwrap_err().raw_response().map(|r| r.status().as_u16()), Some(412));
    assert!(
        s3.copy_object()
            .bucket("dst")
            .key("c2")
            .copy_source("src/original")
            .copy_source_if_match(&etag)
            .send()
            .await
            .is_ok()
    );
    let missing = s3.copy_object().bucket("dst").key("c3").copy_source("src/none").send().await.unwrap_err();
    assert_eq!(code(&missing.into_service_error()), "NoSuchKey");
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_100_continue_is_answered_at_once() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("cont").send().await.unwrap();
    let presigned = s3
        .put_object()
        .bucket("cont")
        .key("expect")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    let path = uri.path_and_query().unwrap().as_str().to_string();
    let body = data(200_000, 1);
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", node.s3_port)).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    use std::io::Write;
    write!(
        stream,
        "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        node.s3_port,
        body.len()
    )
    .unwrap();
    // The interim response must come before we send a single body byte.
    let mut interim = [0u8; 25];
    use std::io::Read;
    stream.read_exact(&mut interim).unwrap();
    assert!(interim.starts_with(b"HTTP/1.1 100 Continue"), "{}", String::from_utf8_lossy(&interim));
    stream.write_all(&body).unwrap();
    let (status, _, _) = crate::harness::read_response(&mut stream).unwrap();
    assert_eq!(status, 200);
    assert!(get_bytes(&s3, "cont", "expect").await == body);
}

#[tokio::test(flavor = "multi_thread")]
async fn virtual_hosted_style_requests() {
    let node = Node::start_with_env(4, &[("BUCKETS_DOMAIN", "s3.buckets.test")]);
    let s3 = node.client();
    s3.create_bucket().bucket("vhost").send().await.unwrap();
    s3.put_object().bucket("vhost").key("dir/file").body(ByteStream::from_static(b"virtual")).send().await.unwrap();
    // Sign for the virtual host name, then send the request to our loopback port.
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(format!("http://s3.buckets.test:{}", node.s3_port))
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            crate::harness::ACCESS_KEY,
            crate::harness::SECRET_KEY,
            None,
            None,
            "test",
        ))
        .build();
    let virtual_client = aws_sdk_s3::Client::from_conf(config);
    let presigned = virtual_client
        .get_object()
        .bucket("vhost")
        .key("dir/file")
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    assert_eq!(uri.host(), Some("vhost.s3.buckets.test"));
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: vhost.s3.buckets.test:{}\r\nConnection: close\r\n\r\n",
        uri.path_and_query().unwrap(),
        node.s3_port
    );
    let (status, _, body) = raw_request(node.s3_port, request.as_bytes()).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body, b"virtual");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_input_gets_s3_errors() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("bad").send().await.unwrap();

    // Oversized headers (the limit is 64 KiB): answered 431, and the server keeps serving.
    let huge = "a".repeat(80 * 1024);
    let request = format!("GET /bad/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Huge: {huge}\r\nConnection: close\r\n\r\n");
    let (status, _, _) = raw_request(node.s3_port, request.as_bytes()).expect("an answer, not a dropped connection");
    assert_eq!(status, 431);

    // Keys: too long, and a NUL (refused, and nothing stored under the part before it).
    let long = s3.put_object().bucket("bad").key("k".repeat(1025)).body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(code(&long.unwrap_err().into_service_error()), "KeyTooLongError");
    let nul = s3.put_object().bucket("bad").key("a\0b").body(ByteStream::from_static(b"x")).send().await.unwrap_err();
    assert_eq!(nul.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(code(&nul.into_service_error()), "InvalidArgument");
    let listed = s3.list_objects_v2().bucket("bad").send().await.unwrap();
    assert!(listed.contents().is_empty(), "{:?}", listed.contents());

    // Malformed XML in a DeleteObjects body, signed correctly: the body is swapped before
    // the SDK signs the request.
    let garbage = "<Delete><Object><Key>x</Key></Obj";
    let error = s3
        .delete_objects()
        .bucket("bad")
        .delete(
            aws_sdk_s3::types::Delete::builder()
                .objects(aws_sdk_s3::types::ObjectIdentifier::builder().key("x").build().unwrap())
                .build()
                .unwrap(),
        )
        .customize()
        .mutate_request(move |request| {
            *request.body_mut() = aws_smithy_types::body::SdkBody::from(garbage);
            request.headers_mut().insert("content-length", garbage.len().to_string());
            request.headers_mut().remove("content-md5");
        })
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(code(&error.into_service_error()), "MalformedXML");

    // Still alive and nothing was written outside the drives.
    s3.head_bucket().bucket("bad").send().await.unwrap();
    let outside: Vec<_> = std::fs::read_dir(node.root.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    let mut names: Vec<String> = outside.iter().map(|n| n.to_string_lossy().to_string()).collect();
    names.sort();
    assert_eq!(names, vec!["d1", "d2", "d3", "d4", "node.log"]);
}
