//! Opening an event: its two keys, the checks every command makes before
//! it acts, and, after the rule ran, the stream edits, the record that
//! carries the command to replicas and the AOF, and the notifications.
//!
//! A write command reads: `OpenEvent::for_write`, `apply` the rule,
//! `append` if it joined someone, `finish`. Nothing happens behind its
//! back: no write on drop.

use std::ffi::c_int;

use rand_chacha::ChaCha12Rng;
use rand_core::{RngCore, SeedableRng};
use redis_module::{raw, ContextFlags};
use smallvec::SmallVec;

use super::background;
use super::commands::{Call, Origin};
use super::config::defaults;
use super::keys::{field, kind_word, Field, Holds, Key, RStr};
use super::legacy;
use super::metrics;
use crate::domain::buyers::id_text;
use crate::domain::decimal::Decimal;
use crate::domain::entry_id::EntryId;
use crate::domain::error::{TqError, TqResult};
use crate::domain::event::{Counters, Draws, Event, Step};
use crate::domain::happenings::Happening;
use crate::domain::settings::{Setting, Settings};

/// A write command's usual course: open the event, run `rule` on it, make
/// storage follow (`OpenEvent::finish`). The rule's own errors come back
/// inside the result, after storage followed what it did before failing.
pub fn write<T>(
    call: &Call,
    event: &[u8],
    rule: impl FnOnce(&mut Event, &mut Step) -> T,
) -> TqResult<T> {
    let mut open = OpenEvent::for_write(call, event)?;
    let done = open.apply(rule);
    open.finish();
    Ok(done)
}

/// An event opened for a write command.
pub struct OpenEvent<'c> {
    call: &'c Call<'c>,
    queue: Key<'c>,
    state: Key<'c>,
    /// The event log's stream, open while the event keeps a log.
    log: Option<Key<'c>>,
    /// The state of an event that has none stored yet; stored by `finish`
    /// if the command changed it.
    fresh: Option<Box<Event>>,
    step: Step,
    /// The record must tell replicas that the master gave lapsed fans a
    /// full period after a restart (`Event::resume`).
    resumed: bool,
    /// The stream got an entry.
    appended: bool,
    /// The settings a new event started with, before this command changed
    /// anything: what replicas must create it with.
    created_with: Option<Settings>,
    /// For the module-wide totals of `INFO tq`.
    counters_before: Counters,
    passes_before: u64,
}

