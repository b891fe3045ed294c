//! Stream entry ids of the waiting queue.
//!
//! tq chooses each entry's id itself, the way `XADD *` would (the time, or
//! the next sequence number within the same millisecond), so that a
//! replica or an AOF replay applying the same command at the same `now`
//! appends the very same id.

use std::fmt;

use super::decimal::Decimal;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl EntryId {
    pub const fn new(ms: u64, seq: u64) -> Self {
        EntryId { ms, seq }
    }

    /// The id a stream gives the next entry after `last` at `now_ms`,
    /// never going back in time.
    pub fn next_after(last: Option<EntryId>, now_ms: u64) -> EntryId {
        match last {
            Some(last) if last.ms >= now_ms => EntryId::new(last.ms, last.seq + 1),
            _ => EntryId::new(now_ms, 0),
        }
    }
}

/// An id as `ms-seq` text on the stack.
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
    fn ids_follow_the_clock_and_never_go_back() {
        assert_eq!(EntryId::next_after(None, 5), EntryId::new(5, 0));
        assert_eq!(
            EntryId::next_after(Some(EntryId::new(5, 0)), 5),
            EntryId::new(5, 1)
        );
        assert_eq!(
            EntryId::next_after(Some(EntryId::new(9, 3)), 5),
            EntryId::new(9, 4)
        );
        assert_eq!(
            EntryId::next_after(Some(EntryId::new(5, 7)), 6),
            EntryId::new(6, 0)
        );
        assert_eq!(
            &*EntryId::new(1700000000000, 12).text(),
            b"1700000000000-12"
        );
    }
}
