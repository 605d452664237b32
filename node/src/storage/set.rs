//! One erasure set: the drives that together hold every object placed on it. Writes reach
//! a write quorum of drives or fail; reads trust the metadata that a read quorum of drives
//! agree on, verify every shard block's checksum, and reconstruct around missing or
//! corrupt shards (queueing the object for healing).
//!
//! Owns: quorum rules, the commit protocol, shard reads. Must never return bytes that did
//! not pass their checksum, and never acknowledge a write below write quorum.

use std::io;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::drive::{Drive, ShardFile};
use super::layout::ShardLayout;
use super::locks::NamespaceLocks;
use super::path::{self, DIR_OBJECT_META_FILE, OBJECT_META_FILE, ObjectPath};
use super::writer::{Blocker, INLINE_MAX_BYTES, PartWriter, Target, WrittenPart};
use super::{BodyStream, HealRequest, ListEntry, ObjectInfo, PutOptions, ReadPlan};
use crate::erasure::{BLOCK_SIZE_BYTES, Erasure, SHARD_CHECKSUM_BYTES, shard_checksum};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{ErasureLayout, ObjectMeta, ObjectVersion, PartInfo, VersionKind};
use crate::metrics::Metrics;

/// Blocks in flight between the network reader and the encoder thread of one PUT.
const PUT_PIPELINE_BLOCKS: usize = 4;
/// Blocks read ahead of the network writer of one GET.
const GET_READAHEAD_BLOCKS: usize = 2;

pub struct ErasureSet {
    /// The set's id in the topology.
    pub id: crate::placement::ring::SetId,
    drives: Vec<Arc<dyn Drive>>,
    erasure: Erasure,
    /// The key locks, shared by every set of the store: a key moving between sets is
    /// one lock.
    pub locks: Arc<NamespaceLocks>,
    heal_queue: mpsc::Sender<HealRequest>,
    metrics: Arc<Metrics>,
}

/// A PUT whose shards are staged, waiting for its commit.
pub struct PreparedPut {
    bucket: String,
    key: String,
    path: ObjectPath,
    version: ObjectVersion,
    layout: ShardLayout,
    per_drive: Vec<DriveCopy>,
    staged: Option<Uuid>,
    precondition: Option<super::Precondition>,
}

/// What a commit writes on one drive, by what the write before it left there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveCopy {
    /// The drive failed during the write: nothing is committed on it.
    Failed,
    /// The shard files are staged on the drive; the metadata points at them.
    Staged,
    /// The shards travel inline in the metadata (small objects).
    Inline(Vec<u8>),
}

impl DriveCopy {
    /// From what a part write left on a drive (`None`: it failed there), for an object
    /// that is stored inline or in staged files.
    pub fn of_written(written: Option<Vec<u8>>, inline: bool) -> DriveCopy {
        match written {
            None => DriveCopy::Failed,
            Some(bytes) if inline => DriveCopy::Inline(bytes),
            Some(_) => DriveCopy::Staged,
        }
    }

    /// The copy a drive already holds of `version` (`None`: it holds none).
    fn of_held(version: Option<&ObjectVersion>) -> DriveCopy {
        match version.map(|v| &v.inline_data) {
            None => DriveCopy::Failed,
            Some(None) => DriveCopy::Staged,
            Some(Some(bytes)) => DriveCopy::Inline(bytes.clone()),
        }
    }
}

/// What each drive said about an object's metadata.
#[derive(Debug)]
pub(super) enum DriveMeta {
    Missing,
    Found(ObjectMeta),
    Failed,
}

impl DriveMeta {
    /// `Missing` or `Failed` as is (a found metadata is not copied: it reads as missing).
    fn shallow_clone(&self) -> DriveMeta {
        match self {
            DriveMeta::Failed => DriveMeta::Failed,
            _ => DriveMeta::Missing,
        }
    }
}

/// An object version that a read quorum of drives agree on.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub version: ObjectVersion,
    /// Per drive position: the drive's copy of that version (with its shard index and
    /// inline bytes), or `None` when the drive is missing it or is outdated.
    pub per_drive: Vec<Option<ObjectVersion>>,
    /// Per drive position: every data directory the drive's metadata references.
    pub data_dirs: Vec<Vec<Uuid>>,
}

impl Resolved {
    pub fn is_complete(&self) -> bool {
        self.per_drive.iter().all(Option::is_some)
    }

    /// The layout the object's shards were written with, from the drives that hold it.
    fn layout(&self) -> ShardLayout {
        let count = self.per_drive.len();
        (0..count)
            .find_map(|p| {
                let held = self.per_drive[p].as_ref()?;
                ShardLayout::from_held(p, held.erasure.shard_index as usize, count)
            })
            .expect("a resolved object has drives")
    }
}

pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// The drives that hold metadata of the object, with it, by position.
fn found(metas: &[DriveMeta]) -> impl Iterator<Item = (usize, &ObjectMeta)> {
    metas.iter().enumerate().filter_map(|(position, meta)| match meta {
        DriveMeta::Found(meta) => Some((position, meta)),
        _ => None,
    })
}

