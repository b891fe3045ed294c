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
//!
//! Each event also remembers when its next entry or hold falls due, so an
//! idle tick costs one map walk, not a look at every event's keys. Anything
//! that could bring a deadline forward (any write to the event, a change of
//! the default heartbeat, loading, promotion) makes the event due at once.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use parking_lot::Mutex;
use redis_module::key::RedisKey;
use redis_module::server_events::{LoadingSubevent, ServerRole};
use redis_module::{
    raw, Context, ContextFlags, KeysCursor, NotifyEvent, RedisString, RedisValue, Status,
};
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

/// Events with timed work, per database, with when each is next due (ms).
static EVENTS: Mutex<BTreeMap<i32, HashMap<Vec<u8>, u64>>> = Mutex::new(BTreeMap::new());

/// Due now: at the next tick.
const NOW: u64 = 0;
/// After a failed attempt, retry in a second (not every tick).
const RETRY_MS: u64 = 1000;

fn selected_db(ctx: &Context) -> i32 {
    // SAFETY: valid context for the duration of the callback.
    unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.ctx) }
}

/// Records that `event` in the selected database may have timed work,
/// due at the next tick.
pub fn note(ctx: &Context, event: &[u8]) {
    let db = selected_db(ctx);
    let mut events = EVENTS.lock();
    let due = events.entry(db).or_default();
    match due.get_mut(event) {
        Some(at) => *at = NOW,
        None => {
            due.insert(event.to_vec(), NOW);
        }
    }
}

/// Makes every known event due at the next tick (`tq.heartbeat` changed,
/// so their deadlines may have moved).
pub fn all_due_now() {
    for due in EVENTS.lock().values_mut() {
        due.values_mut().for_each(|at| *at = NOW);
    }
}

/// Subscribes to the keyspace events by which an event's keys can arrive
/// without a TQ command: RDB loading, and the generic class (RESTORE in a
/// slot migration, RENAME, COPY...).
///
/// Registered with the raw API rather than `redis_module!`'s
/// `event_handlers`: Redis calls this for every generic event of the whole
/// server (each DEL or EXPIRE of any key), and the crate's wrapper first
/// builds a context and a UTF-8 event name (~170 instructions a call,
/// where checking the key name is enough), without a guard against panics.
pub fn subscribe_to_key_events(ctx: &Context) -> Status {
    let classes = (NotifyEvent::GENERIC | NotifyEvent::LOADED).bits();
    // SAFETY: a valid context during module load; the callback lives as
    // long as the module.
    let status = unsafe {
        raw::RedisModule_SubscribeToKeyspaceEvents.unwrap()(ctx.ctx, classes, Some(on_key_event))
    };
    if status == raw::REDISMODULE_OK as c_int {
        Status::Ok
    } else {
        Status::Err
    }
}

/// Keyspace-event callback: only records event names, never writes
/// (writing from here is unsafe on Redis 7.0).
extern "C" fn on_key_event(
    ctx: *mut raw::RedisModuleCtx,
    _class: c_int,
    _event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    // Nothing here should panic; if it ever did, Redis must not go down.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let mut len = 0;
        // SAFETY: Redis passes a valid key name for the callback's duration.
        let name = unsafe {
            let ptr = raw::RedisModule_StringPtrLen.unwrap()(key, &mut len);
            std::slice::from_raw_parts(ptr.cast::<u8>(), len)
        };
        if let Some(event) = event_with_timed_work(name) {
            note(&Context::new(ctx), event);
        }
    }));
    raw::REDISMODULE_OK as c_int
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
    let now = now_ms();
    let due: Vec<(i32, Vec<u8>)> = EVENTS
        .lock()
        .iter()
        .flat_map(|(db, events)| {
            events
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(move |(name, _)| (*db, name.clone()))
        })
        .collect();
    let original = selected_db(ctx);
    for (db, name) in due {
        // SAFETY: valid timer context; db came from a real selected db.
        unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, db) };
        let next = match reap_event(ctx, &name, now) {
            Ok(next) => next,
            // Mid-migration: the node that ends up with the keys reaps them.
            Err(TqError::TryAgain) => Some(now + RETRY_MS),
            Err(e) => {
                ctx.log_warning(&format!(
                    "tq: reaping event '{}' failed: {e}",
                    String::from_utf8_lossy(&name)
                ));
                Some(now + RETRY_MS)
            }
        };
        schedule(db, &name, next);
    }
    // SAFETY: as above.
    unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, original) };
}

/// Sets when the event is next due; None forgets it. (Nothing else runs
/// while the timer does, so no write can have come in meanwhile.)
fn schedule(db: i32, name: &[u8], next: Option<u64>) {
    let mut events = EVENTS.lock();
    let Some(due) = events.get_mut(&db) else {
        return;
    };
    match next {
        Some(next) => {
            if let Some(at) = due.get_mut(name) {
                *at = next;
            }
        }
        None => {
            due.remove(name);
        }
    }
}

/// Reaps one event; returns when it is next due, None once it has no timed
/// work left.
fn reap_event(ctx: &Context, name: &[u8], now: u64) -> TqResult<Option<u64>> {
    let mut store = RedisStore::new(ctx, name);
    store.guard(&Fixed::ALL, &[])?;
    let settings = event::settings(&mut store, &defaults())?;
    let abandoned = queue::reap_abandoned(&mut store, &settings, now, BATCH)?;
    let expired = seats::expire_holds(&mut store, now, BATCH)?;
    if abandoned as usize == BATCH || expired as usize == BATCH {
        return Ok(Some(NOW)); // more due than one batch
    }
    Ok(store.next_deadline(&settings))
}
