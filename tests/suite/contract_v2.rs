//! The points contract v2 added or changed for issue 14 (one module-type
//! state per event): time frozen inside MULTI/EXEC and scripts, the read
//! forms of TQ.INVENTORY and TQ.CONFIG on a replica and under OOM, an event
//! with one key evicted answers an error, one wording per mistake, coarse
//! heartbeats, the joined/left/trimmed figures, the eta in the first minute
//! of admissions, and a reconfiguration that keeps the bucket's tokens.

use crate::common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn position(con: &mut redis::Connection, event: &str, token: &str) -> Value {
    tq!(con, "TQ.POSITION", event, token).unwrap()
}

/// `TQ.STATS event`, the reply.
fn stats_of(con: &mut redis::Connection, event: &str) -> Value {
    tq!(con, "TQ.STATS", event).unwrap()
}

fn exists(con: &mut redis::Connection, key: &str) -> bool {
    redis_query::<i64>(con, &["EXISTS", key]) == 1
}

fn used_memory(con: &mut redis::Connection) -> i64 {
    info_field(con, "memory", "used_memory")
        .unwrap()
        .parse()
        .unwrap()
}

/// The error text of a call that must fail ("CODE detail").
fn refused(con: &mut redis::Connection, call: &[Vec<u8>]) -> String {
    let reply = call_args(con, call);
    match &reply {
        Err(_) => error_text(&reply),
        Ok(v) => panic!("{} succeeded: {v:?}", show(call)),
    }
}