fn referenced_data_dirs(meta: &ObjectMeta) -> Vec<Uuid> {
    meta.versions.iter().filter_map(|v| v.data_dir.map(Uuid::from_bytes)).collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

impl ErasureSet {
    pub fn new(
        id: crate::placement::ring::SetId,
        drives: Vec<Arc<dyn Drive>>,
        locks: Arc<NamespaceLocks>,
        heal_queue: mpsc::Sender<HealRequest>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let count = drives.len();
        let parity = crate::erasure::default_parity_shards(count);
        ErasureSet { id, drives, erasure: Erasure::new(count - parity, parity), locks, heal_queue, metrics }
    }

    /// A new set of `drives` sharing this one's key locks, heal queue and metrics.
    pub fn sibling(&self, id: crate::placement::ring::SetId, drives: Vec<Arc<dyn Drive>>) -> ErasureSet {
        ErasureSet::new(id, drives, self.locks.clone(), self.heal_queue.clone(), self.metrics.clone())
    }

    pub fn drives(&self) -> &[Arc<dyn Drive>] {
        &self.drives
    }

    pub fn erasure(&self) -> Erasure {
        self.erasure
    }

    pub fn online_drives(&self) -> usize {
        self.drives.iter().filter(|d| d.is_online()).count()
    }

    fn drives_by_position(&self) -> Vec<Option<Arc<dyn Drive>>> {
        self.drives.iter().map(|d| d.is_online().then(|| d.clone())).collect()
    }

    pub(super) fn lock_name(bucket: &str, key: &str) -> String {
        format!("{bucket}/{key}")
    }

    pub(super) fn requeue_heal(&self, mut request: HealRequest) {
        request.attempt += 1;
        let _ = self.heal_queue.try_send(request);
    }

    fn queue_heal(&self, bucket: &str, key: &str, deep: bool) {
        // Best effort: a full queue means the background scanner will find it later.
        let _ = self.heal_queue.try_send(HealRequest {
            set: self.id,
            bucket: bucket.into(),
            key: key.into(),
            deep,
            attempt: 0,
        });
    }

    // ---- metadata ----

    pub(super) async fn read_metas(&self, bucket: &str, path: &ObjectPath) -> Vec<DriveMeta> {
        let reads = self.drives.iter().map(|drive| {
            let drive = drive.clone();
            let bucket = bucket.to_string();
            let path = path.clone();
            blocking(move || read_drive_meta(drive.as_ref(), &bucket, &path))
        });
        futures::future::join_all(reads).await
    }

    /// The same as `read_metas`, from a blocking thread (see `on_drives`).
    pub(super) fn read_metas_blocking(&self, bucket: &str, path: &ObjectPath) -> Vec<DriveMeta> {
        let (bucket, path) = (bucket.to_string(), path.clone());
        on_drives(&self.drives, move |drive| read_drive_meta(drive, &bucket, &path))
    }

    /// Picks the object version a read quorum agrees on; a tombstone (a delete that did
    /// not reach every drive) reads as `NoSuchKey`.
    pub(super) fn resolve(&self, metas: &[DriveMeta]) -> StoreResult<Resolved> {
        let resolved = self.resolve_any(metas)?;
        if resolved.version.kind == VersionKind::DeleteMarker {
            return Err(StoreError::NoSuchKey);
        }
        Ok(resolved)
    }

    /// The version, object or tombstone, a read quorum agrees on.
    fn resolve_any(&self, metas: &[DriveMeta]) -> StoreResult<Resolved> {
        let quorum = self.erasure.read_quorum();
        let mut best: Option<(usize, &ObjectVersion)> = None;
        for meta in metas {
            let DriveMeta::Found(meta) = meta else {
                continue;
            };
            let Some(candidate) = meta.latest() else {
                continue;
            };
            let votes = metas
                .iter()
                .filter(|m| matches!(m, DriveMeta::Found(o) if o.latest().map(|v| v.identity()) == Some(candidate.identity())))
                .count();
            let better = match best {
                None => true,
                Some((best_votes, best_version)) => {
                    votes > best_votes || (votes == best_votes && candidate.modified_ns > best_version.modified_ns)
                }
            };
            if better {
                best = Some((votes, candidate));
            }
        }
        let failed = metas.iter().filter(|m| matches!(m, DriveMeta::Failed)).count();
        let found = metas.iter().filter(|m| matches!(m, DriveMeta::Found(_))).count();
        let holding_object = metas
            .iter()
            .filter(
                |m| matches!(m, DriveMeta::Found(meta) if meta.latest().is_some_and(|v| v.kind == VersionKind::Object)),
            )
            .count();
        match best {
            Some((votes, version)) if votes >= quorum => {
                let identity = version.identity();
                let per_drive = metas
                    .iter()
                    .map(|m| match m {
                        DriveMeta::Found(meta) => meta.latest().filter(|v| v.identity() == identity).cloned(),
                        _ => None,
                    })
                    .collect();
                let data_dirs = metas
                    .iter()
                    .map(|m| match m {
                        DriveMeta::Found(meta) => referenced_data_dirs(meta),
                        _ => Vec::new(),
                    })
                    .collect();
                let mut version = version.clone();
                version.inline_data = None;
                Ok(Resolved { version, per_drive, data_dirs })
            }
            // Enough drives hold some version, or might, but no version has a quorum: the
            // answer is unknown, not "absent".
            Some((votes, _)) if found + failed >= quorum => {
                Err(StoreError::InsufficientQuorum { operation: "read", needed: quorum, available: votes })
            }
            None if failed >= quorum => {
                Err(StoreError::InsufficientQuorum { operation: "read", needed: quorum, available: 0 })
            }
            // Drives answered; some hold the object, too few to read it, and no tombstone
            // says it was deleted (a delete that misses a drive leaves one): its copies
            // were lost beyond parity. That must never look like "no such key".
            _ if holding_object > 0 => {
                Err(StoreError::LostBeyondParity { found: holding_object, needed: quorum, drives: metas.len() })
            }
            _ => Err(StoreError::NoSuchKey),
        }
    }

    /// Whether every drive holds the object's current version and no tombstone waits to
    /// be removed (nothing left for the healer).
    pub(super) async fn is_complete(&self, bucket: &str, key: &str) -> bool {
        let Ok(path) = path::object_path(key) else { return true };
        let metas = self.read_metas(bucket, &path).await;
        match self.resolve_any(&metas) {
            // A tombstone waits for every drive, then goes: not done yet.
            Ok(resolved) if resolved.version.kind == VersionKind::DeleteMarker => false,
            Ok(resolved) => resolved.is_complete(),
            Err(_) => true,
        }
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<(ObjectInfo, Resolved)> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        let resolved = self.resolve(&metas)?;
        if !resolved.is_complete() {
            self.queue_heal(bucket, key, false);
        }
        Ok((ObjectInfo::from_version(bucket, key, &resolved.version), resolved))
    }

    // ---- writes ----

    /// Streams `body` into shards on every drive and returns what was written; nothing is
    /// visible until `commit`.
    pub(super) async fn write_part(
        &self,
        mut body: BodyStream,
        allow_inline: bool,
        staging_id: Uuid,
        part: u32,
        layout: ShardLayout,
        options: &PutOptions,
    ) -> StoreResult<WrittenPart> {
        // Read ahead up to the inline limit to decide where the shards go.
        let mut blocker = Blocker::new(BLOCK_SIZE_BYTES);
        let mut first_blocks = Vec::new();
        let mut ended = false;
        while blocker.buffered() <= INLINE_MAX_BYTES && first_blocks.is_empty() {
            match body.next().await {
                Some(Ok(chunk)) => {
                    self.check_size(options, blocker.buffered() as u64 + chunk.len() as u64)?;
                    first_blocks.extend(blocker.push(chunk));
                }
                Some(Err(e)) => return Err(StoreError::Body(e)),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let inline = allow_inline && ended && first_blocks.is_empty();
        let target = if inline { Target::Inline } else { Target::Files { staging_id, part } };
        let drives = self.drives_by_position();
        let erasure = self.erasure;
        let algorithms = options.checksum_algorithms.clone();
        let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(PUT_PIPELINE_BLOCKS);
        let encoder = tokio::task::spawn_blocking(move || -> io::Result<WrittenPart> {
            let mut writer = PartWriter::new(erasure, layout, drives, target, &algorithms);
            while let Some(block) = receiver.blocking_recv() {
                writer.write_block(&block)?;
            }
            Ok(writer.finish())
        });
        let pumped: StoreResult<()> = async {
            let mut total = 0u64;
            for block in first_blocks {
                total += block.len() as u64;
                sender.send(block).await.map_err(|_| io::Error::other("encoder stopped"))?;
            }
            if !ended {
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(StoreError::Body)?;
                    self.check_size(options, total + blocker.buffered() as u64 + chunk.len() as u64)?;
                    for block in blocker.push(chunk) {
                        total += block.len() as u64;
                        sender.send(block).await.map_err(|_| io::Error::other("encoder stopped"))?;
                    }
                }
            }
            let tail = std::mem::replace(&mut blocker, Blocker::new(1)).finish();
            if !tail.is_empty() {
                sender.send(tail).await.map_err(|_| io::Error::other("encoder stopped"))?;
            }
            Ok(())
        }
        .await;
        drop(sender);
        // The body (and any lock its source holds, as in a copy) is released before commit.
        drop(body);
        let written = encoder.await.expect("encoder task panicked");
        if let Err(e) = pumped {
            self.remove_staging(staging_id).await;
            return Err(e);
        }
        let written = match written {
            Ok(written) => written,
            Err(e) => {
                self.remove_staging(staging_id).await;
                return Err(e.into());
            }
        };
        if let Some(expected) = options.content_length
            && expected != written.size
        {
            self.remove_staging(staging_id).await;
            return Err(StoreError::IncompleteBody);
        }
        let healthy = written.per_drive.iter().filter(|d| d.is_some()).count();
        if healthy < self.erasure.write_quorum() {
            self.remove_staging(staging_id).await;
            return Err(StoreError::InsufficientQuorum {
                operation: "write",
                needed: self.erasure.write_quorum(),
                available: healthy,
            });
        }
        Ok(written)
    }

    fn check_size(&self, options: &PutOptions, size: u64) -> StoreResult<()> {
        if size > options.max_size {
            return Err(StoreError::EntityTooLarge);
        }
        Ok(())
    }

    pub(super) async fn remove_staging(&self, staging_id: Uuid) {
        let drives = self.drives.clone();
        blocking(move || {
            for drive in drives {
                drive.remove_staging(staging_id);
            }
        })
        .await;
    }

    /// Verifies digests, then makes the new version visible on every drive that holds its
    /// shards, under the object's write lock.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        options: PutOptions,
    ) -> StoreResult<ObjectInfo> {
        let prepared = self.prepare_put(bucket, key, body, options).await?;
        self.commit_prepared(prepared, false).await
    }

    /// The first half of a PUT: the body streamed into staged shards and checked against
    /// its digests; nothing visible yet, no lock held.
    pub(super) async fn prepare_put(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        mut options: PutOptions,
    ) -> StoreResult<PreparedPut> {
        let path = path::object_path(key).map_err(key_error)?;
        let data_dir = Uuid::new_v4();
        let layout = ShardLayout::of_key(key, self.drives.len());
        let written = self.write_part(body, true, data_dir, 1, layout, &options).await?;
        if let Err(e) = verify_digests(&written, &mut options) {
            self.remove_staging(data_dir).await;
            return Err(e);
        }
        let inline = written.per_drive.iter().flatten().any(|bytes| !bytes.is_empty()) || written.size == 0;
        let etag = hex::encode(written.md5);
        let version = ObjectVersion {
            version_id: None,
            modified_ns: now_ns(),
            kind: VersionKind::Object,
            size: written.size,
            etag: etag.clone(),
            headers: options.headers.clone(),
            checksums: written.checksums.clone(),
            erasure: self.layout(0),
            data_dir: (!inline).then_some(*data_dir.as_bytes()),
            parts: vec![PartInfo { number: 1, size: written.size, etag }],
            inline_data: None,
        };
        let per_drive = written.per_drive.into_iter().map(|d| DriveCopy::of_written(d, inline)).collect();
        Ok(PreparedPut {
            bucket: bucket.to_string(),
            key: key.to_string(),
            path,
            version,
            layout,
            per_drive,
            staged: (!inline).then_some(data_dir),
            precondition: options.precondition.take(),
        })
    }

    /// The second half of a PUT: the commit, under the key's write lock (taken here, or
    /// already held by the caller when `locked`).
    pub(super) async fn commit_prepared(&self, prepared: PreparedPut, locked: bool) -> StoreResult<ObjectInfo> {
        let _guard = if locked {
            None
        } else {
            match self.locks.write(&Self::lock_name(&prepared.bucket, &prepared.key)).await {
                Ok(guard) => Some(guard),
                Err(e) => {
                    self.discard_prepared(prepared).await;
                    return Err(e);
                }
            }
        };
        let PreparedPut { bucket, key, path, version, layout, per_drive, staged, precondition } = prepared;
        self.commit_locked(&bucket, &key, &path, version, layout, per_drive, staged, precondition).await
    }

    /// Drops a prepared PUT that will not be committed.
    pub(super) async fn discard_prepared(&self, prepared: PreparedPut) {
        if let Some(staged) = prepared.staged {
            self.remove_staging(staged).await;
        }
    }

    pub(super) fn layout(&self, shard_index: usize) -> ErasureLayout {
        ErasureLayout {
            data_shards: self.erasure.data_shards as u8,
            parity_shards: self.erasure.parity_shards as u8,
            block_size: BLOCK_SIZE_BYTES as u32,
            shard_index: shard_index as u8,
        }
    }

    /// Writes `version` as the object's only version on every drive whose `per_drive` copy
    /// is not `Failed`, moving the staged data directory into place. The caller
    /// holds the key's write lock (`Store::lock_key`).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit_locked(
        &self,
        bucket: &str,
        key: &str,
        path: &ObjectPath,
        version: ObjectVersion,
        layout: ShardLayout,
        per_drive: Vec<DriveCopy>,
        staged: Option<Uuid>,
        precondition: Option<super::Precondition>,
    ) -> StoreResult<ObjectInfo> {
        let metas = self.read_metas(bucket, path).await;
        if let Some(check) = precondition {
            let current = match self.resolve(&metas) {
                Ok(resolved) => Some(ObjectInfo::from_version(bucket, key, &resolved.version)),
                Err(StoreError::NoSuchKey) => None,
                Err(e) => {
                    if let Some(id) = staged {
                        self.remove_staging(id).await;
                    }
                    return Err(e);
                }
            };
            if let Err(e) = check(current.as_ref()) {
                if let Some(id) = staged {
                    self.remove_staging(id).await;
                }
                return Err(e);
            }
        }
        let commits = per_drive.into_iter().enumerate().map(|(position, copy)| {
            let drive = self.drives[position].clone();
            let mut version = version.clone();
            version.erasure.shard_index = layout.shard_at(position) as u8;
            let bucket = bucket.to_string();
            let path = path.clone();
            blocking(move || -> io::Result<()> {
                version.inline_data = match copy {
                    DriveCopy::Failed => return Err(io::Error::other("drive failed during write")),
                    DriveCopy::Staged => None,
                    DriveCopy::Inline(bytes) => Some(bytes),
                };
                let meta = ObjectMeta { versions: vec![version] };
                drive.commit_object(&bucket, &path, &meta.encode(), staged)
            })
        });
        let results = futures::future::join_all(commits).await;
        let succeeded = results.iter().filter(|r| r.is_ok()).count();
        if let Some(id) = staged {
            self.remove_staging(id).await;
        }
        if succeeded < self.erasure.write_quorum() {
            // Put back what the committed drives had, so the previous version keeps the
            // quorum and the redundancy it had before this write.
            let rollbacks = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(position, _)| {
                let drive = self.drives[position].clone();
                let previous = match &metas[position] {
                    DriveMeta::Found(meta) => Some(meta.encode()),
                    _ => None,
                };
                let bucket = bucket.to_string();
                let path = path.clone();
                blocking(move || drive.restore_object(&bucket, &path, previous.as_deref(), staged))
            });
            for result in futures::future::join_all(rollbacks).await {
                if let Err(e) = result {
                    tracing::warn!(bucket, key, error = %e, "rolling back a failed write");
                }
            }
            if results.iter().all(|r| matches!(r, Err(e) if e.kind() == io::ErrorKind::NotFound)) {
                return Err(StoreError::NoSuchBucket);
            }
            return Err(StoreError::InsufficientQuorum {
                operation: "write",
                needed: self.erasure.write_quorum(),
                available: succeeded,
            });
        }
        // The new version is durable on a quorum: only now may the old data go.
        let cleanups = results.iter().enumerate().filter(|(_, r)| r.is_ok()).filter_map(|(position, _)| {
            let DriveMeta::Found(meta) = &metas[position] else { return None };
            // A data directory the new version still uses (a change of headers only) stays.
            let kept = version.data_dir.map(Uuid::from_bytes);
            let obsolete: Vec<Uuid> =
                referenced_data_dirs(meta).into_iter().filter(|d| Some(*d) != staged && Some(*d) != kept).collect();
            let drive = self.drives[position].clone();
            let bucket = bucket.to_string();
            let path = path.clone();
            Some(blocking(move || drive.remove_data_dirs(&bucket, &path, &obsolete)))
        });
        futures::future::join_all(cleanups).await;
        if succeeded < self.drives.len() {
            self.queue_heal(bucket, key, false);
        }
        Ok(ObjectInfo::from_version(bucket, key, &version))
    }

    /// Rewrites the current version's headers (object tags) and keeps its data, ETag and
    /// size. The caller holds the key's write lock. The version's time moves on by one
    /// nanosecond (Last-Modified is shown to the second) so that it is a new version to
    /// quorum reads: a drive that missed the change is outvoted and healed, never read.
    /// `NoSuchKey` when this set does not hold the object.
    pub(super) async fn update_headers_locked(
        &self,
        bucket: &str,
        key: &str,
        change: &super::HeaderChange<'_>,
    ) -> StoreResult<ObjectInfo> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        let resolved = self.resolve(&metas)?;
        let mut version = resolved.version.clone();
        change(&mut version.headers)?;
        version.modified_ns += 1;
        let layout = resolved.layout();
        // Each drive keeps its own shard (and inline bytes); drives without the version get
        // nothing now and are healed (the commit queues it).
        let per_drive = resolved.per_drive.iter().map(|v| DriveCopy::of_held(v.as_ref())).collect();
        self.commit_locked(bucket, key, &path, version, layout, per_drive, None, None).await
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<()> {
        path::object_path(key).map_err(key_error)?;
        let _guard = self.locks.write(&Self::lock_name(bucket, key)).await?;
        self.delete_object_locked(bucket, key).await
    }

    /// `delete_object` for a caller that holds the key's write lock. With every drive
    /// answering, the object's files go from every drive. When a drive is away or fails
    /// the removal, it may keep its copy: the drives that answer get a tombstone instead
    /// (metadata saying "deleted", the data removed), so the copy left behind is outvoted
    /// when its drive returns, never read as the object or as a loss, and the healer
    /// removes tombstone and copy once every drive answers.
    pub(super) async fn delete_object_locked(&self, bucket: &str, key: &str) -> StoreResult<()> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        if !metas.iter().any(|m| matches!(m, DriveMeta::Failed))
            && self.remove_copies(bucket, &path, found(&metas)).await.iter().all(Result::is_ok)
        {
            return Ok(());
        }
        let tombstone = Arc::new(ObjectMeta { versions: vec![self.tombstone()] }.encode());
        let writes = metas.into_iter().enumerate().map(|(position, meta)| {
            let drive = self.drives[position].clone();
            let (bucket, path, tombstone) = (bucket.to_string(), path.clone(), tombstone.clone());
            blocking(move || -> io::Result<()> {
                let data_dirs = match meta {
                    DriveMeta::Failed => return Err(io::Error::other("drive offline")),
                    DriveMeta::Found(meta) => referenced_data_dirs(&meta),
                    DriveMeta::Missing => Vec::new(),
                };
                drive.commit_object(&bucket, &path, &tombstone, None)?;
                drive.remove_data_dirs(&bucket, &path, &data_dirs);
                Ok(())
            })
        });
        let succeeded = futures::future::join_all(writes).await.iter().filter(|r| r.is_ok()).count();
        if succeeded < self.erasure.write_quorum() {
            return Err(StoreError::InsufficientQuorum {
                operation: "delete",
                needed: self.erasure.write_quorum(),
                available: succeeded,
            });
        }
        self.queue_heal(bucket, key, false);
        Ok(())
    }

    /// A tombstone: the metadata of a deleted object, newer than any copy of it.
    fn tombstone(&self) -> ObjectVersion {
        ObjectVersion {
            version_id: None,
            modified_ns: now_ns(),
            kind: VersionKind::DeleteMarker,
            size: 0,
            etag: String::new(),
            headers: Vec::new(),
            checksums: Vec::new(),
            erasure: self.layout(0),
            data_dir: None,
            parts: Vec::new(),
            inline_data: None,
        }
    }

    /// Removes every drive's files of a deleted object (tombstones and the copies they
    /// outvote), copies first, so a removal cut short never leaves a copy without its
    /// tombstone. Only when every drive answered: a drive away may still hold a copy, and
    /// its tombstones must wait for it.
    async fn purge_deleted(&self, bucket: &str, path: &ObjectPath, metas: Vec<DriveMeta>) -> StoreResult<bool> {
        if metas.iter().any(|m| matches!(m, DriveMeta::Failed)) {
            return Ok(false);
        }
        let (copies, tombstones): (Vec<_>, Vec<_>) =
            found(&metas).partition(|(_, meta)| meta.latest().is_some_and(|v| v.kind == VersionKind::Object));
        let mut removed = false;
        for round in [copies, tombstones] {
            for result in self.remove_copies(bucket, path, round.into_iter()).await {
                result?;
                removed = true;
            }
        }
        Ok(removed)
    }

    /// Removes the copies of an object that this set holds below read quorum, left by a
    /// move whose source delete was cut short, once `home_holds_it` says the object is
    /// whole in another set (checked under the key's lock). Returns whether it did.
    pub(super) async fn purge_remnant(
        &self,
        bucket: &str,
        key: &str,
        home_holds_it: impl AsyncFnOnce() -> bool,
    ) -> StoreResult<bool> {
        let path = path::object_path(key).map_err(key_error)?;
        let _guard = self.locks.write(&Self::lock_name(bucket, key)).await?;
        let metas = self.read_metas(bucket, &path).await;
        if !matches!(self.resolve(&metas), Err(StoreError::LostBeyondParity { .. })) || !home_holds_it().await {
            return Ok(false);
        }
        for result in self.remove_copies(bucket, &path, found(&metas)).await {
            result?;
        }
        Ok(true)
    }

    /// Removes the object's files (its metadata and every data directory it references)
    /// from the drive at each position of `copies`, all at once; one result per drive.
    async fn remove_copies<'a>(
        &self,
        bucket: &str,
        path: &ObjectPath,
        copies: impl Iterator<Item = (usize, &'a ObjectMeta)>,
    ) -> Vec<io::Result<()>> {
        let removals = copies.map(|(position, meta)| {
            let drive = self.drives[position].clone();
            let (bucket, path, data_dirs) = (bucket.to_string(), path.clone(), referenced_data_dirs(meta));
            blocking(move || drive.delete_object(&bucket, &path, &data_dirs))
        });
        futures::future::join_all(removals).await
    }

    // ---- reads ----

    /// Streams bytes `start..start + length` of a resolved object. The object's read lock
    /// is held until the stream ends or is dropped.
    pub async fn read_object(
        self: &Arc<Self>,
        bucket: &str,
        key: &str,
        plan: &ReadPlan,
    ) -> StoreResult<(ObjectInfo, u64, u64, impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static)> {
        let path = path::object_path(key).map_err(key_error)?;
        let guard = self.locks.read(&Self::lock_name(bucket, key)).await;
        let metas = self.read_metas(bucket, &path).await;
        let resolved = self.resolve(&metas)?;
        let info = ObjectInfo::from_version(bucket, key, &resolved.version);
        // Conditions and the range are decided on the very version that is streamed.
        let (start, length) = plan(&info)?;
        if start.checked_add(length).is_none_or(|end| end > resolved.version.size) {
            return Err(StoreError::InvalidRange);
        }
        if !resolved.is_complete() {
            self.queue_heal(bucket, key, false);
        }
        let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(GET_READAHEAD_BLOCKS);
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
                let moved = reader;
                let result = blocking(move || {
                    let mut reader = moved;
                    let block = reader.read_block(&part, block_index, block_len);
                    (reader, block)
                })
                .await;
                reader = result.0;
                let block = match result.1 {
                    Ok(block) => block,
                    Err(e) => {
                        let _ = sender.send(Err(e)).await;
                        break;
                    }
                };
                let within = (part_offset - block_start) as usize;
                let take = ((end - offset) as usize).min(block_len - within);
                let bytes = Bytes::from(block).slice(within..within + take);
                offset += take as u64;
                set.metrics.s3_sent_bytes.inc_by(take as u64);
                if sender.send(Ok(bytes)).await.is_err() {
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
        let body = futures::stream::iter(first).chain(tokio_stream_from(receiver));
        Ok((info, start, length, body))
    }

    // ---- listing ----

    /// Walks the union of the drives' trees in key order from `marker` (exclusive), and
    /// returns up to `limit` entries that a read quorum agrees on.
    pub async fn list(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        marker: &str,
        limit: usize,
    ) -> StoreResult<Vec<ListEntry>> {
        if delimiter.is_none() {
            return self.list_by_walking(bucket, prefix, marker, limit, false).await;
        }
        let set = self.clone();
        let bucket = bucket.to_string();
        let prefix = prefix.to_string();
        let delimiter = delimiter.map(str::to_string);
        let marker = marker.to_string();
        blocking(move || {
            let mut walker = Walker {
                set: &set,
                bucket: &bucket,
                prefix: &prefix,
                delimiter: delimiter.as_deref(),
                marker: &marker,
                limit,
                out: Vec::new(),
                include_unresolved: false,
            };
            let (segments, partial) = path::prefix_dir(&prefix);
            let child_prefix: String = segments.iter().map(|s| format!("{s}/")).collect();
            walker.walk_dir(&segments, &child_prefix, Some(&partial))?;
            Ok(walker.out)
        })
        .await
    }

    /// Every key present on any drive under `bucket` (for the healer), from `marker`.
    pub async fn list_all_keys(self: &Arc<Self>, bucket: &str, marker: &str, limit: usize) -> StoreResult<Vec<String>> {
        let entries = self.list_by_walking(bucket, "", marker, limit, true).await?;
        Ok(entries
            .into_iter()
            .filter_map(|e| match e {
                ListEntry::Object(info) => Some(info.key),
                ListEntry::Prefix(_) => None,
            })
            .collect())
    }

    /// A listing without delimiter from pages of `Drive::walk` (one call per drive per
    /// page): keys merged across drives, each resolved by quorum from the metadata the
    /// drives returned. With `include_unresolved`, keys any drive holds are listed even
    /// without a quorum (placeholders, for the healer).
    pub(super) async fn list_by_walking(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        marker: &str,
        limit: usize,
        include_unresolved: bool,
    ) -> StoreResult<Vec<ListEntry>> {
        let mut out = Vec::new();
        let mut cursor = marker.to_string();
        while out.len() < limit {
            let (page, more) = self.walk_page(bucket, prefix, &cursor, limit - out.len()).await?;
            for (key, metas) in &page {
                match self.resolve(metas) {
                    Ok(resolved) => {
                        out.push(ListEntry::Object(ObjectInfo::from_version(bucket, key, &resolved.version)));
                        if !resolved.is_complete() {
                            self.queue_heal(bucket, key, false);
                        }
                    }
                    Err(_) if include_unresolved => {
                        out.push(ListEntry::Object(ObjectInfo::placeholder(bucket, key)));
                    }
                    Err(StoreError::NoSuchKey) => {}
                    Err(e) => tracing::warn!(bucket, key, error = %e, "listing skipped a key"),
                }
            }
            match page.last() {
                Some((last, _)) if more => cursor = last.clone(),
                _ => break,
            }
        }
        Ok(out)
    }

    /// One walk call per drive, merged: the keys up to the point every drive has listed
    /// (the smallest last key among drives that returned a full page), each with what
    /// every drive holds. Returns whether keys may follow.
    async fn walk_page(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        limit: usize,
    ) -> StoreResult<(Vec<(String, Vec<DriveMeta>)>, bool)> {
        let walks = self.drives.iter().map(|drive| {
            let drive = drive.clone();
            let (bucket, prefix, marker) = (bucket.to_string(), prefix.to_string(), marker.to_string());
            blocking(move || {
                if !drive.is_online() {
                    return Err(io::Error::other("drive offline"));
                }
                drive.walk(&bucket, &prefix, &marker, limit)
            })
        });
        let results = futures::future::join_all(walks).await;
        if results.iter().all(|r| r.is_err()) {
            return Err(StoreError::InsufficientQuorum {
                operation: "list",
                needed: self.erasure.read_quorum(),
                available: 0,
            });
        }
        let cut: Option<String> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter(|entries| entries.len() >= limit)
            .filter_map(|entries| entries.last().map(|(key, _)| key.clone()))
            .min();
        let empty: Vec<DriveMeta> =
            results.iter().map(|r| if r.is_ok() { DriveMeta::Missing } else { DriveMeta::Failed }).collect();
        let mut keys: std::collections::BTreeMap<String, Vec<DriveMeta>> = Default::default();
        for (position, result) in results.into_iter().enumerate() {
            let Ok(entries) = result else { continue };
            for (key, bytes) in entries {
                if cut.as_ref().is_some_and(|cut| key.as_bytes() > cut.as_bytes()) {
                    break;
                }
                let meta = match ObjectMeta::decode(&bytes) {
                    Ok(meta) => DriveMeta::Found(meta),
                    Err(_) => DriveMeta::Missing,
                };
                keys.entry(key).or_insert_with(|| empty.iter().map(DriveMeta::shallow_clone).collect())[position] =
                    meta;
            }
        }
        Ok((keys.into_iter().collect(), cut.is_some()))
    }

    // ---- healing ----

    /// Brings every drive's copy of an object up to the version a quorum agrees on.
    /// `deep` also reads and verifies every shard. Returns whether anything was repaired.
    pub async fn heal_object(self: &Arc<Self>, bucket: &str, key: &str, deep: bool) -> StoreResult<bool> {
        let path = path::object_path(key).map_err(key_error)?;
        let _guard = self.locks.write(&Self::lock_name(bucket, key)).await?;
        let metas = self.read_metas(bucket, &path).await;
        let resolved = match self.resolve_any(&metas) {
            Ok(resolved) if resolved.version.kind == VersionKind::DeleteMarker => {
                return self.purge_deleted(bucket, &path, metas).await;
            }
            Ok(resolved) => resolved,
            // Tombstones alone, below quorum: a purge that stopped half-way; finish it.
            Err(StoreError::NoSuchKey) => return self.purge_deleted(bucket, &path, metas).await,
            // Copies below quorum with no tombstone are a loss (or a write cut short by a
            // crash, which looks the same): nothing is removed, the read error reports it.
            Err(e) => return Err(e),
        };
        let set = self.clone();
        let bucket_owned = bucket.to_string();
        let path_owned = path.clone();
        let plan =
            blocking(move || set.rebuild_shards(&bucket_owned, &path_owned, &resolved, deep).map(|t| (t, resolved)))
                .await;
        let (targets, resolved) = plan?;
        if targets.is_empty() {
            return Ok(false);
        }
        let layout = ShardLayout::of_key(key, self.drives.len());
        let data_dir = resolved.version.data_dir.map(Uuid::from_bytes);
        let mut healed_any = false;
        for (position, inline) in targets {
            let drive = self.drives[position].clone();
            let mut version = resolved.version.clone();
            version.erasure.shard_index = layout.shard_at(position) as u8;
            version.inline_data = inline;
            let obsolete: Vec<Uuid> =
                resolved.data_dirs[position].iter().copied().filter(|d| Some(*d) != data_dir).collect();
            let bucket = bucket.to_string();
            let path = path.clone();
            let result = blocking(move || {
                let meta = ObjectMeta { versions: vec![version] };
                let staged = data_dir.filter(|id| drive.has_staging(*id));
                if let Some(id) = staged {
                    // Replace whatever partial data directory the drive had.
                    drive.remove_data_dirs(&bucket, &path, &[id]);
                }
                drive.commit_object(&bucket, &path, &meta.encode(), staged)?;
                drive.remove_data_dirs(&bucket, &path, &obsolete);
                Ok::<(), io::Error>(())
            })
            .await;
            if result.is_ok() {
                healed_any = true;
            }
        }
        if let Some(id) = data_dir {
            self.remove_staging(id).await;
        }
        if healed_any {
            self.metrics.healed_objects.inc();
        }
        Ok(healed_any)
    }

    /// Finds the drives that need a new copy and writes their shards into staging.
    /// Returns (drive position, inline bytes for inline objects).
    fn rebuild_shards(
        &self,
        bucket: &str,
        path: &ObjectPath,
        resolved: &Resolved,
        deep: bool,
    ) -> StoreResult<Vec<(usize, Option<Vec<u8>>)>> {
        let count = self.drives.len();
        let mut targets: Vec<usize> =
            (0..count).filter(|&p| resolved.per_drive[p].is_none() && self.drives[p].is_online()).collect();
        let version = &resolved.version;
        let inline = version.data_dir.is_none();
        let mut reader = ShardReader::new(self, bucket, path, resolved);
        if deep {
            // Verify every shard block of every part; a drive with damage is rewritten.
            for part in &version.parts {
                let blocks = part.size.div_ceil(BLOCK_SIZE_BYTES as u64);
                for block_index in 0..blocks {
                    let block_len =
                        (part.size - block_index * BLOCK_SIZE_BYTES as u64).min(BLOCK_SIZE_BYTES as u64) as usize;
                    for shard_index in 0..count {
                        reader.read_shard(part, block_index, block_len, shard_index);
                    }
                }
            }
            for position in reader.damaged_positions() {
                if !targets.contains(&position) && self.drives[position].is_online() {
                    targets.push(position);
                }
            }
        }
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let layout = resolved.layout();
        let data_dir = version.data_dir.map(Uuid::from_bytes);
        let mut outputs: Vec<(usize, Vec<u8>)> = Vec::new();
        for &position in &targets {
            if let Some(id) = data_dir {
                self.drives[position].remove_staging(id);
            }
            outputs.push((position, Vec::new()));
        }
        for part in &version.parts {
            let mut files: Vec<Option<Box<dyn ShardFile>>> = Vec::new();
            if let Some(id) = data_dir {
                for &(position, _) in &outputs {
                    files.push(Some(self.drives[position].create_shard_file(id, &format!("part.{}", part.number))?));
                }
            }
            let blocks = part.size.div_ceil(BLOCK_SIZE_BYTES as u64);
            for block_index in 0..blocks {
                let block_len =
                    (part.size - block_index * BLOCK_SIZE_BYTES as u64).min(BLOCK_SIZE_BYTES as u64) as usize;
                let mut shards: Vec<Option<Vec<u8>>> = (0..count)
                    .map(|shard_index| {
                        let position = layout.position_of(shard_index);
                        if targets.contains(&position) {
                            None
                        } else {
                            reader.read_shard(part, block_index, block_len, shard_index)
                        }
                    })
                    .collect();
                self.erasure
                    .reconstruct_all(&mut shards, block_len)
                    .map_err(|e| StoreError::Unrecoverable(e.to_string()))?;
                for (output_index, (position, inline_bytes)) in outputs.iter_mut().enumerate() {
                    let shard_index = layout.shard_at(*position);
                    let shard = shards[shard_index].as_ref().expect("reconstructed");
                    let checksum = shard_checksum(shard).to_le_bytes();
                    if inline {
                        inline_bytes.extend_from_slice(&checksum);
                        inline_bytes.extend_from_slice(shard);
                    } else if let Some(file) = files[output_index].as_mut() {
                        file.write_all(&checksum)?;
                        file.write_all(shard)?;
                    }
                }
            }
            for file in files.into_iter().flatten() {
                file.sync()?;
            }
        }
        Ok(outputs.into_iter().map(|(position, bytes)| (position, inline.then_some(bytes))).collect())
    }
}

