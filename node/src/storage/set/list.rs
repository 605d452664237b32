//! Listing a set: the union of its drives' trees in key order, each key resolved by read
//! quorum. Must never list a key without a quorum as an object (the healer's walk lists
//! such keys as placeholders, for it alone).

use std::io;
use std::sync::Arc;

use super::{DriveMeta, ErasureSet, blocking, on_drives};
use crate::error::{StoreError, StoreResult};
use crate::format::object::ObjectMeta;
use crate::storage::drive::Drive;
use crate::storage::path::{self, DIR_OBJECT_META_FILE, KeyEntry, OBJECT_META_FILE, ObjectPath};
use crate::storage::{ListEntry, ObjectInfo};

/// What a listing shows of each key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Its latest version, when that is an object (ListObjects).
    Latest,
    /// Every version and delete marker, newest first (ListObjectVersions).
    Versions,
    /// Every key any drive holds, once, readable or not (the healer's and the migration's
    /// walks): its latest version, object or delete marker; a placeholder when unreadable.
    AllKeys,
}

impl ErasureSet {
    /// Appends what `mode` shows of `key` to `out`, from what its drives hold. A key
    /// without a readable quorum (a write in flight, drives away) is left out of the page
    /// rather than failing the whole listing. `all_read`: every drive was asked (else
    /// those not asked read as failed, and a copy they lack cannot be told from one they
    /// were not asked for).
    fn show_key(
        &self,
        bucket: &str,
        key: &str,
        metas: &[DriveMeta],
        all_read: bool,
        mode: Listing,
        out: &mut Vec<ListEntry>,
    ) {
        let state = self.key_state(metas);
        if all_read && state.versions.iter().any(|v| !v.is_complete()) {
            self.queue_heal(bucket, key, false);
        }
        match mode {
            Listing::Latest => match state.latest_object() {
                Ok(resolved) => out.push(ListEntry::Object(ObjectInfo::from_version(bucket, key, &resolved.version))),
                Err(StoreError::NoSuchKey | StoreError::DeleteMarker { .. }) => {}
                Err(e) => tracing::warn!(bucket, key, error = %e, "listing skipped a key"),
            },
            Listing::Versions => match state.latest() {
                Ok(_) => out.extend(state.versions.iter().enumerate().map(|(index, resolved)| {
                    let mut info = ObjectInfo::from_version(bucket, key, &resolved.version);
                    info.is_latest = index == 0;
                    ListEntry::Object(info)
                })),
                Err(StoreError::NoSuchKey) => {}
                Err(e) => tracing::warn!(bucket, key, error = %e, "listing skipped a key"),
            },
            Listing::AllKeys => match state.latest() {
                Ok(resolved) => out.push(ListEntry::Object(ObjectInfo::from_version(bucket, key, &resolved.version))),
                Err(_) if metas.iter().any(|m| matches!(m, DriveMeta::Found(_))) => {
                    out.push(ListEntry::Object(ObjectInfo::placeholder(bucket, key)));
                }
                Err(_) => {}
            },
        }
    }

