//! Erasure coding of one block of object data into data + parity shards, and back.
//!
//! Owns: the shard geometry (how a block is split), Reed-Solomon encode and reconstruct,
//! and the per-shard-block bitrot checksum. Must never do I/O: callers hand in bytes and
//! get bytes back, which keeps this module a pure function of its inputs.

use std::cell::RefCell;

use bytes::Bytes;
use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

/// Object data is cut into blocks of this size before encoding; each block becomes one
/// shard block per drive. 1 MiB keeps memory per stream small and reads seekable.
pub const BLOCK_SIZE_BYTES: usize = 1024 * 1024;

/// Shard lengths are rounded up to this many bytes: reed-solomon-simd works on 64-byte
/// chunks, and equal alignment lets several blocks be reconstructed in one decoder call.
pub const SHARD_ALIGN_BYTES: usize = 64;

/// Bytes of bitrot checksum stored in front of every shard block (xxh3-64, little endian).
pub const SHARD_CHECKSUM_BYTES: usize = 8;

/// Smallest and largest erasure set, in drives (the brief: 4 to 16).
pub const MIN_SET_DRIVES: usize = 4;
pub const MAX_SET_DRIVES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ErasureError {
    #[error("need {needed} shards to reconstruct, only {available} are readable")]
    TooFewShards { needed: usize, available: usize },
    #[error("shard {index} has length {actual}, expected {expected}")]
    ShardLength { index: usize, expected: usize, actual: usize },
    #[error("reed-solomon: {0}")]
    Codec(String),
}

/// The parity count MinIO users expect for a set of `drives` drives.
pub fn default_parity_shards(drives: usize) -> usize {
    match drives {
        0..=5 => 2,
        6..=7 => 3,
        _ => 4,
    }
}

/// Shape of an erasure code: `data_shards` + `parity_shards` shards per block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    pub data_shards: usize,
    pub parity_shards: usize,
}

impl Erasure {
    pub fn new(data_shards: usize, parity_shards: usize) -> Self {
        assert!(data_shards >= 1 && parity_shards >= 1, "erasure needs data and parity shards");
        assert!(data_shards + parity_shards <= MAX_SET_DRIVES, "set larger than {MAX_SET_DRIVES} drives");
        Erasure { data_shards, parity_shards }
    }

    pub fn total_shards(&self) -> usize {
        self.data_shards + self.parity_shards
    }

    /// Drives that must hold a write for it to be acknowledged. With as many parity as data
    /// shards, one more than half, so that two disjoint quorums cannot both succeed.
    pub fn write_quorum(&self) -> usize {
        if self.data_shards == self.parity_shards { self.data_shards + 1 } else { self.data_shards }
    }

    /// Drives whose metadata must agree for a read to trust it.
    pub fn read_quorum(&self) -> usize {
        self.data_shards
    }

    /// Length of each shard for a block of `block_len` bytes of object data.
    pub fn shard_len(&self, block_len: usize) -> usize {
        let raw = block_len.div_ceil(self.data_shards);
        raw.div_ceil(SHARD_ALIGN_BYTES).max(1) * SHARD_ALIGN_BYTES
    }

    /// Splits `block` into data shards and computes the parity shards. Returns
    /// `total_shards()` shards, each `shard_len(block.len())` bytes long.
    pub fn encode_block(&self, block: &[u8]) -> Result<Vec<Vec<u8>>, ErasureError> {
        let shard_len = self.shard_len(block.len());
        let mut shards: Vec<Vec<u8>> =
            (0..self.data_shards).map(|index| padded_slice(block, index, shard_len)).collect();
        shards.extend(self.parity_of(&shards, shard_len)?);
        Ok(shards)
    }

    /// As `encode_block`, with the data shards views into `block` where a whole shard's
    /// bytes are there (all but a short block's last ones): no copy of the object's bytes
    /// on the PUT path.
    pub fn encode_block_shared(&self, block: &Bytes) -> Result<Vec<Bytes>, ErasureError> {
        let shard_len = self.shard_len(block.len());
        let mut shards: Vec<Bytes> = (0..self.data_shards)
            .map(|index| match index * shard_len..(index + 1) * shard_len {
                whole if whole.end <= block.len() => block.slice(whole),
                _ => Bytes::from(padded_slice(block, index, shard_len)),
            })
            .collect();
        let parity = self.parity_of(&shards, shard_len)?;
        shards.extend(parity.into_iter().map(Bytes::from));
        Ok(shards)
    }

    /// The parity shards of `data_shards` data shards of `shard_len` bytes each.
    fn parity_of<T: AsRef<[u8]>>(&self, data: &[T], shard_len: usize) -> Result<Vec<Vec<u8>>, ErasureError> {
        ENCODER.with(|cell| {
            let mut slot = cell.borrow_mut();
            let encoder = match slot.as_mut() {
                Some(encoder) => {
                    encoder.reset(self.data_shards, self.parity_shards, shard_len).map_err(codec)?;
                    encoder
                }
                None => slot
                    .insert(ReedSolomonEncoder::new(self.data_shards, self.parity_shards, shard_len).map_err(codec)?),
            };
            for shard in data {
                encoder.add_original_shard(shard).map_err(codec)?;
            }
            let result = encoder.encode().map_err(codec)?;
            Ok(result.recovery_iter().map(|s| s.to_vec()).collect())
        })
    }

