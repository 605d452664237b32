//! Writes into a set: a body streamed into staged shards on every drive, then the commit
//! that makes a version visible under the key's write lock (with the old version's data
//! removed only once the new one has write quorum, and rolled back below it); deletes
//! with tombstones when a drive is away. Must never acknowledge below write quorum.

use std::io;

use futures::StreamExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::quorum::{found, referenced_data_dirs};
use super::{DriveMeta, ErasureSet, Selector, Staged, blocking, key_error, now_ns};
use crate::erasure::BLOCK_SIZE_BYTES;
use crate::error::{StoreError, StoreResult};
use crate::format::object::{ObjectLock, ObjectMeta, ObjectVersion, PartInfo, VersionKind};
use crate::format::version_id::VersionId;
use crate::storage::drive::{Durability, MergedCommit, OwnedMerge};
use crate::storage::layout::ShardLayout;
use crate::storage::path::{self, ObjectPath};
use crate::storage::writer::{Blocker, INLINE_MAX_BYTES, PartWriter, Target, WrittenPart};
use crate::storage::{BodyStream, ObjectInfo, PutOptions};

/// Blocks in flight between the network reader and the encoder thread of one PUT.
const PUT_PIPELINE_BLOCKS: usize = 4;

/// A PUT whose shards are staged, waiting for its commit.
pub struct PreparedPut {
    bucket: String,
    key: String,
    path: ObjectPath,
    version: ObjectVersion,
    layout: ShardLayout,
    per_drive: Vec<DriveCopy>,
    /// The staged shard files (none for an object inline in its metadata); dropping a
    /// prepared PUT removes them.
    staged: Option<Staged>,
    precondition: Option<crate::storage::Precondition>,
}

