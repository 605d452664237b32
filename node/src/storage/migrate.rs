//! Moving one key between sets: the step the migration engine repeats. A key moves with
//! every version it has (objects and delete markers) as one unit.
//!
//! The versions' bytes are copied without holding the key's lock (a large object takes a
//! while and user writes of that key must not wait for it). Then, under the key's write
//! lock — one lock for the key in every set — the move checks that the source still holds
//! exactly the versions it copied, commits all of them in the target at once (with their
//! ids and times; each target drive merges them into its own file, without a read round
//! first, replacing the entries a move cut short left there), fixes the registry and
//! deletes them from the source. A user write or delete that raced with the copy
//! therefore wins: the copy is discarded, never committed over the newer write and never
//! left to resurrect a deleted version (the lesson of the earlier C version).
//!
//! Every crash point leaves the key whole in one set: before the commit, only the source
//! has it (staged shards on the target are unreferenced and removed with the drive's
//! tmp); after, both sets hold the same versions, readers take either, and the next pass
//! copies them over once more and finishes with the source.
//!
//! The migration moves keys in batches (`move_objects`) that share their durability: every
//! key's data is staged without fsyncs, each target drive is synced once, the keys are
//! committed (again without fsyncs, each under its lock, which it keeps), each target drive
//! is synced once more, and only then are the source copies deleted (durably) and the
//! locks released. A power loss before a sync therefore loses only writes the source still
//! backs; a key is never deleted from its source before its target copy is on disk. Two
//! syncs per drive and batch replace the 3-5 fsyncs per drive and move a commit makes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::drive::{Durability, ShardCopy};
use super::layout::ShardLayout;
use super::locks::{ReadGuard, WriteGuard};
use super::set::{CommitVersion, DriveCopy, DriveMeta, ErasureSet, KeyState, Order, Resolved, Staged};
use super::{BodyStream, PutOptions, Store, path, registry};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{ObjectVersion, VersionIdentity, VersionKind};
use crate::format::version_id::VersionId;

/// How many keys of a batch commit, or leave their source, at once while no S3 request
/// is in flight: these steps are small metadata calls (a lock, a read, a commit, a
/// delete per drive) that the calls to one peer share a request for when they go
/// together. With users busy they go as many at a time as the copies.
const METADATA_WORKERS: usize = 64;

/// What moving one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// The version was copied to the target and the source copy deleted.
    Copied { bytes: u64 },
    /// The source no longer holds the key, or holds another version than the one being
    /// copied (a user wrote or deleted it meanwhile): nothing was changed.
    Changed,
    /// Not copied: the migration was paused while its batch ran (`Rests`). The key is
    /// where it was; the next round looks at it again.
    Deferred,
}

/// Crash-point hook for tests: `BUCKETS_FAILPOINT=<point>:<n>` ends the process at once
/// (`abort`, no cleanup, as `kill -9` would) the n-th time a move reaches `<point>`:
/// `move-after-copy` (staged in the target, nothing committed), `move-after-commit`
/// (committed in the target, registry and source untouched) or `move-after-registry`
/// (registry updated, source copy not yet deleted). Unset, it costs one branch.
fn failpoint(point: &str) {
    static CONFIG: std::sync::OnceLock<Option<(String, u64)>> = std::sync::OnceLock::new();
    static HITS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let config = CONFIG.get_or_init(|| {
        let value = std::env::var("BUCKETS_FAILPOINT").ok()?;
        let (name, count) = value.split_once(':').unwrap_or((value.as_str(), "1"));
        Some((name.to_string(), count.parse().unwrap_or(1)))
    });
    if let Some((name, count)) = config
        && name == point
        && HITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == *count
    {
        eprintln!("failpoint {point} reached: aborting");
        std::process::abort();
    }
}

/// The identities of a key's versions, to tell whether the key changed.
fn identities(state: &KeyState) -> Vec<VersionIdentity<'_>> {
    state.versions.iter().map(|v| v.version.identity()).collect()
}

/// Whether `state` holds versions to move; an error when one of them is held by too few
/// drives (or too few answered): it must not be left behind.
fn has_versions_to_move(state: &KeyState) -> StoreResult<bool> {
    match state.latest() {
        Ok(_) | Err(StoreError::NoSuchKey) => Ok(!state.versions.is_empty()),
        Err(e) => Err(e),
    }
}

