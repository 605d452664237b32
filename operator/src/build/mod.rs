//! Desired Kubernetes objects, one file per kind (`build_<kind>`). Pure: no client, no
//! I/O; the same inputs always give the same objects (apply relies on it to stay
//! idempotent). Names, labels and the pool's geometry live here so every builder and the
//! scaling state machine agree on them.

pub mod pdb;
pub mod secret;
pub mod service;
pub mod servicemonitor;
pub mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::{ADMIN_PORT, BucketsCluster, BucketsPool};

/// Field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "buckets-operator";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_CLUSTER: &str = "buckets.io/cluster";
pub const LABEL_POOL: &str = "buckets.io/pool";
/// Mount path of drive `d` is `DRIVE_ROOT/d<d>`.
pub const DRIVE_ROOT: &str = "/data";

/// What every builder needs besides the resources themselves.
#[derive(Clone, Debug)]
pub struct Settings {
    /// DNS suffix of the Kubernetes cluster (`cluster.local`): drive URLs name pods by
    /// their fully qualified names, which must never change.
    pub cluster_domain: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { cluster_domain: "cluster.local".into() }
    }
}

pub fn headless_service_name(cluster: &BucketsCluster) -> String {
    format!("{}-hl", cluster.name_any())
}

pub fn client_service_name(cluster: &BucketsCluster) -> String {
    cluster.name_any()
}

pub fn root_secret_name(cluster: &BucketsCluster) -> String {
    cluster.spec.root_credentials_secret.clone().unwrap_or_else(|| format!("{}-root", cluster.name_any()))
}

pub fn cluster_secret_name(cluster: &BucketsCluster) -> String {
    format!("{}-cluster-secret", cluster.name_any())
}

pub fn statefulset_name(cluster_name: &str, pool_name: &str) -> String {
    format!("{cluster_name}-{pool_name}")
}

pub fn pdb_name(cluster_name: &str, pool_name: &str) -> String {
    statefulset_name(cluster_name, pool_name)
}

/// Labels on everything the operator makes for a cluster (orphans are found by them).
pub fn cluster_labels(cluster: &BucketsCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "buckets".to_string()),
        (LABEL_INSTANCE.to_string(), cluster.name_any()),
        (LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
        (LABEL_CLUSTER.to_string(), cluster.name_any()),
    ])
}

/// Selector of every node pod of a cluster.
pub fn cluster_selector(cluster: &BucketsCluster) -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_CLUSTER.to_string(), cluster.name_any()), (LABEL_COMPONENT.to_string(), "node".to_string())])
}

/// Selector of one pool's pods.
pub fn pool_selector(cluster_name: &str, pool_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_CLUSTER.to_string(), cluster_name.to_string()),
        (LABEL_COMPONENT.to_string(), "node".to_string()),
        (LABEL_POOL.to_string(), pool_name.to_string()),
    ])
}

/// `key=value,…` form of a selector (the scale subresource's `status.selector`).
pub fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// The controller owner reference that ties an object to its cluster (garbage collection
/// deletes it with the cluster; the controller is woken by its changes).
pub fn owner_reference(cluster: &BucketsCluster) -> OwnerReference {
    OwnerReference {
        api_version: BucketsCluster::api_version(&()).to_string(),
        kind: BucketsCluster::kind(&()).to_string(),
        name: cluster.name_any(),
        uid: cluster.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of an object owned by the cluster.
pub fn owned_meta(cluster: &BucketsCluster, name: String, extra_labels: BTreeMap<String, String>) -> ObjectMeta {
    let mut labels = cluster_labels(cluster);
    labels.extend(extra_labels);
    ObjectMeta {
        name: Some(name),
        namespace: cluster.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner_reference(cluster)]),
        ..ObjectMeta::default()
    }
}

/// How a pool's nodes and drives are cut into erasure sets. Drives are numbered node
/// by node (node n holds drives n·D … n·D + D − 1); set k is drives k·S … k·S + S − 1.
/// So set k lives on a fixed range of ordinals, and growing or shrinking the StatefulSet
/// by whole sets touches only the highest ordinals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub drives_per_node: i32,
    pub set_size: i32,
}

impl Geometry {
    pub fn of(pool: &BucketsPool) -> Self {
        Geometry { drives_per_node: pool.spec.drives_per_node.max(1), set_size: pool.spec.set_size.max(1) }
    }

    /// Whole sets `replicas` nodes hold.
    pub fn sets_for_replicas(&self, replicas: i32) -> i32 {
        (replicas.max(0) * self.drives_per_node) / self.set_size
    }

    /// Nodes that hold the drives of `sets` sets.
    pub fn replicas_for_sets(&self, sets: i32) -> i32 {
        let drives = sets.max(0) * self.set_size;
        (drives + self.drives_per_node - 1) / self.drives_per_node
    }

    /// (ordinal, drive) of every drive of set `index`, in set order.
    pub fn set_drives(&self, index: i32) -> Vec<(i32, i32)> {
        (index * self.set_size..(index + 1) * self.set_size)
            .map(|drive| (drive / self.drives_per_node, drive % self.drives_per_node))
            .collect()
    }

    /// The set of a pool drive, when the drive is part of a whole set.
    pub fn set_of(&self, ordinal: i32, drive: i32) -> i32 {
        (ordinal * self.drives_per_node + drive) / self.set_size
    }

