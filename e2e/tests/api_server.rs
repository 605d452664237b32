//! Scenarios on a real kube-apiserver and kube-controller-manager (built from Go modules):
//! the CRDs install and teach `kubectl explain`, the samples pass server-side validation,
//! bad specs are rejected by the CEL rules with their messages (also through `kubectl
//! scale`), and the operator — running as a process with exactly the chart's RBAC and
//! leader election — creates a cluster's objects, follows a scale of its pool, and
//! cleans up everything when the cluster is deleted. No pod runs yet (no kubelet): the
//! cluster stays in Bootstrapping, waiting for its pods.

use std::time::Duration;

use buckets_e2e::{TestBed, install_crds, install_operator_chart, repo_root, start_operator, wait_until};

#[test]
fn crds_samples_cel_rules_and_the_operator_on_a_real_api_server() {
    buckets_e2e::in_own_network("crds_samples_cel_rules_and_the_operator_on_a_real_api_server", scenario);
}

fn scenario() {
    let bed = TestBed::start();
    crds_install_and_reject_bad_specs(&bed);
    operator_with_the_charts_rbac_creates_scales_and_cleans_up(&bed);
}

fn crds_install_and_reject_bad_specs(bed: &TestBed) {
    let root = repo_root();
    install_crds(bed);
    // The API server publishes a new CRD's schema a moment after it is established.
    wait_until("kubectl explain teaches the pool's fields", Duration::from_secs(60), || {
        String::from_utf8_lossy(&bed.kubectl(&["explain", "bucketspool.spec.setSize"]).stdout)
            .contains("Drives per erasure set")
    });
    let samples = root.join("config/samples");
    let dry = bed.kubectl_ok(&["apply", "--dry-run=server", "-f", samples.to_str().unwrap()]);
    assert!(dry.contains("bucketspool.buckets.io/fast created (server dry run)"), "{dry}");

    let pool = |name: &str, replicas: i32, drives: i32, set_size: i32| {
        format!(
            "apiVersion: buckets.io/v1alpha1\nkind: BucketsPool\nmetadata: {{name: {name}, namespace: default}}\n\
             spec: {{cluster: demo, replicas: {replicas}, drivesPerNode: {drives}, setSize: {set_size}, storage: {{size: 1Gi}}}}\n"
        )
    };
    let rejected = |yaml: &str, message: &str| {
        let output = bed.kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], Some(yaml));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(message), "expected {message:?}, got: {stderr}");
    };
    rejected(&pool("small", 3, 1, 3), "setSize must be between 4 and 16");
    rejected(&pool("ragged", 5, 1, 4), "replicas × drivesPerNode must be a multiple of setSize");
    let created = bed.kubectl_with_input(&["apply", "-f", "-"], Some(&pool("shape", 4, 1, 4)));
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    rejected(&pool("shape", 4, 2, 4), "drivesPerNode is immutable");
    rejected(&pool("shape", 8, 1, 8), "setSize is immutable");
    let scaled = bed.kubectl(&["scale", "bp/shape", "--replicas", "6"]);
    assert!(!scaled.status.success(), "kubectl scale to a partial set is refused");
    assert!(String::from_utf8_lossy(&scaled.stderr).contains("multiple of setSize"));
    bed.kubectl_ok(&["scale", "bp/shape", "--replicas", "8"]);
    assert_eq!(bed.kubectl_ok(&["get", "bp/shape", "-o", "jsonpath={.spec.replicas}"]), "8");
    bed.kubectl_ok(&["delete", "bp/shape"]);
}

