//! Event-wide rules: the settings in force, TQ.CONFIG and TQ.STATS.

use super::error::TqResult;
use super::queue::{abandon_cutoff, measured_rate};
use super::settings::{Settings, SettingsChange};
use super::store::{Counter, EventStore};

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub waiting: u64,
    pub admitted: u64,
    pub admission_rate: f64,
    pub inventory: u64,
    pub held: u64,
    pub sold: u64,
    pub duplicates: u64,
    pub abandoned: u64,
    pub holds_expired: u64,
}

/// The event's own settings over the module-wide `defaults`.
pub fn settings<S: EventStore>(store: &mut S, defaults: &Settings) -> TqResult<Settings> {
    Ok(defaults.apply(&store.settings_overrides()?))
}

/// TQ.CONFIG with options: stores them and refills the bucket.
pub fn configure<S: EventStore>(store: &mut S, change: &SettingsChange) -> TqResult<()> {
    store.store_settings(change)?;
    store.reset_bucket()
}

/// TQ.STATS (read-only): counters as of `now_ms`, counting abandoned entries
/// and expired holds that are due but not yet written back.
pub fn stats<S: EventStore>(store: &mut S, settings: &Settings, now_ms: u64) -> TqResult<Stats> {
    let abandoned_now = store.stale_count(abandon_cutoff(settings, now_ms))?;
    let expired_now = store.expired_hold_count(now_ms)?;
    Ok(Stats {
        waiting: store.waiting_count()?.saturating_sub(abandoned_now),
        admitted: store.counter(Counter::Admitted)?,
        admission_rate: measured_rate(store, now_ms)?,
        inventory: store.counter(Counter::Inventory)? + expired_now,
        held: store.held_count()?.saturating_sub(expired_now),
        sold: store.counter(Counter::Sold)?,
        duplicates: store.counter(Counter::Duplicates)?,
        abandoned: store.counter(Counter::Abandoned)? + abandoned_now,
        holds_expired: store.counter(Counter::HoldsExpired)? + expired_now,
    })
}
