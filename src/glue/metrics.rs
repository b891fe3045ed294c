//! Per-command figures for `INFO tq`: calls, failures by error code and a
//! fixed-size latency histogram (O(1) per call, no allocation).

use std::sync::atomic::{AtomicI64, Ordering};

use parking_lot::Mutex;
use redis_module::{InfoContext, RedisResult};

use super::commands::COMMANDS;

use crate::domain::event::Counters;

/// Error codes counted separately; anything else counts as `ERR`.
pub const ERROR_CODES: [&str; 15] = [
    "ERR",
    "WRONGTYPE",
    "DUPLICATE",
    "NOT_QUEUED",
    "NOT_READY",
    "NOT_OPEN",
    "SEAT_UNAVAILABLE",
    "SOLD_OUT",
    "NOT_HELD",
    "NOT_OWNER",
    "NO_PASS",
    "LIMIT",
    "TRYAGAIN",
    "READONLY",
    "OOM",
];

/// Log-linear histogram over nanoseconds: 8 sub-buckets per power of two,
/// so any value is off by at most 1/8 (12.5%).
const SUB_BUCKETS: usize = 8;
/// Enough buckets for any u64: the top one starts at 15 * 2^60.
const BUCKETS: usize = 62 * SUB_BUCKETS;

#[derive(Clone, Copy)]
pub struct Histogram {
    counts: [u64; BUCKETS],
    total: u64,
}

impl Histogram {
    const EMPTY: Histogram = Histogram {
        counts: [0; BUCKETS],
        total: 0,
    };

    fn bucket(ns: u64) -> usize {
        if ns < SUB_BUCKETS as u64 {
            return ns as usize;
        }
        let exp = 63 - ns.leading_zeros() as usize; // >= 3
        let sub = ((ns >> (exp - 3)) & 7) as usize;
        (exp - 2) * SUB_BUCKETS + sub
    }

    /// The smallest value that falls in `bucket` (its lower bound).
    fn lower_bound(bucket: usize) -> u64 {
        if bucket >= BUCKETS {
            return u64::MAX;
        }
        if bucket < SUB_BUCKETS {
            return bucket as u64;
        }
        let exp = bucket / SUB_BUCKETS + 2;
        let sub = (bucket % SUB_BUCKETS) as u64;
        (8 + sub) << (exp - 3)
    }

    pub fn record(&mut self, ns: u64) {
        self.counts[Self::bucket(ns)] += 1;
        self.total += 1;
    }

    /// The `q` quantile (0..1) in nanoseconds, as the middle of its bucket.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let low = Self::lower_bound(bucket);
                let high = Self::lower_bound(bucket + 1);
                return low + (high - low) / 2;
            }
        }
        Self::lower_bound(BUCKETS - 1)
    }
}

#[derive(Clone, Copy)]
struct CommandFigures {
    calls: u64,
    errors: [u64; ERROR_CODES.len()],
    latency: Histogram,
}

/// Module-wide totals of what happened to every event, by commands and by
/// the background timer alike.
#[derive(Clone, Copy)]
struct Totals {
    dedupe_hits: u64,
    admitted: u64,
    abandoned: u64,
    holds_expired: u64,
}

/// The background timer's steps (`background.rs`).
#[derive(Clone, Copy)]
struct Background {
    steps: u64,
    max_ns: u64,
}

struct Figures {
    commands: [CommandFigures; COMMANDS.len()],
    totals: Totals,
    background: Background,
}

static FIGURES: Mutex<Figures> = Mutex::new(Figures {
    commands: [CommandFigures {
        calls: 0,
        errors: [0; ERROR_CODES.len()],
        latency: Histogram::EMPTY,
    }; COMMANDS.len()],
    totals: Totals {
        dedupe_hits: 0,
        admitted: 0,
        abandoned: 0,
        holds_expired: 0,
    },
    background: Background {
        steps: 0,
        max_ns: 0,
    },
});

