//! One PodDisruptionBudget per pool: voluntary evictions may take down at most as many
//! of the pool's nodes as a set can lose drives (its parity). Sets never span pools, so
//! a budget per pool is exact.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{Geometry, owned_meta, pdb_name, pool_selector};
use crate::crd::{BucketsCluster, BucketsPool, parity_for};

/// Nodes of the pool that may be down at once: one node takes up to
/// `drives_per_node_in_set` drives from a set, and a set survives `parity` lost drives.
/// Zero when a single node holds more than parity drives of a set (evictions then wait
/// for the user, which is what such a layout can afford).
pub fn max_unavailable_nodes(pool: &BucketsPool) -> i32 {
    parity_for(pool.spec.set_size) / Geometry::of(pool).drives_per_node_in_set()
}

pub fn build_pdb(cluster: &BucketsCluster, pool: &BucketsPool) -> PodDisruptionBudget {
    let selector = pool_selector(&cluster.name_any(), &pool.name_any());
    PodDisruptionBudget {
        metadata: owned_meta(cluster, pdb_name(&cluster.name_any(), &pool.name_any()), selector.clone()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable_nodes(pool))),
            selector: Some(LabelSelector { match_labels: Some(selector), ..LabelSelector::default() }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn budget_never_exceeds_parity() {
        // (drives per node, set size) → nodes that may be down.
        for (drives_per_node, set_size, expected) in
            [(1, 4, 2), (2, 4, 1), (4, 4, 0), (1, 8, 4), (2, 8, 2), (4, 16, 1), (8, 6, 0), (3, 4, 0)]
        {
            let mut pool = pool();
            pool.spec.drives_per_node = drives_per_node;
            pool.spec.set_size = set_size;
            assert_eq!(max_unavailable_nodes(&pool), expected, "{drives_per_node} drives per node, sets of {set_size}");
            assert!(expected * drives_per_node.min(set_size) <= parity_for(set_size));
        }
        let json = serde_json::to_value(build_pdb(&cluster(), &pool())).unwrap();
        assert_eq!(json["metadata"]["name"], "demo-fast");
        assert_eq!(json["spec"]["maxUnavailable"], 1);
        assert_eq!(json["spec"]["selector"]["matchLabels"]["buckets.io/pool"], "fast");
    }
}
