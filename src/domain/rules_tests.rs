//! The rules on `Event`, point by point of the contract (COMMANDS.md):
//! positions against a plain list model, duplicates, the token bucket,
//! abandonment, trimming, the seat state machine, the step budget, what a
//! step reports (`removed`, `changed`), the figures, memory, determinism.
//!
//! `Cmd`, `apply` and `random_cmd` are shared with `codec_tests`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;

use super::buyers::Pass;
use super::codec::{decode, encode};
use super::entry_id::EntryId;
use super::error::{TqError, TqResult};
use super::event::{
    Admitted, Draws, Enqueued, Event, PassAction, PassView, PositionInfo, Step, STEP_BUDGET,
};
use super::happenings::Happening;
use super::names::{digest_of, NameDigest};
use super::settings::{Setting, Settings, SettingsChange};

pub(super) const T0: u64 = 1_764_000_000_000;

/// A tiny deterministic generator (fixed seeds, no crate).
#[derive(Clone)]
pub(super) struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn settings(change: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings::DEFAULT;
    change(&mut s);
    s
}

/// Runs one rule at `now` and returns its result and the step.
fn run<T>(e: &mut Event, now: u64, rule: impl FnOnce(&mut Event, &mut Step) -> T) -> (T, Step) {
    let mut step = Step::testing(now);
    let out = rule(e, &mut step);
    (out, step)
}

thread_local! {
    /// The tokens this test joined, by digest (the state keeps only
    /// digests; `tokens_of` names what it finds).
    static TOKENS: std::cell::RefCell<HashMap<NameDigest, String>> = Default::default();
}

fn remember(token: &str) {
    TOKENS.with(|t| {
        t.borrow_mut()
            .insert(digest_of(token.as_bytes()), token.to_string())
    });
}

fn join(e: &mut Event, now: u64, user: &str, token: &str) -> TqResult<Enqueued> {
    remember(token);
    run(e, now, |e, s| {
        e.enqueue(s, user.as_bytes(), token.as_bytes(), None, None)
    })
    .0
}

fn join_dedupe(
    e: &mut Event,
    now: u64,
    token: &str,
    dedupe: &str,
    ttl_s: Option<u64>,
) -> TqResult<Enqueued> {
    remember(token);
    run(e, now, |e, s| {
        e.enqueue(s, b"u", token.as_bytes(), Some(dedupe.as_bytes()), ttl_s)
    })
    .0
}

fn pos(e: &mut Event, now: u64, token: &str) -> TqResult<PositionInfo> {
    run(e, now, |e, s| e.position(s, token.as_bytes())).0
}

/// TQ.ENTER: the position the token had.
fn enter(e: &mut Event, now: u64, token: &str) -> TqResult<u64> {
    run(e, now, |e, s| e.enter(s, token.as_bytes()))
        .0
        .map(|a| a.position_was)
}

fn leave(e: &mut Event, now: u64, token: &str) -> bool {
    run(e, now, |e, s| e.leave(s, token.as_bytes())).0
}

fn hold(e: &mut Event, now: u64, seat: &str, user: &str, ttl_s: Option<u64>) -> TqResult<u64> {
    run(e, now, |e, s| {
        e.hold(s, &[seat.as_bytes()], user.as_bytes(), ttl_s)
    })
    .0
}

fn release(e: &mut Event, now: u64, seat: &str, user: Option<&str>) -> TqResult<u64> {
    run(e, now, |e, s| {
        e.release(s, seat.as_bytes(), user.map(str::as_bytes))
    })
    .0
}

fn confirm(e: &mut Event, now: u64, seat: &str, user: &str) -> TqResult<()> {
    run(e, now, |e, s| {
        e.confirm(s, &[seat.as_bytes()], user.as_bytes())
    })
    .0
}

fn set_inventory(e: &mut Event, now: u64, n: u64) -> Step {
    run(e, now, |e, s| e.set_inventory(s, n)).1
}

fn configure(e: &mut Event, now: u64, values: &[(Setting, u64)]) -> Step {
    let mut change = SettingsChange::default();
    for &(setting, value) in values {
        change.set(setting, value);
    }
    run(e, now, |e, s| e.configure(s, &change)).1
}

/// Brings the event fully up to `now` (as many steps as it takes).
fn settle(e: &mut Event, now: u64) {
    for _ in 0..10_000 {
        if !run(e, now, |e, s| e.advance(s)).0 {
            return;
        }
    }
    panic!("advance never finished");
}

/// Runs a rule that must fail at `now` on an event already brought up to
/// `now`, and checks that it changed nothing: same digest, same stored
/// bytes, `changed` false, no stream entry removed.
fn refused<T: Debug>(
    e: &mut Event,
    now: u64,
    rule: impl FnOnce(&mut Event, &mut Step) -> TqResult<T>,
) -> TqError {
    settle(e, now);
    let (digest, bytes) = (e.digest(), encode(e));
    let (result, step) = run(e, now, rule);
    let err = result.expect_err("the rule should have failed");
    assert_eq!(e.digest(), digest, "{err:?} changed the digest");
    assert!(encode(e) == bytes, "{err:?} changed the stored state");
    assert!(!step.changed, "{err:?} reported a change");
    assert!(step.removed.is_empty(), "{err:?} removed entries");
    err
}

/// The tokens waiting, front first (through the read-only views; each
/// token joined through `join` or `join_dedupe`).
fn tokens_of(e: &Event, now: u64, users: &[&str]) -> Vec<(u64, String)> {
    let token_of = |id: EntryId| {
        let slot = e.queue.in_order().find(|&s| e.queue.entry(s).id == id);
        let digest = e.queue.entry(slot.expect("listed entries wait")).token;
        TOKENS.with(|t| t.borrow()[&digest].clone())
    };
    let mut all: Vec<(u64, String)> = users
        .iter()
        .flat_map(|u| e.user_entries(now, u.as_bytes()))
        .map(|x| (x.position, token_of(x.id)))
        .collect();
    all.sort();
    all
}

/// inventory + held + sold, which the seat rules conserve.
fn seat_total(e: &Event, now: u64) -> u64 {
    let s = e.stats(now);
    s.inventory + s.held + s.sold
}

fn assert_balance(e: &Event, now: u64) {
    let s = e.stats(now);
    assert_eq!(
        s.joined,
        s.waiting + s.admitted + s.abandoned + s.left + s.trimmed,
        "joined = waiting + admitted + abandoned + left + trimmed: {s:?}"
    );
}

// ---- positions ------------------------------------------------------------

/// A model of the bucket: milli-tokens at a moment, `None` full.
struct BucketModel {
    state: Option<(u64, u64)>,
    rate: u64,
    burst: u64,
}

impl BucketModel {
    fn milli(&self, now: u64) -> u64 {
        match self.state {
            None => self.burst * 1000,
            Some((m, at)) => (m + now.saturating_sub(at) * self.rate).min(self.burst * 1000),
        }
    }
}

#[test]
fn positions_are_exact_through_random_joins_leaves_enters_and_trims() {
    let (rate, burst) = (7, 4);
    let mut e = Event::new(settings(|s| {
        s.rate = rate;
        s.burst = burst;
        s.heartbeat_s = 31_536_000;
    }));
    let mut bucket = BucketModel {
        state: None,
        rate,
        burst,
    };
    // (user, token, id) in queue order.
    let mut model: Vec<(String, String, EntryId)> = Vec::new();
    let mut rng = Lcg(7);
    let mut now = T0;
    let (mut admitted, mut trimmed, mut left) = (0, 0, 0);
    for step in 0..4000u32 {
        now += rng.below(40);
        match rng.below(20) {
            0..=9 => {
                let user = format!("u{}", rng.below(6));
                let token = format!("t{step}");
                let got = join(&mut e, now, &user, &token).unwrap();
                model.push((user.clone(), token, got.id));
                assert_eq!(got.position, model.len() as u64);
                let mine = model.iter().filter(|(u, _, _)| *u == user).count();
                assert_eq!(got.user_position, mine as u64);
                assert_eq!(got.id.ms, now);
            }
            10..=12 if !model.is_empty() => {
                let i = rng.below(model.len() as u64) as usize;
                let (_, token, id) = model.remove(i);
                let (gone, s) = run(&mut e, now, |e, s| e.leave(s, token.as_bytes()));
                assert!(gone && s.changed);
                assert_eq!(s.removed, vec![id]);
                left += 1;
            }
            13..=17 if !model.is_empty() => {
                // Mostly near the front, where admission happens.
                let i = rng.below(model.len().min(8) as u64) as usize;
                let token = model[i].1.clone();
                let milli = bucket.milli(now);
                let (result, s) = run(&mut e, now, |e, s| e.enter(s, token.as_bytes()));
                let result = result.map(|a| a.position_was);
                if (i as u64) < milli / 1000 {
                    assert_eq!(result, Ok(i as u64 + 1));
                    assert_eq!(s.removed, vec![model[i].2]);
                    bucket.state = Some((milli - 1000, now));
                    model.remove(i);
                    admitted += 1;
                } else {
                    assert_eq!(result, Err(TqError::NotReady(i as u64 + 1)));
                    assert!(!s.changed && s.removed.is_empty());
                }
            }
            18 => {
                let age = 1 + rng.below(3);
                let min_ms = now - age * 1000;
                let old: Vec<EntryId> = model
                    .iter()
                    .map(|m| m.2)
                    .filter(|id| id.ms < min_ms)
                    .collect();
                let (n, s) = run(&mut e, now, |e, s| e.trim(s, age));
                assert_eq!(n, old.len() as u64);
                assert_eq!(s.removed, old);
                assert_eq!(s.changed, !old.is_empty());
                model.retain(|m| m.2.ms >= min_ms);
                trimmed += old.len() as u64;
            }
            _ => {
                let token = format!("t{}", rng.below(u64::from(step) + 1));
                if !model.iter().any(|m| m.1 == token) {
                    assert_eq!(pos(&mut e, now, &token), Err(TqError::NotQueued));
                    assert!(!leave(&mut e, now, &token));
                }
            }
        }
        assert_eq!(e.waiting(), model.len() as u64);
        if step % 40 == 0 {
            let tokens = bucket.milli(now) / 1000;
            for (i, (user, token, id)) in model.iter().enumerate() {
                let p = pos(&mut e, now, token).unwrap();
                assert_eq!(p.position, i as u64 + 1, "{token}");
                let ahead = model[..i].iter().filter(|(u, _, _)| u == user).count();
                assert_eq!(p.user_position, ahead as u64 + 1);
                assert_eq!(p.ready, (i as u64) < tokens);
                assert_eq!(p.waited_ms, now - id.ms);
            }
            for u in 0..6 {
                let user = format!("u{u}");
                let view = e.user_entries(now, user.as_bytes());
                let expected: Vec<(EntryId, u64)> = model
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| m.0 == user)
                    .map(|(i, m)| (m.2, i as u64 + 1))
                    .collect();
                let got: Vec<(EntryId, u64)> =
                    view.into_iter().map(|x| (x.id, x.position)).collect();
                assert_eq!(got, expected);
            }
            let stats = e.stats(now);
            assert_eq!(stats.waiting, model.len() as u64);
            assert_eq!(
                (stats.admitted, stats.left, stats.trimmed),
                (admitted, left, trimmed)
            );
            assert_balance(&e, now);
        }
    }
    assert!(admitted > 100 && trimmed > 100 && left > 100);
}

#[test]
fn entry_ids_follow_the_clock_and_never_go_back() {
    let mut e = Event::new(Settings::DEFAULT);
    assert_eq!(join(&mut e, T0, "u", "a").unwrap().id, EntryId::new(T0, 0));
    assert_eq!(join(&mut e, T0, "u", "b").unwrap().id, EntryId::new(T0, 1));
    // A clock step backwards keeps ids growing.
    assert_eq!(
        join(&mut e, T0 - 5, "u", "c").unwrap().id,
        EntryId::new(T0, 2)
    );
    assert_eq!(
        join(&mut e, T0 + 1, "u", "d").unwrap().id,
        EntryId::new(T0 + 1, 0)
    );
    // Also after the queue emptied.
    for t in ["a", "b", "c", "d"] {
        assert!(leave(&mut e, T0 + 2, t));
    }
    assert_eq!(
        join(&mut e, T0 + 1, "u", "e").unwrap().id,
        EntryId::new(T0 + 1, 1)
    );
}

// ---- duplicates -----------------------------------------------------------

#[test]
fn a_duplicate_token_changes_nothing_but_the_duplicates_count() {
    let mut e = Event::new(Settings::DEFAULT);
    let first = join(&mut e, T0, "u", "t").unwrap();
    join(&mut e, T0, "v", "other").unwrap();
    let mut expected = e.clone();
    let (result, step) = run(&mut e, T0 + 10, |e, s| {
        e.enqueue(s, b"someone-else", b"t", Some(b"d"), None)
    });
    assert_eq!(result, Err(TqError::Duplicate(first.id.to_string())));
    assert!(step.changed && step.removed.is_empty());
    expected.counters.duplicates += 1;
    assert_eq!(e.digest(), expected.digest());
    assert_eq!(encode(&e), encode(&expected));
    assert_eq!(e.stats(T0 + 10).duplicates, 1);
    // The DEDUPE id of the refused call was not recorded.
    assert!(join_dedupe(&mut e, T0 + 20, "t2", "d", None).is_ok());
    // Once the token left, it may join again.
    assert!(leave(&mut e, T0 + 30, "t"));
    let again = join(&mut e, T0 + 40, "u", "t").unwrap();
    assert_ne!(again.id, first.id);
    assert_eq!(e.stats(T0 + 40).duplicates, 1);
}

