//! RESTORE hands any client's bytes to tq's `rdb_load`: a forged payload
//! with a valid CRC must be refused with an error or loaded as a state on
//! which every command works, never crash, hang or panic the server.
//!
//! A DUMP payload is `body | RDB version (2 bytes LE) | CRC-64 (8 bytes LE)`
//! (see `common::crc64`). For a module value the body is the type byte 7
//! (RDB_TYPE_MODULE_2), the module id as an RDB 64-bit length (0x81 and 8
//! bytes big-endian: 54 bits naming the type, 10 bits of encver), the
//! values the type saved, each after an opcode (1 signed, 2 unsigned,
//! 3 float, 4 double, 5 string), and the EOF opcode 0. The tests take real
//! DUMPs (with `rdbcompression no`, so strings are stored raw), change them
//! and recompute the trailer, so that Redis accepts the CRC and the forged
//! bytes reach tq.
//!
//! `TQ_SEED` replays a run; `TQ_FUZZ_ITERATIONS` sets its length.

use crate::common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

#[test]
fn crc64_is_the_one_redis_uses() {
    // The check value of CRC-64/Jones as Redis' crc64.c tests it.
    assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    assert_eq!(crc64(b""), 0);
}

/// A server whose DUMP strings are raw (no LZF), with a read timeout on its
/// connection so that a hang fails the test.
fn server() -> (Server, redis::Connection) {
    let server = Server::start_with(&["--rdbcompression", "no"]);
    let con = server.client();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (server, con)
}

/// Three real states: a busy event, a config-only one, a queue-only one.
fn make_events(con: &mut redis::Connection) -> Vec<&'static str> {
    tq!(
        con,
        "TQ.CONFIG",
        "rich",
        "RATE",
        3,
        "BURST",
        4,
        "HOLD-TTL",
        100
    )
    .unwrap();
    tq!(con, "TQ.INVENTORY", "rich", "SET", 50).unwrap();
    for i in 0..40 {
        tq!(
            con,
            "TQ.ENQUEUE",
            "rich",
            format!("u{}", i % 7),
            format!("t{i}"),
            "DEDUPE",
            format!("d{i}"),
            "TTL",
            200 + i
        )
        .unwrap();
    }
    let _ = tq!(con, "TQ.ENQUEUE", "rich", "u1", "t-dup", "DEDUPE", "d3");
    for t in ["t0", "t1", "t2"] {
        tq!(con, "TQ.ENTER", "rich", t).unwrap();
    }
    tq!(con, "TQ.LEAVE", "rich", "t9").unwrap();
    tq!(con, "TQ.POSITION", "rich", "t20").unwrap();
    for s in 0..12 {
        tq!(
            con,
            "TQ.HOLD",
            "rich",
            format!("s{s}"),
            format!("u{}", s % 7)
        )
        .unwrap();
    }
    for s in 0..4 {
        tq!(
            con,
            "TQ.CONFIRM",
            "rich",
            format!("s{s}"),
            format!("u{}", s % 7)
        )
        .unwrap();
    }
    tq!(con, "TQ.RELEASE", "rich", "s11").unwrap();
    tq!(con, "TQ.CONFIG", "conf", "RATE", 9, "HEARTBEAT", 60).unwrap();
    for i in 0..5 {
        tq!(con, "TQ.ENQUEUE", "qonly", "solo", format!("q{i}")).unwrap();
    }
    vec!["rich", "conf", "qonly"]
}

/// (DUMP of the state, DUMP of the queue if it exists) of `event`, taken in
/// one transaction.
fn dumps(con: &mut redis::Connection, event: &str) -> (Vec<u8>, Option<Vec<u8>>) {
    let (state, queue): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::pipe()
        .atomic()
        .cmd("DUMP")
        .arg(state_key(event))
        .cmd("DUMP")
        .arg(queue_key(event))
        .query(con)
        .unwrap();
    (state.expect("no state to DUMP"), queue)
}

/// Reads an RDB length at `at`: Some((value, bytes used)), None if it is a
/// special (encoded string) form or runs past the end.
fn rdb_len(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    match first >> 6 {
        0 => Some((u64::from(first & 0x3f), 1)),
        1 => Some((
            (u64::from(first & 0x3f) << 8) | u64::from(*b.get(at + 1)?),
            2,
        )),
        2 if first == 0x80 => Some((
            u64::from(u32::from_be_bytes(b.get(at + 1..at + 5)?.try_into().ok()?)),
            5,
        )),
        2 if first == 0x81 => Some((
            u64::from_be_bytes(b.get(at + 1..at + 9)?.try_into().ok()?),
            9,
        )),
        _ => None,
    }
}

