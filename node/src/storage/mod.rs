//! The storage engine of one node: erasure sets over local drives, buckets, objects,
//! multipart uploads, healing. The S3 layer calls it with plain Rust types; no HTTP or
//! s3s type reaches this module.
//!
//! Owns: which set holds a key, bucket existence, the public object API. Must never
//! acknowledge a write below write quorum, nor serve bytes that failed their checksum.

pub mod bootstrap;
pub mod checksum;
pub mod drive;
pub mod etag_md5;
pub mod heal;
pub mod layout;
pub mod lifecycle;
pub mod locks;
pub mod migrate;
pub mod migration;
pub mod multipart;
pub mod object_lock;
pub mod path;
pub mod registry;
pub mod set;
pub mod settle;
#[cfg(test)]
pub(crate) mod testing;
pub mod topology;
pub mod versioning;
pub mod writer;

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::format::JsonFile;
use crate::format::object::{ChecksumAlgorithm, ObjectLock, ObjectVersion, PartInfo};
use crate::format::version_id::VersionId;
use crate::metrics::Metrics;
use crate::placement::ring::{Ring, SetId};
use crate::placement::topology::TopologyRules;
use crate::placement::topology::{SetState, Topology};

use set::{ErasureSet, Listing, Selector};
pub use topology::TopologyChangeError;
pub use versioning::{Deleted, VersionsPage};

/// Largest object a single PUT may upload (the S3 limit).
pub const MAX_PUT_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * 1024;
/// Queued heal requests; beyond this, the background scan finds the object later.
pub const HEAL_QUEUE_CAPACITY: usize = 10_000;

/// The system bucket of the identity store (`iam`): one copy in every set, never moved
/// by a migration. Names starting with `.` are not valid S3 bucket names, so no user
/// bucket collides with it.
pub const IAM_BUCKET: &str = ".buckets-iam";

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
    /// The id the new version gets (set by the store from the bucket's versioning).
    pub version_id: VersionId,
    /// The new version's object lock.
    pub lock: ObjectLock,
    /// When the shard files reach stable storage (the migration defers it to one sync of
    /// each drive per batch of moves).
    pub durability: drive::Durability,
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
            version_id: VersionId::NULL,
            lock: ObjectLock::default(),
            durability: drive::Durability::Synced,
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
    pub version_id: VersionId,
    /// A delete marker (listed by ListObjectVersions; never read).
    pub delete_marker: bool,
    /// The newest version of its key (set by version listings).
    pub is_latest: bool,
    pub lock: ObjectLock,
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
            version_id: VersionId(version.version_id),
            delete_marker: version.kind == crate::format::object::VersionKind::DeleteMarker,
            is_latest: false,
            lock: version.lock,
        }
    }

    /// Whether this entry is a key listed without a readable quorum (`placeholder`).
    pub fn is_placeholder(&self) -> bool {
        self.etag.is_empty() && !self.delete_marker
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
            version_id: VersionId::NULL,
            delete_marker: false,
            is_latest: false,
            lock: ObjectLock::default(),
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
    pub set: SetId,
    pub bucket: String,
    pub key: String,
    pub deep: bool,
    /// Earlier tries that left drives without a copy (they were offline).
    pub attempt: u32,
}

pub use crate::format::bucket::{BucketMeta, CorsRule, PublicAccessBlock, Versioning};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ns: i64,
    /// Its metadata as a quorum of drives holds it (versioning and the other settings).
    pub meta: BucketMeta,
}

impl BucketInfo {
    pub fn versioning(&self) -> Versioning {
        self.meta.versioning
    }
}

/// What a generation of the topology places objects with.
struct Placement {
    topology: Arc<Topology>,
    ring: Arc<Ring>,
    /// The topology's non-removed sets, in topology order.
    sets: Arc<Vec<Arc<ErasureSet>>>,
}

