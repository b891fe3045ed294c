//! The background reaper finds events whose data arrived without a TQ
//! command on this server: after an AOF reload and restart, on a replica
//! promoted to master, and from RESTORE (a slot migration). Nobody touches
//! the events afterwards; the abandoned entries and expired holds must
//! still go.

mod common;

use common::*;
use std::time::Duration;

/// Waiting entries abandoned after 1 s and a hold that expires after 1 s.
fn timed_work(con: &mut redis::Connection) {
    tq!(con, "TQ.CONFIG", "ev", "HEARTBEAT", 1).unwrap();
    for i in 0..5 {
        tq!(con, "TQ.ENQUEUE", "ev", format!("u{i}"), format!("t{i}")).unwrap();
    }
    tq!(con, "TQ.INVENTORY", "ev", "SET", 3).unwrap();
    tq!(con, "TQ.HOLD", "ev", "A1", "u0", "TTL", 1).unwrap();
}

fn all_reaped(con: &mut redis::Connection) -> bool {
    redis_query::<i64>(con, &["XLEN", "tq:{ev}:queue"]) == 0
        && redis_query::<i64>(con, &["EXISTS", "tq:{ev}:holds"]) == 0
}

#[test]
fn events_loaded_from_the_aof_are_reaped_after_a_restart() {
    let server = Server::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.client();
    timed_work(&mut con);
    let server = server.restart(&[]);
    let mut con = server.client();
    assert_eq!(redis_query::<i64>(&mut con, &["XLEN", "tq:{ev}:queue"]), 5);
    assert!(eventually(Duration::from_secs(4), || all_reaped(&mut con)));
    let meta = ["abandoned", "holds_expired", "inventory"].map(|f| meta_count(&mut con, "ev", f));
    assert_eq!(meta, [5, 1, 3]);
}

#[test]
fn a_promoted_replica_reaps_what_the_old_master_left() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    timed_work(&mut m);
    wait_replicas(&mut m, 1);
    drop(m);
    drop(master);
    let mut r = replica.client();
    // Still a replica: it never writes, whatever is due.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(redis_query::<i64>(&mut r, &["XLEN", "tq:{ev}:queue"]), 5);
    let _: () = redis_query(&mut r, &["REPLICAOF", "NO", "ONE"]);
    assert!(eventually(Duration::from_secs(3), || all_reaped(&mut r)));
    let stats = tq!(&mut r, "TQ.STATS", "ev").unwrap();
    assert_eq!(
        (
            int_field(&stats, "abandoned"),
            int_field(&stats, "holds_expired")
        ),
        (5, 1)
    );
}

/// The reaper plans each event's next deadline; lowering the module-wide
/// default heartbeat must bring it forward for events that use the default.
#[test]
fn a_lower_default_heartbeat_takes_effect_in_storage_without_a_command() {
    let server = Server::start();
    let mut con = server.client();
    for i in 0..5 {
        tq!(
            &mut con,
            "TQ.ENQUEUE",
            "ev",
            format!("u{i}"),
            format!("t{i}")
        )
        .unwrap();
    }
    // Let the reaper look once and plan for the 300 s default.
    std::thread::sleep(Duration::from_millis(300));
    let _: () = redis_query(&mut con, &["CONFIG", "SET", "tq.heartbeat", "1"]);
    assert!(eventually(Duration::from_secs(4), || {
        redis_query::<i64>(&mut con, &["XLEN", "tq:{ev}:queue"]) == 0
    }));
    assert_eq!(meta_count(&mut con, "ev", "abandoned"), 5);
}

/// A slot migration moves keys with RESTORE (here done by hand, as MIGRATE
/// does): the reaper learns of the event from that keyspace event alone.
#[test]
fn events_restored_from_another_server_are_reaped_without_a_command() {
    let (source, target) = (Server::start(), Server::start());
    let (mut from, mut to) = (source.client(), target.client());
    timed_work(&mut from);
    let keys: Vec<String> = redis_query(&mut from, &["KEYS", "tq:{ev}:*"]);
    assert!(keys.len() >= 6, "{keys:?}");
    // One snapshot: the source's own reaper must not act between two keys.
    let mut snapshot = redis::pipe();
    snapshot.atomic();
    for key in &keys {
        snapshot.cmd("DUMP").arg(key).cmd("PTTL").arg(key);
    }
    let dumped: Vec<(Vec<u8>, i64)> = snapshot.query(&mut from).unwrap();
    for (key, (payload, ttl)) in keys.iter().zip(dumped) {
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(ttl.max(0))
            .arg(payload)
            .query(&mut to)
            .unwrap();
    }
    assert_eq!(redis_query::<i64>(&mut to, &["XLEN", "tq:{ev}:queue"]), 5);
    assert!(eventually(Duration::from_secs(4), || all_reaped(&mut to)));
    let meta = ["abandoned", "holds_expired", "inventory"].map(|f| meta_count(&mut to, "ev", f));
    assert_eq!(meta, [5, 1, 3]);
}
