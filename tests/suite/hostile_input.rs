//! Hostile input: thousands of random argument lists to every TQ command,
//! and event keys (`tq:{E}:queue`, `tq:{E}:state`) of the wrong type. The
//! server stays up, every reply is a value or a documented error, and an
//! error reply changes nothing (a DUPLICATE only its event's `duplicates`).
//! Forged DUMP payloads of the state are in `tests/suite/restore.rs`.

use crate::common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CODES: [&str; 11] = [
    "ERR",
    "WRONGTYPE",
    "DUPLICATE",
    "NOT_QUEUED",
    "NOT_READY",
    "SEAT_UNAVAILABLE",
    "SOLD_OUT",
    "NOT_HELD",
    "NOT_OWNER",
    "NO_PASS",
    "LIMIT",
];

const COMMANDS: [&str; 15] = [
    "TQ.ENQUEUE",
    "TQ.POSITION",
    "TQ.ENTER",
    "TQ.LEAVE",
    "TQ.USER",
    "TQ.TRIM",
    "TQ.INVENTORY",
    "TQ.HOLD",
    "TQ.RELEASE",
    "TQ.CONFIRM",
    "TQ.EXTEND",
    "TQ.PASS",
    "TQ.SEAT",
    "TQ.CONFIG",
    "TQ.STATS",
];

/// Events whose keys are well-formed (no internal error is acceptable).
const GOOD_EVENTS: [&str; 3] = ["ev", "ev2", "fresh"];
/// Events with one of their two keys of the wrong type (set up in
/// `setup`): after real data, or as the only key of the event.
const WRONG_TYPE_EVENTS: [(&str, &str); 4] = [
    ("wt-queue", "queue"),
    ("wt-state", "state"),
    ("wt-new-queue", "queue"),
    ("wt-new-state", "state"),
];

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn hostile_strings() -> Vec<Vec<u8>> {
    vec![
        b(""),
        b(" "),
        vec![0u8],
        vec![0xff, 0xfe, 0x00, 0x80],
        b("{"),
        b("}"),
        b("{}"),
        b("a{b}c"),
        b("tq:{ev}:queue"),
        b("*"),
        b("-"),
        b("+"),
        b("\r\n"),
        vec![b'x'; 200],
        vec![b'x'; 201],
        vec![b'y'; 1024],
        vec![b'y'; 1025],
        vec![b'z'; 5 * 1024],
        b("\u{00e9}\u{4e2d}"),
    ]
}

fn hostile_numbers() -> Vec<Vec<u8>> {
    [
        "0",
        "-0",
        "-1",
        "-100",
        "31536001",
        "99999999999999999999",
        "999999999999999999999",
        "-9223372036854775808",
        "9223372036854775807",
        "18446744073709551615",
        "18446744073709551616",
        "2147483648",
        "2147483649",
        "4294967296",
        "1000000001",
        "NaN",
        "nan",
        "inf",
        "-inf",
        "+inf",
        "1e3",
        "1.5",
        "100.0",
        " 100",
        "100 ",
        "+100",
        "0x10",
        "",
        "1_000",
        "１００",
    ]
    .iter()
    .map(|s| b(s))
    .collect()
}

/// Valid time values, all long enough that nothing expires during the
/// test (so an error reply can be checked to have written nothing).
fn valid_seconds() -> Vec<Vec<u8>> {
    ["100", "0100", "3600", "31536000", "86400"]
        .iter()
        .map(|s| b(s))
        .collect()
}

/// Valid counts (inventory, rate, burst). None is a small positive
/// number: a keyword swap may pair it with HOLD-TTL/HEARTBEAT/TTL, and a
/// few seconds would let holds or entries expire during the test.
fn valid_counts() -> Vec<Vec<u8>> {
    ["0", "100", "500", "2147483648", "1000000"]
        .iter()
        .map(|s| b(s))
        .collect()
}

struct Gen {
    rng: StdRng,
    strings: Vec<Vec<u8>>,
    numbers: Vec<Vec<u8>>,
}

impl Gen {
    fn pick(&mut self, pool: &[Vec<u8>]) -> Vec<u8> {
        pool.choose(&mut self.rng).unwrap().clone()
    }

