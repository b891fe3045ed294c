//! The rules against the in-memory store: positions against a plain list
//! model, admission, abandonment, and the seat state machine.

use super::args::Enqueue;
use super::error::TqError;
use super::event;
use super::memstore::MemStore;
use super::queue;
use super::seats;
use super::settings::Settings;
use super::store::{Counter, EventStore, StoredSeat};

const T0: u64 = 1_764_000_000_000;

fn join(
    s: &mut MemStore,
    set: &Settings,
    user: &str,
    token: &str,
) -> Result<queue::Enqueued, TqError> {
    let now = s.now_ms;
    queue::enqueue(
        s,
        set,
        now,
        &Enqueue {
            event: b"e",
            user: user.as_bytes(),
            token: token.as_bytes(),
            dedupe: None,
            ttl_s: None,
        },
    )
}

/// A tiny deterministic generator, so the test needs no crate.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn positions_match_a_list_model_through_random_joins_and_leaves() {
    let set = Settings::DEFAULT;
    let mut s = MemStore::new(T0);
    let mut model: Vec<(String, String)> = Vec::new(); // (user, token) in order
    let mut rng = Lcg(7);
    for step in 0..3000 {
        s.now_ms += rng.next(3);
        if model.is_empty() || rng.next(3) > 0 {
            let user = format!("u{}", rng.next(5));
            let token = format!("t{step}");
            let got = join(&mut s, &set, &user, &token).unwrap();
            model.push((user.clone(), token));
            assert_eq!(got.position, model.len() as u64);
            let mine = model.iter().filter(|(u, _)| *u == user).count() as u64;
            assert_eq!(got.user_position, mine);
        } else {
            let (_, token) = model.remove(rng.next(model.len() as u64) as usize);
            let now = s.now_ms;
            assert!(queue::leave(&mut s, &set, now, token.as_bytes()).unwrap());
        }
        if step % 50 == 0 {
            for (i, (user, token)) in model.iter().enumerate() {
                let now = s.now_ms;
                let p = queue::position(&mut s, &set, now, token.as_bytes()).unwrap();
                assert_eq!(p.position, i as u64 + 1);
                let before = model[..i].iter().filter(|(u, _)| u == user).count() as u64;
                assert_eq!(p.user_position, before + 1);
            }
        }
    }
}

#[test]
fn duplicates_change_nothing_and_name_the_original() {
    let set = Settings::DEFAULT;
    let mut s = MemStore::new(T0);
    let first = join(&mut s, &set, "u", "t").unwrap();
    let err = join(&mut s, &set, "u", "t").unwrap_err();
    assert_eq!(err, TqError::Duplicate(first.id.to_string()));
    let dedupe = Enqueue {
        event: b"e",
        user: b"u",
        token: b"t2",
        dedupe: Some(b"d"),
        ttl_s: Some(10),
    };
    let with_id = queue::enqueue(&mut s, &set, T0, &dedupe).unwrap();
    let again = Enqueue {
        token: b"t3",
        ..dedupe.clone()
    };
    assert_eq!(
        queue::enqueue(&mut s, &set, T0, &again).unwrap_err(),
        TqError::Duplicate(with_id.id.to_string())
    );
    assert_eq!(s.waiting_count().unwrap(), 2);
    assert_eq!(s.counter(Counter::Duplicates).unwrap(), 2);
    s.now_ms = T0 + 10_000; // the dedupe window closes
    assert!(queue::enqueue(&mut s, &set, T0 + 10_000, &again).is_ok());
}