fn show(call: &[Vec<u8>]) -> String {
    call.iter()
        .map(|w| {
            let s = String::from_utf8_lossy(w);
            if s.len() > 30 {
                format!("{}...({} bytes)", &s[..10], w.len())
            } else {
                s.into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---- time: one now per command, frozen through MULTI/EXEC and scripts ----

/// How a transaction or script runs "POSITION B; ~1 s passes; POSITION C".
#[derive(Clone, Copy, Debug)]
enum Frozen {
    Multi,
    /// A script that spins this many loop turns (about 1 s) in between.
    Script(u64),
}

/// The script's way to let time pass: DEBUG is not allowed in scripts
/// (flag `noscript`), and TIME stands still inside one on Valkey 8.1, so it
/// spins ARGV[1] turns of an empty loop.
const SPIN_BETWEEN_TWO_POLLS: &str = r#"
local b = redis.call('TQ.POSITION', KEYS[1], ARGV[2])
for i = 1, tonumber(ARGV[1]) do end
local c = redis.call('TQ.POSITION', KEYS[1], ARGV[3])
return {b[2], c[2]}
"#;

/// Loop turns a script spins in about `ms` on this server now.
fn spin_turns_for(con: &mut redis::Connection, ms: u64) -> u64 {
    const PROBE: u64 = 20_000_000;
    let started = Instant::now();
    let _: i64 = redis::cmd("EVAL")
        .arg("for i = 1, tonumber(ARGV[1]) do end return 1")
        .arg(0)
        .arg(PROBE)
        .query(con)
        .unwrap();
    let took = started.elapsed().as_secs_f64().max(0.001);
    ((PROBE as f64 / took) * ms as f64 / 1000.0) as u64
}

/// One try: A joins, then (1.4 s later) B and C; at 1.5 s a transaction
/// or script polls B, lets about 1 s pass, polls C. A's heartbeat (2 s)
/// runs out in between. Some((B, C)) when A was still counted at the start
/// and its heartbeat had certainly run out (1.1 periods) before C's poll,
/// so that a clock moving inside would show; None when the machine was
/// too slow or too fast for that.
fn frozen_try(con: &mut redis::Connection, ev: &str, how: Frozen) -> Option<(i64, i64)> {
    tq!(con, "TQ.CONFIG", ev, "HEARTBEAT", 2).unwrap();
    tq!(con, "TQ.ENQUEUE", ev, "ua", "A").unwrap();
    let a_joined_by = Instant::now();
    std::thread::sleep(Duration::from_millis(1400));
    tq!(con, "TQ.ENQUEUE", ev, "ub", "B").unwrap();
    tq!(con, "TQ.ENQUEUE", ev, "uc", "C").unwrap();
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(a_joined_by.elapsed()));
    let started = Instant::now();
    let (b_pos, c_pos, c_polled_after) = match how {
        Frozen::Multi => {
            let mut tx = redis::pipe();
            tx.atomic()
                .cmd("TQ.POSITION")
                .arg(ev)
                .arg("B")
                .cmd("DEBUG")
                .arg("SLEEP")
                .arg("1")
                .cmd("TQ.POSITION")
                .arg(ev)
                .arg("C");
            let replies: Vec<Value> = tx.query(con).unwrap();
            assert_eq!(replies[1], Value::Okay, "DEBUG SLEEP in MULTI: {replies:?}");
            (
                int_field(&replies[0], "position"),
                int_field(&replies[2], "position"),
                started + Duration::from_secs(1),
            )
        }
        Frozen::Script(turns) => {
            let reply: Value = redis::cmd("EVAL")
                .arg(SPIN_BETWEEN_TWO_POLLS)
                .arg(1)
                .arg(ev)
                .arg(turns)
                .arg("B")
                .arg("C")
                .query(con)
                .unwrap();
            let got = array(&reply);
            let took = started.elapsed();
            println!("the script took {took:?}");
            if took > Duration::from_millis(4500) {
                // Past the busy-script threshold (5 s) the server serves
                // events and its clock moves: not this test's case.
                return None;
            }
            // C's poll is the script's last step.
            (
                int(&got[0]),
                int(&got[1]),
                Instant::now() - Duration::from_millis(50),
            )
        }
    };
    // A's heartbeat (joined before `a_joined_by`) ran out by 2.2 s after it.
    let clock_would_show = a_joined_by + Duration::from_millis(2200) < c_polled_after;
    println!(
        "{how:?} {ev}: B at {b_pos}, C at {c_pos} (started {:?} after A)",
        started - a_joined_by
    );
    // Whatever happened: A counts for both or for neither.
    assert_eq!(
        c_pos,
        b_pos + 1,
        "{how:?}: B at {b_pos} and C at {c_pos}: time moved between two TQ commands of one {how:?}"
    );
    (b_pos == 2 && clock_would_show).then_some((b_pos, c_pos))
}

fn time_is_frozen(script: bool) {
    let server = Server::start();
    let mut con = server.client();
    for attempt in 0..3 {
        let how = if script {
            Frozen::Script(spin_turns_for(&mut con, 1000))
        } else {
            Frozen::Multi
        };
        let ev = format!("frozen{attempt}");
        if frozen_try(&mut con, &ev, how).is_some() {
            // The entry A did lapse in the meantime: the next command sees it.
            assert_eq!(int_field(&position(&mut con, &ev, "C"), "position"), 2);
            return;
        }
    }
    panic!("in 3 tries the machine never ran the transaction or script in time");
}

#[test]
fn time_is_frozen_inside_multi_exec() {
    time_is_frozen(false);
}

#[test]
fn time_is_frozen_inside_a_script() {
    time_is_frozen(true);
}

// ---- the command that creates an event reaches replicas and the AOF --------

/// Each kind of command that can create an event, as the first command on
/// it: the replica and an AOF replay must end with the same event (the
/// record carries the settings it was created with, not those the command
/// set).
#[test]
fn the_command_that_creates_an_event_reaches_replicas_and_the_aof() {
    let (master, replica) = Server::start_master_and_replica(&["--appendonly", "yes"], &[]);
    let mut m = master.client();
    tq!(&mut m, "TQ.CONFIG", "configured", "RATE", 7).unwrap();
    tq!(&mut m, "TQ.INVENTORY", "stocked", "SET", 5).unwrap();
    tq!(&mut m, "TQ.ENQUEUE", "joined", "u1", "t1").unwrap();
    let mut r = replica.client();
    assert_replica_matches(&mut m, &mut r, "DEBUG DIGEST", digest);
    let rate = |con: &mut redis::Connection| {
        int_field(&tq!(con, "TQ.CONFIG", "configured").unwrap(), "rate")
    };
    assert_eq!(rate(&mut r), 7);
    let before = digest(&mut m);
    let _: () = redis_query(&mut m, &["DEBUG", "LOADAOF"]);
    assert_eq!(digest(&mut m), before, "AOF replay lost a creation");
    assert_eq!(rate(&mut m), 7);
    assert_eq!(int(&tq!(&mut m, "TQ.INVENTORY", "stocked").unwrap()), 5);
}

// ---- TQ.INVENTORY / TQ.CONFIG reads on a replica and under OOM -------------

#[test]
fn inventory_and_config_reads_answer_on_a_replica() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    tq!(&mut m, "TQ.INVENTORY", "ev", "SET", 10).unwrap();
    tq!(&mut m, "TQ.CONFIG", "ev", "RATE", 7, "HOLD-TTL", 60).unwrap();
    tq!(&mut m, "TQ.HOLD", "ev", "A1", "u1").unwrap();
    wait_replicas(&mut m, 1);
    let mut r = replica.client();
    let before = digest(&mut r);
    assert_eq!(digest(&mut m), before, "replica not in sync");

    assert_eq!(int(&tq!(&mut r, "TQ.INVENTORY", "ev").unwrap()), 9);
    let c = tq!(&mut r, "TQ.CONFIG", "ev").unwrap();
    assert_eq!(
        (
            int_field(&c, "rate"),
            int_field(&c, "burst"),
            int_field(&c, "hold_ttl")
        ),
        (7, 500, 60)
    );
    // An event the replica has never seen: the defaults, nothing created.
    assert_eq!(int(&tq!(&mut r, "TQ.INVENTORY", "never").unwrap()), 0);
    assert_eq!(
        int_field(&tq!(&mut r, "TQ.CONFIG", "never").unwrap(), "rate"),
        50
    );
    // The forms with options are writes, refused on a replica.
    for call in [
        &["TQ.INVENTORY", "ev", "SET", "3"][..],
        &["TQ.INVENTORY", "ev", "ADD", "3"],
        &["TQ.CONFIG", "ev", "RATE", "1"],
        &["TQ.CONFIG", "never", "RATE", "1"],
    ] {
        let text = refused(&mut r, &words(call));
        assert!(
            text.starts_with("READONLY"),
            "{call:?} on a replica: {text}"
        );
    }
    assert_eq!(digest(&mut r), before, "a read on the replica wrote");
    assert!(!exists(&mut r, "tq:{never}:state"));
}

#[test]
fn inventory_and_config_reads_answer_when_memory_is_full() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 7).unwrap();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 10).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u1", "t1").unwrap();
    let _: () = redis_query(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    );
    let _: () = redis_query(&mut con, &["CONFIG", "SET", "maxmemory", "1"]);
    let before = digest(&mut con);

    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "ev").unwrap()), 10);
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.CONFIG", "ev").unwrap(), "rate"),
        7
    );
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "fresh").unwrap()), 0);
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.CONFIG", "fresh").unwrap(), "rate"),
        50
    );
    assert_eq!(int_field(&stats_of(&mut con, "ev"), "waiting"), 1);
    for call in [
        &["TQ.ENQUEUE", "ev", "u2", "t2"][..],
        &["TQ.ENQUEUE", "fresh", "u2", "t2"],
        &["TQ.HOLD", "ev", "A1", "u1"],
        &["TQ.HOLD", "ev", "A1", "u1", "WITH", "A2"],
        &["TQ.INVENTORY", "ev", "SET", "3"],
        &["TQ.INVENTORY", "ev", "ADD", "3"],
        &["TQ.CONFIG", "ev", "SESSION", "30"],
    ] {
        let text = refused(&mut con, &words(call));
        assert!(text.starts_with("OOM"), "{call:?} with memory full: {text}");
    }
    assert_eq!(digest(&mut con), before, "changed while memory was full");
    assert!(!exists(&mut con, "tq:{fresh}:state"));

    let _: () = redis_query(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(int(&tq!(&mut con, "TQ.HOLD", "ev", "A1", "u1").unwrap()), 9);
}

