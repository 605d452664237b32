//! Healing one object of a set: every drive brought up to the version a read quorum
//! agrees on (shards rebuilt from the others), tombstones and the copies they outvote
//! removed once every drive answers. Must never remove a copy that might be the last.

use std::io;
use std::sync::Arc;

use uuid::Uuid;

use super::quorum::referenced_data_dirs;
use super::read::ShardReader;
use super::write::with_entry;
use super::{DriveMeta, ErasureSet, Resolved, blocking, key_error};
use crate::erasure::{BLOCK_SIZE_BYTES, shard_checksum};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{ObjectMeta, VersionKind};
use crate::format::version_id::VersionId;
use crate::storage::drive::{Durability, ShardFile};
use crate::storage::path::{self, ObjectPath};

impl ErasureSet {
    /// Brings every drive's file of a key up to what a quorum agrees on: every version on
    /// every drive (a drive's stale copy of a version id replaced), removed versions gone
    /// once every drive answers. `deep` also reads and verifies every shard. Returns
    /// whether anything was repaired; a version that cannot be read (lost beyond parity,
    /// or too few drives answering) is left as it is and reported as the error.
    pub async fn heal_object(self: &Arc<Self>, bucket: &str, key: &str, deep: bool) -> StoreResult<bool> {
        let path = path::object_path(key).map_err(key_error)?;
        let _guard = self.locks.write(&Self::lock_name(bucket, key)).await?;
        let metas = self.read_metas(bucket, &path).await;
        let state = self.key_state(&metas);
        let mut healed = false;
        for resolved in &state.versions {
            healed |= self.heal_version(bucket, &path, resolved, deep).await?;
        }
        // Removal records a quorum holds, and records below quorum with nothing left of
        // their version (a purge that stopped half-way): finish them.
        let metas = if healed { self.read_metas(bucket, &path).await } else { metas };
        let decided: std::collections::BTreeSet<VersionId> = state.versions.iter().map(Resolved::id).collect();
        let mut ids: Vec<VersionId> = state.removed.iter().map(Resolved::id).collect();
        for entry in metas.iter().flat_map(DriveMeta::versions) {
            let id = VersionId(entry.version_id);
            let only_records = metas
                .iter()
                .flat_map(DriveMeta::versions)
                .filter(|v| v.version_id == id.0)
                .all(|v| v.kind == VersionKind::Removed);
            if entry.kind == VersionKind::Removed && only_records && !decided.contains(&id) && !ids.contains(&id) {
                ids.push(id);
            }
        }
        healed |= self.purge_removed(bucket, &path, &metas, &ids).await?;
        if healed {
            self.metrics.healed_objects.inc();
        }
        // Copies below quorum with no record are a loss (or a write cut short by a crash,
        // which looks the same): nothing is removed, the error reports it.
        if let Some(lost) = state.lost.first() {
            return Err(StoreError::LostBeyondParity {
                found: lost.copies,
                needed: state.quorum,
                drives: state.drives,
            });
        }
        if let Some((available, needed)) = state.undecided {
            return Err(StoreError::InsufficientQuorum { operation: "heal", needed, available });
        }
        Ok(healed)
    }

    /// Writes one version on every online drive that lacks it (or, with `deep`, holds
    /// damaged shards of it), rebuilding its shards from the others.
    async fn heal_version(
        self: &Arc<Self>,
        bucket: &str,
        path: &ObjectPath,
        resolved: &Resolved,
        deep: bool,
    ) -> StoreResult<bool> {
        let targets: Vec<(usize, Option<Vec<u8>>)> = if resolved.version.kind == VersionKind::Object {
            let (set, bucket_owned, path_owned, to_heal) =
                (self.clone(), bucket.to_string(), path.clone(), resolved.clone());
            blocking(move || set.rebuild_shards(&bucket_owned, &path_owned, &to_heal, deep)).await?
        } else {
            // A delete marker has no data: the drives without it just get its entry.
            (0..self.drives.len())
                .filter(|&p| resolved.per_drive[p].is_none() && self.drives[p].is_online())
                .map(|p| (p, None))
                .collect()
        };
        if targets.is_empty() {
            return Ok(false);
        }
        let layout = resolved.layout();
        let data_dir = resolved.version.data_dir.map(Uuid::from_bytes);
        let mut healed_any = false;
        for (position, inline) in targets {
            let drive = self.drives[position].clone();
            let mut version = resolved.version.clone();
            version.erasure.shard_index = layout.shard_at(position) as u8;
            version.inline_data = inline;
            let (bucket, path) = (bucket.to_string(), path.clone());
            let result = blocking(move || -> io::Result<()> {
                // The drive's own file, read again under the lock: its other versions stay.
                let current = match drive.read_object_meta(&bucket, &path)? {
                    Some(bytes) => ObjectMeta::decode(&bytes).map(|m| m.versions).unwrap_or_default(),
                    None => Vec::new(),
                };
                let before = referenced_data_dirs(&ObjectMeta { versions: current.clone() });
                let meta = ObjectMeta { versions: with_entry(current, version) };
                let staged = data_dir.filter(|id| drive.has_staging(*id));
                if let Some(id) = staged {
                    // Replace whatever partial data directory the drive had.
                    drive.remove_data_dirs(&bucket, &path, &[id]);
                }
                drive.commit_object(&bucket, &path, &meta.encode(), staged.as_slice())?;
                let kept = referenced_data_dirs(&meta);
                let obsolete: Vec<Uuid> = before.into_iter().filter(|d| !kept.contains(d)).collect();
                drive.remove_data_dirs(&bucket, &path, &obsolete);
                Ok(())
            })
            .await;
            healed_any |= result.is_ok();
        }
        if let Some(id) = data_dir {
            self.remove_staging(id).await;
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
                            reader.read_shard(part, block_index, block_len, shard_index).map(|s| s.to_vec())
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
                file.close(Durability::Synced)?;
            }
        }
        Ok(outputs.into_iter().map(|(position, bytes)| (position, inline.then_some(bytes))).collect())
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
            let after =
                store.update_object_headers("b", key, crate::storage::set::Selector::Latest, &tag).await.unwrap();
            missed.set_online(true);
            assert_eq!((after.etag.as_str(), after.size), (before.etag.as_str(), before.size), "{key}");
            assert_eq!(after.modified_ns, before.modified_ns, "{key}: Last-Modified kept (tags change no version)");
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
        assert!(matches!(
            store.update_object_headers("b", "missing", crate::storage::set::Selector::Latest, &tag).await,
            Err(StoreError::NoSuchKey)
        ));
    }
}
