//! The S3 details real clients and suites trip on: conditional writes and the order of
//! GET/HEAD conditions (RFC 7232, as S3 applies it).

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, VersioningConfiguration};
use aws_smithy_types::DateTime;

use crate::harness::{Node, get_bytes};

fn status<E: std::fmt::Debug, R>(result: Result<R, SdkError<E>>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(error) => {
            error.raw_response().map(|r| r.status().as_u16()).unwrap_or_else(|| panic!("no response: {error:?}"))
        }
    }
}

fn code<E: ProvideErrorMetadata, R>(result: Result<R, SdkError<E>>) -> String {
    match result {
        Ok(_) => "<ok>".into(),
        Err(error) => ProvideErrorMetadata::code(&error).unwrap_or("<none>").to_string(),
    }
}

async fn put(s3: &Client, bucket: &str, key: &str, body: &'static [u8]) -> String {
    let out = s3.put_object().bucket(bucket).key(key).body(ByteStream::from_static(body)).send().await.unwrap();
    out.e_tag().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_writes_follow_s3() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("cond").send().await.unwrap();
    let etag = put(&s3, "cond", "k", b"first").await;

    // If-Match: replaces only the version the client saw.
    let put_if_match = |tag: &str, body: &'static [u8]| {
        s3.put_object().bucket("cond").key("k").if_match(tag).body(ByteStream::from_static(body)).send()
    };
    assert_eq!(status(put_if_match("\"0123456789abcdef0123456789abcdef\"", b"no").await), 412);
    assert_eq!(get_bytes(&s3, "cond", "k").await, b"first");
    let second = put_if_match(&etag, b"second").await.unwrap();
    assert_eq!(get_bytes(&s3, "cond", "k").await, b"second");
    // The old ETag no longer matches.
    assert_eq!(status(put_if_match(&etag, b"third").await), 412);
    assert_eq!(status(put_if_match(second.e_tag().unwrap(), b"third").await), 200);
    // If-Match on a key that does not exist: NoSuchKey.
    let missing =
        s3.put_object().bucket("cond").key("nothing").if_match("*").body(ByteStream::from_static(b"x")).send().await;
    assert_eq!(code(missing), "NoSuchKey");
    assert!(s3.head_object().bucket("cond").key("nothing").send().await.is_err());

    // If-None-Match: * creates only.
    let create = |key: &'static str, body: &'static [u8]| {
        s3.put_object().bucket("cond").key(key).if_none_match("*").body(ByteStream::from_static(body)).send()
    };
    assert_eq!(status(create("fresh", b"one").await), 200);
    let again = create("fresh", b"two").await;
    assert_eq!(code(again), "PreconditionFailed");
    assert_eq!(get_bytes(&s3, "cond", "fresh").await, b"one");

    // In a versioned bucket a key whose latest version is a delete marker does not exist.
    s3.put_bucket_versioning()
        .bucket("cond")
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    s3.delete_object().bucket("cond").key("fresh").send().await.unwrap();
    assert_eq!(status(create("fresh", b"three").await), 200);
    assert_eq!(get_bytes(&s3, "cond", "fresh").await, b"three");

    // CompleteMultipartUpload with If-None-Match: * when the key was created meanwhile.
    let upload = s3.create_multipart_upload().bucket("cond").key("mpu").send().await.unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket("cond")
        .key("mpu")
        .upload_id(upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    let parts = CompletedMultipartUpload::builder()
        .parts(CompletedPart::builder().part_number(1).e_tag(part.e_tag().unwrap()).build())
        .build();
    put(&s3, "cond", "mpu", b"someone else").await;
    let complete = s3
        .complete_multipart_upload()
        .bucket("cond")
        .key("mpu")
        .upload_id(upload_id)
        .if_none_match("*")
        .multipart_upload(parts.clone())
        .send()
        .await;
    assert_eq!(code(complete), "PreconditionFailed");
    assert_eq!(get_bytes(&s3, "cond", "mpu").await, b"someone else");
    // The upload is still there: without the condition it completes.
    s3.complete_multipart_upload()
        .bucket("cond")
        .key("mpu")
        .upload_id(upload_id)
        .multipart_upload(parts)
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&s3, "cond", "mpu").await, b"part");
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_create_only_writes_let_exactly_one_win() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("race").send().await.unwrap();
    for round in 0..5 {
        let key = format!("lock-{round}");
        let tasks: Vec<_> = (0..8u8)
            .map(|writer| {
                let s3 = s3.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let result = s3
                        .put_object()
                        .bucket("race")
                        .key(&key)
                        .if_none_match("*")
                        .body(ByteStream::from(vec![writer; 64 * 1024]))
                        .send()
                        .await;
                    (writer, status(result))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            let (writer, status) = task.await.unwrap();
            match status {
                200 => winners.push(writer),
                // Lost at arrival (412) or at commit (409, ConditionalRequestConflict).
                412 | 409 => {}
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = get_bytes(&s3, "race", &key).await;
        assert_eq!(stored, vec![winners[0]; 64 * 1024], "the winner's bytes are stored");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn read_conditions_combine_as_rfc_7232_orders_them() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("rfc").send().await.unwrap();
    let etag = put(&s3, "rfc", "k", b"body").await;
    let modified = s3.head_object().bucket("rfc").key("k").send().await.unwrap().last_modified().unwrap().to_owned();
    let before = DateTime::from_secs(modified.secs() - 3600);
    // Not modified since its own Last-Modified (a date in the future is not used: servers may ignore it).
    let after = modified;
    let other = "\"0123456789abcdef0123456789abcdef\"";

    struct Case {
        if_match: Option<&'static str>,
        if_none_match: Option<&'static str>,
        unmodified_since: Option<DateTime>,
        modified_since: Option<DateTime>,
        expected: u16,
    }
    let etag: &'static str = Box::leak(etag.into_boxed_str());
    let case = |if_match, if_none_match, unmodified_since, modified_since, expected| Case {
        if_match,
        if_none_match,
        unmodified_since,
        modified_since,
        expected,
    };
    let cases = [
        // If-Match true wins over a false If-Unmodified-Since.
        case(Some(etag), None, Some(before), None, 200),
        case(Some("*"), None, Some(before), None, 200),
        // If-Match false: 412, whatever else.
        case(Some(other), None, Some(after), None, 412),
        case(Some(other), Some(etag), None, None, 412),
        // If-Unmodified-Since alone.
        case(None, None, Some(before), None, 412),
        case(None, None, Some(after), None, 200),
        // If-None-Match false (matching): 304 on GET, whatever If-Modified-Since says.
        case(None, Some(etag), None, Some(before), 304),
        case(None, Some("*"), None, None, 304),
        // If-None-Match true wins over an If-Modified-Since that says not modified.
        case(None, Some(other), None, Some(after), 200),
        // If-Modified-Since alone.
        case(None, None, None, Some(after), 304),
        case(None, None, None, Some(before), 200),
        // If-Match true and If-None-Match false: 304.
        case(Some(etag), Some(etag), None, None, 304),
        // If-Unmodified-Since false and If-None-Match false: 412 comes first.
        case(None, Some(etag), Some(before), None, 412),
    ];
    for (index, case) in cases.iter().enumerate() {
        let get = s3
            .get_object()
            .bucket("rfc")
            .key("k")
            .set_if_match(case.if_match.map(str::to_string))
            .set_if_none_match(case.if_none_match.map(str::to_string))
            .set_if_unmodified_since(case.unmodified_since)
            .set_if_modified_since(case.modified_since)
            .send()
            .await;
        assert_eq!(status(get), case.expected, "GET case {index}");
        let head = s3
            .head_object()
            .bucket("rfc")
            .key("k")
            .set_if_match(case.if_match.map(str::to_string))
            .set_if_none_match(case.if_none_match.map(str::to_string))
            .set_if_unmodified_since(case.unmodified_since)
            .set_if_modified_since(case.modified_since)
            .send()
            .await;
        assert_eq!(status(head), case.expected, "HEAD case {index}");
    }
}
