//! The Buckets Kubernetes operator (kube-rs): watches `BucketsCluster` and `BucketsPool`
//! resources and turns topology changes into set add / drain / remove operations.
//!
//! Not built yet: this crate holds no code until the operator issue. It will follow the
//! pipeline dereference → validate → build → apply → update_status, one module per step,
//! and reach nodes only through their admin API.
