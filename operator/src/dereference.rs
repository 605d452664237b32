//! dereference: everything a reconcile reads — the cluster's pools, pods, StatefulSets
//! and credentials from the API server, and the topology and migration from the nodes —
//! turned into the state machine's `Observed`. Reads only; never writes.

use std::collections::{BTreeMap, BTreeSet};

use buckets_api::migration::Phase;
use buckets_api::{MigrationStatus, SetSpec, SetState as NodeSetState, Topology};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::admin::{Credentials, NodeApi, NodeMode, NodeState};
use crate::apply::KubeCallError;
use crate::build::secret::{ROOT_PASSWORD_KEY, ROOT_USER_KEY};
use crate::build::{Geometry, LABEL_CLUSTER, Settings, parse_drive_url, root_secret_name, statefulset_name};
use crate::crd::{ADMIN_PORT, BucketsCluster, BucketsPool};
use crate::scaling::{MigrationView, PoolView, SetState, SetView, TopologyView};

#[derive(Debug, thiserror::Error)]
pub enum DereferenceError {
    #[error(transparent)]
    Kube(#[from] KubeCallError),
    #[error("secret {0} lacks the key {1}")]
    SecretKey(String, &'static str),
}

fn kube_error(what: impl std::fmt::Display) -> impl FnOnce(kube::Error) -> KubeCallError {
    crate::apply::kube_error(format!("reading {what}"))
}

/// The Kubernetes side of a cluster.
pub struct KubeState {
    /// Pools naming the cluster, by name.
    pub pools: Vec<BucketsPool>,
    /// Pods of the cluster, by pool, by ordinal.
    pub pods: BTreeMap<String, BTreeMap<i32, Pod>>,
    pub statefulsets: BTreeMap<String, StatefulSet>,
    /// None until the root credentials Secret exists.
    pub credentials: Option<Credentials>,
}

pub async fn kube_state(client: &Client, cluster: &BucketsCluster) -> Result<KubeState, DereferenceError> {
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let mut pools: Vec<BucketsPool> = Api::<BucketsPool>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube_error("BucketsPools"))?
        .items
        .into_iter()
        .filter(|p| p.spec.cluster == name)
        .collect();
    pools.sort_by_key(|p| p.name_any());
    let selector = ListParams::default().labels(&format!("{LABEL_CLUSTER}={name}"));
    let pod_list =
        Api::<Pod>::namespaced(client.clone(), &namespace).list(&selector).await.map_err(kube_error("pods"))?;
    let mut pods: BTreeMap<String, BTreeMap<i32, Pod>> = BTreeMap::new();
    for pool in &pools {
        let prefix = format!("{}-", statefulset_name(&name, &pool.name_any()));
        for pod in &pod_list.items {
            if let Some(ordinal) = pod.name_any().strip_prefix(&prefix).and_then(|o| o.parse::<i32>().ok()) {
                pods.entry(pool.name_any()).or_default().insert(ordinal, pod.clone());
            }
        }
    }
    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), &namespace)
        .list(&selector)
        .await
        .map_err(kube_error("StatefulSets"))?
        .items
        .into_iter()
        .map(|s| (s.name_any(), s))
        .collect();
    let secret_name = root_secret_name(cluster);
    let credentials = match Api::<Secret>::namespaced(client.clone(), &namespace)
        .get_opt(&secret_name)
        .await
        .map_err(kube_error(format!("secret {secret_name}")))?
    {
        None => None,
        Some(secret) => Some(credentials_from(&secret_name, &secret)?),
    };
    Ok(KubeState { pools, pods, statefulsets, credentials })
}

pub fn credentials_from(name: &str, secret: &Secret) -> Result<Credentials, DereferenceError> {
    let value = |key: &'static str| -> Result<String, DereferenceError> {
        if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
            return Ok(String::from_utf8_lossy(&bytes.0).into_owned());
        }
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key).cloned())
            .ok_or_else(|| DereferenceError::SecretKey(name.to_string(), key))
    };
    Ok(Credentials { user: value(ROOT_USER_KEY)?, password: value(ROOT_PASSWORD_KEY)? })
}

/// Admin endpoint of a running pod (by its IP: the operator may run outside the cluster's
/// DNS, for example in the test bed).
pub fn pod_endpoint(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") || pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let ip = status.pod_ip.as_ref()?;
    Some(if ip.contains(':') { format!("http://[{ip}]:{ADMIN_PORT}") } else { format!("http://{ip}:{ADMIN_PORT}") })
}

/// What the nodes said.
#[derive(Default)]
pub struct NodeAnswers {
    /// (pool, ordinal) → the node's state, for every node that answered.
    pub states: BTreeMap<(String, i32), NodeState>,
    /// Admin endpoint of a serving node, and what it reported.
    pub serving: Option<(String, Topology, MigrationStatus)>,
    /// The sets' usage (None when the serving node could not say).
    pub capacity: Option<crate::admin::Capacity>,
    /// (pool, ordinal) → why the node did not answer.
    pub errors: BTreeMap<(String, i32), String>,
}

