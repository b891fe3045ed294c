//! The seed report's ten checks of the Lua gateway, restated on the TQ
//! contract, against a real redis-server with the module.

use crate::common::*;
use std::sync::{Arc, Barrier};
use std::time::Duration;

#[test]
fn check1_enqueue_then_duplicate_leaves_one_entry() {
    let server = Server::start();
    let mut con = server.client();
    let first = tq!(
        &mut con,
        "TQ.ENQUEUE",
        "concert",
        "user-1",
        "tok-1",
        "DEDUPE",
        "req-1"
    )
    .unwrap();
    let id = text_field(&first, "id");
    assert_eq!(int_field(&first, "position"), 1);
    let again = tq!(
        &mut con,
        "TQ.ENQUEUE",
        "concert",
        "user-1",
        "tok-2",
        "DEDUPE",
        "req-1"
    );
    assert_eq!(error_text(&again), format!("DUPLICATE {id}"));
    let same_token = tq!(&mut con, "TQ.ENQUEUE", "concert", "user-1", "tok-1");
    assert_eq!(error_text(&same_token), format!("DUPLICATE {id}"));
    let len: i64 = redis_query(&mut con, &["XLEN", "tq:{concert}:queue"]);
    assert_eq!(len, 1);
    assert_event_layout(&mut con, "concert");
}

#[test]
fn check2_hundred_concurrent_clients_one_dedupe_id() {
    let server = Server::start();
    let barrier = Arc::new(Barrier::new(100));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let mut con = server.client();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let token = format!("tok-{i}");
                tq!(
                    &mut con,
                    "TQ.ENQUEUE",
                    "concert",
                    format!("user-{i}"),
                    token,
                    "DEDUPE",
                    "same"
                )
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let dup = results
        .iter()
        .filter(|r| r.is_err() && code(r) == "DUPLICATE")
        .count();
    assert_eq!((ok, dup), (1, 99));
    let mut con = server.client();
    let len: i64 = redis_query(&mut con, &["XLEN", "tq:{concert}:queue"]);
    assert_eq!(len, 1);
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", "concert").unwrap(), "duplicates"),
        99
    );
}

#[test]
fn check3_hold_takes_a_seat_once() {
    let server = Server::start();
    let mut con = server.client();
    assert_eq!(
        int(&tq!(&mut con, "TQ.INVENTORY", "concert", "SET", 100).unwrap()),
        100
    );
    assert_eq!(
        int(&tq!(&mut con, "TQ.HOLD", "concert", "A-12", "user-1").unwrap()),
        99
    );
    let second = tq!(&mut con, "TQ.HOLD", "concert", "A-12", "user-2");
    assert_eq!(code(&second), "SEAT_UNAVAILABLE");
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "concert").unwrap()), 99);
    let seat = tq!(&mut con, "TQ.SEAT", "concert", "A-12").unwrap();
    assert_eq!(text_field(&seat, "state"), "held");
    assert_eq!(text_field(&seat, "user"), "user-1");
}

#[test]
fn check4_release_gives_the_seat_back() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "concert", "SET", 100).unwrap();
    tq!(&mut con, "TQ.HOLD", "concert", "A-12", "user-1").unwrap();
    assert_eq!(
        int(&tq!(&mut con, "TQ.RELEASE", "concert", "A-12").unwrap()),
        100
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.RELEASE", "concert", "A-12")),
        "NOT_HELD"
    );
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "concert").unwrap()), 100);
    let seat = tq!(&mut con, "TQ.SEAT", "concert", "A-12").unwrap();
    assert_eq!(text_field(&seat, "state"), "available");
    assert_eq!(field(&seat, "user"), Value::Nil);
}

