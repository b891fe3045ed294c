//! What the ticketing rules need from storage, and nothing more.
//!
//! The rules in `queue.rs` and `seats.rs` only talk to this trait, so they
//! run unchanged against Redis keys (`glue::store`) and against the
//! in-memory model used by unit tests (`memstore`). Every method acts on one
//! event. Implementations must make each write durable and replicated as an
//! effect; the rules never look at the clock themselves (they get `now_ms`).

use super::entry_id::EntryId;
use super::error::TqResult;
use super::settings::SettingsChange;

/// One entry of the waiting queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub id: EntryId,
    pub token: Vec<u8>,
    pub user: Vec<u8>,
}

/// The stored state of a seat. A hold whose time has passed is still
/// `Held` here until the rules expire it; see `seats::effective_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSeat {
    Available,
    Held { user: Vec<u8>, expires_ms: u64 },
    Sold { user: Vec<u8> },
}

/// Token-bucket state as stored: milli-tokens at a moment. Absent means full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    pub milli_tokens: u64,
    pub at_ms: u64,
}

/// Per-event counters kept in storage so that TQ.STATS is O(1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Inventory,
    Sold,
    Admitted,
    Duplicates,
    Abandoned,
    HoldsExpired,
}

impl Counter {
    pub const ALL: [Counter; 6] = [
        Counter::Inventory,
        Counter::Sold,
        Counter::Admitted,
        Counter::Duplicates,
        Counter::Abandoned,
        Counter::HoldsExpired,
    ];

    /// Its name in storage (a `name=value` pair of the `meta` text) and in
    /// TQ.STATS.
    pub fn field(self) -> &'static str {
        match self {
            Counter::Inventory => "inventory",
            Counter::Sold => "sold",
            Counter::Admitted => "admitted",
            Counter::Duplicates => "duplicates",
            Counter::Abandoned => "abandoned",
            Counter::HoldsExpired => "holds_expired",
        }
    }
}

pub trait EventStore {
    // ---- waiting queue -------------------------------------------------
    /// Entries stored in the queue (including abandoned ones not yet reaped).
    fn waiting_count(&mut self) -> TqResult<u64>;
    /// Entries of `user` stored in the queue.
    fn user_waiting_count(&mut self, user: &[u8]) -> TqResult<u64>;
    /// The id of the waiting entry holding `token`.
    fn entry_id(&mut self, token: &[u8]) -> TqResult<Option<EntryId>>;
    /// The waiting entry holding `token`.
    fn entry(&mut self, token: &[u8]) -> TqResult<Option<Waiting>>;
    /// 0-based place of `token` among all stored entries.
    fn rank(&mut self, token: &[u8]) -> TqResult<u64>;
    /// 0-based place of `token` among the stored entries of `user`.
    fn user_rank(&mut self, user: &[u8], token: &[u8]) -> TqResult<u64>;
    /// `(id, token)` of every stored entry of `user`, oldest first.
    fn user_entries(&mut self, user: &[u8]) -> TqResult<Vec<(EntryId, Vec<u8>)>>;
    /// Appends at the tail with heartbeat `now_ms`; returns the new id.
    fn append(&mut self, token: &[u8], user: &[u8], now_ms: u64) -> TqResult<EntryId>;
    /// Removes these entries from the queue and every index. Many at once
    /// (reaping, TRIM) in one call, so that a store can batch the work.
    fn remove(&mut self, entries: &[Waiting]) -> TqResult<()>;
    /// Records a heartbeat.
    fn touch(&mut self, token: &[u8], now_ms: u64) -> TqResult<()>;
    /// Tokens whose last heartbeat is before `before_ms`, at most `limit`.
    fn stale_tokens(&mut self, before_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>>;
    /// How many entries have their last heartbeat before `before_ms`.
    fn stale_count(&mut self, before_ms: u64) -> TqResult<u64>;
    /// Entries with an id below `id`, oldest first, at most `limit`.
    fn entries_before(&mut self, id: EntryId, limit: usize) -> TqResult<Vec<Waiting>>;

    // ---- dedupe ids ----------------------------------------------------
    /// The entry id recorded for `dedupe`, if its window is still open.
    fn dedupe_lookup(&mut self, dedupe: &[u8]) -> TqResult<Option<Vec<u8>>>;
    fn dedupe_record(&mut self, dedupe: &[u8], id: EntryId, expires_at_ms: u64) -> TqResult<()>;

    // ---- admission -----------------------------------------------------
    fn bucket(&mut self) -> TqResult<Option<BucketState>>;
    fn set_bucket(&mut self, state: BucketState) -> TqResult<()>;
    /// Forgets the bucket state, so it counts as full.
    fn reset_bucket(&mut self) -> TqResult<()>;
    /// Counts one admission in the per-second history at `now_ms`.
    fn record_admission(&mut self, now_ms: u64) -> TqResult<()>;
    /// Admissions recorded in seconds >= `since_s` (unix seconds).
    fn admissions_since(&mut self, since_s: u64) -> TqResult<u64>;

    // ---- seats ---------------------------------------------------------
    fn seat(&mut self, seat: &[u8]) -> TqResult<StoredSeat>;
    fn set_seat(&mut self, seat: &[u8], state: &StoredSeat) -> TqResult<()>;
    /// Held seats whose hold expires at or before `now_ms`, at most `limit`.
    fn expired_holds(&mut self, now_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>>;
    /// How many held seats expire at or before `now_ms`.
    fn expired_hold_count(&mut self, now_ms: u64) -> TqResult<u64>;
    fn held_count(&mut self) -> TqResult<u64>;

    // ---- counters and settings -----------------------------------------
    fn counter(&mut self, counter: Counter) -> TqResult<u64>;
    /// Adds `delta`; a counter never goes below 0.
    fn add_counter(&mut self, counter: Counter, delta: i64) -> TqResult<()>;
    fn set_counter(&mut self, counter: Counter, value: u64) -> TqResult<()>;
    /// The settings stored for this event by TQ.CONFIG.
    fn settings_overrides(&mut self) -> TqResult<SettingsChange>;
    fn store_settings(&mut self, change: &SettingsChange) -> TqResult<()>;
}
