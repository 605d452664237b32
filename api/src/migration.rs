//! `GET /admin/v1/migration` (and the answers of pause, resume and throttle): where the
//! data migration after the last topology change stands; `POST /admin/v1/topology/preview`:
//! what a proposed topology would move.

use serde::{Deserialize, Serialize};

use crate::topology::SetId;

/// The migration as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MigrationState {
    /// Nothing to migrate: the cluster never changed its topology.
    Idle,
    Running,
    /// Asked to pause: the batches of moves already running finish first.
    Pausing,
    /// Paused, and every mover has confirmed it stopped: nothing moves until resumed.
    Paused,
    /// Every set holds only what the ring places on it.
    Done,
}

impl MigrationState {
    /// Running, pausing or paused: objects are still away from their ring set.
    pub fn in_progress(self) -> bool {
        matches!(self, MigrationState::Running | MigrationState::Pausing | MigrationState::Paused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Idle => "idle",
            MigrationState::Running => "running",
            MigrationState::Pausing => "pausing",
            MigrationState::Paused => "paused",
            MigrationState::Done => "done",
        }
    }
}

impl std::fmt::Display for MigrationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one source set's pass stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Counting,
    Moving,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Counting => "counting",
            Phase::Moving => "moving",
            Phase::Done => "done",
        }
    }
}

/// One source set's progress toward `generation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetMigration {
    pub generation: u64,
    pub set: SetId,
    pub phase: Phase,
    pub total_objects: u64,
    pub total_bytes: u64,
    pub moved_objects: u64,
    pub moved_bytes: u64,
    /// Objects that failed to move in the current pass (retried by the next).
    pub failed_objects: u64,
    pub passes: u32,
    pub last_error: Option<String>,
    pub started_unix: i64,
    pub updated_unix: i64,
}

/// The overall state, as the admin API and `buckets-admin migration status` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    pub generation: u64,
    pub state: MigrationState,
    pub paused: bool,
    pub bytes_per_second_limit: u64,
    pub total_objects: u64,
    pub total_bytes: u64,
    pub moved_objects: u64,
    pub moved_bytes: u64,
    pub failed_objects: u64,
    /// Moved bytes over total bytes (objects when there are no bytes), 0–100.
    pub percent: f64,
    /// Average bytes per second since the migration started.
    pub rate_bytes_per_second: f64,
    pub eta_seconds: Option<u64>,
    pub last_error: Option<String>,
    pub sets: Vec<SetMigration>,
}

/// What a proposed topology would move, counted object by object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub generation: u64,
    pub total_objects: u64,
    pub total_bytes: u64,
    pub moved_objects: u64,
    pub moved_bytes: u64,
    /// `moved_bytes / total_bytes` (objects when there are no bytes).
    pub fraction: f64,
    pub flows: Vec<Flow>,
}

/// Objects and bytes that would go from one set to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    pub from: SetId,
    pub to: SetId,
    pub objects: u64,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_travel_as_the_lowercase_names_clients_match_on() {
        for (state, name) in [
            (MigrationState::Idle, "idle"),
            (MigrationState::Running, "running"),
            (MigrationState::Pausing, "pausing"),
            (MigrationState::Paused, "paused"),
            (MigrationState::Done, "done"),
        ] {
            assert_eq!(serde_json::to_value(state).unwrap(), name);
            assert_eq!(state.to_string(), name);
            assert_eq!(serde_json::from_value::<MigrationState>(name.into()).unwrap(), state);
        }
        for (phase, name) in [(Phase::Counting, "counting"), (Phase::Moving, "moving"), (Phase::Done, "done")] {
            assert_eq!(serde_json::to_value(phase).unwrap(), name);
            assert_eq!(phase.as_str(), name);
        }
    }
}