pub async fn ask_nodes(kube: &KubeState, nodes: &dyn NodeApi) -> NodeAnswers {
    let mut answers = NodeAnswers::default();
    let Some(credentials) = &kube.credentials else { return answers };
    let mut asks = Vec::new();
    for (pool, pods) in &kube.pods {
        for (ordinal, pod) in pods {
            if let Some(endpoint) = pod_endpoint(pod) {
                asks.push(async move {
                    let state = nodes.node_state(&endpoint, credentials).await;
                    ((pool.clone(), *ordinal), endpoint, state)
                });
            }
        }
    }
    let mut serving_endpoints = Vec::new();
    for (key, endpoint, state) in futures::future::join_all(asks).await {
        match state {
            Ok(state) => {
                if state.state == NodeMode::Serving {
                    serving_endpoints.push(endpoint);
                }
                answers.states.insert(key, state);
            }
            Err(e) => {
                answers.errors.insert(key, e.to_string());
            }
        }
    }
    for endpoint in serving_endpoints {
        let topology = nodes.topology(&endpoint, credentials).await;
        let migration = nodes.migration(&endpoint, credentials).await;
        if let (Ok(topology), Ok(migration)) = (topology, migration) {
            answers.capacity = nodes.capacity(&endpoint, credentials).await.ok();
            answers.serving = Some((endpoint, topology, migration));
            break;
        }
    }
    answers
}

/// The pool views: spec, pods that are up (serving or waiting for a topology) and the
/// StatefulSet's pod count.
pub fn pool_views(cluster: &BucketsCluster, kube: &KubeState, answers: &NodeAnswers) -> Vec<PoolView> {
    kube.pools
        .iter()
        .map(|pool| {
            let name = pool.name_any();
            let ready_ordinals: BTreeSet<i32> = answers
                .states
                .iter()
                .filter(|((p, _), state)| {
                    *p == name && (matches!(state.state, NodeMode::Serving | NodeMode::AwaitingTopology))
                })
                .map(|((_, ordinal), _)| *ordinal)
                .collect();
            let statefulset = kube.statefulsets.get(&statefulset_name(&cluster.name_any(), &name));
            PoolView {
                name,
                geometry: Geometry::of(pool),
                replicas: pool.spec.replicas,
                deleting: pool.metadata.deletion_timestamp.is_some(),
                ready_ordinals,
                statefulset_pods: statefulset.map(|s| s.status.as_ref().map_or(0, |st| st.replicas)),
            }
        })
        .collect()
}

/// The topology's sets that belong to this cluster's pools (named by the operator's
/// drive URLs), with their pool and position.
pub fn topology_view(
    cluster: &BucketsCluster,
    topology: &Topology,
    settings: &Settings,
    pools: &[PoolView],
) -> TopologyView {
    let mut sets = Vec::new();
    for (_, spec) in topology.sets() {
        let Some((pool, ordinal, drive)) = spec.drives.first().and_then(|d| parse_drive_url(cluster, d, settings))
        else {
            continue;
        };
        // A pool the topology still holds but Kubernetes no longer has (its sets are
        // removed before a pool goes): positions by the set's own size.
        let geometry = pools
            .iter()
            .find(|p| p.name == pool)
            .map_or(Geometry { drives_per_node: 1, set_size: spec.drives.len().max(1) as i32 }, |p| p.geometry);
        sets.push(set_view(spec, pool, geometry.set_of(ordinal, drive)));
    }
    TopologyView { generation: topology.generation as i64, sets }
}

fn set_view(spec: &SetSpec, pool: String, index: i32) -> SetView {
    SetView {
        id: spec.id as i64,
        pool,
        index,
        state: match spec.state {
            NodeSetState::Active => SetState::Active,
            NodeSetState::Draining => SetState::Draining,
            NodeSetState::Removed => SetState::Removed,
        },
        drives: spec.drives.len() as i32,
    }
}

/// The migration as the state machine needs it: which draining sets are empty.
pub fn migration_view(status: &MigrationStatus, topology: &Topology) -> MigrationView {
    let draining: BTreeSet<i64> =
        topology.sets().filter(|(_, s)| s.state == NodeSetState::Draining).map(|(_, s)| s.id as i64).collect();
    MigrationView {
        state: Some(status.state),
        drained_sets: status
            .sets
            .iter()
            .filter(|p| p.generation == status.generation && p.phase == Phase::Done)
            .map(|p| p.set as i64)
            .filter(|id| draining.contains(id))
            .collect(),
    }
}

/// The sets' usage as the state machine needs it.
pub fn capacity_view(capacity: &crate::admin::Capacity) -> BTreeMap<i64, crate::scaling::SetCapacityView> {
    capacity
        .sets
        .iter()
        .map(|s| {
            (
                s.id as i64,
                crate::scaling::SetCapacityView {
                    stored_bytes: s.stored_bytes,
                    min_free_bytes: s.min_free_bytes,
                    data_shards: s.data_shards as u64,
                    parity_shards: s.parity_shards as u64,
                },
            )
        })
        .collect()
}
