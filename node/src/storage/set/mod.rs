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

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use super::HealRequest;
use super::drive::Drive;
use super::locks::NamespaceLocks;
use super::path::{self, ObjectPath};
use crate::erasure::{BLOCK_SIZE_BYTES, Erasure};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{ErasureLayout, ObjectMeta, VersionKind};
use crate::metrics::Metrics;

pub(super) use quorum::DriveMeta;
pub use quorum::Resolved;
pub use staging::Staged;
pub use write::{DriveCopy, PreparedPut};

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
    pub(super) fn resolve_any(&self, metas: &[DriveMeta]) -> StoreResult<Resolved> {
        quorum::resolve(metas, self.erasure.read_quorum())
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

pub(super) fn key_error(error: path::KeyError) -> StoreError {
    match error {
        path::KeyError::TooLong | path::KeyError::SegmentTooLong => StoreError::KeyTooLong,
        other => StoreError::InvalidObjectName(other.to_string()),
    }
}
