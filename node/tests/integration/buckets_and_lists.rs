use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::harness::{Node, get_bytes};

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(error: &E) -> String {
    error.code().unwrap_or("<none>").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn bucket_lifecycle_and_owner() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.create_bucket().bucket("beta").send().await.unwrap();
    s3.head_bucket().bucket("alpha").send().await.unwrap();

    let again = s3.create_bucket().bucket("alpha").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&again), "BucketAlreadyOwnedByYou");

    for bad in ["ab", "UpperCase", "under_score", "-leading", "192.168.1.1", "a..b"] {
        let error = s3.create_bucket().bucket(bad).send().await.unwrap_err().into_service_error();
        assert_eq!(code(&error), "InvalidBucketName", "bucket name {bad:?}");
    }

    let listed = s3.list_buckets().send().await.unwrap();
    let names: Vec<_> = listed.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, vec!["alpha", "beta"]);
    assert!(listed.buckets().iter().all(|b| b.creation_date().is_some()));
    let owner_id = listed.owner().unwrap().id().unwrap().to_string();

    let acl = s3.get_bucket_acl().bucket("alpha").send().await.unwrap();
    assert_eq!(acl.owner().unwrap().id(), Some(owner_id.as_str()));
    let grant = &acl.grants()[0];
    assert_eq!(grant.permission().unwrap().as_str(), "FULL_CONTROL");
    assert_eq!(grant.grantee().unwrap().id(), Some(owner_id.as_str()));

    s3.put_object().bucket("alpha").key("k").body(ByteStream::from_static(b"x")).send().await.unwrap();
    let object_acl = s3.get_object_acl().bucket("alpha").key("k").send().await.unwrap();
    assert_eq!(object_acl.owner().unwrap().id(), Some(owner_id.as_str()));

    let location = s3.get_bucket_location().bucket("alpha").send().await.unwrap();
    assert!(location.location_constraint().is_none_or(|c| c.as_str().is_empty()));
    let versioning = s3.get_bucket_versioning().bucket("alpha").send().await.unwrap();
    assert!(versioning.status().is_none());

    let not_empty = s3.delete_bucket().bucket("alpha").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&not_empty), "BucketNotEmpty");
    s3.delete_object().bucket("alpha").key("k").send().await.unwrap();
    s3.delete_bucket().bucket("alpha").send().await.unwrap();
    let gone = s3.head_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(gone.raw_response().map(|r| r.status().as_u16()), Some(404));
    let missing = s3.get_object().bucket("alpha").key("k").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&missing), "NoSuchBucket");
    let missing = s3.delete_bucket().bucket("nope-bucket").send().await.unwrap_err().into_service_error();
    assert_eq!(code(&missing), "NoSuchBucket");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_with_prefixes_delimiters_and_pages() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("list").send().await.unwrap();
    let keys = [
        "a",
        "a-b",
        "a/",
        "a/b",
        "a/b/c",
        "a/c",
        "b/deep/er/still/x.txt",
        "c d/ü",
        "c d/ünïcödé ✓",
        "%escape",
        "x/../y",
        "z//double",
    ];
    for key in keys {
        s3.put_object().bucket("list").key(key).body(ByteStream::from(key.as_bytes().to_vec())).send().await.unwrap();
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort();

    // Everything, in key order, across pages of 5 with v2 tokens.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page =
            s3.list_objects_v2().bucket("list").max_keys(5).set_continuation_token(token.clone()).send().await.unwrap();
        assert!(page.key_count().unwrap() <= 5);
        seen.extend(page.contents().iter().map(|o| o.key().unwrap().to_string()));
        if page.is_truncated() == Some(true) {
            token = page.next_continuation_token().map(str::to_string);
        } else {
            break;
        }
    }
    assert_eq!(seen, sorted);

    // Delimiter "/" at the root: objects without "/" and one prefix per first segment.
    let page = s3.list_objects_v2().bucket("list").delimiter("/").send().await.unwrap();
    let objects: Vec<_> = page.contents().iter().map(|o| o.key().unwrap()).collect();
    let prefixes: Vec<_> = page.common_prefixes().iter().map(|p| p.prefix().unwrap()).collect();
    assert_eq!(objects, vec!["%escape", "a", "a-b"]);
    assert_eq!(prefixes, vec!["a/", "b/", "c d/", "x/", "z/"]);

    // Under a prefix.
    let page = s3.list_objects_v2().bucket("list").prefix("a/").delimiter("/").send().await.unwrap();
    let objects: Vec<_> = page.contents().iter().map(|o| o.key().unwrap()).collect();
    let prefixes: Vec<_> = page.common_prefixes().iter().map(|p| p.prefix().unwrap()).collect();
    assert_eq!(objects, vec!["a/", "a/b", "a/c"]);
    assert_eq!(prefixes, vec!["a/b/"]);

    // Partial-segment prefix.
    let page = s3.list_objects_v2().bucket("list").prefix("a").send().await.unwrap();
    let objects: Vec<_> = page.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(objects, vec!["a", "a-b", "a/", "a/b", "a/b/c", "a/c"]);

    // start-after, and v1 markers with a delimiter paging through common prefixes.
    let page = s3.list_objects_v2().bucket("list").start_after("a/b").send().await.unwrap();
    assert_eq!(page.contents()[0].key(), Some("a/b/c"));
    let mut seen = Vec::new();
    let mut marker = None;
    loop {
        let page = s3
            .list_objects()
            .bucket("list")
            .delimiter("/")
            .max_keys(2)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        seen.extend(page.contents().iter().map(|o| o.key().unwrap().to_string()));
        seen.extend(page.common_prefixes().iter().map(|p| p.prefix().unwrap().to_string()));
        if page.is_truncated() == Some(true) {
            marker = page.next_marker().map(str::to_string);
        } else {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["%escape", "a", "a-b", "a/", "b/", "c d/", "x/", "z/"]);

    // A delimiter other than "/".
    let page = s3.list_objects_v2().bucket("list").delimiter("-").send().await.unwrap();
    let prefixes: Vec<_> = page.common_prefixes().iter().map(|p| p.prefix().unwrap()).collect();
    assert_eq!(prefixes, vec!["a-"]);

    // encoding-type=url: keys come back percent-encoded.
    let page = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("c d/")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .unwrap();
    let raw: Vec<_> = page.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(raw, vec!["c%20d/%C3%BC", "c%20d/%C3%BCn%C3%AFc%C3%B6d%C3%A9%20%E2%9C%93"]);
    // Every key of the bucket, encoded: each decodes back to exactly its key, and none
    // keeps a character that needs encoding.
    let page =
        s3.list_objects_v2().bucket("list").encoding_type(aws_sdk_s3::types::EncodingType::Url).send().await.unwrap();
    let decoded: Vec<String> = page
        .contents()
        .iter()
        .map(|o| {
            let encoded = o.key().unwrap();
            assert!(encoded.is_ascii() && !encoded.contains(' '), "{encoded:?} is not encoded");
            form_urlencoded::parse(format!("k={encoded}").as_bytes()).next().unwrap().1.into_owned()
        })
        .collect();
    assert_eq!(decoded, sorted);

    // Object versions of an unversioned bucket: one "null" version each.
    let versions = s3.list_object_versions().bucket("list").send().await.unwrap();
    assert_eq!(versions.versions().len(), keys.len());
    assert!(versions.versions().iter().all(|v| v.version_id() == Some("null") && v.is_latest() == Some(true)));

    // max-keys=0.
    let page = s3.list_objects_v2().bucket("list").max_keys(0).send().await.unwrap();
    assert_eq!(page.key_count(), Some(0));
    assert!(page.contents().is_empty());

    // The ".." key is stored as a name, inside the drives.
    let body = get_bytes(&s3, "list", "x/../y").await;
    assert_eq!(&body[..], b"x/../y");
    for drive in 0..4 {
        assert!(!node.drive(drive).join("list").join("y").exists());
    }
    assert!(!node.root.path().join("y").exists());

    // Batch delete, not quiet: every key is reported deleted, a key that never existed
    // too (as S3 does); the others stay.
    let identifiers = |keys: &[&str]| -> Vec<ObjectIdentifier> {
        keys.iter().map(|k| ObjectIdentifier::builder().key(*k).build().unwrap()).collect()
    };
    let (first, rest) = sorted.split_at(5);
    let mut asked: Vec<&str> = first.to_vec();
    asked.push("never-existed");
    let deleted = s3
        .delete_objects()
        .bucket("list")
        .delete(Delete::builder().set_objects(Some(identifiers(&asked))).build().unwrap())
        .send()
        .await
        .unwrap();
    let mut reported: Vec<&str> = deleted.deleted().iter().filter_map(|d| d.key()).collect();
    reported.sort();
    asked.sort();
    assert_eq!(reported, asked);
    assert!(deleted.errors().is_empty());
    let page = s3.list_objects_v2().bucket("list").send().await.unwrap();
    let left: Vec<&str> = page.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(left, rest);
    // Quiet: nothing is reported for the keys deleted, and they are gone.
    let deleted = s3
        .delete_objects()
        .bucket("list")
        .delete(Delete::builder().set_objects(Some(identifiers(rest))).quiet(true).build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(deleted.deleted().is_empty(), "quiet mode reports no deletions: {:?}", deleted.deleted());
    assert!(deleted.errors().is_empty());
    let page = s3.list_objects_v2().bucket("list").send().await.unwrap();
    assert!(page.contents().is_empty());
    s3.delete_bucket().bucket("list").send().await.unwrap();
}
