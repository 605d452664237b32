//! On-disk formats: the framed file every metadata file uses, the per-drive format file,
//! the per-object metadata file, and the JSON-bodied system files (bucket, multipart
//! upload and part, migration control and checkpoint, the identity store) and the topology file.
//!
//! Owns: byte layouts and their versions. Must never do I/O: encode to bytes, decode from
//! bytes, and reject anything whose magic, version or checksum is wrong.

pub mod acl;
pub mod bucket;
pub mod drive;
#[cfg(test)]
pub(crate) mod fuzz;
#[cfg(test)]
mod golden;
pub mod iam;
pub mod lifecycle;
pub mod migration;
pub mod object;
mod object_v1;
pub mod topology;
pub mod upload;
pub mod version_id;

/// Bytes of a frame header: magic (8), format version (2), reserved (6), body length (8).
pub const FRAME_HEADER_BYTES: usize = 24;
/// Bytes of the trailing checksum (xxh3-64 of header and body).
pub const FRAME_CHECKSUM_BYTES: usize = 8;
/// Largest body a frame may carry. Object metadata with inlined data stays far below it;
/// the bound keeps a corrupt length field from allocating gigabytes.
pub const FRAME_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

const _: () = assert!(FRAME_HEADER_BYTES == 8 + 2 + 6 + 8);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("file is truncated ({0} bytes)")]
    Truncated(usize),
    #[error("wrong magic: expected {expected:?}, found {found:?}")]
    Magic { expected: [u8; 8], found: [u8; 8] },
    #[error("format version {found} is newer than this build understands (max {supported})")]
    Version { found: u16, supported: u16 },
    #[error("reserved header bytes are not zero")]
    Reserved,
    #[error("body length {0} is out of bounds")]
    Length(u64),
    #[error("checksum mismatch")]
    Checksum,
    #[error("body does not decode: {0}")]
    Body(String),
}

/// Wraps `body` in a frame: header, body, checksum.
pub fn encode_frame(magic: &[u8; 8], version: u16, body: &[u8]) -> Vec<u8> {
    assert!((body.len() as u64) <= FRAME_MAX_BODY_BYTES, "frame body too large");
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + body.len() + FRAME_CHECKSUM_BYTES);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&[0u8; 6]);
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    let checksum = xxhash_rust::xxh3::xxh3_64(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

/// Checks a frame and returns its format version and body.
pub fn decode_frame<'a>(magic: &[u8; 8], max_version: u16, bytes: &'a [u8]) -> Result<(u16, &'a [u8]), FormatError> {
    if bytes.len() < FRAME_HEADER_BYTES + FRAME_CHECKSUM_BYTES {
        return Err(FormatError::Truncated(bytes.len()));
    }
    let found: [u8; 8] = bytes[0..8].try_into().expect("8 bytes");
    if &found != magic {
        return Err(FormatError::Magic { expected: *magic, found });
    }
    let version = u16::from_le_bytes(bytes[8..10].try_into().expect("2 bytes"));
    if bytes[10..16].iter().any(|&b| b != 0) {
        return Err(FormatError::Reserved);
    }
    let body_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    if body_len > FRAME_MAX_BODY_BYTES
        || bytes.len() as u64 != FRAME_HEADER_BYTES as u64 + body_len + FRAME_CHECKSUM_BYTES as u64
    {
        return Err(FormatError::Length(body_len));
    }
    let body_end = FRAME_HEADER_BYTES + body_len as usize;
    let stored = u64::from_le_bytes(bytes[body_end..].try_into().expect("8 bytes"));
    if xxhash_rust::xxh3::xxh3_64(&bytes[..body_end]) != stored {
        return Err(FormatError::Checksum);
    }
    if version == 0 || version > max_version {
        return Err(FormatError::Version { found: version, supported: max_version });
    }
    Ok((version, &bytes[FRAME_HEADER_BYTES..body_end]))
}

/// A system file: a JSON body in a frame with the type's magic and version. A type
/// names its `MAGIC` and `VERSION`; encoding and decoding are the same for all.
pub trait JsonFile: serde::Serialize + for<'de> serde::Deserialize<'de> {
    const MAGIC: &'static [u8; 8];
    const VERSION: u16;

    fn encode(&self) -> Vec<u8> {
        encode_frame(Self::MAGIC, Self::VERSION, &serde_json::to_vec(self).expect("system files serialise"))
    }

    /// `None` when the bytes are not a frame of this file, or its body not one.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (_, body) = decode_frame(Self::MAGIC, Self::VERSION, bytes).ok()?;
        serde_json::from_slice(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"TESTMAGI";

    #[test]
    fn round_trip() {
        let frame = encode_frame(MAGIC, 1, b"hello");
        assert_eq!(decode_frame(MAGIC, 1, &frame), Ok((1, &b"hello"[..])));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let frame = encode_frame(MAGIC, 1, b"some body bytes");
        for index in 0..frame.len() {
            let mut bad = frame.clone();
            bad[index] ^= 0x40;
            assert!(decode_frame(MAGIC, 1, &bad).is_err(), "flip at {index} undetected");
        }
    }

    #[test]
    fn truncation_and_newer_versions_are_refused() {
        let frame = encode_frame(MAGIC, 2, b"x");
        assert!(matches!(decode_frame(MAGIC, 2, &frame[..frame.len() - 1]), Err(FormatError::Length(_))));
        assert_eq!(decode_frame(MAGIC, 1, &frame), Err(FormatError::Version { found: 2, supported: 1 }));
        assert_eq!(decode_frame(MAGIC, 1, &[]), Err(FormatError::Truncated(0)));
    }
}
