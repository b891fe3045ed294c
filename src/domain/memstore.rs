//! An in-memory `EventStore` with the same observable behaviour as the
//! Redis keys, for unit tests of the rules. Its clock (`now_ms`) only
//! governs dedupe-key expiry, as Redis' own key expiry does.

use std::collections::{BTreeMap, HashMap};

use super::entry_id::EntryId;
use super::error::TqResult;
use super::settings::SettingsChange;
use super::store::{BucketState, Counter, EventStore, StoredSeat, Waiting};

#[derive(Default)]
pub struct MemStore {
    pub now_ms: u64,
    queue: BTreeMap<EntryId, Waiting>,
    by_token: HashMap<Vec<u8>, EntryId>,
    beats: HashMap<Vec<u8>, u64>,
    last_id: Option<EntryId>,
    dedupe: HashMap<Vec<u8>, (Vec<u8>, u64)>,
    bucket: Option<BucketState>,
    admissions: BTreeMap<u64, u64>,
    seats: BTreeMap<Vec<u8>, StoredSeat>,
    counters: HashMap<&'static str, u64>,
    overrides: SettingsChange,
}

impl MemStore {
    pub fn new(now_ms: u64) -> Self {
        MemStore {
            now_ms,
            ..Default::default()
        }
    }

    /// Tokens in queue order (test helper).
    pub fn tokens(&self) -> Vec<Vec<u8>> {
        self.queue.values().map(|w| w.token.clone()).collect()
    }

    fn user_ids(&self, user: &[u8]) -> Vec<EntryId> {
        self.queue
            .values()
            .filter(|w| w.user == user)
            .map(|w| w.id)
            .collect()
    }
}

impl EventStore for MemStore {
    fn waiting_count(&mut self) -> TqResult<u64> {
        Ok(self.queue.len() as u64)
    }

    fn user_waiting_count(&mut self, user: &[u8]) -> TqResult<u64> {
        Ok(self.user_ids(user).len() as u64)
    }

    fn entry_id(&mut self, token: &[u8]) -> TqResult<Option<EntryId>> {
        Ok(self.by_token.get(token).copied())
    }

    fn entry(&mut self, token: &[u8]) -> TqResult<Option<Waiting>> {
        Ok(self.by_token.get(token).map(|id| self.queue[id].clone()))
    }

    fn rank(&mut self, token: &[u8]) -> TqResult<u64> {
        let id = self.by_token[token];
        Ok(self.queue.range(..id).count() as u64)
    }

    fn user_rank(&mut self, user: &[u8], token: &[u8]) -> TqResult<u64> {
        let id = self.by_token[token];
        Ok(self.user_ids(user).iter().filter(|i| **i < id).count() as u64)
    }

    fn user_entries(&mut self, user: &[u8]) -> TqResult<Vec<(EntryId, Vec<u8>)>> {
        Ok(self
            .queue
            .values()
            .filter(|w| w.user == user)
            .map(|w| (w.id, w.token.clone()))
            .collect())
    }

    fn append(&mut self, token: &[u8], user: &[u8], now_ms: u64) -> TqResult<EntryId> {
        let id = EntryId::next_after(self.last_id, now_ms);
        self.last_id = Some(id);
        self.queue.insert(
            id,
            Waiting {
                id,
                token: token.to_vec(),
                user: user.to_vec(),
            },
        );
        self.by_token.insert(token.to_vec(), id);
        self.beats.insert(token.to_vec(), now_ms);
        Ok(id)
    }

    fn remove(&mut self, entries: &[Waiting]) -> TqResult<()> {
        for entry in entries {
            self.queue.remove(&entry.id);
            self.by_token.remove(&entry.token);
            self.beats.remove(&entry.token);
        }
        Ok(())
    }

    fn touch(&mut self, token: &[u8], now_ms: u64) -> TqResult<()> {
        self.beats.insert(token.to_vec(), now_ms);
        Ok(())
    }

