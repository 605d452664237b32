//! Buckets on the admin API (`/admin/v1/buckets/NAME`): the documents the operator (and
//! `buckets-admin bucket`) send to declare a bucket — created if absent, its versioning,
//! object lock and policy — and read back.

use serde::{Deserialize, Serialize};

/// A bucket's versioning once it has been turned on (a bucket never becomes unversioned
/// again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketVersioning {
    Enabled,
    Suspended,
}

impl BucketVersioning {
    pub fn as_str(self) -> &'static str {
        match self {
            BucketVersioning::Enabled => "Enabled",
            BucketVersioning::Suspended => "Suspended",
        }
    }
}

/// `PUT /buckets/NAME`: the bucket as it should be. The bucket is created when absent
/// (with object lock when asked: it cannot be turned on or off later); versioning is
/// changed when given (none: left as it is); the policy is stored (checked as
/// PutBucketPolicy checks it) or, when none, removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutBucket {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning: Option<BucketVersioning>,
    #[serde(default)]
    pub object_lock: bool,
    /// The bucket policy: a JSON document, or the document as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<serde_json::Value>,
}

/// `GET /buckets/NAME` and the answer to `PUT`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketInfo {
    pub name: String,
    /// Unix seconds.
    pub created: u64,
    /// None: never versioned.
    pub versioning: Option<BucketVersioning>,
    pub object_lock: bool,
    /// The bucket policy as stored (JSON), if any.
    pub policy: Option<serde_json::Value>,
    /// Holds no object, version or delete marker (so it can be deleted).
    pub empty: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declaration_reads_with_defaults_and_keeps_its_json_names() {
        let put: PutBucket = serde_json::from_str("{}").unwrap();
        assert_eq!(put, PutBucket::default());
        let put: PutBucket = serde_json::from_str(
            r#"{"versioning": "Suspended", "objectLock": true, "policy": {"Version": "2012-10-17"}}"#,
        )
        .unwrap();
        assert_eq!(put.versioning, Some(BucketVersioning::Suspended));
        assert!(put.object_lock);
        assert_eq!(put.policy.unwrap()["Version"], "2012-10-17");
        assert!(serde_json::from_str::<PutBucket>(r#"{"versioning": "Unversioned"}"#).is_err());
    }
}
