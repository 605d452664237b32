//! The identity store (`iam.bkt` in the system bucket `.buckets-iam`, one copy in every
//! set): users with their access keys, groups and policies, as one document with a
//! revision that every change raises. A JSON body in a frame. Secret keys are stored
//! sealed (`sealed_secret`: base64 of nonce and ChaCha20-Poly1305 ciphertext under a key
//! derived from the cluster secret), never in the clear.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::JsonFile;

pub const IAM_MAGIC: &[u8; 8] = b"BKTIAMDB";
pub const IAM_VERSION: u16 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamDoc {
    /// Raised by every change; the highest revision any set holds is the current one.
    pub revision: u64,
    #[serde(default)]
    pub users: BTreeMap<String, StoredUser>,
    #[serde(default)]
    pub groups: BTreeMap<String, StoredGroup>,
    /// Policies made by users (the built-in ones are not stored).
    #[serde(default)]
    pub policies: BTreeMap<String, StoredPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    /// Stable for the user's life (64 hex digits, as S3's canonical ids).
    pub canonical_id: String,
    pub enabled: bool,
    /// Unix seconds.
    pub created: u64,
    /// Names of the policies attached to the user.
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub keys: Vec<StoredKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub access_key: String,
    pub sealed_secret: String,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub created: u64,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub created: u64,
    /// The document as the user gave it (checked when stored).
    pub document: String,
}

impl JsonFile for IamDoc {
    const MAGIC: &'static [u8; 8] = IAM_MAGIC;
    const VERSION: u16 = IAM_VERSION;
}