#[test]
fn check5_sold_out_never_goes_negative() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "concert", "SET", 0).unwrap();
    assert_eq!(
        code(&tq!(&mut con, "TQ.HOLD", "concert", "A-1", "user-1")),
        "SOLD_OUT"
    );
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "concert").unwrap()), 0);
    tq!(&mut con, "TQ.INVENTORY", "concert", "SET", 1).unwrap();
    assert_eq!(
        int(&tq!(&mut con, "TQ.HOLD", "concert", "A-1", "user-1").unwrap()),
        0
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.HOLD", "concert", "A-2", "user-2")),
        "SOLD_OUT"
    );
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "concert").unwrap()), 0);
    let seat = tq!(&mut con, "TQ.SEAT", "concert", "A-2").unwrap();
    assert_eq!(text_field(&seat, "state"), "available");
}

#[test]
fn check6_per_user_fifo() {
    let server = Server::start();
    let mut con = server.client();
    let mut ids = Vec::new();
    for i in 1..=5 {
        let r = tq!(
            &mut con,
            "TQ.ENQUEUE",
            "concert",
            "user-123",
            format!("t{i}")
        )
        .unwrap();
        assert_eq!(int_field(&r, "user_position"), i);
        assert_eq!(int_field(&r, "position"), i);
        ids.push(text_field(&r, "id"));
    }
    let entries = array(&tq!(&mut con, "TQ.USER", "concert", "user-123").unwrap());
    let tokens: Vec<String> = entries.iter().map(|e| text_field(e, "token")).collect();
    assert_eq!(tokens, ["t1", "t2", "t3", "t4", "t5"]);
    let got_ids: Vec<String> = entries.iter().map(|e| text_field(e, "id")).collect();
    assert_eq!(got_ids, ids);
    let positions: Vec<i64> = entries.iter().map(|e| int_field(e, "position")).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
}

#[test]
fn check7_multi_user_order_is_kept_per_user() {
    let server = Server::start();
    let mut con = server.client();
    for round in 1..=3 {
        for user in ["user-A", "user-B", "user-C"] {
            let r = tq!(
                &mut con,
                "TQ.ENQUEUE",
                "concert",
                user,
                format!("{user}-{round}")
            )
            .unwrap();
            assert_eq!(int_field(&r, "user_position"), round);
        }
    }
    for (u, user) in ["user-A", "user-B", "user-C"].iter().enumerate() {
        let entries = array(&tq!(&mut con, "TQ.USER", "concert", *user).unwrap());
        let tokens: Vec<String> = entries.iter().map(|e| text_field(e, "token")).collect();
        assert_eq!(
            tokens,
            (1..=3).map(|r| format!("{user}-{r}")).collect::<Vec<_>>()
        );
        let positions: Vec<i64> = entries.iter().map(|e| int_field(e, "position")).collect();
        let expected: Vec<i64> = (0..3).map(|r| r * 3 + u as i64 + 1).collect();
        assert_eq!(positions, expected);
    }
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", "concert").unwrap(), "waiting"),
        9
    );
}

#[test]
fn check8_leave_removes_exactly_that_entry() {
    let server = Server::start();
    let mut con = server.client();
    for t in ["t1", "t2", "t3"] {
        tq!(&mut con, "TQ.ENQUEUE", "concert", "user-1", t).unwrap();
    }
    assert_eq!(int(&tq!(&mut con, "TQ.LEAVE", "concert", "t2").unwrap()), 1);
    assert_eq!(int(&tq!(&mut con, "TQ.LEAVE", "concert", "t2").unwrap()), 0);
    let len: i64 = redis_query(&mut con, &["XLEN", "tq:{concert}:queue"]);
    assert_eq!(len, 2);
    let entries = array(&tq!(&mut con, "TQ.USER", "concert", "user-1").unwrap());
    let tokens: Vec<String> = entries.iter().map(|e| text_field(e, "token")).collect();
    assert_eq!(tokens, ["t1", "t3"]);
    assert_eq!(
        code(&tq!(&mut con, "TQ.POSITION", "concert", "t2")),
        "NOT_QUEUED"
    );
}

