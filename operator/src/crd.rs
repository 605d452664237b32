//! The custom resources: `BucketsCluster` (`bc`) and `BucketsPool` (`bp`), group
//! `buckets.io`, version `v1alpha1`. Their schemas (descriptions, defaults, CEL rules,
//! printer columns, subresources) are generated from these types; `crds/*.yaml` is the
//! output of `buckets-operator crd`. Must never hold logic beyond defaults and names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "buckets.io";
pub const VERSION: &str = "v1alpha1";
/// S3 port of every node container.
pub const S3_PORT: i32 = 9000;
/// Admin, metrics, health and peer RPC port of every node container.
pub const ADMIN_PORT: i32 = 9001;

// Printer columns use kube's raw-JSON form: with the typed form, clippy (not rustc) reports
// two columns of the same type as a "duplicated attribute" (kube-derive 5.0 / darling).

/// A Buckets object store: the nodes of every BucketsPool that names it, one S3 endpoint,
/// one topology. The cluster owns the credentials, the Services and the disruption budget;
/// capacity comes from its pools.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "buckets.io",
    version = "v1alpha1",
    kind = "BucketsCluster",
    namespaced,
    shortname = "bc",
    category = "buckets",
    status = "BucketsClusterStatus",
    doc = "A Buckets object store: S3 over the erasure sets of its BucketsPools.",
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Sets", "type": "integer", "jsonPath": ".status.activeSets"}"#,
    printcolumn = r#"{"name": "Migration", "type": "string", "jsonPath": ".status.migration.progress"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BucketsClusterSpec {
    /// Container image of buckets-node.
    #[serde(default = "default_image")]
    pub image: String,
    /// When the kubelet pulls the image: Always, IfNotPresent or Never.
    #[serde(default = "default_pull_policy")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: String,
    /// Secret with the root credentials (keys `rootUser` and `rootPassword`). Created with
    /// random values when it does not exist; never overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_credentials_secret: Option<String>,
    /// S3 region the nodes report and check in signatures.
    #[serde(default = "default_region")]
    pub region: String,
    /// The S3 client Service.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Migration bandwidth limit in bytes per second applied after each topology change
    /// (0: unlimited).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub migration_bytes_per_second: i64,
    /// Prometheus Operator integration.
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    /// Extra environment variables for every node container (for example BUCKETS_LOG).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// The S3 client Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type: ClusterIP, NodePort or LoadBalancer.
    #[serde(default = "default_service_type")]
    #[schemars(regex(pattern = r"^(ClusterIP|NodePort|LoadBalancer)$"))]
    pub r#type: String,
    /// S3 port of the Service.
    #[serde(default = "default_service_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Annotations for the Service (load balancer settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec { r#type: default_service_type(), port: default_service_port(), annotations: BTreeMap::new() }
    }
}

/// Prometheus Operator integration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Create a ServiceMonitor for the nodes' /metrics when the monitoring.coreos.com CRD
    /// exists in the cluster.
    #[serde(default = "default_true")]
    pub service_monitor: bool,
    /// Scrape interval of the ServiceMonitor.
    #[serde(default = "default_scrape_interval")]
    pub interval: String,
    /// Extra labels for the ServiceMonitor (to match a Prometheus serviceMonitorSelector).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        MonitoringSpec { service_monitor: true, interval: default_scrape_interval(), labels: BTreeMap::new() }
    }
}

