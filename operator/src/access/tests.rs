//! The access reconcilers against the in-memory API server and nodes: what a platform
//! team would check with kubectl (conditions, Events, the Secret) and what the cluster
//! holds afterwards (users, keys, policies, buckets).

use std::sync::{Arc, Mutex};

use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use super::*;
use crate::access_crd::{BucketsBucket, BucketsPolicy, BucketsUser};
use crate::build::Settings;
use crate::metrics::Metrics;
use crate::testing::{FakeApi, FakeNodes, fake_client};

const NS: &str = "storage";
const CLUSTER_PATH: &str = "/apis/buckets.io/v1alpha1/namespaces/storage/bucketsclusters/demo";
const USER_PATH: &str = "/apis/buckets.io/v1alpha1/namespaces/storage/bucketsusers/app";
const POLICY_PATH: &str = "/apis/buckets.io/v1alpha1/namespaces/storage/bucketspolicies/app-rw";
const BUCKET_PATH: &str = "/apis/buckets.io/v1alpha1/namespaces/storage/bucketsbuckets/app-data";
const SECRET_PATH: &str = "/api/v1/namespaces/storage/secrets/app-credentials";

struct Bed {
    api: Arc<Mutex<FakeApi>>,
    nodes: Arc<FakeNodes>,
    ctx: Arc<Context>,
}

