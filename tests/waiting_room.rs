//! Waiting room against a real server: exact positions under random joins
//! and leaves, FIFO admission through the token bucket, abandonment, and
//! TQ.CONFIG.

mod common;

use common::*;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::time::{Duration, Instant};

fn position(con: &mut redis::Connection, event: &str, token: &str) -> Value {
    tq!(con, "TQ.POSITION", event, token).unwrap()
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
    let r = tq!(&mut con, "TQ.ENTER", "ev", "t1").unwrap();
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
    let stats = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    assert_eq!(int_field(&stats, "admitted"), 3);
    assert_eq!(int_field(&stats, "waiting"), 3);
    let rate = float(&field(&stats, "admission_rate"));
    assert!((rate - 3.0 / 60.0).abs() < 1e-9, "{rate}");
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

#[test]
fn eta_tracks_the_measured_admission_rate() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 1000, "BURST", 60).unwrap();
    for i in 0..200 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    for i in 0..60 {
        tq!(&mut con, "TQ.ENTER", "ev", format!("t{i}")).unwrap();
    }
    // 60 admissions in the last minute: 1/s measured, below RATE 1000.
    // t199 is at position 140 with at most a few tokens refilled.
    let p = position(&mut con, "ev", "t199");
    assert_eq!(int_field(&p, "position"), 140);
    let eta = int_field(&p, "eta_ms");
    assert!((100_000..=140_000).contains(&eta), "eta {eta}");
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
    assert!(array(&tq!(&mut con, "TQ.USER", "ev", "ua").unwrap()).is_empty());
    let len: i64 = redis_query(&mut con, &["XLEN", "tq:{ev}:queue"]);
    assert_eq!(len, 1);
    let exists: i64 = redis_query(&mut con, &["EXISTS", "tq:{ev}:user:ua", "tq:{ev}:user:ub"]);
    assert_eq!(exists, 0);
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
    assert!(
        took >= Duration::from_millis(1000),
        "removed before the heartbeat ran out"
    );
    assert!(took < Duration::from_millis(2600), "took {took:?}");
    let left: i64 = redis_query(
        &mut con,
        &[
            "EXISTS",
            "tq:{quiet}:order",
            "tq:{quiet}:beat",
            "tq:{quiet}:user:u1",
        ],
    );
    assert_eq!(left, 0);
    assert_eq!(meta_count(&mut con, "quiet", "abandoned"), 50);
}

#[test]
fn config_is_validated_and_stored_per_event() {
    let server = Server::start();
    let mut con = server.client();
    let defaults = tq!(&mut con, "TQ.CONFIG", "ev").unwrap();
    let fields: Vec<(String, i64)> = map(&defaults)
        .iter()
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
        vec!["HOLD-TTL", "31536001"],
        vec!["DEDUPE-TTL", "1.5"],
        vec!["RATE", "1", "RATE", "2"],
        vec!["SPEED", "1"],
    ] {
        let mut words: Vec<Vec<u8>> = vec![b"TQ.CONFIG".to_vec(), b"ev".to_vec()];
        words.extend(bad.iter().map(|w| w.as_bytes().to_vec()));
        let r = call_args(&mut con, &words);
        assert_eq!(code(&r), "ERR", "{bad:?}");
    }
    let after: String = redis_query(&mut con, &["DEBUG", "DIGEST"]);
    assert_eq!(digest, after);
    // The dedupe window follows the event's DEDUPE-TTL.
    tq!(&mut con, "TQ.CONFIG", "ev", "DEDUPE-TTL", 1).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t1", "DEDUPE", "d").unwrap();
    let pttl: i64 = redis_query(&mut con, &["PTTL", "tq:{ev}:dedupe:d"]);
    assert!((1..=1000).contains(&pttl), "{pttl}");
    // Within it the id is a duplicate; once it closes, the id joins again.
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t9", "DEDUPE", "d")),
        "DUPLICATE"
    );
    assert!(eventually(Duration::from_secs(3), || {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t2", "DEDUPE", "d").is_ok()
    }));
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

#[test]
fn reconfiguring_refills_the_bucket() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 0, "BURST", 1).unwrap();
    for i in 0..3 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    tq!(&mut con, "TQ.ENTER", "ev", "t0").unwrap();
    assert_eq!(code(&tq!(&mut con, "TQ.ENTER", "ev", "t1")), "NOT_READY");
    tq!(&mut con, "TQ.CONFIG", "ev", "BURST", 2).unwrap();
    tq!(&mut con, "TQ.ENTER", "ev", "t2").unwrap();
    tq!(&mut con, "TQ.ENTER", "ev", "t1").unwrap();
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

