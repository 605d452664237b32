//! Criterion benchmarks of peer RPC authentication (`rpc::auth`): what one call costs its
//! sender and receiver together (sign, parse the header, verify the MAC over the whole
//! body and accept the nonce once), and what its answer costs (sign, check), for an empty
//! call, one shard block of a 1 MiB object in a 12+4 set (87,382 bytes) and 1 MiB.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use buckets_node::rpc::auth::{CallVerifier, PeerKey};

const AUTHORITY: &str = "127.0.0.3:29001";
const PATH: &str = "/rpc/v1/drive/d2/write-block?bucket=bench&key=object";

fn peer_auth(c: &mut Criterion) {
    let key = PeerKey::new(b"bench-secret");
    let verifier = CallVerifier::new(b"bench-secret", AUTHORITY);
    let mut group = c.benchmark_group("peer_auth");
    for size in [0usize, 87_382, 1 << 20] {
        let body: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        group.throughput(Throughput::Bytes(size.max(1) as u64));
        group.bench_function(format!("call_sign_and_verify_{size}_bytes"), |b| {
            b.iter(|| {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
                let (header, _) = key.sign("POST", AUTHORITY, PATH, std::hint::black_box(&body), now);
                let claimed = verifier.claimed(Some(&header), now).expect("fresh");
                verifier.verify(&claimed, "POST", PATH, &body, now).expect("authentic");
            })
        });
        group.bench_function(format!("answer_sign_and_check_{size}_bytes"), |b| {
            let (_, nonce) = key.sign("POST", AUTHORITY, PATH, b"", 0);
            b.iter(|| {
                let header = verifier.sign_answer(&nonce, 200, None, std::hint::black_box(&body));
                assert!(key.answer_is_authentic(&nonce, 200, None, &body, Some(&header)));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, peer_auth);
criterion_main!(benches);
