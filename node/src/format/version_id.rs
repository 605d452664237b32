//! Version ids as S3 shows them: `null` for the version written while a bucket was
//! unversioned or suspended, otherwise 32 lowercase hex digits of a UUID v7 (stored as its
//! 16 bytes), so that ids of one key sort by the time they were made. Must never accept
//! an id it could not have made.

use std::fmt;
use std::str::FromStr;

/// A version's id; `VersionId::NULL` is S3's "null" version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct VersionId(pub Option<[u8; 16]>);

impl VersionId {
    pub const NULL: VersionId = VersionId(None);

    /// A new id, later than every id this process made before (UUID v7: milliseconds,
    /// then a counter and random bits).
    pub fn new_time_ordered() -> VersionId {
        VersionId(Some(*uuid::Uuid::now_v7().as_bytes()))
    }

    pub fn is_null(self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("null"),
            Some(bytes) => f.write_str(&hex::encode(bytes)),
        }
    }
}

/// A version id that is not one this store makes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid version id specified")]
pub struct InvalidVersionId;

impl FromStr for VersionId {
    type Err = InvalidVersionId;

    fn from_str(text: &str) -> Result<VersionId, InvalidVersionId> {
        if text == "null" {
            return Ok(VersionId::NULL);
        }
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(InvalidVersionId);
        }
        let bytes = hex::decode(text).map_err(|_| InvalidVersionId)?;
        Ok(VersionId(Some(bytes.try_into().map_err(|_| InvalidVersionId)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back_and_sort_by_time() {
        let first = VersionId::new_time_ordered();
        let second = VersionId::new_time_ordered();
        assert!(second > first, "ids of one node sort by time");
        assert_eq!(first.to_string().parse::<VersionId>(), Ok(first));
        assert_eq!("null".parse::<VersionId>(), Ok(VersionId::NULL));
        assert_eq!(VersionId::NULL.to_string(), "null");
        for bad in ["", "NULL", "0123", &"g".repeat(32), &"A".repeat(32), &"0".repeat(33)] {
            assert_eq!(bad.parse::<VersionId>(), Err(InvalidVersionId), "{bad:?}");
        }
    }
}
