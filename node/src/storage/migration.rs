//! The migration engine: after a topology change, every object that is not in the set
//! the current ring names is moved there (`Store::move_objects`, in batches), set by set.
//!
//! Work is split by source set. A set's migration is run by its *owner*, the node that
//! serves its first online drive (every node computes the same owner once it sees the same
//! drives online; if two nodes briefly both think they own a set, both run moves that are
//! safe to repeat, since each move re-checks under the key's lock). For each generation a
//! set goes through two passes over every bucket in key order: counting (objects and
//! bytes to move, for progress and ETA) and moving, the first moving pass running a page
//! at a time alongside the count (`count_while_moving`); a moving pass that had failures
//! or found keys to move is run again until one has neither. Progress is checkpointed on
//! the set's own drives (`migration-<generation>.bkt`, written to a write quorum of them,
//! newest `seq` wins) after every page of at most 250 keys, so a restarted owner resumes
//! at the last page: the keys of that page are looked at again, which is harmless (a moved
//! key is no longer listed in the source; a key in both sets is resolved by the move's
//! checks).
//!
//! Cluster-wide controls (pause, bandwidth limit) are in `migration-control.bkt` on every
//! drive, written to a majority and read newest-first, like the topology.
//!
//! Fates: every key moves with all its versions and delete markers. Registry records
//! found in a source set under a home that the current ring no longer gives them are
//! deleted (they are hints; lookups fall back). Multipart uploads in progress stay in the
//! set they started in and complete there (the object is then recorded in the registry);
//! the next pass over that set moves it. Once every set is done, `settle` checks and
//! records that no key is left outside its ring set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use buckets_api::migration::{Flow, MigrationState, MigrationStatus, Preview, SetMigration};

use super::drive::Drive;
use super::migrate::{MoveRequest, Moved};
use super::set::{DriveMeta, ErasureSet, Listing};
use super::{ListEntry, Store, blocking, registry};
use crate::error::{StoreError, StoreResult};
use crate::format::JsonFile;
pub use crate::format::migration::{Control, Phase, SetProgress};
use crate::format::version_id::VersionId;
use crate::placement::ring::SetId;
use crate::placement::topology::TopologyRules;

pub const CONTROL_FILE: &str = "migration-control.bkt";
/// Keys listed, and at most moved, between two checkpoints (the contract asks for at
/// least one per 1,000 objects; smaller pages also make progress visible sooner).
pub const CHECKPOINT_EVERY_KEYS: usize = 250;
/// Keys moved as one batch (`Store::move_objects`: two syncs of each target drive per
/// batch, its keys locked from their commit to their source's deletion).
const MOVE_BATCH_KEYS: usize = 64;
/// Bytes of object data a batch stages at most (one key is always taken).
const MOVE_BATCH_BYTES: u64 = 256 * 1024 * 1024;
/// Batches of moves running at once while users leave the node idle.
const MOVE_BATCHES_OVERLAPPING: usize = 2;
/// Pages a moving pass moves in one round, the batches flowing from one into the next,
/// before the engine looks at its other sets (each page is checkpointed as it ends).
const PAGES_PER_ROUND: usize = 8;
/// How long a migration worker yields to S3 requests in flight before moving an object.
const MAX_USER_BACKOFF: Duration = Duration::from_millis(10);
/// While S3 requests are in flight, a worker rests this many times the duration of its
/// last move (a duty cycle of 1 / (1 + factor) per worker). Users of the bench cluster
/// (docs/benchmarks.md, part B) kept 0.77-0.80 of their throughput with 4, 0.88-0.93 of
/// their GET with 9, PUT 0.92 and GET 0.95 with 19 (19 pairs of rounds, +- 0.03; the
/// drain moving about 4 MiB/s under that load), and 0.97-0.98 with 39 (about 3 MiB/s).
/// With the moves held still under load they kept 1.00 and 1.01: the loss is the moves'
/// own, and it shrinks with their share. The target is 0.9.
pub(super) const USER_BUSY_REST_FACTOR: u32 = 39;

fn progress_file(generation: u64) -> String {
    format!("migration-{generation}.bkt")
}

/// Reads a system file from every online drive of `drives` and decodes it.
async fn read_everywhere<T: Send + 'static>(
    drives: Vec<Arc<dyn Drive>>,
    name: String,
    decode: fn(&[u8]) -> Option<T>,
) -> Vec<T> {
    blocking(move || {
        drives
            .iter()
            .filter(|d| d.is_online())
            .filter_map(|d| d.read_system_file(&name).ok().flatten())
            .filter_map(|bytes| decode(&bytes))
            .collect()
    })
    .await
}

/// Writes a system file to every online drive of `drives`; returns how many took it.
async fn write_everywhere(drives: Vec<Arc<dyn Drive>>, name: String, bytes: Vec<u8>) -> usize {
    blocking(move || drives.iter().filter(|d| d.is_online() && d.write_system_file(&name, &bytes).is_ok()).count())
        .await
}

impl Store {
    /// The newest migration control a majority of drives agree exists (absent: defaults).
    pub async fn migration_control(&self) -> Control {
        let drives: Vec<Arc<dyn Drive>> = self.all_drives();
        let found: Vec<Control> = read_everywhere(drives, CONTROL_FILE.into(), Control::decode).await;
        found.into_iter().max_by_key(|c| c.seq).unwrap_or_default()
    }

    /// Changes the migration control (pause, resume, bandwidth), written to a majority of
    /// all drives. Serialised cluster-wide by a lock.
    pub async fn update_migration_control(&self, change: impl FnOnce(&mut Control)) -> StoreResult<Control> {
        let _guard = self.lock_key("\0migration", "control").await?;
        let mut control = self.migration_control().await;
        let was_paused = control.paused;
        change(&mut control);
        control.seq += 1;
        // A pause has a number of its own, which each set's mover confirms once stopped.
        control.paused_seq = match (was_paused, control.paused) {
            (_, false) => 0,
            (false, true) => control.seq,
            (true, true) => control.paused_seq,
        };
        let drives: Vec<Arc<dyn Drive>> = self.all_drives();
        let needed = drives.len() / 2 + 1;
        let written = write_everywhere(drives, CONTROL_FILE.into(), control.encode()).await;
        if written < needed {
            return Err(StoreError::InsufficientQuorum {
                operation: "write migration control",
                needed,
                available: written,
            });
        }
        Ok(control)
    }

    /// A set's progress towards `generation`, as its drives hold it (newest checkpoint).
    pub async fn set_progress(&self, set: &Arc<ErasureSet>, generation: u64) -> Option<SetProgress> {
        let found: Vec<SetProgress> =
            read_everywhere(set.drives().to_vec(), progress_file(generation), SetProgress::decode).await;
        found.into_iter().filter(|p| p.generation == generation).max_by_key(|p| p.seq)
    }

    async fn save_progress(&self, set: &Arc<ErasureSet>, progress: &mut SetProgress) -> StoreResult<()> {
        progress.seq += 1;
        progress.updated_unix = crate::clock::unix_now();
        let needed = set.erasure().write_quorum();
        let written =
            write_everywhere(set.drives().to_vec(), progress_file(progress.generation), progress.encode()).await;
        if written < needed {
            return Err(StoreError::InsufficientQuorum {
                operation: "write migration checkpoint",
                needed,
                available: written,
            });
        }
        Ok(())
    }

    /// Asks for another moving pass over `set` (an upload completed there after its pass
    /// ended): a finished checkpoint goes back to the moving phase.
    pub async fn rescan_set(&self, set: &Arc<ErasureSet>) {
        let generation = self.topology().generation;
        if generation <= 1 {
            return;
        }
        let Some(mut progress) = self.set_progress(set, generation).await else { return };
        if progress.phase != Phase::Done {
            return;
        }
        progress.phase = Phase::Moving;
        progress.bucket.clear();
        progress.after.clear();
        if let Err(e) = self.save_progress(set, &mut progress).await {
            tracing::warn!(set = set.id, error = %e, "could not ask for another migration pass");
        }
        self.migrate_now.notify_one();
    }

    /// Whether this node runs the migration out of `set`: it serves the set's first
    /// online drive.
    pub fn owns_migration_of(&self, set: &Arc<ErasureSet>) -> bool {
        self.mover_mark(set).is_some()
    }

