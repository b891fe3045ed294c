//! Waiting room against a real server: exact positions under random joins
//! and leaves, FIFO admission through the token bucket, abandonment, and
//! TQ.CONFIG.

use crate::common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::{Duration, Instant};

fn position(con: &mut redis::Connection, event: &str, token: &str) -> Value {
    tq!(con, "TQ.POSITION", event, token).unwrap()
}

/// Asserts `admission_rate` for `count` admissions, all within the last
/// 60 s: per second over the time admissions have run (at least 1 s, at
/// most the 60 s window). `first` brackets the first admission (sent,
/// answered), `read` the TQ.STATS that gave `rate`. (The server counts
/// whole milliseconds of a clock of its own: 5 ms of slack.)
fn assert_rate(rate: f64, count: f64, first: (Instant, Instant), read: (Instant, Instant)) {
    let slack = Duration::from_millis(5);
    let span = |from: Instant, to: Instant| {
        to.saturating_duration_since(from)
            .as_secs_f64()
            .clamp(1.0, 60.0)
    };
    let (low, high) = (
        count / span(first.0, read.1 + slack),
        count / span(first.1 + slack, read.0),
    );
    assert!(
        rate >= low - 1e-9 && rate <= high + 1e-9,
        "admission_rate {rate} for {count} admissions: expected {low}..{high}"
    );
}

#[test]
fn positions_match_a_list_model_through_random_joins_and_leaves() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "HEARTBEAT", 31536000).unwrap();
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: Vec<(String, String)> = Vec::new();
    for step in 0..3000 {
        if model.is_empty() || rng.gen_bool(0.6) {
            let user = format!("u{}", rng.gen_range(0..6));
            let token = format!("t{step}");
            let r = tq!(&mut con, "TQ.ENQUEUE", "ev", &user, &token).unwrap();
            model.push((user.clone(), token));
            assert_eq!(int_field(&r, "position"), model.len() as i64);
            let mine = model.iter().filter(|(u, _)| *u == user).count() as i64;
            assert_eq!(int_field(&r, "user_position"), mine);
        } else {
            let (_, token) = model.remove(rng.gen_range(0..model.len()));
            assert_eq!(int(&tq!(&mut con, "TQ.LEAVE", "ev", &token).unwrap()), 1);
        }
        // One random entry each step, every entry every 500 steps.
        let check: Vec<usize> = if model.is_empty() {
            vec![]
        } else if step % 500 == 499 {
            (0..model.len()).collect()
        } else {
            vec![rng.gen_range(0..model.len())]
        };
        for i in check {
            let (user, token) = &model[i];
            let p = position(&mut con, "ev", token);
            assert_eq!(int_field(&p, "position"), i as i64 + 1, "step {step}");
            let before = model[..i].iter().filter(|(u, _)| u == user).count() as i64;
            assert_eq!(int_field(&p, "user_position"), before + 1);
        }
    }
    let stats = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    assert_eq!(int_field(&stats, "waiting"), model.len() as i64);
    let len: i64 = redis_query(&mut con, &["XLEN", "tq:{ev}:queue"]);
    assert_eq!(len, model.len() as i64);
    assert_event_layout(&mut con, "ev");
    for u in 0..6 {
        let user = format!("u{u}");
        let entries = array(&tq!(&mut con, "TQ.USER", "ev", &user).unwrap());
        let expected: Vec<(String, i64)> = model
            .iter()
            .enumerate()
            .filter(|(_, (mu, _))| *mu == user)
            .map(|(i, (_, t))| (t.clone(), i as i64 + 1))
            .collect();
        let got: Vec<(String, i64)> = entries
            .iter()
            .map(|e| (text_field(e, "token"), int_field(e, "position")))
            .collect();
        assert_eq!(got, expected);
    }
}