    /// Rebuilds the object bytes of one block of `block_len` bytes from whatever shards are
    /// present (`None` = missing or failed its checksum). Needs `data_shards` of them.
    pub fn decode_block(&self, shards: &mut [Option<Vec<u8>>], block_len: usize) -> Result<Vec<u8>, ErasureError> {
        assert_eq!(shards.len(), self.total_shards(), "one slot per shard");
        let shard_len = self.shard_len(block_len);
        let available = shards.iter().filter(|s| s.is_some()).count();
        if available < self.data_shards {
            return Err(ErasureError::TooFewShards { needed: self.data_shards, available });
        }
        for (index, shard) in shards.iter().enumerate() {
            if let Some(shard) = shard
                && shard.len() != shard_len
            {
                return Err(ErasureError::ShardLength { index, expected: shard_len, actual: shard.len() });
            }
        }
        let missing_data = shards[..self.data_shards].iter().any(|s| s.is_none());
        if missing_data {
            let restored = DECODER.with(|cell| {
                let mut slot = cell.borrow_mut();
                let decoder = match slot.as_mut() {
                    Some(decoder) => {
                        decoder.reset(self.data_shards, self.parity_shards, shard_len).map_err(codec)?;
                        decoder
                    }
                    None => slot.insert(
                        ReedSolomonDecoder::new(self.data_shards, self.parity_shards, shard_len).map_err(codec)?,
                    ),
                };
                for (index, shard) in shards.iter().enumerate() {
                    if let Some(shard) = shard {
                        if index < self.data_shards {
                            decoder.add_original_shard(index, shard)
                        } else {
                            decoder.add_recovery_shard(index - self.data_shards, shard)
                        }
                        .map_err(codec)?;
                    }
                }
                let result = decoder.decode().map_err(codec)?;
                let restored: Vec<(usize, Vec<u8>)> =
                    result.restored_original_iter().map(|(index, data)| (index, data.to_vec())).collect();
                Ok::<_, ErasureError>(restored)
            })?;
            for (index, data) in restored {
                shards[index] = Some(data);
            }
        }
        let mut block = Vec::with_capacity(block_len);
        for shard in shards[..self.data_shards].iter() {
            let shard = shard.as_ref().expect("data shard present after reconstruction");
            let take = (block_len - block.len()).min(shard.len());
            block.extend_from_slice(&shard[..take]);
        }
        assert_eq!(block.len(), block_len, "decoded block has the requested length");
        Ok(block)
    }

    /// Rebuilds every missing shard (data and parity) of a block, for healing.
    pub fn reconstruct_all(&self, shards: &mut [Option<Vec<u8>>], block_len: usize) -> Result<(), ErasureError> {
        let block = self.decode_block(shards, block_len)?;
        let all = self.encode_block(&block)?;
        for (slot, shard) in shards.iter_mut().zip(all) {
            if slot.is_none() {
                *slot = Some(shard);
            }
        }
        Ok(())
    }
}

thread_local! {
    // Encoders and decoders allocate work buffers; one per thread is reused across calls.
    static ENCODER: RefCell<Option<ReedSolomonEncoder>> = const { RefCell::new(None) };
    static DECODER: RefCell<Option<ReedSolomonDecoder>> = const { RefCell::new(None) };
}

fn codec(error: reed_solomon_simd::Error) -> ErasureError {
    ErasureError::Codec(error.to_string())
}

/// Bitrot checksum of one shard block.
pub fn shard_checksum(shard: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(shard)
}

/// The shard of a stored shard block (its checksum, then the shard) if it matches its
/// checksum; `None` when it does not, or is too short to hold one.
pub fn checked_shard(block: &[u8]) -> Option<&[u8]> {
    let (stored, shard) = block.split_at_checked(SHARD_CHECKSUM_BYTES)?;
    (u64::from_le_bytes(stored.try_into().expect("8 bytes")) == shard_checksum(shard)).then_some(shard)
}

