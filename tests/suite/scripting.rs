//! TQ commands inside MULTI/EXEC and from Lua behave as when sent alone,
//! and what they write replicates the same way.

use crate::common::*;
use std::collections::BTreeMap;

/// The same sequence of commands, for event `ev`: replies must match
/// one-to-one whether sent alone, in MULTI/EXEC or from a script.
fn sequence(ev: &str) -> Vec<Vec<String>> {
    let s = |words: &[&str]| -> Vec<String> {
        words
            .iter()
            .map(|w| {
                if *w == "EV" {
                    ev.to_string()
                } else {
                    w.to_string()
                }
            })
            .collect()
    };
    vec![
        s(&["TQ.INVENTORY", "EV", "SET", "2"]),
        s(&["TQ.HOLD", "EV", "A", "u1"]),
        s(&["TQ.HOLD", "EV", "A", "u2"]),
        s(&["TQ.ENQUEUE", "EV", "u1", "t1", "DEDUPE", "d1", "TTL", "60"]),
        s(&["TQ.ENQUEUE", "EV", "u1", "t2", "DEDUPE", "d1"]),
        s(&["TQ.ENQUEUE", "EV", "u2", "t3"]),
        s(&["TQ.ENQUEUE", "EV", "u1", "t4"]),
        s(&["TQ.ENQUEUE", "EV", "u1", "t1"]),
        s(&["TQ.POSITION", "EV", "t3"]),
        s(&["TQ.POSITION", "EV", "nobody"]),
        s(&["TQ.CONFIG", "EV", "RATE", "1", "BURST", "1"]),
        s(&["TQ.ENTER", "EV", "t3"]),
        s(&["TQ.ENTER", "EV", "t1"]),
        s(&["TQ.ENTER", "EV", "t4"]),
        s(&["TQ.LEAVE", "EV", "t4"]),
        s(&["TQ.LEAVE", "EV", "t4"]),
        s(&["TQ.USER", "EV", "u1"]),
        s(&["TQ.CONFIRM", "EV", "A", "u2"]),
        s(&["TQ.CONFIRM", "EV", "A", "u1"]),
        s(&["TQ.HOLD", "EV", "B", "u1", "TTL", "30"]),
        s(&["TQ.HOLD", "EV", "C", "u1"]),
        s(&["TQ.RELEASE", "EV", "C"]),
        s(&["TQ.RELEASE", "EV", "B", "u9"]),
        s(&["TQ.RELEASE", "EV", "B", "u1"]),
        s(&["TQ.INVENTORY", "EV", "SET", "-1"]),
        s(&["TQ.TRIM", "EV", "MAXAGE", "3600"]),
        s(&["TQ.TRIM", "EV", "MAXAGE", "0"]),
        s(&["TQ.CONFIG", "EV"]),
        s(&["TQ.STATS", "EV"]),
        s(&["TQ.SEAT", "EV", "A"]),
    ]
}

/// A reply with its time-dependent parts (ids, waited/eta times,
/// duplicate ids) blanked, errors reduced to their code.
fn normalize(v: &Value) -> String {
    fn norm(v: &Value) -> Value {
        match v {
            Value::Array(items) => {
                // Flat maps: blank the values of time-dependent fields.
                let mut out = Vec::new();
                let mut blank_next = false;
                for item in items {
                    if blank_next {
                        out.push(Value::SimpleString("_".into()));
                        blank_next = false;
                        continue;
                    }
                    if let Value::BulkString(b) = item {
                        // A pass id is drawn at random, and lasts from now.
                        let varying = [
                            &b"id"[..],
                            b"waited_ms",
                            b"eta_ms",
                            b"admission_rate",
                            b"pass",
                            b"expires_at",
                        ];
                        if varying.contains(&b.as_slice()) {
                            blank_next = true;
                        }
                    }
                    out.push(norm(item));
                }
                Value::Array(out)
            }
            Value::ServerError(e) => Value::SimpleString(format!("error {}", e.code())),
            // Lua turns status replies into bulk-compatible values.
            Value::Okay => Value::SimpleString("OK".into()),
            other => other.clone(),
        }
    }
    format!("{:?}", norm(v))
}

