//! Work that must happen with nobody touching an event: abandoned entries
//! leave, expired holds give their seats back, closed DEDUPE windows are
//! forgotten, and, after a restart, fans whose heartbeat lapsed during the
//! downtime get a full period.
//!
//! The master does it from a timer, one `advance` step per due event,
//! replicated like a command (`TQ.APPLY <event> <now> ADVANCE`). Which
//! events have work due, and when, is the due index: an index over the
//! data, never a copy of it. It is fed by every write command (the event's
//! next deadline) and by every state that arrives in other ways (loading,
//! RESTORE, COPY: `watch`); an event found without a state is dropped.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis_module::server_events::LoadingSubevent;
use redis_module::{raw, Context, ContextFlags};
use redis_module_macros::loading_event_handler;

use super::commands::{clock_ms, Call, Origin};
use super::event_keys::OpenEvent;
use super::keys::RStr;
use super::reply::Reply;
use super::state_type::event_of_state_key;
use crate::domain::args;
use crate::domain::error::{TqError, TqResult};
use crate::domain::event::Event;

/// How often the timer looks at the due index.
const TICK: Duration = Duration::from_millis(20);
/// Work one tick may do before it leaves the rest to the next one, so that
/// Redis' thread is never held long.
const TICK_WORK: Duration = Duration::from_millis(5);
/// After a failed step, retry this much later rather than every tick.
const RETRY_MS: u64 = 1000;

type EventRef = (i32, Vec<u8>);

#[derive(Default)]
struct DueIndex {
    by_time: BTreeSet<(u64, EventRef)>,
    by_event: HashMap<EventRef, u64>,
}

impl DueIndex {
    fn set(&mut self, event: EventRef, due: Option<u64>) {
        if let Some(old) = self.by_event.remove(&event) {
            self.by_time.remove(&(old, event.clone()));
        }
        if let Some(at) = due {
            self.by_time.insert((at, event.clone()));
            self.by_event.insert(event, at);
        }
    }

    fn due(&self, now_ms: u64) -> Vec<EventRef> {
        self.by_time
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

static DUE: Mutex<Option<DueIndex>> = Mutex::new(None);

/// Whether the data being loaded is this server's own, at a restart
/// (RDB or AOF at startup, DEBUG RELOAD), rather than a replica's sync.
static LOADING_AT_RESTART: AtomicBool = AtomicBool::new(false);

/// Records when `event` in `db` next has work due (`None`: never).
pub fn schedule(db: i32, event: &[u8], due: Option<u64>) {
    DUE.lock()
        .get_or_insert_with(DueIndex::default)
        .set((db, event.to_vec()), due);
}

/// A state arrived without a command (loading, RESTORE, COPY): look at it
/// at the next tick.
pub fn watch(db: i32, state_key: &[u8]) {
    if let Some(event) = event_of_state_key(state_key).filter(|e| args::event(e).is_ok()) {
        schedule(db, event, Some(0));
    }
}

/// Called for every state `rdb_load` decodes.
pub fn note_loaded_state(event: &mut Event) {
    event.restarted = LOADING_AT_RESTART.load(Ordering::Relaxed);
}

#[loading_event_handler]
fn on_loading(_ctx: &Context, loading: LoadingSubevent) {
    let restart = matches!(
        loading,
        LoadingSubevent::RdbStarted | LoadingSubevent::AofStarted
    );
    LOADING_AT_RESTART.store(restart, Ordering::Relaxed);
}

pub fn start(ctx: &Context) {
    ctx.create_timer(TICK, tick, ());
}

fn tick(ctx: &Context, _: ()) {
    if catch_unwind(AssertUnwindSafe(|| run_due(ctx))).is_err() {
        super::log::warning("tq: a background step panicked; it is retried later");
    }
    start(ctx);
}

fn run_due(ctx: &Context) {
    let flags = ctx.get_flags();
    if !flags.contains(ContextFlags::MASTER) || flags.contains(ContextFlags::LOADING) {
        return; // replicas get the master's steps through replication
    }
    let started = Instant::now();
    let now = clock_ms();
    let due = DUE.lock().as_ref().map(|d| d.due(now)).unwrap_or_default();
    // SAFETY: valid timer context.
    let original = unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.ctx) };
    for (db, event) in due {
        if started.elapsed() > TICK_WORK {
            break;
        }
        // SAFETY: valid timer context; `db` was a selected database.
        unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, db) };
        let step_started = Instant::now();
        let name = RStr::new(&event);
        let strings = [name.ptr];
        let args: [&[u8]; 1] = [&event];
        let call = Call {
            draws: &[],
            ctx,
            args: &args,
            strings: &strings,
            now_ms: now,
            origin: Origin::Client,
            verb: "advance",
            created_with: None,
            resumed: false,
        };
        match advance(&call) {
            Ok(_) => {}
            // Mid-migration: the node that ends up with the keys does it.
            Err(TqError::TryAgain) => schedule(db, &event, Some(now + RETRY_MS)),
            // A key of the event is gone: nothing to do until it is whole
            // again, which only a write can make it.
            Err(TqError::Damaged(_)) => schedule(db, &event, None),
            Err(e) => {
                super::log::warning(&format!(
                    "background step of event '{}' failed: {e}",
                    String::from_utf8_lossy(&event).escape_default()
                ));
                schedule(db, &event, Some(now + RETRY_MS));
            }
        }
        super::metrics::record_background_step(step_started.elapsed().as_nanos() as u64);
    }
    // SAFETY: as above.
    unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, original) };
}

/// One background step on the event named by `call.args[0]`: the timer's
/// own work, and the `ADVANCE` record that carries it to replicas.
pub fn advance(call: &Call) -> TqResult<Reply> {
    let name = call.args.first().copied().unwrap_or_default();
    let mut open = OpenEvent::for_write(call, name)?;
    // What is left due (more than one step's budget) is due by now: the
    // next tick comes back for it.
    open.apply(|event, step| event.advance(step));
    // Told even when unchanged: the timer found the event in the index,
    // which may be a `watch` that the event itself never told.
    open.event().due_told = None;
    let next = open.event().next_due_ms();
    open.tell_due(next);
    open.finish();
    Ok(Reply::ok())
}
