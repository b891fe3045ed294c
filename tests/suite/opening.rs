//! A scheduled opening (contract v2, "Scheduled opening"; TQ.CONFIG
//! OPENS-AT), against real servers: the pre-queue's order is drawn by the
//! README's rule, recomputed here from `shuffle_seed` and the join log
//! with SHA-256 alone; nothing is shown before the opening; the opening
//! happens by itself; replicas, reloads and restarts keep it exactly.

use crate::common::*;

use std::time::Duration;

use redis::{Connection, Value};
use sha2::{Digest, Sha256};

fn seed_of(con: &mut Connection, event: &str) -> Option<[u8; 16]> {
    let config = tq!(con, "TQ.CONFIG", event).unwrap();
    match field(&config, "shuffle_seed") {
        Value::Nil => None,
        v => {
            let text = text(&v);
            assert_eq!(text.len(), 32, "{text}");
            let mut seed = [0u8; 16];
            for (i, b) in seed.iter_mut().enumerate() {
                *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
            }
            Some(seed)
        }
    }
}

/// The README's rule: join i takes place r = first 8 bytes of
/// SHA-256(seed || i as 8 bytes big-endian) mod (i + 1); whoever held r
/// moves to i. Returns the tokens by place, departed ones left out.
fn order_by_the_rule(seed: &[u8; 16], joins: &[String], departed: &[String]) -> Vec<String> {
    let mut places: Vec<Option<&String>> = Vec::new();
    for (i, token) in joins.iter().enumerate() {
        let mut input = seed.to_vec();
        input.extend_from_slice(&(i as u64).to_be_bytes());
        let digest = Sha256::digest(&input);
        let r = (u64::from_be_bytes(digest[..8].try_into().unwrap()) % (i as u64 + 1)) as usize;
        places.push(None);
        places.swap(r, i);
        places[r] = Some(token);
    }
    places
        .into_iter()
        .flatten()
        .filter(|t| !departed.contains(t))
        .cloned()
        .collect()
}

/// Every token of `expected` is at its place (1-based, in order).
fn assert_places(con: &mut Connection, event: &str, expected: &[String]) {
    for (place, token) in expected.iter().enumerate() {
        assert_eq!(position_of(con, event, token), place as i64 + 1, "{token}");
    }
}

fn position_of(con: &mut Connection, event: &str, token: &str) -> i64 {
    int_field(&tq!(con, "TQ.POSITION", event, token).unwrap(), "position")
}

