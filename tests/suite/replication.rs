//! Replication: every TQ write reaches a replica (and the AOF) as one
//! internal `TQ.APPLY` record, which the replica applies with the same rules,
//! so master and replica hold the same data (DEBUG DIGEST, and the digests of
//! each event's two keys `tq:{E}:queue` and `tq:{E}:state`) after every write
//! command and after the master's background work; a command that changes
//! nothing replicates nothing; the stream's keyspace events fire on both;
//! replicas refuse TQ writes (READONLY) and serve TQ reads; a normal client
//! cannot send `TQ.APPLY`.

use crate::common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Runs every TQ write command (and a few failing ones) on `con`, calling
/// `after(label)` after each command of event `rep` and after every batch of
/// event `big`.
fn write_workload(con: &mut redis::Connection, after: &mut dyn FnMut(&str)) {
    // A small admission bucket.
    assert_eq!(
        tq!(con, "TQ.CONFIG", "rep", "RATE", 1, "BURST", 2).unwrap(),
        Value::Okay
    );
    after("CONFIG RATE BURST");
    let first = tq!(
        con,
        "TQ.ENQUEUE",
        "rep",
        "u1",
        "t1",
        "DEDUPE",
        "d1",
        "TTL",
        60
    )
    .unwrap();
    let first_id = text_field(&first, "id");
    assert_eq!(int_field(&first, "position"), 1);
    after("ENQUEUE DEDUPE TTL");
    tq!(con, "TQ.ENQUEUE", "rep", "u2", "t2", "DEDUPE", "d2").unwrap();
    after("ENQUEUE DEDUPE");
    let third = tq!(con, "TQ.ENQUEUE", "rep", "u1", "t3").unwrap();
    assert_eq!(int_field(&third, "user_position"), 2);
    after("ENQUEUE");
    let dup = tq!(
        con,
        "TQ.ENQUEUE",
        "rep",
        "u9",
        "t-other",
        "DEDUPE",
        "d1",
        "TTL",
        60
    );
    assert_eq!(error_text(&dup), format!("DUPLICATE {first_id}"));
    after("ENQUEUE DUPLICATE");
    for i in 4..=8 {
        tq!(
            con,
            "TQ.ENQUEUE",
            "rep",
            format!("u{}", i % 3),
            format!("t{i}")
        )
        .unwrap();
        after("ENQUEUE");
    }
    let pos = tq!(con, "TQ.POSITION", "rep", "t2").unwrap();
    assert_eq!(int_field(&pos, "position"), 2);
    after("POSITION");
    assert_eq!(
        int_field(&tq!(con, "TQ.ENTER", "rep", "t1").unwrap(), "position_was"),
        1
    );
    after("ENTER");
    assert_eq!(
        int_field(&tq!(con, "TQ.ENTER", "rep", "t2").unwrap(), "position_was"),
        1
    );
    after("ENTER");
    // The bucket (burst 2) is empty now: t4 at position 2 cannot enter.
    assert_eq!(code(&tq!(con, "TQ.ENTER", "rep", "t4")), "NOT_READY");
    after("ENTER NOT_READY");
    assert_eq!(int(&tq!(con, "TQ.LEAVE", "rep", "t5").unwrap()), 1);
    after("LEAVE");
    assert_eq!(int(&tq!(con, "TQ.LEAVE", "rep", "t5").unwrap()), 0);
    after("LEAVE of no entry");
    // Entries older than 1 s go; newer ones stay.
    std::thread::sleep(Duration::from_millis(1100));
    tq!(con, "TQ.ENQUEUE", "rep", "u1", "t-new", "DEDUPE", "d-new").unwrap();
    after("ENQUEUE");
    let trimmed = int(&tq!(con, "TQ.TRIM", "rep", "MAXAGE", 1).unwrap());
    assert_eq!(trimmed, 5, "t3, t4, t6, t7, t8 joined more than 1 s ago");
    after("TRIM");
    tq!(con, "TQ.ENQUEUE", "rep", "u2", "t-last").unwrap();
    after("ENQUEUE");

    // Seats.
    assert_eq!(
        int(&tq!(con, "TQ.INVENTORY", "rep", "SET", 10).unwrap()),
        10
    );
    after("INVENTORY SET");
    assert_eq!(int(&tq!(con, "TQ.HOLD", "rep", "A1", "u1").unwrap()), 9);
    after("HOLD");
    assert_eq!(
        int(&tq!(con, "TQ.HOLD", "rep", "A2", "u2", "TTL", 60).unwrap()),
        8
    );
    after("HOLD TTL");
    assert_eq!(int(&tq!(con, "TQ.HOLD", "rep", "A3", "u3").unwrap()), 7);
    after("HOLD");
    assert_eq!(
        code(&tq!(con, "TQ.HOLD", "rep", "A3", "u1")),
        "SEAT_UNAVAILABLE"
    );
    after("HOLD SEAT_UNAVAILABLE");
    assert_eq!(
        code(&tq!(con, "TQ.RELEASE", "rep", "A2", "u1")),
        "NOT_OWNER"
    );
    after("RELEASE NOT_OWNER");
    assert_eq!(int(&tq!(con, "TQ.RELEASE", "rep", "A2", "u2").unwrap()), 8);
    after("RELEASE");
    assert_eq!(
        tq!(con, "TQ.CONFIRM", "rep", "A1", "u1").unwrap(),
        Value::Okay
    );
    after("CONFIRM");
    assert_eq!(int(&tq!(con, "TQ.RELEASE", "rep", "A3").unwrap()), 9);
    after("RELEASE without user");
    assert_eq!(
        int(&tq!(con, "TQ.HOLD", "rep", "B7", "u4", "TTL", 100).unwrap()),
        8
    );
    after("HOLD TTL");
    assert_eq!(
        tq!(
            con,
            "TQ.CONFIG",
            "rep",
            "HEARTBEAT",
            300,
            "HOLD-TTL",
            120,
            "DEDUPE-TTL",
            100
        )
        .unwrap(),
        Value::Okay
    );
    after("CONFIG HEARTBEAT HOLD-TTL DEDUPE-TTL");
    assert_eq!(int(&tq!(con, "TQ.INVENTORY", "rep").unwrap()), 8);
    after("INVENTORY (read)");

    // A second, bigger event.
    tq!(con, "TQ.INVENTORY", "big", "SET", 1000).unwrap();
    for i in 0..300 {
        tq!(
            con,
            "TQ.ENQUEUE",
            "big",
            format!("user-{}", i % 17),
            format!("tok-{i}"),
            "DEDUPE",
            format!("req-{i}")
        )
        .unwrap();
        if i % 3 == 0 {
            tq!(
                con,
                "TQ.HOLD",
                "big",
                format!("S{i}"),
                format!("user-{}", i % 17)
            )
            .unwrap();
        }
        if i % 60 == 59 {
            after("big: ENQUEUE and HOLD batch");
        }
    }
    for i in (0..300).step_by(7) {
        assert_eq!(
            int(&tq!(con, "TQ.LEAVE", "big", format!("tok-{i}")).unwrap()),
            1
        );
    }
    after("big: LEAVE batch");
    for i in (0..300).step_by(9) {
        tq!(
            con,
            "TQ.CONFIRM",
            "big",
            format!("S{i}"),
            format!("user-{}", i % 17)
        )
        .unwrap();
    }
    after("big: CONFIRM batch");
}

