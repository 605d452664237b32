//! Randomised robustness tests of every decoder that reads bytes from disk or from a peer:
//! random and mutated inputs must be refused with an error, never panic. (A stand-in for
//! cargo-fuzz targets, which need a nightly toolchain this project does not have.)

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::JsonFile;
use super::drive::DriveFormat;
use super::object::ObjectMeta;
use super::topology;

/// Mutates `bytes` in a few random places (flips, truncation, extension).
pub(crate) fn mutate(rng: &mut StdRng, bytes: &[u8]) -> Vec<u8> {
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
    vec![
        meta.encode(),
        topology::encode(&super::golden::topology_v1()),
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
    let mut changed = 0;
    for round in 0..20_000 {
        let input: Vec<u8> = if round % 4 == 0 {
            (0..rng.random_range(0..256)).map(|_| rng.random()).collect()
        } else {
            mutate(&mut rng, &seeds[round % seeds.len()])
        };
        // The framed formats carry a checksum: any change is refused; only an input
        // that is a seed byte for byte (a mutation that changed nothing) decodes.
        let unchanged = seeds.contains(&input);
        changed += usize::from(!unchanged);
        assert!(ObjectMeta::decode(&input).is_err() || input == seeds[0], "round {round}: object meta accepted");
        assert!(topology::decode(&input).is_err() || input == seeds[1], "round {round}: topology accepted");
        assert!(DriveFormat::decode(&input).is_err() || input == seeds[2], "round {round}: drive format accepted");
    }
    assert!(changed > 19_000, "the inputs were mutated: {changed}");
}

#[test]
fn bodies_with_valid_frames_but_mutated_content_are_refused_without_panicking() {
    // The frame checksum stops random damage; a body that passes it must still never panic
    // its decoder (a bug, or a hostile peer, could produce one), and what it accepts must
    // be a value its readers can rely on (valid), that survives its own round trip.
    // (Postcard reads some bytes that it would not write, such as longer varints, so the
    // bytes themselves need not come back.)
    let mut rng = StdRng::seed_from_u64(0xb0d1e5);
    let meta = ObjectMeta { versions: vec![super::object::tests::sample_version()] };
    let meta_body = postcard::to_stdvec(&meta).unwrap();
    let topology_body = serde_json::to_vec(&super::golden::topology_v1()).unwrap();
    let drive_format = valid_inputs().pop().unwrap();
    let format_body =
        drive_format[super::FRAME_HEADER_BYTES..drive_format.len() - super::FRAME_CHECKSUM_BYTES].to_vec();
    let (mut refused, mut accepted) = (0, 0);
    for _ in 0..20_000 {
        let frame = super::encode_frame(super::object::OBJECT_META_MAGIC, 1, &mutate(&mut rng, &meta_body));
        match ObjectMeta::decode(&frame) {
            Ok(decoded) => {
                accepted += 1;
                assert_eq!(decoded.validate(), Ok(()), "an impossible object meta decoded: {decoded:?}");
                assert_eq!(ObjectMeta::decode(&decoded.encode()).as_ref(), Ok(&decoded));
            }
            Err(_) => refused += 1,
        }
        // Whether a topology is valid is placement's to say (its tests mutate bodies too).
        let frame = super::encode_frame(topology::TOPOLOGY_MAGIC, 1, &mutate(&mut rng, &topology_body));
        if let Ok(decoded) = topology::decode(&frame) {
            accepted += 1;
            assert_eq!(topology::decode(&topology::encode(&decoded)).as_ref(), Ok(&decoded));
        } else {
            refused += 1;
        }
        let frame = super::encode_frame(super::drive::DRIVE_FORMAT_MAGIC, 1, &mutate(&mut rng, &format_body));
        if let Ok(decoded) = DriveFormat::decode(&frame) {
            accepted += 1;
            assert_eq!(decoded.validate(), Ok(()), "an inconsistent drive format decoded: {decoded:?}");
        } else {
            refused += 1;
        }
    }
    assert!(refused > 10_000 && accepted > 100, "both outcomes were exercised: {refused} refused, {accepted} accepted");
}

/// One JSON-bodied system file: any change to its frame is refused; a mutated body in a
/// valid frame never panics, and whatever it decodes to survives its own round trip.
fn check_system_file<T: PartialEq + std::fmt::Debug + serde::Serialize>(
    rng: &mut StdRng,
    value: T,
    magic: &[u8; 8],
    encode: fn(&T) -> Vec<u8>,
    decode: fn(&[u8]) -> Option<T>,
) -> (usize, usize) {
    let encoded = encode(&value);
    assert_eq!(decode(&encoded).as_ref(), Some(&value));
    let body = serde_json::to_vec(&value).unwrap();
    let (mut refused, mut accepted) = (0, 0);
    for round in 0..4_000 {
        let changed = mutate(rng, &encoded);
        assert!(changed == encoded || decode(&changed).is_none(), "round {round}: a changed {magic:?} frame decoded");
        let frame = super::encode_frame(magic, 1, &mutate(rng, &body));
        match decode(&frame) {
            Some(decoded) => {
                accepted += 1;
                assert_eq!(decode(&encode(&decoded)).as_ref(), Some(&decoded), "round {round}");
            }
            None => refused += 1,
        }
    }
    (refused, accepted)
}

#[test]
fn system_files_refuse_changed_frames_and_survive_mutated_bodies() {
    use super::golden::*;
    use super::{bucket::BucketMeta, migration, upload};
    let mut rng = StdRng::seed_from_u64(0x5157);
    let results = [
        check_system_file(
            &mut rng,
            bucket_meta_v1(),
            super::bucket::BUCKET_META_MAGIC,
            BucketMeta::encode,
            BucketMeta::decode,
        ),
        check_system_file(
            &mut rng,
            upload_meta_v1(),
            upload::UPLOAD_MAGIC,
            upload::UploadMeta::encode,
            upload::UploadMeta::decode,
        ),
        check_system_file(
            &mut rng,
            part_meta_v1(),
            upload::PART_MAGIC,
            upload::PartMeta::encode,
            upload::PartMeta::decode,
        ),
        check_system_file(
            &mut rng,
            migration_control_v1(),
            migration::CONTROL_MAGIC,
            migration::Control::encode,
            migration::Control::decode,
        ),
        check_system_file(
            &mut rng,
            migration_progress_v1(),
            migration::PROGRESS_MAGIC,
            migration::SetProgress::encode,
            migration::SetProgress::decode,
        ),
    ];
    for (n, (refused, _)) in results.iter().enumerate() {
        assert!(*refused > 1_000, "file {n}: mutated bodies are mostly refused: {results:?}");
    }
}
