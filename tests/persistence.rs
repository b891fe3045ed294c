//! Persistence: the AOF (replayed, rewritten, reloaded after a restart) and
//! the RDB (DEBUG RELOAD) give back exactly the data TQ wrote, and with
//! `appendfsync always` nothing acknowledged is lost by a kill -9.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const EVENTS: [&str; 2] = ["p1", "p2"];

fn workload(con: &mut redis::Connection) {
    tq!(
        con,
        "TQ.CONFIG",
        "p1",
        "RATE",
        10,
        "BURST",
        3,
        "HOLD-TTL",
        600
    )
    .unwrap();
    tq!(con, "TQ.INVENTORY", "p1", "SET", 100).unwrap();
    tq!(con, "TQ.INVENTORY", "p2", "SET", 7).unwrap();
    for i in 0..200 {
        let ev = EVENTS[i % 2];
        tq!(
            con,
            "TQ.ENQUEUE",
            ev,
            format!("u{}", i % 11),
            format!("t{i}"),
            "DEDUPE",
            format!("d{i}"),
            "TTL",
            120
        )
        .unwrap();
    }
    let dup = tq!(con, "TQ.ENQUEUE", "p1", "u0", "t-x", "DEDUPE", "d0");
    assert_eq!(code(&dup), "DUPLICATE");
    for t in ["t0", "t2", "t4"] {
        tq!(con, "TQ.ENTER", "p1", t).unwrap();
    }
    tq!(con, "TQ.POSITION", "p1", "t50").unwrap();
    for i in (1..200).step_by(10) {
        tq!(con, "TQ.LEAVE", "p2", format!("t{i}")).unwrap();
    }
    for s in 0..20 {
        tq!(con, "TQ.HOLD", "p1", format!("s{s}"), format!("u{s}")).unwrap();
    }
    for s in 0..5 {
        tq!(con, "TQ.CONFIRM", "p1", format!("s{s}"), format!("u{s}")).unwrap();
        tq!(con, "TQ.RELEASE", "p1", format!("s{}", s + 5)).unwrap();
    }
    for s in 0..7 {
        tq!(con, "TQ.HOLD", "p2", format!("x{s}"), "uu", "TTL", 500).unwrap();
    }
    assert_eq!(code(&tq!(con, "TQ.HOLD", "p2", "x8", "uu")), "SOLD_OUT");
    tq!(con, "TQ.CONFIRM", "p2", "x1", "uu").unwrap();
    tq!(con, "TQ.TRIM", "p2", "MAXAGE", 3600).unwrap();
}

fn stats(con: &mut redis::Connection) -> Vec<Value> {
    EVENTS
        .iter()
        .map(|e| tq!(con, "TQ.STATS", *e).unwrap())
        .collect()
}

fn snapshot(con: &mut redis::Connection) -> (String, BTreeMap<Vec<u8>, String>, Vec<Value>) {
    (digest(con), key_digests(con, "*"), stats(con))
}