#[test]
fn check9_trim_by_age() {
    let server = Server::start();
    let mut con = server.client();
    // An entry that has waited over a second, then a fresh one.
    let old = tq!(&mut con, "TQ.ENQUEUE", "concert", "u", "old").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    tq!(&mut con, "TQ.ENQUEUE", "concert", "u", "new").unwrap();
    let p = tq!(&mut con, "TQ.POSITION", "concert", "old").unwrap();
    assert_eq!(int_field(&p, "position"), 1);
    assert!(int_field(&p, "waited_ms") >= 1200);
    assert_eq!(
        int(&tq!(&mut con, "TQ.TRIM", "concert", "MAXAGE", 1).unwrap()),
        1
    );
    let entries = array(&tq!(&mut con, "TQ.USER", "concert", "u").unwrap());
    assert_eq!(entries.len(), 1);
    assert_eq!(text_field(&entries[0], "token"), "new");
    assert_eq!(int_field(&entries[0], "position"), 1);
    let len: i64 = redis_query(&mut con, &["XLEN", "tq:{concert}:queue"]);
    assert_eq!(len, 1);
    assert_eq!(
        code(&tq!(&mut con, "TQ.POSITION", "concert", "old")),
        "NOT_QUEUED"
    );
    let stats = tq!(&mut con, "TQ.STATS", "concert").unwrap();
    assert_eq!(
        (int_field(&stats, "waiting"), int_field(&stats, "trimmed")),
        (1, 1)
    );
    assert_eq!(
        int(&tq!(&mut con, "TQ.TRIM", "concert", "MAXAGE", 300).unwrap()),
        0
    );
    // The trimmed entry left the token index too: its token joins again,
    // at the tail, with a new id.
    let again = tq!(&mut con, "TQ.ENQUEUE", "concert", "u", "old").unwrap();
    assert_eq!(int_field(&again, "position"), 2);
    assert_ne!(text_field(&again, "id"), text_field(&old, "id"));
}

#[test]
fn check10_global_position_shifts_after_leave() {
    let server = Server::start();
    let mut con = server.client();
    for i in 1..=5 {
        let user = format!("user-{}", i % 2);
        tq!(&mut con, "TQ.ENQUEUE", "concert", user, format!("t{i}")).unwrap();
    }
    for i in 1..=5 {
        let p = tq!(&mut con, "TQ.POSITION", "concert", format!("t{i}")).unwrap();
        assert_eq!(int_field(&p, "position"), i);
    }
    tq!(&mut con, "TQ.LEAVE", "concert", "t2").unwrap();
    for (i, expected) in [(1, 1), (3, 2), (4, 3), (5, 4)] {
        let p = tq!(&mut con, "TQ.POSITION", "concert", format!("t{i}")).unwrap();
        assert_eq!(int_field(&p, "position"), expected, "t{i}");
    }
}

#[test]
fn maps_are_flat_arrays_in_resp2_and_maps_in_resp3() {
    let server = Server::start();
    let mut resp2 = server.client();
    let r = tq!(&mut resp2, "TQ.ENQUEUE", "concert", "u", "t1").unwrap();
    let items = array(&r);
    assert_eq!(items.len(), 6);
    let names: Vec<String> = items.iter().step_by(2).map(text).collect();
    assert_eq!(names, ["id", "position", "user_position"]);

    let mut resp3 = server.client_resp3();
    let r = tq!(&mut resp3, "TQ.POSITION", "concert", "t1").unwrap();
    assert!(matches!(r, Value::Map(_)), "{r:?}");
    let names: Vec<String> = map(&r).into_iter().map(|(k, _)| k).collect();
    // The v1 fields in order, then only the ones v2 appends, in order.
    assert_eq!(
        names[..5],
        ["position", "user_position", "ready", "eta_ms", "waited_ms"]
    );
    let v2 = ["opens_in_ms", "sold_out"];
    assert!(
        v2.starts_with(&names[5..].iter().map(String::as_str).collect::<Vec<_>>()),
        "{names:?}"
    );
    let stats = tq!(&mut resp3, "TQ.STATS", "concert").unwrap();
    assert!(matches!(field(&stats, "admission_rate"), Value::Double(_)));
}