/// Whether an object version of `state` keeps its bytes in the metadata (which a
/// listing leaves out).
fn has_inline_data(state: &KeyState) -> bool {
    state.versions.iter().any(|v| v.version.kind == VersionKind::Object && v.version.data_dir.is_none())
}

/// One key for `Store::move_objects` to move.
pub(in crate::storage) struct MoveRequest {
    pub key: String,
    /// The set the ring places the key in.
    pub target: Arc<ErasureSet>,
    /// The source drives' files of the key as a listing just read them (inline data left
    /// out); used unless a version is stored inline, else they are read here.
    pub walked: Option<Vec<DriveMeta>>,
}

/// A key whose versions are staged in its target, not yet durable.
struct CopiedKey {
    key: String,
    target: Arc<ErasureSet>,
    state: KeyState,
    copies: Vec<CommitVersion>,
}

/// A key committed in its target, under its lock (held until its source copy is gone).
struct CommittedKey {
    key: String,
    target: Arc<ErasureSet>,
    state: KeyState,
    /// The source drives' files, read under the lock.
    metas: Vec<DriveMeta>,
    bytes: u64,
    _guard: WriteGuard,
}

/// How long a batch's commit waits for a key's lock while it holds other keys' locks (a
/// download holds a read lock for its whole response, and two batches could wait on each
/// other): past it the key is left for the next pass.
const BATCH_LOCK_WAIT: Duration = Duration::from_secs(2);

/// The keys of a batch that go on to its next stage; the others' results (`Moved`: the
/// key changed, is left for the next pass, or waits for a resume) join `results`.
fn next_stage<T>(
    stage: Vec<(String, StoreResult<Result<T, Moved>>)>,
    results: &mut Vec<(String, StoreResult<Moved>)>,
) -> Vec<T> {
    let mut next = Vec::new();
    for (key, result) in stage {
        match result {
            Ok(Ok(going_on)) => next.push(going_on),
            Ok(Err(stopped)) => results.push((key, Ok(stopped))),
            Err(e) => results.push((key, Err(e))),
        }
    }
    next
}

/// How often a batch resting under user load looks whether the migration was paused or
/// the users have gone.
const PAUSE_LOOK_EVERY: Duration = Duration::from_millis(250);

/// The rests of one batch's workers and a pause as they see it. Users first: while S3
/// requests are in flight here, a worker rests `USER_BUSY_REST_FACTOR` times as long as
/// its last step took, so migration keeps a small share of a busy node, and a batch takes
/// forty times as long as its moves (minutes). Before each key and while resting it
/// looks at the migration control (once per `PAUSE_LOOK_EVERY` for all its workers): once
/// paused it copies no more keys and rests no more, so a pause holds within a key's move.
/// A rest also ends once the users' requests are done.
#[derive(Default)]
struct Rests {
    looked: tokio::sync::Mutex<Option<Instant>>,
    paused: std::sync::atomic::AtomicBool,
}