pub struct Store {
    pub cluster_id: Uuid,
    /// The topology, its ring and the sets this store runs, replaced together when a
    /// new generation is installed.
    placement: std::sync::RwLock<Placement>,
    pub metrics: Arc<Metrics>,
    /// This node's cache of registry lookups.
    pub registry: registry::Registry,
    /// Wakes the healer for a full scan (a drive came back empty, for example).
    pub scan_now: Notify,
    /// Wakes the migration engine (a new topology, a resumed migration).
    pub migrate_now: Notify,
    /// S3 requests in flight on this node; the migration engine yields to them.
    pub user_requests: std::sync::atomic::AtomicUsize,
    /// Where the moving passes that run alongside the counting passes got to.
    movers: migration::MoverCursors,
    /// Sets being added: opened and prepared, installed when their topology is applied.
    pending_sets: std::sync::Mutex<std::collections::HashMap<SetId, Arc<ErasureSet>>>,
    /// Opens the drives of sets added at runtime (a lone node's local paths by default).
    opener: std::sync::OnceLock<Arc<dyn bootstrap::SetOpener>>,
    /// The store's lock table, shared by its sets: a key moving between sets is one lock,
    /// and topology changes take theirs here too (`lock_topology`).
    locks: Arc<locks::NamespaceLocks>,
    /// The length of a lifecycle day (set at start; a day unless shortened for tests).
    lifecycle_day: std::sync::OnceLock<std::time::Duration>,
    /// Recently read bucket settings: for deciding requests (policies, versioning and
    /// object lock of a write) and reporting them (x-amz-expiration).
    settings_cache: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, Arc<BucketMeta>)>>,
    /// How the other nodes hear that a bucket's settings changed and are asked to fence
    /// (set once, in a cluster).
    peer_calls: std::sync::OnceLock<Arc<dyn PeerCalls>>,
    /// Writes in flight that place a key by the ring, by the generation they began under.
    placed_writes: settle::PlacedWrites,
    /// The generation this node last found settled (`settle`; it counts only under the
    /// lease on it).
    settled_generation: std::sync::atomic::AtomicU64,
    /// The generation this node holds the lease on, and until when (nanoseconds after
    /// `lease_epoch`).
    lease_generation: std::sync::atomic::AtomicU64,
    lease_until: std::sync::atomic::AtomicU64,
    lease_epoch: std::time::Instant,
    /// The previous generation's ring, when the current one began from a settled one.
    base_ring: std::sync::RwLock<Option<settle::BaseRing>>,
    /// The generation whose `Base` this node last looked for.
    base_checked: std::sync::atomic::AtomicU64,
    /// When this node may next check whether placement is settled, and how many checks
    /// in a row failed (`settle`).
    next_settle_check: std::sync::Mutex<settle::NextCheck>,
}

/// Calls on the other nodes of a cluster: drop cached settings of a bucket; fence.
#[async_trait::async_trait]
pub trait PeerCalls: Send + Sync {
    /// Returns once every peer answered or timed out (a peer that missed it keeps its
    /// copy at most `SETTINGS_CACHE_TTL`).
    async fn forget_bucket(&self, bucket: &str);
    /// Whether every peer holds the fence for `generation` (`Store::fence_local`).
    async fn fence(&self, generation: u64) -> bool;
}

/// How long a bucket's settings are reused for deciding requests and for an
/// `x-amz-expiration` answer.
const SETTINGS_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Buckets whose settings the cache keeps at most.
const SETTINGS_CACHE_ENTRIES: usize = 1024;

/// A change of an object's stored headers (its tags), or a refusal.
pub type HeaderChange<'a> = dyn Fn(&mut Vec<(String, String)>) -> StoreResult<()> + Send + Sync + 'a;

/// A change of a version's metadata in place (its tags, its object lock), or a refusal.
/// It must not touch what identifies the version's data.
pub type VersionChange<'a> = dyn Fn(&mut ObjectVersion) -> StoreResult<()> + Send + Sync + 'a;

/// What `Store::locate` does in the set it tries, to the version a selector names.
enum Probe<'a> {
    Head(Selector),
    Read(Selector, &'a ReadPlan),
    /// Under the key's write lock, held by the caller.
    UpdateVersion(Selector, &'a VersionChange<'a>),
}

enum Found {
    Head(ObjectInfo),
    Read(ObjectRead),
}

impl Probe<'_> {
    async fn run(&self, set: &Arc<ErasureSet>, bucket: &str, key: &str) -> StoreResult<Found> {
        match self {
            Probe::Head(selector) => set.head(bucket, key, *selector).await.map(|(info, _)| Found::Head(info)),
            Probe::Read(selector, plan) => {
                set.read_object(bucket, key, *selector, plan).await.map(|(info, start, length, stream)| {
                    Found::Read(ObjectRead { info, start, length, body: Box::pin(stream) })
                })
            }
            Probe::UpdateVersion(selector, change) => {
                set.update_version_locked(bucket, key, *selector, *change).await.map(Found::Head)
            }
        }
    }
}

