//! One StatefulSet per pool. Every pod runs `buckets-node server` on its own drives
//! (one claim per drive) and names itself by its stable DNS name through the headless
//! Service; it joins the cluster's topology through the admin API (bootstrap or add set),
//! so the pod template does not change when the pool grows or shrinks and no node
//! restarts for a topology change. The replica count is the scaling state machine's
//! decision, not the pool's spec: pods of draining sets stay until their sets are empty.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SecretKeySelector, SecurityContext, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::secret::{CLUSTER_SECRET_KEY, ROOT_PASSWORD_KEY, ROOT_USER_KEY};
use super::{
    DRIVE_ROOT, Settings, cluster_labels, cluster_secret_name, headless_service_name, owned_meta, pool_selector,
    root_secret_name, statefulset_name,
};
use crate::crd::{ADMIN_PORT, BucketsCluster, BucketsPool, S3_PORT};

/// The node image's user (Dockerfile.node); drives are made writable for it by fsGroup.
const NODE_USER_ID: i64 = 10001;

fn env_value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..EnvVar::default() }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..ObjectFieldSelector::default() }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn env_secret(name: &str, secret: String, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret, key: key.into(), optional: Some(false) }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("admin".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// The drive arguments: `/data/d0` or `/data/d{0...N-1}` (the node expands ellipses).
pub fn drive_argument(drives_per_node: i32) -> String {
    if drives_per_node <= 1 {
        format!("{DRIVE_ROOT}/d0")
    } else {
        format!("{DRIVE_ROOT}/d{{0...{}}}", drives_per_node - 1)
    }
}

fn container(cluster: &BucketsCluster, pool: &BucketsPool, settings: &Settings) -> Container {
    let spec = &cluster.spec;
    let mut env = vec![
        env_field("POD_NAME", "metadata.name"),
        env_field("POD_NAMESPACE", "metadata.namespace"),
        // How peers reach this node: its DNS name through the headless Service (the
        // names the topology's drive URLs use). Expanded by the kubelet.
        env_value(
            "BUCKETS_NODE_ADDRESS",
            format!(
                "$(POD_NAME).{}.$(POD_NAMESPACE).svc.{}:{ADMIN_PORT}",
                headless_service_name(cluster),
                settings.cluster_domain
            ),
        ),
        env_secret("BUCKETS_ROOT_USER", root_secret_name(cluster), ROOT_USER_KEY),
        env_secret("BUCKETS_ROOT_PASSWORD", root_secret_name(cluster), ROOT_PASSWORD_KEY),
        env_secret("BUCKETS_CLUSTER_SECRET", cluster_secret_name(cluster), CLUSTER_SECRET_KEY),
        env_value("BUCKETS_REGION", spec.region.clone()),
    ];
    env.extend(spec.env.iter().map(|(name, value)| env_value(name, value.clone())));
    Container {
        name: "node".into(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.clone()),
        args: Some(vec![
            "server".into(),
            "--address".into(),
            format!("0.0.0.0:{S3_PORT}"),
            "--admin-address".into(),
            format!("0.0.0.0:{ADMIN_PORT}"),
            drive_argument(pool.spec.drives_per_node),
        ]),
        env: Some(env),
        ports: Some(vec![
            ContainerPort { name: Some("s3".into()), container_port: S3_PORT, ..ContainerPort::default() },
            ContainerPort { name: Some("admin".into()), container_port: ADMIN_PORT, ..ContainerPort::default() },
        ]),
        volume_mounts: Some(
            (0..pool.spec.drives_per_node)
                .map(|d| VolumeMount {
                    name: format!("d{d}"),
                    mount_path: format!("{DRIVE_ROOT}/d{d}"),
                    ..VolumeMount::default()
                })
                .collect(),
        ),
        liveness_probe: Some(Probe { initial_delay_seconds: Some(10), ..http_probe("/health/live", 10, 3) }),
        readiness_probe: Some(http_probe("/health/ready", 5, 2)),
        resources: pool.spec.resources.clone(),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(NODE_USER_ID),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Capabilities::default() }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    }
}

