//! The event log for workers (contract v2, "Event log for workers"):
//! `EVENTS n` and the Stream `tq:{E}:events`, against real servers.

use crate::common::*;

use std::time::{Duration, Instant};

use redis::Value;

#[test]
fn the_log_tells_every_change_with_what_it_names() {
    let server = Server::start();
    let mut con = server.client();
    let ev = "gig";
    let started = unix_ms();
    tq!(
        &mut con,
        "TQ.CONFIG",
        ev,
        "EVENTS",
        100,
        "HEARTBEAT",
        1,
        "SESSION",
        1
    )
    .unwrap();
    for (user, token) in [("ann", "t1"), ("bo", "t2"), ("cy", "t3")] {
        tq!(&mut con, "TQ.ENQUEUE", ev, user, token).unwrap();
    }
    assert_eq!(
        told(&mut con, ev),
        Vec::<String>::new(),
        "joins are not logged"
    );
    let pass = text_field(&tq!(&mut con, "TQ.ENTER", ev, "t1").unwrap(), "pass");
    tq!(&mut con, "TQ.LEAVE", ev, "t2").unwrap();
    tq!(&mut con, "TQ.INVENTORY", ev, "SET", 3).unwrap();
    run(
        &mut con,
        &["TQ.HOLD", ev, "A1", "ann", "TTL", "1", "WITH", "A2"],
    )
    .unwrap();
    tq!(&mut con, "TQ.RELEASE", ev, "A2").unwrap();
    let expected_first = [
        format!("admitted pass={pass} token=t1 user=ann"),
        "left token=t2 user=bo".into(),
        "held seat=A1 user=ann".into(),
        "held seat=A2 user=ann".into(),
        "released seat=A2 user=ann".into(),
    ];
    // (A stalled machine may have let a background step in already.)
    let background_kinds = ["abandoned", "hold_expired", "pass_lapsed"];
    let commanded: Vec<String> = told(&mut con, ev)
        .into_iter()
        .filter(|l| !background_kinds.iter().any(|k| l.starts_with(k)))
        .collect();
    assert_eq!(commanded, expected_first);
    // With nobody touching the event: t3 is abandoned, A1's hold runs out,
    // ann's pass lapses.
    let background = [
        "abandoned token=t3 user=cy".to_string(),
        "hold_expired seat=A1 user=ann".into(),
        format!("pass_lapsed pass={pass}"),
    ];
    assert!(
        eventually(Duration::from_secs(4), || {
            let now = told(&mut con, ev);
            background.iter().all(|b| now.contains(b))
        }),
        "{:?}",
        told(&mut con, ev)
    );
    // A trim, a revoke, a sale down to sold out (a longer heartbeat, so
    // that the entry to trim is not abandoned first).
    tq!(&mut con, "TQ.CONFIG", ev, "HEARTBEAT", 60).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", ev, "di", "t4").unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(
        tq!(&mut con, "TQ.TRIM", ev, "MAXAGE", 1).unwrap(),
        Value::Int(1)
    );
    tq!(&mut con, "TQ.ENQUEUE", ev, "ed", "t5").unwrap();
    let pass5 = text_field(&tq!(&mut con, "TQ.ENTER", ev, "t5").unwrap(), "pass");
    tq!(&mut con, "TQ.PASS", ev, "ed", "REVOKE").unwrap();
    run(&mut con, &["TQ.HOLD", ev, "B1", "ed", "WITH", "B2", "B3"]).unwrap();
    run(
        &mut con,
        &["TQ.CONFIRM", ev, "B1", "ed", "WITH", "B2", "B3"],
    )
    .unwrap();
    let all = told(&mut con, ev);
    let tail: Vec<String> = all[all.len() - 10..].to_vec();
    assert_eq!(
        tail,
        [
            "trimmed token=t4 user=di".to_string(),
            format!("admitted pass={pass5} token=t5 user=ed"),
            format!("pass_revoked pass={pass5}"),
            "held seat=B1 user=ed".into(),
            "held seat=B2 user=ed".into(),
            "held seat=B3 user=ed".into(),
            "confirmed seat=B1 user=ed".into(),
            "confirmed seat=B2 user=ed".into(),
            "confirmed seat=B3 user=ed".into(),
            "sold_out".into(),
        ]
    );
    assert_eq!(
        all.len(),
        expected_first.len() + background.len() + tail.len()
    );
    // Ids are the times of the steps that wrote them; the layout is the
    // event's three keys.
    let ended = unix_ms();
    for (id, _) in log_entries(&mut con, ev) {
        let ms: u64 = id.split_once('-').unwrap().0.parse().unwrap();
        assert!(
            (started..=ended).contains(&ms),
            "{id} outside {started}..={ended}"
        );
    }
    assert_event_layout(&mut con, ev);
    assert_eq!(key_type(&mut con, &log_key(ev)), "stream");
}