/// Calls `f` on each drive from a blocking thread, returning the results in drive order.
/// When some drive is remote (each call a network round trip), the calls run at once on
/// the blocking pool; when all are local (a system call each), one after the other.
fn on_drives<T: Send + 'static>(
    drives: &[Arc<dyn Drive>],
    f: impl Fn(&dyn Drive) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let remote = drives.iter().any(|d| !d.is_local());
    let runtime = tokio::runtime::Handle::try_current();
    match runtime {
        Ok(runtime) if remote => {
            let f = Arc::new(f);
            let calls = drives.iter().map(|drive| {
                let (drive, f) = (drive.clone(), f.clone());
                tokio::task::spawn_blocking(move || f(drive.as_ref()))
            });
            runtime
                .block_on(futures::future::join_all(calls))
                .into_iter()
                .map(|result| result.expect("drive call panicked"))
                .collect()
        }
        _ => drives.iter().map(|drive| f(drive.as_ref())).collect(),
    }
}

fn read_drive_meta(drive: &dyn Drive, bucket: &str, path: &ObjectPath) -> DriveMeta {
    if !drive.is_online() {
        return DriveMeta::Failed;
    }
    match drive.read_object_meta(bucket, path) {
        Ok(None) => DriveMeta::Missing,
        Ok(Some(bytes)) => match ObjectMeta::decode(&bytes) {
            Ok(meta) => DriveMeta::Found(meta),
            // A corrupt metadata file counts as missing: healing rewrites it.
            Err(_) => DriveMeta::Missing,
        },
        Err(_) => DriveMeta::Failed,
    }
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

pub(super) fn key_error(error: path::KeyError) -> StoreError {
    match error {
        path::KeyError::TooLong | path::KeyError::SegmentTooLong => StoreError::KeyTooLong,
        other => StoreError::InvalidObjectName(other.to_string()),
    }
}

fn verify_digests(written: &WrittenPart, options: &mut PutOptions) -> StoreResult<()> {
    if let Some(expected) = options.expected_md5
        && expected != written.md5
    {
        return Err(StoreError::BadDigest);
    }
    if let Some(verify) = options.verify_checksums.take() {
        verify(&written.checksums)?;
    }
    Ok(())
}

fn tokio_stream_from(
    mut receiver: mpsc::Receiver<io::Result<Bytes>>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static {
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
    pub saw_damage: bool,
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

    fn damaged_positions(&self) -> Vec<usize> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(index, _)| self.damaged[*index])
            .filter_map(|(_, s)| s.as_ref().map(ShardSource::position))
            .collect()
    }

    /// One verified shard block, or `None` (and the shard marked damaged).
    fn read_shard(
        &mut self,
        part: &PartInfo,
        block_index: u64,
        block_len: usize,
        shard_index: usize,
    ) -> Option<Vec<u8>> {
        if self.damaged[shard_index] {
            return None;
        }
        let full_len = self.erasure.shard_len(BLOCK_SIZE_BYTES) + SHARD_CHECKSUM_BYTES;
        let shard_len = self.erasure.shard_len(block_len);
        let offset = block_index * full_len as u64;
        let read = match self.sources[shard_index].as_ref()? {
            ShardSource::Inline { bytes, .. } => {
                let start = offset as usize;
                bytes.get(start..start + SHARD_CHECKSUM_BYTES + shard_len).map(<[u8]>::to_vec)
            }
            ShardSource::Files { drive, data_dir, .. } => drive
                .read_shard(&self.bucket, &self.path, *data_dir, part.number, offset, SHARD_CHECKSUM_BYTES + shard_len)
                .ok(),
        };
        let verified = read.and_then(|mut bytes| {
            let stored = u64::from_le_bytes(bytes[..SHARD_CHECKSUM_BYTES].try_into().expect("8 bytes"));
            let shard = bytes.split_off(SHARD_CHECKSUM_BYTES);
            (shard_checksum(&shard) == stored).then_some(shard)
        });
        if verified.is_none() {
            self.damaged[shard_index] = true;
            self.saw_damage = true;
        }
        verified
    }

    /// One block of object bytes: data shards first, parity only as needed.
    pub(super) fn read_block(&mut self, part: &PartInfo, block_index: u64, block_len: usize) -> io::Result<Vec<u8>> {
        let count = self.erasure.total_shards();
        let mut shards: Vec<Option<Vec<u8>>> = (0..count).map(|_| None).collect();
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
        self.erasure.decode_block(&mut shards, block_len).map_err(|e| {
            io::Error::other(format!("object data unreadable: {e} (more than parity drives lost or corrupt)"))
        })
    }
}

