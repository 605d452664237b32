//! The migration engine on a 4-node cluster: draining a set moves out exactly its objects
//! while a reader loop checks every object's bytes the whole time; a node killed with
//! `kill -9` mid-migration is replaced as the set's migrator and, back, catches up; pause
//! holds, resume finishes, a throttle limits the rate. Driven through `buckets-admin`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use buckets_api::{MigrationState, MigrationStatus};
use buckets_node::placement::topology::{Topology, TopologyRules};
use futures::StreamExt;

use crate::harness::{
    ACCESS_KEY, Node, SECRET_KEY, admin_cli, complete_upload, data, files_under, get_bytes, md5_hex, upload_part,
    wait_until,
};
use crate::topology::admin_get;

fn admin_ok(node: &Node, args: &[&str]) -> String {
    let output = admin_cli(node, args);
    assert!(output.status.success(), "buckets-admin {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn status(node: &Node) -> MigrationStatus {
    serde_json::from_str(&admin_ok(node, &["migration", "status", "--json"])).unwrap()
}

/// Sizes of the 2,000+ objects: mostly small (inline), some multi-block; multipart
/// uploads come on top.
fn size_of(n: usize) -> usize {
    if n.is_multiple_of(50) { 1_300_000 + n } else { 500 + (n * 37) % 6000 }
}

async fn upload_multipart(s3: &aws_sdk_s3::Client, key: &str, parts: &[Vec<u8>]) {
    let upload = s3.create_multipart_upload().bucket("live").key(key).send().await.unwrap();
    let id = upload.upload_id().unwrap();
    let mut etags = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let number = index as i32 + 1;
        etags.push((number, upload_part(s3, "live", key, id, number, part).await));
    }
    complete_upload(s3, "live", key, id, &etags).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_migration_moves_at_its_limit() {
    // One node, two sets of ten drives; about 32 MiB to move out of set 1 at 4 MiB/s:
    // eight seconds, long enough to measure (unthrottled it moves several times faster).
    let node = Node::start_with_env(20, &[("BUCKETS_MIGRATION_WORKERS", "8")]);
    let s3 = node.client();
    s3.create_bucket().bucket("paced").send().await.unwrap();
    let keys: Vec<String> = (0..64).map(|n| format!("object-{n:02}")).collect();
    for (n, key) in keys.iter().enumerate() {
        let body = ByteStream::from(data(1024 * 1024, n as u64));
        s3.put_object().bucket("paced").key(key).body(body).send().await.unwrap();
    }
    // The ring is drawn per cluster: what set 1 holds is what must move.
    let topology: Topology = serde_json::from_str(&admin_ok(&node, &["topology", "show", "--json"])).unwrap();
    let in_set_1 = keys.iter().filter(|key| topology.ring().locate("paced", key) == 1).count();
    admin_ok(&node, &["migration", "throttle", "4M"]);
    let limit = status(&node).bytes_per_second_limit as f64;
    assert_eq!(limit, 4.0 * 1024.0 * 1024.0);
    admin_ok(&node, &["drain-set", "1"]);
    // (time, bytes moved) from the node's counter, which counts every object moved.
    let mut samples: Vec<(Instant, f64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while status(&node).state != MigrationState::Done {
        assert!(Instant::now() < deadline, "the migration did not finish");
        samples.push((Instant::now(), node.metric("buckets_migration_moved_bytes_total")));
        std::thread::sleep(Duration::from_millis(200));
    }
    let moved = node.metric("buckets_migration_moved_bytes_total");
    assert_eq!(moved, (in_set_1 * 1024 * 1024) as f64, "every object set 1 held moved, once");
    assert!(in_set_1 >= 12, "set 1 held a share of the objects: {in_set_1} of 64");
    // From the first object moved to the last: the throttle allows a burst of one second's
    // worth and the objects in flight, so the rate is near the limit, not far above or below.
    let (start, first) = *samples.iter().find(|(_, bytes)| *bytes > 0.0).expect("objects moved while sampled");
    let (end, last) = *samples.iter().rev().find(|(_, bytes)| *bytes == moved).unwrap_or(samples.last().unwrap());
    let seconds = end.duration_since(start).as_secs_f64();
    assert!(seconds >= 2.0, "a migration long enough to measure: {seconds} s");
    let rate = (last - first) / seconds;
    assert!(rate <= 1.5 * limit, "moved at {rate} B/s, over the limit of {limit} B/s");
    assert!(rate >= 0.4 * limit, "moved at {rate} B/s, far under the limit of {limit} B/s");
    for n in 0..48 {
        assert!(get_bytes(&s3, "paced", &format!("object-{n:02}")).await == data(1024 * 1024, n));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn draining_a_set_live_moves_its_objects_and_readers_never_miss_one() {
    // Four nodes of five drives: two sets of 10, each with 2–3 drives on every node.
    let began = Instant::now();
    let mut cluster =
        Node::start_cluster(4, 5, &[("BUCKETS_DRIVE_CHECK_SECS", "1"), ("BUCKETS_MIGRATION_WORKERS", "8")]);
    let clients: Vec<aws_sdk_s3::Client> = cluster.iter().map(|n| n.client()).collect();
    clients[0].create_bucket().bucket("live").send().await.unwrap();
    let mut expected: HashMap<String, String> = HashMap::new();
    let keys: Vec<String> = (0..2000).map(|n| format!("data/{:02}/object-{n:05}", n % 17)).collect();
    let writes = futures::stream::iter(keys.iter().enumerate().map(|(n, key)| {
        let s3 = clients[n % 4].clone();
        let bytes = data(size_of(n), n as u64);
        async move {
            s3.put_object().bucket("live").key(key).body(ByteStream::from(bytes)).send().await.unwrap();
        }
    }));
    writes.buffer_unordered(16).collect::<Vec<()>>().await;
    for (n, key) in keys.iter().enumerate() {
        expected.insert(key.clone(), md5_hex(&data(size_of(n), n as u64)));
    }
    for n in 0..4u64 {
        let key = format!("multipart/{n}");
        let parts = vec![data(5 * 1024 * 1024, 1000 + n), data(100_000, 2000 + n)];
        upload_multipart(&clients[n as usize], &key, &parts).await;
        expected.insert(key, md5_hex(&parts.concat()));
    }
    eprintln!("{:?}: objects written", began.elapsed());
    let (_, body) = admin_get(&cluster[0], "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let before: Topology = serde_json::from_slice(&body).unwrap();
    let ring = before.ring();
    let in_set_one = expected.keys().filter(|k| ring.locate("live", k) == 1).count() as u64;
    let total = expected.len() as f64;
    assert!((0.4..0.6).contains(&(in_set_one as f64 / total)), "{in_set_one} of {total} in set 1");

    // A reader loop through every node, for the whole migration.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(expected);
    let mut readers = Vec::new();
    for reader in 0..2usize {
        let (stop, reads, expected) = (stop.clone(), reads.clone(), expected.clone());
        let clients = clients.clone();
        readers.push(tokio::spawn(async move {
            let keys: Vec<&String> = expected.keys().collect();
            let mut failures = Vec::new();
            let mut n = reader * 7919;
            while !stop.load(Ordering::Relaxed) {
                n = (n + 104_729) % keys.len();
                let key = keys[n];
                // A node being killed may fail a request; another node must answer.
                let mut answer = None;
                for attempt in 0..4 {
                    let s3 = &clients[(n + attempt + reader) % 4];
                    match s3.get_object().bucket("live").key(key).send().await {
                        Ok(response) => match response.body.collect().await {
                            Ok(body) => {
                                answer = Some(Ok(body.into_bytes()));
                                break;
                            }
                            Err(e) => answer = Some(Err(format!("{key}: body: {e}"))),
                        },
                        Err(e) => {
                            let text = format!("{e:?}");
                            if text.contains("NoSuchKey") {
                                answer = Some(Err(format!("{key}: 404 during migration")));
                                break;
                            }
                            answer = Some(Err(format!("{key}: {text}")));
                        }
                    }
                }
                match answer {
                    Some(Ok(bytes)) if md5_hex(&bytes) == expected[key] => {
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(_)) => failures.push(format!("{key}: wrong bytes")),
                    Some(Err(e)) => failures.push(e),
                    None => failures.push(format!("{key}: no answer")),
                }
            }
            failures
        }));
    }

    // Throttled so that the kill lands mid-migration, then drained through the CLI.
    admin_ok(&cluster[0], &["migration", "throttle", "12M"]);
    let drained = admin_ok(&cluster[1], &["drain-set", "1"]);
    assert!(drained.contains("Draining"), "{drained}");
    wait_until("the migration moves objects", Duration::from_secs(60), || {
        let s = status(&cluster[0]);
        s.moved_objects > 10 && s.state == MigrationState::Running
    });
    let during = status(&cluster[3]);
    assert!(during.total_objects > 0 && during.percent < 100.0, "{during:?}");

    // kill -9 the node that runs set 1's migration (it serves set 1's first drive).
    let owner = cluster
        .iter()
        .position(|n| before.pools[0].sets[1].drives[0].contains(&format!("{}:{}", n.ip, n.admin_port)))
        .unwrap();
    eprintln!("{:?}: killing the owner of set 1", began.elapsed());
    cluster[owner].kill();
    let survivor = (owner + 1) % 4;
    let moved_at_kill = status(&cluster[survivor]).moved_objects;
    wait_until("another node takes over set 1's migration", Duration::from_secs(120), || {
        status(&cluster[survivor]).moved_objects > moved_at_kill + 10
    });
    cluster[owner].spawn();

    // Pausing until the batches already running finish (under the readers' load that can
    // take a few seconds), then paused: nothing moves; resume finishes.
    let paused = admin_ok(&cluster[survivor], &["migration", "pause", "--wait", "--timeout", "60s"]);
    assert_eq!(paused.split_whitespace().nth(2), Some("paused"), "{paused}");
    let settled = status(&cluster[survivor]).moved_objects;
    std::thread::sleep(Duration::from_secs(3));
    let later = status(&cluster[survivor]);
    assert_eq!((later.state, later.moved_objects), (MigrationState::Paused, settled), "moves continued while paused");
    admin_ok(&cluster[survivor], &["migration", "throttle", "0"]);
    admin_ok(&cluster[survivor], &["migration", "resume"]);
    let started = Instant::now();
    wait_until("the migration completes", Duration::from_secs(180), || {
        status(&cluster[0]).state == MigrationState::Done
    });
    eprintln!("migration finished {:?} after resume", started.elapsed());
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for reader in readers {
        failures.extend(reader.await.unwrap());
    }
    assert!(failures.is_empty(), "{} failed reads, first: {:?}", failures.len(), failures.first());
    assert!(reads.load(Ordering::Relaxed) > 100, "the readers ran");

    // Exactly set 1's objects moved, and all of them; set 1 holds none now.
    let done = status(&cluster[2]);
    assert_eq!(done.percent, 100.0);
    assert_eq!(done.total_objects, in_set_one, "{done:?}");
    assert_eq!(done.moved_objects, in_set_one, "{done:?}");
    let fraction = done.moved_objects as f64 / total;
    assert!((fraction - 0.5).abs() < 0.1, "moved {fraction} of the objects");
    // No copy is left behind in the drained set: the killed node's drives missed the
    // deletes while it was down, and healing removes those leftovers once it is back.
    let leftovers = || -> usize {
        let mut count = 0;
        for node in &cluster {
            for drive in 0..5 {
                let on_set_one = before.pools[0].sets[1]
                    .drives
                    .iter()
                    .any(|d| d.ends_with(&format!("{}/d{}", node.root.path().display(), drive + 1)));
                if on_set_one {
                    count += files_under(&node.drive(drive).join("live"))
                        .into_iter()
                        .filter(|f| f.file_name().is_some_and(|n| n == "%meta"))
                        .count();
                }
            }
        }
        count
    };
    eprintln!("{:?}: migration done, checked", began.elapsed());
    wait_until("no copies left in the drained set", Duration::from_secs(90), || leftovers() == 0);
    eprintln!("{:?}: leftovers healed", began.elapsed());
    // Every object whole, through every node; a listing shows each once.
    for (n, (key, md5)) in expected.iter().enumerate() {
        let bytes = crate::harness::get_bytes(&clients[n % 4], "live", key).await;
        assert_eq!(&md5_hex(&bytes), md5, "{key}");
    }
    let mut listed = 0;
    let mut token = None;
    loop {
        let page = clients[1].list_objects_v2().bucket("live").set_continuation_token(token).send().await.unwrap();
        listed += page.contents().len();
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(listed, expected.len());
    let text = admin_ok(&cluster[0], &["migration", "status"]);
    assert!(text.contains("done") && text.contains("100.0%"), "{text}");
}

/// `kill -9` at each point of a move (the process aborts there through a failpoint):
/// after the copy is staged, after the commit in the target, after the registry update.
/// Each restart resumes from the checkpoint; in the end every object is whole, in the
/// set the ring names, exactly once, with nothing staged left over.
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_killed_at_every_point_of_a_move_completes_with_nothing_lost() {
    let mut node = Node::start(20); // two sets of 10
    let s3 = node.client();
    s3.create_bucket().bucket("crash").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..300)
        .map(|n| (format!("k{n:04}"), data(if n % 40 == 0 { 1_500_000 } else { 200 + n * 13 }, n as u64)))
        .collect();
    for (key, bytes) in &objects {
        s3.put_object().bucket("crash").key(key).body(ByteStream::from(bytes.clone())).send().await.unwrap();
    }
    let (_, body) = admin_get(&node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let before: Topology = serde_json::from_slice(&body).unwrap();
    let in_set_one = objects.iter().filter(|(k, _)| before.ring().locate("crash", k) == 1).count() as u64;

    admin_ok(&node, &["migration", "pause"]);
    admin_ok(&node, &["drain-set", "1"]);
    for point in ["move-after-copy", "move-after-commit", "move-after-registry"] {
        node.kill();
        node.env.retain(|(k, _)| k != "BUCKETS_FAILPOINT");
        node.env.push(("BUCKETS_FAILPOINT".into(), format!("{point}:20")));
        node.spawn();
        admin_ok(&node, &["migration", "resume"]);
        assert!(node.wait_exit(Duration::from_secs(60)), "the node did not reach {point}");
        assert!(node.log().contains(&format!("failpoint {point} reached")), "{}", node.log());
        node.env.retain(|(k, _)| k != "BUCKETS_FAILPOINT");
        node.spawn();
        admin_ok(&node, &["migration", "pause"]);
        // Between crashes every object reads back whole.
        let s3 = node.client();
        for (key, bytes) in objects.iter().step_by(7) {
            assert_eq!(&crate::harness::get_bytes(&s3, "crash", key).await, bytes, "{key} after {point}");
        }
    }
    admin_ok(&node, &["migration", "resume"]);
    wait_until("the migration completes", Duration::from_secs(120), || status(&node).state == MigrationState::Done);
    let done = status(&node);
    assert_eq!(done.total_objects, in_set_one);
    assert_eq!(done.moved_objects, in_set_one);

    let s3 = node.client();
    for (key, bytes) in &objects {
        assert_eq!(&crate::harness::get_bytes(&s3, "crash", key).await, bytes, "{key}");
    }
    // Each object exactly once: its metadata on the 10 drives of set 0 and nowhere else,
    // and no staged copy left in any drive's tmp.
    let metas_on = |drives: std::ops::Range<usize>| -> usize {
        drives
            .map(|d| {
                files_under(&node.drive(d).join("crash"))
                    .into_iter()
                    .filter(|f| f.file_name().is_some_and(|n| n == "%meta"))
                    .count()
            })
            .sum()
    };
    assert_eq!(metas_on(0..10), 10 * objects.len(), "copies in set 0");
    assert_eq!(metas_on(10..20), 0, "copies left in the drained set");
    for d in 0..20 {
        let staged = files_under(&node.drive(d).join(".buckets.sys/tmp"));
        assert!(staged.is_empty(), "staged files left on drive {d}: {staged:?}");
    }
}

/// A set is removed only once drained and empty — an upload left in it counts, and one
/// completed there after the drain is moved out too — and stays removed across a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_drained_set_is_removed_only_when_empty_and_stays_removed() {
    let mut node = Node::start(20); // two sets of 10
    let s3 = node.client();
    s3.create_bucket().bucket("retire").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> =
        (0..80).map(|n| (format!("obj-{n}"), data(300 + n * 101, n as u64))).collect();
    for (key, bytes) in &objects {
        s3.put_object().bucket("retire").key(key).body(ByteStream::from(bytes.clone())).send().await.unwrap();
    }
    let (_, body) = admin_get(&node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let ring = serde_json::from_slice::<Topology>(&body).unwrap().ring();
    // An upload of a key in set 1, started before the drain.
    let upload_key = (0..).map(|n| format!("late-{n}")).find(|k| ring.locate("retire", k) == 1).unwrap();
    let upload = s3.create_multipart_upload().bucket("retire").key(&upload_key).send().await.unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    let part = data(5 * 1024 * 1024 + 7, 99);
    let etag = upload_part(&s3, "retire", &upload_key, &upload_id, 1, &part).await;

    let refused = admin_cli(&node, &["remove-set", "0"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("drain it first"), "{refused:?}");
    admin_ok(&node, &["migration", "pause"]);
    admin_ok(&node, &["drain-set", "1"]);
    let refused = admin_cli(&node, &["remove-set", "1"]);
    let why = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(!refused.status.success());
    assert!(why.contains("SetNotEmpty") && why.contains("object(s)") && why.contains("1 multipart upload"), "{why}");
    admin_ok(&node, &["migration", "resume"]);
    wait_until("the drain completes", Duration::from_secs(60), || status(&node).state == MigrationState::Done);
    // Objects moved, but the upload still sits in set 1.
    let refused = admin_cli(&node, &["remove-set", "1"]);
    let why = String::from_utf8_lossy(&refused.stderr).to_string();
    assert!(why.contains("0 object(s) and 1 multipart upload"), "{why}");
    // Completing it puts the object in set 1 for a moment; the migration moves it out.
    complete_upload(&s3, "retire", &upload_key, &upload_id, &[(1, etag)]).await;
    wait_until("the completed upload leaves set 1", Duration::from_secs(60), || {
        let output = admin_cli(&node, &["remove-set", "1"]);
        output.status.success()
    });
    let topology: Topology = serde_json::from_str(&admin_ok(&node, &["topology", "show", "--json"])).unwrap();
    assert_eq!(topology.pools[0].sets[1].state, buckets_node::placement::topology::SetState::Removed);

    let check = async |node: &Node, new_bucket: &str| {
        let s3 = node.client();
        for (key, bytes) in &objects {
            assert_eq!(&crate::harness::get_bytes(&s3, "retire", key).await, bytes, "{key}");
        }
        assert_eq!(crate::harness::get_bytes(&s3, "retire", &upload_key).await, part);
        s3.put_object().bucket("retire").key("after").body(ByteStream::from_static(b"x")).send().await.unwrap();
        s3.create_bucket().bucket(new_bucket).send().await.unwrap();
        let listed = s3.list_objects_v2().bucket("retire").send().await.unwrap();
        assert_eq!(listed.contents().len(), objects.len() + 2);
    };
    check(&node, "made-before-restart").await;
    // Restarted with the same drive arguments, the node skips the removed set.
    node.kill();
    node.spawn();
    check(&node, "made-after-restart").await;
}

/// Adding a set moves about 1/(N+1) of the objects and bytes, every object ends where the
/// new ring places it, and the node restarts with the set it added.
#[tokio::test(flavor = "multi_thread")]
async fn adding_a_set_moves_one_share_and_every_object_lands_on_its_ring_set() {
    let mut node = Node::start(20); // two sets of 10
    let s3 = node.client();
    s3.create_bucket().bucket("grow").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> =
        (0..3000).map(|n| (format!("k{n:05}"), data(500 + (n * 7919) % 3000, n as u64))).collect();
    let writes = futures::stream::iter(objects.iter().map(|(key, bytes)| {
        let s3 = s3.clone();
        async move {
            s3.put_object().bucket("grow").key(key).body(ByteStream::from(bytes.clone())).send().await.unwrap();
        }
    }));
    writes.buffer_unordered(8).collect::<Vec<()>>().await;
    let before: Topology = serde_json::from_str(&admin_ok(&node, &["topology", "show", "--json"])).unwrap();

    let new_drives = format!("{}/added/e{{1...10}}", node.root.path().display());
    let refused = admin_cli(&node, &["add-set", &format!("{}/d1", node.root.path().display())]);
    assert!(!refused.status.success(), "a drive of a set, or fewer than 4, is refused");
    let shown = admin_ok(&node, &["add-set", &new_drives]);
    assert!(shown.contains("generation 2"), "{shown}");
    wait_until("the migration completes", Duration::from_secs(120), || status(&node).state == MigrationState::Done);
    let done = status(&node);
    let topology: Topology = serde_json::from_str(&admin_ok(&node, &["topology", "show", "--json"])).unwrap();
    let ring = topology.ring();
    // The ring moves one share of the hash space to the new set (a third, within the
    // spread of its virtual nodes); the migration moves exactly the objects whose set it
    // changed, no more. (The 3,000 keys' own share varies by up to ±10 % around the
    // ring's between clusters, whose ids are random: counted exactly, not estimated.)
    let share: f64 = before.ring().movements_to(&ring).iter().map(|m| m.fraction()).sum();
    assert!((share - 1.0 / 3.0).abs() < 0.05, "the ring moves {share} of the hash space");
    let moving: Vec<&(String, Vec<u8>)> =
        objects.iter().filter(|(key, _)| before.ring().locate("grow", key) != ring.locate("grow", key)).collect();
    let moving_bytes: u64 = moving.iter().map(|(_, bytes)| bytes.len() as u64).sum();
    assert_eq!((done.moved_objects, done.moved_bytes), (moving.len() as u64, moving_bytes), "{done:?}");
    assert_eq!((done.total_objects, done.total_bytes), (moving.len() as u64, moving_bytes), "{done:?}");

    let drives_of = |set: u32| -> Vec<std::path::PathBuf> {
        let spec = topology.sets().find(|(_, s)| s.id == set).unwrap().1;
        spec.drives.iter().map(std::path::PathBuf::from).collect()
    };
    for (key, _) in &objects {
        let home = ring.locate("grow", key);
        for set in 0..3u32 {
            let present = drives_of(set).iter().filter(|d| d.join("grow").join(key).join("%meta").exists()).count();
            if set == home {
                assert_eq!(present, 10, "{key} not whole in its ring set {set}");
            } else {
                assert_eq!(present, 0, "{key} left in set {set}");
            }
        }
    }
    node.kill();
    node.spawn();
    let s3 = node.client();
    for (key, bytes) in objects.iter().step_by(5) {
        assert_eq!(&crate::harness::get_bytes(&s3, "grow", key).await, bytes, "{key} after a restart");
    }
    let shown = admin_ok(&node, &["nodes", "list"]);
    assert!(shown.contains("30/30"), "{shown}");
}

/// A cluster grows by one set whose drives sit on all four nodes: each node formats and
/// serves its own new drives, every node adopts the set, a third of the objects move in,
/// and a restarted node opens the set from the topology.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_adds_a_set_spread_over_its_nodes() {
    let mut cluster = Node::start_cluster(4, 5, &[("BUCKETS_DRIVE_CHECK_SECS", "1")]);
    let s3 = cluster[0].client();
    s3.create_bucket().bucket("wide").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> =
        (0..3000).map(|n| (format!("w{n:05}"), data(400 + (n * 7919) % 2000, n as u64))).collect();
    let clients: Vec<aws_sdk_s3::Client> = cluster.iter().map(|n| n.client()).collect();
    // Every tenth object is tagged: tags travel with the object.
    let writes = futures::stream::iter(objects.iter().enumerate().map(|(n, (key, bytes))| {
        let s3 = clients[n % 4].clone();
        async move {
            s3.put_object()
                .bucket("wide")
                .key(key)
                .set_tagging((n % 10 == 0).then(|| format!("n={n}")))
                .body(ByteStream::from(bytes.clone()))
                .send()
                .await
                .unwrap();
        }
    }));
    writes.buffer_unordered(16).collect::<Vec<()>>().await;

    // Two new drives on each node, listed node by node in turn.
    let mut drives = Vec::new();
    for slot in 1..=2 {
        for node in &cluster {
            drives.push(format!("http://{}:{}{}/x{slot}", node.ip, node.admin_port, node.root.path().display()));
        }
    }
    let args: Vec<&str> = std::iter::once("add-set").chain(drives.iter().map(String::as_str)).collect();
    let shown = admin_ok(&cluster[1], &args);
    assert!(shown.contains("generation 2"), "{shown}");
    for node in &cluster {
        wait_until("every node serves generation 2", Duration::from_secs(20), || {
            let (_, body) = admin_get(node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
            serde_json::from_slice::<Topology>(&body).is_ok_and(|t| t.generation == 2)
        });
    }
    wait_until("the migration completes", Duration::from_secs(180), || {
        status(&cluster[0]).state == MigrationState::Done
    });
    let done = status(&cluster[2]);
    // Exactly the objects whose ring set changed moved, and they are about 1/(N+1).
    let (_, body) = admin_get(&cluster[0], "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    let ring = serde_json::from_slice::<Topology>(&body).unwrap().ring();
    let must_move = objects.iter().filter(|(k, _)| ring.locate("wide", k) == 2).count() as u64;
    assert_eq!(done.moved_objects, must_move, "{done:?}");
    let fraction = done.moved_objects as f64 / objects.len() as f64;
    assert!((fraction - 1.0 / 3.0).abs() / (1.0 / 3.0) < 0.10, "moved {fraction} of the objects: {done:?}");
    for node in &cluster {
        for drive in 1..=2 {
            assert!(node.root.path().join(format!("x{drive}/.buckets.sys/format.bkt")).exists(), "new drive formatted");
        }
    }
    for (n, (key, bytes)) in objects.iter().enumerate().step_by(3) {
        assert_eq!(&crate::harness::get_bytes(&clients[n % 4], "wide", key).await, bytes, "{key}");
    }
    let tags_of = async |s3: &aws_sdk_s3::Client, key: &str| -> Vec<(String, String)> {
        let answer = s3.get_object_tagging().bucket("wide").key(key).send().await.unwrap();
        answer.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()
    };
    for (n, (key, _)) in objects.iter().enumerate().step_by(10).take(100) {
        assert_eq!(tags_of(&clients[(n + 1) % 4], key).await, vec![("n".to_string(), n.to_string())], "{key}");
    }
    // Tags of a moved object change through one node and read back through another.
    let (moved, bytes) = objects.iter().find(|(k, _)| ring.locate("wide", k) == 2).unwrap();
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(aws_sdk_s3::types::Tag::builder().key("after").value("move").build().unwrap())
        .build()
        .unwrap();
    clients[1].put_object_tagging().bucket("wide").key(moved).tagging(tagging).send().await.unwrap();
    assert_eq!(tags_of(&clients[2], moved).await, vec![("after".to_string(), "move".to_string())]);
    assert_eq!(&crate::harness::get_bytes(&clients[3], "wide", moved).await, bytes, "{moved} after retagging");
    // A restarted node opens the added set from the topology on its drives.
    cluster[3].kill();
    cluster[3].spawn();
    let s3 = cluster[3].client();
    for (key, bytes) in objects.iter().step_by(11) {
        assert_eq!(&crate::harness::get_bytes(&s3, "wide", key).await, bytes, "{key} through the restarted node");
    }
    s3.put_object().bucket("wide").key("after-restart").body(ByteStream::from_static(b"ok")).send().await.unwrap();

    // Placement settles on every node (the restarted one too): writes and lookups go to
    // the ring's set only from then on, and stay right.
    for node in &cluster {
        wait_until("every node knows placement settled", Duration::from_secs(90), || {
            node.metric("buckets_placement_settled_generation") == 2.0
        });
    }
    clients[1].delete_object().bucket("wide").key(moved).send().await.unwrap();
    clients[2].put_object().bucket("wide").key("settled").body(ByteStream::from_static(b"one")).send().await.unwrap();
    for s3 in &clients {
        let gone = s3.get_object().bucket("wide").key(moved).send().await;
        assert!(format!("{gone:?}").contains("NoSuchKey"), "{moved} came back after its delete: {gone:?}");
        assert_eq!(crate::harness::get_bytes(s3, "wide", "settled").await, b"one");
    }
    for (n, (key, bytes)) in objects.iter().enumerate().skip(1).step_by(13) {
        if key != moved {
            assert_eq!(&crate::harness::get_bytes(&clients[n % 4], "wide", key).await, bytes, "{key} once settled");
        }
    }
}

/// The same crash points on a 4-node cluster: the node running set 1's migration aborts
/// after a copy, after a commit and after a registry update; the others keep serving,
/// and in the end every object is whole, exactly once, in its ring set.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_migration_killed_at_every_point_of_a_move_completes() {
    let mut cluster =
        Node::start_cluster(4, 5, &[("BUCKETS_DRIVE_CHECK_SECS", "1"), ("BUCKETS_MIGRATION_WORKERS", "2")]);
    let clients: Vec<aws_sdk_s3::Client> = cluster.iter().map(|n| n.client()).collect();
    clients[0].create_bucket().bucket("crash").send().await.unwrap();
    // Enough objects that the nodes taking over while the owner is down cannot finish
    // set 1 before the last crash point.
    let objects: Vec<(String, Vec<u8>)> = (0..1200)
        .map(|n| (format!("c{n:04}"), data(if n % 100 == 0 { 1_200_000 } else { 300 + n * 7 }, n as u64)))
        .collect();
    put_across(&clients, "crash", &objects).await;
    let before = topology_of(&cluster[0]);
    let owner = cluster
        .iter()
        .position(|n| before.pools[0].sets[1].drives[0].contains(&format!("{}:{}", n.ip, n.admin_port)))
        .unwrap();
    let other = (owner + 1) % 4;
    admin_ok(&cluster[other], &["migration", "pause"]);
    admin_ok(&cluster[other], &["drain-set", "1"]);
    for point in ["move-after-copy", "move-after-commit", "move-after-registry"] {
        cluster[owner].kill();
        cluster[owner].env.push(("BUCKETS_FAILPOINT".into(), format!("{point}:3")));
        cluster[owner].spawn();
        admin_ok(&cluster[other], &["migration", "resume"]);
        assert!(cluster[owner].wait_exit(Duration::from_secs(90)), "the owner did not reach {point}");
        admin_ok(&cluster[other], &["migration", "pause"]);
        assert!(cluster[owner].log().contains(&format!("failpoint {point} reached")));
        cluster[owner].env.retain(|(k, _)| k != "BUCKETS_FAILPOINT");
        cluster[owner].spawn();
        for (n, (key, bytes)) in objects.iter().enumerate().step_by(29) {
            assert_eq!(&crate::harness::get_bytes(&clients[n % 4], "crash", key).await, bytes, "{key} after {point}");
        }
    }
    admin_ok(&cluster[other], &["migration", "resume"]);
    // Alone on 2 cores the rest of set 1 moves in 35-95 s (a debug build, two workers, the
    // healing of the restarted owner alongside); beside the rest of the suite it takes
    // longer, so the bound is generous and the status is printed if it is ever hit.
    let resumed = Instant::now();
    while status(&cluster[other]).state != MigrationState::Done {
        assert!(
            resumed.elapsed() < Duration::from_secs(300),
            "the migration did not complete: {:#?}",
            status(&cluster[other])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("the migration completed {:?} after the last resume", resumed.elapsed());
    for (n, (key, bytes)) in objects.iter().enumerate() {
        assert_eq!(&crate::harness::get_bytes(&clients[n % 4], "crash", key).await, bytes, "{key}");
    }
    // Exactly once: ten metadata files per object in set 0, none in set 1 (healing brings
    // the owner's drives up to date after each restart).
    wait_until("every object is whole in set 0 and gone from set 1", Duration::from_secs(90), || {
        metas_in(&before, 0, "crash") == 10 * objects.len() && metas_in(&before, 1, "crash") == 0
    });
}

/// Writes `objects` to `bucket`, spread over the nodes of `clients`, 16 at a time.
async fn put_across(clients: &[aws_sdk_s3::Client], bucket: &str, objects: &[(String, Vec<u8>)]) {
    let writes = futures::stream::iter(objects.iter().enumerate().map(|(n, (key, bytes))| {
        let s3 = clients[n % clients.len()].clone();
        async move {
            s3.put_object().bucket(bucket).key(key).body(ByteStream::from(bytes.clone())).send().await.unwrap();
        }
    }));
    writes.buffer_unordered(16).collect::<Vec<()>>().await;
}

/// The topology `node` serves.
fn topology_of(node: &Node) -> Topology {
    let (_, body) = admin_get(node, "/admin/v1/topology", ACCESS_KEY, SECRET_KEY);
    serde_json::from_slice(&body).unwrap()
}

/// The metadata files of `bucket` on the drives of set `set` of the first pool.
fn metas_in(topology: &Topology, set: usize, bucket: &str) -> usize {
    topology.pools[0].sets[set]
        .drives
        .iter()
        .map(|url| {
            let path = buckets_node::storage::bootstrap::parse_drive_url(url).unwrap().path;
            files_under(&std::path::Path::new(&path).join(bucket))
                .into_iter()
                .filter(|f| f.file_name().is_some_and(|n| n == "%meta"))
                .count()
        })
        .sum()
}

/// Writes and a migration through peers of an earlier version (a rolling upgrade), which
/// answer the calls added since (`WriteShardSynced`, `CommitMerged`,
/// `CommitMergedDeferred`, `SyncDrive`, `PushShards`, and batches of calls) as unknown: the callers fall back to
/// what those peers know (a move copies the object through its node), and every object
/// lands whole, on every drive of its ring set, not just on a quorum.
#[tokio::test(flavor = "multi_thread")]
async fn a_migration_through_peers_of_an_earlier_version_completes_whole() {
    let refuse =
        ("BUCKETS_PEER_REFUSES", "WriteShardSynced,CommitMerged,CommitMergedDeferred,SyncDrive,PushShards,Batch");
    let cluster = Node::start_cluster(4, 5, &[("BUCKETS_DRIVE_CHECK_SECS", "1"), refuse]);
    let clients: Vec<aws_sdk_s3::Client> = cluster.iter().map(|n| n.client()).collect();
    clients[0].create_bucket().bucket("mixed").send().await.unwrap();
    let objects: Vec<(String, Vec<u8>)> =
        (0..240).map(|n| (format!("m{n:03}"), data(200_000 + n * 1_000, n as u64))).collect();
    put_across(&clients, "mixed", &objects).await;
    let before = topology_of(&cluster[0]);
    let in_set_1 = metas_in(&before, 1, "mixed") / 10;
    assert!(in_set_1 > 50, "set 1 holds {in_set_1} of the objects");
    admin_ok(&cluster[1], &["drain-set", "1"]);
    wait_until("the migration completes", Duration::from_secs(180), || {
        status(&cluster[0]).state == MigrationState::Done
    });
    let done = status(&cluster[0]);
    assert_eq!((done.moved_objects, done.failed_objects), (in_set_1 as u64, 0), "{done:?}");
    assert_eq!(metas_in(&before, 0, "mixed"), 10 * objects.len());
    assert_eq!(metas_in(&before, 1, "mixed"), 0);
    for (n, (key, bytes)) in objects.iter().enumerate() {
        assert_eq!(&crate::harness::get_bytes(&clients[n % 4], "mixed", key).await, bytes, "{key}");
    }
}