// ---- an event missing one of its two keys --------------------------------

/// Every command on `ev`, with arguments that would succeed on the event
/// as `seed_event` makes it.
fn every_command(ev: &str) -> Vec<Vec<Vec<u8>>> {
    [
        &["TQ.ENQUEUE", ev, "u3", "t3"][..],
        &["TQ.POSITION", ev, "t1"],
        &["TQ.ENTER", ev, "t1"],
        &["TQ.LEAVE", ev, "t2"],
        &["TQ.USER", ev, "u1"],
        &["TQ.TRIM", ev, "MAXAGE", "100"],
        &["TQ.STATS", ev],
        &["TQ.INVENTORY", ev],
        &["TQ.INVENTORY", ev, "SET", "4"],
        &["TQ.HOLD", ev, "A2", "u1"],
        &["TQ.RELEASE", ev, "A1"],
        &["TQ.CONFIRM", ev, "A1", "u1"],
        &["TQ.SEAT", ev, "A1"],
        &["TQ.CONFIG", ev],
        &["TQ.CONFIG", ev, "RATE", "5"],
    ]
    .iter()
    .map(|call| words(call))
    .collect()
}

/// Seats (inventory 5, A1 held by u1) and two waiting entries t1 (u1), t2 (u2).
fn seed_event(con: &mut redis::Connection, ev: &str) {
    tq!(con, "TQ.INVENTORY", ev, "SET", 5).unwrap();
    tq!(con, "TQ.HOLD", ev, "A1", "u1").unwrap();
    tq!(con, "TQ.ENQUEUE", ev, "u1", "t1").unwrap();
    tq!(con, "TQ.ENQUEUE", ev, "u2", "t2").unwrap();
}

/// Whether an error text says the event's state was evicted or deleted.
fn says_evicted(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    text.starts_with("ERR ") && (t.contains("evict") || t.contains("delet"))
}

/// Runs every command on an event that lost one key: each must answer
/// `-ERR ... evicted` and change nothing. Returns the problems.
fn check_half_event(con: &mut redis::Connection, ev: &str, what: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for call in every_command(ev) {
        let before = digest(con);
        let reply = call_args(con, &call);
        match &reply {
            Ok(v) => problems.push(format!("{what}: {} answered {v:?}", show(&call))),
            Err(_) => {
                let text = error_text(&reply);
                if !says_evicted(&text) {
                    problems.push(format!(
                        "{what}: {} answered `{text}`, not an ERR saying the state was evicted",
                        show(&call)
                    ));
                }
            }
        }
        if digest(con) != before {
            problems.push(format!("{what}: {} changed the data", show(&call)));
        }
    }
    problems
}

