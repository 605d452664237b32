//! On a real API server with node pods running (the pod runner plays kubelet): install
//! (the chart's CRDs and RBAC, the operator as a process, `kubectl apply` of the samples →
//! BucketsCluster Ready via `kubectl wait` → an S3 round trip with the AWS CLI through a
//! pod behind the client Service), then scale up by one set (`kubectl scale bp`) and back
//! down, with every object written before intact after each and S3 traffic through a pod
//! during each change without a single failed request (no client retries).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use buckets_e2e::{AwsCli, TestBed, root_credentials, start_sample_cluster, wait_until};

/// S3 traffic while the cluster scales, as a user sees it: through pod 0 (which neither
/// scaling removes), with no client retries, a new object is written and read back and one
/// written before is read, over and over. Every failure is kept.
struct Traffic {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(usize, Vec<String>)>,
}

impl Traffic {
    fn start(cli: AwsCli, label: &'static str, upload: PathBuf, scratch: PathBuf) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            std::fs::create_dir_all(&scratch).unwrap();
            let (mut ok, mut failures) = (0, Vec::new());
            let mut check = |what: String, result: Result<bool, String>| match result {
                Ok(true) => ok += 1,
                Ok(false) => failures.push(format!("{what}: wrong bytes")),
                Err(e) => failures.push(format!("{what}: {}", e.trim())),
            };
            let mut n = 0;
            while !stopped.load(Ordering::SeqCst) {
                let (key, text) = (format!("s3://e2e/live-{label}/{n:04}"), format!("{label} {n}\n"));
                let file = scratch.join(format!("put-{n}"));
                std::fs::write(&file, &text).unwrap();
                check(
                    format!("PUT {key}"),
                    cli.try_run(&["s3", "cp", file.to_str().unwrap(), &key], false).map(|_| true),
                );
                check(format!("GET {key}"), cli.try_run(&["s3", "cp", &key, "-"], false).map(|got| got == text));
                let old = format!("object-{:03}", n % 120);
                let back = scratch.join(format!("get-{n}"));
                let read = cli.try_run(&["s3", "cp", &format!("s3://e2e/data/{old}"), back.to_str().unwrap()], false);
                check(
                    format!("GET {old}"),
                    read.map(|_| std::fs::read(&back).ok() == std::fs::read(upload.join(&old)).ok()),
                );
                n += 1;
            }
            (ok, failures)
        });
        Traffic { stop, thread }
    }

    /// Stops the traffic; asserts that no request failed and that there was some.
    fn finish(self, label: &str) {
        self.stop.store(true, Ordering::SeqCst);
        let (ok, failures) = self.thread.join().unwrap();
        eprintln!("{label}: {ok} S3 requests during the change, {} failed", failures.len());
        assert!(failures.is_empty(), "requests failed during the {label}: {failures:#?}");
        assert!(ok >= 3, "traffic ran during the {label}: {ok} requests");
    }
}

#[test]
fn install_scale_up_and_scale_down() {
    buckets_e2e::in_own_network("install_scale_up_and_scale_down", scenario);
}

