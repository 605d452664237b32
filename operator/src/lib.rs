//! The Buckets Kubernetes operator (kube-rs): watches `BucketsCluster` and `BucketsPool`
//! resources and turns changes of pool size into set add / drain / remove operations on
//! the nodes; and `BucketsUser`, `BucketsPolicy` and `BucketsBucket` resources, which
//! declare users, their key Secrets, policies and buckets in a cluster (`access`). One reconcile follows the pipeline dereference → validate → build → apply →
//! update_status, one module per step; the scaling state machine (`scaling`) and the
//! builders (`build`) are pure. The operator reaches nodes only through their admin API.

pub mod access;
pub mod access_crd;
pub mod admin;
pub mod apply;
pub mod build;
pub mod controller;
pub mod crd;
pub mod dereference;
pub mod metrics;
pub mod scaling;
pub mod status;
#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    /// The operator reaches nodes only through `buckets-api`: it must not link the storage
    /// engine (which would let it reach around the admin API).
    #[test]
    fn the_operator_does_not_depend_on_the_node() {
        let manifest = include_str!("../Cargo.toml");
        let dependencies: Vec<&str> = manifest
            .lines()
            .filter_map(|line| line.split(['=', '.']).next().map(str::trim))
            .filter(|name| name.starts_with("buckets-"))
            .collect();
        assert_eq!(dependencies, ["buckets-api"], "the operator's buckets-* dependencies");
    }
}
