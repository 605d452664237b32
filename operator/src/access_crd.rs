//! The access custom resources: `BucketsUser` (`bu`), `BucketsPolicy` (`bpol`) and
//! `BucketsBucket` (`bb`), group `buckets.io`, version `v1alpha1`, each naming a
//! BucketsCluster of its namespace (`spec.clusterRef`). They declare identity and access
//! in a cluster (users and their key Secrets, IAM policies, buckets) that the access
//! reconcilers (`access`) carry out through the admin API. Must never hold logic beyond
//! defaults and names.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::Condition;

/// The BucketsCluster an access resource belongs to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ClusterRef {
    /// Name of a BucketsCluster in the same namespace.
    #[schemars(length(min = 1))]
    pub name: String,
}

/// A user of a Buckets cluster (its name is the resource's), with its policies and
/// groups, and an access key the operator writes into a Secret for applications to mount.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "buckets.io",
    version = "v1alpha1",
    kind = "BucketsUser",
    namespaced,
    shortname = "bu",
    category = "buckets",
    status = "BucketsUserStatus",
    doc = "A user of a BucketsCluster, its policies, and its access key in a Secret.",
    validation = Rule::new("self.metadata.name.size() <= 64")
        .message("a user's name (the resource's name) is at most 64 characters"),
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name"}"#,
    printcolumn = r#"{"name": "Secret", "type": "string", "jsonPath": ".status.secretName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketsUserSpec {
    /// The BucketsCluster (same namespace) the user lives in. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable: create a new user instead"))]
    pub cluster_ref: ClusterRef,
    /// Policies attached to the user: built in (readwrite, readonly, writeonly, admin) or
    /// the names of policies in the cluster (BucketsPolicy resources, or made with
    /// buckets-admin). Policies attached otherwise and not listed here are detached.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Groups (made with buckets-admin) the user belongs to; it leaves the others.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Secret that receives the access key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_ENDPOINT_URL, AWS_REGION); default `<name>-credentials`. Deleting the Secret
    /// makes a new key and revokes the old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// What the operator last did for a BucketsUser.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketsUserStatus {
    /// Ready: the user, its policies and its key Secret are as the spec says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The .metadata.generation this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// The Secret holding the user's access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The access key in the Secret (not its secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
}

/// An IAM policy of a Buckets cluster (its name is the resource's), in the AWS IAM policy
/// language, to attach to BucketsUsers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "buckets.io",
    version = "v1alpha1",
    kind = "BucketsPolicy",
    namespaced,
    shortname = "bpol",
    category = "buckets",
    status = "BucketsPolicyStatus",
    doc = "An IAM policy (AWS policy language) in a BucketsCluster.",
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketsPolicySpec {
    /// The BucketsCluster (same namespace) the policy lives in. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable: create a new policy instead"))]
    pub cluster_ref: ClusterRef,
    /// The policy document (Version, Statement, …) written as YAML or JSON; checked by
    /// the cluster as AWS checks identity policies (docs/policies.md).
    #[schemars(schema_with = "any_document")]
    pub document: serde_json::Value,
}

/// What the operator last did for a BucketsPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketsPolicyStatus {
    /// Ready: the cluster holds the policy as the spec says (False with the cluster's
    /// reason when it refuses the document).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The .metadata.generation this status describes.
    #[serde(default)]
    pub observed_generation: i64,
}

/// A bucket of a Buckets cluster: its versioning, object lock and bucket policy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "buckets.io",
    version = "v1alpha1",
    kind = "BucketsBucket",
    namespaced,
    shortname = "bb",
    category = "buckets",
    status = "BucketsBucketStatus",
    doc = "A bucket in a BucketsCluster, with its versioning, object lock and policy.",
    validation = Rule::new("has(self.spec.bucketName) == has(oldSelf.spec.bucketName)")
        .message("bucketName is immutable: create a new bucket instead"),
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.clusterRef.name"}"#,
    printcolumn = r#"{"name": "Bucket", "type": "string", "jsonPath": ".status.bucketName"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketsBucketSpec {
    /// The BucketsCluster (same namespace) the bucket lives in. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterRef is immutable: create a new bucket instead"))]
    pub cluster_ref: ClusterRef,
    /// The bucket's name (S3 rules: 3–63 lowercase letters, digits, dots and hyphens);
    /// default the resource's name. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("bucketName is immutable: create a new bucket instead"))]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"))]
    pub bucket_name: Option<String>,
    /// Enabled or Suspended; absent: left as it is (a bucket never becomes unversioned
    /// again once versioned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Enabled|Suspended)$"))]
    pub versioning: Option<String>,
    /// Create the bucket with S3 Object Lock (and versioning Enabled). Only at creation:
    /// immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("objectLock is immutable: it is decided when the bucket is created"))]
    pub object_lock: bool,
    /// The bucket policy (Version, Statement with Principal, …) written as YAML or JSON;
    /// absent: the bucket has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_document")]
    pub policy: Option<serde_json::Value>,
    /// What deleting this resource does to the bucket: DeleteIfEmpty (the bucket is
    /// deleted once it holds nothing; until then the resource stays, saying so) or
    /// Retain (the bucket and its objects stay).
    #[serde(default = "default_deletion_policy")]
    #[schemars(regex(pattern = r"^(DeleteIfEmpty|Retain)$"))]
    pub deletion_policy: String,
}

/// What the operator last did for a BucketsBucket.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketsBucketStatus {
    /// Ready: the bucket exists with the spec's settings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The .metadata.generation this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// The bucket's name in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_name: Option<String>,
}

pub const DELETE_IF_EMPTY: &str = "DeleteIfEmpty";
pub const RETAIN: &str = "Retain";

fn default_deletion_policy() -> String {
    DELETE_IF_EMPTY.into()
}

/// A policy document kept as written (the cluster checks it).
fn any_document(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

impl BucketsUser {
    /// The Secret that holds the user's key.
    pub fn secret_name(&self) -> String {
        use kube::ResourceExt;
        self.spec.secret_name.clone().unwrap_or_else(|| format!("{}-credentials", self.name_any()))
    }
}

impl BucketsBucket {
    /// The bucket's name in the cluster.
    pub fn bucket_name(&self) -> String {
        use kube::ResourceExt;
        self.spec.bucket_name.clone().unwrap_or_else(|| self.name_any())
    }
}