#[test]
fn a_dedupe_id_is_a_duplicate_within_its_window_only() {
    let mut e = Event::new(Settings::DEFAULT);
    let first = join_dedupe(&mut e, T0, "t1", "d", None).unwrap();
    // The original left: the id is still remembered for the window.
    assert!(leave(&mut e, T0 + 1, "t1"));
    for (now, token) in [(T0 + 1, "t2"), (T0 + 299_999, "t3")] {
        let mut expected = e.clone();
        settle(&mut expected, now);
        expected.counters.duplicates += 1;
        assert_eq!(
            join_dedupe(&mut e, now, token, "d", Some(1)),
            Err(TqError::Duplicate(first.id.to_string()))
        );
        assert_eq!(e.digest(), expected.digest());
    }
    assert_eq!(e.stats(T0 + 299_999).duplicates, 2);
    assert_eq!(e.waiting(), 0);
    // The default window (dedupe-ttl 300 s) closes.
    let second = join_dedupe(&mut e, T0 + 300_000, "t4", "d", Some(10)).unwrap();
    // A per-call TTL sets the new window.
    assert_eq!(
        join_dedupe(&mut e, T0 + 309_999, "t5", "d", None),
        Err(TqError::Duplicate(second.id.to_string()))
    );
    assert!(join_dedupe(&mut e, T0 + 310_000, "t5", "d", None).is_ok());
    // The event's dedupe-ttl is the default.
    configure(&mut e, T0 + 310_000, &[(Setting::DedupeTtl, 2)]);
    let third = join_dedupe(&mut e, T0 + 310_001, "t6", "other", None).unwrap();
    assert_eq!(
        join_dedupe(&mut e, T0 + 312_000, "t7", "other", None),
        Err(TqError::Duplicate(third.id.to_string()))
    );
    assert!(join_dedupe(&mut e, T0 + 312_001, "t7", "other", None).is_ok());
    assert_eq!(e.stats(T0 + 312_001).duplicates, 4);
}

#[test]
fn a_waiting_token_is_a_duplicate_whatever_its_dedupe_id() {
    let mut e = Event::new(Settings::DEFAULT);
    let first = join_dedupe(&mut e, T0, "t", "d1", None).unwrap();
    let other = join_dedupe(&mut e, T0, "t2", "d2", None).unwrap();
    // The token check comes first and names the token's own entry.
    assert_eq!(
        join_dedupe(&mut e, T0, "t", "d2", None),
        Err(TqError::Duplicate(first.id.to_string()))
    );
    assert_eq!(
        join_dedupe(&mut e, T0, "t3", "d2", None),
        Err(TqError::Duplicate(other.id.to_string()))
    );
}

// ---- token bucket ---------------------------------------------------------

#[test]
fn the_bucket_admits_a_burst_then_refills_at_the_rate() {
    let mut e = Event::new(settings(|s| {
        s.rate = 2;
        s.burst = 3;
    }));
    for i in 0..6 {
        join(&mut e, T0, "u", &format!("t{i}")).unwrap();
    }
    let p = pos(&mut e, T0, "t3").unwrap();
    assert_eq!((p.position, p.ready, p.eta_ms), (4, false, -1));
    assert!(pos(&mut e, T0, "t2").unwrap().ready);
    // NOT_READY carries the position and changes nothing.
    assert_eq!(
        refused(&mut e, T0, |e, s| e.enter(s, b"t3")),
        TqError::NotReady(4)
    );
    // Any ready position may enter, not only the front.
    assert_eq!(enter(&mut e, T0, "t2"), Ok(3));
    assert_eq!(enter(&mut e, T0, "t0"), Ok(1));
    assert_eq!(enter(&mut e, T0, "t1"), Ok(1));
    // Empty: t3 is first but waits for a token, refilled at 2/s.
    assert_eq!(
        refused(&mut e, T0 + 499, |e, s| e.enter(s, b"t3")),
        TqError::NotReady(1)
    );
    let p = pos(&mut e, T0 + 499, "t3").unwrap();
    assert_eq!((p.position, p.ready), (1, false));
    assert!(p.eta_ms > 0);
    let p = pos(&mut e, T0 + 500, "t3").unwrap();
    assert_eq!((p.ready, p.eta_ms), (true, 0));
    assert_eq!(enter(&mut e, T0 + 500, "t3"), Ok(1));
    assert_eq!(enter(&mut e, T0 + 500, "t4"), Err(TqError::NotReady(1)));
    // Refills up to burst only.
    let later = T0 + 100_000;
    assert!(pos(&mut e, later, "t5").unwrap().ready);
    assert_eq!(enter(&mut e, later, "t5"), Ok(2));
    assert_eq!(enter(&mut e, later, "t4"), Ok(1));
    for i in 0..4 {
        join(&mut e, later, "u", &format!("n{i}")).unwrap();
    }
    assert_eq!(enter(&mut e, later, "n3"), Err(TqError::NotReady(4)));
    assert_eq!(enter(&mut e, later, "n0"), Ok(1));
    assert_eq!(e.stats(later).admitted, 7);
    // Entering twice: not waiting any more.
    assert_eq!(
        refused(&mut e, later, |e, s| e.enter(s, b"n0")),
        TqError::NotQueued
    );
}

#[test]
fn the_wait_estimate_follows_the_measured_rate() {
    let mut e = Event::new(settings(|s| {
        s.rate = 10;
        s.burst = 1;
    }));
    for i in 0..30 {
        join(&mut e, T0, "u", &format!("t{i}")).unwrap();
    }
    // One admission per 100 ms for 2 s: 10/s measured.
    let mut now = T0;
    for i in 0..20 {
        assert_eq!(enter(&mut e, now, &format!("t{i}")), Ok(1));
        now += 100;
    }
    let p = pos(&mut e, now - 1, "t29").unwrap();
    assert_eq!(p.position, 10);
    assert!(!p.ready);
    // Gap of 10 at about 10/s.
    assert!((900..=1_200).contains(&p.eta_ms), "{p:?}");
    let stats = e.stats(now - 1);
    assert!(stats.admission_rate > 9.0 && stats.admission_rate < 11.0);
}

#[test]
fn a_reconfiguration_keeps_the_tokens_capped_at_the_new_burst() {
    // A bucket partly spent: 3 of 5 tokens left.
    let mut e = Event::new(settings(|s| {
        s.rate = 1;
        s.burst = 5;
    }));
    for i in 0..8 {
        join(&mut e, T0, "u", &format!("t{i}")).unwrap();
    }
    enter(&mut e, T0, "t0").unwrap();
    enter(&mut e, T0, "t1").unwrap();
    assert!(pos(&mut e, T0, "t4").unwrap().ready); // position 3
    configure(&mut e, T0, &[(Setting::Burst, 2)]);
    assert!(pos(&mut e, T0, "t3").unwrap().ready); // position 2
    assert!(!pos(&mut e, T0, "t4").unwrap().ready);
    // Raising the burst does not add tokens: still 2.
    configure(&mut e, T0, &[(Setting::Burst, 100)]);
    assert!(!pos(&mut e, T0, "t4").unwrap().ready);
    // The rate in force before a change applies up to it.
    configure(&mut e, T0 + 1_000, &[(Setting::Rate, 1_000)]);
    assert!(pos(&mut e, T0 + 1_000, "t4").unwrap().ready); // 3 tokens
    assert!(!pos(&mut e, T0 + 1_000, "t5").unwrap().ready);
    assert!(pos(&mut e, T0 + 1_001, "t5").unwrap().ready);
}

#[test]
fn raising_the_burst_of_a_full_bucket_lets_no_burst_in() {
    let mut e = Event::new(settings(|s| {
        s.rate = 1;
        s.burst = 2;
    }));
    for i in 0..10 {
        join(&mut e, T0, "u", &format!("t{i}")).unwrap();
    }
    // Full (never used): 2 tokens.
    assert!(!pos(&mut e, T0, "t2").unwrap().ready);
    configure(&mut e, T0, &[(Setting::Burst, 1_000)]);
    // Keeps the 2 tokens it holds.
    assert!(pos(&mut e, T0, "t1").unwrap().ready);
    assert!(!pos(&mut e, T0, "t2").unwrap().ready);
    assert_eq!(enter(&mut e, T0, "t2"), Err(TqError::NotReady(3)));
    // And refills from there at the rate.
    assert!(pos(&mut e, T0 + 1_000, "t2").unwrap().ready);
    assert!(!pos(&mut e, T0 + 1_000, "t3").unwrap().ready);
}

// ---- abandonment ----------------------------------------------------------

#[test]
fn an_entry_is_kept_a_full_period_after_its_last_poll_and_gone_by_one_point_one() {
    let hb = 10_000;
    let mut e = Event::new(settings(|s| s.heartbeat_s = 10));
    join(&mut e, T0, "u", "a").unwrap();
    join(&mut e, T0, "u", "b").unwrap();
    // Polls within heartbeat/10 of the recorded beat store nothing.
    for at in [T0, T0 + 1, T0 + 999] {
        let (p, step) = run(&mut e, at, |e, s| e.position(s, b"b"));
        assert_eq!(p.unwrap().position, 2);
        assert!(!step.changed, "a poll at +{} stored something", at - T0);
    }
    // At heartbeat/10 it is recorded.
    let (_, step) = run(&mut e, T0 + 1_000, |e, s| e.position(s, b"b"));
    assert!(step.changed);
    let (_, step) = run(&mut e, T0 + 1_999, |e, s| e.position(s, b"b"));
    assert!(!step.changed);
    let last_poll_b = T0 + 1_999;
    // a: last poll at T0 (its join). Kept through T0 + 1.0 period.
    assert_eq!(tokens_of(&e, T0 + hb, &["u"]).len(), 2);
    assert_eq!(e.stats(T0 + hb).waiting, 2);
    let (_, step) = run(&mut e, T0 + hb, |e, s| e.advance(s));
    assert!(!step.changed && step.removed.is_empty());
    assert_eq!(e.waiting(), 2);
    // Gone by T0 + 1.1 periods, without polling.
    let (_, step) = run(&mut e, T0 + hb + hb / 10, |e, s| e.advance(s));
    assert_eq!(step.removed, vec![EntryId::new(T0, 0)]);
    assert!(step.changed);
    assert_eq!(e.waiting(), 1);
    assert_eq!(e.stats(T0 + hb + hb / 10).abandoned, 1);
    assert_eq!(pos(&mut e, T0 + hb + hb / 10, "a"), Err(TqError::NotQueued));
    // b: kept a full period after its last poll, gone 1.1 periods after.
    let (_, step) = run(&mut e, last_poll_b + hb, |e, s| e.advance(s));
    assert!(step.removed.is_empty());
    assert_eq!(e.user_entries(last_poll_b + hb, b"u").len(), 1);
    let (_, step) = run(&mut e, last_poll_b + hb + hb / 10, |e, s| e.advance(s));
    assert_eq!(step.removed, vec![EntryId::new(T0, 1)]);
    assert_eq!(e.stats(last_poll_b + hb + hb / 10).abandoned, 2);
}

/// Random polls: every entry is still there less than a period after its
/// last poll and gone 1.1 periods after it; the ones there have exact
/// consecutive positions.
#[test]
fn abandonment_stays_within_one_and_one_point_one_periods_through_random_polls() {
    for heartbeat_s in [1u64, 3, 7] {
        let hb = heartbeat_s * 1000;
        let mut e = Event::new(settings(|s| s.heartbeat_s = heartbeat_s));
        // token -> (user, last poll or join)
        let mut polls: BTreeMap<String, (String, u64)> = BTreeMap::new();
        let mut gone: BTreeSet<String> = BTreeSet::new();
        let mut rng = Lcg(heartbeat_s);
        let mut now = T0;
        let users = ["u0", "u1", "u2"];
        for step in 0..3000u64 {
            now += rng.below(hb / 20);
            if rng.chance(20) {
                let user = users[rng.below(3) as usize].to_string();
                let token = format!("t{step}");
                join(&mut e, now, &user, &token).unwrap();
                polls.insert(token, (user, now));
            } else if !polls.is_empty() {
                // Polls: one of a few favourites, often.
                let i = rng.below(polls.len().min(12) as u64) as usize;
                let token = polls.keys().nth(i).unwrap().clone();
                let last = polls[&token].1;
                match pos(&mut e, now, &token) {
                    Ok(_) => {
                        assert!(now < last + hb + hb / 10, "{token} still there");
                        polls.get_mut(&token).unwrap().1 = now;
                    }
                    Err(TqError::NotQueued) => {
                        assert!(now >= last + hb, "{token} dropped early");
                        polls.remove(&token);
                        gone.insert(token);
                    }
                    Err(other) => panic!("{other:?}"),
                }
            }
            if step % 10 == 0 {
                let there = tokens_of(&e, now, &users);
                let positions: Vec<u64> = there.iter().map(|(p, _)| *p).collect();
                let expected: Vec<u64> = (1..=there.len() as u64).collect();
                assert_eq!(positions, expected);
                let names: BTreeSet<&String> = there.iter().map(|(_, t)| t).collect();
                for (token, (_, last)) in &polls {
                    if now < last + hb {
                        assert!(names.contains(token), "{token} dropped early");
                    }
                    if now >= last + hb + hb / 10 {
                        assert!(!names.contains(token), "{token} kept too long");
                    }
                }
                let stats = e.stats(now);
                assert_eq!(stats.waiting, there.len() as u64);
                assert_balance(&e, now);
            }
        }
        assert!(gone.len() > 50, "{}", gone.len());
    }
}