#[test]
fn admission_is_fifo_through_the_token_bucket() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 2, "BURST", 2).unwrap();
    for i in 0..6 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    // Full bucket of 2: positions 1 and 2 are ready, 3 is not.
    let p = position(&mut con, "ev", "t1");
    assert_eq!((int_field(&p, "ready"), int_field(&p, "eta_ms")), (1, 0));
    let p = position(&mut con, "ev", "t2");
    assert_eq!(int_field(&p, "ready"), 0);
    assert_eq!(int_field(&p, "eta_ms"), -1, "no admission measured yet");
    assert_eq!(
        error_text(&tq!(&mut con, "TQ.ENTER", "ev", "t2")),
        "NOT_READY 3"
    );
    // Second in line may enter before the first: both are within the tokens.
    let first_sent = Instant::now();
    let r = tq!(&mut con, "TQ.ENTER", "ev", "t1").unwrap();
    let first = (first_sent, Instant::now());
    assert_eq!(
        (int_field(&r, "admitted"), int_field(&r, "position_was")),
        (1, 2)
    );
    let r = tq!(&mut con, "TQ.ENTER", "ev", "t0").unwrap();
    assert_eq!(int_field(&r, "position_was"), 1);
    assert_eq!(code(&tq!(&mut con, "TQ.ENTER", "ev", "t0")), "NOT_QUEUED");
    // The bucket is empty: t2 is first and must wait about 0.5 s.
    let started = Instant::now();
    assert_eq!(
        error_text(&tq!(&mut con, "TQ.ENTER", "ev", "t2")),
        "NOT_READY 1"
    );
    let p = position(&mut con, "ev", "t3");
    assert_eq!(int_field(&p, "position"), 2);
    let eta = int_field(&p, "eta_ms");
    assert!(
        eta > 0,
        "two admissions measured: an estimate exists ({eta})"
    );
    assert!(eventually(Duration::from_secs(3), || {
        int_field(&position(&mut con, "ev", "t2"), "ready") == 1
    }));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "refilled too fast: {waited:?}"
    );
    // ready == 1 means ENTER succeeds now.
    assert_eq!(
        int_field(
            &tq!(&mut con, "TQ.ENTER", "ev", "t2").unwrap(),
            "position_was"
        ),
        1
    );
    let read_sent = Instant::now();
    let stats = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    let read = (read_sent, Instant::now());
    assert_eq!(int_field(&stats, "admitted"), 3);
    assert_eq!(int_field(&stats, "waiting"), 3);
    assert_rate(float(&field(&stats, "admission_rate")), 3.0, first, read);
}

#[test]
fn ready_never_disagrees_with_enter() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 20, "BURST", 3).unwrap();
    for i in 0..40 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    let mut admitted = 0;
    let deadline = Instant::now() + Duration::from_secs(4);
    while admitted < 40 && Instant::now() < deadline {
        let token = format!("t{admitted}");
        let ready = int_field(&position(&mut con, "ev", &token), "ready");
        let enter = tq!(&mut con, "TQ.ENTER", "ev", &token);
        if ready == 1 {
            assert!(enter.is_ok(), "ready but {enter:?}");
        }
        if enter.is_ok() {
            admitted += 1;
        } else {
            assert_eq!(code(&enter), "NOT_READY");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // 3 at once, then 20/s: 40 admissions take about 1.85 s.
    assert_eq!(admitted, 40);
}

/// The estimate follows the admission rate actually measured when it is
/// below RATE: here clients enter about 10 per second under RATE 1000, so
/// a fan 40 places from the front waits about 4 s, not the 40 ms RATE
/// alone would give (nor the 4 minutes of 10 admissions spread over 60 s:
/// in the first minute the rate is measured over the time admissions ran).
#[test]
fn eta_tracks_the_measured_admission_rate() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 1000, "BURST", 1).unwrap();
    for i in 0..60 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    let started = Instant::now();
    for i in 0..10 {
        // One admission every 100 ms.
        std::thread::sleep(
            (started + Duration::from_millis(100 * i)).saturating_duration_since(Instant::now()),
        );
        tq!(&mut con, "TQ.ENTER", "ev", format!("t{i}")).unwrap();
    }
    std::thread::sleep(
        (started + Duration::from_millis(1000)).saturating_duration_since(Instant::now()),
    );
    let ran = started.elapsed().as_secs_f64();
    let p = position(&mut con, "ev", "t50");
    assert_eq!(int_field(&p, "position"), 41);
    let eta = int_field(&p, "eta_ms");
    // At most one whole token: the gap is 40 or 41; 10 admissions over
    // `ran` seconds.
    let expected = 40.0 * 1000.0 / (10.0 / ran);
    println!("eta {eta} ms, expected about {expected:.0} ms");
    assert!(
        (eta as f64) > expected / 3.0 && (eta as f64) < expected * 3.0,
        "eta {eta} ms, expected about {expected:.0} ms"
    );
}

