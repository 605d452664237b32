//! Access control lists as they are kept: a bucket's in its metadata file, an object's
//! in one stored header of its version (`x-buckets-acl`, a JSON body), which GET and HEAD
//! never answer with. Absent means the default: the owner alone, with FULL_CONTROL.

use serde::{Deserialize, Serialize};

/// The stored header that carries an object version's owner and ACL.
pub const OBJECT_ACL_HEADER: &str = "x-buckets-acl";

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Grantee {
    /// A user, by canonical id.
    User(String),
    /// Everyone, signed or not.
    AllUsers,
    /// Every signed request of a known user.
    AuthenticatedUsers,
    /// The log delivery group (kept and answered; nothing here delivers logs).
    LogDelivery,
}

/// What a grant allows (S3's five ACL permissions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AclPermission {
    Read,
    Write,
    ReadAcp,
    WriteAcp,
    FullControl,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Grant {
    pub grantee: Grantee,
    pub permission: AclPermission,
}

/// Who owns the objects written to a bucket, and whether ACLs count (S3 Object Ownership).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectOwnership {
    /// ACLs are disabled: the bucket owner owns every object; only policies grant access.
    /// S3's default for new buckets, and what buckets made before ACLs existed here have.
    #[default]
    BucketOwnerEnforced,
    /// An object written with the `bucket-owner-full-control` ACL is the bucket owner's.
    BucketOwnerPreferred,
    /// The writer owns the object.
    ObjectWriter,
    /// Ownership controls were deleted: ACLs count and the writer owns objects.
    Unset,
}

impl ObjectOwnership {
    pub fn is_default(&self) -> bool {
        *self == ObjectOwnership::BucketOwnerEnforced
    }

    pub fn acls_enabled(&self) -> bool {
        *self != ObjectOwnership::BucketOwnerEnforced
    }
}

/// An object version's owner and grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAcl {
    /// Canonical id of the owner.
    pub owner: String,
    pub grants: Vec<Grant>,
}

impl ObjectAcl {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an ACL serializes")
    }

    /// `None` for a value this build cannot read (never a panic).
    pub fn decode(value: &str) -> Option<ObjectAcl> {
        serde_json::from_str(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's JSON as version 1 writes it: later builds must read it unchanged.
    const OBJECT_ACL_V1: &str = r#"{"owner":"7a1f","grants":[{"grantee":{"User":"7a1f"},"permission":"FullControl"},{"grantee":"AllUsers","permission":"Read"}]}"#;

    #[test]
    fn object_acl_header_reads_as_version_1_wrote_it() {
        let acl = ObjectAcl {
            owner: "7a1f".into(),
            grants: vec![
                Grant { grantee: Grantee::User("7a1f".into()), permission: AclPermission::FullControl },
                Grant { grantee: Grantee::AllUsers, permission: AclPermission::Read },
            ],
        };
        assert_eq!(acl.encode(), OBJECT_ACL_V1);
        assert_eq!(ObjectAcl::decode(OBJECT_ACL_V1), Some(acl));
        assert_eq!(ObjectAcl::decode("{\"owner\":1}"), None);
        assert_eq!(ObjectAcl::decode(""), None);
    }
}
