//! Streams object bytes into erasure-coded shard files, one per drive of a set. Runs on a
//! blocking thread fed by a bounded channel, so network reads overlap encoding and disk
//! writes and a 5 GiB object never sits in memory (at most a few blocks at a time).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use super::checksum::Hasher;
use super::drive::{Drive, Durability, ShardFile};
use super::etag_md5::EtagMd5;
use super::layout::ShardLayout;
use crate::erasure::{Erasure, shard_checksum};
use crate::format::object::ChecksumAlgorithm;

/// Objects up to this size keep their shards inside the metadata file: one small file per
/// drive instead of two, which is what makes small PUTs cheap.
pub const INLINE_MAX_BYTES: usize = 128 * 1024;

/// Where the shards go.
pub enum Target {
    /// Into `part.<part>` of a staging directory `tmp/<id>` on every drive, durable as
    /// `durability` says.
    Files { staging_id: Uuid, part: u32, durability: Durability },
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
    durability: Durability,
    /// The digests of the body, here until a pipeline hashes on a thread of its own.
    digests: Option<Digests>,
    hashing: Option<Stage<Bytes, Digests>>,
    /// Per drive position: the thread writing that drive's shards, once a pipeline runs.
    writing: Vec<Option<Stage<Bytes, io::Result<()>>>>,
    size: u64,
    blocks: u64,
}

/// After this many blocks a part's writer becomes a pipeline: the body is hashed on a
/// thread of its own and each local drive's shards are checksummed, written and synced on
/// a thread of their own, so one large upload uses more than one core and its drives'
/// writes overlap. A one-block object (the common case) starts no thread.
const PIPELINE_AFTER_BLOCKS: u64 = 1;
/// Blocks (hashing) or shards (a drive) a pipeline stage queues: bounds its memory.
const STAGE_QUEUE: usize = 2;

/// MD5 (the ETag) and the checksums a client asked for, over the whole body.
struct Digests {
    md5: EtagMd5,
    hashers: Vec<Hasher>,
}

impl Digests {
    /// The MD5 of a large block is taken on the shared hashing thread (with other uploads'
    /// blocks) while the checksums are taken here.
    fn update(&mut self, block: &Bytes) {
        let md5 = self.md5.start(block);
        for hasher in &mut self.hashers {
            hasher.update(block);
        }
        md5.wait();
    }
}

/// Work on a thread of its own, fed through a bounded queue; it answers once its input
/// closes. A thread of its own, not one of the runtime's blocking pool: the writer feeding
/// it runs on that pool, and with the pool full, stages queued behind their writers
/// would never start.
struct Stage<In, Out> {
    input: std::sync::mpsc::SyncSender<In>,
    answer: std::sync::mpsc::Receiver<Out>,
}

