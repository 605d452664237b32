//! Reads from a set: the version a read quorum agrees on, then its blocks, data shards
//! first and parity only for a missing or corrupt one, every shard block checked against
//! its checksum. Must never return a byte that failed its checksum.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{ErasureSet, Resolved, Selector, blocking, key_error};
use crate::erasure::{BLOCK_SIZE_BYTES, Erasure, SHARD_CHECKSUM_BYTES, checked_shard};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{PartInfo, VersionKind};
use crate::storage::drive::Drive;
use crate::storage::locks::ReadGuard;
use crate::storage::path::{self, ObjectPath};
use crate::storage::{ObjectInfo, ReadPlan};

/// Blocks read ahead of the network writer of one GET.
const GET_READAHEAD_BLOCKS: usize = 2;

impl ErasureSet {
    /// The key's latest version, which must be an object.
    pub async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<(ObjectInfo, Resolved)> {
        self.head(bucket, key, Selector::Latest).await
    }

    /// The object version `selector` names (a delete marker named by id is refused with
    /// `DeleteMarker`).
    pub async fn head(&self, bucket: &str, key: &str, selector: Selector) -> StoreResult<(ObjectInfo, Resolved)> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        let resolved = object_only(self.pick(&metas, selector)?)?;
        if !resolved.is_complete() {
            self.queue_heal(bucket, key, false);
        }
        Ok((ObjectInfo::from_version(bucket, key, &resolved.version), resolved))
    }

    /// Streams bytes `start..start + length` of the version `selector` names. The key's
    /// read lock is held until the stream ends or is dropped.
    pub async fn read_object(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        selector: Selector,
        plan: &ReadPlan,
    ) -> StoreResult<(ObjectInfo, u64, u64, impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static)> {
        let guard = self.locks.read(&Self::lock_name(bucket, key)).await;
        self.read_object_locked(bucket, key, selector, plan, Some(guard)).await
    }

    /// `read_object` for a caller that holds the key's lock (`guard` is `None`: the
    /// caller's write lock covers the read).
    pub(in crate::storage) async fn read_object_locked(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        selector: Selector,
        plan: &ReadPlan,
        guard: Option<ReadGuard>,
    ) -> StoreResult<(ObjectInfo, u64, u64, impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static)> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        let resolved = object_only(self.pick(&metas, selector)?)?;
        let info = ObjectInfo::from_version(bucket, key, &resolved.version);
        // Conditions and the range are decided on the very version that is streamed.
        let (start, length) = plan(&info)?;
        if start.checked_add(length).is_none_or(|end| end > resolved.version.size) {
            return Err(StoreError::InvalidRange);
        }
        if !resolved.is_complete() {
            self.queue_heal(bucket, key, false);
        }
        let body = self.stream_version(bucket, key, resolved, start, length, guard).await?;
        Ok((info, start, length, body))
    }

    /// Streams bytes `start..start + length` of `resolved`, a version this set's drives
    /// held when the caller read them; `guard` (if any) is held until the stream ends.
    /// The first block is read before this returns.
    pub(in crate::storage) async fn stream_version(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        resolved: Resolved,
        start: u64,
        length: u64,
        guard: Option<ReadGuard>,
    ) -> StoreResult<impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static + use<>> {
        let path = path::object_path(key).map_err(key_error)?;
        let (sender, receiver) = mpsc::channel::<io::Result<Vec<Bytes>>>(GET_READAHEAD_BLOCKS);
        let set = self.clone();
        let name = format!("{bucket}/{key}");
        let bucket = bucket.to_string();
        let key = key.to_string();
        tokio::spawn(async move {
            let _guard = guard;
            let mut reader = ShardReader::new(&set, &bucket, &path, &resolved);
            let mut offset = start;
            let end = start + length;
            while offset < end {
                let Some((part_index, part_offset)) = locate(&resolved.version.parts, offset) else {
                    break;
                };
                let part = resolved.version.parts[part_index].clone();
                let block_index = part_offset / BLOCK_SIZE_BYTES as u64;
                let block_start = block_index * BLOCK_SIZE_BYTES as u64;
                let block_len = (part.size - block_start).min(BLOCK_SIZE_BYTES as u64) as usize;
                // Shards kept in the metadata are in memory, others may be in the page
                // cache: no hand-off to the blocking pool for them.
                let cached = match reader.is_inline() {
                    true => Some(reader.read_block(&part, block_index, block_len)),
                    false => reader.read_block_cached(&part, block_index, block_len).map(Ok),
                };
                let read = match cached {
                    Some(read) => read,
                    None => {
                        let moved = reader;
                        let result = blocking(move || {
                            let mut reader = moved;
                            let block = reader.read_block(&part, block_index, block_len);
                            (reader, block)
                        })
                        .await;
                        reader = result.0;
                        result.1
                    }
                };
                let block = match read {
                    Ok(block) => block,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        break;
                    }
                };
                let within = (part_offset - block_start) as usize;
                let take = ((end - offset) as usize).min(block_len - within);
                offset += take as u64;
                set.metrics.s3_sent_bytes.inc_by(take as u64);
                if sender.send(Ok(range_of(block, within, take))).await.is_err() {
                    break;
                }
            }
            if reader.saw_damage {
                set.queue_heal(&bucket, &key, true);
            }
        });
        // The first block is read before the answer starts: an object whose data is lost
        // gets a clear error, not a 200 whose body breaks off at once.
        let mut receiver = receiver;
        let first = if length > 0 { receiver.recv().await } else { None };
        if let Some(Err(e)) = &first {
            return Err(StoreError::Unrecoverable(format!("{name}: {e}")));
        }
        let blocks = futures::stream::iter(first).chain(tokio_stream_from(receiver));
        let body = blocks.flat_map(|block| {
            let pieces: Vec<io::Result<Bytes>> = match block {
                Ok(pieces) => pieces.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(pieces)
        });
        Ok(body)
    }
}