#[test]
fn admission_is_fifo_through_the_token_bucket() {
    let set = Settings {
        rate: 2,
        burst: 2,
        ..Settings::DEFAULT
    };
    let mut s = MemStore::new(T0);
    for i in 0..5 {
        join(&mut s, &set, "u", &format!("t{i}")).unwrap();
    }
    // Two tokens: positions 1 and 2 ready, 3 not.
    let p3 = queue::position(&mut s, &set, T0, b"t2").unwrap();
    assert!(!p3.ready);
    assert_eq!(p3.eta_ms, -1, "nobody admitted yet: no estimate");
    assert_eq!(
        queue::enter(&mut s, &set, T0, b"t2"),
        Err(TqError::NotReady(3))
    );
    assert_eq!(
        queue::enter(&mut s, &set, T0, b"t1").unwrap().position_was,
        2
    );
    assert_eq!(
        queue::enter(&mut s, &set, T0, b"t0").unwrap().position_was,
        1
    );
    // Bucket empty; t2 is now first but must wait for a token.
    let p = queue::position(&mut s, &set, T0, b"t2").unwrap();
    assert_eq!((p.position, p.ready), (1, false));
    assert!(p.eta_ms > 0);
    assert_eq!(
        queue::enter(&mut s, &set, T0 + 499, b"t2"),
        Err(TqError::NotReady(1))
    );
    let ready = queue::position(&mut s, &set, T0 + 500, b"t2").unwrap();
    assert_eq!((ready.ready, ready.eta_ms), (true, 0));
    assert!(queue::enter(&mut s, &set, T0 + 500, b"t2").is_ok());
    assert_eq!(s.counter(Counter::Admitted).unwrap(), 3);
    assert_eq!(
        queue::enter(&mut s, &set, T0 + 500, b"t0"),
        Err(TqError::NotQueued)
    );
}

#[test]
fn abandoned_entries_stop_counting_and_are_removed() {
    let set = Settings {
        heartbeat_s: 1,
        ..Settings::DEFAULT
    };
    let mut s = MemStore::new(T0);
    for t in ["a", "b", "c"] {
        join(&mut s, &set, "u", t).unwrap();
    }
    // Only c keeps polling.
    queue::position(&mut s, &set, T0 + 900, b"c").unwrap();
    let later = T0 + 1_500;
    let view = queue::user_view(&mut s, &set, later, b"u").unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!((view[0].token.as_slice(), view[0].position), (&b"c"[..], 1));
    let stats = event::stats(&mut s, &set, later).unwrap();
    assert_eq!((stats.waiting, stats.abandoned), (1, 2));
    assert_eq!(
        queue::position(&mut s, &set, later, b"c").unwrap().position,
        1
    );
    assert_eq!(s.tokens(), vec![b"c".to_vec()]);
    assert_eq!(
        queue::position(&mut s, &set, later, b"a"),
        Err(TqError::NotQueued)
    );
    assert_eq!(s.counter(Counter::Abandoned).unwrap(), 2);
}

#[test]
fn trim_removes_only_entries_older_than_max_age() {
    let set = Settings::DEFAULT;
    let mut s = MemStore::new(T0);
    join(&mut s, &set, "u", "old").unwrap();
    s.now_ms = T0 + 5_000;
    join(&mut s, &set, "u", "new").unwrap();
    assert_eq!(queue::trim(&mut s, &set, T0 + 6_000, 3).unwrap(), 1);
    assert_eq!(s.tokens(), vec![b"new".to_vec()]);
}

/// inventory + held + sold, the quantity the seat rules must conserve.
fn seat_total(s: &mut MemStore) -> u64 {
    s.counter(Counter::Inventory).unwrap()
        + s.held_count().unwrap()
        + s.counter(Counter::Sold).unwrap()
}