impl Rests {
    fn paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Rests after a step that took `spent`, while users are busy and no pause is seen.
    async fn rest(&self, store: &Store, spent: Duration) {
        let until = Instant::now() + spent * super::migration::USER_BUSY_REST_FACTOR;
        while store.users_busy() && !self.paused() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(PAUSE_LOOK_EVERY)).await;
            self.look(store).await;
        }
    }

    async fn look(&self, store: &Store) {
        let mut looked = self.looked.lock().await;
        if looked.is_none_or(|at| at.elapsed() >= PAUSE_LOOK_EVERY) {
            *looked = Some(Instant::now());
            if store.migration_control().await.paused {
                self.paused.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Commits a key's copied versions in `target` (each drive merges them into its file,
/// replacing the entries a move cut short left there); answers the bytes moved.
async fn commit_copies(
    target: &ErasureSet,
    bucket: &str,
    key: &str,
    copies: Vec<CommitVersion>,
    durability: Durability,
) -> StoreResult<u64> {
    let bytes = copies.iter().map(|c| c.version.size).sum();
    let object_path = path::object_path(key).map_err(super::set::key_error)?;
    target.commit_merging(bucket, key, &object_path, copies, Order::Keep, durability).await?;
    Ok(bytes)
}

/// Runs `stage` on each of `items`, `workers` at a time, each answer with its key.
async fn each_key<I, T, F: Future<Output = (String, T)>>(
    items: Vec<I>,
    workers: usize,
    stage: impl FnMut(I) -> F,
) -> Vec<(String, T)> {
    futures::stream::iter(items.into_iter().map(stage)).buffer_unordered(workers).collect().await
}

/// A version's parts as (number, size, ETag); a single-part object is its part 1.
fn parts_of(version: &ObjectVersion) -> Vec<(u32, u64, &str)> {
    if version.parts.is_empty() {
        return vec![(1, version.size, version.etag.as_str())];
    }
    version.parts.iter().map(|p| (p.number, p.size, p.etag.as_str())).collect()
}

/// The source's read lock on the key for a copy of its files, unless the caller holds
/// the key's write lock (`locked`).
async fn read_guard(source: &ErasureSet, (bucket, key): (&str, &str), locked: bool) -> Option<ReadGuard> {
    match locked {
        true => None,
        false => Some(source.locks.read(&ErasureSet::lock_name(bucket, key)).await),
    }
}

/// The distinct sets among `sets`, in first-seen order.
fn distinct_sets<'a>(sets: impl Iterator<Item = &'a Arc<ErasureSet>>) -> Vec<Arc<ErasureSet>> {
    let mut distinct: Vec<Arc<ErasureSet>> = Vec::new();
    for set in sets {
        if !distinct.iter().any(|known| Arc::ptr_eq(known, set)) {
            distinct.push(set.clone());
        }
    }
    distinct
}

impl Store {
    /// Moves every version of `bucket/key` (objects and delete markers) from `source` to
    /// `target` as one unit: `move_objects` of one key.
    #[cfg(test)]
    pub(in crate::storage) async fn move_object(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        walked: Option<Vec<DriveMeta>>,
    ) -> StoreResult<Moved> {
        let request = MoveRequest { key: key.to_string(), target: target.clone(), walked };
        let mut results = self.move_objects(bucket, source, vec![request], 1, None).await;
        results.pop().map_or(Ok(Moved::Changed), |(_, result)| result)
    }

    /// Moves the keys of `requests` out of `source`, each with all its versions as one
    /// unit, `workers` keys copied at a time, as one batch for durability (module docs):
    /// each key's data is copied without its lock; then, under it, if the source holds
    /// exactly those versions still, all of them are committed in the target at once, and
    /// after the targets' sync the registry is fixed and the source's versions are deleted. A
    /// reader finds the whole key in one set or the other at every point. `copied_all`
    /// hears when every key's data is copied (the next batch may start copying). Paused
    /// meanwhile, the keys not yet copied are `Moved::Deferred`.
    pub(in crate::storage) async fn move_objects(
        &self,
        bucket: &str,
        source: &Arc<ErasureSet>,
        requests: Vec<MoveRequest>,
        workers: usize,
        copied_all: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Vec<(String, StoreResult<Moved>)> {
        let workers = workers.max(1);
        let mut results = Vec::new();
        let rests = &Rests::default();
        let copies = each_key(requests, workers, |MoveRequest { key, target, walked }| async move {
            rests.look(self).await;
            if rests.paused() {
                return (key, Ok(Err(Moved::Deferred)));
            }
            self.yield_to_users().await;
            let started = Instant::now();
            let copied = self.copy_key(bucket, &key, source, target, walked).await;
            rests.rest(self, started.elapsed()).await;
            (key, copied.map(|copied| copied.ok_or(Moved::Changed)))
        })
        .await;
        let mut copied = next_stage(copies, &mut results);
        if let Some(copied_all) = copied_all {
            let _ = copied_all.send(());
        }
        // The staged data on disk before any commit names it: a drive that did not sync
        // holds no copy the commit may count.
        let committing = Instant::now();
        let mut synced = Vec::new();
        for target in distinct_sets(copied.iter().map(|c| &c.target)) {
            let drives = target.sync_drives(None).await;
            for key in copied.iter_mut().filter(|c| Arc::ptr_eq(&c.target, &target)) {
                for version in &mut key.copies {
                    for (copy, _) in version.per_drive.iter_mut().zip(&drives).filter(|(_, synced)| !**synced) {
                        *copy = DriveCopy::Failed;
                    }
                }
                failpoint("move-after-copy");
            }
            synced.push((target, drives));
        }
        let metadata_workers = if self.users_busy() { workers } else { METADATA_WORKERS };
        let commits = each_key(copied, metadata_workers, |copied| async move {
            let copied_key = copied.key.clone();
            let committed = self.commit_copied(bucket, source, copied).await;
            (copied_key, committed.map(|committed| committed.ok_or(Moved::Changed)))
        })
        .await;
        let mut committed = next_stage(commits, &mut results);
        // The commits on disk before any source copy goes. A drive that synced the data
        // but fails now leaves its set's keys of this batch in both sets (locks released,
        // nothing deleted): the next pass finishes them.
        for (target, before) in &synced {
            if !committed.iter().any(|c| Arc::ptr_eq(&c.target, target)) {
                continue;
            }
            let now = target.sync_drives(Some(before)).await;
            if before.iter().zip(&now).any(|(was, is)| *was && !*is) {
                let (failed, kept): (Vec<CommittedKey>, Vec<CommittedKey>) =
                    committed.into_iter().partition(|c| Arc::ptr_eq(&c.target, target));
                committed = kept;
                results.extend(failed.into_iter().map(|c| {
                    let error = StoreError::Unrecoverable("a drive of the target set failed to sync".into());
                    (c.key, Err(error))
                }));
            }
        }
        for _ in &committed {
            failpoint("move-after-commit");
        }
        let retired = each_key(committed, metadata_workers, |committed| async move {
            (committed.key.clone(), self.retire_source(bucket, source, committed).await)
        })
        .await;
        results.extend(retired);
        // The copies rested as they went; the syncs, commits and deletes rest here.
        rests.rest(self, committing.elapsed()).await;
        results
    }

    /// Stages the versions of `key` in `target`, without fsyncs; `None` when the source
    /// holds nothing to move or changed during the copy.
    async fn copy_key(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: Arc<ErasureSet>,
        walked: Option<Vec<DriveMeta>>,
    ) -> StoreResult<Option<CopiedKey>> {
        let state = match walked.map(|metas| source.key_state(&metas)).filter(|state| !has_inline_data(state)) {
            Some(state) => state,
            None => source.read_key(bucket, key).await?.1,
        };
        if !has_versions_to_move(&state)? {
            return Ok(None);
        }
        let copies = self.copy_versions(source, &target, (bucket, key), &state, (false, Durability::Deferred)).await?;
        Ok(copies.map(|copies| CopiedKey { key: key.to_string(), target, state, copies }))
    }

    /// Under the key's lock (kept in the answer): if the source still holds exactly the
    /// versions copied, commits them in the target, without fsyncs. `None` when the key
    /// changed, or its lock was not free within `BATCH_LOCK_WAIT`.
    async fn commit_copied(
        &self,
        bucket: &str,
        source: &Arc<ErasureSet>,
        copied: CopiedKey,
    ) -> StoreResult<Option<CommittedKey>> {
        let CopiedKey { key, target, state, copies } = copied;
        let Ok(guard) = tokio::time::timeout(BATCH_LOCK_WAIT, self.lock_key(bucket, &key)).await else {
            return Ok(None);
        };
        let guard = guard?;
        let (metas, now) = source.read_key(bucket, &key).await?;
        if identities(&now) != identities(&state) {
            return Ok(None);
        }
        let bytes = commit_copies(&target, bucket, &key, copies, Durability::Deferred).await?;
        Ok(Some(CommittedKey { key, target, state, metas, bytes, _guard: guard }))
    }

    /// `move_objects` for a caller that holds the key's lock (a write gathering the
    /// versions of its key into the ring's set): the copies are made under the lock, and
    /// each step is durable on its own.
    pub(crate) async fn move_key_locked(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
    ) -> StoreResult<Moved> {
        let (metas, state) = source.read_key(bucket, key).await?;
        if !has_versions_to_move(&state)? {
            return Ok(Moved::Changed);
        }
        let copied = self.copy_versions(source, target, (bucket, key), &state, (true, Durability::Synced)).await?;
        let Some(copies) = copied else {
            return Ok(Moved::Changed);
        };
        let bytes = commit_copies(target, bucket, key, copies, Durability::Synced).await?;
        failpoint("move-after-commit");
        self.retire_from(bucket, key, source, target, (&state, metas)).await?;
        Ok(Moved::Copied { bytes })
    }

    /// After a key's durable commit in its target: fixes the registry and deletes the
    /// versions from the source; the key's lock goes with `committed`.
    async fn retire_source(
        &self,
        bucket: &str,
        source: &Arc<ErasureSet>,
        committed: CommittedKey,
    ) -> StoreResult<Moved> {
        let CommittedKey { key, target, state, metas, bytes, _guard } = committed;
        self.retire_from(bucket, &key, source, &target, (&state, metas)).await?;
        Ok(Moved::Copied { bytes })
    }

    /// Fixes the registry for a key now in `target` and deletes `state`'s versions from
    /// `source`, whose files the caller read under the key's lock (`source_metas`).
    async fn retire_from(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        (state, source_metas): (&KeyState, Vec<DriveMeta>),
    ) -> StoreResult<()> {
        // While lookups know the two sets a key can be in, they read no records.
        if self.place_of(bucket, key).candidates().is_none() {
            self.note_location(target, bucket, key).await;
        }
        failpoint("move-after-registry");
        // All at once: a reader of the source sees the key whole or not at all.
        let ids: Vec<VersionId> = state.versions.iter().map(Resolved::id).collect();
        source.delete_versions_over(bucket, key, &ids, source_metas).await?;
        Ok(())
    }

    /// Copies the data of every version of `state` into staging on `target` (versions
    /// the target holds already are only there after a move cut short: they are copied
    /// again, since checking first would cost every move a read round). `None`
    /// when the source changed meanwhile. `locked`: the caller holds the key's write
    /// lock (the reads take none).
    async fn copy_versions(
        &self,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        (bucket, key): (&str, &str),
        state: &KeyState,
        (locked, durability): (bool, Durability),
    ) -> StoreResult<Option<Vec<CommitVersion>>> {
        let layout = ShardLayout::of_key(key, target.drives().len());
        let mut copies = Vec::new();
        for resolved in &state.versions {
            let version = &resolved.version;
            let mut moved = version.clone();
            moved.erasure = target.layout(0);
            moved.inline_data = None;
            // Whatever was staged goes with `staged` on every way out but the commit.
            let staged = Staged::new(target);
            let (per_drive, staged) = match version.kind {
                VersionKind::Object => {
                    // The shard files as they are when they can be; else through this node.
                    let pushed = self
                        .push_shard_files(source, target, (bucket, key), resolved, &staged, (locked, durability))
                        .await;
                    let (copy, staged) = match pushed {
                        Some(per_drive) => (Some(per_drive), staged),
                        None => {
                            staged.remove().await;
                            let staged = Staged::new(target);
                            let copy = (locked, durability);
                            (self.copy_parts(source, target, (bucket, key), resolved, &staged, copy).await?, staged)
                        }
                    };
                    let Some(copied) = copy else {
                        return Ok(None);
                    };
                    let inline = copied.iter().flatten().any(|bytes| !bytes.is_empty()) || version.size == 0;
                    moved.data_dir = (!inline).then_some(*staged.id().as_bytes());
                    (
                        copied.into_iter().map(|d| DriveCopy::of_written(d, inline)).collect(),
                        staged.unless_inline(inline),
                    )
                }
                // A delete marker has no data: its entry is all there is to copy.
                _ => {
                    staged.release();
                    (vec![DriveCopy::Staged; target.drives().len()], None)
                }
            };
            copies.push(CommitVersion { version: moved, layout, per_drive, staged });
        }
        Ok(Some(copies))
    }

    /// After a move into `target`: the ring's set needs no record; another set does.
    async fn note_location(&self, target: &Arc<ErasureSet>, bucket: &str, key: &str) {
        let home = self.set_for(bucket, key).clone();
        let result = if Arc::ptr_eq(&home, target) {
            self.delete_record(&home, bucket, key).await
        } else {
            let location = registry::Location { set: self.id_of(target), generation: self.topology().generation };
            self.write_record(&home, bucket, key, location).await
        };
        if let Err(e) = result {
            tracing::warn!(bucket, key, error = %e, "could not update the registry after a move");
        }
    }

    /// Copies the shard files of `resolved` (a version the caller read from `source`)
    /// into staging on `target` as they are: each target drive gets its shard from the
    /// source drive holding the same shard, sent by that drive's node straight to the
    /// target drive's (no decode, MD5 or re-encode here; every block is checked against
    /// its checksum before it goes). Returns per target drive an empty vector (a shard
    /// file), as `copy_parts` does; `None` when that cannot be done whole (another
    /// erasure code, a shard missing, unreadable or corrupt, a drive away, a peer of an
    /// earlier version): the caller then copies the object through this node, which
    /// reconstructs what is missing and checks the MD5.
    async fn push_shard_files(
        &self,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        (bucket, key): (&str, &str),
        resolved: &Resolved,
        staged: &Staged,
        (locked, durability): (bool, Durability),
    ) -> Option<Vec<Option<Vec<u8>>>> {
        let version = &resolved.version;
        let code = target.layout(0);
        let same_code = (version.erasure.data_shards, version.erasure.parity_shards, version.erasure.block_size)
            == (code.data_shards, code.parity_shards, code.block_size);
        if !same_code || version.size == 0 || version.data_dir.is_none() {
            return None;
        }
        let path = path::object_path(key).ok()?;
        let parts: Vec<(u32, u64)> = parts_of(version).into_iter().map(|(number, size, _)| (number, size)).collect();
        // Per shard: the source drive holding it, and its data directory there.
        let mut holders: Vec<Option<(usize, [u8; 16])>> = vec![None; source.drives().len()];
        for (position, copy) in resolved.per_drive.iter().enumerate() {
            if let Some(copy) = copy
                && copy.inline_data.is_none()
                && let Some(data_dir) = copy.data_dir
                && let Some(slot) = holders.get_mut(copy.erasure.shard_index as usize)
            {
                slot.get_or_insert((position, data_dir));
            }
        }
        let layout = ShardLayout::of_key(key, target.drives().len());
        let mut pushes = Vec::new();
        for (position, to) in target.drives().iter().enumerate() {
            let (from, data_dir) = (*holders.get(layout.shard_at(position))?)?;
            let from = source.drives()[from].clone();
            if !from.is_online() || !to.is_online() {
                return None;
            }
            let copy = ShardCopy {
                bucket: bucket.to_string(),
                path: path.clone(),
                data_dir: uuid::Uuid::from_bytes(data_dir),
                parts: parts.clone(),
                data_shards: u32::from(code.data_shards),
                staging: staged.id(),
                durability,
            };
            let to = to.clone();
            pushes.push(async move {
                let pushed = match from.push_shards_async(&to, &copy) {
                    Some(call) => call.await,
                    None => {
                        let (from, to, copy) = (from.clone(), to.clone(), copy.clone());
                        super::blocking(move || from.push_shards(&to, &copy)).await
                    }
                };
                // Written there by another node: this one's sync of the drive covers it.
                if pushed.is_ok() && durability == Durability::Deferred {
                    for (number, _) in &copy.parts {
                        to.note_unsynced(copy.staging, &format!("part.{number}"));
                    }
                }
                pushed
            });
        }
        // The source's files stay as read while they are copied (a user's delete waits).
        let _guard = read_guard(source, (bucket, key), locked).await;
        let results = futures::future::join_all(pushes).await;
        if let Some(e) = results.iter().find_map(|r| r.as_ref().err()) {
            tracing::debug!(bucket, key, error = %e, "migration: shard files not copied as they are; copying the object");
            return None;
        }
        Some(vec![Some(Vec::new()); target.drives().len()])
    }

    /// Copies every part of `resolved` (a version the caller read from `source`) into
    /// staging on `target`, checking each part's MD5 against its ETag. Returns per target
    /// drive the inline bytes (or an empty vector for shard files), `None` for a drive
    /// that failed; or `None` overall when the source changed during the copy.
    async fn copy_parts(
        &self,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        (bucket, key): (&str, &str),
        resolved: &Resolved,
        staged: &Staged,
        (locked, durability): (bool, Durability),
    ) -> StoreResult<Option<Vec<Option<Vec<u8>>>>> {
        let version = &resolved.version;
        let layout = ShardLayout::of_key(key, target.drives().len());
        let single = version.parts.len() <= 1;
        let mut per_drive: Vec<Option<Vec<u8>>> = vec![Some(Vec::new()); target.drives().len()];
        let mut offset = 0u64;
        for (number, size, etag) in parts_of(version) {
            // The version read with the key is streamed as is: no second read of its files.
            let guard = read_guard(source, (bucket, key), locked).await;
            let body = match source.stream_version(bucket, key, resolved.clone(), offset, size, guard).await {
                Ok(body) => Box::pin(body) as BodyStream,
                // Replaced or deleted since it was read: the move is looked at again later.
                Err(e) => {
                    let (_, now) = source.read_key(bucket, key).await?;
                    let same = now.version(resolved.id()).is_ok_and(|v| v.version.identity() == version.identity());
                    return if same { Err(e) } else { Ok(None) };
                }
            };
            let options =
                PutOptions { content_length: Some(size), max_size: u64::MAX, durability, ..PutOptions::default() };
            let written = target.write_part(body, single, staged, number, layout, &options).await?;
            if hex::encode(written.md5) != etag.trim_matches('"') && !etag.contains('-') {
                return Err(StoreError::Unrecoverable(format!(
                    "part {number} of {bucket}/{key} read back with another MD5 than its ETag"
                )));
            }
            for (slot, drive) in per_drive.iter_mut().zip(written.per_drive) {
                *slot = match (slot.take(), drive) {
                    (Some(_), Some(bytes)) if single => Some(bytes),
                    (Some(previous), Some(_)) => Some(previous),
                    _ => None,
                };
            }
            offset += size;
        }
        Ok(Some(per_drive))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::topology::TopologyRules;
    use crate::storage::testing::{data, drain_set_one, open_two_sets, put, read};

    /// A rest under user load (forty times a step's nine seconds here) ends once the users'
    /// requests are done, or once the migration is paused; then the batch copies no more.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_rest_under_user_load_ends_when_users_leave_or_at_a_pause() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        let (rests, step) = (Rests::default(), Duration::from_secs(9));
        store.user_requests.store(1, Ordering::Relaxed);
        let leaving = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            store.user_requests.store(0, Ordering::Relaxed);
        };
        let rest = async { tokio::join!(rests.rest(&store, step), leaving) };
        tokio::time::timeout(Duration::from_secs(30), rest).await.expect("the rest goes on after the users left");
        assert!(!rests.paused());
        store.user_requests.store(1, Ordering::Relaxed);
        let pausing = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            store.update_migration_control(|c| c.paused = true).await.unwrap();
        };
        let rest = async { tokio::join!(rests.rest(&store, step), pausing) };
        tokio::time::timeout(Duration::from_secs(30), rest).await.expect("the rest goes on after a pause");
        assert!(rests.paused());
    }

    /// A version's shard files move between sets of the same code as they are, and a
    /// shard that went bad on its drive is never copied: that object is rebuilt through
    /// the node instead, so the target holds every shard sound.
    #[tokio::test(flavor = "multi_thread")]
    async fn shard_files_move_as_they_are_and_a_corrupt_one_is_never_copied() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.ensure_system_buckets().await;
        store.make_bucket("b").await.unwrap();
        let ring = store.topology().ring();
        let keys: Vec<String> = (0..).map(|n| format!("k{n}")).filter(|k| ring.locate("b", k) == 1).take(2).collect();
        let objects: Vec<Vec<u8>> = (0..2).map(|n| data(3 * 1024 * 1024 + 5, n)).collect();
        for (key, bytes) in keys.iter().zip(&objects) {
            put(&store, "b", key, bytes.clone()).await;
        }
        // One byte of one of the second object's shard files goes bad on its drive.
        let shard = walkdir::WalkDir::new(dir.path())
            .into_iter()
            .flatten()
            .map(walkdir::DirEntry::into_path)
            .find(|p| p.ends_with("part.1") && p.components().any(|c| c.as_os_str() == keys[1].as_str()))
            .expect("a shard file of the object");
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes[100] ^= 0x5a;
        std::fs::write(&shard, bytes).unwrap();

        let (source, target) = (store.sets()[1].clone(), store.sets()[0].clone());
        for (key, sound) in [(&keys[0], true), (&keys[1], false)] {
            let (_, state) = source.read_key("b", key).await.unwrap();
            let staged = Staged::new(&target);
            let copy = (false, Durability::Synced);
            let pushed = store.push_shard_files(&source, &target, ("b", key), &state.versions[0], &staged, copy).await;
            assert_eq!(pushed.is_some(), sound, "{key}: copied as it is only when every shard is sound");
            staged.remove().await;
        }
        // Moved as the migration moves them, once the ring places them in set 0.
        drain_set_one(&store).await;
        for (key, bytes) in keys.iter().zip(&objects) {
            let moved = store.move_object("b", key, &source, &target, None).await.unwrap();
            assert_eq!(moved, Moved::Copied { bytes: bytes.len() as u64 }, "{key}");
            // A deep heal of the target finds nothing to mend: no bad shard came along.
            assert!(!target.heal_object("b", key, true).await.unwrap(), "{key}: the target holds a bad shard");
            assert_eq!(&read(&store, "b", key).await.unwrap(), bytes, "{key}");
        }
    }
}