fn words_bytes(words: &[String]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

fn alone(con: &mut redis::Connection, ev: &str) -> Vec<String> {
    sequence(ev)
        .iter()
        .map(|w| normalize(&raw_call(con, &words_bytes(w)).unwrap()))
        .collect()
}

fn in_multi(con: &mut redis::Connection, ev: &str) -> Vec<Value> {
    assert_eq!(
        raw_call(con, &words_bytes(&["MULTI".into()])).unwrap(),
        Value::Okay
    );
    for w in sequence(ev) {
        let queued = raw_call(con, &words_bytes(&w)).unwrap();
        assert_eq!(queued, Value::SimpleString("QUEUED".into()), "{w:?}");
    }
    array(&raw_call(con, &words_bytes(&["EXEC".into()])).unwrap())
}

const SCRIPT: &str = r#"
local out = {}
for i, words in ipairs(cjson.decode(ARGV[1])) do
  out[i] = redis.pcall(unpack(words))
end
return out
"#;

fn json_sequence(ev: &str) -> String {
    let cmds: Vec<String> = sequence(ev)
        .iter()
        .map(|w| {
            let quoted: Vec<String> = w.iter().map(|x| format!("\"{x}\"")).collect();
            format!("[{}]", quoted.join(","))
        })
        .collect();
    format!("[{}]", cmds.join(","))
}

fn in_script(con: &mut redis::Connection, ev: &str) -> Vec<Value> {
    let words = vec![
        "EVAL".to_string(),
        SCRIPT.to_string(),
        "1".to_string(),
        ev.to_string(),
        json_sequence(ev),
    ];
    array(&raw_call(con, &words_bytes(&words)).unwrap())
}

#[test]
fn multi_exec_and_eval_replies_match_commands_sent_alone() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut con = master.client();
    let reference = alone(&mut con, "solo");
    // Sanity of the reference run itself.
    let codes: Vec<&str> = reference.iter().map(|r| r.as_str()).collect();
    assert!(codes[2].contains("SEAT_UNAVAILABLE"), "{}", codes[2]);
    assert!(codes[4].contains("DUPLICATE"), "{}", codes[4]);
    assert!(codes[7].contains("DUPLICATE"), "{}", codes[7]);
    assert!(codes[9].contains("NOT_QUEUED"), "{}", codes[9]);
    assert!(codes[13].contains("NOT_READY"), "{}", codes[13]);
    assert!(codes[17].contains("NOT_OWNER"), "{}", codes[17]);
    assert!(codes[20].contains("SOLD_OUT"), "{}", codes[20]);
    assert!(codes[21].contains("NOT_HELD"), "{}", codes[21]);
    assert!(codes[24].contains("error ERR"), "{}", codes[24]);
    assert!(codes[26].contains("error ERR"), "{}", codes[26]);

    let exec = in_multi(&mut con, "multi");
    let exec_norm: Vec<String> = exec.iter().map(normalize).collect();
    for (i, (a, b)) in reference.iter().zip(&exec_norm).enumerate() {
        assert_eq!(
            a,
            b,
            "command {i} {:?}: alone vs inside MULTI/EXEC",
            sequence("multi")[i]
        );
    }
    assert_eq!(exec_norm.len(), reference.len());
    // The DUPLICATE inside EXEC names the entry created in the same EXEC.
    let first_id = text_field(&exec[3], "id");
    match &exec[4] {
        Value::ServerError(e) => assert_eq!(e.details(), Some(first_id.as_str())),
        other => panic!("expected DUPLICATE, got {other:?}"),
    }

    let script = in_script(&mut con, "lua");
    let script_norm: Vec<String> = script.iter().map(normalize).collect();
    assert_eq!(script_norm.len(), reference.len(), "{script:?}");
    for (i, (a, b)) in reference.iter().zip(&script_norm).enumerate() {
        assert_eq!(
            a,
            b,
            "command {i} {:?}: alone vs from EVAL",
            sequence("lua")[i]
        );
    }

    // The three events ended in the same state, each as its two keys, and
    // the replica agrees.
    let stats =
        |con: &mut redis::Connection, ev: &str| normalize(&tq!(con, "TQ.STATS", ev).unwrap());
    let solo = stats(&mut con, "solo");
    assert_eq!(solo, stats(&mut con, "multi"));
    assert_eq!(solo, stats(&mut con, "lua"));
    for ev in ["solo", "multi", "lua"] {
        assert_event_layout(&mut con, ev);
    }
    let mut r = replica.client();
    assert_replica_matches(&mut con, &mut r, "every key", |c| {
        (key_digests(c, "*"), digest(c))
    });
}

