//! Events stored by tq 0.2 (plain keys, laid out as its README's "Key
//! layout" documents) convert to the 0.3 layout, losing nothing: at load
//! with no command, or at their first write command; replicas and the AOF
//! follow the conversion.

use crate::common::*;

use std::time::Duration;

use redis::Connection;

/// The stream ids of the 0.2 fixture: three waiting entries, and one that
/// left (deleted from the stream) whose id is the stream's last generated
/// one and whose DEDUPE id is still in its window.
struct Fixture {
    now_ms: u64,
    a: String,
    b: String,
    c: String,
    deleted: (u64, u64),
}

impl Fixture {
    fn deleted_id(&self) -> String {
        format!("{}-{}", self.deleted.0, self.deleted.1)
    }
}

fn server_now_ms(con: &mut Connection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query(con).unwrap();
    s * 1000 + us / 1000
}

fn key(event: &str, part: &str) -> String {
    format!("tq:{{{event}}}:{part}")
}

fn run(con: &mut Connection, words: &[&str]) -> Value {
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
        c.arg(*w);
    }
    c.query(con).unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

/// The score 0.2 gave an entry in `order` and `user:<user>`.
fn score(ms: u64, seq: u64) -> String {
    (ms * 2048 + seq).to_string()
}

/// The 0.2 keys of an event, written by hand as its README documents them.
fn write_0_2_event(con: &mut Connection, event: &str, now: u64) -> Fixture {
    let k = |part: &str| key(event, part);
    let (a, b, c, d) = (
        (now - 50_000, 0),
        (now - 40_000, 1),
        (now - 30_000, 0),
        (now + 600_000, 0),
    );
    let id = |(ms, seq): (u64, u64)| format!("{ms}-{seq}");
    for (entry, token, user) in [
        (a, "t1", "alice"),
        (b, "t2", "bob"),
        (c, "t3", "alice"),
        (d, "t4", "carol"),
    ] {
        run(
            con,
            &[
                "XADD",
                &k("queue"),
                &id(entry),
                "token",
                token,
                "user",
                user,
            ],
        );
    }
    run(con, &["XDEL", &k("queue"), &id(d)]);
    let (sa, sb, sc) = (score(a.0, a.1), score(b.0, b.1), score(c.0, c.1));
    run(con, &["ZADD", &k("order"), &sa, "t1", &sb, "t2", &sc, "t3"]);
    let beat = |ago: u64| (now - ago).to_string();
    run(
        con,
        &[
            "ZADD",
            &k("beat"),
            &beat(5000),
            "t1",
            &beat(3000),
            "t2",
            &beat(1000),
            "t3",
        ],
    );
    run(
        con,
        &[
            "HSET",
            &k("tokens"),
            "t1",
            "alice",
            "t2",
            "bob",
            "t3",
            "alice",
        ],
    );
    run(con, &["ZADD", &k("user:alice"), &sa, "t1", &sc, "t3"]);
    run(con, &["ZADD", &k("user:bob"), &sb, "t2"]);
    let at = |later: u64| (now + later).to_string();
    run(con, &["SET", &k("dedupe:d1"), &id(a), "PXAT", &at(300_000)]);
    run(con, &["SET", &k("dedupe:d4"), &id(d), "PXAT", &at(200_000)]);
    let held = format!("held {} alice", now + 120_000);
    run(con, &["HSET", &k("seats"), "A1", &held, "A2", "sold bob"]);
    run(con, &["ZADD", &k("holds"), &at(120_000), "A1"]);
    let now_s = now / 1000;
    let meta = format!(
        "inventory=97 sold=1 admitted=2 duplicates=3 abandoned=4 holds_expired=5 \
         rate=7 burst=9 heartbeat=600 bucket_milli=2500 bucket_at={} \
         recent_admits=7 recent_from={} later=x",
        now - 1000,
        now_s - 3600
    );
    run(con, &["SET", &k("meta"), &meta]);
    let second = |ago: u64| (now_s - ago).to_string();
    run(
        con,
        &[
            "HSET",
            &k("admits"),
            &second(10),
            "1",
            &second(5),
            "1",
            &second(3600),
            "5",
        ],
    );
    Fixture {
        now_ms: now,
        a: id(a),
        b: id(b),
        c: id(c),
        deleted: d,
    }
}

/// An event as tq 0.1 left it: `meta` a hash; one fan waiting.
fn write_0_1_event(con: &mut Connection, event: &str, now: u64) {
    let k = |part: &str| key(event, part);
    let id = format!("{}-0", now - 10_000);
    run(
        con,
        &["XADD", &k("queue"), &id, "token", "x1", "user", "zoe"],
    );
    let s = score(now - 10_000, 0);
    run(con, &["ZADD", &k("order"), &s, "x1"]);
    run(con, &["ZADD", &k("beat"), &(now - 2000).to_string(), "x1"]);
    run(con, &["HSET", &k("tokens"), "x1", "zoe"]);
    run(con, &["ZADD", &k("user:zoe"), &s, "x1"]);
    run(
        con,
        &[
            "HSET",
            &k("meta"),
            "inventory",
            "5",
            "sold",
            "2",
            "rate",
            "3",
            "hold_ttl",
            "60",
        ],
    );
}

