//! The location registry: which set holds an object when that is not the set the ring of
//! the current topology names (an upload completed in the set it started in before a
//! topology change, an object a migration has not moved yet, a copy found by a fallback
//! read). Objects at their ring placement have no record, so a PUT that lands where the
//! ring says writes nothing extra (an earlier C version wrote a record on every PUT and
//! doubled small-object writes).
//!
//! Records are small JSON objects in the system bucket `.buckets-registry`, key
//! `<bucket>/<32 hex digits of xxh3-128(bucket, key)>`, stored (erasure-coded, with
//! quorum, healed like any object) in the set the current ring names for the object
//! itself. So the registry is spread over every set exactly like the data, no set is its
//! hotspot or single point of failure, and finding a record needs nothing but the
//! topology every drive already holds: that is its bootstrap.
//!
//! Contract 5: a record or cache entry is a hint. Reads try the cached location, then the
//! ring's set, then the record, then every set; a hint that turns out wrong is dropped.
//! Every node keeps an LRU cache of locations; a node that changes a record tells the
//! others to forget the key (best effort: a stale entry costs one extra read, never a
//! wrong answer).

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::set::ErasureSet;
use super::{PutOptions, ReadPlan, Store};
use crate::error::{StoreError, StoreResult};
use crate::metrics::Metrics;
use crate::placement::ring::SetId;

/// The system bucket holding registry records. Names starting with `.` are not valid S3
/// bucket names, so no user bucket can collide with it.
pub const REGISTRY_BUCKET: &str = ".buckets-registry";
/// Default capacity of each node's location cache.
pub const DEFAULT_CACHE_ENTRIES: usize = 1_000_000;
/// Largest record accepted when reading one back.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

/// Where an object lives: its set, and the topology generation since which it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub set: SetId,
    pub generation: u64,
}

/// A registry record as stored (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub bucket: String,
    pub key: String,
    pub set: SetId,
    pub generation: u64,
}

/// The 128-bit name of an object in the registry and in the caches.
pub fn object_hash(bucket: &str, key: &str) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(bucket.as_bytes());
    hasher.update(&[0]);
    hasher.update(key.as_bytes());
    hasher.digest128()
}

/// The key of an object's record inside `REGISTRY_BUCKET`.
pub fn record_key(bucket: &str, key: &str) -> String {
    format!("{bucket}/{:032x}", object_hash(bucket, key))
}

/// Parses the hash out of a record key (for invalidations of records found on disk).
pub fn hash_of_record_key(record_key: &str) -> Option<u128> {
    let (_, hex) = record_key.rsplit_once('/')?;
    (hex.len() == 32).then(|| u128::from_str_radix(hex, 16).ok()).flatten()
}

/// Ways of the set-associative cache: a key may sit in any of the 8 slots of its bucket.
const WAYS: usize = 8;
/// Independent shards of the cache, so lookups on different cores rarely wait for each
/// other's lock.
const SHARDS: usize = 16;

/// One shard: a table of buckets of `WAYS` slots. A slot is `[hash low, hash high,
/// generation, set << 32 | last use]`; all zeros is empty. Within a bucket the least
/// recently used slot is replaced, so the whole is an approximate LRU that touches one
/// or two cache lines per lookup (a linked-list LRU measured 110–140 ns per hit here,
/// mostly pointer chasing).
struct Shard {
    slots: Vec<[u64; 4]>,
    buckets: usize,
    tick: u32,
    len: usize,
}

impl Shard {
    fn new(entries: usize) -> Self {
        // Half again as many slots as entries: some buckets fill before others, and with
        // 8 ways a full table keeps nearly `entries` (measured: 96.8 % of a million).
        let buckets = (entries + entries / 2).div_ceil(WAYS);
        // Zeroed memory: the pages of a large, mostly unused table cost nothing until used.
        Shard { slots: vec![[0u64; 4]; buckets * WAYS], buckets, tick: 0, len: 0 }
    }

    fn bucket(&self, low: u64) -> std::ops::Range<usize> {
        let bucket = (((low >> 32) * self.buckets as u64) >> 32) as usize;
        bucket * WAYS..(bucket + 1) * WAYS
    }

    fn split(hash: u128) -> (u64, u64) {
        // The all-zero hash marks an empty slot; it shares a slot name with 1.
        let hash = hash.max(1);
        (hash as u64, (hash >> 64) as u64)
    }

    fn touch(&mut self) -> u64 {
        self.tick = self.tick.wrapping_add(1);
        u64::from(self.tick)
    }

