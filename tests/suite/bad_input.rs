//! Bad input for every command: a clear error reply, and nothing changed.

use crate::common::*;

/// State for the commands to act on, so "changes nothing" means something.
fn seeded() -> (Server, redis::Connection) {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u1", "t1", "DEDUPE", "d1").unwrap();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 5).unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A1", "u1").unwrap();
    (server, con)
}

fn digest(con: &mut redis::Connection) -> String {
    redis_query(con, &["DEBUG", "DIGEST"])
}

/// Every case must fail with `expected_code` and leave the data as it was.
fn assert_refused(con: &mut redis::Connection, cases: &[(&str, Vec<&[u8]>)]) {
    for (expected_code, words) in cases {
        let before = digest(con);
        let words: Vec<Vec<u8>> = words.iter().map(|w| w.to_vec()).collect();
        let reply = call_args(con, &words);
        let shown: Vec<String> = words
            .iter()
            .map(|w| String::from_utf8_lossy(&w[..w.len().min(40)]).into_owned())
            .collect();
        assert!(reply.is_err(), "{shown:?} succeeded: {reply:?}");
        assert_eq!(code(&reply), *expected_code, "{shown:?} -> {reply:?}");
        assert_eq!(digest(con), before, "{shown:?} changed data");
    }
}

macro_rules! words {
    ($($w:expr),* $(,)?) => { vec![$(AsRef::<[u8]>::as_ref(&$w)),*] };
}

#[test]
fn wrong_arity_for_every_command() {
    let (_server, mut con) = seeded();
    let cases = vec![
        ("ERR", words!["TQ.ENQUEUE", "ev", "u"]),
        ("ERR", words!["TQ.ENQUEUE"]),
        ("ERR", words!["TQ.POSITION", "ev"]),
        ("ERR", words!["TQ.POSITION", "ev", "t1", "x"]),
        ("ERR", words!["TQ.ENTER", "ev"]),
        ("ERR", words!["TQ.LEAVE", "ev", "t1", "t2"]),
        ("ERR", words!["TQ.USER", "ev"]),
        ("ERR", words!["TQ.TRIM", "ev", "MAXAGE"]),
        ("ERR", words!["TQ.TRIM", "ev", "MAXAGE", "1", "2"]),
        ("ERR", words!["TQ.INVENTORY"]),
        ("ERR", words!["TQ.INVENTORY", "ev", "SET", "1", "2"]),
        ("ERR", words!["TQ.HOLD", "ev", "A2"]),
        ("ERR", words!["TQ.RELEASE", "ev"]),
        ("ERR", words!["TQ.RELEASE", "ev", "A1", "u1", "x"]),
        ("ERR", words!["TQ.CONFIRM", "ev", "A1"]),
        ("ERR", words!["TQ.SEAT", "ev"]),
        ("ERR", words!["TQ.CONFIG"]),
        ("ERR", words!["TQ.STATS"]),
        ("ERR", words!["TQ.STATS", "ev", "x"]),
    ];
    assert_refused(&mut con, &cases);
}