#[test]
fn seat_state_machine() {
    let mut s = MemStore::new(T0);
    seats::inventory(&mut s, T0, Some(2)).unwrap();
    assert_eq!(seats::hold(&mut s, T0, b"A1", b"u1", 10), Ok(1));
    assert_eq!(
        seats::hold(&mut s, T0, b"A1", b"u2", 10),
        Err(TqError::SeatUnavailable)
    );
    assert_eq!(
        seats::release(&mut s, T0, b"A1", Some(b"u2")),
        Err(TqError::NotOwner)
    );
    assert_eq!(
        seats::confirm(&mut s, T0, b"A1", b"u2"),
        Err(TqError::NotOwner)
    );
    assert_eq!(seats::confirm(&mut s, T0, b"A1", b"u1"), Ok(()));
    assert_eq!(
        seats::release(&mut s, T0, b"A1", None),
        Err(TqError::NotHeld)
    );
    assert_eq!(
        seats::hold(&mut s, T0, b"A1", b"u3", 10),
        Err(TqError::SeatUnavailable)
    );
    assert_eq!(seats::hold(&mut s, T0, b"A2", b"u3", 10), Ok(0));
    assert_eq!(
        seats::hold(&mut s, T0, b"A3", b"u3", 10),
        Err(TqError::SoldOut)
    );
    assert_eq!(seats::release(&mut s, T0, b"A2", Some(b"u3")), Ok(1));
    assert_eq!(
        seats::release(&mut s, T0, b"A2", None),
        Err(TqError::NotHeld)
    );
    assert_eq!(seat_total(&mut s), 2);
}

#[test]
fn an_expired_hold_gives_the_seat_back_exactly_once() {
    let mut s = MemStore::new(T0);
    seats::inventory(&mut s, T0, Some(1)).unwrap();
    seats::hold(&mut s, T0, b"A1", b"u1", 5).unwrap();
    let view = seats::seat_view(&mut s, T0 + 4_999, b"A1").unwrap();
    assert_eq!((view.state, view.ttl_ms), ("held", 1));
    let view = seats::seat_view(&mut s, T0 + 5_000, b"A1").unwrap();
    assert_eq!(
        (view.state, view.user, view.ttl_ms),
        ("available", None, -1)
    );
    let stats = event::stats(&mut s, &Settings::DEFAULT, T0 + 5_000).unwrap();
    assert_eq!(
        (stats.inventory, stats.held, stats.holds_expired),
        (1, 0, 1)
    );
    assert_eq!(
        seats::confirm(&mut s, T0 + 5_000, b"A1", b"u1"),
        Err(TqError::NotHeld)
    );
    assert_eq!(seats::expire_holds(&mut s, T0 + 6_000, 10).unwrap(), 0);
    assert_eq!(s.counter(Counter::HoldsExpired).unwrap(), 1);
    assert_eq!(seats::hold(&mut s, T0 + 6_000, b"A1", b"u2", 5), Ok(0));
    assert_eq!(seat_total(&mut s), 1);
}

#[test]
fn random_seat_operations_conserve_the_total() {
    let mut s = MemStore::new(T0);
    let mut rng = Lcg(11);
    seats::inventory(&mut s, T0, Some(20)).unwrap();
    let mut now = T0;
    let mut sold_to: std::collections::HashMap<Vec<u8>, Vec<u8>> = Default::default();
    for _ in 0..5000 {
        now += rng.next(300);
        let seat = format!("S{}", rng.next(30)).into_bytes();
        let user = format!("u{}", rng.next(4)).into_bytes();
        let result = match rng.next(4) {
            0 | 1 => seats::hold(&mut s, now, &seat, &user, 1 + rng.next(3)).map(|_| ()),
            2 => seats::release(&mut s, now, &seat, Some(&user)).map(|_| ()),
            _ => seats::confirm(&mut s, now, &seat, &user),
        };
        if result.is_ok() {
            if let StoredSeat::Sold { user } = s.seat(&seat).unwrap() {
                if let Some(first) = sold_to.insert(seat.clone(), user.clone()) {
                    assert_eq!(first, user, "a seat was sold twice");
                }
            }
        }
        assert_eq!(seat_total(&mut s), 20);
    }
    assert!(s.counter(Counter::Sold).unwrap() > 0);
    assert!(s.counter(Counter::HoldsExpired).unwrap() > 0);
}
