//! Admission that protects the inventory (contract v2, "Passes" and the
//! new settings): TQ.ENTER's pass, TQ.PASS, SESSION, MAX-ACTIVE,
//! REQUIRE-PASS, MAX-SEATS, MAX-ENTRIES and sold out, against a real
//! server, its replica and its AOF.

use crate::common::*;

use std::time::{Duration, Instant};

use redis::{Connection, Value};

fn server_now_ms(con: &mut Connection) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query(con).unwrap();
    s * 1000 + us / 1000
}

fn is_pass_id(v: &Value) -> bool {
    let t = text(v);
    t.len() == 32
        && t.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn repl_offset(con: &mut Connection) -> i64 {
    info_field(con, "replication", "master_repl_offset")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn enter_gives_a_pass_that_pass_shows_touch_renews_and_revoke_ends() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "ev", "SESSION", 120).unwrap();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 10).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "alice", "t1").unwrap();
    let before = server_now_ms(&mut con);
    let admitted = tq!(&mut con, "TQ.ENTER", "ev", "t1").unwrap();
    let after = server_now_ms(&mut con);
    let fields: Vec<String> = map(&admitted).into_iter().map(|(k, _)| k).collect();
    assert_eq!(fields, ["admitted", "position_was", "pass", "expires_at"]);
    let pass = field(&admitted, "pass");
    assert!(is_pass_id(&pass), "{pass:?}");
    let expires = int_field(&admitted, "expires_at");
    assert!((before + 120_000..=after + 120_000).contains(&expires));

    let shown = tq!(&mut con, "TQ.PASS", "ev", "alice").unwrap();
    let fields: Vec<String> = map(&shown).into_iter().map(|(k, _)| k).collect();
    assert_eq!(fields, ["active", "pass", "expires_at", "held", "bought"]);
    assert_eq!(int_field(&shown, "active"), 1);
    assert_eq!(text(&field(&shown, "pass")), text(&pass));
    assert_eq!(int_field(&shown, "expires_at"), expires);

    // A hold renews it and counts; a confirm moves the seat to bought.
    tq!(&mut con, "TQ.HOLD", "ev", "A1", "alice").unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A2", "alice").unwrap();
    tq!(&mut con, "TQ.CONFIRM", "ev", "A1", "alice").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let touched = tq!(&mut con, "TQ.PASS", "ev", "alice", "TOUCH").unwrap();
    assert!(int_field(&touched, "expires_at") > expires);
    assert_eq!(
        text(&field(&touched, "pass")),
        text(&pass),
        "renewal keeps the id"
    );
    assert_eq!(
        (int_field(&touched, "held"), int_field(&touched, "bought")),
        (1, 1)
    );
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", "ev").unwrap(), "active"),
        1
    );

    // REVOKE: 1 once, then 0; the pass is gone, the seats stay.
    assert_eq!(
        int(&tq!(&mut con, "TQ.PASS", "ev", "alice", "REVOKE").unwrap()),
        1
    );
    assert_eq!(
        int(&tq!(&mut con, "TQ.PASS", "ev", "alice", "revoke").unwrap()),
        0
    );
    let gone = tq!(&mut con, "TQ.PASS", "ev", "alice").unwrap();
    assert_eq!(int_field(&gone, "active"), 0);
    assert_eq!(field(&gone, "pass"), Value::Nil);
    assert_eq!(int_field(&gone, "expires_at"), -1);
    assert_eq!(
        (int_field(&gone, "held"), int_field(&gone, "bought")),
        (1, 1)
    );
    let touch = tq!(&mut con, "TQ.PASS", "ev", "alice", "TOUCH");
    assert_eq!(code(&touch), "NO_PASS");
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", "ev").unwrap(), "active"),
        0
    );
    // A user who never came: no pass, nothing stored for them.
    let nobody = tq!(&mut con, "TQ.PASS", "ev", "nobody").unwrap();
    assert_eq!(
        (int_field(&nobody, "active"), int_field(&nobody, "held")),
        (0, 0)
    );
}