/// The stream metadata a promoted replica would carry on with (None when
/// the stream does not exist).
fn stream_info(con: &mut redis::Connection, key: &str) -> Option<BTreeMap<String, String>> {
    let v: Value = redis::cmd("XINFO").arg("STREAM").arg(key).query(con).ok()?;
    let fields = [
        "length",
        "last-generated-id",
        "max-deleted-entry-id",
        "entries-added",
        "recorded-first-entry-id",
    ];
    Some(
        map(&v)
            .into_iter()
            .filter(|(k, _)| fields.contains(&k.as_str()))
            .map(|(k, v)| (k, text(&v)))
            .collect(),
    )
}

/// Asserts master and replica hold the same data: the same key names, each
/// event laid out as its keys, equal `DEBUG DIGEST-VALUE` of the keys of
/// every event in `events`, and equal `DEBUG DIGEST`.
fn assert_same_data(
    master: &mut redis::Connection,
    replica: &mut redis::Connection,
    events: &[&str],
    label: &str,
) {
    let data = |con: &mut redis::Connection| {
        let names: Vec<String> = scan_keys(con, "*")
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        let events: Vec<EventDigests> = events.iter().map(|ev| event_digests(con, ev)).collect();
        (names, events, digest(con))
    };
    assert_replica_matches(master, replica, label, data);
    for ev in events {
        assert_event_layout(master, ev);
        assert_event_layout(replica, ev);
        assert_ne!(
            event_digests(master, ev).state,
            NO_DIGEST,
            "{label}: {ev} has no state"
        );
    }
}

