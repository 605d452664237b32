//! Buckets declared on the admin API (`PUT/GET/DELETE /admin/v1/buckets/NAME`), as the
//! operator's BucketsBucket uses it, checked with an S3 client: what the admin API
//! declares is what S3 reports, a malformed policy is refused with the same reason as
//! PutBucketPolicy gives and creates nothing, object lock is decided only at creation,
//! and a bucket that holds anything is not deleted.

use aws_sdk_s3::primitives::ByteStream;
use buckets_api::client::AdminClient;
use serde_json::{Value, json};

use crate::harness::{ACCESS_KEY, Node, SECRET_KEY, admin_cli, admin_command};

fn admin(node: &Node) -> AdminClient {
    let endpoint = format!("http://{}:{}", node.ip, node.admin_port);
    AdminClient::new(endpoint, ACCESS_KEY, SECRET_KEY, AdminClient::http(None))
}

/// (status, JSON body) of one admin call.
async fn call(admin: &AdminClient, method: &str, bucket: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).unwrap() };
    let (status, answer) = admin.call(method, &format!("/admin/v1/buckets/{bucket}"), body).await.unwrap();
    (status, serde_json::from_slice(&answer).unwrap_or(Value::Null))
}

fn read_write_policy(bucket: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AppReadsAndWrites", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::buckets:user/app"},
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/*")
        }]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_declared_on_the_admin_api_are_what_s3_reports() {
    let node = Node::start(4);
    let admin = admin(&node);
    let s3 = node.client();

    // Created with versioning and a policy; the same declaration again changes nothing.
    let declared = json!({ "versioning": "Enabled", "policy": read_write_policy("app-data") });
    let (status, info) = call(&admin, "PUT", "app-data", declared.clone()).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["versioning"], "Enabled");
    assert_eq!(info["objectLock"], false);
    assert_eq!(info["empty"], true);
    assert_eq!(info["policy"], read_write_policy("app-data"));
    let (status, again) = call(&admin, "PUT", "app-data", declared).await;
    assert_eq!((status, &again["created"]), (200, &info["created"]));
    let versioning = s3.get_bucket_versioning().bucket("app-data").send().await.unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let policy = s3.get_bucket_policy().bucket("app-data").send().await.unwrap();
    let policy: Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(policy, read_write_policy("app-data"));

    // Suspended; the policy left out of the declaration is removed.
    let (status, info) = call(&admin, "PUT", "app-data", json!({ "versioning": "Suspended" })).await;
    assert_eq!((status, &info["versioning"], &info["policy"]), (200, &json!("Suspended"), &Value::Null), "{info}");
    let missing = s3.get_bucket_policy().bucket("app-data").send().await.unwrap_err();
    assert_eq!(missing.into_service_error().meta().code(), Some("NoSuchBucketPolicy"));

    // A malformed policy: PutBucketPolicy's reason, and no bucket made.
    let bad = json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Principal": "*",
        "Action": "s3:Fly", "Resource": "arn:aws:s3:::other/*" }] });
    let (status, error) = call(&admin, "PUT", "other", json!({ "policy": bad })).await;
    assert_eq!((status, &error["error"]), (400, &json!("MalformedPolicy")), "{error}");
    assert!(error["message"].as_str().unwrap().contains("s3:Fly"), "{error}");
    assert!(s3.head_bucket().bucket("other").send().await.is_err(), "nothing was created");
    let (status, error) = call(&admin, "GET", "other", Value::Null).await;
    assert_eq!((status, &error["error"]), (404, &json!("NoSuchBucket")));
    // A policy naming another bucket's objects is malformed for this one, as in S3.
    let (status, error) = call(&admin, "PUT", "other", json!({ "policy": read_write_policy("app-data") })).await;
    assert_eq!((status, &error["error"]), (400, &json!("MalformedPolicy")), "{error}");

    // Object lock only at creation, and then versioning stays Enabled.
    let (status, error) = call(&admin, "PUT", "app-data", json!({ "objectLock": true })).await;
    assert_eq!((status, &error["error"]), (409, &json!("InvalidBucketState")), "{error}");
    assert!(error["message"].as_str().unwrap().contains("object lock"), "{error}");
    let (status, info) = call(&admin, "PUT", "vault", json!({ "objectLock": true })).await;
    assert_eq!((status, &info["objectLock"], &info["versioning"]), (200, &json!(true), &json!("Enabled")), "{info}");
    let lock = s3.get_object_lock_configuration().bucket("vault").send().await.unwrap();
    assert_eq!(lock.object_lock_configuration().unwrap().object_lock_enabled().map(|s| s.as_str()), Some("Enabled"));
    let (status, error) = call(&admin, "PUT", "vault", json!({ "objectLock": true, "versioning": "Suspended" })).await;
    assert_eq!((status, &error["error"]), (400, &json!("InvalidArgument")), "{error}");
    let (status, error) = call(&admin, "PUT", "vault", json!({})).await;
    assert_eq!((status, &error["error"]), (409, &json!("InvalidBucketState")), "{error}");

    // A bucket that holds an object is not deleted; emptied, it is.
    call(&admin, "PUT", "scratch", json!({})).await;
    s3.put_object().bucket("scratch").key("a.txt").body(ByteStream::from_static(b"a")).send().await.unwrap();
    let (_, info) = call(&admin, "GET", "scratch", Value::Null).await;
    assert_eq!((&info["empty"], &info["versioning"]), (&json!(false), &Value::Null));
    let (status, error) = call(&admin, "DELETE", "scratch", Value::Null).await;
    assert_eq!((status, &error["error"]), (409, &json!("BucketNotEmpty")), "{error}");
    assert!(s3.head_bucket().bucket("scratch").send().await.is_ok(), "the bucket stays");
    s3.delete_object().bucket("scratch").key("a.txt").send().await.unwrap();
    let (status, _) = call(&admin, "DELETE", "scratch", Value::Null).await;
    assert_eq!(status, 200);
    assert!(s3.head_bucket().bucket("scratch").send().await.is_err(), "the bucket is gone");

    // Names S3 refuses, and bodies that are not a declaration.
    for name in ["Bad_Name", "ab", ".buckets-iam"] {
        let (status, error) = call(&admin, "PUT", name, json!({})).await;
        assert_eq!((status, &error["error"]), (400, &json!("InvalidArgument")), "{name}: {error}");
    }
    let (status, error) = call(&admin, "PUT", "app-data", json!({ "versioning": "Off" })).await;
    assert_eq!((status, &error["error"]), (400, &json!("MalformedRequest")), "{error}");

    // The same through `buckets-admin bucket`: a policy from a file, kept by a later
    // create that does not name one, removed with --no-policy.
    let cli = |args: &[&str]| {
        let output = admin_cli(&node, args);
        assert!(output.status.success(), "buckets-admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap_or(Value::Null)
    };
    let file = node.root.path().join("policy.json");
    std::fs::write(&file, read_write_policy("from-cli").to_string()).unwrap();
    let made = cli(&["bucket", "create", "from-cli", "--policy", file.to_str().unwrap(), "--json"]);
    assert_eq!(made["policy"], read_write_policy("from-cli"));
    let changed = cli(&["bucket", "create", "from-cli", "--versioning", "Enabled", "--json"]);
    assert_eq!((&changed["versioning"], &changed["policy"]), (&json!("Enabled"), &read_write_policy("from-cli")));
    let cleared = cli(&["bucket", "create", "from-cli", "--no-policy", "--json"]);
    assert_eq!(cleared["policy"], Value::Null);
    assert_eq!(cli(&["bucket", "info", "from-cli", "--json"])["empty"], true);
    cli(&["bucket", "remove", "from-cli"]);
    let output = admin_cli(&node, &["bucket", "info", "from-cli"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("NoSuchBucket"), "{output:?}");

    // A reader that has gone (`buckets-admin ... | grep -q`) ends it quietly, as it would
    // `cat`: no panic for failing to print.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = admin_command(&node, &["bucket", "info", "app-data", "--json"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked") && output.status.code() != Some(101), "{}: {stderr}", output.status);
}