#[test]
fn a_worker_blocked_on_its_group_sees_a_hold_expire_within_a_second() {
    let server = Server::start();
    let mut con = server.client();
    let mut worker = server.client();
    let ev = "gig";
    tq!(&mut con, "TQ.CONFIG", ev, "EVENTS", 100).unwrap();
    tq!(&mut con, "TQ.INVENTORY", ev, "SET", 5).unwrap();
    // The group is made before the log has an entry (MKSTREAM): tq
    // appends to that stream.
    let _: String = redis_query(
        &mut worker,
        &["XGROUP", "CREATE", &log_key(ev), "w", "$", "MKSTREAM"],
    );
    tq!(&mut con, "TQ.HOLD", ev, "A1", "ann", "TTL", 1).unwrap();
    let held_at = Instant::now();
    let mut seen = Vec::new();
    while held_at.elapsed() < Duration::from_secs(4) {
        let got: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("w")
            .arg("c1")
            .arg("BLOCK")
            .arg(3000)
            .arg("STREAMS")
            .arg(log_key(ev))
            .arg(">")
            .query(&mut worker)
            .unwrap();
        let text = format!("{got:?}");
        seen.push(text.clone());
        if text.contains("hold_expired") {
            break;
        }
    }
    let elapsed = held_at.elapsed();
    assert!(
        seen.last().is_some_and(|t| t.contains("hold_expired")),
        "{seen:?}"
    );
    // Expired at 1 s, in storage (and so in the log) within a second more.
    assert!(
        elapsed < Duration::from_millis(2100),
        "seen after {elapsed:?}"
    );
    assert_eq!(tq!(&mut con, "TQ.INVENTORY", ev).unwrap(), Value::Int(5));
}

#[test]
fn the_log_is_kept_near_its_length_and_absent_when_off() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "logged", "EVENTS", 10).unwrap();
    for ev in ["logged", "quiet"] {
        tq!(&mut con, "TQ.INVENTORY", ev, "SET", 10).unwrap();
        for i in 0..60 {
            let seat = format!("S{}", i % 7);
            tq!(&mut con, "TQ.HOLD", ev, seat.as_str(), "ann").unwrap();
            tq!(&mut con, "TQ.RELEASE", ev, seat.as_str()).unwrap();
            let len: i64 = redis_query(&mut con, &["XLEN", &log_key(ev)]);
            if ev == "logged" {
                assert!(
                    len <= 11 && len >= (2 * i + 2).min(10),
                    "after {i}: {len} entries"
                );
            } else {
                assert_eq!(len, 0);
            }
        }
    }
    // Oldest first out: what is kept is the latest.
    let last = told(&mut con, "logged");
    assert_eq!(
        last.last().map(String::as_str),
        Some("released seat=S3 user=ann")
    );
    assert_eq!(event_keys(&mut con, "quiet").len(), 1, "state only");
    // Off again: the log stays for its readers, and grows no more.
    tq!(&mut con, "TQ.CONFIG", "logged", "EVENTS", 0).unwrap();
    let before = log_entries(&mut con, "logged");
    tq!(&mut con, "TQ.HOLD", "logged", "Z1", "ann").unwrap();
    assert_eq!(log_entries(&mut con, "logged"), before);
    // The module default applies to events made after it is set.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tq.events")
        .arg(5)
        .query(&mut con)
        .unwrap();
    tq!(&mut con, "TQ.INVENTORY", "later", "SET", 1).unwrap();
    tq!(&mut con, "TQ.HOLD", "later", "A1", "ann").unwrap();
    let config = tq!(&mut con, "TQ.CONFIG", "later").unwrap();
    assert_eq!(int_field(&config, "events"), 5);
    assert_eq!(told(&mut con, "later"), ["held seat=A1 user=ann"]);
}

