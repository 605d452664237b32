//! One erasure set: the drives that together hold every object placed on it. Writes reach
//! a write quorum of drives or fail; reads trust the metadata that a read quorum of drives
//! agree on, verify every shard block's checksum, and reconstruct around missing or
//! corrupt shards (queueing the object for healing).
//!
//! Split by concern: `quorum` (which version a read quorum agrees on; pure), `write`
//! (staging, commit, delete), `staging` (the guard that removes staged files), `read`
//! (shard reads and reconstruction), `list`, `heal`. Owns: quorum rules, the commit
//! protocol, shard reads. Must never return bytes that did not pass their checksum, and
//! never acknowledge a write below write quorum.

mod heal;
mod list;
mod quorum;
mod read;
mod staging;
mod write;

pub(in crate::storage) use write::with_entry;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::HealRequest;
use super::drive::Drive;
use super::locks::NamespaceLocks;
use super::path::{self, ObjectPath};
use crate::erasure::{BLOCK_SIZE_BYTES, Erasure};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{ErasureLayout, ObjectMeta, ObjectVersion};
use crate::format::version_id::VersionId;
use crate::metrics::Metrics;

pub use list::Listing;
pub(super) use quorum::DriveMeta;
pub use quorum::{KeyState, Lost, Resolved};
pub use staging::Staged;
pub use write::{Commit, CommitVersion, DriveCopy, Order, PreparedPut};

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

/// Which version of a key an operation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// The newest version, which must be an object.
    Latest,
    /// One version by its id (`VersionId::NULL`: the null version).
    Id(VersionId),
}

pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
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

    /// `Drive::sync_drive` on the drives `which` names (every one when `None`), all at
    /// once: what `Durability::Deferred` writes left in the page cache reaches stable
    /// storage. Per position, whether that drive is synced (an offline drive is not).
    pub(in crate::storage) async fn sync_drives(&self, which: Option<&[bool]>) -> Vec<bool> {
        let syncs = self.drives.iter().enumerate().map(|(position, drive)| {
            let wanted = which.is_none_or(|which| which.get(position) == Some(&true));
            let drive = drive.clone();
            async move {
                if !wanted || !drive.is_online() {
                    return false;
                }
                let name = drive.name();
                match blocking(move || drive.sync_drive()).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(drive = name, error = %e, "a drive failed to sync");
                        false
                    }
                }
            }
        });
        futures::future::join_all(syncs).await
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

    pub(super) async fn read_metas(&self, bucket: &str, path: &ObjectPath) -> Vec<DriveMeta> {
        let reads = self.drives.iter().map(|drive| {
            // What the kernel has cached is read right here; the rest on the blocking pool.
            let cached = cached_drive_meta(drive.as_ref(), bucket, path);
            let drive = drive.clone();
            let bucket = bucket.to_string();
            let path = path.clone();
            async move {
                if let Some(meta) = cached {
                    return meta;
                }
                match drive.read_object_meta_async(&bucket, &path) {
                    Some(read) => drive_meta(read.await),
                    None => blocking(move || read_drive_meta(drive.as_ref(), &bucket, &path)).await,
                }
            }
        });
        futures::future::join_all(reads).await
    }

    /// The same as `read_metas`, from a blocking thread (see `on_drives`).
    pub(super) fn read_metas_blocking(&self, bucket: &str, path: &ObjectPath) -> Vec<DriveMeta> {
        let (bucket, path) = (bucket.to_string(), path.clone());
        on_drives(&self.drives, move |drive| read_drive_meta(drive, &bucket, &path))
    }

    /// What a read quorum of drives agree the key holds.
    pub(in crate::storage) fn key_state(&self, metas: &[DriveMeta]) -> KeyState {
        quorum::resolve(metas, self.erasure.read_quorum())
    }

    /// The version `selector` names (the latest: an object; by id: an object or a
    /// delete marker, which the caller tells apart).
    pub(in crate::storage) fn pick(&self, metas: &[DriveMeta], selector: Selector) -> StoreResult<Resolved> {
        let state = self.key_state(metas);
        match selector {
            Selector::Latest => state.latest_object().cloned(),
            Selector::Id(id) => state.version(id).cloned(),
        }
    }

    /// Reads the key's metadata from every drive and what a quorum agrees on.
    pub(in crate::storage) async fn read_key(
        &self,
        bucket: &str,
        key: &str,
    ) -> StoreResult<(Vec<DriveMeta>, KeyState)> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        let state = self.key_state(&metas);
        Ok((metas, state))
    }

    /// Whether every drive holds every version of the key and nothing waits to be
    /// removed (nothing left for the healer).
    pub(super) async fn is_complete(&self, bucket: &str, key: &str) -> bool {
        let Ok((metas, state)) = self.read_key(bucket, key).await else { return true };
        let agreed: std::collections::BTreeSet<_> = state.versions.iter().map(|v| v.version.identity()).collect();
        let every_drive_agrees = metas.iter().all(|meta| match meta {
            DriveMeta::Found(meta) => {
                meta.versions.iter().map(ObjectVersion::identity).collect::<std::collections::BTreeSet<_>>() == agreed
            }
            DriveMeta::Missing => agreed.is_empty(),
            DriveMeta::Failed => true,
        });
        // Removal records wait for every drive, then go: not done while any is left.
        every_drive_agrees && state.removed.is_empty()
    }

    pub(super) fn layout(&self, shard_index: usize) -> ErasureLayout {
        ErasureLayout {
            data_shards: self.erasure.data_shards as u8,
            parity_shards: self.erasure.parity_shards as u8,
            block_size: BLOCK_SIZE_BYTES as u32,
            shard_index: shard_index as u8,
        }
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
    drive_meta(drive.read_object_meta(bucket, path))
}

/// `read_drive_meta` without blocking, when the drive can answer from the kernel's caches.
fn cached_drive_meta(drive: &dyn Drive, bucket: &str, path: &ObjectPath) -> Option<DriveMeta> {
    if !drive.is_online() {
        return Some(DriveMeta::Failed);
    }
    drive.read_object_meta_cached(bucket, path).map(|read| drive_meta(Ok(read)))
}

fn drive_meta(read: std::io::Result<Option<Vec<u8>>>) -> DriveMeta {
    match read {
        Ok(None) => DriveMeta::Missing,
        Ok(Some(bytes)) => match ObjectMeta::decode(&bytes) {
            Ok(meta) => DriveMeta::Found(meta),
            // A corrupt metadata file counts as missing: healing rewrites it.
            Err(_) => DriveMeta::Missing,
        },
        Err(_) => DriveMeta::Failed,
    }
}

pub(super) fn key_error(error: path::KeyError) -> StoreError {
    match error {
        path::KeyError::TooLong | path::KeyError::SegmentTooLong => StoreError::KeyTooLong,
        other => StoreError::InvalidObjectName(other.to_string()),
    }
}