impl PreparedPut {
    /// The id the version gets.
    pub fn version_id(&self) -> VersionId {
        VersionId(self.version.version_id)
    }
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

impl ErasureSet {
    /// Streams `body` into shards on every drive (into `staged`, or inline when allowed
    /// and small) and returns what was written; nothing is visible until a commit. On an
    /// error, what was staged goes with `staged`.
    pub(in crate::storage) async fn write_part(
        &self,
        mut body: BodyStream,
        allow_inline: bool,
        staged: &Staged,
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
        let target = match inline {
            true => Target::Inline,
            false => Target::Files { staging_id: staged.id(), part, durability: options.durability },
        };
        let drives = self.drives_by_position();
        let erasure = self.erasure;
        let algorithms = options.checksum_algorithms.clone();
        let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(PUT_PIPELINE_BLOCKS);
        let encoder = tokio::task::spawn_blocking(move || -> io::Result<WrittenPart> {
            let mut writer = PartWriter::new(erasure, layout, drives, target, &algorithms);
            while let Some(block) = receiver.blocking_recv() {
                writer.write_block(block)?;
            }
            writer.finish()
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
        pumped?;
        let written = written?;
        if let Some(expected) = options.content_length
            && expected != written.size
        {
            return Err(StoreError::IncompleteBody);
        }
        let healthy = written.per_drive.iter().filter(|d| d.is_some()).count();
        if healthy < self.erasure.write_quorum() {
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

    pub(in crate::storage) async fn remove_staging(&self, staging_id: Uuid) {
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
    pub(in crate::storage) async fn prepare_put(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        mut options: PutOptions,
    ) -> StoreResult<PreparedPut> {
        let path = path::object_path(key).map_err(key_error)?;
        let staged = Staged::new(self);
        let layout = ShardLayout::of_key(key, self.drives.len());
        let written = self.write_part(body, true, &staged, 1, layout, &options).await?;
        verify_digests(&written, &mut options)?;
        let inline = written.per_drive.iter().flatten().any(|bytes| !bytes.is_empty()) || written.size == 0;
        let etag = hex::encode(written.md5);
        let now = now_ns();
        let version = ObjectVersion {
            version_id: options.version_id.0,
            modified_ns: now,
            changed_ns: now,
            kind: VersionKind::Object,
            size: written.size,
            etag: etag.clone(),
            headers: options.headers.clone(),
            checksums: written.checksums.clone(),
            erasure: self.layout(0),
            data_dir: (!inline).then_some(*staged.id().as_bytes()),
            parts: vec![PartInfo { number: 1, size: written.size, etag, checksums: Vec::new() }],
            inline_data: None,
            lock: options.lock,
        };
        let per_drive = written.per_drive.into_iter().map(|d| DriveCopy::of_written(d, inline)).collect();
        Ok(PreparedPut {
            bucket: bucket.to_string(),
            key: key.to_string(),
            path,
            version,
            layout,
            per_drive,
            staged: staged.unless_inline(inline),
            precondition: options.precondition.take(),
        })
    }

    /// The second half of a PUT: the commit, under the key's write lock (taken here, or
    /// already held by the caller when `locked`).
    pub(in crate::storage) async fn commit_prepared(
        &self,
        prepared: PreparedPut,
        locked: bool,
    ) -> StoreResult<ObjectInfo> {
        let _guard = match locked {
            true => None,
            false => Some(self.locks.write(&Self::lock_name(&prepared.bucket, &prepared.key)).await?),
        };
        let PreparedPut { bucket, key, path, version, layout, per_drive, staged, precondition } = prepared;
        if precondition.is_none() {
            let versions = vec![CommitVersion { version, layout, per_drive, staged }];
            return self.commit_merging(&bucket, &key, &path, versions, Order::Newest, Durability::Synced).await;
        }
        let commit = Commit::one(version, layout, per_drive, staged, precondition, Order::Newest);
        self.commit_locked(&bucket, &key, &path, commit).await
    }

    /// Drops a prepared PUT that will not be committed, waiting until its staged files
    /// are gone.
    pub(in crate::storage) async fn discard_prepared(&self, prepared: PreparedPut) {
        if let Some(staged) = prepared.staged {
            staged.remove().await;
        }
    }

    /// Writes the versions of `commit` into the key's file on every drive that holds a
    /// copy of each, replacing the drive's entry of the same version id (the null version,
    /// for a write while unversioned or suspended) and keeping its other versions, and
    /// moves their staged data directories into place. Below write quorum, every drive is
    /// put back as it was. Returns the newest version written. The caller holds the key's
    /// write lock (`Store::lock_key`).
    pub(in crate::storage) async fn commit_locked(
        &self,
        bucket: &str,
        key: &str,
        path: &ObjectPath,
        commit: Commit,
    ) -> StoreResult<ObjectInfo> {
        let metas = self.read_metas(bucket, path).await;
        self.commit_over(bucket, key, path, commit, metas).await
    }

    /// `commit_locked` over `metas`, the key's files as the caller read them under the
    /// key's write lock (which it still holds).
    pub(in crate::storage) async fn commit_over(
        &self,
        bucket: &str,
        key: &str,
        path: &ObjectPath,
        commit: Commit,
        metas: Vec<DriveMeta>,
    ) -> StoreResult<ObjectInfo> {
        let Commit { mut versions, precondition, order } = commit;
        assert!(!versions.is_empty(), "a commit writes a version");
        if let Some(check) = precondition {
            let current = match self.key_state(&metas).latest_object() {
                Ok(resolved) => Some(ObjectInfo::from_version(bucket, key, &resolved.version)),
                Err(StoreError::NoSuchKey | StoreError::DeleteMarker { .. }) => None,
                Err(e) => return Err(e),
            };
            check(current.as_ref())?;
        }
        if order == Order::Newest {
            // A key's versions are ordered by time; a clock that stepped back (or another
            // node's) must not put a new version behind an older one.
            let newest = metas.iter().flat_map(DriveMeta::versions).map(|v| v.modified_ns).max();
            for written in &mut versions {
                if let Some(newest) = newest
                    && written.version.modified_ns <= newest
                {
                    written.version.modified_ns = newest + 1;
                    written.version.changed_ns = written.version.modified_ns;
                }
            }
        }
        let newest = versions.iter().map(|v| &v.version).max_by_key(|v| v.modified_ns).cloned().expect("a version");
        let plans = self.plans(&versions);
        let commits = plans.into_iter().enumerate().map(|(position, plan)| {
            let drive = self.drives[position].clone();
            let current = match &metas[position] {
                DriveMeta::Found(meta) => Some(meta.versions.clone()),
                DriveMeta::Missing => Some(Vec::new()),
                // Its file could not be read: nothing to merge into.
                DriveMeta::Failed => None,
            };
            let bucket = bucket.to_string();
            let path = path.clone();
            blocking(move || -> io::Result<Vec<Uuid>> {
                let current = current.ok_or_else(|| io::Error::other("drive offline"))?;
                let (copies, staged) = plan.ok_or_else(|| io::Error::other("drive failed during write"))?;
                let entries = copies.into_iter().fold(current, with_entry);
                let meta = ObjectMeta { versions: entries };
                drive.commit_object(&bucket, &path, &meta.encode(), &staged)?;
                Ok(referenced_data_dirs(&meta))
            })
        });
        let results = futures::future::join_all(commits).await;
        self.settle_commit(bucket, key, path, versions, &newest, results, &metas).await
    }

    /// A commit without a read of the key's files first: each drive merges the new
    /// versions into its own (`Drive::commit_merged`, replacing its entry of each
    /// version's id) and answers the file it replaced. With `Order::Newest` (a PUT), when
    /// a drive holds a version as new or newer (a clock stepped back), the version's time
    /// moves past it and every drive commits again; with `Order::Keep` (a move between
    /// sets) the versions keep their times. The caller holds the key's write lock.
    pub(in crate::storage) async fn commit_merging(
        &self,
        bucket: &str,
        key: &str,
        path: &ObjectPath,
        mut versions: Vec<CommitVersion>,
        order: Order,
        durability: Durability,
    ) -> StoreResult<ObjectInfo> {
        let newest_first = order == Order::Newest;
        let count = self.drives.len();
        // Per drive: the file it held before this commit, once it committed.
        let mut previous: Vec<Option<DriveMeta>> = (0..count).map(|_| None).collect();
        let mut failures: Vec<Option<io::Error>> = (0..count).map(|_| None).collect();
        for round in 0..3 {
            let plans = self.plans(&versions);
            let commits = plans.into_iter().enumerate().map(|(position, plan)| {
                let drive = self.drives[position].clone();
                let (bucket, path) = (bucket.to_string(), path.clone());
                let skip = failures[position].is_some();
                async move {
                    if skip {
                        return Err(io::Error::other("drive failed in an earlier round"));
                    }
                    let (copies, staged) = plan.ok_or_else(|| io::Error::other("drive failed during write"))?;
                    if !drive.is_online() {
                        return Err(io::Error::other("drive offline"));
                    }
                    let entries = ObjectMeta { versions: copies }.encode();
                    let merge = OwnedMerge { bucket, path, entries, staged, newest: newest_first, durability };
                    // A peer's drive is awaited right here; a local one commits on the pool.
                    match drive.commit_merged_async(merge.request()) {
                        Some(commit) => commit.await,
                        None => blocking(move || drive.commit_merged(merge.request())).await,
                    }
                }
            });
            let mut behind = None;
            for (position, result) in futures::future::join_all(commits).await.into_iter().enumerate() {
                match result {
                    Ok(MergedCommit::Committed { previous: held }) => {
                        let held = held.map_or(DriveMeta::Missing, |bytes| {
                            ObjectMeta::decode(&bytes).map_or(DriveMeta::Missing, DriveMeta::Found)
                        });
                        previous[position].get_or_insert(held);
                    }
                    Ok(MergedCommit::Behind { newest_ns }) => behind = behind.max(Some(newest_ns)),
                    Err(e) => failures[position] = failures[position].take().or(Some(e)),
                }
            }
            let Some(newest_ns) = behind else { break };
            if round == 2 {
                // Still behind after moving past it twice: those drives count as failed.
                for position in 0..count {
                    if previous[position].is_none() && failures[position].is_none() {
                        failures[position] = Some(io::Error::other("drive holds newer versions"));
                    }
                }
                break;
            }
            for written in &mut versions {
                written.version.modified_ns = written.version.modified_ns.max(newest_ns + 1);
                written.version.changed_ns = written.version.modified_ns;
            }
        }
        let newest = versions.iter().map(|v| &v.version).max_by_key(|v| v.modified_ns).cloned().expect("a version");
        let plans = self.plans(&versions);
        let results: Vec<io::Result<Vec<Uuid>>> = (0..count)
            .map(|position| match (&failures[position], &previous[position], &plans[position]) {
                (None, Some(held), Some((copies, _))) => {
                    // What the drive's file references now: the data directories of its
                    // versions that this commit kept, and the new ones.
                    let held = held.versions().to_vec();
                    Ok(referenced_data_dirs(&ObjectMeta { versions: copies.iter().cloned().fold(held, with_entry) }))
                }
                (Some(e), _, _) => Err(io::Error::new(e.kind(), e.to_string())),
                _ => Err(io::Error::other("not committed")),
            })
            .collect();
        // A drive that failed in a later round after it committed in an earlier one keeps
        // the version at its first time, as a drive does that a crash cut short: healed.
        let metas: Vec<DriveMeta> = previous.into_iter().map(|held| held.unwrap_or(DriveMeta::Failed)).collect();
        self.settle_commit(bucket, key, path, versions, &newest, results, &metas).await
    }

    /// Per drive: its copy of every version, or `None` when it missed one (it gets
    /// nothing now and is healed), and the staging directories it moves into place.
    fn plans(&self, versions: &[CommitVersion]) -> Vec<Option<(Vec<ObjectVersion>, Vec<Uuid>)>> {
        (0..self.drives.len())
            .map(|position| {
                let mut copies = Vec::new();
                let mut staged = Vec::new();
                for written in versions {
                    let mut version = written.version.clone();
                    version.erasure.shard_index = written.layout.shard_at(position) as u8;
                    version.inline_data = match &written.per_drive[position] {
                        DriveCopy::Failed => return None,
                        DriveCopy::Staged => {
                            staged.extend(written.staged.as_ref().map(Staged::id));
                            None
                        }
                        DriveCopy::Inline(bytes) => Some(bytes.clone()),
                    };
                    copies.push(version);
                }
                Some((copies, staged))
            })
            .collect()
    }

    /// After the drives' commits (`results`: per drive, the data directories its file
    /// references now): removes staged files no drive took, puts every committed drive
    /// back as `metas` says it was when below write quorum, else retires the data
    /// directories the commit replaced and queues a heal for the drives it missed.
    #[allow(clippy::too_many_arguments)]
    async fn settle_commit(
        &self,
        bucket: &str,
        key: &str,
        path: &ObjectPath,
        versions: Vec<CommitVersion>,
        newest: &ObjectVersion,
        results: Vec<io::Result<Vec<Uuid>>>,
        metas: &[DriveMeta],
    ) -> StoreResult<ObjectInfo> {
        let all_staged: Vec<Uuid> = versions.iter().filter_map(|v| v.staged.as_ref().map(Staged::id)).collect();
        let succeeded = results.iter().filter(|r| r.is_ok()).count();
        // What the commits did not move into place (drives that failed) goes now.
        let moved: Vec<bool> = results.iter().map(Result::is_ok).collect();
        for written in versions {
            if let Some(staged) = written.staged {
                staged.remove_unmoved(&moved).await;
            }
        }
        if succeeded < self.erasure.write_quorum() {
            // Put back what the committed drives had, so the previous versions keep the
            // quorum and the redundancy they had before this write.
            let rollbacks = results.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(position, _)| {
                let drive = self.drives[position].clone();
                let previous = match &metas[position] {
                    DriveMeta::Found(meta) => Some(meta.encode()),
                    _ => None,
                };
                let (bucket, path, moved) = (bucket.to_string(), path.clone(), all_staged.clone());
                blocking(move || drive.restore_object(&bucket, &path, previous.as_deref(), &moved))
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
        // The new version is durable on a quorum: only now may the data it replaced go.
        let cleanups = results.into_iter().enumerate().filter_map(|(position, result)| {
            let kept = result.ok()?;
            let DriveMeta::Found(meta) = &metas[position] else { return None };
            let obsolete: Vec<Uuid> = referenced_data_dirs(meta)
                .into_iter()
                .filter(|d| !all_staged.contains(d) && !kept.contains(d))
                .collect();
            let drive = self.drives[position].clone();
            let bucket = bucket.to_string();
            let path = path.clone();
            Some(blocking(move || drive.remove_data_dirs(&bucket, &path, &obsolete)))
        });
        futures::future::join_all(cleanups).await;
        if succeeded < self.drives.len() {
            self.queue_heal(bucket, key, false);
        }
        Ok(ObjectInfo::from_version(bucket, key, newest))
    }

    /// Rewrites the metadata (tags, object lock) of the version `selector` names and
    /// keeps its data, ETag, size and Last-Modified. The caller holds the key's write
    /// lock. Its change time moves on, so a drive that missed the change is outvoted and
    /// healed, never read. `NoSuchKey` when this set does not hold the key.
    pub(in crate::storage) async fn update_version_locked(
        &self,
        bucket: &str,
        key: &str,
        selector: Selector,
        change: &crate::storage::VersionChange<'_>,
    ) -> StoreResult<ObjectInfo> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        let resolved = self.pick(&metas, selector)?;
        if resolved.version.kind != VersionKind::Object {
            return Err(StoreError::DeleteMarker { version_id: resolved.id(), latest: false });
        }
        let mut version = resolved.version.clone();
        let identity = (version.version_id, version.modified_ns, version.data_dir, version.etag.clone(), version.size);
        change(&mut version)?;
        let kept = (version.version_id, version.modified_ns, version.data_dir, version.etag.clone(), version.size);
        assert_eq!(identity, kept, "a metadata change keeps the version's data");
        version.changed_ns = now_ns().max(version.changed_ns + 1);
        let layout = resolved.layout();
        // Each drive keeps its own shard (and inline bytes); drives without the version get
        // nothing now and are healed (the commit queues it).
        let per_drive = resolved.per_drive.iter().map(|v| DriveCopy::of_held(v.as_ref())).collect();
        let commit = Commit::one(version, layout, per_drive, None, None, Order::Keep);
        self.commit_locked(bucket, key, &path, commit).await
    }

    /// Adds a delete marker with id `id` (replacing a null version when `id` is null) as
    /// the key's newest version. The caller holds the key's write lock.
    pub(in crate::storage) async fn put_delete_marker_locked(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
    ) -> StoreResult<ObjectInfo> {
        let path = path::object_path(key).map_err(key_error)?;
        let now = now_ns();
        let marker = ObjectVersion {
            version_id: id.0,
            modified_ns: now,
            changed_ns: now,
            kind: VersionKind::DeleteMarker,
            ..self.empty_entry()
        };
        let per_drive = vec![DriveCopy::Staged; self.drives.len()];
        let layout = ShardLayout::of_key(key, self.drives.len());
        let commit = Commit::one(marker, layout, per_drive, None, None, Order::Newest);
        self.commit_locked(bucket, key, &path, commit).await
    }

    /// Deletes the key's null version (all an unversioned key has).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<()> {
        path::object_path(key).map_err(key_error)?;
        let _guard = self.locks.write(&Self::lock_name(bucket, key)).await?;
        self.delete_version_locked(bucket, key, VersionId::NULL).await.map(|_| ())
    }

    /// Removes version `id` of the key (an object or a delete marker) and returns what
    /// was removed, if the set held it. The caller holds the key's write lock.
    pub(in crate::storage) async fn delete_version_locked(
        &self,
        bucket: &str,
        key: &str,
        id: VersionId,
    ) -> StoreResult<Option<ObjectVersion>> {
        Ok(self.delete_versions_locked(bucket, key, &[id]).await?.pop())
    }

    /// Removes the versions `ids` of the key at once (each drive's file rewritten once, so
    /// no reader sees some of them gone and others not) and returns those the set held.
    /// The caller holds the key's write lock. With every drive answering, the versions go
    /// from every drive (the key's file with them when they were the last). When a drive
    /// is away or fails the removal, it may keep its copies: the drives that answer get a
    /// `Removed` record of each id instead (their data removed), so a copy left behind is
    /// outvoted when its drive returns, never read as a version or as a loss, and the
    /// healer removes records and copies once every drive answers.
    pub(in crate::storage) async fn delete_versions_locked(
        &self,
        bucket: &str,
        key: &str,
        ids: &[VersionId],
    ) -> StoreResult<Vec<ObjectVersion>> {
        let path = path::object_path(key).map_err(key_error)?;
        let metas = self.read_metas(bucket, &path).await;
        self.delete_versions_over(bucket, key, ids, metas).await
    }

    /// `delete_versions_locked` over `metas`, the key's files as the caller read them
    /// under the key's write lock (which it still holds).
    pub(in crate::storage) async fn delete_versions_over(
        &self,
        bucket: &str,
        key: &str,
        ids: &[VersionId],
        metas: Vec<DriveMeta>,
    ) -> StoreResult<Vec<ObjectVersion>> {
        let path = path::object_path(key).map_err(key_error)?;
        let removed: Vec<ObjectVersion> =
            self.key_state(&metas).versions.into_iter().filter(|v| ids.contains(&v.id())).map(|v| v.version).collect();
        let named = |v: &ObjectVersion| ids.contains(&VersionId(v.version_id));
        let holders: Vec<usize> = (0..metas.len()).filter(|p| metas[*p].versions().iter().any(named)).collect();
        if !metas.iter().any(|m| matches!(m, DriveMeta::Failed)) {
            let removals = holders.iter().map(|&position| {
                let current = metas[position].versions().to_vec();
                let remaining: Vec<ObjectVersion> = current.iter().filter(|v| !named(v)).cloned().collect();
                self.rewrite_drive(position, bucket, &path, current, remaining, None)
            });
            if futures::future::join_all(removals).await.iter().all(Result::is_ok) {
                return Ok(removed);
            }
        }
        let now = now_ns();
        let records: Vec<ObjectVersion> = ids
            .iter()
            .map(|id| ObjectVersion {
                version_id: id.0,
                modified_ns: removed.iter().find(|v| v.version_id == id.0).map_or(now, |v| v.modified_ns),
                changed_ns: now,
                kind: VersionKind::Removed,
                ..self.empty_entry()
            })
            .collect();
        let (path, records) = (&path, &records);
        let writes = metas.iter().enumerate().map(|(position, meta)| {
            let current = match meta {
                DriveMeta::Failed => None,
                other => Some(other.versions().to_vec()),
            };
            async move {
                let current = current.ok_or_else(|| io::Error::other("drive offline"))?;
                let entries = records.iter().cloned().fold(current.clone(), with_entry);
                self.rewrite_drive(position, bucket, path, current, entries, None).await
            }
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
        Ok(removed)
    }

    /// An entry with no data, for delete markers and removal records.
    fn empty_entry(&self) -> ObjectVersion {
        ObjectVersion {
            version_id: None,
            modified_ns: 0,
            changed_ns: 0,
            kind: VersionKind::DeleteMarker,
            size: 0,
            etag: String::new(),
            headers: Vec::new(),
            checksums: Vec::new(),
            erasure: self.layout(0),
            data_dir: None,
            parts: Vec::new(),
            inline_data: None,
            lock: ObjectLock::default(),
        }
    }

    /// Writes `entries` as the key's file on the drive at `position` (removing the file
    /// when none are left), moving `staged` into place, and removes the data directories
    /// `current` referenced that `entries` do not.
    pub(super) async fn rewrite_drive(
        &self,
        position: usize,
        bucket: &str,
        path: &ObjectPath,
        current: Vec<ObjectVersion>,
        entries: Vec<ObjectVersion>,
        staged: Option<Uuid>,
    ) -> io::Result<()> {
        let drive = self.drives[position].clone();
        let (bucket, path) = (bucket.to_string(), path.clone());
        blocking(move || {
            let before = referenced_data_dirs(&ObjectMeta { versions: current });
            if entries.is_empty() {
                return drive.delete_object(&bucket, &path, &before);
            }
            let meta = ObjectMeta { versions: entries };
            drive.commit_object(&bucket, &path, &meta.encode(), staged.as_slice())?;
            let kept = referenced_data_dirs(&meta);
            let obsolete: Vec<Uuid> = before.into_iter().filter(|d| !kept.contains(d) && Some(*d) != staged).collect();
            drive.remove_data_dirs(&bucket, &path, &obsolete);
            Ok(())
        })
        .await
    }

    /// Removes every drive's entries of the versions the key's removal records name (the
    /// copies first, then the records, so a removal cut short never leaves a copy without
    /// its record). Only when every drive answered: a drive away may still hold a copy,
    /// and the records must wait for it. Returns whether anything was removed.
    pub(super) async fn purge_removed(
        &self,
        bucket: &str,
        path: &ObjectPath,
        metas: &[DriveMeta],
        ids: &[VersionId],
    ) -> StoreResult<bool> {
        if ids.is_empty() || metas.iter().any(|m| matches!(m, DriveMeta::Failed)) {
            return Ok(false);
        }
        let mut current: Vec<Vec<ObjectVersion>> = metas.iter().map(|m| m.versions().to_vec()).collect();
        let mut removed = false;
        for records in [false, true] {
            let holding: Vec<usize> = (0..current.len())
                .filter(|&p| {
                    current[p]
                        .iter()
                        .any(|v| ids.contains(&VersionId(v.version_id)) && (v.kind == VersionKind::Removed) == records)
                })
                .collect();
            let rewrites = holding.iter().map(|&position| {
                let remaining: Vec<ObjectVersion> = current[position]
                    .iter()
                    .filter(|v| {
                        !(ids.contains(&VersionId(v.version_id)) && (v.kind == VersionKind::Removed) == records)
                    })
                    .cloned()
                    .collect();
                let before = current[position].clone();
                async move {
                    (
                        position,
                        self.rewrite_drive(position, bucket, path, before, remaining.clone(), None).await,
                        remaining,
                    )
                }
            });
            for (position, result, remaining) in futures::future::join_all(rewrites).await {
                result?;
                current[position] = remaining;
                removed = true;
            }
        }
        Ok(removed)
    }

    /// Removes the copies of a key that this set holds below read quorum, left by a move
    /// whose source delete was cut short, once `home_holds_them` says another set holds
    /// every version they name (checked under the key's lock). Returns whether it did.
    pub(in crate::storage) async fn purge_remnant(
        &self,
        bucket: &str,
        key: &str,
        home_holds_them: impl AsyncFnOnce(Vec<VersionId>) -> bool,
    ) -> StoreResult<bool> {
        let path = path::object_path(key).map_err(key_error)?;
        let _guard = self.locks.write(&Self::lock_name(bucket, key)).await?;
        let metas = self.read_metas(bucket, &path).await;
        let state = self.key_state(&metas);
        let ids: Vec<VersionId> = state.lost.iter().map(|lost| lost.id).collect();
        if !state.versions.is_empty() || ids.is_empty() || !home_holds_them(ids).await {
            return Ok(false);
        }
        for result in self.remove_copies(bucket, &path, found(&metas)).await {
            result?;
        }
        Ok(true)
    }

    /// Removes the key's files (its metadata and every data directory it references)
    /// from the drive at each position of `copies`, all at once; one result per drive.
    pub(super) async fn remove_copies<'a>(
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
}

/// Whether a commit's version goes on top of the key's versions (a new version: its time
/// is moved past every version the drives hold) or keeps its time (a header change, a
/// version moved between sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Newest,
    Keep,
}

/// Versions to commit into a set at once.
pub struct Commit {
    pub versions: Vec<CommitVersion>,
    pub precondition: Option<crate::storage::Precondition>,
    pub order: Order,
}

/// One version of a commit.
pub struct CommitVersion {
    pub version: ObjectVersion,
    pub layout: ShardLayout,
    /// What each drive holds of it after the write.
    pub per_drive: Vec<DriveCopy>,
    pub staged: Option<Staged>,
}

impl Commit {
    /// A commit of one version.
    pub fn one(
        version: ObjectVersion,
        layout: ShardLayout,
        per_drive: Vec<DriveCopy>,
        staged: Option<Staged>,
        precondition: Option<crate::storage::Precondition>,
        order: Order,
    ) -> Commit {
        Commit { versions: vec![CommitVersion { version, layout, per_drive, staged }], precondition, order }
    }
}

/// A drive's entries with `entry` in place of the one of its id, newest first.
pub(in crate::storage) fn with_entry(mut entries: Vec<ObjectVersion>, entry: ObjectVersion) -> Vec<ObjectVersion> {
    entries.retain(|v| v.version_id != entry.version_id);
    entries.push(entry);
    entries.sort_by_key(|v| std::cmp::Reverse(v.modified_ns));
    entries
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::bucket::Versioning;
    use crate::storage::testing::{data, open_two_sets, put, read};

    /// A PUT commits without reading the drives' files first. Drives that hold a version
    /// stamped later than the new one (written by a node whose clock ran ahead) make the
    /// new version's time move past it on every drive: it is the latest, stamped alike on
    /// every drive, and the earlier version stays readable.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_put_after_a_clock_ran_ahead_is_the_latest_on_every_drive() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();
        store.set_bucket_versioning("b", Versioning::Enabled).await.unwrap();
        let (first, second) = (data(300_000, 1), data(200_000, 2));
        put(&store, "b", "k", first.clone()).await;
        let set = store.set_for("b", "k");
        let path = path::object_path("k").unwrap();
        let first_id = store.head_object("b", "k").await.unwrap().version_id;
        // Four drives of ten (6+4) hold the first version an hour ahead.
        let ahead = now_ns() + 3_600_000_000_000;
        for drive in &set.drives()[..4] {
            let mut meta = ObjectMeta::decode(&drive.read_object_meta("b", &path).unwrap().unwrap()).unwrap();
            meta.versions[0].modified_ns = ahead;
            drive.commit_object("b", &path, &meta.encode(), &[]).unwrap();
        }
        put(&store, "b", "k", second.clone()).await;
        let latest: Vec<(VersionId, i64)> = set
            .drives()
            .iter()
            .map(|drive| {
                let meta = ObjectMeta::decode(&drive.read_object_meta("b", &path).unwrap().unwrap()).unwrap();
                assert_eq!(meta.versions.len(), 2, "{}: both versions", drive.name());
                (VersionId(meta.versions[0].version_id), meta.versions[0].modified_ns)
            })
            .collect();
        assert!(latest.iter().all(|held| *held == latest[0]), "the same newest version everywhere: {latest:?}");
        assert!(latest[0].1 > ahead, "stamped past the version ahead");
        assert_ne!(latest[0].0, first_id);
        assert_eq!(read(&store, "b", "k").await.unwrap(), second);
        let older = store.get_version("b", "k", Selector::Id(first_id), Box::new(|info| Ok((0, info.size)))).await;
        let mut body = older.unwrap().body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        assert!(bytes == first, "the earlier version's data stays");
    }
}