#[test]
fn the_log_replicates_and_an_aof_reload_rebuilds_it_the_same() {
    let (master, replica) = Server::start_master_and_replica(&["--appendonly", "yes"], &[]);
    let mut con = master.client();
    let mut r = replica.client();
    let ev = "gig";
    tq!(
        &mut con,
        "TQ.CONFIG",
        ev,
        "EVENTS",
        50,
        "HEARTBEAT",
        1,
        "SESSION",
        1
    )
    .unwrap();
    tq!(&mut con, "TQ.INVENTORY", ev, "SET", 40).unwrap();
    for i in 0..30 {
        let (user, token) = (format!("u{}", i % 4), format!("t{i}"));
        tq!(&mut con, "TQ.ENQUEUE", ev, user.as_str(), token.as_str()).unwrap();
        if i % 3 == 0 {
            let _ = tq!(&mut con, "TQ.ENTER", ev, token.as_str());
        }
        if i % 5 == 0 {
            tq!(&mut con, "TQ.LEAVE", ev, token.as_str()).unwrap();
        }
        let seat = format!("S{i}");
        tq!(
            &mut con,
            "TQ.HOLD",
            ev,
            seat.as_str(),
            user.as_str(),
            "TTL",
            1
        )
        .unwrap();
        if i % 2 == 0 {
            tq!(&mut con, "TQ.CONFIRM", ev, seat.as_str(), user.as_str()).unwrap();
        }
    }
    // The background steps (expiries, lapses, abandonment) log too: wait
    // until everything has lapsed and left storage.
    assert!(eventually(Duration::from_secs(15), || {
        let before = event_digests(&mut con, ev);
        std::thread::sleep(Duration::from_millis(1200));
        let waiting = stat(&mut con, ev, "waiting") + stat(&mut con, ev, "held");
        waiting + stat(&mut con, ev, "active") == 0 && event_digests(&mut con, ev) == before
    }));
    assert_replica_matches(&mut con, &mut r, "the event's digests", |c| {
        event_digests(c, ev)
    });
    assert_ne!(event_digests(&mut con, ev).log, NO_DIGEST);
    let types: Vec<String> = told(&mut con, ev)
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    for kind in ["hold_expired", "confirmed", "abandoned", "pass_lapsed"] {
        assert!(types.iter().any(|t| t == kind), "no {kind} in {types:?}");
    }
    let len: i64 = redis_query(&mut con, &["XLEN", &log_key(ev)]);
    assert!((50..=55).contains(&len), "{len}");
    // Replaying the AOF rebuilds the same log.
    let _: String = redis_query(&mut con, &["BGREWRITEAOF"]);
    wait_rewrite_done(&mut con);
    tq!(&mut con, "TQ.HOLD", ev, "late", "u1").unwrap();
    let before = event_digests(&mut con, ev);
    let _: String = redis_query(&mut con, &["DEBUG", "LOADAOF"]);
    assert_eq!(event_digests(&mut con, ev), before);
}

#[test]
fn a_tq_config_that_brings_the_opening_forward_logs_it() {
    let server = Server::start();
    let mut con = server.client();
    let later = (unix_ms() + 600_000).to_string();
    run(
        &mut con,
        &["TQ.CONFIG", "drop", "EVENTS", "100", "OPENS-AT", &later],
    )
    .unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "drop", "fan", "t").unwrap();
    assert_eq!(told(&mut con, "drop"), Vec::<String>::new());
    tq!(&mut con, "TQ.CONFIG", "drop", "OPENS-AT", 0).unwrap();
    assert_eq!(told(&mut con, "drop"), ["opened"]);
    // And one set in the past opens at once, logged too.
    run(&mut con, &["TQ.CONFIG", "past", "EVENTS", "100"]).unwrap();
    tq!(&mut con, "TQ.CONFIG", "past", "OPENS-AT", 1).unwrap();
    assert_eq!(told(&mut con, "past"), ["opened"]);
}

#[test]
fn a_log_key_of_another_type_is_refused_and_nothing_changes() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "gig", "SET", 3).unwrap();
    let _: () = redis::cmd("SET")
        .arg(log_key("gig"))
        .arg("not a stream")
        .query(&mut con)
        .unwrap();
    // Without a log the key is none of tq's business.
    tq!(&mut con, "TQ.HOLD", "gig", "A1", "ann").unwrap();
    tq!(&mut con, "TQ.CONFIG", "gig", "EVENTS", 10).unwrap();
    let before = event_digests(&mut con, "gig");
    for words in [
        vec!["TQ.HOLD", "gig", "A2", "ann"],
        vec!["TQ.RELEASE", "gig", "A1"],
        vec!["TQ.INVENTORY", "gig", "ADD", "1"],
        vec!["TQ.PASS", "gig", "ann", "REVOKE"],
    ] {
        assert_eq!(code(&run(&mut con, &words)), "WRONGTYPE", "{words:?}");
    }
    assert_eq!(event_digests(&mut con, "gig"), before);
    // A join or a poll writes nothing to the log itself: it does not look
    // at the key...
    tq!(&mut con, "TQ.ENQUEUE", "gig", "ann", "t1").unwrap();
    tq!(&mut con, "TQ.POSITION", "gig", "t1").unwrap();
    // ... unless something falls due before it (here a hold that ran out,
    // which the background step could not log either).
    tq!(&mut con, "TQ.CONFIG", "gig", "EVENTS", 0).unwrap();
    tq!(&mut con, "TQ.HOLD", "gig", "B1", "bo", "TTL", 1).unwrap();
    tq!(&mut con, "TQ.CONFIG", "gig", "EVENTS", 10).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let before = event_digests(&mut con, "gig");
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "gig", "bo", "t2")),
        "WRONGTYPE"
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.POSITION", "gig", "t1")),
        "WRONGTYPE"
    );
    assert_eq!(event_digests(&mut con, "gig"), before);
    // Reads are not concerned.
    let seat = tq!(&mut con, "TQ.SEAT", "gig", "A1").unwrap();
    assert_eq!(text_field(&seat, "state"), "held");
}