#[test]
fn every_write_command_reaches_the_replica_as_the_same_data() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    let mut m2 = master.client();
    let mut r = replica.client();
    // The state digest of `rep` after each step: it must move with the data,
    // or comparing it would prove nothing.
    let mut seen: Vec<String> = Vec::new();
    let mut steps = 0;
    write_workload(&mut m, &mut |label| {
        let events: &[&str] = if label.starts_with("big") {
            &["rep", "big"]
        } else {
            &["rep"]
        };
        assert_same_data(&mut m2, &mut r, events, label);
        steps += 1;
        seen.push(digest_value(&mut m2, &state_key("rep")));
    });
    seen.sort();
    seen.dedup();
    assert!(
        seen.len() >= 20,
        "the state digest of rep took only {} values over {steps} steps",
        seen.len()
    );
    for ev in ["rep", "big"] {
        let key = queue_key(ev);
        let info = stream_info(&mut m, &key);
        assert!(info.is_some(), "{key} does not exist on the master");
        assert_eq!(info, stream_info(&mut r, &key), "XINFO STREAM {key}");
    }
    // Everything an event holds is in its two keys, on both sides.
    for con in [&mut m, &mut r] {
        let all: Vec<String> = scan_keys(con, "*")
            .iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(
            all,
            [
                "tq:{big}:queue",
                "tq:{big}:state",
                "tq:{rep}:queue",
                "tq:{rep}:state"
            ]
        );
    }
    // A DUPLICATE over a second later (the window of d1 is 60 s) counts,
    // and the count replicates.
    let dup = tq!(&mut m, "TQ.ENQUEUE", "rep", "u1", "t-again", "DEDUPE", "d1");
    assert_eq!(code(&dup), "DUPLICATE");
    assert_same_data(&mut m, &mut r, &["rep", "big"], "after a late DUPLICATE");
    assert_eq!(stat(&mut r, "rep", "duplicates"), 2);
}

#[test]
fn replica_serves_reads_and_refuses_writes() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    write_workload(&mut m, &mut |_| {});
    wait_replicas(&mut m, 1);
    let before = digest(&mut r);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let writes: Vec<Vec<&str>> = vec![
        vec!["TQ.ENQUEUE", "rep", "u1", "tx"],
        vec!["TQ.ENQUEUE", "rep", "u1", "ty", "DEDUPE", "dz", "TTL", "5"],
        vec!["TQ.POSITION", "rep", "t-new"],
        vec!["TQ.ENTER", "rep", "t-new"],
        vec!["TQ.LEAVE", "rep", "t-new"],
        vec!["TQ.TRIM", "rep", "MAXAGE", "1"],
        vec!["TQ.INVENTORY", "rep", "SET", "5"],
        vec!["TQ.HOLD", "rep", "Z1", "u1"],
        vec!["TQ.RELEASE", "rep", "B7"],
        vec!["TQ.CONFIRM", "rep", "B7", "u4"],
        vec!["TQ.CONFIRM", "rep", "B7", "u4", "WITH", "B8"],
        vec!["TQ.HOLD", "rep", "Z1", "u1", "WITH", "Z2"],
        vec!["TQ.EXTEND", "rep", "B7", "u4", "TTL", "60"],
        vec!["TQ.INVENTORY", "rep", "ADD", "5"],
        vec!["TQ.PASS", "rep", "u1"],
        vec!["TQ.PASS", "rep", "u1", "REVOKE"],
        vec!["TQ.CONFIG", "rep", "RATE", "5"],
        vec!["TQ.ENQUEUE", "fresh", "u1", "tx"],
    ];
    for words in &writes {
        let words_b: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let reply = call_args(&mut r, &words_b);
        assert_eq!(code(&reply), "READONLY", "{words:?} on the replica");
    }
    // The internal record is refused too (it is not the master link).
    let apply = tq!(
        &mut r,
        "TQ.APPLY",
        "rep",
        now.as_str(),
        "ENQUEUE",
        "u1",
        "tz"
    );
    assert!(
        apply.is_err(),
        "TQ.APPLY from a client on a replica: {apply:?}"
    );
    assert_eq!(digest(&mut r), before, "refused writes changed the replica");

    // Reads answer the same on both, including (contract v2) TQ.INVENTORY
    // and TQ.CONFIG without options.
    let user_m = tq!(&mut m, "TQ.USER", "rep", "u1").unwrap();
    let user_r = tq!(&mut r, "TQ.USER", "rep", "u1").unwrap();
    assert_eq!(user_m, user_r);
    let tokens: Vec<String> = array(&user_r)
        .iter()
        .map(|e| text_field(e, "token"))
        .collect();
    assert_eq!(tokens, ["t-new"]);
    assert_eq!(stored_stats(&mut m, "rep"), stored_stats(&mut r, "rep"));
    let stats_r = tq!(&mut r, "TQ.STATS", "rep").unwrap();
    assert_eq!(int_field(&stats_r, "waiting"), 2);
    assert_eq!(int_field(&stats_r, "admitted"), 2);
    assert_eq!(int_field(&stats_r, "inventory"), 8);
    assert_eq!(int_field(&stats_r, "held"), 1);
    assert_eq!(int_field(&stats_r, "sold"), 1);
    assert_eq!(int_field(&stats_r, "duplicates"), 1);
    // The v2 counters, where this build has them (issue 15 adds them).
    for (name, expected) in [("trimmed", 5), ("left", 1)] {
        if let Some(n) = opt_int_field(&stats_r, name) {
            assert_eq!(n, expected, "{name}");
        }
    }
    let inventory = tq!(&mut r, "TQ.INVENTORY", "rep");
    assert_eq!(
        inventory.as_ref().map(int).ok(),
        Some(8),
        "TQ.INVENTORY rep on the replica: {inventory:?}"
    );
    let config_r = tq!(&mut r, "TQ.CONFIG", "rep");
    let config_m = tq!(&mut m, "TQ.CONFIG", "rep").unwrap();
    assert_eq!(
        config_r.as_ref().ok(),
        Some(&config_m),
        "TQ.CONFIG rep on the replica"
    );
    assert_eq!(int_field(&config_m, "rate"), 1);
    assert_eq!(int_field(&config_m, "hold_ttl"), 120);
    for seat in ["A1", "A2", "B7", "never"] {
        let sm = tq!(&mut m, "TQ.SEAT", "rep", seat).unwrap();
        let sr = tq!(&mut r, "TQ.SEAT", "rep", seat).unwrap();
        assert_eq!(
            text_field(&sm, "state"),
            text_field(&sr, "state"),
            "seat {seat}"
        );
        assert_eq!(field(&sm, "user"), field(&sr, "user"), "seat {seat}");
    }
    let b7 = tq!(&mut r, "TQ.SEAT", "rep", "B7").unwrap();
    assert_eq!(text_field(&b7, "state"), "held");
    assert!(int_field(&b7, "ttl_ms") > 90_000);
    assert_eq!(
        text_field(&tq!(&mut r, "TQ.SEAT", "rep", "A1").unwrap(), "state"),
        "sold"
    );
    // Reads of an event nobody created answer on the replica too, and
    // create nothing.
    tq!(&mut r, "TQ.STATS", "nobody-made-this").unwrap();
    tq!(&mut r, "TQ.INVENTORY", "nobody-made-this").unwrap();
    tq!(&mut r, "TQ.CONFIG", "nobody-made-this").unwrap();
    // Reads on the replica wrote nothing.
    assert_eq!(digest(&mut r), before);
}