/// Counts one call of `COMMANDS[index]`.
pub fn record_call(index: usize, error_code: Option<&str>, ns: u64) {
    let mut figures = FIGURES.lock();
    let f = &mut figures.commands[index];
    f.calls += 1;
    f.latency.record(ns);
    if let Some(code) = error_code {
        let i = ERROR_CODES.iter().position(|c| *c == code).unwrap_or(0);
        f.errors[i] += 1;
    }
}

/// Adds what one command or step did to an event's counters.
pub fn record_totals(before: &Counters, after: &Counters) {
    let grew = |b: u64, a: u64| a.saturating_sub(b);
    let mut figures = FIGURES.lock();
    let t = &mut figures.totals;
    t.dedupe_hits += grew(before.duplicates, after.duplicates);
    t.admitted += grew(before.admitted, after.admitted);
    t.abandoned += grew(before.abandoned, after.abandoned);
    t.holds_expired += grew(before.holds_expired, after.holds_expired);
}

/// Passes stored in this server's events (live ones, and lapsed ones until
/// their removal, within about a second): changed by every state stored,
/// loaded, copied or freed (possibly on the lazy-free thread), and by every
/// step on a stored state.
static PASSES_STORED: AtomicI64 = AtomicI64::new(0);

pub fn passes_stored(delta: i64) {
    PASSES_STORED.fetch_add(delta, Ordering::Relaxed);
}

/// Counts one background step and how long it held Redis' thread.
pub fn record_background_step(ns: u64) {
    let mut figures = FIGURES.lock();
    let b = &mut figures.background;
    b.steps += 1;
    b.max_ns = b.max_ns.max(ns);
}

fn us(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

/// `INFO tq`: module-wide totals, background work, per-command figures. Field
/// names are flat `key:value` pairs that redis_exporter turns into gauges.
pub fn add_info(ctx: &InfoContext) -> RedisResult<()> {
    let figures = FIGURES.lock();
    let t = figures.totals;
    let b = figures.background;
    let builder = ctx
        .builder()
        .add_section("totals")
        .field("dedupe_hits", t.dedupe_hits)?
        .field("admitted", t.admitted)?
        .field("abandoned", t.abandoned)?
        .field("holds_expired", t.holds_expired)?
        .field(
            "passes_active",
            PASSES_STORED.load(Ordering::Relaxed).max(0),
        )?
        .build_section()?
        .add_section("background")
        .field("background_steps", b.steps)?
        .field("background_step_max_us", us(b.max_ns))?
        .build_section()?;
    let mut section = builder.add_section("commands");
    for (command, f) in COMMANDS.iter().zip(figures.commands.iter()) {
        let name = command.verb();
        section = section
            .field(&format!("{name}_calls"), f.calls)?
            .field(&format!("{name}_failed"), f.errors.iter().sum::<u64>())?;
        for (code, n) in ERROR_CODES.iter().zip(f.errors.iter()) {
            if *n > 0 {
                let code = code.to_ascii_lowercase();
                section = section.field(&format!("{name}_errors_{code}"), *n)?;
            }
        }
        for (label, q) in [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)] {
            section = section.field(
                &format!("{name}_latency_{label}_us"),
                us(f.latency.quantile(q)),
            )?;
        }
    }
    section.build_section()?.build_info()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 40, u64::MAX]) {
            let b = Histogram::bucket(ns);
            assert!(b >= last && b < BUCKETS);
            assert!(Histogram::lower_bound(b) <= ns);
            if b + 1 < BUCKETS {
                assert!(ns < Histogram::lower_bound(b + 1), "{ns}");
            }
            last = b;
        }
    }

    #[test]
    fn quantiles_are_within_an_eighth() {
        let mut h = Histogram::EMPTY;
        for ns in 1..=1000u64 {
            h.record(ns * 1000);
        }
        for (q, exact) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.125, "{q}: {got}");
        }
        assert_eq!(Histogram::EMPTY.quantile(0.5), 0);
    }
}