/// A version named by id that is a delete marker has no data: 405 MethodNotAllowed.
fn object_only(resolved: Resolved) -> StoreResult<Resolved> {
    match resolved.version.kind {
        VersionKind::Object => Ok(resolved),
        _ => Err(StoreError::DeleteMarker { version_id: resolved.id(), latest: false }),
    }
}

/// Bytes `within..within + take` of a block given in pieces, as views into them.
fn range_of(pieces: Vec<Bytes>, mut within: usize, mut take: usize) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        if take == 0 {
            break;
        }
        if within >= piece.len() {
            within -= piece.len();
            continue;
        }
        let end = piece.len().min(within + take);
        take -= end - within;
        out.push(piece.slice(within..end));
        within = 0;
    }
    out
}

/// Maps an object offset to (part index, offset within the part).
fn locate(parts: &[PartInfo], mut offset: u64) -> Option<(usize, u64)> {
    for (index, part) in parts.iter().enumerate() {
        if offset < part.size {
            return Some((index, offset));
        }
        offset -= part.size;
    }
    None
}

fn tokio_stream_from(
    mut receiver: mpsc::Receiver<io::Result<Vec<Bytes>>>,
) -> impl Stream<Item = io::Result<Vec<Bytes>>> + Send + Sync + 'static {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// Reads and verifies shard blocks of one object version, remembering which drives
/// returned damage so later blocks go straight to healthy ones.
pub(super) struct ShardReader {
    erasure: Erasure,
    bucket: String,
    path: ObjectPath,
    /// Per shard index: the drive position and where its bytes are.
    sources: Vec<Option<ShardSource>>,
    damaged: Vec<bool>,
    pub(super) saw_damage: bool,
}

enum ShardSource {
    Inline { position: usize, bytes: Arc<Vec<u8>> },
    Files { position: usize, drive: Arc<dyn Drive>, data_dir: Uuid },
}

impl ShardSource {
    fn position(&self) -> usize {
        match self {
            ShardSource::Inline { position, .. } | ShardSource::Files { position, .. } => *position,
        }
    }
}

impl ShardReader {
    pub(super) fn new(set: &ErasureSet, bucket: &str, path: &ObjectPath, resolved: &Resolved) -> Self {
        let count = set.drives.len();
        let mut sources: Vec<Option<ShardSource>> = (0..count).map(|_| None).collect();
        for (position, version) in resolved.per_drive.iter().enumerate() {
            let Some(version) = version else { continue };
            let shard_index = version.erasure.shard_index as usize;
            if shard_index >= count || sources[shard_index].is_some() {
                continue;
            }
            sources[shard_index] = Some(match (&version.inline_data, version.data_dir) {
                (Some(bytes), _) => ShardSource::Inline { position, bytes: Arc::new(bytes.clone()) },
                (None, Some(data_dir)) => ShardSource::Files {
                    position,
                    drive: set.drives[position].clone(),
                    data_dir: Uuid::from_bytes(data_dir),
                },
                (None, None) => continue,
            });
        }
        // Missing copies are healed shallowly by the caller; `saw_damage` is for shards that
        // failed to read or verify, which need a deep heal.
        ShardReader {
            erasure: set.erasure,
            bucket: bucket.to_string(),
            path: path.clone(),
            sources,
            damaged: vec![false; count],
            saw_damage: false,
        }
    }

    /// Whether every shard it reads is kept in the metadata (read from memory).
    fn is_inline(&self) -> bool {
        self.sources.iter().flatten().all(|source| matches!(source, ShardSource::Inline { .. }))
    }

