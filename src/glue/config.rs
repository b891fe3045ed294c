//! Module-wide defaults, registered as module configs `tq.rate`,
//! `tq.burst`, `tq.heartbeat`, `tq.hold-ttl`, `tq.dedupe-ttl` (CONFIG
//! GET/SET, and `--loadmodule ... rate 100` arguments). Redis validates the
//! range on every change and keeps the old value when it is refused.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::settings::Settings;

pub static RATE: AtomicI64 = AtomicI64::new(Settings::DEFAULT.rate as i64);
pub static BURST: AtomicI64 = AtomicI64::new(Settings::DEFAULT.burst as i64);
pub static HEARTBEAT: AtomicI64 = AtomicI64::new(Settings::DEFAULT.heartbeat_s as i64);
pub static HOLD_TTL: AtomicI64 = AtomicI64::new(Settings::DEFAULT.hold_ttl_s as i64);
pub static DEDUPE_TTL: AtomicI64 = AtomicI64::new(Settings::DEFAULT.dedupe_ttl_s as i64);

/// The settings an event has before any TQ.CONFIG of its own.
pub fn defaults() -> Settings {
    let get = |v: &AtomicI64| v.load(Ordering::Relaxed).max(0) as u64;
    Settings {
        rate: get(&RATE),
        burst: get(&BURST),
        heartbeat_s: get(&HEARTBEAT),
        hold_ttl_s: get(&HOLD_TTL),
        dedupe_ttl_s: get(&DEDUPE_TTL),
    }
}
