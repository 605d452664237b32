//! The migration's files: the cluster-wide control (`migration-control.bkt` on every
//! drive) and each source set's checkpoint (`migration-<generation>.bkt` on its drives),
//! each a JSON body in a frame.

use serde::{Deserialize, Serialize};

use super::JsonFile;
use buckets_api::SetId;

pub const CONTROL_MAGIC: &[u8; 8] = b"BKTMIGCT";
pub const PROGRESS_MAGIC: &[u8; 8] = b"BKTMIGPR";
pub const CONTROL_VERSION: u16 = 1;
pub const PROGRESS_VERSION: u16 = 1;
pub const SETTLED_MAGIC: &[u8; 8] = b"BKTSETTL";
pub const SETTLED_VERSION: u16 = 1;

/// Written (`settled-<generation>.bkt`, on a majority of all drives) once a generation's
/// placement is settled: every object is in the set its ring names, no node writes by an
/// older ring and no upload begun in another set is left. Never rewritten or removed; a
/// newer generation is unsettled until its own file exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settled {
    pub generation: u64,
    pub settled_unix: i64,
}

impl JsonFile for Settled {
    const MAGIC: &'static [u8; 8] = SETTLED_MAGIC;
    const VERSION: u16 = SETTLED_VERSION;
}

pub const BASE_MAGIC: &[u8; 8] = b"BKTPBASE";
pub const BASE_VERSION: u16 = 1;

/// Written (`base-<generation>.bkt`, on a majority of all drives) by a topology change
/// from a settled generation (or the first), before it installs `generation`: the
/// topology it replaces. Until `generation` settles, a key is in the set its ring names
/// or in the one `previous`'s ring names, nowhere else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Base {
    pub generation: u64,
    pub previous: buckets_api::Topology,
}

impl JsonFile for Base {
    const MAGIC: &'static [u8; 8] = BASE_MAGIC;
    const VERSION: u16 = BASE_VERSION;
}

pub const UNSETTLED_MAGIC: &[u8; 8] = b"BKTUNSET";
pub const UNSETTLED_VERSION: u16 = 1;

/// Written (`unsettled-<generation>.bkt`, on a majority of all drives) by a topology
/// change before it replaces `generation`: no node may treat that generation as settled
/// any more, whatever its settled file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unsettled {
    pub generation: u64,
    pub unsettled_unix: i64,
}

impl JsonFile for Unsettled {
    const MAGIC: &'static [u8; 8] = UNSETTLED_MAGIC;
    const VERSION: u16 = UNSETTLED_VERSION;
}

/// Cluster-wide controls of the migration, set through the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// Newest wins.
    pub seq: u64,
    pub paused: bool,
    /// Bytes per second all migrating nodes together may move; 0 is unlimited.
    pub bytes_per_second: u64,
    /// The `seq` of the change that paused the migration (0 when running, or paused by
    /// a version that did not record it). Movers confirm a pause by this number.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused_seq: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Counting,
    Moving,
    Done,
}

/// One source set's progress in migrating to a generation (persisted on its drives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetProgress {
    pub generation: u64,
    pub set: SetId,
    pub seq: u64,
    pub phase: Phase,
    /// Cursor of the current pass: bucket, and the last key done in it.
    pub bucket: String,
    pub after: String,
    pub total_objects: u64,
    pub total_bytes: u64,
    pub moved_objects: u64,
    pub moved_bytes: u64,
    /// Objects that failed to move in the current moving pass (retried by the next).
    pub failed_objects: u64,
    /// Objects the current moving pass found away from their ring set; a pass that found
    /// any is followed by another, so objects that arrived meanwhile (an upload completed
    /// in the set) are not left behind.
    #[serde(default)]
    pub found_in_pass: u64,
    pub passes: u32,
    pub last_error: Option<String>,
    pub started_unix: i64,
    pub updated_unix: i64,
    /// The pause (`Control::paused_seq`) this set's mover has stopped for: no batch of
    /// its moves runs until the migration resumes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stopped_for: u64,
    /// The node running a round of this set's moves, as 1 + the position in the set of
    /// the drive that made it the set's mover (0: none). Cleared when the round ends.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub runner: u64,
}

impl SetProgress {
    /// What the admin API shows of it (the cursor and sequence stay internal).
    pub fn view(&self) -> buckets_api::migration::SetMigration {
        use buckets_api::migration::Phase as Shown;
        buckets_api::migration::SetMigration {
            generation: self.generation,
            set: self.set,
            phase: match self.phase {
                Phase::Counting => Shown::Counting,
                Phase::Moving => Shown::Moving,
                Phase::Done => Shown::Done,
            },
            total_objects: self.total_objects,
            total_bytes: self.total_bytes,
            moved_objects: self.moved_objects,
            moved_bytes: self.moved_bytes,
            failed_objects: self.failed_objects,
            passes: self.passes,
            last_error: self.last_error.clone(),
            started_unix: self.started_unix,
            updated_unix: self.updated_unix,
        }
    }

    /// A set's progress before its first pass; `now` in Unix seconds.
    pub fn new(generation: u64, set: SetId, now: i64) -> Self {
        SetProgress {
            generation,
            set,
            seq: 0,
            phase: Phase::Counting,
            bucket: String::new(),
            after: String::new(),
            total_objects: 0,
            total_bytes: 0,
            moved_objects: 0,
            moved_bytes: 0,
            failed_objects: 0,
            found_in_pass: 0,
            passes: 0,
            last_error: None,
            started_unix: now,
            updated_unix: now,
            stopped_for: 0,
            runner: 0,
        }
    }
}

impl JsonFile for Control {
    const MAGIC: &'static [u8; 8] = CONTROL_MAGIC;
    const VERSION: u16 = CONTROL_VERSION;
}

impl JsonFile for SetProgress {
    const MAGIC: &'static [u8; 8] = PROGRESS_MAGIC;
    const VERSION: u16 = PROGRESS_VERSION;
}
