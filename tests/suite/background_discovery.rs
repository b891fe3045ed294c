//! The background work finds events whose data arrived without a TQ command
//! on this server: after an AOF reload (DEBUG LOADAOF, and a restart), on a
//! replica promoted to master, and from RESTORE of both keys (a slot
//! migration). Nobody touches the events afterwards; the abandoned entries
//! must still leave the stream and the expired holds the state, and
//! TQ.STATS counts them.

use crate::common::*;
use std::time::Duration;

/// Event `ev`: five entries abandoned 1 s after joining (heartbeat 1) and a
/// hold that expires after 1 s. Event `hv`: holds only, one expiring after
/// 2 s, so that its state changes by that expiry alone (the margin lets the
/// tests see its state before the expiry after a restart).
fn timed_work(con: &mut redis::Connection) {
    tq!(con, "TQ.CONFIG", "ev", "HEARTBEAT", 1).unwrap();
    for i in 0..5 {
        tq!(con, "TQ.ENQUEUE", "ev", format!("u{i}"), format!("t{i}")).unwrap();
    }
    tq!(con, "TQ.INVENTORY", "ev", "SET", 3).unwrap();
    tq!(con, "TQ.HOLD", "ev", "A1", "u0", "TTL", 1).unwrap();
    tq!(con, "TQ.INVENTORY", "hv", "SET", 3).unwrap();
    tq!(con, "TQ.HOLD", "hv", "B1", "u0", "TTL", 2).unwrap();
    tq!(con, "TQ.HOLD", "hv", "B2", "u0", "TTL", 300).unwrap();
}

/// Waits (no TQ command) until the stream of `ev` is empty and the state of
/// `hv` has changed from `hv_state`, then checks what TQ.STATS counts.
fn assert_reaped_without_a_command(con: &mut redis::Connection, hv_state: &str, timeout: Duration) {
    assert!(
        eventually(timeout, || xlen(con, "ev") == 0),
        "abandoned entries still in the stream: XLEN {}",
        xlen(con, "ev")
    );
    assert!(
        eventually(timeout, || digest_value(con, &state_key("hv")) != hv_state),
        "the expired hold of hv is still stored"
    );
    let ev = tq!(con, "TQ.STATS", "ev").unwrap();
    assert_eq!(
        ["waiting", "abandoned", "holds_expired", "inventory", "held"].map(|f| int_field(&ev, f)),
        [0, 5, 1, 3, 0],
        "{ev:?}"
    );
    let hv = tq!(con, "TQ.STATS", "hv").unwrap();
    assert_eq!(
        ["holds_expired", "inventory", "held"].map(|f| int_field(&hv, f)),
        [1, 2, 1],
        "{hv:?}"
    );
    for ev in ["ev", "hv"] {
        assert_event_layout(con, ev);
    }
}

#[test]
fn events_loaded_from_the_aof_are_reaped_after_a_restart() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.client();
    timed_work(&mut con);
    let hv_state = digest_value(&mut con, &state_key("hv"));
    drop(con);
    let server = server.restart(&[]);
    let mut con = server.client();
    assert_eq!(xlen(&mut con, "ev"), 5);
    assert_eq!(digest_value(&mut con, &state_key("hv")), hv_state);
    assert_reaped_without_a_command(&mut con, &hv_state, Duration::from_secs(5));
}

#[test]
fn events_loaded_by_debug_loadaof_are_reaped() {
    let server = Server::start_with(&["--appendonly", "yes"]);
    let mut con = server.client();
    timed_work(&mut con);
    let hv_state = digest_value(&mut con, &state_key("hv"));
    // The reload replaces every key: the timer must find the new ones.
    redis_query::<String>(&mut con, &["DEBUG", "LOADAOF"]);
    assert_eq!(digest_value(&mut con, &state_key("hv")), hv_state);
    assert_reaped_without_a_command(&mut con, &hv_state, Duration::from_secs(5));
}

#[test]
fn a_promoted_replica_reaps_what_the_old_master_left() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    timed_work(&mut m);
    wait_replicas(&mut m, 1);
    let hv_state = digest_value(&mut m, &state_key("hv"));
    drop(m);
    drop(master);
    let mut r = replica.client();
    // Still a replica: it never writes, whatever is due.
    std::thread::sleep(Duration::from_millis(2300));
    assert_eq!(xlen(&mut r, "ev"), 5);
    assert_eq!(digest_value(&mut r, &state_key("hv")), hv_state);
    let _: () = redis_query(&mut r, &["REPLICAOF", "NO", "ONE"]);
    assert_reaped_without_a_command(&mut r, &hv_state, Duration::from_secs(4));
}

