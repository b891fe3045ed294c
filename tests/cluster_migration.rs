//! A slot moving between two cluster nodes while an event lives in it:
//! while only some of the event's keys have moved, TQ commands answer
//! TRYAGAIN instead of acting on part of the state; once all have moved,
//! the new owner serves the event with nothing lost.

mod common;

use common::*;
use std::time::Duration;

fn node_id(con: &mut redis::Connection) -> String {
    redis_query(con, &["CLUSTER", "MYID"])
}

fn cluster_ok(con: &mut redis::Connection) -> bool {
    let info: String = redis_query(con, &["CLUSTER", "INFO"]);
    info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:2")
}

/// Sends ASKING then the command, as a client following an ASK redirect.
fn asking(con: &mut redis::Connection, words: &[&str]) -> redis::RedisResult<Value> {
    let _: () = redis::cmd("ASKING").query(con)?;
    let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    call_args(con, &words)
}

#[test]
fn partly_migrated_event_answers_tryagain_then_moves_whole() {
    let cluster_args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ];
    let a = Server::start_with(&cluster_args);
    let b = Server::start_with(&cluster_args);
    let (mut ca, mut cb) = (a.client(), b.client());
    let _: () = redis_query(&mut ca, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    let _: () = redis_query(
        &mut cb,
        &["CLUSTER", "MEET", "127.0.0.1", &a.port.to_string()],
    );
    assert!(eventually(Duration::from_secs(10), || {
        cluster_ok(&mut ca) && cluster_ok(&mut cb)
    }));
    let (id_a, id_b) = (node_id(&mut ca), node_id(&mut cb));

    for t in ["t1", "t2", "t3"] {
        tq!(&mut ca, "TQ.ENQUEUE", "gig", "u", t).unwrap();
    }
    tq!(&mut ca, "TQ.INVENTORY", "gig", "SET", 10).unwrap();
    tq!(&mut ca, "TQ.HOLD", "gig", "A1", "u").unwrap();
    let keys: Vec<String> = redis_query(&mut ca, &["KEYS", "tq:{gig}:*"]);
    assert!(keys.len() >= 6, "{keys:?}");

    let slot: i64 = redis_query(&mut ca, &["CLUSTER", "KEYSLOT", "gig"]);
    let slot = slot.to_string();
    let _: () = redis_query(&mut cb, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &id_a]);
    let _: () = redis_query(&mut ca, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &id_b]);

    // Move two of the keys only.
    let port_b = b.port.to_string();
    let migrate = |con: &mut redis::Connection, names: &[&str]| {
        let mut words = vec!["MIGRATE", "127.0.0.1", &port_b, "", "0", "5000", "KEYS"];
        words.extend_from_slice(names);
        let _: String = redis_query(con, &words);
    };
    migrate(&mut ca, &["tq:{gig}:order", "tq:{gig}:meta"]);

    // The old owner no longer has the whole event: Redis itself redirects
    // (the event name is not a stored key, so the command asks the new owner).
    let redirected = tq!(&mut ca, "TQ.POSITION", "gig", "t1");
    assert_eq!(code(&redirected), "ASK");
    // The new owner has part of it: retry later.
    for words in [
        vec!["TQ.POSITION", "gig", "t1"],
        vec!["TQ.ENQUEUE", "gig", "u", "t4"],
        vec!["TQ.HOLD", "gig", "A2", "u"],
        vec!["TQ.STATS", "gig"],
        vec!["TQ.CONFIG", "gig"],
    ] {
        assert_eq!(code(&asking(&mut cb, &words)), "TRYAGAIN", "{words:?}");
    }

    // Move the rest: now the new owner serves the whole event.
    let rest: Vec<String> = redis_query(&mut ca, &["KEYS", "tq:{gig}:*"]);
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    migrate(&mut ca, &rest);
    let p = asking(&mut cb, &["TQ.POSITION", "gig", "t2"]).unwrap();
    assert_eq!(int_field(&p, "position"), 2);
    for con in [&mut ca, &mut cb] {
        let _: () = redis_query(con, &["CLUSTER", "SETSLOT", &slot, "NODE", &id_b]);
    }
    let stats = tq!(&mut cb, "TQ.STATS", "gig").unwrap();
    assert_eq!(int_field(&stats, "waiting"), 3);
    assert_eq!(
        (int_field(&stats, "inventory"), int_field(&stats, "held")),
        (9, 1)
    );
    assert_eq!(code(&tq!(&mut ca, "TQ.STATS", "gig")), "MOVED");
}