fn scenario() {
    let bed = TestBed::start();
    let (_runner, _operator) = start_sample_cluster(&bed);
    let columns = bed.kubectl_ok(&["-n", "store", "get", "bc/demo"]);
    assert!(columns.contains("Ready"), "{columns}");
    assert_eq!(bed.kubectl_ok(&["-n", "store", "get", "bc/demo", "-o", "jsonpath={.status.activeSets}"]), "1");
    assert_eq!(bed.kubectl_ok(&["-n", "store", "get", "bp/fast", "-o", "jsonpath={.status.readyReplicas}"]), "4");

    // Through a pod behind the client Service, with the root credentials of the Secret.
    let endpoints = || {
        bed.kubectl_ok(&[
            "-n",
            "store",
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=demo",
            "-o",
            "jsonpath={range .items[*].endpoints[*]}{.conditions.ready} {.addresses[0]}{\"\\n\"}{end}",
        ])
        .lines()
        .filter_map(|line| line.strip_prefix("true "))
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join(" ")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while endpoints().split_whitespace().count() < 4 {
        if std::time::Instant::now() > deadline {
            let log =
                std::fs::read_to_string(bed.dir.path().join("logs/kube-controller-manager.log")).unwrap_or_default();
            let slice_lines: Vec<&str> = log.lines().filter(|l| l.contains("ndpoint")).rev().take(20).collect();
            panic!(
                "no ready endpoints behind the client Service:\n{}\n{}\n{slice_lines:#?}",
                bed.kubectl_ok(&["-n", "store", "get", "endpointslices", "-o", "yaml"]),
                bed.kubectl_ok(&["-n", "store", "get", "pods", "-o", "wide"])
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let addresses = endpoints();
    let address = addresses.split_whitespace().next().unwrap();
    let (user, password) = root_credentials(&bed, "store", "demo");
    let file = bed.dir.path().join("hello.txt");
    std::fs::write(&file, b"hello from the test bed\n").unwrap();
    let cli = AwsCli { endpoint: format!("http://{address}:9000"), user, password };
    let aws = |args: &[&str]| cli.run(args);
    aws(&["s3", "mb", "s3://e2e"]);
    aws(&["s3", "cp", file.to_str().unwrap(), "s3://e2e/hello.txt"]);
    let back = bed.dir.path().join("back.txt");
    aws(&["s3", "cp", "s3://e2e/hello.txt", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), b"hello from the test bed\n");
    let listed = aws(&["s3", "ls", "s3://e2e/"]);
    assert!(listed.contains("hello.txt"), "{listed}");

    // Objects to carry through the scaling.
    let upload = bed.dir.path().join("upload");
    std::fs::create_dir_all(&upload).unwrap();
    for n in 0..120 {
        let body: Vec<u8> = (0..(500 + n * 97)).map(|i| ((i * 31 + n * 7) % 251) as u8).collect();
        std::fs::write(upload.join(format!("object-{n:03}")), body).unwrap();
    }
    aws(&["s3", "sync", upload.to_str().unwrap(), "s3://e2e/data/"]);
    let intact = |label: &str| {
        let download = bed.dir.path().join(format!("download-{label}"));
        aws(&["s3", "sync", "s3://e2e/data/", download.to_str().unwrap()]);
        for n in 0..120 {
            let name = format!("object-{n:03}");
            assert_eq!(
                std::fs::read(download.join(&name)).unwrap_or_default(),
                std::fs::read(upload.join(&name)).unwrap(),
                "{name} after {label}"
            );
        }
    };
    let get = |path: &str| bed.kubectl_ok(&["-n", "store", "get", "bc/demo", "-o", &format!("jsonpath={path}")]);
    let pod0 = bed.kubectl_ok(&["-n", "store", "get", "pod", "demo-fast-0", "-o", "jsonpath={.status.podIP}"]);
    let users = AwsCli { endpoint: format!("http://{pod0}:9000"), ..cli.clone() };
    let traffic = |label| Traffic::start(users.clone(), label, upload.clone(), bed.dir.path().join(label));

    // Scale up by one set: Progressing, then Ready with two sets; users keep full service.
    let during = traffic("scale-up");
    bed.kubectl_ok(&["-n", "store", "scale", "bp/fast", "--replicas", "8"]);
    wait_until("the scale-up is in progress", Duration::from_secs(60), || {
        get("{.status.conditions[?(@.type==\"Progressing\")].status}") == "True"
    });
    wait_until("two active sets and Ready", Duration::from_secs(240), || {
        get("{.status.activeSets}") == "2"
            && get("{.status.phase}") == "Ready"
            && get("{.status.conditions[?(@.type==\"Progressing\")].status}") == "False"
    });
    assert_eq!(bed.kubectl_ok(&["-n", "store", "get", "sts/demo-fast", "-o", "jsonpath={.spec.replicas}"]), "8");
    let columns = bed.kubectl_ok(&["-n", "store", "get", "bc/demo"]);
    assert!(columns.lines().nth(1).is_some_and(|l| l.contains("Ready") && l.contains(" 2 ")), "{columns}");
    assert_eq!(get("{.status.migration.percent}"), "100", "the migration finished");
    // Only the objects the new set takes over moved: about 1/(N+1) = 1/2 of the 121
    // (a rehash of everything would move all of them).
    let moved: f64 = get("{.status.migration.objectsMoved}").parse().unwrap();
    assert_eq!(get("{.status.migration.objectsTotal}"), moved.to_string(), "everything that had to move moved");
    assert!((0.3..=0.7).contains(&(moved / 121.0)), "moved {moved} of 121 objects");
    eprintln!("scale-up moved {moved} of 121 objects");
    let claims = bed.kubectl_ok(&["-n", "store", "get", "pvc", "-o", "name"]);
    assert!(claims.contains("d0-demo-fast-7"), "each new node has its drive's claim: {claims}");
    during.finish("scale-up");
    intact("scale-up");

    // Scale down by one set: drained, removed, StatefulSet shrunk, claims deleted; users
    // keep full service.
    let during = traffic("scale-down");
    bed.kubectl_ok(&["-n", "store", "scale", "bp/fast", "--replicas", "4"]);
    wait_until("one active set, the other removed, Ready", Duration::from_secs(240), || {
        get("{.status.activeSets}") == "1"
            && get("{.status.sets[1].state}") == "Removed"
            && get("{.status.phase}") == "Ready"
    });
    wait_until("the StatefulSet and its pods shrink", Duration::from_secs(120), || {
        bed.kubectl_ok(&["-n", "store", "get", "pods", "-o", "name"]).lines().count() == 4
    });
    assert_eq!(bed.kubectl_ok(&["-n", "store", "get", "sts/demo-fast", "-o", "jsonpath={.spec.replicas}"]), "4");
    wait_until("the drained pods' claims go (whenScaled: Delete)", Duration::from_secs(60), || {
        !bed.kubectl_ok(&["-n", "store", "get", "pvc", "-o", "name"]).contains("d0-demo-fast-4")
    });
    during.finish("scale-down");
    intact("scale-down");
}