impl<In: Send + 'static, Out: Send + 'static> Stage<In, Out> {
    /// Starts `work` over `state` and the stage's input; `Err(state)` when no thread can
    /// be started (the caller keeps working without one).
    fn start<S: Send + 'static>(
        state: S,
        work: impl FnOnce(S, std::sync::mpsc::Receiver<In>) -> Out + Send + 'static,
    ) -> Result<Self, S> {
        let (input, inbox) = std::sync::mpsc::sync_channel(STAGE_QUEUE);
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        // The state goes over once the thread runs, so a failed spawn does not lose it.
        let (hand_over, handed) = std::sync::mpsc::sync_channel::<S>(1);
        let spawned = std::thread::Builder::new().name("buckets-put".into()).spawn(move || {
            if let Ok(state) = handed.recv() {
                let _ = reply.send(work(state, inbox));
            }
        });
        if spawned.is_err() {
            return Err(state);
        }
        hand_over.send(state).map_err(|unsent| unsent.0)?;
        Ok(Stage { input, answer })
    }

    /// `false` when the stage has stopped (it panicked).
    fn send(&self, item: In) -> bool {
        self.input.send(item).is_ok()
    }

    /// Closes the input; the answer comes from the receiver (`Err`: the stage panicked).
    fn close(self) -> std::sync::mpsc::Receiver<Out> {
        self.answer
    }
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
            if let Target::Files { staging_id, part, .. } = target {
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
            durability: match target {
                Target::Files { durability, .. } => durability,
                Target::Inline => Durability::Synced,
            },
            digests: Some(Digests {
                md5: EtagMd5::default(),
                hashers: algorithms.iter().map(|a| Hasher::new(*a)).collect(),
            }),
            hashing: None,
            writing: (0..count).map(|_| None).collect(),
            size: 0,
            blocks: 0,
        }
    }

    /// Moves hashing and the local drives' writes onto threads of their own (see
    /// `PIPELINE_AFTER_BLOCKS`); what gets no thread stays on this one.
    fn start_pipeline(&mut self) {
        if let Some(digests) = self.digests.take() {
            let hashing = Stage::start(digests, |mut digests, blocks: std::sync::mpsc::Receiver<Bytes>| {
                for block in blocks {
                    digests.update(&block);
                }
                digests
            });
            match hashing {
                Ok(stage) => self.hashing = Some(stage),
                Err(digests) => {
                    self.digests = Some(digests);
                    return;
                }
            }
        }
        for position in 0..self.files.len() {
            if !self.drives[position].as_ref().is_some_and(|d| d.is_local()) {
                continue; // a peer's shard file already sends in the background
            }
            let Some(file) = self.files[position].take() else { continue };
            let durability = self.durability;
            let writing = Stage::start(file, move |mut file, shards: std::sync::mpsc::Receiver<Bytes>| {
                let mut written = Ok(());
                for shard in shards {
                    if written.is_ok() {
                        let checksum = shard_checksum(&shard).to_le_bytes();
                        written = file.write_all(&checksum).and_then(|()| file.write_all(&shard));
                    }
                }
                written.and_then(|()| file.close(durability))
            });
            match writing {
                Ok(stage) => self.writing[position] = Some(stage),
                Err(file) => self.files[position] = Some(file),
            }
        }
    }

    /// Encodes and writes one block (at most `BLOCK_SIZE_BYTES`).
    pub fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        self.blocks += 1;
        if self.blocks > PIPELINE_AFTER_BLOCKS && self.hashing.is_none() && !self.target_inline {
            self.start_pipeline();
        }
        self.size += block.len() as u64;
        let block = Bytes::from(block);
        match (&mut self.digests, &self.hashing) {
            (Some(digests), _) => digests.update(&block),
            (None, Some(hashing)) if hashing.send(block.clone()) => {}
            (None, _) => return Err(io::Error::other("hashing stopped")),
        }
        let shards = self.erasure.encode_block_shared(&block).map_err(io::Error::other)?;
        for (shard_index, shard) in shards.into_iter().enumerate() {
            let position = self.layout.position_of(shard_index);
            if self.failures[position].is_some() {
                continue;
            }
            if let Some(writing) = &self.writing[position] {
                if !writing.send(shard) {
                    self.failures[position] = Some(io::Error::other("shard writer stopped"));
                    self.writing[position] = None;
                }
                continue;
            }
            let checksum = shard_checksum(&shard).to_le_bytes();
            if self.target_inline {
                self.inline[position].extend_from_slice(&checksum);
                self.inline[position].extend_from_slice(&shard);
            } else if let Some(file) = self.files[position].as_mut() {
                let result = file.write_all(&checksum).and_then(|()| file.write_all(&shard));
                if let Err(e) = result {
                    self.failures[position] = Some(e);
                    self.files[position] = None;
                }
            }
        }
        Ok(())
    }

    /// Flushes every shard file to stable storage and reports what was written.
    pub fn finish(mut self) -> io::Result<WrittenPart> {
        let count = self.drives.len();
        // Closing the drives' threads lets them sync; meanwhile the other files sync here,
        // in parallel too: each drive may be a different device.
        let writing: Vec<(usize, std::sync::mpsc::Receiver<io::Result<()>>)> = (self.writing.iter_mut().enumerate())
            .filter_map(|(position, stage)| stage.take().map(|stage| (position, stage.close())))
            .collect();
        let hashing = self.hashing.take().map(Stage::close);
        // A peer's file syncs by one call: those are awaited together from this thread;
        // a local file's fsync blocks, so each gets a thread.
        let (mut remote, mut local) = (Vec::new(), Vec::new());
        for (position, file) in self.files.iter_mut().enumerate() {
            match file.take().map(|file| file.close_async(self.durability)) {
                Some(Ok(call)) => remote.push((position, call)),
                Some(Err(file)) => local.push((position, file)),
                None => {}
            }
        }
        let durability = self.durability;
        let synced: Vec<(usize, io::Result<()>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = local
                .into_iter()
                .map(|(position, file)| scope.spawn(move || (position, file.close(durability))))
                .collect();
            let mut synced = Vec::new();
            if let Some((_, first)) = remote.first() {
                let runtime = first.runtime.clone();
                let (positions, calls): (Vec<usize>, Vec<_>) =
                    remote.into_iter().map(|(position, sync)| (position, sync.call)).unzip();
                synced.extend(positions.into_iter().zip(runtime.block_on(futures::future::join_all(calls))));
            }
            synced.extend(handles.into_iter().map(|h| h.join().expect("fsync thread")));
            synced
        });
        let threaded = writing.into_iter().map(|(position, answer)| {
            (position, answer.recv().unwrap_or_else(|_| Err(io::Error::other("shard writer stopped"))))
        });
        for (position, result) in synced.into_iter().chain(threaded) {
            if let Err(e) = result {
                self.failures[position] = Some(e);
            }
        }
        let digests = match hashing {
            Some(answer) => answer.recv().map_err(|_| io::Error::other("hashing stopped"))?,
            None => self.digests.take().expect("digests kept when no pipeline runs"),
        };
        let mut per_drive: Vec<Option<Vec<u8>>> = (0..count).map(|_| None).collect();
        for (position, slot) in per_drive.iter_mut().enumerate() {
            if self.failures[position].is_none() {
                *slot = Some(std::mem::take(&mut self.inline[position]));
            }
        }
        let checksums = digests.hashers.into_iter().map(Hasher::finish).collect();
        Ok(WrittenPart { size: self.size, md5: digests.md5.finalize(), checksums, per_drive })
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