    fn event(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0..=4 => b(GOOD_EVENTS.choose(&mut self.rng).unwrap()),
            5..=7 => b(WRONG_TYPE_EVENTS.choose(&mut self.rng).unwrap().0),
            _ => self.pick(&self.strings.clone()),
        }
    }

    fn name(&mut self) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0..=6 => b([
                "u1", "u2", "t1", "t2", "t3", "A1", "A2", "d1", "S1", "u3", "d2",
            ]
            .choose(&mut self.rng)
            .unwrap()),
            _ => self.pick(&self.strings.clone()),
        }
    }

    fn seconds(&mut self) -> Vec<u8> {
        if self.rng.gen_bool(0.6) {
            self.pick(&valid_seconds())
        } else {
            self.pick(&self.numbers.clone())
        }
    }

    fn count(&mut self) -> Vec<u8> {
        if self.rng.gen_bool(0.6) {
            self.pick(&valid_counts())
        } else {
            self.pick(&self.numbers.clone())
        }
    }

    fn keyword(&mut self, good: &str) -> Vec<u8> {
        match self.rng.gen_range(0..10) {
            0..=6 => b(good),
            7 => b(&good.to_lowercase()),
            _ => b([
                "DEDUPE",
                "TTL",
                "SET",
                "MAXAGE",
                "RATE",
                "BURST",
                "HEARTBEAT",
                "HOLD-TTL",
                "DEDUPE-TTL",
                "hold_ttl",
                "XX",
                "",
            ]
            .choose(&mut self.rng)
            .unwrap()),
        }
    }

    /// Sometimes `WITH` and a few seats (sometimes none, sometimes one
    /// repeated).
    fn with_list(&mut self, a: &mut Vec<Vec<u8>>) {
        if self.rng.gen_bool(0.4) {
            a.push(self.keyword("WITH"));
            for _ in 0..self.rng.gen_range(0..4) {
                let seat = if self.rng.gen_bool(0.2) {
                    a[1].clone()
                } else {
                    self.name()
                };
                a.push(seat);
            }
        }
    }

    /// A plausible argument list for `command`, then mutated.
    fn args(&mut self, command: &str) -> Vec<Vec<u8>> {
        let mut a = vec![self.event()];
        match command {
            "TQ.ENQUEUE" => {
                a.push(self.name());
                a.push(self.name());
                if self.rng.gen_bool(0.5) {
                    a.push(self.keyword("DEDUPE"));
                    a.push(self.name());
                }
                if self.rng.gen_bool(0.4) {
                    a.push(self.keyword("TTL"));
                    a.push(self.seconds());
                }
            }
            "TQ.POSITION" | "TQ.ENTER" | "TQ.LEAVE" | "TQ.USER" | "TQ.SEAT" => a.push(self.name()),
            "TQ.TRIM" => {
                a.push(self.keyword("MAXAGE"));
                a.push(self.seconds());
            }
            "TQ.INVENTORY" if self.rng.gen_bool(0.6) => {
                let op = if self.rng.gen_bool(0.5) { "SET" } else { "ADD" };
                a.push(self.keyword(op));
                a.push(self.count());
            }
            "TQ.HOLD" => {
                a.push(self.name());
                a.push(self.name());
                if self.rng.gen_bool(0.5) {
                    a.push(self.keyword("TTL"));
                    a.push(self.seconds());
                }
                self.with_list(&mut a);
            }
            "TQ.EXTEND" => {
                a.push(self.name());
                a.push(self.name());
                a.push(self.keyword("TTL"));
                a.push(self.seconds());
                self.with_list(&mut a);
            }
            "TQ.PASS" => {
                a.push(self.name());
                match self.rng.gen_range(0..3) {
                    0 => a.push(self.keyword("TOUCH")),
                    1 => a.push(self.keyword("REVOKE")),
                    _ => {}
                }
            }
            "TQ.RELEASE" => {
                a.push(self.name());
                if self.rng.gen_bool(0.5) {
                    a.push(self.name());
                }
            }
            "TQ.CONFIRM" => {
                a.push(self.name());
                a.push(self.name());
                self.with_list(&mut a);
            }
            "TQ.CONFIG" => {
                for (kw, is_count) in [
                    ("RATE", true),
                    ("BURST", true),
                    ("HEARTBEAT", false),
                    ("HOLD-TTL", false),
                    ("DEDUPE-TTL", false),
                    ("OPENS-AT", true),
                    ("SESSION", false),
                    ("MAX-ACTIVE", true),
                    ("REQUIRE-PASS", true),
                    ("MAX-SEATS", true),
                    ("MAX-ENTRIES", true),
                    ("EVENTS", true),
                ] {
                    if self.rng.gen_bool(0.3) {
                        a.push(self.keyword(kw));
                        let v = if is_count {
                            self.count()
                        } else {
                            self.seconds()
                        };
                        a.push(v);
                    }
                }
            }
            _ => {}
        }
        // Mutations: wrong arity, a hostile word anywhere.
        match self.rng.gen_range(0..10) {
            0 => {
                let n = self.rng.gen_range(0..=a.len());
                a.truncate(n);
            }
            1 => {
                for _ in 0..self.rng.gen_range(1..4) {
                    let w = if self.rng.gen_bool(0.5) {
                        self.name()
                    } else {
                        self.seconds()
                    };
                    a.push(w);
                }
            }
            2 | 3 => {
                let i = self.rng.gen_range(0..a.len());
                a[i] = if self.rng.gen_bool(0.5) {
                    self.pick(&self.strings.clone())
                } else {
                    self.pick(&self.numbers.clone())
                };
            }
            _ => {}
        }
        a
    }
}