/// A group of nodes with the same shape, cut into erasure sets of `setSize` drives: one
/// StatefulSet. Scaling `replicas` adds or drains whole sets.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "buckets.io",
    version = "v1alpha1",
    kind = "BucketsPool",
    namespaced,
    shortname = "bp",
    category = "buckets",
    status = "BucketsPoolStatus",
    doc = "Nodes of one shape in a BucketsCluster, cut into erasure sets; one StatefulSet.",
    validation = Rule::new("self.metadata.name.size() + self.spec.cluster.size() <= 51")
        .message("cluster and pool names together must be at most 51 characters (they name the StatefulSet and its pods)"),
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"}"#,
    printcolumn = r#"{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}"#,
    printcolumn = r#"{"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas"}"#,
    printcolumn = r#"{"name": "Sets", "type": "integer", "jsonPath": ".status.activeSets"}"#,
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("(self.replicas * self.drivesPerNode) % self.setSize == 0")
        .message("replicas × drivesPerNode must be a multiple of setSize: the pool is cut into whole erasure sets")
)]
#[serde(rename_all = "camelCase")]
pub struct BucketsPoolSpec {
    /// Name of the BucketsCluster (same namespace) this pool belongs to. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster is immutable: create a new pool instead"))]
    #[schemars(length(min = 1, max = 40))]
    pub cluster: String,
    /// Number of nodes. Each step of setSize / drivesPerNode nodes adds or drains one
    /// erasure set; 0 drains and retires every set of the pool.
    #[schemars(range(min = 0, max = 1024))]
    pub replicas: i32,
    /// Drives (persistent volume claims) per node. Immutable.
    #[serde(default = "default_drives_per_node")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("drivesPerNode is immutable: create a new pool instead"))]
    #[schemars(range(min = 1, max = 16))]
    pub drives_per_node: i32,
    /// Drives per erasure set, 4 to 16 (parity 2 for 4–5, 3 for 6–7, 4 for 8 and more).
    /// Immutable.
    #[serde(default = "default_set_size")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("setSize is immutable: create a new pool instead"))]
    #[x_kube(validation = Rule::new("self >= 4 && self <= 16").message("setSize must be between 4 and 16"))]
    pub set_size: i32,
    /// Volume of every drive. Immutable (it is the StatefulSet's claim template).
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage is immutable: create a new pool instead"))]
    pub storage: StorageSpec,
    /// CPU and memory of every node container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub resources: Option<ResourceRequirements>,
    /// Node selector for the pool's pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for the pool's pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "any_object_list")]
    pub tolerations: Vec<Toleration>,
    /// Affinity for the pool's pods; when absent, pods of the pool prefer distinct hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub affinity: Option<Affinity>,
    /// What happens to the drives' claims when pods go away.
    #[serde(default)]
    pub pvc_retention: PvcRetentionSpec,
}

/// The volume claim template of every drive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each drive, for example 100Gi.
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"))]
    pub size: String,
    /// Storage class of the claims (the cluster default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// The StatefulSet's persistentVolumeClaimRetentionPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PvcRetentionSpec {
    /// Claims of nodes removed by a scale down (their sets were drained first): Delete or
    /// Retain.
    #[serde(default = "default_delete")]
    #[schemars(regex(pattern = r"^(Retain|Delete)$"))]
    pub when_scaled: String,
    /// Claims left when the pool is deleted: Retain or Delete.
    #[serde(default = "default_retain")]
    #[schemars(regex(pattern = r"^(Retain|Delete)$"))]
    pub when_deleted: String,
}

impl Default for PvcRetentionSpec {
    fn default() -> Self {
        PvcRetentionSpec { when_scaled: default_delete(), when_deleted: default_retain() }
    }
}

/// A condition in the Kubernetes style (`type`, `status`, `reason`, `message`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Progressing or Degraded.
    pub r#type: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// One CamelCase word for machines.
    pub reason: String,
    /// What happened, for people.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The .metadata.generation the condition was computed from.
    #[serde(default)]
    pub observed_generation: i64,
}

/// What the operator last saw of a BucketsCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketsClusterStatus {
    /// Provisioning, Bootstrapping, Ready, Scaling, Degraded or Deleting.
    #[serde(default)]
    pub phase: String,
    /// Ready, Progressing and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The .metadata.generation this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// Generation of the cluster's topology (changes with every set added, drained or
    /// removed; 0 before bootstrap).
    #[serde(default)]
    pub topology_generation: i64,
    /// Erasure sets receiving new objects.
    #[serde(default)]
    pub active_sets: i32,
    /// Per pool: nodes and sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolSummary>,
    /// Every set of the topology with its state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sets: Vec<SetStatus>,
    /// Progress of the data migration after the last topology change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationProgress>,
    /// The topology step in flight (kept here so a restarted operator resumes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// One pool as the cluster sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolSummary {
    /// The BucketsPool's name.
    pub name: String,
    /// Nodes the pool's spec asks for.
    pub replicas: i32,
    /// Nodes ready now.
    pub ready_replicas: i32,
    /// Active sets of the pool.
    pub active_sets: i32,
    /// Sets being drained.
    pub draining_sets: i32,
}

