//! A real 3-master Redis Cluster on loopback: the event is the command's
//! key, so a TQ command is routed by the slot of the event, a wrong node
//! answers -MOVED, and the keys of an event, exactly `tq:{E}:queue` and
//! `tq:{E}:state`, live on its owner in the event's slot.

use crate::common::*;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

struct Cluster {
    nodes: Vec<Server>,
    /// (first slot, last slot, port of the owner)
    slots: Vec<(i64, i64, u16)>,
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Server> = (0..3)
            .map(|_| {
                let bus = free_port().to_string();
                Server::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                    "--cluster-port",
                    &bus,
                ])
            })
            .collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = cmd
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for n in &nodes {
            let mut con = n.client();
            assert!(
                eventually(Duration::from_secs(15), || {
                    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con).unwrap();
                    info.lines().any(|l| l.trim() == "cluster_state:ok")
                }),
                "node {} never reached cluster_state:ok",
                n.port
            );
        }
        let mut con = nodes[0].client();
        let raw: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).unwrap();
        let slots = array(&raw)
            .iter()
            .map(|range| {
                let r = array(range);
                let master = array(&r[2]);
                (int(&r[0]), int(&r[1]), int(&master[1]) as u16)
            })
            .collect();
        Cluster { nodes, slots }
    }

    fn owner_port(&self, slot: i64) -> u16 {
        self.slots
            .iter()
            .find(|(a, b, _)| (*a..=*b).contains(&slot))
            .map(|(_, _, p)| *p)
            .unwrap_or_else(|| panic!("slot {slot} not served"))
    }

    fn node(&self, port: u16) -> &Server {
        self.nodes.iter().find(|n| n.port == port).unwrap()
    }
}

fn keyslot(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(con)
        .unwrap()
}