impl<'c> OpenEvent<'c> {
    pub fn for_write(call: &'c Call<'c>, event: &[u8]) -> TqResult<OpenEvent<'c>> {
        let mut queue = Key::open(call.ctx, RStr::key_name(event, "queue"), true);
        let mut state = Key::open(call.ctx, RStr::key_name(event, "state"), true);
        if state.holds() == Holds::Nothing
            && legacy::convert_for_write(call, event, queue.holds() == Holds::Stream)?
        {
            queue = Key::open(call.ctx, RStr::key_name(event, "queue"), true);
            state = Key::open(call.ctx, RStr::key_name(event, "state"), true);
        }
        check(call, &queue, &state)?;
        if call.origin == Origin::Record
            && call.created_with.is_none()
            && state.holds() == Holds::Nothing
        {
            // The master had this event: a replica without it has diverged.
            return Err(TqError::Damaged(
                "state is missing here but not on the master",
            ));
        }
        let fresh = match state.holds() {
            Holds::State => None,
            _ => Some(Box::new(Event::new(
                call.created_with.unwrap_or_else(defaults),
            ))),
        };
        let mut open = OpenEvent {
            call,
            queue,
            state,
            log: None,
            created_with: fresh.as_ref().map(|e| e.settings),
            fresh,
            step: Step {
                draws: match call.origin {
                    Origin::Client => Draws::Fresh(random_draw),
                    Origin::Record => Draws::Recorded(call.draws.iter().copied().collect()),
                },
                ..Step::new(call.now_ms)
            },
            resumed: false,
            appended: false,
            counters_before: Counters::default(),
            passes_before: 0,
        };
        let (state, step) = open.parts();
        let (counters, passes) = (state.counters, state.buyers.passes());
        // Joins, polls and settings write to the log only through the
        // removals due before them, and a setting through an opening it may
        // set or bring forward: without either, their step keeps no log and
        // does not open its key (joins and polls are most of a sale's
        // commands).
        let may_write = state.settings.events > 0
            && (!matches!(call.verb, "enqueue" | "position" | "config")
                || state.due_by(call.now_ms)
                || (call.verb == "config" && state.before_opening()));
        let log = match may_write {
            true => {
                state.open_log(step);
                Some(open_log(call, event)?)
            }
            false => None,
        };
        open.counters_before = counters;
        open.passes_before = passes;
        open.log = log;
        let resume = match call.origin {
            Origin::Client => open.event().restarted,
            Origin::Record => call.resumed,
        };
        if resume {
            let (event, step) = open.parts();
            event.resume(step);
            open.resumed = true;
        }
        if call.origin == Origin::Record && call.ctx.get_flags().contains(ContextFlags::LOADING) {
            // Replayed from the AOF at a restart: the master resumes it
            // after the load like one loaded from an RDB.
            open.event().restarted = true;
        }
        Ok(open)
    }

    pub fn event(&mut self) -> &mut Event {
        self.parts().0
    }

    fn parts(&mut self) -> (&mut Event, &mut Step) {
        let event = match self.fresh.as_deref_mut() {
            Some(event) => event,
            None => self.state.state_mut().expect("checked at open"),
        };
        (event, &mut self.step)
    }

    /// Runs a rule on the event with this command's step.
    pub fn apply<T>(&mut self, rule: impl FnOnce(&mut Event, &mut Step) -> T) -> T {
        let (event, step) = self.parts();
        rule(event, step)
    }

    /// Appends the stream entry of a join; `token` and `user` are the
    /// call's own argument strings (`Call::strings`).
    pub fn append(
        &mut self,
        id: EntryId,
        token: *mut raw::RedisModuleString,
        user: *mut raw::RedisModuleString,
    ) -> TqResult<()> {
        let mut fields = [field(Field::Token), token, field(Field::User), user];
        if !self.queue.stream_add(id, &mut fields) {
            return Err(TqError::Damaged(
                "queue already holds a later entry than its state",
            ));
        }
        self.appended = true;
        Ok(())
    }

    /// Makes storage follow the step: the stream loses the entries that
    /// left, a new event's state is stored, and the command reaches
    /// replicas and the AOF as one record, if anything changed.
    pub fn finish(mut self) {
        let mut removed = std::mem::take(&mut self.step.removed);
        let left_queue = !removed.is_empty();
        let (event, step) = self.parts();
        if let Some(notes) = event.close_log(step) {
            // Takes the entries it names out of the queue's stream.
            self.write_log(&notes, &mut removed);
        }
        if !removed.is_empty() {
            self.delete_from_stream(&removed);
        }
        if self.appended {
            self.queue
                .notify(raw::REDISMODULE_NOTIFY_STREAM as c_int, c"xadd");
        }
        if self.appended || left_queue {
            self.queue.signal_modified();
        }
        if !self.step.changed {
            return;
        }
        let next_due = self.event().next_due_ms();
        self.tell_due(next_due);
        let (before, after) = (self.counters_before, self.event().counters);
        metrics::record_totals(&before, &after);
        if self.fresh.is_none() {
            // A new state counts its passes as it is stored (`set_state`).
            let passes = self.event().buyers.passes() as i64;
            metrics::passes_stored(passes - self.passes_before as i64);
        }
        let created = self.fresh.take().map(|event| {
            self.state.set_state(event);
            self.created_with.expect("set with the fresh state")
        });
        self.state.signal_modified();
        match self.call.origin {
            Origin::Client => self.replicate(created),
            Origin::Record => {
                // SAFETY: valid context of the running command.
                unsafe { raw::RedisModule_ReplicateVerbatim.unwrap()(self.call.ctx.ctx) };
            }
        }
    }

    /// Gives the due index the event's next deadline, if it moved.
    pub fn tell_due(&mut self, due: Option<u64>) {
        let event = self.event();
        if event.due_told == Some(due) {
            return;
        }
        event.due_told = Some(due);
        // SAFETY: valid context of the running command.
        let db = unsafe { raw::RedisModule_GetSelectedDb.unwrap()(self.call.ctx.ctx) };
        background::schedule(db, self.call.args[0], due);
    }

    /// Appends the step's notes to the event log, each entry naming its
    /// subject, with the ids the event chose (`Event::close_log`), so that
    /// a replica or an AOF replay appends the very same entries; then keeps
    /// the log between `events` and a tenth more entries (exact trims, so every copy keeps
    /// the same ones, whatever its stream node sizes).
    ///
    /// A note that names a waiting entry takes its `token` and `user` from
    /// the queue's stream, deleting the entry in the same pass: such
    /// entries leave `removed`.
    fn write_log(&mut self, notes: &[(EntryId, Happening)], removed: &mut Vec<EntryId>) {
        if notes.is_empty() {
            return;
        }
        let keep = self.event().settings.events;
        // Open whenever the step keeps notes (`for_write`).
        let Some(log) = self.log.take() else {
            return;
        };
        let mut taken = Vec::new();
        for (id, note) in notes {
            let subject = note.subject();
            // The strings made for this entry, alive until it is added.
            let mut made: SmallVec<[RStr; 4]> = SmallVec::new();
            let mut fields: SmallVec<[*mut raw::RedisModuleString; 10]> =
                smallvec::smallvec![field(Field::Type), kind_word(note)];
            if let Some(entry) = subject.entry {
                // The entry's own `token` and `user` fields and values.
                if let Some(strings) = self.queue.stream_take(entry) {
                    fields.extend(strings.iter().map(|s| s.ptr));
                    made.extend(strings);
                    taken.push(entry);
                }
            }
            let pass = subject.pass.map(id_text);
            let named = [
                (Field::Seat, subject.seat),
                (Field::User, subject.user),
                (Field::Pass, pass.as_ref().map(|p| &p[..])),
            ];
            for (name, value) in named {
                if let Some(value) = value {
                    let value = RStr::new(value);
                    fields.extend([field(name), value.ptr]);
                    made.push(value);
                }
            }
            if !log.stream_add(*id, &mut fields) {
                // Only an entry written into the log by hand at a later id
                // can refuse this one.
                super::log::warning(
                    "tq: the event log holds a later entry than tq wrote; a note was lost",
                );
            }
        }
        log.notify(raw::REDISMODULE_NOTIFY_STREAM as c_int, c"xadd");
        if log.value_length() > keep + (keep / 10).max(1) {
            log.stream_trim_to(keep);
            log.notify(raw::REDISMODULE_NOTIFY_STREAM as c_int, c"xtrim");
        }
        log.signal_modified();
        if !taken.is_empty() {
            taken.sort_unstable();
            removed.retain(|id| taken.binary_search(id).is_err());
            self.queue
                .notify(raw::REDISMODULE_NOTIFY_STREAM as c_int, c"xdel");
        }
    }

    /// Entries that left: a few are deleted one by one; a crowd that is a
    /// run at the front of the stream goes in one exact trim. (Either way
    /// Redis walks the deleted entries of the stream node it touches, but a
    /// trim walks the whole node, a deletion only up to its entry.)
    fn delete_from_stream(&mut self, removed: &[EntryId]) {
        const ONE_BY_ONE: usize = 16;
        let event = self.event();
        // The lowest id still waiting is the front's, unless a shuffled
        // pre-queue waits: then no run is cut off.
        let limit = match event.queue.oldest_id() {
            _ if !event.ids_follow_order() => EntryId::new(0, 0),
            Some(oldest) => oldest,
            None => event.queue.last_id.map_or(EntryId::new(0, 0), |last| {
                EntryId::new(last.ms, last.seq.saturating_add(1))
            }),
        };
        if removed.len() > ONE_BY_ONE && removed.iter().all(|id| *id < limit) {
            self.queue.stream_trim_below(limit);
            self.queue
                .notify(raw::REDISMODULE_NOTIFY_STREAM as c_int, c"xtrim");
        } else {
            for id in removed {
                self.queue.stream_delete(*id);
            }
            self.queue
                .notify(raw::REDISMODULE_NOTIFY_STREAM as c_int, c"xdel");
        }
    }

    /// `TQ.APPLY <event> <now> [NEW <setting> <value>...] [RESUME]
    /// [DRAW <hex>...] <verb> <args>`.
    ///
    /// Redis makes the strings of the number and the verb itself; the
    /// event and the arguments are the call's own strings, passed on. Only
    /// the rare parts (NEW, RESUME, DRAW) are strings made here.
    fn replicate(&self, created: Option<Settings>) {
        let call = self.call;
        // On the stack unless the command created the event (NEW).
        let mut made: smallvec::SmallVec<[RStr; 4]> = smallvec::SmallVec::new();
        if let Some(settings) = created {
            made.push(RStr::new(b"NEW"));
            for setting in Setting::ALL {
                made.push(RStr::new(setting.keyword().as_bytes()));
                made.push(RStr::new(&Decimal::of(settings.get(setting))));
            }
        }
        if self.resumed {
            made.push(RStr::new(b"RESUME"));
        }
        for draw in &self.step.drawn {
            made.push(RStr::new(b"DRAW"));
            made.push(RStr::new(&id_text(draw)));
        }
        let rare: smallvec::SmallVec<[*mut raw::RedisModuleString; 4]> =
            made.iter().map(|s| s.ptr).collect();
        let (event, args) = (call.strings[0], &call.strings[1..]);
        let now = call.now_ms.min(i64::MAX as u64) as std::ffi::c_longlong;
        let verb = call.verb.as_bytes();
        // SAFETY: each format letter takes the argument it documents: 's'
        // a live string, 'l' a long long, 'b' a pointer and a length, 'v'
        // an array of live strings and its length; `made` and `rare`
        // outlive the call, which copies or counts what it keeps.
        unsafe {
            let replicate = raw::RedisModule_Replicate.unwrap();
            if rare.is_empty() {
                replicate(
                    call.ctx.ctx,
                    c"tq.apply".as_ptr(),
                    c"slbv".as_ptr(),
                    event,
                    now,
                    verb.as_ptr(),
                    verb.len(),
                    args.as_ptr(),
                    args.len(),
                );
            } else {
                replicate(
                    call.ctx.ctx,
                    c"tq.apply".as_ptr(),
                    c"slvbv".as_ptr(),
                    event,
                    now,
                    rare.as_ptr(),
                    rare.len(),
                    verb.as_ptr(),
                    verb.len(),
                    args.as_ptr(),
                    args.len(),
                );
            }
        }
    }
}

