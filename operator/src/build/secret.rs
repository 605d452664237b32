//! The two Secrets of a cluster: the root credentials (S3 root user and admin API) and
//! the cluster secret (node-to-node RPC). Both are created once with random values and
//! never overwritten (apply creates them only when absent), so rotating them is the
//! user's deliberate act. And the key Secret of each BucketsUser, which the operator
//! rewrites when it makes the user a new key.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rand::Rng;

use super::{cluster_secret_name, owned_meta, root_secret_name};
use crate::access_crd::BucketsUser;
use crate::crd::BucketsCluster;

pub const ROOT_USER_KEY: &str = "rootUser";
pub const ROOT_PASSWORD_KEY: &str = "rootPassword";
pub const CLUSTER_SECRET_KEY: &str = "clusterSecret";
/// Length of generated passwords and secrets: 32 alphanumerics ≈ 190 bits.
const GENERATED_LENGTH: usize = 32;

/// A random alphanumeric string (safe in environment variables and URLs).
pub fn random_token(rng: &mut impl Rng, length: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..length).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

pub fn build_root_secret(cluster: &BucketsCluster, rng: &mut impl Rng) -> Secret {
    Secret {
        metadata: owned_meta(cluster, root_secret_name(cluster), BTreeMap::new()),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            (ROOT_USER_KEY.to_string(), "bucketsadmin".to_string()),
            (ROOT_PASSWORD_KEY.to_string(), random_token(rng, GENERATED_LENGTH)),
        ])),
        ..Secret::default()
    }
}

pub fn build_cluster_secret(cluster: &BucketsCluster, rng: &mut impl Rng) -> Secret {
    Secret {
        metadata: owned_meta(cluster, cluster_secret_name(cluster), BTreeMap::new()),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(CLUSTER_SECRET_KEY.to_string(), random_token(rng, GENERATED_LENGTH))])),
        ..Secret::default()
    }
}

/// Keys of a BucketsUser's Secret: the names the AWS SDKs and CLI read from the
/// environment, so `envFrom` is all an application needs.
pub const ACCESS_KEY_ID_KEY: &str = "AWS_ACCESS_KEY_ID";
pub const SECRET_ACCESS_KEY_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENDPOINT_URL_KEY: &str = "AWS_ENDPOINT_URL";
pub const REGION_KEY: &str = "AWS_REGION";
/// Label on every user Secret (its value: the BucketsUser's name), to find them with
/// `kubectl get secret -l buckets.io/user`.
pub const LABEL_USER: &str = "buckets.io/user";

/// The S3 endpoint of a cluster inside Kubernetes: its client Service's DNS name.
pub fn s3_endpoint(cluster: &BucketsCluster, settings: &super::Settings) -> String {
    use kube::ResourceExt;
    format!(
        "http://{}.{}.svc.{}:{}",
        super::client_service_name(cluster),
        cluster.namespace().unwrap_or_default(),
        settings.cluster_domain,
        cluster.spec.service.port
    )
}

/// A BucketsUser's key Secret, owned by the user (deleted with it by the garbage
/// collector).
pub fn build_user_secret(
    user: &BucketsUser,
    cluster: &BucketsCluster,
    settings: &super::Settings,
    access_key: &str,
    secret_key: &str,
) -> Secret {
    use k8s_openapi::ByteString;
    use kube::{Resource, ResourceExt};
    let owner = OwnerReference {
        api_version: BucketsUser::api_version(&()).to_string(),
        kind: BucketsUser::kind(&()).to_string(),
        name: user.name_any(),
        uid: user.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let labels = BTreeMap::from([
        (LABEL_USER.to_string(), user.name_any()),
        (super::LABEL_CLUSTER.to_string(), cluster.name_any()),
        (super::LABEL_MANAGED_BY.to_string(), super::FIELD_MANAGER.to_string()),
    ]);
    let data = [
        (ACCESS_KEY_ID_KEY, access_key.to_string()),
        (SECRET_ACCESS_KEY_KEY, secret_key.to_string()),
        (ENDPOINT_URL_KEY, s3_endpoint(cluster, settings)),
        (REGION_KEY, cluster.spec.region.clone()),
    ];
    Secret {
        metadata: ObjectMeta {
            name: Some(user.secret_name()),
            namespace: user.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data.into_iter().map(|(k, v)| (k.to_string(), ByteString(v.into_bytes()))).collect()),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn secrets_are_random_owned_and_named_from_the_spec() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let cluster = cluster();
        let root = build_root_secret(&cluster, &mut rng);
        let json = serde_json::to_value(&root).unwrap();
        assert_eq!(json["metadata"]["name"], "demo-root");
        assert_eq!(json["metadata"]["namespace"], "storage");
        assert_eq!(json["metadata"]["ownerReferences"][0]["kind"], "BucketsCluster");
        assert_eq!(json["metadata"]["ownerReferences"][0]["controller"], true);
        let password = json["stringData"]["rootPassword"].as_str().unwrap();
        assert_eq!(password.len(), 32);
        let other = build_cluster_secret(&cluster, &mut rng);
        let secret = other.string_data.unwrap()[CLUSTER_SECRET_KEY].clone();
        assert_ne!(secret, password, "two draws differ");
        assert_eq!(other.metadata.name.as_deref(), Some("demo-cluster-secret"));

        let mut named = cluster.clone();
        named.spec.root_credentials_secret = Some("my-creds".into());
        assert_eq!(build_root_secret(&named, &mut rng).metadata.name.as_deref(), Some("my-creds"));
    }
}
