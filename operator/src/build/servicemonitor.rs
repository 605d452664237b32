//! The Prometheus Operator ServiceMonitor (monitoring.coreos.com/v1) for the nodes'
//! /metrics, built as an untyped object: the CRD may not exist, and apply creates it only
//! when it does.

use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::{LABEL_COMPONENT, owned_meta};
use crate::crd::BucketsCluster;

pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"),
        "servicemonitors",
    )
}

pub fn build_service_monitor(cluster: &BucketsCluster) -> DynamicObject {
    let monitoring = &cluster.spec.monitoring;
    let metadata = owned_meta(cluster, cluster.name_any(), monitoring.labels.clone());
    // The monitor selects the headless Service (every node, ready or not) by its labels.
    let mut selector = super::cluster_labels(cluster);
    selector.insert(LABEL_COMPONENT.into(), "headless".into());
    let mut object = DynamicObject::new(&cluster.name_any(), &service_monitor_resource());
    object.metadata = metadata;
    object.data = serde_json::json!({
        "spec": {
            "selector": { "matchLabels": selector },
            "endpoints": [{ "port": "admin", "path": "/metrics", "interval": monitoring.interval }],
            "namespaceSelector": { "matchNames": [cluster.namespace().unwrap_or_default()] }
        }
    });
    object
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    #[test]
    fn monitor_scrapes_the_admin_port_of_the_headless_service() {
        let mut cluster = cluster();
        cluster.spec.monitoring.labels.insert("release".into(), "prometheus".into());
        let json = serde_json::to_value(build_service_monitor(&cluster)).unwrap();
        assert_eq!(json["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(json["kind"], "ServiceMonitor");
        assert_eq!(json["metadata"]["labels"]["release"], "prometheus");
        assert_eq!(json["spec"]["endpoints"][0]["port"], "admin");
        assert_eq!(json["spec"]["endpoints"][0]["interval"], "30s");
        assert_eq!(json["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"], "headless");
        let headless = serde_json::to_value(super::super::service::build_headless_service(&cluster)).unwrap();
        for (key, value) in json["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(
                &headless["metadata"]["labels"][key], value,
                "the monitor's selector matches the headless Service"
            );
        }
    }
}