/// The event log's stream key, open for writing; `WRONGTYPE` if the key
/// holds anything but a stream.
fn open_log<'c>(call: &'c Call<'c>, event: &[u8]) -> TqResult<Key<'c>> {
    let log = Key::open(call.ctx, RStr::key_name(event, "events"), true);
    match log.holds() {
        Holds::Nothing | Holds::Stream => Ok(log),
        _ => Err(TqError::WrongType),
    }
}

/// A fresh random draw on the master (a new pass's id), from a ChaCha12
/// generator in module memory seeded once from Redis' own generator:
/// `RM_GetRandomBytes` runs a SHA-256 HMAC in software on every call, many
/// times dearer than a ChaCha block.
fn random_draw() -> [u8; 16] {
    static GENERATOR: parking_lot::Mutex<Option<ChaCha12Rng>> = parking_lot::const_mutex(None);
    let mut generator = GENERATOR.lock();
    let generator = generator.get_or_insert_with(|| {
        let mut seed = [0u8; 32];
        // SAFETY: writes exactly `seed.len()` bytes into the buffer.
        unsafe { raw::RedisModule_GetRandomBytes.unwrap()(seed.as_mut_ptr(), seed.len()) };
        ChaCha12Rng::from_seed(seed)
    });
    let mut bytes = [0u8; 16];
    generator.fill_bytes(&mut bytes);
    bytes
}