fn wait_rewrite_done(con: &mut redis::Connection) {
    assert!(
        eventually(Duration::from_secs(20), || {
            info_field(con, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(con, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0")
        }),
        "AOF rewrite did not finish"
    );
}

#[test]
fn aof_replay_rewrite_restart_and_rdb_reload_keep_every_byte() {
    let server = Server::start_with(&["--appendonly", "yes"]);
    let mut con = server.client();
    workload(&mut con);
    let before = snapshot(&mut con);
    assert!(
        before.1.len() > 20,
        "workload wrote few keys: {}",
        before.1.len()
    );
    let s = &before.2[0];
    assert_eq!(int_field(s, "waiting"), 97);
    assert_eq!(int_field(s, "inventory"), 85);
    assert_eq!(int_field(s, "held"), 10);
    assert_eq!(int_field(s, "sold"), 5);

    // The AOF holds effects, never the clock-dependent TQ commands.
    let aof = String::from_utf8_lossy(&aof_bytes(&server)).to_ascii_lowercase();
    assert!(aof.contains("xadd"), "AOF lacks XADD");
    assert!(
        !aof.contains("tq."),
        "TQ commands were written to the AOF verbatim"
    );

    // 1. Replay of the AOF.
    redis_query::<String>(&mut con, &["DEBUG", "LOADAOF"]);
    assert_eq!(snapshot(&mut con), before, "DEBUG LOADAOF changed the data");

    // 2. Rewrite, then a restart that loads the rewritten AOF.
    redis_query::<String>(&mut con, &["BGREWRITEAOF"]);
    wait_rewrite_done(&mut con);
    drop(con);
    let server = server.restart(&[]);
    let mut con = server.client();
    assert_eq!(
        snapshot(&mut con),
        before,
        "rewrite + restart changed the data"
    );

    // 3. RDB save + reload.
    redis_query::<String>(&mut con, &["DEBUG", "RELOAD"]);
    assert_eq!(snapshot(&mut con), before, "DEBUG RELOAD changed the data");

    // The reloaded data still works: TQ commands carry on where they were.
    let next = tq!(&mut con, "TQ.ENQUEUE", "p1", "u-new", "t-new").unwrap();
    assert_eq!(int_field(&next, "position"), 98);
    assert_eq!(
        code(&tq!(
            &mut con,
            "TQ.ENQUEUE",
            "p1",
            "u0",
            "t-y",
            "DEDUPE",
            "d10"
        )),
        "DUPLICATE"
    );
    assert_eq!(int(&tq!(&mut con, "TQ.RELEASE", "p1", "s19").unwrap()), 86);
}

#[derive(Debug, Clone, PartialEq)]
enum SeatState {
    Available,
    Held(String),
    Sold(String),
}

#[test]
fn kill9_loses_nothing_acknowledged_with_appendfsync_always() {
    use rand::{Rng, SeedableRng};
    const INVENTORY: i64 = 60;
    let mut server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "crash", "SET", INVENTORY).unwrap();

    let mut worker_con = server.client();
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let worker = std::thread::spawn(move || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let con = &mut worker_con;
        let mut enqueued: Vec<String> = Vec::new();
        let mut seats: HashMap<String, SeatState> = HashMap::new();
        let mut in_flight_seat: Option<String> = None;
        let mut ops = 0u64;
        for i in 0u64.. {
            let seat = format!("s{}", rng.gen_range(0..80));
            let user = format!("u{}", rng.gen_range(0..4));
            let op = rng.gen_range(0..4);
            let result = match op {
                0 => tq!(con, "TQ.ENQUEUE", "crash", user.clone(), format!("tok-{i}")),
                1 => tq!(
                    con,
                    "TQ.HOLD",
                    "crash",
                    seat.clone(),
                    user.clone(),
                    "TTL",
                    600
                ),
                2 => tq!(con, "TQ.RELEASE", "crash", seat.clone(), user.clone()),
                _ => tq!(con, "TQ.CONFIRM", "crash", seat.clone(), user.clone()),
            };
            match result {
                Ok(_) => {
                    ops += 1;
                    match op {
                        0 => enqueued.push(format!("tok-{i}")),
                        1 => {
                            seats.insert(seat, SeatState::Held(user));
                        }
                        2 => {
                            seats.insert(seat, SeatState::Available);
                        }
                        _ => {
                            seats.insert(seat, SeatState::Sold(user));
                        }
                    }
                }
                Err(e) if e.code().is_some() => {} // a TQ refusal: nothing changed
                Err(_) => {
                    // Connection lost: this op may or may not have happened.
                    if op != 0 {
                        in_flight_seat = Some(seat);
                    }
                    return (enqueued, seats, in_flight_seat, ops);
                }
            }
        }
        unreachable!()
    });
    std::thread::sleep(Duration::from_millis(1200));
    server.kill9();
    let (enqueued, seats, in_flight_seat, ops) = worker.join().unwrap();
    println!(
        "{ops} acknowledged ops, {} enqueues, {} seats touched",
        enqueued.len(),
        seats.len()
    );
    assert!(ops > 50, "too few operations before the kill: {ops}");

    let server = server.restart(&[]);
    let mut con = server.client();
    for token in &enqueued {
        let pos = tq!(&mut con, "TQ.POSITION", "crash", token.as_str());
        assert!(pos.is_ok(), "acknowledged ENQUEUE {token} lost: {pos:?}");
    }
    let waiting: i64 = redis_query(&mut con, &["XLEN", "tq:{crash}:queue"]);
    assert!(
        waiting == enqueued.len() as i64 || waiting == enqueued.len() as i64 + 1,
        "{waiting} waiting, {} acknowledged",
        enqueued.len()
    );
    for (seat, expected) in &seats {
        if Some(seat) == in_flight_seat.as_ref() {
            continue;
        }
        let got = tq!(&mut con, "TQ.SEAT", "crash", seat.as_str()).unwrap();
        let state = text_field(&got, "state");
        let actual = match state.as_str() {
            "available" => SeatState::Available,
            "held" => SeatState::Held(text_field(&got, "user")),
            "sold" => SeatState::Sold(text_field(&got, "user")),
            other => panic!("state {other}"),
        };
        assert_eq!(&actual, expected, "seat {seat} after kill -9 and restart");
    }
    let stats = tq!(&mut con, "TQ.STATS", "crash").unwrap();
    let total =
        int_field(&stats, "inventory") + int_field(&stats, "held") + int_field(&stats, "sold");
    assert_eq!(
        total, INVENTORY,
        "inventory + held + sold after restart: {stats:?}"
    );
    let held: i64 = redis_query(&mut con, &["ZCARD", "tq:{crash}:holds"]);
    let seats_hash: i64 = redis_query(&mut con, &["HLEN", "tq:{crash}:seats"]);
    assert_eq!(
        seats_hash,
        held + int_field(&stats, "sold"),
        "seats hash vs holds zset"
    );
}

