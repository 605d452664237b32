//! A multipart upload's files: its metadata (`%upload`) and one metadata file per part,
//! each a JSON body in a frame.

use serde::{Deserialize, Serialize};

use super::JsonFile;
use super::object::{ChecksumAlgorithm, ObjectLock};

pub const UPLOAD_MAGIC: &[u8; 8] = b"BKTUPLOD";
pub const PART_MAGIC: &[u8; 8] = b"BKTPARTM";
pub const UPLOAD_VERSION: u16 = 1;
pub const PART_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMeta {
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub initiated_ns: i64,
    /// The checksum asked for at creation: every part gets one, and so does the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<MultipartChecksum>,
    /// The object lock asked for at creation (the object gets it when completed).
    #[serde(default, skip_serializing_if = "is_unlocked")]
    pub lock: ObjectLock,
}

fn is_unlocked(lock: &ObjectLock) -> bool {
    *lock == ObjectLock::default()
}

/// A multipart upload's checksum: its algorithm, and whether the object's checksum is of
/// the whole object (FULL_OBJECT, CRCs only, combined from the parts' CRCs) or of the
/// parts' checksums (COMPOSITE, reported with "-N").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub full_object: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMeta {
    pub number: u32,
    pub size: u64,
    pub etag: String,
    pub modified_ns: i64,
    /// Name of the shard file inside the upload directory.
    pub data_name: String,
    /// Checksums of the part's bytes (base64, as in `x-amz-checksum-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
}

impl JsonFile for UploadMeta {
    const MAGIC: &'static [u8; 8] = UPLOAD_MAGIC;
    const VERSION: u16 = UPLOAD_VERSION;
}

impl JsonFile for PartMeta {
    const MAGIC: &'static [u8; 8] = PART_MAGIC;
    const VERSION: u16 = PART_VERSION;
}