#[test]
fn an_event_missing_one_of_its_keys_answers_an_error() {
    let server = Server::start();
    let mut con = server.client();
    let mut problems = Vec::new();
    for (ev, gone) in [("noqueue", "queue"), ("nostate", "state")] {
        seed_event(&mut con, ev);
        // Something due for the timer too: entries that lapse in 1 s and a
        // hold that expires in 1 s.
        tq!(&mut con, "TQ.CONFIG", ev, "HEARTBEAT", 1).unwrap();
        tq!(&mut con, "TQ.HOLD", ev, "B1", "u2", "TTL", 1).unwrap();
        tq!(&mut con, "TQ.ENQUEUE", ev, "u4", "t4").unwrap();
        let key = format!("tq:{{{ev}}}:{gone}");
        assert_eq!(redis_query::<i64>(&mut con, &["DEL", &key]), 1);
        problems.extend(check_half_event(&mut con, ev, &format!("{gone} deleted")));
    }
    // The timer meets those events with their deadlines passed: it neither
    // crashes nor brings the deleted key back.
    std::thread::sleep(Duration::from_millis(1600));
    let pong: String = redis_query(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    assert!(!exists(&mut con, "tq:{noqueue}:queue"));
    assert!(!exists(&mut con, "tq:{nostate}:state"));
    for (ev, gone) in [("noqueue", "queue"), ("nostate", "state")] {
        let call = words(&["TQ.STATS", ev]);
        let reply = call_args(&mut con, &call);
        let remaining = format!(
            "tq:{{{ev}}}:{}",
            if gone == "queue" { "state" } else { "queue" }
        );
        // If the timer dropped the other key as well, the event is simply
        // gone (a fresh event); if not, it still answers the error.
        if exists(&mut con, &remaining) && !(reply.is_err() && says_evicted(&error_text(&reply))) {
            problems.push(format!(
                "after the timer ran, {gone} deleted: STATS {ev} -> {reply:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        server.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        server.log()
    );
}

/// Redis itself evicts keys (allkeys-random, maxmemory below what the
/// events use): an event that kept both keys answers exact figures, one
/// that lost both is simply absent, and one that lost one key answers the
/// error on every command.
#[test]
fn real_eviction_never_gives_wrong_figures() {
    const EVENTS: usize = 120;
    const WAITING: i64 = 10;
    let server = Server::start_with(&["--maxmemory-policy", "allkeys-random"]);
    let mut con = server.client();
    let empty = used_memory(&mut con);
    for e in 0..EVENTS {
        let ev = format!("ev{e}");
        let mut p = redis::pipe();
        p.cmd("TQ.INVENTORY").arg(&ev).arg("SET").arg(100);
        for s in 0..3 {
            p.cmd("TQ.HOLD").arg(&ev).arg(format!("S{s}")).arg("u0");
        }
        for i in 0..WAITING {
            p.cmd("TQ.ENQUEUE")
                .arg(&ev)
                .arg(format!("u{i}"))
                .arg(format!("t{i}"))
                .arg("DEDUPE")
                .arg(format!("d{i}"));
        }
        let _: Vec<Value> = p.query(&mut con).unwrap();
    }
    let full = used_memory(&mut con);
    assert!(full > empty, "{empty} -> {full}");
    let limit = full - (full - empty) / 3;
    let _: () = redis_query(
        &mut con,
        &["CONFIG", "SET", "maxmemory", &limit.to_string()],
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let _: String = redis_query(&mut con, &["PING"]);
            used_memory(&mut con) <= limit
        }),
        "Redis did not evict down to {limit}"
    );
    let _: () = redis_query(&mut con, &["CONFIG", "SET", "maxmemory", "0"]);
    let evicted: i64 = info_field(&mut con, "stats", "evicted_keys")
        .unwrap()
        .parse()
        .unwrap();
    assert!(evicted > 0);

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for e in 0..EVENTS {
        let ev = format!("ev{e}");
        let queue = exists(&mut con, &format!("tq:{{{ev}}}:queue"));
        let state = exists(&mut con, &format!("tq:{{{ev}}}:state"));
        match (queue, state) {
            (true, true) => {
                *kinds.entry("whole").or_default() += 1;
                let s = stats_of(&mut con, &ev);
                let got = (
                    int_field(&s, "waiting"),
                    int_field(&s, "inventory"),
                    int_field(&s, "held"),
                );
                if got != (WAITING, 97, 3) {
                    problems.push(format!("{ev} kept both keys but STATS says {s:?}"));
                }
                let p = int_field(&position(&mut con, &ev, "t9"), "position");
                if p != WAITING {
                    problems.push(format!("{ev}: t9 at {p}"));
                }
            }
            (false, false) => *kinds.entry("gone").or_default() += 1,
            _ => {
                *kinds.entry("half").or_default() += 1;
                let what = if queue {
                    "state evicted"
                } else {
                    "queue evicted"
                };
                // Read-only checks first (no write may bring a key back).
                for call in [
                    words(&["TQ.STATS", &ev]),
                    words(&["TQ.POSITION", &ev, "t9"]),
                    words(&["TQ.INVENTORY", &ev]),
                    words(&["TQ.SEAT", &ev, "S1"]),
                    words(&["TQ.ENQUEUE", &ev, "new", "tnew"]),
                    words(&["TQ.HOLD", &ev, "S9", "u0"]),
                ] {
                    let reply = call_args(&mut con, &call);
                    let ok = reply.is_err() && says_evicted(&error_text(&reply));
                    if !ok {
                        problems.push(format!("{ev} ({what}): {} -> {reply:?}", show(&call)));
                    }
                }
            }
        }
    }
    println!("{evicted} keys evicted; events: {kinds:?}");
    assert!(
        problems.is_empty(),
        "{} problems ({kinds:?}), the first:\n{}",
        problems.len(),
        problems[..problems.len().min(20)].join("\n")
    );
    assert!(
        kinds.get("half").copied().unwrap_or(0) > 0,
        "no event lost exactly one key: {kinds:?}"
    );
}

// ---- one wording per mistake ----------------------------------------------

#[test]
fn an_argument_given_twice_has_one_wording() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 5).unwrap();
    let before = digest(&mut con);
    let hold = refused(
        &mut con,
        &words(&["TQ.HOLD", "ev", "A1", "u", "TTL", "5", "TTL", "5"]),
    );
    let enqueue = refused(
        &mut con,
        &words(&[
            "TQ.ENQUEUE",
            "ev",
            "u",
            "t",
            "DEDUPE",
            "d",
            "TTL",
            "5",
            "TTL",
            "5",
        ]),
    );
    assert_eq!(hold, enqueue, "TTL twice: HOLD and ENQUEUE differ");
    assert!(hold.starts_with("ERR ") && hold.contains("TTL"), "{hold}");
    // The same mistake with another argument: the same sentence.
    let others = [
        (
            "DEDUPE",
            refused(
                &mut con,
                &words(&["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", "d", "DEDUPE", "e"]),
            ),
        ),
        (
            "RATE",
            refused(
                &mut con,
                &words(&["TQ.CONFIG", "ev", "RATE", "1", "RATE", "2"]),
            ),
        ),
        (
            "HEARTBEAT",
            refused(
                &mut con,
                &words(&["TQ.CONFIG", "ev", "HEARTBEAT", "9", "HEARTBEAT", "9"]),
            ),
        ),
    ];
    let shape = mask(&hold, "TTL", "5");
    for (arg, text) in &others {
        assert!(names_argument(text, arg), "{arg} twice: {text}");
        assert_eq!(
            mask(text, arg, "5"),
            shape,
            "{arg} twice: `{text}` vs `{hold}`"
        );
    }
    assert_eq!(digest(&mut con), before);
}