#[test]
fn passes_lapse_by_themselves_and_the_replica_follows() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    // Five seconds: long enough for a loaded test machine to check the
    // replica before they lapse.
    tq!(&mut m, "TQ.CONFIG", "ev", "SESSION", 5, "BURST", 100).unwrap();
    for i in 0..20 {
        tq!(&mut m, "TQ.ENQUEUE", "ev", format!("u{i}"), format!("t{i}")).unwrap();
        tq!(&mut m, "TQ.ENTER", "ev", format!("t{i}")).unwrap();
    }
    // Same passes, same ids.
    assert_replica_matches(&mut m, &mut r, "DEBUG DIGEST", digest);
    assert_eq!(
        int_field(&tq!(&mut r, "TQ.STATS", "ev").unwrap(), "active"),
        20
    );
    // After the session, with no command: gone from the master's state,
    // and from the replica's through the background step's record.
    let state = state_key("ev");
    let size = |con: &mut Connection| -> i64 { redis_query(con, &["MEMORY", "USAGE", &state]) };
    let full = size(&mut m);
    assert!(
        eventually(Duration::from_secs(10), || size(&mut m) < full),
        "the lapsed passes stayed in storage"
    );
    assert_eq!(
        int_field(&tq!(&mut m, "TQ.STATS", "ev").unwrap(), "active"),
        0
    );
    assert_replica_matches(&mut m, &mut r, "DEBUG DIGEST", digest);
    assert_eq!(
        int_field(&tq!(&mut r, "TQ.STATS", "ev").unwrap(), "active"),
        0
    );
}

#[test]
fn max_active_holds_the_queue_while_passes_live_and_a_lapse_lets_the_front_in() {
    let server = Server::start();
    let mut con = server.client();
    tq!(
        &mut con,
        "TQ.CONFIG",
        "ev",
        "MAX-ACTIVE",
        2,
        // Passes of 3 s: long enough for a loaded machine to poll before
        // they lapse.
        "SESSION",
        3,
        "BURST",
        100
    )
    .unwrap();
    for i in 1..=4 {
        tq!(
            &mut con,
            "TQ.ENQUEUE",
            "ev",
            format!("u{i}"),
            format!("t{i}")
        )
        .unwrap();
    }
    // Both passes in one MULTI (one now): they lapse in the same step, so
    // the two places come free together.
    let () = redis::pipe()
        .atomic()
        .cmd("TQ.ENTER")
        .arg("ev")
        .arg("t1")
        .ignore()
        .cmd("TQ.ENTER")
        .arg("ev")
        .arg("t2")
        .ignore()
        .query(&mut con)
        .unwrap();
    let capped_at = Instant::now();
    // Fans poll while the cap holds: nobody ready, no estimate.
    let poll = |con: &mut Connection, token: &str| tq!(con, "TQ.POSITION", "ev", token).unwrap();
    let p3 = poll(&mut con, "t3");
    assert_eq!(
        (
            int_field(&p3, "position"),
            int_field(&p3, "ready"),
            int_field(&p3, "eta_ms")
        ),
        (1, 0, -1)
    );
    let refused = tq!(&mut con, "TQ.ENTER", "ev", "t3");
    assert_eq!(error_text(&refused), "NOT_READY 1");
    // The passes lapse a session after they were given: the front is
    // ready then, and only as many as places freed.
    assert!(eventually(Duration::from_secs(6), || int_field(
        &poll(&mut con, "t3"),
        "ready"
    ) == 1));
    assert!(
        capped_at.elapsed() >= Duration::from_millis(2_500),
        "lapsed early"
    );
    tq!(&mut con, "TQ.ENTER", "ev", "t3").unwrap();
    tq!(&mut con, "TQ.ENTER", "ev", "t4").unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u5", "t5").unwrap();
    assert_eq!(int_field(&poll(&mut con, "t5"), "ready"), 0);
    // A revoke frees a place at once.
    assert_eq!(
        int(&tq!(&mut con, "TQ.PASS", "ev", "u3", "REVOKE").unwrap()),
        1
    );
    assert_eq!(int_field(&poll(&mut con, "t5"), "ready"), 1);
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", "ev").unwrap(), "active"),
        1
    );
}

