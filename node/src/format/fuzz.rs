//! Randomised robustness tests of every decoder that reads bytes from disk or from a peer:
//! random and mutated inputs must be refused with an error, never panic. (A stand-in for
//! cargo-fuzz targets, which need a nightly toolchain this project does not have.)

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::drive::DriveFormat;
use super::object::ObjectMeta;
use crate::placement::topology::Topology;
use crate::rpc::protocol::decode_request;

/// Mutates `bytes` in a few random places (flips, truncation, extension).
fn mutate(rng: &mut StdRng, bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match rng.random_range(0..4) {
        0 if !out.is_empty() => {
            let at = rng.random_range(0..out.len());
            out[at] ^= 1 << rng.random_range(0..8);
        }
        1 => out.truncate(rng.random_range(0..=out.len())),
        2 => out.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        _ => {
            for _ in 0..rng.random_range(1..8) {
                if !out.is_empty() {
                    let at = rng.random_range(0..out.len());
                    out[at] = rng.random();
                }
            }
        }
    }
    out
}

fn valid_inputs() -> Vec<Vec<u8>> {
    let meta = ObjectMeta { versions: vec![super::object::tests::sample_version()] };
    let topology =
        Topology::initial(uuid::Uuid::from_u128(1), &(0..8).map(|i| format!("/d{i}")).collect::<Vec<_>>(), 4);
    let call = crate::rpc::protocol::DriveCall::ListDir { bucket: "b".into(), relative: "a/b".into() };
    vec![
        meta.encode(),
        topology.encode(),
        crate::rpc::protocol::encode_request(&call, b"payload"),
        DriveFormat {
            cluster_id: uuid::Uuid::from_u128(2),
            drive_id: uuid::Uuid::from_u128(3),
            set_index: 0,
            drive_index: 1,
            set_drives: 4,
            set_drive_ids: vec![uuid::Uuid::from_u128(3); 4],
        }
        .encode(),
    ]
}

#[test]
fn decoders_refuse_random_and_mutated_input_without_panicking() {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let seeds = valid_inputs();
    for round in 0..20_000 {
        let input: Vec<u8> = if round % 4 == 0 {
            (0..rng.random_range(0..256)).map(|_| rng.random()).collect()
        } else {
            mutate(&mut rng, &seeds[round % seeds.len()])
        };
        let _ = ObjectMeta::decode(&input);
        let _ = DriveFormat::decode(&input);
        let _ = Topology::decode(&input);
        let _ = decode_request(&input);
    }
}

#[test]
fn bodies_with_valid_frames_but_mutated_content_are_refused_without_panicking() {
    // The frame checksum stops random damage; a body that passes it must still never panic
    // its decoder (a bug, or a hostile peer, could produce one).
    let mut rng = StdRng::seed_from_u64(0xb0d1e5);
    let meta = ObjectMeta { versions: vec![super::object::tests::sample_version()] };
    let meta_body = postcard::to_stdvec(&meta).unwrap();
    let topology =
        Topology::initial(uuid::Uuid::from_u128(1), &(0..8).map(|i| format!("/d{i}")).collect::<Vec<_>>(), 4);
    let topology_body = serde_json::to_vec(&topology).unwrap();
    for _ in 0..20_000 {
        let body = mutate(&mut rng, &meta_body);
        let _ = ObjectMeta::decode(&super::encode_frame(super::object::OBJECT_META_MAGIC, 1, &body));
        let body = mutate(&mut rng, &topology_body);
        let _ = Topology::decode(&super::encode_frame(crate::placement::topology::TOPOLOGY_MAGIC, 1, &body));
    }
}