    fn get(&mut self, hash: u128) -> Option<Location> {
        if self.buckets == 0 {
            return None;
        }
        let (low, high) = Self::split(hash);
        let range = self.bucket(low);
        let tick = self.touch();
        let slot = self.slots[range].iter_mut().find(|slot| slot[0] == low && slot[1] == high)?;
        slot[3] = (slot[3] & !0xffff_ffff) | tick;
        Some(Location { set: (slot[3] >> 32) as SetId, generation: slot[2] })
    }

    fn put(&mut self, hash: u128, location: Location) {
        if self.buckets == 0 {
            return;
        }
        let (low, high) = Self::split(hash);
        let range = self.bucket(low);
        let tick = self.touch();
        let now = tick as u32;
        let bucket = &mut self.slots[range];
        let position = bucket
            .iter()
            .position(|slot| slot[0] == low && slot[1] == high)
            .or_else(|| bucket.iter().position(|slot| slot[0] == 0 && slot[1] == 0))
            .unwrap_or_else(|| {
                // The slot unused for longest (ages count in wrapping ticks).
                (0..WAYS).max_by_key(|way| now.wrapping_sub(bucket[*way][3] as u32)).unwrap_or(0)
            });
        if bucket[position][0] == 0 && bucket[position][1] == 0 {
            self.len += 1;
        }
        bucket[position] = [low, high, location.generation, (u64::from(location.set) << 32) | tick];
    }

    fn remove(&mut self, hash: u128) -> bool {
        if self.buckets == 0 {
            return false;
        }
        let (low, high) = Self::split(hash);
        let range = self.bucket(low);
        match self.slots[range].iter_mut().find(|slot| slot[0] == low && slot[1] == high) {
            Some(slot) => {
                *slot = [0; 4];
                self.len -= 1;
                true
            }
            None => false,
        }
    }
}

/// A node's location cache with its hit and miss counters.
pub struct Registry {
    /// A key's shard is chosen by the top bits of its hash, its bucket by the low ones.
    shards: Vec<Mutex<Shard>>,
    metrics: Arc<Metrics>,
    /// Keys whose records changed here, to be forgotten by the other nodes.
    broadcast: OnceLock<mpsc::UnboundedSender<u128>>,
}

impl Registry {
    /// A cache of about `capacity` entries (0 turns caching off).
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        Registry { shards: Self::make_shards(capacity), metrics, broadcast: OnceLock::new() }
    }

    fn make_shards(capacity: usize) -> Vec<Mutex<Shard>> {
        (0..SHARDS).map(|_| Mutex::new(Shard::new(capacity.div_ceil(SHARDS)))).collect()
    }

    fn shard(&self, hash: u128) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(hash >> 124) as usize % SHARDS].lock().expect("registry cache")
    }

    /// Replaces the cache by an empty one of `capacity` entries (0 turns caching off).
    pub fn set_capacity(&self, capacity: usize) {
        for (shard, fresh) in self.shards.iter().zip(Self::make_shards(capacity)) {
            *shard.lock().expect("registry cache") = fresh.into_inner().expect("fresh shard");
        }
    }

    /// The cached location of an object, counting a hit or a miss.
    pub fn cached(&self, hash: u128) -> Option<Location> {
        let found = self.shard(hash).get(hash);
        match found {
            Some(_) => self.metrics.registry_cache_hits.inc(),
            None => self.metrics.registry_cache_misses.inc(),
        }
        found
    }

    pub fn remember(&self, hash: u128, location: Location) {
        self.shard(hash).put(hash, location);
    }

    /// Drops a cache entry on this node (after a read proved it wrong, or when another
    /// node says the record changed).
    pub fn forget(&self, hash: u128) {
        if self.shard(hash).remove(hash) {
            self.metrics.registry_cache_invalidations.inc();
        }
    }

    /// Drops a cache entry here and asks every other node to drop theirs.
    pub fn forget_everywhere(&self, hash: u128) {
        self.forget(hash);
        if let Some(sender) = self.broadcast.get() {
            let _ = sender.send(hash);
        }
    }

    /// Where `forget_everywhere` sends keys (set once, by the server, in a cluster).
    pub fn set_broadcast(&self, sender: mpsc::UnboundedSender<u128>) {
        let _ = self.broadcast.set(sender);
    }

    pub fn cached_entries(&self) -> usize {
        self.shards.iter().map(|s| s.lock().expect("registry cache").len).sum()
    }
}

