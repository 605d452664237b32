//! S3 versioning at the store: deletes that add delete markers or remove one version,
//! version listings, and the rule that keeps a key's versions together. Every version of
//! a key lives in one set (the migration moves a key with all its versions as one unit);
//! a write of a new version in a versioned bucket first gathers, under the key's lock,
//! any versions another set still holds into the ring's set, so reads of any version and
//! of the latest find them all in one place. Must never let a registry record, a cache
//! entry or a set that holds part of a key hide a version.

use std::sync::Arc;

use super::object_lock::check_removable;
use super::set::{ErasureSet, Listing};
use super::{ListEntry, ObjectInfo, Store, Versioning, new_version_id, path, set};
use crate::error::StoreResult;
use crate::format::version_id::VersionId;

/// What a DELETE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// The version removed, or the delete marker added (none for an unversioned delete).
    pub version_id: Option<VersionId>,
    /// A delete marker was added, or the version removed was one.
    pub delete_marker: bool,
}

/// One page of ListObjectVersions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionsPage {
    /// Versions (newest first within a key) and common prefixes, in key order.
    pub entries: Vec<ListEntry>,
    pub truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<VersionId>,
}

impl Store {
    /// Under the key's write lock: moves into `home` every version of the key that
    /// another set holds (after a topology change, before the migration got to it).
    pub(crate) async fn gather_versions_locked(
        &self,
        bucket: &str,
        key: &str,
        home: &Arc<ErasureSet>,
    ) -> StoreResult<()> {
        let others: Vec<Arc<ErasureSet>> = self
            .place_of(bucket, key)
            .others_than(home)
            .unwrap_or_else(|| self.sets().iter().filter(|s| !Arc::ptr_eq(s, home)).cloned().collect());
        for set in &others {
            let (_, state) = set.read_key(bucket, key).await?;
            if !state.versions.is_empty() {
                self.move_key_locked(bucket, key, set, home).await?;
            }
        }
        Ok(())
    }

    /// DELETE of a key: with a version id, that version (an object or a delete marker)
    /// goes wherever it is, unless its object lock protects it (`bypass_governance`: the
    /// request may bypass GOVERNANCE retention); without one, the key's null version goes
    /// from an unversioned bucket, and a versioned or suspended bucket gets a delete
    /// marker (with a new id, or the null id replacing the null version).
    pub async fn delete_object_version(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        bypass_governance: bool,
    ) -> StoreResult<Deleted> {
        path::object_path(key).map_err(set::key_error)?;
        let versioning = self.bucket_settings(bucket).await?.versioning;
        let _guard = self.lock_key(bucket, key).await?;
        self.delete_object_version_locked(bucket, key, version, bypass_governance, versioning).await
    }

    /// `delete_object_version` for a caller that holds the key's write lock.
    pub(crate) async fn delete_object_version_locked(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        bypass_governance: bool,
        versioning: Versioning,
    ) -> StoreResult<Deleted> {
        let _placing = self.begin_placed_write();
        let home = self.set_for(bucket, key).clone();
        if let Some(id) = version {
            // Where the key's versions may be.
            let holders: Vec<Arc<ErasureSet>> =
                self.place_of(bucket, key).candidates().unwrap_or_else(|| self.sets().to_vec());
            let now = set::now_ns();
            for set in &holders {
                let (_, state) = set.read_key(bucket, key).await?;
                if let Some(held) = state.versions.iter().find(|v| v.id() == id) {
                    check_removable(&held.version.lock, bypass_governance, now)?;
                }
            }
            let mut delete_marker = false;
            for set in &holders {
                if let Some(removed) = set.delete_version_locked(bucket, key, id).await? {
                    delete_marker |= removed.kind == crate::format::object::VersionKind::DeleteMarker;
                }
            }
            return Ok(Deleted { version_id: Some(id), delete_marker });
        }
        if versioning.is_unversioned() {
            home.delete_version_locked(bucket, key, VersionId::NULL).await?;
            self.clear_stale_copies_locked(bucket, key, &home, VersionId::NULL).await?;
            return Ok(Deleted { version_id: None, delete_marker: false });
        }
        self.gather_versions_locked(bucket, key, &home).await?;
        let id = new_version_id(versioning);
        if id.is_null() {
            // A suspended bucket's marker replaces the null version: only if it may go.
            let (_, state) = home.read_key(bucket, key).await?;
            if let Some(null) = state.versions.iter().find(|v| v.id().is_null()) {
                check_removable(&null.version.lock, bypass_governance, set::now_ns())?;
            }
        }
        home.put_delete_marker_locked(bucket, key, id).await?;
        self.clear_stale_copies_locked(bucket, key, &home, id).await?;
        Ok(Deleted { version_id: Some(id), delete_marker: true })
    }

