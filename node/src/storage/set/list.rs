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
    /// rather than failing the whole listing.
    fn show_key(&self, bucket: &str, key: &str, metas: &[DriveMeta], mode: Listing, out: &mut Vec<ListEntry>) {
        let state = self.key_state(metas);
        if state.versions.iter().any(|v| !v.is_complete()) {
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
        let mut cursor = marker.to_string();
        while out.len() < limit {
            let (page, more) = self.walk_page(bucket, prefix, &cursor, limit - out.len()).await?;
            for (key, metas) in &page {
                self.show_key(bucket, key, metas, mode, &mut out);
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
        self.set.show_key(self.bucket, &key, &metas, self.mode, &mut self.out);
        Ok(())
    }
}