/// Background work (abandonment, hold expiry) runs on the master's timer,
/// with no command, and reaches the replica as the same data.
#[test]
fn background_work_happens_on_the_master_and_is_replicated() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    tq!(&mut m, "TQ.CONFIG", "reap", "HEARTBEAT", 1).unwrap();
    let mut last_join = Instant::now();
    for i in 0..5 {
        last_join = Instant::now();
        tq!(
            &mut m,
            "TQ.ENQUEUE",
            "reap",
            format!("u{i}"),
            format!("t{i}")
        )
        .unwrap();
    }
    // Holds in an event of their own, so that its state changes by their
    // expiry alone.
    tq!(&mut m, "TQ.INVENTORY", "holds", "SET", 5).unwrap();
    let mut last_hold = Instant::now();
    for s in ["s1", "s2", "s3"] {
        last_hold = Instant::now();
        tq!(&mut m, "TQ.HOLD", "holds", s, "u1", "TTL", 1).unwrap();
    }
    // A hold that must survive.
    tq!(&mut m, "TQ.HOLD", "holds", "keep", "u2", "TTL", 300).unwrap();
    let held_digest = digest_value(&mut m, &state_key("holds"));
    assert_same_data(&mut m, &mut r, &["reap", "holds"], "before the timer");
    assert_eq!(xlen(&mut r, "reap"), 5);
    let offset = master_repl_offset(&mut m);

    // No TQ command from here on: only reads of the stored keys.
    let abandoned = eventually(Duration::from_secs(4), || xlen(&mut m, "reap") == 0);
    assert!(abandoned, "abandoned entries still stored after 4 s");
    assert!(
        last_join.elapsed() >= Duration::from_millis(995),
        "entries abandoned {:?} after joining, heartbeat is 1 s",
        last_join.elapsed()
    );
    let expired = eventually(Duration::from_secs(4), || {
        digest_value(&mut m, &state_key("holds")) != held_digest
    });
    assert!(expired, "expired holds still stored after 4 s");
    assert!(
        last_hold.elapsed() >= Duration::from_millis(995),
        "holds expired {:?} after HOLD TTL 1",
        last_hold.elapsed()
    );
    assert!(
        master_repl_offset(&mut m) > offset,
        "the background work replicated nothing"
    );
    assert_same_data(&mut m, &mut r, &["reap", "holds"], "after the timer");
    assert_eq!(xlen(&mut r, "reap"), 0);
    let stats = tq!(&mut r, "TQ.STATS", "reap").unwrap();
    assert_eq!(int_field(&stats, "waiting"), 0);
    assert_eq!(int_field(&stats, "abandoned"), 5);
    let stats = tq!(&mut r, "TQ.STATS", "holds").unwrap();
    assert_eq!(int_field(&stats, "inventory"), 4);
    assert_eq!(int_field(&stats, "held"), 1);
    assert_eq!(int_field(&stats, "holds_expired"), 3);
    let keep = tq!(&mut r, "TQ.SEAT", "holds", "keep").unwrap();
    assert_eq!(text_field(&keep, "state"), "held");
}