#[test]
fn bad_names_and_numbers() {
    let (_server, mut con) = seeded();
    let long_event = vec![b'e'; 201];
    let long_name = vec![b'x'; 1025];
    let cases = vec![
        ("ERR", words!["TQ.ENQUEUE", "", "u", "t"]),
        ("ERR", words!["TQ.ENQUEUE", "e{v}", "u", "t"]),
        ("ERR", words!["TQ.ENQUEUE", "ev}", "u", "t"]),
        ("ERR", words!["TQ.ENQUEUE", long_event, "u", "t"]),
        ("ERR", words!["TQ.ENQUEUE", "ev", "", "t"]),
        ("ERR", words!["TQ.ENQUEUE", "ev", "u", ""]),
        ("ERR", words!["TQ.ENQUEUE", "ev", "u", long_name]),
        ("ERR", words!["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", ""]),
        ("ERR", words!["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE"]),
        (
            "ERR",
            words!["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", "d2", "TTL", "0"],
        ),
        (
            "ERR",
            words!["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", "d2", "TTL", "-1"],
        ),
        (
            "ERR",
            words![
                "TQ.ENQUEUE",
                "ev",
                "u",
                "t",
                "DEDUPE",
                "d2",
                "TTL",
                "31536001"
            ],
        ),
        (
            "ERR",
            words![
                "TQ.ENQUEUE",
                "ev",
                "u",
                "t",
                "DEDUPE",
                "d2",
                "TTL",
                "99999999999999999999999"
            ],
        ),
        (
            "ERR",
            words!["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", "d2", "TTL", "abc"],
        ),
        (
            "ERR",
            words!["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", "d2", "TTL", "1.5"],
        ),
        (
            "ERR",
            words!["TQ.ENQUEUE", "ev", "u", "t", "DEDUPE", "d2", "TTL", "nan"],
        ),
        // TTL is the DEDUPE id's window: without DEDUPE it means nothing.
        ("ERR", words!["TQ.ENQUEUE", "ev", "u", "t", "TTL", "60"]),
        ("ERR", words!["TQ.ENQUEUE", "ev", "u", "t", "BOGUS", "1"]),
        ("ERR", words!["TQ.POSITION", "", "t1"]),
        ("ERR", words!["TQ.POSITION", "ev", ""]),
        ("ERR", words!["TQ.ENTER", "{ev}", "t1"]),
        ("ERR", words!["TQ.LEAVE", "ev", ""]),
        ("ERR", words!["TQ.USER", "ev", ""]),
        ("ERR", words!["TQ.TRIM", "ev", "MAXLEN", "10"]),
        ("ERR", words!["TQ.TRIM", "ev", "MAXAGE", "0"]),
        ("ERR", words!["TQ.TRIM", "ev", "MAXAGE", "-5"]),
        ("ERR", words!["TQ.INVENTORY", "ev", "SET", "-1"]),
        ("ERR", words!["TQ.INVENTORY", "ev", "SET", "2147483649"]),
        ("ERR", words!["TQ.INVENTORY", "ev", "SET", "1e3"]),
        ("ERR", words!["TQ.INVENTORY", "ev", "ADD", "x"]),
        // Inventory is 4: ADD may not take it below 0.
        ("ERR", words!["TQ.INVENTORY", "ev", "ADD", "-5"]),
        ("ERR", words!["TQ.INVENTORY", "ev", "SUB", "1"]),
        ("ERR", words!["TQ.HOLD", "ev", "", "u"]),
        ("ERR", words!["TQ.HOLD", "ev", "A2", ""]),
        ("ERR", words!["TQ.HOLD", "ev", "A2", "u", "TTL", "0"]),
        ("ERR", words!["TQ.HOLD", "ev", "A2", "u", "TTL", "31536001"]),
        ("ERR", words!["TQ.HOLD", "ev", "A2", "u", "TTL"]),
        ("ERR", words!["TQ.HOLD", "ev", "A2", "u", "EX", "5"]),
        ("ERR", words!["TQ.RELEASE", "ev", "A1", ""]),
        ("ERR", words!["TQ.CONFIRM", "ev", "", "u1"]),
        ("ERR", words!["TQ.SEAT", "ev", ""]),
        ("ERR", words!["TQ.CONFIG", "ev", "RATE", "-1"]),
        ("ERR", words!["TQ.CONFIG", "ev", "HEARTBEAT", "0"]),
        ("ERR", words!["TQ.STATS", "e{"]),
    ];
    assert_refused(&mut con, &cases);
    let text = error_text(&tq!(&mut con, "TQ.ENQUEUE", "a{b", "u", "t"));
    assert_eq!(text, "ERR invalid event name");
}

/// The edges just inside the limits whose outside is refused above.
#[test]
fn the_largest_values_allowed_are_accepted() {
    let (_server, mut con) = seeded();
    let longest_event = "e".repeat(200);
    let joined = tq!(&mut con, "TQ.ENQUEUE", longest_event.as_str(), "u", "t").unwrap();
    assert_eq!(int_field(&joined, "position"), 1);
    let key = format!("tq:{{{longest_event}}}:queue");
    assert_eq!(redis_query::<i64>(&mut con, &["XLEN", &key]), 1);
    let max = 1i64 << 31;
    assert_eq!(
        int(&tq!(&mut con, "TQ.INVENTORY", "ev", "SET", max).unwrap()),
        max
    );
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "ev").unwrap()), max);
    assert_eq!(
        int(&tq!(&mut con, "TQ.HOLD", "ev", "A2", "u1").unwrap()),
        max - 1
    );
    let year = 31_536_000;
    tq!(&mut con, "TQ.HOLD", "ev", "A3", "u1", "TTL", year).unwrap();
    let seat = tq!(&mut con, "TQ.SEAT", "ev", "A3").unwrap();
    assert!(int_field(&seat, "ttl_ms") > (year - 5) * 1000);
}

/// Every command with arguments that would succeed on `ev` as `seeded`
/// makes it.
fn every_command(ev: &str) -> Vec<Vec<&str>> {
    vec![
        vec!["TQ.ENQUEUE", ev, "u2", "t9", "DEDUPE", "d9"],
        vec!["TQ.POSITION", ev, "t1"],
        vec!["TQ.ENTER", ev, "t1"],
        vec!["TQ.LEAVE", ev, "t1"],
        vec!["TQ.USER", ev, "u1"],
        vec!["TQ.TRIM", ev, "MAXAGE", "1"],
        vec!["TQ.STATS", ev],
        vec!["TQ.INVENTORY", ev],
        vec!["TQ.INVENTORY", ev, "SET", "3"],
        vec!["TQ.HOLD", ev, "A2", "u1"],
        vec!["TQ.RELEASE", ev, "A1"],
        vec!["TQ.CONFIRM", ev, "A1", "u1"],
        vec!["TQ.SEAT", ev, "A1"],
        vec!["TQ.CONFIG", ev],
        vec!["TQ.CONFIG", ev, "RATE", "1"],
    ]
}

