//! A slot moving between two cluster nodes while an event lives in it. An
//! event is two keys, `tq:{E}:queue` and `tq:{E}:state`: while only one of
//! them has moved, TQ commands on the new owner answer TRYAGAIN instead of
//! acting on half the event (either half); once both have moved, the new
//! owner serves the event whole, with the same data and figures.

use crate::common::*;

/// Waiting entries t1..t3, inventory 10 with one seat held and one sold,
/// and some settings: something in both keys.
fn make_event(con: &mut redis::Connection, ev: &str) {
    tq!(con, "TQ.CONFIG", ev, "RATE", 7, "BURST", 9).unwrap();
    for t in ["t1", "t2", "t3"] {
        tq!(con, "TQ.ENQUEUE", ev, "u", t, "DEDUPE", format!("d-{t}")).unwrap();
    }
    tq!(con, "TQ.INVENTORY", ev, "SET", 10).unwrap();
    tq!(con, "TQ.HOLD", ev, "A1", "u").unwrap();
    tq!(con, "TQ.HOLD", ev, "A2", "u").unwrap();
    tq!(con, "TQ.CONFIRM", ev, "A2", "u").unwrap();
    assert_event_layout(con, ev);
    assert_eq!(event_keys(con, ev), [queue_key(ev), state_key(ev)]);
}

/// Every kind of TQ command, reads and writes.
fn commands(ev: &str) -> Vec<Vec<String>> {
    let w = |s: &[&str]| {
        std::iter::once(s[0])
            .chain(std::iter::once(ev))
            .chain(s[1..].iter().copied())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    vec![
        w(&["TQ.POSITION", "t1"]),
        w(&["TQ.ENQUEUE", "u", "t4"]),
        w(&["TQ.ENQUEUE", "u", "t5", "DEDUPE", "d-t1"]),
        w(&["TQ.ENTER", "t1"]),
        w(&["TQ.LEAVE", "t2"]),
        w(&["TQ.USER", "u"]),
        w(&["TQ.TRIM", "MAXAGE", "1"]),
        w(&["TQ.INVENTORY"]),
        w(&["TQ.INVENTORY", "SET", "3"]),
        w(&["TQ.HOLD", "A3", "u"]),
        w(&["TQ.RELEASE", "A1"]),
        w(&["TQ.CONFIRM", "A1", "u"]),
        w(&["TQ.SEAT", "A1"]),
        w(&["TQ.STATS"]),
        w(&["TQ.CONFIG"]),
        w(&["TQ.CONFIG", "RATE", "5"]),
    ]
}

#[test]
fn half_migrated_events_answer_tryagain_then_move_whole() {
    let nodes = SlotMove::start();
    let (mut ca, mut cb) = (nodes.a.client(), nodes.b.client());

    // `gig` will have moved only its state, `show` only its queue, `whole`
    // both keys in one MIGRATE.
    let events = ["gig", "show", "whole"];
    let mut slots = Vec::new();
    for ev in events {
        make_event(&mut ca, ev);
        let slot: i64 = redis_query(&mut ca, &["CLUSTER", "KEYSLOT", ev]);
        assert!(!slots.contains(&slot), "two events share slot {slot}");
        slots.push(slot);
    }
    let before: Vec<(EventDigests, Vec<(String, Value)>)> = events
        .iter()
        .map(|ev| (event_digests(&mut ca, ev), stored_stats(&mut ca, ev)))
        .collect();
    for &slot in &slots {
        nodes.begin_move(slot);
    }
    nodes.migrate(&[state_key("gig")]);
    nodes.migrate(&[queue_key("show")]);

    for ev in ["gig", "show"] {
        // The old owner no longer has the whole event: Redis itself
        // redirects (the event name is not a stored key, so the command
        // asks the new owner).
        let redirected = tq!(&mut ca, "TQ.POSITION", ev, "t1");
        assert_eq!(code(&redirected), "ASK", "{ev} on the old owner");
        // The new owner has half of it: retry later, and nothing changes.
        let moved = if ev == "gig" {
            state_key(ev)
        } else {
            queue_key(ev)
        };
        let moved_digest = digest_value(&mut cb, &moved);
        assert_ne!(moved_digest, NO_DIGEST, "{moved} did not arrive");
        for words in commands(ev) {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let reply = asking(&mut cb, &words);
            assert_eq!(code(&reply), "TRYAGAIN", "{words:?}: {reply:?}");
        }
        assert_eq!(
            event_keys(&mut cb, ev),
            std::slice::from_ref(&moved),
            "{ev} on the new owner"
        );
        assert_eq!(
            digest_value(&mut cb, &moved),
            moved_digest,
            "{moved} changed"
        );
    }

    // Move the rest, and `whole` in one go: now the new owner serves them.
    nodes.migrate(&[queue_key("gig")]);
    nodes.migrate(&[state_key("show")]);
    nodes.migrate(&[queue_key("whole"), state_key("whole")]);
    for (ev, (digests, _)) in events.iter().zip(&before) {
        assert!(event_keys(&mut ca, ev).is_empty(), "{ev} left keys behind");
        assert_eq!(
            &event_digests(&mut cb, ev),
            digests,
            "{ev} changed on the way"
        );
        let p = asking(&mut cb, &["TQ.POSITION", ev, "t2"]).unwrap();
        assert_eq!(int_field(&p, "position"), 2, "{ev}");
    }
    for &slot in &slots {
        nodes.finish_move(slot);
    }
    for (ev, (_, stats)) in events.iter().zip(&before) {
        assert_eq!(&stored_stats(&mut cb, ev), stats, "TQ.STATS {ev}");
        assert_eq!(code(&tq!(&mut ca, "TQ.STATS", *ev)), "MOVED");
        // Writes carry on where the old owner left off.
        let r = tq!(&mut cb, "TQ.ENQUEUE", *ev, "u", "t4").unwrap();
        assert_eq!(int_field(&r, "position"), 4, "{ev}");
        assert_eq!(
            code(&tq!(
                &mut cb,
                "TQ.ENQUEUE",
                *ev,
                "v",
                "t6",
                "DEDUPE",
                "d-t1"
            )),
            "DUPLICATE"
        );
        assert_eq!(int(&tq!(&mut cb, "TQ.HOLD", *ev, "A3", "u").unwrap()), 7);
        assert_eq!(
            code(&tq!(&mut cb, "TQ.HOLD", *ev, "A2", "v")),
            "SEAT_UNAVAILABLE"
        );
        tq!(&mut cb, "TQ.CONFIRM", *ev, "A1", "u").unwrap();
        let stats = tq!(&mut cb, "TQ.STATS", *ev).unwrap();
        assert_eq!(
            ["waiting", "inventory", "held", "sold", "duplicates"].map(|f| int_field(&stats, f)),
            [4, 7, 1, 2, 1],
            "{ev}"
        );
        let config = tq!(&mut cb, "TQ.CONFIG", *ev).unwrap();
        assert_eq!(
            (int_field(&config, "rate"), int_field(&config, "burst")),
            (7, 9)
        );
        assert_event_layout(&mut cb, ev);
    }
}