#[test]
fn abandoned_entries_drop_out_without_being_polled() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "HEARTBEAT", 1).unwrap();
    for (user, token) in [("ua", "a"), ("ub", "b"), ("uc", "c")] {
        tq!(&mut con, "TQ.ENQUEUE", "ev", user, token).unwrap();
    }
    assert_eq!(int_field(&position(&mut con, "ev", "c"), "position"), 3);
    // c keeps its heartbeat; nobody touches a or b.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1600) {
        position(&mut con, "ev", "c");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(int_field(&position(&mut con, "ev", "c"), "position"), 1);
    assert_eq!(code(&tq!(&mut con, "TQ.POSITION", "ev", "a")), "NOT_QUEUED");
    let stats = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    assert_eq!(
        (int_field(&stats, "waiting"), int_field(&stats, "abandoned")),
        (1, 2)
    );
    for user in ["ua", "ub"] {
        assert!(array(&tq!(&mut con, "TQ.USER", "ev", user).unwrap()).is_empty());
    }
    // Storage follows (a timer on the master).
    assert!(eventually(Duration::from_secs(3), || {
        redis_query::<i64>(&mut con, &["XLEN", "tq:{ev}:queue"]) == 1
    }));
    assert_eq!(int_field(&position(&mut con, "ev", "c"), "position"), 1);
}

#[test]
fn the_module_removes_abandoned_entries_from_storage_by_itself() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "quiet", "HEARTBEAT", 1).unwrap();
    for i in 0..50 {
        tq!(
            &mut con,
            "TQ.ENQUEUE",
            "quiet",
            format!("u{i}"),
            format!("t{i}")
        )
        .unwrap();
    }
    let joined = Instant::now();
    // No TQ command touches the event from here on.
    assert!(eventually(Duration::from_secs(4), || {
        redis_query::<i64>(&mut con, &["XLEN", "tq:{quiet}:queue"]) == 0
    }));
    let took = joined.elapsed();
    // (The server's clock counts whole milliseconds.)
    assert!(
        took >= Duration::from_millis(995),
        "removed {took:?} after the joins, before the heartbeat ran out"
    );
    assert!(took < Duration::from_millis(2600), "took {took:?}");
    let s = tq!(&mut con, "TQ.STATS", "quiet").unwrap();
    assert_eq!(
        (int_field(&s, "waiting"), int_field(&s, "abandoned")),
        (0, 50)
    );
    for i in [0, 1, 49] {
        let user = format!("u{i}");
        assert!(array(&tq!(&mut con, "TQ.USER", "quiet", &user).unwrap()).is_empty());
    }
    assert_eq!(
        code(&tq!(&mut con, "TQ.POSITION", "quiet", "t0")),
        "NOT_QUEUED"
    );
    assert_event_layout(&mut con, "quiet");
}

