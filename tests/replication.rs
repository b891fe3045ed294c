//! Replication: every TQ write reaches a replica as its effects, so master
//! and replica hold the same data (DEBUG DIGEST, key by key), including
//! what the background reaper removes; replicas refuse TQ writes and serve
//! TQ reads; a replica without the module can still read everything.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Runs every TQ write command (and a few failing ones) on `con`.
fn write_workload(con: &mut redis::Connection) {
    // A small admission bucket.
    assert_eq!(
        tq!(con, "TQ.CONFIG", "rep", "RATE", 1, "BURST", 2).unwrap(),
        Value::Okay
    );
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
    tq!(con, "TQ.ENQUEUE", "rep", "u2", "t2", "DEDUPE", "d2").unwrap();
    let third = tq!(con, "TQ.ENQUEUE", "rep", "u1", "t3").unwrap();
    assert_eq!(int_field(&third, "user_position"), 2);
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
    for i in 4..=8 {
        tq!(
            con,
            "TQ.ENQUEUE",
            "rep",
            format!("u{}", i % 3),
            format!("t{i}")
        )
        .unwrap();
    }
    let pos = tq!(con, "TQ.POSITION", "rep", "t2").unwrap();
    assert_eq!(int_field(&pos, "position"), 2);
    assert_eq!(
        int_field(&tq!(con, "TQ.ENTER", "rep", "t1").unwrap(), "position_was"),
        1
    );
    assert_eq!(
        int_field(&tq!(con, "TQ.ENTER", "rep", "t2").unwrap(), "position_was"),
        1
    );
    // The bucket (burst 2) is empty now: t4 at position 2 cannot enter.
    assert_eq!(code(&tq!(con, "TQ.ENTER", "rep", "t4")), "NOT_READY");
    assert_eq!(int(&tq!(con, "TQ.LEAVE", "rep", "t5").unwrap()), 1);
    assert_eq!(int(&tq!(con, "TQ.LEAVE", "rep", "t5").unwrap()), 0);
    // Entries older than 1 s go; newer ones stay.
    std::thread::sleep(Duration::from_millis(1100));
    tq!(con, "TQ.ENQUEUE", "rep", "u1", "t-new", "DEDUPE", "d-new").unwrap();
    let trimmed = int(&tq!(con, "TQ.TRIM", "rep", "MAXAGE", 1).unwrap());
    assert_eq!(trimmed, 5, "t3, t4, t6, t7, t8 joined more than 1 s ago");
    tq!(con, "TQ.ENQUEUE", "rep", "u2", "t-last").unwrap();

    // Seats.
    assert_eq!(
        int(&tq!(con, "TQ.INVENTORY", "rep", "SET", 10).unwrap()),
        10
    );
    assert_eq!(int(&tq!(con, "TQ.HOLD", "rep", "A1", "u1").unwrap()), 9);
    assert_eq!(
        int(&tq!(con, "TQ.HOLD", "rep", "A2", "u2", "TTL", 60).unwrap()),
        8
    );
    assert_eq!(int(&tq!(con, "TQ.HOLD", "rep", "A3", "u3").unwrap()), 7);
    assert_eq!(
        code(&tq!(con, "TQ.HOLD", "rep", "A3", "u1")),
        "SEAT_UNAVAILABLE"
    );
    assert_eq!(
        code(&tq!(con, "TQ.RELEASE", "rep", "A2", "u1")),
        "NOT_OWNER"
    );
    assert_eq!(int(&tq!(con, "TQ.RELEASE", "rep", "A2", "u2").unwrap()), 8);
    assert_eq!(
        tq!(con, "TQ.CONFIRM", "rep", "A1", "u1").unwrap(),
        Value::Okay
    );
    assert_eq!(int(&tq!(con, "TQ.RELEASE", "rep", "A3").unwrap()), 9);
    assert_eq!(
        int(&tq!(con, "TQ.HOLD", "rep", "B7", "u4", "TTL", 100).unwrap()),
        8
    );
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
    assert_eq!(int(&tq!(con, "TQ.INVENTORY", "rep").unwrap()), 8);

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
    }
    for i in (0..300).step_by(7) {
        assert_eq!(
            int(&tq!(con, "TQ.LEAVE", "big", format!("tok-{i}")).unwrap()),
            1
        );
    }
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
}