#[test]
fn user_and_stats_leave_out_lapsed_entries_before_they_are_removed() {
    let mut e = Event::new(settings(|s| s.heartbeat_s = 10));
    for (user, token) in [("u", "a"), ("v", "x"), ("u", "b"), ("u", "c"), ("v", "y")] {
        join(&mut e, T0, user, token).unwrap();
    }
    pos(&mut e, T0 + 9_000, "c").unwrap();
    pos(&mut e, T0 + 9_000, "y").unwrap();
    let later = T0 + 11_000;
    let before = (e.digest(), encode(&e));
    let view = e.user_entries(later, b"u");
    assert_eq!(view.len(), 1);
    // c, the only one of u's entries still counting.
    assert_eq!((view[0].id, view[0].position), (EntryId::new(T0, 3), 1));
    let view = e.user_entries(later, b"v");
    assert_eq!((view.len(), view[0].position), (1, 2));
    let stats = e.stats(later);
    assert_eq!((stats.waiting, stats.abandoned, stats.joined), (2, 3, 5));
    assert_balance(&e, later);
    // The read-only views wrote nothing.
    assert_eq!((e.digest(), encode(&e)), before);
    assert_eq!(e.waiting(), 5);
    // A step then removes them, with the same figures.
    let (_, step) = run(&mut e, later, |e, s| e.advance(s));
    assert_eq!(step.removed.len(), 3);
    assert_eq!(e.stats(later), stats);
    assert_eq!(e.waiting(), 2);
}

#[test]
fn resume_after_a_restart_gives_lapsed_fans_a_full_period() {
    let hb = 10_000;
    let mut e = Event::new(settings(|s| s.heartbeat_s = 10));
    join(&mut e, T0, "u", "old").unwrap();
    join(&mut e, T0 + 5_000, "u", "fresh").unwrap();
    // Saved, and loaded again an hour later.
    let restart = T0 + 3_600_000;
    let mut loaded = decode(&encode(&e)).unwrap();
    loaded.restarted = true;
    let (_, step) = run(&mut loaded, restart, |e, s| e.resume(s));
    assert!(step.changed && step.removed.is_empty());
    assert!(!loaded.restarted);
    // Nobody abandoned for the downtime.
    let stats = loaded.stats(restart);
    assert_eq!((stats.waiting, stats.abandoned), (2, 0));
    assert_eq!(tokens_of(&loaded, restart + hb, &["u"]).len(), 2);
    let (_, step) = run(&mut loaded, restart + hb, |e, s| e.advance(s));
    assert!(step.removed.is_empty());
    // A full period from the load, then abandoned as usual.
    let (_, step) = run(&mut loaded, restart + hb + hb / 10, |e, s| e.advance(s));
    assert_eq!(step.removed.len(), 2);
    // Resuming with nobody lapsed changes nothing.
    let mut again = decode(&encode(&e)).unwrap();
    let (_, step) = run(&mut again, T0 + 10_999, |e, s| e.resume(s));
    assert!(!step.changed);
    assert_eq!(again.digest(), e.digest());
}

// ---- trim -----------------------------------------------------------------

#[test]
fn trim_maxage_removes_entries_that_joined_more_than_that_ago() {
    let mut e = Event::new(Settings::DEFAULT);
    join(&mut e, T0, "u", "a").unwrap();
    join(&mut e, T0 + 999, "u", "b").unwrap();
    join(&mut e, T0 + 1_000, "u", "c").unwrap();
    join(&mut e, T0 + 1_000, "u", "d").unwrap();
    join(&mut e, T0 + 5_000, "u", "e").unwrap();
    // MAXAGE 4 at T0+5000: ids below T0+1000-0 go.
    let (n, step) = run(&mut e, T0 + 5_000, |e, s| e.trim(s, 4));
    assert_eq!(n, 2);
    assert_eq!(
        step.removed,
        vec![EntryId::new(T0, 0), EntryId::new(T0 + 999, 0)]
    );
    assert!(step.changed);
    assert_eq!(pos(&mut e, T0 + 5_000, "c").unwrap().position, 1);
    let (n, step) = run(&mut e, T0 + 5_000, |e, s| e.trim(s, 4));
    assert_eq!(n, 0);
    assert!(!step.changed && step.removed.is_empty());
    let (n, _) = run(&mut e, T0 + 6_001, |e, s| e.trim(s, 5));
    assert_eq!(n, 2);
    let stats = e.stats(T0 + 6_001);
    assert_eq!((stats.trimmed, stats.waiting), (4, 1));
    assert_balance(&e, T0 + 6_001);
}

// ---- seats ----------------------------------------------------------------

#[test]
fn the_seat_state_machine_and_its_errors() {
    let mut e = Event::new(Settings::DEFAULT);
    set_inventory(&mut e, T0, 3);
    assert_eq!(hold(&mut e, T0, "A1", "u1", Some(10)), Ok(2));
    let err = refused(&mut e, T0, |e, s| e.hold(s, &[&b"A1"[..]], b"u2", Some(10)));
    assert_eq!(err, TqError::SeatUnavailable(b"A1".to_vec()));
    let err = refused(&mut e, T0, |e, s| e.release(s, b"A1", Some(b"u2")));
    assert_eq!(err, TqError::NotOwner(b"A1".to_vec()));
    let err = refused(&mut e, T0, |e, s| e.confirm(s, &[&b"A1"[..]], b"u2"));
    assert_eq!(err, TqError::NotOwner(b"A1".to_vec()));
    let err = refused(&mut e, T0, |e, s| e.confirm(s, &[&b"A9"[..]], b"u1"));
    assert_eq!(err, TqError::NotHeld(b"A9".to_vec()));
    let err = refused(&mut e, T0, |e, s| e.release(s, b"A9", None));
    assert_eq!(err, TqError::NotHeld(b"A9".to_vec()));
    assert_eq!(confirm(&mut e, T0, "A1", "u1"), Ok(()));
    let view = e.seat(T0, b"A1");
    assert_eq!(
        (view.state, view.user.as_deref(), view.ttl_ms),
        ("sold", Some(&b"u1"[..]), -1)
    );
    let rules: [fn(&mut Event, &mut Step) -> TqResult<()>; 3] = [
        |e, s| e.release(s, b"A1", None).map(drop),
        |e, s| e.release(s, b"A1", Some(b"u1")).map(drop),
        |e, s| e.confirm(s, &[&b"A1"[..]], b"u1"),
    ];
    for rule in rules {
        assert_eq!(refused(&mut e, T0, rule), TqError::NotHeld(b"A1".to_vec()));
    }
    let err = refused(&mut e, T0, |e, s| e.hold(s, &[&b"A1"[..]], b"u1", None));
    assert_eq!(err, TqError::SeatUnavailable(b"A1".to_vec()));
    assert_eq!(hold(&mut e, T0, "A2", "u3", None), Ok(1));
    assert_eq!(hold(&mut e, T0, "A3", "u3", None), Ok(0));
    assert_eq!(
        refused(&mut e, T0, |e, s| e.hold(s, &[&b"A4"[..]], b"u3", None)),
        TqError::SoldOut
    );
    let view = e.seat(T0 + 1, b"A2");
    assert_eq!(
        (view.state, view.user.as_deref(), view.ttl_ms),
        ("held", Some(&b"u3"[..]), 299_999)
    );
    assert_eq!(release(&mut e, T0, "A2", Some("u3")), Ok(1));
    assert_eq!(release(&mut e, T0, "A3", None), Ok(2));
    assert_eq!(
        refused(&mut e, T0, |e, s| e.release(s, b"A2", None)),
        TqError::NotHeld(b"A2".to_vec())
    );
    let view = e.seat(T0, b"A2");
    assert_eq!(
        (view.state, view.user, view.ttl_ms),
        ("available", None, -1)
    );
    let stats = e.stats(T0);
    assert_eq!((stats.inventory, stats.held, stats.sold), (2, 0, 1));
    // Before any SET, and with nothing left: SOLD_OUT.
    let mut fresh = Event::new(Settings::DEFAULT);
    assert_eq!(
        refused(&mut fresh, T0, |e, s| e.hold(s, &[&b"A1"[..]], b"u", None)),
        TqError::SoldOut
    );
}

#[test]
fn inventory_set_changes_only_when_it_changes_something() {
    let mut e = Event::new(Settings::DEFAULT);
    // The first SET, even of 0, is recorded (the inventory was set).
    assert!(set_inventory(&mut e, T0, 0).changed);
    assert!(!set_inventory(&mut e, T0, 0).changed);
    assert!(set_inventory(&mut e, T0, 5).changed);
    let digest = e.digest();
    assert!(!set_inventory(&mut e, T0 + 1, 5).changed);
    assert_eq!(e.digest(), digest);
    assert_eq!(e.inventory(T0 + 1), 5);
}

#[test]
fn an_expired_hold_gives_the_seat_back_exactly_once() {
    let mut e = Event::new(Settings::DEFAULT);
    set_inventory(&mut e, T0, 1);
    assert_eq!(hold(&mut e, T0, "A1", "u1", Some(5)), Ok(0));
    let view = e.seat(T0 + 4_999, b"A1");
    assert_eq!((view.state, view.ttl_ms), ("held", 1));
    assert_eq!(e.inventory(T0 + 4_999), 0);
    // From the millisecond it expires, every view sees it back.
    let at = T0 + 5_000;
    let view = e.seat(at, b"A1");
    assert_eq!(
        (view.state, view.user, view.ttl_ms),
        ("available", None, -1)
    );
    assert_eq!(e.inventory(at), 1);
    let stats = e.stats(at);
    assert_eq!(
        (stats.inventory, stats.held, stats.holds_expired),
        (1, 0, 1)
    );
    // ... and every rule: an expired hold is NOT_HELD.
    let mut copy = e.clone();
    let (result, step) = run(&mut copy, at, |e, s| e.confirm(s, &[&b"A1"[..]], b"u1"));
    assert_eq!(result, Err(TqError::NotHeld(b"A1".to_vec())));
    assert!(step.changed, "the expiry itself was stored");
    assert_eq!(
        refused(&mut e, at, |e, s| e.release(s, b"A1", Some(b"u1"))),
        TqError::NotHeld(b"A1".to_vec())
    );
    assert_eq!(e.stats(at), stats);
    assert_eq!(
        refused(&mut e, at + 1_000, |e, s| e.confirm(
            s,
            &[&b"A1"[..]],
            b"u1"
        )),
        TqError::NotHeld(b"A1".to_vec())
    );
    assert_eq!(e.stats(at + 1_000).holds_expired, 1);
    assert_eq!(hold(&mut e, at + 1_000, "A1", "u2", None), Ok(0));
    assert_eq!(seat_total(&e, at + 1_000), 1);
}