fn operator_with_the_charts_rbac_creates_scales_and_cleans_up(bed: &TestBed) {
    let root = repo_root();
    bed.kubectl_ok(&["create", "namespace", "store"]);
    let kubeconfig = install_operator_chart(bed);
    let start_operator = |name: &str| start_operator(bed, &kubeconfig, name);
    let leader = start_operator("operator-a");
    wait_until("operator-a leads", Duration::from_secs(30), || {
        bed.kubectl(&[
            "-n",
            "buckets-system",
            "get",
            "lease",
            "buckets-operator-leader",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .stdout
            == b"operator-a"
    });
    let follower = start_operator("operator-b");

    let samples = root.join("config/samples");
    bed.kubectl_ok(&["-n", "store", "apply", "-f", samples.to_str().unwrap()]);
    let get = |args: &[&str]| -> String {
        let mut all = vec!["-n", "store"];
        all.extend_from_slice(args);
        String::from_utf8(bed.kubectl(&all).stdout).unwrap()
    };
    wait_until("the cluster waits for its pods", Duration::from_secs(60), || {
        get(&["get", "bc/demo", "-o", "jsonpath={.status.phase}"]) == "Bootstrapping"
    });
    assert_eq!(get(&["get", "sts/demo-fast", "-o", "jsonpath={.spec.replicas}"]), "4");
    assert_eq!(get(&["get", "pdb/demo-fast", "-o", "jsonpath={.spec.maxUnavailable}"]), "2");
    assert_eq!(get(&["get", "svc/demo-hl", "-o", "jsonpath={.spec.clusterIP}"]), "None");
    assert!(get(&["get", "secret/demo-root", "-o", "jsonpath={.data.rootPassword}"]).len() > 40);
    let progressing =
        get(&["get", "bc/demo", "-o", "jsonpath={.status.conditions[?(@.type==\"Progressing\")].reason}"]);
    assert_eq!(progressing, "BootstrapWaitingForPods");
    let columns = get(&["get", "bc/demo"]);
    assert!(columns.contains("PHASE") && columns.contains("Bootstrapping"), "{columns}");
    let events = get(&["events", "--for", "bucketscluster/demo"]);
    assert!(events.contains("Bootstrapping"), "an Event for the transition: {events}");

    // Scaling the pool before bootstrap grows the StatefulSet to the new size.
    bed.kubectl_ok(&["-n", "store", "scale", "bp/fast", "--replicas", "8"]);
    wait_until("the StatefulSet follows the pool", Duration::from_secs(60), || {
        get(&["get", "sts/demo-fast", "-o", "jsonpath={.spec.replicas}"]) == "8"
    });
    assert!(!follower.log().contains("leading:"), "only one replica reconciles");

    // A pool naming a cluster that does not exist says so, in its status and an Event.
    let stray = "apiVersion: buckets.io/v1alpha1\nkind: BucketsPool\nmetadata: {name: stray}\n\
                 spec: {cluster: nowhere, replicas: 4, drivesPerNode: 1, setSize: 4, storage: {size: 1Gi}}\n";
    let applied = bed.kubectl_with_input(&["-n", "store", "apply", "-f", "-"], Some(stray));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    wait_until("the stray pool says its cluster is missing", Duration::from_secs(60), || {
        get(&["get", "bp/stray", "-o", "jsonpath={.status.conditions[0].reason}"]) == "ClusterNotFound"
    });
    let columns = get(&["get", "bp/stray"]);
    assert!(columns.contains("nowhere") && columns.contains("Pending"), "{columns}");
    let events = get(&["events", "--for", "bucketspool/stray"]);
    assert!(events.contains("BucketsCluster nowhere does not exist in namespace store"), "{events}");
    bed.kubectl_ok(&["-n", "store", "delete", "bp/stray", "--timeout", "30s"]);

    // Deleting the cluster takes everything it owns, its pools included.
    bed.kubectl_ok(&["-n", "store", "delete", "bc/demo", "--timeout", "60s"]);
    wait_until("everything of the cluster is gone", Duration::from_secs(60), || {
        let left = get(&["get", "bp,sts,svc,secret,pdb,pods", "-o", "name"]);
        left.lines().all(|l| l.starts_with("secret/default-token") || l.is_empty())
    });
    let log = leader.log();
    assert!(!log.contains("forbidden"), "the chart's RBAC covers every call:\n{log}");
}