/// The stream metadata a promoted replica would carry on with. Not
/// compared: `max-deleted-entry-id` and `recorded-first-entry-id`, which
/// the module API's stream deletion does not maintain on the master while
/// the replica's XDEL does (see `delete_from_queue` in src/glue/store.rs);
/// neither affects the entries, the digest or any TQ command.
fn stream_info(con: &mut redis::Connection, key: &str) -> BTreeMap<String, String> {
    let v: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query(con)
        .unwrap();
    map(&v)
        .into_iter()
        .filter(|(k, _)| ["length", "last-generated-id", "entries-added"].contains(&k.as_str()))
        .map(|(k, v)| (k, text(&v)))
        .collect()
}

/// Asserts master and replica hold the same data, dataset and key by key.
fn assert_same_data(master: &mut redis::Connection, replica: &mut redis::Connection) {
    wait_replicas(master, 1);
    let (m, r) = (key_digests(master, "tq:*"), key_digests(replica, "tq:*"));
    assert!(!m.is_empty());
    let names = |d: &BTreeMap<Vec<u8>, String>| {
        d.keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&m), names(&r), "same key names");
    for (key, digest) in &m {
        assert_eq!(
            Some(digest),
            r.get(key),
            "DEBUG DIGEST-VALUE {} differs",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(digest(master), digest(replica), "DEBUG DIGEST differs");
}

#[test]
fn every_write_command_reaches_the_replica_as_the_same_data() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    write_workload(&mut m);
    assert_same_data(&mut m, &mut r);
    // Stream metadata too (the id a promoted replica would generate next).
    for key in ["tq:{rep}:queue", "tq:{big}:queue"] {
        assert_eq!(
            stream_info(&mut m, key),
            stream_info(&mut r, key),
            "XINFO STREAM {key}"
        );
    }
    // The keys a TQ command needs are all there, with the expected content.
    let keys = scan_keys(&mut r, "tq:{rep}:*");
    for k in ["queue", "order", "beat", "meta", "seats", "holds", "admits"] {
        let name = format!("tq:{{rep}}:{k}").into_bytes();
        assert!(keys.contains(&name), "replica lacks tq:{{rep}}:{k}");
    }
    assert!(keys.contains(&b"tq:{rep}:dedupe:d-new".to_vec()));
    let ttl: i64 = redis_query(&mut r, &["PTTL", "tq:{rep}:dedupe:d1"]);
    assert!(
        ttl > 50_000 && ttl <= 60_000,
        "dedupe expiry replicated as absolute time: {ttl}"
    );
}

#[test]
fn replica_serves_reads_and_refuses_writes() {
    let (master, replica) = Server::start_master_and_replica(&[], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    write_workload(&mut m);
    wait_replicas(&mut m, 1);
    let before = digest(&mut r);

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
        vec!["TQ.CONFIG", "rep", "RATE", "5"],
    ];
    for words in &writes {
        let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
        let reply = call_args(&mut r, &words);
        assert_eq!(
            code(&reply),
            "READONLY",
            "{:?}",
            String::from_utf8_lossy(&words[0])
        );
    }
    assert_eq!(digest(&mut r), before, "refused writes changed the replica");

    // Reads answer the same on both.
    let user_m = tq!(&mut m, "TQ.USER", "rep", "u1").unwrap();
    let user_r = tq!(&mut r, "TQ.USER", "rep", "u1").unwrap();
    assert_eq!(user_m, user_r);
    let tokens: Vec<String> = array(&user_r)
        .iter()
        .map(|e| text_field(e, "token"))
        .collect();
    assert_eq!(tokens, ["t-new"]);
    let stats_m = tq!(&mut m, "TQ.STATS", "rep").unwrap();
    let stats_r = tq!(&mut r, "TQ.STATS", "rep").unwrap();
    assert_eq!(stats_m, stats_r);
    assert_eq!(int_field(&stats_r, "waiting"), 2);
    assert_eq!(int_field(&stats_r, "admitted"), 2);
    assert_eq!(int_field(&stats_r, "inventory"), 8);
    assert_eq!(int_field(&stats_r, "held"), 1);
    assert_eq!(int_field(&stats_r, "sold"), 1);
    assert_eq!(int_field(&stats_r, "duplicates"), 1);
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
    // Reads on the replica wrote nothing.
    assert_eq!(digest(&mut r), before);
}

