//! Seats that are held or sold (a seat with no record is available), and
//! the hold deadlines. The rules that move seats are in `event.rs`.

use std::collections::BTreeSet;

use super::slab::{heap_bytes, LongName, NameIndex, ShortName, Slab};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seat {
    Held { user: ShortName, expires_ms: u64 },
    Sold { user: ShortName },
}

/// Only what a free slab slot holds (see `slab::Slab`).
impl Default for Seat {
    fn default() -> Seat {
        Seat::Sold {
            user: ShortName::new(),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Record {
    name: LongName,
    seat: Seat,
}

#[derive(Clone, Debug, Default)]
pub struct Seats {
    records: Slab<Record>,
    index: NameIndex,
    /// (expiry, slot) of every hold. Holds due in the same millisecond are
    /// always given back together (`event::within_budget`), so their order
    /// among themselves, which depends on slots, never shows.
    holds: BTreeSet<(u64, u32)>,
}

impl Seats {
    pub fn get(&self, seat: &[u8]) -> Option<&Seat> {
        Some(&self.records.at(self.find(seat)?).seat)
    }

    /// Seats held now (expired holds included until they are given back).
    pub fn held(&self) -> u64 {
        self.holds.len() as u64
    }

    /// Holds `seat`, which has no record (is available).
    pub fn hold(&mut self, seat: &[u8], user: &[u8], expires_ms: u64) {
        debug_assert!(self.find(seat).is_none());
        let slot = self.insert(
            seat,
            Seat::Held {
                user: ShortName::from_slice(user),
                expires_ms,
            },
        );
        self.holds.insert((expires_ms, slot));
    }

    /// Moves the deadline of a held seat; whether it moved.
    pub fn extend(&mut self, seat: &[u8], expires_ms: u64) -> bool {
        let Some(slot) = self.find(seat) else {
            return false;
        };
        let Seat::Held { expires_ms: at, .. } = &mut self.records.at_mut(slot).seat else {
            return false;
        };
        if *at == expires_ms {
            return false;
        }
        self.holds.remove(&(*at, slot));
        *at = expires_ms;
        self.holds.insert((expires_ms, slot));
        true
    }

    pub fn sell(&mut self, seat: &[u8], user: &[u8]) {
        self.free(seat);
        self.insert(
            seat,
            Seat::Sold {
                user: ShortName::from_slice(user),
            },
        );
    }

    /// Makes the seat available.
    pub fn free(&mut self, seat: &[u8]) {
        let records = &self.records;
        let Some(slot) = self.index.remove(seat, |s| &records.at(s).name[..]) else {
            return;
        };
        if let Some(Record {
            seat: Seat::Held { expires_ms, .. },
            ..
        }) = self.records.remove(slot)
        {
            self.holds.remove(&(expires_ms, slot));
        }
    }

    /// Holds whose deadline is at or before `now_ms`, earliest first.
    pub fn due_holds(&self, now_ms: u64) -> impl Iterator<Item = (u64, &[u8])> {
        self.holds
            .iter()
            .take_while(move |(at, _)| *at <= now_ms)
            .map(|&(at, slot)| (at, &self.records.at(slot).name[..]))
    }

    pub fn next_due_ms(&self) -> Option<u64> {
        self.holds.first().map(|(at, _)| *at)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Seat)> {
        self.records.iter().map(|(_, r)| (&r.name[..], &r.seat))
    }

    pub fn memory_usage(&self) -> usize {
        // A B-tree entry costs about its key plus a share of its node.
        let per_hold = std::mem::size_of::<(u64, u32)>() + 8;
        let names: usize = self
            .records
            .iter()
            .map(|(_, r)| {
                heap_bytes(&r.name)
                    + match &r.seat {
                        Seat::Held { user, .. } | Seat::Sold { user } => heap_bytes(user),
                    }
            })
            .sum();
        self.records.memory_usage()
            + self.index.memory_usage()
            + self.holds.len() * per_hold
            + names
    }

    fn find(&self, seat: &[u8]) -> Option<u32> {
        let records = &self.records;
        self.index.find(seat, |s| &records.at(s).name[..])
    }

    /// Stores `seat`, which has no record, in the state given.
    fn insert(&mut self, seat: &[u8], state: Seat) -> u32 {
        let slot = self.records.insert(Record {
            name: LongName::from_slice(seat),
            seat: state,
        });
        let records = &self.records;
        self.index.insert(slot, seat, |s| &records.at(s).name[..]);
        slot
    }
}