#[test]
fn random_seat_operations_conserve_inventory_held_and_sold() {
    let mut e = Event::new(settings(|s| s.hold_ttl_s = 2));
    let mut rng = Lcg(11);
    let mut now = T0;
    set_inventory(&mut e, now, 20);
    let mut sold_to: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut errors: HashMap<&'static str, u32> = HashMap::new();
    for _ in 0..6000 {
        now += rng.below(300);
        let seat = format!("S{}", rng.below(30));
        let user = format!("u{}", rng.below(4));
        let ttl = if rng.chance(50) {
            None
        } else {
            Some(1 + rng.below(3))
        };
        let before_view = e.seat(now, seat.as_bytes());
        let before_inventory = e.inventory(now);
        let mut copy = e.clone();
        settle(&mut copy, now);
        let digest = copy.digest();
        let result = match rng.below(5) {
            0 | 1 => hold(&mut e, now, &seat, &user, ttl).map(|_| ()),
            2 => release(&mut e, now, &seat, Some(&user)).map(|_| ()),
            3 => release(&mut e, now, &seat, None).map(|_| ()),
            _ => confirm(&mut e, now, &seat, &user),
        };
        match &result {
            Ok(()) => {
                let view = e.seat(now, seat.as_bytes());
                if view.state == "sold" {
                    let user = view.user.unwrap();
                    if let Some(first) = sold_to.insert(seat.clone().into_bytes(), user.clone()) {
                        assert_eq!(first, user, "a seat was sold twice");
                    }
                }
            }
            Err(err) => {
                *errors.entry(err.code()).or_default() += 1;
                assert_eq!(e.digest(), digest, "{err:?} changed something");
                assert_eq!(e.seat(now, seat.as_bytes()), before_view);
                assert_eq!(e.inventory(now), before_inventory);
                match err {
                    TqError::SoldOut => assert_eq!(before_inventory, 0),
                    TqError::SeatUnavailable(s) | TqError::NotHeld(s) | TqError::NotOwner(s) => {
                        assert_eq!(s, seat.as_bytes())
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(seat_total(&e, now), 20);
        assert_eq!(
            e.stats(now).sold,
            sold_to.len() as u64,
            "sold counts each seat once"
        );
    }
    let stats = e.stats(now);
    assert!(stats.sold > 0 && stats.holds_expired > 0);
    for code in ["SOLD_OUT", "SEAT_UNAVAILABLE", "NOT_HELD", "NOT_OWNER"] {
        assert!(
            errors.get(code).copied().unwrap_or(0) > 10,
            "{code}: {errors:?}"
        );
    }
}

// ---- step budget ----------------------------------------------------------

#[test]
fn a_crowd_that_lapses_at_once_leaves_over_several_steps() {
    // They join over less than a period, so none lapses while others join.
    let mut e = Event::new(settings(|s| s.heartbeat_s = 10));
    let n = STEP_BUDGET + STEP_BUDGET / 2;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            join(&mut e, T0 + i as u64, "u", &format!("t{i}"))
                .unwrap()
                .id,
        );
    }
    let now = T0 + n as u64 + 11_000;
    assert_eq!(e.stats(now).waiting, 0);
    assert_eq!(e.stats(now).abandoned, n as u64);
    let (more, step) = run(&mut e, now, |e, s| e.advance(s));
    assert!(more);
    assert_eq!(step.removed, ids[..STEP_BUDGET]);
    let (more, step) = run(&mut e, now, |e, s| e.advance(s));
    assert!(!more);
    assert_eq!(step.removed, ids[STEP_BUDGET..]);
    let (more, step) = run(&mut e, now, |e, s| e.advance(s));
    assert!(!more && !step.changed && step.removed.is_empty());
    assert_eq!(e.stats(now).abandoned, n as u64);
    assert_eq!(e.waiting(), 0);
}

#[test]
fn the_step_budget_never_splits_a_millisecond() {
    let mut e = Event::new(settings(|s| s.heartbeat_s = 1));
    let mut ids = Vec::new();
    for (ms, count) in [(0, STEP_BUDGET - 10), (1, 100), (2, 50)] {
        for i in 0..count {
            ids.push(
                join(&mut e, T0 + ms, "u", &format!("t{ms}-{i}"))
                    .unwrap()
                    .id,
            );
        }
    }
    let now = T0 + 60_000;
    let (more, step) = run(&mut e, now, |e, s| e.advance(s));
    assert!(more);
    assert_eq!(step.removed, ids[..STEP_BUDGET + 90]);
    let (more, step) = run(&mut e, now, |e, s| e.advance(s));
    assert!(!more);
    assert_eq!(step.removed.len(), 50);
    // All in one millisecond: all at once.
    let mut e = Event::new(settings(|s| s.heartbeat_s = 1));
    for i in 0..STEP_BUDGET + 10 {
        join(&mut e, T0, "u", &format!("t{i}")).unwrap();
    }
    let (more, step) = run(&mut e, now, |e, s| e.advance(s));
    assert!(!more);
    assert_eq!(step.removed.len(), STEP_BUDGET + 10);
}

#[test]
fn a_crowd_of_holds_that_expire_at_once_comes_back_over_several_steps() {
    let mut e = Event::new(Settings::DEFAULT);
    let n = STEP_BUDGET + STEP_BUDGET / 3;
    set_inventory(&mut e, T0, n as u64 + 5);
    for i in 0..n {
        hold(&mut e, T0 + i as u64, &format!("S{i:05}"), "u", Some(10)).unwrap();
    }
    let now = T0 + n as u64 + 10_000;
    assert_eq!(e.inventory(now), n as u64 + 5);
    let expected = e.stats(now);
    assert_eq!((expected.held, expected.holds_expired), (0, n as u64));
    let (more, step) = run(&mut e, now, |e, s| e.advance(s));
    assert!(more && step.changed && step.removed.is_empty());
    assert_eq!(e.counters.holds_expired, STEP_BUDGET as u64);
    assert_eq!(e.stats(now), expected);
    let (more, _) = run(&mut e, now, |e, s| e.advance(s));
    assert!(!more);
    assert_eq!(e.counters.holds_expired, n as u64);
    assert_eq!(e.counters.inventory, n as u64 + 5);
    assert_eq!(e.stats(now), expected);
    assert_eq!(e.seats.held(), 0);
}

/// More lapsed than two steps remove: the ones still stored must already
/// act as gone for every rule, as they do for the read-only views.
#[test]
fn lapsed_entries_still_stored_act_as_gone() {
    let mut e = Event::new(settings(|s| s.heartbeat_s = 30));
    let n = 6 * STEP_BUDGET;
    for i in 0..n {
        join(&mut e, T0 + i as u64, "u", &format!("t{i}")).unwrap();
    }
    let now = T0 + n as u64 + 33_000;
    let token = |back: usize| format!("t{}", n - back);
    assert_eq!(pos(&mut e, now, &token(1)), Err(TqError::NotQueued));
    assert_eq!(enter(&mut e, now, &token(2)), Err(TqError::NotQueued));
    assert!(!leave(&mut e, now, &token(3)));
    assert!(join(&mut e, now, "u", &token(4)).is_ok());
    assert!(e.waiting() > 1, "lapsed entries are still stored");
    assert_eq!(e.user_entries(now, b"u").len(), 1);
    settle(&mut e, now);
    let stats = e.stats(now);
    assert_eq!(
        (stats.waiting, stats.abandoned, stats.left),
        (1, n as u64, 0)
    );
    assert_balance(&e, now);
}

/// Known gap, not fixed: while lapsed entries are still stored (more were
/// due than the steps so far removed), the positions of the others still
/// count them (POSITION, ENTER's NOT_READY, ENQUEUE's reply), unlike
/// TQ.USER and TQ.STATS. Fixing it costs a scan of the lapsed run per
/// command during the catch-up.
#[test]
#[ignore = "known gap: positions count lapsed entries beyond the step budget"]
fn positions_leave_out_lapsed_entries_still_stored() {
    let mut e = Event::new(settings(|s| s.heartbeat_s = 30));
    let n = 3 * STEP_BUDGET;
    for i in 0..n {
        join(&mut e, T0 + i as u64, "u", &format!("t{i}")).unwrap();
    }
    let now = T0 + n as u64 + 33_000;
    let got = join(&mut e, now, "u", "new").unwrap();
    assert_eq!((got.position, got.user_position), (1, 1));
    assert_eq!(pos(&mut e, now, "new").unwrap().position, 1);
}

/// The same for holds: an expired hold is NOT_HELD, and its seat can be
/// held again, even while more holds are due than two steps give back.
#[test]
fn expired_holds_still_stored_act_as_gone() {
    let mut e = Event::new(Settings::DEFAULT);
    let n = 6 * STEP_BUDGET;
    set_inventory(&mut e, T0, n as u64);
    for i in 0..n {
        hold(&mut e, T0 + i as u64, &format!("S{i:05}"), "u", Some(30)).unwrap();
    }
    let now = T0 + n as u64 + 30_000;
    let seat = |back: usize| format!("S{:05}", n - back);
    assert_eq!(
        confirm(&mut e, now, &seat(1), "u"),
        Err(TqError::NotHeld(seat(1).into_bytes()))
    );
    assert_eq!(
        release(&mut e, now, &seat(2), Some("u")),
        Err(TqError::NotHeld(seat(2).into_bytes()))
    );
    let left = hold(&mut e, now, &seat(3), "v", None).unwrap();
    assert!(e.seats.held() > 1, "expired holds are still stored");
    // The reply counts every seat back, stored or not yet.
    assert_eq!(left, n as u64 - 1);
    assert_eq!(e.inventory(now), n as u64 - 1);
    assert_eq!(release(&mut e, now, &seat(3), None), Ok(n as u64));
    assert_eq!(hold(&mut e, now, &seat(3), "v", None), Ok(n as u64 - 1));
    let view = e.seat(now, seat(3).as_bytes());
    assert_eq!(
        (view.state, view.user.as_deref()),
        ("held", Some(&b"v"[..]))
    );
    settle(&mut e, now);
    let stats = e.stats(now);
    assert_eq!(
        (stats.held, stats.sold, stats.holds_expired),
        (1, 0, n as u64)
    );
    assert_eq!(seat_total(&e, now), n as u64);
}

// ---- what a step reports --------------------------------------------------

type Check = Box<dyn Fn(&mut Event, &mut Step)>;

fn check(f: impl Fn(&mut Event, &mut Step) + 'static) -> Check {
    Box::new(f)
}

#[test]
fn commands_that_change_nothing_report_no_change() {
    let mut e = Event::new(settings(|s| s.heartbeat_s = 10));
    join(&mut e, T0, "u", "a").unwrap();
    enter(&mut e, T0, "a").unwrap();
    join(&mut e, T0, "u", "b").unwrap();
    set_inventory(&mut e, T0, 3);
    hold(&mut e, T0, "A1", "u", None).unwrap();
    let now = T0 + 500;
    let digest = e.digest();
    let checks: Vec<(&str, Check)> = vec![
        ("LEAVE unknown", check(|e, s| assert!(!e.leave(s, b"zz")))),
        ("LEAVE admitted", check(|e, s| assert!(!e.leave(s, b"a")))),
        (
            "POSITION within the beat step",
            check(|e, s| assert_eq!(e.position(s, b"b").unwrap().position, 1)),
        ),
        (
            "INVENTORY SET same",
            check(|e, s| assert_eq!(e.set_inventory(s, 2), 2)),
        ),
        ("TRIM nothing", check(|e, s| assert_eq!(e.trim(s, 100), 0))),
        ("ADVANCE nothing due", check(|e, s| assert!(!e.advance(s)))),
        (
            "CONFIG same values",
            check(|e, s| {
                let mut change = SettingsChange::default();
                change.set(Setting::Rate, 50);
                change.set(Setting::Burst, 500);
                change.set(Setting::Heartbeat, 10);
                e.configure(s, &change).unwrap()
            }),
        ),
        (
            "CONFIG nothing",
            check(|e, s| e.configure(s, &SettingsChange::default()).unwrap()),
        ),
    ];
    for (what, check) in &checks {
        let (_, step) = run(&mut e, now, |e, s| check(e, s));
        assert!(!step.changed, "{what} reported a change");
        assert!(step.removed.is_empty(), "{what}");
        assert_eq!(e.digest(), digest, "{what} changed the state");
    }
    // The same after time passed since the bucket was last used.
    let later = T0 + 5_000;
    pos(&mut e, later, "b").unwrap();
    let digest = e.digest();
    for (what, check) in &checks {
        let (_, step) = run(&mut e, later + 1, |e, s| check(e, s));
        assert!(!step.changed, "{what} reported a change later");
        assert_eq!(e.digest(), digest, "{what} changed the state later");
    }
    // And each that does change something says so.
    let changes: Vec<(&str, Check)> = vec![
        ("LEAVE", check(|e, s| assert!(e.leave(s, b"b")))),
        (
            "ENQUEUE",
            check(|e, s| {
                e.enqueue(s, b"u", b"c", None, None).unwrap();
            }),
        ),
        (
            "INVENTORY SET",
            check(|e, s| assert_eq!(e.set_inventory(s, 7), 7)),
        ),
        (
            "HOLD",
            check(|e, s| assert!(e.hold(s, &[&b"A2"[..]], b"u", None).is_ok())),
        ),
        (
            "RELEASE",
            check(|e, s| assert!(e.release(s, b"A2", None).is_ok())),
        ),
        (
            "CONFIRM",
            check(|e, s| e.confirm(s, &[&b"A1"[..]], b"u").unwrap()),
        ),
        (
            "CONFIG",
            check(|e, s| {
                let mut change = SettingsChange::default();
                change.set(Setting::HoldTtl, 9);
                e.configure(s, &change).unwrap()
            }),
        ),
    ];
    for (what, change) in &changes {
        let digest = e.digest();
        let (_, step) = run(&mut e, later + 2, |e, s| change(e, s));
        assert!(step.changed, "{what} reported no change");
        assert_ne!(e.digest(), digest, "{what} changed nothing");
    }
}

#[test]
fn step_removed_lists_exactly_the_entries_that_left() {
    let mut e = Event::new(settings(|s| {
        s.heartbeat_s = 5;
        s.burst = 1;
        s.rate = 0;
    }));
    let mut rng = Lcg(3);
    let mut now = T0;
    let mut waiting: BTreeMap<EntryId, String> = BTreeMap::new();
    let mut next = 0u64;
    for _ in 0..5000 {
        now += rng.below(200);
        // Which ids wait, through the views.
        let before: BTreeSet<EntryId> = ["u0", "u1"]
            .iter()
            .flat_map(|u| e.user_entries(now, u.as_bytes()))
            .map(|x| x.id)
            .chain(
                // lapsed but stored ones leave too
                waiting.keys().copied(),
            )
            .collect();
        let token = match rng.below(3) {
            0 => {
                next += 1;
                format!("t{next}")
            }
            _ => format!("t{}", next.saturating_sub(rng.below(10))),
        };
        let step = match rng.below(6) {
            0 | 1 => {
                let user = if rng.chance(50) { "u0" } else { "u1" };
                let (r, s) = run(&mut e, now, |e, s| {
                    e.enqueue(s, user.as_bytes(), token.as_bytes(), None, None)
                });
                if let Ok(got) = r {
                    waiting.insert(got.id, token.clone());
                }
                s
            }
            2 => run(&mut e, now, |e, s| e.position(s, token.as_bytes())).1,
            3 => run(&mut e, now, |e, s| e.enter(s, token.as_bytes())).1,
            4 => run(&mut e, now, |e, s| e.leave(s, token.as_bytes())).1,
            _ => run(&mut e, now, |e, s| e.trim(s, 1 + rng.below(5))).1,
        };
        let mut removed = step.removed.clone();
        removed.sort();
        let unique: BTreeSet<EntryId> = removed.iter().copied().collect();
        assert_eq!(unique.len(), removed.len(), "an id removed twice");
        for id in &removed {
            assert!(before.contains(id), "{id} was not stored");
            waiting.remove(id);
        }
        // What is left is exactly what is stored.
        let stored: BTreeSet<EntryId> = e.queue.in_order().map(|s| e.queue.entry(s).id).collect();
        assert_eq!(stored, waiting.keys().copied().collect());
        if !removed.is_empty() {
            assert!(step.changed);
        }
    }
}

// ---- figures and memory ---------------------------------------------------

#[test]
fn joined_is_waiting_plus_every_way_out_after_a_random_mix() {
    let mut e = Event::new(settings(|s| {
        s.heartbeat_s = 3;
        s.rate = 20;
        s.burst = 5;
        s.hold_ttl_s = 2;
        s.dedupe_ttl_s = 2;
    }));
    let mut rng = Lcg(99);
    let mut now = T0;
    for _ in 0..20_000 {
        now += rng.below(60);
        let cmd = random_cmd(&mut rng);
        apply(&mut e, now, &cmd);
        assert_balance(&e, now);
        assert_eq!(
            seat_total(&e, now),
            e.counters.inventory + e.seats.held() + e.counters.sold
        );
    }
    let s = e.stats(now);
    assert!(
        s.admitted > 0 && s.abandoned > 0 && s.left > 0 && s.trimmed > 0,
        "{s:?}"
    );
}

#[test]
fn memory_goes_back_to_nothing_once_everyone_left() {
    let mut e = Event::new(settings(|s| {
        s.heartbeat_s = 30;
        s.rate = 1_000;
        s.burst = 1_000;
    }));
    let empty = e.memory_usage();
    assert_eq!(empty, 0);
    let mut rng = Lcg(5);
    let mut now = T0;
    let n = 20_000;
    set_inventory(&mut e, now, 100);
    for i in 0..n {
        now += rng.below(3);
        let token = format!("token-{i}-{}", "x".repeat(rng.below(40) as usize));
        let user = format!("user-{}", rng.below(500));
        run(&mut e, now, |e, s| {
            e.enqueue(
                s,
                user.as_bytes(),
                token.as_bytes(),
                Some(token.as_bytes()),
                Some(60),
            )
            .unwrap()
        });
        if i % 200 == 0 {
            hold(&mut e, now, &format!("S{i}"), &user, Some(10)).unwrap();
        }
    }
    let peak = e.memory_usage();
    assert!(peak > n * 50, "{peak}");
    // Everyone leaves, one way or another.
    let tokens: Vec<Vec<u8>> = e
        .queue
        .in_order()
        .map(|s| e.queue.entry(s).token.to_vec())
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        now += 1;
        match i % 4 {
            0 => drop(run(&mut e, now, |e, s| e.leave(s, token))),
            1 => drop(run(&mut e, now, |e, s| e.enter(s, token))),
            _ => {}
        }
    }
    run(&mut e, now, |e, s| e.trim(s, 5));
    // The rest lapses, and every DEDUPE window and hold closes.
    settle(&mut e, now + 120_000);
    assert_eq!(e.waiting(), 0);
    assert!(e.dedupe.is_empty());
    assert_eq!(e.queue.memory_usage(), 0);
    assert_eq!(e.dedupe.memory_usage(), 0);
    assert_eq!(e.seats.memory_usage(), 0);
    // Only the one-minute admission log may keep a little.
    assert!(e.memory_usage() <= 64 * 16, "{}", e.memory_usage());
    assert_balance(&e, now + 120_000);
}

// ---- determinism ----------------------------------------------------------

/// A command of the contract, for random sequences.
#[derive(Debug, Clone)]
pub(super) enum Cmd {
    Enqueue {
        user: u64,
        token: u64,
        dedupe: Option<u64>,
        ttl_s: Option<u64>,
    },
    Position(u64),
    Enter(u64),
    Leave(u64),
    Trim(u64),
    SetInventory(u64),
    Hold {
        seat: u64,
        user: u64,
        ttl_s: Option<u64>,
    },
    Release {
        seat: u64,
        user: Option<u64>,
    },
    Confirm {
        seat: u64,
        user: u64,
    },
    Configure(Vec<(Setting, u64)>),
    /// TQ.CONFIG OPENS-AT, this many ms after now.
    OpensAt(u64),
    Advance,
    User(u64),
    Stats,
    Seat(u64),
    Inventory,
}

pub(super) fn random_cmd(rng: &mut Lcg) -> Cmd {
    let token = rng.below(64);
    let user = rng.below(5);
    let seat = rng.below(24);
    let ttl = |rng: &mut Lcg| rng.chance(50).then(|| 1 + rng.below(4));
    match rng.below(41) {
        0..=9 => Cmd::Enqueue {
            user,
            token,
            dedupe: rng.chance(40).then(|| rng.below(16)),
            ttl_s: ttl(rng),
        },
        10..=15 => Cmd::Position(token),
        16..=19 => Cmd::Enter(token),
        20..=21 => Cmd::Leave(token),
        22 => Cmd::Trim(1 + rng.below(10)),
        23 => Cmd::SetInventory(rng.below(12)),
        24..=27 => Cmd::Hold {
            seat,
            user,
            ttl_s: ttl(rng),
        },
        28 => Cmd::Release {
            seat,
            user: rng.chance(50).then_some(user),
        },
        29..=30 => Cmd::Confirm { seat, user },
        31 => {
            let mut values = Vec::new();
            for (setting, max) in [
                (Setting::Rate, 30),
                (Setting::Burst, 8),
                (Setting::Heartbeat, 6),
                (Setting::HoldTtl, 6),
                (Setting::DedupeTtl, 6),
            ] {
                if rng.chance(30) {
                    values.push((setting, 1 + rng.below(max)));
                }
            }
            Cmd::Configure(values)
        }
        32..=34 => Cmd::Advance,
        35 => Cmd::User(user),
        36 => Cmd::Stats,
        37..=38 => Cmd::Seat(seat),
        39 => Cmd::OpensAt(rng.below(5_000)),
        _ => Cmd::Inventory,
    }
}

/// Applies `cmd` at `now`: its reply (as text, to compare), the ids the
/// step removed (sorted: order within a millisecond is free) and whether
/// it changed anything.
pub(super) fn apply(e: &mut Event, now: u64, cmd: &Cmd) -> (String, Vec<EntryId>, bool) {
    let name = |prefix: &str, n: u64| format!("{prefix}{n}").into_bytes();
    let mut step = Step::testing(now);
    let s = &mut step;
    let reply = match cmd {
        Cmd::Enqueue {
            user,
            token,
            dedupe,
            ttl_s,
        } => {
            let dedupe = dedupe.map(|d| name("d", d));
            format!(
                "{:?}",
                e.enqueue(
                    s,
                    &name("u", *user),
                    &name("t", *token),
                    dedupe.as_deref(),
                    *ttl_s
                )
            )
        }
        Cmd::Position(t) => format!("{:?}", e.position(s, &name("t", *t))),
        Cmd::Enter(t) => format!("{:?}", e.enter(s, &name("t", *t))),
        Cmd::Leave(t) => format!("{:?}", e.leave(s, &name("t", *t))),
        Cmd::Trim(age) => format!("{:?}", e.trim(s, *age)),
        Cmd::SetInventory(n) => format!("{:?}", e.set_inventory(s, *n)),
        Cmd::Hold { seat, user, ttl_s } => format!(
            "{:?}",
            e.hold(s, &[&name("S", *seat)[..]], &name("u", *user), *ttl_s)
        ),
        Cmd::Release { seat, user } => {
            let user = user.map(|u| name("u", u));
            format!("{:?}", e.release(s, &name("S", *seat), user.as_deref()))
        }
        Cmd::Confirm { seat, user } => {
            format!(
                "{:?}",
                e.confirm(s, &[&name("S", *seat)[..]], &name("u", *user))
            )
        }
        Cmd::Configure(values) => {
            let mut change = SettingsChange::default();
            for &(setting, value) in values {
                change.set(setting, value);
            }
            format!("{:?} {:?}", e.configure(s, &change), e.settings)
        }
        Cmd::OpensAt(after) => {
            let mut change = SettingsChange::default();
            change.set(Setting::OpensAt, now + after);
            format!("{:?} {:?}", e.configure(s, &change), e.opening)
        }
        Cmd::Advance => format!("{:?}", e.advance(s)),
        Cmd::User(u) => format!("{:?}", e.user_entries(now, &name("u", *u))),
        Cmd::Stats => format!("{:?}", e.stats(now)),
        Cmd::Seat(seat) => format!("{:?}", e.seat(now, &name("S", *seat))),
        Cmd::Inventory => format!("{:?}", e.inventory(now)),
    };
    let mut removed = step.removed;
    removed.sort();
    (reply, removed, step.changed)
}

fn random_settings() -> Settings {
    settings(|s| {
        s.rate = 15;
        s.burst = 4;
        s.heartbeat_s = 3;
        s.hold_ttl_s = 3;
        s.dedupe_ttl_s = 3;
    })
}

#[test]
fn the_same_commands_at_the_same_times_give_the_same_state() {
    for seed in 0..4 {
        let mut a = Event::new(random_settings());
        let mut b = Event::new(random_settings());
        let mut rng = Lcg(seed);
        let mut now = T0;
        // Half the events start with a scheduled opening: a pre-queue
        // first (the random OPENS-AT comes after a join, and is refused).
        let scheduled = seed % 2 == 0;
        if scheduled {
            let opens = Cmd::OpensAt(600_000);
            assert_eq!(apply(&mut a, now, &opens), apply(&mut b, now, &opens));
        }
        for i in 0..5000 {
            now += if rng.chance(2) {
                rng.below(10_000)
            } else {
                rng.below(50)
            };
            let cmd = random_cmd(&mut rng);
            assert_eq!(
                apply(&mut a, now, &cmd),
                apply(&mut b, now, &cmd),
                "{cmd:?}"
            );
            if i % 100 == 0 {
                assert_eq!(a.digest(), b.digest());
                assert_eq!(encode(&a), encode(&b));
            }
        }
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.opening.is_some_and(|o| o.joins > 0), scheduled);
    }
}