#[test]
fn background_reaping_happens_on_the_master_and_is_replicated() {
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
    tq!(&mut m, "TQ.INVENTORY", "reap", "SET", 5).unwrap();
    let mut last_hold = Instant::now();
    for s in ["s1", "s2", "s3"] {
        last_hold = Instant::now();
        tq!(&mut m, "TQ.HOLD", "reap", s, "u1", "TTL", 1).unwrap();
    }
    // A hold that must survive, and a sale.
    tq!(&mut m, "TQ.HOLD", "reap", "keep", "u2", "TTL", 300).unwrap();
    wait_replicas(&mut m, 1);
    assert_eq!(redis_query::<i64>(&mut r, &["XLEN", "tq:{reap}:queue"]), 5);
    assert_eq!(redis_query::<i64>(&mut r, &["ZCARD", "tq:{reap}:holds"]), 4);

    // No TQ command from here on: only plain reads of the stored keys.
    let gone = eventually(Duration::from_secs(4), || {
        redis_query::<i64>(&mut m, &["XLEN", "tq:{reap}:queue"]) == 0
            && redis_query::<i64>(&mut m, &["ZCARD", "tq:{reap}:holds"]) == 1
    });
    assert!(
        gone,
        "abandoned entries / expired holds still stored after 4 s"
    );
    // Not before the last heartbeat / hold was 1 s old.
    assert!(
        last_join.elapsed() >= Duration::from_millis(995),
        "entries reaped {:?} after joining, heartbeat is 1 s",
        last_join.elapsed()
    );
    assert!(
        last_hold.elapsed() >= Duration::from_millis(995),
        "holds expired {:?} after HOLD TTL 1",
        last_hold.elapsed()
    );
    for key in ["tq:{reap}:order", "tq:{reap}:beat"] {
        assert_eq!(
            redis_query::<i64>(&mut m, &["EXISTS", key]),
            0,
            "{key} left behind"
        );
    }
    let users = scan_keys(&mut m, "tq:{reap}:user:*");
    assert!(users.is_empty(), "per-user zsets left behind: {users:?}");
    let seats: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg("tq:{reap}:seats")
        .query(&mut m)
        .unwrap();
    assert_eq!(seats.keys().cloned().collect::<Vec<_>>(), ["keep"]);
    let meta = meta_fields(&mut m, "reap");
    assert_eq!(meta.get("inventory").map(String::as_str), Some("4"));
    assert_eq!(meta.get("abandoned").map(String::as_str), Some("5"));
    assert_eq!(meta.get("holds_expired").map(String::as_str), Some("3"));

    assert_same_data(&mut m, &mut r);
    assert_eq!(redis_query::<i64>(&mut r, &["XLEN", "tq:{reap}:queue"]), 0);
    let stats = tq!(&mut r, "TQ.STATS", "reap").unwrap();
    assert_eq!(int_field(&stats, "waiting"), 0);
    assert_eq!(int_field(&stats, "inventory"), 4);
    assert_eq!(int_field(&stats, "held"), 1);
    assert_eq!(int_field(&stats, "abandoned"), 5);
    assert_eq!(int_field(&stats, "holds_expired"), 3);
}