#[test]
fn a_bad_event_name_has_one_wording_for_every_command() {
    let server = Server::start();
    let mut con = server.client();
    let long = "e".repeat(201);
    let mut problems = Vec::new();
    for bad in [long.as_str(), "a{b", "a}b", "{", "}", ""] {
        for mut call in every_command("PLACEHOLDER") {
            call[1] = b(bad);
            let reply = call_args(&mut con, &call);
            let text = match &reply {
                Ok(v) => format!("success {v:?}"),
                Err(_) => error_text(&reply),
            };
            if text != "ERR invalid event name" {
                problems.push(format!("{}: {text}", show(&call)));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let keys: Vec<String> = redis_query(&mut con, &["KEYS", "*"]);
    assert!(keys.is_empty(), "{keys:?}");
}

/// Whether an error text names the argument (`names`: its accepted
/// names separated by `|`, in upper or lower case).
fn names_argument(text: &str, names: &str) -> bool {
    names
        .split('|')
        .any(|n| text.contains(n) || text.contains(&n.to_ascii_lowercase()))
}

/// An error text with the argument's names, the bad value and every number
/// masked: what is left is the sentence's shape.
fn mask(text: &str, names: &str, value: &str) -> String {
    let mut t = text.to_string();
    if !value.is_empty() && value.chars().any(|c| !c.is_ascii_digit() && c != '-') {
        t = t.replace(value, "<V>");
    }
    for name in names.split('|') {
        for form in [name.to_string(), name.to_ascii_lowercase()] {
            t = t.replace(&form, "<ARG>");
        }
    }
    let mut out = String::new();
    let mut in_number = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out.replace("-N", "N")
}

#[test]
fn a_bad_number_has_one_wording_naming_the_argument() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 5).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u0", "t0").unwrap();
    let before = digest(&mut con);
    // (call before the value, names of the argument, smallest allowed,
    // largest + 1; the ranges of RATE and BURST are the README's)
    let args: [(&[&str], &str, i64, &str); 9] = [
        (
            &["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", "d", "TTL"],
            "TTL",
            1,
            "31536001",
        ),
        (&["TQ.HOLD", "ev", "A1", "u", "TTL"], "TTL", 1, "31536001"),
        (&["TQ.TRIM", "ev", "MAXAGE"], "MAXAGE", 1, "31536001"),
        (
            &["TQ.INVENTORY", "ev", "SET"],
            "SET|inventory",
            0,
            "2147483649",
        ),
        (&["TQ.CONFIG", "ev", "RATE"], "RATE", 0, "1000001"),
        (&["TQ.CONFIG", "ev", "BURST"], "BURST", 1, "1000000001"),
        (
            &["TQ.CONFIG", "ev", "HEARTBEAT"],
            "HEARTBEAT",
            1,
            "31536001",
        ),
        (&["TQ.CONFIG", "ev", "HOLD-TTL"], "HOLD-TTL", 1, "31536001"),
        (
            &["TQ.CONFIG", "ev", "DEDUPE-TTL"],
            "DEDUPE-TTL",
            1,
            "31536001",
        ),
    ];
    let mut shapes: BTreeMap<&str, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (prefix, arg, min, too_large) in args {
        let mut mistakes = vec![
            ("not a number", "abc"),
            ("negative", "-5"),
            ("too large", too_large),
        ];
        if min == 1 {
            mistakes.push(("zero", "0"));
        }
        for (mistake, value) in mistakes {
            let mut call = words(prefix);
            call.push(b(value));
            let reply = call_args(&mut con, &call);
            let text = match &reply {
                Ok(v) => {
                    problems.push(format!("{}: succeeded ({v:?})", show(&call)));
                    continue;
                }
                Err(_) => error_text(&reply),
            };
            if !text.starts_with("ERR ") {
                problems.push(format!("{}: {text} (want ERR)", show(&call)));
            }
            if !names_argument(&text, arg) {
                problems.push(format!("{}: `{text}` does not name {arg}", show(&call)));
            }
            shapes
                .entry(mistake)
                .or_default()
                .entry(mask(&text, arg, value))
                .or_default()
                .push(format!("{}: {text}", show(&call)));
        }
    }
    for (mistake, by_shape) in &shapes {
        if by_shape.len() > 1 {
            problems.push(format!(
                "{mistake}: {} wordings:\n  {}",
                by_shape.len(),
                by_shape
                    .values()
                    .map(|calls| calls.join("\n  "))
                    .collect::<Vec<_>>()
                    .join("\n  --\n  ")
            ));
        }
    }
    let all: BTreeSet<&String> = shapes.values().flat_map(|m| m.keys()).collect();
    println!("wordings: {all:#?}");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(digest(&mut con), before);
}

#[test]
fn ttl_without_dedupe_is_refused() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u0", "t0").unwrap();
    let before = digest(&mut con);
    let text = refused(
        &mut con,
        &words(&["TQ.ENQUEUE", "ev", "u", "t", "TTL", "60"]),
    );
    assert!(text.starts_with("ERR "), "{text}");
    assert_eq!(digest(&mut con), before);
    assert_eq!(xlen(&mut con, "ev"), 1);
}