#[test]
fn events_are_routed_by_slot_and_keep_their_keys_on_the_owner() {
    let started = Instant::now();
    let cluster = Cluster::start();
    println!("cluster up in {:?}", started.elapsed());
    let mut any = cluster.nodes[0].client();

    // The event is the command's only key.
    let getkeys: Vec<(&str, Vec<&str>)> = vec![
        ("TQ.ENQUEUE", vec!["ev", "u", "t"]),
        (
            "TQ.ENQUEUE",
            vec!["ev", "u", "t", "DEDUPE", "d", "TTL", "5"],
        ),
        ("TQ.POSITION", vec!["ev", "t"]),
        ("TQ.ENTER", vec!["ev", "t"]),
        ("TQ.LEAVE", vec!["ev", "t"]),
        ("TQ.USER", vec!["ev", "u"]),
        ("TQ.TRIM", vec!["ev", "MAXAGE", "5"]),
        ("TQ.INVENTORY", vec!["ev", "SET", "5"]),
        ("TQ.HOLD", vec!["ev", "s", "u"]),
        ("TQ.RELEASE", vec!["ev", "s"]),
        ("TQ.CONFIRM", vec!["ev", "s", "u"]),
        ("TQ.SEAT", vec!["ev", "s"]),
        ("TQ.CONFIG", vec!["ev", "RATE", "5"]),
        ("TQ.STATS", vec!["ev"]),
    ];
    for (name, args) in &getkeys {
        let keys: Vec<String> = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(*name)
            .arg(args)
            .query(&mut any)
            .unwrap();
        assert_eq!(keys, ["ev"], "COMMAND GETKEYS {name} {args:?}");
    }

    // Events spread over all three masters.
    let mut by_owner: BTreeMap<u16, Vec<(String, i64)>> = BTreeMap::new();
    for i in 0..30 {
        let ev = format!("show-{i}");
        let slot = keyslot(&mut any, &ev);
        assert_eq!(keyslot(&mut any, &queue_key(&ev)), slot);
        assert_eq!(keyslot(&mut any, &state_key(&ev)), slot);
        by_owner
            .entry(cluster.owner_port(slot))
            .or_default()
            .push((ev, slot));
    }
    assert_eq!(
        by_owner.len(),
        3,
        "events do not cover all masters: {by_owner:?}"
    );

    // The state of each event right after its 1 s hold.
    let mut held_states: BTreeMap<String, String> = BTreeMap::new();
    for (port, events) in &by_owner {
        let owner = cluster.node(*port);
        let mut con = owner.client();
        let other = cluster.nodes.iter().find(|n| n.port != *port).unwrap();
        let mut wrong = other.client();
        for (ev, slot) in events {
            // A wrong node redirects, and keeps nothing.
            let moved = tq!(&mut wrong, "TQ.ENQUEUE", ev.as_str(), "u1", "t1");
            let text = error_text(&moved);
            assert_eq!(code(&moved), "MOVED", "{text}");
            assert_eq!(text, format!("MOVED {slot} 127.0.0.1:{port}"));
            let stats = tq!(&mut wrong, "TQ.STATS", ev.as_str());
            assert_eq!(code(&stats), "MOVED");

            // The owner does the work.
            tq!(&mut con, "TQ.INVENTORY", ev.as_str(), "SET", 10).unwrap();
            tq!(&mut con, "TQ.CONFIG", ev.as_str(), "RATE", 5, "BURST", 1).unwrap();
            for t in 1..=3 {
                let r = tq!(
                    &mut con,
                    "TQ.ENQUEUE",
                    ev.as_str(),
                    "u1",
                    format!("t{t}"),
                    "DEDUPE",
                    format!("d{t}")
                )
                .unwrap();
                assert_eq!(int_field(&r, "position"), t);
            }
            assert_eq!(
                int_field(
                    &tq!(&mut con, "TQ.POSITION", ev.as_str(), "t2").unwrap(),
                    "position"
                ),
                2
            );
            assert_eq!(
                int_field(
                    &tq!(&mut con, "TQ.ENTER", ev.as_str(), "t1").unwrap(),
                    "admitted"
                ),
                1
            );
            assert_eq!(
                int(&tq!(&mut con, "TQ.HOLD", ev.as_str(), "A1", "u1").unwrap()),
                9
            );
            tq!(&mut con, "TQ.CONFIRM", ev.as_str(), "A1", "u1").unwrap();
            // A hold that expires in 1 s, and the state it is stored in,
            // read in one transaction (before any timer can expire it).
            let (inventory, held_state): (i64, Vec<String>) = redis::pipe()
                .atomic()
                .cmd("TQ.HOLD")
                .arg(ev.as_str())
                .arg("A2")
                .arg("u1")
                .arg("TTL")
                .arg(1)
                .cmd("DEBUG")
                .arg("DIGEST-VALUE")
                .arg(state_key(ev))
                .query(&mut con)
                .unwrap();
            assert_eq!(inventory, 8);
            held_states.insert(ev.clone(), held_state[0].clone());
            assert_eq!(
                text_field(
                    &tq!(&mut con, "TQ.SEAT", ev.as_str(), "A1").unwrap(),
                    "state"
                ),
                "sold"
            );

            // The event's two keys are on the owner, in the event's slot.
            assert_event_layout(&mut con, ev);
            let keys = event_keys(&mut con, ev);
            assert_eq!(keys, [queue_key(ev), state_key(ev)], "{ev}");
            let in_slot: i64 = redis::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(*slot)
                .query(&mut con)
                .unwrap();
            assert_eq!(in_slot as usize, keys.len(), "{ev}: keys outside its slot");
            for n in cluster.nodes.iter().filter(|n| n.port != *port) {
                let mut c = n.client();
                let elsewhere: i64 = redis::cmd("CLUSTER")
                    .arg("COUNTKEYSINSLOT")
                    .arg(*slot)
                    .query(&mut c)
                    .unwrap();
                assert_eq!(elsewhere, 0, "{ev}: keys on node {}", n.port);
            }
        }
    }

    // Every master also expires its own events' holds in the background:
    // each state changes with no command.
    for (port, events) in &by_owner {
        let mut con = cluster.node(*port).client();
        assert!(
            eventually(Duration::from_secs(4), || events.iter().all(
                |(ev, _)| digest_value(&mut con, &state_key(ev)) != held_states[ev]
            )),
            "expired holds still stored on node {port}"
        );
        for (ev, _) in events {
            let stats = tq!(&mut con, "TQ.STATS", ev.as_str()).unwrap();
            assert_eq!(
                ["inventory", "held", "sold", "holds_expired", "waiting"]
                    .map(|f| int_field(&stats, f)),
                [9, 0, 1, 1, 2],
                "{ev}"
            );
        }
    }
    // And a node's DBSIZE is exactly the keys of its own events.
    let total: i64 = cluster
        .nodes
        .iter()
        .map(|n| redis_query::<i64>(&mut n.client(), &["DBSIZE"]))
        .sum();
    let expected: usize = by_owner
        .iter()
        .flat_map(|(port, evs)| {
            let mut con = cluster.node(*port).client();
            evs.iter()
                .map(move |(ev, _)| scan_keys(&mut con, &format!("tq:{{{ev}}}:*")).len())
                .collect::<Vec<_>>()
        })
        .sum();
    assert_eq!(total as usize, expected);
    assert_eq!(expected, 2 * 30, "two keys per event");
    println!("done in {:?}", started.elapsed());
}