/// One erasure set of the topology.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetStatus {
    /// The set's id in the topology (never reused).
    pub id: i64,
    /// Pool holding the set's drives.
    pub pool: String,
    /// Position of the set in its pool (drives of nodes index × nodesPerSet onwards).
    pub index: i32,
    /// Active, Draining or Removed.
    pub state: String,
}

/// Migration progress as the nodes report it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationProgress {
    /// idle, running, pausing, paused or done.
    pub state: String,
    /// Percent done, 0–100.
    pub percent: i32,
    /// Percent as text for the printer column ("42%"; "-" when idle).
    pub progress: String,
    /// Objects moved so far.
    pub objects_moved: i64,
    /// Objects that must move.
    pub objects_total: i64,
    /// Object bytes moved so far.
    pub bytes_moved: i64,
    /// Object bytes that must move.
    pub bytes_total: i64,
    /// Average bytes per second since the migration started.
    pub rate_bytes_per_second: i64,
    /// Seconds left at the current rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<i64>,
    /// The last error a move met (it is retried by the next pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A topology step the operator started and has not finished.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Bootstrap, ScaleUp, ScaleDown or DeletePool.
    pub kind: OperationKind,
    /// The pool it changes (empty for Bootstrap).
    #[serde(default)]
    pub pool: String,
    /// Sets the pool has when the step is done.
    pub target_sets: i32,
    /// The step's current stage: WaitingForPods, Bootstrapping, AddingSets, Migrating,
    /// Draining, Removing or Shrinking.
    pub stage: OperationStage,
    /// When the step started (RFC 3339).
    pub started_at: String,
}

/// What a topology step does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OperationKind {
    /// The cluster's first topology.
    Bootstrap,
    /// Sets added to a pool.
    ScaleUp,
    /// A pool's highest sets drained and removed.
    ScaleDown,
    /// Every set of a deleted pool drained and removed.
    DeletePool,
}

/// Where a topology step stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OperationStage {
    WaitingForPods,
    Bootstrapping,
    AddingSets,
    Migrating,
    Draining,
    Removing,
    Shrinking,
}

/// The names in the status (serde's, which the CRD's enum lists): the Progressing
/// condition's reason is kind and stage run together.
macro_rules! display_as_debug {
    ($($name:ident),*) => {$(
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self, f)
            }
        }
    )*};
}
display_as_debug!(OperationKind, OperationStage);

/// What the operator last saw of a BucketsPool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketsPoolStatus {
    /// Nodes (pods) of the pool's StatefulSet; the scale subresource reads it.
    #[serde(default)]
    pub replicas: i32,
    /// Label selector of the pool's pods (for the scale subresource).
    #[serde(default)]
    pub selector: String,
    /// Nodes of the pool that answer (serving, or waiting to join).
    #[serde(default)]
    pub ready_replicas: i32,
    /// Sets of the pool receiving new objects.
    #[serde(default)]
    pub active_sets: i32,
    /// Pending, Ready, Scaling, Draining, Refused or Deleting.
    #[serde(default)]
    pub phase: String,
    /// Progressing: the cluster's step for this pool, or why a request was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The .metadata.generation this status describes.
    #[serde(default)]
    pub observed_generation: i64,
}

/// Schema of an embedded Kubernetes type kept as-is (the API server checks it when it
/// lands in the StatefulSet).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn any_object_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

