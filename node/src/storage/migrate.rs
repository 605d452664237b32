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

use std::sync::Arc;

use super::layout::ShardLayout;
use super::set::{CommitVersion, DriveCopy, DriveMeta, ErasureSet, KeyState, Order, Resolved, Staged};
use super::{BodyStream, PutOptions, Store, path, registry};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{VersionIdentity, VersionKind};
use crate::format::version_id::VersionId;

/// What moving one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// The version was copied to the target and the source copy deleted.
    Copied { bytes: u64 },
    /// The source no longer holds the key, or holds another version than the one being
    /// copied (a user wrote or deleted it meanwhile): nothing was changed.
    Changed,
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

/// Whether an object version of `state` keeps its bytes in the metadata (which a
/// listing leaves out).
fn has_inline_data(state: &KeyState) -> bool {
    state.versions.iter().any(|v| v.version.kind == VersionKind::Object && v.version.data_dir.is_none())
}

impl Store {
    /// Moves every version of `bucket/key` (objects and delete markers) from `source` to
    /// `target` as one unit: each version's data is copied without the key's lock; then,
    /// under it, if the source still holds exactly those versions, all of them are
    /// committed in the target at once, the registry is fixed and the source's versions
    /// are deleted. A reader finds the whole key in one set or the other at every point.
    /// `walked`: the source drives' files of the key as a listing just read them (inline
    /// data left out); used unless a version is stored inline, else they are read here.
    pub(in crate::storage) async fn move_object(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        walked: Option<Vec<DriveMeta>>,
    ) -> StoreResult<Moved> {
        let state = match walked.map(|metas| source.key_state(&metas)).filter(|state| !has_inline_data(state)) {
            Some(state) => state,
            None => source.read_key(bucket, key).await?.1,
        };
        match state.latest() {
            Ok(_) | Err(StoreError::NoSuchKey) => {}
            // A version too few drives hold (or answered for) must not be left behind.
            Err(e) => return Err(e),
        }
        if state.versions.is_empty() {
            return Ok(Moved::Changed);
        }
        let Some(copies) = self.copy_versions(source, target, bucket, key, &state, false).await? else {
            return Ok(Moved::Changed);
        };
        failpoint("move-after-copy");
        let _guard = self.lock_key(bucket, key).await?;
        let (metas, now) = source.read_key(bucket, key).await?;
        if identities(&now) != identities(&state) {
            return Ok(Moved::Changed);
        }
        self.finish_move_locked(bucket, key, source, target, (metas, &state), copies).await
    }

    /// `move_object` for a caller that holds the key's lock (a write gathering the
    /// versions of its key into the ring's set): the copies are made under the lock.
    pub(crate) async fn move_key_locked(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
    ) -> StoreResult<Moved> {
        let (metas, state) = source.read_key(bucket, key).await?;
        state.latest().map(|_| ()).or_else(|e| if matches!(e, StoreError::NoSuchKey) { Ok(()) } else { Err(e) })?;
        if state.versions.is_empty() {
            return Ok(Moved::Changed);
        }
        let Some(copies) = self.copy_versions(source, target, bucket, key, &state, true).await? else {
            return Ok(Moved::Changed);
        };
        self.finish_move_locked(bucket, key, source, target, (metas, &state), copies).await
    }

    /// Under the key's lock: commits the copies in `target` (each drive merges them into
    /// its file, replacing the entries of versions it holds already: a move cut short
    /// after its commit left them), fixes the registry and deletes `state`'s versions
    /// from `source`, whose files the caller read under the lock (`source_metas`).
    async fn finish_move_locked(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        (source_metas, state): (Vec<DriveMeta>, &KeyState),
        copies: Vec<CommitVersion>,
    ) -> StoreResult<Moved> {
        let bytes: u64 = copies.iter().map(|c| c.version.size).sum();
        let object_path = path::object_path(key).map_err(super::set::key_error)?;
        target.commit_merging(bucket, key, &object_path, copies, Order::Keep).await?;
        failpoint("move-after-commit");
        // While lookups know the two sets a key can be in, they read no records.
        if self.place_of(bucket, key).candidates().is_none() {
            self.note_location(target, bucket, key).await;
        }
        failpoint("move-after-registry");
        // All at once: a reader of the source sees the key whole or not at all.
        let ids: Vec<VersionId> = state.versions.iter().map(Resolved::id).collect();
        source.delete_versions_over(bucket, key, &ids, source_metas).await?;
        Ok(Moved::Copied { bytes })
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
        bucket: &str,
        key: &str,
        state: &KeyState,
        locked: bool,
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
                    let copy = self.copy_parts(source, target, bucket, key, resolved, &staged, locked).await?;
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

    /// Copies every part of `resolved` (a version the caller read from `source`) into
    /// staging on `target`, checking each part's MD5 against its ETag. Returns per target
    /// drive the inline bytes (or an empty vector for shard files), `None` for a drive
    /// that failed; or `None` overall when the source changed during the copy.
    #[allow(clippy::too_many_arguments)]
    async fn copy_parts(
        &self,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        bucket: &str,
        key: &str,
        resolved: &Resolved,
        staged: &Staged,
        locked: bool,
    ) -> StoreResult<Option<Vec<Option<Vec<u8>>>>> {
        let version = &resolved.version;
        let layout = ShardLayout::of_key(key, target.drives().len());
        let single = version.parts.len() <= 1;
        let mut per_drive: Vec<Option<Vec<u8>>> = vec![Some(Vec::new()); target.drives().len()];
        let mut offset = 0u64;
        let parts: Vec<(u32, u64, String)> = if version.parts.is_empty() {
            vec![(1, version.size, version.etag.clone())]
        } else {
            version.parts.iter().map(|p| (p.number, p.size, p.etag.clone())).collect()
        };
        for (number, size, etag) in parts {
            // The version read with the key is streamed as is: no second read of its files.
            let guard = match locked {
                true => None,
                false => Some(source.locks.read(&ErasureSet::lock_name(bucket, key)).await),
            };
            let body = match source.stream_version(bucket, key, resolved.clone(), offset, size, guard).await {
                Ok(body) => Box::pin(body) as BodyStream,
                // Replaced or deleted since it was read: the move is looked at again later.
                Err(e) => {
                    let (_, now) = source.read_key(bucket, key).await?;
                    let same = now.version(resolved.id()).is_ok_and(|v| v.version.identity() == version.identity());
                    return if same { Err(e) } else { Ok(None) };
                }
            };
            let options = PutOptions { content_length: Some(size), max_size: u64::MAX, ..PutOptions::default() };
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
