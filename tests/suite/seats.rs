//! Seats against a real server: holds that expire by themselves, ownership,
//! confirm, and the inventory invariant under concurrent clients.

use crate::common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn stats_total(con: &mut redis::Connection, event: &str) -> (i64, i64, i64) {
    let s = tq!(con, "TQ.STATS", event).unwrap();
    (
        int_field(&s, "inventory"),
        int_field(&s, "held"),
        int_field(&s, "sold"),
    )
}

/// Run right after a DEBUG SLEEP that outlasted the hold, before the
/// server's event loop (and so the module's timer) had a turn: whatever it
/// sees comes from the commands themselves, not from the timer.
const AFTER_EXPIRY: &str = r#"
local seat = redis.call('TQ.SEAT', 'ev', 'A1')
local stats = redis.call('TQ.STATS', 'ev')
local held = redis.call('TQ.HOLD', 'ev', 'A1', 'u2', 'TTL', 1)
local now = redis.call('TQ.SEAT', 'ev', 'A1')
return {seat[2], stats[8], stats[10], stats[18], held, now[4]}
"#;

#[test]
fn expiry_is_seen_by_commands_from_that_millisecond_on() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 10).unwrap();
    assert_eq!(
        int(&tq!(&mut con, "TQ.HOLD", "ev", "A1", "u1", "TTL", 1).unwrap()),
        9
    );
    let seat = tq!(&mut con, "TQ.SEAT", "ev", "A1").unwrap();
    assert_eq!(text_field(&seat, "state"), "held");
    let ttl = int_field(&seat, "ttl_ms");
    assert!((900..=1000).contains(&ttl), "{ttl}");
    // One write carries both commands: the server reads them together and
    // runs the script as soon as the sleep ends, before any timer. (Inside
    // the script itself time stands still, so it cannot wait there.)
    let sleep = format!("{:.3}", (ttl + 100) as f64 / 1000.0);
    let (slept, got): (String, Vec<Value>) = redis::pipe()
        .cmd("DEBUG")
        .arg("SLEEP")
        .arg(&sleep)
        .cmd("EVAL")
        .arg(AFTER_EXPIRY)
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert_eq!(slept, "OK");
    assert_eq!(text(&got[0]), "available");
    assert_eq!(int(&got[1]), 10, "inventory");
    assert_eq!(int(&got[2]), 0, "held");
    assert_eq!(int(&got[3]), 1, "holds_expired");
    assert_eq!(int(&got[4]), 9, "the seat can be held again");
    assert_eq!(text(&got[5]), "u2");
    assert_eq!(stats_total(&mut con, "ev"), (9, 1, 0));
}

/// Nothing touches the event after the holds: the stored state still
/// changes by itself within about a second of their expiry (the module's
/// timer), once, and says what the commands said.
#[test]
fn expired_holds_leave_storage_within_a_second_untouched() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 10).unwrap();
    // In one MULTI: the three commands see one now, so the holds expire in
    // the same millisecond and one background step can give them all back
    // (held in three milliseconds, two ticks could split them).
    let mut holds = redis::pipe();
    holds.atomic();
    for seat in ["A1", "A2", "A3"] {
        holds
            .cmd("TQ.HOLD")
            .arg("ev")
            .arg(seat)
            .arg("u1")
            .arg("TTL")
            .arg(1);
    }
    let _: Vec<i64> = holds.query(&mut con).unwrap();
    let held_at = Instant::now();
    let state = state_key("ev");
    let held = digest_value(&mut con, &state);
    // No TQ command touches the event from here on.
    assert!(eventually(Duration::from_secs(3), || {
        digest_value(&mut con, &state) != held
    }));
    let took = held_at.elapsed();
    assert!(took >= Duration::from_millis(990), "{took:?}");
    assert!(
        took < Duration::from_millis(2200),
        "stored expiry took {took:?}"
    );
    let expired = digest_value(&mut con, &state);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        digest_value(&mut con, &state),
        expired,
        "the state kept changing with nothing to do"
    );
    let s = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    assert_eq!(
        (
            int_field(&s, "inventory"),
            int_field(&s, "held"),
            int_field(&s, "holds_expired")
        ),
        (10, 0, 3)
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.CONFIRM", "ev", "A1", "u1")),
        "NOT_HELD"
    );
    assert_eq!(code(&tq!(&mut con, "TQ.RELEASE", "ev", "A1")), "NOT_HELD");
    // The errors wrote nothing: the timer had done it all.
    assert_eq!(digest_value(&mut con, &state), expired);
    assert_event_layout(&mut con, "ev");
}

