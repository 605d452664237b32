//! Criterion benchmarks of placement: ring lookup of a precomputed hash (the search), and
//! of a key (SipHash-2-4 of a 40-byte key plus the search), on a ring of 16 sets.

use criterion::{Criterion, criterion_group, criterion_main};

use buckets_node::placement::ring::{Ring, RingMember};

fn ring_lookup(c: &mut Criterion) {
    let members: Vec<RingMember> = (0..16).map(|set| RingMember { set, weight: 1.0 }).collect();
    let ring = Ring::new((0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210), &members);
    // 40-byte keys such as "photos/2026/11/25/cam-07/IMG_0000123.jpg".
    let keys: Vec<String> =
        (0..4096).map(|i| format!("photos/2026/11/25/cam-{:02}/IMG_{:07}.jpg", i % 97, i)).collect();
    assert!(keys.iter().all(|k| k.len() == 40), "keys are 40 bytes");
    let hashes: Vec<u64> = keys.iter().map(|k| ring.hash_key("bucket", k)).collect();
    let mut group = c.benchmark_group("ring_16_sets");
    group.bench_function("search_only", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            ring.locate_hash(std::hint::black_box(hashes[i]))
        })
    });
    group.bench_function("siphash_40_byte_key_and_search", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) & 4095;
            ring.locate("bucket", std::hint::black_box(&keys[i]))
        })
    });
    group.finish();
}

criterion_group!(benches, ring_lookup);
criterion_main!(benches);
