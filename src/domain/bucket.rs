//! Admission arithmetic: the token bucket, the measured admission rate and
//! the wait estimate.

use std::collections::VecDeque;

use super::settings::Settings;

/// Width of the admission-rate window.
pub const RATE_WINDOW_S: u64 = 60;

/// Token-bucket state: milli-tokens at a moment. `None` in its place means
/// full (an event starts with a full bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketState {
    pub milli_tokens: u64,
    pub at_ms: u64,
}

/// Admissions per second over the last `RATE_WINDOW_S`, for `eta_ms` and
/// TQ.STATS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admissions {
    /// (unix second, admissions in it), oldest first, within the window.
    pub per_second: VecDeque<(u64, u64)>,
    /// The first admission ever: until the window is full, the rate is
    /// measured over the time admissions have actually run.
    pub first_ms: Option<u64>,
}

impl Admissions {
    pub fn record(&mut self, now_ms: u64) {
        let second = now_ms / 1000;
        self.first_ms.get_or_insert(now_ms);
        // After a clock step back, it counts in the newest second: the log
        // stays in order (a stored log out of order is refused on load).
        match self.per_second.back_mut() {
            Some((s, n)) if *s >= second => *n += 1,
            _ => self.per_second.push_back((second, 1)),
        }
        while self
            .per_second
            .front()
            .is_some_and(|&(s, _)| s < window_start_s(now_ms))
        {
            self.per_second.pop_front();
        }
    }

    /// Admissions per second as of `now_ms`.
    pub fn rate(&self, now_ms: u64) -> f64 {
        let Some(first_ms) = self.first_ms else {
            return 0.0;
        };
        let since = window_start_s(now_ms);
        let count: u64 = self
            .per_second
            .iter()
            .filter(|&&(s, _)| s >= since)
            .map(|&(_, n)| n)
            .sum();
        let span_ms = now_ms
            .saturating_sub(first_ms)
            .clamp(1000, RATE_WINDOW_S * 1000);
        count as f64 * 1000.0 / span_ms as f64
    }
}

/// Milli-tokens available at `now_ms`. Integer milli-tokens keep the bucket
/// exact: `rate` tokens per second is exactly `rate` milli-tokens per ms.
pub fn milli_tokens_now(state: Option<BucketState>, settings: &Settings, now_ms: u64) -> u64 {
    let capacity = settings.burst.saturating_mul(1000);
    match state {
        None => capacity,
        Some(s) => {
            let elapsed = now_ms.saturating_sub(s.at_ms);
            s.milli_tokens
                .saturating_add(elapsed.saturating_mul(settings.rate))
                .min(capacity)
        }
    }
}

pub fn whole_tokens(milli_tokens: u64) -> u64 {
    milli_tokens / 1000
}

/// The unix second where the admission-rate window starts.
pub fn window_start_s(now_ms: u64) -> u64 {
    (now_ms / 1000).saturating_sub(RATE_WINDOW_S - 1)
}

/// Estimated milliseconds until `position` is ready.
///
/// The entry is ready once `position <= tokens`. Each admission ahead of it
/// lowers its position by one but also spends a token, so the gap
/// `position - tokens` closes by one per token *added*, i.e. at the refill
/// rate, but never faster than people ahead actually enter. The measured
/// rate (admissions/s over the last 60 s) captures the latter, so the gap
/// closes at `min(measured, rate)`. Without a measured admission there is
/// no estimate (-1).
pub fn eta_ms(position: u64, whole_tokens: u64, measured_rate: f64, rate: u64) -> i64 {
    if position <= whole_tokens {
        return 0;
    }
    let speed = measured_rate.min(rate as f64);
    if speed <= 0.0 {
        return -1;
    }
    let gap = (position - whole_tokens) as f64;
    (gap * 1000.0 / speed).ceil().min(i64::MAX as f64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(rate: u64, burst: u64) -> Settings {
        Settings {
            rate,
            burst,
            ..Settings::DEFAULT
        }
    }

    #[test]
    fn bucket_starts_full_and_refills_up_to_burst() {
        let s = settings(10, 5);
        assert_eq!(milli_tokens_now(None, &s, 1_000), 5_000);
        let empty = Some(BucketState {
            milli_tokens: 0,
            at_ms: 1_000,
        });
        assert_eq!(milli_tokens_now(empty, &s, 1_000), 0);
        assert_eq!(milli_tokens_now(empty, &s, 1_099), 990);
        assert_eq!(whole_tokens(milli_tokens_now(empty, &s, 1_100)), 1);
        assert_eq!(milli_tokens_now(empty, &s, 9_999_999), 5_000);
        // A clock step backwards never takes tokens away.
        assert_eq!(milli_tokens_now(empty, &s, 500), 0);
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        let s = settings(1_000_000, 1_000_000_000);
        let state = Some(BucketState {
            milli_tokens: 0,
            at_ms: 0,
        });
        assert_eq!(milli_tokens_now(state, &s, u64::MAX), 1_000_000_000_000);
    }

    #[test]
    fn eta_follows_the_slower_of_refill_and_measured_rate() {
        assert_eq!(eta_ms(3, 3, 0.0, 10), 0);
        assert_eq!(eta_ms(4, 3, 0.0, 10), -1);
        // gap 10 at 10/s measured, rate 50: 1 s
        assert_eq!(eta_ms(10, 0, 10.0, 50), 1000);
        // measured above the refill rate: the refill rate bounds it
        assert_eq!(eta_ms(10, 0, 100.0, 5), 2000);
        assert_eq!(eta_ms(1, 0, 3.0, 50), 334);
        assert_eq!(eta_ms(5, 0, 1.0, 0), -1);
    }

    #[test]
    fn window() {
        assert_eq!(window_start_s(100_500), 41);
        assert_eq!(window_start_s(10), 0);
    }

    #[test]
    fn the_rate_is_measured_over_the_time_admissions_have_run() {
        let mut a = Admissions::default();
        assert_eq!(a.rate(5_000), 0.0);
        // 20 admissions over the first 2 s: 10/s, not 20/60.
        for i in 0..20 {
            a.record(100_000 + i * 100);
        }
        assert!((a.rate(102_000) - 10.0).abs() < 1e-9);
        // 59 s in: all 20 still in the window, over the 59 s run so far.
        assert!((a.rate(159_000) - 20.0 / 59.0).abs() < 1e-9);
        // Past the window: nothing.
        assert_eq!(a.rate(200_000), 0.0);
        // Old seconds leave the log as new ones come in.
        a.record(300_000);
        assert_eq!(a.per_second.len(), 1);
    }
}