/// The measured admission rate counts the admissions of the last 60
/// seconds only, however the per-second history was left: by an event
/// that never kept its running sum (tq 0.1, or no admission yet), or with
/// a few seconds or many having left the window since it was last kept.
/// A read (TQ.STATS) changes nothing; a write (TQ.POSITION) drops the
/// seconds that left the window and keeps the sum for the next call.
#[test]
fn the_admission_rate_counts_the_last_minute_only() {
    let server = Server::start();
    let mut con = server.client();
    let (now, _): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    // Seconds 58, 10 and 0 ago are in the window (10 admissions); 61 and
    // 100 ago are not. (58, not 59: the clock may tick during the test.)
    let history = [(100, 50), (61, 7), (58, 5), (10, 3), (0, 2)];
    let cases = [
        ("fresh", &history[..], None),
        ("few-gone", &history[1..], Some((17, now - 62))),
        ("many-gone", &history[..], Some((67, now - 100))),
    ];
    for (ev, seconds, kept) in cases {
        tq!(&mut con, "TQ.CONFIG", ev, "RATE", 1, "BURST", 1).unwrap();
        for i in 0..4 {
            tq!(&mut con, "TQ.ENQUEUE", ev, "u", format!("t{i}")).unwrap();
        }
        let admits = format!("tq:{{{ev}}}:admits");
        for (ago, count) in seconds {
            let second = (now - ago).to_string();
            let _: i64 = redis_query(&mut con, &["HSET", &admits, &second, &count.to_string()]);
        }
        if let Some((sum, from)) = kept {
            let text = format!("rate=1 burst=1 recent_admits={sum} recent_from={from}");
            let _: () = redis_query(&mut con, &["SET", &format!("tq:{{{ev}}}:meta"), &text]);
        }

        let before = digest(&mut con);
        let rate = float(&field(
            &tq!(&mut con, "TQ.STATS", ev).unwrap(),
            "admission_rate",
        ));
        assert!((rate - 10.0 / 60.0).abs() < 1e-9, "{ev}: rate {rate}");
        assert_eq!(digest(&mut con), before, "{ev}: TQ.STATS wrote");

        // t3 waits (one token): its eta comes from the measured rate.
        let p = position(&mut con, ev, "t3");
        assert_eq!(int_field(&p, "ready"), 0, "{ev}");
        let eta = int_field(&p, "eta_ms");
        assert!(
            (18_000..=24_000).contains(&eta),
            "{ev}: eta {eta} at 1/6 per second"
        );
        let mut left: Vec<u64> = redis_query::<Vec<String>>(&mut con, &["HKEYS", &admits])
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [now - 58, now - 10, now], "{ev}: seconds kept");
        let meta = meta_fields(&mut con, ev);
        assert_eq!(meta["recent_admits"], "10", "{ev}");
        let from: u64 = meta["recent_from"].parse().unwrap();
        assert!(
            (now - 59..=now - 57).contains(&from),
            "{ev}: recent_from {from}"
        );

        // An admission adds to the kept sum.
        tq!(&mut con, "TQ.ENTER", ev, "t0").unwrap();
        let rate = float(&field(
            &tq!(&mut con, "TQ.STATS", ev).unwrap(),
            "admission_rate",
        ));
        assert!((rate - 11.0 / 60.0).abs() < 1e-9, "{ev}: rate {rate}");
        assert_eq!(meta_fields(&mut con, ev)["recent_admits"], "11", "{ev}");
    }
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
/// stop polling are abandoned, removed in batches by commands and by the
/// reaper: afterwards every fan is counted exactly once (admitted, left,
/// abandoned or waiting), every index agrees with the queue, and the
/// waiting fans stand at 1..n.
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

    // One transaction: a write that removes whatever is abandoned by now,
    // a heartbeat long enough that nobody else is abandoned while it runs
    // (each command reads the clock), then every read.
    let mut tx = redis::pipe();
    tx.atomic();
    tx.cmd("TQ.LEAVE").arg("busy").arg("nobody");
    tx.cmd("TQ.CONFIG").arg("busy").arg("HEARTBEAT").arg(300);
    tx.cmd("TQ.STATS").arg("busy");
    tx.cmd("XLEN").arg("tq:{busy}:queue");
    tx.cmd("ZCARD").arg("tq:{busy}:order");
    tx.cmd("ZCARD").arg("tq:{busy}:beat");
    tx.cmd("HLEN").arg("tq:{busy}:tokens");
    for u in 0..BUSY_USERS {
        tx.cmd("ZCARD").arg(format!("tq:{{busy}}:user:u{u}"));
    }
    for u in 0..BUSY_USERS {
        tx.cmd("TQ.USER").arg("busy").arg(format!("u{u}"));
    }
    let replies: Vec<Value> = tx.query(&mut con).unwrap();
    let stats = &replies[2];
    let waiting = int(&replies[3]);
    assert!(total.joined > 500, "only {} joins", total.joined);
    assert!(int_field(stats, "abandoned") > 0, "nobody was abandoned");
    assert_eq!(int_field(stats, "waiting"), waiting);
    for (i, index) in ["order", "beat", "tokens"].iter().enumerate() {
        assert_eq!(int(&replies[4 + i]), waiting, "{index} vs queue");
    }
    let per_user: i64 = replies[7..7 + BUSY_USERS].iter().map(int).sum();
    assert_eq!(per_user, waiting, "per-user keys vs queue");
    assert_eq!(int_field(stats, "admitted"), total.admitted);
    assert_eq!(
        total.joined,
        total.admitted + total.left + int_field(stats, "abandoned") + waiting,
        "joined = admitted + left + abandoned + waiting"
    );
    let mut positions: Vec<i64> = replies[7 + BUSY_USERS..]
        .iter()
        .flat_map(array)
        .map(|entry| int_field(&entry, "position"))
        .collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=waiting).collect::<Vec<_>>());
}