    /// This node's mark as `set`'s mover (`SetProgress::runner`): 1 + the position of the
    /// set's first online drive, when that drive is local.
    fn mover_mark(&self, set: &Arc<ErasureSet>) -> Option<u64> {
        let (at, drive) = set.drives().iter().enumerate().find(|(_, d)| d.is_online())?;
        drive.is_local().then_some(at as u64 + 1)
    }

    /// Whether `progress` names this node as running a round of `set`'s moves.
    fn runs_here(&self, set: &Arc<ErasureSet>, progress: &SetProgress) -> bool {
        runner_drive(set, progress).is_some_and(|d| d.is_local())
    }

    /// Whether `progress` names another node, still reachable, as running a round of
    /// `set`'s moves: it may be, and it ends that round itself.
    fn runs_elsewhere(&self, set: &Arc<ErasureSet>, progress: &SetProgress) -> bool {
        runner_drive(set, progress).is_some_and(|d| !d.is_local() && d.is_online())
    }

    /// The migration towards the current generation, summed over the sets.
    pub async fn migration_status(&self) -> MigrationStatus {
        let generation = self.topology().generation;
        let control = self.migration_control().await;
        let mut sets = Vec::new();
        if generation > 1 {
            for set in self.sets().iter() {
                sets.push(
                    self.set_progress(set, generation)
                        .await
                        .unwrap_or_else(|| SetProgress::new(generation, self.id_of(set), crate::clock::unix_now())),
                );
            }
        }
        let sum = |f: fn(&SetProgress) -> u64| sets.iter().map(f).sum::<u64>();
        let (total_objects, total_bytes) = (sum(|p| p.total_objects), sum(|p| p.total_bytes));
        let (moved_objects, moved_bytes) = (sum(|p| p.moved_objects), sum(|p| p.moved_bytes));
        let done = sets.iter().all(|p| p.phase == Phase::Done);
        let state = match () {
            _ if sets.is_empty() => MigrationState::Idle,
            _ if done => MigrationState::Done,
            _ if control.paused
                && sets.iter().all(|p| p.phase == Phase::Done || p.stopped_for == control.paused_seq) =>
            {
                MigrationState::Paused
            }
            _ if control.paused => MigrationState::Pausing,
            _ => MigrationState::Running,
        };
        let percent = if done {
            100.0
        } else if total_bytes > 0 {
            (moved_bytes as f64 / total_bytes as f64 * 100.0).min(99.9)
        } else if total_objects > 0 {
            (moved_objects as f64 / total_objects as f64 * 100.0).min(99.9)
        } else {
            0.0
        };
        let started = sets.iter().map(|p| p.started_unix).min().unwrap_or(0);
        let updated = sets.iter().map(|p| p.updated_unix).max().unwrap_or(0);
        let elapsed = (updated - started).max(1) as f64;
        let rate = moved_bytes as f64 / elapsed;
        let eta_seconds = (!done && rate > 0.0 && total_bytes >= moved_bytes)
            .then(|| ((total_bytes - moved_bytes) as f64 / rate).ceil() as u64);
        let last_error = sets.iter().filter_map(|p| p.last_error.clone()).next_back();
        MigrationStatus {
            generation,
            state,
            paused: control.paused,
            bytes_per_second_limit: control.bytes_per_second,
            total_objects,
            total_bytes,
            moved_objects,
            moved_bytes,
            failed_objects: sum(|p| p.failed_objects),
            percent,
            rate_bytes_per_second: rate,
            eta_seconds,
            last_error,
            sets: sets.iter().map(SetProgress::view).collect(),
        }
    }
}

impl Store {
    /// Walks every object of every set and says which the ring of `next` would place in
    /// another set than the one holding it. Metadata only: one listing of the cluster.
    pub async fn preview_topology(&self, next: &crate::placement::topology::Topology) -> StoreResult<Preview> {
        let ring = next.ring();
        let mut preview = Preview { generation: next.generation, ..Preview::default() };
        let mut flows: std::collections::BTreeMap<(SetId, SetId), (u64, u64)> = Default::default();
        let buckets = self.list_buckets().await?;
        for set in self.sets().iter() {
            let from = self.id_of(set);
            for bucket in &buckets {
                let mut after = String::new();
                loop {
                    let page =
                        set.list(&bucket.name, "", None, &after, CHECKPOINT_EVERY_KEYS, Listing::AllKeys).await?;
                    for entry in &page {
                        let ListEntry::Object(info) = entry else { continue };
                        preview.total_objects += 1;
                        preview.total_bytes += info.size;
                        let to = ring.locate(&bucket.name, &info.key);
                        if to != from {
                            preview.moved_objects += 1;
                            preview.moved_bytes += info.size;
                            let flow = flows.entry((from, to)).or_default();
                            flow.0 += 1;
                            flow.1 += info.size;
                        }
                    }
                    match page.last() {
                        Some(last) if page.len() == CHECKPOINT_EVERY_KEYS => after = last.name().to_string(),
                        _ => break,
                    }
                }
            }
        }
        preview.fraction = if preview.total_bytes > 0 {
            preview.moved_bytes as f64 / preview.total_bytes as f64
        } else if preview.total_objects > 0 {
            preview.moved_objects as f64 / preview.total_objects as f64
        } else {
            0.0
        };
        preview.flows =
            flows.into_iter().map(|((from, to), (objects, bytes))| Flow { from, to, objects, bytes }).collect();
        Ok(preview)
    }
}

/// How the engine runs on this node.
#[derive(Debug, Clone)]
pub struct MigrationConfig {
    /// Objects moved at once per source set.
    pub workers: usize,
    /// How often the engine looks for work (and re-reads the control).
    pub interval: Duration,
}

/// How often the engine looks for work by default: a paused or resumed migration on
/// another node is seen within it.
const MIGRATION_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Most objects moved at once per source set: each holds a block pipeline in memory.
const MAX_MIGRATION_WORKERS: usize = 16;
/// How long the throttle's bucket can save up unused bandwidth: a burst after a pause
/// stays within one second's worth of the limit.
const THROTTLE_BURST: Duration = Duration::from_secs(1);
/// How often a worker that yields to users looks again.
const USER_BACKOFF_STEP: Duration = Duration::from_millis(2);

impl Default for MigrationConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        MigrationConfig { workers: (cores * 2).clamp(2, MAX_MIGRATION_WORKERS), interval: MIGRATION_POLL_INTERVAL }
    }
}

/// Keeps bytes moved per second under a limit (a token bucket one second deep).
pub struct Throttle {
    next: Instant,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle { next: Instant::now() }
    }
}

impl Throttle {
    async fn take(&mut self, bytes: u64, bytes_per_second: u64) {
        if bytes_per_second == 0 {
            return;
        }
        let now = Instant::now();
        if self.next < now - THROTTLE_BURST {
            self.next = now - THROTTLE_BURST;
        }
        self.next += Duration::from_secs_f64(bytes as f64 / bytes_per_second as f64);
        if self.next > now {
            tokio::time::sleep(self.next - now).await;
        }
    }
}

/// A place in a pass over a set's buckets in key order: before the keys of a bucket
/// after a key ("" for the bucket's first), or past the last bucket.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cursor {
    At(String, String),
    End,
}

impl Cursor {
    fn start() -> Cursor {
        Cursor::At(String::new(), String::new())
    }

    /// The cursor of `progress`'s current pass.
    fn of(progress: &SetProgress) -> Cursor {
        Cursor::At(progress.bucket.clone(), progress.after.clone())
    }

    /// Whether `key` of `bucket` comes before this place (a pass there has seen it).
    fn is_past(&self, bucket: &str, key: &str) -> bool {
        match self {
            Cursor::At(at_bucket, after) => (bucket, key) <= (at_bucket.as_str(), after.as_str()),
            Cursor::End => true,
        }
    }
}

/// One page of a set's keys, as a walk found them.
struct Page {
    bucket: String,
    /// Keys away from their ring set: size, and the files the walk read (for the move).
    away: Vec<(String, u64, Vec<DriveMeta>)>,
    /// Keys without a readable quorum (the remains of a write or delete cut short).
    remnants: Vec<String>,
    /// Where the next page of `bucket` starts; `None` when this one ends the bucket.
    next_after: Option<String>,
}

