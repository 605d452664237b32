//! The two Services of a cluster: the headless one gives every node pod a stable DNS name
//! (the names the topology's drive URLs use; published before pods are ready so nodes can
//! reach each other while they start), and the client one is the S3 endpoint (ready pods
//! only).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{client_service_name, cluster_selector, headless_service_name, owned_meta};
use crate::crd::{ADMIN_PORT, BucketsCluster, S3_PORT};

fn port(name: &str, port: i32, target: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

pub fn build_headless_service(cluster: &BucketsCluster) -> Service {
    let labels = BTreeMap::from([(super::LABEL_COMPONENT.to_string(), "headless".to_string())]);
    Service {
        metadata: owned_meta(cluster, headless_service_name(cluster), labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(cluster_selector(cluster)),
            ports: Some(vec![port("s3", S3_PORT, S3_PORT), port("admin", ADMIN_PORT, ADMIN_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn build_client_service(cluster: &BucketsCluster) -> Service {
    let spec = &cluster.spec.service;
    let labels = BTreeMap::from([(super::LABEL_COMPONENT.to_string(), "s3".to_string())]);
    let mut metadata = owned_meta(cluster, client_service_name(cluster), labels);
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(spec.r#type.clone()),
            selector: Some(cluster_selector(cluster)),
            ports: Some(vec![port("s3", spec.port, S3_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn headless_service_publishes_unready_pods_on_both_ports() {
        let json = serde_json::to_value(build_headless_service(&cluster())).unwrap();
        assert_eq!(json["metadata"]["name"], "demo-hl");
        assert_eq!(json["spec"]["clusterIP"], "None");
        assert_eq!(json["spec"]["publishNotReadyAddresses"], true);
        assert_eq!(json["spec"]["selector"]["buckets.io/cluster"], "demo");
        assert_eq!(json["spec"]["ports"][1]["port"], 9001);
    }

    #[test]
    fn client_service_follows_the_spec() {
        let mut cluster = cluster();
        cluster.spec.service.r#type = "LoadBalancer".into();
        cluster.spec.service.port = 443;
        cluster.spec.service.annotations.insert("lb/internal".into(), "true".into());
        let json = serde_json::to_value(build_client_service(&cluster)).unwrap();
        assert_eq!(json["metadata"]["name"], "demo");
        assert_eq!(json["metadata"]["annotations"]["lb/internal"], "true");
        assert_eq!(json["spec"]["type"], "LoadBalancer");
        assert_eq!(json["spec"]["ports"][0]["port"], 443);
        assert_eq!(json["spec"]["ports"][0]["targetPort"], 9000);
        assert!(json["spec"].get("publishNotReadyAddresses").is_none(), "S3 goes to ready pods only");
    }
}
