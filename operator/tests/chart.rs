//! The packaging, checked without a cluster: the samples are valid BucketsCluster and
//! BucketsPool objects, and the Helm chart lints and renders objects that match the
//! Kubernetes types field for field (a misspelt or misplaced field is dropped by the typed
//! round trip and fails the test), ships the current CRDs, and grants the operator every
//! permission it uses. Server-side validation of the same files happens in the e2e test
//! bed (a real API server).

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// The oldest Kubernetes the chart supports (its kubeVersion; k8s-openapi's v1_33).
const KUBE_VERSION: &str = "1.33.0";

fn root() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()))
        .join("..")
}

/// Every field of `given` is in `typed` with the same value (the typed round trip kept
/// it); returns the first path that differs.
fn subset(given: &Value, typed: &Value, path: &str) -> Result<(), String> {
    match (given, typed) {
        (Value::Object(given), Value::Object(typed)) => {
            for (key, value) in given {
                if value.is_null() {
                    continue;
                }
                let Some(other) = typed.get(key) else {
                    return Err(format!("{path}.{key} is not a field of this kind"));
                };
                subset(value, other, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(given), Value::Array(typed)) if given.len() == typed.len() => {
            for (index, (a, b)) in given.iter().zip(typed).enumerate() {
                subset(a, b, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: {a} became {b}")),
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(object.clone()).map_err(|e| e.to_string())?;
    subset(object, &serde_json::to_value(&typed).unwrap(), "")
}

#[test]
fn samples_are_valid_resources() {
    let samples = root().join("config/samples");
    for (file, kind) in [("bucketscluster.yaml", "BucketsCluster"), ("bucketspool.yaml", "BucketsPool")] {
        let text = std::fs::read_to_string(samples.join(file)).unwrap();
        let object: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(object["apiVersion"], "buckets.io/v1alpha1");
        assert_eq!(object["kind"], kind);
        let checked = match kind {
            "BucketsCluster" => round_trip::<buckets_operator::crd::BucketsCluster>(&object),
            _ => round_trip::<buckets_operator::crd::BucketsPool>(&object),
        };
        checked.unwrap_or_else(|e| panic!("config/samples/{file}: {e}"));
    }
    // The access sample: one bucket, policy and user, each naming the sample cluster.
    let text = std::fs::read_to_string(samples.join("access/app.yaml")).unwrap();
    let mut kinds = Vec::new();
    for document in text.split("\n---\n") {
        let object: Value = serde_saphyr::from_str(document).unwrap();
        assert_eq!(object["apiVersion"], "buckets.io/v1alpha1");
        assert_eq!(object["spec"]["clusterRef"]["name"], "demo");
        let kind = object["kind"].as_str().unwrap().to_string();
        let checked = match kind.as_str() {
            "BucketsUser" => round_trip::<buckets_operator::access_crd::BucketsUser>(&object),
            "BucketsPolicy" => round_trip::<buckets_operator::access_crd::BucketsPolicy>(&object),
            _ => round_trip::<buckets_operator::access_crd::BucketsBucket>(&object),
        };
        checked.unwrap_or_else(|e| panic!("config/samples/access/app.yaml {kind}: {e}"));
        kinds.push(kind);
    }
    assert_eq!(kinds, ["BucketsBucket", "BucketsPolicy", "BucketsUser"]);
    // The pool sample is whole sets (what the CEL rule demands).
    let pool: buckets_operator::crd::BucketsPool =
        serde_saphyr::from_str(&std::fs::read_to_string(samples.join("bucketspool.yaml")).unwrap()).unwrap();
    assert_eq!((pool.spec.replicas * pool.spec.drives_per_node) % pool.spec.set_size, 0);
}

/// The helm binary: `BUCKETS_HELM`, else `helm` on PATH. CI always has it (the test
/// command builds it). Without one the chart tests fail: a check that cannot run must
/// not count as passed.
fn helm() -> PathBuf {
    let candidate = std::env::var_os("BUCKETS_HELM").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("helm"));
    let runs = Command::new(&candidate).arg("version").output().is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "the chart tests need helm: {} does not run (./scripts/test.sh builds one; or set BUCKETS_HELM)",
        candidate.display()
    );
    candidate
}

fn render(helm: &Path, extra: &[&str]) -> Vec<Value> {
    let output = Command::new(helm)
        .args(["template", "demo", "charts/buckets-operator", "--namespace", "buckets-system", "--include-crds"])
        .args(["--kube-version", KUBE_VERSION])
        .args(extra)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(output.status.success(), "helm template: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    serde_saphyr::from_multiple::<Value>(&text).unwrap().into_iter().filter(|v| !v.is_null()).collect()
}

#[test]
fn chart_lints_and_renders_objects_of_the_right_shape() {
    let helm = helm();
    let lint =
        Command::new(&helm).args(["lint", "--strict", "charts/buckets-operator"]).current_dir(root()).output().unwrap();
    assert!(
        lint.status.success(),
        "helm lint: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    let objects = render(&helm, &["--set", "metrics.serviceMonitor.enabled=true"]);
    let mut kinds = Vec::new();
    for object in &objects {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let checked = match kind.as_str() {
            "ServiceAccount" => round_trip::<ServiceAccount>(object),
            "ClusterRole" => round_trip::<ClusterRole>(object),
            "ClusterRoleBinding" => round_trip::<ClusterRoleBinding>(object),
            "Role" => round_trip::<Role>(object),
            "RoleBinding" => round_trip::<RoleBinding>(object),
            "Deployment" => round_trip::<Deployment>(object),
            "Service" => round_trip::<Service>(object),
            "ConfigMap" => round_trip::<ConfigMap>(object),
            "CustomResourceDefinition" => round_trip::<CustomResourceDefinition>(object),
            "ServiceMonitor" => {
                assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1");
                assert_eq!(object["spec"]["endpoints"][0]["port"], "metrics");
                Ok(())
            }
            other => Err(format!("unexpected kind {other}")),
        };
        checked.unwrap_or_else(|e| panic!("{kind} {}: {e}", object["metadata"]["name"]));
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
    );

    // The chart ships exactly the generated CRDs.
    let crds: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "CustomResourceDefinition").collect();
    for (_, yaml) in buckets_operator::crd::crd_files().unwrap() {
        let generated: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert!(crds.contains(&&generated), "the chart's CRD {} is stale", generated["metadata"]["name"]);
    }

    // The Deployment runs the controller under the chart's service account.
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["args"][0], "run");
    let args: Vec<&str> = pod["containers"][0]["args"].as_array().unwrap().iter().filter_map(|a| a.as_str()).collect();
    assert!(args.contains(&"--leader-election"), "{args:?}");
    let lease_role = objects.iter().find(|o| o["kind"] == "Role").unwrap();
    assert_eq!(lease_role["rules"][0]["resources"][0], "leases");
    assert_eq!(lease_role["metadata"]["namespace"], "buckets-system");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let account = objects.iter().find(|o| o["kind"] == "ServiceAccount").unwrap();
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);

    // The ClusterRole grants what the operator does (apply.rs, dereference.rs,
    // controller.rs) and the binding gives it to the Deployment's account.
    let role = objects.iter().find(|o| o["kind"] == "ClusterRole").unwrap();
    let grants = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().unwrap().iter().any(|rule| {
            let has = |field: &str, value: &str| rule[field].as_array().unwrap().iter().any(|v| v == value);
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for (group, resource, verbs) in [
        ("buckets.io", "bucketsclusters", &["get", "list", "watch", "patch"][..]),
        ("buckets.io", "bucketspools", &["list", "watch", "patch", "delete"]),
        ("buckets.io", "bucketsclusters/status", &["patch"]),
        ("buckets.io", "bucketspools/status", &["patch"]),
        ("", "secrets", &["get", "create", "patch"]),
        ("buckets.io", "bucketsusers", &["get", "list", "watch", "patch"]),
        ("buckets.io", "bucketspolicies", &["get", "list", "watch", "patch"]),
        ("buckets.io", "bucketsbuckets", &["get", "list", "watch", "patch"]),
        ("buckets.io", "bucketsusers/status", &["patch"]),
        ("buckets.io", "bucketspolicies/status", &["patch"]),
        ("buckets.io", "bucketsbuckets/status", &["patch"]),
        ("buckets.io", "bucketsusers/finalizers", &["update"]),
        ("", "services", &["create", "patch"]),
        ("", "pods", &["list", "watch"]),
        ("apps", "statefulsets", &["list", "watch", "create", "patch", "delete"]),
        ("policy", "poddisruptionbudgets", &["list", "create", "patch", "delete"]),
        ("events.k8s.io", "events", &["create", "patch"]),
        ("apiextensions.k8s.io", "customresourcedefinitions", &["get"]),
        ("monitoring.coreos.com", "servicemonitors", &["create", "patch"]),
    ] {
        for verb in verbs {
            assert!(grants(group, resource, verb), "the ClusterRole lacks {verb} on {group}/{resource}");
        }
    }
    assert!(!grants("", "secrets", "list"), "least privilege: no listing of every Secret");
    let binding = objects.iter().find(|o| o["kind"] == "ClusterRoleBinding").unwrap();
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);

    // The dashboard is valid JSON with panels.
    let dashboard = objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    let json: Value = serde_json::from_str(dashboard["data"]["buckets.json"].as_str().unwrap()).unwrap();
    assert!(json["panels"].as_array().unwrap().len() >= 10);

    // Without the Prometheus Operator option there is no ServiceMonitor.
    let plain = render(&helm, &[]);
    assert!(plain.iter().all(|o| o["kind"] != "ServiceMonitor"));
}