impl Page {
    /// The place right after this page.
    fn end(&self, buckets: &[String]) -> Cursor {
        match &self.next_after {
            Some(after) => Cursor::At(self.bucket.clone(), after.clone()),
            None => match buckets.iter().find(|b| **b > self.bucket) {
                Some(next) => Cursor::At(next.clone(), String::new()),
                None => Cursor::End,
            },
        }
    }
}

/// A run of pages to move: the first (walked), how many may follow it, and whether each
/// page's end is checkpointed as the pass's cursor.
struct Pages<'a> {
    first: Page,
    buckets: &'a [String],
    more: usize,
    checkpoints: bool,
}

/// What a run of pages does next: a batch of moves, or the end of a page (reached once
/// every batch before it is done).
enum Step {
    Batch { bucket: String, requests: Vec<MoveRequest>, unplaced: u64 },
    PageEnd(Cursor),
}

/// A step under way: a batch of moves running as its own task, or a page end behind it.
enum Running {
    Batch(String, tokio::task::JoinHandle<Vec<(String, StoreResult<Moved>)>>),
    PageEnd(Cursor),
}

/// The counting pass's state while the first moving pass runs alongside it.
struct Count {
    /// Every key before it is counted.
    at: Cursor,
    objects: u64,
    bytes: u64,
}

impl Count {
    /// Counts the keys of `page` (walked by either pass) not counted yet and moves the
    /// cursor past it; whether anything changed.
    fn add(&mut self, page: &Page, buckets: &[String]) -> bool {
        let end = page.end(buckets);
        if end <= self.at {
            return false;
        }
        if page.bucket != registry::REGISTRY_BUCKET {
            for (_, size, _) in page.away.iter().filter(|(key, _, _)| !self.at.is_past(&page.bucket, key)) {
                self.objects += 1;
                self.bytes += size;
            }
        }
        self.at = end;
        true
    }

    /// `progress` with this count in it, as its checkpoint says it: still counting at
    /// the count's cursor, or (counted to the end) moving from `mover`, where the
    /// moving pass that ran alongside got to.
    fn checkpoint(&self, store: &Store, progress: &SetProgress, mover: &Cursor) -> StoreResult<SetProgress> {
        let mut out = progress.clone();
        out.total_objects = self.objects;
        out.total_bytes = self.bytes;
        out.phase = Phase::Counting;
        match &self.at {
            Cursor::At(bucket, after) => {
                out.bucket = bucket.clone();
                out.after = after.clone();
            }
            Cursor::End => {
                store.finish_pass(&mut out)?;
                store.advance(&mut out, mover.clone())?;
            }
        }
        Ok(out)
    }
}

/// Where each set's first moving pass got to while its count runs, on this node (after
/// a restart that pass starts again from the first key, which is harmless: the keys it
/// moved are no longer in the set).
#[derive(Debug, Default)]
pub struct MoverCursors(std::sync::Mutex<std::collections::HashMap<SetId, (u64, Cursor)>>);

impl MoverCursors {
    fn take(&self, set: SetId, generation: u64) -> Option<Cursor> {
        let taken = self.0.lock().expect("mover cursors").remove(&set);
        taken.filter(|(of, _)| *of == generation).map(|(_, at)| at)
    }

    fn put(&self, set: SetId, generation: u64, at: Cursor) {
        self.0.lock().expect("mover cursors").insert(set, (generation, at));
    }
}

/// The drive that names the node running a round of `set` (`SetProgress::runner`).
fn runner_drive<'a>(set: &'a ErasureSet, progress: &SetProgress) -> Option<&'a Arc<dyn Drive>> {
    let at = usize::try_from(progress.runner.checked_sub(1)?).ok()?;
    set.drives().get(at)
}

/// Runs the migrations this node owns, forever.
pub async fn run_migrations(store: Arc<Store>, config: MigrationConfig) {
    tokio::spawn(store.clone().keep_lease());
    let mut throttle = Throttle::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = store.migrate_now.notified() => {}
        }
        // One read of the control and of every set's checkpoint per tick: published as
        // metrics, and the engine only runs when something is left to move.
        let status = store.migration_status().await;
        store.publish_migration_metrics(&status);
        if status.state == MigrationState::Done {
            store.settle_step().await;
        }
        if matches!(status.state, MigrationState::Running | MigrationState::Pausing)
            && let Err(e) = migrate_pending(&store, &config, &mut throttle).await
        {
            tracing::warn!(error = %e, "migration step failed; retrying");
        }
    }
}

/// Runs the migrations this node owns, page by page with a checkpoint after each, until
/// there is nothing left to do right now (all done, paused, or nothing owned here).
pub async fn migrate_pending(store: &Arc<Store>, config: &MigrationConfig, throttle: &mut Throttle) -> StoreResult<()> {
    loop {
        let generation = store.topology().generation;
        if generation <= 1 {
            return Ok(());
        }
        let control = store.migration_control().await;
        if control.paused {
            return store.confirm_pause(&control).await;
        }
        let mut worked = false;
        let mut checkpoints = Vec::new();
        for set in store.sets().iter() {
            checkpoints.push((set.clone(), store.set_progress(set, generation).await));
        }
        // The bandwidth limit is shared by the sets still migrating (whoever runs them).
        let migrating =
            checkpoints.iter().filter(|(_, p)| p.as_ref().is_none_or(|p| p.phase != Phase::Done)).count().max(1) as u64;
        for (set, checkpoint) in checkpoints {
            let Some(mark) = store.mover_mark(&set) else {
                // Named as its runner by a round cut short (an error): the set's mover
                // now is another node, which waits for this one to let go.
                if let Some(mut progress) = checkpoint.filter(|p| store.runs_here(&set, p)) {
                    progress.runner = 0;
                    store.save_progress(&set, &mut progress).await?;
                }
                continue;
            };
            let mut progress =
                checkpoint.unwrap_or_else(|| SetProgress::new(generation, set.id, crate::clock::unix_now()));
            // A node that ran the set before this one became its mover (back after a
            // restart, say) ends its round first.
            if progress.phase == Phase::Done || store.runs_elsewhere(&set, &progress) {
                continue;
            }
            worked = true;
            if progress.runner != mark {
                progress.runner = mark;
                store.save_progress(&set, &mut progress).await?;
            }
            let share = control.bytes_per_second.div_ceil(migrating);
            store.migrate_page(&set, &mut progress, config, throttle, share).await?;
            // The round is over: a pause asked meanwhile is confirmed with its checkpoint.
            let now = store.migration_control().await;
            if now.paused {
                progress.stopped_for = now.paused_seq;
            }
            progress.runner = 0;
            store.save_progress(&set, &mut progress).await?;
            if store.topology().generation != generation {
                return Ok(());
            }
            if now.paused {
                return store.confirm_pause(&now).await;
            }
        }
        if !worked {
            return Ok(());
        }
    }
}

impl Store {
    /// Confirms, in the checkpoint of every unfinished set this node moves or last ran a
    /// round of, that no move of it runs under the pause `control` holds (the status says
    /// paused once every set has). A set another reachable node runs is left to that node.
    /// Called only between rounds.
    async fn confirm_pause(&self, control: &Control) -> StoreResult<()> {
        let generation = self.topology().generation;
        // A node with no drive in a set neither moves it nor ran it: its checkpoint unread.
        for set in self.sets().iter().filter(|set| set.drives().iter().any(|d| d.is_local())) {
            let mut progress = match self.set_progress(set, generation).await {
                Some(progress) => progress,
                None => SetProgress::new(generation, set.id, crate::clock::unix_now()),
            };
            if progress.phase == Phase::Done || progress.stopped_for == control.paused_seq {
                continue;
            }
            let here = self.runs_here(set, &progress);
            if here || (self.owns_migration_of(set) && !self.runs_elsewhere(set, &progress)) {
                progress.stopped_for = control.paused_seq;
                if here {
                    progress.runner = 0;
                }
                self.save_progress(set, &mut progress).await?;
            }
        }
        Ok(())
    }