#[test]
fn require_pass_max_seats_and_max_entries_refuse_and_store_nothing() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut con = master.client();
    let mut r = replica.client();
    tq!(
        &mut con,
        "TQ.CONFIG",
        "ev",
        "REQUIRE-PASS",
        1,
        "MAX-SEATS",
        2,
        "MAX-ENTRIES",
        1
    )
    .unwrap();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 10).unwrap();
    wait_caught_up(&mut con, &mut r);
    let offset = repl_offset(&mut con);
    let no_pass = tq!(&mut con, "TQ.HOLD", "ev", "A1", "bob");
    assert_eq!(
        error_text(&no_pass),
        "NO_PASS the user has no live pass for this event"
    );
    assert_eq!(
        repl_offset(&mut con),
        offset,
        "a refused hold replicates nothing"
    );
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "ev").unwrap()), 10);
    tq!(&mut con, "TQ.ENQUEUE", "ev", "bob", "t1").unwrap();
    let second = tq!(&mut con, "TQ.ENQUEUE", "ev", "bob", "t2");
    assert_eq!(error_text(&second), "LIMIT 1");
    tq!(&mut con, "TQ.ENTER", "ev", "t1").unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A1", "bob").unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A2", "bob").unwrap();
    let offset = repl_offset(&mut con);
    let third = tq!(&mut con, "TQ.HOLD", "ev", "A3", "bob");
    assert_eq!(error_text(&third), "LIMIT 2");
    assert_eq!(repl_offset(&mut con), offset);
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", "ev").unwrap()), 8);
    let seat = tq!(&mut con, "TQ.SEAT", "ev", "A3").unwrap();
    assert_eq!(text(&field(&seat, "state")), "available");
    assert_replica_matches(&mut con, &mut r, "DEBUG DIGEST", digest);
    // Counted per event and per user.
    tq!(&mut con, "TQ.ENQUEUE", "ev", "carol", "t3").unwrap();
    let info: String = redis_query(&mut con, &["INFO", "tq"]);
    assert!(info.contains("tq_hold_errors_limit:1"), "{info}");
    assert!(info.contains("tq_hold_errors_no_pass:1"), "{info}");
    assert!(info.contains("tq_enqueue_errors_limit:1"), "{info}");
}

#[test]
fn a_sold_out_event_tells_its_queue_and_reopens_with_more_seats() {
    let server = Server::start();
    let mut con = server.client();
    // A queue-only event is never sold out.
    tq!(&mut con, "TQ.ENQUEUE", "q", "u", "t").unwrap();
    let open = tq!(&mut con, "TQ.POSITION", "q", "t").unwrap();
    let fields: Vec<String> = map(&open).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        fields,
        [
            "position",
            "user_position",
            "ready",
            "eta_ms",
            "waited_ms",
            "opens_in_ms",
            "sold_out"
        ]
    );
    assert_eq!(
        (
            int_field(&open, "sold_out"),
            int_field(&open, "opens_in_ms")
        ),
        (0, 0)
    );

    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 1).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u1", "t1").unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u2", "t2").unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A1", "buyer").unwrap();
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", "ev").unwrap(), "sold_out"),
        0,
        "held"
    );
    tq!(&mut con, "TQ.CONFIRM", "ev", "A1", "buyer").unwrap();
    assert_eq!(
        int_field(&tq!(&mut con, "TQ.STATS", "ev").unwrap(), "sold_out"),
        1
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "ev", "u3", "t3")),
        "SOLD_OUT"
    );
    assert_eq!(code(&tq!(&mut con, "TQ.ENTER", "ev", "t1")), "SOLD_OUT");
    let told = tq!(&mut con, "TQ.POSITION", "ev", "t2").unwrap();
    assert_eq!(
        (int_field(&told, "sold_out"), int_field(&told, "position")),
        (1, 2)
    );
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 5).unwrap();
    assert_eq!(
        int_field(
            &tq!(&mut con, "TQ.POSITION", "ev", "t2").unwrap(),
            "sold_out"
        ),
        0
    );
    tq!(&mut con, "TQ.ENTER", "ev", "t1").unwrap();
}

