//! Losing, corrupting and replacing drives of a running node.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;

use crate::harness::{Node, data, files_under, wait_until};

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    let response = s3.get_object().bucket("data").key(key).send().await.map_err(|e| format!("{e:?}"))?;
    response.body.collect().await.map(|b| b.into_bytes().to_vec()).map_err(|e| format!("{e:?}"))
}

/// A GET's HTTP status and error code (200 and "" when it succeeds).
async fn get_status(s3: &aws_sdk_s3::Client, key: &str) -> (u16, String) {
    use aws_sdk_s3::error::ProvideErrorMetadata;
    match s3.get_object().bucket("data").key(key).send().await {
        Ok(_) => (200, String::new()),
        Err(e) => {
            let status = e.raw_response().map_or(0, |r| r.status().as_u16());
            (status, e.into_service_error().code().unwrap_or_default().to_string())
        }
    }
}

async fn fill(s3: &aws_sdk_s3::Client) -> Vec<(String, Vec<u8>)> {
    s3.create_bucket().bucket("data").send().await.unwrap();
    let mut objects = Vec::new();
    for (index, size) in [0usize, 10, 5000, 200_000, 1_500_000, 3_000_000].into_iter().enumerate() {
        let key = format!("obj/{index}");
        let body = data(size, index as u64 + 100);
        s3.put_object().bucket("data").key(&key).body(ByteStream::from(body.clone())).send().await.unwrap();
        objects.push((key, body));
    }
    objects
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_and_writes_survive_parity_drives_lost_and_heal_when_they_return() {
    // 5 drives: 3 data + 2 parity, write quorum 3.
    let node = Node::start_with_env(5, &[("BUCKETS_HEAL_INTERVAL_SECS", "3600")]);
    let s3 = node.client();
    let mut objects = fill(&s3).await;

    // Wipe two drives (the parity count) completely.
    for drive in [0, 3] {
        std::fs::remove_dir_all(node.drive(drive)).unwrap();
    }
    for (key, body) in &objects {
        assert!(get(&s3, key).await.unwrap() == *body, "{key} after losing 2 of 5 drives");
    }
    // Writes still succeed at write quorum.
    let written = data(700_000, 77);
    s3.put_object()
        .bucket("data")
        .key("written-degraded")
        .body(ByteStream::from(written.clone()))
        .send()
        .await
        .unwrap();
    objects.push(("written-degraded".to_string(), written));
    // The drives come back empty: formatted again and healed by the background healer.
    std::fs::create_dir_all(node.drive(0)).unwrap();
    std::fs::create_dir_all(node.drive(3)).unwrap();
    wait_until("drives re-formatted and healed", Duration::from_secs(30), || {
        [0, 3].iter().all(|&d| {
            files_under(&node.drive(d).join("data")).iter().filter(|f| f.ends_with("%meta")).count() == objects.len()
        })
    });
    assert!(node.metric("buckets_heal_objects_healed_total") >= objects.len() as f64);
    for drive in [0, 3] {
        assert!(node.drive(drive).join(".buckets.sys/format.bkt").exists());
        let files = files_under(&node.drive(drive).join("data"));
        assert!(
            files.iter().filter(|f| f.ends_with("%meta")).count() == objects.len(),
            "drive {drive} healed: {files:?}"
        );
    }
    // Now lose two *other* drives: only healed copies can serve the reads.
    for drive in [1, 4] {
        crate::harness::wipe(&node.drive(drive).join("data"));
    }
    for (key, body) in &objects {
        assert!(get(&s3, key).await.unwrap() == *body, "{key} served from healed drives");
    }
    s3.put_object().bucket("data").key("new").body(ByteStream::from(data(100_000, 5))).send().await.unwrap();
    assert!(get(&s3, "new").await.unwrap() == data(100_000, 5));
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_shards_are_detected_never_returned_and_healed_on_read() {
    let node = Node::start(4);
    let s3 = node.client();
    let objects = fill(&s3).await;
    // Flip bytes in every shard file and inline metadata of two drives (parity is 2).
    for drive in [0, 1] {
        for file in files_under(&node.drive(drive).join("data")) {
            let mut bytes = std::fs::read(&file).unwrap();
            if bytes.len() > 40 {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                // Shard files: corrupt data; metadata: corrupt the inline tail.
                let at = if name.starts_with("part.") { 20 } else { bytes.len() - 20 };
                bytes[at] ^= 0xff;
                std::fs::write(&file, bytes).unwrap();
            }
        }
    }
    let healed_before = node.metric("buckets_heal_objects_healed_total");
    for (key, body) in &objects {
        assert!(get(&s3, key).await.unwrap() == *body, "{key} with two corrupt drives");
    }
    // Every object had corrupt metadata on both drives (and the larger ones corrupt
    // shards too): each one is healed.
    wait_until("every corrupt object healed after reads", Duration::from_secs(30), || {
        node.metric("buckets_heal_objects_healed_total") >= healed_before + objects.len() as f64
    });
    // After healing, the two other drives can go and every object, the empty one too,
    // still reads: from the healed copies alone.
    for drive in [2, 3] {
        crate::harness::wipe(&node.drive(drive).join("data"));
    }
    for (key, body) in &objects {
        assert!(get(&s3, key).await.unwrap() == *body, "{key} from healed drives");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_parity_requests_fail_clearly_never_with_wrong_data() {
    let node = Node::start(4);
    let s3 = node.client();
    let objects = fill(&s3).await;
    for drive in [0, 1, 2] {
        std::fs::remove_dir_all(node.drive(drive).join("data").join("obj")).unwrap();
    }
    // Every drive answers; one holds each object, two are needed: the objects are lost
    // beyond parity, and say so (500 InternalError), never "no such key".
    for (key, _) in &objects {
        let (status, code) = get_status(&s3, key).await;
        assert_eq!((status, code.as_str()), (500, "InternalError"), "{key}");
    }
    assert!(node.log().contains("lost beyond parity"), "the loss is logged");
    // A key that never existed is still NoSuchKey.
    assert_eq!(get_status(&s3, "obj/never").await, (404, "NoSuchKey".to_string()));
    // And corruption beyond parity on the shards: error, not wrong bytes.
    let node = Node::start(4);
    let s3 = node.client();
    let objects = fill(&s3).await;
    for drive in [0, 1, 2] {
        for file in files_under(&node.drive(drive).join("data")) {
            if file.file_name().unwrap().to_string_lossy().starts_with("part.") {
                let mut bytes = std::fs::read(&file).unwrap();
                bytes[20] ^= 0xff;
                std::fs::write(&file, bytes).unwrap();
            }
        }
    }
    for (key, body) in &objects {
        if body.len() > 128 * 1024 {
            // Shard files on three of four drives are corrupt: the read fails before it
            // starts, with a clear error.
            let (status, code) = get_status(&s3, key).await;
            assert_eq!((status, code.as_str()), (500, "InternalError"), "{key}: corrupt beyond parity");
        } else {
            let result = get(&s3, key).await;
            // Inline objects were not touched and read back intact.
            assert!(result.unwrap() == *body, "{key}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_foreign_or_misplaced_drives() {
    let mut node = Node::start(4);
    node.kill();
    let other = Node::start(4);
    drop(other.client());
    let mut other = other;
    other.kill();
    // Swap in a drive of another cluster.
    std::fs::remove_dir_all(node.drive(3)).unwrap();
    copy_dir(&other.drive(3), &node.drive(3));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_buckets-node"))
        .args(["server", "--address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0", &node.drive_argument()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("belongs to cluster"), "{stderr}");
    // Restore it, then give two drives in swapped order.
    std::fs::remove_dir_all(node.drive(3)).unwrap();
    std::fs::create_dir_all(node.drive(3)).unwrap();
    let root = node.root.path();
    let swapped = [root.join("d2"), root.join("d1"), root.join("d3"), root.join("d4")];
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_buckets-node"))
        .args(["server", "--address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0"])
        .args(swapped.iter().map(|p| p.to_string_lossy().to_string()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("original order"), "{stderr}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn background_scan_finds_and_heals_bitrot_without_reads() {
    let node = Node::start_with_env(4, &[("BUCKETS_HEAL_INTERVAL_SECS", "1"), ("BUCKETS_DEEP_HEAL_EVERY", "1")]);
    let s3 = node.client();
    let objects = fill(&s3).await;
    let with_files = objects.iter().filter(|(_, body)| body.len() > 128 * 1024).count();
    let healed_before = node.metric("buckets_heal_objects_healed_total");
    let mut corrupted = 0;
    for drive in [1, 2] {
        for file in files_under(&node.drive(drive).join("data")) {
            if file.file_name().unwrap().to_string_lossy().starts_with("part.") {
                let mut bytes = std::fs::read(&file).unwrap();
                let last = bytes.len() - 1;
                bytes[last] ^= 0x01;
                std::fs::write(&file, bytes).unwrap();
                corrupted += 1;
            }
        }
    }
    assert_eq!(corrupted, 2 * with_files);
    wait_until("the deep scan healed every corrupt object", Duration::from_secs(30), || {
        node.metric("buckets_heal_objects_healed_total") >= healed_before + with_files as f64
    });
    // The healthy drives go; the healed ones must now carry correct shards.
    for drive in [0, 3] {
        std::fs::remove_dir_all(node.drive(drive).join("data").join("obj")).unwrap();
    }
    for (key, body) in &objects {
        assert!(get(&s3, key).await.unwrap() == *body, "{key} from drives healed by the scan");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_misses_quorum_leaves_the_previous_version_intact() {
    let node = Node::start(4); // 2+2: write quorum 3, read quorum 2
    let s3 = node.client();
    s3.create_bucket().bucket("data").send().await.unwrap();
    let first = data(300_000, 1);
    s3.put_object().bucket("data").key("k").body(ByteStream::from(first.clone())).send().await.unwrap();
    // On two drives, put a directory where the metadata file goes: commits there fail.
    for drive in [2, 3] {
        let meta = node.drive(drive).join("data/k/%meta");
        std::fs::remove_file(&meta).unwrap();
        std::fs::create_dir_all(meta.join("blocker")).unwrap();
    }
    let second = data(400_000, 2);
    let error = s3.put_object().bucket("data").key("k").body(ByteStream::from(second)).send().await.unwrap_err();
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(503));
    // The refused write was rolled back: the first version, with its data, is what reads see.
    assert!(get(&s3, "k").await.unwrap() == first);
}