/// A mass abandonment: 2,000 of 3,000 fans stop polling and the master's
/// timer removes them all (in as many steps as it likes), with no command;
/// a TRIM then removes the rest in one command. Replica and AOF replay hold
/// the same data, and every index agrees with the queue.
#[test]
fn mass_abandonment_and_trim_reach_the_replica_and_the_aof_as_the_same_data() {
    let (master, replica) =
        Server::start_master_and_replica(&["--appendonly", "yes", "--appendfsync", "always"], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    const JOINED: usize = 3000;
    const USERS: usize = 40;
    // Heartbeat 6 s: recorded to 0.6 s, so a poll 2 s after joining counts.
    tq!(&mut m, "TQ.CONFIG", "mass", "HEARTBEAT", 6).unwrap();
    let mut joins = redis::pipe();
    for i in 0..JOINED {
        joins
            .cmd("TQ.ENQUEUE")
            .arg("mass")
            .arg(format!("u{}", i % USERS))
            .arg(format!("t{i}"));
    }
    let sent = Instant::now();
    joins.query::<()>(&mut m).unwrap();
    std::thread::sleep(Duration::from_millis(2000));
    // Beyond the first 1000, every third fan still polls.
    let alive: Vec<usize> = (1000..JOINED).filter(|i| i % 3 == 0).collect();
    let mut polls = redis::pipe();
    for i in &alive {
        polls.cmd("TQ.POSITION").arg("mass").arg(format!("t{i}"));
    }
    polls.query::<()>(&mut m).unwrap();
    let polled = Instant::now();
    let waiting = alive.len() as i64;
    // Everyone else lapses 6.0-6.6 s after joining; the pollers not before
    // 6 s after their poll.
    let done = eventually(Duration::from_secs(10), || xlen(&mut m, "mass") <= waiting);
    assert!(done, "{} still waiting", xlen(&mut m, "mass"));
    assert!(
        sent.elapsed() >= Duration::from_millis(5990),
        "fans abandoned {:?} after joining, heartbeat 6 s",
        sent.elapsed()
    );
    // Keep the pollers from lapsing while the checks below run.
    tq!(&mut m, "TQ.CONFIG", "mass", "HEARTBEAT", 300).unwrap();
    assert!(
        polled.elapsed() < Duration::from_millis(5900),
        "the machine is too slow for this test's timing: {:?} since the polls",
        polled.elapsed()
    );
    assert_eq!(xlen(&mut m, "mass"), waiting, "the pollers were abandoned");
    assert_eq!(stat(&mut m, "mass", "waiting"), waiting);
    assert_eq!(
        stat(&mut m, "mass", "abandoned"),
        (JOINED - alive.len()) as i64
    );
    // Every index agrees with the queue: per user, and positions.
    let per_user: usize = (0..USERS)
        .map(|u| array(&tq!(&mut m, "TQ.USER", "mass", format!("u{u}")).unwrap()).len())
        .sum();
    assert_eq!(per_user as i64, waiting, "per-user entries");
    for (k, i) in alive.iter().enumerate().step_by(97) {
        let p = tq!(&mut m, "TQ.POSITION", "mass", format!("t{i}")).unwrap();
        assert_eq!(int_field(&p, "position"), k as i64 + 1, "t{i}");
    }
    for gone in ["t0", "t1001"] {
        assert_eq!(
            code(&tq!(&mut m, "TQ.POSITION", "mass", gone)),
            "NOT_QUEUED"
        );
    }
    assert_same_data(&mut m, &mut r, &["mass"], "after the mass abandonment");

    // Everyone left joined over 6 s ago: one TRIM removes the whole queue.
    assert_eq!(
        int(&tq!(&mut m, "TQ.TRIM", "mass", "MAXAGE", 1).unwrap()),
        waiting
    );
    assert_eq!(xlen(&mut m, "mass"), 0);
    assert_event_layout(&mut m, "mass");
    assert_same_data(&mut m, &mut r, &["mass"], "after TRIM");

    // The timer's work went to the AOF as TQ.APPLY records too, and the AOF
    // replays to the same data.
    let advances = aof_commands(&master)
        .iter()
        .filter(|c| apply_record(c).is_some_and(|r| r.verb == "ADVANCE"))
        .count();
    assert!(advances > 0, "no ADVANCE record in the AOF");
    let before = (
        digest(&mut m),
        event_digests(&mut m, "mass"),
        stored_stats(&mut m, "mass"),
    );
    redis_query::<String>(&mut m, &["DEBUG", "LOADAOF"]);
    let after = (
        digest(&mut m),
        event_digests(&mut m, "mass"),
        stored_stats(&mut m, "mass"),
    );
    assert_eq!(after, before, "DEBUG LOADAOF changed the data");
}

/// The records on the replication stream and in the AOF are `TQ.APPLY
/// <event> <now_ms> <VERB> <args...>`, one per write command that changed
/// something; a command that changes nothing puts nothing on the
/// replication stream (`master_repl_offset` does not move); a normal client
/// cannot send `TQ.APPLY`.
#[test]
fn one_apply_record_per_change_and_nothing_for_no_change() {
    let (master, replica) = Server::start_master_and_replica(
        // No replication PINGs moving the offset while we watch it.
        // appendfsync always: each record is in the file before the reply.
        &[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--repl-ping-replica-period",
            "3600",
        ],
        &["--appendonly", "yes", "--appendfsync", "always"],
    );
    let mut m = master.client();
    let mut r = replica.client();
    let ok = |con: &mut redis::Connection, words: &[&str]| {
        let w: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        call_args(con, &w).unwrap_or_else(|e| panic!("{words:?}: {e}"))
    };
    // Changing writes of event `quiet`, by verb.
    // (A CONFIG to the defaults would change nothing, and store nothing.)
    ok(&mut m, &["TQ.CONFIG", "quiet", "HEARTBEAT", "200"]);
    ok(&mut m, &["TQ.ENQUEUE", "quiet", "u1", "a"]);
    let joined_b = Instant::now();
    ok(&mut m, &["TQ.ENQUEUE", "quiet", "u1", "b", "DEDUPE", "db"]);
    ok(&mut m, &["TQ.ENQUEUE", "quiet", "u3", "x"]);
    ok(&mut m, &["TQ.INVENTORY", "quiet", "SET", "5"]);
    ok(&mut m, &["TQ.HOLD", "quiet", "s1", "u1"]);
    ok(&mut m, &["TQ.CONFIG", "quiet", "RATE", "1", "BURST", "1"]);
    ok(&mut m, &["TQ.ENTER", "quiet", "a"]);
    wait_replicas(&mut m, 1);

    // Commands that change nothing stored: the offset stays where it is.
    let offset = master_repl_offset(&mut m);
    let digests = (digest(&mut m), event_digests(&mut m, "quiet"));
    let no_change: Vec<Vec<&str>> = vec![
        vec!["TQ.POSITION", "quiet", "b"], // within heartbeat/10 (20 s) of its join
        vec!["TQ.POSITION", "quiet", "b"],
        vec!["TQ.POSITION", "quiet", "nobody"], // NOT_QUEUED
        vec!["TQ.LEAVE", "quiet", "nobody"],    // 0
        vec!["TQ.ENTER", "quiet", "nobody"],    // NOT_QUEUED
        vec!["TQ.ENTER", "quiet", "x"],         // NOT_READY: position 2, burst 1
        vec!["TQ.USER", "quiet", "u1"],
        vec!["TQ.SEAT", "quiet", "s1"],
        vec!["TQ.SEAT", "quiet", "never"],
        vec!["TQ.STATS", "quiet"],
        vec!["TQ.INVENTORY", "quiet"],
        vec!["TQ.CONFIG", "quiet"],
        vec!["TQ.TRIM", "quiet", "MAXAGE", "3600"], // nothing that old
        vec!["TQ.HOLD", "quiet", "s1", "u2"],       // SEAT_UNAVAILABLE
        vec!["TQ.RELEASE", "quiet", "never"],       // NOT_HELD
        vec!["TQ.RELEASE", "quiet", "s1", "u2"],    // NOT_OWNER
        vec!["TQ.CONFIRM", "quiet", "s1", "u2"],    // NOT_OWNER
        vec!["TQ.HOLD", "quiet", "s1"],             // arity
        vec!["TQ.ENQUEUE", "quiet", "u1", "c", "TTL", "0"], // bad TTL
        vec!["TQ.CONFIG", "quiet", "RATE", "1"],    // the value it has
        vec!["TQ.CONFIG", "unmade", "RATE", "50"],  // the default, on no event
        vec!["TQ.POSITION", "unmade", "x"],         // an event nobody made
        vec!["TQ.LEAVE", "unmade", "x"],
        vec!["TQ.STATS", "unmade"],
        vec!["TQ.SEAT", "unmade", "s1"],
        vec!["TQ.USER", "unmade", "u1"],
    ];
    for words in &no_change {
        let w: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let _ = call_args(&mut m, &w);
        assert_eq!(
            master_repl_offset(&mut m),
            offset,
            "{words:?} changed nothing but replicated"
        );
    }
    assert!(
        joined_b.elapsed() < Duration::from_secs(15),
        "too slow: b's poll window (20 s) may have passed"
    );
    assert_eq!(
        (digest(&mut m), event_digests(&mut m, "quiet")),
        digests,
        "a command that should change nothing changed the data"
    );
    assert!(
        event_keys(&mut m, "unmade").is_empty(),
        "reads made an event"
    );

    // TQ.APPLY from a normal client: refused, nothing changed or replicated.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    let forged: Vec<Vec<&str>> = vec![
        vec!["TQ.APPLY", "quiet", &now, "ENQUEUE", "u9", "t9"],
        vec!["TQ.APPLY", "quiet", &now, "INVENTORY", "SET", "100"],
        vec!["TQ.APPLY", "quiet", &now, "ADVANCE"],
        vec!["TQ.APPLY", "forged", &now, "ENQUEUE", "u9", "t9"],
        vec!["TQ.APPLY", "quiet"],
    ];
    for words in &forged {
        let w: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let reply = call_args(&mut m, &w);
        assert_eq!(code(&reply), "ERR", "{words:?} from a client: {reply:?}");
    }
    let script: redis::RedisResult<Value> = redis::cmd("EVAL")
        .arg("return redis.call('TQ.APPLY', 'quiet', ARGV[1], 'ENQUEUE', 'u9', 't9')")
        .arg(0)
        .arg(&now)
        .query(&mut m);
    assert!(script.is_err(), "TQ.APPLY from a script: {script:?}");
    assert_eq!(
        master_repl_offset(&mut m),
        offset,
        "a refused TQ.APPLY replicated"
    );
    assert_eq!(
        (digest(&mut m), event_digests(&mut m, "quiet")),
        digests,
        "a refused TQ.APPLY changed the data"
    );
    assert!(event_keys(&mut m, "forged").is_empty());

    // A change moves the offset.
    ok(&mut m, &["TQ.ENQUEUE", "quiet", "u2", "c"]);
    let after_enqueue = master_repl_offset(&mut m);
    assert!(after_enqueue > offset, "an ENQUEUE replicated nothing");
    // A poll past heartbeat/10 since the last recorded beat is recorded:
    // heartbeat 5 s records to 0.5 s, and b joined over 0.8 s ago.
    ok(&mut m, &["TQ.CONFIG", "quiet", "HEARTBEAT", "5"]);
    let after_config = master_repl_offset(&mut m);
    assert!(after_config > after_enqueue, "a CONFIG replicated nothing");
    let wait = Duration::from_millis(800).saturating_sub(joined_b.elapsed());
    std::thread::sleep(wait);
    ok(&mut m, &["TQ.POSITION", "quiet", "b"]);
    let after_poll = master_repl_offset(&mut m);
    assert!(
        after_poll > after_config,
        "a poll {:?} after the join, heartbeat 5 s, was not recorded",
        joined_b.elapsed()
    );
    // ... and the next one, at once, is not.
    ok(&mut m, &["TQ.POSITION", "quiet", "b"]);
    assert_eq!(master_repl_offset(&mut m), after_poll);
    assert_same_data(&mut m, &mut r, &["quiet"], "after the writes");

    // The AOF holds one TQ.APPLY record per changing write, nothing else
    // (besides SELECT and MULTI/EXEC framing).
    let is_frame = |c: &Vec<Vec<u8>>| {
        ["SELECT", "MULTI", "EXEC"]
            .iter()
            .any(|f| c[0].eq_ignore_ascii_case(f.as_bytes()))
    };
    let records: Vec<Vec<Vec<u8>>> = aof_commands(&master)
        .into_iter()
        .filter(|c| !is_frame(c))
        .collect();
    let wall_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut verbs: BTreeMap<String, usize> = BTreeMap::new();
    for c in &records {
        let record = apply_record(c).unwrap_or_else(|| {
            panic!(
                "the AOF holds something else than a TQ.APPLY record: {:?}",
                c.iter()
                    .map(|w| String::from_utf8_lossy(w))
                    .collect::<Vec<_>>()
            )
        });
        assert_eq!(record.event, "quiet", "{record:?}");
        assert!(
            (wall_ms - record.now_ms).abs() < 120_000,
            "now_ms is not near the wall clock {wall_ms}: {record:?}"
        );
        *verbs.entry(record.verb).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("CONFIG", 3),
        ("ENQUEUE", 4),
        ("ENTER", 1),
        ("HOLD", 1),
        ("INVENTORY", 1),
        ("POSITION", 1),
    ]
    .into_iter()
    .map(|(v, n)| (v.to_string(), n))
    .collect();
    assert_eq!(verbs, expected, "TQ.APPLY records in the AOF, by verb");
    // The replica keeps the same records in its own AOF, so that it can
    // restart from it.
    let replica_records = || -> Vec<Vec<Vec<u8>>> {
        aof_commands(&replica)
            .into_iter()
            .filter(|c| !is_frame(c))
            .collect()
    };
    eventually(Duration::from_secs(5), || replica_records() == records);
    assert_eq!(
        replica_records(),
        records,
        "the replica's AOF differs from the master's records"
    );
    let before = (digest(&mut r), event_digests(&mut r, "quiet"));
    redis_query::<String>(&mut r, &["DEBUG", "LOADAOF"]);
    assert_eq!(
        (digest(&mut r), event_digests(&mut r, "quiet")),
        before,
        "the replica's AOF replays to other data"
    );
}