#[test]
fn the_pre_queue_is_drawn_by_the_rule_hidden_until_the_opening_which_happens_by_itself() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut con = master.client();
    let mut r = replica.client();
    let ev = "drop";
    // Far enough ahead for the joins and checks on a slow machine; moved
    // close once they are done.
    let opens = unix_ms() + 600_000;
    run(
        &mut con,
        &[
            "TQ.CONFIG",
            ev,
            "OPENS-AT",
            &opens.to_string(),
            "BURST",
            "5",
            "RATE",
            "0",
            "EVENTS",
            "100",
        ],
    )
    .unwrap();
    let config = tq!(&mut con, "TQ.CONFIG", ev).unwrap();
    assert_eq!(int_field(&config, "opens_at"), opens as i64);
    let mut joins = Vec::new();
    let mut departed = Vec::new();
    for i in 0..60 {
        let token = format!("tok-{i}");
        let joined = tq!(
            &mut con,
            "TQ.ENQUEUE",
            ev,
            format!("fan-{}", i % 13),
            token.as_str()
        )
        .unwrap();
        assert_eq!(
            (
                int_field(&joined, "position"),
                int_field(&joined, "user_position")
            ),
            (0, 0),
            "no place before the opening"
        );
        joins.push(token.clone());
        if i % 7 == 3 {
            assert_eq!(
                tq!(&mut con, "TQ.LEAVE", ev, token.as_str()).unwrap(),
                Value::Int(1)
            );
            departed.push(token);
        }
    }
    // Nothing tells a place, or the seed, before the opening.
    let p = tq!(&mut con, "TQ.POSITION", ev, "tok-0").unwrap();
    assert_eq!(
        (
            int_field(&p, "position"),
            int_field(&p, "user_position"),
            int_field(&p, "ready"),
            int_field(&p, "eta_ms")
        ),
        (0, 0, 0, -1)
    );
    assert!(int_field(&p, "opens_in_ms") > 0);
    let entered = tq!(&mut con, "TQ.ENTER", ev, "tok-0");
    assert_eq!(code(&entered), "NOT_OPEN");
    let ms: i64 = error_text(&entered)["NOT_OPEN ".len()..].parse().unwrap();
    assert!(ms > 0 && ms <= 600_000, "{ms}");
    assert_eq!(seed_of(&mut con, ev), None);
    assert_eq!(seed_of(&mut r, ev), None);
    // fan-1 joined as tok-1, 14, 27, 40 and 53, and stayed.
    let listed = array(&tq!(&mut con, "TQ.USER", ev, "fan-1").unwrap());
    assert_eq!(listed.len(), 5);
    assert!(listed.iter().all(|e| int_field(e, "position") == 0));
    assert!(int_field(&tq!(&mut con, "TQ.STATS", ev).unwrap(), "opens_in_ms") > 0);
    // The opening happens with nobody touching the event.
    let soon = (unix_ms() + 300).to_string();
    run(&mut con, &["TQ.CONFIG", ev, "OPENS-AT", &soon]).unwrap();
    assert!(eventually(Duration::from_secs(6), || told(&mut con, ev)
        .contains(&"opened".to_string())));
    let seed = seed_of(&mut con, ev).expect("shown once open");
    let expected = order_by_the_rule(&seed, &joins, &departed);
    assert_places(&mut con, ev, &expected);
    let front = tq!(&mut con, "TQ.POSITION", ev, expected[0].as_str()).unwrap();
    assert_eq!(int_field(&front, "opens_in_ms"), 0);
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", ev).unwrap(), "opens_in_ms"),
        0
    );
    // The bucket is full at the opening: the first BURST enter at once.
    for token in &expected[..5] {
        tq!(&mut con, "TQ.ENTER", ev, token.as_str()).unwrap();
    }
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENTER", ev, expected[5].as_str())),
        "NOT_READY"
    );
    // A late fan queues behind the whole pre-queue.
    let late = tq!(&mut con, "TQ.ENQUEUE", ev, "late", "tok-late").unwrap();
    assert_eq!(int_field(&late, "position"), expected.len() as i64 - 5 + 1);
    assert_replica_matches(&mut con, &mut r, "the event's digests", |c| {
        event_digests(c, ev)
    });
    assert_eq!(seed_of(&mut r, ev), Some(seed));
    // OPENS-AT is fixed from now on.
    let again = run(
        &mut con,
        &[
            "TQ.CONFIG",
            ev,
            "OPENS-AT",
            &(unix_ms() + 60_000).to_string(),
        ],
    );
    assert_eq!(
        error_text(&again),
        "ERR OPENS-AT can be changed only before the event opens"
    );
}