    /// ListObjectVersions: up to `limit` versions and common prefixes after the markers
    /// (the versions of `key_marker` after `version_id_marker` when that is given, else
    /// the keys after `key_marker`), in key order, each key's newest first.
    pub async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: &str,
        version_id_marker: Option<VersionId>,
        limit: usize,
    ) -> StoreResult<VersionsPage> {
        self.head_bucket(bucket).await?;
        let mut entries: Vec<ListEntry> = Vec::new();
        // The rest of the key the last page stopped in.
        if let Some(marker) = version_id_marker
            && !key_marker.is_empty()
            && key_marker.starts_with(prefix)
        {
            let versions = self.key_versions(bucket, key_marker).await?;
            let after = versions.iter().position(|v| v.version_id == marker).map_or(versions.len(), |i| i + 1);
            entries.extend(versions.into_iter().skip(after).map(ListEntry::Object));
        }
        // One more than asked, to know whether the listing goes on.
        let wanted = limit + 1;
        let mut merged: Vec<ListEntry> = Vec::new();
        for set in self.sets_in_listing_order() {
            merged.extend(set.list(bucket, prefix, delimiter, key_marker, wanted, Listing::Versions).await?);
        }
        if self.sets().len() > 1 {
            // A key in two sets (a move between its commit and its source delete) holds
            // the same versions in both: shown once.
            merged.sort_by(|a, b| list_order(a).cmp(&list_order(b)));
            merged.dedup_by(|a, b| list_order(a) == list_order(b));
        }
        entries.extend(merged);
        let truncated = entries.len() > limit;
        entries.truncate(limit);
        let (next_key_marker, next_version_id_marker) = match (truncated, entries.last()) {
            (true, Some(ListEntry::Object(info))) => (Some(info.key.clone()), Some(info.version_id)),
            (true, Some(ListEntry::Prefix(prefix))) => (Some(prefix.clone()), None),
            _ => (None, None),
        };
        Ok(VersionsPage { entries, truncated, next_key_marker, next_version_id_marker })
    }

    /// Every version of one key, newest first, from the set that holds it.
    async fn key_versions(&self, bucket: &str, key: &str) -> StoreResult<Vec<ObjectInfo>> {
        for set in self.sets().iter() {
            let (_, state) = set.read_key(bucket, key).await?;
            if !state.versions.is_empty() {
                return Ok(state
                    .versions
                    .iter()
                    .enumerate()
                    .map(|(index, resolved)| {
                        let mut info = ObjectInfo::from_version(bucket, key, &resolved.version);
                        info.is_latest = index == 0;
                        info
                    })
                    .collect());
            }
        }
        Ok(Vec::new())
    }

    /// Sets the bucket's versioning from S3's PutBucketVersioning status.
    pub async fn put_bucket_versioning(&self, bucket: &str, enabled: bool) -> StoreResult<()> {
        let versioning = if enabled { Versioning::Enabled } else { Versioning::Suspended };
        self.set_bucket_versioning(bucket, versioning).await
    }
}

