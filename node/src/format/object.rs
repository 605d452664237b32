//! The metadata file of one object on one drive: every version of the object (S3
//! versioning needs no format change), each with its erasure layout, this drive's shard
//! position, the parts, and, for small objects, this drive's shard bytes inline.

use serde::{Deserialize, Serialize};

use super::{FormatError, decode_frame, encode_frame};

pub const OBJECT_META_MAGIC: &[u8; 8] = b"BKTOBJMT";
pub const OBJECT_META_VERSION: u16 = 1;

/// Checksum algorithms S3 clients may ask for (x-amz-checksum-*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionKind {
    Object,
    DeleteMarker,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectVersion {
    /// `None` is the S3 "null" version of an unversioned bucket.
    pub version_id: Option<[u8; 16]>,
    pub modified_ns: i64,
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
}

/// What makes two drives' copies the same version: id, time, data directory, ETag, size.
pub type VersionIdentity<'a> = (Option<[u8; 16]>, i64, Option<[u8; 16]>, &'a str, u64);

impl ObjectVersion {
    /// Identity of a version across drives: drives agree on an object when these match.
    pub fn identity(&self) -> VersionIdentity<'_> {
        (self.version_id, self.modified_ns, self.data_dir, &self.etag, self.size)
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

    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (_version, body) = decode_frame(OBJECT_META_MAGIC, OBJECT_META_VERSION, bytes)?;
        let (meta, rest) = postcard::take_from_bytes(body).map_err(|e| FormatError::Body(e.to_string()))?;
        // Whatever is stored is all read: bytes after the metadata mean it is not ours.
        if !rest.is_empty() {
            return Err(FormatError::Body(format!("{} bytes after the object metadata", rest.len())));
        }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample_version() -> ObjectVersion {
        ObjectVersion {
            version_id: None,
            modified_ns: 1_700_000_000_123_456_789,
            kind: VersionKind::Object,
            size: 5,
            etag: "5d41402abc4b2a76b9719d911017c592".into(),
            headers: vec![("content-type".into(), "text/plain".into()), ("x-amz-meta-a".into(), "b".into())],
            checksums: vec![(ChecksumAlgorithm::Crc32, "NhCmhg==".into())],
            erasure: ErasureLayout { data_shards: 2, parity_shards: 2, block_size: 1 << 20, shard_index: 1 },
            data_dir: None,
            parts: vec![PartInfo { number: 1, size: 5, etag: "5d41402abc4b2a76b9719d911017c592".into() }],
            inline_data: Some(vec![1, 2, 3]),
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
