//! Criterion benchmarks of the location registry: a lookup answered by a node's cache
//! (filled with a million entries, the default capacity), and a lookup the cache misses,
//! which reads the record from its set whose four drives are served by peer RPC over
//! loopback (the cost a node pays for an object another node moved or recorded).

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use buckets_node::cluster::control::ClusterControl;
use buckets_node::metrics::Metrics;
use buckets_node::rpc::auth::CallVerifier;
use buckets_node::rpc::client::{PeerTransport, RemoteDrive};
use buckets_node::rpc::lock::LockTable;
use buckets_node::rpc::server::RpcServer;
use buckets_node::storage::bootstrap;
use buckets_node::storage::drive::{Drive, LocalDrive};
use buckets_node::storage::registry::{DEFAULT_CACHE_ENTRIES, Location, Registry, object_hash};
use buckets_node::storage::set::ErasureSet;
use buckets_node::storage::{HEAL_QUEUE_CAPACITY, Store};

fn cache_hit(c: &mut Criterion) {
    let registry = Registry::new(DEFAULT_CACHE_ENTRIES, Arc::new(Metrics::new()));
    let keys: Vec<String> =
        (0..DEFAULT_CACHE_ENTRIES).map(|i| format!("photos/2026/11/25/cam-{:02}/IMG_{i:07}.jpg", i % 97)).collect();
    for key in &keys {
        registry.remember(object_hash("bucket", key), Location { set: 3, generation: 2 });
    }
    // Buckets evict on their own, so a full cache holds a little under the capacity.
    let held = registry.cached_entries();
    eprintln!("cache of {DEFAULT_CACHE_ENTRIES} entries holds {held} after {DEFAULT_CACHE_ENTRIES} distinct inserts");
    assert!(held > DEFAULT_CACHE_ENTRIES * 95 / 100);
    // Lookups of 4,096 keys spread over the million (a working set that stays in the CPU
    // caches, as hot keys do), and of keys drawn uniformly from all of them (every lookup
    // then waits for main memory).
    let hot: Vec<String> = (0..4096).map(|i| keys[i * 241].clone()).collect();
    for key in &hot {
        registry.remember(object_hash("bucket", key), Location { set: 3, generation: 2 });
    }
    let hashes: Vec<u128> = keys.iter().map(|k| object_hash("bucket", k)).collect();
    let mut group = c.benchmark_group("registry_cache_1m_entries");
    group.bench_function("hit_hot_keys_with_hash_of_40_byte_key", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) & 4095;
            registry.cached(object_hash("bucket", std::hint::black_box(&hot[i])))
        })
    });
    group.bench_function("hit_uniform_over_1m_by_hash", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 7919) % DEFAULT_CACHE_ENTRIES;
            registry.cached(std::hint::black_box(hashes[i]))
        })
    });
    group.finish();
}

fn miss_over_loopback(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<std::path::PathBuf> = (0..4).map(|i| dir.path().join(format!("d{i}"))).collect();
    for path in &paths {
        std::fs::create_dir_all(path).unwrap();
    }
    let (local_store, _heal) = bootstrap::open_store(paths.clone(), Arc::new(Metrics::new())).unwrap();
    let set = local_store.sets()[0].clone();
    let keys: Vec<String> = (0..1000).map(|i| format!("photos/2026/11/25/cam-{:02}/IMG_{i:07}.jpg", i % 97)).collect();
    runtime.block_on(async {
        local_store.ensure_system_buckets().await;
        for key in &keys {
            local_store.write_record(&set, "bucket", key, Location { set: 0, generation: 2 }).await.unwrap();
        }
    });

    // The same four drives, served by peer RPC on loopback and opened as remote drives.
    let secret = b"bench-secret".to_vec();
    let local: HashMap<String, Arc<LocalDrive>> = paths
        .iter()
        .map(|p| {
            let format = LocalDrive::read_format(p).unwrap().unwrap();
            (p.display().to_string(), Arc::new(LocalDrive::new(p.clone(), format)))
        })
        .collect();
    let served = Arc::new(std::sync::RwLock::new(local));
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let endpoint = format!("http://{authority}");
    let verifier = CallVerifier::new(&secret, &authority);
    let control = Arc::new(ClusterControl::new(None));
    control.set_store(local_store.clone());
    let rpc =
        Arc::new(RpcServer::new(verifier, served, Arc::new(LockTable::default()), control, Arc::new(Metrics::new())));
    runtime.spawn(async move {
        loop {
            let Ok((socket, remote)) = listener.accept().await else { continue };
            let _ = socket.set_nodelay(true);
            let rpc = rpc.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let rpc = rpc.clone();
                    async move { Ok::<_, std::convert::Infallible>(rpc.handle(request, remote).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    let transport = {
        let _entered = runtime.enter();
        PeerTransport::new(None, &secret)
    };

    let _entered = runtime.enter();
    let remote: Vec<Arc<dyn Drive>> = paths
        .iter()
        .map(|p| {
            let format = LocalDrive::read_format(p).unwrap().unwrap();
            Arc::new(RemoteDrive::new(endpoint.clone(), p.display().to_string(), format, transport.clone()))
                as Arc<dyn Drive>
        })
        .collect();
    let metrics = Arc::new(Metrics::new());
    let (heal_sender, _heal_receiver) = tokio::sync::mpsc::channel(HEAL_QUEUE_CAPACITY);
    let locks = Arc::new(buckets_node::storage::locks::NamespaceLocks::default());
    let remote_set = Arc::new(ErasureSet::new(0, remote, locks, heal_sender, metrics.clone()));
    let remote_store = Store::new((*local_store.topology()).clone(), vec![remote_set.clone()], metrics);
    runtime.block_on(async {
        for key in &keys {
            assert!(remote_store.read_record(&remote_set, "bucket", key).await.is_some(), "record of {key}");
        }
    });
    let mut group = c.benchmark_group("registry_miss");
    group.bench_function("record_read_4_drives_over_loopback_rpc", |b| {
        let mut i = 0usize;
        b.iter(|| {
            i = (i + 1) % keys.len();
            runtime.block_on(remote_store.read_record(&remote_set, "bucket", &keys[i]))
        })
    });
    group.finish();
}

criterion_group!(benches, cache_hit, miss_over_loopback);
criterion_main!(benches);
