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
        let winner = crate::harness::race_create_only(std::slice::from_ref(&s3), "race", &key, 64 * 1024).await;
        let stored = get_bytes(&s3, "race", &key).await;
        assert_eq!(stored, vec![winner; 64 * 1024], "round {round}: the winner's bytes are stored");
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
    // GET and HEAD take the same conditions through builders of different types.
    macro_rules! with_conditions {
        ($request:expr, $case:expr) => {
            $request
                .bucket("rfc")
                .key("k")
                .set_if_match($case.if_match.map(str::to_string))
                .set_if_none_match($case.if_none_match.map(str::to_string))
                .set_if_unmodified_since($case.unmodified_since)
                .set_if_modified_since($case.modified_since)
                .send()
                .await
        };
    }
    for (index, case) in cases.iter().enumerate() {
        assert_eq!(status(with_conditions!(s3.get_object(), case)), case.expected, "GET case {index}");
        assert_eq!(status(with_conditions!(s3.head_object(), case)), case.expected, "HEAD case {index}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_object_attributes_answers_what_was_asked() {
    use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType, ObjectAttributes};
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("attrs").send().await.unwrap();
    let all = [
        ObjectAttributes::Etag,
        ObjectAttributes::Checksum,
        ObjectAttributes::ObjectParts,
        ObjectAttributes::StorageClass,
        ObjectAttributes::ObjectSize,
    ];

    // One part, with a SHA-256 checksum.
    let body = crate::harness::data(1024, 7);
    let written = s3
        .put_object()
        .bucket("attrs")
        .key("single")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let attributes = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("single")
        .set_object_attributes(Some(all.to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(attributes.e_tag(), Some(crate::harness::md5_hex(&body).as_str()), "the ETag, unquoted");
    assert_eq!(attributes.object_size(), Some(1024));
    assert_eq!(attributes.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    assert_eq!(attributes.checksum().and_then(|c| c.checksum_sha256()), written.checksum_sha256());
    assert!(attributes.object_parts().is_none(), "a single-part object has no ObjectParts");
    // Only what was asked.
    let size_only = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("single")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!(size_only.object_size(), Some(1024));
    assert!(size_only.e_tag().is_none() && size_only.checksum().is_none() && size_only.storage_class().is_none());
    assert!(size_only.last_modified().is_some());

    // Three parts with SHA-256 checksums: a composite checksum and pages of parts.
    let upload = s3
        .create_multipart_upload()
        .bucket("attrs")
        .key("parts")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let sizes = [5 * 1024 * 1024, 5 * 1024 * 1024, 1000];
    let mut completed = Vec::new();
    let mut part_checksums = Vec::new();
    for (index, size) in sizes.iter().enumerate() {
        let number = index as i32 + 1;
        let part = s3
            .upload_part()
            .bucket("attrs")
            .key("parts")
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(crate::harness::data(*size, number as u64)))
            .send()
            .await
            .unwrap();
        part_checksums.push(part.checksum_sha256().unwrap().to_string());
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(part.e_tag().unwrap())
                .checksum_sha256(part.checksum_sha256().unwrap())
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket("attrs")
        .key("parts")
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
        .send()
        .await
        .unwrap();
    let composite = done.checksum_sha256().unwrap();
    assert!(composite.ends_with("-3"), "{composite}");
    let first_page = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("parts")
        .set_object_attributes(Some(all.to_vec()))
        .max_parts(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first_page.e_tag(), Some(done.e_tag().unwrap().trim_matches('"')));
    assert_eq!(first_page.object_size(), Some(sizes.iter().sum::<usize>() as i64));
    let checksum = first_page.checksum().unwrap();
    assert_eq!(checksum.checksum_sha256(), composite.strip_suffix("-3"), "without the part count");
    assert_eq!(checksum.checksum_type(), Some(&ChecksumType::Composite));
    let parts = first_page.object_parts().unwrap();
    assert_eq!(parts.total_parts_count(), Some(3));
    assert_eq!(parts.is_truncated(), Some(true));
    assert_eq!(parts.max_parts(), Some(2));
    assert_eq!(parts.next_part_number_marker(), Some("2"));
    let listed: Vec<_> = parts.parts().iter().map(|p| (p.part_number(), p.size(), p.checksum_sha256())).collect();
    assert_eq!(
        listed,
        vec![
            (Some(1), Some(sizes[0] as i64), Some(part_checksums[0].as_str())),
            (Some(2), Some(sizes[1] as i64), Some(part_checksums[1].as_str()))
        ]
    );
    let second_page = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("parts")
        .object_attributes(ObjectAttributes::ObjectParts)
        .max_parts(2)
        .part_number_marker("2")
        .send()
        .await
        .unwrap();
    let parts = second_page.object_parts().unwrap();
    assert_eq!(parts.is_truncated(), Some(false));
    let listed: Vec<_> = parts.parts().iter().map(|p| (p.part_number(), p.size())).collect();
    assert_eq!(listed, vec![(Some(3), Some(1000))]);

    // Versions: an older version by id; a key whose latest is a delete marker is not found.
    s3.put_bucket_versioning()
        .bucket("attrs")
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    let old = s3.put_object().bucket("attrs").key("v").body(ByteStream::from_static(b"old")).send().await.unwrap();
    put(&s3, "attrs", "v", b"newer").await;
    let by_id = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("v")
        .version_id(old.version_id().unwrap())
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.object_size(), Some(3));
    assert_eq!(by_id.version_id(), old.version_id());
    s3.delete_object().bucket("attrs").key("v").send().await.unwrap();
    let gone = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("v")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await;
    assert_eq!(status(gone), 404);

    // Names S3 does not know.
    let bad = s3
        .get_object_attributes()
        .bucket("attrs")
        .key("single")
        .object_attributes(ObjectAttributes::from("Colour"))
        .send()
        .await;
    assert_eq!(code(bad), "InvalidArgument");
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_listing_pages_and_the_expected_owner() {
    let node = Node::start(4);
    let s3 = node.client();
    let names = ["app-a", "app-b", "app-c", "app-d", "app-e", "logs-1", "logs-2"];
    for name in names {
        s3.create_bucket().bucket(name).send().await.unwrap();
    }

    // Pages of two, by continuation token, under a prefix.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page =
            s3.list_buckets().prefix("app-").max_buckets(2).set_continuation_token(token.clone()).send().await.unwrap();
        pages += 1;
        assert_eq!(page.prefix(), Some("app-"));
        assert!(page.buckets().len() <= 2);
        seen.extend(page.buckets().iter().map(|b| b.name().unwrap().to_string()));
        match page.continuation_token() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ["app-a", "app-b", "app-c", "app-d", "app-e"]);
    assert_eq!(pages, 3);
    let everything = s3.list_buckets().send().await.unwrap();
    let listed: Vec<_> = everything.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(listed, names);
    assert!(everything.continuation_token().is_none());
    assert_eq!(code(s3.list_buckets().max_buckets(0).send().await), "InvalidArgument");
    assert_eq!(code(s3.list_buckets().continuation_token("not a token!").send().await), "InvalidArgument");

    // x-amz-expected-bucket-owner: the owner's canonical id passes, another id is refused.
    let owner = everything.owner().unwrap().id().unwrap().to_string();
    s3.put_object()
        .bucket("app-a")
        .key("k")
        .expected_bucket_owner(&owner)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    s3.head_bucket().bucket("app-a").expected_bucket_owner(&owner).send().await.unwrap();
    let stranger = "111122223333";
    assert_eq!(status(s3.head_bucket().bucket("app-a").expected_bucket_owner(stranger).send().await), 403);
    let refused = s3.get_object().bucket("app-a").key("k").expected_bucket_owner(stranger).send().await;
    assert_eq!(code(refused), "AccessDenied");
    let refused = s3.delete_bucket().bucket("logs-1").expected_bucket_owner(stranger).send().await;
    assert_eq!(code(refused), "AccessDenied");
    s3.head_bucket().bucket("logs-1").send().await.unwrap();
    let copy = s3
        .copy_object()
        .bucket("app-b")
        .key("copy")
        .copy_source("app-a/k")
        .expected_source_bucket_owner(stranger)
        .send()
        .await;
    assert_eq!(code(copy), "AccessDenied");

    // Creating one's own bucket again: BucketAlreadyOwnedByYou, and the bucket is as it was.
    s3.put_bucket_versioning()
        .bucket("app-a")
        .versioning_configuration(VersioningConfiguration::builder().status(BucketVersioningStatus::Enabled).build())
        .send()
        .await
        .unwrap();
    let again = s3.create_bucket().bucket("app-a").send().await;
    assert_eq!(status(again), 409);
    assert_eq!(code(s3.create_bucket().bucket("app-a").send().await), "BucketAlreadyOwnedByYou");
    assert_eq!(get_bytes(&s3, "app-a", "k").await, b"x");
    let versioning = s3.get_bucket_versioning().bucket("app-a").send().await.unwrap();
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
}
