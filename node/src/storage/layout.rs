//! Where an object's shards live in its set. Shard `i` is on the drive at position
//! `(i + rotation) % drives`; the rotation comes from the key, so objects start their
//! shard 0 at different positions and parity spreads over every drive. The one place
//! this arithmetic is written: writes, commits, heals and rebuilds all go through it.

/// An object's shard placement in a set of `drives` drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLayout {
    rotation: usize,
    drives: usize,
}

impl ShardLayout {
    /// The layout `key` is written with. Part of the on-disk format: objects already
    /// written are found where it said, so it must never change (pinned by a test).
    pub fn of_key(key: &str, drives: usize) -> ShardLayout {
        assert!(drives > 0, "a set has drives");
        ShardLayout { rotation: (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % drives as u64) as usize, drives }
    }

    /// The layout an object was written with, from one drive that holds it: the drive at
    /// `position` holds shard `shard`. `None` when the shard index is out of range.
    pub fn from_held(position: usize, shard: usize, drives: usize) -> Option<ShardLayout> {
        (position < drives && shard < drives)
            .then(|| ShardLayout { rotation: (position + drives - shard) % drives, drives })
    }

    /// The drive position that holds shard `shard`.
    pub fn position_of(&self, shard: usize) -> usize {
        (shard + self.rotation) % self.drives
    }

    /// The shard the drive at `position` holds.
    pub fn shard_at(&self, position: usize) -> usize {
        (position + self.drives - self.rotation) % self.drives
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_of_keys_never_change() {
        // (key, drives, shard 0's position): objects on disk were placed by these.
        let table: [(&str, usize, usize); 6] = [
            ("a", 4, 3),
            ("photos/2026/cat.jpg", 4, 1),
            ("photos/2026/cat.jpg", 16, 5),
            ("c0001", 10, 3),
            ("", 6, 4),
            ("ünïcödé ✓", 12, 7),
        ];
        let found: Vec<(&str, usize, usize)> = table
            .iter()
            .map(|&(key, drives, _)| (key, drives, ShardLayout::of_key(key, drives).position_of(0)))
            .collect();
        assert_eq!(found, table);
    }

    #[test]
    fn positions_and_shards_are_inverse_and_a_held_shard_gives_the_layout_back() {
        for drives in 1..=16 {
            for key in ["a", "b", "photos/1", "photos/2", "z/y/x"] {
                let layout = ShardLayout::of_key(key, drives);
                let mut positions: Vec<usize> = (0..drives).map(|s| layout.position_of(s)).collect();
                for (shard, &position) in positions.iter().enumerate() {
                    assert_eq!(layout.shard_at(position), shard);
                    assert_eq!(ShardLayout::from_held(position, shard, drives), Some(layout));
                }
                positions.sort();
                assert_eq!(positions, (0..drives).collect::<Vec<_>>(), "every drive holds one shard");
            }
        }
        assert_eq!(ShardLayout::from_held(0, 4, 4), None, "a shard index past the set");
        assert_eq!(ShardLayout::from_held(4, 0, 4), None, "a position past the set");
    }
}
