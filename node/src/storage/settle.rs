//! Settling a topology change: knowing, cluster-wide, when every object is back in the
//! set the current ring names, so that writes stop clearing the other sets and reads stop
//! falling back to them (contract 5's fallbacks are for "still-migrating generations").
//!
//! Until then, every PUT and DELETE after a topology change clears the key from every
//! other set and drops its registry record, and a lookup that misses the ring's set asks
//! the others. That stays correct, but costs a PUT about twenty drive calls more, forever.
//!
//! A generation G is settled when, in this order:
//! 1. every drive of every set is online (nothing can hide on a drive that is away);
//! 2. the *fence* holds: every node serves generation G or newer and has no write in
//!    flight that chose its set by an older ring (each such write holds a `WriteTicket`
//!    stamped with the generation it began under, before it computes a set);
//! 3. no multipart upload is left in a set other than its key's ring set (uploads
//!    complete where they began; one begun before the change would land its object away
//!    from the ring's set);
//! 4. a walk of every set finds no key outside its ring set (the migration moved them
//!    all; an upload completed before step 3 looked is seen here).
//!
//! After the fence no write can place a key away from its G ring set: every write begins
//! under G or newer, and moves go to the ring's set. After step 3 no upload can complete
//! away from it. So what step 4 saw stays true while G is current, and the node that
//! checked (the one that runs the first set's migration) writes `settled-G.bkt` to a
//! majority of all drives; every node reads it and treats placement as exact for G. A
//! check that fails is tried again after 10 s, then twice as long each time up to 10
//! minutes (a check walks every key); a node that has not read the file yet keeps
//! clearing and falling back, which is only slower.
//!
//! While a generation G migrates from a settled one (or from the first), a key can only be
//! in its G ring set or in the set G−1's ring named: every copy was in the latter when G
//! was installed, writes by either ring go to one of the two, moves go from the first to
//! the second, and an upload completes where its ring put it. The change records G−1's
//! topology (`base-G.bkt`) before it installs G, and until G settles a write clears, and a
//! lookup asks, that one other set (`Elsewhere::Only`) instead of every set and the
//! registry. Without the file (G−1 was still migrating) it is every set, as before.
//!
//! Both narrowings hold only under a lease on G: for `LEASE` after a majority read that
//! found no `unsettled-G.bkt` (renewed every second). A topology change away from G first
//! writes that file to a majority and, in a cluster, waits out the lease before it
//! installs the next generation: a node that
//! missed the push would otherwise write by G's rule alone while others write by the new
//! ring, and a DELETE there could miss the copy the new ring's set just took. The settling
//! node reads the unsettled file after writing the settled one; one of the two always
//! sees the other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::multipart::UploadMeta;
use super::set::ErasureSet;
use super::{IAM_BUCKET, ListEntry, Store, blocking, registry};
use crate::error::{StoreError, StoreResult};
use crate::format::JsonFile;
use crate::format::migration::{Base, Settled, Unsettled};
use crate::placement::ring::{Ring, SetId};
use crate::placement::topology::TopologyRules;

/// How long a node waits for its writes begun under an older ring to end, when asked
/// to fence (a PUT streaming a large body may take this long).
pub const FENCE_WAIT: Duration = Duration::from_secs(20);
/// How long the checking node waits after its first failed check; each further failure
/// doubles it, up to `SETTLE_RETRY_MAX`.
const SETTLE_RETRY: Duration = Duration::from_secs(10);
const SETTLE_RETRY_MAX: Duration = Duration::from_secs(600);
/// How long a node treats placement as settled after it last read the settled file (and
/// no unsettled file) from a majority of drives; it reads them every second.
pub const LEASE: Duration = Duration::from_secs(5);
/// How often a node renews its lease.
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(1);
/// What a topology change waits after revoking the current generation: the lease, and a
/// margin for clocks running at slightly different rates.
const REVOKE_WAIT: Duration = Duration::from_secs(7);
/// Keys per page of the walk that checks placement.
const WALK_PAGE_KEYS: usize = 1000;

fn settled_file(generation: u64) -> String {
    format!("settled-{generation}.bkt")
}

fn base_file(generation: u64) -> String {
    format!("base-{generation}.bkt")
}

/// The ring of the generation before `generation`, when `generation` began from a settled
/// one (`Base`).
pub struct BaseRing {
    generation: u64,
    ring: Arc<Ring>,
}

/// Where a key may be (`Store::place_of`).
pub(crate) struct KeyPlace {
    /// The set the ring names.
    pub home: Arc<ErasureSet>,
    pub elsewhere: Elsewhere,
    generation: u64,
    /// Whether `elsewhere` was narrowed under the lease on `generation`.
    leased: bool,
}

