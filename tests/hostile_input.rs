//! Hostile input: thousands of random argument lists to every TQ command,
//! and event keys of the wrong type. The server stays up, every reply is a
//! value or a documented error, and an error reply changes nothing.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CODES: [&str; 9] = [
    "ERR",
    "WRONGTYPE",
    "DUPLICATE",
    "NOT_QUEUED",
    "NOT_READY",
    "SEAT_UNAVAILABLE",
    "SOLD_OUT",
    "NOT_HELD",
    "NOT_OWNER",
];

const COMMANDS: [&str; 13] = [
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
    "TQ.SEAT",
    "TQ.CONFIG",
    "TQ.STATS",
];

/// Events whose keys are well-formed (no internal error is acceptable).
const GOOD_EVENTS: [&str; 3] = ["ev", "ev2", "fresh"];
/// Events with one key of the wrong type (set up in `setup`).
const WRONG_TYPE_EVENTS: [(&str, &str); 8] = [
    ("wt-queue", "queue"),
    ("wt-order", "order"),
    ("wt-beat", "beat"),
    ("wt-meta", "meta"),
    ("wt-seats", "seats"),
    ("wt-holds", "holds"),
    ("wt-admits", "admits"),
    ("wt-user", "user:u1"),
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
                "u1", "u2", "t1", "t2", "t3", "A1", "A2", "d1", "S1", "u2x", "dx", "dl",
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
                a.push(self.keyword("SET"));
                a.push(self.count());
            }
            "TQ.HOLD" => {
                a.push(self.name());
                a.push(self.name());
                if self.rng.gen_bool(0.5) {
                    a.push(self.keyword("TTL"));
                    a.push(self.seconds());
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
            }
            "TQ.CONFIG" => {
                for (kw, is_count) in [
                    ("RATE", true),
                    ("BURST", true),
                    ("HEARTBEAT", false),
                    ("HOLD-TTL", false),
                    ("DEDUPE-TTL", false),
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
        // Give the event real data first, then break one key's type.
        tq!(con, "TQ.INVENTORY", ev, "SET", 3).unwrap();
        tq!(con, "TQ.HOLD", ev, "A1", "u1", "TTL", 1000).unwrap();
        tq!(con, "TQ.ENQUEUE", ev, "u2", "t2").unwrap();
        tq!(con, "TQ.ENTER", ev, "t2").unwrap();
        let name = format!("tq:{{{ev}}}:{key}");
        redis_query::<i64>(con, &["DEL", &name]);
        redis_query::<i64>(con, &["RPUSH", &name, "not the right type"]);
    }
    // A string where the first user's per-user zset would be.
    redis_query::<String>(con, &["SET", "tq:{ev2}:user:u2x", "x"]);
    redis_query::<String>(con, &["SET", "tq:{ev2}:dedupe:dx", "1-0"]);
    redis_query::<i64>(con, &["LPUSH", "tq:{ev2}:dedupe:dl", "x"]);
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

/// The stored `meta` text of an event, if it holds one.
fn meta_text(con: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    let t: Value = redis::cmd("TYPE").arg(key).query(con).unwrap();
    if t != Value::SimpleString("string".into()) {
        return None;
    }
    redis::cmd("GET").arg(key).query(con).unwrap()
}

/// `name=value` pairs of a meta text (as the README documents it).
fn meta_pairs(text: &Option<Vec<u8>>) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let text = text.as_deref().unwrap_or_default();
    text.split(|&c| c == b' ')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let at = pair.iter().position(|&c| c == b'=').unwrap_or(pair.len());
            (
                pair[..at].to_vec(),
                pair[(at + 1).min(pair.len())..].to_vec(),
            )
        })
        .collect()
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
        let meta_key = [b"tq:{".as_slice(), &event, b"}:meta"].concat();
        let meta_before_text = meta_text(&mut con, &meta_key);
        let meta_before = meta_pairs(&meta_before_text);

        // Digest, command, digest: atomically, so nothing else runs between.
        assert_eq!(raw_call(&mut con, &[b("MULTI")]).unwrap(), Value::Okay);
        raw_call(&mut con, &[b("DEBUG"), b("DIGEST")]).unwrap();
        let queued = raw_call(&mut con, &words);
        let (before, reply, after) = match queued {
            Ok(Value::SimpleString(s)) if s == "QUEUED" => {
                raw_call(&mut con, &[b("DEBUG"), b("DIGEST")]).unwrap();
                let exec = array(&raw_call(&mut con, &[b("EXEC")]).unwrap());
                (text(&exec[0]), exec[1].clone(), text(&exec[2]))
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
                (before, reply, digest(&mut con))
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
                    let meta_after = meta_pairs(&meta_text(&mut con, &meta_key));
                    let dup = |m: &BTreeMap<Vec<u8>, Vec<u8>>| -> i64 {
                        m.get(&b"duplicates"[..])
                            .map(|v| String::from_utf8_lossy(v).parse().unwrap())
                            .unwrap_or(0)
                    };
                    let mut other_after = meta_after.clone();
                    let mut other_before = meta_before.clone();
                    other_after.remove(&b"duplicates"[..]);
                    other_before.remove(&b"duplicates"[..]);
                    if dup(&meta_after) != dup(&meta_before) + 1 || other_after != other_before {
                        failures.push(format!(
                            "{label}: DUPLICATE changed meta beyond the counter"
                        ));
                    }
                    // Put the counter back; then nothing else may differ.
                    match &meta_before_text {
                        Some(text) => {
                            redis::cmd("SET")
                                .arg(&meta_key)
                                .arg(text.as_slice())
                                .query::<()>(&mut con)
                                .unwrap();
                        }
                        None => {
                            redis::cmd("DEL")
                                .arg(&meta_key)
                                .query::<i64>(&mut con)
                                .unwrap();
                        }
                    }
                    if digest(&mut con) != before {
                        failures.push(format!(
                            "{label}: DUPLICATE changed keys other than the counter"
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

/// Which key of an event each command must check, with valid arguments.
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

/// Whether `command` (as called in `valid_calls`) cannot do its job
/// without reading or writing `key`, so a wrong type there must give
/// WRONGTYPE. Other keys may be checked or not, but an error must still
/// change nothing.
fn uses_key(command: &str, key: &str) -> bool {
    let c = |names: &[&str]| names.contains(&command);
    // Every queue write first drops abandoned entries (beat), USER and
    // STATS leave them out (beat).
    let reaps = c(&[
        "TQ.ENQUEUE",
        "TQ.POSITION",
        "TQ.ENTER",
        "TQ.LEAVE",
        "TQ.USER",
        "TQ.TRIM",
        "TQ.STATS",
    ]);
    match key {
        // The waiting entries themselves.
        "queue" => c(&[
            "TQ.ENQUEUE",
            "TQ.POSITION",
            "TQ.ENTER",
            "TQ.LEAVE",
            "TQ.STATS",
        ]),
        // token -> place: duplicate check, positions, finding a token.
        "order" => c(&[
            "TQ.ENQUEUE",
            "TQ.POSITION",
            "TQ.ENTER",
            "TQ.LEAVE",
            "TQ.USER",
        ]),
        "beat" => reaps,
        // The measured admission rate (eta, stats) and recording one.
        "admits" => c(&["TQ.POSITION", "TQ.ENTER", "TQ.STATS"]),
        // Settings and counters: all but the seat view.
        "meta" => command != "TQ.SEAT",
        "seats" => c(&["TQ.HOLD", "TQ.RELEASE", "TQ.CONFIRM", "TQ.SEAT"]),
        // Hold expiry comes first in every seat write; STATS counts holds.
        "holds" => c(&[
            "TQ.INVENTORY",
            "TQ.HOLD",
            "TQ.RELEASE",
            "TQ.CONFIRM",
            "TQ.STATS",
        ]),
        // ENQUEUE and USER name user u1 in `valid_calls`.
        "user:u1" => c(&["TQ.ENQUEUE", "TQ.USER"]),
        "dedupe:dd" => command == "TQ.ENQUEUE",
        _ => false,
    }
}

#[test]
fn a_key_of_the_wrong_type_gives_wrongtype_and_changes_nothing() {
    let server = Server::start();
    let mut con = server.client();
    let mut failures = Vec::new();
    let keys = [
        "queue",
        "order",
        "beat",
        "meta",
        "seats",
        "holds",
        "admits",
        "user:u1",
        "dedupe:dd",
    ];
    for (k, key) in keys.iter().enumerate() {
        for value_kind in ["string", "list"] {
            if (*key == "dedupe:dd" || *key == "meta") && value_kind == "string" {
                continue; // a dedupe record and meta ARE strings
            }
            let ev = format!("wrong{k}{value_kind}");
            tq!(&mut con, "TQ.INVENTORY", ev.as_str(), "SET", 3).unwrap();
            tq!(&mut con, "TQ.HOLD", ev.as_str(), "A1", "u1", "TTL", 1000).unwrap();
            tq!(&mut con, "TQ.ENQUEUE", ev.as_str(), "u2", "t2").unwrap();
            let name = format!("tq:{{{ev}}}:{key}");
            redis_query::<i64>(&mut con, &["DEL", &name]);
            if value_kind == "string" {
                redis_query::<String>(&mut con, &["SET", &name, "x"]);
            } else {
                redis_query::<i64>(&mut con, &["RPUSH", &name, "x"]);
            }
            for call in valid_calls(&ev) {
                let words: Vec<Vec<u8>> = call.iter().map(|w| b(w)).collect();
                let before = digest(&mut con);
                let reply = call_args(&mut con, &words);
                let after = digest(&mut con);
                let must = uses_key(&call[0], key);
                match &reply {
                    Err(e) => {
                        let c = e.code().unwrap_or("?");
                        if must && c != "WRONGTYPE" {
                            failures.push(format!(
                                "{call:?} with {key} a {value_kind}: {c} instead of WRONGTYPE"
                            ));
                        }
                        if !CODES.contains(&c) {
                            failures.push(format!("{call:?}: undocumented code {e}"));
                        }
                        if before != after {
                            failures.push(format!(
                                "{call:?} with {key} a {value_kind}: error {e} but data changed"
                            ));
                        }
                    }
                    Ok(v) if must => failures.push(format!(
                        "{call:?} with {key} a {value_kind}: succeeded: {v:?}"
                    )),
                    Ok(_) => {}
                }
            }
            let t: String = redis_query(&mut con, &["TYPE", &name]);
            assert_eq!(t, value_kind, "{name} was overwritten");
        }
    }
    let pong: String = redis_query(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
    assert_no_failures(&failures, "");
}

/// A per-user zset replaced by another type AFTER its user joined: the
/// commands that read or remove the entry learn the user only from the
/// entry, so they must check that key's type too: WRONGTYPE, nothing
/// written (not NOT_QUEUED for a waiting token, not a silent success that
/// skips the user index).
#[test]
fn a_wrong_typed_user_key_of_a_waiting_entry_is_refused_before_any_write() {
    let server = Server::start();
    let mut con = server.client();
    let mut failures = Vec::new();
    let cases: [(&str, &[&str]); 4] = [
        ("TQ.POSITION", &["t1"]),
        ("TQ.LEAVE", &["t1"]),
        ("TQ.ENTER", &["t1"]),
        ("TQ.TRIM", &["MAXAGE", "1"]),
    ];
    for (i, (command, rest)) in cases.iter().enumerate() {
        let ev = format!("ukey{i}");
        tq!(&mut con, "TQ.ENQUEUE", ev.as_str(), "u1", "t1").unwrap();
        tq!(&mut con, "TQ.ENQUEUE", ev.as_str(), "u2", "t2").unwrap();
        redis_query::<i64>(&mut con, &["DEL", &format!("tq:{{{ev}}}:user:u1")]);
        redis_query::<String>(&mut con, &["SET", &format!("tq:{{{ev}}}:user:u1"), "x"]);
        if *command == "TQ.TRIM" {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let mut words = vec![b(command), b(&ev)];
        words.extend(rest.iter().map(|w| b(w)));
        let before = digest(&mut con);
        let reply = call_args(&mut con, &words);
        let after = digest(&mut con);
        let xlen: i64 = redis_query(&mut con, &["XLEN", &format!("tq:{{{ev}}}:queue")]);
        match &reply {
            Err(e) => {
                if before != after {
                    failures.push(format!(
                        "{}: replied `{}` but changed the data (XLEN now {xlen}, was 2)",
                        show(&words),
                        error_text(&reply)
                    ));
                }
                if e.code() != Some("WRONGTYPE") {
                    failures.push(format!(
                        "{}: {} instead of WRONGTYPE",
                        show(&words),
                        error_text(&reply)
                    ));
                }
            }
            Ok(v) => failures.push(format!(
                "{}: succeeded ({v:?}) with a wrong-typed user key",
                show(&words)
            )),
        }
        // The rest of the queue is still consistent with the stream.
        let order: i64 = redis_query(&mut con, &["ZCARD", &format!("tq:{{{ev}}}:order")]);
        if order != xlen {
            failures.push(format!(
                "{}: order zset has {order} entries, stream {xlen}",
                show(&words)
            ));
        }
    }
    assert_no_failures(&failures, "");
}

/// A counter in `tq:{E}:meta` overwritten with a non-number (e.g. by a
/// stray SET): a command that must update it fails with an error, and
/// that error must come before any write (no seat sold or freed without
/// its counter, which would break inventory + held + sold).
#[test]
fn a_corrupt_counter_is_refused_before_any_write() {
    let server = Server::start();
    let mut con = server.client();
    let mut failures = Vec::new();
    // (counter, command); "" stands for a meta that is not name=value
    // pairs at all.
    let cases: [(&str, &[&str]); 7] = [
        ("sold", &["TQ.CONFIRM", "A", "u"]),
        ("inventory", &["TQ.RELEASE", "A"]),
        ("inventory", &["TQ.HOLD", "B", "u"]),
        ("admitted", &["TQ.ENTER", "t1"]),
        ("duplicates", &["TQ.ENQUEUE", "u", "t1"]),
        ("", &["TQ.HOLD", "B", "u"]),
        ("", &["TQ.ENTER", "t1"]),
    ];
    for (i, (counter, call)) in cases.iter().enumerate() {
        let ev = format!("corrupt{i}");
        tq!(&mut con, "TQ.INVENTORY", ev.as_str(), "SET", 5).unwrap();
        tq!(&mut con, "TQ.HOLD", ev.as_str(), "A", "u").unwrap();
        tq!(&mut con, "TQ.ENQUEUE", ev.as_str(), "u", "t1").unwrap();
        let meta_key = format!("tq:{{{ev}}}:meta");
        let mut pairs = meta_pairs(&meta_text(&mut con, meta_key.as_bytes()));
        pairs.insert(counter.as_bytes().to_vec(), b"abc".to_vec());
        let corrupt: Vec<Vec<u8>> = pairs
            .iter()
            .map(|(name, value)| match name.as_slice() {
                b"" => b"garbage".to_vec(),
                _ => [name.as_slice(), b"=", value].concat(),
            })
            .collect();
        redis_query::<()>(
            &mut con,
            &[
                "SET",
                &meta_key,
                &String::from_utf8(corrupt.join(&b' ')).unwrap(),
            ],
        );
        let mut words = vec![b(call[0]), b(&ev)];
        words.extend(call[1..].iter().map(|w| b(w)));
        let before = digest(&mut con);
        let reply = call_args(&mut con, &words);
        let after = digest(&mut con);
        match &reply {
            Err(e) => {
                if !CODES.contains(&e.code().unwrap_or("?")) {
                    failures.push(format!("{}: undocumented {e}", show(&words)));
                }
                if before != after {
                    let seat: Value = redis::cmd("HGETALL")
                        .arg(format!("tq:{{{ev}}}:seats"))
                        .query(&mut con)
                        .unwrap();
                    failures.push(format!(
                        "{} with meta {counter}=abc: replied `{}` but changed the data (seats now {seat:?})",
                        show(&words),
                        error_text(&reply)
                    ));
                }
            }
            Ok(v) => {
                // Acceptable only if the counter was left alone or repaired.
                let stored = meta_pairs(&meta_text(&mut con, meta_key.as_bytes()));
                // The not-a-pair word reads back as a name with no value.
                let written = if counter.is_empty() {
                    "garbage"
                } else {
                    counter
                };
                let left = stored.get(written.as_bytes()).map(Vec::as_slice);
                if matches!(left, Some(b"abc") | Some(b"")) && before != after {
                    failures.push(format!(
                        "{}: succeeded ({v:?}) without its counter",
                        show(&words)
                    ));
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