#[test]
fn a_restart_before_and_after_the_opening_keeps_every_place() {
    let server = Server::start_with(&["--appendonly", "yes"]);
    let mut con = server.client();
    let ev = "drop";
    // Far ahead while the pre-queue forms; moved close before the restart.
    let far = unix_ms() + 600_000;
    run(&mut con, &["TQ.CONFIG", ev, "OPENS-AT", &far.to_string()]).unwrap();
    let mut joins = Vec::new();
    let mut departed = Vec::new();
    let join =
        |con: &mut Connection, i: usize, joins: &mut Vec<String>, departed: &mut Vec<String>| {
            let token = format!("tok-{i}");
            tq!(
                con,
                "TQ.ENQUEUE",
                ev,
                format!("fan-{}", i % 5),
                token.as_str()
            )
            .unwrap();
            joins.push(token.clone());
            if i % 4 == 1 {
                tq!(con, "TQ.LEAVE", ev, token.as_str()).unwrap();
                departed.push(token);
            }
        };
    for i in 0..40 {
        join(&mut con, i, &mut joins, &mut departed);
    }
    // Reloaded from an RDB before the opening: still a pre-queue, empty
    // places and all, and the joins after it draw on alike.
    let before = event_digests(&mut con, ev);
    let _: String = redis_query(&mut con, &["DEBUG", "RELOAD"]);
    assert_eq!(event_digests(&mut con, ev), before);
    assert_eq!(seed_of(&mut con, ev), None);
    for i in 40..80 {
        join(&mut con, i, &mut joins, &mut departed);
    }
    // The server goes down before the opening and comes back after it: the
    // AOF's records replay, and the opening happens once it is up.
    let opens = unix_ms() + 1_500;
    run(&mut con, &["TQ.CONFIG", ev, "OPENS-AT", &opens.to_string()]).unwrap();
    assert_eq!(seed_of(&mut con, ev), None, "opened before the shutdown");
    let mut server = server;
    server.shutdown_save();
    std::thread::sleep(Duration::from_millis(opens.saturating_sub(unix_ms()) + 200));
    let server = server.restart(&[]);
    let mut con = server.client();
    let seed = {
        let mut seed = None;
        assert!(eventually(Duration::from_secs(5), || {
            seed = seed_of(&mut con, ev);
            seed.is_some()
        }));
        seed.unwrap()
    };
    let expected = order_by_the_rule(&seed, &joins, &departed);
    assert_places(&mut con, ev, &expected);
    // And after the opening, an AOF restart keeps the order.
    let before = event_digests(&mut con, ev);
    let mut server = server;
    server.shutdown_save();
    let server = server.restart(&[]);
    let mut con = server.client();
    assert_eq!(event_digests(&mut con, ev), before);
    assert_places(&mut con, ev, &expected);
}

#[test]
fn opens_at_refuses_bad_input_and_changes_nothing() {
    let server = Server::start();
    let mut con = server.client();
    // An event open from its start (someone joined) gets no opening.
    tq!(&mut con, "TQ.ENQUEUE", "open", "fan", "tok").unwrap();
    let before = event_digests(&mut con, "open");
    let later = (unix_ms() + 60_000).to_string();
    let refused = run(&mut con, &["TQ.CONFIG", "open", "OPENS-AT", &later]);
    assert_eq!(
        error_text(&refused),
        "ERR OPENS-AT can be changed only before the event opens"
    );
    assert_eq!(event_digests(&mut con, "open"), before);
    // Bad values, for an event that could take one.
    tq!(&mut con, "TQ.INVENTORY", "soon", "SET", 5).unwrap();
    let before = event_digests(&mut con, "soon");
    for bad in [
        vec!["OPENS-AT", "-1"],
        vec!["OPENS-AT", "soon"],
        vec!["OPENS-AT", ""],
        vec!["OPENS-AT", "281474976710657"],
        vec!["OPENS-AT", "1.5"],
        vec!["OPENS-AT"],
        vec!["OPENS-AT", "1", "OPENS-AT", "2"],
    ] {
        let mut words = vec!["TQ.CONFIG", "soon"];
        words.extend(&bad);
        assert_eq!(code(&run(&mut con, &words)), "ERR", "{bad:?}");
    }
    assert_eq!(event_digests(&mut con, "soon"), before);
    // A good one, and the pre-queue that follows; a past time opens now.
    run(&mut con, &["TQ.CONFIG", "soon", "OPENS-AT", &later]).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "soon", "fan", "tok").unwrap();
    assert_eq!(position_of(&mut con, "soon", "tok"), 0);
    run(&mut con, &["TQ.CONFIG", "soon", "OPENS-AT", "1"]).unwrap();
    assert_eq!(position_of(&mut con, "soon", "tok"), 1);
    assert!(seed_of(&mut con, "soon").is_some());
    let config = tq!(&mut con, "TQ.CONFIG", "soon").unwrap();
    assert_eq!(int_field(&config, "opens_at"), 1);
}