/// An event takes the module defaults when it is made: lowering the default
/// heartbeat leaves existing events alone, and an event made afterwards is
/// reaped by the new default without a command.
#[test]
fn the_default_heartbeat_applies_to_events_made_after_it() {
    let server = Server::start();
    let mut con = server.client();
    for i in 0..5 {
        tq!(
            &mut con,
            "TQ.ENQUEUE",
            "old",
            format!("u{i}"),
            format!("t{i}")
        )
        .unwrap();
    }
    let _: () = redis_query(&mut con, &["CONFIG", "SET", "tq.heartbeat", "1"]);
    for i in 0..5 {
        tq!(
            &mut con,
            "TQ.ENQUEUE",
            "new",
            format!("u{i}"),
            format!("t{i}")
        )
        .unwrap();
    }
    let config = tq!(&mut con, "TQ.CONFIG", "old").unwrap();
    assert_eq!(int_field(&config, "heartbeat"), 300);
    let config = tq!(&mut con, "TQ.CONFIG", "new").unwrap();
    assert_eq!(int_field(&config, "heartbeat"), 1);
    assert!(
        eventually(Duration::from_secs(4), || xlen(&mut con, "new") == 0),
        "the new event's entries were not abandoned"
    );
    assert_eq!(stat(&mut con, "new", "abandoned"), 5);
    // By now (over 1.0 s) the old event's entries would have gone too had
    // they taken the new default.
    assert_eq!(xlen(&mut con, "old"), 5);
    assert_eq!(stat(&mut con, "old", "abandoned"), 0);
}

/// A slot migration moves keys with RESTORE (here by hand, as MIGRATE
/// does): the background work learns of the event from the restored keys
/// alone.
#[test]
fn events_restored_from_another_server_are_reaped_without_a_command() {
    let (source, target) = (Server::start(), Server::start());
    let (mut from, mut to) = (source.client(), target.client());
    timed_work(&mut from);
    let mut keys: Vec<String> = Vec::new();
    for ev in ["ev", "hv"] {
        assert_event_layout(&mut from, ev);
        keys.extend(event_keys(&mut from, ev));
    }
    // hv has no waiting entry: its queue may be absent.
    for key in ["tq:{ev}:queue", "tq:{ev}:state", "tq:{hv}:state"] {
        assert!(keys.iter().any(|k| k == key), "{key} not in {keys:?}");
    }
    // One snapshot: the source's own timer must not act between two keys.
    let mut snapshot = redis::pipe();
    snapshot.atomic();
    for key in &keys {
        snapshot.cmd("DUMP").arg(key).cmd("PTTL").arg(key);
    }
    let dumped: Vec<(Vec<u8>, i64)> = snapshot.query(&mut from).unwrap();
    let hv_state = digest_value(&mut from, &state_key("hv"));
    let mut restore = redis::pipe();
    restore.atomic();
    for (key, (payload, ttl)) in keys.iter().zip(dumped) {
        assert_eq!(ttl, -1, "{key} has a TTL");
        restore.cmd("RESTORE").arg(key).arg(0).arg(payload).ignore();
    }
    restore.query::<()>(&mut to).unwrap();
    assert_eq!(xlen(&mut to, "ev"), 5);
    assert_eq!(digest_value(&mut to, &state_key("hv")), hv_state);
    assert_reaped_without_a_command(&mut to, &hv_state, Duration::from_secs(5));
}

/// COPY of both keys into another database makes a whole second event
/// there (the type's copy callback), equal to the first, and the timer
/// finds it: its abandoned entries and expired holds leave with no command
/// in that database.
#[test]
fn events_copied_to_another_database_are_equal_and_reaped_there() {
    let server = Server::start();
    let mut con = server.client();
    timed_work(&mut con);
    let states: Vec<String> = ["ev", "hv"]
        .map(|ev| digest_value(&mut con, &state_key(ev)))
        .to_vec();
    for ev in ["ev", "hv"] {
        for key in [queue_key(ev), state_key(ev)] {
            let copied: i64 = redis::cmd("COPY")
                .arg(&key)
                .arg(&key)
                .arg("DB")
                .arg(1)
                .query(&mut con)
                .unwrap();
            assert!(
                copied == 1 || key.ends_with(":queue") && ev == "hv",
                "{key}"
            );
        }
    }
    let mut db1 = redis::Client::open(format!("{}1", server.url()))
        .unwrap()
        .get_connection()
        .unwrap();
    let copies: Vec<String> = ["ev", "hv"]
        .map(|ev| digest_value(&mut db1, &state_key(ev)))
        .to_vec();
    assert_eq!(copies, states, "a copy differs from its original");
    assert_reaped_without_a_command(&mut db1, &copies[1], Duration::from_secs(10));
}
