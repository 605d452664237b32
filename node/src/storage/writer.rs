//! Streams object bytes into erasure-coded shard files, one per drive of a set. Runs on a
//! blocking thread fed by a bounded channel, so network reads overlap encoding and disk
//! writes and a 5 GiB object never sits in memory (at most a few blocks at a time).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use md5::Digest as _;
use uuid::Uuid;

use super::checksum::Hasher;
use super::drive::{Drive, ShardFile};
use super::layout::ShardLayout;
use crate::erasure::{Erasure, shard_checksum};
use crate::format::object::ChecksumAlgorithm;

/// Objects up to this size keep their shards inside the metadata file: one small file per
/// drive instead of two, which is what makes small PUTs cheap.
pub const INLINE_MAX_BYTES: usize = 128 * 1024;

/// Where the shards go.
pub enum Target {
    /// Into `part.<part>` of a staging directory `tmp/<id>` on every drive.
    Files { staging_id: Uuid, part: u32 },
    /// Into memory, to be inlined in the metadata.
    Inline,
}

pub struct PartWriter {
    erasure: Erasure,
    /// Which drive position each shard goes to.
    layout: ShardLayout,
    drives: Vec<Option<Arc<dyn Drive>>>,
    files: Vec<Option<Box<dyn ShardFile>>>,
    inline: Vec<Vec<u8>>,
    failures: Vec<Option<io::Error>>,
    target_inline: bool,
    md5: md5::Md5,
    hashers: Vec<Hasher>,
    size: u64,
}

/// What a finished part writer reports.
pub struct WrittenPart {
    pub size: u64,
    pub md5: [u8; 16],
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
    /// Per drive position: the inline shard bytes (inline target) or `Some(empty)` for a
    /// durable shard file; `None` where the drive failed.
    pub per_drive: Vec<Option<Vec<u8>>>,
}

impl PartWriter {
    /// `drives` are by position; `None` marks a drive known to be offline.
    pub fn new(
        erasure: Erasure,
        layout: ShardLayout,
        drives: Vec<Option<Arc<dyn Drive>>>,
        target: Target,
        algorithms: &[ChecksumAlgorithm],
    ) -> Self {
        assert_eq!(drives.len(), erasure.total_shards(), "one drive per shard");
        let count = drives.len();
        let mut files: Vec<Option<Box<dyn ShardFile>>> = (0..count).map(|_| None).collect();
        let mut failures: Vec<Option<io::Error>> = (0..count).map(|_| None).collect();
        let target_inline = matches!(target, Target::Inline);
        for (position, drive) in drives.iter().enumerate() {
            let Some(drive) = drive else {
                failures[position] = Some(io::Error::other("drive offline"));
                continue;
            };
            if let Target::Files { staging_id, part } = target {
                let opened = drive.create_shard_file(staging_id, &format!("part.{part}"));
                match opened {
                    Ok(file) => files[position] = Some(file),
                    Err(e) => failures[position] = Some(e),
                }
            }
        }
        PartWriter {
            erasure,
            layout,
            drives,
            files,
            inline: vec![Vec::new(); count],
            failures,
            target_inline,
            md5: md5::Md5::new(),
            hashers: algorithms.iter().map(|a| Hasher::new(*a)).collect(),
            size: 0,
        }
    }

    pub fn healthy_drives(&self) -> usize {
        self.failures.iter().filter(|f| f.is_none()).count()
    }

    /// Encodes and writes one block (at most `BLOCK_SIZE_BYTES`).
    pub fn write_block(&mut self, block: &[u8]) -> io::Result<()> {
        self.md5.update(block);
        for hasher in &mut self.hashers {
            hasher.update(block);
        }
        self.size += block.len() as u64;
        let shards = self.erasure.encode_block(block).map_err(io::Error::other)?;
        for (shard_index, shard) in shards.iter().enumerate() {
            let position = self.layout.position_of(shard_index);
            if self.failures[position].is_some() {
                continue;
            }
            let checksum = shard_checksum(shard).to_le_bytes();
            if self.target_inline {
                self.inline[position].extend_from_slice(&checksum);
                self.inline[position].extend_from_slice(shard);
            } else if let Some(file) = self.files[position].as_mut() {
                let result = file.write_all(&checksum).and_then(|()| file.write_all(shard));
                if let Err(e) = result {
                    self.failures[position] = Some(e);
                    self.files[position] = None;
                }
            }
        }
        Ok(())
    }

    /// Flushes every shard file to stable storage and reports what was written.
    pub fn finish(mut self) -> WrittenPart {
        let count = self.drives.len();
        let mut per_drive: Vec<Option<Vec<u8>>> = (0..count).map(|_| None).collect();
        // fsync the drives in parallel: each may be a different device.
        let synced: Vec<(usize, io::Result<()>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .files
                .iter_mut()
                .enumerate()
                .filter_map(|(position, file)| file.take().map(|f| (position, f)))
                .map(|(position, file)| scope.spawn(move || (position, file.sync())))
                .collect();
            handles.into_iter().map(|h| h.join().expect("fsync thread")).collect()
        });
        for (position, result) in synced {
            if let Err(e) = result {
                self.failures[position] = Some(e);
            }
        }
        for (position, slot) in per_drive.iter_mut().enumerate() {
            if self.failures[position].is_none() {
                *slot = Some(std::mem::take(&mut self.inline[position]));
            }
        }
        let checksums = self.hashers.into_iter().map(Hasher::finish).collect();
        WrittenPart { size: self.size, md5: self.md5.finalize().into(), checksums, per_drive }
    }
}

/// Cuts an incoming byte stream into blocks of exactly `block_size` bytes (the last may
/// be shorter).
pub struct Blocker {
    block_size: usize,
    buffer: Vec<u8>,
}

impl Blocker {
    pub fn new(block_size: usize) -> Self {
        Blocker { block_size, buffer: Vec::with_capacity(block_size) }
    }

    /// Adds bytes; returns the full blocks completed by them.
    pub fn push(&mut self, mut chunk: Bytes) -> Vec<Vec<u8>> {
        let mut full = Vec::new();
        while !chunk.is_empty() {
            let take = (self.block_size - self.buffer.len()).min(chunk.len());
            self.buffer.extend_from_slice(&chunk.split_to(take));
            if self.buffer.len() == self.block_size {
                full.push(std::mem::replace(&mut self.buffer, Vec::with_capacity(self.block_size)));
            }
        }
        full
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    pub fn finish(self) -> Vec<u8> {
        self.buffer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocker_cuts_exact_blocks() {
        let mut blocker = Blocker::new(4);
        assert!(blocker.push(Bytes::from_static(b"ab")).is_empty());
        assert_eq!(blocker.push(Bytes::from_static(b"cdefghij")), vec![b"abcd".to_vec(), b"efgh".to_vec()]);
        assert_eq!(blocker.finish(), b"ij".to_vec());
    }
}
