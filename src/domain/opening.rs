//! A scheduled opening (`OPENS-AT`): fans who join before it form a
//! pre-queue whose order is drawn at random, so that arriving at the right
//! millisecond is worth nothing, and that nobody can know or steer before
//! the opening, yet anyone can check afterwards.
//!
//! The rule. A seed of 16 random bytes is drawn on the master when
//! OPENS-AT is first set (and carried to replicas in that record). The
//! pre-queue's joins are numbered i = 0, 1, 2, ... in join order, every
//! join counted, also of fans who left since. Join i draws
//!
//! ```text
//! r = (first 8 bytes of SHA-256(seed || i as 8 bytes big-endian), big-endian) mod (i + 1)
//! ```
//!
//! and takes place r of the pre-queue; if r < i, whoever held place r
//! moves to place i (a place whose fan left stays empty). This is the
//! "inside-out" Fisher-Yates shuffle done one join at a time: every order
//! of the joins is equally likely, and the order among those still waiting
//! too. Places are final as they are drawn, so nothing moves at the
//! opening, whatever the pre-queue's size. The seed is shown (TQ.CONFIG
//! `shuffle_seed`) only once the event has opened; before, no command
//! shows a place (positions are 0).

use super::names::digest_of;

/// Most pre-queue joins of one opening (departed ones included): places
/// are order numbers of a window this wide, which a stored state may ask
/// the decoder to make.
pub const MAX_PREQUEUE_JOINS: u64 = 1 << 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// Drawn when OPENS-AT was first set.
    pub seed: [u8; 16],
    /// The order number of the pre-queue's place 0.
    pub base: u64,
    /// Pre-queue joins so far, departed ones included.
    pub joins: u64,
    /// The event has opened: the pre-queue's order is final and the seed
    /// may be shown.
    pub done: bool,
}

impl Opening {
    pub fn new(seed: [u8; 16], base: u64) -> Opening {
        Opening {
            seed,
            base,
            joins: 0,
            done: false,
        }
    }

    /// Whether order number `number` is a place of the pre-queue.
    pub fn holds(&self, number: u64) -> bool {
        (self.base..self.base + self.joins).contains(&number)
    }
}

/// The place the pre-queue's join `i` takes (the rule above).
pub fn shuffle_place(seed: &[u8; 16], i: u64) -> u64 {
    let mut input = [0u8; 24];
    input[..16].copy_from_slice(seed);
    input[16..].copy_from_slice(&i.to_be_bytes());
    let digest = digest_of(&input);
    let draw = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    draw % (i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The order an inside-out shuffle of `n` joins gives, join indexes by
    /// place, computed the slow and obvious way.
    fn order(seed: &[u8; 16], n: u64) -> Vec<u64> {
        let mut places: Vec<u64> = Vec::new();
        for i in 0..n {
            let r = shuffle_place(seed, i) as usize;
            places.push(i);
            let last = places.len() - 1;
            places.swap(r, last);
        }
        places
    }

    /// Over many seeds, each of 6 joins is equally likely at each of the 6
    /// places: chi-square of the 36 counts against their expectation.
    #[test]
    fn every_join_is_equally_likely_at_every_place() {
        const N: usize = 6;
        const SEEDS: u64 = 60_000;
        let mut counts = [[0u64; N]; N];
        for s in 0..SEEDS {
            let seed = digest_of(&s.to_be_bytes());
            for (place, join) in order(&seed, N as u64).into_iter().enumerate() {
                counts[join as usize][place] += 1;
            }
        }
        let expected = SEEDS as f64 / N as f64;
        let chi2: f64 = counts
            .iter()
            .flatten()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 25 degrees of freedom ((N-1)^2); the 99.9th percentile is 52.6.
        assert!(chi2 < 52.6, "chi-square {chi2:.1}: {counts:?}");
        // And all 720 orders of 6 turn up.
        let mut seen = std::collections::HashSet::new();
        for s in 0..20_000u64 {
            seen.insert(order(&digest_of(&s.to_le_bytes()), N as u64));
        }
        assert_eq!(seen.len(), 720);
    }

    #[test]
    fn a_draw_is_within_the_joins_so_far_and_depends_on_the_seed() {
        let seed = [7u8; 16];
        assert_eq!(shuffle_place(&seed, 0), 0);
        for i in 0..1000 {
            assert!(shuffle_place(&seed, i) <= i);
        }
        let other = [8u8; 16];
        let differ = (1..200).filter(|&i| shuffle_place(&seed, i) != shuffle_place(&other, i));
        assert!(differ.count() > 150);
    }
}