/// Data shard `index` of `block`, zero-padded to `shard_len` bytes.
fn padded_slice(block: &[u8], index: usize, shard_len: usize) -> Vec<u8> {
    let start = (index * shard_len).min(block.len());
    let end = ((index + 1) * shard_len).min(block.len());
    let mut shard = Vec::with_capacity(shard_len);
    shard.extend_from_slice(&block[start..end]);
    shard.resize(shard_len, 0);
    shard
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn default_parity_follows_minio() {
        let table = [(4, 2), (5, 2), (6, 3), (7, 3), (8, 4), (12, 4), (16, 4)];
        for (drives, parity) in table {
            assert_eq!(default_parity_shards(drives), parity, "drives {drives}");
        }
    }

    #[test]
    fn quorums() {
        assert_eq!(Erasure::new(2, 2).write_quorum(), 3);
        assert_eq!(Erasure::new(4, 2).write_quorum(), 4);
        assert_eq!(Erasure::new(12, 4).read_quorum(), 12);
    }

    /// Decodes `block` with the shards at `missing` dropped; checks the answer: the
    /// block when at most `parity` are missing, `TooFewShards` otherwise.
    fn check_with_missing(erasure: &Erasure, block: &[u8], missing: &[usize]) {
        let shards = erasure.encode_block(block).unwrap();
        assert_eq!(shards.len(), erasure.data_shards + erasure.parity_shards);
        let mut slots: Vec<Option<Vec<u8>>> = shards.into_iter().map(Some).collect();
        for &index in missing {
            slots[index] = None;
        }
        let shape =
            format!("{}+{} len {} missing {missing:?}", erasure.data_shards, erasure.parity_shards, block.len());
        let decoded = erasure.decode_block(&mut slots, block.len());
        if missing.len() <= erasure.parity_shards {
            assert_eq!(decoded.as_deref(), Ok(block), "{shape}");
        } else {
            let available = erasure.data_shards + erasure.parity_shards - missing.len();
            assert_eq!(decoded, Err(ErasureError::TooFewShards { needed: erasure.data_shards, available }), "{shape}");
        }
    }

    #[test]
    fn round_trip_with_every_combination_of_missing_shards_in_small_shapes() {
        // Every subset of shards, for every small shape: up to parity missing decodes,
        // one more is an error.
        for (data, parity) in [(2, 2), (3, 2), (4, 2), (3, 3), (4, 3), (4, 4)] {
            let erasure = Erasure::new(data, parity);
            let total = data + parity;
            for len in [1, 63, 64, 1000, 65_537] {
                let block = pattern(len, (data * 10 + parity) as u8);
                for subset in 0u32..(1 << total) {
                    let missing: Vec<usize> = (0..total).filter(|i| subset & (1 << i) != 0).collect();
                    if missing.len() <= parity + 1 {
                        check_with_missing(&erasure, &block, &missing);
                    }
                }
            }
        }
    }

    #[test]
    fn round_trip_with_random_missing_shards_in_large_shapes() {
        use rand::seq::index::sample;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xec);
        for (data, parity) in [(6, 4), (8, 4), (12, 4), (10, 6)] {
            let erasure = Erasure::new(data, parity);
            let total = data + parity;
            for round in 0..60 {
                let len = if round % 10 == 0 { BLOCK_SIZE_BYTES } else { rng.random_range(1..200_000) };
                let block = pattern(len, round as u8);
                let count = rng.random_range(0..=parity + 1);
                let missing = sample(&mut rng, total, count).into_vec();
                check_with_missing(&erasure, &block, &missing);
            }
        }
    }

    #[test]
    fn shared_shards_are_the_same_bytes() {
        // Whole blocks, short blocks, one byte, lengths that leave the last data shards
        // padded or empty: the views and copies hold exactly what encode_block gives.
        for (data, parity) in [(2, 2), (4, 2), (12, 4)] {
            let erasure = Erasure::new(data, parity);
            for len in [1, 63, 64 * data + 1, 300_001, BLOCK_SIZE_BYTES - 5, BLOCK_SIZE_BYTES] {
                // Not periodic, so a view at the wrong offset would show.
                let block: Vec<u8> = (0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
                let shared = erasure.encode_block_shared(&Bytes::from(block.clone())).unwrap();
                let copied = erasure.encode_block(&block).unwrap();
                assert!(
                    shared.iter().map(|s| &s[..]).eq(copied.iter().map(|s| &s[..])),
                    "{data}+{parity}, {len} bytes"
                );
            }
        }
    }

    #[test]
    fn too_many_missing_is_an_error_not_wrong_data() {
        let erasure = Erasure::new(4, 2);
        let block = pattern(5000, 7);
        let mut slots: Vec<Option<Vec<u8>>> = erasure.encode_block(&block).unwrap().into_iter().map(Some).collect();
        slots[0] = None;
        slots[3] = None;
        slots[5] = None;
        assert_eq!(
            erasure.decode_block(&mut slots, block.len()),
            Err(ErasureError::TooFewShards { needed: 4, available: 3 })
        );
    }

    #[test]
    fn reconstruct_all_rebuilds_parity_too() {
        let erasure = Erasure::new(4, 2);
        let block = pattern(300_000, 3);
        let original = erasure.encode_block(&block).unwrap();
        let mut slots: Vec<Option<Vec<u8>>> = original.iter().cloned().map(Some).collect();
        slots[1] = None;
        slots[5] = None;
        erasure.reconstruct_all(&mut slots, block.len()).unwrap();
        let rebuilt: Vec<Vec<u8>> = slots.into_iter().map(Option::unwrap).collect();
        assert_eq!(rebuilt, original);
    }
}