    /// The user buckets and the registry, in name order (the identity store has a copy
    /// in every set and never moves).
    async fn migration_buckets(&self) -> StoreResult<Vec<String>> {
        let mut names: Vec<String> =
            self.list_all_buckets().await?.into_iter().map(|b| b.name).filter(|b| b != super::IAM_BUCKET).collect();
        names.sort();
        Ok(names)
    }

    /// Processes up to `CHECKPOINT_EVERY_KEYS` keys of `set` after the progress cursor and
    /// advances it (to the next bucket, the next phase or the next pass at the end); a
    /// pause between two batches of moves leaves the cursor where it was. The counting
    /// pass runs with the first moving pass alongside (`count_while_moving`).
    async fn migrate_page(
        self: &Arc<Self>,
        set: &Arc<ErasureSet>,
        progress: &mut SetProgress,
        config: &MigrationConfig,
        throttle: &mut Throttle,
        bytes_per_second: u64,
    ) -> StoreResult<()> {
        match progress.phase {
            Phase::Counting => self.count_while_moving(set, progress, config, throttle, bytes_per_second).await,
            Phase::Moving => {
                let buckets = self.migration_buckets().await?;
                let Some(page) = self.walk_page(set, &buckets, &Cursor::of(progress)).await? else {
                    return self.finish_pass(progress);
                };
                let pages = Pages { first: page, buckets: &buckets, more: PAGES_PER_ROUND - 1, checkpoints: true };
                self.move_pages(set, pages, progress, config, throttle, bytes_per_second).await.map(|_| ())
            }
            Phase::Done => Ok(()),
        }
    }

    /// One round of the counting pass: its pages are counted while the first moving pass
    /// moves one page, from where it got to on this node (from the start after a restart,
    /// its pass counters with it). Both walk in key order; whichever reaches a key first
    /// counts it, and the count's cursor (the progress cursor in this phase) moves past
    /// every page either walked, so no key is counted twice. A page the mover counts is on
    /// disk, totals and cursor, before any of its keys moves: a restart neither misses it
    /// nor counts it again. Once the count reaches the end, the moving pass goes on from
    /// where the mover is.
    async fn count_while_moving(
        self: &Arc<Self>,
        set: &Arc<ErasureSet>,
        progress: &mut SetProgress,
        config: &MigrationConfig,
        throttle: &mut Throttle,
        bytes_per_second: u64,
    ) -> StoreResult<()> {
        let buckets = self.migration_buckets().await?;
        let mover = match self.movers.take(set.id, progress.generation) {
            Some(at) => at,
            None => {
                progress.found_in_pass = 0;
                progress.failed_objects = 0;
                Cursor::start()
            }
        };
        let count = std::sync::Mutex::new(Count {
            at: Cursor::of(progress),
            objects: progress.total_objects,
            bytes: progress.total_bytes,
        });
        let moved_page = AtomicBool::new(false);
        let counting = async {
            while !moved_page.load(Ordering::Relaxed) {
                let at = count.lock().expect("count").at.clone();
                let page = self.walk_page(set, &buckets, &at).await?;
                let mut count = count.lock().expect("count");
                match page {
                    Some(page) => {
                        count.add(&page, &buckets);
                    }
                    None => count.at = Cursor::End,
                }
                if count.at == Cursor::End {
                    break;
                }
            }
            StoreResult::Ok(())
        };
        let moving = async {
            let moved = async {
                let Some(page) = self.walk_page(set, &buckets, &mover).await? else { return Ok(Cursor::End) };
                let checkpoint = {
                    let mut count = count.lock().expect("count");
                    count.add(&page, &buckets).then(|| count.checkpoint(self, progress, &mover)).transpose()?
                };
                if let Some(mut checkpoint) = checkpoint {
                    self.save_progress(set, &mut checkpoint).await?;
                    progress.seq = checkpoint.seq;
                }
                let pages = Pages { first: page, buckets: &buckets, more: 0, checkpoints: false };
                let moved = self.move_pages(set, pages, progress, config, throttle, bytes_per_second);
                Ok(moved.await?.unwrap_or_else(|| mover.clone()))
            };
            let moved: StoreResult<Cursor> = moved.await;
            moved_page.store(true, Ordering::Relaxed);
            moved
        };
        let (counted, moved) = tokio::join!(counting, moving);
        counted?;
        let mover = moved?;
        let count = count.into_inner().expect("count");
        *progress = count.checkpoint(self, progress, &mover)?;
        if progress.phase == Phase::Counting {
            self.movers.put(set.id, progress.generation, mover);
        }
        Ok(())
    }

    /// The page of `set`'s keys at `at` (the next bucket's first when `at`'s is done);
    /// `None` past the last bucket.
    async fn walk_page(&self, set: &Arc<ErasureSet>, buckets: &[String], at: &Cursor) -> StoreResult<Option<Page>> {
        let Cursor::At(from, after) = at else { return Ok(None) };
        let Some(bucket) = buckets.iter().find(|b| *b >= from).cloned() else { return Ok(None) };
        let after = if bucket == *from { after.as_str() } else { "" };
        // Keys without a readable quorum are listed too (as placeholders, no ETag): the
        // remains of a write or delete cut short by a crash, which the moving pass clears.
        let walked = set.walk_all_keys(&bucket, after, CHECKPOINT_EVERY_KEYS).await?;
        // Where the next page starts; `None` when this one ends the bucket.
        let next_after =
            walked.last().filter(|_| walked.len() == CHECKPOINT_EVERY_KEYS).map(|(last, _)| last.name().to_string());
        let my_id = self.id_of(set);
        // Keys away from their ring set each go with the files the walk read, for the move.
        let mut remnants: Vec<String> = Vec::new();
        let mut away: Vec<(String, u64, Vec<DriveMeta>)> = Vec::new();
        for (entry, metas) in walked {
            let ListEntry::Object(info) = entry else { continue };
            if info.is_placeholder() {
                remnants.push(info.key);
            } else if self.home_of(&bucket, &info.key) != Some(my_id) {
                away.push((info.key, info.size, metas));
            }
        }
        Ok(Some(Page { bucket, away, remnants, next_after }))
    }

    /// Clears a page's remnants and plans its moves: batches of keys that share their
    /// syncs (`move_objects`; under a bandwidth limit a batch is about a second of it),
    /// then the page's end. Its keys count as found in the pass.
    async fn plan_page(
        &self,
        set: &Arc<ErasureSet>,
        page: Page,
        buckets: &[String],
        progress: &mut SetProgress,
        bytes_per_second: u64,
    ) -> Vec<Step> {
        let end = Step::PageEnd(page.end(buckets));
        let (bucket, my_id) = (&page.bucket, self.id_of(set));
        for key in &page.remnants {
            match set.heal_object(bucket, key, false).await {
                // A move cut short while it deleted its source leaves copies here below
                // quorum; they go once the object is whole in its ring set.
                Err(StoreError::LostBeyondParity { .. }) => {
                    let Some(home) = self.home_of(bucket, key).filter(|home| *home != my_id) else { continue };
                    // Every version, delete markers too: a key whose latest version
                    // is a delete marker has no object to HEAD, yet it moved whole.
                    let home_holds_them = async |ids: Vec<VersionId>| match self.set_by_id(home) {
                        Some(home) => match home.read_key(bucket, key).await {
                            Ok((_, state)) => ids.iter().all(|id| state.version(*id).is_ok()),
                            Err(_) => false,
                        },
                        None => false,
                    };
                    if let Err(e) = set.purge_remnant(bucket, key, home_holds_them).await {
                        tracing::debug!(bucket, key, error = %e, "migration: could not clear a remnant");
                    }
                }
                Err(e) => tracing::debug!(bucket, key, error = %e, "migration: could not clear a remnant"),
                Ok(_) => {}
            }
        }
        if *bucket == registry::REGISTRY_BUCKET {
            self.drop_misplaced_records(set, &page.away).await;
            return vec![end];
        }
        progress.found_in_pass += page.away.len() as u64;
        let batch_bytes = match bytes_per_second {
            0 => MOVE_BATCH_BYTES,
            limit => limit.min(MOVE_BATCH_BYTES),
        };
        let mut steps = Vec::new();
        let mut away = page.away.into_iter().peekable();
        while away.peek().is_some() {
            let (mut requests, mut bytes, mut unplaced) = (Vec::new(), 0u64, 0u64);
            while let Some((_, size, _)) = away.peek() {
                if !requests.is_empty() && (requests.len() >= MOVE_BATCH_KEYS || bytes + size > batch_bytes) {
                    break;
                }
                let (key, size, walked) = away.next().expect("peeked");
                bytes += size;
                match self.home_of(bucket, &key).and_then(|id| self.set_by_id(id)) {
                    Some(target) => requests.push(MoveRequest { key, target, walked: Some(walked) }),
                    None => unplaced += 1,
                }
            }
            steps.push(Step::Batch { bucket: bucket.clone(), requests, unplaced });
        }
        steps.push(end);
        steps
    }

