//! Background work that must happen even when nobody touches an event:
//! dropping abandoned waiting entries and giving back seats of expired
//! holds, within about a second.
//!
//! Which events have such work is a cache in module memory, never the
//! data itself: write commands register their event, and it is rebuilt by
//! scanning the keyspace for `tq:{E}:beat` / `tq:{E}:holds` whenever data
//! arrives by other ways: after loading (RDB, AOF), when a replica becomes
//! master, and from the keyspace events of RDB loading and RESTORE (slot
//! migration). An event with no such key left is forgotten.

use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use parking_lot::Mutex;
use redis_module::key::RedisKey;
use redis_module::server_events::{LoadingSubevent, ServerRole};
use redis_module::{raw, Context, ContextFlags, KeysCursor, NotifyEvent, RedisString, RedisValue};
use redis_module_macros::{loading_event_handler, role_changed_event_handler};

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

/// Records that `event` in the selected database may have timed work.
pub fn note(ctx: &Context, event: &[u8]) {
    let db = selected_db(ctx);
    let mut events = EVENTS.lock();
    let set = events.entry(db).or_default();
    if !set.contains(event) {
        set.insert(event.to_vec());
    }
}

/// Keyspace-event callback (RDB load, RESTORE): only records event names,
/// never writes.
pub fn on_key_event(ctx: &Context, _kind: NotifyEvent, _event: &str, key: &[u8]) {
    if let Some(event) = event_with_timed_work(key) {
        note(ctx, event);
    }
}

/// Registers every event with timed work found in any database.
fn rediscover(ctx: &Context) {
    let databases = match ctx.call("CONFIG", &["GET", "databases"]) {
        Ok(RedisValue::Array(v)) => match v.get(1) {
            Some(RedisValue::SimpleString(n)) | Some(RedisValue::BulkString(n)) => {
                n.parse().unwrap_or(16)
            }
            _ => 16,
        },
        _ => 16,
    };
    let original = selected_db(ctx);
    for db in 0..databases {
        // SAFETY: a valid context; db is within the configured range.
        if unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, db) } != raw::REDISMODULE_OK as i32
        {
            continue;
        }
        let cursor = KeysCursor::new();
        while cursor.scan(
            ctx,
            &|ctx: &Context, name: RedisString, _key: Option<&RedisKey>| {
                if let Some(event) = event_with_timed_work(name.as_slice()) {
                    note(ctx, event);
                }
            },
        ) {}
    }
    // SAFETY: as above.
    unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, original) };
}

#[loading_event_handler]
fn after_loading(ctx: &Context, event: LoadingSubevent) {
    if matches!(event, LoadingSubevent::Ended) {
        rediscover(ctx);
    }
}

#[role_changed_event_handler]
fn after_role_change(ctx: &Context, role: ServerRole) {
    if matches!(role, ServerRole::Primary) {
        rediscover(ctx);
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
