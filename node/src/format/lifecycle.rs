//! The lifecycle worker's checkpoint of one set (`lifecycle-<set>.bkt` on the set's
//! drives): where its current pass over the set's keys stands, so a restarted node goes on
//! from there. A JSON body in a frame.

use serde::{Deserialize, Serialize};

use super::JsonFile;

pub const LIFECYCLE_MAGIC: &[u8; 8] = b"BKTLIFEC";
pub const LIFECYCLE_VERSION: u16 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleProgress {
    /// Written after each page; the highest is the newest checkpoint.
    pub seq: u64,
    /// Passes finished over the set.
    pub passes: u64,
    /// When the current pass started (Unix nanoseconds; 0 between passes).
    pub pass_started_ns: i64,
    /// The bucket the pass is in, and the last key it handled there.
    pub bucket: String,
    pub after: String,
}

impl JsonFile for LifecycleProgress {
    const MAGIC: &'static [u8; 8] = LIFECYCLE_MAGIC;
    const VERSION: u16 = LIFECYCLE_VERSION;
}
