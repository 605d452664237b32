//! Which version of an object a read quorum of drives agree on, from what each drive
//! said: a pure function of the drives' metadata, so every case is a row in a table test.
//! Must never call an object absent when its copies may exist (too few drives answered,
//! or copies below quorum without a tombstone: that is a loss, not a 404).

use uuid::Uuid;

use crate::error::{StoreError, StoreResult};
use crate::format::object::{ObjectMeta, ObjectVersion, VersionKind};
use crate::storage::layout::ShardLayout;

/// What each drive said about an object's metadata.
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
}

/// An object version that a read quorum of drives agree on.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub version: ObjectVersion,
    /// Per drive position: the drive's copy of that version (with its shard index and
    /// inline bytes), or `None` when the drive is missing it or is outdated.
    pub per_drive: Vec<Option<ObjectVersion>>,
    /// Per drive position: every data directory the drive's metadata references.
    pub data_dirs: Vec<Vec<Uuid>>,
}

impl Resolved {
    pub fn is_complete(&self) -> bool {
        self.per_drive.iter().all(Option::is_some)
    }

    /// The layout the object's shards were written with, from the drives that hold it.
    pub(super) fn layout(&self) -> ShardLayout {
        let count = self.per_drive.len();
        (0..count)
            .find_map(|p| {
                let held = self.per_drive[p].as_ref()?;
                ShardLayout::from_held(p, held.erasure.shard_index as usize, count)
            })
            .expect("a resolved object has drives")
    }
}

/// The drives that hold metadata of the object, with it, by position.
pub(super) fn found(metas: &[DriveMeta]) -> impl Iterator<Item = (usize, &ObjectMeta)> {
    metas.iter().enumerate().filter_map(|(position, meta)| match meta {
        DriveMeta::Found(meta) => Some((position, meta)),
        _ => None,
    })
}

pub(super) fn referenced_data_dirs(meta: &ObjectMeta) -> Vec<Uuid> {
    meta.versions.iter().filter_map(|v| v.data_dir.map(Uuid::from_bytes)).collect()
}

