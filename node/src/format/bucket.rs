//! A bucket's metadata file (`%bucket` on every drive): a JSON body in a frame. Fields
//! added after version 1 are left out while they have their default value, so the file
//! of a bucket that never used them is byte for byte what version 1 wrote (and builds
//! that do not know them read such a file unchanged).

use serde::{Deserialize, Serialize};

use super::JsonFile;
use super::object::RetentionMode;

pub const BUCKET_META_MAGIC: &[u8; 8] = b"BKTBUCKT";
pub const BUCKET_META_VERSION: u16 = 1;

/// A bucket's versioning state. Once versioned, a bucket is Enabled or Suspended, never
/// Unversioned again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Versioning {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

impl Versioning {
    pub fn is_unversioned(&self) -> bool {
        *self == Versioning::Unversioned
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketMeta {
    pub created_ns: i64,
    #[serde(default, skip_serializing_if = "Versioning::is_unversioned")]
    pub versioning: Versioning,
    /// When the settings last changed (0: never since creation); the newest a quorum of
    /// drives holds is the bucket's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated_ns: i64,
    /// Object lock, once enabled (it never goes away).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLockConfig>,
}

/// A bucket's object lock configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockConfig {
    /// Retention every new version gets unless its write names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_retention: Option<DefaultRetention>,
}

/// A default retention: a mode and a period in days or years (exactly one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: RetentionMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub years: Option<u32>,
}

impl DefaultRetention {
    /// The period in nanoseconds (a year is 365 days, as S3 counts it).
    pub fn period_ns(&self) -> i64 {
        const DAY_NS: i64 = 86_400 * 1_000_000_000;
        let days = i64::from(self.days.unwrap_or(0)) + i64::from(self.years.unwrap_or(0)) * 365;
        days.saturating_mul(DAY_NS)
    }
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

impl JsonFile for BucketMeta {
    const MAGIC: &'static [u8; 8] = BUCKET_META_MAGIC;
    const VERSION: u16 = BUCKET_META_VERSION;
}