fn setup(con: &mut redis::Connection) {
    for ev in ["ev", "ev2"] {
        tq!(con, "TQ.INVENTORY", ev, "SET", 5).unwrap();
        tq!(con, "TQ.HOLD", ev, "A1", "u1", "TTL", 1000).unwrap();
        tq!(
            con,
            "TQ.ENQUEUE",
            ev,
            "u1",
            "t1",
            "DEDUPE",
            "d1",
            "TTL",
            1000
        )
        .unwrap();
        tq!(con, "TQ.ENQUEUE", ev, "u2", "t2").unwrap();
    }
    for (ev, key) in WRONG_TYPE_EVENTS {
        if !ev.starts_with("wt-new") {
            // Give the event real data first, then break one key's type.
            tq!(con, "TQ.INVENTORY", ev, "SET", 3).unwrap();
            tq!(con, "TQ.HOLD", ev, "A1", "u1", "TTL", 1000).unwrap();
            tq!(con, "TQ.ENQUEUE", ev, "u2", "t2").unwrap();
            tq!(con, "TQ.ENQUEUE", ev, "u1", "t1").unwrap();
            tq!(con, "TQ.ENTER", ev, "t2").unwrap();
        }
        let name = format!("tq:{{{ev}}}:{key}");
        redis_query::<i64>(con, &["DEL", &name]);
        redis_query::<i64>(con, &["RPUSH", &name, "not the right type"]);
    }
}

/// Error code of a reply (top-level or nested), if it is an error.
fn reply_code(v: &Value) -> Option<(String, String)> {
    match v {
        Value::ServerError(e) => {
            Some((e.code().to_string(), e.details().unwrap_or("").to_string()))
        }
        _ => None,
    }
}

/// Whether two TQ.STATS replies differ only by one more `duplicates`.
fn duplicate_counted_alone(before: &Value, after: &Value) -> bool {
    if !matches!(before, Value::Array(_) | Value::Map(_)) {
        return false;
    }
    let (mut b, mut a) = (map(before), map(after));
    let count = |m: &[(String, Value)]| {
        m.iter()
            .find(|(k, _)| k == "duplicates")
            .map(|(_, v)| int(v))
    };
    let (Some(was), Some(now)) = (count(&b), count(&a)) else {
        return false;
    };
    b.retain(|(k, _)| k != "duplicates");
    a.retain(|(k, _)| k != "duplicates");
    now == was + 1 && a == b
}