    /// Moves the keys of `first` and of up to `more` pages after it away from `set`,
    /// counting them in `progress`. Batches flow from one page into the next: the next
    /// page is walked while the last batches of this one run, and two batches overlap
    /// while users leave the node idle, one copying while the other syncs and commits
    /// (each runs as its own task, on either core). With `checkpoints`, each page's end
    /// becomes the pass's cursor, saved, once every batch of the page is done. Answers
    /// the end of the last page done: a pause, a batch that failed as a whole or a new
    /// topology stops it between two batches (a pause between two keys),
    /// and a page stopped in is looked at again.
    async fn move_pages(
        self: &Arc<Self>,
        set: &Arc<ErasureSet>,
        Pages { first, buckets, mut more, checkpoints }: Pages<'_>,
        progress: &mut SetProgress,
        config: &MigrationConfig,
        throttle: &mut Throttle,
        bytes_per_second: u64,
    ) -> StoreResult<Option<Cursor>> {
        let mut walk_from = Some(first.end(buckets)).filter(|end| *end != Cursor::End);
        let mut planned: std::collections::VecDeque<Step> =
            self.plan_page(set, first, buckets, progress, bytes_per_second).await.into();
        // Batches started and page ends behind them, in order: a page is done once
        // everything before its end is.
        let mut running = std::collections::VecDeque::new();
        let mut copying: Option<tokio::sync::oneshot::Receiver<()>> = None;
        let (mut stopped, mut failed, mut done) = (false, None, None);
        // Keys a pause left unmoved in a batch: no page end after them becomes the cursor.
        let mut deferred = false;
        loop {
            // The next page, once the last batch of those planned has started.
            if !stopped
                && failed.is_none()
                && more > 0
                && !planned.iter().any(|step| matches!(step, Step::Batch { .. }))
            {
                if self.topology().generation != progress.generation {
                    more = 0;
                } else if let Some(from) = walk_from.take() {
                    more -= 1;
                    match self.walk_page(set, buckets, &from).await {
                        Ok(Some(page)) => {
                            walk_from = Some(page.end(buckets)).filter(|end| *end != Cursor::End);
                            planned.extend(self.plan_page(set, page, buckets, progress, bytes_per_second).await);
                        }
                        Ok(None) => planned.push_back(Step::PageEnd(Cursor::End)),
                        Err(e) => failed = Some(e),
                    }
                }
            }
            let depth = if self.users_busy() { 1 } else { MOVE_BATCHES_OVERLAPPING };
            while !stopped && failed.is_none() {
                let batches = running.iter().filter(|r| matches!(r, Running::Batch(..))).count();
                match planned.front() {
                    Some(Step::PageEnd(_)) => {}
                    Some(Step::Batch { .. }) if batches < depth => {
                        // A batch starts once the one before it has copied its keys.
                        if let Some(copying) = copying.take() {
                            let _ = copying.await;
                        }
                    }
                    _ => break,
                }
                match planned.pop_front().expect("looked at") {
                    Step::PageEnd(end) => running.push_back(Running::PageEnd(end)),
                    Step::Batch { bucket, requests, unplaced } => {
                        progress.moved_objects += unplaced;
                        let (store, set, workers) = (self.clone(), set.clone(), config.workers);
                        let bucket_of_task = bucket.clone();
                        let (copied_all, copied) = tokio::sync::oneshot::channel();
                        copying = Some(copied);
                        let task = tokio::spawn(async move {
                            let _placing = store.begin_placed_write();
                            store.move_objects(&bucket_of_task, &set, requests, workers, Some(copied_all)).await
                        });
                        running.push_back(Running::Batch(bucket, task));
                    }
                }
            }
            let (bucket, batch) = match running.pop_front() {
                None => break,
                Some(Running::PageEnd(end)) => {
                    if failed.is_none() && !deferred {
                        // Once paused, the cursor moves and the caller saves it once, when
                        // the batches running are done: the counters settle in one step.
                        let saved = match (checkpoints, stopped) {
                            (true, false) => self.checkpoint_at(set, progress, end.clone()).await,
                            (true, true) => self.advance(progress, end.clone()),
                            (false, _) => Ok(()),
                        };
                        match saved {
                            Ok(()) => done = Some(end),
                            Err(e) => failed = Some(e),
                        }
                    }
                    continue;
                }
                Some(Running::Batch(bucket, batch)) => (bucket, batch),
            };
            // A batch that failed as a whole (or a walk or a checkpoint) ends the run once
            // the batches started are done.
            let results = match batch.await {
                Ok(results) => results,
                Err(e) => {
                    failed = Some(StoreError::Unrecoverable(format!("a batch of moves failed: {e}")));
                    continue;
                }
            };
            for (key, result) in results {
                match result {
                    Ok(Moved::Copied { bytes }) => {
                        progress.moved_objects += 1;
                        progress.moved_bytes += bytes;
                        self.metrics.migration_moved_objects.inc();
                        self.metrics.migration_moved_bytes.inc_by(bytes);
                        throttle.take(bytes, bytes_per_second).await;
                    }
                    Ok(Moved::Changed) => {
                        progress.moved_objects += 1;
                    }
                    Ok(Moved::Deferred) => {
                        deferred = true;
                        stopped = true;
                    }
                    Err(e) => {
                        progress.failed_objects += 1;
                        progress.last_error = Some(format!("{bucket}/{key}: {e}"));
                        self.metrics.migration_failed_objects.inc();
                        tracing::warn!(bucket, key, error = %e, "migration: move failed; the next pass retries");
                    }
                }
            }
            // A pause holds between batches: the batches running finish.
            let waiting =
                planned.iter().any(|step| matches!(step, Step::Batch { .. })) || (more > 0 && walk_from.is_some());
            if !stopped && waiting && self.migration_control().await.paused {
                stopped = true;
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// Moves the cursor of the current pass to `to` and saves the checkpoint.
    async fn checkpoint_at(&self, set: &Arc<ErasureSet>, progress: &mut SetProgress, to: Cursor) -> StoreResult<()> {
        self.advance(progress, to)?;
        self.save_progress(set, progress).await
    }

    /// Moves the cursor of the current pass to `to`, or past the end of the pass.
    fn advance(&self, progress: &mut SetProgress, to: Cursor) -> StoreResult<()> {
        match to {
            Cursor::At(bucket, after) => {
                progress.bucket = bucket;
                progress.after = after;
                Ok(())
            }
            Cursor::End => self.finish_pass(progress),
        }
    }

    fn finish_pass(&self, progress: &mut SetProgress) -> StoreResult<()> {
        progress.bucket.clear();
        progress.after.clear();
        progress.passes += 1;
        progress.phase = match progress.phase {
            Phase::Counting => Phase::Moving,
            Phase::Moving if progress.failed_objects > 0 || progress.found_in_pass > 0 => {
                progress.failed_objects = 0;
                progress.found_in_pass = 0;
                Phase::Moving
            }
            _ => Phase::Done,
        };
        if progress.phase == Phase::Done {
            // A pass without failures left nothing in the set that belongs elsewhere: every
            // counted object moved (or was overwritten or deleted by a user meanwhile). Moves
            // a killed node made after its last checkpoint are not in the counters; the
            // totals are.
            progress.moved_objects = progress.moved_objects.max(progress.total_objects);
            progress.moved_bytes = progress.moved_bytes.max(progress.total_bytes);
            progress.last_error = None;
        }
        Ok(())
    }

    /// The set the current ring names for a key (registry records: for the object the
    /// record describes, which is where the record belongs).
    fn home_of(&self, bucket: &str, key: &str) -> Option<SetId> {
        if bucket == registry::REGISTRY_BUCKET {
            return None;
        }
        Some(self.set_for(bucket, key).clone()).map(|set| self.id_of(&set))
    }

    /// Registry records in `set` whose object the current ring places elsewhere are stale
    /// hints: deleted. (Records for objects the ring places in `set` stay.)
    async fn drop_misplaced_records(&self, set: &Arc<ErasureSet>, records: &[(String, u64, Vec<DriveMeta>)]) {
        let my_id = self.id_of(set);
        for (record_key, _, _) in records {
            let Some((bucket, _)) = record_key.split_once('/') else { continue };
            // Read the record to learn its key; a record that cannot be read is dropped.
            let key = self.record_subject(set, record_key).await;
            let misplaced = key.as_ref().is_none_or(|key| self.home_of(bucket, key) != Some(my_id));
            if misplaced && let Err(e) = set.delete_object(registry::REGISTRY_BUCKET, record_key).await {
                tracing::debug!(record_key, error = %e, "could not drop a misplaced registry record");
            }
        }
    }

    /// Publishes the migration's state as gauges (every node, from the checkpoints).
    pub fn publish_migration_metrics(&self, status: &MigrationStatus) {
        let m = &self.metrics;
        m.migration_total_objects.set(status.total_objects as i64);
        m.migration_total_bytes.set(status.total_bytes as i64);
        m.migration_done_objects.set(status.moved_objects as i64);
        m.migration_done_bytes.set(status.moved_bytes as i64);
        m.migration_percent.set(status.percent);
        m.migration_rate.set(status.rate_bytes_per_second);
        m.migration_eta.set(status.eta_seconds.map_or(-1.0, |s| s as f64));
        m.migration_paused.set(i64::from(status.paused));
        m.migration_generation.set(status.generation as i64);
    }

    /// Whether S3 requests are in flight on this node.
    pub(in crate::storage) fn users_busy(&self) -> bool {
        self.user_requests.load(Ordering::Relaxed) > 0
    }

    /// Waits (bounded) while S3 requests are in flight on this node: users first.
    pub(in crate::storage) async fn yield_to_users(&self) {
        let started = Instant::now();
        while self.users_busy() && started.elapsed() < MAX_USER_BACKOFF {
            tokio::time::sleep(USER_BACKOFF_STEP).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::storage::PutOptions;
    use crate::storage::testing::{body, data, drain_set_one, open_two_sets, put, read};

    /// Two sets on `dir` with the system buckets, filled (`fill`).
    async fn filled(dir: &std::path::Path) -> (Arc<Store>, Vec<(String, Vec<u8>)>) {
        let store = open_two_sets(dir);
        store.ensure_system_buckets().await;
        let objects = fill(&store).await;
        (store, objects)
    }

    /// Objects of every kind: inline, empty, multi-block and multipart.
    async fn fill(store: &Arc<Store>) -> Vec<(String, Vec<u8>)> {
        store.make_bucket("b").await.unwrap();
        let mut objects = Vec::new();
        for n in 0..60 {
            let bytes = match n % 10 {
                0 => Vec::new(),
                1 => data(2 * 1024 * 1024 + 17, n),
                _ => data(100 + n as usize * 37, n),
            };
            let key = format!("dir{}/obj-{n}", n % 3);
            put(store, "b", &key, bytes.clone()).await;
            objects.push((key, bytes));
        }
        for n in 0..4u64 {
            let key = format!("multipart-{n}");
            let id = store.create_multipart_upload("b", &key, Vec::new(), None, Default::default()).await.unwrap();
            let (one, two) = (data(5 * 1024 * 1024, 100 + n), data(300_000, 200 + n));
            let mut etags = Vec::new();
            for (number, part) in [(1u32, &one), (2, &two)] {
                let options = PutOptions { content_length: Some(part.len() as u64), ..PutOptions::default() };
                let meta = store.upload_part("b", &key, &id, number, body(part.clone()), options).await.unwrap();
                etags.push(crate::storage::multipart::RequestedPart::new(number, meta.etag));
            }
            store.complete_multipart_upload("b", &key, &id, &etags, &[], None).await.unwrap();
            objects.push((key, [one, two].concat()));
        }
        objects
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn draining_a_set_moves_exactly_its_objects_and_keeps_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (store, objects) = filled(dir.path()).await;
        let ring = store.topology().ring();
        let in_set_one: Vec<&(String, Vec<u8>)> = objects.iter().filter(|(k, _)| ring.locate("b", k) == 1).collect();
        let bytes_in_set_one: u64 = in_set_one.iter().map(|(_, b)| b.len() as u64).sum();
        let etags_before: Vec<String> = {
            let mut etags = Vec::new();
            for (key, _) in &objects {
                etags.push(store.head_object("b", key).await.unwrap().etag);
            }
            etags
        };
        drain_set_one(&store).await;
        assert_eq!(store.migration_status().await.state, MigrationState::Running);

        migrate_pending(&store, &MigrationConfig::default(), &mut Throttle::default()).await.unwrap();

        let status = store.migration_status().await;
        assert_eq!(status.state, MigrationState::Done, "{status:?}");
        assert_eq!(status.total_objects, in_set_one.len() as u64);
        assert_eq!(status.total_bytes, bytes_in_set_one);
        assert_eq!(status.moved_objects, in_set_one.len() as u64);
        assert_eq!(status.moved_bytes, bytes_in_set_one);
        assert_eq!(status.percent, 100.0);
        // Set 1 holds no object any more; every object reads back whole, same ETag.
        assert!(holds_nothing(&store.sets()[1], "b").await);
        for ((key, bytes), etag) in objects.iter().zip(&etags_before) {
            assert_eq!(&read(&store, "b", key).await.unwrap(), bytes, "{key}");
            assert_eq!(&store.sets()[0].head_object("b", key).await.unwrap().0.etag, etag, "{key}");
        }
        // The listing shows each object once.
        let listed = store.list_objects("b", "", None, "", 1000).await.unwrap();
        assert_eq!(listed.len(), objects.len());
    }

    /// While users keep the node busy the workers rest after each move, and the drain
    /// still ends with every object whole in its ring set.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_drain_under_constant_user_load_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, objects) = filled(dir.path()).await;
        drain_set_one(&store).await;
        store.user_requests.store(1, Ordering::Relaxed);
        let (config, mut throttle) = (MigrationConfig::default(), Throttle::default());
        let drain = migrate_pending(&store, &config, &mut throttle);
        tokio::time::timeout(Duration::from_secs(120), drain).await.expect("the drain ends under load").unwrap();
        store.user_requests.store(0, Ordering::Relaxed);
        assert_eq!(store.migration_status().await.state, MigrationState::Done);
        assert!(holds_nothing(&store.sets()[1], "b").await);
        for (key, bytes) in &objects {
            assert_eq!(&read(&store, "b", key).await.unwrap(), bytes, "{key}");
        }
    }

    /// A page of `bucket` holding `away` keys (1 byte each), followed by `next_after`.
    fn page(bucket: &str, away: &[&str], next_after: Option<&str>) -> Page {
        Page {
            bucket: bucket.to_string(),
            away: away.iter().map(|key| (key.to_string(), 1, Vec::new())).collect(),
            remnants: Vec::new(),
            next_after: next_after.map(str::to_string),
        }
    }

    /// The count and the moving pass beside it walk the same keys in either order, a
    /// page at a time, pages cut in different places: every key is counted once.
    #[test]
    fn keys_walked_by_both_passes_are_counted_once() {
        let buckets = vec!["a".to_string(), "b".to_string()];
        let mut count = Count { at: Cursor::start(), objects: 0, bytes: 0 };
        // The mover walks ahead: its first page counts its keys.
        assert!(count.add(&page("a", &["k1", "k2", "k3"], Some("k3")), &buckets));
        // The counter's page walked from the start before that: only k4 is new.
        assert!(count.add(&page("a", &["k1", "k2", "k3", "k4"], Some("k4")), &buckets));
        // A page wholly counted already changes nothing.
        assert!(!count.add(&page("a", &["k2", "k3"], Some("k3")), &buckets));
        // The rest of bucket a, then all of b.
        assert!(count.add(&page("a", &["k4", "k5"], None), &buckets));
        assert_eq!(count.at, Cursor::At("b".into(), String::new()));
        assert!(count.add(&page("b", &["k1"], None), &buckets));
        assert_eq!((count.at.clone(), count.objects, count.bytes), (Cursor::End, 6, 6));

        // Counted to the end, the checkpoint moves on from the mover's place; while
        // counting, it keeps the count's cursor.
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        let progress = SetProgress::new(2, 1, 0);
        let mover = Cursor::At("a".into(), "k3".into());
        let done = count.checkpoint(&store, &progress, &mover).unwrap();
        assert_eq!((done.phase, done.bucket.as_str(), done.after.as_str()), (Phase::Moving, "a", "k3"));
        assert_eq!((done.total_objects, done.passes), (6, 1));
        let counting = Count { at: Cursor::At("a".into(), "k4".into()), objects: 4, bytes: 4 };
        let saved = counting.checkpoint(&store, &progress, &mover).unwrap();
        assert_eq!((saved.phase, saved.bucket.as_str(), saved.after.as_str()), (Phase::Counting, "a", "k4"));
        assert_eq!(saved.total_objects, 4);
    }

    /// Whether `set` holds no key of `bucket`, not even a delete marker.
    async fn holds_nothing(set: &Arc<ErasureSet>, bucket: &str) -> bool {
        set.list(bucket, "", None, "", 10, crate::storage::set::Listing::AllKeys).await.unwrap().is_empty()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_migration_resumes_from_its_checkpoint_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.ensure_system_buckets().await;
        // Enough keys for several checkpoint pages in set 1.
        store.make_bucket("b").await.unwrap();
        let keys: Vec<String> = (0..2 * CHECKPOINT_EVERY_KEYS + 300).map(|n| format!("k{n:05}")).collect();
        let writes = futures::stream::iter(keys.iter().map(|key| put(&store, "b", key, key.as_bytes().to_vec())));
        writes.buffer_unordered(8).collect::<Vec<()>>().await;
        let ring = store.topology().ring();
        let away = keys.iter().filter(|k| ring.locate("b", k) == 1).count() as u64;
        drain_set_one(&store).await;
        // Count, then move one page, as a node would before being killed.
        let set = store.sets()[1].clone();
        let mut progress = SetProgress::new(store.topology().generation, 1, crate::clock::unix_now());
        let config = MigrationConfig::default();
        let mut throttle = Throttle::default();
        while progress.phase == Phase::Counting {
            store.migrate_page(&set, &mut progress, &config, &mut throttle, 0).await.unwrap();
            store.save_progress(&set, &mut progress).await.unwrap();
        }
        // One page at most (a round runs several).
        let buckets = store.migration_buckets().await.unwrap();
        while progress.moved_objects == 0 {
            let page = store.walk_page(&set, &buckets, &Cursor::of(&progress)).await.unwrap().expect("a page left");
            let pages = Pages { first: page, buckets: &buckets, more: 0, checkpoints: true };
            store.move_pages(&set, pages, &mut progress, &config, &mut throttle, 0).await.unwrap();
            store.save_progress(&set, &mut progress).await.unwrap();
        }
        assert!(progress.moved_objects < away, "{} of {away} moved in one page", progress.moved_objects);
        drop(store);

        // A new process on the same drives picks up the checkpoint and finishes.
        let store = open_two_sets(dir.path());
        let checkpoint = store.set_progress(&store.sets()[1], 2).await.unwrap();
        assert_eq!(checkpoint.phase, Phase::Moving);
        assert_eq!(checkpoint.total_objects, away);
        migrate_pending(&store, &config, &mut throttle).await.unwrap();
        let status = store.migration_status().await;
        assert_eq!(status.state, MigrationState::Done);
        assert_eq!(status.moved_objects, away);
        assert!(holds_nothing(&store.sets()[1], "b").await);
        for key in keys.iter().step_by(7) {
            assert_eq!(read(&store, "b", key).await.unwrap(), key.as_bytes());
        }
    }

    /// Keys of set 1 only (in key order), `pages` checkpoint pages of them, written.
    /// Two sets, four pages of keys in set 1, set 1 drained: the keys in order.
    async fn draining_four_pages(dir: &std::path::Path) -> (Arc<Store>, Vec<String>) {
        let store = open_two_sets(dir);
        let keys = pages_in_set_one(&store, 4).await;
        drain_set_one(&store).await;
        (store, keys)
    }

    async fn pages_in_set_one(store: &Arc<Store>, pages: usize) -> Vec<String> {
        store.ensure_system_buckets().await;
        store.make_bucket("b").await.unwrap();
        let ring = store.topology().ring();
        let keys: Vec<String> = (0..)
            .map(|n| format!("k{n:05}"))
            .filter(|k| ring.locate("b", k) == 1)
            .take(pages * CHECKPOINT_EVERY_KEYS)
            .collect();
        let writes = futures::stream::iter(keys.iter().map(|key| put(store, "b", key, key.as_bytes().to_vec())));
        writes.buffer_unordered(8).collect::<Vec<()>>().await;
        keys
    }

    /// Set 1 of a drained store once its count is done, with the config and throttle its
    /// rounds run with.
    async fn counted_set_one(store: &Arc<Store>) -> (Arc<ErasureSet>, u64, SetProgress, MigrationConfig, Throttle) {
        let (set, generation) = (store.sets()[1].clone(), store.topology().generation);
        let mut progress = SetProgress::new(generation, 1, crate::clock::unix_now());
        let (config, mut throttle) = (MigrationConfig::default(), Throttle::default());
        while progress.phase == Phase::Counting {
            store.migrate_page(&set, &mut progress, &config, &mut throttle, 0).await.unwrap();
            store.save_progress(&set, &mut progress).await.unwrap();
        }
        (set, generation, progress, config, throttle)
    }

    /// A moving round runs page after page, its batches flowing from one page into the
    /// next; paused partway, the saved cursor is a page end with every key before it gone
    /// from the source and the last page untouched; resumed, every key ends whole in its
    /// ring set.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_moving_round_moves_page_after_page_and_pauses_at_a_page_end() {
        let dir = tempfile::tempdir().unwrap();
        let (store, keys) = draining_four_pages(dir.path()).await;
        let (set, generation, mut progress, config, mut throttle) = counted_set_one(&store).await;
        let moved_before = store.metrics.migration_moved_objects.get();
        assert!(moved_before < 2 * CHECKPOINT_EVERY_KEYS as u64, "{moved_before} moved while counting");
        // Paused once the round is well into its second page.
        let pausing = {
            let store = store.clone();
            tokio::spawn(async move {
                while store.metrics.migration_moved_objects.get() < moved_before + CHECKPOINT_EVERY_KEYS as u64 + 50 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                store.update_migration_control(|c| c.paused = true).await.unwrap();
            })
        };
        store.migrate_page(&set, &mut progress, &config, &mut throttle, 0).await.unwrap();
        let paused = tokio::time::timeout(Duration::from_secs(10), pausing).await;
        paused.expect("the round goes on past its first page until paused").unwrap();
        let saved = store.set_progress(&set, generation).await.unwrap();
        assert_eq!((saved.phase, &saved.bucket, &saved.after), (Phase::Moving, &progress.bucket, &progress.after));
        let pages_done = keys.iter().position(|k| *k == saved.after).map(|at| at + 1).expect("a key of b");
        assert_eq!(pages_done % CHECKPOINT_EVERY_KEYS, 0, "the cursor is a page end");
        assert!(pages_done >= 2 * CHECKPOINT_EVERY_KEYS, "pages moved in the round: {pages_done} keys");
        for key in &keys[..pages_done] {
            assert!(set.head_object("b", key).await.is_err(), "{key} before the cursor is still in set 1");
        }
        for key in &keys[keys.len() - 10..] {
            assert!(set.head_object("b", key).await.is_ok(), "{key} of the last page left set 1 while paused");
        }
        store.update_migration_control(|c| c.paused = false).await.unwrap();
        migrate_pending(&store, &config, &mut throttle).await.unwrap();
        assert_eq!(store.migration_status().await.state, MigrationState::Done);
        assert!(holds_nothing(&set, "b").await);
        for key in keys.iter().step_by(11) {
            assert_eq!(read(&store, "b", key).await.unwrap(), key.as_bytes(), "{key}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn pause_holds_and_resume_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, objects) = filled(dir.path()).await;
        drain_set_one(&store).await;
        store.update_migration_control(|c| c.paused = true).await.unwrap();
        migrate_pending(&store, &MigrationConfig::default(), &mut Throttle::default()).await.unwrap();
        let status = store.migration_status().await;
        assert_eq!((status.state, status.moved_objects), (MigrationState::Paused, 0));
        store.update_migration_control(|c| c.paused = false).await.unwrap();
        migrate_pending(&store, &MigrationConfig::default(), &mut Throttle::default()).await.unwrap();
        assert_eq!(store.migration_status().await.state, MigrationState::Done);
        for (key, bytes) in &objects {
            assert_eq!(&read(&store, "b", key).await.unwrap(), bytes);
        }
    }

    /// A pause asked while a round moves says pausing until the batches running are done,
    /// then paused, confirmed by the mover's checkpoint: from then on nothing moves.
    #[tokio::test(flavor = "multi_thread")]
    async fn pausing_becomes_paused_once_the_running_moves_are_done() {
        let dir = tempfile::tempdir().unwrap();
        let (store, keys) = draining_four_pages(dir.path()).await;
        // Throttled (keys of 6 bytes, ~2 s a batch) so that moves are running when paused.
        store.update_migration_control(|c| c.bytes_per_second = 200).await.unwrap();
        let moved = || store.metrics.migration_moved_objects.get();
        let before = moved();
        let round = {
            let store = store.clone();
            tokio::spawn(
                async move { migrate_pending(&store, &MigrationConfig::default(), &mut Throttle::default()).await },
            )
        };
        while moved() < before + 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let asked = store.update_migration_control(|c| c.paused = true).await.unwrap();
        assert_eq!(asked.paused_seq, asked.seq);
        assert_eq!(store.migration_status().await.state, MigrationState::Pausing);
        let deadline = Instant::now() + Duration::from_secs(30);
        while store.migration_status().await.state != MigrationState::Paused {
            assert!(Instant::now() < deadline, "the pause was never confirmed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let at_pause = moved();
        tokio::time::timeout(Duration::from_secs(10), round).await.expect("the round ends").unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(moved(), at_pause, "moves after the status said paused");
        assert!(at_pause < before + keys.len() as u64, "the pause came after every move: {at_pause}");
        // A throttle change keeps the pause confirmed; resuming runs it to the end.
        store.update_migration_control(|c| c.bytes_per_second = 0).await.unwrap();
        assert_eq!(store.migration_status().await.state, MigrationState::Paused);
        store.update_migration_control(|c| c.paused = false).await.unwrap();
        assert_eq!(store.migration_status().await.state, MigrationState::Running);
        migrate_pending(&store, &MigrationConfig::default(), &mut Throttle::default()).await.unwrap();
        assert_eq!(store.migration_status().await.state, MigrationState::Done);
        assert!(holds_nothing(&store.sets()[1], "b").await);
    }

    /// Under user load a batch's keys rest between moves (a batch lasts twenty times its
    /// moves): a pause asked meanwhile stops the batch between two keys, not after all of
    /// them. The keys it left are whole in set 1, the cursor stays before them, and the
    /// resumed drain moves them.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_pause_under_user_load_stops_a_batch_between_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.ensure_system_buckets().await;
        store.make_bucket("b").await.unwrap();
        let ring = store.topology().ring();
        // One batch of keys with shard files (not inline), each copy staging them in set 0.
        let bytes = |key: &str| data(300_000, key[1..].parse().unwrap());
        let keys: Vec<String> =
            (0..).map(|n| format!("k{n:03}")).filter(|k| ring.locate("b", k) == 1).take(MOVE_BATCH_KEYS).collect();
        for key in &keys {
            put(&store, "b", key, bytes(key)).await;
        }
        drain_set_one(&store).await;
        // Counted first, users idle: the round below is the batch alone.
        let (set, generation, mut progress, config, mut throttle) = counted_set_one(&store).await;
        let (moved_before, passes) = (store.metrics.migration_moved_objects.get(), progress.passes);
        store.user_requests.store(1, Ordering::Relaxed);
        let staging: Vec<std::path::PathBuf> = (0..20)
            .map(|i| dir.path().join(format!("d{i}")).join(crate::storage::path::SYSTEM_DIR).join("tmp"))
            .collect();
        let copying = async {
            let copied_one = || staging.iter().any(|dir| std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()));
            while !copied_one() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            store.update_migration_control(|c| c.paused = true).await.unwrap();
        };
        let round = store.migrate_page(&set, &mut progress, &config, &mut throttle, 0);
        let (moved, ()) = tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(round, copying) })
            .await
            .expect("the batch stops once paused");
        moved.unwrap();
        // Saved as the round's caller does.
        store.save_progress(&set, &mut progress).await.unwrap();
        store.user_requests.store(0, Ordering::Relaxed);
        let moved = store.metrics.migration_moved_objects.get() - moved_before;
        let left: Vec<&String> = {
            let mut left = Vec::new();
            for key in &keys {
                if set.head_object("b", key).await.is_ok() {
                    left.push(key);
                }
            }
            left
        };
        assert!(!left.is_empty(), "the pause came after the whole batch ({moved} moved)");
        assert_eq!(moved as usize + left.len(), keys.len(), "every key moved or left whole in set 1");
        let saved = store.set_progress(&set, generation).await.unwrap();
        assert_eq!((saved.phase, saved.passes), (Phase::Moving, passes), "the pass ended with keys left");
        assert!(saved.after.is_empty() || saved.after < *left[0], "the cursor {} passed {}", saved.after, left[0]);
        store.update_migration_control(|c| c.paused = false).await.unwrap();
        migrate_pending(&store, &config, &mut throttle).await.unwrap();
        assert_eq!(store.migration_status().await.state, MigrationState::Done);
        assert!(holds_nothing(&set, "b").await);
        for key in &keys {
            assert_eq!(read(&store, "b", key).await.unwrap(), bytes(key), "{key}");
        }
    }

    /// Overwrites and deletes racing with moves of the same keys: whatever the
    /// interleaving, the user's write is what stays (never clobbered, never resurrected).
    #[tokio::test(flavor = "multi_thread")]
    async fn user_writes_racing_with_moves_win() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_two_sets(dir.path());
        store.make_bucket("b").await.unwrap();
        let ring = store.topology().ring();
        let keys: Vec<String> =
            (0..).map(|n| format!("race-{n}")).filter(|k| ring.locate("b", k) == 1).take(24).collect();
        for key in &keys {
            put(&store, "b", key, data(300_000, 1)).await;
        }
        drain_set_one(&store).await;
        let (source, target) = (store.sets()[1].clone(), store.sets()[0].clone());
        let mut tasks = Vec::new();
        for (n, key) in keys.iter().enumerate() {
            let (store, source, target, key) = (store.clone(), source.clone(), target.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let mover = {
                    let (store, key) = (store.clone(), key.clone());
                    tokio::spawn(async move { store.move_object("b", &key, &source, &target, None).await })
                };
                // Let the move get going by a varying amount before the user acts.
                tokio::time::sleep(Duration::from_micros(300 * n as u64)).await;
                if n % 2 == 0 {
                    put(&store, "b", &key, data(1000, 2)).await;
                } else {
                    store.delete_object("b", &key).await.unwrap();
                }
                mover.await.unwrap().unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        for (n, key) in keys.iter().enumerate() {
            let got = read(&store, "b", key).await;
            if n % 2 == 0 {
                assert_eq!(got.unwrap(), data(1000, 2), "{key}: the overwrite was clobbered");
            } else {
                assert!(matches!(got, Err(StoreError::NoSuchKey)), "{key}: deleted, then resurrected");
            }
            assert!(matches!(store.sets()[1].head_object("b", key).await, Err(StoreError::NoSuchKey)));
        }
    }
}