/// A command that is a read or a write by its arguments (TQ.INVENTORY,
/// TQ.CONFIG) is not flagged `write`, so that its read answers on a
/// replica and when memory is full; its write form gets Redis' own
/// refusals here.
pub fn refuse_write_here(call: &Call) -> TqResult<()> {
    if call.origin == Origin::Record {
        return Ok(());
    }
    let flags = call.ctx.get_flags();
    if flags.contains(ContextFlags::SLAVE)
        && flags.contains(ContextFlags::READONLY)
        && !flags.contains(ContextFlags::REPLICATED)
    {
        return Err(TqError::ReadOnlyReplica);
    }
    if flags.contains(ContextFlags::OOM) {
        return Err(TqError::OutOfMemory);
    }
    Ok(())
}

/// An event opened by a read: its state as stored, if any.
pub struct ReadEvent<'c> {
    queue: Key<'c>,
    state: Key<'c>,
    /// An event stored by tq 0.2, converted in memory for this read.
    legacy: Option<Event>,
}

impl<'c> ReadEvent<'c> {
    pub fn open(call: &'c Call<'c>, event: &[u8]) -> TqResult<ReadEvent<'c>> {
        let queue = Key::open(call.ctx, RStr::key_name(event, "queue"), false);
        let state = Key::open(call.ctx, RStr::key_name(event, "state"), false);
        let legacy = match state.holds() {
            Holds::Nothing => legacy::read_in_memory(call, event, queue.holds() == Holds::Stream)?,
            _ => None,
        };
        if legacy.is_none() {
            check(call, &queue, &state)?;
        }
        Ok(ReadEvent {
            queue,
            state,
            legacy,
        })
    }

    /// The token of waiting entry `id`, which the stream holds (the state
    /// knows it by its digest).
    pub fn token(&self, id: EntryId) -> TqResult<Vec<u8>> {
        self.queue
            .stream_field(id, b"token")
            .ok_or(TqError::Damaged("queue lacks an entry its state has"))
    }

    /// The stored state; `None` for an event never written to.
    pub fn event(&self) -> Option<&Event> {
        self.legacy.as_ref().or_else(|| self.state.state())
    }
}