/// The same cluster driven by a cluster-aware client (redis-rs
/// `ClusterClient`), which routes each command by its first argument: the
/// event. No manual routing; every command lands on the event's owner.
#[test]
fn a_cluster_aware_client_routes_every_command_by_its_event() {
    let cluster = Cluster::start();
    let client = redis::cluster::ClusterClient::new(vec![cluster.nodes[0].url()]).unwrap();
    let mut con = client.get_connection().unwrap();
    let run = |con: &mut redis::cluster::ClusterConnection, words: Vec<String>| {
        let mut c = redis::cmd(&words[0]);
        for w in &words[1..] {
            c.arg(w);
        }
        c.query::<Value>(con)
    };
    let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let events: Vec<String> = (0..24).map(|i| format!("gig-{i}")).collect();
    for ev in &events {
        run(&mut con, w(&["TQ.INVENTORY", ev, "SET", "5"])).unwrap();
        for t in 1..=3 {
            let r = run(&mut con, w(&["TQ.ENQUEUE", ev, "fan", &format!("t{t}")])).unwrap();
            assert_eq!(int_field(&r, "position"), t);
        }
        let p = run(&mut con, w(&["TQ.POSITION", ev, "t3"])).unwrap();
        assert_eq!(int_field(&p, "user_position"), 3);
        run(&mut con, w(&["TQ.ENTER", ev, "t1"])).unwrap();
        assert_eq!(
            int(&run(&mut con, w(&["TQ.HOLD", ev, "A1", "fan"])).unwrap()),
            4
        );
        run(&mut con, w(&["TQ.CONFIRM", ev, "A1", "fan"])).unwrap();
        let stats = run(&mut con, w(&["TQ.STATS", ev])).unwrap();
        assert_eq!(
            (
                int_field(&stats, "waiting"),
                int_field(&stats, "admitted"),
                int_field(&stats, "sold")
            ),
            (2, 1, 1)
        );
        let err = run(&mut con, w(&["TQ.HOLD", ev, "A1", "other"]));
        assert_eq!(code(&err), "SEAT_UNAVAILABLE");
    }
    // The work really is spread: every master holds some of the events.
    let mut any = cluster.nodes[0].client();
    let owners: std::collections::BTreeSet<u16> = events
        .iter()
        .map(|ev| cluster.owner_port(keyslot(&mut any, ev)))
        .collect();
    assert_eq!(owners.len(), 3);
    for n in &cluster.nodes {
        let mut c = n.client();
        let mine = events
            .iter()
            .filter(|ev| cluster.owner_port(keyslot(&mut any, ev)) == n.port)
            .count();
        let queues = scan_keys(&mut c, "tq:{gig-*}:queue").len();
        assert_eq!(queues, mine, "queues on node {}", n.port);
        let states = scan_keys(&mut c, "tq:{gig-*}:state").len();
        assert_eq!(states, mine, "states on node {}", n.port);
        let all = scan_keys(&mut c, "*").len();
        assert_eq!(all, 2 * mine, "keys on node {}", n.port);
    }
}