#[test]
fn config_is_validated_and_stored_per_event() {
    let server = Server::start();
    let mut con = server.client();
    let defaults = tq!(&mut con, "TQ.CONFIG", "ev").unwrap();
    // The v1 fields first, in this order (v2 appends more after them).
    let fields: Vec<(String, i64)> = map(&defaults)
        .iter()
        .take(5)
        .map(|(k, v)| (k.clone(), int(v)))
        .collect();
    assert_eq!(
        fields,
        [
            ("rate", 50),
            ("burst", 500),
            ("heartbeat", 300),
            ("hold_ttl", 300),
            ("dedupe_ttl", 300)
        ]
        .map(|(k, v)| (k.to_string(), v))
    );
    let ok = tq!(
        &mut con,
        "TQ.CONFIG",
        "ev",
        "RATE",
        7,
        "burst",
        9,
        "HOLD-TTL",
        60
    )
    .unwrap();
    assert_eq!(text(&ok), "OK");
    let now = tq!(&mut con, "TQ.CONFIG", "ev").unwrap();
    assert_eq!((int_field(&now, "rate"), int_field(&now, "burst")), (7, 9));
    assert_eq!(
        (int_field(&now, "hold_ttl"), int_field(&now, "heartbeat")),
        (60, 300)
    );
    // Another event keeps the defaults.
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.CONFIG", "other").unwrap(), "rate"),
        50
    );
    let digest: String = redis_query(&mut con, &["DEBUG", "DIGEST"]);
    for bad in [
        vec!["RATE"],
        vec!["RATE", "-1"],
        vec!["RATE", "1000001"],
        vec!["BURST", "x"],
        vec!["HEARTBEAT", "0"],
        vec!["BURST", "0"],
        vec!["HOLD-TTL", "31536001"],
        vec!["DEDUPE-TTL", "1.5"],
        vec!["RATE", "1", "RATE", "2"],
        vec!["SPEED", "1"],
    ] {
        let mut words: Vec<Vec<u8>> = vec![b"TQ.CONFIG".to_vec(), b"ev".to_vec()];
        words.extend(bad.iter().map(|w| w.as_bytes().to_vec()));
        let r = call_args(&mut con, &words);
        assert!(r.is_err(), "TQ.CONFIG ev {bad:?} was accepted");
        assert_eq!(code(&r), "ERR", "{bad:?}");
    }
    let after: String = redis_query(&mut con, &["DEBUG", "DIGEST"]);
    assert_eq!(digest, after);
    // The dedupe window follows the event's DEDUPE-TTL: within it the id
    // is a duplicate; once it closes (1 s), the id joins again.
    tq!(&mut con, "TQ.CONFIG", "ev", "DEDUPE-TTL", 1).unwrap();
    let sent = Instant::now();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t1", "DEDUPE", "d").unwrap();
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t9", "DEDUPE", "d")),
        "DUPLICATE"
    );
    assert!(eventually(Duration::from_secs(3), || {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t2", "DEDUPE", "d").is_ok()
    }));
    let window = sent.elapsed();
    assert!(
        window >= Duration::from_millis(990),
        "the DEDUPE id joined again {window:?} after, within its 1 s window"
    );
    // A TTL given with the call overrides the event's window.
    tq!(&mut con, "TQ.CONFIG", "ev", "DEDUPE-TTL", 300).unwrap();
    tq!(
        &mut con,
        "TQ.ENQUEUE",
        "ev",
        "u",
        "t3",
        "DEDUPE",
        "e",
        "TTL",
        1
    )
    .unwrap();
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t4", "DEDUPE", "e")),
        "DUPLICATE"
    );
    assert!(eventually(Duration::from_secs(3), || {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t4", "DEDUPE", "e").is_ok()
    }));
}

/// A reconfiguration keeps the tokens the bucket holds (capped at the new
/// burst); it does not refill it (contract v2).
#[test]
fn reconfiguring_keeps_the_buckets_tokens() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 0, "BURST", 1).unwrap();
    for i in 0..3 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    tq!(&mut con, "TQ.ENTER", "ev", "t0").unwrap();
    assert_eq!(code(&tq!(&mut con, "TQ.ENTER", "ev", "t1")), "NOT_READY");
    tq!(&mut con, "TQ.CONFIG", "ev", "BURST", 2).unwrap();
    assert_eq!(code(&tq!(&mut con, "TQ.ENTER", "ev", "t1")), "NOT_READY");
    // Refills come from RATE only.
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 20).unwrap();
    assert!(eventually(Duration::from_secs(3), || {
        tq!(&mut con, "TQ.ENTER", "ev", "t1").is_ok()
    }));
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 0).unwrap();
    assert_eq!(int_field(&position(&mut con, "ev", "t2"), "position"), 1);
}