/// The version, object or tombstone, that at least `quorum` drives agree on.
pub fn resolve(metas: &[DriveMeta], quorum: usize) -> StoreResult<Resolved> {
    let mut best: Option<(usize, &ObjectVersion)> = None;
    for meta in metas {
        let DriveMeta::Found(meta) = meta else {
            continue;
        };
        let Some(candidate) = meta.latest() else {
            continue;
        };
        let votes = metas
            .iter()
            .filter(
                |m| matches!(m, DriveMeta::Found(o) if o.latest().map(|v| v.identity()) == Some(candidate.identity())),
            )
            .count();
        let better = match best {
            None => true,
            Some((best_votes, best_version)) => {
                votes > best_votes || (votes == best_votes && candidate.modified_ns > best_version.modified_ns)
            }
        };
        if better {
            best = Some((votes, candidate));
        }
    }
    let failed = metas.iter().filter(|m| matches!(m, DriveMeta::Failed)).count();
    let found = metas.iter().filter(|m| matches!(m, DriveMeta::Found(_))).count();
    let holding_object = metas
        .iter()
        .filter(|m| matches!(m, DriveMeta::Found(meta) if meta.latest().is_some_and(|v| v.kind == VersionKind::Object)))
        .count();
    match best {
        Some((votes, version)) if votes >= quorum => {
            let identity = version.identity();
            let per_drive = metas
                .iter()
                .map(|m| match m {
                    DriveMeta::Found(meta) => meta.latest().filter(|v| v.identity() == identity).cloned(),
                    _ => None,
                })
                .collect();
            let data_dirs = metas
                .iter()
                .map(|m| match m {
                    DriveMeta::Found(meta) => referenced_data_dirs(meta),
                    _ => Vec::new(),
                })
                .collect();
            let mut version = version.clone();
            version.inline_data = None;
            Ok(Resolved { version, per_drive, data_dirs })
        }
        // Enough drives hold some version, or might, but no version has a quorum: the
        // answer is unknown, not "absent".
        Some((votes, _)) if found + failed >= quorum => {
            Err(StoreError::InsufficientQuorum { operation: "read", needed: quorum, available: votes })
        }
        None if failed >= quorum => {
            Err(StoreError::InsufficientQuorum { operation: "read", needed: quorum, available: 0 })
        }
        // Drives answered; some hold the object, too few to read it, and no tombstone
        // says it was deleted (a delete that misses a drive leaves one): its copies
        // were lost beyond parity. That must never look like "no such key".
        _ if holding_object > 0 => {
            Err(StoreError::LostBeyondParity { found: holding_object, needed: quorum, drives: metas.len() })
        }
        _ => Err(StoreError::NoSuchKey),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version written at `time` (distinct times are distinct versions).
    fn version(time: i64, kind: VersionKind) -> ObjectMeta {
        let mut version = crate::format::object::tests::sample_version();
        version.modified_ns = time;
        version.kind = kind;
        version.data_dir = Some([time as u8; 16]);
        ObjectMeta { versions: vec![version] }
    }

    /// One drive's answer: `o1` the object written at time 1, `t2` a tombstone at time
    /// 2, `-` no metadata, `x` the drive failed.
    fn drive(answer: &str) -> DriveMeta {
        match answer {
            "-" => DriveMeta::Missing,
            "x" => DriveMeta::Failed,
            _ => {
                let kind = if answer.starts_with('t') { VersionKind::DeleteMarker } else { VersionKind::Object };
                DriveMeta::Found(version(answer[1..].parse().unwrap(), kind))
            }
        }
    }

    /// What a resolution came to, in a word: the winning version (`o1`, `t2`) with how
    /// many drives hold it, or the error.
    fn outcome(result: StoreResult<Resolved>) -> String {
        match result {
            Ok(resolved) => {
                let kind = if resolved.version.kind == VersionKind::Object { "o" } else { "t" };
                let holders = resolved.per_drive.iter().filter(|v| v.is_some()).count();
                format!("{kind}{} on {holders}", resolved.version.modified_ns)
            }
            Err(StoreError::NoSuchKey) => "absent".into(),
            Err(StoreError::InsufficientQuorum { available, .. }) => format!("unknown ({available} agree)"),
            Err(StoreError::LostBeyondParity { found, .. }) => format!("lost ({found} copies)"),
            Err(e) => format!("{e:?}"),
        }
    }

    /// Four drives of a 2 + 2 set: a read quorum is 2.
    #[test]
    fn which_version_a_read_quorum_agrees_on() {
        let table = [
            ("o1 o1 o1 o1", "o1 on 4"),
            ("o1 o1 - -", "o1 on 2"),
            ("o1 o1 x x", "o1 on 2"),
            ("o1 o2 o2 -", "o2 on 2"),
            // As many votes for each: the newer wins.
            ("o1 o1 o2 o2", "o2 on 2"),
            ("o2 o2 o1 o1", "o2 on 2"),
            // More votes win over a newer minority (a write that missed its quorum).
            ("o1 o1 o1 o2", "o1 on 3"),
            // A delete that reached two drives outvotes the copies left on the others.
            ("t2 t2 o1 o1", "t2 on 2"),
            // Nothing anywhere, or only a tombstone below quorum: absent.
            ("- - - -", "absent"),
            ("t2 - - -", "absent"),
            // Too few answers to say: unknown, never absent.
            ("o1 x - -", "unknown (1 agree)"),
            ("x x x -", "unknown (0 agree)"),
            ("o1 o2 - -", "unknown (1 agree)"),
            // Every drive answered and copies exist below quorum with no tombstone: a
            // loss beyond parity, never "no such key".
            ("o1 - - -", "lost (1 copies)"),
        ];
        for (drives, expected) in table {
            let metas: Vec<DriveMeta> = drives.split(' ').map(drive).collect();
            assert_eq!(outcome(resolve(&metas, 2)), expected, "drives: {drives}");
        }
    }

    #[test]
    fn a_resolution_names_each_drives_copy_and_data_directories() {
        let metas: Vec<DriveMeta> = ["o2", "o1", "-", "o2"].into_iter().map(drive).collect();
        let resolved = resolve(&metas, 2).unwrap();
        let holders: Vec<bool> = resolved.per_drive.iter().map(Option::is_some).collect();
        assert_eq!(holders, [true, false, false, true]);
        assert!(!resolved.is_complete());
        assert!(resolved.version.inline_data.is_none(), "inline bytes stay with each drive's copy");
        // The outdated drive's data directory is known, so a commit can remove it.
        assert_eq!(resolved.data_dirs[1].len(), 1);
        assert!(resolved.data_dirs[2].is_empty());
    }
}
