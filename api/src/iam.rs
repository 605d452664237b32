//! Users, access keys, groups and policies on the admin API (`/admin/v1/iam/…`): the
//! documents `buckets-admin` and the operator send and read. A secret key crosses the
//! wire once, in the answer that creates it (`CreatedKey`).

use serde::{Deserialize, Serialize};

/// `POST /iam/users`, `POST /iam/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewName {
    pub name: String,
}

/// An access key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub access_key: String,
    pub user: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds; none: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// `POST /iam/users/NAME/keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewKey {
    /// Unix seconds; none: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// The answer that creates a key: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatedKey {
    pub user: String,
    pub access_key: String,
    pub secret_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub name: String,
    /// Stable for the user's life: the id Owner fields and ACL grants name.
    pub canonical_id: String,
    pub arn: String,
    pub enabled: bool,
    /// Unix seconds.
    pub created: u64,
    /// Policies attached to the user itself.
    pub policies: Vec<String>,
    pub groups: Vec<String>,
    pub keys: Vec<KeyInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub members: Vec<String>,
    pub policies: Vec<String>,
}

/// `POST /iam/groups/NAME/members`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberChange {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `POST /iam/policies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPolicy {
    pub name: String,
    /// The policy document, as JSON text.
    pub document: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInfo {
    pub name: String,
    /// Built in (`readwrite`, `readonly`, `writeonly`, `admin`): cannot be changed.
    pub builtin: bool,
    pub document: serde_json::Value,
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

/// `POST /iam/policies/NAME/attach` and `…/detach`: one user or one group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}
