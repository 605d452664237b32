//! Golden files: the exact bytes of every on-disk format version, committed under
//! `format/golden/`. Decoding them must keep working forever; encoding today's structs must
//! reproduce the current version's bytes. `BUCKETS_UPDATE_GOLDEN=1 cargo test golden`
//! rewrites the current version's files (only when its format deliberately changes).

use std::path::PathBuf;

use uuid::Uuid;

use super::drive::DriveFormat;
use super::object::{ChecksumAlgorithm, ErasureLayout, ObjectMeta, ObjectVersion, PartInfo, VersionKind};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/format/golden").join(name)
}

fn check(name: &str, encoded: &[u8]) -> Vec<u8> {
    let path = golden_path(name);
    if std::env::var_os("BUCKETS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, encoded).unwrap();
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(golden, encoded, "{name}: encoding changed; a format change needs a new version");
    golden
}

fn drive_format_v1() -> DriveFormat {
    DriveFormat {
        cluster_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        drive_id: Uuid::from_u128(2),
        set_index: 1,
        drive_index: 3,
        set_drives: 4,
        set_drive_ids: (0..4).map(|i| Uuid::from_u128(i + 1)).collect(),
    }
}

fn object_meta_v1() -> ObjectMeta {
    ObjectMeta {
        versions: vec![ObjectVersion {
            version_id: None,
            modified_ns: 1_764_000_000_123_456_789,
            kind: VersionKind::Object,
            size: 11,
            etag: "5eb63bbbe01eeed093cb22bb8f5acdc3".into(),
            headers: vec![("content-type".into(), "text/plain".into()), ("x-amz-meta-color".into(), "blue".into())],
            checksums: vec![(ChecksumAlgorithm::Crc32, "DUoRhQ==".into())],
            erasure: ErasureLayout { data_shards: 2, parity_shards: 2, block_size: 1 << 20, shard_index: 1 },
            data_dir: Some([7; 16]),
            parts: vec![PartInfo { number: 1, size: 11, etag: "5eb63bbbe01eeed093cb22bb8f5acdc3".into() }],
            inline_data: Some(vec![9, 8, 7]),
        }],
    }
}

#[test]
fn drive_format_v1_golden() {
    let golden = check("drive-format-v1.bin", &drive_format_v1().encode());
    assert_eq!(DriveFormat::decode(&golden).unwrap(), drive_format_v1());
}

#[test]
fn object_meta_v1_golden() {
    let golden = check("object-meta-v1.bin", &object_meta_v1().encode());
    assert_eq!(ObjectMeta::decode(&golden).unwrap(), object_meta_v1());
}