impl KeyPlace {
    /// The sets that may hold the key, when known (`None`: any set).
    pub fn candidates(&self) -> Option<Vec<Arc<ErasureSet>>> {
        match &self.elsewhere {
            Elsewhere::Nowhere => Some(vec![self.home.clone()]),
            Elsewhere::Only(previous) => Some(vec![self.home.clone(), previous.clone()]),
            Elsewhere::Anywhere => None,
        }
    }

    /// The other sets that may hold the key besides `target`, when `target` is one of
    /// those that may (`None`: any other set).
    pub fn others_than(&self, target: &Arc<ErasureSet>) -> Option<Vec<Arc<ErasureSet>>> {
        let candidates = self.candidates()?;
        candidates
            .iter()
            .any(|s| Arc::ptr_eq(s, target))
            .then(|| candidates.into_iter().filter(|s| !Arc::ptr_eq(s, target)).collect())
    }
}

/// Where a key may be besides the set its ring names.
pub(crate) enum Elsewhere {
    /// Nowhere: one set, the first generation, or a settled one.
    Nowhere,
    /// Only in this set, the one the previous generation's ring names.
    Only(Arc<ErasureSet>),
    /// In any set (the previous generation was still migrating); registry records help.
    Anywhere,
}

fn unsettled_file(generation: u64) -> String {
    format!("unsettled-{generation}.bkt")
}

/// What a majority read of a generation's settle files found.
struct SettleFiles {
    /// Drives that answered (read the settled and unsettled files, found or not).
    answered: usize,
    settled: bool,
    unsettled: bool,
}

/// The writes in flight on this node that place a key by the ring, counted by the
/// generation they began under.
#[derive(Default)]
pub struct PlacedWrites {
    in_flight: std::sync::Mutex<BTreeMap<u64, usize>>,
    /// Signalled when the last write of a generation ends.
    ended: tokio::sync::Notify,
}

impl PlacedWrites {
    fn any_before(&self, generation: u64) -> bool {
        self.in_flight.lock().expect("placed writes").range(..generation).next().is_some()
    }
}

/// When the next settle check of `generation` may run, and the failed checks in a row
/// before it.
#[derive(Default)]
pub struct NextCheck {
    generation: u64,
    at: Option<Instant>,
    failures: u32,
}

/// Held by a write from before it chooses a set by the ring until it is done.
pub struct WriteTicket<'a> {
    writes: &'a PlacedWrites,
    generation: u64,
}

impl Drop for WriteTicket<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.writes.in_flight.lock().expect("placed writes");
        let count = in_flight.get_mut(&self.generation).expect("a ticket's generation is counted");
        *count -= 1;
        if *count == 0 {
            in_flight.remove(&self.generation);
            drop(in_flight);
            self.writes.ended.notify_waiters();
        }
    }
}