#[test]
fn waited_ms_counts_from_the_join() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t").unwrap();
    std::thread::sleep(Duration::from_millis(250));
    let waited = int_field(&position(&mut con, "ev", "t"), "waited_ms");
    assert!((250..5_000).contains(&waited), "{waited}");
    // Polling (the heartbeat) does not restart the count.
    std::thread::sleep(Duration::from_millis(100));
    let later = int_field(&position(&mut con, "ev", "t"), "waited_ms");
    assert!(later >= waited + 100, "{later} after {waited}");
}

/// The duplicate check covers a token only while it waits: once it left
/// (or was admitted) the same token may join again, at the tail.
#[test]
fn a_token_may_join_again_once_it_no_longer_waits() {
    let server = Server::start();
    let mut con = server.client();
    let first = tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t").unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u2", "other").unwrap();
    assert_eq!(int(&tq!(&mut con, "TQ.LEAVE", "ev", "t").unwrap()), 1);
    let again = tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t").unwrap();
    assert_eq!(int_field(&again, "position"), 2);
    assert_ne!(text_field(&again, "id"), text_field(&first, "id"));
    tq!(&mut con, "TQ.ENTER", "ev", "other").unwrap();
    tq!(&mut con, "TQ.ENTER", "ev", "t").unwrap();
    let third = tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t").unwrap();
    assert_eq!(int_field(&third, "position"), 1);
}

/// `admission_rate` is the admissions of the last 60 s per second, in the
/// first minute over the time admissions have run, and reading it
/// (TQ.STATS) writes nothing. (That admissions older than 60 s leave the
/// figure takes a minute to show: the domain's unit tests check it with a
/// clock of their own.)
#[test]
fn the_admission_rate_is_read_without_writing() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 1000, "BURST", 100).unwrap();
    for i in 0..20 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    let first_sent = Instant::now();
    tq!(&mut con, "TQ.ENTER", "ev", "t0").unwrap();
    let first = (first_sent, Instant::now());
    for i in 1..10 {
        tq!(&mut con, "TQ.ENTER", "ev", format!("t{i}")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1300));
    let before = digest(&mut con);
    let read_sent = Instant::now();
    let s = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    let read = (read_sent, Instant::now());
    assert_rate(float(&field(&s, "admission_rate")), 10.0, first, read);
    assert_eq!(
        (int_field(&s, "admitted"), int_field(&s, "waiting")),
        (10, 10)
    );
    assert_eq!(digest(&mut con), before, "TQ.STATS wrote");
    tq!(&mut con, "TQ.ENTER", "ev", "t10").unwrap();
    let read_sent = Instant::now();
    let s = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    let read = (read_sent, Instant::now());
    assert_rate(float(&field(&s, "admission_rate")), 11.0, first, read);
}

/// What one client of `many_clients_at_once_never_lose_or_double_count_a_fan`
/// did: fans it joined, admitted, and took out with TQ.LEAVE.
#[derive(Default)]
struct ClientTally {
    joined: i64,
    admitted: i64,
    left: i64,
}

/// One client's random mix for `run_for`: joins (half of its fans never
/// poll, so they are abandoned a second later), polls, entries and leaves.
fn busy_client(
    mut con: redis::Connection,
    client: usize,
    seed: u64,
    run_for: Duration,
) -> ClientTally {
    let mut rng = StdRng::seed_from_u64(seed ^ client as u64);
    let mut tally = ClientTally::default();
    // Fans this client still polls, as far as it knows.
    let mut polled: Vec<String> = Vec::new();
    let started = Instant::now();
    let mut step = 0;
    while started.elapsed() < run_for {
        step += 1;
        let action = rng.gen_range(0..10);
        if action < 4 || polled.is_empty() {
            let token = format!("c{client}-{step}");
            let user = format!("u{}", rng.gen_range(0..BUSY_USERS));
            tq!(&mut con, "TQ.ENQUEUE", "busy", &user, &token).unwrap();
            tally.joined += 1;
            if rng.gen_bool(0.5) {
                polled.push(token);
            }
            continue;
        }
        let at = rng.gen_range(0..polled.len());
        let token = polled[at].clone();
        let gone = match action {
            4..=6 => match tq!(&mut con, "TQ.POSITION", "busy", &token) {
                Ok(_) => false,
                Err(e) => {
                    // Abandoned while this client was busy with others.
                    assert_eq!(e.code(), Some("NOT_QUEUED"), "{e}");
                    true
                }
            },
            7 | 8 => match tq!(&mut con, "TQ.ENTER", "busy", &token) {
                Ok(_) => {
                    tally.admitted += 1;
                    true
                }
                Err(e) if e.code() == Some("NOT_READY") => false,
                Err(e) => {
                    assert_eq!(e.code(), Some("NOT_QUEUED"), "{e}");
                    true
                }
            },
            _ => {
                let removed = int(&tq!(&mut con, "TQ.LEAVE", "busy", &token).unwrap());
                tally.left += removed;
                true
            }
        };
        if gone {
            polled.swap_remove(at);
        }
    }
    tally
}

