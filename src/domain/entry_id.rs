//! Stream entry ids of the waiting queue, and their exact mapping to a
//! sorted-set score.
//!
//! The position index is a sorted set whose score must order entries exactly
//! like the stream and lead back to the stream entry. A double holds integers
//! up to 2^53 exactly, so an id `ms-seq` maps to `ms * 2^11 + seq` as long as
//! `seq < 2^11` (ms < 2^42 lasts until the year 2109). The rare id that does
//! not fit (more than 2048 joins in one millisecond, e.g. a script loop under
//! a frozen clock) is replaced by the next id that does: `(ms+1)-0`.

use std::fmt;

use super::decimal::Decimal;

const SEQ_BITS: u32 = 11;
pub const MAX_SEQ: u64 = (1 << SEQ_BITS) - 1;
const MAX_MS: u64 = (1 << 42) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub const fn new(ms: u64, seq: u64) -> Self {
        EntryId { ms, seq }
    }

    /// The id a stream gives the next entry after `last` at `now_ms`
    /// (never going back in time), moved on to the next scorable id if needed.
    pub fn next_after(last: Option<EntryId>, now_ms: u64) -> EntryId {
        let id = match last {
            Some(last) if last.ms >= now_ms => EntryId::new(last.ms, last.seq + 1),
            _ => EntryId::new(now_ms, 0),
        };
        if id.fits_score() {
            id
        } else {
            id.next_scorable()
        }
    }

    /// Whether this id has an exact score.
    pub fn fits_score(&self) -> bool {
        self.seq <= MAX_SEQ && self.ms <= MAX_MS
    }

    /// The first id after `self` that has an exact score.
    pub fn next_scorable(&self) -> EntryId {
        EntryId::new(self.ms + 1, 0)
    }

    pub fn score(&self) -> f64 {
        debug_assert!(self.fits_score());
        ((self.ms << SEQ_BITS) | self.seq) as f64
    }

    pub fn from_score(score: f64) -> Option<EntryId> {
        if !(0.0..=((MAX_MS << SEQ_BITS | MAX_SEQ) as f64)).contains(&score) || score.fract() != 0.0
        {
            return None;
        }
        let n = score as u64;
        Some(EntryId::new(n >> SEQ_BITS, n & MAX_SEQ))
    }
}

/// An id as `ms-seq` text on the stack (see `decimal`).
pub struct IdText {
    buf: [u8; 41],
    len: usize,
}

impl AsRef<[u8]> for IdText {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::ops::Deref for IdText {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl EntryId {
    pub fn text(&self) -> IdText {
        let (ms, seq) = (Decimal::of(self.ms), Decimal::of(self.seq));
        let mut out = IdText {
            buf: [0; 41],
            len: ms.len() + 1 + seq.len(),
        };
        out.buf[..ms.len()].copy_from_slice(&ms);
        out.buf[ms.len()] = b'-';
        out.buf[ms.len() + 1..out.len].copy_from_slice(&seq);
        out
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_round_trips_and_keeps_stream_order() {
        let ids = [
            EntryId::new(0, 0),
            EntryId::new(1_764_000_000_000, 0),
            EntryId::new(1_764_000_000_000, 1),
            EntryId::new(1_764_000_000_000, MAX_SEQ),
            EntryId::new(1_764_000_000_001, 0),
            EntryId::new(MAX_MS, MAX_SEQ),
        ];
        for pair in ids.windows(2) {
            assert!(pair[0].score() < pair[1].score(), "{:?}", pair);
        }
        for id in ids {
            assert_eq!(EntryId::from_score(id.score()), Some(id));
        }
    }

    #[test]
    fn ids_beyond_the_sequence_space_move_to_the_next_millisecond() {
        let id = EntryId::new(10, MAX_SEQ + 1);
        assert!(!id.fits_score());
        assert_eq!(id.next_scorable(), EntryId::new(11, 0));
        assert!(id.next_scorable() > id);
    }

    #[test]
    fn display_and_bad_scores() {
        assert_eq!(EntryId::new(17, 3).to_string(), "17-3");
        for id in [
            EntryId::new(0, 0),
            EntryId::new(u64::MAX, u64::MAX),
            EntryId::new(1764000000000, 12),
        ] {
            assert_eq!(&*id.text(), id.to_string().as_bytes());
        }
        assert_eq!(EntryId::from_score(-1.0), None);
        assert_eq!(EntryId::from_score(1.5), None);
        assert_eq!(EntryId::from_score(f64::NAN), None);
    }
}