/// The record stored under `stored_as` in `set`, if it reads and parses.
async fn read_stored_record(set: &Arc<ErasureSet>, stored_as: &str) -> Option<Record> {
    let (_, _, _, mut stream) =
        set.read_object(REGISTRY_BUCKET, stored_as, super::set::Selector::Latest, &whole_object()).await.ok()?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.ok()?);
    }
    serde_json::from_slice(&bytes).ok()
}

fn whole_object() -> ReadPlan {
    Box::new(|info| {
        if info.size > MAX_RECORD_BYTES {
            return Err(StoreError::InvalidArgument("registry record too large".into()));
        }
        Ok((0, info.size))
    })
}

impl Store {
    /// Reads an object's registry record from `home` (the ring's set for the object).
    /// A missing, unreadable or foreign record reads as none: the registry is a hint.
    pub async fn read_record(&self, home: &Arc<ErasureSet>, bucket: &str, key: &str) -> Option<Location> {
        let record = read_stored_record(home, &record_key(bucket, key)).await?;
        (record.bucket == bucket && record.key == key)
            .then_some(Location { set: record.set, generation: record.generation })
    }

    /// The key a stored record describes (`None` when it cannot be read).
    pub(crate) async fn record_subject(&self, set: &Arc<ErasureSet>, stored_as: &str) -> Option<String> {
        let record = read_stored_record(set, stored_as).await?;
        (record_key(&record.bucket, &record.key) == stored_as).then_some(record.key)
    }

    /// Records that an object lives in `location` (quorum write in `home`), caches it here
    /// and tells the other nodes to forget what they cached.
    pub async fn write_record(
        &self,
        home: &Arc<ErasureSet>,
        bucket: &str,
        key: &str,
        location: Location,
    ) -> StoreResult<()> {
        let record =
            Record { bucket: bucket.into(), key: key.into(), set: location.set, generation: location.generation };
        let body = Bytes::from(serde_json::to_vec(&record).expect("record serialises"));
        let length = body.len() as u64;
        let stream: super::BodyStream = Box::pin(futures::stream::once(async move { Ok(body) }));
        let options = PutOptions { content_length: Some(length), ..PutOptions::default() };
        home.put_object(REGISTRY_BUCKET, &record_key(bucket, key), stream, options).await?;
        let hash = object_hash(bucket, key);
        self.registry.forget_everywhere(hash);
        self.registry.remember(hash, location);
        self.metrics.registry_records_written.inc();
        Ok(())
    }

