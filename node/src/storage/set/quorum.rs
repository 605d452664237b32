//! What a read quorum of drives agree a key holds, from what each drive said: a pure
//! function of the drives' metadata files, so every case is a row in a table test.
//!
//! Each drive's file lists the versions it holds. Versions are decided one version id
//! at a time: of the copies of an id, the one most drives hold (the newer on a tie) is
//! the version when at least a read quorum holds it; its `Removed` record when the id
//! was deleted. Must never call a version absent when its copies may exist (too few
//! drives answered: unknown; copies below quorum and no removal record, every drive
//! answering: lost beyond parity, not a 404).

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::format::object::{ObjectMeta, ObjectVersion, VersionKind};
use crate::format::version_id::VersionId;
use crate::storage::layout::ShardLayout;

/// What each drive said about a key's metadata.
#[derive(Debug)]
pub(in crate::storage) enum DriveMeta {
    Missing,
    Found(ObjectMeta),
    Failed,
}

impl DriveMeta {
    /// `Missing` or `Failed` as is (a found metadata is not copied: it reads as missing).
    pub(super) fn shallow_clone(&self) -> DriveMeta {
        match self {
            DriveMeta::Failed => DriveMeta::Failed,
            _ => DriveMeta::Missing,
        }
    }

    /// The entries this drive holds (none when missing or failed).
    pub(super) fn versions(&self) -> &[ObjectVersion] {
        match self {
            DriveMeta::Found(meta) => &meta.versions,
            _ => &[],
        }
    }
}

/// One version (or removal record) that a read quorum of drives agree on.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The version, without any drive's inline bytes.
    pub version: ObjectVersion,
    /// Per drive position: the drive's copy of this version (with its shard index and
    /// inline bytes), or `None` when the drive is missing it or holds another copy.
    pub per_drive: Vec<Option<ObjectVersion>>,
}

impl Resolved {
    pub fn is_complete(&self) -> bool {
        self.per_drive.iter().all(Option::is_some)
    }

    pub fn id(&self) -> VersionId {
        VersionId(self.version.version_id)
    }

    /// The layout the version's shards were written with, from the drives that hold it.
    pub(super) fn layout(&self) -> ShardLayout {
        let count = self.per_drive.len();
        (0..count)
            .find_map(|p| {
                let held = self.per_drive[p].as_ref()?;
                ShardLayout::from_held(p, held.erasure.shard_index as usize, count)
            })
            .expect("a resolved version has drives")
    }
}

/// A version whose copies are below quorum with no record that it was deleted, every
/// drive answering: lost beyond parity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub id: VersionId,
    pub modified_ns: i64,
    pub copies: usize,
}

/// Everything the drives agree a key holds.
#[derive(Debug, Clone, Default)]
pub struct KeyState {
    /// Objects and delete markers, newest first.
    pub versions: Vec<Resolved>,
    /// Removal records: versions deleted while a drive was away.
    pub removed: Vec<Resolved>,
    pub lost: Vec<Lost>,
    /// Version ids too few drives answered for: (most agreeing copies, quorum).
    pub undecided: Option<(usize, usize)>,
    /// Per drive position: every data directory the drive's file references.
    pub data_dirs: Vec<Vec<Uuid>>,
    /// Drives that failed to answer.
    pub failed: usize,
    pub drives: usize,
    /// Drives that must agree on a version.
    pub quorum: usize,
}

impl KeyState {
    /// The newest object or delete marker. A version that may be newer but cannot be
    /// read decides the answer: unknown, or lost beyond parity; never an older version.
    pub fn latest(&self) -> StoreResult<&Resolved> {
        if let Some((available, needed)) = self.undecided {
            return Err(StoreError::InsufficientQuorum { operation: "read", needed, available });
        }
        let newest = self.versions.first();
        if let Some(lost) = self.lost.iter().find(|l| newest.is_none_or(|v| l.modified_ns > v.version.modified_ns)) {
            return Err(self.lost_error(lost));
        }
        newest.ok_or(StoreError::NoSuchKey)
    }

    /// The newest version, which must be an object (a delete marker reads as absent).
    pub fn latest_object(&self) -> StoreResult<&Resolved> {
        let latest = self.latest()?;
        match latest.version.kind {
            VersionKind::Object => Ok(latest),
            _ => Err(StoreError::DeleteMarker { version_id: latest.id(), latest: true }),
        }
    }

    /// Version `id` (an object or a delete marker).
    pub fn version(&self, id: VersionId) -> StoreResult<&Resolved> {
        if let Some(found) = self.versions.iter().find(|v| v.id() == id) {
            return Ok(found);
        }
        if let Some(lost) = self.lost.iter().find(|l| l.id == id) {
            return Err(self.lost_error(lost));
        }
        if let Some((available, needed)) = self.undecided {
            return Err(StoreError::InsufficientQuorum { operation: "read", needed, available });
        }
        Err(StoreError::NoSuchVersion)
    }

    /// Whether the drives hold nothing of the key a reader could see.
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.lost.is_empty() && self.undecided.is_none()
    }

    fn lost_error(&self, lost: &Lost) -> StoreError {
        StoreError::LostBeyondParity { found: lost.copies, needed: self.quorum, drives: self.drives }
    }
}