/// An event is two keys: the stream `tq:{E}:queue` and the state
/// `tq:{E}:state` (type `tq--state`). Another type at either, on an event
/// that had data or on one that had none: every command answers WRONGTYPE,
/// and the foreign value stays as it was.
#[test]
fn keys_of_the_wrong_type_are_reported_and_left_alone() {
    let (_server, mut con) = seeded();
    let t: String = redis_query(&mut con, &["TYPE", "tq:{ev}:state"]);
    assert_eq!(t, "tq--state");
    let t: String = redis_query(&mut con, &["TYPE", "tq:{ev}:queue"]);
    assert_eq!(t, "stream");
    for ev in ["badq", "bads"] {
        tq!(&mut con, "TQ.ENQUEUE", ev, "u1", "t1").unwrap();
        tq!(&mut con, "TQ.INVENTORY", ev, "SET", 5).unwrap();
        tq!(&mut con, "TQ.HOLD", ev, "A1", "u1").unwrap();
    }
    let _: i64 = redis_query(&mut con, &["DEL", "tq:{badq}:queue", "tq:{bads}:state"]);
    let _: () = redis_query(&mut con, &["SET", "tq:{badq}:queue", "not a stream"]);
    let _: i64 = redis_query(&mut con, &["HSET", "tq:{bads}:state", "not", "a state"]);
    let _: () = redis_query(&mut con, &["SET", "tq:{newq}:queue", "not a stream"]);
    let _: i64 = redis_query(&mut con, &["HSET", "tq:{news}:state", "not", "a state"]);
    let mut cases = Vec::new();
    for ev in ["badq", "bads", "newq", "news"] {
        for call in every_command(ev) {
            cases.push((
                "WRONGTYPE",
                call.iter().map(|w| w.as_bytes()).collect::<Vec<&[u8]>>(),
            ));
        }
    }
    assert_refused(&mut con, &cases);
    for (key, kind) in [
        ("tq:{badq}:queue", "string"),
        ("tq:{bads}:state", "hash"),
        ("tq:{newq}:queue", "string"),
        ("tq:{news}:state", "hash"),
    ] {
        let t: String = redis_query(&mut con, &["TYPE", key]);
        assert_eq!(t, kind, "{key}");
    }
    let created: i64 = redis_query(&mut con, &["EXISTS", "tq:{newq}:state", "tq:{news}:queue"]);
    assert_eq!(created, 0);
}

#[test]
fn binary_names_work_and_errors_stay_one_line() {
    let (_server, mut con) = seeded();
    let event: &[u8] = b"ev\x00\xff\r\n";
    let user: &[u8] = b"us\r\ner\x00";
    let token: &[u8] = b"\xfe\xfftok en";
    let r = tq!(
        &mut con,
        "TQ.ENQUEUE",
        event,
        user,
        token,
        "DEDUPE",
        b"\x00\r\n".as_slice()
    )
    .unwrap();
    assert_eq!(int_field(&r, "position"), 1);
    let again = tq!(
        &mut con,
        "TQ.ENQUEUE",
        event,
        user,
        b"x".as_slice(),
        "DEDUPE",
        b"\x00\r\n".as_slice()
    );
    assert_eq!(code(&again), "DUPLICATE");
    let entries = array(&tq!(&mut con, "TQ.USER", event, user).unwrap());
    match field(&entries[0], "token") {
        Value::BulkString(b) => assert_eq!(b, token),
        other => panic!("{other:?}"),
    }
    tq!(&mut con, "TQ.INVENTORY", event, "SET", 1).unwrap();
    tq!(&mut con, "TQ.HOLD", event, b"seat\r\n".as_slice(), user).unwrap();
    let seat = tq!(&mut con, "TQ.SEAT", event, b"seat\r\n".as_slice()).unwrap();
    match field(&seat, "user") {
        Value::BulkString(b) => assert_eq!(b, user),
        other => panic!("{other:?}"),
    }
    let bad = tq!(
        &mut con,
        "TQ.HOLD",
        "ev",
        "A2",
        "u",
        b"\r\nTTL\x00".as_slice(),
        "5"
    );
    assert_eq!(code(&bad), "ERR");
    let pong: String = redis_query(&mut con, &["PING"]);
    assert_eq!(pong, "PONG");
}