// ---- heartbeats recorded coarsely ------------------------------------------

/// With HEARTBEAT 10, polls within a second (1/10 of it) of the stored
/// heartbeat store nothing, so they replicate nothing.
#[test]
fn polls_within_a_tenth_of_the_heartbeat_replicate_nothing() {
    // No replication pings during the test: they move the offset too.
    let (master, _replica) =
        Server::start_master_and_replica(&["--repl-ping-replica-period", "3600"], &[]);
    let mut con = master.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "HEARTBEAT", 10).unwrap();
    for attempt in 0..3 {
        let token = format!("t{attempt}");
        let before_join = master_repl_offset(&mut con);
        let joined = Instant::now();
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", &token).unwrap();
        let after_join = master_repl_offset(&mut con);
        assert!(after_join > before_join, "a join must replicate");
        position(&mut con, "ev", &token);
        let after_first = master_repl_offset(&mut con);
        std::thread::sleep(Duration::from_millis(300));
        position(&mut con, "ev", &token);
        let after_second = master_repl_offset(&mut con);
        if joined.elapsed() > Duration::from_millis(900) {
            println!(
                "attempt {attempt}: the machine took {:?}, again",
                joined.elapsed()
            );
            continue;
        }
        assert_eq!(
            after_first, after_join,
            "the poll right after the join replicated"
        );
        assert_eq!(
            after_second, after_join,
            "a poll 0.3 s after the join replicated"
        );
        // A poll more than 1/10 of the period later stores the heartbeat
        // (else the entry could be dropped early): the offset moves, so the
        // measurement above could see a write.
        std::thread::sleep(Duration::from_millis(1300).saturating_sub(joined.elapsed()));
        position(&mut con, "ev", &token);
        let stored = master_repl_offset(&mut con);
        assert!(
            stored > after_second,
            "a poll 1.3 s after the join stored nothing"
        );
        position(&mut con, "ev", &token);
        assert_eq!(
            master_repl_offset(&mut con),
            stored,
            "a second poll right after replicated"
        );
        return;
    }
    panic!("3 attempts too slow to poll twice within 0.9 s");
}

