//! The consistent-hash ring: object key → erasure set.
//!
//! Owns: virtual-node placement (SipHash-2-4 keyed by the cluster id, a number of virtual
//! nodes proportional to each set's weight), lookup (a prefix index over a sorted array,
//! then a short binary search), and the pure answer to "which key ranges move between which
//! sets when the ring changes". Must never do I/O: the same sets and weights give the same
//! ring on every node.

use std::hash::Hasher as _;

use siphasher::sip::SipHasher24;

/// Stable identity of an erasure set; never reused after the set is removed.
pub use buckets_api::topology::SetId;

/// Virtual nodes for a set of weight 1.0. With fewer, plain consistent hashing leaves the
/// most loaded of 16 sets 8–30 % above the mean; 2048 keeps it within a few percent while
/// the whole ring of 16 sets stays at 32 Ki points (256 KiB with its index).
pub const VIRTUAL_NODES_PER_WEIGHT: usize = 2048;
/// Bits of hash prefix in the lookup index: 2^16 slots point straight into the sorted
/// points, so a lookup binary-searches only the few points sharing the key's prefix.
const INDEX_BITS: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RingMember {
    pub set: SetId,
    /// Relative capacity; a set of weight 2.0 receives twice the keys of weight 1.0.
    pub weight: f64,
}

#[derive(Debug, Clone)]
pub struct Ring {
    keys: (u64, u64),
    /// Sorted virtual-node positions.
    points: Vec<u64>,
    /// `owners[i]` owns the arc ending at `points[i]` (keys in `(points[i-1], points[i]]`).
    owners: Vec<SetId>,
    /// `index[p]` is the first point whose top `INDEX_BITS` bits are ≥ p.
    index: Vec<u32>,
}

/// A contiguous range of the 64-bit key-hash space (inclusive bounds) whose owner changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Movement {
    pub first_hash: u64,
    pub last_hash: u64,
    pub source: SetId,
    pub target: SetId,
}

impl Movement {
    /// The share of uniformly hashed keys this range holds.
    pub fn fraction(&self) -> f64 {
        ((self.last_hash - self.first_hash) as f64 + 1.0) / 2f64.powi(64)
    }
}

impl Ring {
    /// Builds the ring for `members`. `hash_keys` are the SipHash keys (the cluster id).
    pub fn new(hash_keys: (u64, u64), members: &[RingMember]) -> Ring {
        assert!(!members.is_empty(), "a ring needs at least one set");
        let mut points: Vec<(u64, SetId)> = Vec::new();
        for member in members {
            assert!(member.weight > 0.0 && member.weight.is_finite(), "set weights are positive");
            let count = ((member.weight * VIRTUAL_NODES_PER_WEIGHT as f64).round() as usize).max(1);
            for vnode in 0..count {
                let mut hasher = SipHasher24::new_with_keys(hash_keys.0, hash_keys.1);
                hasher.write(b"vnode");
                hasher.write_u32(member.set);
                hasher.write_u64(vnode as u64);
                points.push((hasher.finish(), member.set));
            }
        }
        // Equal positions (astronomically rare) are ordered by set so every node agrees.
        points.sort_unstable();
        points.dedup_by_key(|p| p.0);
        let (points, owners): (Vec<u64>, Vec<SetId>) = points.into_iter().unzip();
        let mut index = vec![0u32; (1usize << INDEX_BITS) + 1];
        let mut position = 0usize;
        for (prefix, slot) in index.iter_mut().enumerate() {
            while position < points.len() && ((points[position] >> (64 - INDEX_BITS)) as usize) < prefix {
                position += 1;
            }
            *slot = position as u32;
        }
        Ring { keys: hash_keys, points, owners, index }
    }