/// The checks every command makes before it acts: both keys hold what tq
/// put there, and agree with each other. A key of an event can go missing
/// without tq (evicted under an `allkeys-*` policy, deleted by hand, or not
/// yet migrated to this node): then the other cannot be trusted.
fn check(call: &Call, queue: &Key, state: &Key) -> TqResult<()> {
    let (queue_holds, state_holds) = (queue.holds(), state.holds());
    if !matches!(queue_holds, Holds::Nothing | Holds::Stream)
        || !matches!(state_holds, Holds::Nothing | Holds::State)
    {
        return Err(TqError::WrongType);
    }
    let waiting = state.state().map(Event::waiting);
    let stored = queue.value_length();
    let damage = match (queue_holds, waiting) {
        (Holds::Stream, None) => Some("state is missing while its queue exists"),
        (Holds::Nothing, Some(n)) if n > 0 => {
            Some("queue is missing while its state says fans wait")
        }
        (Holds::Stream, Some(n)) if n != stored => Some("queue does not hold what its state says"),
        _ => None,
    };
    match damage {
        // In a cluster, a key missing here is most likely still on the way
        // from another node (slot migration): the client retries.
        Some(_)
            if call.ctx.get_flags().contains(ContextFlags::CLUSTER)
                && (queue_holds == Holds::Nothing || state_holds == Holds::Nothing) =>
        {
            Err(TqError::TryAgain)
        }
        Some(what) => Err(TqError::Damaged(what)),
        None => Ok(()),
    }
}