/// The drives that hold metadata of the key, with it, by position.
pub(super) fn found(metas: &[DriveMeta]) -> impl Iterator<Item = (usize, &ObjectMeta)> {
    metas.iter().enumerate().filter_map(|(position, meta)| match meta {
        DriveMeta::Found(meta) => Some((position, meta)),
        _ => None,
    })
}

pub(super) fn referenced_data_dirs(meta: &ObjectMeta) -> Vec<Uuid> {
    meta.versions.iter().filter_map(|v| v.data_dir.map(Uuid::from_bytes)).collect()
}

/// Decides what the key holds when at least `quorum` drives must agree on a version.
pub fn resolve(metas: &[DriveMeta], quorum: usize) -> KeyState {
    let failed = metas.iter().filter(|m| matches!(m, DriveMeta::Failed)).count();
    let mut state = KeyState {
        data_dirs: metas
            .iter()
            .map(|m| match m {
                DriveMeta::Found(meta) => referenced_data_dirs(meta),
                _ => Vec::new(),
            })
            .collect(),
        failed,
        drives: metas.len(),
        quorum,
        ..KeyState::default()
    };
    // Version id → the drives' copies of it.
    let mut ids: BTreeMap<Option<[u8; 16]>, Vec<(usize, &ObjectVersion)>> = BTreeMap::new();
    for (position, meta) in found(metas) {
        for version in &meta.versions {
            ids.entry(version.version_id).or_default().push((position, version));
        }
    }
    for copies in ids.values() {
        let votes =
            |candidate: &ObjectVersion| copies.iter().filter(|(_, c)| c.identity() == candidate.identity()).count();
        let (winner, winner_votes) = copies
            .iter()
            .map(|(_, candidate)| (*candidate, votes(candidate)))
            .max_by(|(a, a_votes), (b, b_votes)| {
                a_votes.cmp(b_votes).then(a.changed_ns.cmp(&b.changed_ns)).then(a.modified_ns.cmp(&b.modified_ns))
            })
            .expect("an id has a copy");
        if winner_votes >= quorum {
            let mut per_drive = vec![None; metas.len()];
            for (position, copy) in copies.iter().filter(|(_, c)| c.identity() == winner.identity()) {
                per_drive[*position] = Some((*copy).clone());
            }
            let mut version = winner.clone();
            version.inline_data = None;
            let resolved = Resolved { version, per_drive };
            match winner.kind {
                VersionKind::Removed => state.removed.push(resolved),
                VersionKind::Object | VersionKind::DeleteMarker => state.versions.push(resolved),
            }
            continue;
        }
        // Drives that hold some copy of the id, or might: no quorum yet, unknown.
        let holders = copies.iter().map(|(p, _)| *p).collect::<std::collections::BTreeSet<_>>().len();
        if holders + failed >= quorum {
            let most = state.undecided.map_or(0, |(votes, _)| votes).max(winner_votes);
            state.undecided = Some((most, quorum));
            continue;
        }
        // Every drive that could hold it answered, and too few do: an object version is
        // lost (a delete would have left its record); markers and records are just gone.
        let newest_object =
            copies.iter().filter(|(_, c)| c.kind == VersionKind::Object).max_by_key(|(_, c)| c.modified_ns);
        if let Some((_, object)) = newest_object {
            let object_copies = copies.iter().filter(|(_, c)| c.kind == VersionKind::Object).count();
            state.lost.push(Lost {
                id: VersionId(object.version_id),
                modified_ns: object.modified_ns,
                copies: object_copies,
            });
        }
    }
    state.versions.sort_by_key(|v| std::cmp::Reverse(v.version.modified_ns));
    state.removed.sort_by_key(|v| std::cmp::Reverse(v.version.modified_ns));
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry: `o3` the object version written at time 3, `m4` a delete marker at 4,
    /// `r5` the removal record of version 5's id; a letter after the time names the id
    /// (`o3a`), none is the null version; `o3'` a copy of it whose tags changed later.
    fn entry(text: &str) -> ObjectVersion {
        let mut version = crate::format::object::tests::sample_version();
        let (kind, rest) = text.split_at(1);
        version.kind = match kind {
            "o" => VersionKind::Object,
            "m" => VersionKind::DeleteMarker,
            _ => VersionKind::Removed,
        };
        let changed = rest.ends_with('\'');
        let rest = rest.trim_end_matches('\'');
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let id = &rest[digits.len()..];
        version.modified_ns = digits.parse().unwrap();
        // A removal record is written after the version it removes.
        let removal = i64::from(version.kind == VersionKind::Removed) * 10;
        version.changed_ns = version.modified_ns + i64::from(changed) + removal;
        version.version_id = id.bytes().next().map(|b| [b; 16]);
        version.data_dir = (version.kind == VersionKind::Object).then_some([version.modified_ns as u8; 16]);
        version
    }

    /// One drive's answer: its entries joined by `+`, `-` for no file, `x` for a failure.
    fn drive(answer: &str) -> DriveMeta {
        match answer {
            "-" => DriveMeta::Missing,
            "x" => DriveMeta::Failed,
            _ => DriveMeta::Found(ObjectMeta { versions: answer.split('+').map(entry).collect() }),
        }
    }

    fn name(version: &ObjectVersion) -> String {
        let kind = match version.kind {
            VersionKind::Object => "o",
            VersionKind::DeleteMarker => "m",
            VersionKind::Removed => "r",
        };
        let id = version.version_id.map(|id| (id[0] as char).to_string()).unwrap_or_default();
        format!("{kind}{}{id}", version.modified_ns)
    }

    /// What the latest read finds, and every version a quorum agrees on.
    fn outcome(state: &KeyState) -> String {
        let latest = match state.latest() {
            Ok(resolved) => name(&resolved.version),
            Err(StoreError::NoSuchKey) => "absent".into(),
            Err(StoreError::InsufficientQuorum { available, .. }) => format!("unknown ({available} agree)"),
            Err(StoreError::LostBeyondParity { found, .. }) => format!("lost ({found} copies)"),
            Err(e) => format!("{e:?}"),
        };
        let versions: Vec<String> = state.versions.iter().map(|v| name(&v.version)).collect();
        format!("{latest}; versions [{}]", versions.join(" "))
    }

    /// Four drives of a 2 + 2 set: a read quorum is 2.
    #[test]
    fn what_a_read_quorum_agrees_a_key_holds() {
        let table = [
            ("o1 o1 o1 o1", "o1; versions [o1]"),
            ("o1 o1 - -", "o1; versions [o1]"),
            ("o1 o1 x x", "o1; versions [o1]"),
            // An overwrite of the null version that one drive missed: outvoted.
            ("o1 o2 o2 -", "o2; versions [o2]"),
            // As many copies of each: the newer wins.
            ("o1 o1 o2 o2", "o2; versions [o2]"),
            // More copies win over a newer minority (a write that missed its quorum).
            ("o1 o1 o1 o2", "o1; versions [o1]"),
            // A tag change one drive missed: the changed copy wins.
            ("o1' o1' o1 -", "o1; versions [o1]"),
            // A delete that reached two drives outvotes the copies left on the others.
            ("r1 r1 o1 o1", "absent; versions []"),
            // Nothing anywhere, or only a removal record below quorum: absent.
            ("- - - -", "absent; versions []"),
            ("r1 - - -", "absent; versions []"),
            // Too few answers to say: unknown, never absent.
            ("o1 x - -", "unknown (1 agree); versions []"),
            ("x x x -", "absent; versions []"),
            ("o1 o2 - -", "unknown (1 agree); versions []"),
            // Every drive answered and copies exist below quorum with no record: a loss
            // beyond parity, never "no such key".
            ("o1 - - -", "lost (1 copies); versions []"),
            // Versions of a versioned key, each decided on its own.
            ("o1a+o2b o1a+o2b o1a -", "o2b; versions [o2b o1a]"),
            ("m3c+o1a m3c+o1a m3c+o1a o1a", "m3c; versions [m3c o1a]"),
            // A newer version that cannot be read hides no older one as the latest.
            ("o2b+o1a o1a o1a -", "lost (1 copies); versions [o1a]"),
            ("o2b+o1a o1a x -", "unknown (1 agree); versions [o1a]"),
            // A removed version of a versioned key: the others stay.
            ("r2b+o1a r2b+o1a o2b+o1a o1a", "o1a; versions [o1a]"),
        ];
        for (drives, expected) in table {
            let metas: Vec<DriveMeta> = drives.split(' ').map(drive).collect();
            assert_eq!(outcome(&resolve(&metas, 2)), expected, "drives: {drives}");
        }
    }

    #[test]
    fn versions_by_id_and_the_latest_object() {
        let metas: Vec<DriveMeta> = ["m3c+o2b+o1a"; 4].into_iter().map(drive).collect();
        let state = resolve(&metas, 2);
        assert!(matches!(state.latest_object(), Err(StoreError::DeleteMarker { latest: true, .. })));
        assert_eq!(name(&state.version(VersionId(Some([b'a'; 16]))).unwrap().version), "o1a");
        assert!(matches!(state.version(VersionId(Some([b'z'; 16]))), Err(StoreError::NoSuchVersion)));
        assert!(matches!(state.version(VersionId::NULL), Err(StoreError::NoSuchVersion)));
    }

    #[test]
    fn a_resolution_names_each_drives_copy_and_data_directories() {
        let metas: Vec<DriveMeta> = ["o2", "o1", "-", "o2"].into_iter().map(drive).collect();
        let state = resolve(&metas, 2);
        let latest = state.latest().unwrap();
        let holders: Vec<bool> = latest.per_drive.iter().map(Option::is_some).collect();
        assert_eq!(holders, [true, false, false, true]);
        assert!(!latest.is_complete());
        assert!(latest.version.inline_data.is_none(), "inline bytes stay with each drive's copy");
        // The outdated drive's data directory is known, so a commit can remove it.
        assert_eq!(state.data_dirs[1].len(), 1);
        assert!(state.data_dirs[2].is_empty());
    }
}
