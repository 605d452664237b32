//! Moving one object between sets: the step the migration engine repeats.
//!
//! The bytes are copied without holding the key's lock (a large object takes a while and
//! user writes of that key must not wait for it). Then, under the key's write lock — one
//! lock for the key in every set — the move checks that the source still holds exactly the
//! version it copied and that the target holds nothing newer, commits the copy, fixes the
//! registry and deletes the source copy. A user overwrite or delete that raced with the
//! copy therefore wins: the copy is discarded, never committed over the newer write and
//! never left to resurrect a deleted key (the lesson of the earlier C version).
//!
//! Every crash point leaves a readable object: before the commit, only the source has it
//! (staged shards on the target are unreferenced and removed with the drive's tmp); after
//! the commit and before the source delete, both sets hold the same version, and the next
//! pass sees a target at least as new and deletes the source copy.

use std::sync::Arc;

use super::layout::ShardLayout;
use super::set::{DriveCopy, ErasureSet, Staged};
use super::{BodyStream, ObjectInfo, PutOptions, ReadPlan, Store, path, registry};
use crate::error::{StoreError, StoreResult};
use crate::format::object::ObjectVersion;

/// What moving one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// The version was copied to the target and the source copy deleted.
    Copied { bytes: u64 },
    /// The target already held this version or a newer one: only the source copy was
    /// deleted.
    SourceWasStale,
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

/// The identity of the version a move copies; compared again under the lock.
fn same_version(a: &ObjectVersion, b: &ObjectVersion) -> bool {
    a.identity() == b.identity()
}

impl Store {
    /// Moves the current version of `bucket/key` from `source` to `target`.
    pub async fn move_object(
        &self,
        bucket: &str,
        key: &str,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
    ) -> StoreResult<Moved> {
        let version = match source.head_object(bucket, key).await {
            Ok((_, resolved)) => resolved.version,
            Err(StoreError::NoSuchKey) => return Ok(Moved::Changed),
            Err(e) => return Err(e),
        };
        if self.target_is_current(target, bucket, key, &version).await? {
            let _guard = self.lock_key(bucket, key).await?;
            return self.delete_stale_source(source, bucket, key, &version).await;
        }
        // Whatever was staged goes with `staged` on every way out but the commit.
        let staged = Staged::new(target);
        let Some(copied) = self.copy_parts(source, target, bucket, key, &version, &staged).await? else {
            return Ok(Moved::Changed);
        };
        failpoint("move-after-copy");
        let _guard = self.lock_key(bucket, key).await?;
        match source.head_object(bucket, key).await {
            Ok((_, now)) if same_version(&now.version, &version) => {}
            Ok(_) | Err(StoreError::NoSuchKey) => return Ok(Moved::Changed),
            Err(e) => return Err(e),
        }
        if self.target_is_current(target, bucket, key, &version).await? {
            staged.remove().await;
            return self.delete_stale_source(source, bucket, key, &version).await;
        }
        let inline = copied.iter().flatten().any(|bytes| !bytes.is_empty()) || version.size == 0;
        let mut moved = version.clone();
        moved.erasure = target.layout(0);
        moved.data_dir = (!inline).then_some(*staged.id().as_bytes());
        moved.inline_data = None;
        let object_path = path::object_path(key).map_err(super::set::key_error)?;
        let per_drive = copied.into_iter().map(|d| DriveCopy::of_written(d, inline)).collect();
        let layout = ShardLayout::of_key(key, target.drives().len());
        target
            .commit_locked(bucket, key, &object_path, moved, layout, per_drive, staged.unless_inline(inline), None)
            .await?;
        failpoint("move-after-commit");
        self.note_location(target, bucket, key).await;
        failpoint("move-after-registry");
        source.delete_object_locked(bucket, key).await?;
        Ok(Moved::Copied { bytes: version.size })
    }

    /// Whether `target` already holds `version` or a newer write of the key.
    async fn target_is_current(
        &self,
        target: &Arc<ErasureSet>,
        bucket: &str,
        key: &str,
        version: &ObjectVersion,
    ) -> StoreResult<bool> {
        match target.head_object(bucket, key).await {
            Ok((_, there)) => {
                Ok(same_version(&there.version, version) || there.version.modified_ns >= version.modified_ns)
            }
            // Copies below quorum in the target are a commit cut short: the copy replaces them.
            Err(StoreError::NoSuchKey | StoreError::LostBeyondParity { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Under the key's lock: deletes the source copy if it is still `version`.
    async fn delete_stale_source(
        &self,
        source: &Arc<ErasureSet>,
        bucket: &str,
        key: &str,
        version: &ObjectVersion,
    ) -> StoreResult<Moved> {
        match source.head_object(bucket, key).await {
            Ok((_, now)) if same_version(&now.version, version) => {
                source.delete_object_locked(bucket, key).await?;
                Ok(Moved::SourceWasStale)
            }
            Ok(_) | Err(StoreError::NoSuchKey) => Ok(Moved::Changed),
            Err(e) => Err(e),
        }
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

    /// Copies every part of `version` into staging directory `data_dir` on `target`,
    /// checking each part's MD5 against its ETag. Returns per target drive the inline
    /// bytes (or an empty vector for shard files), `None` for a drive that failed; or
    /// `None` overall when the source changed during the copy.
    async fn copy_parts(
        &self,
        source: &Arc<ErasureSet>,
        target: &Arc<ErasureSet>,
        bucket: &str,
        key: &str,
        version: &ObjectVersion,
        staged: &Staged,
    ) -> StoreResult<Option<Vec<Option<Vec<u8>>>>> {
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
            let (expected_etag, expected_modified) = (version.etag.clone(), version.modified_ns);
            let start = offset;
            let plan: ReadPlan = Box::new(move |info: &ObjectInfo| {
                if info.etag == expected_etag && info.modified_ns == expected_modified {
                    Ok((start, size))
                } else {
                    Err(StoreError::PreconditionFailed)
                }
            });
            let body: BodyStream = match source.read_object(bucket, key, &plan).await {
                Ok((_, _, _, stream)) => Box::pin(stream),
                Err(StoreError::NoSuchKey | StoreError::PreconditionFailed) => return Ok(None),
                Err(e) => return Err(e),
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