fn put_rdb_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// One value the type saved.
#[derive(Clone, Debug)]
enum Field {
    /// Opcode 1 or 2 and its value.
    Int(u8, u64),
    /// Opcode 3 or 4 and its bytes.
    Float(u8, Vec<u8>),
    /// Opcode 5 and its raw bytes.
    Str(Vec<u8>),
}

/// A module value's body taken apart: the 10 header bytes (type byte and
/// module id) and the fields, or None if it is not laid out as above.
#[derive(Clone, Debug)]
struct ModuleValue {
    header: Vec<u8>,
    fields: Vec<Field>,
}

impl ModuleValue {
    fn parse(body: &[u8]) -> Option<ModuleValue> {
        if body.len() < 11 || body[0] != 7 || body[1] != 0x81 {
            return None;
        }
        let mut fields = Vec::new();
        let mut at = 10;
        loop {
            let (opcode, n) = rdb_len(body, at)?;
            at += n;
            match opcode {
                0 => break,
                1 | 2 => {
                    let (v, n) = rdb_len(body, at)?;
                    at += n;
                    fields.push(Field::Int(opcode as u8, v));
                }
                3 | 4 => {
                    let n = if opcode == 3 { 4 } else { 8 };
                    fields.push(Field::Float(opcode as u8, body.get(at..at + n)?.to_vec()));
                    at += n;
                }
                5 => {
                    let (len, n) = rdb_len(body, at)?; // raw strings only
                    at += n;
                    let end = at.checked_add(usize::try_from(len).ok()?)?;
                    fields.push(Field::Str(body.get(at..end)?.to_vec()));
                    at = end;
                }
                _ => return None,
            }
        }
        (at == body.len()).then(|| ModuleValue {
            header: body[..10].to_vec(),
            fields,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.header.clone();
        for f in &self.fields {
            match f {
                Field::Int(op, v) => {
                    out.push(*op);
                    put_rdb_len(&mut out, *v);
                }
                Field::Float(op, bytes) => {
                    out.push(*op);
                    out.extend_from_slice(bytes);
                }
                Field::Str(bytes) => {
                    out.push(5);
                    put_rdb_len(&mut out, bytes.len() as u64);
                    out.extend_from_slice(bytes);
                }
            }
        }
        out.push(0);
        out
    }

    fn module_id(&self) -> u64 {
        u64::from_be_bytes(self.header[2..10].try_into().unwrap())
    }

    fn with_module_id(&self, id: u64) -> ModuleValue {
        let mut v = self.clone();
        v.header[2..10].copy_from_slice(&id.to_be_bytes());
        v
    }
}

/// A payload whose encver (low 10 bits of the module id) is not one tq
/// writes is refused with an error, and nothing is stored.
#[test]
fn restore_of_an_unknown_encoding_version_is_refused() {
    let (server, mut con) = server();
    make_events(&mut con);
    let (payload, _) = dumps(&mut con, "rich");
    let (body, version) = split_dump(&payload);
    let value = ModuleValue::parse(&body)
        .unwrap_or_else(|| panic!("not a module value as documented: {:02x?}", &body[..12]));
    let id = value.module_id();
    let encver = id & 1023;
    println!(
        "module id {id:#x}, encver {encver}, {} fields",
        value.fields.len()
    );
    assert!(encver >= 1, "encver {encver}");
    // Unchanged, re-encoded and with a recomputed trailer: accepted.
    assert_eq!(
        value.encode(),
        body,
        "the body does not re-encode as parsed"
    );
    let _: () = redis::cmd("RESTORE")
        .arg("tq:{same}:state")
        .arg(0)
        .arg(make_dump(&value.encode(), version))
        .query(&mut con)
        .expect("the unchanged payload with a recomputed trailer");
    assert_eq!(
        digest_value(&mut con, "tq:{same}:state"),
        digest_value(&mut con, &state_key("rich"))
    );

    for (what, forged) in [
        ("encver + 1", id & !1023 | (encver + 1)),
        ("encver + 2", id & !1023 | (encver + 2)),
        ("encver 1023", id | 1023),
        ("another type name", id ^ (1 << 20)),
    ] {
        let payload = make_dump(&value.with_module_id(forged).encode(), version);
        let reply: redis::RedisResult<()> = redis::cmd("RESTORE")
            .arg("tq:{forged}:state")
            .arg(0)
            .arg(payload)
            .query(&mut con);
        let err = reply.expect_err(what);
        assert!(err.code().is_some(), "{what}: not an error reply: {err}");
        assert_eq!(
            redis_query::<i64>(&mut con, &["EXISTS", "tq:{forged}:state"]),
            0,
            "{what}"
        );
    }
    assert_eq!(redis_query::<String>(&mut con, &["PING"]), "PONG");
    drop(server);
}

/// How a payload was made, for the failure message.
struct Forged {
    how: String,
    payload: Vec<u8>,
}

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen()).collect()
}

