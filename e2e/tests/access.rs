//! Identity and access declared in Kubernetes, on a real API server with node pods
//! running: a platform team applies a BucketsBucket, a BucketsPolicy and a BucketsUser
//! (config/samples/access/app.yaml) with kubectl only; the application's key arrives in a
//! Secret; with it the AWS CLI reads and writes its bucket and is refused everything
//! else. Deleting the user revokes the key; deleting the bucket while it holds objects
//! keeps it (the resource says why) until it is emptied.

use std::time::Duration;

use buckets_e2e::{AwsCli, TestBed, decode_base64, repo_root, root_credentials, start_sample_cluster, wait_until};

#[test]
fn users_policies_and_buckets_declared_with_kubectl() {
    buckets_e2e::in_own_network("users_policies_and_buckets_declared_with_kubectl", scenario);
}

/// The error code in an AWS CLI failure (`An error occurred (AccessDenied) when …`).
fn code(result: Result<String, String>) -> String {
    match result {
        Ok(out) => format!("succeeded: {out}"),
        Err(e) => e.split('(').nth(1).and_then(|s| s.split(')').next()).unwrap_or(&e).to_string(),
    }
}

fn scenario() {
    let bed = TestBed::start();
    let (_runner, operator) = start_sample_cluster(&bed);
    let samples = repo_root().join("config/samples");
    let kubectl = |args: &[&str]| {
        let mut all = vec!["-n", "store"];
        all.extend_from_slice(args);
        bed.kubectl_ok(&all)
    };
    let pod0 = kubectl(&["get", "pod", "demo-fast-0", "-o", "jsonpath={.status.podIP}"]);
    let endpoint = format!("http://{pod0}:9000");
    let (user, password) = root_credentials(&bed, "store", "demo");
    let root = AwsCli { endpoint: endpoint.clone(), user, password };
    let secret_file = bed.dir.path().join("secret.txt");
    std::fs::write(&secret_file, b"root's own\n").unwrap();
    root.run(&["s3", "mb", "s3://other"]);
    root.run(&["s3", "cp", secret_file.to_str().unwrap(), "s3://other/secret.txt"]);

    // The platform team's kubectl apply; everything becomes Ready.
    let access = samples.join("access/app.yaml");
    kubectl(&["apply", "-f", access.to_str().unwrap()]);
    for resource in ["bucketsbucket/app-data", "bucketspolicy/app-data-rw", "bucketsuser/app"] {
        let waited = bed.kubectl(&["-n", "store", "wait", resource, "--for=condition=Ready", "--timeout=120s"]);
        assert!(
            waited.status.success(),
            "{resource} did not become Ready: {}\n{}\noperator:\n{}",
            String::from_utf8_lossy(&waited.stderr),
            kubectl(&["get", resource, "-o", "yaml"]),
            operator.log()
        );
    }
    let columns = kubectl(&["get", "bucketsusers,bucketspolicies,bucketsbuckets"]);
    assert!(columns.contains("UserReady") && columns.contains("app-credentials"), "{columns}");
    assert!(columns.contains("PolicyReady") && columns.contains("BucketReady"), "{columns}");

    // What cannot change is refused at admission, with the rule's message.
    let bucket = |extra: &str| {
        format!(
            "apiVersion: buckets.io/v1alpha1\nkind: BucketsBucket\nmetadata: {{name: app-data, namespace: store}}\n\
             spec: {{clusterRef: {{name: demo}}, deletionPolicy: DeleteIfEmpty{extra}}}\n"
        )
    };
    for (extra, message) in
        [(", objectLock: true", "objectLock is immutable"), (", bucketName: elsewhere", "bucketName is immutable")]
    {
        let output = bed.kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], Some(&bucket(extra)));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(message), "expected {message:?}, got: {stderr}");
    }
    let moved = "apiVersion: buckets.io/v1alpha1\nkind: BucketsUser\nmetadata: {name: app, namespace: store}\n\
                 spec: {clusterRef: {name: elsewhere}, policies: [app-data-rw], secretName: app-credentials}\n";
    let output = bed.kubectl_with_input(&["apply", "--dry-run=server", "-f", "-"], Some(moved));
    assert!(String::from_utf8_lossy(&output.stderr).contains("clusterRef is immutable"), "{output:?}");

    // The key, as an application's envFrom would see it.
    let value = |key: &str| {
        decode_base64(&kubectl(&["get", "secret", "app-credentials", "-o", &format!("jsonpath={{.data.{key}}}")]))
    };
    assert_eq!(value("AWS_ENDPOINT_URL"), "http://demo.store.svc.cluster.local:9000");
    assert_eq!(value("AWS_REGION"), "us-east-1");
    let app = AwsCli { endpoint, user: value("AWS_ACCESS_KEY_ID"), password: value("AWS_SECRET_ACCESS_KEY") };
    assert_eq!(kubectl(&["get", "bucketsuser/app", "-o", "jsonpath={.status.accessKeyId}"]), app.user);

    // Its own bucket: write, read, list.
    let file = bed.dir.path().join("hello.txt");
    std::fs::write(&file, b"hello from the app\n").unwrap();
    app.run(&["s3", "cp", file.to_str().unwrap(), "s3://app-data/hello.txt"]);
    assert_eq!(app.run(&["s3", "cp", "s3://app-data/hello.txt", "-"]), "hello from the app\n");
    assert!(app.run(&["s3", "ls", "s3://app-data/"]).contains("hello.txt"));

    // Anything else: refused.
    let out = bed.dir.path().join("stolen.txt");
    let refused = [
        ("list buckets", app.try_run(&["s3api", "list-buckets"], false)),
        ("create a bucket", app.try_run(&["s3api", "create-bucket", "--bucket", "another"], false)),
        ("list another bucket", app.try_run(&["s3api", "list-objects-v2", "--bucket", "other"], false)),
        (
            "read another bucket",
            app.try_run(
                &["s3api", "get-object", "--bucket", "other", "--key", "secret.txt", out.to_str().unwrap()],
                false,
            ),
        ),
        ("delete its own bucket", app.try_run(&["s3api", "delete-bucket", "--bucket", "app-data"], false)),
    ];
    for (what, result) in refused {
        assert_eq!(code(result), "AccessDenied", "{what}");
    }

    // The user deleted: its key stops working, its Secret goes with it.
    kubectl(&["delete", "bucketsuser/app", "--timeout=60s"]);
    wait_until("the deleted user's key is refused", Duration::from_secs(30), || {
        code(app.try_run(&["s3api", "list-objects-v2", "--bucket", "app-data"], false)) == "InvalidAccessKeyId"
    });
    wait_until("the user's Secret is collected", Duration::from_secs(60), || {
        !bed.kubectl(&["-n", "store", "get", "secret", "app-credentials"]).status.success()
    });

    // The bucket deleted while it holds an object: it stays, and the resource says why.
    kubectl(&["delete", "bucketsbucket/app-data", "--wait=false"]);
    let reason = "jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}";
    wait_until("the bucket resource says it is not empty", Duration::from_secs(60), || {
        bed.kubectl(&["-n", "store", "get", "bucketsbucket/app-data", "-o", reason]).stdout == b"BucketNotEmpty"
    });
    let events = kubectl(&["events", "--for", "bucketsbucket/app-data"]);
    assert!(events.contains("still holds objects"), "a Warning Event says why: {events}");
    root.run(&["s3api", "head-bucket", "--bucket", "app-data"]);
    // Emptied: the next reconcile deletes it, and the resource goes.
    root.run(&["s3", "rm", "s3://app-data/hello.txt"]);
    wait_until("the emptied bucket and its resource are gone", Duration::from_secs(60), || {
        !bed.kubectl(&["-n", "store", "get", "bucketsbucket/app-data"]).status.success()
    });
    assert_eq!(code(root.try_run(&["s3api", "head-bucket", "--bucket", "app-data"], false)), "404");
    assert_eq!(root.run(&["s3", "cp", "s3://other/secret.txt", "-"]), "root's own\n");

    // The policy, no longer attached, goes too.
    kubectl(&["delete", "bucketspolicy/app-data-rw", "--timeout=60s"]);
    let log = operator.log();
    assert!(!log.contains("forbidden"), "the chart's RBAC covers every call:\n{log}");
}
