use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use md5::Digest;

use crate::harness::{Node, data, get_bytes};

fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(error: &E) -> String {
    error.code().unwrap_or("<none>").to_string()
}

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn hundred_mib_multipart_upload() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("mpu").send().await.unwrap();
    let part_size = 8 * MIB;
    let total = 100 * MIB;
    let body = data(total, 42);
    let upload = s3
        .create_multipart_upload()
        .bucket("mpu")
        .key("big/object.bin")
        .content_type("application/octet-stream")
        .metadata("m", "1")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();

    let mut parts = Vec::new();
    let mut md5s = Vec::new();
    for (index, chunk) in body.chunks(part_size).enumerate() {
        let number = index as i32 + 1;
        let response = s3
            .upload_part()
            .bucket("mpu")
            .key("big/object.bin")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        let digest: [u8; 16] = md5::Md5::digest(chunk).into();
        assert_eq!(response.e_tag().unwrap(), format!("\"{}\"", hex::encode(digest)));
        md5s.extend_from_slice(&digest);
        parts.push(CompletedPart::builder().part_number(number).e_tag(response.e_tag().unwrap()).build());
    }
    let listed = s3.list_parts().bucket("mpu").key("big/object.bin").upload_id(&upload_id).send().await.unwrap();
    assert_eq!(listed.parts().len(), parts.len());
    let uploads = s3.list_multipart_uploads().bucket("mpu").send().await.unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    assert_eq!(uploads.uploads()[0].upload_id(), Some(upload_id.as_str()));

    let done = s3
        .complete_multipart_upload()
        .bucket("mpu")
        .key("big/object.bin")
        .upload_id(&upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    let expected_etag = format!("\"{}-{}\"", hex::encode(md5::Md5::digest(&md5s)), total.div_ceil(part_size));
    assert_eq!(done.e_tag(), Some(expected_etag.as_str()));

    let head = s3.head_object().bucket("mpu").key("big/object.bin").send().await.unwrap();
    assert_eq!(head.content_length(), Some(total as i64));
    assert_eq!(head.e_tag(), Some(expected_etag.as_str()));
    assert_eq!(head.metadata().unwrap().get("m").map(String::as_str), Some("1"));
    let got = get_bytes(&s3, "mpu", "big/object.bin").await;
    assert!(got[..] == body[..], "100 MiB body differs");
    // A range spanning the boundary of parts 1 and 2.
    let range = s3
        .get_object()
        .bucket("mpu")
        .key("big/object.bin")
        .range(format!("bytes={}-{}", part_size - 3, part_size + 2))
        .send()
        .await
        .unwrap();
    let got = range.body.collect().await.unwrap().into_bytes();
    assert!(got[..] == body[part_size - 3..part_size + 3]);
    let uploads = s3.list_multipart_uploads().bucket("mpu").send().await.unwrap();
    assert!(uploads.uploads().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn multipart_errors_and_copy_parts() {
    let node = Node::start(4);
    let s3 = node.client();
    s3.create_bucket().bucket("mpe").send().await.unwrap();
    let source = data(6 * MIB + 100, 9);
    s3.put_object().bucket("mpe").key("source").body(ByteStream::from(source.clone())).send().await.unwrap();

    let upload_id =
        s3.create_multipart_upload().bucket("mpe").key("target").send().await.unwrap().upload_id().unwrap().to_string();
    let small = s3
        .upload_part()
        .bucket("mpe")
        .key("target")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(vec![1u8; 1000]))
        .send()
        .await
        .unwrap();
    let second = s3
        .upload_part()
        .bucket("mpe")
        .key("target")
        .upload_id(&upload_id)
        .part_number(2)
        .body(ByteStream::from(vec![2u8; 1000]))
        .send()
        .await
        .unwrap();
    let complete = |parts: Vec<CompletedPart>| {
        s3.complete_multipart_upload()
            .bucket("mpe")
            .key("target")
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
    };
    let part = |n: i32, etag: &str| CompletedPart::builder().part_number(n).e_tag(etag).build();
    let too_small =
        complete(vec![part(1, small.e_tag().unwrap()), part(2, second.e_tag().unwrap())]).await.unwrap_err();
    assert_eq!(code(&too_small.into_service_error()), "EntityTooSmall");
    let order = complete(vec![part(2, second.e_tag().unwrap()), part(1, small.e_tag().unwrap())]).await.unwrap_err();
    assert_eq!(code(&order.into_service_error()), "InvalidPartOrder");
    let wrong = complete(vec![part(1, "\"0123456789abcdef0123456789abcdef\"")]).await.unwrap_err();
    assert_eq!(code(&wrong.into_service_error()), "InvalidPart");
    let missing = complete(vec![part(7, small.e_tag().unwrap())]).await.unwrap_err();
    assert_eq!(code(&missing.into_service_error()), "InvalidPart");

    // Replace part 1 by a copy of the first 5 MiB of the source, part 2 by the rest.
    let copy1 = s3
        .upload_part_copy()
        .bucket("mpe")
        .key("target")
        .upload_id(&upload_id)
        .part_number(1)
        .copy_source("mpe/source")
        .copy_source_range(format!("bytes=0-{}", 5 * MIB - 1))
        .send()
        .await
        .unwrap();
    let copy2 = s3
        .upload_part_copy()
        .bucket("mpe")
        .key("target")
        .upload_id(&upload_id)
        .part_number(2)
        .copy_source("mpe/source")
        .copy_source_range(format!("bytes={}-{}", 5 * MIB, source.len() - 1))
        .send()
        .await
        .unwrap();
    let etag1 = copy1.copy_part_result().unwrap().e_tag().unwrap().to_string();
    let etag2 = copy2.copy_part_result().unwrap().e_tag().unwrap().to_string();
    complete(vec![part(1, &etag1), part(2, &etag2)]).await.unwrap();
    let got = get_bytes(&s3, "mpe", "target").await;
    assert!(got[..] == source[..]);

    // GET and HEAD by part number: each part's bytes, its range, and the parts count.
    let bounds = [(0, 5 * MIB), (5 * MIB, source.len())];
    for (number, (start, end)) in (1..).zip(bounds) {
        let got = s3.get_object().bucket("mpe").key("target").part_number(number).send().await.unwrap();
        assert_eq!(got.parts_count(), Some(2));
        assert_eq!(got.content_range(), Some(format!("bytes {}-{}/{}", start, end - 1, source.len()).as_str()));
        assert_eq!(got.content_length(), Some((end - start) as i64));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert!(bytes[..] == source[start..end], "part {number}");
        let head = s3.head_object().bucket("mpe").key("target").part_number(number).send().await.unwrap();
        assert_eq!((head.parts_count(), head.content_length()), (Some(2), Some((end - start) as i64)));
    }
    let beyond = s3.get_object().bucket("mpe").key("target").part_number(3).send().await.unwrap_err();
    assert_eq!(beyond.raw_response().map(|r| r.status().as_u16()), Some(416));
    assert_eq!(code(&beyond.into_service_error()), "InvalidPartNumber");
    let beyond = s3.head_object().bucket("mpe").key("target").part_number(3).send().await.unwrap_err();
    assert_eq!(beyond.raw_response().map(|r| r.status().as_u16()), Some(416));
    let both = s3.get_object().bucket("mpe").key("target").part_number(1).range("bytes=0-9").send().await;
    let both = both.unwrap_err();
    assert_eq!(both.raw_response().map(|r| r.status().as_u16()), Some(400));
    assert_eq!(code(&both.into_service_error()), "InvalidRequest");
    // An object uploaded whole is one part, and says nothing of a parts count.
    let whole = s3.get_object().bucket("mpe").key("source").part_number(1).send().await.unwrap();
    assert_eq!((whole.parts_count(), whole.content_length()), (None, Some(source.len() as i64)));
    let whole = s3.get_object().bucket("mpe").key("source").part_number(2).send().await.unwrap_err();
    assert_eq!(code(&whole.into_service_error()), "InvalidPartNumber");
    let plain = s3.head_object().bucket("mpe").key("target").send().await.unwrap();
    assert_eq!(plain.parts_count(), None);

    // Abort, and unknown uploads.
    let upload_id = s3
        .create_multipart_upload()
        .bucket("mpe")
        .key("aborted")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    s3.abort_multipart_upload().bucket("mpe").key("aborted").upload_id(&upload_id).send().await.unwrap();
    let gone = s3
        .upload_part()
        .bucket("mpe")
        .key("aborted")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(&gone.unwrap_err().into_service_error()), "NoSuchUpload");
    let bogus = s3.list_parts().bucket("mpe").key("aborted").upload_id("../../etc").send().await;
    assert_eq!(code(&bogus.unwrap_err().into_service_error()), "NoSuchUpload");

    // Part numbers outside 1..=10000 are refused on a live upload (the aborted one above
    // would refuse any part); the bounds themselves are accepted.
    let live = s3
        .create_multipart_upload()
        .bucket("mpe")
        .key("numbers")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let part = |number: i32| {
        s3.upload_part()
            .bucket("mpe")
            .key("numbers")
            .upload_id(&live)
            .part_number(number)
            .body(ByteStream::from_static(b"x"))
            .send()
    };
    for number in [0, -1, 10001] {
        let refused = part(number).await.unwrap_err();
        assert_eq!(refused.raw_response().map(|r| r.status().as_u16()), Some(400), "part {number}");
        assert_eq!(code(&refused.into_service_error()), "InvalidArgument", "part {number}");
    }
    for number in [1, 10000] {
        part(number).await.unwrap_or_else(|e| panic!("part {number}: {e:?}"));
    }
    let listed = s3.list_parts().bucket("mpe").key("numbers").upload_id(&live).send().await.unwrap();
    let numbers: Vec<i32> = listed.parts().iter().filter_map(|p| p.part_number()).collect();
    assert_eq!(numbers, vec![1, 10000]);
    s3.abort_multipart_upload().bucket("mpe").key("numbers").upload_id(&live).send().await.unwrap();
}