fn app_policy() -> Value {
    json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": ["arn:aws:s3:::app-data/*"] }] })
}

impl Bed {
    /// A cluster `demo` that serves (bootstrapped, one running pod), or one that does not
    /// yet.
    fn new(serving: bool) -> Self {
        let api = Arc::new(Mutex::new(FakeApi::default()));
        {
            let mut fake = api.lock().unwrap();
            let generation = if serving { 1 } else { 0 };
            fake.insert(
                CLUSTER_PATH,
                json!({
                    "apiVersion": "buckets.io/v1alpha1", "kind": "BucketsCluster",
                    "metadata": { "name": "demo", "namespace": NS },
                    "spec": { "image": "buckets/buckets-node:test", "region": "eu-west-3" },
                    "status": { "phase": if serving { "Ready" } else { "Provisioning" }, "topologyGeneration": generation }
                }),
            );
            fake.insert(
                "/api/v1/namespaces/storage/secrets/demo-root",
                json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "demo-root", "namespace": NS },
                        "stringData": { "rootUser": "bucketsadmin", "rootPassword": "pw" } }),
            );
            if serving {
                fake.insert(
                    "/api/v1/namespaces/storage/pods/demo-fast-0",
                    json!({ "apiVersion": "v1", "kind": "Pod",
                            "metadata": { "name": "demo-fast-0", "namespace": NS, "labels": { "buckets.io/cluster": "demo" } },
                            "status": { "phase": "Running", "podIP": "10.0.0.1" } }),
                );
            }
            fake.insert(
                USER_PATH,
                json!({ "apiVersion": "buckets.io/v1alpha1", "kind": "BucketsUser",
                        "metadata": { "name": "app", "namespace": NS },
                        "spec": { "clusterRef": { "name": "demo" }, "policies": ["app-rw"] } }),
            );
            fake.insert(
                POLICY_PATH,
                json!({ "apiVersion": "buckets.io/v1alpha1", "kind": "BucketsPolicy",
                        "metadata": { "name": "app-rw", "namespace": NS },
                        "spec": { "clusterRef": { "name": "demo" }, "document": app_policy() } }),
            );
            fake.insert(
                BUCKET_PATH,
                json!({ "apiVersion": "buckets.io/v1alpha1", "kind": "BucketsBucket",
                        "metadata": { "name": "app-data", "namespace": NS },
                        "spec": { "clusterRef": { "name": "demo" }, "versioning": "Enabled" } }),
            );
        }
        let nodes = Arc::new(FakeNodes::default());
        if serving {
            nodes.state.lock().unwrap().topology =
                Some(json!({ "clusterId": "00000000-0000-4000-8000-000000000001", "generation": 1, "pools": [] }));
        }
        let ctx = Arc::new(Context {
            client: fake_client(api.clone()),
            nodes: nodes.clone(),
            settings: Settings::default(),
            metrics: Arc::new(Metrics::new()),
            reporter: Reporter { controller: "buckets-operator".into(), instance: None },
        });
        Bed { api, nodes, ctx }
    }

    fn object(&self, path: &str) -> Value {
        self.api.lock().unwrap().get(path).cloned().unwrap_or(Value::Null)
    }

    fn ready(&self, path: &str) -> Value {
        let status = self.object(path)["status"].clone();
        status["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
            .unwrap_or_default()
    }

    fn events(&self) -> usize {
        self.api.lock().unwrap().calls_matching("events").len()
    }

    fn node_calls(&self) -> Vec<String> {
        self.nodes.state.lock().unwrap().calls.clone()
    }

    /// One reconcile of the resource at `path` (the first also adds the finalizer).
    async fn reconcile(&self, path: &str) -> Result<Action, Error> {
        let object = self.object(path);
        let ctx = self.ctx.clone();
        match object["kind"].as_str().unwrap() {
            "BucketsUser" => {
                user::reconcile(Arc::new(serde_json::from_value::<BucketsUser>(object).unwrap()), ctx).await
            }
            "BucketsPolicy" => {
                policy::reconcile(Arc::new(serde_json::from_value::<BucketsPolicy>(object).unwrap()), ctx).await
            }
            _ => bucket::reconcile(Arc::new(serde_json::from_value::<BucketsBucket>(object).unwrap()), ctx).await,
        }
    }

    /// Reconciles until the finalizer is on, then once more.
    async fn settle(&self, path: &str) -> Result<Action, Error> {
        if self.object(path)["metadata"]["finalizers"].is_null() {
            self.reconcile(path).await.expect("the finalizer is added");
            assert_eq!(self.object(path)["metadata"]["finalizers"][0], ACCESS_FINALIZER);
        }
        self.reconcile(path).await
    }

    fn delete(&self, path: &str) {
        self.api.lock().unwrap().touch(path, |o| o["metadata"]["deletionTimestamp"] = json!("2026-11-26T00:00:05Z"));
    }

    fn gone(&self, path: &str) -> bool {
        let mut api = self.api.lock().unwrap();
        api.collect_garbage();
        api.get(path).is_none()
    }

    fn secret(&self) -> std::collections::BTreeMap<String, String> {
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(self.object(SECRET_PATH)).unwrap();
        let data = secret.data.unwrap_or_default();
        data.into_iter().map(|(k, v)| (k, String::from_utf8(v.0).unwrap())).collect()
    }
}

#[tokio::test]
async fn a_user_gets_its_policies_and_a_key_secret_and_loses_them_with_the_resource() {
    let bed = Bed::new(true);
    // Its policy does not exist yet: said in the condition and a Warning Event, no key.
    let action = bed.settle(USER_PATH).await.expect("reconcile");
    assert_eq!(action, Action::requeue(WAIT_REQUEUE));
    let ready = bed.ready(USER_PATH);
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("PolicyNotFound")), "{ready}");
    assert!(ready["message"].as_str().unwrap().contains("create a BucketsPolicy named app-rw"), "{ready}");
    assert!(bed.events() >= 2, "UserCreated and the refusal");
    assert!(bed.object(SECRET_PATH).is_null(), "no Secret before the user is complete");

    bed.settle(POLICY_PATH).await.expect("policy reconcile");
    assert_eq!(bed.ready(POLICY_PATH)["status"], "True");
    bed.reconcile(USER_PATH).await.expect("reconcile");
    let ready = bed.ready(USER_PATH);
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("True"), &json!("UserReady")), "{ready}");
    let secret = bed.secret();
    assert_eq!(secret["AWS_ACCESS_KEY_ID"], "AK1");
    assert_eq!(secret["AWS_SECRET_ACCESS_KEY"], "secret-1");
    assert_eq!(secret["AWS_ENDPOINT_URL"], "http://demo.storage.svc.cluster.local:9000");
    assert_eq!(secret["AWS_REGION"], "eu-west-3");
    let owner = &bed.object(SECRET_PATH)["metadata"]["ownerReferences"][0];
    assert_eq!((&owner["kind"], &owner["uid"]), (&json!("BucketsUser"), &bed.object(USER_PATH)["metadata"]["uid"]));
    assert_eq!(bed.object(USER_PATH)["status"]["accessKeyId"], "AK1");
    {
        let state = bed.nodes.state.lock().unwrap();
        assert_eq!(state.iam.users["app"].policies, ["app-rw"]);
    }

    // Nothing changed: no new key, no write.
    let calls = bed.node_calls().len();
    bed.reconcile(USER_PATH).await.expect("reconcile");
    assert_eq!(bed.node_calls().len(), calls, "{:?}", bed.node_calls());

    // The spec names another policy: attached, the old one detached.
    bed.api.lock().unwrap().touch(USER_PATH, |u| u["spec"]["policies"] = json!(["readonly"]));
    bed.reconcile(USER_PATH).await.expect("reconcile");
    assert_eq!(bed.nodes.state.lock().unwrap().iam.users["app"].policies, ["readonly"]);

    // The Secret deleted: a new key, and the old one revoked.
    bed.api.lock().unwrap().objects.remove(SECRET_PATH);
    bed.reconcile(USER_PATH).await.expect("reconcile");
    assert_eq!(bed.secret()["AWS_ACCESS_KEY_ID"], "AK2");
    let keys: Vec<String> =
        bed.nodes.state.lock().unwrap().iam.users["app"].keys.iter().map(|k| k.access_key.clone()).collect();
    assert_eq!(keys, ["AK2"]);

    // A key removed behind the operator's back (buckets-admin key remove): replaced.
    bed.nodes.state.lock().unwrap().iam.users.get_mut("app").unwrap().keys.clear();
    bed.reconcile(USER_PATH).await.expect("reconcile");
    assert_eq!(bed.secret()["AWS_ACCESS_KEY_ID"], "AK3");

    // Deleted: the user goes from the cluster, then the finalizer.
    bed.delete(USER_PATH);
    bed.reconcile(USER_PATH).await.expect("cleanup");
    assert!(!bed.nodes.state.lock().unwrap().iam.users.contains_key("app"));
    assert!(bed.gone(USER_PATH));
}

#[tokio::test]
async fn a_secret_of_the_same_name_that_is_not_the_users_is_never_overwritten() {
    let bed = Bed::new(true);
    bed.api.lock().unwrap().insert(
        SECRET_PATH,
        json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "app-credentials", "namespace": NS },
                "data": { "AWS_ACCESS_KEY_ID": "bWluZQ==" } }),
    );
    bed.api.lock().unwrap().touch(USER_PATH, |u| u["spec"]["policies"] = json!(["readwrite"]));
    bed.settle(USER_PATH).await.expect("reconcile");
    let ready = bed.ready(USER_PATH);
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("SecretConflict")), "{ready}");
    assert_eq!(bed.secret()["AWS_ACCESS_KEY_ID"], "mine");
    assert!(!bed.node_calls().iter().any(|c| c.starts_with("create-key")), "no key made for nobody");
}

#[tokio::test]
async fn a_malformed_policy_is_the_clusters_reason_and_an_attached_one_is_kept_until_detached() {
    let bed = Bed::new(true);
    bed.api.lock().unwrap().touch(POLICY_PATH, |p| p["spec"]["document"] = json!({ "Version": "2012-10-17" }));
    let events = bed.events();
    bed.settle(POLICY_PATH).await.expect("reconcile");
    let ready = bed.ready(POLICY_PATH);
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("MalformedPolicy")), "{ready}");
    assert!(ready["message"].as_str().unwrap().contains("Missing required field Statement"), "{ready}");
    assert_eq!(bed.events(), events + 1, "one Warning Event");
    bed.reconcile(POLICY_PATH).await.expect("reconcile");
    assert_eq!(bed.events(), events + 1, "not repeated while nothing changes");

    bed.api.lock().unwrap().touch(POLICY_PATH, |p| p["spec"]["document"] = app_policy());
    bed.reconcile(POLICY_PATH).await.expect("reconcile");
    assert_eq!(bed.ready(POLICY_PATH)["reason"], "PolicyReady");
    assert_eq!(bed.nodes.state.lock().unwrap().iam.policies["app-rw"], app_policy());
    let puts = bed.node_calls().iter().filter(|c| c.starts_with("put-policy")).count();
    bed.reconcile(POLICY_PATH).await.expect("reconcile");
    let again = bed.node_calls().iter().filter(|c| c.starts_with("put-policy")).count();
    assert_eq!(puts, again, "an unchanged document is not stored again");

    // Attached to a user: the deletion waits, saying who uses it.
    bed.settle(USER_PATH).await.expect("user");
    bed.delete(POLICY_PATH);
    let error = bed.reconcile(POLICY_PATH).await.expect_err("the deletion waits");
    assert!(error.to_string().contains("still attached"), "{error}");
    let ready = bed.ready(POLICY_PATH);
    assert_eq!(ready["reason"], "PolicyInUse");
    assert!(ready["message"].as_str().unwrap().contains("app"), "{ready}");
    assert!(!bed.gone(POLICY_PATH));
    // The user goes; the policy follows.
    bed.delete(USER_PATH);
    bed.reconcile(USER_PATH).await.expect("user cleanup");
    bed.reconcile(POLICY_PATH).await.expect("policy cleanup");
    assert!(bed.gone(POLICY_PATH));
    assert!(!bed.nodes.state.lock().unwrap().iam.policies.contains_key("app-rw"));
}

#[tokio::test]
async fn a_bucket_is_declared_and_deleted_only_once_empty() {
    let bed = Bed::new(true);
    bed.api.lock().unwrap().touch(BUCKET_PATH, |b| b["spec"]["policy"] = app_policy());
    bed.settle(BUCKET_PATH).await.expect("reconcile");
    let ready = bed.ready(BUCKET_PATH);
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("True"), &json!("BucketReady")), "{ready}");
    assert!(ready["message"].as_str().unwrap().contains("Enabled, with a bucket policy"), "{ready}");
    assert_eq!(bed.object(BUCKET_PATH)["status"]["bucketName"], "app-data");
    {
        let state = bed.nodes.state.lock().unwrap();
        let bucket = &state.iam.buckets["app-data"];
        assert_eq!(bucket.policy, Some(app_policy()));
        assert_eq!(bucket.versioning, Some(buckets_api::bucket::BucketVersioning::Enabled));
    }

    // Deleted while it holds objects: it stays, and says why once.
    bed.nodes.state.lock().unwrap().iam.objects.insert("app-data".into(), 2);
    bed.delete(BUCKET_PATH);
    let events = bed.events();
    bed.reconcile(BUCKET_PATH).await.expect_err("the deletion waits");
    bed.reconcile(BUCKET_PATH).await.expect_err("the deletion waits");
    let ready = bed.ready(BUCKET_PATH);
    assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("BucketNotEmpty")), "{ready}");
    assert_eq!(bed.events(), events + 1, "one Warning Event");
    assert!(!bed.gone(BUCKET_PATH));
    assert!(bed.nodes.state.lock().unwrap().iam.buckets.contains_key("app-data"));

    // Emptied: the next reconcile deletes it and lets the resource go.
    bed.nodes.state.lock().unwrap().iam.objects.clear();
    bed.reconcile(BUCKET_PATH).await.expect("cleanup");
    assert!(!bed.nodes.state.lock().unwrap().iam.buckets.contains_key("app-data"));
    assert!(bed.gone(BUCKET_PATH));
}

#[tokio::test]
async fn a_retained_bucket_stays_and_object_lock_cannot_be_added_later() {
    let bed = Bed::new(true);
    bed.api.lock().unwrap().touch(BUCKET_PATH, |b| b["spec"]["deletionPolicy"] = json!("Retain"));
    bed.settle(BUCKET_PATH).await.expect("reconcile");
    // The bucket was made elsewhere without object lock: the cluster's refusal is shown.
    bed.api.lock().unwrap().touch(BUCKET_PATH, |b| b["spec"]["objectLock"] = json!(true));
    bed.reconcile(BUCKET_PATH).await.expect("reconcile");
    assert_eq!(bed.ready(BUCKET_PATH)["reason"], "InvalidBucketState");
    bed.delete(BUCKET_PATH);
    bed.reconcile(BUCKET_PATH).await.expect("cleanup");
    assert!(bed.gone(BUCKET_PATH));
    assert!(bed.nodes.state.lock().unwrap().iam.buckets.contains_key("app-data"), "retained");
}

#[tokio::test]
async fn nothing_is_asked_of_a_cluster_that_does_not_serve_yet() {
    let bed = Bed::new(false);
    for path in [USER_PATH, POLICY_PATH, BUCKET_PATH] {
        let action = bed.settle(path).await.expect("reconcile");
        assert_eq!(action, Action::requeue(WAIT_REQUEUE));
        let ready = bed.ready(path);
        assert_eq!((&ready["status"], &ready["reason"]), (&json!("False"), &json!("ClusterNotReady")), "{ready}");
        assert!(ready["message"].as_str().unwrap().contains("BucketsCluster demo does not serve yet"), "{ready}");
    }
    assert!(bed.node_calls().is_empty());
    // Deleted before the cluster ever served: nothing to remove, the resources go.
    for path in [USER_PATH, POLICY_PATH, BUCKET_PATH] {
        bed.delete(path);
        bed.reconcile(path).await.expect("cleanup");
        assert!(bed.gone(path), "{path}");
    }

    // A cluster that does not exist.
    let bed = Bed::new(true);
    bed.api.lock().unwrap().touch(USER_PATH, |u| u["spec"]["clusterRef"]["name"] = json!("gone"));
    bed.settle(USER_PATH).await.expect("reconcile");
    let ready = bed.ready(USER_PATH);
    assert_eq!(ready["reason"], "ClusterNotFound");
    assert!(ready["message"].as_str().unwrap().contains("BucketsCluster gone does not exist in namespace storage"));
}