    /// Removes an object's record from `home`, if it has one, everywhere.
    pub async fn delete_record(&self, home: &Arc<ErasureSet>, bucket: &str, key: &str) -> StoreResult<()> {
        let record = record_key(bucket, key);
        // Most objects have no record: a metadata read tells without taking a lock.
        if matches!(home.head_object(REGISTRY_BUCKET, &record).await, Err(StoreError::NoSuchKey)) {
            self.registry.forget(object_hash(bucket, key));
            return Ok(());
        }
        match home.delete_object(REGISTRY_BUCKET, &record).await {
            Ok(()) | Err(StoreError::NoSuchKey) => {}
            Err(e) => return Err(e),
        }
        self.registry.forget_everywhere(object_hash(bucket, key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_keys_are_fixed_length_and_parse_back() {
        let long_key = "k".repeat(1024);
        let key = record_key("bucket", &long_key);
        assert_eq!(key.len(), "bucket/".len() + 32);
        assert_eq!(hash_of_record_key(&key), Some(object_hash("bucket", &long_key)));
        assert_ne!(object_hash("a", "bc"), object_hash("ab", "c"));
        assert_eq!(hash_of_record_key("bucket/not-hex"), None);
    }

    #[test]
    fn cache_counts_hits_and_misses_and_evicts_least_recent() {
        let metrics = Arc::new(Metrics::new());
        // One bucket of WAYS slots per shard; keys 1..=WAYS+1 share shard 0 and bucket 0.
        let registry = Registry::new(WAYS * SHARDS * 2 / 3, metrics.clone());
        let at = |set| Location { set, generation: 2 };
        for key in 1..=WAYS as u128 {
            registry.remember(key, at(key as SetId));
        }
        assert_eq!(registry.cached(1), Some(at(1)));
        registry.remember(99, at(99)); // evicts 2, the least recently used
        assert_eq!(registry.cached(2), None);
        assert_eq!(registry.cached(99), Some(at(99)));
        assert_eq!(registry.cached(3), Some(at(3)));
        registry.remember(3, at(7)); // an update replaces in place
        assert_eq!(registry.cached(3), Some(at(7)));
        assert_eq!(registry.cached_entries(), WAYS);
        assert_eq!(metrics.registry_cache_hits.get(), 4);
        assert_eq!(metrics.registry_cache_misses.get(), 1);
        registry.forget(1);
        assert_eq!(registry.cached(1), None);
        assert_eq!(metrics.registry_cache_invalidations.get(), 1);
    }

    use crate::placement::topology::{SetState, TopologyRules};
    use crate::storage::testing::{open_two_sets, put, read};

    /// Contract 5 on a store of two sets whose second set left the ring: objects found by
    /// asking every set get a record; lost records, a cold cache and a cache that points
    /// to the wrong set all still read the right bytes; writes and deletes leave no stale
    /// copy or record behind.
    #[tokio::test(flavor = "multi_thread")]
    async fn missing_or_wrong_hints_never_hide_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.ensure_system_buckets().await;
        store.make_bucket("b").await.unwrap();
        let keys: Vec<String> = (0..40).map(|n| format!("key-{n}")).collect();
        for key in &keys {
            put(&store, "b", key, key.as_bytes().to_vec()).await;
        }
        let before = store.topology();
        let ring = before.ring();
        let away: Vec<&String> = keys.iter().filter(|k| ring.locate("b", k) == 1).collect();
        assert!(away.len() >= 5, "{} keys in set 1", away.len());
        let mut next = (*before).clone();
        next.generation = 2;
        next.pools[0].sets[1].state = SetState::Draining;
        store.install_topology(next).await.unwrap();

        let metrics = store.metrics.clone();
        let check_all = async || {
            for key in &keys {
                assert_eq!(read(&store, "b", key).await.unwrap(), key.as_bytes(), "{key}");
            }
        };
        // First reads: the objects of set 1 are found by asking every set, and recorded.
        check_all().await;
        assert_eq!(metrics.registry_fallback_reads.get(), away.len() as u64);
        assert_eq!(metrics.registry_records_written.get(), away.len() as u64);
        for key in &away {
            assert_eq!(store.read_record(&store.sets()[0], "b", key).await, Some(Location { set: 1, generation: 2 }));
        }
        // Warm cache: answered from it.
        let hits = metrics.registry_cache_hits.get();
        check_all().await;
        assert_eq!(metrics.registry_cache_hits.get() - hits, away.len() as u64);
        // Cold cache: the records answer, nothing asks every set.
        store.registry.set_capacity(0);
        store.registry.set_capacity(DEFAULT_CACHE_ENTRIES);
        check_all().await;
        assert_eq!(metrics.registry_fallback_reads.get(), away.len() as u64);
        assert!((0..10).all(|d| dir.path().join(format!("d{d}")).join(REGISTRY_BUCKET).join("b").exists()));
        // Records deleted by hand and a cold cache: still found (by asking every set).
        for drive in 0..20 {
            let records = dir.path().join(format!("d{drive}")).join(REGISTRY_BUCKET).join("b");
            if records.exists() {
                std::fs::remove_dir_all(records).unwrap();
            }
        }
        store.registry.set_capacity(0);
        store.registry.set_capacity(DEFAULT_CACHE_ENTRIES);
        check_all().await;
        assert_eq!(metrics.registry_fallback_reads.get(), 2 * away.len() as u64);
        // A cache pointing every key to the wrong set: still the right bytes.
        for key in &keys {
            let wrong = if ring.locate("b", key) == 1 { 0 } else { 1 };
            store.registry.remember(object_hash("b", key), Location { set: wrong, generation: 2 });
        }
        check_all().await;
        // Overwriting a key of set 1 puts it in set 0 and leaves neither copy nor record.
        let moved = away[0];
        put(&store, "b", moved, b"new".to_vec()).await;
        assert_eq!(read(&store, "b", moved).await.unwrap(), b"new");
        assert!(store.sets()[1].head_object("b", moved).await.is_err(), "stale copy left in set 1");
        assert_eq!(store.read_record(&store.sets()[0], "b", moved).await, None);
        // Deleting one is final: no copy elsewhere brings it back.
        let deleted = away[1];
        store.delete_object("b", deleted).await.unwrap();
        assert!(matches!(read(&store, "b", deleted).await, Err(StoreError::NoSuchKey)));
        assert!(matches!(store.head_object("b", deleted).await, Err(StoreError::NoSuchKey)));
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let registry = Registry::new(0, Arc::new(Metrics::new()));
        registry.remember(1, Location { set: 1, generation: 1 });
        assert_eq!(registry.cached(1), None);
        assert_eq!(registry.cached_entries(), 0);
    }
}
