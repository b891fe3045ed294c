//! Background work that must happen even when nobody touches an event:
//! dropping abandoned waiting entries and giving back seats of expired
//! holds, within about a second.
//!
//! Which events have such work is a cache, rebuilt from keyspace events:
//! every write to `tq:{E}:beat` or `tq:{E}:holds` (by a TQ command, by the
//! replication stream on a replica, by AOF replay, RESTORE during slot
//! migration) and every such key loaded from an RDB registers `E`. Nothing
//! here is needed to rebuild the data; it only tells the timer where to look.

use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use parking_lot::Mutex;
use redis_module::{raw, Context, ContextFlags, NotifyEvent};

use super::commands::now_ms;
use super::config::defaults;
use super::keys::{event_with_timed_work, Fixed};
use super::store::RedisStore;
use crate::domain::error::{TqError, TqResult};
use crate::domain::{event, queue, seats};

/// Timer period; expiries are written back within about this much.
const TICK: Duration = Duration::from_millis(100);
/// Most removals of each kind per event per tick, so one tick stays short
/// even when a crowd expires at once; the rest waits for the next tick
/// (commands still never see it: they settle everything due first).
const BATCH: usize = 2000;

/// Events with timed work, per database.
static EVENTS: Mutex<BTreeMap<i32, HashSet<Vec<u8>>>> = Mutex::new(BTreeMap::new());

fn selected_db(ctx: &Context) -> i32 {
    // SAFETY: valid context for the duration of the callback.
    unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.ctx) }
}

/// Keyspace-event callback: only records event names, never writes.
pub fn on_key_event(ctx: &Context, _kind: NotifyEvent, _event: &str, key: &[u8]) {
    if let Some(event) = event_with_timed_work(key) {
        let db = selected_db(ctx);
        let mut events = EVENTS.lock();
        let set = events.entry(db).or_default();
        if !set.contains(event) {
            set.insert(event.to_vec());
        }
    }
}

pub fn start(ctx: &Context) {
    ctx.create_timer(TICK, tick, ());
}

fn tick(ctx: &Context, _: ()) {
    if catch_unwind(AssertUnwindSafe(|| reap_all(ctx))).is_err() {
        ctx.log_warning("tq: reaper tick panicked; will retry");
    }
    start(ctx);
}

fn reap_all(ctx: &Context) {
    let flags = ctx.get_flags();
    if !flags.contains(ContextFlags::MASTER) || flags.contains(ContextFlags::LOADING) {
        return; // replicas get the master's removals through replication
    }
    let snapshot: Vec<(i32, Vec<u8>)> = EVENTS
        .lock()
        .iter()
        .flat_map(|(db, set)| set.iter().map(move |e| (*db, e.clone())))
        .collect();
    for (db, name) in snapshot {
        // SAFETY: valid timer context; db came from a real selected db.
        unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, db) };
        match reap_event(ctx, &name) {
            Ok(true) => {}
            Ok(false) => forget(db, &name),
            // Mid-migration: the node that ends up with the keys reaps them.
            Err(TqError::TryAgain) => {}
            Err(e) => ctx.log_warning(&format!(
                "tq: reaping event '{}' failed: {e}",
                String::from_utf8_lossy(&name)
            )),
        }
    }
}

fn forget(db: i32, name: &[u8]) {
    if let Some(set) = EVENTS.lock().get_mut(&db) {
        set.remove(name);
    }
}

/// Reaps one event; false once it has no timed work left.
fn reap_event(ctx: &Context, name: &[u8]) -> TqResult<bool> {
    let mut store = RedisStore::new(ctx, name);
    store.guard(&Fixed::ALL, &[])?;
    let settings = event::settings(&mut store, &defaults())?;
    let now = now_ms();
    queue::reap_abandoned(&mut store, &settings, now, BATCH)?;
    seats::expire_holds(&mut store, now, BATCH)?;
    Ok(store.has_timed_work())
}