/// Changes `b` in one of several ways; returns what it did.
fn mutate_bytes(rng: &mut StdRng, b: &mut Vec<u8>, other: &[u8]) -> String {
    let len = b.len();
    let at = if len == 0 { 0 } else { rng.gen_range(0..len) };
    match rng.gen_range(0..10) {
        0 if len > 0 => {
            let bit = rng.gen_range(0..8);
            b[at] ^= 1 << bit;
            format!("flip bit {bit} of byte {at}")
        }
        1 if len > 0 => {
            let v = rng.gen();
            b[at] = v;
            format!("byte {at} = {v:#x}")
        }
        2 if len > 0 => {
            let n = rng.gen_range(1..=8).min(len - at);
            let fill = [0x00, 0xff, 0x7f, 0x80][rng.gen_range(0..4)];
            b[at..at + n].fill(fill);
            format!("{n} bytes at {at} = {fill:#x}")
        }
        3 => {
            let keep = if len == 0 { 0 } else { rng.gen_range(0..len) };
            b.truncate(keep);
            format!("truncated to {keep}")
        }
        4 => {
            let n = rng.gen_range(1..64);
            b.extend(random_bytes(rng, n));
            format!("{n} random bytes appended")
        }
        5 => {
            let n = rng.gen_range(1..16);
            let ins = random_bytes(rng, n);
            b.splice(at..at, ins);
            format!("{n} random bytes inserted at {at}")
        }
        6 if len > 0 => {
            let n = rng.gen_range(1..=16).min(len - at);
            b.drain(at..at + n);
            format!("{n} bytes deleted at {at}")
        }
        7 if len > 0 => {
            let n = rng.gen_range(1..=32).min(len - at);
            let copy = b[at..at + n].to_vec();
            let to = rng.gen_range(0..=len);
            b.splice(to..to, copy);
            format!("{n} bytes from {at} duplicated at {to}")
        }
        8 if len >= 8 => {
            let at = rng.gen_range(0..=len - 8);
            let v: u64 = [
                0,
                1,
                u64::from(u32::MAX),
                u64::from(u32::MAX) + 1,
                i64::MAX as u64,
                u64::MAX,
                1 << 40,
                rng.gen(),
            ][rng.gen_range(0..8)];
            let wide = rng.gen_bool(0.5);
            if wide {
                b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            } else {
                b[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
            }
            format!(
                "{} {v:#x} written at {at}",
                if wide { "u64" } else { "u32" }
            )
        }
        _ if !other.is_empty() => {
            // Splice: our prefix, another state's suffix.
            let from = rng.gen_range(0..other.len());
            b.truncate(at);
            b.extend_from_slice(&other[from..]);
            format!("prefix {at} + another state's bytes from {from}")
        }
        _ => {
            b.push(rng.gen());
            "one byte appended".into()
        }
    }
}

/// A forged state payload: mostly the type's string values changed with
/// their framing kept right (so that tq's decoder sees the change), the
/// rest the body's raw bytes (so that Redis' framing goes wrong too).
fn forge(rng: &mut StdRng, states: &[(Vec<u8>, [u8; 2])]) -> Forged {
    let pick = rng.gen_range(0..states.len());
    let (body, version) = &states[pick];
    let other = &states[rng.gen_range(0..states.len())].0;
    let rounds = if rng.gen_bool(0.7) {
        1
    } else {
        rng.gen_range(2..6)
    };
    let mut how = vec![format!("state {pick}")];
    let parsed = ModuleValue::parse(body);
    let body = match parsed {
        Some(mut value) if rng.gen_bool(0.8) && !value.fields.is_empty() => {
            let other_value = ModuleValue::parse(other);
            for _ in 0..rounds {
                let f = rng.gen_range(0..value.fields.len());
                match &mut value.fields[f] {
                    Field::Str(bytes) => {
                        let donor = other_value
                            .as_ref()
                            .and_then(|o| {
                                o.fields.iter().find_map(|f| match f {
                                    Field::Str(s) => Some(s.clone()),
                                    _ => None,
                                })
                            })
                            .unwrap_or_default();
                        how.push(format!(
                            "string field {f}: {}",
                            mutate_bytes(rng, bytes, &donor)
                        ));
                    }
                    Field::Int(_, v) => {
                        *v ^= 1 << rng.gen_range(0..64);
                        how.push(format!("int field {f} = {v:#x}"));
                    }
                    Field::Float(_, bytes) => {
                        how.push(format!(
                            "float field {f}: {}",
                            mutate_bytes(rng, bytes, &[])
                        ));
                    }
                }
            }
            value.encode()
        }
        _ => {
            let mut raw = body.clone();
            for _ in 0..rounds {
                how.push(format!("raw body: {}", mutate_bytes(rng, &mut raw, other)));
            }
            raw
        }
    };
    Forged {
        how: how.join("; "),
        payload: make_dump(&body, *version),
    }
}

/// Asserts a reply is a reply (a value or an error reply), not a broken
/// connection.
fn answered(
    reply: redis::RedisResult<Value>,
    server: &mut Server,
    forged: &Forged,
    what: &str,
) -> Option<Value> {
    match reply {
        Ok(v) => Some(v),
        Err(e) if e.code().is_some() => None,
        Err(e) => {
            let path = server.dir.join("forged-payload.hex");
            let hex: String = forged.payload.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(&path, &hex).unwrap();
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "{what} after RESTORE of a forged payload ({}): {e}; server running: {}; \
                 payload in {} (RESTORE it with a recomputed trailer to reproduce); \
                 log tail:\n{}",
                forged.how,
                server.is_running(),
                path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
    }
}

#[test]
fn restore_of_forged_state_payloads_never_crashes_the_server() {
    let seed: u64 = std::env::var("TQ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let iterations: usize = std::env::var("TQ_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8000);
    println!("restore fuzz seed {seed} (rerun with TQ_SEED={seed}), {iterations} payloads");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut server, mut con) = server();
    let events = make_events(&mut con);
    let mut states: Vec<(Vec<u8>, [u8; 2])> = Vec::new();
    let mut queues: Vec<Option<Vec<u8>>> = Vec::new();
    for ev in &events {
        let (state, queue) = dumps(&mut con, ev);
        states.push(split_dump(&state));
        queues.push(queue);
    }
    let structured = states
        .iter()
        .filter(|(b, _)| ModuleValue::parse(b).is_some())
        .count();
    assert_eq!(
        structured,
        states.len(),
        "a state's DUMP is not laid out as documented at the top of this file"
    );

    let (fz, fz_copy) = (state_key("fz"), state_key("fz-copy"));
    let (mut accepted, mut refused, mut kept) = (0usize, 0usize, 0usize);
    let mut other_types = 0usize;
    for i in 0..iterations {
        let forged = if i % 100 == 0 {
            // Now and then the real thing, which must load.
            let (body, version) = &states[i / 100 % states.len()];
            Forged {
                how: "unchanged".into(),
                payload: make_dump(body, *version),
            }
        } else {
            forge(&mut rng, &states)
        };
        // Half the time the event's queue is there (a real one), half not.
        let queue = &queues[rng.gen_range(0..queues.len())];
        let with_queue = rng.gen_bool(0.5) && queue.is_some();
        let set_queue = if with_queue {
            redis::cmd("RESTORE")
                .arg(queue_key("fz"))
                .arg(0)
                .arg(queue.as_ref().unwrap().as_slice())
                .arg("REPLACE")
                .query::<Value>(&mut con)
        } else {
            redis::cmd("DEL")
                .arg(queue_key("fz"))
                .query::<Value>(&mut con)
        };
        answered(set_queue, &mut server, &forged, "setting the queue")
            .expect("the queue could not be set");
        let restore = redis::cmd("RESTORE")
            .arg(&fz)
            .arg(0)
            .arg(forged.payload.as_slice())
            .arg("REPLACE")
            .query::<Value>(&mut con);
        let loaded = answered(restore, &mut server, &forged, "RESTORE").is_some();
        if !loaded {
            refused += 1;
            // A refused RESTORE REPLACE leaves whatever was there; clear it.
            let gone = redis::cmd("DEL").arg(&fz).query::<Value>(&mut con);
            answered(gone, &mut server, &forged, "DEL");
            continue;
        }
        accepted += 1;
        // What tq accepted, it saves and loads again as the same state (each
        // pair in a transaction: the timer may act on the state between
        // commands).
        let (kind, digest, again): (String, Vec<String>, Vec<u8>) = redis::pipe()
            .atomic()
            .cmd("TYPE")
            .arg(&fz)
            .cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(&fz)
            .cmd("DUMP")
            .arg(&fz)
            .query(&mut con)
            .unwrap_or_else(|e| {
                panic!(
                    "TYPE/DIGEST/DUMP of an accepted state ({}): {e}",
                    forged.how
                )
            });
        if kind != STATE_TYPE {
            // A raw change of the type byte can make a valid value of
            // another type (a string, say): Redis' business, not tq's. TQ
            // commands must still answer on it (WRONGTYPE).
            other_types += 1;
            for c in [vec!["TQ.STATS", "fz"], vec!["TQ.ENQUEUE", "fz", "u", "t"]] {
                let reply = call_args(&mut con, &words(&c));
                answered(reply, &mut server, &forged, &c.join(" "));
            }
            continue;
        }
        let reload: redis::RedisResult<(Value, Vec<String>)> = redis::pipe()
            .atomic()
            .cmd("RESTORE")
            .arg(&fz_copy)
            .arg(0)
            .arg(again)
            .arg("REPLACE")
            .cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(&fz_copy)
            .query(&mut con);
        match reload {
            Ok((_, copy_digest)) => assert_eq!(
                copy_digest, digest,
                "an accepted state ({}) changed through DUMP/RESTORE",
                forged.how
            ),
            Err(e) => panic!(
                "an accepted state ({}) does not load from its own DUMP: {e}; server running: {}",
                forged.how,
                server.is_running()
            ),
        }
        if forged.how != "unchanged" && kept < 20 {
            // Keep a few for the RDB round trip at the end.
            let copy = redis::cmd("COPY")
                .arg(&fz)
                .arg(state_key(&format!("kept-{kept}")))
                .query::<Value>(&mut con);
            answered(copy, &mut server, &forged, "COPY");
            kept += 1;
        }
        // Every command answers (a value or an error) on what was loaded.
        let n = i.to_string();
        let (user, token, seat) = (format!("u{n}"), format!("t{n}"), format!("s{n}"));
        let calls: Vec<Vec<&str>> = vec![
            vec!["MEMORY", "USAGE", &fz],
            vec!["TQ.STATS", "fz"],
            vec!["TQ.USER", "fz", "u1"],
            vec!["TQ.SEAT", "fz", "s1"],
            vec!["TQ.SEAT", "fz", "s5"],
            vec!["TQ.INVENTORY", "fz"],
            vec!["TQ.CONFIG", "fz"],
            vec!["TQ.POSITION", "fz", "t20"],
            vec!["TQ.ENQUEUE", "fz", &user, &token, "DEDUPE", "d3"],
            vec!["TQ.ENQUEUE", "fz", &user, &token, "DEDUPE", &n, "TTL", "5"],
            vec!["TQ.ENTER", "fz", "t3"],
            vec!["TQ.LEAVE", "fz", "t4"],
            vec!["TQ.HOLD", "fz", &seat, &user],
            vec!["TQ.HOLD", "fz", "s5", "u5", "TTL", "1"],
            vec!["TQ.RELEASE", "fz", "s6"],
            vec!["TQ.CONFIRM", "fz", "s7", "u0"],
            vec!["TQ.TRIM", "fz", "MAXAGE", "1"],
            vec!["TQ.CONFIG", "fz", "RATE", "2"],
            vec!["TQ.INVENTORY", "fz", "SET", "3"],
            vec!["TQ.STATS", "fz"],
            vec!["DEBUG", "DIGEST-VALUE", &fz],
        ];
        for c in &calls {
            let reply = call_args(&mut con, &words(c));
            answered(reply, &mut server, &forged, &c.join(" "));
        }
        if i % 250 == 0 {
            assert_eq!(redis_query::<String>(&mut con, &["PING"]), "PONG");
        }
    }
    println!("{accepted} accepted ({other_types} as another type), {refused} refused, {kept} kept");
    assert!(
        refused > iterations / 10,
        "too few payloads refused: {refused}"
    );
    assert!(
        accepted >= iterations / 100,
        "the unchanged payloads were refused"
    );

    // The server still answers, digests everything it holds, and saves and
    // loads the states it accepted (the timer has had time to run on them).
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(redis_query::<String>(&mut con, &["PING"]), "PONG");
    digest(&mut con);
    let reload = redis::cmd("DEBUG").arg("RELOAD").query::<Value>(&mut con);
    assert!(
        reload.is_ok(),
        "DEBUG RELOAD with {kept} accepted forged states: {reload:?}\n{}",
        server.log()
    );
    for k in 0..kept {
        let ev = format!("kept-{k}");
        let reply = call_args(&mut con, &words(&["TQ.STATS", &ev]));
        assert!(
            reply.is_ok() || reply.as_ref().err().and_then(|e| e.code()).is_some(),
            "TQ.STATS {ev} after the reload: {reply:?}"
        );
    }
    digest(&mut con);
    assert!(server.is_running());
}
