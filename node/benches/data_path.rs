//! Criterion benchmarks of the data path on one core: erasure encode and decode of 1 MiB
//! blocks, degraded reads (parity-many shards missing), and the whole PUT block path
//! (MD5 + erasure + shard checksums). Inputs are seeded, so runs compare.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use md5::Digest;

use buckets_node::erasure::{BLOCK_SIZE_BYTES, Erasure, shard_checksum};

const SHAPES: [(usize, usize); 3] = [(4, 2), (8, 4), (12, 4)];

fn block(seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..BLOCK_SIZE_BYTES)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

fn encode(c: &mut Criterion) {
    let input = block(1);
    let mut group = c.benchmark_group("erasure_encode_1MiB");
    group.throughput(Throughput::Bytes(BLOCK_SIZE_BYTES as u64));
    for (data, parity) in SHAPES {
        let erasure = Erasure::new(data, parity);
        group.bench_function(BenchmarkId::from_parameter(format!("{data}+{parity}")), |b| {
            b.iter(|| erasure.encode_block(std::hint::black_box(&input)).unwrap())
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let input = block(2);
    let mut group = c.benchmark_group("erasure_decode_1MiB");
    group.throughput(Throughput::Bytes(BLOCK_SIZE_BYTES as u64));
    for (data, parity) in SHAPES {
        let erasure = Erasure::new(data, parity);
        let shards = erasure.encode_block(&input).unwrap();
        // All data shards present: the common read, no reconstruction.
        group.bench_function(BenchmarkId::new("healthy", format!("{data}+{parity}")), |b| {
            b.iter(|| {
                let mut slots: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
                erasure.decode_block(&mut slots, BLOCK_SIZE_BYTES).unwrap()
            })
        });
        // Degraded: `parity` data shards missing, rebuilt from parity.
        group.bench_function(BenchmarkId::new("degraded", format!("{data}+{parity}")), |b| {
            b.iter(|| {
                let mut slots: Vec<Option<Vec<u8>>> = shards.iter().cloned().map(Some).collect();
                for slot in slots.iter_mut().take(parity) {
                    *slot = None;
                }
                erasure.decode_block(&mut slots, BLOCK_SIZE_BYTES).unwrap()
            })
        });
    }
    group.finish();
}

fn put_path(c: &mut Criterion) {
    let input = block(3);
    let mut group = c.benchmark_group("put_block_path_1MiB");
    group.throughput(Throughput::Bytes(BLOCK_SIZE_BYTES as u64));
    // The server's MD5 (md5-many) and the reference crate it replaced (md-5).
    group.bench_function("md5_only", |b| b.iter(|| md5_many::Md5::digest(std::hint::black_box(&input))));
    group.bench_function("md5_only_md-5", |b| b.iter(|| md5::Md5::digest(std::hint::black_box(&input))));
    for (data, parity) in SHAPES {
        let erasure = Erasure::new(data, parity);
        group.bench_function(BenchmarkId::new("md5+ec+checksums", format!("{data}+{parity}")), |b| {
            let mut hasher = md5_many::Md5::new();
            b.iter(|| {
                hasher.update(&input);
                let shards = erasure.encode_block(&input).unwrap();
                shards.iter().map(|s| shard_checksum(s)).fold(0u64, |a, b| a ^ b)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode, decode, put_path);
criterion_main!(benches);