/// A mass abandonment removes a run of entries at the queue's front and
/// others scattered behind it, in one command; a TRIM then removes the
/// rest. Both replicate in batches (XTRIM MINID for the front run, one
/// XDEL / ZREM / HDEL per key for the others) and must leave replica and
/// AOF replay with the same data, and every index agreeing with the queue.
#[test]
fn mass_abandonment_and_trim_reach_the_replica_and_the_aof_as_the_same_data() {
    let (master, replica) = Server::start_master_and_replica(&["--appendonly", "yes"], &[]);
    let mut m = master.client();
    let mut r = replica.client();
    const JOINED: usize = 3000;
    tq!(&mut m, "TQ.CONFIG", "mass", "HEARTBEAT", 300).unwrap();
    let mut joins = redis::pipe();
    for i in 0..JOINED {
        joins
            .cmd("TQ.ENQUEUE")
            .arg("mass")
            .arg(format!("u{}", i % 40))
            .arg(format!("t{i}"));
    }
    joins.query::<()>(&mut m).unwrap();
    std::thread::sleep(Duration::from_millis(2200));
    // Beyond the first 1000, every third fan still polls.
    let alive: Vec<usize> = (1000..JOINED).filter(|i| i % 3 == 0).collect();
    let mut polls = redis::pipe();
    for i in &alive {
        polls.cmd("TQ.POSITION").arg("mass").arg(format!("t{i}"));
    }
    polls.query::<()>(&mut m).unwrap();
    // Everyone else's last heartbeat is now over 2 s old. In one
    // transaction, so that the LEAVE (not the reaper) removes them, and the
    // survivors are not abandoned in turn while the checks below run.
    let (_, left, _): (Value, i64, Value) = redis::pipe()
        .atomic()
        .cmd("TQ.CONFIG")
        .arg("mass")
        .arg("HEARTBEAT")
        .arg(2)
        .cmd("TQ.LEAVE")
        .arg("mass")
        .arg("nobody")
        .cmd("TQ.CONFIG")
        .arg("mass")
        .arg("HEARTBEAT")
        .arg(300)
        .query(&mut m)
        .unwrap();
    assert_eq!(left, 0);

    let waiting = alive.len() as i64;
    assert_eq!(
        redis_query::<i64>(&mut m, &["XLEN", "tq:{mass}:queue"]),
        waiting
    );
    for key in ["tq:{mass}:order", "tq:{mass}:beat"] {
        assert_eq!(
            redis_query::<i64>(&mut m, &["ZCARD", key]),
            waiting,
            "{key}"
        );
    }
    assert_eq!(
        redis_query::<i64>(&mut m, &["HLEN", "tq:{mass}:tokens"]),
        waiting
    );
    let per_user: i64 = (0..40)
        .map(|u| redis_query::<i64>(&mut m, &["ZCARD", &format!("tq:{{mass}}:user:u{u}")]))
        .sum();
    assert_eq!(per_user, waiting, "per-user entries");
    assert_eq!(
        meta_count(&mut m, "mass", "abandoned"),
        (JOINED - alive.len()) as i64
    );
    // The survivors keep their order: the k-th of them stands at k.
    for (k, i) in alive.iter().enumerate().step_by(97) {
        let p = tq!(&mut m, "TQ.POSITION", "mass", format!("t{i}")).unwrap();
        assert_eq!(int_field(&p, "position"), k as i64 + 1, "t{i}");
    }
    assert_eq!(
        code(&tq!(&mut m, "TQ.POSITION", "mass", "t0")),
        "NOT_QUEUED"
    );
    assert_eq!(
        code(&tq!(&mut m, "TQ.POSITION", "mass", "t1001")),
        "NOT_QUEUED"
    );
    assert_same_data(&mut m, &mut r);

    // Everyone left joined over 2 s ago: one TRIM removes the whole queue.
    assert_eq!(
        int(&tq!(&mut m, "TQ.TRIM", "mass", "MAXAGE", 1).unwrap()),
        waiting
    );
    assert_eq!(redis_query::<i64>(&mut m, &["XLEN", "tq:{mass}:queue"]), 0);
    let left = scan_keys(&mut m, "tq:{mass}:*");
    let left: Vec<String> = left
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    assert_eq!(left, ["tq:{mass}:meta", "tq:{mass}:queue"], "keys left");
    assert_same_data(&mut m, &mut r);

    // Both kinds of stream deletion were used, and the AOF replays them
    // to the same data.
    let aof = String::from_utf8_lossy(&aof_bytes(&master)).to_ascii_lowercase();
    assert!(aof.contains("xtrim"), "no front run was trimmed");
    assert!(aof.contains("xdel"), "no scattered entry was deleted");
    let before = key_digests(&mut m, "*");
    redis_query::<String>(&mut m, &["DEBUG", "LOADAOF"]);
    assert_eq!(
        key_digests(&mut m, "*"),
        before,
        "DEBUG LOADAOF changed the data"
    );
}

/// The keyspace events (event, key) a server fires from now until it sets
/// the key `sentinel`, collected on a thread.
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
            let event = channel.trim_start_matches("__keyevent@0__:").to_string();
            events.push((event, key));
        }
    });
    ready.wait();
    collector
}