/// A replica loaded from a save (or a restart) holds the same state and
/// then does the same as the master, command after command.
#[test]
fn a_decoded_copy_behaves_like_the_original() {
    for seed in 10..16 {
        let mut master = Event::new(random_settings());
        let mut rng = Lcg(seed);
        let mut now = T0;
        let mut replica: Option<Event> = None;
        // Half with a scheduled opening: copies made before and after it.
        let scheduled = seed % 2 == 0;
        if scheduled {
            apply(&mut master, now, &Cmd::OpensAt(1_000_000));
        }
        for i in 0..6000 {
            now += if rng.chance(2) {
                rng.below(10_000)
            } else {
                rng.below(50)
            };
            if i % 500 == 250 {
                let copy = decode(&encode(&master)).expect("a valid state decodes");
                assert_eq!(copy.digest(), master.digest());
                assert_eq!(encode(&copy), encode(&master));
                replica = Some(copy);
            }
            let cmd = random_cmd(&mut rng);
            let expected = apply(&mut master, now, &cmd);
            if let Some(r) = replica.as_mut() {
                assert_eq!(apply(r, now, &cmd), expected, "{cmd:?} at step {i}");
                assert_eq!(r.digest(), master.digest(), "{cmd:?} at step {i}");
            }
        }
        let r = replica.unwrap();
        assert_eq!(r.digest(), master.digest());
        let joins = master.opening.map_or(0, |o| o.joins);
        assert_eq!(joins > 0, scheduled, "{joins} joins before the opening");
    }
}

#[test]
fn the_digest_is_that_of_the_state_not_of_its_history() {
    // Two histories to the same stored state.
    let mut a = Event::new(Settings::DEFAULT);
    join(&mut a, T0, "u", "x").unwrap();
    join(&mut a, T0, "v", "y").unwrap();
    set_inventory(&mut a, T0, 2);
    hold(&mut a, T0, "A1", "u", None).unwrap();
    hold(&mut a, T0, "A2", "u", None).unwrap();
    release(&mut a, T0, "A1", None).unwrap();
    let b = decode(&encode(&a)).unwrap();
    assert_eq!(a.digest(), b.digest());
    // Any one field changes it.
    let mut c = a.clone();
    c.counters.left += 1;
    assert_ne!(c.digest(), a.digest());
    let mut c = a.clone();
    c.settings.hold_ttl_s += 1;
    assert_ne!(c.digest(), a.digest());
    let mut c = a.clone();
    hold(&mut c, T0, "A1", "u", None).unwrap();
    assert_ne!(c.digest(), a.digest());
    let mut c = a.clone();
    pos(&mut c, T0 + 100_000, "y").unwrap();
    assert_ne!(c.digest(), a.digest(), "a recorded heartbeat is stored");
}

// ---- sold out ---------------------------------------------------------------