/// The bucket metadata a set's drives agree on: the newest that `quorum` of them hold, or
/// (a settings change cut short below quorum) the most common.
fn settled_meta(metas: &[BucketMeta], quorum: usize) -> Option<BucketMeta> {
    let count = |meta: &BucketMeta| metas.iter().filter(|m| *m == meta).count();
    metas
        .iter()
        .filter(|m| count(m) >= quorum)
        .max_by_key(|m| m.updated_ns)
        .or_else(|| metas.iter().max_by_key(|m| (count(m), m.updated_ns)))
        .cloned()
}

/// The id a new version gets in a bucket with this versioning.
fn new_version_id(versioning: Versioning) -> VersionId {
    match versioning {
        Versioning::Enabled => VersionId::new_time_ordered(),
        Versioning::Unversioned | Versioning::Suspended => VersionId::NULL,
    }
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
        assert_eq!(ids, sets.iter().map(|s| s.id).collect::<Vec<_>>(), "one erasure set per topology set");
        let locks = sets[0].locks.clone();
        assert!(sets.iter().all(|s| Arc::ptr_eq(&s.locks, &locks)), "the sets of a store share its lock table");
        Store {
            cluster_id: topology.cluster_id,
            placement: std::sync::RwLock::new(Placement {
                ring: Arc::new(topology.ring()),
                topology: Arc::new(topology),
                sets: Arc::new(sets),
            }),
            registry: registry::Registry::new(registry::DEFAULT_CACHE_ENTRIES, metrics.clone()),
            metrics,
            scan_now: Notify::new(),
            migrate_now: Notify::new(),
            user_requests: std::sync::atomic::AtomicUsize::new(0),
            movers: Default::default(),
            pending_sets: Default::default(),
            opener: std::sync::OnceLock::new(),
            locks,
            lifecycle_day: std::sync::OnceLock::new(),
            settings_cache: Default::default(),
            peer_calls: std::sync::OnceLock::new(),
            placed_writes: Default::default(),
            settled_generation: std::sync::atomic::AtomicU64::new(0),
            lease_generation: std::sync::atomic::AtomicU64::new(0),
            lease_until: std::sync::atomic::AtomicU64::new(0),
            lease_epoch: std::time::Instant::now(),
            base_ring: std::sync::RwLock::new(None),
            base_checked: std::sync::atomic::AtomicU64::new(0),
            next_settle_check: Default::default(),
        }
    }

    /// The calls on the other nodes (set once, by the server, in a cluster).
    pub fn set_peer_calls(&self, peers: Arc<dyn PeerCalls>) {
        let _ = self.peer_calls.set(peers);
    }

    /// Sets the length of a lifecycle day (once, at start).
    pub fn set_lifecycle_day(&self, day: std::time::Duration) {
        let _ = self.lifecycle_day.set(day);
    }

    /// The `x-amz-expiration` of an object version: when a lifecycle rule of its bucket
    /// expires it, and which (`expiry-date="…", rule-id="…"`).
    pub async fn expiration_header(&self, info: &ObjectInfo) -> Option<String> {
        if info.delete_marker {
            return None;
        }
        let meta = self.bucket_settings(&info.bucket).await.ok()?;
        if meta.lifecycle.is_empty() {
            return None;
        }
        let day = self.lifecycle_day.get().copied().unwrap_or(lifecycle::LifecycleConfig::default().day);
        let tags: Vec<(String, String)> = info
            .header("x-amz-tagging")
            .map(|v| form_urlencoded::parse(v.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
            .unwrap_or_default();
        let facts = crate::lifecycle::VersionFacts {
            size: info.size,
            tags: &tags,
            modified_ns: info.modified_ns,
            delete_marker: false,
        };
        let day_ns = i64::try_from(day.as_nanos()).unwrap_or(i64::MAX).max(1);
        let (due_ns, rule) = crate::lifecycle::expiry(&meta.lifecycle, &info.key, &facts, day_ns)?;
        let due = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(due_ns).unwrap_or(0));
        Some(format!("expiry-date=\"{}\", rule-id=\"{rule}\"", httpdate::fmt_http_date(due)))
    }

    /// A bucket's settings for deciding requests (its policy) and reporting them
    /// (`x-amz-expiration`): read from the drives at most once per `SETTINGS_CACHE_TTL`,
    /// so another node's change is seen within that time (this node's at once). Shared,
    /// not copied: every request of a bucket reads the same settings.
    pub async fn bucket_settings(&self, bucket: &str) -> StoreResult<Arc<BucketMeta>> {
        let cached = {
            let cache = self.settings_cache.lock().expect("settings cache");
            cache.get(bucket).filter(|(at, _)| at.elapsed() < SETTINGS_CACHE_TTL).map(|(_, meta)| meta.clone())
        };
        if let Some(meta) = cached {
            return Ok(meta);
        }
        let meta = Arc::new(self.head_bucket(bucket).await?.meta);
        let mut cache = self.settings_cache.lock().expect("settings cache");
        if cache.len() >= SETTINGS_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(bucket.to_string(), (std::time::Instant::now(), meta.clone()));
        Ok(meta)
    }

    /// Drops this node's cached settings of `bucket` (a peer changed them).
    pub fn forget_settings(&self, bucket: &str) {
        self.settings_cache.lock().expect("settings cache").remove(bucket);
    }

    /// Drops every node's cached settings of `bucket`, after a change: a write through
    /// any node decides with the new settings from then on.
    async fn forget_settings_everywhere(&self, bucket: &str) {
        self.forget_settings(bucket);
        if let Some(peers) = self.peer_calls.get() {
            peers.forget_bucket(bucket).await;
        }
    }

    /// Changes a bucket's settings: `change` gets those a quorum holds now.
    pub async fn update_bucket_settings(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut BucketMeta) -> StoreResult<()>,
    ) -> StoreResult<BucketMeta> {
        let info = self.head_bucket(bucket).await?;
        let mut meta = info.meta.clone();
        change(&mut meta)?;
        meta.updated_ns = set::now_ns().max(info.meta.updated_ns + 1);
        self.write_bucket_meta(bucket, &meta).await?;
        Ok(meta)
    }

    /// The lock table (a cluster makes its writers lock on a majority of nodes too).
    pub fn locks(&self) -> &locks::NamespaceLocks {
        &self.locks
    }

    /// The key's write lock, the same whichever set the key is in.
    pub async fn lock_key(&self, bucket: &str, key: &str) -> StoreResult<locks::WriteGuard> {
        self.locks.write(&ErasureSet::lock_name(bucket, key)).await
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.placement.read().expect("placement lock").topology.clone()
    }

    /// The sets in service (not removed), in topology order.
    pub fn sets(&self) -> Arc<Vec<Arc<ErasureSet>>> {
        self.placement.read().expect("placement lock").sets.clone()
    }

    /// The set that holds an object: where the topology's ring places it.
    pub fn set_for(&self, bucket: &str, key: &str) -> Arc<ErasureSet> {
        let placement = self.placement.read().expect("placement lock");
        let id = placement.ring.locate(bucket, key);
        placement.sets.iter().find(|s| s.id == id).expect("the ring names a set in service").clone()
    }

    /// The sets in the order a listing must read them while objects move: draining sets
    /// (which only give objects away) first, then the others in topology order (sets added
    /// later come last). A move commits in its target before it deletes its source, so an
    /// object moving from an earlier-listed set to a later one is seen in one or the other,
    /// whenever the move happens during the listing.
    fn sets_in_listing_order(&self) -> Vec<Arc<ErasureSet>> {
        let topology = self.topology();
        let draining: std::collections::HashSet<SetId> =
            topology.sets().filter(|(_, s)| s.state == SetState::Draining).map(|(_, s)| s.id).collect();
        let (mut first, rest): (Vec<_>, Vec<_>) = self.sets().iter().cloned().partition(|s| draining.contains(&s.id));
        first.extend(rest);
        first
    }

    /// The set with topology id `id`, if this store runs it.
    pub fn set_by_id(&self, id: SetId) -> Option<Arc<ErasureSet>> {
        self.sets().iter().find(|s| s.id == id).cloned()
    }

    /// The topology id of a set of this store.
    pub fn id_of(&self, set: &Arc<ErasureSet>) -> SetId {
        set.id
    }

    /// Every drive of every set in service.
    pub fn all_drives(&self) -> Vec<Arc<dyn drive::Drive>> {
        self.sets().iter().flat_map(|s| s.drives().iter().cloned()).collect()
    }

    /// Ready to serve: every set has write quorum of online drives.
    pub fn is_ready(&self) -> bool {
        self.sets().iter().all(|s| s.online_drives() >= s.erasure().write_quorum())
    }

    // ---- buckets ----

    /// How many drives of each set hold the bucket's metadata, and its creation time.
    async fn bucket_votes(&self, bucket: &str) -> Vec<(usize, usize, Vec<BucketMeta>)> {
        let mut out = Vec::new();
        for set in self.sets().iter() {
            let drives = set.drives().to_vec();
            let name = bucket.to_string();
            let (votes, failed, metas) = blocking(move || {
                let mut votes = 0;
                let mut failed = 0;
                let mut metas = Vec::new();
                for drive in drives {
                    if !drive.is_online() {
                        failed += 1;
                        continue;
                    }
                    match drive.read_bucket_meta(&name) {
                        Ok(Some(bytes)) => {
                            votes += 1;
                            metas.extend(BucketMeta::decode(&bytes));
                        }
                        Ok(None) => {}
                        Err(_) => failed += 1,
                    }
                }
                (votes, failed, metas)
            })
            .await;
            out.push((votes, failed, metas));
        }
        out
    }

    pub async fn head_bucket(&self, bucket: &str) -> StoreResult<BucketInfo> {
        let votes = self.bucket_votes(bucket).await;
        let mut agreed: Vec<BucketMeta> = Vec::new();
        for (set, (count, failed, metas)) in self.sets().iter().zip(votes) {
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
            agreed.extend(settled_meta(&metas, quorum));
        }
        // A settings change reaches every set; the newest one a set's quorum holds wins.
        let meta = agreed.into_iter().max_by_key(|m| m.updated_ns).unwrap_or_default();
        Ok(BucketInfo { name: bucket.to_string(), created_ns: meta.created_ns, meta })
    }

    /// Changes the bucket's versioning: Enabled or Suspended (a versioned bucket never
    /// becomes unversioned again).
    pub async fn set_bucket_versioning(&self, bucket: &str, versioning: Versioning) -> StoreResult<()> {
        if versioning == Versioning::Unversioned {
            return Err(StoreError::InvalidRequest("versioning can only be Enabled or Suspended".into()));
        }
        let info = self.head_bucket(bucket).await?;
        if info.meta.object_lock.is_some() && versioning != Versioning::Enabled {
            return Err(StoreError::InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed."
                    .into(),
            ));
        }
        let meta = BucketMeta { versioning, updated_ns: set::now_ns().max(info.meta.updated_ns + 1), ..info.meta };
        self.write_bucket_meta(bucket, &meta).await
    }

    /// Writes a bucket's metadata on every drive, with write quorum in every set.
    async fn write_bucket_meta(&self, bucket: &str, meta: &BucketMeta) -> StoreResult<()> {
        self.forget_settings(bucket);
        let meta = meta.encode();
        for set in self.sets().iter() {
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
                    operation: "write bucket settings",
                    needed: quorum,
                    available: succeeded,
                });
            }
        }
        self.forget_settings_everywhere(bucket).await;
        Ok(())
    }

    pub async fn make_bucket(&self, bucket: &str) -> StoreResult<()> {
        self.make_bucket_with(bucket, BucketMeta::default()).await
    }

    /// Creates a bucket with the settings of `meta` (its creation time set now).
    pub(crate) async fn make_bucket_with(&self, bucket: &str, meta: BucketMeta) -> StoreResult<()> {
        match self.head_bucket(bucket).await {
            Ok(_) => return Err(StoreError::BucketAlreadyOwnedByYou),
            Err(StoreError::NoSuchBucket) => {}
            Err(e) => return Err(e),
        }
        self.write_bucket_meta(bucket, &BucketMeta { created_ns: set::now_ns(), ..meta }).await
    }

    /// Whether the bucket holds nothing: no object, no version, no delete marker (one
    /// listing entry per set at most).
    pub async fn bucket_is_empty(&self, bucket: &str) -> StoreResult<bool> {
        for set in self.sets().iter() {
            let found = set.list(bucket, "", None, "", 1, Listing::AllKeys).await?;
            if !found.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub async fn delete_bucket(&self, bucket: &str) -> StoreResult<()> {
        self.head_bucket(bucket).await?;
        self.forget_settings(bucket);
        // Any version, a delete marker too, keeps a bucket from being deleted.
        if !self.bucket_is_empty(bucket).await? {
            return Err(StoreError::BucketNotEmpty);
        }
        for set in self.sets().iter() {
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
        self.forget_settings_everywhere(bucket).await;
        Ok(())
    }

    /// The users' buckets (system buckets such as the registry are not listed).
    pub async fn list_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        let mut buckets = self.list_all_buckets().await?;
        buckets.retain(|b| !b.name.starts_with('.'));
        Ok(buckets)
    }

    /// Creates the system buckets on every online drive that lacks them (at start, and
    /// when healing finds a drive that came back empty).
    pub async fn ensure_system_buckets(&self) {
        let meta = BucketMeta::default().encode();
        let drives: Vec<Arc<dyn drive::Drive>> = self.all_drives();
        blocking(move || {
            for drive in drives.iter().filter(|d| d.is_online()) {
                for bucket in [registry::REGISTRY_BUCKET, IAM_BUCKET] {
                    if matches!(drive.read_bucket_meta(bucket), Ok(None))
                        && let Err(e) = drive.make_bucket(bucket, &meta)
                    {
                        tracing::warn!(drive = %drive.name(), bucket, error = %e, "could not create a system bucket");
                    }
                }
            }
        })
        .await;
    }

    /// Every bucket a read quorum of the first set's drives hold, system buckets included.
    pub async fn list_all_buckets(&self) -> StoreResult<Vec<BucketInfo>> {
        let set = &self.sets()[0];
        let drives = set.drives().to_vec();
        let found = blocking(move || {
            let mut counts: std::collections::BTreeMap<String, (usize, Vec<BucketMeta>)> = Default::default();
            for drive in drives.iter().filter(|d| d.is_online()) {
                if let Ok(buckets) = drive.list_buckets() {
                    for (name, meta) in buckets {
                        let entry = counts.entry(name).or_default();
                        entry.0 += 1;
                        entry.1.extend(BucketMeta::decode(&meta));
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
            .map(|(name, (_, metas))| {
                let meta = settled_meta(&metas, quorum).unwrap_or_default();
                BucketInfo { name, created_ns: meta.created_ns, meta }
            })
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

    /// After a topology change: removes copies of a key from every set but `keep` (after a
    /// write or a delete there) and, when `keep` is the ring's set, the key's registry
    /// record; only from the one other set it can be in when that is known
    /// (`Store::place_of`), from none once placement is settled. The caller holds the key's write lock, so a migration cannot move a copy
    /// back in between. Before any change there is nothing to clear.
    pub(crate) async fn clear_stale_copies_locked(
        &self,
        bucket: &str,
        key: &str,
        keep: &Arc<ErasureSet>,
        id: VersionId,
    ) -> StoreResult<()> {
        let place = self.place_of(bucket, key);
        // Settled, or the two sets a key can be in while this generation migrates from a
        // settled one: the others of them are cleared; no registry record is needed.
        if let Some(others) = place.others_than(keep) {
            for set in &others {
                match set.delete_version_locked(bucket, key, id).await {
                    Ok(_) | Err(StoreError::NoSuchKey) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(());
        }
        let home = place.home;
        for set in self.sets().iter().filter(|s| !Arc::ptr_eq(s, keep)) {
            match set.delete_version_locked(bucket, key, id).await {
                Ok(_) | Err(StoreError::NoSuchKey) => {}
                Err(e) => return Err(e),
            }
        }
        if Arc::ptr_eq(keep, &home) {
            self.delete_record(&home, bucket, key).await?;
        } else {
            // The object is committed; a record that cannot be written now only costs
            // later readers the fallback through every set.
            let location = registry::Location { set: self.id_of(keep), generation: self.topology().generation };
            if let Err(e) = self.write_record(&home, bucket, key, location).await {
                tracing::warn!(bucket, key, error = %e, "could not record an object's location");
            }
        }
        Ok(())
    }

    /// Runs `probe` on the set that holds an object (contract 5). Settled (or never
    /// changed): the ring's set. Migrating from a settled generation: the ring's set, the
    /// previous ring's set, the ring's set once more. Otherwise: the cached location, then
    /// the ring's set, then the registry record, then every other set, then the ring's set
    /// once more. `probe` answering `NoSuchKey` means "not in this set"; any other answer
    /// is final. A wrong hint is forgotten; an object found only by asking every set gets a
    /// record, so the next lookup on any node takes one step.
    ///
    /// A set that holds copies of the object too few to read (`LostBeyondParity`, or a
    /// move cut short in its target) does not end the search: another set may hold it
    /// whole. Only when none does is that loss the answer, never `NoSuchKey`.
    async fn locate(&self, bucket: &str, key: &str, what: &Probe<'_>) -> StoreResult<Found> {
        let lost = std::sync::Mutex::new(None);
        match self.locate_readable(bucket, key, what, &lost).await {
            Err(StoreError::NoSuchKey) => Err(lost.into_inner().expect("lost").unwrap_or(StoreError::NoSuchKey)),
            other => other,
        }
    }

    async fn locate_readable(
        &self,
        bucket: &str,
        key: &str,
        what: &Probe<'_>,
        lost: &std::sync::Mutex<Option<StoreError>>,
    ) -> StoreResult<Found> {
        // A set without the version asked for is "not here" too; the answer, if no set
        // has it, is the most telling: a loss, else no such version.
        let probe = async |set: &Arc<ErasureSet>| match what.run(set, bucket, key).await {
            Err(error @ StoreError::LostBeyondParity { .. }) => {
                let mut answer = lost.lock().expect("lost");
                if !matches!(*answer, Some(StoreError::LostBeyondParity { .. })) {
                    *answer = Some(error);
                }
                Err(StoreError::NoSuchKey)
            }
            Err(StoreError::NoSuchVersion) => {
                lost.lock().expect("lost").get_or_insert(StoreError::NoSuchVersion);
                Err(StoreError::NoSuchKey)
            }
            other => other,
        };
        let place = self.place_of(bucket, key);
        if let Some(candidates) = place.candidates() {
            for set in &candidates {
                match probe(set).await {
                    Err(StoreError::NoSuchKey) => {}
                    other => return other,
                }
            }
            // A move commits in the ring's set before it deletes the source: one that
            // happened between the first two probes is found by a third.
            if candidates.len() > 1 {
                match probe(&place.home).await {
                    Err(StoreError::NoSuchKey) => {}
                    other => return other,
                }
            }
            if self.still_holds(&place) {
                return Err(StoreError::NoSuchKey);
            }
            // The topology changed, or the lease ran out, while looking: look everywhere.
        }
        let home = self.set_for(bucket, key).clone();
        let hash = registry::object_hash(bucket, key);
        let mut tried: Vec<Arc<ErasureSet>> = Vec::new();
        if let Some(location) = self.registry.cached(hash) {
            match self.set_by_id(location.set) {
                Some(set) => {
                    match probe(&set).await {
                        Err(StoreError::NoSuchKey) => self.registry.forget(hash),
                        other => return other,
                    }
                    tried.push(set);
                }
                None => self.registry.forget(hash),
            }
        }
        if !tried.iter().any(|s| Arc::ptr_eq(s, &home)) {
            match probe(&home).await {
                Err(StoreError::NoSuchKey) => tried.push(home.clone()),
                other => return other,
            }
        }
        if let Some(location) = self.read_record(&home, bucket, key).await
            && let Some(set) = self.set_by_id(location.set)
            && !tried.iter().any(|s| Arc::ptr_eq(s, &set))
        {
            match probe(&set).await {
                Err(StoreError::NoSuchKey) => tried.push(set),
                other => {
                    self.registry.remember(hash, location);
                    return other;
                }
            }
        }
        for set in self.sets().iter().filter(|s| !tried.iter().any(|t| Arc::ptr_eq(s, t))) {
            match probe(set).await {
                Err(StoreError::NoSuchKey) => continue,
                Err(e) => return Err(e),
                Ok(found) => {
                    self.metrics.registry_fallback_reads.inc();
                    let location = registry::Location { set: self.id_of(set), generation: self.topology().generation };
                    if let Err(e) = self.write_record(&home, bucket, key, location).await {
                        tracing::debug!(bucket, key, error = %e, "could not record an object's location");
                    }
                    return Ok(found);
                }
            }
        }
        // A migration commits an object in its ring set before deleting the source copy:
        // one that moved while this lookup went from the ring's set to the others is in
        // the ring's set now.
        probe(&home).await
    }

    /// Writes a new version of the key: the null version while the bucket is unversioned
    /// or suspended (replacing the null version, keeping the others), a new id while it is
    /// versioned.
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: BodyStream,
        mut options: PutOptions,
    ) -> StoreResult<ObjectInfo> {
        path::object_path(key).map_err(set::key_error)?;
        // Settings changed through any node are seen at once (`forget_settings_everywhere`);
        // a bucket deleted meanwhile fails the commit on its drives.
        let settings = self.bucket_settings(bucket).await?;
        let versioning = settings.versioning;
        options.version_id = new_version_id(versioning);
        options.lock = Store::lock_for_new_version(&settings, options.lock, set::now_ns())?;
        let _placing = self.begin_placed_write();
        // A condition is checked against the key's versions wherever they are: gathered
        // into the ring's set first, as a versioned write gathers them.
        let gather = !versioning.is_unversioned() || options.precondition.is_some();
        let home = self.set_for(bucket, key).clone();
        let prepared = home.prepare_put(bucket, key, body, options).await?;
        // Commit and clear the other sets under one hold of the key's lock.
        let _guard = match self.lock_key(bucket, key).await {
            Ok(guard) => guard,
            Err(e) => {
                home.discard_prepared(prepared).await;
                return Err(e);
            }
        };
        if gather {
            self.gather_versions_locked(bucket, key, &home).await?;
        }
        let id = prepared.version_id();
        let info = home.commit_prepared(prepared, true).await?;
        self.clear_stale_copies_locked(bucket, key, &home, id).await?;
        self.metrics.s3_received_bytes.inc_by(info.size);
        Ok(info)
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> StoreResult<ObjectInfo> {
        self.head_version(bucket, key, Selector::Latest).await
    }

    /// The object version `selector` names (the latest, or one by id).
    pub async fn head_version(&self, bucket: &str, key: &str, selector: Selector) -> StoreResult<ObjectInfo> {
        match self.locate(bucket, key, &Probe::Head(selector)).await {
            Ok(Found::Head(info)) => Ok(info),
            Ok(Found::Read(read)) => Ok(read.info),
            Err(e) => Err(self.explain_missing(bucket, e).await),
        }
    }

    /// Streams the part of an object that `plan` chooses (start, length) after checking its
    /// conditions against the version being read; both happen under the object's read lock.
    pub async fn get_object(&self, bucket: &str, key: &str, plan: ReadPlan) -> StoreResult<ObjectRead> {
        self.get_version(bucket, key, Selector::Latest, plan).await
    }

    /// `get_object` of the version `selector` names.
    pub async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        selector: Selector,
        plan: ReadPlan,
    ) -> StoreResult<ObjectRead> {
        match self.locate(bucket, key, &Probe::Read(selector, &plan)).await {
            Ok(Found::Read(read)) => Ok(read),
            Ok(Found::Head(_)) => unreachable!("a read probe returns a read"),
            Err(e) => Err(self.explain_missing(bucket, e).await),
        }
    }

    /// Changes the stored headers of an object's current version in place (its tags),
    /// wherever the object is (contract 5), under the key's write lock: the data, ETag and
    /// size stay. Returns the object as it is afterwards.
    pub async fn update_object_headers(
        &self,
        bucket: &str,
        key: &str,
        selector: Selector,
        change: &HeaderChange<'_>,
    ) -> StoreResult<ObjectInfo> {
        self.update_object_version(bucket, key, selector, &|version: &mut ObjectVersion| change(&mut version.headers))
            .await
    }

    /// Changes the metadata of the version `selector` names in place (its data, ETag,
    /// size and Last-Modified stay), wherever the key is, under the key's write lock.
    /// Returns the version as it is afterwards.
    pub async fn update_object_version(
        &self,
        bucket: &str,
        key: &str,
        selector: Selector,
        change: &VersionChange<'_>,
    ) -> StoreResult<ObjectInfo> {
        path::object_path(key).map_err(set::key_error)?;
        self.head_bucket(bucket).await?;
        let _guard = self.lock_key(bucket, key).await?;
        match self.locate(bucket, key, &Probe::UpdateVersion(selector, change)).await {
            Ok(Found::Head(info)) => Ok(info),
            Ok(Found::Read(_)) => unreachable!("an update probe returns the object's info"),
            Err(e) => Err(self.explain_missing(bucket, e).await),
        }
    }

    /// DELETE without a version id: the object goes from an unversioned bucket; a
    /// versioned (or suspended) bucket gets a delete marker instead.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Deleted> {
        self.delete_object_version(bucket, key, None, false).await
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
        for set in self.sets_in_listing_order() {
            let set = &set;
            for entry in set.list(bucket, prefix, delimiter, marker, limit, Listing::Latest).await? {
                // A key found in several sets (before migration cleans up) is shown as the
                // copy in the set the ring names, which is the one reads return.
                let home = match &entry {
                    ListEntry::Object(info) => Arc::ptr_eq(set, &self.set_for(bucket, &info.key)),
                    ListEntry::Prefix(_) => true,
                };
                merged.push((entry, home));
            }
        }
        if self.sets().len() > 1 {
            merged.sort_by(|a, b| a.0.name().as_bytes().cmp(b.0.name().as_bytes()).then(b.1.cmp(&a.1)));
            merged.dedup_by(|a, b| a.0.name() == b.0.name());
        }
        merged.truncate(limit);
        Ok(merged.into_iter().map(|(entry, _)| entry).collect())
    }
}