#[cfg(test)]
mod pipeline_tests {
    use md5::Digest as _;

    use super::*;
    use crate::erasure::BLOCK_SIZE_BYTES;
    use crate::format::drive::DriveFormat;
    use crate::storage::drive::LocalDrive;
    use crate::storage::path::SYSTEM_DIR;
    use crate::storage::testing::data;

    /// A part of several blocks goes through the pipeline (hashing and each drive's writes
    /// on threads of their own): every healthy drive holds each block's shard after its
    /// checksum, in order, the digests cover the whole body, and a drive whose writes fail
    /// is reported failed while the others carry on.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_large_part_streams_through_the_pipeline_intact() {
        let dir = tempfile::tempdir().unwrap();
        let staging_id = Uuid::new_v4();
        let staging = |drive: usize| {
            dir.path().join(format!("d{drive}")).join(SYSTEM_DIR).join("tmp").join(staging_id.to_string())
        };
        // Drive 3's shard file is /dev/full: every write to it fails.
        std::fs::create_dir_all(staging(3)).unwrap();
        std::os::unix::fs::symlink("/dev/full", staging(3).join("part.1")).unwrap();
        let drives: Vec<Option<Arc<dyn Drive>>> = (0..4)
            .map(|i| {
                let format = DriveFormat {
                    cluster_id: Uuid::nil(),
                    drive_id: Uuid::new_v4(),
                    set_index: 0,
                    drive_index: i as u32,
                    set_drives: 4,
                    set_drive_ids: vec![Uuid::nil(); 4],
                };
                Some(Arc::new(LocalDrive::new(dir.path().join(format!("d{i}")), format)) as Arc<dyn Drive>)
            })
            .collect();
        let erasure = Erasure::new(2, 2);
        let layout = ShardLayout::of_key("k", 4);
        let body = data(5 * BLOCK_SIZE_BYTES + 12_345, 7);
        let sent = body.clone();
        let written = tokio::task::spawn_blocking(move || {
            let target = Target::Files { staging_id, part: 1, durability: Durability::Synced };
            let mut writer = PartWriter::new(erasure, layout, drives, target, &[ChecksumAlgorithm::Crc32c]);
            for block in sent.chunks(BLOCK_SIZE_BYTES) {
                writer.write_block(block.to_vec()).unwrap();
            }
            writer.finish().unwrap()
        })
        .await
        .unwrap();

        assert_eq!(written.size, body.len() as u64);
        assert_eq!(written.md5, <[u8; 16]>::from(md5::Md5::digest(&body)));
        let mut crc = Hasher::new(ChecksumAlgorithm::Crc32c);
        crc.update(&body);
        assert_eq!(written.checksums, vec![crc.finish()]);
        let healthy: Vec<bool> = written.per_drive.iter().map(Option::is_some).collect();
        assert_eq!(healthy, [true, true, true, false]);
        for position in 0..3 {
            let shard = layout.shard_at(position);
            let mut expected = Vec::new();
            for block in body.chunks(BLOCK_SIZE_BYTES) {
                let shards = erasure.encode_block(block).unwrap();
                expected.extend_from_slice(&shard_checksum(&shards[shard]).to_le_bytes());
                expected.extend_from_slice(&shards[shard]);
            }
            let on_disk = std::fs::read(staging(position).join("part.1")).unwrap();
            assert!(on_disk == expected, "drive {position} holds shard {shard} of every block, in order");
        }
    }
}