#[test]
fn passes_survive_an_aof_restart_and_keep_their_ids() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.client();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "alice", "t1").unwrap();
    let admitted = tq!(&mut con, "TQ.ENTER", "ev", "t1").unwrap();
    let before = digest(&mut con);
    let server = server.restart(&[]);
    let mut con = server.client();
    assert_eq!(digest(&mut con), before);
    let shown = tq!(&mut con, "TQ.PASS", "ev", "alice").unwrap();
    assert_eq!(
        text(&field(&shown, "pass")),
        text(&field(&admitted, "pass"))
    );
    assert_eq!(
        int_field(&shown, "expires_at"),
        int_field(&admitted, "expires_at")
    );
}

#[test]
fn settings_of_passes_and_limits_in_tq_config_and_module_configs() {
    let server = Server::start();
    let mut con = server.client();
    let config = tq!(&mut con, "TQ.CONFIG", "ev").unwrap();
    let fields: Vec<(String, Value)> = map(&config);
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "rate",
            "burst",
            "heartbeat",
            "hold_ttl",
            "dedupe_ttl",
            "opens_at",
            "session",
            "max_active",
            "require_pass",
            "max_seats",
            "max_entries",
            "events",
            "shuffle_seed"
        ]
    );
    let defaults: Vec<i64> = [
        "opens_at",
        "session",
        "max_active",
        "require_pass",
        "max_seats",
        "max_entries",
        "events",
    ]
    .iter()
    .map(|f| int_field(&config, f))
    .collect();
    assert_eq!(defaults, [0, 600, 0, 0, 0, 0, 0]);
    assert_eq!(field(&config, "shuffle_seed"), Value::Nil);
    // Module configs are the defaults of events created afterwards.
    for (name, value) in [("tq.session", "30"), ("tq.max-active", "7")] {
        redis_query::<()>(&mut con, &["CONFIG", "SET", name, value]);
    }
    let created = tq!(&mut con, "TQ.CONFIG", "later").unwrap();
    assert_eq!(
        (
            int_field(&created, "session"),
            int_field(&created, "max_active")
        ),
        (30, 7)
    );
    tq!(
        &mut con,
        "TQ.CONFIG",
        "ev",
        "REQUIRE-PASS",
        1,
        "MAX-SEATS",
        4
    )
    .unwrap();
    let changed = tq!(&mut con, "TQ.CONFIG", "ev").unwrap();
    assert_eq!(
        (
            int_field(&changed, "require_pass"),
            int_field(&changed, "max_seats")
        ),
        (1, 4)
    );
    // Out of range, unknown here, twice: refused, nothing changes.
    for (words, expected) in [
        (vec!["REQUIRE-PASS", "2"], "ERR"),
        (vec!["SESSION", "0"], "ERR"),
        (vec!["MAX-ACTIVE", "-1"], "ERR"),
        (vec!["MAX-ENTRIES", "2147483649"], "ERR"),
        (vec!["OPENS-AT", "-1"], "ERR"),
        (vec!["EVENTS", "-1"], "ERR"),
        (vec!["EVENTS", "2147483649"], "ERR"),
        (vec!["SESSION", "5", "SESSION", "6"], "ERR"),
    ] {
        let mut cmd = vec!["TQ.CONFIG", "ev"];
        cmd.extend(&words);
        let got = call_args(
            &mut con,
            &cmd.iter()
                .map(|w| w.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        );
        assert_eq!(code(&got), expected, "{words:?}");
    }
    assert_eq!(
        map(&tq!(&mut con, "TQ.CONFIG", "ev").unwrap()),
        map(&changed)
    );
    let bad = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tq.require-pass")
        .arg(3)
        .query::<()>(&mut con);
    assert!(bad.is_err());
}