impl Store {
    /// Taken by every write that places a key by the ring (PUT, DELETE, a new upload, its
    /// completion, a migration's move) before it looks at the ring.
    pub(crate) fn begin_placed_write(&self) -> WriteTicket<'_> {
        let mut in_flight = self.placed_writes.in_flight.lock().expect("placed writes");
        let generation = self.topology().generation;
        *in_flight.entry(generation).or_default() += 1;
        WriteTicket { writes: &self.placed_writes, generation }
    }

    /// This node's part of the fence: it serves `generation` or newer (reading the
    /// topology from the drives if it is behind) and, within `wait`, has no write left
    /// that began under an older one. Once true, it stays true.
    pub async fn fence_local(&self, generation: u64, wait: Duration) -> bool {
        if self.topology().generation < generation
            && let Err(e) = self.reload_topology().await
        {
            tracing::debug!(error = %e, "fence: could not reload the topology");
        }
        if self.topology().generation < generation {
            return false;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ended = self.placed_writes.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if !self.placed_writes.any_before(generation) {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return false;
            }
        }
    }

    /// The fence on every node: this one and every peer.
    pub(crate) async fn fence_cluster(&self, generation: u64) -> bool {
        if !self.fence_local(generation, FENCE_WAIT).await {
            return false;
        }
        match self.peer_calls.get() {
            Some(peers) => peers.fence(generation).await,
            None => true,
        }
    }

    /// Whether this node holds the lease on `generation`: within `LEASE` of a majority read
    /// that found no revocation of it. Only under it may a node narrow where it looks for
    /// keys (settled, or two sets), since a change away from it waits out the lease.
    fn holds_lease(&self, generation: u64) -> bool {
        self.lease_generation.load(Ordering::Acquire) == generation
            && self.lease_epoch.elapsed() < Duration::from_nanos(self.lease_until.load(Ordering::Acquire))
    }

    /// Whether placement is settled for the generation this node serves (under the lease).
    pub fn placement_settled(&self) -> bool {
        let generation = self.topology().generation;
        self.settled_generation.load(Ordering::Acquire) == generation && self.holds_lease(generation)
    }

    fn drop_lease(&self) {
        self.lease_until.store(0, Ordering::Release);
        self.metrics.placement_settled_generation.set(0);
    }

    /// The settle files of `generation` on the drives, until `enough` drives answered
    /// (this node's own drives first: they take no peer call). Both files are written to
    /// a majority, so a majority read sees each one that was written.
    async fn read_settle_files(&self, generation: u64, enough: usize) -> SettleFiles {
        let mut drives = self.all_drives();
        drives.sort_by_key(|drive| !drive.is_local());
        let (settled, unsettled) = (settled_file(generation), unsettled_file(generation));
        blocking(move || {
            let mut files = SettleFiles { answered: 0, settled: false, unsettled: false };
            for drive in drives.iter().filter(|d| d.is_online()) {
                if files.answered >= enough {
                    break;
                }
                let (Ok(s), Ok(u)) = (drive.read_system_file(&settled), drive.read_system_file(&unsettled)) else {
                    continue;
                };
                files.answered += 1;
                files.settled |= s.and_then(|b| Settled::decode(&b)).is_some_and(|s| s.generation == generation);
                files.unsettled |= u.and_then(|b| Unsettled::decode(&b)).is_some_and(|u| u.generation == generation);
            }
            files
        })
        .await
    }

    /// Renews the lease on the current generation from a majority read of its settle
    /// files (every second, `keep_lease`); a revoked generation gets none. Returns whether
    /// placement is settled.
    pub async fn renew_lease(&self) -> bool {
        let generation = self.topology().generation;
        let began = Instant::now();
        let majority = self.all_drives().len() / 2 + 1;
        let files = self.read_settle_files(generation, majority).await;
        if files.unsettled || files.answered < majority || self.topology().generation != generation {
            self.drop_lease();
            return false;
        }
        let until = (began + LEASE).saturating_duration_since(self.lease_epoch).as_nanos() as u64;
        self.settled_generation.store(if files.settled { generation } else { 0 }, Ordering::Release);
        self.lease_generation.store(generation, Ordering::Release);
        self.lease_until.store(until, Ordering::Release);
        self.metrics.placement_settled_generation.set(if files.settled { generation as i64 } else { 0 });
        files.settled
    }

    /// Where a key may be, from one look at the placement: the set the ring names, and
    /// where else.
    pub(crate) fn place_of(&self, bucket: &str, key: &str) -> KeyPlace {
        let (generation, ring, sets) = {
            let placement = self.placement.read().expect("placement lock");
            (placement.topology.generation, placement.ring.clone(), placement.sets.clone())
        };
        let by_id = |id: SetId| sets.iter().find(|s| s.id == id).cloned();
        let home = by_id(ring.locate(bucket, key)).expect("the ring names a set in service");
        let place = |elsewhere, leased| KeyPlace { home: home.clone(), elsewhere, generation, leased };
        if generation <= 1 || sets.len() <= 1 {
            return place(Elsewhere::Nowhere, false);
        }
        if !self.holds_lease(generation) {
            return place(Elsewhere::Anywhere, false);
        }
        if self.settled_generation.load(Ordering::Acquire) == generation {
            return place(Elsewhere::Nowhere, true);
        }
        let previous = match self.base_ring.read().expect("base ring").as_ref() {
            Some(base) if base.generation == generation => base.ring.locate(bucket, key),
            _ => return place(Elsewhere::Anywhere, false),
        };
        match by_id(previous) {
            _ if previous == home.id => place(Elsewhere::Nowhere, true),
            Some(set) => place(Elsewhere::Only(set), true),
            None => place(Elsewhere::Anywhere, false),
        }
    }

    /// Whether what `place` said still holds: same generation, and the lease it was
    /// narrowed under not run out (a lookup that found nothing under a narrowed place
    /// looks everywhere if not).
    pub(crate) fn still_holds(&self, place: &KeyPlace) -> bool {
        self.topology().generation == place.generation && (!place.leased || self.holds_lease(place.generation))
    }

    /// Records, before `next` is installed, the topology it replaces (`Base`).
    pub async fn record_base(&self, next: u64, previous: &buckets_api::Topology) -> StoreResult<()> {
        let record = Base { generation: next, previous: previous.clone() }.encode();
        self.write_to_majority(base_file(next), record, "record the previous topology").await
    }

    /// Writes a system file to every online drive of every set; fails below a majority.
    async fn write_to_majority(&self, name: String, bytes: Vec<u8>, operation: &'static str) -> StoreResult<()> {
        let drives = self.all_drives();
        let needed = drives.len() / 2 + 1;
        let written = blocking(move || {
            drives.iter().filter(|d| d.is_online() && d.write_system_file(&name, &bytes).is_ok()).count()
        })
        .await;
        if written < needed {
            return Err(StoreError::InsufficientQuorum { operation, needed, available: written });
        }
        Ok(())
    }

    /// Reads the current generation's `Base` once per generation (it is written before the
    /// generation is installed; without it every set may hold a key).
    pub async fn load_base(&self) {
        let generation = self.topology().generation;
        if generation <= 1 || self.base_checked.load(Ordering::Acquire) == generation {
            return;
        }
        let drives = self.all_drives();
        let majority = drives.len() / 2 + 1;
        let name = base_file(generation);
        let (answered, found) = blocking(move || {
            let mut answered = 0;
            let mut found = None;
            for drive in drives.iter().filter(|d| d.is_online()) {
                let Ok(bytes) = drive.read_system_file(&name) else { continue };
                answered += 1;
                let base = bytes.and_then(|b| Base::decode(&b));
                found = found.or(base.filter(|b| b.generation == generation && b.previous.validate().is_ok()));
                if found.is_some() {
                    break;
                }
            }
            (answered, found)
        })
        .await;
        let known = found.is_some() || answered >= majority;
        if let Some(base) = found {
            *self.base_ring.write().expect("base ring") =
                Some(BaseRing { generation, ring: Arc::new(base.previous.ring()) });
        }
        // Written to a majority before the generation was installed: not found in a
        // majority means there is none (looked for again only if too few drives answered).
        if known {
            self.base_checked.store(generation, Ordering::Release);
        }
    }

    /// Renews the lease and loads the current generation's `Base`, every second, forever
    /// (spawned by the migration engine).
    pub async fn keep_lease(self: Arc<Self>) {
        loop {
            if self.topology().generation > 1 && self.sets().len() > 1 {
                self.load_base().await;
                self.renew_lease().await;
            }
            tokio::time::sleep(LEASE_RENEW_EVERY).await;
        }
    }

    /// Before a topology change replaces `generation`: no node may treat it as settled
    /// once this returns (see the module's description). Returns whether it was settled
    /// (the first generation, or one store of a single set, always is).
    pub async fn revoke_settled(&self, generation: u64) -> StoreResult<bool> {
        if generation <= 1 || self.sets().len() <= 1 {
            return Ok(true);
        }
        self.drop_lease();
        let record = Unsettled { generation, unsettled_unix: crate::clock::unix_now() }.encode();
        self.write_to_majority(unsettled_file(generation), record, "revoke a settled placement").await?;
        // Any node may hold the lease (a settled file on a single drive is enough to have
        // narrowed on), so a cluster always waits it out.
        if self.peer_calls.get().is_some() {
            tracing::info!(generation, "waiting out the lease on the generation before the topology changes");
            tokio::time::sleep(REVOKE_WAIT).await;
        }
        // A settled file, even on one drive, means the check passed: every key was in its
        // ring set, which is what the next generation's two-set lookups rely on.
        Ok(self.read_settle_files(generation, usize::MAX).await.settled)
    }

    /// One step towards a settled placement, run by the migration engine on every node
    /// once the migration is done (every second): on the node that runs the first set's
    /// migration, while it holds the lease (`keep_lease`; a revoked generation gets none)
    /// and placement is not settled yet, checks (backing off after failed checks) and
    /// writes the settled file. Returns whether placement is settled now.
    pub async fn settle_step(&self) -> bool {
        let generation = self.topology().generation;
        if generation <= 1 || self.sets().len() <= 1 || self.placement_settled() {
            return true;
        }
        if !self.holds_lease(generation) || !self.owns_migration_of(&self.sets()[0]) {
            return false;
        }
        {
            let mut next = self.next_settle_check.lock().expect("settle check");
            if next.generation != generation {
                *next = NextCheck { generation, ..NextCheck::default() };
            }
            if next.at.is_some_and(|at| Instant::now() < at) {
                return false;
            }
        }
        if let Err(why) = self.check_settled(generation).await {
            let mut next = self.next_settle_check.lock().expect("settle check");
            let wait = SETTLE_RETRY.saturating_mul(1 << next.failures.min(16)).min(SETTLE_RETRY_MAX);
            next.failures += 1;
            next.at = Some(Instant::now() + wait);
            tracing::info!(generation, "placement not settled yet ({why}); checking again in {wait:?}");
            return false;
        }
        let record = Settled { generation, settled_unix: crate::clock::unix_now() }.encode();
        if let Err(e) = self.write_to_majority(settled_file(generation), record, "record a settled placement").await {
            tracing::warn!(generation, error = %e, "could not record a settled placement");
            return false;
        }
        // Written before this read: a revocation this read misses finds the settled file.
        let settled = self.renew_lease().await;
        if settled {
            tracing::info!(generation, "placement settled: every object is in its ring set");
        }
        settled
    }

    /// Steps 1–4 of the module's description; `Err` says which did not hold.
    async fn check_settled(&self, generation: u64) -> Result<(), String> {
        let sets = self.sets();
        if let Some(set) = sets.iter().find(|s| s.drives().iter().any(|d| !d.is_online())) {
            return Err(format!("set {} has a drive offline", set.id));
        }
        if !self.fence_cluster(generation).await {
            return Err("a node is behind or still writes by an older ring".into());
        }
        let buckets: Vec<String> = self
            .list_all_buckets()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|b| b.name)
            .filter(|b| b != IAM_BUCKET && b != registry::REGISTRY_BUCKET)
            .collect();
        for set in sets.iter() {
            for bucket in &buckets {
                if let Some(key) = self.upload_away_from_ring(set, bucket).await {
                    return Err(format!("an upload of {bucket}/{key} is in progress in set {}", set.id));
                }
            }
        }
        for set in sets.iter() {
            for bucket in &buckets {
                if let Some(key) = self.key_away_from_ring(set, bucket).await.map_err(|e| e.to_string())? {
                    // The migration's next pass over the set moves it.
                    self.rescan_set(set).await;
                    return Err(format!("{bucket}/{key} is in set {}, not its ring set", set.id));
                }
            }
        }
        if self.topology().generation != generation {
            return Err("the topology changed meanwhile".into());
        }
        Ok(())
    }

    /// The key of an upload in `set` (on any of its drives) that the ring places in
    /// another set.
    async fn upload_away_from_ring(&self, set: &Arc<ErasureSet>, bucket: &str) -> Option<String> {
        let drives = set.drives().to_vec();
        let name = bucket.to_string();
        let keys: Vec<String> = blocking(move || {
            let mut keys = Vec::new();
            for drive in &drives {
                for upload_id in drive.list_uploads(&name).unwrap_or_default() {
                    let meta = drive.read_upload_file(&name, &upload_id, super::multipart::UPLOAD_META_FILE);
                    if let Some(meta) = meta.ok().flatten().and_then(|bytes| UploadMeta::decode(&bytes)) {
                        keys.push(meta.key);
                    }
                }
            }
            keys
        })
        .await;
        keys.into_iter().find(|key| !Arc::ptr_eq(&self.set_for(bucket, key), set))
    }

    /// A key `set` holds anything of (a version, a delete marker, copies too few to read)
    /// that the ring places in another set.
    async fn key_away_from_ring(
        &self,
        set: &Arc<ErasureSet>,
        bucket: &str,
    ) -> crate::error::StoreResult<Option<String>> {
        let mut after = String::new();
        loop {
            let page = set.walk_all_keys(bucket, &after, WALK_PAGE_KEYS).await?;
            for (entry, _) in &page {
                if let ListEntry::Object(info) = entry
                    && !Arc::ptr_eq(&self.set_for(bucket, &info.key), set)
                {
                    return Ok(Some(info.key.clone()));
                }
            }
            match page.last() {
                Some((last, _)) if page.len() == WALK_PAGE_KEYS => after = last.name().to_string(),
                _ => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::topology::TopologyRules;
    use crate::storage::migration::{MigrationConfig, MigrationState, Throttle, migrate_pending};
    use crate::storage::testing::{body, data, drain_set_one, open_two_sets, put, read};
    use crate::storage::{PutOptions, multipart::RequestedPart};

    /// Keys of bucket `b` the first generation's ring places in set 1.
    fn keys_in_set_one(store: &Store, prefix: &str, count: usize) -> Vec<String> {
        let ring = store.topology().ring();
        (0..).map(|n| format!("{prefix}{n}")).filter(|k| ring.locate("b", k) == 1).take(count).collect()
    }

    async fn migrate(store: &Arc<Store>) {
        migrate_pending(store, &MigrationConfig::default(), &mut Throttle::default()).await.unwrap();
        assert_eq!(store.migration_status().await.state, MigrationState::Done);
    }

    /// Two sets on `dir` with the system buckets and a bucket `b`.
    async fn two_sets_with_bucket(dir: &std::path::Path) -> Arc<Store> {
        let store = open_two_sets(dir);
        store.ensure_system_buckets().await;
        store.make_bucket("b").await.unwrap();
        store
    }

    /// Begins an upload of `key` in bucket `b` with one part of `part`: its id and the
    /// part's ETag.
    async fn begin_upload(store: &Store, key: &str, part: &[u8]) -> (String, String) {
        let id = store.create_multipart_upload("b", key, Vec::new(), None, Default::default()).await.unwrap();
        let options = PutOptions { content_length: Some(part.len() as u64), ..PutOptions::default() };
        let etag = store.upload_part("b", key, &id, 1, body(part.to_vec()), options).await.unwrap().etag;
        (id, etag)
    }

    /// Renews the lease (as `keep_lease` does every second) and checks now, without
    /// waiting out the back-off after a failed check.
    async fn settle_now(store: &Store) -> bool {
        store.renew_lease().await;
        store.next_settle_check.lock().unwrap().at = None;
        store.settle_step().await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn after_a_drain_placement_settles_and_lookups_ask_the_ring_set_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = two_sets_with_bucket(dir.path()).await;
        let keys: Vec<String> = (0..40).map(|n| format!("k{n}")).collect();
        for (n, key) in keys.iter().enumerate() {
            put(&store, "b", key, data(500 + n * 300, n as u64)).await;
        }
        drain_set_one(&store).await;
        assert!(!settle_now(&store).await, "settled before the migration moved anything");
        migrate(&store).await;
        assert!(settle_now(&store).await);
        assert!(store.placement_settled());
        assert_eq!(store.metrics.placement_settled_generation.get(), 2);

        put(&store, "b", "k0", b"new".to_vec()).await;
        store.delete_object("b", "k1").await.unwrap();
        for (n, key) in keys.iter().enumerate().skip(2) {
            assert_eq!(read(&store, "b", key).await.unwrap(), data(500 + n * 300, n as u64), "{key}");
        }
        assert_eq!(read(&store, "b", "k0").await.unwrap(), b"new");
        assert!(matches!(read(&store, "b", "k1").await, Err(StoreError::NoSuchKey)));

        // Lookups ask the ring's set only now: a copy put in set 1 behind the store's back
        // (what the check rules out) is not found; before settling it would be.
        let sets = store.sets();
        store.move_object("b", "k2", &sets[0], &sets[1], None).await.unwrap();
        assert!(matches!(read(&store, "b", "k2").await, Err(StoreError::NoSuchKey)));
        drop((sets, store));

        // A restarted node falls back to every set until it reads the settled file; it
        // does not check again (a check would fail: a drive is offline).
        let store = open_two_sets(dir.path());
        assert!(!store.placement_settled());
        assert_eq!(read(&store, "b", "k2").await.unwrap(), data(1100, 2));
        store.sets()[1].drives()[0].set_online(false);
        assert!(settle_now(&store).await);
        assert!(matches!(read(&store, "b", "k2").await, Err(StoreError::NoSuchKey)));
        assert_eq!(read(&store, "b", "k0").await.unwrap(), b"new");
    }

    /// An upload begun in set 1 before the drain completes there afterwards: placement is
    /// not settled while the upload is open nor while its object sits in set 1; the next
    /// pass moves it, then it settles, and a DELETE is final.
    #[tokio::test(flavor = "multi_thread")]
    async fn an_upload_begun_before_the_change_holds_settling_until_its_object_moves() {
        let dir = tempfile::tempdir().unwrap();
        let store = two_sets_with_bucket(dir.path()).await;
        let key = keys_in_set_one(&store, "upload-", 1).remove(0);
        let part = data(300_000, 7);
        let (id, etag) = begin_upload(&store, &key, &part).await;
        drain_set_one(&store).await;
        migrate(&store).await;
        let held = store.check_settled(2).await.unwrap_err();
        assert!(held.contains("upload"), "{held}");
        assert!(!settle_now(&store).await);

        store.complete_multipart_upload("b", &key, &id, &[RequestedPart::new(1, etag)], &[], None).await.unwrap();
        let held = store.check_settled(2).await.unwrap_err();
        assert!(held.contains("not its ring set"), "{held}");
        assert!(!settle_now(&store).await);
        assert_eq!(read(&store, "b", &key).await.unwrap(), part);

        migrate(&store).await;
        assert!(settle_now(&store).await);
        assert_eq!(read(&store, "b", &key).await.unwrap(), part);
        store.delete_object("b", &key).await.unwrap();
        assert!(matches!(read(&store, "b", &key).await, Err(StoreError::NoSuchKey)));
        assert!(matches!(store.sets()[1].head_object("b", &key).await, Err(StoreError::NoSuchKey)));
    }

    /// A PUT that chose its set by the old ring and is still streaming when the topology
    /// changes holds the fence until it ends; the object it left in set 1 is then found
    /// by the check and moved before placement settles.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_fence_waits_for_a_put_begun_under_the_older_ring() {
        let dir = tempfile::tempdir().unwrap();
        let store = two_sets_with_bucket(dir.path()).await;
        let key = keys_in_set_one(&store, "slow-", 1).remove(0);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let bytes = data(200_000, 3);
        let slow_body: crate::storage::BodyStream = {
            let bytes = bytes::Bytes::from(bytes.clone());
            Box::pin(futures::stream::once(async move {
                let _ = released.await;
                Ok(bytes)
            }))
        };
        let writer = {
            let (store, key) = (store.clone(), key.clone());
            let options = PutOptions { content_length: Some(bytes.len() as u64), ..PutOptions::default() };
            tokio::spawn(async move { store.put_object("b", &key, slow_body, options).await })
        };
        // The PUT is under way (it waits for its body) before the topology changes.
        for _ in 0..400 {
            if store.placed_writes.any_before(u64::MAX) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drain_set_one(&store).await;
        assert!(!store.fence_local(2, Duration::from_millis(300)).await, "fenced with a write by the old ring open");
        release.send(()).unwrap();
        writer.await.unwrap().unwrap();
        assert!(store.fence_local(2, Duration::from_secs(5)).await);
        assert!(store.sets()[1].head_object("b", &key).await.is_ok(), "the PUT used the old ring");

        migrate(&store).await;
        assert!(settle_now(&store).await);
        assert_eq!(read(&store, "b", &key).await.unwrap(), bytes);
        assert!(matches!(store.sets()[1].head_object("b", &key).await, Err(StoreError::NoSuchKey)));
    }
    /// A topology change revokes a settled placement: the node changing it stops at once,
    /// another node at its next renewal or, without one, when its lease runs out; the
    /// revoked generation never settles again.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_revoked_placement_is_not_settled_on_any_node_within_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let store = two_sets_with_bucket(dir.path()).await;
        put(&store, "b", "k", b"v".to_vec()).await;
        drain_set_one(&store).await;
        migrate(&store).await;
        assert!(settle_now(&store).await);
        // A second node on the same drives.
        let other = open_two_sets(dir.path());
        assert!(settle_now(&other).await);
        let renewing = open_two_sets(dir.path());
        assert!(settle_now(&renewing).await);

        store.revoke_settled(2).await.unwrap();
        assert!(!store.placement_settled());
        assert!(!settle_now(&renewing).await, "a renewal after the revocation");
        assert!(other.placement_settled(), "the lease holds until it runs out");
        tokio::time::sleep(LEASE).await;
        assert!(!other.placement_settled(), "the lease ran out");
        assert!(!settle_now(&store).await, "a revoked generation must not settle again");
        assert_eq!(read(&other, "b", "k").await.unwrap(), b"v");
    }

    /// A drain through the topology coordinator from the first generation: until it
    /// settles, a key is looked for (and cleared) in its ring set and the one the first
    /// generation's ring named, nowhere else, and every write, read and delete stays right.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_change_from_a_settled_generation_looks_in_two_sets_only() {
        use crate::cluster::topology::{Change, TopologyCoordinator};
        let dir = tempfile::tempdir().unwrap();
        let store = two_sets_with_bucket(dir.path()).await;
        let ring = store.topology().ring();
        let keys: Vec<String> = (0..40).map(|n| format!("k{n}")).collect();
        for (n, key) in keys.iter().enumerate() {
            put(&store, "b", key, data(700 + n, n as u64)).await;
        }
        let in_set_one: Vec<&String> = keys.iter().filter(|k| ring.locate("b", k) == 1).collect();
        let in_set_zero: Vec<&String> = keys.iter().filter(|k| ring.locate("b", k) == 0).collect();
        let upload_key = keys_in_set_one(&store, "upload-", 1).remove(0);
        let part = data(1000, 9);
        let (upload, etag) = begin_upload(&store, &upload_key, &part).await;

        TopologyCoordinator::new(store.clone(), None).change(Some(1), Change::Drain(1)).await.unwrap();
        let sets = store.sets();
        // Every set until this node holds the lease on the new generation (within a second
        // in a running node).
        assert!(matches!(store.place_of("b", in_set_one[0]).elsewhere, Elsewhere::Anywhere));
        store.renew_lease().await;
        assert!(matches!(store.place_of("b", in_set_one[0]).elsewhere, Elsewhere::Only(ref s) if s.id == 1));
        assert!(matches!(store.place_of("b", in_set_zero[0]).elsewhere, Elsewhere::Nowhere));

        // Before anything moved: reads find set 1's keys; an overwrite and a delete of one
        // leave no copy behind in set 1; the upload completes where it began.
        for key in &keys {
            let n: usize = key[1..].parse().unwrap();
            assert_eq!(read(&store, "b", key).await.unwrap(), data(700 + n, n as u64), "{key}");
        }
        put(&store, "b", in_set_one[0], b"new".to_vec()).await;
        store.delete_object("b", in_set_one[1]).await.unwrap();
        for key in [in_set_one[0], in_set_one[1]] {
            assert!(matches!(sets[1].head_object("b", key).await, Err(StoreError::NoSuchKey)), "{key} left in set 1");
        }
        assert_eq!(read(&store, "b", in_set_one[0]).await.unwrap(), b"new");
        assert!(matches!(read(&store, "b", in_set_one[1]).await, Err(StoreError::NoSuchKey)));
        store
            .complete_multipart_upload("b", &upload_key, &upload, &[RequestedPart::new(1, etag)], &[], None)
            .await
            .unwrap();
        assert_eq!(read(&store, "b", &upload_key).await.unwrap(), part);

        // Only those two sets are asked: a key the first ring placed in set 0, put in set 1
        // behind the store's back, is not found.
        store.move_object("b", in_set_zero[0], &sets[0], &sets[1], None).await.unwrap();
        assert!(matches!(read(&store, "b", in_set_zero[0]).await, Err(StoreError::NoSuchKey)));
        store.move_object("b", in_set_zero[0], &sets[1], &sets[0], None).await.unwrap();

        migrate(&store).await;
        assert!(settle_now(&store).await);
        for key in keys.iter().filter(|k| *k != in_set_one[0] && *k != in_set_one[1]) {
            let n: usize = key[1..].parse().unwrap();
            assert_eq!(read(&store, "b", key).await.unwrap(), data(700 + n, n as u64), "{key}");
        }
        assert_eq!(read(&store, "b", &upload_key).await.unwrap(), part);
        assert!(matches!(read(&store, "b", in_set_one[1]).await, Err(StoreError::NoSuchKey)));
    }
    /// Versioned: an upload begun in set 1 completes there after the drain moved the key's
    /// older version to set 0; the new version is the latest wherever it is read, and both
    /// versions are kept (the completion gathers the key's versions first).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_version_completed_in_the_previous_set_is_the_latest() {
        use crate::cluster::topology::{Change, TopologyCoordinator};
        use crate::storage::Versioning;
        let dir = tempfile::tempdir().unwrap();
        let store = two_sets_with_bucket(dir.path()).await;
        store.set_bucket_versioning("b", Versioning::Enabled).await.unwrap();
        let key = keys_in_set_one(&store, "v-", 1).remove(0);
        put(&store, "b", &key, b"first".to_vec()).await;
        let part = data(2000, 5);
        let (upload, etag) = begin_upload(&store, &key, &part).await;
        TopologyCoordinator::new(store.clone(), None).change(Some(1), Change::Drain(1)).await.unwrap();
        store.renew_lease().await;
        migrate(&store).await;
        let sets = store.sets();
        assert!(sets[0].head_object("b", &key).await.is_ok(), "the first version moved to set 0");

        store.complete_multipart_upload("b", &key, &upload, &[RequestedPart::new(1, etag)], &[], None).await.unwrap();
        assert_eq!(read(&store, "b", &key).await.unwrap(), part);
        let listed = store.list_object_versions("b", "", None, "", None, 100).await.unwrap();
        assert_eq!(listed.entries.len(), 2, "both versions kept");
        migrate(&store).await;
        assert!(settle_now(&store).await);
        assert_eq!(read(&store, "b", &key).await.unwrap(), part);
    }
}