    /// The hash of an object key (bucket and key, separated so "a"+"bc" ≠ "ab"+"c").
    pub fn hash_key(&self, bucket: &str, key: &str) -> u64 {
        let mut hasher = SipHasher24::new_with_keys(self.keys.0, self.keys.1);
        hasher.write(bucket.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(key.as_bytes());
        hasher.finish()
    }

    /// The set owning a key hash: the first point at or after it, wrapping around.
    pub fn locate_hash(&self, hash: u64) -> SetId {
        let prefix = (hash >> (64 - INDEX_BITS)) as usize;
        let start = self.index[prefix] as usize;
        let end = self.index[prefix + 1] as usize;
        let within = start + self.points[start..end].partition_point(|&p| p < hash);
        let position = if within < self.points.len() { within } else { 0 };
        // `within == end` falls through to the first point of a later prefix, which is
        // exactly `points[end]` (or the wrap to 0).
        self.owners[position]
    }

    pub fn locate(&self, bucket: &str, key: &str) -> SetId {
        self.locate_hash(self.hash_key(bucket, key))
    }

    /// The sets on the ring.
    pub fn sets(&self) -> Vec<SetId> {
        let mut sets = self.owners.clone();
        sets.sort_unstable();
        sets.dedup();
        sets
    }

    /// Every range of the hash space whose owner differs between `self` and `next`, merged
    /// where adjacent ranges have the same source and target. Both rings must use the same
    /// hash keys.
    pub fn movements_to(&self, next: &Ring) -> Vec<Movement> {
        assert_eq!(self.keys, next.keys, "rings of different clusters");
        // Boundaries of both rings: between consecutive boundaries, both owners are fixed.
        let mut bounds: Vec<u64> = self.points.iter().chain(next.points.iter()).copied().collect();
        bounds.sort_unstable();
        bounds.dedup();
        let mut out: Vec<Movement> = Vec::new();
        let mut previous: Option<u64> = None;
        let push = |first: u64, last: u64, out: &mut Vec<Movement>| {
            let source = self.locate_hash(last);
            let target = next.locate_hash(last);
            if source == target {
                return;
            }
            if let Some(tail) = out.last_mut()
                && tail.source == source
                && tail.target == target
                && tail.last_hash.checked_add(1) == Some(first)
            {
                tail.last_hash = last;
                return;
            }
            out.push(Movement { first_hash: first, last_hash: last, source, target });
        };
        for &bound in &bounds {
            let first = match previous {
                None => 0,
                Some(p) => p + 1,
            };
            push(first, bound, &mut out);
            previous = Some(bound);
        }
        // The wrap-around arc after the last boundary belongs to the first point.
        if let Some(last) = previous
            && last < u64::MAX
        {
            push(last + 1, u64::MAX, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: (u64, u64) = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);

    fn ring(sets: impl IntoIterator<Item = SetId>) -> Ring {
        let members: Vec<RingMember> = sets.into_iter().map(|set| RingMember { set, weight: 1.0 }).collect();
        Ring::new(KEYS, &members)
    }

    fn object_keys(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("photos/2026/{:08}/IMG_{i}.jpg", i * 7919)).collect()
    }

    #[test]
    fn spread_over_sixteen_sets_stays_within_ten_percent_of_the_mean() {
        let ring = ring(0..16);
        let mut counts = [0usize; 16];
        for key in object_keys(1_000_000) {
            counts[ring.locate("bucket", &key) as usize] += 1;
        }
        let mean = 1_000_000.0 / 16.0;
        let max = *counts.iter().max().unwrap() as f64;
        assert!(max / mean <= 1.10, "most loaded set holds {:.3} × the mean: {counts:?}", max / mean);
    }

    #[test]
    fn adding_one_set_moves_about_one_in_n_plus_one() {
        for n in [1u32, 3, 4, 8, 15] {
            let before = ring(0..n);
            let after = ring(0..n + 1);
            let keys = object_keys(200_000);
            let moved = keys.iter().filter(|k| before.locate("b", k) != after.locate("b", k)).count();
            let fraction = moved as f64 / keys.len() as f64;
            let expected = 1.0 / (n as f64 + 1.0);
            assert!(
                (fraction - expected).abs() / expected <= 0.10,
                "n={n}: moved {fraction:.4}, expected {expected:.4}"
            );
            // Every moved key goes to the new set.
            assert!(
                keys.iter()
                    .filter(|k| before.locate("b", k) != after.locate("b", k))
                    .all(|k| after.locate("b", k) == n)
            );
        }
    }

    #[test]
    fn removing_a_set_moves_only_its_keys() {
        let before = ring(0..8);
        let after = ring((0..8).filter(|&s| s != 5));
        for key in object_keys(100_000) {
            let (old, new) = (before.locate("b", &key), after.locate("b", &key));
            if old != 5 {
                assert_eq!(old, new, "{key} moved from a set that stayed");
            } else {
                assert_ne!(new, 5);
            }
        }
    }

    #[test]
    fn the_same_topology_gives_the_same_ring() {
        let a = ring([3, 1, 2, 0]);
        let b = ring(0..4);
        for key in object_keys(10_000) {
            assert_eq!(a.locate("b", &key), b.locate("b", &key));
        }
    }

    #[test]
    fn weights_scale_the_share() {
        let members = [RingMember { set: 0, weight: 1.0 }, RingMember { set: 1, weight: 3.0 }];
        let ring = Ring::new(KEYS, &members);
        let keys = object_keys(200_000);
        let heavy = keys.iter().filter(|k| ring.locate("b", k) == 1).count() as f64 / keys.len() as f64;
        assert!((heavy - 0.75).abs() < 0.03, "weight 3 of 4 got {heavy:.3}");
    }

    #[test]
    fn lookup_matches_a_plain_binary_search_at_the_edges() {
        let ring = ring(0..5);
        let naive = |hash: u64| {
            let i = ring.points.partition_point(|&p| p < hash);
            ring.owners[if i == ring.points.len() { 0 } else { i }]
        };
        let mut probes = vec![0, 1, u64::MAX, u64::MAX - 1];
        for &p in ring.points.iter().take(200) {
            probes.extend([p.wrapping_sub(1), p, p.wrapping_add(1)]);
        }
        probes.extend((0..10_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
        for hash in probes {
            assert_eq!(ring.locate_hash(hash), naive(hash), "hash {hash:#x}");
        }
    }

    #[test]
    fn movement_ranges_agree_with_per_key_lookups() {
        let before = ring(0..4);
        let after = ring(0..5);
        let moves = before.movements_to(&after);
        let predicted: f64 = moves.iter().map(Movement::fraction).sum();
        assert!((predicted - 0.2).abs() / 0.2 <= 0.10, "predicted {predicted:.4}");
        assert!(moves.iter().all(|m| m.target == 4 && m.source != 4));
        for key in object_keys(20_000) {
            let hash = before.hash_key("b", &key);
            let in_move = moves.iter().find(|m| m.first_hash <= hash && hash <= m.last_hash);
            let (old, new) = (before.locate_hash(hash), after.locate_hash(hash));
            match in_move {
                Some(m) => assert_eq!((m.source, m.target), (old, new)),
                None => assert_eq!(old, new),
            }
        }
        assert!(before.movements_to(&before).is_empty());
    }
}