/// Depth-first walk of the union of a bucket's directory trees on all drives, in key order.
struct Walker<'a> {
    set: &'a Arc<ErasureSet>,
    bucket: &'a str,
    prefix: &'a str,
    delimiter: Option<&'a str>,
    marker: &'a str,
    limit: usize,
    out: Vec<ListEntry>,
    /// The healer wants every key present anywhere, resolvable or not.
    include_unresolved: bool,
}

enum Item {
    Object(String, ObjectPath),
    Subtree(String, Vec<String>),
}

impl Walker<'_> {
    fn full(&self) -> bool {
        self.out.len() >= self.limit
    }

    fn walk_dir(&mut self, segments: &[String], child_prefix: &str, partial: Option<&str>) -> StoreResult<()> {
        let relative = path::segments_dir(segments);
        let mut names: std::collections::BTreeMap<String, bool> = std::collections::BTreeMap::new();
        let mut online = 0;
        let drives: Vec<Arc<dyn Drive>> = self.set.drives.iter().filter(|d| d.is_online()).cloned().collect();
        let (bucket, dir) = (self.bucket.to_string(), relative.clone());
        let listings = on_drives(&drives, move |drive| drive.list_dir(&bucket, &dir));
        for (drive, listing) in drives.iter().zip(listings) {
            match listing {
                Ok(entries) => {
                    online += 1;
                    for (name, is_dir) in entries {
                        *names.entry(name).or_default() |= is_dir;
                    }
                }
                // One failing drive must not fail the listing; quorum is checked per key.
                Err(e) => tracing::warn!(drive = %drive.name(), error = %e, "listing skipped a drive"),
            }
        }
        if online == 0 {
            return Err(StoreError::InsufficientQuorum {
                operation: "list",
                needed: self.set.erasure.read_quorum(),
                available: 0,
            });
        }
        let mut items: Vec<Item> = Vec::new();
        let partial_filter = partial.unwrap_or("");
        if !segments.is_empty() && names.contains_key(DIR_OBJECT_META_FILE) && partial_filter.is_empty() {
            // The object named like this directory plus "/".
            let key = child_prefix.to_string();
            let path = ObjectPath { dir: relative.clone(), meta_file: DIR_OBJECT_META_FILE };
            items.push(Item::Object(key, path));
        }
        let mut children: Vec<Item> = Vec::new();
        for (name, is_dir) in &names {
            if !is_dir {
                continue;
            }
            let Some(segment) = path::decode_segment(name) else {
                continue;
            };
            if !segment.starts_with(partial_filter) {
                continue;
            }
            let key = format!("{child_prefix}{segment}");
            let mut child_segments = segments.to_vec();
            child_segments.push(segment);
            let path = ObjectPath { dir: path::segments_dir(&child_segments), meta_file: OBJECT_META_FILE };
            if !key.is_empty() && !key.ends_with('/') {
                children.push(Item::Object(key.clone(), path));
            }
            children.push(Item::Subtree(format!("{key}/"), child_segments));
        }
        children.sort_by(|a, b| item_key(a).as_bytes().cmp(item_key(b).as_bytes()));
        items.extend(children);
        for item in items {
            if self.full() {
                return Ok(());
            }
            match item {
                Item::Object(key, path) => {
                    if key.as_str() <= self.marker {
                        continue;
                    }
                    if let Some(common) = self.common_prefix(&key) {
                        self.push_prefix(common);
                        continue;
                    }
                    self.visit_object(key, path)?;
                }
                Item::Subtree(subtree, child_segments) => {
                    if subtree.as_str() <= self.marker && !self.marker.starts_with(subtree.as_str()) {
                        continue;
                    }
                    if self.delimiter == Some("/")
                        && let Some(common) = self.common_prefix(&subtree)
                    {
                        // Every object is a directory; only one holding more objects is a prefix.
                        if self.has_children(&child_segments)? {
                            self.push_prefix(common);
                        }
                        continue;
                    }
                    self.walk_dir(&child_segments, &subtree, None)?;
                }
            }
        }
        Ok(())
    }

    /// Whether a key directory holds anything but its own object: a "dir/" object or a
    /// deeper key.
    fn has_children(&self, segments: &[String]) -> StoreResult<bool> {
        let relative = path::segments_dir(segments);
        for drive in self.set.drives.iter().filter(|d| d.is_online()) {
            for (name, is_dir) in drive.list_dir(self.bucket, &relative)? {
                if name == DIR_OBJECT_META_FILE || (is_dir && path::decode_segment(&name).is_some()) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn common_prefix(&self, key: &str) -> Option<String> {
        let delimiter = self.delimiter.filter(|d| !d.is_empty())?;
        let rest = key.strip_prefix(self.prefix)?;
        let index = rest.find(delimiter)?;
        Some(format!("{}{}", self.prefix, &rest[..index + delimiter.len()]))
    }

    fn push_prefix(&mut self, common: String) {
        if common.as_str() <= self.marker {
            return;
        }
        if let Some(ListEntry::Prefix(last)) = self.out.last()
            && *last == common
        {
            return;
        }
        self.out.push(ListEntry::Prefix(common));
    }

    fn visit_object(&mut self, key: String, path: ObjectPath) -> StoreResult<()> {
        if !key.starts_with(self.prefix) {
            return Ok(());
        }
        let metas = self.set.read_metas_blocking(self.bucket, &path);
        match self.set.resolve(&metas) {
            Ok(resolved) => {
                self.out.push(ListEntry::Object(ObjectInfo::from_version(self.bucket, &key, &resolved.version)));
                if !resolved.is_complete() {
                    self.set.queue_heal(self.bucket, &key, false);
                }
            }
            Err(_) if self.include_unresolved => {
                if metas.iter().any(|m| matches!(m, DriveMeta::Found(_))) {
                    self.out.push(ListEntry::Object(ObjectInfo::placeholder(self.bucket, &key)));
                }
            }
            Err(StoreError::NoSuchKey) => {}
            // A key without a readable quorum (a write in flight, drives away) is left out
            // of this page rather than failing the whole listing.
            Err(e) => tracing::warn!(bucket = self.bucket, key, error = %e, "listing skipped a key"),
        }
        Ok(())
    }
}

fn item_key(item: &Item) -> &str {
    match item {
        Item::Object(key, _) => key,
        Item::Subtree(key, _) => key,
    }
}

#[cfg(test)]
mod tests {
    use crate::error::StoreError;
    use crate::storage::testing::{data, open_two_sets, put, read};

    #[tokio::test]
    async fn a_header_change_keeps_the_data_and_outvotes_a_drive_that_missed_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();
        let tag = |headers: &mut Vec<(String, String)>| {
            headers.push(("x-amz-tagging".to_string(), "team=storage".to_string()));
            Ok(())
        };
        // Inline and in a data directory (the one the new metadata still names must stay).
        for (key, len) in [("small", 1000), ("large", 3 * 1024 * 1024 + 5)] {
            let bytes = data(len, len as u64);
            put(&store, "b", key, bytes.clone()).await;
            let before = store.head_object("b", key).await.unwrap();
            let set = store.set_for("b", key);
            let missed = set.drives()[3].clone();
            missed.set_online(false);
            let after = store.update_object_headers("b", key, &tag).await.unwrap();
            missed.set_online(true);
            assert_eq!((after.etag.as_str(), after.size), (before.etag.as_str(), before.size), "{key}");
            assert_eq!(after.modified_ns, before.modified_ns + 1, "{key}: Last-Modified kept to the second");
            let retired: Vec<_> = (0..20)
                .filter_map(|d| std::fs::read_dir(dir.path().join(format!("d{d}/.buckets.sys/trash"))).ok())
                .flat_map(|entries| entries.flatten().map(|e| e.path()))
                .collect();
            assert!(retired.is_empty(), "{key}: the data the object still uses was retired: {retired:?}");

            // The drive that missed the change still holds the old headers: outvoted.
            let seen = store.head_object("b", key).await.unwrap();
            assert!(seen.headers.iter().any(|(k, v)| k == "x-amz-tagging" && v == "team=storage"), "{key}");
            assert_eq!(read(&store, "b", key).await.unwrap(), bytes, "{key}");

            // Healed, the drive serves the new version: reads that need it still succeed
            // with parity-many other drives gone.
            assert!(set.heal_object("b", key, false).await.unwrap(), "{key}: the stale drive is healed");
            let parity = set.erasure().parity_shards;
            let others: Vec<_> =
                set.drives().iter().filter(|d| !std::sync::Arc::ptr_eq(d, &missed)).take(parity).collect();
            others.iter().for_each(|d| d.set_online(false));
            let seen = store.head_object("b", key).await.unwrap();
            assert!(seen.headers.iter().any(|(k, _)| k == "x-amz-tagging"), "{key}");
            assert_eq!(read(&store, "b", key).await.unwrap(), bytes, "{key}: data intact after the change and heal");
            others.iter().for_each(|d| d.set_online(true));
        }
        assert!(matches!(store.update_object_headers("b", "missing", &tag).await, Err(StoreError::NoSuchKey)));
    }
}
