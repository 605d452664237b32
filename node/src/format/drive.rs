//! The format file at the root of every drive: which cluster it belongs to, its own id,
//! and its position (set and index within the set). A node refuses to start on a drive
//! whose format names another cluster or another position.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{FormatError, decode_frame, encode_frame};

pub const DRIVE_FORMAT_MAGIC: &[u8; 8] = b"BKTDRIVE";
pub const DRIVE_FORMAT_VERSION: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveFormat {
    pub cluster_id: Uuid,
    pub drive_id: Uuid,
    /// Index of the erasure set in the cluster.
    pub set_index: u32,
    /// Position of this drive inside its set (0-based); shard `i` of an object lives on
    /// the drive at position `(i + rotation) % set_drives`.
    pub drive_index: u32,
    pub set_drives: u32,
    /// Drive ids of the whole set in order, so a misplaced drive is recognised.
    pub set_drive_ids: Vec<Uuid>,
}

impl DriveFormat {
    pub fn encode(&self) -> Vec<u8> {
        // JSON body: a human can read it with `tail -c +25` when debugging a drive.
        let body = serde_json::to_vec_pretty(self).expect("drive format serialises");
        encode_frame(DRIVE_FORMAT_MAGIC, DRIVE_FORMAT_VERSION, &body)
    }

    /// Decodes a format file; one that contradicts itself (a position outside its set, a
    /// set whose ids do not match its size) is refused.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let (_version, body) = decode_frame(DRIVE_FORMAT_MAGIC, DRIVE_FORMAT_VERSION, bytes)?;
        let format: DriveFormat = serde_json::from_slice(body).map_err(|e| FormatError::Body(e.to_string()))?;
        format.validate().map_err(FormatError::Body)?;
        Ok(format)
    }

    /// Checks the format on its own.
    pub fn validate(&self) -> Result<(), String> {
        if self.set_drive_ids.len() != self.set_drives as usize {
            return Err(format!("{} drive ids for a set of {}", self.set_drive_ids.len(), self.set_drives));
        }
        if self.drive_index >= self.set_drives {
            return Err(format!("position {} is outside a set of {}", self.drive_index, self.set_drives));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let format = DriveFormat {
            cluster_id: Uuid::from_u128(1),
            drive_id: Uuid::from_u128(2),
            set_index: 0,
            drive_index: 3,
            set_drives: 4,
            set_drive_ids: (0..4).map(|i| Uuid::from_u128(10 + i)).collect(),
        };
        assert_eq!(DriveFormat::decode(&format.encode()), Ok(format));
    }
}
