//! The storage engine of one node: erasure sets over local drives, buckets, objects,
//! multipart uploads, healing. The S3 layer calls it with plain Rust types; no HTTP or
//! s3s type reaches this module.
//!
//! Owns: which set holds a key, bucket existence, the public object API. Must never
//! acknowledge a write below write quorum, nor serve bytes that failed their checksum.

pub mod bootstrap;
pub mod checksum;
pub mod drive;
pub mod heal;
pub mod locks;
pub mod multipart;
pub mod path;
pub mod set;
pub mod writer;

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::format::object::{ChecksumAlgorithm, ObjectVersion, PartInfo};
use crate::format::{decode_frame, encode_frame};
use crate::metrics::Metrics;
use crate::placement::ring::{Ring, SetId};
use crate::placement::topology::{SetState, TOPOLOGY_FILE, Topology, TopologyError};

#[derive(Debug, thiserror::Error)]
pub enum TopologyChangeError {
    #[error("the topology is at generation {actual}, not the expected {expected}")]
    Conflict { expected: u64, actual: u64 },
    #[error("invalid topology: {0}")]
    Invalid(TopologyError),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Store(StoreError),
}
use set::ErasureSet;

/// Largest object a single PUT may upload (the S3 limit).
pub const MAX_PUT_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Queued heal requests; beyond this, the background scan finds the object later.
pub const HEAL_QUEUE_CAPACITY: usize = 10_000;

pub type BodyStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + Sync>>;
/// A check run under the object's write lock against the current version, if any.
pub type Precondition = Box<dyn FnOnce(Option<&ObjectInfo>) -> StoreResult<()> + Send + Sync>;
/// Decides, from the version about to be read, which bytes to read: (start, length). It
/// is where GET conditions (If-Match, …) and ranges are checked.
pub type ReadPlan = Box<dyn Fn(&ObjectInfo) -> StoreResult<(u64, u64)> + Send + Sync>;

/// An object being read: the version, the byte range chosen, and its bytes.
pub struct ObjectRead {
    pub info: ObjectInfo,
    pub start: u64,
    pub length: u64,
    pub body: BodyStream,
}

/// Compares the checksums computed while streaming with those the client sent (which,
/// for trailing checksums, are only known once the body has ended).
pub type ChecksumVerifier = Box<dyn FnOnce(&[(ChecksumAlgorithm, String)]) -> StoreResult<()> + Send + Sync>;

pub struct PutOptions {
    pub headers: Vec<(String, String)>,
    pub content_length: Option<u64>,
    pub expected_md5: Option<[u8; 16]>,
    pub checksum_algorithms: Vec<ChecksumAlgorithm>,
    pub verify_checksums: Option<ChecksumVerifier>,
    pub precondition: Option<Precondition>,
    pub max_size: u64,
}

impl Default for PutOptions {
    fn default() -> Self {
        PutOptions {
            headers: Vec::new(),
            content_length: None,
            expected_md5: None,
            checksum_algorithms: Vec::new(),
            verify_checksums: None,
            precondition: None,
            max_size: MAX_PUT_OBJECT_BYTES,
        }
    }
}

/// What S3 tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub modified_ns: i64,
    pub headers: Vec<(String, String)>,
    pub checksums: Vec<(ChecksumAlgorithm, String)>,
    pub parts: Vec<PartInfo>,
}

impl ObjectInfo {
    pub fn from_version(bucket: &str, key: &str, version: &ObjectVersion) -> Self {
        ObjectInfo {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: version.size,
            etag: version.etag.clone(),
            modified_ns: version.modified_ns,
            headers: version.headers.clone(),
            checksums: version.checksums.clone(),
            parts: version.parts.clone(),
        }
    }

