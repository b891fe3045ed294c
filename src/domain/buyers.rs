//! The users of an event past the queue: each one's pass (the admitted
//! session TQ.ENTER gives) and how many seats they hold and bought. A
//! record exists while its user has a pass or a seat; users are known by
//! their digests (`names`). When a pass lapses, and what renews it, is
//! decided in `event.rs`.

use std::collections::BTreeSet;

use super::names::NameDigest;
use super::slab::{NameIndex, Slab};

/// A pass id: 16 random bytes drawn when the pass was given.
pub type PassId = [u8; 16];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    pub id: PassId,
    /// It lapses at this time unless renewed.
    pub expires_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Buyer {
    pub user: NameDigest,
    pub pass: Option<Pass>,
    /// Seats held now (expired holds included until they are given back).
    pub held: u32,
    pub bought: u32,
}

impl Buyer {
    fn is_empty(&self) -> bool {
        self.pass.is_none() && self.held == 0 && self.bought == 0
    }
}

#[derive(Clone, Debug, Default)]
pub struct Buyers {
    records: Slab<Buyer>,
    index: NameIndex,
    /// (expiry, slot) of every pass. Passes due in the same millisecond
    /// lapse together (`event::within_budget`), so their order among
    /// themselves, which depends on slots, never shows.
    passes: BTreeSet<(u64, u32)>,
}

impl Buyers {
    /// The slot of the user's record, if any: one lookup for a rule that
    /// reads and then changes the record (`at`, `give_pass_at`,
    /// `add_held_at`).
    pub fn find(&self, user: &NameDigest) -> Option<u32> {
        let records = &self.records;
        self.index.find(user, |s| &records.at(s).user[..])
    }

    pub fn at(&self, slot: u32) -> &Buyer {
        self.records.at(slot)
    }

    /// The slot of the user's record, made if there is none.
    pub fn slot_or_insert(&mut self, user: &NameDigest) -> u32 {
        match self.find(user) {
            Some(slot) => slot,
            None => self.insert(user),
        }
    }

    /// Makes a record for `user`, which has none.
    pub fn insert(&mut self, user: &NameDigest) -> u32 {
        debug_assert!(self.find(user).is_none());
        let slot = self.records.insert(Buyer {
            user: *user,
            ..Buyer::default()
        });
        let records = &self.records;
        self.index.insert(slot, user, |s| &records.at(s).user[..]);
        slot
    }

    /// The pass of the record in `slot`, if it is live at `now_ms`.
    pub fn live_pass_at(&self, slot: u32, now_ms: u64) -> Option<Pass> {
        self.records.at(slot).pass.filter(|p| p.expires_ms > now_ms)
    }

    /// Passes stored, lapsed ones included until they are removed.
    pub fn passes(&self) -> u64 {
        self.passes.len() as u64
    }

    /// Gives the record in `slot` the pass `pass`, in place of any it had.
    pub fn give_pass_at(&mut self, slot: u32, pass: Pass) {
        let buyer = self.records.at_mut(slot);
        if let Some(old) = buyer.pass.replace(pass) {
            self.passes.remove(&(old.expires_ms, slot));
        }
        self.passes.insert((pass.expires_ms, slot));
    }

    /// Ends the user's pass, if any; returns it.
    pub fn end_pass(&mut self, user: &NameDigest) -> Option<Pass> {
        let slot = self.find(user)?;
        let pass = self.records.at_mut(slot).pass.take()?;
        self.passes.remove(&(pass.expires_ms, slot));
        self.drop_if_empty(slot);
        Some(pass)
    }

    /// One seat fewer held by `user` (released or expired); a record left
    /// with nothing goes.
    pub fn held_one_fewer(&mut self, user: &NameDigest) {
        let Some(slot) = self.find(user) else {
            return;
        };
        let buyer = self.records.at_mut(slot);
        buyer.held = buyer.held.saturating_sub(1);
        self.drop_if_empty(slot);
    }

    /// `n` more seats held by the record in `slot`.
    pub fn add_held_at(&mut self, slot: u32, n: u32) {
        let buyer = self.records.at_mut(slot);
        buyer.held = buyer.held.saturating_add(n);
    }

    /// A seat held by the record in `slot` became a sale.
    pub fn sold_at(&mut self, slot: u32) {
        let buyer = self.records.at_mut(slot);
        buyer.held = buyer.held.saturating_sub(1);
        buyer.bought = buyer.bought.saturating_add(1);
    }

    /// Passes whose time is at or before `now_ms`, earliest first, with
    /// their users.
    pub fn due_passes(&self, now_ms: u64) -> impl Iterator<Item = (u64, NameDigest)> + '_ {
        self.passes
            .iter()
            .take_while(move |(at, _)| *at <= now_ms)
            .map(|&(at, slot)| (at, self.records.at(slot).user))
    }

    pub fn next_due_ms(&self) -> Option<u64> {
        self.passes.first().map(|(at, _)| *at)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Buyer> {
        self.records.iter().map(|(_, b)| b)
    }

    pub fn memory_usage(&self) -> usize {
        // A B-tree entry costs about its key plus a share of its node.
        let per_pass = std::mem::size_of::<(u64, u32)>() + 8;
        self.records.memory_usage() + self.index.memory_usage() + self.passes.len() * per_pass
    }

    fn drop_if_empty(&mut self, slot: u32) {
        if !self.records.at(slot).is_empty() {
            return;
        }
        let buyer = self.records.remove(slot).expect("slot in use");
        let records = &self.records;
        self.index.remove(&buyer.user, |s| {
            if s == slot {
                &buyer.user[..]
            } else {
                &records.at(s).user[..]
            }
        });
    }
}

/// A pass id (or any 16-byte draw) as clients and records see it: 32
/// lower-case hex digits.
pub fn id_text(id: &PassId) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (pair, b) in text.chunks_exact_mut(2).zip(id) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    text
}

/// The reverse of `id_text`: `None` unless exactly 32 hex digits.
pub fn parse_id(text: &[u8]) -> Option<PassId> {
    if text.len() != 32 || !text.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut id = [0u8; 16];
    for (byte, pair) in id.iter_mut().zip(text.chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        let id: PassId = *b"\x00\x01\xab\xff0123456789ab";
        let text = id_text(&id);
        assert_eq!(&text[..8], b"0001abff");
        assert_eq!(parse_id(&text), Some(id));
        assert_eq!(parse_id(&text.to_ascii_uppercase()), Some(id));
        for bad in [
            &b""[..],
            b"00",
            &[b'0'; 31],
            &[b'0'; 33],
            b"+0000000000000000000000000000000",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }
}