/// Where an entry sorts in a version listing: by key (a prefix as its text), then the
/// newer version first.
fn list_order(entry: &ListEntry) -> (&str, std::cmp::Reverse<i64>, VersionId) {
    match entry {
        ListEntry::Object(info) => (&info.key, std::cmp::Reverse(info.modified_ns), info.version_id),
        ListEntry::Prefix(prefix) => (prefix, std::cmp::Reverse(i64::MAX), VersionId::NULL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::topology::TopologyRules;
    use crate::storage::testing::{drain_set_one, open_two_sets, put, read};

    /// What a set holds of a key: (version id, delete marker) newest first.
    async fn held(set: &Arc<ErasureSet>, key: &str) -> Vec<(VersionId, bool)> {
        let (_, state) = set.read_key("b", key).await.unwrap();
        state
            .versions
            .iter()
            .map(|v| (v.id(), v.version.kind == crate::format::object::VersionKind::DeleteMarker))
            .collect()
    }

    /// A key of a drained set moves with every version and its delete marker, as one
    /// unit; a write of a new version while it is away first gathers the others.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_key_moves_and_is_written_with_every_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();
        store.set_bucket_versioning("b", Versioning::Enabled).await.unwrap();
        let ring = store.topology().ring();
        let away: Vec<String> =
            (0..100).map(|n| format!("key-{n}")).filter(|k| ring.locate("b", k) == 1).take(2).collect();
        for key in &away {
            for n in 0..3u8 {
                put(&store, "b", key, vec![n; 100 + n as usize]).await;
            }
            store.delete_object("b", key).await.unwrap();
        }
        let (sets, source) = (store.sets(), store.sets()[1].clone());
        let versions = held(&source, &away[0]).await;
        assert_eq!(versions.len(), 4);
        assert!(versions[0].1, "the newest is the delete marker");
        drain_set_one(&store).await;
        let target = store.set_for("b", &away[0]);
        assert!(Arc::ptr_eq(&target, &sets[0]));
        store.move_object("b", &away[0], &source, &target, None).await.unwrap();
        assert_eq!(held(&target, &away[0]).await, versions, "every version and the marker moved, in order");
        assert!(held(&source, &away[0]).await.is_empty());

        // A new version of the other key while it is still in the drained set: its
        // versions are gathered into the ring's set first, the new one on top.
        let before = held(&source, &away[1]).await;
        put(&store, "b", &away[1], b"newest".to_vec()).await;
        let after = held(&target, &away[1]).await;
        assert_eq!(after.len(), 5);
        assert_eq!(&after[1..], &before[..]);
        assert!(held(&source, &away[1]).await.is_empty());
        assert_eq!(read(&store, "b", &away[1]).await.unwrap(), b"newest");
    }
}

#[cfg(test)]
mod listing_tests {
    use super::*;
    use crate::storage::testing::{open_two_sets, put};

    #[tokio::test(flavor = "multi_thread")]
    async fn each_key_has_one_latest_version_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();
        store.set_bucket_versioning("b", Versioning::Enabled).await.unwrap();
        for n in 0..24 {
            let key = format!("k{n:02}");
            for v in 0..4u8 {
                put(&store, "b", &key, vec![v; 300 + n]).await;
            }
            if n % 3 == 0 {
                store.delete_object("b", &key).await.unwrap();
            }
        }
        let page = store.list_object_versions("b", "", None, "", None, 1000).await.unwrap();
        let mut latest_by_key: std::collections::BTreeMap<String, Vec<(bool, i64)>> = Default::default();
        for entry in &page.entries {
            let ListEntry::Object(info) = entry else { continue };
            latest_by_key.entry(info.key.clone()).or_default().push((info.is_latest, info.modified_ns));
        }
        for (key, entries) in latest_by_key {
            let latest: Vec<usize> = (0..entries.len()).filter(|i| entries[*i].0).collect();
            assert_eq!(latest, [0], "{key}: {entries:?}");
            assert!(entries.windows(2).all(|w| w[0].1 > w[1].1), "{key}: newest first: {entries:?}");
        }
    }

    /// Paged with any page size, a version listing shows every version exactly once, in
    /// order, whatever number of versions each key has (the walk asks for as many keys as
    /// the versions per key seen so far suggest).
    #[tokio::test(flavor = "multi_thread")]
    async fn every_page_size_lists_every_version_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();
        store.set_bucket_versioning("b", Versioning::Enabled).await.unwrap();
        // 1 to 6 versions per key, in runs: many-version keys after single ones and back.
        let mut written = 0;
        for n in 0..48usize {
            let versions = [1, 1, 1, 6, 5, 2, 1, 4][n % 8];
            for v in 0..versions {
                put(&store, "b", &format!("k{n:02}"), vec![v as u8; 10]).await;
                written += 1;
            }
        }
        let ids = |entries: &[ListEntry]| -> Vec<(String, VersionId)> {
            entries
                .iter()
                .filter_map(|e| match e {
                    ListEntry::Object(info) => Some((info.key.clone(), info.version_id)),
                    ListEntry::Prefix(_) => None,
                })
                .collect()
        };
        let whole = store.list_object_versions("b", "", None, "", None, 1000).await.unwrap();
        assert!(!whole.truncated);
        let expected = ids(&whole.entries);
        assert_eq!(expected.len(), written);
        for page_size in [1, 3, 7, 10, 50, 150] {
            let (mut listed, mut key_marker, mut version_marker) = (Vec::new(), String::new(), None);
            loop {
                let page =
                    store.list_object_versions("b", "", None, &key_marker, version_marker, page_size).await.unwrap();
                assert!(page.entries.len() <= page_size);
                listed.extend(ids(&page.entries));
                if !page.truncated {
                    break;
                }
                assert_eq!(page.entries.len(), page_size, "only the last page is short");
                key_marker = page.next_key_marker.unwrap();
                version_marker = page.next_version_id_marker;
            }
            assert_eq!(listed, expected, "pages of {page_size}");
        }
    }
}