/// Pods of a pool prefer distinct hosts: a host's outage then takes one node's drives.
fn default_affinity(selector: &BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(selector.clone()),
                        ..LabelSelector::default()
                    }),
                    topology_key: "kubernetes.io/hostname".into(),
                    ..PodAffinityTerm::default()
                },
            }]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn claim_template(cluster: &BucketsCluster, pool: &BucketsPool, drive: i32) -> PersistentVolumeClaim {
    let mut labels = cluster_labels(cluster);
    labels.extend(pool_selector(&cluster.name_any(), &pool.name_any()));
    PersistentVolumeClaim {
        metadata: ObjectMeta { name: Some(format!("d{drive}")), labels: Some(labels), ..ObjectMeta::default() },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: pool.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(pool.spec.storage.size.clone()))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

pub fn build_statefulset(
    cluster: &BucketsCluster,
    pool: &BucketsPool,
    replicas: i32,
    settings: &Settings,
) -> StatefulSet {
    let selector = pool_selector(&cluster.name_any(), &pool.name_any());
    let mut pod_labels = cluster_labels(cluster);
    pod_labels.extend(selector.clone());
    StatefulSet {
        metadata: owned_meta(cluster, statefulset_name(&cluster.name_any(), &pool.name_any()), selector.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(headless_service_name(cluster)),
            // Every node must be up before the topology can include it; nothing is
            // gained by starting them one by one.
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector { match_labels: Some(selector.clone()), ..LabelSelector::default() },
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..Default::default()
            }),
            persistent_volume_claim_retention_policy: Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_scaled: Some(pool.spec.pvc_retention.when_scaled.clone()),
                when_deleted: Some(pool.spec.pvc_retention.when_deleted.clone()),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(pod_labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container(cluster, pool, settings)],
                    affinity: Some(pool.spec.affinity.clone().unwrap_or_else(|| default_affinity(&selector))),
                    node_selector: (!pool.spec.node_selector.is_empty()).then(|| pool.spec.node_selector.clone()),
                    tolerations: (!pool.spec.tolerations.is_empty()).then(|| pool.spec.tolerations.clone()),
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(NODE_USER_ID),
                        run_as_non_root: Some(true),
                        ..PodSecurityContext::default()
                    }),
                    enable_service_links: Some(false),
                    termination_grace_period_seconds: Some(60),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(
                (0..pool.spec.drives_per_node).map(|d| claim_template(cluster, pool, d)).collect(),
            ),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    fn env_of(json: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
        json["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
            .collect()
    }

    #[test]
    fn statefulset_from_fixture() {
        let sts = build_statefulset(&cluster(), &pool(), 6, &Settings::default());
        let json = serde_json::to_value(&sts).unwrap();
        assert_eq!(json["metadata"]["name"], "demo-fast");
        assert_eq!(json["metadata"]["ownerReferences"][0]["name"], "demo");
        let spec = &json["spec"];
        assert_eq!(spec["replicas"], 6, "the state machine's count, not spec.replicas");
        assert_eq!(spec["serviceName"], "demo-hl");
        assert_eq!(spec["podManagementPolicy"], "Parallel");
        assert_eq!(spec["selector"]["matchLabels"]["buckets.io/pool"], "fast");
        let template_labels = &spec["template"]["metadata"]["labels"];
        for (key, value) in spec["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&template_labels[key], value, "the selector matches the pods");
        }
        assert_eq!(spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"], "Delete");
        assert_eq!(spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"], "Retain");
        let claims = spec["volumeClaimTemplates"].as_array().unwrap();
        assert_eq!(claims.len(), 2, "one claim per drive");
        assert_eq!(claims[1]["metadata"]["name"], "d1");
        assert_eq!(claims[0]["spec"]["resources"]["requests"]["storage"], "10Gi");
        assert_eq!(claims[0]["spec"]["storageClassName"], "local-path");

        let container = &spec["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "buckets/buckets-node:test");
        assert_eq!(
            container["args"],
            serde_json::json!([
                "server",
                "--address",
                "0.0.0.0:9000",
                "--admin-address",
                "0.0.0.0:9001",
                "/data/d{0...1}"
            ])
        );
        let mounts: Vec<&str> =
            container["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
        assert_eq!(mounts, ["/data/d0", "/data/d1"]);
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health/live");
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/health/ready");
        assert_eq!(container["securityContext"]["runAsNonRoot"], true);

        let env = env_of(&json);
        assert_eq!(env["BUCKETS_NODE_ADDRESS"]["value"], "$(POD_NAME).demo-hl.$(POD_NAMESPACE).svc.cluster.local:9001");
        assert_eq!(env["BUCKETS_ROOT_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"], "demo-root");
        assert_eq!(env["BUCKETS_CLUSTER_SECRET"]["valueFrom"]["secretKeyRef"]["key"], "clusterSecret");
        assert_eq!(env["BUCKETS_LOG"]["value"], "debug");
        // POD_NAME must come before the variables that expand it.
        let names: Vec<&String> = env.keys().collect();
        assert!(names.contains(&&"POD_NAME".to_string()));
        let order: Vec<String> = json["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect();
        let position = |name: &str| order.iter().position(|n| n == name).unwrap();
        assert!(position("POD_NAME") < position("BUCKETS_NODE_ADDRESS"));

        let affinity = &spec["template"]["spec"]["affinity"]["podAntiAffinity"];
        assert_eq!(
            affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"],
            "kubernetes.io/hostname"
        );
    }

    #[test]
    fn one_drive_per_node_has_no_ellipsis_and_user_affinity_wins() {
        let mut pool = pool();
        pool.spec.drives_per_node = 1;
        pool.spec.affinity = Some(Affinity::default());
        let json = serde_json::to_value(build_statefulset(&cluster(), &pool, 8, &Settings::default())).unwrap();
        let container = &json["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["args"][5], "/data/d0");
        assert_eq!(json["spec"]["template"]["spec"]["affinity"], serde_json::json!({}));
    }
}
