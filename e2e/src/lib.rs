//! End-to-end Kubernetes scenarios for Buckets: a test bed of etcd, kube-apiserver and
//! kube-controller-manager built from Go modules, a local pod runner, and scenarios
//! driven with kubectl and real S3 clients.
//!
//! Not built yet: this crate holds no code until the test-bed issue.