    fn stale_tokens(&mut self, before_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>> {
        let mut stale: Vec<_> = self
            .beats
            .iter()
            .filter(|(_, beat)| **beat < before_ms)
            .map(|(t, beat)| (*beat, t.clone()))
            .collect();
        stale.sort();
        Ok(stale.into_iter().take(limit).map(|(_, t)| t).collect())
    }

    fn stale_count(&mut self, before_ms: u64) -> TqResult<u64> {
        Ok(self.beats.values().filter(|b| **b < before_ms).count() as u64)
    }

    fn entries_before(&mut self, id: EntryId, limit: usize) -> TqResult<Vec<Waiting>> {
        Ok(self
            .queue
            .range(..id)
            .take(limit)
            .map(|(_, w)| w.clone())
            .collect())
    }

    fn dedupe_lookup(&mut self, dedupe: &[u8]) -> TqResult<Option<Vec<u8>>> {
        Ok(match self.dedupe.get(dedupe) {
            Some((id, expires)) if *expires > self.now_ms => Some(id.clone()),
            _ => None,
        })
    }

    fn dedupe_record(&mut self, dedupe: &[u8], id: EntryId, expires_at_ms: u64) -> TqResult<()> {
        self.dedupe.insert(
            dedupe.to_vec(),
            (id.to_string().into_bytes(), expires_at_ms),
        );
        Ok(())
    }

    fn bucket(&mut self) -> TqResult<Option<BucketState>> {
        Ok(self.bucket)
    }

    fn set_bucket(&mut self, state: BucketState) -> TqResult<()> {
        self.bucket = Some(state);
        Ok(())
    }

    fn reset_bucket(&mut self) -> TqResult<()> {
        self.bucket = None;
        Ok(())
    }

    fn record_admission(&mut self, now_ms: u64) -> TqResult<()> {
        *self.admissions.entry(now_ms / 1000).or_default() += 1;
        Ok(())
    }

    fn admissions_since(&mut self, since_s: u64) -> TqResult<u64> {
        Ok(self.admissions.range(since_s..).map(|(_, n)| n).sum())
    }

    fn seat(&mut self, seat: &[u8]) -> TqResult<StoredSeat> {
        Ok(self
            .seats
            .get(seat)
            .cloned()
            .unwrap_or(StoredSeat::Available))
    }

    fn set_seat(&mut self, seat: &[u8], state: &StoredSeat) -> TqResult<()> {
        match state {
            StoredSeat::Available => self.seats.remove(seat),
            other => self.seats.insert(seat.to_vec(), other.clone()),
        };
        Ok(())
    }

    fn expired_holds(&mut self, now_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>> {
        Ok(self
            .seats
            .iter()
            .filter(
                |(_, s)| matches!(s, StoredSeat::Held { expires_ms, .. } if *expires_ms <= now_ms),
            )
            .map(|(seat, _)| seat.clone())
            .take(limit)
            .collect())
    }

    fn expired_hold_count(&mut self, now_ms: u64) -> TqResult<u64> {
        Ok(self.expired_holds(now_ms, usize::MAX)?.len() as u64)
    }

    fn held_count(&mut self) -> TqResult<u64> {
        Ok(self
            .seats
            .values()
            .filter(|s| matches!(s, StoredSeat::Held { .. }))
            .count() as u64)
    }

    fn counter(&mut self, counter: Counter) -> TqResult<u64> {
        Ok(self.counters.get(counter.field()).copied().unwrap_or(0))
    }

    fn add_counter(&mut self, counter: Counter, delta: i64) -> TqResult<()> {
        let value = self.counters.entry(counter.field()).or_default();
        *value = value.saturating_add_signed(delta);
        Ok(())
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> TqResult<()> {
        self.counters.insert(counter.field(), value);
        Ok(())
    }

    fn settings_overrides(&mut self) -> TqResult<SettingsChange> {
        Ok(self.overrides.clone())
    }

    fn store_settings(&mut self, change: &SettingsChange) -> TqResult<()> {
        let mut merged = SettingsChange::default();
        for (setting, value) in self.overrides.iter() {
            if !change.contains(setting) {
                merged.set(setting, value);
            }
        }
        for (setting, value) in change.iter() {
            merged.set(setting, value);
        }
        self.overrides = merged;
        Ok(())
    }
}
