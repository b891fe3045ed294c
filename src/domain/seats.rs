//! Seats that are held or sold (a seat with no record is available), and
//! the hold deadlines. The rules that move seats are in `event.rs`.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seat {
    Held { user: Box<[u8]>, expires_ms: u64 },
    Sold { user: Box<[u8]> },
}

#[derive(Clone, Debug, Default)]
pub struct Seats {
    seats: BTreeMap<Box<[u8]>, Seat>,
    /// (expiry, seat) of every hold.
    holds: BTreeSet<(u64, Box<[u8]>)>,
}

impl Seats {
    pub fn get(&self, seat: &[u8]) -> Option<&Seat> {
        self.seats.get(seat)
    }

    /// Seats held now (expired holds included until they are given back).
    pub fn held(&self) -> u64 {
        self.holds.len() as u64
    }

    pub fn hold(&mut self, seat: &[u8], user: &[u8], expires_ms: u64) {
        self.free(seat);
        self.seats.insert(
            seat.into(),
            Seat::Held {
                user: user.into(),
                expires_ms,
            },
        );
        self.holds.insert((expires_ms, seat.into()));
    }

    pub fn sell(&mut self, seat: &[u8], user: &[u8]) {
        self.free(seat);
        self.seats
            .insert(seat.into(), Seat::Sold { user: user.into() });
    }

    /// Makes the seat available.
    pub fn free(&mut self, seat: &[u8]) {
        if let Some(Seat::Held { expires_ms, .. }) = self.seats.remove(seat) {
            self.holds.remove(&(expires_ms, Box::from(seat)));
        }
    }

    /// Holds whose deadline is at or before `now_ms`, earliest first.
    pub fn due_holds(&self, now_ms: u64) -> impl Iterator<Item = (u64, &[u8])> {
        self.holds
            .iter()
            .take_while(move |(at, _)| *at <= now_ms)
            .map(|(at, seat)| (*at, &seat[..]))
    }

    pub fn next_due_ms(&self) -> Option<u64> {
        self.holds.first().map(|(at, _)| *at)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Seat)> {
        self.seats.iter().map(|(name, seat)| (&name[..], seat))
    }

    pub fn memory_usage(&self) -> usize {
        // A B-tree entry costs about its key and value plus a share of its
        // node; the names are owned twice for holds.
        let per_seat = std::mem::size_of::<(Box<[u8]>, Seat)>() + 16;
        let per_hold = std::mem::size_of::<(u64, Box<[u8]>)>() + 16;
        self.seats
            .iter()
            .map(|(name, seat)| {
                per_seat
                    + name.len()
                    + match seat {
                        Seat::Held { user, .. } => user.len() + per_hold + name.len(),
                        Seat::Sold { user } => user.len(),
                    }
            })
            .sum()
    }
}
