//! Checkout as ticketing does it (contract v2, TQ.HOLD / TQ.CONFIRM with
//! WITH, TQ.EXTEND, MAX-SEATS, TQ.INVENTORY ADD), against real servers.

use crate::common::*;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::{Connection, Value};

fn figures(con: &mut Connection, event: &str) -> (i64, i64, i64) {
    let s = tq!(con, "TQ.STATS", event).unwrap();
    (
        int_field(&s, "inventory"),
        int_field(&s, "held"),
        int_field(&s, "sold"),
    )
}

#[test]
fn group_holds_confirms_and_extensions_are_all_or_nothing_and_replicate() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut con = master.client();
    let mut r = replica.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 6).unwrap();
    let left = run(
        &mut con,
        &[
            "TQ.HOLD", "ev", "A1", "ann", "TTL", "60", "WITH", "A2", "A3",
        ],
    );
    assert_eq!(int(&left.unwrap()), 3);
    // One seat of the group is taken: nothing is held, it is named.
    let taken = run(&mut con, &["TQ.HOLD", "ev", "B1", "bo", "WITH", "B2", "A3"]);
    assert_eq!(error_text(&taken), "SEAT_UNAVAILABLE A3 is held or sold");
    assert_eq!(
        text_field(&tq!(&mut con, "TQ.SEAT", "ev", "B1").unwrap(), "state"),
        "available"
    );
    // More seats than the inventory: none.
    let short = run(
        &mut con,
        &["TQ.HOLD", "ev", "B1", "bo", "WITH", "B2", "B3", "B4"],
    );
    assert_eq!(code(&short), "SOLD_OUT");
    assert_eq!(figures(&mut con, "ev"), (3, 3, 0));
    // EXTEND: the new remaining time, for every named seat.
    let ms = run(
        &mut con,
        &["TQ.EXTEND", "ev", "A1", "ann", "TTL", "600", "WITH", "A2"],
    );
    assert_eq!(int(&ms.unwrap()), 600_000);
    let a2 = tq!(&mut con, "TQ.SEAT", "ev", "A2").unwrap();
    assert!(int_field(&a2, "ttl_ms") > 590_000);
    let a3 = tq!(&mut con, "TQ.SEAT", "ev", "A3").unwrap();
    assert!(int_field(&a3, "ttl_ms") <= 60_000);
    let not_owner = run(&mut con, &["TQ.EXTEND", "ev", "A1", "bo", "TTL", "600"]);
    assert_eq!(
        error_text(&not_owner),
        "NOT_OWNER A1 is held by another user"
    );
    let not_held = run(
        &mut con,
        &["TQ.EXTEND", "ev", "A1", "ann", "TTL", "5", "WITH", "Z9"],
    );
    assert_eq!(error_text(&not_held), "NOT_HELD Z9 is not held");
    // CONFIRM of a group: all or nothing.
    let mixed = run(&mut con, &["TQ.CONFIRM", "ev", "A1", "ann", "WITH", "Z9"]);
    assert_eq!(code(&mixed), "NOT_HELD");
    assert_eq!(figures(&mut con, "ev"), (3, 3, 0));
    let ok = run(
        &mut con,
        &["TQ.CONFIRM", "ev", "A1", "ann", "WITH", "A2", "A3"],
    )
    .unwrap();
    assert_eq!(ok, Value::Okay);
    assert_eq!(figures(&mut con, "ev"), (3, 0, 3));
    let pass = tq!(&mut con, "TQ.PASS", "ev", "ann").unwrap();
    assert_eq!(int_field(&pass, "bought"), 3);
    assert_replica_matches(&mut con, &mut r, "DEBUG DIGEST", digest);
}

