//! DEDUPE ids: each remembers the stream id of the entry that used it until
//! its window closes, whether or not that entry still waits. An id is kept
//! as its digest (`names`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::entry_id::EntryId;
use super::names::NameDigest;
use super::slab::{NameIndex, Slab};

#[derive(Clone, Debug, Default)]
pub struct Record {
    pub key: NameDigest,
    pub id: EntryId,
    pub expires_ms: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Dedupe {
    records: Slab<Record>,
    index: NameIndex,
    /// (expiry, slot); an item whose record has since been given a new
    /// window is skipped when it comes up.
    deadlines: BinaryHeap<Reverse<(u64, u32)>>,
}

impl Dedupe {
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The entry that used `key`, while its window is open at `now_ms`.
    pub fn lookup(&self, key: &NameDigest, now_ms: u64) -> Option<EntryId> {
        let record = self.records.at(self.find(key)?);
        (record.expires_ms > now_ms).then_some(record.id)
    }

    /// Whether `key` has a record, window open or not.
    pub fn contains(&self, key: &NameDigest) -> bool {
        self.find(key).is_some()
    }

    /// Remembers `key` for entry `id` until `expires_ms` (a closed window
    /// of the same key is replaced).
    pub fn record(&mut self, key: NameDigest, id: EntryId, expires_ms: u64) {
        let slot = match self.find(&key) {
            Some(slot) => {
                let r = self.records.at_mut(slot);
                r.id = id;
                r.expires_ms = expires_ms;
                slot
            }
            None => {
                let slot = self.records.insert(Record {
                    key,
                    id,
                    expires_ms,
                });
                let records = &self.records;
                self.index.insert(slot, &key, |s| &records.at(s).key[..]);
                slot
            }
        };
        self.deadlines.push(Reverse((expires_ms, slot)));
    }

    /// Forgets ids whose window closed by `now_ms`. Stops once `budget`
    /// are gone, but only between two expiry times, so that the ids
    /// forgotten depend on the stored ids alone. Returns how many went.
    pub fn purge(&mut self, now_ms: u64, budget: usize) -> usize {
        let mut removed = 0;
        let mut last_ms = None;
        while let Some(&Reverse((expires_ms, slot))) = self.deadlines.peek() {
            if expires_ms > now_ms || (removed >= budget && last_ms != Some(expires_ms)) {
                break;
            }
            self.deadlines.pop();
            if self
                .records
                .get(slot)
                .is_some_and(|r| r.expires_ms == expires_ms)
            {
                let record = self.records.remove(slot).expect("slot in use");
                let records = &self.records;
                self.index.remove(&record.key, |s| {
                    if s == slot {
                        &record.key[..]
                    } else {
                        &records.at(s).key[..]
                    }
                });
                removed += 1;
                last_ms = Some(expires_ms);
            }
        }
        if self.records.is_empty() {
            self.deadlines = BinaryHeap::new();
        }
        removed
    }

    /// When the next window closes.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter().map(|(_, r)| r)
    }

    pub fn memory_usage(&self) -> usize {
        self.records.memory_usage()
            + self.index.memory_usage()
            + self.deadlines.capacity() * std::mem::size_of::<Reverse<(u64, u32)>>()
    }

    fn find(&self, key: &NameDigest) -> Option<u32> {
        let records = &self.records;
        self.index.find(key, |s| &records.at(s).key[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::digest_of;

    #[test]
    fn a_window_closes_and_the_key_can_be_used_again() {
        let mut d = Dedupe::default();
        d.record(digest_of(b"k"), EntryId::new(1, 0), 100);
        assert_eq!(d.lookup(&digest_of(b"k"), 99), Some(EntryId::new(1, 0)));
        assert_eq!(d.lookup(&digest_of(b"k"), 100), None);
        d.record(digest_of(b"k"), EntryId::new(150, 0), 400);
        assert_eq!(d.purge(300, 10), 0, "the old deadline is stale");
        assert_eq!(d.lookup(&digest_of(b"k"), 300), Some(EntryId::new(150, 0)));
        assert_eq!(d.purge(400, 10), 1);
        assert!(d.is_empty());
        assert_eq!(d.memory_usage(), 0);
    }

    #[test]
    fn purge_finishes_the_millisecond_it_started() {
        let mut d = Dedupe::default();
        for i in 0..10u64 {
            d.record(
                digest_of(format!("k{i}").as_bytes()),
                EntryId::new(i, 0),
                50 + i / 5,
            );
        }
        assert_eq!(d.purge(1000, 2), 5, "all of ms 50, then stop");
        assert_eq!(d.purge(1000, 2), 5);
    }
}