const BUSY_USERS: usize = 12;

/// Many clients at once join, poll, enter and leave while the fans who
/// stop polling are abandoned and removed by the module: afterwards every
/// fan is counted exactly once (admitted, left, abandoned or waiting, and
/// `joined`/`left` agree with the clients), the users' entries are exactly
/// the waiting fans at 1..n, and once all are abandoned the stream is empty.
#[test]
fn many_clients_at_once_never_lose_or_double_count_a_fan() {
    let server = Server::start();
    let mut con = server.client();
    tq!(
        &mut con,
        "TQ.CONFIG",
        "busy",
        "HEARTBEAT",
        1,
        "RATE",
        300,
        "BURST",
        20
    )
    .unwrap();
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let con = server.client();
            std::thread::spawn(move || busy_client(con, client, seed, Duration::from_millis(2500)))
        })
        .collect();
    let mut total = ClientTally::default();
    for client in clients {
        let tally = client.join().unwrap();
        total.joined += tally.joined;
        total.admitted += tally.admitted;
        total.left += tally.left;
    }

    // One transaction (one now for all of it): the figures, the stream
    // and every user's entries, which must agree with each other.
    let mut tx = redis::pipe();
    tx.atomic();
    tx.cmd("TQ.STATS").arg("busy");
    tx.cmd("XLEN").arg("tq:{busy}:queue");
    for u in 0..BUSY_USERS {
        tx.cmd("TQ.USER").arg("busy").arg(format!("u{u}"));
    }
    let replies: Vec<Value> = tx.query(&mut con).unwrap();
    let stats = &replies[0];
    let waiting = int_field(stats, "waiting");
    let stored = int(&replies[1]);
    assert!(total.joined > 500, "only {} joins", total.joined);
    assert!(int_field(stats, "abandoned") > 0, "nobody was abandoned");
    // Entries abandoned a moment ago may still be in the stream until the
    // timer removes them; never fewer.
    assert!(stored >= waiting, "XLEN {stored} < waiting {waiting}");
    assert_eq!(int_field(stats, "admitted"), total.admitted);
    assert_eq!(int_field(stats, "joined"), total.joined);
    assert_eq!(int_field(stats, "left"), total.left);
    assert_eq!(
        total.joined,
        total.admitted + total.left + int_field(stats, "abandoned") + waiting,
        "joined = admitted + left + abandoned + waiting"
    );
    let per_user: Vec<Vec<Value>> = replies[2..].iter().map(array).collect();
    assert_eq!(
        per_user.iter().map(Vec::len).sum::<usize>() as i64,
        waiting,
        "TQ.USER entries vs waiting"
    );
    let mut positions: Vec<i64> = per_user
        .iter()
        .flatten()
        .map(|entry| int_field(entry, "position"))
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=waiting).collect::<Vec<_>>());
    // Nobody polls any more: every fan still waiting is abandoned, and
    // storage follows; the counts still add up.
    assert!(eventually(Duration::from_secs(5), || {
        redis_query::<i64>(&mut con, &["XLEN", "tq:{busy}:queue"]) == 0
    }));
    let stats = tq!(&mut con, "TQ.STATS", "busy").unwrap();
    assert_eq!(int_field(&stats, "waiting"), 0);
    assert_eq!(
        int_field(&stats, "abandoned"),
        total.joined - total.admitted - total.left
    );
    assert_event_layout(&mut con, "busy");
}
