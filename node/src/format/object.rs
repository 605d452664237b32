//! The metadata file of one key on one drive: every version of it this drive holds,
//! newest first, each with its erasure layout, this drive's shard position, the parts,
//! its object lock, and, for small objects, this drive's shard bytes inline. Version 2
//! (versioning, object lock, part checksums); version 1 is read through `object_v1`.

use serde::{Deserialize, Serialize};

use super::{FormatError, decode_frame, encode_frame};

pub const OBJECT_META_MAGIC: &[u8; 8] = b"BKTOBJMT";
pub const OBJECT_META_VERSION: u16 = 2;

/// Checksum algorithms S3 clients may ask for (x-amz-checksum-*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VersionKind {
    Object,
    /// An S3 delete marker: a version of its own, listed, with its id.
    DeleteMarker,
    /// Not a version: the record that version `version_id` was deleted, left on the
    /// drives a delete reached while another was away, so the copy that drive keeps is
    /// outvoted when it returns; removed with that copy once every drive answers.
    Removed,
}

/// Object lock retention modes (S3's GOVERNANCE and COMPLIANCE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetentionMode {
    /// Removable before its date by a user allowed to bypass governance retention.
    Governance,
    /// Removable by nobody before its date; its date can only move later.
    Compliance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: RetentionMode,
    /// Until when (Unix nanoseconds) the version cannot be removed.
    pub until_ns: i64,
}

/// A version's object lock: retention and legal hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLock {
    pub retention: Option<Retention>,
    pub legal_hold: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureLayout {
    pub data_shards: u8,
    pub parity_shards: u8,
    /// Object bytes per erasure block.
    pub block_size: u32,
    /// Which shard of each block this drive holds (0-based; data shards first).
    pub shard_index: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartInfo {
    pub number: u32,
    pub size: u64,
    /// Hex MD5 of the part's bytes, as returned by UploadPart.
    pub etag: String,
    /// The part's checksums as UploadPart returned them (multipart objects).
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// `None` is S3's "null" version: written while the bucket was unversioned or
    /// versioning was suspended. Other ids are time-ordered (UUID v7).
    pub version_id: Option<[u8; 16]>,
    /// When the version was written; versions of a key are ordered by it.
    pub modified_ns: i64,
    /// When this version's metadata last changed (its tags, its lock); `modified_ns`
    /// when never. A drive that missed a change holds an older one and is outvoted.
    pub changed_ns: i64,
    pub kind: VersionKind,
    pub size: u64,
    /// ETag without quotes: hex MD5, or "hex-N" for multipart objects.
    pub etag: String,
    /// Standard headers (content-type, …) and user metadata (x-amz-meta-*), lower-case.
    pub headers: Vec<(String, String)>,
    /// Full-object checksums the client sent or asked for, base64 as on the wire.
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
    pub erasure: ErasureLayout,
    /// Directory holding the shard files (`part.N`); `None` when the data is inline.
    pub data_dir: Option<[u8; 16]>,
    pub parts: Vec<PartInfo>,
    /// This drive's shard file bytes for a single-part object small enough to inline.
    pub inline_data: Option<Vec<u8>>,
    pub lock: ObjectLock,
}

/// What makes two drives' copies the same: id, kind, times, data directory, ETag, size.
pub type VersionIdentity<'a> = (Option<[u8; 16]>, VersionKind, i64, i64, Option<[u8; 16]>, &'a str, u64);

impl ObjectVersion {
    /// Identity of a version across drives: drives agree on a version when these match.
    pub fn identity(&self) -> VersionIdentity<'_> {
        (self.version_id, self.kind, self.modified_ns, self.changed_ns, self.data_dir, &self.etag, self.size)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// All versions of one object as stored on one drive, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ObjectMeta {
    pub versions: Vec<ObjectVersion>,
}

impl ObjectMeta {
    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("object meta serialises");
        encode_frame(OBJECT_META_MAGIC, OBJECT_META_VERSION, &body)
    }

    /// Decodes this version or an older one (turned into this version).
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (version, body) = decode_frame(OBJECT_META_MAGIC, OBJECT_META_VERSION, bytes)?;
        let meta = match version {
            1 => whole::<super::object_v1::ObjectMeta>(body)?.into_current(),
            _ => whole::<ObjectMeta>(body)?,
        };
        Self::validate(&meta).map_err(FormatError::Body)?;
        Ok(meta)
    }

    /// Checks what the readers rely on: every version's erasure layout is one that can
    /// exist (at least one data shard, a block size, this drive's shard inside the set).
    pub fn validate(&self) -> Result<(), String> {
        for version in &self.versions {
            let layout = &version.erasure;
            let shards = layout.data_shards as usize + layout.parity_shards as usize;
            if layout.data_shards == 0 || layout.block_size == 0 || layout.shard_index as usize >= shards {
                return Err(format!("impossible erasure layout {layout:?}"));
            }
        }
        Ok(())
    }

    /// The newest entry (a version or a removal record).
    pub fn latest(&self) -> Option<&ObjectVersion> {
        self.versions.first()
    }

    /// The same metadata file without the versions' inline data (what a listing needs:
    /// inline data can be most of its bytes); `None` when `bytes` is not object metadata.
    pub fn without_inline_data(bytes: &[u8]) -> Option<Vec<u8>> {
        let mut meta = ObjectMeta::decode(bytes).ok()?;
        for version in &mut meta.versions {
            version.inline_data = None;
        }
        Some(meta.encode())
    }
}

/// A postcard body read whole: bytes after it mean it is not ours.
fn whole<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FormatError> {
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| FormatError::Body(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FormatError::Body(format!("{} bytes after the object metadata", rest.len())));
    }
    Ok(value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_version() -> ObjectVersion {
        ObjectVersion {
            version_id: None,
            modified_ns: 1_700_000_000_123_456_789,
            changed_ns: 1_700_000_000_123_456_789,
            kind: VersionKind::Object,
            size: 5,
            etag: "5d41402abc4b2a76b9719d911017c592".into(),
            headers: vec![("content-type".into(), "text/plain".into()), ("x-amz-meta-a".into(), "b".into())],
            checksums: vec![(ChecksumAlgorithm::Crc32, "NhCmhg==".into())],
            erasure: ErasureLayout { data_shards: 2, parity_shards: 2, block_size: 1 << 20, shard_index: 1 },
            data_dir: None,
            parts: vec![PartInfo {
                number: 1,
                size: 5,
                etag: "5d41402abc4b2a76b9719d911017c592".into(),
                checksums: Vec::new(),
            }],
            inline_data: Some(vec![1, 2, 3]),
            lock: ObjectLock::default(),
        }
    }

    #[test]
    fn round_trip() {
        let meta = ObjectMeta { versions: vec![sample_version()] };
        assert_eq!(ObjectMeta::decode(&meta.encode()), Ok(meta));
    }

    #[test]
    fn garbage_is_refused_not_panicking() {
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert!(ObjectMeta::decode(&bytes).is_err());
        }
    }
}