fn default_image() -> String {
    format!("buckets/buckets-node:{}", env!("CARGO_PKG_VERSION"))
}
fn default_pull_policy() -> String {
    "IfNotPresent".into()
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_service_type() -> String {
    "ClusterIP".into()
}
fn default_service_port() -> i32 {
    S3_PORT
}
fn default_true() -> bool {
    true
}
fn default_scrape_interval() -> String {
    "30s".into()
}
fn default_drives_per_node() -> i32 {
    1
}
fn default_set_size() -> i32 {
    4
}
fn default_delete() -> String {
    "Delete".into()
}
fn default_retain() -> String {
    "Retain".into()
}

/// Default parity of a set of `set_size` drives (what the nodes use).
pub fn parity_for(set_size: i32) -> i32 {
    match set_size {
        ..=5 => 2,
        6..=7 => 3,
        _ => 4,
    }
}

/// Every CRD as (file name, YAML), in the order they are applied. The files in `crds/`
/// and the chart's `crds/` are exactly these (a test checks it).
pub fn crd_files() -> Result<Vec<(String, String)>, serde_saphyr::ser::Error> {
    use crate::access_crd::{BucketsBucket, BucketsPolicy, BucketsUser};
    use kube::CustomResourceExt;
    let header = "# Generated by `buckets-operator crd`; do not edit (see crds/README.md).\n";
    Ok(vec![
        (
            format!("{}.yaml", BucketsCluster::crd_name()),
            format!("{header}{}", serde_saphyr::to_string(&BucketsCluster::crd())?),
        ),
        (
            format!("{}.yaml", BucketsPool::crd_name()),
            format!("{header}{}", serde_saphyr::to_string(&BucketsPool::crd())?),
        ),
        (
            format!("{}.yaml", BucketsUser::crd_name()),
            format!("{header}{}", serde_saphyr::to_string(&BucketsUser::crd())?),
        ),
        (
            format!("{}.yaml", BucketsPolicy::crd_name()),
            format!("{header}{}", serde_saphyr::to_string(&BucketsPolicy::crd())?),
        ),
        (
            format!("{}.yaml", BucketsBucket::crd_name()),
            format!("{header}{}", serde_saphyr::to_string(&BucketsBucket::crd())?),
        ),
    ])
}

/// The CRDs as one multi-document YAML stream.
pub fn crd_yaml() -> Result<String, serde_saphyr::ser::Error> {
    Ok(crd_files()?.into_iter().map(|(_, yaml)| format!("---\n{yaml}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `crds/` and the chart's copy are the generator's output; regenerate with
    /// `cargo run -p buckets-operator -- crd --output-dir crds` (and the chart's dir).
    #[test]
    fn committed_crds_are_current() {
        let root = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
        )
        .join("..");
        for dir in ["crds", "charts/buckets-operator/crds"] {
            for (name, yaml) in crd_files().unwrap() {
                let path = root.join(dir).join(&name);
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(
                    committed == yaml,
                    "{} is stale: run `cargo run -p buckets-operator -- crd --output-dir {dir}`",
                    path.display()
                );
            }
        }
    }

    /// `kubectl explain` teaches every field: each property of both schemas, nested ones
    /// included, has a description.
    #[test]
    fn every_field_is_described() {
        use kube::CustomResourceExt;
        fn walk(schema: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
            if let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) {
                for (name, property) in properties {
                    let here = format!("{path}.{name}");
                    let described = property.get("description").and_then(|d| d.as_str()).is_some_and(|d| !d.is_empty());
                    if !described && !matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
                        missing.push(here.clone());
                    }
                    walk(property, &here, missing);
                }
            }
            if let Some(items) = schema.get("items") {
                walk(items, &format!("{path}[]"), missing);
            }
        }
        use crate::access_crd::{BucketsBucket, BucketsPolicy, BucketsUser};
        for crd in
            [BucketsCluster::crd(), BucketsPool::crd(), BucketsUser::crd(), BucketsPolicy::crd(), BucketsBucket::crd()]
        {
            let json = serde_json::to_value(&crd).unwrap();
            let mut missing = Vec::new();
            walk(&json["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "", &mut missing);
            assert!(missing.is_empty(), "{}: fields without a description: {missing:?}", crd.spec.names.kind);
        }
    }

    #[test]
    fn crds_carry_scale_status_and_short_names() {
        use kube::CustomResourceExt;
        let pool = serde_json::to_value(BucketsPool::crd()).unwrap();
        let version = &pool["spec"]["versions"][0];
        assert_eq!(pool["spec"]["names"]["shortNames"][0], "bp");
        assert_eq!(version["subresources"]["scale"]["specReplicasPath"], ".spec.replicas");
        assert_eq!(version["subresources"]["scale"]["labelSelectorPath"], ".status.selector");
        let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let rules: Vec<&str> =
            spec["x-kubernetes-validations"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
        assert!(rules.iter().any(|r| r.contains("% self.setSize == 0")));
        assert_eq!(spec["properties"]["setSize"]["default"], 4);
        assert!(spec["properties"]["replicas"]["description"].as_str().unwrap().contains("erasure set"));
        let cluster = serde_json::to_value(BucketsCluster::crd()).unwrap();
        assert_eq!(cluster["spec"]["names"]["shortNames"][0], "bc");
        assert!(cluster["spec"]["versions"][0]["subresources"]["status"].is_object());
        let columns: Vec<&str> = cluster["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(columns, ["Phase", "Sets", "Migration", "Age"]);
    }
}