    pub(super) fn damaged_positions(&self) -> Vec<usize> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(index, _)| self.damaged[*index])
            .filter_map(|(_, s)| s.as_ref().map(ShardSource::position))
            .collect()
    }

    /// One verified shard block, or `None` (and the shard marked damaged).
    pub(super) fn read_shard(
        &mut self,
        part: &PartInfo,
        block_index: u64,
        block_len: usize,
        shard_index: usize,
    ) -> Option<Bytes> {
        if self.damaged[shard_index] {
            return None;
        }
        let (offset, len) = self.shard_range(block_index, block_len);
        let read = match self.sources[shard_index].as_ref()? {
            ShardSource::Inline { bytes, .. } => {
                let start = offset as usize;
                bytes.get(start..start + len).map(Bytes::copy_from_slice)
            }
            ShardSource::Files { drive, data_dir, .. } => {
                drive.read_shard(&self.bucket, &self.path, *data_dir, part.number, offset, len).ok().map(Bytes::from)
            }
        };
        let verified = read.and_then(verified);
        if verified.is_none() {
            self.damaged[shard_index] = true;
            self.saw_damage = true;
        }
        verified
    }

    /// Where block `block_index` (of `block_len` object bytes) of a shard is in its file:
    /// the offset, and the length of its checksum and shard bytes.
    fn shard_range(&self, block_index: u64, block_len: usize) -> (u64, usize) {
        let full_len = self.erasure.shard_len(BLOCK_SIZE_BYTES) + SHARD_CHECKSUM_BYTES;
        (block_index * full_len as u64, SHARD_CHECKSUM_BYTES + self.erasure.shard_len(block_len))
    }

    /// `read_block` when every data shard of the block is healthy and in the kernel's
    /// caches (read without waiting); `None` otherwise, and nothing marked damaged: the
    /// ordinary read decides.
    fn read_block_cached(&self, part: &PartInfo, block_index: u64, block_len: usize) -> Option<Vec<Bytes>> {
        // A peer's shard is a network round trip: such a block goes to the blocking pool
        // whole, before any local shard is read twice.
        let data = &self.sources[..self.erasure.data_shards];
        let local = |s: &Option<ShardSource>| matches!(s, Some(ShardSource::Files { drive, .. }) if drive.is_local());
        if !data.iter().all(local) || self.damaged[..data.len()].contains(&true) {
            return None;
        }
        let (offset, len) = self.shard_range(block_index, block_len);
        let mut shards = Vec::with_capacity(data.len());
        for source in data {
            let Some(ShardSource::Files { drive, data_dir, .. }) = source else { return None };
            let bytes = drive.read_shard_cached(&self.bucket, &self.path, *data_dir, part.number, offset, len)?;
            shards.push(verified(Bytes::from(bytes))?);
        }
        Some(data_pieces(&shards, block_len))
    }

    /// One block of object bytes, in pieces: data shards first, parity only as needed.
    /// With every data shard readable the pieces are the data shards themselves (no copy);
    /// otherwise the block is decoded into one piece.
    pub(super) fn read_block(&mut self, part: &PartInfo, block_index: u64, block_len: usize) -> io::Result<Vec<Bytes>> {
        let count = self.erasure.total_shards();
        let mut shards: Vec<Option<Bytes>> = (0..count).map(|_| None).collect();
        let mut good = 0;
        for (shard_index, slot) in shards.iter_mut().enumerate() {
            if good == self.erasure.data_shards {
                break;
            }
            if let Some(shard) = self.read_shard(part, block_index, block_len, shard_index) {
                *slot = Some(shard);
                good += 1;
            }
        }
        let shard_len = self.erasure.shard_len(block_len);
        let data = &shards[..self.erasure.data_shards];
        if data.iter().all(|s| s.as_ref().is_some_and(|s| s.len() == shard_len)) {
            let data: Vec<Bytes> = data.iter().flatten().cloned().collect();
            return Ok(data_pieces(&data, block_len));
        }
        let mut owned: Vec<Option<Vec<u8>>> = shards.into_iter().map(|s| s.map(|s| s.to_vec())).collect();
        let block = self.erasure.decode_block(&mut owned, block_len).map_err(|e| {
            io::Error::other(format!("object data unreadable: {e} (more than parity drives lost or corrupt)"))
        })?;
        Ok(vec![Bytes::from(block)])
    }
}

/// The shard of `bytes` (its checksum, then the shard) if it matches its checksum, as a
/// view into `bytes` (no copy).
fn verified(bytes: Bytes) -> Option<Bytes> {
    checked_shard(&bytes)?;
    Some(bytes.slice(SHARD_CHECKSUM_BYTES..))
}

/// A block's `block_len` bytes as views into its data shards, in order (the last shard's
/// padding left out).
fn data_pieces(shards: &[Bytes], block_len: usize) -> Vec<Bytes> {
    let mut left = block_len;
    let pieces = shards.iter().map(|shard| {
        let take = left.min(shard.len());
        left -= take;
        shard.slice(..take)
    });
    pieces.filter(|piece| !piece.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every range of a block given in pieces is exactly that range of the joined block.
    #[test]
    fn a_range_of_pieces_is_the_range_of_the_block() {
        let block: Vec<u8> = (0..23u8).collect();
        let pieces = vec![
            Bytes::copy_from_slice(&block[..8]),
            Bytes::copy_from_slice(&block[8..16]),
            Bytes::copy_from_slice(&block[16..]),
        ];
        for within in 0..block.len() {
            for take in 0..=block.len() - within {
                let got: Vec<u8> = range_of(pieces.clone(), within, take).concat();
                assert_eq!(got, block[within..within + take], "range {within}+{take}");
            }
        }
    }
}