#[test]
fn default_hold_ttl_comes_from_the_event() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 5).unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A1", "u1").unwrap();
    let ttl = int_field(&tq!(&mut con, "TQ.SEAT", "ev", "A1").unwrap(), "ttl_ms");
    assert!((299_000..=300_000).contains(&ttl), "{ttl}");
    tq!(&mut con, "TQ.CONFIG", "ev", "HOLD-TTL", 20).unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A2", "u1").unwrap();
    let ttl = int_field(&tq!(&mut con, "TQ.SEAT", "ev", "A2").unwrap(), "ttl_ms");
    assert!((19_000..=20_000).contains(&ttl), "{ttl}");
}

#[test]
fn ownership_and_confirm() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 3).unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A1", "alice").unwrap();
    assert_eq!(
        code(&tq!(&mut con, "TQ.RELEASE", "ev", "A1", "bob")),
        "NOT_OWNER"
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.CONFIRM", "ev", "A1", "bob")),
        "NOT_OWNER"
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.CONFIRM", "ev", "A9", "bob")),
        "NOT_HELD"
    );
    assert_eq!(
        text(&tq!(&mut con, "TQ.CONFIRM", "ev", "A1", "alice").unwrap()),
        "OK"
    );
    let seat = tq!(&mut con, "TQ.SEAT", "ev", "A1").unwrap();
    assert_eq!(text_field(&seat, "state"), "sold");
    assert_eq!(text_field(&seat, "user"), "alice");
    assert_eq!(int_field(&seat, "ttl_ms"), -1);
    // Sold is permanent.
    assert_eq!(code(&tq!(&mut con, "TQ.RELEASE", "ev", "A1")), "NOT_HELD");
    assert_eq!(
        code(&tq!(&mut con, "TQ.CONFIRM", "ev", "A1", "alice")),
        "NOT_HELD"
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.HOLD", "ev", "A1", "bob")),
        "SEAT_UNAVAILABLE"
    );
    assert_eq!(stats_total(&mut con, "ev"), (2, 0, 1));
    // Release by the holder, with or without naming them.
    tq!(&mut con, "TQ.HOLD", "ev", "A2", "bob").unwrap();
    assert_eq!(
        int(&tq!(&mut con, "TQ.RELEASE", "ev", "A2", "bob").unwrap()),
        2
    );
    tq!(&mut con, "TQ.HOLD", "ev", "A2", "carol").unwrap();
    assert_eq!(int(&tq!(&mut con, "TQ.RELEASE", "ev", "A2").unwrap()), 2);
    // INVENTORY SET moves only the available count.
    tq!(&mut con, "TQ.HOLD", "ev", "A3", "bob").unwrap();
    assert_eq!(
        int(&tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 10).unwrap()),
        10
    );
    assert_eq!(stats_total(&mut con, "ev"), (10, 1, 1));
}

