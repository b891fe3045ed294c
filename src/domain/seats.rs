//! Seat rules: hold, release, confirm, expiry, inventory.
//!
//! Invariant: between two `TQ.INVENTORY SET` calls,
//! `inventory + held + sold` is constant and inventory never goes below 0.
//! Every transition below moves exactly one seat between those three.
//! Write operations first expire due holds (seat back, inventory + 1), so a
//! hold is never seen after its TTL; read-only views apply the same rule
//! without writing.

use super::decimal::{parse_count, Decimal};
use super::error::{TqError, TqResult};
use super::queue::ALL;
use super::store::{Counter, EventStore, StoredSeat};

/// What TQ.SEAT shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatView {
    pub state: &'static str,
    pub user: Option<Vec<u8>>,
    pub ttl_ms: i64,
}

/// The stored seat as it stands at `now_ms`: a hold past its expiry is
/// available.
pub fn effective_state(stored: StoredSeat, now_ms: u64) -> StoredSeat {
    match stored {
        StoredSeat::Held { expires_ms, .. } if expires_ms <= now_ms => StoredSeat::Available,
        other => other,
    }
}

/// Gives back every seat whose hold has expired by `now_ms` (at most
/// `limit`); counts them in `holds_expired`.
pub fn expire_holds<S: EventStore>(store: &mut S, now_ms: u64, limit: usize) -> TqResult<u64> {
    let due = store.expired_holds(now_ms, limit)?;
    for seat in &due {
        store.set_seat(seat, &StoredSeat::Available)?;
    }
    if !due.is_empty() {
        let n = due.len() as i64;
        store.add_counter(Counter::Inventory, n)?;
        store.add_counter(Counter::HoldsExpired, n)?;
    }
    Ok(due.len() as u64)
}

/// TQ.HOLD: returns the inventory left.
pub fn hold<S: EventStore>(
    store: &mut S,
    now_ms: u64,
    seat: &[u8],
    user: &[u8],
    ttl_s: u64,
) -> TqResult<u64> {
    expire_holds(store, now_ms, ALL)?;
    if store.seat(seat)? != StoredSeat::Available {
        return Err(TqError::SeatUnavailable);
    }
    let inventory = store.counter(Counter::Inventory)?;
    if inventory == 0 {
        return Err(TqError::SoldOut);
    }
    store.set_seat(
        seat,
        &StoredSeat::Held {
            user: user.to_vec(),
            expires_ms: now_ms + ttl_s * 1000,
        },
    )?;
    store.add_counter(Counter::Inventory, -1)?;
    Ok(inventory - 1)
}

/// TQ.RELEASE: returns the inventory after the seat came back.
pub fn release<S: EventStore>(
    store: &mut S,
    now_ms: u64,
    seat: &[u8],
    user: Option<&[u8]>,
) -> TqResult<u64> {
    expire_holds(store, now_ms, ALL)?;
    holder_check(store.seat(seat)?, user)?;
    store.set_seat(seat, &StoredSeat::Available)?;
    store.add_counter(Counter::Inventory, 1)?;
    store.counter(Counter::Inventory)
}

/// TQ.CONFIRM: the hold of `user` becomes a sale.
pub fn confirm<S: EventStore>(
    store: &mut S,
    now_ms: u64,
    seat: &[u8],
    user: &[u8],
) -> TqResult<()> {
    expire_holds(store, now_ms, ALL)?;
    holder_check(store.seat(seat)?, Some(user))?;
    store.set_seat(
        seat,
        &StoredSeat::Sold {
            user: user.to_vec(),
        },
    )?;
    store.add_counter(Counter::Sold, 1)
}

/// The seat must be held, and by `user` when one is given.
fn holder_check(stored: StoredSeat, user: Option<&[u8]>) -> TqResult<()> {
    match stored {
        StoredSeat::Held { user: holder, .. } => match user {
            Some(u) if u != holder.as_slice() => Err(TqError::NotOwner),
            _ => Ok(()),
        },
        _ => Err(TqError::NotHeld),
    }
}

/// TQ.INVENTORY: sets it when asked, returns it.
pub fn inventory<S: EventStore>(store: &mut S, now_ms: u64, set: Option<u64>) -> TqResult<u64> {
    expire_holds(store, now_ms, ALL)?;
    if let Some(n) = set {
        store.set_counter(Counter::Inventory, n)?;
    }
    store.counter(Counter::Inventory)
}

/// TQ.SEAT (read-only).
pub fn seat_view<S: EventStore>(store: &mut S, now_ms: u64, seat: &[u8]) -> TqResult<SeatView> {
    Ok(match effective_state(store.seat(seat)?, now_ms) {
        StoredSeat::Available => SeatView {
            state: "available",
            user: None,
            ttl_ms: -1,
        },
        StoredSeat::Held { user, expires_ms } => SeatView {
            state: "held",
            user: Some(user),
            ttl_ms: (expires_ms - now_ms) as i64,
        },
        StoredSeat::Sold { user } => SeatView {
            state: "sold",
            user: Some(user),
            ttl_ms: -1,
        },
    })
}

/// How a seat is written in the `seats` hash, so that plain Redis (no
/// module) can still read it: `held <expires_ms> <user>` or `sold <user>`.
pub fn encode_seat(state: &StoredSeat) -> Option<Vec<u8>> {
    // Every hold writes one: built without the formatting machinery.
    match state {
        StoredSeat::Available => None,
        StoredSeat::Held { user, expires_ms } => {
            Some([b"held ", &*Decimal::of(*expires_ms), b" ", user].concat())
        }
        StoredSeat::Sold { user } => Some([b"sold ".as_slice(), user].concat()),
    }
}

pub fn decode_seat(raw: &[u8]) -> Option<StoredSeat> {
    if let Some(rest) = raw.strip_prefix(b"sold ") {
        return Some(StoredSeat::Sold {
            user: rest.to_vec(),
        });
    }
    let rest = raw.strip_prefix(b"held ")?;
    let space = rest.iter().position(|b| *b == b' ')?;
    let expires_ms = parse_count(&rest[..space])?;
    Some(StoredSeat::Held {
        user: rest[space + 1..].to_vec(),
        expires_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_encoding_round_trips_binary_users() {
        for state in [
            StoredSeat::Held {
                user: b"a b\0\xff".to_vec(),
                expires_ms: 17,
            },
            StoredSeat::Sold {
                user: b" spaced ".to_vec(),
            },
        ] {
            assert_eq!(decode_seat(&encode_seat(&state).unwrap()), Some(state));
        }
        assert_eq!(encode_seat(&StoredSeat::Available), None);
        assert_eq!(decode_seat(b"held x u"), None);
        assert_eq!(decode_seat(b"junk"), None);
    }

    #[test]
    fn a_hold_is_over_at_its_expiry_millisecond() {
        let held = StoredSeat::Held {
            user: b"u".to_vec(),
            expires_ms: 100,
        };
        assert_eq!(effective_state(held.clone(), 99), held);
        assert_eq!(effective_state(held, 100), StoredSeat::Available);
    }
}