    fn placeholder(bucket: &str, key: &str) -> Self {
        ObjectInfo {
            bucket: bucket.into(),
            key: key.into(),
            size: 0,
            etag: String::new(),
            modified_ns: 0,
            headers: Vec::new(),
            checksums: Vec::new(),
            parts: Vec::new(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListEntry {
    Object(ObjectInfo),
    Prefix(String),
}

impl ListEntry {
    pub fn name(&self) -> &str {
        match self {
            ListEntry::Object(info) => &info.key,
            ListEntry::Prefix(prefix) => prefix,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HealRequest {
    pub set: usize,
    pub bucket: String,
    pub key: String,
    pub deep: bool,
    /// Earlier tries that left drives without a copy (they were offline).
    pub attempt: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketMeta {
    pub created_ns: i64,
}

const BUCKET_META_MAGIC: &[u8; 8] = b"BKTBUCKT";
const BUCKET_META_VERSION: u16 = 1;

impl BucketMeta {
    pub fn encode(&self) -> Vec<u8> {
        encode_frame(BUCKET_META_MAGIC, BUCKET_META_VERSION, &serde_json::to_vec(self).expect("serialises"))
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (_, body) = decode_frame(BUCKET_META_MAGIC, BUCKET_META_VERSION, bytes).ok()?;
        serde_json::from_slice(body).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ns: i64,
}

pub struct Store {
    pub cluster_id: Uuid,
    /// The topology and its ring, replaced together when a new generation is applied.
    placement: std::sync::RwLock<(Arc<Topology>, Arc<Ring>)>,
    sets: Vec<Arc<ErasureSet>>,
    /// Index in `sets` of each set id.
    set_index: std::collections::HashMap<SetId, usize>,
    pub metrics: Arc<Metrics>,
    /// Wakes the healer for a full scan (a drive came back empty, for example).
    pub scan_now: Notify,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

impl Store {
    /// `sets` are the topology's non-removed sets, in topology order.
    pub fn new(topology: Topology, sets: Vec<Arc<ErasureSet>>, metrics: Arc<Metrics>) -> Self {
        assert!(!sets.is_empty(), "a store has at least one set");
        let ids: Vec<SetId> =
            topology.sets().filter(|(_, s)| s.state != SetState::Removed).map(|(_, s)| s.id).collect();
        assert_eq!(ids.len(), sets.len(), "one erasure set per topology set");
        let set_index = ids.iter().enumerate().map(|(index, id)| (*id, index)).collect();
        Store {
            cluster_id: topology.cluster_id,
            placement: std::sync::RwLock::new((Arc::new(topology.clone()), Arc::new(topology.ring()))),
            sets,
            set_index,
            metrics,
            scan_now: Notify::new(),
        }
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.placement.read().expect("placement lock").0.clone()
    }

    fn ring(&self) -> Arc<Ring> {
        self.placement.read().expect("placement lock").1.clone()
    }

    /// The sets `next` keeps in service must be the ones this store runs: adding or
    /// retiring sets needs the migration engine.
    fn same_sets(&self, next: &Topology) -> Result<(), TopologyChangeError> {
        let current = self.topology();
        let serving = |t: &Topology| -> Vec<(SetId, Vec<String>)> {
            t.sets().filter(|(_, s)| s.state != SetState::Removed).map(|(_, s)| (s.id, s.drives.clone())).collect()
        };
        if serving(&current) != serving(next) {
            return Err(TopologyChangeError::Unsupported(
                "adding or removing sets needs the migration engine; this build changes set states and weights only"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Installs a newer topology already on the drives (pushed by the node that applied it,
    /// or found by the periodic check). Returns whether anything changed.
    pub fn adopt_topology(&self, next: Topology) -> Result<bool, TopologyChangeError> {
        let current = self.topology();
        if next.generation <= current.generation {
            return Ok(false);
        }
        next.validate().map_err(TopologyChangeError::Invalid)?;
        self.same_sets(&next)?;
        let ring = Arc::new(next.ring());
        *self.placement.write().expect("placement lock") = (Arc::new(next), ring);
        Ok(true)
    }

    /// Reads the topology from every reachable drive and adopts the newest generation that
    /// a majority of all drives hold (an applied topology always reaches one), then brings
    /// this node's own drives up to it. Returns whether the topology changed.
    pub async fn reload_topology(&self) -> Result<bool, TopologyChangeError> {
        let drives: Vec<Arc<dyn drive::Drive>> = self.all_drives().cloned().collect();
        let cluster_id = self.cluster_id;
        let majority = drives.len() / 2 + 1;
        let found: Vec<(bool, Option<Topology>)> = blocking(move || {
            drives
                .iter()
                .map(|d| {
                    let topology = d
                        .is_online()
                        .then(|| d.read_system_file(TOPOLOGY_FILE).ok().flatten())
                        .flatten()
                        .and_then(|bytes| Topology::decode(&bytes).ok())
                        .filter(|t| t.cluster_id == cluster_id);
                    (d.is_local(), topology)
                })
                .collect()
        })
        .await;
        let mut generations: Vec<u64> = found.iter().filter_map(|(_, t)| t.as_ref().map(|t| t.generation)).collect();
        generations.sort_unstable();
        let newest_with_majority = generations
            .iter()
            .rev()
            .find(|g| generations.iter().filter(|other| *other >= *g).count() >= majority)
            .copied();
        let Some(generation) = newest_with_majority else { return Ok(false) };
        let Some(topology) = found.iter().filter_map(|(_, t)| t.clone()).find(|t| t.generation == generation) else {
            return Ok(false);
        };
        let changed = self.adopt_topology(topology.clone())?;
        let stale_local = found.iter().any(|(local, t)| *local && t.as_ref().is_none_or(|t| t.generation < generation));
        if stale_local {
            let local: Vec<Arc<dyn drive::Drive>> = self.all_drives().filter(|d| d.is_local()).cloned().collect();
            let encoded = topology.encode();
            blocking(move || {
                for drive in local {
                    let current =
                        drive.read_system_file(TOPOLOGY_FILE).ok().flatten().and_then(|b| Topology::decode(&b).ok());
                    if current.is_none_or(|t| t.generation < generation) {
                        let _ = drive.write_system_file(TOPOLOGY_FILE, &encoded);
                    }
                }
            })
            .await;
        }
        Ok(changed)
    }

    /// Compare-and-swap of the topology: `next` replaces generation `expected` if that is
    /// still the current one, cluster-wide (under a cluster lock, checked against what a
    /// quorum of drives hold), and is written to a quorum of all drives before it is used.
    pub async fn apply_topology(&self, expected: u64, next: Topology) -> Result<Arc<Topology>, TopologyChangeError> {
        let _guard = self.sets[0].locks.write("\0topology").await.map_err(TopologyChangeError::Store)?;
        self.reload_topology().await?;
        let current = self.topology();
        if current.generation != expected {
            return Err(TopologyChangeError::Conflict { expected, actual: current.generation });
        }
        current.check_next(&next).map_err(TopologyChangeError::Invalid)?;
        self.same_sets(&next)?;
        let drives: Vec<Arc<dyn drive::Drive>> = self.all_drives().cloned().collect();
        let needed = drives.len() / 2 + 1;
        let encoded = next.encode();
        let written = blocking(move || {
            drives.iter().filter(|d| d.is_online() && d.write_system_file(TOPOLOGY_FILE, &encoded).is_ok()).count()
        })
        .await;
        if written < needed {
            return Err(TopologyChangeError::Store(StoreError::InsufficientQuorum {
                operation: "write topology",
                needed,
                available: written,
            }));
        }
        self.adopt_topology(next)?;
        Ok(self.topology())
    }

    pub fn sets(&self) -> &[Arc<ErasureSet>] {
        &self.sets
    }

    /// The set that holds an object: where the topology's ring places it.
    pub fn set_for(&self, bucket: &str, key: &str) -> &Arc<ErasureSet> {
        let id = self.ring().locate(bucket, key);
        &self.sets[self.set_index[&id]]
    }

    pub fn all_drives(&self) -> impl Iterator<Item = &Arc<dyn drive::Drive>> {
        self.sets.iter().flat_map(|s| s.drives().iter())
    }

    /// Ready to serve: every set has write quorum of online drives.
    pub fn is_ready(&self) -> bool {
        self.sets.iter().all(|s| s.online_drives() >= s.erasure().write_quorum())
    }

    // ---- buckets ----

    /// How many drives of each set hold the bucket's metadata, and its creation time.
    async fn bucket_votes(&self, bucket: &str) -> Vec<(usize, usize, Option<BucketMeta>)> {
        let mut out = Vec::new();
        for set in &self.sets {
            let drives = set.drives().to_vec();
            let name = bucket.to_string();
            let (votes, failed, meta) = blocking(move || {
                let mut votes = 0;
                let mut failed = 0;
                let mut meta = None;
                for drive in drives {
                    if !drive.is_online() {
                        failed += 1;
                        continue;
                    }
                    match drive.read_bucket_meta(&name) {
                        Ok(Some(bytes)) => {
                            votes += 1;
                            meta = meta.or(BucketMeta::decode(&bytes));
                        }
                        Ok(None) => {}
                        Err(_) => failed += 1,
                    }
                }
                (votes, failed, meta)
            })
            .await;
            out.push((votes, failed, meta));
        }
        out
    }

    pub async fn head_bucket(&self, bucket: &str) -> StoreResult<BucketInfo> {
        let votes = self.bucket_votes(bucket).await;
        let mut created_ns = None;
        for (set, (count, failed, meta)) in self.sets.iter().zip(votes) {
            let quorum = set.erasure().read_quorum();
            if count < quorum {
                if count + failed >= quorum {
                    return Err(StoreError::InsufficientQuorum {
                        operation: "read bucket",
                        needed: quorum,
                        available: count,
                    });
                }
                return Err(StoreError::NoSuchBucket);
            }
            created_ns = created_ns.or(meta.map(|m| m.created_ns));
        }
        Ok(BucketInfo { name: bucket.to_string(), created_ns: created_ns.unwrap_or(0) })
    }

    pub async fn make_bucket(&self, bucket: &str) -> StoreResult<()> {
        match self.head_bucket(bucket).await {
            Ok(_) => return Err(StoreError::BucketAlreadyOwnedByYou),
            Err(StoreError::NoSuchBucket) => {}
            Err(e) => return Err(e),
        }
        let meta = BucketMeta { created_ns: set::now_ns() }.encode();
        for set in &self.sets {
            let drives = set.drives().to_vec();
            let name = bucket.to_string();
            let meta = meta.clone();
            let succeeded = blocking(move || {
                drives.iter().filter(|d| d.is_online() && d.make_bucket(&name, &meta).is_ok()).count()
            })
            .await;
            let quorum = set.erasure().write_quorum();
            if succeeded < quorum {
                return Err(StoreError::InsufficientQuorum {
                    operation: "create bucket",
                    needed: quorum,
                    available: succeeded,
                });
            }
        }
        Ok(())
    }

    pub async fn delete_bucket(&self, bucket: &str) -> StoreResult<()> {
        self.head_bucket(bucket).await?;
        for set in &self.sets {
            let found = set.list(bucket, "", None, "", 1).await?;
            if !found.is_empty() {
                return Err(StoreError::BucketNotEmpty);
            }
        }
        for set in &self.sets {
            let drives = set.drives().to_vec();
            let name = bucket.to_string();
            let deleted = blocking(move || {
                let mut deleted = 0;
                for drive in drives.iter().filter(|d| d.is_online()) {
                    match drive.delete_bucket(&name) {
                        Ok(()) => deleted += 1,
                        Err(e) => tracing::warn!(drive = %drive.name(), error = %e, "delete bucket"),
                    }
                }
                deleted
            })
            .await;
            let quorum = set.erasure().write_quorum();
            if deleted < quorum {
                return Err(StoreError::InsufficientQuorum {
                    operation: "delete bucket",
                    needed: quorum,
                    available: deleted,
                });
            }
        }
        Ok(())
    }

    pub async fn list_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        let set = &self.sets[0];
        let drives = set.drives().to_vec();
        let found = blocking(move || {
            let mut counts: std::collections::BTreeMap<String, (usize, i64)> = Default::default();
            for drive in drives.iter().filter(|d| d.is_online()) {
                if let Ok(buckets) = drive.list_buckets() {
                    for (name, meta) in buckets {
                        let entry = counts.entry(name).or_insert((0, 0));
                        entry.0 += 1;
                        if let Some(meta) = BucketMeta::decode(&meta) {
                            entry.1 = meta.created_ns;
                        }
                    }
                }
            }
            counts
        })
        .await;
        let quorum = set.erasure().read_quorum();
        Ok(found
            .into_iter()
            .filter(|(_, (votes, _))| *votes >= quorum)
            .map(|(name, (_, created_ns))| BucketInfo { name, created_ns })
            .collect())
    }

    /// Turns NoSuchKey into NoSuchBucket when the bucket is the thing missing.
    async fn explain_missing(&self, bucket: &str, error: StoreError) -> StoreError {
        if matches!(error, StoreError::NoSuchKey | StoreError::NoSuchUpload)
            && let Err(bucket_error) = self.head_bucket(bucket).await
        {
            return bucket_error;
        }
        error
    }

    // ---- objects ----

    /// Whether an object may sit in another set than the ring names: only after the
    /// topology changed (generation > 1) in a store of several sets. Until migration moves
    /// every object to its ring set, reads fall back to the other sets and writes clear
    /// stale copies there (contract 5: placement is a hint, never the only truth).
    fn placement_may_differ(&self) -> bool {
        self.sets.len() > 1 && self.topology().generation > 1
    }

    /// Every set but the one the ring names for this key.
    fn other_sets(&self, bucket: &str, key: &str) -> Vec<Arc<ErasureSet>> {
        let home = self.set_for(bucket, key);
        self.sets.iter().filter(|s| !Arc::ptr_eq(s, home)).cloned().collect()
    }

    /// Removes copies of a key from the sets the ring does not name (after a write or a
    /// delete in the ring's set).
    pub(crate) async fn clear_stale_copies(&self, bucket: &str, key: &str) -> StoreResult<()> {
        if self.placement_may_differ() {
            for set in self.other_sets(bucket, key) {
                set.delete_object(bucket, key).await?;
            }
        }
        Ok(())
    }

    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        options: PutOptions,
    ) -> StoreResult<ObjectInfo> {
        path::object_path(key).map_err(set::key_error)?;
        self.head_bucket(bucket).await?;
        let info = self.set_for(bucket, key).put_object(bucket, key, body, options).await?;
        self.clear_stale_copies(bucket, key).await?;
        self.metrics.s3_received_bytes.inc_by(info.size);
        Ok(info)
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<ObjectInfo> {
        let mut result = self.set_for(bucket, key).head_object(bucket, key).await.map(|(info, _)| info);
        if matches!(result, Err(StoreError::NoSuchKey)) && self.placement_may_differ() {
            for set in self.other_sets(bucket, key) {
                match set.head_object(bucket, key).await {
                    Err(StoreError::NoSuchKey) => continue,
                    other => {
                        result = other.map(|(info, _)| info);
                        break;
                    }
                }
            }
        }
        match result {
            Ok(info) => Ok(info),
            Err(e) => Err(self.explain_missing(bucket, e).await),
        }
    }

    /// Streams the part of an object that `plan` chooses (start, length) after checking its
    /// conditions against the version being read; both happen under the object's read lock.
    pub async fn get_object(&self, bucket: &str, key: &str, plan: ReadPlan) -> StoreResult<ObjectRead> {
        let mut result = self.set_for(bucket, key).read_object(bucket, key, &plan).await;
        if matches!(result, Err(StoreError::NoSuchKey)) && self.placement_may_differ() {
            for set in self.other_sets(bucket, key) {
                result = set.read_object(bucket, key, &plan).await;
                if !matches!(result, Err(StoreError::NoSuchKey)) {
                    break;
                }
            }
        }
        match result {
            Ok((info, start, length, stream)) => Ok(ObjectRead { info, start, length, body: Box::pin(stream) }),
            Err(e) => Err(self.explain_missing(bucket, e).await),
        }
    }

    pub async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<()> {
        path::object_path(key).map_err(set::key_error)?;
        self.head_bucket(bucket).await?;
        self.set_for(bucket, key).delete_object(bucket, key).await?;
        self.clear_stale_copies(bucket, key).await
    }

    /// Lists up to `limit` entries after `marker`, merged across sets in key order.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        marker: &str,
        limit: usize,
    ) -> StoreResult<Vec<ListEntry>> {
        self.head_bucket(bucket).await?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut merged: Vec<(ListEntry, bool)> = Vec::new();
        for set in &self.sets {
            for entry in set.list(bucket, prefix, delimiter, marker, limit).await? {
                // A key found in several sets (before migration cleans up) is shown as the
                // copy in the set the ring names, which is the one reads return.
                let home = match &entry {
                    ListEntry::Object(info) => Arc::ptr_eq(set, self.set_for(bucket, &info.key)),
                    ListEntry::Prefix(_) => true,
                };
                merged.push((entry, home));
            }
        }
        if self.sets.len() > 1 {
            merged.sort_by(|a, b| a.0.name().as_bytes().cmp(b.0.name().as_bytes()).then(b.1.cmp(&a.1)));
            merged.dedup_by(|a, b| a.0.name() == b.0.name());
        }
        merged.truncate(limit);
        Ok(merged.into_iter().map(|(entry, _)| entry).collect())
    }
}