#[test]
fn many_clients_never_break_the_invariant_or_sell_a_seat_twice() {
    const SEATS: usize = 30;
    const INVENTORY: i64 = 20; // fewer than seats: SOLD_OUT happens too
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", INVENTORY).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sales: Arc<Mutex<HashMap<String, Vec<String>>>> = Default::default();
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let mut con = server.client();
            let stop = stop.clone();
            let sales = sales.clone();
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed + w);
                let user = format!("user{w}");
                let mut outcomes: HashMap<String, usize> = HashMap::new();
                while !stop.load(Ordering::Relaxed) {
                    let seat = format!("S{}", rng.gen_range(0..SEATS));
                    let r = match rng.gen_range(0..10) {
                        0..=4 => tq!(&mut con, "TQ.HOLD", "ev", &seat, &user, "TTL", 1),
                        5..=7 => tq!(&mut con, "TQ.RELEASE", "ev", &seat, &user),
                        _ => tq!(&mut con, "TQ.CONFIRM", "ev", &seat, &user),
                    };
                    let label = match &r {
                        Ok(_) => "ok".to_string(),
                        Err(e) => e.code().unwrap_or("?").to_string(),
                    };
                    assert!(
                        [
                            "ok",
                            "SEAT_UNAVAILABLE",
                            "SOLD_OUT",
                            "NOT_HELD",
                            "NOT_OWNER"
                        ]
                        .contains(&label.as_str()),
                        "{r:?}"
                    );
                    *outcomes.entry(label).or_default() += 1;
                    if r.is_ok() && text(r.as_ref().unwrap()) == "OK" {
                        sales
                            .lock()
                            .unwrap()
                            .entry(seat)
                            .or_default()
                            .push(user.clone());
                    }
                }
                outcomes
            })
        })
        .collect();
    let checker = {
        let mut con = server.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) {
                let (inventory, held, sold) = stats_total(&mut con, "ev");
                assert!(inventory >= 0);
                assert_eq!(
                    inventory + held + sold,
                    INVENTORY,
                    "({inventory},{held},{sold})"
                );
                checks += 1;
            }
            checks
        })
    };
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let mut totals: HashMap<String, usize> = HashMap::new();
    for w in workers {
        for (k, v) in w.join().unwrap() {
            *totals.entry(k).or_default() += v;
        }
    }
    let checks = checker.join().unwrap();
    println!("outcomes {totals:?}, invariant checked {checks} times");
    assert!(checks > 100);
    for kind in ["ok", "SEAT_UNAVAILABLE", "NOT_HELD"] {
        assert!(
            totals.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {totals:?}"
        );
    }
    let sales = sales.lock().unwrap();
    for (seat, buyers) in sales.iter() {
        assert_eq!(buyers.len(), 1, "{seat} sold to {buyers:?}");
        let s = tq!(&mut con, "TQ.SEAT", "ev", seat).unwrap();
        assert_eq!(text_field(&s, "state"), "sold");
        assert_eq!(text_field(&s, "user"), buyers[0]);
    }
    let (inventory, held, sold) = stats_total(&mut con, "ev");
    assert_eq!(sold, sales.len() as i64);
    assert_eq!(inventory + held + sold, INVENTORY);
    // After every hold has expired and the timer has stored it, the stored
    // state (reloaded from an RDB) says the same.
    assert!(eventually(Duration::from_secs(3), || {
        stats_total(&mut con, "ev").1 == 0
    }));
    let state = state_key("ev");
    let mut last = digest_value(&mut con, &state);
    assert!(eventually(Duration::from_secs(3), || {
        std::thread::sleep(Duration::from_millis(200));
        let now = digest_value(&mut con, &state);
        std::mem::replace(&mut last, now.clone()) == now
    }));
    let _: () = redis_query(&mut con, &["DEBUG", "RELOAD"]);
    assert_eq!(digest_value(&mut con, &state), last, "DEBUG RELOAD");
    assert_eq!(stats_total(&mut con, "ev"), (INVENTORY - sold, 0, sold));
    for s in 0..SEATS {
        let seat = format!("S{s}");
        let view = tq!(&mut con, "TQ.SEAT", "ev", &seat).unwrap();
        match sales.get(&seat) {
            Some(buyers) => {
                assert_eq!(text_field(&view, "state"), "sold", "{seat}");
                assert_eq!(text_field(&view, "user"), buyers[0], "{seat}");
            }
            None => assert_eq!(text_field(&view, "state"), "available", "{seat}"),
        }
    }
}
