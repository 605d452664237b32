//! A bucket's metadata file (`%bucket` on every drive): a JSON body in a frame. Fields
//! added after version 1 are left out while they have their default value, so the file
//! of a bucket that never used them is byte for byte what version 1 wrote (and builds
//! that do not know them read such a file unchanged).

use serde::{Deserialize, Serialize};

use super::JsonFile;
use super::acl::{Grant, ObjectOwnership};
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
    /// Lifecycle rules, when the bucket has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lifecycle: Vec<LifecycleRule>,
    /// The bucket policy as its owner gave it (checked when stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The bucket's Block Public Access switches, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_access_block: Option<PublicAccessBlock>,
    /// CORS rules, when the bucket has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cors: Vec<CorsRule>,
    /// Canonical id of the user who owns the bucket (absent: the root user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Object Ownership (absent: BucketOwnerEnforced, ACLs disabled).
    #[serde(default, skip_serializing_if = "ObjectOwnership::is_default")]
    pub ownership: ObjectOwnership,
    /// The bucket's ACL grants (absent: the owner alone, with FULL_CONTROL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<Grant>>,
}

/// One CORS rule, as PutBucketCors validated it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

/// S3's Block Public Access switches of a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse requests that set a public ACL.
    pub block_public_acls: bool,
    /// Ignore public ACLs when deciding requests.
    pub ignore_public_acls: bool,
    /// Refuse a bucket policy that grants public access.
    pub block_public_policy: bool,
    /// With a public policy, only the account's own users get what it grants.
    pub restrict_public_buckets: bool,
}

/// One lifecycle rule, as PutBucketLifecycleConfiguration validated it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRule {
    pub id: String,
    pub enabled: bool,
    pub filter: LifecycleFilter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<Expiration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_incomplete_upload_days: Option<u32>,
}

/// Which objects a rule applies to: all of the conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleFilter {
    #[serde(default)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
}

/// When the current version of an object expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expiration {
    /// This many days after it was written.
    Days(u32),
    /// On this date (Unix nanoseconds, a midnight UTC).
    Date(i64),
    /// A delete marker that is the only version left goes.
    ExpiredObjectDeleteMarker,
}

/// When noncurrent versions expire: this many days after they became noncurrent, keeping
/// the newest `newer_noncurrent_versions` of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    pub noncurrent_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
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