fn show(words: &[Vec<u8>]) -> String {
    words
        .iter()
        .map(|w| {
            let s = String::from_utf8_lossy(w);
            if s.len() > 40 {
                format!(
                    "{}...({} bytes)",
                    &s[..s.char_indices().nth(20).map(|(i, _)| i).unwrap_or(0)],
                    w.len()
                )
            } else {
                format!("{s:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn random_arguments_never_crash_and_errors_change_nothing() {
    let seed: u64 = std::env::var("TQ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("hostile_input seed: {seed} (rerun with TQ_SEED={seed})");
    let server = Server::start();
    let mut con = server.client();
    setup(&mut con);
    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        strings: hostile_strings(),
        numbers: hostile_numbers(),
    };
    let started = Instant::now();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let calls = 4000;
    for n in 0..calls {
        let command = if gen.rng.gen_bool(0.05) {
            ["tq.enqueue", "Tq.Hold", "TQ.STATS"]
                .choose(&mut gen.rng)
                .unwrap()
                .to_string()
        } else {
            COMMANDS.choose(&mut gen.rng).unwrap().to_string()
        };
        let args = gen.args(&command.to_uppercase());
        let mut words = vec![b(&command)];
        words.extend(args.iter().cloned());
        let event = args.first().cloned().unwrap_or_default();
        let state_key = [b"tq:{".as_slice(), &event, b"}:state"].concat();

        // Digest, the state's DUMP and figures, the command, figures and
        // digest again: atomically, so nothing else runs between.
        assert_eq!(raw_call(&mut con, &[b("MULTI")]).unwrap(), Value::Okay);
        raw_call(&mut con, &[b("DEBUG"), b("DIGEST")]).unwrap();
        raw_call(&mut con, &[b("DUMP"), state_key.clone()]).unwrap();
        raw_call(&mut con, &[b("TQ.STATS"), event.clone()]).unwrap();
        let queued = raw_call(&mut con, &words);
        let (before, dump, stats_before, reply, stats_after, after) = match queued {
            Ok(Value::SimpleString(s)) if s == "QUEUED" => {
                raw_call(&mut con, &[b("TQ.STATS"), event.clone()]).unwrap();
                raw_call(&mut con, &[b("DEBUG"), b("DIGEST")]).unwrap();
                let exec = array(&raw_call(&mut con, &[b("EXEC")]).unwrap());
                (
                    text(&exec[0]),
                    exec[1].clone(),
                    exec[2].clone(),
                    exec[3].clone(),
                    exec[4].clone(),
                    text(&exec[5]),
                )
            }
            other => {
                // Refused by Redis itself before queuing (e.g. the arity
                // declared in COMMAND INFO): same call outside MULTI.
                assert!(
                    matches!(other, Ok(Value::ServerError(_))),
                    "{}: {other:?}",
                    show(&words)
                );
                raw_call(&mut con, &[b("DISCARD")]).unwrap();
                let before = digest(&mut con);
                let reply = raw_call(&mut con, &words).unwrap();
                (
                    before,
                    Value::Nil,
                    Value::Nil,
                    reply,
                    Value::Nil,
                    digest(&mut con),
                )
            }
        };

        let label = format!("#{n} {}", show(&words));
        match reply_code(&reply) {
            None => {
                *counts.entry("ok".into()).or_default() += 1;
            }
            Some((code, detail)) => {
                *counts.entry(code.clone()).or_default() += 1;
                if !CODES.contains(&code.as_str()) {
                    failures.push(format!("{label}: undocumented error code: {code} {detail}"));
                }
                if detail.contains("panicked") {
                    failures.push(format!("{label}: handler panicked: {code} {detail}"));
                }
                let good = GOOD_EVENTS.iter().any(|e| e.as_bytes() == event.as_slice());
                if good && detail.contains("internal error") {
                    failures.push(format!(
                        "{label}: internal error on well-formed data: {detail}"
                    ));
                }
                if code == "DUPLICATE" {
                    // The one legitimate change: the duplicates counter.
                    if !duplicate_counted_alone(&stats_before, &stats_after) {
                        failures.push(format!(
                            "{label}: DUPLICATE changed figures beyond the counter: \
                             {stats_before:?} -> {stats_after:?}"
                        ));
                    }
                    // Put the state back as it was; then nothing may differ.
                    match &dump {
                        Value::BulkString(payload) => {
                            redis::cmd("RESTORE")
                                .arg(&state_key)
                                .arg(0)
                                .arg(payload.as_slice())
                                .arg("REPLACE")
                                .query::<()>(&mut con)
                                .unwrap();
                        }
                        _ => {
                            redis::cmd("DEL")
                                .arg(&state_key)
                                .query::<i64>(&mut con)
                                .unwrap();
                        }
                    }
                    if digest(&mut con) != before {
                        failures.push(format!(
                            "{label}: DUPLICATE changed more than the state's counter"
                        ));
                    }
                } else if after != before {
                    failures.push(format!(
                        "{label}: error reply {code} {detail} but the data changed"
                    ));
                }
            }
        }
        if n % 100 == 0 {
            let pong: String = redis_query(&mut con, &["PING"]);
            assert_eq!(pong, "PONG", "server down after {label}");
        }
        if started.elapsed() > Duration::from_secs(20) && n >= 1000 {
            println!("time budget reached after {} calls", n + 1);
            break;
        }
    }
    let pong: String = redis_query(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    println!("calls in {:?}: {counts:?}", started.elapsed());
    // The generator must actually reach success and the interesting errors.
    for (expected, least) in [
        ("ok", 100),
        ("ERR", 100),
        ("WRONGTYPE", 20),
        ("DUPLICATE", 2),
        ("NOT_QUEUED", 10),
    ] {
        assert!(
            counts.get(expected).copied().unwrap_or(0) >= least,
            "too few {expected}: {counts:?}"
        );
    }
    assert_no_failures(&failures, &format!(" (seed {seed})"));
    assert!(
        server.log().lines().all(|l| !l.contains("panicked")),
        "{}",
        server.log()
    );
}

/// Every command with valid arguments (they succeed on a well-formed
/// event as the test below makes it).
fn valid_calls(ev: &str) -> Vec<Vec<String>> {
    let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    vec![
        w(&["TQ.ENQUEUE", ev, "u1", "t9", "DEDUPE", "dd", "TTL", "100"]),
        w(&["TQ.POSITION", ev, "t2"]),
        w(&["TQ.ENTER", ev, "t2"]),
        w(&["TQ.LEAVE", ev, "t2"]),
        w(&["TQ.USER", ev, "u1"]),
        w(&["TQ.TRIM", ev, "MAXAGE", "100"]),
        w(&["TQ.INVENTORY", ev]),
        w(&["TQ.INVENTORY", ev, "SET", "4"]),
        w(&["TQ.HOLD", ev, "A2", "u1", "TTL", "100"]),
        w(&["TQ.RELEASE", ev, "A1"]),
        w(&["TQ.CONFIRM", ev, "A1", "u1"]),
        w(&["TQ.SEAT", ev, "A1"]),
        w(&["TQ.CONFIG", ev, "RATE", "5"]),
        w(&["TQ.CONFIG", ev]),
        w(&["TQ.STATS", ev]),
    ]
}

/// Puts a value of `kind` at `name` (which does not exist).
fn put_value(con: &mut redis::Connection, name: &str, kind: &str) {
    match kind {
        "string" => redis_query::<()>(con, &["SET", name, "x"]),
        "list" => {
            redis_query::<i64>(con, &["RPUSH", name, "x"]);
        }
        "hash" => {
            redis_query::<i64>(con, &["HSET", name, "x", "y"]);
        }
        "zset" => {
            redis_query::<i64>(con, &["ZADD", name, "1", "x"]);
        }
        "stream" => {
            redis_query::<String>(con, &["XADD", name, "*", "token", "t2", "user", "u2"]);
        }
        other => panic!("{other}"),
    }
}

/// Any value other than a stream at `tq:{E}:queue`, or other than tq's
/// state at `tq:{E}:state`, on an event with data or on one without:
/// every command answers WRONGTYPE, changes nothing and leaves the value.
#[test]
fn a_key_of_the_wrong_type_gives_wrongtype_and_changes_nothing() {
    let server = Server::start();
    let mut con = server.client();
    let mut failures = Vec::new();
    let cases = [
        ("queue", ["string", "list", "hash", "zset"]),
        ("state", ["string", "list", "hash", "stream"]),
    ];
    for (key, kinds) in cases {
        for value_kind in kinds {
            for with_data in [true, false] {
                let ev = format!("wrong-{key}-{value_kind}-{with_data}");
                if with_data {
                    tq!(&mut con, "TQ.INVENTORY", ev.as_str(), "SET", 3).unwrap();
                    tq!(&mut con, "TQ.HOLD", ev.as_str(), "A1", "u1", "TTL", 1000).unwrap();
                    tq!(&mut con, "TQ.ENQUEUE", ev.as_str(), "u2", "t2").unwrap();
                }
                let name = format!("tq:{{{ev}}}:{key}");
                redis_query::<i64>(&mut con, &["DEL", &name]);
                put_value(&mut con, &name, value_kind);
                for call in valid_calls(&ev) {
                    let words: Vec<Vec<u8>> = call.iter().map(|w| b(w)).collect();
                    let before = digest(&mut con);
                    let reply = call_args(&mut con, &words);
                    let after = digest(&mut con);
                    let case = format!("{call:?} with {key} a {value_kind} (data: {with_data})");
                    match &reply {
                        Err(e) => {
                            let c = e.code().unwrap_or("?");
                            if c != "WRONGTYPE" {
                                failures.push(format!("{case}: {c} instead of WRONGTYPE"));
                            }
                            if before != after {
                                failures.push(format!("{case}: error {e} but data changed"));
                            }
                        }
                        Ok(v) => failures.push(format!("{case}: succeeded: {v:?}")),
                    }
                }
                let t: String = redis_query(&mut con, &["TYPE", &name]);
                assert_eq!(t, value_kind, "{name} was overwritten");
                let other = if key == "queue" { "state" } else { "queue" };
                if !with_data {
                    let created: i64 =
                        redis_query(&mut con, &["EXISTS", &format!("tq:{{{ev}}}:{other}")]);
                    assert_eq!(created, 0, "{ev}: a command created its {other}");
                }
            }
        }
    }
    let pong: String = redis_query(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    assert_no_failures(&failures, "");
}

/// Fails with every collected problem listed, not just the first one.
fn assert_no_failures(failures: &[String], context: &str) {
    assert!(
        failures.is_empty(),
        "{} failures{context}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