/// A TQ command fires the keyspace events of the plain commands it
/// replicates, no more and no fewer: the replica, which runs those
/// commands, fires the very same ones (as a multiset: event and key).
#[test]
fn every_write_fires_the_keyspace_events_of_its_replicated_commands() {
    let events = ["--notify-keyspace-events", "KEA"];
    let (master, replica) = Server::start_master_and_replica(&events, &events);
    let mut m = master.client();
    wait_replicas(&mut m, 1);
    let on_master = collect_key_events(&master, "sentinel");
    let on_replica = collect_key_events(&replica, "sentinel");
    write_workload(&mut m);
    // A batch removal too: every fan of an event abandoned at once.
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
    std::thread::sleep(Duration::from_millis(1100));
    tq!(&mut m, "TQ.CONFIG", "gone", "HEARTBEAT", 1).unwrap();
    assert_eq!(int(&tq!(&mut m, "TQ.LEAVE", "gone", "nobody").unwrap()), 0);
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
    for event in [
        "xadd", "xdel", "xtrim", "zadd", "zrem", "hset", "hdel", "set", "expire", "del",
    ] {
        assert!(
            fired.iter().any(|(e, _)| e == event),
            "the workload fired no '{event}'"
        );
    }
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

fn hash(con: &mut redis::Connection, key: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    redis::cmd("HGETALL").arg(key).query(con).unwrap()
}

#[test]
fn replica_without_the_module_reads_consistent_data() {
    let master = Server::start_with(&["--repl-diskless-sync-delay", "0"]);
    let mut m = master.client();
    // Some data before the replica attaches (full sync by RDB) ...
    tq!(&mut m, "TQ.INVENTORY", "plain", "SET", 50).unwrap();
    for i in 0..40 {
        tq!(
            &mut m,
            "TQ.ENQUEUE",
            "plain",
            format!("u{}", i % 4),
            format!("t{i}"),
            "DEDUPE",
            format!("d{i}")
        )
        .unwrap();
    }
    tq!(&mut m, "TQ.HOLD", "plain", "P1", "u1").unwrap();
    let port = master.port.to_string();
    let replica = Server::start_plain(&["--replicaof", "127.0.0.1", &port]);
    replica.wait_link_up();
    let mut r = replica.client();
    let modules: Value = redis::cmd("MODULE").arg("LIST").query(&mut r).unwrap();
    assert_eq!(
        modules,
        Value::Array(vec![]),
        "the plain replica must not have the module"
    );
    // ... and more through the replication stream.
    tq!(&mut m, "TQ.CONFIG", "plain", "RATE", 100, "BURST", 5).unwrap();
    for i in 0..3 {
        tq!(&mut m, "TQ.ENTER", "plain", format!("t{i}")).unwrap();
    }
    tq!(&mut m, "TQ.LEAVE", "plain", "t10").unwrap();
    tq!(&mut m, "TQ.POSITION", "plain", "t20").unwrap();
    tq!(&mut m, "TQ.HOLD", "plain", "P2", "u2", "TTL", 30).unwrap();
    tq!(&mut m, "TQ.HOLD", "plain", "P3", "u3").unwrap();
    tq!(&mut m, "TQ.CONFIRM", "plain", "P1", "u1").unwrap();
    tq!(&mut m, "TQ.RELEASE", "plain", "P3", "u3").unwrap();
    tq!(&mut m, "TQ.ENQUEUE", "plain", "late", "t-late").unwrap();
    wait_replicas(&mut m, 1);

    let xlen_m: i64 = redis_query(&mut m, &["XLEN", "tq:{plain}:queue"]);
    let xlen_r: i64 = redis_query(&mut r, &["XLEN", "tq:{plain}:queue"]);
    assert_eq!(xlen_m, 37);
    assert_eq!(xlen_r, xlen_m);
    let range = |con: &mut redis::Connection| -> Value {
        redis::cmd("XRANGE")
            .arg("tq:{plain}:queue")
            .arg("-")
            .arg("+")
            .query(con)
            .unwrap()
    };
    assert_eq!(range(&mut m), range(&mut r));
    assert_eq!(
        hash(&mut m, "tq:{plain}:seats"),
        hash(&mut r, "tq:{plain}:seats")
    );
    assert_eq!(meta_fields(&mut m, "plain"), meta_fields(&mut r, "plain"));
    let seats = hash(&mut r, "tq:{plain}:seats");
    assert_eq!(
        seats.get(&b"P1"[..]).map(|v| v.as_slice()),
        Some(&b"sold u1"[..])
    );
    assert!(seats.get(&b"P2"[..]).unwrap().starts_with(b"held "));
    assert!(!seats.contains_key(&b"P3"[..]));
    let meta = meta_fields(&mut r, "plain");
    assert_eq!(meta.get("inventory").map(String::as_str), Some("48"));
    assert_eq!(meta.get("admitted").map(String::as_str), Some("3"));
    let zset = |con: &mut redis::Connection, key: &str| -> Vec<(Vec<u8>, String)> {
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(con)
            .unwrap()
    };
    for key in ["tq:{plain}:order", "tq:{plain}:holds", "tq:{plain}:user:u2"] {
        assert_eq!(zset(&mut m, key), zset(&mut r, key), "{key}");
    }
    assert_eq!(
        key_digests(&mut m, "*"),
        key_digests(&mut r, "*"),
        "key-by-key digests of master and plain replica"
    );
    assert_eq!(digest(&mut m), digest(&mut r));
    assert!(
        replica
            .log()
            .lines()
            .all(|l| !l.contains("Unknown command")),
        "{}",
        replica.log()
    );
}
