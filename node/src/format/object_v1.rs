//! Object metadata format version 1, frozen: what builds before versioning wrote. Read
//! only, turned into the current version (`into_current`); never written again. Its types
//! are copies, so a change of the current format cannot change how version 1 is read.
//! In version 1 a delete marker was only ever the tombstone of a delete that missed a
//! drive (no bucket could be versioned): it becomes a `Removed` record of the null
//! version.

use serde::{Deserialize, Serialize};

use super::object::{self as current, ObjectLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum VersionKind {
    Object,
    DeleteMarker,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ErasureLayout {
    data_shards: u8,
    parity_shards: u8,
    block_size: u32,
    shard_index: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartInfo {
    number: u32,
    size: u64,
    etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ObjectVersion {
    version_id: Option<[u8; 16]>,
    modified_ns: i64,
    kind: VersionKind,
    size: u64,
    etag: String,
    headers: Vec<(String, String)>,
    checksums: Vec<(ChecksumAlgorithm, String)>,
    erasure: ErasureLayout,
    data_dir: Option<[u8; 16]>,
    parts: Vec<PartInfo>,
    inline_data: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ObjectMeta {
    versions: Vec<ObjectVersion>,
}

fn algorithm(algorithm: ChecksumAlgorithm) -> current::ChecksumAlgorithm {
    match algorithm {
        ChecksumAlgorithm::Crc32 => current::ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c => current::ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme => current::ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1 => current::ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256 => current::ChecksumAlgorithm::Sha256,
    }
}

impl ObjectMeta {
    pub(super) fn into_current(self) -> current::ObjectMeta {
        let versions = self
            .versions
            .into_iter()
            .map(|v| current::ObjectVersion {
                version_id: v.version_id,
                modified_ns: v.modified_ns,
                changed_ns: v.modified_ns,
                kind: match v.kind {
                    VersionKind::Object => current::VersionKind::Object,
                    VersionKind::DeleteMarker => current::VersionKind::Removed,
                },
                size: v.size,
                etag: v.etag,
                headers: v.headers,
                checksums: v.checksums.into_iter().map(|(a, value)| (algorithm(a), value)).collect(),
                erasure: current::ErasureLayout {
                    data_shards: v.erasure.data_shards,
                    parity_shards: v.erasure.parity_shards,
                    block_size: v.erasure.block_size,
                    shard_index: v.erasure.shard_index,
                },
                data_dir: v.data_dir,
                parts: v
                    .parts
                    .into_iter()
                    .map(|p| current::PartInfo { number: p.number, size: p.size, etag: p.etag, checksums: Vec::new() })
                    .collect(),
                inline_data: v.inline_data,
                lock: ObjectLock::default(),
            })
            .collect();
        current::ObjectMeta { versions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 tombstone (the only delete marker version 1 wrote) reads as the removal
    /// record of the null version.
    #[test]
    fn a_version_1_tombstone_reads_as_a_removal_record() {
        let tombstone = ObjectMeta {
            versions: vec![ObjectVersion {
                version_id: None,
                modified_ns: 42,
                kind: VersionKind::DeleteMarker,
                size: 0,
                etag: String::new(),
                headers: Vec::new(),
                checksums: Vec::new(),
                erasure: ErasureLayout { data_shards: 2, parity_shards: 2, block_size: 1 << 20, shard_index: 0 },
                data_dir: None,
                parts: Vec::new(),
                inline_data: None,
            }],
        };
        let bytes =
            super::super::encode_frame(current::OBJECT_META_MAGIC, 1, &postcard::to_stdvec(&tombstone).unwrap());
        let read = current::ObjectMeta::decode(&bytes).unwrap();
        assert_eq!(read.versions.len(), 1);
        assert_eq!((read.versions[0].version_id, read.versions[0].kind), (None, current::VersionKind::Removed));
        assert_eq!(read.versions[0].modified_ns, 42);
    }
}
