//! Stable ids and the seeded random numbers behind them.
//!
//! Every seeded row gets an id computed from (`seed.random_seed`, kind,
//! index), and its random choices come from a stream seeded the same way, so
//! a row is the same whatever else is generated, in whatever order or chunk.
//! That is what makes seeding deterministic, idempotent (the ids are stable,
//! so a second run conflicts on every row and adds nothing) and streamable
//! (a chunk of millions of rows needs no state from the chunks before it).
//!
//! Ids are UUIDv8 ("custom") with a fixed 32-bit prefix, [`SEEDED_PREFIX`]:
//! `5eedda7a-…`. The prefix is how `seed stats` tells seeded rows from the
//! application's (`gen_random_uuid()`, v4) with one range scan of the primary
//! key, and how `seed clear` deletes only seeded rows. A random v4 id starts
//! with the prefix with probability 2^-32. Then come the kind (16 bits), and
//! in the remaining 64 bits an offset drawn from the seed plus the index, so
//! ids of one kind never collide and ids of two seeds practically never.
//!
//! Ids grow with the index, and rows are generated in index order (children
//! grouped by their user, in user order), so each table arrives in primary
//! key order and most `user_id` indexes nearly so. The bulk load's index
//! builds then sort presorted input, which PostgreSQL's sort detects: the
//! primary keys of `--scale` build in about half the time they took with
//! scrambled ids (`examples/seed_bench.rs`).

use uuid::Uuid;

/// The first four bytes of every seeded id.
pub const SEEDED_PREFIX: [u8; 4] = [0x5e, 0xed, 0xda, 0x7a];

/// The smallest and largest seeded id, for `WHERE id BETWEEN $1 AND $2`.
pub fn seeded_range() -> (Uuid, Uuid) {
    let mut lo = [0u8; 16];
    let mut hi = [0xffu8; 16];
    lo[..4].copy_from_slice(&SEEDED_PREFIX);
    hi[..4].copy_from_slice(&SEEDED_PREFIX);
    (Uuid::from_bytes(lo), Uuid::from_bytes(hi))
}

/// What an id or a random stream is for; part of both, so kinds never share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Kind {
    User = 1,
    Achievement,
    Path,
    Module,
    Assessment,
    Session,
    Progress,
    Attempt,
    UserAchievement,
    Notification,
    Audit,
    /// Not an id: the random stream of one student's learning journey.
    Journey,
}

/// The stable id of row `index` of `kind` under `seed`.
pub fn id(seed: u64, kind: Kind, index: u64) -> Uuid {
    // A 64-bit offset drawn from the seed, plus the index: ids grow with the
    // index (see the module docs for why), and two seeds' ids only meet if
    // their offsets lie closer than the number of rows, a chance of ~2^-30.
    let x = salt(seed, kind).wrapping_add(index);
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&SEEDED_PREFIX);
    b[4..6].copy_from_slice(&(kind as u16).to_be_bytes());
    // Version 8 and the RFC 4122 variant take 6 bits; x's 64 fill the rest.
    b[6] = 0x80 | ((x >> 60) & 0x0f) as u8;
    b[7] = (x >> 52) as u8;
    b[8] = 0x80 | ((x >> 46) & 0x3f) as u8;
    b[9..16].copy_from_slice(&(x & ((1 << 46) - 1)).to_be_bytes()[1..]);
    Uuid::from_bytes(b)
}

fn salt(seed: u64, kind: Kind) -> u64 {
    mix(seed ^ mix(kind as u64))
}

/// SplitMix64's finaliser: a bijection on u64 that scrambles well.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small seeded generator (SplitMix64): fast, and the same on every
/// platform and release, which a library PRNG does not promise.
pub struct Rng(u64);

impl Rng {
    /// The stream of row `index` of `kind`.
    pub fn for_row(seed: u64, kind: Kind, index: u64) -> Self {
        Self(mix(index.wrapping_add(salt(seed, kind))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is far below anything visible).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with `percent`% probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_v8_and_inside_the_seeded_range() {
        let (lo, hi) = seeded_range();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let a = id(7, Kind::User, i);
            assert_eq!(a, id(7, Kind::User, i));
            assert_eq!(a.get_version_num(), 8);
            assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
            assert!(lo <= a && a <= hi);
            assert!(seen.insert(a));
            assert_ne!(a, id(7, Kind::Module, i));
            assert_ne!(a, id(8, Kind::User, i));
        }
        assert!(
            id(1, Kind::User, 0)
                .to_string()
                .starts_with("5eedda7a-0001-8")
        );
    }

    /// What makes the bulk load's primary keys presorted.
    #[test]
    fn ids_of_a_kind_grow_with_the_index() {
        let ids: Vec<Uuid> = (0..1000).map(|i| id(7, Kind::Session, i)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_ne!(id(7, Kind::Session, 0), id(8, Kind::Session, 0));
    }

    #[test]
    fn streams_are_reproducible() {
        let mut a = Rng::for_row(1, Kind::Journey, 5);
        let mut b = Rng::for_row(1, Kind::Journey, 5);
        for _ in 0..100 {
            let v = a.between(3, 9);
            assert_eq!(v, b.between(3, 9));
            assert!((3..=9).contains(&v));
        }
    }
}