/// The keyspace events (event, key) a server fires on `tq:` keys from now
/// until it sets the key `sentinel`, collected on a thread.
fn collect_key_events(
    server: &Server,
    sentinel: &'static str,
) -> std::thread::JoinHandle<Vec<(String, String)>> {
    let mut con = server.client();
    let ready = std::sync::Arc::new(std::sync::Barrier::new(2));
    let subscribed = ready.clone();
    let collector = std::thread::spawn(move || {
        let mut pubsub = con.as_pubsub();
        pubsub.psubscribe("__keyevent@0__:*").unwrap();
        pubsub
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        subscribed.wait();
        let mut events = Vec::new();
        loop {
            let message = pubsub.get_message().expect("keyspace events stopped");
            let channel = message.get_channel_name().to_string();
            let key: String = message.get_payload().unwrap();
            if key == sentinel {
                return events;
            }
            if key.starts_with("tq:") {
                let event = channel.trim_start_matches("__keyevent@0__:").to_string();
                events.push((event, key));
            }
        }
    });
    ready.wait();
    collector
}

/// The keyspace events of the stream fire on master and replica alike: the
/// replica, applying the TQ.APPLY records, fires the very same ones (as a
/// multiset: event and key), for commands and for the master's timer.
#[test]
fn keyspace_events_fire_on_master_and_replica_alike() {
    let events = ["--notify-keyspace-events", "KEA"];
    let (master, replica) = Server::start_master_and_replica(&events, &events);
    let mut m = master.client();
    wait_replicas(&mut m, 1);
    let on_master = collect_key_events(&master, "sentinel");
    let on_replica = collect_key_events(&replica, "sentinel");
    write_workload(&mut m, &mut |_| {});
    // A batch removal by the timer: every fan of an event abandoned at once.
    tq!(&mut m, "TQ.CONFIG", "gone", "HEARTBEAT", 1).unwrap();
    for i in 0..40 {
        tq!(
            &mut m,
            "TQ.ENQUEUE",
            "gone",
            format!("u{}", i % 3),
            format!("g{i}")
        )
        .unwrap();
    }
    assert!(
        eventually(Duration::from_secs(4), || xlen(&mut m, "gone") == 0),
        "the fans of `gone` were not abandoned"
    );
    redis_query::<String>(&mut m, &["SET", "sentinel", "1"]);
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let (fired, applied) = (
        sorted(on_master.join().unwrap()),
        sorted(on_replica.join().unwrap()),
    );
    let missing = multiset_minus(&applied, &fired);
    let extra = multiset_minus(&fired, &applied);
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the replica fired, the master did not: {missing:?}; the master fired, the replica did not: {extra:?}"
    );
    for event in ["xadd", "xdel", "xtrim"] {
        assert!(
            fired
                .iter()
                .any(|(e, k)| e == event && k.ends_with(":queue")),
            "the workload fired no '{event}' on a queue"
        );
    }
    for key in ["tq:{gone}:queue", "tq:{big}:queue", "tq:{rep}:queue"] {
        let adds = fired
            .iter()
            .filter(|(e, k)| e == "xadd" && k == key)
            .count();
        let expected = match key {
            "tq:{gone}:queue" => 40,
            "tq:{big}:queue" => 300,
            _ => 10,
        };
        assert_eq!(adds, expected, "xadd events on {key}");
    }
    let gone_removals = fired
        .iter()
        .filter(|(e, k)| (e == "xdel" || e == "xtrim") && k == "tq:{gone}:queue")
        .count();
    assert!(gone_removals > 0, "the timer's removal fired no event");
}

/// The items of sorted `a` left after taking out one for each in sorted `b`.
fn multiset_minus<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut left = Vec::new();
    let mut j = 0;
    for x in a {
        while j < b.len() && b[j] < *x {
            j += 1;
        }
        if j < b.len() && b[j] == *x {
            j += 1;
        } else {
            left.push(x.clone());
        }
    }
    left
}