    /// Drives of a set that one node can hold (what one node's outage takes from a set).
    pub fn drives_per_node_in_set(&self) -> i32 {
        self.drives_per_node.min(self.set_size)
    }
}

/// Fully qualified DNS name of a pool pod (through the headless Service).
pub fn pod_host(cluster: &BucketsCluster, pool_name: &str, ordinal: i32, settings: &Settings) -> String {
    format!(
        "{}-{ordinal}.{}.{}.svc.{}",
        statefulset_name(&cluster.name_any(), pool_name),
        headless_service_name(cluster),
        cluster.namespace().unwrap_or_else(|| "default".into()),
        settings.cluster_domain
    )
}

/// The drive URL the topology names a pod's drive by.
pub fn drive_url(cluster: &BucketsCluster, pool_name: &str, ordinal: i32, drive: i32, settings: &Settings) -> String {
    format!("http://{}:{ADMIN_PORT}{DRIVE_ROOT}/d{drive}", pod_host(cluster, pool_name, ordinal, settings))
}

/// Drive URLs of set `index` of a pool, in set order.
pub fn set_drive_urls(cluster: &BucketsCluster, pool: &BucketsPool, index: i32, settings: &Settings) -> Vec<String> {
    Geometry::of(pool)
        .set_drives(index)
        .into_iter()
        .map(|(ordinal, drive)| drive_url(cluster, &pool.name_any(), ordinal, drive, settings))
        .collect()
}

/// Where a drive URL of this cluster points: (pool, ordinal, drive). None for drives the
/// operator did not name (a topology changed by hand).
pub fn parse_drive_url(cluster: &BucketsCluster, url: &str, settings: &Settings) -> Option<(String, i32, i32)> {
    let url = buckets_api::DriveUrl::parse(url).ok()?;
    let host = url.authority.strip_suffix(&format!(":{ADMIN_PORT}"))?;
    let suffix = format!(
        ".{}.{}.svc.{}",
        headless_service_name(cluster),
        cluster.namespace().unwrap_or_else(|| "default".into()),
        settings.cluster_domain
    );
    let (statefulset, ordinal) = host.strip_suffix(&suffix)?.rsplit_once('-')?;
    let pool = statefulset.strip_prefix(&format!("{}-", cluster.name_any()))?;
    let drive: i32 = url.path.strip_prefix(&format!("{DRIVE_ROOT}/d"))?.parse().ok()?;
    Some((pool.to_string(), ordinal.parse().ok()?, drive))
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub const CLUSTER_YAML: &str = r#"
apiVersion: buckets.io/v1alpha1
kind: BucketsCluster
metadata:
  name: demo
  namespace: storage
  uid: 0a0a0a0a-1111-2222-3333-444444444444
spec:
  image: buckets/buckets-node:test
  env:
    BUCKETS_LOG: debug
"#;

    pub const POOL_YAML: &str = r#"
apiVersion: buckets.io/v1alpha1
kind: BucketsPool
metadata:
  name: fast
  namespace: storage
spec:
  cluster: demo
  replicas: 8
  drivesPerNode: 2
  setSize: 4
  storage:
    size: 10Gi
    storageClassName: local-path
"#;

    /// A resource from YAML as the API server would hand it over (defaults applied by
    /// serde the way the schema's defaults do).
    pub fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_saphyr::from_str(yaml).expect("fixture YAML")
    }

    pub fn cluster() -> BucketsCluster {
        from_yaml(CLUSTER_YAML)
    }

    pub fn pool() -> BucketsPool {
        from_yaml(POOL_YAML)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn geometry_cuts_whole_sets_on_the_highest_ordinals() {
        let geometry = Geometry { drives_per_node: 2, set_size: 4 };
        assert_eq!(geometry.sets_for_replicas(8), 4);
        assert_eq!(geometry.replicas_for_sets(3), 6);
        assert_eq!(geometry.set_drives(1), vec![(2, 0), (2, 1), (3, 0), (3, 1)]);
        assert_eq!(geometry.set_of(3, 1), 1);
        // Drives per node that do not divide the set size: 4 nodes of 3 drives = 3 sets.
        let odd = Geometry { drives_per_node: 3, set_size: 4 };
        assert_eq!(odd.sets_for_replicas(4), 3);
        assert_eq!(odd.replicas_for_sets(1), 2, "set 0 uses node 1's first drive");
        assert_eq!(odd.set_drives(1), vec![(1, 1), (1, 2), (2, 0), (2, 1)]);
        assert_eq!(odd.drives_per_node_in_set(), 3);
    }

    #[test]
    fn drive_urls_round_trip() {
        let cluster = cluster();
        let pool = pool();
        let settings = Settings::default();
        let urls = set_drive_urls(&cluster, &pool, 1, &settings);
        assert_eq!(urls[0], "http://demo-fast-2.demo-hl.storage.svc.cluster.local:9001/data/d0");
        assert_eq!(urls.len(), 4);
        for url in &urls {
            let (pool_name, ordinal, drive) = parse_drive_url(&cluster, url, &settings).expect("our URL");
            assert_eq!(pool_name, "fast");
            assert_eq!(Geometry::of(&pool).set_of(ordinal, drive), 1);
        }
        assert_eq!(parse_drive_url(&cluster, "http://other:9001/data/d0", &settings), None);
        assert_eq!(parse_drive_url(&cluster, "/data/d0", &settings), None);
    }
}