/// Data written by tq 0.1, which kept `tq:{E}:meta` as a hash, is read as
/// it is (a read-only command leaves it a hash) and rewritten as the meta
/// string by the next write, every value kept; a replica gets the same.
#[test]
fn a_meta_hash_from_tq_0_1_is_read_and_rewritten_as_a_string() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut con = master.client();
    let key = "tq:{old}:meta";
    let _: i64 = redis_query(
        &mut con,
        &[
            "HSET",
            key,
            "inventory",
            "5",
            "sold",
            "2",
            "rate",
            "7",
            "burst",
            "9",
            "hold_ttl",
            "60",
        ],
    );
    let stats = tq!(&mut con, "TQ.STATS", "old").unwrap();
    assert_eq!(int_field(&stats, "inventory"), 5);
    assert_eq!(int_field(&stats, "sold"), 2);
    assert_eq!(redis_query::<String>(&mut con, &["TYPE", key]), "hash");
    let config = tq!(&mut con, "TQ.CONFIG", "old").unwrap();
    assert_eq!(int_field(&config, "rate"), 7);
    assert_eq!(int_field(&config, "hold_ttl"), 60);

    assert_eq!(
        int(&tq!(&mut con, "TQ.HOLD", "old", "A-1", "u1").unwrap()),
        4
    );
    assert_eq!(redis_query::<String>(&mut con, &["TYPE", key]), "string");
    let meta = meta_fields(&mut con, "old");
    let expected = [
        ("burst", "9"),
        ("hold_ttl", "60"),
        ("inventory", "4"),
        ("rate", "7"),
        ("sold", "2"),
    ];
    assert_eq!(
        meta.iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        expected
    );
    // The hold used the old event's own hold time.
    let seat = tq!(&mut con, "TQ.SEAT", "old", "A-1").unwrap();
    let ttl = int_field(&seat, "ttl_ms");
    assert!((55_000..=60_000).contains(&ttl), "{ttl}");
    wait_replicas(&mut con, 1);
    assert_eq!(digest(&mut con), digest(&mut replica.client()));
}

/// Pairs in the meta string that this version does not know (written by a
/// newer tq) survive its writes.
#[test]
fn unknown_meta_pairs_are_kept_by_writes() {
    let server = Server::start();
    let mut con = server.client();
    let _: () = redis_query(
        &mut con,
        &[
            "SET",
            "tq:{new}:meta",
            "inventory=3 future_field=x=y later=12",
        ],
    );
    assert_eq!(
        int(&tq!(&mut con, "TQ.HOLD", "new", "A-1", "u1").unwrap()),
        2
    );
    let text: String = redis_query(&mut con, &["GET", "tq:{new}:meta"]);
    assert_eq!(text, "inventory=2 future_field=x=y later=12");
}