#[test]
fn inventory_add_changes_the_count_without_a_read_modify_write() {
    let server = Server::start();
    let mut con = server.client();
    assert_eq!(
        int(&tq!(&mut con, "TQ.INVENTORY", "ev", "ADD", 100).unwrap()),
        100
    );
    tq!(&mut con, "TQ.HOLD", "ev", "A1", "u").unwrap();
    assert_eq!(
        int(&tq!(&mut con, "TQ.INVENTORY", "ev", "ADD", -9).unwrap()),
        90
    );
    let below = tq!(&mut con, "TQ.INVENTORY", "ev", "ADD", -91);
    assert_eq!(
        error_text(&below),
        "ERR ADD -91 would leave the inventory outside 0..2147483648 (it is 90)"
    );
    let above = tq!(&mut con, "TQ.INVENTORY", "ev", "ADD", 2147483648i64);
    assert_eq!(code(&above), "ERR");
    for bad in ["2147483649", "-2147483649", "1.5", "x", ""] {
        assert_eq!(
            code(&run(&mut con, &["TQ.INVENTORY", "ev", "ADD", bad])),
            "ERR",
            "{bad}"
        );
    }
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "ev").unwrap()), 90);
    assert_eq!(figures(&mut con, "ev"), (90, 1, 0));
    // A sold-out event reopens when seats are added.
    tq!(&mut con, "TQ.INVENTORY", "so", "SET", 0).unwrap();
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "so", "u", "t")),
        "SOLD_OUT"
    );
    tq!(&mut con, "TQ.INVENTORY", "so", "ADD", 2).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "so", "u", "t").unwrap();
}

#[test]
fn with_lists_refuse_bad_input_and_change_nothing() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 500).unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "H", "u").unwrap();
    let before = digest(&mut con);
    let mut hundred_one: Vec<String> = ["TQ.HOLD", "ev", "S0", "u", "WITH"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    hundred_one.extend((1..=100).map(|i| format!("S{i}")));
    let hundred_one: Vec<&str> = hundred_one.iter().map(String::as_str).collect();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["TQ.HOLD", "ev", "A", "u", "WITH"], "ERR"),
        (vec!["TQ.HOLD", "ev", "A", "u", "WITH", "B", "A"], "ERR"),
        (vec!["TQ.HOLD", "ev", "A", "u", "WITH", "B", "B"], "ERR"),
        (vec!["TQ.HOLD", "ev", "A", "u", "WITH", ""], "ERR"),
        (
            vec!["TQ.HOLD", "ev", "A", "u", "WITH", "H"],
            "SEAT_UNAVAILABLE",
        ),
        (hundred_one, "ERR"),
        (vec!["TQ.CONFIRM", "ev", "H", "u", "WITH"], "ERR"),
        (vec!["TQ.CONFIRM", "ev", "H", "u", "WITH", "H"], "ERR"),
        (vec!["TQ.CONFIRM", "ev", "H", "u", "EXTRA"], "ERR"),
        (vec!["TQ.EXTEND", "ev", "H", "u"], "ERR"),
        (vec!["TQ.EXTEND", "ev", "H", "u", "TTL"], "ERR"),
        (vec!["TQ.EXTEND", "ev", "H", "u", "TTL", "0"], "ERR"),
        (vec!["TQ.EXTEND", "ev", "H", "u", "TTL", "31536001"], "ERR"),
        (vec!["TQ.EXTEND", "ev", "H", "u", "TTL", "5", "WITH"], "ERR"),
        (vec!["TQ.EXTEND", "ev", "H", "u", "FOR", "5"], "ERR"),
        (vec!["TQ.EXTEND", "ev", "H", "v", "TTL", "5"], "NOT_OWNER"),
    ];
    for (w, expected) in &cases {
        assert_eq!(&code(&run(&mut con, w)), expected, "{w:?}");
    }
    assert_eq!(digest(&mut con), before, "a refused call changed something");
    // Binary seat names in a group work like any other.
    let binary = call_args(
        &mut con,
        &[
            b"TQ.HOLD".to_vec(),
            b"ev".to_vec(),
            b"\x00\xff".to_vec(),
            b"u".to_vec(),
            b"WITH".to_vec(),
            b"\r\n".to_vec(),
        ],
    );
    assert_eq!(int(&binary.unwrap()), 497);
    // The largest group, 100 seats.
    let mut group: Vec<String> = ["TQ.HOLD", "ev", "G0", "w", "WITH"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    group.extend((1..100).map(|i| format!("G{i}")));
    let group: Vec<&str> = group.iter().map(String::as_str).collect();
    assert_eq!(int(&run(&mut con, &group).unwrap()), 397);
}