/// A 0.2 event that only had joins: no `meta` yet.
fn write_young_event(con: &mut Connection, event: &str, now: u64) {
    let k = |part: &str| key(event, part);
    let id = format!("{}-0", now - 1000);
    run(
        con,
        &["XADD", &k("queue"), &id, "token", "y1", "user", "yan"],
    );
    let s = score(now - 1000, 0);
    run(con, &["ZADD", &k("order"), &s, "y1"]);
    run(con, &["ZADD", &k("beat"), &(now - 1000).to_string(), "y1"]);
    run(con, &["HSET", &k("tokens"), "y1", "yan"]);
    run(con, &["ZADD", &k("user:yan"), &s, "y1"]);
}

const OLD_PARTS: [&str; 11] = [
    "order",
    "beat",
    "tokens",
    "user:alice",
    "user:bob",
    "dedupe:d1",
    "dedupe:d4",
    "seats",
    "holds",
    "meta",
    "admits",
];

fn old_keys_left(con: &mut Connection, event: &str) -> Vec<String> {
    OLD_PARTS
        .iter()
        .map(|part| key(event, part))
        .filter(|k| redis_query::<i64>(con, &["EXISTS", k]) == 1)
        .collect()
}

/// What the fixture's reads answer: the figures its 0.2 keys hold.
/// `config`: rate, burst, heartbeat, hold_ttl, dedupe_ttl.
fn check_reads(con: &mut Connection, event: &str, f: &Fixture, duplicates: i64, config: [i64; 5]) {
    let stats = tq!(con, "TQ.STATS", event).unwrap();
    for (name, want) in [
        ("waiting", 3),
        ("admitted", 2),
        ("inventory", 97),
        ("held", 1),
        ("sold", 1),
        ("duplicates", duplicates),
        ("abandoned", 4),
        ("holds_expired", 5),
    ] {
        assert_eq!(int_field(&stats, name), want, "TQ.STATS {name}: {stats:?}");
    }
    // Two admissions in the last minute, over the whole window as 0.2
    // measured it.
    let rate = float(&field(&stats, "admission_rate"));
    assert!((rate - 2.0 / 60.0).abs() < 1e-9, "admission_rate {rate}");

    let user = array(&tq!(con, "TQ.USER", event, "alice").unwrap());
    let entries: Vec<(String, String, i64)> = user
        .iter()
        .map(|e| {
            (
                text_field(e, "id"),
                text_field(e, "token"),
                int_field(e, "position"),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            (f.a.clone(), "t1".to_string(), 1),
            (f.c.clone(), "t3".to_string(), 3)
        ]
    );
    let bob = array(&tq!(con, "TQ.USER", event, "bob").unwrap());
    assert_eq!(text_field(&bob[0], "id"), f.b);
    assert_eq!(int_field(&bob[0], "position"), 2);

    let held = tq!(con, "TQ.SEAT", event, "A1").unwrap();
    assert_eq!(text_field(&held, "state"), "held");
    assert_eq!(text_field(&held, "user"), "alice");
    let ttl = int_field(&held, "ttl_ms");
    let elapsed = server_now_ms(con) - f.now_ms;
    assert!(
        ttl <= 120_000 && ttl >= 120_000 - elapsed as i64 - 1000,
        "ttl_ms {ttl}"
    );
    let sold = tq!(con, "TQ.SEAT", event, "A2").unwrap();
    assert_eq!(text_field(&sold, "state"), "sold");
    assert_eq!(text_field(&sold, "user"), "bob");
    assert_eq!(int_field(&sold, "ttl_ms"), -1);
    let free = tq!(con, "TQ.SEAT", event, "A3").unwrap();
    assert_eq!(text_field(&free, "state"), "available");

    assert_eq!(int(&tq!(con, "TQ.INVENTORY", event).unwrap()), 97);

    let settings = tq!(con, "TQ.CONFIG", event).unwrap();
    let got: Vec<i64> = ["rate", "burst", "heartbeat", "hold_ttl", "dedupe_ttl"]
        .iter()
        .map(|name| int_field(&settings, name))
        .collect();
    assert_eq!(got, config, "TQ.CONFIG {event}");
}

/// The first write command, then what only the stored state can show:
/// DEDUPE ids and the stream's last id carried over.
fn check_writes(con: &mut Connection, event: &str, f: &Fixture) {
    check_writes_then(
        con,
        event,
        f,
        &format!("{}-{}", f.deleted.0, f.deleted.1 + 1),
    );
}

/// `check_writes`, the next entry getting `next_id`.
fn check_writes_then(con: &mut Connection, event: &str, f: &Fixture, next_id: &str) {
    let dup = tq!(con, "TQ.ENQUEUE", event, "zed", "t9", "DEDUPE", "d1");
    assert_eq!(error_text(&dup), format!("DUPLICATE {}", f.a));
    // The entry that used d4 has left; its window is still open.
    let dup = tq!(con, "TQ.ENQUEUE", event, "zed", "t9", "DEDUPE", "d4");
    assert_eq!(error_text(&dup), format!("DUPLICATE {}", f.deleted_id()));
    // A waiting token is a duplicate too.
    let dup = tq!(con, "TQ.ENQUEUE", event, "zed", "t2");
    assert_eq!(error_text(&dup), format!("DUPLICATE {}", f.b));
    assert_eq!(stat(con, event, "duplicates"), 6);
    // Ids go on after the stream's last generated one (an entry since
    // deleted), as XADD * would.
    let joined = tq!(con, "TQ.ENQUEUE", event, "carol", "t5").unwrap();
    assert_eq!(text_field(&joined, "id"), next_id);
    assert_eq!(int_field(&joined, "position"), 4);
    assert_eq!(xlen(con, event), 4);
    // The seats: the hold is alice's, the sale bob's, and each user's
    // counts say so on the converting master as after a reload.
    let seats_of = |con: &mut Connection, user: &str| {
        let p = tq!(con, "TQ.PASS", event, user).unwrap();
        (int_field(&p, "held"), int_field(&p, "bought"))
    };
    assert_eq!(seats_of(con, "alice"), (1, 0));
    assert_eq!(seats_of(con, "bob"), (0, 1));
    let other = tq!(con, "TQ.CONFIRM", event, "A1", "bob");
    assert_eq!(code(&other), "NOT_OWNER");
    let sold = stat(con, event, "sold");
    tq!(con, "TQ.CONFIRM", event, "A1", "alice").unwrap();
    assert_eq!(stat(con, event, "sold"), sold + 1);
    assert_eq!(stat(con, event, "held"), 0);
    assert_eq!(
        code(&tq!(con, "TQ.HOLD", event, "A2", "zed")),
        "SEAT_UNAVAILABLE"
    );
}

#[test]
fn the_first_write_converts_an_event_stored_by_0_2_and_a_replica_follows() {
    let (master, replica) =
        Server::start_master_and_replica(&[], &["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = master.client();
    let mut rcon = replica.client();
    // The replica rewrites its AOF after the first sync: wait for it, so
    // that its AOF holds everything from here on.
    assert!(
        eventually(Duration::from_secs(10), || {
            info_field(&mut rcon, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(&mut rcon, "persistence", "aof_rewrite_scheduled").as_deref()
                    == Some("0")
                && info_field(&mut rcon, "persistence", "aof_enabled").as_deref() == Some("1")
        }),
        "the replica's AOF rewrite did not finish"
    );
    // Settings the event did not set itself come from the module defaults.
    run(&mut con, &["CONFIG", "SET", "tq.hold-ttl", "111"]);
    run(&mut con, &["CONFIG", "SET", "tq.dedupe-ttl", "222"]);
    let now = server_now_ms(&mut con);
    let f = write_0_2_event(&mut con, "ev", now);
    wait_replicas(&mut con, 1);
    assert_eq!(old_keys_left(&mut rcon, "ev").len(), OLD_PARTS.len());

    // Reads answer what the 0.2 keys say, on the master and on the
    // replica alike, and write nothing.
    check_reads(&mut con, "ev", &f, 3, [7, 9, 600, 111, 222]);
    check_reads(&mut rcon, "ev", &f, 3, [7, 9, 600, 300, 300]);
    assert_eq!(key_type(&mut con, &state_key("ev")), "none");
    assert_eq!(old_keys_left(&mut con, "ev").len(), OLD_PARTS.len());

    // The first write (a poll) converts, then acts on the state.
    let position = tq!(&mut con, "TQ.POSITION", "ev", "t3").unwrap();
    assert_eq!(int_field(&position, "position"), 3);
    assert_eq!(int_field(&position, "user_position"), 2);
    assert_eq!(int_field(&position, "ready"), 1);
    assert_eq!(key_type(&mut con, &state_key("ev")), STATE_TYPE);
    assert_event_layout(&mut con, "ev");
    assert_eq!(old_keys_left(&mut con, "ev"), Vec::<String>::new());
    assert_eq!(xlen(&mut con, "ev"), 3);
    check_reads(&mut con, "ev", &f, 3, [7, 9, 600, 111, 222]);

    wait_replicas(&mut con, 1);
    assert_event_layout(&mut rcon, "ev");
    // The replica has the master's state, whatever its own defaults.
    check_reads(&mut rcon, "ev", &f, 3, [7, 9, 600, 111, 222]);

    check_writes(&mut con, "ev", &f);
    assert!(
        !master.log().contains("stored by tq 0.2:"),
        "consistent 0.2 keys reported amiss:\n{}",
        master.log()
    );
    wait_replicas(&mut con, 1);
    assert!(
        eventually(Duration::from_secs(10), || {
            wait_replicas(&mut con, 1);
            digest(&mut con) == digest(&mut rcon)
        }),
        "replica digest differs from the master's"
    );
    assert_eq!(
        event_digests(&mut con, "ev"),
        event_digests(&mut rcon, "ev")
    );
    assert_event_layout(&mut rcon, "ev");
    // The replica passed every record on to its own AOF, the conversion's
    // STATE record included: replaying it gives the same data.
    let _: () = redis_query(&mut rcon, &["DEBUG", "LOADAOF"]);
    assert_eq!(digest(&mut rcon), digest(&mut con), "the replica's AOF");
}

#[test]
fn events_stored_by_0_2_convert_at_load_with_no_command() {
    let server = Server::start();
    let mut con = server.client();
    run(&mut con, &["CONFIG", "SET", "tq.hold-ttl", "111"]);
    run(&mut con, &["CONFIG", "SET", "tq.dedupe-ttl", "222"]);
    let now = server_now_ms(&mut con);
    let f = write_0_2_event(&mut con, "ev", now);
    write_0_1_event(&mut con, "old", now);
    write_young_event(&mut con, "young", now);
    // A 0.3 event beside them is left as it is.
    tq!(&mut con, "TQ.ENQUEUE", "fresh", "u1", "k1").unwrap();
    let fresh = event_digests(&mut con, "fresh");
    // In another database too.
    run(&mut con, &["SELECT", "3"]);
    write_young_event(&mut con, "elsewhere", now);
    run(&mut con, &["SELECT", "0"]);

    run(&mut con, &["SELECT", "5"]);
    run(&mut con, &["DEBUG", "RELOAD"]);
    // The conversion's own database switches leave the client's alone.
    let info: String = redis_query(&mut con, &["CLIENT", "INFO"]);
    assert!(info.contains(" db=5 "), "{info}");
    run(&mut con, &["SELECT", "0"]);
    for event in ["ev", "old", "young"] {
        assert!(
            eventually(Duration::from_secs(5), || key_type(
                &mut con,
                &state_key(event)
            ) == STATE_TYPE),
            "{event} not converted at load"
        );
        assert_event_layout(&mut con, event);
    }
    assert_eq!(old_keys_left(&mut con, "ev"), Vec::<String>::new());
    assert_eq!(event_digests(&mut con, "fresh"), fresh);
    run(&mut con, &["SELECT", "3"]);
    assert_eq!(key_type(&mut con, &state_key("elsewhere")), STATE_TYPE);
    assert_event_layout(&mut con, "elsewhere");
    run(&mut con, &["SELECT", "0"]);
    assert!(
        server
            .log()
            .contains("converted 4 event(s) stored by tq 0.2"),
        "{}",
        server.log()
    );
    assert!(
        !server.log().contains("stored by tq 0.2:"),
        "{}",
        server.log()
    );

    check_reads(&mut con, "ev", &f, 3, [7, 9, 600, 111, 222]);
    check_writes(&mut con, "ev", &f);

    // tq 0.1's meta hash: its counters and own settings.
    assert_eq!(stat(&mut con, "old", "inventory"), 5);
    assert_eq!(stat(&mut con, "old", "sold"), 2);
    assert_eq!(stat(&mut con, "old", "waiting"), 1);
    let settings = tq!(&mut con, "TQ.CONFIG", "old").unwrap();
    assert_eq!(int_field(&settings, "rate"), 3);
    assert_eq!(int_field(&settings, "hold_ttl"), 60);
    assert_eq!(int_field(&settings, "dedupe_ttl"), 222);
    let user = array(&tq!(&mut con, "TQ.USER", "old", "zoe").unwrap());
    assert_eq!(text_field(&user[0], "id"), format!("{}-0", now - 10_000));

    // An event that had only joins (no meta): its fan still waits.
    let position = tq!(&mut con, "TQ.POSITION", "young", "y1").unwrap();
    assert_eq!(int_field(&position, "position"), 1);
    assert_eq!(stat(&mut con, "young", "inventory"), 0);
}

#[test]
fn an_aof_of_0_2_writes_converts_at_startup_and_replays_to_the_same_data() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.client();
    let now = server_now_ms(&mut con);
    let f = write_0_2_event(&mut con, "ev", now);
    write_0_1_event(&mut con, "old", now);
    drop(con);

    // Restarted on the AOF of the 0.2 writes: converted after the load.
    let server = server.restart(&[]);
    let mut con = server.client();
    assert!(eventually(Duration::from_secs(5), || key_type(
        &mut con,
        &state_key("ev")
    ) == STATE_TYPE));
    assert_event_layout(&mut con, "ev");
    assert_event_layout(&mut con, "old");
    check_reads(&mut con, "ev", &f, 3, [7, 9, 600, 300, 300]);
    let records: Vec<ApplyRecord> = aof_commands(&server)
        .iter()
        .filter_map(|words| apply_record(words))
        .filter(|r| r.verb == "STATE")
        .collect();
    assert_eq!(records.len(), 2, "one STATE record per converted event");
    let before = (digest(&mut con), event_digests(&mut con, "ev"));
    drop(con);

    // The AOF now holds the 0.2 writes, then the conversion: replayed, it
    // gives the very same data.
    let server = server.restart(&[]);
    let mut con = server.client();
    assert_eq!((digest(&mut con), event_digests(&mut con, "ev")), before);
    assert_event_layout(&mut con, "ev");
    check_reads(&mut con, "ev", &f, 3, [7, 9, 600, 300, 300]);
    check_writes(&mut con, "ev", &f);
}

#[test]
fn an_rdb_of_0_2_keys_converts_at_restart() {
    let server = Server::start();
    let mut con = server.client();
    let now = server_now_ms(&mut con);
    let f = write_0_2_event(&mut con, "ev", now);
    run(&mut con, &["SAVE"]);
    drop(con);
    let server = server.restart(&[]);
    let mut con = server.client();
    assert!(eventually(Duration::from_secs(5), || key_type(
        &mut con,
        &state_key("ev")
    ) == STATE_TYPE));
    assert_event_layout(&mut con, "ev");
    check_reads(&mut con, "ev", &f, 3, [7, 9, 600, 300, 300]);
    check_writes(&mut con, "ev", &f);
}

#[test]
fn keys_that_disagree_convert_as_far_as_they_go_with_a_warning() {
    let server = Server::start();
    let mut con = server.client();
    let now = server_now_ms(&mut con);
    let f = write_0_2_event(&mut con, "ev", now);
    let k = |part: &str| key("ev", part);
    // A stream entry with no user (it cannot wait), a token twice, a fan
    // with no heartbeat, a seat record that is not one, an index that
    // disagrees, a meta pair that is not a count, a setting out of range.
    let after = f.deleted.0 + 1;
    let bad = format!("{after}-0");
    run(&mut con, &["XADD", &k("queue"), &bad, "token", "t6"]);
    let twice = format!("{after}-1");
    run(
        &mut con,
        &["XADD", &k("queue"), &twice, "token", "t1", "user", "eve"],
    );
    run(&mut con, &["ZREM", &k("beat"), "t2"]);
    run(&mut con, &["HSET", &k("seats"), "B1", "reserved"]);
    run(&mut con, &["HSET", &k("tokens"), "t3", "mallory"]);
    let meta: String = redis_query(&mut con, &["GET", &k("meta")]);
    let meta = meta
        .replace("sold=1", "sold=x")
        .replace("rate=7", "rate=9999999");
    run(&mut con, &["SET", &k("meta"), &meta]);

    let stats = tq!(&mut con, "TQ.STATS", "ev").unwrap();
    assert_eq!(int_field(&stats, "waiting"), 3);
    assert_eq!(int_field(&stats, "sold"), 0);
    // The first write converts what is there.
    let position = tq!(&mut con, "TQ.POSITION", "ev", "t2").unwrap();
    assert_eq!(int_field(&position, "position"), 2);
    assert_event_layout(&mut con, "ev");
    // The stream holds exactly the entries the state holds.
    assert_eq!(xlen(&mut con, "ev"), 3);
    let ids: Vec<Value> = redis_query(&mut con, &["XRANGE", &k("queue"), "-", "+"]);
    let ids: Vec<String> = ids.iter().map(|e| text(&array(e)[0])).collect();
    assert_eq!(ids, vec![f.a.clone(), f.b.clone(), f.c.clone()]);
    assert_eq!(
        text_field(&tq!(&mut con, "TQ.SEAT", "ev", "B1").unwrap(), "state"),
        "available"
    );
    assert_eq!(
        text_field(&tq!(&mut con, "TQ.SEAT", "ev", "A1").unwrap(), "state"),
        "held"
    );
    let settings = tq!(&mut con, "TQ.CONFIG", "ev").unwrap();
    assert_eq!(int_field(&settings, "rate"), 50);
    assert_eq!(int_field(&settings, "burst"), 9);
    // The stream's user wins over the disagreeing index.
    let alice = array(&tq!(&mut con, "TQ.USER", "ev", "alice").unwrap());
    assert_eq!(alice.len(), 2);
    // Waiting fans, DEDUPE ids and seats are all still there.
    check_writes_then(&mut con, "ev", &f, &format!("{after}-2"));
    let log = server.log();
    let warning = log
        .lines()
        .find(|l| l.contains("event 'ev' stored by tq 0.2:"))
        .unwrap_or_else(|| panic!("no warning in the log:\n{log}"));
    for what in [
        "2 stream entries",
        "1 waiting entries had no heartbeat",
        "1 seat records",
        "meta sold",
        "meta rate",
        "tokens (1)",
    ] {
        assert!(warning.contains(what), "{what} not in {warning}");
    }
}

#[test]
fn in_a_cluster_an_event_moving_from_a_0_2_node_converts_once_it_has_all_arrived() {
    let nodes = SlotMove::start();
    let (mut ca, mut cb) = (nodes.a.client(), nodes.b.client());
    let now = server_now_ms(&mut ca);
    let f = write_0_2_event(&mut ca, "ev", now);
    let slot: i64 = redis_query(&mut ca, &["CLUSTER", "KEYSLOT", "ev"]);
    nodes.begin_move(slot);
    // Part of the event has arrived: nothing converts yet.
    nodes.migrate(&["queue", "order", "beat", "tokens", "meta"].map(|p| key("ev", p)));
    for words in [
        &["TQ.POSITION", "ev", "t3"][..],
        &["TQ.ENQUEUE", "ev", "u", "t9"],
        &["TQ.STATS", "ev"],
        &["TQ.SEAT", "ev", "A1"],
    ] {
        let reply = asking(&mut cb, words);
        assert_eq!(code(&reply), "TRYAGAIN", "{words:?}: {reply:?}");
    }
    let state = asking(&mut cb, &["EXISTS", &state_key("ev")]).unwrap();
    assert_eq!(int(&state), 0, "converted before the whole event arrived");
    // The rest, then the slot is the new owner's.
    let rest = scan_keys(&mut ca, "tq:{ev}:*");
    let rest: Vec<String> = rest
        .iter()
        .map(|k| String::from_utf8(k.clone()).unwrap())
        .collect();
    assert!(rest.contains(&key("ev", "dedupe:d1")), "{rest:?}");
    nodes.migrate(&rest);
    nodes.finish_move(slot);
    check_reads(&mut cb, "ev", &f, 3, [7, 9, 600, 300, 300]);
    let position = tq!(&mut cb, "TQ.POSITION", "ev", "t3").unwrap();
    assert_eq!(int_field(&position, "position"), 3);
    assert_event_layout(&mut cb, "ev");
    check_writes(&mut cb, "ev", &f);
}

// ---- states stored by tq 0.3 (encoding version 1) -----------------------

/// `DUMP` of the two keys of an event made by tq 0.3 on Redis 7.0: alice
/// joined with tok-a (DEDUPE order-1), bob with a UUID token, alice with
/// tok-a2, carol (a long user name) with tok-c; tok-a entered; inventory
/// 10; alice held A1 (TTL 3000), bob held and confirmed A2. RATE 7, BURST
/// 3, HEARTBEAT 600.
const TQ_0_3_STATE_DUMP: &str = concat!(
    "0781b6afbeb2d6ad780105c340fa41191b0703d804ac02ac020801010100000004000001d00fe386",
    "81d1a234e4600508018faab3d8060101df600d03000303d68008000080071f243566306336613165",
    "2d326434622d346338652d396135372d3362316630653209643763393103626f62da803600018007",
    "0c06746f6b2d613205616c696365a05a000280070005401a1c632a6361726f6c2d776974682d612d",
    "7261746865722d6c6f6e672d75732009066e616d652d6f76200914323402100bafe22156d2698c14",
    "3b86040446d366d1806b02f1fdb720c6101053f7a1ec72f74bf61f831917c330ecd680660300bfae",
    "93201d040202413100808603ab94b8d220100241320120af0062000a00ce2642f2073d1f84",
);
const TQ_0_3_QUEUE_DUMP: &str = concat!(
    "130110000001a22a2043510000000000000000c340ab40b71db70000001e0003010101020185746f",
    "6b656e068475736572050001030100200140140a2d610685616c69636506052026000520151fa435",
    "663063366131652d326434622d346338652d396135372d336231663065320a64376339312583626f",
    "62044032000920320086205d032d613207e00249000e2016605f1b6306aa6361726f6c2d77697468",
    "2d612d7261746865722d6c6f6e672d408d072d6e616d652d6f7620090532342b0501ff0381000001",
    "a22a20435f0081000001a22a20435100000004000a003374c9595b8faeed",
);

/// What tq 0.3's encoder wrote for the same commands at fixed times from
/// 2025-11-24 (its unit-test clock), as an AOF rewrite put it in a
/// `TQ.APPLY <event> 0 STATE <bytes>` record (no version: version 1).
const TQ_0_3_STATE_BYTES: &str = include_str!("../fixtures/tq-0.3-state.hex");

fn hex(text: &str) -> Vec<u8> {
    let text = text.trim();
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// RESTOREs the two keys of an event from `DUMP`s (hex).
fn restore_event(con: &mut Connection, event: &str, queue: &str, state: &str) {
    for (key, dump) in [(queue_key(event), queue), (state_key(event), state)] {
        let _: () = redis::cmd("RESTORE")
            .arg(&key)
            .arg(0)
            .arg(hex(dump))
            .query(con)
            .unwrap_or_else(|e| panic!("RESTORE {key}: {e}"));
    }
}

/// The figures of the sale both old DUMPs hold (four fans joined, one
/// entered, one seat sold of ten), whatever the time: the fans joined
/// long ago (their heartbeats lapsed since), holds and passes may have
/// run out.
fn assert_old_sale_figures(con: &mut Connection, event: &str) {
    let stats = tq!(con, "TQ.STATS", event).unwrap();
    let figure = |name: &str| int_field(&stats, name);
    assert_eq!(
        (figure("joined"), figure("admitted"), figure("sold")),
        (4, 1, 1)
    );
    assert_eq!(figure("waiting") + figure("abandoned"), 3);
    assert_eq!(figure("inventory") + figure("held"), 9);
}

#[test]
fn a_dump_made_by_tq_0_3_restores_with_all_it_had() {
    let server = Server::start();
    let mut con = server.client();
    restore_event(&mut con, "v1ev", TQ_0_3_QUEUE_DUMP, TQ_0_3_STATE_DUMP);
    let config = tq!(&mut con, "TQ.CONFIG", "v1ev").unwrap();
    let settings: Vec<i64> = ["rate", "burst", "heartbeat", "hold_ttl", "dedupe_ttl"]
        .iter()
        .map(|f| int_field(&config, f))
        .collect();
    assert_eq!(settings, [7, 3, 600, 300, 300]);
    assert_old_sale_figures(&mut con, "v1ev");
    let seat = tq!(&mut con, "TQ.SEAT", "v1ev", "A2").unwrap();
    assert_eq!(
        (text_field(&seat, "state"), text_field(&seat, "user")),
        ("sold".into(), "bob".into())
    );
    // A write works on it, and the state, stored anew in this version,
    // dumps and restores to the same digest.
    let joined = tq!(&mut con, "TQ.ENQUEUE", "v1ev", "dave", "tok-d").unwrap();
    let waiting = int_field(&tq!(&mut con, "TQ.STATS", "v1ev").unwrap(), "waiting");
    assert_eq!(int_field(&joined, "position"), waiting);
    assert_redumps_alike(&mut con, "v1ev");
}

/// The state of `event`, dumped and restored as another key, has the same
/// digest.
fn assert_redumps_alike(con: &mut Connection, event: &str) {
    let dump: Vec<u8> = redis_query(con, &["DUMP", &state_key(event)]);
    let _: () = redis::cmd("RESTORE")
        .arg(state_key("copy"))
        .arg(0)
        .arg(dump)
        .query(con)
        .unwrap();
    assert_eq!(
        digest_value(con, &state_key("copy")),
        digest_value(con, &state_key(event))
    );
}

#[test]
fn an_aof_state_record_of_tq_0_3_loads_and_its_tokens_are_found() {
    let server = Server::start_with(&["--appendonly", "yes"]);
    let mut con = server.client();
    let _: String = redis_query(&mut con, &["PING"]);
    // The AOF as tq 0.3 rewrote it: the stream's entries (XADD with the
    // ids tq chose), then the state.
    let entries = [
        (
            "1764000000005-0",
            "5f0c6a1e-2d4b-4c8e-9a57-3b1f0e2d7c91",
            "bob",
        ),
        ("1764000000005-1", "tok-a2", "alice"),
        (
            "1764000000009-0",
            "tok-c",
            "carol-with-a-rather-long-user-name-over-24",
        ),
    ];
    let queue = queue_key("v1aof");
    let mut aof = Vec::new();
    for (id, token, user) in entries {
        aof.extend(resp(&[
            b"XADD",
            queue.as_bytes(),
            id.as_bytes(),
            b"token",
            token.as_bytes(),
            b"user",
            user.as_bytes(),
        ]));
    }
    // A record of tq 0.3 creating an event: its NEW settings were five bare
    // numbers.
    aof.extend(resp(&[
        b"TQ.APPLY",
        b"v1new",
        b"1764000000000",
        b"NEW",
        b"50",
        b"500",
        b"300",
        b"120",
        b"300",
        b"config",
        b"RATE",
        b"7",
    ]));
    aof.extend(resp(&[
        b"TQ.APPLY",
        b"v1aof",
        b"0",
        b"STATE",
        &hex(TQ_0_3_STATE_BYTES),
    ]));
    let dir = server.dir.join("appendonlydir");
    let incr = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .expect("an incremental AOF file");
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&incr)
        .unwrap()
        .write_all(&aof)
        .unwrap();
    let _: String = redis_query(&mut con, &["DEBUG", "LOADAOF"]);
    // Loaded from the AOF: the fans get a full period from the load, so
    // they all wait, and are found by the tokens they joined with.
    let stats = tq!(&mut con, "TQ.STATS", "v1aof").unwrap();
    assert_eq!(
        (int_field(&stats, "waiting"), int_field(&stats, "joined")),
        (3, 4)
    );
    let at = tq!(&mut con, "TQ.POSITION", "v1aof", "tok-c").unwrap();
    assert_eq!(int_field(&at, "position"), 3);
    let alice = array(&tq!(&mut con, "TQ.USER", "v1aof", "alice").unwrap());
    assert_eq!(alice.len(), 1);
    assert_eq!(
        (
            text_field(&alice[0], "token"),
            int_field(&alice[0], "position")
        ),
        ("tok-a2".to_string(), 2)
    );
    let carol = array(
        &tq!(
            &mut con,
            "TQ.USER",
            "v1aof",
            "carol-with-a-rather-long-user-name-over-24"
        )
        .unwrap(),
    );
    assert_eq!(text_field(&carol[0], "token"), "tok-c");
    assert_eq!(
        int(&tq!(
            &mut con,
            "TQ.LEAVE",
            "v1aof",
            "5f0c6a1e-2d4b-4c8e-9a57-3b1f0e2d7c91"
        )
        .unwrap()),
        1
    );
    assert_eq!(redis_query::<i64>(&mut con, &["XLEN", &queue]), 2);
    let created = tq!(&mut con, "TQ.CONFIG", "v1new").unwrap();
    let settings: Vec<i64> = ["rate", "hold_ttl", "session", "max_active"]
        .iter()
        .map(|f| int_field(&created, f))
        .collect();
    assert_eq!(settings, [7, 120, 600, 0], "0.3's NEW, then its RATE 7");
}

/// A command as RESP, as the AOF holds it.
fn resp(words: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend(format!("${}\r\n", w.len()).into_bytes());
        out.extend_from_slice(w);
        out.extend_from_slice(b"\r\n");
    }
    out
}

// ---- states stored by tq 0.4 (encoding version 2) -----------------------

/// `DUMP` of the two keys of an event made by tq 0.4 on Redis 7.0: RATE 7,
/// BURST 3, SESSION 900, MAX-SEATS 4; alice joined with tok-a (DEDUPE
/// order-1), bob with a UUID token, alice with tok-a2, carol with tok-c;
/// tok-a entered (alice's pass); inventory 10; alice held A1 (TTL 3000),
/// bob held A2 and A3 and confirmed A2.
const TQ_0_4_STATE_DUMP: &str = concat!(
    "0781b6afbeb2d6ad780205c3410a412e030703ac0240010a840700000400070101010040080a0001",
    "d00f90f4c0cda434916005080187d3d3d80601018b600d03000303818008000080071fcf954714ab",
    "cfc71948414dd07baa9c1081b637d8fcd2c6da6359e6963113a1170086802d000180071f13771c80",
    "5e274688614628399ff3c09c2bd806c97f0e00af1a1fc3328fa763a9a064000280071f1236183d37",
    "679658f9f22e86d74ca3ba4c26d9074c27d89ede59270c0ac14b7112010bafe22156d2698c143b86",
    "040446d366fcf340b703009cebf720be1c030241310005616c696365d981f8cea434024132010362",
    "6f6202413300400702fe9bd320260001e0078310cd69165b699e51af396981645f9e3c53b9204d01",
    "a434000a00e73ef42e7f470f3a",
);
const TQ_0_4_QUEUE_DUMP: &str = concat!(
    "130110000001a249b039fc0000000000000000c3408740921d920000001e0003010101020185746f",
    "6b656e068475736572050001030100200140140a2d610685616c69636506052026000520151fa435",
    "663063366131652d326434622d346338652d396135372d336231663065320a64376339312583626f",
    "62044032000a20320086205d032d613207e00249000f2016605f076306856361726f6c205f00ff03",
    "81000001a249b03a0b0081000001a249b039fc00000004000a0056b5ea4f682e29bf",
);

#[test]
fn a_dump_made_by_tq_0_4_restores_with_all_it_had() {
    let server = Server::start();
    let mut con = server.client();
    restore_event(&mut con, "v2ev", TQ_0_4_QUEUE_DUMP, TQ_0_4_STATE_DUMP);
    let config = tq!(&mut con, "TQ.CONFIG", "v2ev").unwrap();
    let settings: Vec<i64> = ["rate", "burst", "session", "max_seats", "events"]
        .iter()
        .map(|f| int_field(&config, f))
        .collect();
    assert_eq!(settings, [7, 3, 900, 4, 0]);
    assert_old_sale_figures(&mut con, "v2ev");
    let bob = tq!(&mut con, "TQ.PASS", "v2ev", "bob").unwrap();
    assert_eq!(int_field(&bob, "bought"), 1);
    // Alice's pass (a session of 900 s) has lapsed since the DUMP was made.
    let alice = tq!(&mut con, "TQ.PASS", "v2ev", "alice").unwrap();
    assert_eq!(int_field(&alice, "active"), 0);
    // Stored anew in this version, it dumps and restores to the same digest.
    tq!(&mut con, "TQ.ENQUEUE", "v2ev", "dave", "tok-d").unwrap();
    assert_redumps_alike(&mut con, "v2ev");
}