    /// Walks the union of the drives' trees in key order from `marker` (exclusive), and
    /// returns up to `limit` entries that a read quorum agrees on: each key's latest
    /// version (`Listing::Latest`) or all its versions, newest first (`Versions`).
    pub async fn list(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        marker: &str,
        limit: usize,
        mode: Listing,
    ) -> StoreResult<Vec<ListEntry>> {
        if delimiter.is_none() {
            return self.list_by_walking(bucket, prefix, marker, limit, mode).await;
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
                mode,
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
        let entries = self.list_by_walking(bucket, "", marker, limit, Listing::AllKeys).await?;
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
    /// drives returned.
    pub(in crate::storage) async fn list_by_walking(
        self: &Arc<Self>,
        bucket: &str,
        prefix: &str,
        marker: &str,
        limit: usize,
        mode: Listing,
    ) -> StoreResult<Vec<ListEntry>> {
        let mut out = Vec::new();
        self.walk_keys(bucket, prefix, marker, limit, mode, |key, metas, all_read| {
            self.show_key(bucket, key, &metas, all_read, mode, &mut out);
            out.len()
        })
        .await?;
        Ok(out)
    }

    /// `list_by_walking` of every key (`Listing::AllKeys`), each entry with the drives'
    /// files it was resolved from (inline data left out), so that the migration need not
    /// read them again.
    pub(in crate::storage) async fn walk_all_keys(
        self: &Arc<Self>,
        bucket: &str,
        marker: &str,
        limit: usize,
    ) -> StoreResult<Vec<(ListEntry, Vec<DriveMeta>)>> {
        let mut out = Vec::new();
        self.walk_keys(bucket, "", marker, limit, Listing::AllKeys, |key, metas, all_read| {
            let mut shown = Vec::new();
            self.show_key(bucket, key, &metas, all_read, Listing::AllKeys, &mut shown);
            out.extend(shown.pop().map(|entry| (entry, metas)));
            out.len()
        })
        .await?;
        Ok(out)
    }

    /// Pages of `walk_page` from `marker` on, each key handed to `take` (which returns how
    /// many entries it has shown in all) until `limit` entries are shown or keys run out.
    async fn walk_keys(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        limit: usize,
        mode: Listing,
        mut take: impl FnMut(&str, Vec<DriveMeta>, bool) -> usize,
    ) -> StoreResult<()> {
        let (mut cursor, mut shown, mut keys_seen) = (marker.to_string(), 0, 0);
        while shown < limit {
            let wanted = limit - shown;
            // Every key walked is read from several drives. A key shows one entry, but in
            // a version listing as many as it has versions: there, ask for as many keys
            // as the versions per key seen so far suggest (a quarter of the entries
            // wanted before any key is seen), not one key per entry wanted.
            let keys = match mode {
                Listing::Versions if shown == 0 => wanted / 4 + 1,
                Listing::Versions => (wanted * keys_seen).div_ceil(shown),
                Listing::Latest | Listing::AllKeys => wanted,
            };
            let (page, more) = self.walk_page(bucket, prefix, &cursor, keys, mode).await?;
            let last = page.last().map(|(key, _, _)| key.clone());
            keys_seen += page.len();
            for (key, metas, all_read) in page {
                shown = take(&key, metas, all_read);
            }
            match last {
                Some(last) if more => cursor = last,
                _ => break,
            }
        }
        Ok(())
    }

    /// How many drives a page's walk asks: every one for `AllKeys` (keys below quorum
    /// matter to the healer and the migration), else enough that every version a write
    /// quorum committed is on one of them (`n - q + 1`) and that their agreement is a
    /// read quorum (`q`). A key on which they do not all agree is read from the others.
    fn walkers(&self, mode: Listing) -> usize {
        let (drives, quorum) = (self.drives.len(), self.erasure.read_quorum());
        match mode {
            Listing::AllKeys => drives,
            Listing::Latest | Listing::Versions => quorum.max(drives + 1 - quorum).min(drives),
        }
    }

    /// One walk call per drive asked (`walkers`; all of them once one fails), merged:
    /// the keys up to the point every drive asked has listed (the smallest last key among
    /// drives that returned a full page), each with what every drive holds and whether
    /// every drive was read for it. Returns whether keys may follow.
    async fn walk_page(
        &self,
        bucket: &str,
        prefix: &str,
        marker: &str,
        limit: usize,
        mode: Listing,
    ) -> StoreResult<(Vec<(String, Vec<DriveMeta>, bool)>, bool)> {
        let count = self.drives.len();
        let walk = |positions: Vec<usize>| {
            let walks = positions.into_iter().map(|position| {
                let drive = self.drives[position].clone();
                let (bucket, prefix, marker) = (bucket.to_string(), prefix.to_string(), marker.to_string());
                async move {
                    let walked = blocking(move || {
                        if !drive.is_online() {
                            return Err(io::Error::other("drive offline"));
                        }
                        drive.walk(&bucket, &prefix, &marker, limit)
                    })
                    .await;
                    (position, walked)
                }
            });
            futures::future::join_all(walks)
        };
        // Online drives first; the rest only when one of those fails.
        let mut positions: Vec<usize> = (0..count).collect();
        positions.sort_by_key(|&p| !self.drives[p].is_online());
        let rest = positions.split_off(self.walkers(mode));
        let mut results: Vec<Option<io::Result<Walked>>> = (0..count).map(|_| None).collect();
        for (position, walked) in walk(positions).await {
            results[position] = Some(walked);
        }
        if results.iter().flatten().any(|r| r.is_err()) {
            for (position, walked) in walk(rest).await {
                results[position] = Some(walked);
            }
        }
        if results.iter().flatten().all(|r| r.is_err()) {
            return Err(StoreError::InsufficientQuorum {
                operation: "list",
                needed: self.erasure.read_quorum(),
                available: 0,
            });
        }
        let cut: Option<String> = results
            .iter()
            .flatten()
            .filter_map(|r| r.as_ref().ok())
            .filter(|entries| entries.len() >= limit)
            .filter_map(|entries| entries.last().map(|(key, _)| key.clone()))
            .min();
        let walked: Vec<bool> = results.iter().map(|r| matches!(r, Some(Ok(_)))).collect();
        let empty: Vec<DriveMeta> =
            walked.iter().map(|&ok| if ok { DriveMeta::Missing } else { DriveMeta::Failed }).collect();
        let mut keys: std::collections::BTreeMap<String, Vec<DriveMeta>> = Default::default();
        for (position, result) in results.into_iter().enumerate() {
            let Some(Ok(entries)) = result else { continue };
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
        let unasked: Vec<usize> = (0..count).filter(|&p| !walked[p]).collect();
        let answered = count - unasked.len();
        let quorum = self.erasure.read_quorum();
        // Enough drives answered that their agreement on a key is what all would say.
        let decisive = answered >= quorum && answered > count - quorum;
        let mut page = Vec::with_capacity(keys.len());
        for (key, mut metas) in keys {
            let settled = unasked.is_empty() || (decisive && agree(&metas, &walked));
            if !settled {
                let path = path::object_path(&key).map_err(super::key_error)?;
                let drives: Vec<Arc<dyn Drive>> = unasked.iter().map(|&p| self.drives[p].clone()).collect();
                let bucket = bucket.to_string();
                let read =
                    blocking(move || on_drives(&drives, move |drive| super::read_drive_meta(drive, &bucket, &path)));
                for (&position, meta) in unasked.iter().zip(read.await) {
                    metas[position] = meta;
                }
                page.push((key, metas, true));
            } else {
                page.push((key, metas, unasked.is_empty()));
            }
        }
        Ok((page, cut.is_some()))
    }
}

/// One drive's page of a walk: keys with their metadata.
type Walked = Vec<(String, Vec<u8>)>;

/// Whether every drive walked holds the same versions of a key.
fn agree(metas: &[DriveMeta], walked: &[bool]) -> bool {
    let mut copies = metas.iter().zip(walked).filter(|(_, walked)| **walked).map(|(meta, _)| meta);
    let Some(DriveMeta::Found(first)) = copies.next() else { return false };
    copies.all(|meta| {
        matches!(meta, DriveMeta::Found(meta) if meta.versions.len() == first.versions.len()
            && meta.versions.iter().zip(&first.versions).all(|(a, b)| a.identity() == b.identity()))
    })
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
    mode: Listing,
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
        let names: Vec<(String, bool)> = names.into_iter().collect();
        for entry in path::key_order(&names, child_prefix, partial.unwrap_or("")) {
            if self.full() {
                return Ok(());
            }
            let (key, path) = match entry {
                KeyEntry::DirObject { key } => {
                    (key, ObjectPath { dir: relative.clone(), meta_file: DIR_OBJECT_META_FILE })
                }
                KeyEntry::Object { key, segment } => {
                    let dir = path::segments_dir(&[segments, &[segment]].concat());
                    (key, ObjectPath { dir, meta_file: OBJECT_META_FILE })
                }
                KeyEntry::Subtree { key: subtree, segment } => {
                    let child_segments = [segments, &[segment]].concat();
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
                    continue;
                }
            };
            if key.as_str() <= self.marker {
                continue;
            }
            if let Some(common) = self.common_prefix(&key) {
                self.push_prefix(common);
                continue;
            }
            self.visit_object(key, path)?;
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
        self.set.show_key(self.bucket, &key, &metas, true, self.mode, &mut self.out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::ListEntry;
    use crate::storage::testing::{data, open_two_sets, put};

    /// What a listing shows of each key: (key, size, etag).
    async fn listed(store: &crate::storage::Store) -> Vec<(String, u64, String)> {
        let entries = store.list_objects("b", "", None, "", 1000).await.unwrap();
        entries
            .into_iter()
            .filter_map(|e| match e {
                ListEntry::Object(info) => Some((info.key, info.size, info.etag)),
                ListEntry::Prefix(_) => None,
            })
            .collect()
    }

    /// A listing asks only some drives of a set for their keys; the keys those drives
    /// disagree on must still show what a read quorum of all drives holds.
    #[tokio::test]
    async fn drives_that_missed_writes_never_hide_or_age_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();
        for i in 0..20 {
            put(&store, "b", &format!("k{i:02}"), data(100, i)).await;
        }
        let set = store.set_for("b", "k00");
        let parity = set.erasure().parity_shards;
        let missing = &set.drives()[..parity];
        // While the first drives are away (the ones a listing asks first), one key of the
        // set is replaced and one is written.
        let fresh = (20..200).map(|i| format!("new{i}")).find(|k| std::sync::Arc::ptr_eq(&store.set_for("b", k), &set));
        let fresh = fresh.unwrap();
        missing.iter().for_each(|d| d.set_online(false));
        put(&store, "b", "k00", data(333, 7)).await;
        put(&store, "b", &fresh, data(55, 8)).await;
        missing.iter().for_each(|d| d.set_online(true));

        let shown = listed(&store).await;
        let replaced = shown.iter().find(|(key, ..)| key == "k00").expect("the replaced key is listed");
        assert_eq!(replaced.1, 333, "the listing shows the new version");
        assert_eq!(replaced.2, store.head_object("b", "k00").await.unwrap().etag);
        assert!(shown.iter().any(|(key, size, _)| *key == fresh && *size == 55), "the new key is listed");
        assert_eq!(shown.len(), 21, "every key once");
    }
}
