//! Faults on a real API server with running node pods: during a throttled scale-up
//! migration (its percent read with `kubectl get -o jsonpath` while it climbs), a node
//! process is killed with SIGKILL (the cluster reports Degraded, the pod restarts, the
//! cluster recovers) and the operator process is killed and replaced (the new one
//! resumes the step from the status, adding nothing twice); the migration completes
//! with every object intact. Then deleting the BucketsCluster removes everything it
//! owns while the claims stay (whenDeleted: Retain).

use std::time::{Duration, Instant};

use buckets_e2e::runner::PodRunner;
use buckets_e2e::{
    AwsCli, TestBed, create_namespace, install_operator_chart, repo_root, root_credentials, start_operator, wait_until,
    workspace_binary,
};

/// Objects written before the scale-up.
const OBJECTS: usize = 1000;

#[test]
fn kill_a_node_and_the_operator_during_a_scale_up() {
    buckets_e2e::in_own_network("kill_a_node_and_the_operator_during_a_scale_up", scenario);
}

fn scenario() {
    let bed = TestBed::start();
    let runner = PodRunner::start(&bed, workspace_binary("buckets-node"));
    let kubeconfig = install_operator_chart(&bed);
    let operator = start_operator(&bed, &kubeconfig, "operator-1");
    create_namespace(&bed, "store");
    // The sample cluster with a slow migration, so that the faults land in it.
    let cluster = std::fs::read_to_string(repo_root().join("config/samples/bucketscluster.yaml"))
        .unwrap()
        .replace("migrationBytesPerSecond: 0", "migrationBytesPerSecond: 100000");
    let applied = bed.kubectl_with_input(&["-n", "store", "apply", "-f", "-"], Some(&cluster));
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let pool = repo_root().join("config/samples/bucketspool.yaml");
    bed.kubectl_ok(&["-n", "store", "apply", "-f", pool.to_str().unwrap()]);
    let waited = bed.kubectl(&["-n", "store", "wait", "bc/demo", "--for=condition=Ready", "--timeout=240s"]);
    assert!(waited.status.success(), "Ready: {}\n{}", String::from_utf8_lossy(&waited.stderr), operator.log());

    // 1,000 objects (about 4 MB) through a node, with the root credentials: enough keys
    // for several migration checkpoints (every 250 keys), which is when the percent moves.
    let (user, password) = root_credentials(&bed, "store", "demo");
    let node_ip = runner.pod_ip("store", "demo-fast-0").unwrap();
    let cli = AwsCli { endpoint: format!("http://{node_ip}:9000"), user, password };
    let aws = |args: &[&str]| {
        cli.run(args);
    };
    let upload = bed.dir.path().join("upload");
    std::fs::create_dir_all(&upload).unwrap();
    for n in 0..OBJECTS {
        let body: Vec<u8> = (0..(3_000 + n * 3)).map(|i| ((i * 7 + n * 13) % 251) as u8).collect();
        std::fs::write(upload.join(format!("o{n:04}")), body).unwrap();
    }
    aws(&["s3", "mb", "s3://faults"]);
    aws(&["s3", "sync", upload.to_str().unwrap(), "s3://faults/"]);
    let get = |path: &str| {
        String::from_utf8(bed.kubectl(&["-n", "store", "get", "bc/demo", "-o", &format!("jsonpath={path}")]).stdout)
            .unwrap_or_default()
    };

    bed.kubectl_ok(&["-n", "store", "scale", "bp/fast", "--replicas", "8"]);
    wait_until("the migration runs", Duration::from_secs(120), || get("{.status.migration.state}") == "running");
    let mut percents = vec![get("{.status.migration.percent}")];

    // kill -9 a node: the cluster says Degraded, then the pod is back.
    assert!(runner.kill("store", "demo-fast-1"));
    wait_until("Degraded after the kill", Duration::from_secs(60), || {
        percents.push(get("{.status.migration.percent}"));
        get("{.status.conditions[?(@.type==\"Degraded\")].status}") == "True"
    });
    let degraded = get("{.status.conditions[?(@.type==\"Degraded\")].message}");
    assert!(degraded.contains("fast-1"), "the message names the node: {degraded}");
    // The percent climbs in the status while this operator runs (a replacement waits for
    // the old one's leader lease to expire before it reports anything).
    wait_until("the percent between 0 and 100", Duration::from_secs(60), || {
        percents.push(get("{.status.migration.percent}"));
        percents.last().and_then(|p| p.parse::<i64>().ok()).is_some_and(|p| p > 0 && p < 100)
    });

    // The operator dies mid-step; a new one resumes from the status.
    drop(operator);
    let operator = start_operator(&bed, &kubeconfig, "operator-2");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        percents.push(get("{.status.migration.percent}"));
        let settled = get("{.status.phase}") == "Ready"
            && get("{.status.activeSets}") == "2"
            && get("{.status.conditions[?(@.type==\"Degraded\")].status}") == "False";
        if settled {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}\n{}", get("{.status}"), operator.log());
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(get("{.status.topologyGeneration}"), "2", "bootstrap and one add: nothing added twice");
    assert_eq!(get("{.status.migration.percent}"), "100");
    let climbing: Vec<i64> = percents.iter().filter_map(|p| p.parse().ok()).collect();
    assert!(climbing.iter().any(|p| *p > 0 && *p < 100), "the percent was seen between 0 and 100: {climbing:?}");
    assert!(climbing.windows(2).all(|w| w[0] <= w[1] || w[1] == 0), "the percent only climbs: {climbing:?}");
    let restarts = bed.kubectl_ok(&[
        "-n",
        "store",
        "get",
        "pod",
        "demo-fast-1",
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]);
    assert_eq!(restarts, "1", "the killed node was restarted once");

    let download = bed.dir.path().join("download");
    aws(&["s3", "sync", "s3://faults/", download.to_str().unwrap()]);
    for n in 0..OBJECTS {
        let name = format!("o{n:04}");
        assert_eq!(
            std::fs::read(download.join(&name)).unwrap_or_default(),
            std::fs::read(upload.join(&name)).unwrap(),
            "{name}"
        );
    }

    // Delete the cluster: everything it owns goes, the claims stay (whenDeleted: Retain).
    bed.kubectl_ok(&["-n", "store", "delete", "bc/demo", "--timeout", "120s"]);
    wait_until("everything of the cluster is gone", Duration::from_secs(120), || {
        bed.kubectl_ok(&["-n", "store", "get", "bp,sts,svc,secret,pdb,pods", "-o", "name"]).trim().is_empty()
    });
    let claims = bed.kubectl_ok(&["-n", "store", "get", "pvc", "-o", "name"]);
    assert_eq!(claims.lines().count(), 8, "claims are retained on deletion: {claims}");
}
