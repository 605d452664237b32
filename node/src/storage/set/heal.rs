//! Healing one object of a set: every drive brought up to the version a read quorum
//! agrees on (shards rebuilt from the others), tombstones and the copies they outvote
//! removed once every drive answers. Must never remove a copy that might be the last.

use std::io;
use std::sync::Arc;

use uuid::Uuid;

use super::read::ShardReader;
use super::{ErasureSet, Resolved, blocking, key_error};
use crate::erasure::{BLOCK_SIZE_BYTES, shard_checksum};
use crate::error::{StoreError, StoreResult};
use crate::format::object::{ObjectMeta, VersionKind};
use crate::storage::drive::ShardFile;
use crate::storage::layout::ShardLayout;
use crate::storage::path::{self, ObjectPath};

impl ErasureSet {
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