#[test]
fn an_error_from_redis_call_in_a_script_keeps_its_code() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.INVENTORY", "e", "SET", 0).unwrap();
    let script = "return redis.call('TQ.HOLD', KEYS[1], 'A', 'u')";
    let reply: redis::RedisResult<Value> = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("e")
        .query(&mut con);
    assert_eq!(code(&reply), "SOLD_OUT", "{reply:?}");
    // Another event (this one is sold out: joins would be SOLD_OUT too).
    let script = "return redis.call('TQ.ENQUEUE', KEYS[1], 'u', 't')";
    let ok: Value = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("e2")
        .query(&mut con)
        .unwrap();
    assert_eq!(int_field(&ok, "position"), 1);
    let again: redis::RedisResult<Value> = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("e2")
        .query(&mut con);
    // Redis appends " script: <sha>, on @user_script:1." to the text.
    let text = error_text(&again);
    let expected = format!("DUPLICATE {} ", text_field(&ok, "id"));
    assert!(text.starts_with(&expected), "{text}");
}

#[test]
fn a_script_enqueuing_3000_entries_gets_positions_1_to_3000() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut con = master.client();
    let script = r#"
local ids, positions, user_positions = {}, {}, {}
for i = 1, 3000 do
  local r = redis.call('TQ.ENQUEUE', KEYS[1], 'u' .. (i % 7), 'tok' .. i, 'DEDUPE', 'd' .. i)
  ids[i] = r[2]; positions[i] = r[4]; user_positions[i] = r[6]
end
return {ids, positions, user_positions}
"#;
    let reply: Value = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg("loop")
        .query(&mut con)
        .unwrap();
    let parts = array(&reply);
    let ids: Vec<String> = array(&parts[0]).iter().map(text).collect();
    let positions: Vec<i64> = array(&parts[1]).iter().map(int).collect();
    let user_positions: Vec<i64> = array(&parts[2]).iter().map(int).collect();
    assert_eq!(positions, (1..=3000).collect::<Vec<i64>>());
    let mut per_user = [0i64; 7];
    for (i, up) in user_positions.iter().enumerate() {
        let u = (i + 1) % 7;
        per_user[u] += 1;
        assert_eq!(*up, per_user[u], "user_position of tok{}", i + 1);
    }
    let parse = |id: &str| -> (u64, u64) {
        let (a, b) = id.split_once('-').unwrap();
        (a.parse().unwrap(), b.parse().unwrap())
    };
    let max_seq = ids.iter().map(|id| parse(id).1).max().unwrap();
    let ms_span = parse(&ids[2999]).0 - parse(&ids[0]).0;
    // The script's clock stands still (contract v2): all 3000 may share
    // one millisecond, with sequence numbers past 2^11.
    println!("3000 ids span {ms_span} ms, highest sequence {max_seq}");
    for w in ids.windows(2) {
        assert!(
            parse(&w[0]) < parse(&w[1]),
            "ids not increasing: {} then {}",
            w[0],
            w[1]
        );
    }
    // Stored order agrees: stream order, and TQ.POSITION of every entry.
    let xlen: i64 = redis_query(&mut con, &["XLEN", "tq:{loop}:queue"]);
    assert_eq!(xlen, 3000);
    let stream: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
        .arg("tq:{loop}:queue")
        .arg("-")
        .arg("+")
        .query(&mut con)
        .unwrap();
    let stream_ids: Vec<String> = stream.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(stream_ids, ids);
    let tokens: Vec<String> = stream
        .iter()
        .map(|(_, fields)| fields["token"].clone())
        .collect();
    assert_eq!(
        tokens,
        (1..=3000).map(|i| format!("tok{i}")).collect::<Vec<_>>()
    );
    let mut polls = redis::pipe();
    for i in 1..=3000 {
        polls.cmd("TQ.POSITION").arg("loop").arg(format!("tok{i}"));
    }
    let polled: Vec<Value> = polls.query(&mut con).unwrap();
    let positions: Vec<i64> = polled.iter().map(|p| int_field(p, "position")).collect();
    assert_eq!(positions, (1..=3000).collect::<Vec<i64>>());
    let user = array(&tq!(&mut con, "TQ.USER", "loop", "u3").unwrap());
    let pos: Vec<i64> = user.iter().map(|e| int_field(e, "position")).collect();
    assert_eq!(pos, (1..=3000).filter(|i| i % 7 == 3).collect::<Vec<i64>>());

    let mut r = replica.client();
    assert_event_layout(&mut con, "loop");
    let keys = key_digests(&mut con, "tq:{loop}:*");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_replica_matches(&mut con, &mut r, "after the 3000-entry script", |c| {
        (key_digests(c, "tq:{loop}:*"), digest(c))
    });
    let last: Vec<Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("tq:{loop}:queue")
        .query(&mut r)
        .unwrap();
    let last_m: Vec<Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg("tq:{loop}:queue")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        field(&Value::Array(last), "last-generated-id"),
        field(&Value::Array(last_m), "last-generated-id")
    );
}