/// Many clients hold, extend, release and confirm groups of seats while
/// holds lapse: inventory + held + sold stays what was set, no seat is
/// sold twice, no user passes MAX-SEATS.
#[test]
fn many_clients_with_groups_keep_every_invariant() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut con = master.client();
    let seats = 60;
    let max_seats = 5;
    tq!(&mut con, "TQ.CONFIG", "ev", "MAX-SEATS", max_seats).unwrap();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", seats).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let url = master.url();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut rng = t as u64 * 7919 + 17;
                let mut next = |n: u64| {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (rng >> 33) % n
                };
                let mut bought: Vec<String> = Vec::new();
                for _ in 0..300 {
                    let user = format!("user-{}", next(12));
                    let size = 1 + next(3) as usize;
                    let group: Vec<String> = (0..size).map(|_| format!("S{}", next(80))).collect();
                    let mut unique = group.clone();
                    unique.sort();
                    unique.dedup();
                    let mut w = vec![
                        "TQ.HOLD",
                        "ev",
                        unique[0].as_str(),
                        user.as_str(),
                        "TTL",
                        "1",
                    ];
                    if unique.len() > 1 {
                        w.push("WITH");
                        w.extend(unique[1..].iter().map(String::as_str));
                    }
                    match run(&mut con, &w) {
                        Ok(_) => {}
                        Err(e) => {
                            let c = e.code().unwrap_or("?").to_string();
                            assert!(
                                ["SEAT_UNAVAILABLE", "SOLD_OUT", "LIMIT"].contains(&c.as_str()),
                                "{e}"
                            );
                            continue;
                        }
                    }
                    let mut rest = vec![unique[0].as_str(), user.as_str()];
                    if unique.len() > 1 {
                        rest.push("WITH");
                        rest.extend(unique[1..].iter().map(String::as_str));
                    }
                    let choice = next(4);
                    let result = match choice {
                        0 => {
                            let mut w = vec!["TQ.CONFIRM", "ev"];
                            w.extend(&rest);
                            run(&mut con, &w)
                        }
                        1 => {
                            let mut w = vec![
                                "TQ.EXTEND",
                                "ev",
                                unique[0].as_str(),
                                user.as_str(),
                                "TTL",
                                "2",
                            ];
                            if unique.len() > 1 {
                                w.push("WITH");
                                w.extend(unique[1..].iter().map(String::as_str));
                            }
                            run(&mut con, &w)
                        }
                        2 => run(
                            &mut con,
                            &["TQ.RELEASE", "ev", unique[0].as_str(), user.as_str()],
                        ),
                        _ => Ok(Value::Nil), // left to lapse
                    };
                    match result {
                        Ok(_) if choice == 0 => bought.extend(unique.iter().cloned()),
                        Ok(_) => {}
                        Err(e) => {
                            // The hold may have lapsed in between (TTL 1 s),
                            // and the seat gone to another client since.
                            let c = e.code().unwrap_or("?").to_string();
                            assert!(["NOT_HELD", "NOT_OWNER"].contains(&c.as_str()), "{e}");
                        }
                    }
                }
                bought
            })
        })
        .collect();
    let mut sold: BTreeMap<String, usize> = BTreeMap::new();
    for t in threads {
        for seat in t.join().unwrap() {
            *sold.entry(seat).or_default() += 1;
        }
        let (inventory, held, sold_n) = figures(&mut con, "ev");
        assert_eq!(inventory + held + sold_n, seats, "inventory + held + sold");
    }
    assert!(
        sold.values().all(|n| *n == 1),
        "a seat sold twice: {sold:?}"
    );
    let (_, _, sold_n) = figures(&mut con, "ev");
    assert_eq!(sold_n as usize, sold.len());
    let mut owners = BTreeSet::new();
    for seat in sold.keys() {
        let s = tq!(&mut con, "TQ.SEAT", "ev", seat.as_str()).unwrap();
        assert_eq!(text_field(&s, "state"), "sold");
        owners.insert(text_field(&s, "user"));
    }
    for u in 0..12 {
        let user = format!("user-{u}");
        let p = tq!(&mut con, "TQ.PASS", "ev", user.as_str()).unwrap();
        assert!(
            int_field(&p, "held") + int_field(&p, "bought") <= max_seats,
            "{user} over the limit: {p:?}"
        );
    }
    // Every hold lapses; the replica holds the same data.
    assert!(eventually(Duration::from_secs(5), || figures(
        &mut con, "ev"
    )
    .1 == 0));
    let (inventory, held, sold_n) = figures(&mut con, "ev");
    assert_eq!(inventory + held + sold_n, seats);
    let mut r = replica.client();
    assert_replica_matches(&mut con, &mut r, "DEBUG DIGEST", digest);
    assert!(
        !sold.is_empty() && !owners.is_empty(),
        "no group was ever confirmed"
    );
}
