//! The S3 actions a policy may name, as AWS names them (`s3:GetObject`). A policy naming an
//! action outside this list, or a wildcard that matches none, is malformed.

pub const S3_ACTIONS: &[&str] = &[
    "s3:AbortMultipartUpload",
    "s3:BypassGovernanceRetention",
    "s3:CreateBucket",
    "s3:DeleteBucket",
    "s3:DeleteBucketPolicy",
    "s3:DeleteBucketWebsite",
    "s3:DeleteObject",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersion",
    "s3:DeleteObjectVersionTagging",
    "s3:GetAccelerateConfiguration",
    "s3:GetBucketAcl",
    "s3:GetBucketCORS",
    "s3:GetBucketLocation",
    "s3:GetBucketLogging",
    "s3:GetBucketNotification",
    "s3:GetBucketObjectLockConfiguration",
    "s3:GetBucketOwnershipControls",
    "s3:GetBucketPolicy",
    "s3:GetBucketPolicyStatus",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketRequestPayment",
    "s3:GetBucketTagging",
    "s3:GetBucketVersioning",
    "s3:GetBucketWebsite",
    "s3:GetEncryptionConfiguration",
    "s3:GetLifecycleConfiguration",
    "s3:GetObject",
    "s3:GetObjectAcl",
    "s3:GetObjectAttributes",
    "s3:GetObjectLegalHold",
    "s3:GetObjectRetention",
    "s3:GetObjectTagging",
    "s3:GetObjectTorrent",
    "s3:GetObjectVersion",
    "s3:GetObjectVersionAcl",
    "s3:GetObjectVersionAttributes",
    "s3:GetObjectVersionTagging",
    "s3:GetReplicationConfiguration",
    "s3:ListAllMyBuckets",
    "s3:ListBucket",
    "s3:ListBucketMultipartUploads",
    "s3:ListBucketVersions",
    "s3:ListMultipartUploadParts",
    "s3:PutAccelerateConfiguration",
    "s3:PutBucketAcl",
    "s3:PutBucketCORS",
    "s3:PutBucketLogging",
    "s3:PutBucketNotification",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPolicy",
    "s3:PutBucketPublicAccessBlock",
    "s3:PutBucketRequestPayment",
    "s3:PutBucketTagging",
    "s3:PutBucketVersioning",
    "s3:PutBucketWebsite",
    "s3:PutEncryptionConfiguration",
    "s3:PutLifecycleConfiguration",
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectLegalHold",
    "s3:PutObjectRetention",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectVersionTagging",
    "s3:PutReplicationConfiguration",
    "s3:ReplicateDelete",
    "s3:ReplicateObject",
    "s3:RestoreObject",
];

/// Whether `pattern` (from a policy) names at least one S3 action: `*`, `s3:*`, an exact
/// name or a wildcard over names, compared without regard to case as AWS does.
pub fn is_known(pattern: &str) -> bool {
    S3_ACTIONS.iter().any(|action| super::pattern::matches(pattern, action, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_wildcards_and_unknowns() {
        for known in ["*", "s3:*", "s3:GetObject", "S3:getobject", "s3:Get*", "s3:*Object", "s3:List?ucket"] {
            assert!(is_known(known), "{known}");
        }
        for unknown in ["s3:GetObjects", "s3:Fly*", "ec2:*", "GetObject", "s3:", ""] {
            assert!(!is_known(unknown), "{unknown}");
        }
        let mut sorted = S3_ACTIONS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, S3_ACTIONS, "kept sorted, without duplicates");
        sorted.dedup();
        assert_eq!(sorted.len(), S3_ACTIONS.len());
    }
}