#[test]
fn tq_pass_refuses_bad_input_and_changes_nothing() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t").unwrap();
    tq!(&mut con, "TQ.ENTER", "ev", "t").unwrap();
    let before = digest(&mut con);
    let cases: Vec<(Vec<&[u8]>, &str)> = vec![
        (vec![b"TQ.PASS"], "ERR"),
        (vec![b"TQ.PASS", b"ev"], "ERR"),
        (vec![b"TQ.PASS", b"ev", b"u", b"TOUCH", b"REVOKE"], "ERR"),
        (vec![b"TQ.PASS", b"ev", b"u", b"RENEW"], "ERR"),
        (vec![b"TQ.PASS", b"ev", b""], "ERR"),
        (vec![b"TQ.PASS", b"", b"u"], "ERR"),
        (vec![b"TQ.PASS", b"e{v}", b"u"], "ERR"),
        (
            vec![b"TQ.PASS", b"ev", b"\xff\x00\r\n", b"TOUCH"],
            "NO_PASS",
        ),
    ];
    for (words, expected) in &cases {
        let words: Vec<Vec<u8>> = words.iter().map(|w| w.to_vec()).collect();
        assert_eq!(&code(&call_args(&mut con, &words)), expected, "{words:?}");
    }
    let long = vec![b'x'; 1025];
    let got = call_args(&mut con, &[b"TQ.PASS".to_vec(), b"ev".to_vec(), long]);
    assert_eq!(code(&got), "ERR");
    // A binary user name works like any other.
    let shown = call_args(
        &mut con,
        &[b"TQ.PASS".to_vec(), b"ev".to_vec(), b"\xff\x00".to_vec()],
    )
    .unwrap();
    assert_eq!(int_field(&shown, "active"), 0);
    assert_eq!(digest(&mut con), before);
    // A key of another type under the event's state name.
    redis_query::<String>(&mut con, &["SET", &state_key("other"), "x"]);
    assert_eq!(code(&tq!(&mut con, "TQ.PASS", "other", "u")), "WRONGTYPE");
    // COMMAND DOCS describes it.
    let docs: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("tq.pass")
        .query(&mut con)
        .unwrap();
    assert!(format!("{docs:?}").contains("REVOKE"), "{docs:?}");
}

/// `tq_passes_active` in INFO tq: the passes stored in the server's
/// events, following admissions, revokes, lapses, copies, reloads and
/// deletions.
#[test]
fn info_counts_the_passes_stored_across_events() {
    let server = Server::start();
    let mut con = server.client();
    let active = |con: &mut Connection| -> i64 {
        info_field(con, "tq", "tq_passes_active")
            .expect("INFO tq has tq_passes_active")
            .parse()
            .unwrap()
    };
    assert_eq!(active(&mut con), 0);
    for (ev, n) in [("one", 3), ("two", 2)] {
        for i in 0..n {
            let token = format!("{ev}-{i}");
            tq!(
                &mut con,
                "TQ.ENQUEUE",
                ev,
                format!("fan-{i}"),
                token.as_str()
            )
            .unwrap();
            tq!(&mut con, "TQ.ENTER", ev, token.as_str()).unwrap();
        }
    }
    assert_eq!(active(&mut con), 5);
    tq!(&mut con, "TQ.PASS", "one", "fan-0", "REVOKE").unwrap();
    assert_eq!(active(&mut con), 4);
    let _: i64 = redis_query(&mut con, &["COPY", &state_key("two"), "{two}copy"]);
    assert_eq!(active(&mut con), 6);
    let _: String = redis_query(&mut con, &["DEBUG", "RELOAD"]);
    assert_eq!(active(&mut con), 6);
    let _: i64 = redis_query(&mut con, &["DEL", "{two}copy", &state_key("one")]);
    assert_eq!(active(&mut con), 2);
    // Lapses, with nobody touching the event.
    tq!(&mut con, "TQ.CONFIG", "three", "SESSION", 1).unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "three", "fan", "t").unwrap();
    tq!(&mut con, "TQ.ENTER", "three", "t").unwrap();
    assert_eq!(active(&mut con), 3);
    assert!(eventually(Duration::from_secs(4), || active(&mut con) == 2));
}