/// HEARTBEAT 2: an entry polled last shortly after its join (so its stored
/// heartbeat may still be the join's) is still waiting 1.9 s after that
/// poll, gone for every command by 2.2 s, and from storage soon after.
#[test]
fn an_entry_is_dropped_between_one_and_1_1_periods_after_its_last_poll() {
    let server = Server::start();
    let mut con = server.client();
    for attempt in 0..3 {
        let ev = format!("hb{attempt}");
        tq!(&mut con, "TQ.CONFIG", &ev, "HEARTBEAT", 2).unwrap();
        tq!(&mut con, "TQ.ENQUEUE", &ev, "ua", "a").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let poll_sent = Instant::now();
        position(&mut con, &ev, "a");
        let poll_done = Instant::now();
        std::thread::sleep(Duration::from_millis(1880).saturating_sub(poll_sent.elapsed()));
        // Reads compute abandonment as of now without being a heartbeat.
        let user = array(&tq!(&mut con, "TQ.USER", &ev, "ua").unwrap());
        let waiting = int_field(&stats_of(&mut con, &ev), "waiting");
        let checked_by = poll_sent.elapsed();
        if checked_by >= Duration::from_millis(1990) {
            println!("attempt {attempt}: checked only {checked_by:?} after the poll, again");
            continue;
        }
        assert_eq!(
            user.len(),
            1,
            "dropped {checked_by:?} after its last poll (< 1 period)"
        );
        assert_eq!(waiting, 1, "not counted {checked_by:?} after its last poll");
        assert_eq!(xlen(&mut con, &ev), 1);

        std::thread::sleep(Duration::from_millis(2250).saturating_sub(poll_done.elapsed()));
        assert!(
            array(&tq!(&mut con, "TQ.USER", &ev, "ua").unwrap()).is_empty(),
            "still waiting more than 1.1 periods after its last poll"
        );
        assert_eq!(int_field(&stats_of(&mut con, &ev), "waiting"), 0);
        assert_eq!(code(&tq!(&mut con, "TQ.POSITION", &ev, "a")), "NOT_QUEUED");
        // Storage follows by itself (the timer's slack).
        assert!(
            eventually(Duration::from_secs(3), || xlen(&mut con, &ev) == 0),
            "the queue still holds the entry {:?} after its last poll",
            poll_done.elapsed()
        );
        assert_eq!(int_field(&stats_of(&mut con, &ev), "abandoned"), 1);
        return;
    }
    panic!("3 attempts too slow to check 1.9 s after a poll");
}

// ---- joined / left / trimmed ----------------------------------------------

#[test]
fn joined_is_waiting_plus_admitted_abandoned_left_and_trimmed() {
    let server = Server::start();
    let mut con = server.client();
    tq!(
        &mut con,
        "TQ.CONFIG",
        "ev",
        "HEARTBEAT",
        3,
        "RATE",
        100,
        "BURST",
        100
    )
    .unwrap();
    let enqueue = |con: &mut redis::Connection, group: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                let token = format!("{group}{i}");
                tq!(con, "TQ.ENQUEUE", "ev", format!("u-{group}"), &token).unwrap();
                token
            })
            .collect()
    };
    // Joined first and trimmed 1.2 s later, long before their heartbeat
    // (3 s) runs out.
    let old = enqueue(&mut con, "old", 5);
    std::thread::sleep(Duration::from_millis(1200));
    let admitted = enqueue(&mut con, "in", 5);
    let keepers = enqueue(&mut con, "keep", 10);
    let silent = enqueue(&mut con, "silent", 6);
    let leavers = enqueue(&mut con, "leave", 4);
    // A duplicate does not join, a LEAVE of no one does not leave.
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "ev", "x", "keep0")),
        "DUPLICATE"
    );
    assert_eq!(
        int(&tq!(&mut con, "TQ.TRIM", "ev", "MAXAGE", 1).unwrap()),
        5
    );
    for token in &admitted {
        tq!(&mut con, "TQ.ENTER", "ev", token).unwrap();
    }
    for token in &leavers {
        assert_eq!(int(&tq!(&mut con, "TQ.LEAVE", "ev", token).unwrap()), 1);
    }
    assert_eq!(int(&tq!(&mut con, "TQ.LEAVE", "ev", "leave0").unwrap()), 0);
    assert_eq!(int(&tq!(&mut con, "TQ.LEAVE", "ev", &old[0]).unwrap()), 0);
    // The silent ones never poll: abandoned 3 s after joining; the keepers
    // poll meanwhile.
    assert!(
        eventually(Duration::from_secs(6), || {
            for token in &keepers {
                position(&mut con, "ev", token);
            }
            int_field(&stats_of(&mut con, "ev"), "abandoned") == silent.len() as i64
        }),
        "{:?}",
        stats_of(&mut con, "ev")
    );
    let s = stats_of(&mut con, "ev");
    let f = |name: &str| int_field(&s, name);
    assert_eq!(
        (
            f("joined"),
            f("waiting"),
            f("admitted"),
            f("abandoned"),
            f("left"),
            f("trimmed")
        ),
        (30, 10, 5, 6, 4, 5),
        "{s:?}"
    );
    assert_eq!(
        f("joined"),
        f("waiting") + f("admitted") + f("abandoned") + f("left") + f("trimmed")
    );
    assert_eq!(f("duplicates"), 1);
    // The field order: the v1 fields, then the v2 ones in the contract's
    // order.
    let names: Vec<String> = map(&s).into_iter().map(|(k, _)| k).collect();
    let v1 = [
        "waiting",
        "admitted",
        "admission_rate",
        "inventory",
        "held",
        "sold",
        "duplicates",
        "abandoned",
        "holds_expired",
    ];
    assert_eq!(&names[..v1.len()], v1, "{names:?}");
    assert_eq!(
        &names[v1.len()..],
        [
            "active",
            "sold_out",
            "opens_in_ms",
            "joined",
            "left",
            "trimmed"
        ],
        "{names:?}"
    );
}

// ---- eta in the first minute of admissions ---------------------------------

