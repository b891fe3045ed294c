//! Module-wide defaults, registered as module configs `tq.rate`,
//! `tq.burst`, `tq.heartbeat`, `tq.hold-ttl`, `tq.dedupe-ttl`,
//! `tq.session`, `tq.max-active`, `tq.require-pass`, `tq.max-seats`,
//! `tq.max-entries`, `tq.events` (CONFIG GET/SET, and `--loadmodule ... rate 100`
//! arguments). Redis validates the
//! range on every change and keeps the old value when it is refused.
//! They are the defaults of events created from then on.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::settings::{Setting, Settings};

// The defaults, from the domain's settings (also registered as the
// configs' defaults in lib.rs).
pub const RATE_DEFAULT: i64 = Settings::DEFAULT.rate as i64;
pub const BURST_DEFAULT: i64 = Settings::DEFAULT.burst as i64;
pub const HEARTBEAT_DEFAULT: i64 = Settings::DEFAULT.heartbeat_s as i64;
pub const HOLD_TTL_DEFAULT: i64 = Settings::DEFAULT.hold_ttl_s as i64;
pub const DEDUPE_TTL_DEFAULT: i64 = Settings::DEFAULT.dedupe_ttl_s as i64;
pub const SESSION_DEFAULT: i64 = Settings::DEFAULT.session_s as i64;
pub const MAX_ACTIVE_DEFAULT: i64 = Settings::DEFAULT.max_active as i64;
pub const REQUIRE_PASS_DEFAULT: i64 = Settings::DEFAULT.require_pass as i64;
pub const MAX_SEATS_DEFAULT: i64 = Settings::DEFAULT.max_seats as i64;
pub const MAX_ENTRIES_DEFAULT: i64 = Settings::DEFAULT.max_entries as i64;
pub const EVENTS_DEFAULT: i64 = Settings::DEFAULT.events as i64;

pub static RATE: AtomicI64 = AtomicI64::new(RATE_DEFAULT);
pub static BURST: AtomicI64 = AtomicI64::new(BURST_DEFAULT);
pub static HEARTBEAT: AtomicI64 = AtomicI64::new(HEARTBEAT_DEFAULT);
pub static HOLD_TTL: AtomicI64 = AtomicI64::new(HOLD_TTL_DEFAULT);
pub static DEDUPE_TTL: AtomicI64 = AtomicI64::new(DEDUPE_TTL_DEFAULT);
pub static SESSION: AtomicI64 = AtomicI64::new(SESSION_DEFAULT);
pub static MAX_ACTIVE: AtomicI64 = AtomicI64::new(MAX_ACTIVE_DEFAULT);
pub static REQUIRE_PASS: AtomicI64 = AtomicI64::new(REQUIRE_PASS_DEFAULT);
pub static MAX_SEATS: AtomicI64 = AtomicI64::new(MAX_SEATS_DEFAULT);
pub static MAX_ENTRIES: AtomicI64 = AtomicI64::new(MAX_ENTRIES_DEFAULT);
pub static EVENTS: AtomicI64 = AtomicI64::new(EVENTS_DEFAULT);

/// The settings a new event starts with: it keeps them (replicas and AOF
/// replays get them in the record that creates it), so changing a default
/// changes only events created afterwards.
pub fn defaults() -> Settings {
    let mut settings = Settings::DEFAULT;
    for setting in Setting::ALL {
        if let Some(value) = variable(setting) {
            settings.set(setting, value.load(Ordering::Relaxed).max(0) as u64);
        }
    }
    settings
}

/// The module config of a setting; none for OPENS-AT, a moment of one
/// event.
fn variable(setting: Setting) -> Option<&'static AtomicI64> {
    Some(match setting {
        Setting::OpensAt => return None,
        Setting::Rate => &RATE,
        Setting::Burst => &BURST,
        Setting::Heartbeat => &HEARTBEAT,
        Setting::HoldTtl => &HOLD_TTL,
        Setting::DedupeTtl => &DEDUPE_TTL,
        Setting::Session => &SESSION,
        Setting::MaxActive => &MAX_ACTIVE,
        Setting::RequirePass => &REQUIRE_PASS,
        Setting::MaxSeats => &MAX_SEATS,
        Setting::MaxEntries => &MAX_ENTRIES,
        Setting::Events => &EVENTS,
    })
}

/// Values given as `--loadmodule` arguments become the configs' defaults,
/// which Redis does not range-check (CONFIG SET does). Checked here so a
/// bad argument refuses the load instead of, say, expiring every hold at
/// once.
pub fn check_loaded() -> Result<(), String> {
    for setting in Setting::ALL {
        let Some(value) = variable(setting).map(|v| v.load(Ordering::Relaxed)) else {
            continue;
        };
        let (min, max) = setting.range();
        if value < min as i64 || value > max as i64 {
            return Err(format!(
                "tq.{} is {value}, must be between {min} and {max}",
                setting.keyword().to_ascii_lowercase()
            ));
        }
    }
    Ok(())
}