#[test]
fn sold_out_once_no_seat_is_available_or_held() {
    let mut e = Event::new(Settings::DEFAULT);
    join(&mut e, T0, "u", "t").unwrap();
    assert!(!e.stats(T0).sold_out, "inventory never set: never sold out");
    set_inventory(&mut e, T0, 2);
    hold(&mut e, T0, "A1", "u", Some(10)).unwrap();
    hold(&mut e, T0, "A2", "u", Some(10)).unwrap();
    assert!(!e.stats(T0).sold_out, "held seats may come back");
    confirm(&mut e, T0, "A1", "u").unwrap();
    assert!(!e.stats(T0).sold_out);
    // A2's hold lapses: available again, as of that millisecond.
    assert!(!e.stats(T0 + 10_000).sold_out);
    confirm(&mut e, T0 + 1, "A2", "u").unwrap();
    assert!(e.stats(T0 + 2).sold_out);
    set_inventory(&mut e, T0 + 3, 1);
    assert!(!e.stats(T0 + 3).sold_out, "more seats reopen the sale");
}

#[test]
fn trimming_a_few_or_a_crowd_leaves_every_index_right() {
    // 2,000 fans of 300 users. Trimming 10 of them takes the one-by-one
    // path; trimming 1,500 of the rest, the pass over each index
    // (`Queue::remove_all`). After each: the rest keep exact places, the
    // trimmed tokens are free to join again, users keep only what waits.
    let mut e = Event::new(Settings::DEFAULT);
    let n = 2_000u64;
    let user_of = |i: u64| format!("user-{}", i % 300);
    for i in 0..n {
        join(&mut e, T0 + i, &user_of(i), &format!("t{i}")).unwrap();
    }
    let users: Vec<String> = (0..300).map(user_of).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut now = T0;
    for (max_age_s, first_kept) in [(2, 10), (1, 1_500)] {
        // Ids below now - MAXAGE go: the entries that joined before
        // T0 + first_kept.
        now = T0 + first_kept + max_age_s * 1000;
        let (k, step) = run(&mut e, now, |e, s| e.trim(s, max_age_s));
        assert_eq!(k, step.removed.len() as u64);
        assert_eq!(e.waiting(), n - first_kept);
        let expect: Vec<(u64, String)> = (first_kept..n)
            .enumerate()
            .map(|(p, i)| (p as u64 + 1, format!("t{i}")))
            .collect();
        assert_eq!(tokens_of(&e, now, &users), expect);
        for i in [first_kept, (first_kept + n) / 2, n - 1] {
            let at = pos(&mut e, now, &format!("t{i}")).unwrap();
            assert_eq!(at.position, i - first_kept + 1);
        }
        refused(&mut e, now, |e, s| e.position(s, b"t0"));
        assert_balance(&e, now);
    }
    // A trimmed token joins again, at the tail.
    assert_eq!(join(&mut e, now, "user-0", "t0").unwrap().position, 501);
    let (k, _) = run(&mut e, now + 1_000, |e, s| e.trim(s, 0));
    assert_eq!((k, e.waiting()), (501, 0));
    assert_eq!(
        e.memory_usage(),
        e.dedupe.memory_usage() + e.seats.memory_usage()
    );
}

// ---- passes, the cap, per-user limits, sold out -----------------------------

fn pass_of(e: &mut Event, now: u64, user: &str, action: PassAction) -> TqResult<PassView> {
    run(e, now, |e, s| e.pass(s, user.as_bytes(), action)).0
}

fn admit(e: &mut Event, now: u64, token: &str) -> TqResult<Admitted> {
    run(e, now, |e, s| e.enter(s, token.as_bytes())).0
}

#[test]
fn a_pass_is_given_at_admission_renewed_by_the_users_actions_and_lapses_after_its_session() {
    let mut e = Event::new(settings(|s| s.session_s = 60));
    set_inventory(&mut e, T0, 10);
    join(&mut e, T0, "u1", "t1").unwrap();
    let given = admit(&mut e, T0 + 1_000, "t1").unwrap();
    assert_eq!(given.pass.expires_ms, T0 + 61_000);
    let shown = pass_of(&mut e, T0 + 2_000, "u1", PassAction::Show).unwrap();
    assert_eq!(
        (shown.pass, shown.held, shown.bought),
        (Some(given.pass), 0, 0)
    );
    assert_eq!(e.stats(T0 + 2_000).active, 1);
    // A hold, a confirm and a touch each renew it for a full session.
    hold(&mut e, T0 + 10_000, "A1", "u1", None).unwrap();
    let after_hold = pass_of(&mut e, T0 + 10_000, "u1", PassAction::Show).unwrap();
    assert_eq!(after_hold.pass.unwrap().expires_ms, T0 + 70_000);
    assert_eq!(after_hold.held, 1);
    confirm(&mut e, T0 + 20_000, "A1", "u1").unwrap();
    let touched = pass_of(&mut e, T0 + 30_000, "u1", PassAction::Touch).unwrap();
    assert_eq!(
        touched.pass.unwrap().id,
        given.pass.id,
        "renewing keeps the id"
    );
    assert_eq!(touched.pass.unwrap().expires_ms, T0 + 90_000);
    assert_eq!((touched.held, touched.bought), (0, 1));
    // A second admission of the same user renews the same pass.
    join(&mut e, T0 + 31_000, "u1", "t2").unwrap();
    let again = admit(&mut e, T0 + 40_000, "t2").unwrap();
    assert_eq!(
        again.pass,
        Pass {
            id: given.pass.id,
            expires_ms: T0 + 100_000
        }
    );
    // Live until its time, then gone, by itself.
    let (_, step) = run(&mut e, T0 + 99_999, |e, s| e.advance(s));
    assert!(!step.changed);
    assert_eq!(
        e.stats(T0 + 100_000).active,
        0,
        "reads see it lapsed at once"
    );
    let (_, step) = run(&mut e, T0 + 100_000, |e, s| e.advance(s));
    assert!(step.changed);
    let lapsed = pass_of(&mut e, T0 + 100_000, "u1", PassAction::Show).unwrap();
    assert_eq!((lapsed.pass, lapsed.bought), (None, 1));
    refused(&mut e, T0 + 100_001, |e, s| {
        e.pass(s, b"u1", PassAction::Touch)
    });
    // A new admission after the lapse draws a new pass.
    join(&mut e, T0 + 100_002, "u1", "t3").unwrap();
    let fresh = admit(&mut e, T0 + 100_003, "t3").unwrap();
    assert_ne!(fresh.pass.id, given.pass.id);
}

#[test]
fn max_active_caps_live_passes_and_a_revoke_or_lapse_frees_a_place_at_once() {
    let mut e = Event::new(settings(|s| {
        s.max_active = 2;
        s.session_s = 30;
        s.burst = 100;
    }));
    for i in 1..=4 {
        join(&mut e, T0, &format!("u{i}"), &format!("t{i}")).unwrap();
    }
    admit(&mut e, T0, "t1").unwrap();
    admit(&mut e, T0 + 10_000, "t2").unwrap();
    // t3 is first in line, t4 second; two passes live: nobody is ready.
    let at = pos(&mut e, T0 + 10_000, "t3").unwrap();
    assert_eq!((at.position, at.ready, at.eta_ms), (1, false, -1));
    assert_eq!(
        refused(&mut e, T0 + 10_000, |e, s| e.enter(s, b"t3")),
        TqError::NotReady(1)
    );
    // A revoke frees one place: for the front only.
    let revoked = pass_of(&mut e, T0 + 11_000, "u1", PassAction::Revoke).unwrap();
    assert!(revoked.pass.is_some());
    assert!(pos(&mut e, T0 + 11_000, "t3").unwrap().ready);
    assert!(!pos(&mut e, T0 + 11_000, "t4").unwrap().ready);
    admit(&mut e, T0 + 11_000, "t3").unwrap();
    assert_eq!(
        refused(&mut e, T0 + 11_000, |e, s| e.enter(s, b"t4")),
        TqError::NotReady(1)
    );
    // u2's pass lapses at T0 + 40s: t4 is ready from that millisecond.
    assert!(!pos(&mut e, T0 + 39_999, "t4").unwrap().ready);
    assert!(pos(&mut e, T0 + 40_000, "t4").unwrap().ready);
    admit(&mut e, T0 + 40_000, "t4").unwrap();
    assert_eq!(e.stats(T0 + 40_000).active, 2);
    // A revoke of a user without a live pass ends nothing.
    assert_eq!(
        pass_of(&mut e, T0 + 40_000, "u1", PassAction::Revoke)
            .unwrap()
            .pass,
        None
    );
}

#[test]
fn require_pass_max_seats_and_max_entries_refuse_without_changing_anything() {
    let mut e = Event::new(settings(|s| {
        s.require_pass = 1;
        s.max_seats = 2;
        s.max_entries = 2;
    }));
    set_inventory(&mut e, T0, 10);
    assert_eq!(
        refused(&mut e, T0, |e, s| e.hold(s, &[&b"A1"[..]], b"u1", None)),
        TqError::NoPass
    );
    join(&mut e, T0, "u1", "t1").unwrap();
    join(&mut e, T0, "u1", "t2").unwrap();
    assert_eq!(
        refused(&mut e, T0, |e, s| e.enqueue(s, b"u1", b"t3", None, None)),
        TqError::Limit(2)
    );
    admit(&mut e, T0, "t1").unwrap();
    join(&mut e, T0, "u1", "t3").unwrap();
    hold(&mut e, T0, "A1", "u1", None).unwrap();
    hold(&mut e, T0, "A2", "u1", None).unwrap();
    assert_eq!(
        refused(&mut e, T0, |e, s| e.hold(s, &[&b"A3"[..]], b"u1", None)),
        TqError::Limit(2)
    );
    confirm(&mut e, T0, "A1", "u1").unwrap();
    refused(&mut e, T0, |e, s| e.hold(s, &[&b"A3"[..]], b"u1", None));
    release(&mut e, T0, "A2", None).unwrap();
    hold(&mut e, T0, "A3", "u1", None).unwrap();
    let view = pass_of(&mut e, T0, "u1", PassAction::Show).unwrap();
    assert_eq!((view.held, view.bought), (1, 1));
    // An expired hold counts for nobody from that millisecond.
    let later = T0 + 300_000;
    let view = pass_of(&mut e, later, "u1", PassAction::Show).unwrap();
    assert_eq!(view.held, 0);
    assert_balance(&e, later);
}

#[test]
fn a_sold_out_event_refuses_joins_and_admissions_until_a_seat_can_come_back() {
    let mut e = Event::new(settings(|s| s.burst = 10));
    // A queue-only event (no inventory ever set) is never sold out.
    join(&mut e, T0, "u1", "t1").unwrap();
    assert!(!e.stats(T0).sold_out && !pos(&mut e, T0, "t1").unwrap().sold_out);
    set_inventory(&mut e, T0, 1);
    hold(&mut e, T0, "A1", "u9", Some(60)).unwrap();
    // Held, not sold: it may come back.
    join(&mut e, T0, "u2", "t2").unwrap();
    confirm(&mut e, T0, "A1", "u9").unwrap();
    assert!(e.stats(T0).sold_out);
    assert_eq!(
        refused(&mut e, T0, |e, s| e.enqueue(s, b"u3", b"t3", None, None)),
        TqError::SoldOut
    );
    assert_eq!(
        refused(&mut e, T0, |e, s| e.enter(s, b"t1")),
        TqError::SoldOut
    );
    let at = pos(&mut e, T0, "t2").unwrap();
    assert!(at.sold_out);
    assert_eq!(at.position, 2, "waiting entries stay where they are");
    // More seats reopen the sale.
    set_inventory(&mut e, T0, 3);
    assert!(!pos(&mut e, T0, "t2").unwrap().sold_out);
    admit(&mut e, T0, "t1").unwrap();
    // A released hold reopens it too.
    for seat in ["B1", "B2", "B3"] {
        hold(&mut e, T0, seat, "u9", None).unwrap();
    }
    confirm(&mut e, T0, "B1", "u9").unwrap();
    confirm(&mut e, T0, "B2", "u9").unwrap();
    assert!(!e.stats(T0).sold_out, "B3 is held");
    confirm(&mut e, T0, "B3", "u9").unwrap();
    assert!(e.stats(T0).sold_out);
}

#[test]
fn a_replica_given_the_masters_draws_gives_the_same_pass() {
    let mut master = Event::new(Settings::DEFAULT);
    join(&mut master, T0, "u1", "t1").unwrap();
    let mut replica = decode(&encode(&master)).unwrap();
    fn fixed() -> [u8; 16] {
        [42; 16]
    }
    let mut step = Step {
        draws: Draws::Fresh(fixed),
        ..Step::new(T0 + 5)
    };
    let given = master.enter(&mut step, b"t1").unwrap();
    assert_eq!(step.drawn, vec![[42; 16]]);
    let mut replayed = Step {
        draws: Draws::Recorded(step.drawn.iter().copied().collect()),
        ..Step::new(T0 + 5)
    };
    assert_eq!(replica.enter(&mut replayed, b"t1").unwrap(), given);
    assert_eq!(replica.digest(), master.digest());
    // Without a source of draws, an admission that needs one changes
    // nothing.
    let mut other = Event::new(Settings::DEFAULT);
    join(&mut other, T0, "u1", "t1").unwrap();
    let before = encode(&other);
    let mut bare = Step::new(T0 + 5);
    assert!(matches!(
        other.enter(&mut bare, b"t1"),
        Err(TqError::Internal(_))
    ));
    assert_eq!(encode(&other), before);
}

// ---- groups, extensions, inventory changes ---------------------------------