/// RATE 10, BURST 1: admissions run at the bucket's pace for about 1.5 s;
/// then the estimate for a fan ~24 places back must come from those 1.5 s
/// (about 10 per second), not from 60 s (0.25 per second, 40x too long).
#[test]
fn eta_in_the_first_minute_uses_the_time_admissions_have_run() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 10, "BURST", 1).unwrap();
    for i in 0..40 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    let started = Instant::now();
    let mut next = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        match tq!(&mut con, "TQ.ENTER", "ev", format!("t{next}")) {
            Ok(_) => next += 1,
            Err(e) => {
                assert_eq!(e.code(), Some("NOT_READY"), "{e}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    assert!(next >= 5, "only {next} admitted in 1.5 s at RATE 10");
    let p = position(&mut con, "ev", "t39");
    let pos = int_field(&p, "position");
    assert_eq!(pos, 40 - next as i64);
    let eta = int_field(&p, "eta_ms");
    // At most one whole token is available: the gap is pos - 1 or pos.
    let expected = (pos * 1000 / 10) as f64;
    println!("{next} admitted; t39 at {pos}: eta {eta} ms, expected about {expected}");
    assert!(
        (eta as f64) >= expected / 3.0 && (eta as f64) <= expected * 3.0,
        "eta {eta} ms at position {pos}, RATE 10: expected about {expected} ms"
    );
}

// ---- a reconfiguration keeps the bucket's tokens --------------------------

#[test]
fn config_keeps_the_buckets_tokens() {
    let server = Server::start();
    let mut con = server.client();
    // An empty bucket stays empty.
    tq!(&mut con, "TQ.CONFIG", "ev", "BURST", 5, "RATE", 0).unwrap();
    for i in 0..6 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    for i in 0..5 {
        tq!(&mut con, "TQ.ENTER", "ev", format!("t{i}")).unwrap();
    }
    assert_eq!(
        error_text(&tq!(&mut con, "TQ.ENTER", "ev", "t5")),
        "NOT_READY 1"
    );
    tq!(&mut con, "TQ.CONFIG", "ev", "RATE", 0).unwrap();
    assert_eq!(int_field(&position(&mut con, "ev", "t5"), "ready"), 0);
    assert_eq!(
        error_text(&tq!(&mut con, "TQ.ENTER", "ev", "t5")),
        "NOT_READY 1"
    );
    tq!(&mut con, "TQ.CONFIG", "ev", "BURST", 50).unwrap();
    assert_eq!(int_field(&position(&mut con, "ev", "t5"), "ready"), 0);
    assert_eq!(int_field(&stats_of(&mut con, "ev"), "admitted"), 5);

    // A full bucket is capped at a smaller burst, and not refilled by a
    // larger one.
    tq!(&mut con, "TQ.CONFIG", "cap", "BURST", 5, "RATE", 0).unwrap();
    for i in 0..5 {
        tq!(&mut con, "TQ.ENQUEUE", "cap", "u", format!("t{i}")).unwrap();
    }
    let ready = |con: &mut redis::Connection, tokens: &[&str]| -> Vec<i64> {
        tokens
            .iter()
            .map(|t| int_field(&position(con, "cap", t), "ready"))
            .collect()
    };
    let all = ["t0", "t1", "t2", "t3", "t4"];
    assert_eq!(ready(&mut con, &all), [1, 1, 1, 1, 1]);
    tq!(&mut con, "TQ.CONFIG", "cap", "BURST", 2).unwrap();
    assert_eq!(ready(&mut con, &all), [1, 1, 0, 0, 0]);
    tq!(&mut con, "TQ.CONFIG", "cap", "BURST", 10).unwrap();
    assert_eq!(ready(&mut con, &all), [1, 1, 0, 0, 0]);
    tq!(&mut con, "TQ.ENTER", "cap", "t1").unwrap();
    assert_eq!(ready(&mut con, &["t0", "t2", "t3", "t4"]), [1, 0, 0, 0]);
}

/// A replica that has lost an event (its keys deleted there by hand) does
/// not start a new one from its own defaults when the master's next record
/// for it arrives: it refuses the record and keeps nothing.
#[test]
fn a_replica_missing_an_event_refuses_its_records_instead_of_starting_it_anew() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    tq!(&mut m, "TQ.CONFIG", "ev", "RATE", 7).unwrap();
    tq!(&mut m, "TQ.INVENTORY", "ev", "SET", 5).unwrap();
    wait_replicas(&mut m, 1);
    assert!(exists(&mut r, "tq:{ev}:state"));
    let _: () = redis_query(&mut r, &["CONFIG", "SET", "replica-read-only", "no"]);
    let _: i64 = redis_query(&mut r, &["DEL", "tq:{ev}:state"]);
    // A join would succeed on a new event: the record must not make one.
    tq!(&mut m, "TQ.ENQUEUE", "ev", "u1", "t1").unwrap();
    wait_replicas(&mut m, 1);
    assert!(
        !exists(&mut r, "tq:{ev}:state"),
        "the replica started the event again from its own defaults"
    );
    assert!(
        replica.log().contains("failed here but not on the master"),
        "the refused record was not logged:\n{}",
        replica.log()
    );
}