#[test]
fn a_group_hold_is_all_or_nothing_and_names_the_first_failing_seat() {
    let mut e = Event::new(settings(|s| s.max_seats = 4));
    set_inventory(&mut e, T0, 5);
    let group = |names: &[&'static str]| names.iter().map(|n| n.as_bytes()).collect::<Vec<_>>();
    let (left, _) = run(&mut e, T0, |e, s| {
        e.hold(s, &group(&["A1", "A2", "A3"]), b"u1", None)
    });
    assert_eq!(left, Ok(2));
    // A2 is held: nothing of the group is taken, A2 is named.
    let err = refused(&mut e, T0, |e, s| {
        e.hold(s, &group(&["B1", "A2", "A3"]), b"u2", None)
    });
    assert_eq!(err, TqError::SeatUnavailable(b"A2".to_vec()));
    assert_eq!(e.seat(T0, b"B1").state, "available");
    // Three seats wanted, two available.
    let err = refused(&mut e, T0, |e, s| {
        e.hold(s, &group(&["B1", "B2", "B3"]), b"u2", None)
    });
    assert_eq!(err, TqError::SoldOut);
    // u1 holds 3 of its 4: two more would pass MAX-SEATS.
    let err = refused(&mut e, T0, |e, s| {
        e.hold(s, &group(&["B1", "B2"]), b"u1", None)
    });
    assert_eq!(err, TqError::Limit(4));
    // Confirm the group: all or nothing too.
    let err = refused(&mut e, T0, |e, s| {
        e.confirm(s, &group(&["A1", "B9"]), b"u1")
    });
    assert_eq!(err, TqError::NotHeld(b"B9".to_vec()));
    run(&mut e, T0, |e, s| e.hold(s, &group(&["B1"]), b"u2", None))
        .0
        .unwrap();
    let err = refused(&mut e, T0, |e, s| {
        e.confirm(s, &group(&["A1", "B1"]), b"u1")
    });
    assert_eq!(err, TqError::NotOwner(b"B1".to_vec()));
    run(&mut e, T0, |e, s| {
        e.confirm(s, &group(&["A1", "A2"]), b"u1")
    })
    .0
    .unwrap();
    let s = e.stats(T0);
    assert_eq!((s.inventory, s.held, s.sold), (1, 2, 2));
    assert_eq!(seat_total(&e, T0), 5);
}

#[test]
fn extend_moves_every_named_hold_of_the_user_all_or_nothing() {
    let mut e = Event::new(Settings::DEFAULT);
    set_inventory(&mut e, T0, 5);
    hold(&mut e, T0, "A1", "u1", Some(60)).unwrap();
    hold(&mut e, T0, "A2", "u1", Some(60)).unwrap();
    hold(&mut e, T0, "B1", "u2", Some(60)).unwrap();
    let seats = [&b"A1"[..], b"A2"];
    let (ms, step) = run(&mut e, T0 + 30_000, |e, s| e.extend(s, &seats, b"u1", 120));
    assert_eq!(ms, Ok(120_000));
    assert!(step.changed);
    assert_eq!(e.seat(T0 + 30_000, b"A2").ttl_ms, 120_000);
    // Not all the user's: nothing moves.
    let err = refused(&mut e, T0 + 31_000, |e, s| {
        e.extend(s, &[&b"A1"[..], b"B1"], b"u1", 600)
    });
    assert_eq!(err, TqError::NotOwner(b"B1".to_vec()));
    assert_eq!(e.seat(T0 + 31_000, b"A1").ttl_ms, 119_000);
    // The old deadline is gone: the hold lives until the new one.
    let (_, step) = run(&mut e, T0 + 60_000, |e, s| e.advance(s));
    assert_eq!(e.seat(T0 + 60_000, b"A1").state, "held");
    assert_eq!(e.seat(T0 + 60_000, b"B1").state, "available");
    assert!(step.changed);
    assert_eq!(e.seat(T0 + 150_000, b"A1").state, "available");
    // An expired hold is NOT_HELD.
    let err = refused(&mut e, T0 + 150_000, |e, s| {
        e.extend(s, &[&b"A1"[..]], b"u1", 60)
    });
    assert_eq!(err, TqError::NotHeld(b"A1".to_vec()));
    assert_balance(&e, T0 + 150_000);
}

#[test]
fn inventory_add_changes_the_inventory_within_its_bounds() {
    let mut e = Event::new(Settings::DEFAULT);
    let (n, step) = run(&mut e, T0, |e, s| e.add_inventory(s, 10));
    assert_eq!((n, step.changed), (Ok(10), true));
    assert!(e.counters.inventory_set);
    hold(&mut e, T0, "A1", "u", None).unwrap();
    assert_eq!(run(&mut e, T0, |e, s| e.add_inventory(s, -4)).0, Ok(5));
    assert!(matches!(
        refused(&mut e, T0, |e, s| e.add_inventory(s, -6)),
        TqError::Syntax(_)
    ));
    assert!(matches!(
        refused(&mut e, T0, |e, s| e.add_inventory(s, 1 << 31)),
        TqError::Syntax(_)
    ));
    let (n, step) = run(&mut e, T0, |e, s| e.add_inventory(s, 0));
    assert_eq!((n, step.changed), (Ok(5), false));
    assert_eq!(seat_total(&e, T0), 6);
}

#[test]
fn a_record_of_tq_0_3_without_draws_still_admits_the_same_everywhere() {
    // tq 0.3 gave no passes, so its ENTER records carry no DRAW: replayed
    // here they admit, with a pass id made from the record itself.
    let mut a = Event::new(Settings::DEFAULT);
    join(&mut a, T0, "u1", "t1").unwrap();
    let mut b = decode(&encode(&a)).unwrap();
    let replay = |e: &mut Event| {
        let mut step = Step {
            draws: Draws::Recorded(Default::default()),
            ..Step::new(T0 + 5)
        };
        e.enter(&mut step, b"t1").unwrap()
    };
    let (x, y) = (replay(&mut a), replay(&mut b));
    assert_eq!(x, y);
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.stats(T0 + 5).admitted, 1);
}

#[test]
fn limits_leave_out_holds_and_entries_that_lapsed_but_are_still_stored() {
    let n = STEP_BUDGET as u64 + 100;
    let mut e = Event::new(settings(|s| {
        s.max_seats = 1;
        s.max_entries = 1;
        s.heartbeat_s = 10;
    }));
    set_inventory(&mut e, T0, n + 10);
    // More holds expire than one step gives back, each in its own
    // millisecond, u's last.
    for i in 0..n {
        let user = if i == n - 1 {
            "u".to_string()
        } else {
            format!("x{i}")
        };
        hold(&mut e, T0 + i, &format!("S{i}"), &user, Some(60)).unwrap();
    }
    let later = T0 + 60_000 + n;
    // u's hold expired: it no longer counts toward MAX-SEATS.
    hold(&mut e, later, "NEW", "u", None).unwrap();
    // The same for a lapsed entry and MAX-ENTRIES.
    let mut q = Event::new(settings(|s| {
        s.max_entries = 1;
        s.heartbeat_s = 1;
    }));
    for i in 0..n {
        let user = if i == n - 1 {
            "u".to_string()
        } else {
            format!("x{i}")
        };
        join(&mut q, T0 + i, &user, &format!("t{i}")).unwrap();
    }
    let later = T0 + 1_100 + n;
    join(&mut q, later, "u", "again").unwrap();
}

#[test]
fn nobody_is_ready_while_the_event_is_sold_out() {
    let mut e = Event::new(Settings::DEFAULT);
    join(&mut e, T0, "u1", "t1").unwrap();
    set_inventory(&mut e, T0, 0);
    let at = pos(&mut e, T0, "t1").unwrap();
    assert_eq!((at.ready, at.eta_ms, at.sold_out), (false, -1, true));
    assert_eq!(
        refused(&mut e, T0, |e, s| e.enter(s, b"t1")),
        TqError::SoldOut
    );
}

#[test]
fn extend_renews_the_holders_pass() {
    let mut e = Event::new(settings(|s| s.session_s = 60));
    set_inventory(&mut e, T0, 5);
    join(&mut e, T0, "u1", "t1").unwrap();
    admit(&mut e, T0, "t1").unwrap();
    hold(&mut e, T0, "A1", "u1", Some(60)).unwrap();
    run(&mut e, T0 + 40_000, |e, s| {
        e.extend(s, &[&b"A1"[..]], b"u1", 30)
    })
    .0
    .unwrap();
    let view = pass_of(&mut e, T0 + 40_000, "u1", PassAction::Show).unwrap();
    assert_eq!(view.pass.unwrap().expires_ms, T0 + 100_000);
}

// ---- the event log -------------------------------------------------------

/// Runs `rule` as the Redis side does for an event with a log, and returns
/// the notes' types with what they name.
fn logged<T>(
    e: &mut Event,
    now: u64,
    rule: impl FnOnce(&mut Event, &mut Step) -> T,
) -> (T, Vec<String>) {
    let mut step = Step::testing(now);
    e.open_log(&mut step);
    let out = rule(e, &mut step);
    let notes = e.close_log(&mut step).unwrap_or_default();
    // Log ids follow the step's time and only grow.
    let ids: Vec<EntryId> = notes.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids.first().is_none_or(|id| id.ms >= now));
    assert!(ids.last().is_none_or(|id| e.log_last_id == Some(*id)));
    let told = notes
        .iter()
        .map(|(_, note)| {
            let s = note.subject();
            let mut text = note.kind().to_string();
            if let Some(entry) = s.entry {
                text += &format!(" entry={}", String::from_utf8_lossy(&entry.text()));
            }
            for (name, value) in [("seat", s.seat), ("user", s.user)] {
                if let Some(v) = value {
                    text += &format!(" {name}={}", String::from_utf8_lossy(v));
                }
            }
            if s.pass.is_some() {
                text += " pass";
            }
            text
        })
        .collect();
    (out, told)
}

#[test]
fn every_change_is_noted_for_the_event_log_by_the_step_that_made_it() {
    let mut e = Event::new(settings(|s| {
        s.events = 100;
        s.heartbeat_s = 10;
        s.session_s = 20;
    }));
    let (_, told) = logged(&mut e, T0, |e, step| {
        e.enqueue(step, b"ann", b"t1", None, None).unwrap();
        e.enqueue(step, b"bo", b"t2", None, None).unwrap();
        e.enqueue(step, b"cy", b"t3", None, None).unwrap();
    });
    assert!(told.is_empty(), "joins are not logged: {told:?}");
    logged(&mut e, T0 + 500, |e, step| {
        e.enqueue(step, b"di", b"t4", None, None).unwrap()
    });
    let (_, told) = logged(&mut e, T0 + 1, |e, step| e.enter(step, b"t1").unwrap());
    assert_eq!(told, [format!("admitted entry={T0}-0 pass")]);
    let (_, told) = logged(&mut e, T0 + 2, |e, step| e.leave(step, b"t2"));
    assert_eq!(told, [format!("left entry={T0}-1")]);
    let (_, told) = logged(&mut e, T0 + 1_001, |e, step| e.trim(step, 1));
    assert_eq!(told, [format!("trimmed entry={T0}-2")]);
    // t4 lapses with nobody polling.
    let (_, told) = logged(&mut e, T0 + 11_501, |e, step| e.advance(step));
    assert_eq!(told, [format!("abandoned entry={}-0", T0 + 500)]);
    let now = T0 + 12_000;
    logged(&mut e, now, |e, step| e.set_inventory(step, 3));
    let (_, told) = logged(&mut e, now, |e, step| {
        e.hold(step, &[b"A1", b"A2"], b"ann", Some(5)).unwrap()
    });
    assert_eq!(told, ["held seat=A1 user=ann", "held seat=A2 user=ann"]);
    let (_, told) = logged(&mut e, now, |e, step| e.release(step, b"A2", None).unwrap());
    assert_eq!(told, ["released seat=A2 user=ann"]);
    let (_, told) = logged(&mut e, now, |e, step| {
        e.hold(step, &[b"B1"], b"bo", None).unwrap();
        e.confirm(step, &[b"B1"], b"bo").unwrap()
    });
    assert_eq!(told, ["held seat=B1 user=bo", "confirmed seat=B1 user=bo"]);
    // A1's hold runs out, and ann's pass (renewed by her hold) lapses.
    let (_, told) = logged(&mut e, now + 5_000, |e, step| e.advance(step));
    assert_eq!(told, ["hold_expired seat=A1 user=ann"]);
    let (_, told) = logged(&mut e, now + 20_000, |e, step| e.advance(step));
    assert_eq!(told, ["pass_lapsed pass"]);
    // The last two seats go: the event becomes sold out, once.
    let (_, told) = logged(&mut e, now + 20_001, |e, step| {
        e.hold(step, &[b"C1", b"C2"], b"cy", None).unwrap()
    });
    assert_eq!(
        told,
        ["held seat=C1 user=cy", "held seat=C2 user=cy"],
        "held seats can come back: not sold out yet"
    );
    let (_, told) = logged(&mut e, now + 20_002, |e, step| {
        e.confirm(step, &[b"C1", b"C2"], b"cy").unwrap()
    });
    assert_eq!(
        told,
        [
            "confirmed seat=C1 user=cy",
            "confirmed seat=C2 user=cy",
            "sold_out"
        ]
    );
    let (_, told) = logged(&mut e, now + 20_003, |e, step| e.set_inventory(step, 0));
    assert!(told.is_empty(), "{told:?}");
}

#[test]
fn a_revoke_and_an_expired_hold_met_by_a_command_are_noted() {
    let mut e = Event::new(settings(|s| s.events = 10));
    logged(&mut e, T0, |e, step| {
        e.enqueue(step, b"ann", b"t1", None, None).unwrap();
        e.enter(step, b"t1").unwrap();
        e.set_inventory(step, 5);
        e.hold(step, &[b"A1"], b"ann", Some(1)).unwrap()
    });
    let (_, told) = logged(&mut e, T0 + 5, |e, step| {
        e.pass(step, b"ann", PassAction::Revoke).unwrap()
    });
    assert_eq!(told, ["pass_revoked pass"]);
    let (_, told) = logged(&mut e, T0 + 5, |e, step| {
        e.pass(step, b"ann", PassAction::Revoke).unwrap()
    });
    assert!(told.is_empty(), "no live pass, nothing ended: {told:?}");
    // The hold ran out; the next hold of the seat meets it first.
    let mut crowd = e.clone();
    let (_, told) = logged(&mut crowd, T0 + 1_000, |e, step| {
        e.hold(step, &[b"A1"], b"bo", None).unwrap()
    });
    assert_eq!(
        told,
        ["hold_expired seat=A1 user=ann", "held seat=A1 user=bo"]
    );
}

#[test]
fn an_event_without_a_log_notes_nothing() {
    let mut e = Event::new(Settings::DEFAULT);
    let mut step = Step::testing(T0);
    e.open_log(&mut step);
    e.enqueue(&mut step, b"ann", b"t1", None, None).unwrap();
    e.enter(&mut step, b"t1").unwrap();
    e.set_inventory(&mut step, 1);
    e.hold(&mut step, &[b"A1"], b"ann", None).unwrap();
    e.confirm(&mut step, &[b"A1"], b"ann").unwrap();
    assert!(step.log.is_none());
    assert_eq!(e.close_log(&mut step), None);
    assert_eq!(e.log_last_id, None);
}

// ---- scheduled opening -----------------------------------------------------

fn opens_at(e: &mut Event, now: u64, at: u64) -> TqResult<()> {
    let mut change = SettingsChange::default();
    change.set(Setting::OpensAt, at);
    run(e, now, |e, s| e.configure(s, &change)).0
}

/// The pre-queue's order by the README's rule, recomputed from the seed
/// and the join log alone: tokens by place, departed ones left out.
fn order_by_the_rule(seed: &[u8; 16], joins: &[&str], departed: &[&str]) -> Vec<String> {
    let mut places: Vec<Option<String>> = Vec::new();
    for (i, token) in joins.iter().enumerate() {
        let r = super::opening::shuffle_place(seed, i as u64) as usize;
        places.push(None);
        places.swap(r, i);
        places[r] = Some(token.to_string());
    }
    places
        .into_iter()
        .flatten()
        .filter(|t| !departed.contains(&t.as_str()))
        .collect()
}

#[test]
fn a_pre_queue_is_drawn_by_the_rule_hidden_until_the_opening_and_opens_by_itself() {
    let mut e = Event::new(settings(|s| {
        s.burst = 5;
        s.rate = 0;
    }));
    let open = T0 + 60_000;
    opens_at(&mut e, T0, open).unwrap();
    let tokens: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    let mut joins: Vec<&str> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let joined = join(&mut e, T0 + i as u64, &format!("u{}", i % 7), t).unwrap();
        assert_eq!(
            (joined.position, joined.user_position),
            (0, 0),
            "no place shown"
        );
        joins.push(t);
        if i % 9 == 4 {
            assert!(leave(&mut e, T0 + i as u64, t));
        }
    }
    let departed: Vec<&str> = joins
        .iter()
        .copied()
        .filter(|t| {
            let i: usize = t[1..].parse().unwrap();
            i % 9 == 4
        })
        .collect();
    // Before the opening: no place, no entry, no seed.
    let now = T0 + 1_000;
    let p = pos(&mut e, now, "p3").unwrap();
    assert_eq!(
        (
            p.position,
            p.user_position,
            p.ready,
            p.eta_ms,
            p.opens_in_ms
        ),
        (0, 0, false, -1, open - now)
    );
    assert_eq!(
        refused(&mut e, now, |e, s| e.enter(s, b"p3")),
        TqError::NotOpen(open - now)
    );
    let waiting_u3 = tokens
        .iter()
        .enumerate()
        .filter(|(i, t)| i % 7 == 3 && !departed.contains(&t.as_str()))
        .count();
    let listed = e.user_entries(now, b"u3");
    assert_eq!(listed.len(), waiting_u3);
    assert!(listed.iter().all(|x| x.position == 0));
    assert_eq!(e.shuffle_seed(now), None);
    assert_eq!(e.stats(now).opens_in_ms, open - now);
    // The opening happens by itself, at its moment, and moves nothing:
    // every place was final as it was drawn.
    assert_eq!(e.next_due_ms(), Some(open));
    let numbers =
        |e: &Event| -> Vec<u64> { e.queue.in_order().map(|s| e.queue.number(s)).collect() };
    let before = numbers(&e);
    let (_, step) = run(&mut e, open, |e, s| e.advance(s));
    assert!(step.changed);
    assert!(step.removed.is_empty());
    assert_eq!(numbers(&e), before);
    let seed = e.shuffle_seed(open).expect("shown once open");
    assert_eq!(e.bucket, None, "the bucket is full at the opening");
    let expected = order_by_the_rule(&seed, &joins, &departed);
    assert_eq!(
        tokens_of(&e, open, &["u0", "u1", "u2", "u3", "u4", "u5", "u6"])
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>(),
        expected
    );
    for (place, t) in expected.iter().enumerate() {
        assert_eq!(
            pos(&mut e, open, t).unwrap().position,
            place as u64 + 1,
            "{t}"
        );
    }
    // A user's entries in queue order.
    let listed = e.user_entries(open, b"u3");
    assert_eq!(listed.len(), waiting_u3);
    assert!(listed.windows(2).all(|w| w[0].position < w[1].position));
    // Joins after the opening queue behind the whole pre-queue.
    let late = join(&mut e, open + 1, "late", "l1").unwrap();
    assert_eq!(late.position, expected.len() as u64 + 1);
    // The front enters first, as in any queue.
    assert_eq!(enter(&mut e, open + 2, &expected[0]).unwrap(), 1);
    let tenth = expected[9].clone();
    assert_eq!(
        refused(&mut e, open + 2, |e, s| e.enter(s, tenth.as_bytes())),
        TqError::NotReady(9)
    );
}

#[test]
fn opens_at_changes_only_before_the_opening_and_a_past_time_opens_at_once() {
    let mut e = Event::new(Settings::DEFAULT);
    opens_at(&mut e, T0, T0 + 10_000).unwrap();
    join(&mut e, T0, "u", "a").unwrap();
    // Moved while pending: the same seed, still a pre-queue.
    let seed = e.opening.unwrap().seed;
    opens_at(&mut e, T0 + 1, T0 + 20_000).unwrap();
    assert_eq!(e.opening.unwrap().seed, seed);
    assert_eq!(pos(&mut e, T0 + 15_000, "a").unwrap().opens_in_ms, 5_000);
    // A time already past opens it now.
    opens_at(&mut e, T0 + 16_000, T0 + 1).unwrap();
    assert!(e.opening.unwrap().done);
    assert_eq!(pos(&mut e, T0 + 16_000, "a").unwrap().position, 1);
    for at in [0, T0 + 99_000] {
        let mut change = SettingsChange::default();
        change.set(Setting::OpensAt, at);
        assert_eq!(
            refused(&mut e, T0 + 16_001, |e, s| e.configure(s, &change)),
            TqError::syntax("OPENS-AT can be changed only before the event opens")
        );
    }
    // An event open from its start (someone joined) cannot get one.
    let mut f = Event::new(Settings::DEFAULT);
    join(&mut f, T0, "u", "a").unwrap();
    assert!(opens_at(&mut f, T0, T0 + 5_000).is_err());
    assert_eq!(f.opening, None);
    // Nor one with fans waiting and no join counted (converted from tq
    // 0.2, which did not count joins): its stored form would not load.
    let mut h = Event::new(Settings::DEFAULT);
    join(&mut h, T0, "u", "a").unwrap();
    h.counters.joined = 0;
    assert!(opens_at(&mut h, T0, T0 + 5_000).is_err());
    assert_eq!(h.opening, None);
    assert!(decode(&encode(&h)).is_ok());
    // OPENS-AT 0 on an event without one is nothing.
    let mut g = Event::new(Settings::DEFAULT);
    opens_at(&mut g, T0, 0).unwrap();
    assert_eq!(g.opening, None);
}

#[test]
fn a_stored_pre_queue_keeps_its_empty_places_and_draws_on_alike() {
    let mut e = Event::new(Settings::DEFAULT);
    opens_at(&mut e, T0, T0 + 100_000).unwrap();
    for i in 0..300u64 {
        join(&mut e, T0 + i, &format!("u{}", i % 11), &format!("t{i}")).unwrap();
        if i % 3 == 0 {
            leave(&mut e, T0 + i, &format!("t{}", i / 2));
        }
    }
    let mut copy = decode(&encode(&e)).unwrap();
    assert_eq!(copy.digest(), e.digest());
    for i in 300..600u64 {
        for ev in [&mut e, &mut copy] {
            join(ev, T0 + i, &format!("u{}", i % 11), &format!("t{i}")).unwrap();
        }
    }
    assert_eq!(copy.digest(), e.digest());
    let open = T0 + 100_000;
    settle(&mut e, open);
    settle(&mut copy, open);
    let users: Vec<String> = (0..11).map(|u| format!("u{u}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    assert_eq!(tokens_of(&copy, open, &users), tokens_of(&e, open, &users));
    // Trimming a shuffled queue takes the old ones wherever they stand:
    // those that joined before T0 + 300.
    let min_id = EntryId::new(T0 + 300, 0);
    let old = e
        .queue
        .in_order()
        .filter(|&slot| e.queue.entry(slot).id < min_id)
        .count() as u64;
    assert!(old > 100);
    let (trimmed, step) = run(&mut e, T0 + 100_300, |e, s| e.trim(s, 100));
    assert_eq!((trimmed, step.removed.len() as u64), (old, old));
    assert!(e
        .queue
        .in_order()
        .all(|slot| e.queue.entry(slot).id >= min_id));
}

#[test]
fn a_pass_that_lapsed_but_is_still_stored_is_noted_when_a_new_one_replaces_it() {
    let mut e = Event::new(settings(|s| {
        s.events = 10_000;
        s.session_s = 1;
        s.burst = 10_000;
    }));
    // More passes than one step removes lapse before ann's, each in its
    // own millisecond, so hers is still stored when she enters again.
    for i in 0..STEP_BUDGET as u64 {
        let (user, token) = (format!("u{i}"), format!("t{i}"));
        join(&mut e, T0 + i, &user, &token).unwrap();
        admit(&mut e, T0 + i, &token).unwrap();
    }
    let at = T0 + STEP_BUDGET as u64;
    join(&mut e, at, "ann", "a1").unwrap();
    join(&mut e, at, "ann", "a2").unwrap();
    let old = admit(&mut e, at, "a1").unwrap().pass;
    let mut step = Step::testing(at + 1_000);
    e.open_log(&mut step);
    let new = e.enter(&mut step, b"a2").unwrap().pass;
    assert_ne!(new.id, old.id, "a new pass");
    let notes = e.close_log(&mut step).unwrap();
    let lapsed: Vec<_> = notes
        .iter()
        .filter_map(|(_, n)| match n {
            Happening::PassLapsed { pass } => Some(*pass),
            _ => None,
        })
        .collect();
    assert_eq!(
        lapsed.len(),
        STEP_BUDGET + 1,
        "every lapsed pass noted once"
    );
    assert_eq!(
        lapsed.last(),
        Some(&old.id),
        "ann's, as the new one replaced it"
    );
    assert!(matches!(
        notes.last(),
        Some((_, Happening::Admitted { .. }))
    ));
}

#[test]
fn a_join_at_the_opening_moment_queues_behind_the_pre_queue() {
    let mut e = Event::new(Settings::DEFAULT);
    let open = T0 + 10_000;
    opens_at(&mut e, T0, open).unwrap();
    for i in 0..3 {
        join(&mut e, T0 + i, &format!("u{i}"), &format!("p{i}")).unwrap();
    }
    // A millisecond before: one more in the pre-queue, no place shown.
    assert_eq!(join(&mut e, open - 1, "v", "before").unwrap().position, 0);
    // At the moment itself, with nothing run in between: behind all four.
    assert_eq!(join(&mut e, open, "w", "at").unwrap().position, 5);
}

#[test]
fn an_inventory_brought_to_nothing_logs_sold_out() {
    let mut e = Event::new(settings(|s| s.events = 10));
    let (_, told) = logged(&mut e, T0, |e, step| e.set_inventory(step, 2));
    assert!(told.is_empty(), "{told:?}");
    let (_, told) = logged(&mut e, T0 + 1, |e, step| e.add_inventory(step, -2).unwrap());
    assert_eq!(told, ["sold_out"]);
    let (_, told) = logged(&mut e, T0 + 2, |e, step| e.set_inventory(step, 3));
    assert!(told.is_empty(), "reopened: {told:?}");
    let (_, told) = logged(&mut e, T0 + 3, |e, step| e.set_inventory(step, 0));
    assert_eq!(told, ["sold_out"]);
}
