//! One event (the sale): its whole state, and every rule that changes it.
//!
//! Each write rule takes a `Step`: the one `now` the command runs at, and
//! what the step did that storage outside this state must follow (stream
//! entries to delete) and whether anything changed (so that a command that
//! changes nothing replicates nothing). A step first brings the event up to
//! its `now` (`advance`): abandoned entries leave, expired holds give their
//! seats back, closed DEDUPE windows are forgotten. Rules never read the
//! clock; given the same state, `now` and arguments they do the same thing,
//! which is what lets a replica or an AOF replay apply the same command.

use std::collections::VecDeque;

use super::bucket::{self, Admissions, BucketState};
use super::buyers::{Buyers, Pass, PassId};
use super::dedupe::Dedupe;
use super::entry_id::EntryId;
use super::error::{TqError, TqResult};
use super::happenings::{Happening, Log};
use super::names::{digest_of, NameDigest};
use super::opening::{shuffle_place, Opening, MAX_PREQUEUE_JOINS};
use super::queue::Queue;
use super::seats::{Seat, Seats};
use super::settings::{Setting, Settings, SettingsChange, MAX_INVENTORY};

/// Most removals of each kind (abandoned entries, expired holds, closed
/// dedupe windows) in one step, so that no step holds Redis' thread for
/// long when a crowd lapses at once; the rest is left for the next step.
/// Sized for the dearest case: entries scattered through the queue, each
/// deleted from the middle of its stream node.
pub const STEP_BUDGET: usize = 512;

/// What one step did besides changing the state itself.
#[derive(Debug, Default)]
pub struct Step {
    pub now_ms: u64,
    /// Stream entries to delete: entries that left the queue.
    pub removed: Vec<EntryId>,
    /// Whether the state changed.
    pub changed: bool,
    /// Where the step's random draws come from.
    pub draws: Draws,
    /// The draws the step took, in order: what a replica must be given.
    pub drawn: Vec<[u8; 16]>,
    /// What happened, for the event log: kept only while the event has
    /// one (`Event::open_log`).
    pub log: Option<Log>,
}

/// Where a rule's random draws (a new pass's id) come from. The rules
/// never draw for themselves: a replica must take the master's.
#[derive(Debug, Default)]
pub enum Draws {
    /// None may be taken: a rule that needs one fails.
    #[default]
    Unavailable,
    /// Fresh ones from the caller's source (on the master).
    Fresh(fn() -> [u8; 16]),
    /// The ones the master took, in order (a replica, an AOF replay).
    Recorded(VecDeque<[u8; 16]>),
    /// Tests: made from the step's time, the same for every copy of a
    /// state that runs the same commands.
    #[cfg(test)]
    FromTime,
}

impl Step {
    pub fn new(now_ms: u64) -> Step {
        Step {
            now_ms,
            ..Step::default()
        }
    }

    /// A step whose draws are made from its time (tests).
    #[cfg(test)]
    pub fn testing(now_ms: u64) -> Step {
        Step {
            draws: Draws::FromTime,
            ..Step::new(now_ms)
        }
    }

    /// The next random draw. `salt` tells draws apart where a record
    /// carries none: one written by tq 0.3, which drew nothing, replayed
    /// here gets a value made from its time and `salt`, the same on every
    /// server that replays it.
    pub fn draw(&mut self, salt: u64) -> TqResult<[u8; 16]> {
        let value = match &mut self.draws {
            Draws::Unavailable => {
                return Err(TqError::Internal(
                    "a rule needs a random draw and has none".into(),
                ))
            }
            Draws::Fresh(source) => source(),
            Draws::Recorded(left) => match left.pop_front() {
                Some(value) => value,
                None => {
                    let mut seed = [0u8; 24];
                    seed[..8].copy_from_slice(&self.now_ms.to_be_bytes());
                    seed[8..16].copy_from_slice(&salt.to_be_bytes());
                    seed[16..].copy_from_slice(&(self.drawn.len() as u64).to_be_bytes());
                    digest_of(&seed)
                }
            },
            #[cfg(test)]
            Draws::FromTime => {
                digest_of(format!("{}-{}", self.now_ms, self.drawn.len()).as_bytes())
            }
        };
        self.drawn.push(value);
        Ok(value)
    }

    /// Notes what happened, if the event keeps a log (`make` runs only
    /// then).
    pub fn note(&mut self, make: impl FnOnce() -> Happening) {
        if let Some(log) = &mut self.log {
            log.note(make());
        }
    }

    /// Notes what happened to each entry removed from `from` on in
    /// `removed`.
    fn note_removed(&mut self, from: usize, make: fn(EntryId) -> Happening) {
        if let Some(log) = &mut self.log {
            for &entry in &self.removed[from..] {
                log.note(make(entry));
            }
        }
    }
}

/// Counters kept so that TQ.STATS is O(1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Seats still available.
    pub inventory: u64,
    /// Whether TQ.INVENTORY SET was ever called.
    pub inventory_set: bool,
    pub sold: u64,
    pub admitted: u64,
    pub duplicates: u64,
    pub abandoned: u64,
    pub holds_expired: u64,
    pub joined: u64,
    pub left: u64,
    pub trimmed: u64,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub settings: Settings,
    pub queue: Queue,
    pub dedupe: Dedupe,
    pub seats: Seats,
    /// Passes, and seats held and bought per user.
    pub buyers: Buyers,
    /// `None`: full.
    pub bucket: Option<BucketState>,
    pub admissions: Admissions,
    pub counters: Counters,
    /// The id of the newest entry of the event log: tq chooses each log
    /// entry's id itself, as it does the queue's (`Queue::last_id`), so
    /// that every copy of the event appends the same ones.
    pub log_last_id: Option<EntryId>,
    /// The scheduled opening, once OPENS-AT was set (`opening`).
    pub opening: Option<Opening>,
    /// Not stored: set when this state was loaded from disk at a restart,
    /// until the master's first step on it gives the fans whose heartbeat
    /// lapsed during the downtime a full period (`resume`).
    pub restarted: bool,
    /// Not stored: the next deadline last given to the Redis side's due
    /// index, so that a command that does not move it does not tell it
    /// again.
    /// `None`: nothing told yet.
    pub due_told: Option<Option<u64>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub id: EntryId,
    pub position: u64,
    pub user_position: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PositionInfo {
    pub position: u64,
    pub user_position: u64,
    pub ready: bool,
    pub eta_ms: i64,
    pub waited_ms: u64,
    pub sold_out: bool,
    /// Until the scheduled opening (0 once open).
    pub opens_in_ms: u64,
}

/// What TQ.ENTER gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub position_was: u64,
    pub pass: Pass,
}

/// What TQ.PASS shows of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassView {
    pub pass: Option<Pass>,
    pub held: u64,
    pub bought: u64,
}

/// What TQ.PASS does besides showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassAction {
    Show,
    /// Renew first; the user must have a live pass.
    Touch,
    /// End the pass at once.
    Revoke,
}

/// One of a user's waiting entries (TQ.USER; its token is in the stream,
/// at `id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub id: EntryId,
    pub position: u64,
}

/// What TQ.SEAT shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatView {
    pub state: &'static str,
    pub user: Option<Vec<u8>>,
    pub ttl_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub waiting: u64,
    pub admitted: u64,
    pub admission_rate: f64,
    pub inventory: u64,
    pub held: u64,
    pub sold: u64,
    pub duplicates: u64,
    pub abandoned: u64,
    pub holds_expired: u64,
    /// Live passes.
    pub active: u64,
    /// Inventory set at least once, and no seat available or held: none
    /// can come back.
    pub sold_out: bool,
    pub opens_in_ms: u64,
    pub joined: u64,
    pub left: u64,
    pub trimmed: u64,
}

// ---- heartbeats ---------------------------------------------------------

/// How long after its last recorded heartbeat an entry is abandoned: one
/// period plus the tenth by which heartbeats may be recorded late
/// (`beat_step_ms`), so nobody is dropped before a full period since their
/// last poll, and nobody later than 1.1 periods.
fn lapse_ms(settings: &Settings) -> u64 {
    settings.heartbeat_ms() + beat_step_ms(settings)
}

/// A poll is recorded only once the recorded heartbeat is this old, so
/// most polls store and replicate nothing.
fn beat_step_ms(settings: &Settings) -> u64 {
    settings.heartbeat_ms() / 10
}

impl Event {
    pub fn new(settings: Settings) -> Event {
        Event {
            settings,
            queue: Queue::default(),
            dedupe: Dedupe::default(),
            seats: Seats::default(),
            buyers: Buyers::default(),
            bucket: None,
            admissions: Admissions::default(),
            counters: Counters::default(),
            log_last_id: None,
            opening: None,
            restarted: false,
            due_told: None,
        }
    }

    /// Entries stored in the queue (`XLEN` of its stream).
    pub fn waiting(&self) -> u64 {
        self.queue.len()
    }

    // ---- the event log ---------------------------------------------------

    /// Starts the step's notes if the event keeps a log (`events` > 0).
    pub fn open_log(&self, step: &mut Step) {
        if self.settings.events > 0 {
            step.log = Some(Log {
                notes: Vec::new(),
                next_id: EntryId::next_after(self.log_last_id, step.now_ms),
                sold_out_before: self.sold_out(step.now_ms),
            });
        }
    }

    /// The step's notes, ending with `sold_out` if the step made the event
    /// sold out, each with the id of its log entry. `None` if the event
    /// keeps no log.
    pub fn close_log(&mut self, step: &mut Step) -> Option<Vec<(EntryId, Happening)>> {
        let mut log = step.log.take()?;
        if !log.sold_out_before && self.sold_out(step.now_ms) {
            log.note(Happening::SoldOut);
        }
        if let Some(&(last, _)) = log.notes.last() {
            self.log_last_id = Some(last);
        }
        Some(log.notes)
    }

    // ---- time ----------------------------------------------------------

    /// Brings the event up to `step.now_ms`: at most `STEP_BUDGET` of each
    /// kind of due removal. Returns whether more is due already.
    pub fn advance(&mut self, step: &mut Step) -> bool {
        let now = step.now_ms;
        self.open_if_due(step);
        let abandoned = self.abandon(step);
        let expired = self.expire_holds(step);
        let lapsed = self.lapse_passes(step);
        let forgotten = self.dedupe.purge(now, STEP_BUDGET);
        if abandoned + expired + lapsed + forgotten > 0 {
            step.changed = true;
        }
        self.next_due_ms().is_some_and(|at| at <= now)
    }

    /// When the next removal falls due, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        let lapse = self
            .queue
            .by_beat()
            .next()
            .map(|slot| self.abandoned_at(slot));
        let opening = self
            .opening
            .filter(|o| !o.done)
            .map(|_| self.settings.opens_at_ms);
        [
            lapse,
            self.seats.next_due_ms(),
            self.buyers.next_due_ms(),
            self.dedupe.next_due_ms(),
            opening,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether a removal (or the opening) is due by `now_ms`. The deadline
    /// last told to the due index (`due_told`) answers without touching the
    /// queue's records: deadlines move only when a step changes the event,
    /// and every such step tells the new one.
    pub fn due_by(&self, now_ms: u64) -> bool {
        let next = match self.due_told {
            Some(told) => told,
            None => self.next_due_ms(),
        };
        next.is_some_and(|at| at <= now_ms)
    }

    /// After a restart: fans whose heartbeat lapsed while the server was
    /// down get a full period from `now`, as if they had just polled.
    pub fn resume(&mut self, step: &mut Step) {
        let now = step.now_ms.max(self.queue.newest_beat_ms().unwrap_or(0));
        let lapsed = self.lapsed_by_beat(step.now_ms);
        for &slot in &lapsed {
            self.queue.touch(slot, now);
        }
        step.changed |= !lapsed.is_empty();
        self.restarted = false;
    }

    /// Entries abandoned as of `now_ms` that are still stored, oldest beat
    /// first, as reads see them: none in a state loaded at a restart and
    /// not resumed yet, whose fans all get a full period from the resume.
    fn lapsed(&self, now_ms: u64) -> Vec<u32> {
        if self.restarted {
            return Vec::new();
        }
        self.lapsed_by_beat(now_ms)
    }

    /// Entries whose last recorded heartbeat is a period old by `now_ms`.
    fn lapsed_by_beat(&self, now_ms: u64) -> Vec<u32> {
        self.queue
            .by_beat()
            .take_while(|&slot| self.abandoned_at(slot) <= now_ms)
            .collect()
    }

    /// When the entry in `slot` is abandoned unless it polls before.
    fn abandoned_at(&self, slot: u32) -> u64 {
        self.queue.entry(slot).beat_ms + lapse_ms(&self.settings)
    }

    fn abandon(&mut self, step: &mut Step) -> usize {
        let due = within_budget(
            self.queue
                .by_beat()
                .map(|slot| (self.abandoned_at(slot), slot)),
            step.now_ms,
        );
        let first = step.removed.len();
        self.queue.remove_all(&due, &mut step.removed);
        step.note_removed(first, |entry| Happening::Abandoned { entry });
        self.counters.abandoned += due.len() as u64;
        due.len()
    }

    fn expire_holds(&mut self, step: &mut Step) -> usize {
        let now = step.now_ms;
        let due: Vec<Box<[u8]>> = within_budget(self.seats.due_holds(now), now)
            .into_iter()
            .map(Box::from)
            .collect();
        for seat in &due {
            self.give_back(step, seat, hold_expired);
        }
        self.counters.holds_expired += due.len() as u64;
        due.len()
    }

    /// A held seat is available again: out of its holder's count, back in
    /// the inventory; `happened` says why, for the log.
    fn give_back(&mut self, step: &mut Step, seat: &[u8], happened: SeatHappening) {
        if let Some(Seat::Held { user, .. }) = self.seats.get(seat) {
            step.note(|| happened(seat.into(), user[..].into()));
            let holder = digest_of(user);
            self.buyers.held_one_fewer(&holder);
        }
        self.seats.free(seat);
        self.counters.inventory += 1;
    }

    /// Passes lapse `session` seconds after their last renewal.
    fn lapse_passes(&mut self, step: &mut Step) -> usize {
        let due = within_budget(self.buyers.due_passes(step.now_ms), step.now_ms);
        for user in &due {
            if let Some(pass) = self.buyers.end_pass(user) {
                step.note(|| Happening::PassLapsed { pass: pass.id });
            }
        }
        due.len()
    }

    /// The user's holds that expired by `now_ms` but are still stored (a
    /// crowd larger than one step).
    fn expired_holds_of(&self, user: &[u8], now_ms: u64) -> u64 {
        self.seats
            .due_holds(now_ms)
            .filter(|(_, seat)| {
                matches!(self.seats.get(seat), Some(Seat::Held { user: u, .. }) if &u[..] == user)
            })
            .count() as u64
    }

    /// Live passes as of `now_ms` (lapsed ones still stored left out).
    fn active(&self, now_ms: u64) -> u64 {
        self.buyers.passes() - self.buyers.due_passes(now_ms).count() as u64
    }

    /// How many more passes may be given now: `None` without a cap.
    fn room(&self, now_ms: u64) -> Option<u64> {
        (self.settings.max_active > 0)
            .then(|| self.settings.max_active.saturating_sub(self.active(now_ms)))
    }

    /// Sold out: the inventory was set, and no seat is available or held,
    /// so none can come back (until an INVENTORY SET).
    fn sold_out(&self, now_ms: u64) -> bool {
        let expired = self.seats.due_holds(now_ms).count() as u64;
        self.counters.inventory_set
            && self.counters.inventory + expired == 0
            && self.seats.held() == expired
    }

    /// Renews the pass of the user whose record is in `slot`, if live.
    fn renew_pass_at(&mut self, step: &mut Step, slot: u32) {
        if let Some(pass) = self.buyers.live_pass_at(slot, step.now_ms) {
            let expires_ms = step.now_ms + self.settings.session_ms();
            if expires_ms != pass.expires_ms {
                self.buyers.give_pass_at(slot, Pass { expires_ms, ..pass });
                step.changed = true;
            }
        }
    }

    // ---- scheduled opening ----------------------------------------------

    /// Milliseconds until the scheduled opening as of `now_ms`; 0 once the
    /// event is open (or has no opening).
    pub fn opens_in_ms(&self, now_ms: u64) -> u64 {
        match self.opening {
            Some(o) if !o.done => self.settings.opens_at_ms.saturating_sub(now_ms),
            _ => 0,
        }
    }

    /// The shuffle's seed, once the event has opened (as of `now_ms`).
    pub fn shuffle_seed(&self, now_ms: u64) -> Option<[u8; 16]> {
        let o = self.opening?;
        (o.done || self.settings.opens_at_ms <= now_ms).then_some(o.seed)
    }

    /// The opening happens at its moment: the pre-queue's order is already
    /// final (`opening`), so it only flips the event open, with a full
    /// bucket.
    fn open_if_due(&mut self, step: &mut Step) {
        let Some(opening) = self.opening.as_mut().filter(|o| !o.done) else {
            return;
        };
        if self.settings.opens_at_ms > step.now_ms {
            return;
        }
        opening.done = true;
        self.bucket = None;
        step.note(|| Happening::Opened);
        step.changed = true;
    }

    /// Whether OPENS-AT may still be set: before the opening, which for an
    /// event without one is its first join (an event converted from tq 0.2
    /// may have entries waiting and count no join).
    pub fn before_opening(&self) -> bool {
        match self.opening {
            Some(o) => !o.done,
            None => self.counters.joined == 0 && self.queue.is_empty(),
        }
    }

    /// OPENS-AT; the first one draws the shuffle's seed.
    fn schedule_opening(&mut self, step: &mut Step, at_ms: u64) -> TqResult<()> {
        if !self.before_opening() {
            return Err(TqError::syntax(
                "OPENS-AT can be changed only before the event opens",
            ));
        }
        if self.opening.is_none() && at_ms > 0 {
            let seed = step.draw(self.counters.joined)?;
            self.opening = Some(Opening::new(seed, self.queue.next_number()));
            step.changed = true;
        }
        Ok(())
    }

    /// Whether waiting entries' stream ids rise with their places: always,
    /// but while entries of a pre-queue (shuffled) still wait.
    pub fn ids_follow_order(&self) -> bool {
        match self.opening {
            None => true,
            Some(o) => self
                .queue
                .in_order()
                .next()
                .is_none_or(|front| !o.holds(self.queue.number(front))),
        }
    }

    // ---- waiting room --------------------------------------------------

    /// TQ.ENQUEUE.
    pub fn enqueue(
        &mut self,
        step: &mut Step,
        user: &[u8],
        token: &[u8],
        dedupe: Option<&[u8]>,
        ttl_s: Option<u64>,
    ) -> TqResult<Enqueued> {
        self.advance(step);
        let now = step.now_ms;
        if self.sold_out(now) {
            return Err(TqError::SoldOut);
        }
        let token = digest_of(token);
        let user = digest_of(user);
        let dedupe_key = dedupe.map(digest_of);
        let original = self
            .find_waiting(step, &token)
            .map(|slot| self.queue.entry(slot).id)
            .or_else(|| self.dedupe.lookup(dedupe_key.as_ref()?, now));
        if let Some(original) = original {
            self.counters.duplicates += 1;
            step.changed = true;
            return Err(TqError::Duplicate(
                String::from_utf8_lossy(&original.text()).into_owned(),
            ));
        }
        let max_entries = self.settings.max_entries;
        if max_entries > 0 {
            // Entries that lapsed but are still stored (a crowd larger
            // than one step) no longer count.
            let waiting = self
                .queue
                .user_entries(&user)
                .filter(|&slot| self.abandoned_at(slot) > now)
                .count() as u64;
            if waiting >= max_entries {
                return Err(TqError::Limit(max_entries));
            }
        }
        let pre_queue = self.opening.filter(|o| !o.done);
        if pre_queue.is_some_and(|o| o.joins >= MAX_PREQUEUE_JOINS) {
            return Err(TqError::Limit(MAX_PREQUEUE_JOINS));
        }
        let id = self.queue.next_id(now);
        let beat = now.max(self.queue.newest_beat_ms().unwrap_or(0));
        let slot = match pre_queue {
            None => self.queue.append(id, token, &user, beat),
            Some(o) => {
                // Join i takes place r; whoever held r moves to i (`opening`).
                let i = o.joins;
                let r = shuffle_place(&o.seed, i);
                if let Some(holder) = self.queue.slot_at(o.base + r).filter(|_| r < i) {
                    self.queue.renumber(holder, o.base + i);
                }
                let slot = self.queue.insert(id, token, &user, beat, o.base + r);
                self.queue.skip_numbers_to(o.base + i + 1);
                self.opening = Some(Opening { joins: i + 1, ..o });
                slot
            }
        };
        if let Some(key) = dedupe_key {
            let ttl_s = ttl_s.unwrap_or(self.settings.dedupe_ttl_s);
            self.dedupe.record(key, id, now + ttl_s * 1000);
        }
        self.counters.joined += 1;
        step.changed = true;
        if pre_queue.is_some() {
            // No place is shown before the opening.
            return Ok(Enqueued {
                id,
                position: 0,
                user_position: 0,
            });
        }
        // The new entry is at the tail of both orders.
        Ok(Enqueued {
            id,
            position: self.queue.len(),
            user_position: self.queue.user_waiting_of(slot),
        })
    }

    /// TQ.POSITION: where `token` stands; also its heartbeat.
    pub fn position(&mut self, step: &mut Step, token: &[u8]) -> TqResult<PositionInfo> {
        self.advance(step);
        let now = step.now_ms;
        let slot = self
            .find_waiting(step, &digest_of(token))
            .ok_or(TqError::NotQueued)?;
        let opens_in_ms = self.opens_in_ms(now);
        if opens_in_ms > 0 {
            let waited_ms = now.saturating_sub(self.queue.entry(slot).id.ms);
            self.record_beat(step, slot);
            return Ok(PositionInfo {
                position: 0,
                user_position: 0,
                ready: false,
                eta_ms: -1,
                waited_ms,
                sold_out: self.sold_out(now),
                opens_in_ms,
            });
        }
        let position = self.queue.position(slot);
        let tokens = bucket::whole_tokens(self.milli_tokens(now));
        let room = self.room(now);
        let capped = room.is_some_and(|room| position > room);
        let sold_out = self.sold_out(now);
        let ready = position <= tokens && !capped && !sold_out;
        // The measured rate only matters for an entry that must wait.
        let measured = if ready {
            0.0
        } else {
            self.admissions.rate(now)
        };
        let joined_ms = self.queue.entry(slot).id.ms;
        self.record_beat(step, slot);
        // Under the cap, when a place frees depends on passes lapsing or
        // being revoked: no estimate.
        let eta_ms = if capped || sold_out {
            -1
        } else {
            bucket::eta_ms(position, tokens, measured, self.settings.rate)
        };
        Ok(PositionInfo {
            position,
            user_position: self.queue.user_position(slot),
            ready,
            eta_ms,
            waited_ms: now.saturating_sub(joined_ms),
            sold_out,
            opens_in_ms: 0,
        })
    }

    /// A poll is the entry's heartbeat, recorded once the recorded one is
    /// a tenth of the period old.
    fn record_beat(&mut self, step: &mut Step, slot: u32) {
        if step.now_ms >= self.queue.entry(slot).beat_ms + beat_step_ms(&self.settings) {
            let beat = step.now_ms.max(self.queue.newest_beat_ms().unwrap_or(0));
            self.queue.touch(slot, beat);
            step.changed = true;
        }
    }

    /// TQ.ENTER: admits `token` if its position is within the whole tokens
    /// available now (spending one) and, under a MAX-ACTIVE cap, within the
    /// passes that may still be given. The entry's user gets a pass, or has
    /// its live one renewed.
    pub fn enter(&mut self, step: &mut Step, token: &[u8]) -> TqResult<Admitted> {
        self.advance(step);
        let now = step.now_ms;
        let slot = self
            .find_waiting(step, &digest_of(token))
            .ok_or(TqError::NotQueued)?;
        let opens_in_ms = self.opens_in_ms(now);
        if opens_in_ms > 0 {
            return Err(TqError::NotOpen(opens_in_ms));
        }
        if self.sold_out(now) {
            return Err(TqError::SoldOut);
        }
        let position = self.queue.position(slot);
        let milli = self.milli_tokens(now);
        let room = self.room(now).unwrap_or(u64::MAX);
        if position > bucket::whole_tokens(milli) || position > room {
            return Err(TqError::NotReady(position));
        }
        let user = *self.queue.user_of(slot);
        let expires_ms = now + self.settings.session_ms();
        let buyer = self.buyers.find(&user);
        let stored = buyer.and_then(|b| self.buyers.at(b).pass);
        let live = stored.filter(|p| p.expires_ms > now);
        let id: PassId = match live {
            Some(pass) => pass.id,
            None => step.draw(self.counters.admitted)?,
        };
        if let Some(lapsed) = stored.filter(|p| p.expires_ms <= now) {
            // Lapsed but still stored (a crowd larger than one step): the
            // new pass takes its place, and the log says it lapsed.
            step.note(|| Happening::PassLapsed { pass: lapsed.id });
        }
        let pass = Pass { id, expires_ms };
        let buyer = match buyer {
            Some(b) => b,
            None => self.buyers.insert(&user),
        };
        self.buyers.give_pass_at(buyer, pass);
        self.bucket = Some(BucketState {
            milli_tokens: milli - 1000,
            at_ms: now,
        });
        let entry = self.queue.remove(slot);
        step.removed.push(entry);
        step.note(|| Happening::Admitted { entry, pass: id });
        self.counters.admitted += 1;
        self.admissions.record(now);
        step.changed = true;
        Ok(Admitted {
            position_was: position,
            pass,
        })
    }

    /// TQ.PASS: the user's pass and seats, after `action`. Revoke answers
    /// whether a live pass ended (in `pass`: the pass it ended).
    pub fn pass(&mut self, step: &mut Step, name: &[u8], action: PassAction) -> TqResult<PassView> {
        self.advance(step);
        let now = step.now_ms;
        let user = digest_of(name);
        let slot = self.buyers.find(&user);
        let mut live = slot
            .and_then(|s| self.buyers.at(s).pass)
            .filter(|p| p.expires_ms > now);
        match (action, live, slot) {
            (PassAction::Show, _, _) => {}
            (PassAction::Touch, Some(pass), Some(slot)) => {
                let renewed = Pass {
                    expires_ms: now + self.settings.session_ms(),
                    ..pass
                };
                if renewed != pass {
                    self.buyers.give_pass_at(slot, renewed);
                    step.changed = true;
                }
                live = Some(renewed);
            }
            (PassAction::Touch, _, _) => return Err(TqError::NoPass),
            (PassAction::Revoke, ended, _) => {
                if let Some(pass) = ended {
                    self.buyers.end_pass(&user);
                    step.note(|| Happening::PassRevoked { pass: pass.id });
                    step.changed = true;
                }
                return Ok(PassView {
                    pass: ended,
                    held: 0,
                    bought: 0,
                });
            }
        }
        let (held, bought) = slot.map_or((0, 0), |s| {
            let b = self.buyers.at(s);
            (u64::from(b.held), u64::from(b.bought))
        });
        Ok(PassView {
            pass: live,
            held: held.saturating_sub(self.expired_holds_of(name, now)),
            bought,
        })
    }

    /// TQ.LEAVE: whether the entry was waiting (and is now gone).
    pub fn leave(&mut self, step: &mut Step, token: &[u8]) -> bool {
        self.advance(step);
        let Some(slot) = self.find_waiting(step, &digest_of(token)) else {
            return false;
        };
        let entry = self.queue.remove(slot);
        step.removed.push(entry);
        step.note(|| Happening::Left { entry });
        self.counters.left += 1;
        step.changed = true;
        true
    }

    /// The slot of `token` if it waits. An entry that lapsed but is still
    /// stored (more were due than one step removes) leaves now, abandoned:
    /// no rule sees it waiting, as no read-only view does.
    fn find_waiting(&mut self, step: &mut Step, token: &NameDigest) -> Option<u32> {
        let slot = self.queue.find(token)?;
        if self.abandoned_at(slot) > step.now_ms {
            return Some(slot);
        }
        let entry = self.queue.remove(slot);
        step.removed.push(entry);
        step.note(|| Happening::Abandoned { entry });
        self.counters.abandoned += 1;
        step.changed = true;
        None
    }

    /// TQ.TRIM MAXAGE: removes the entries that joined more than
    /// `max_age_s` before now (ids below `now - max_age`, as XTRIM MINID).
    pub fn trim(&mut self, step: &mut Step, max_age_s: u64) -> u64 {
        self.advance(step);
        let min_id = EntryId::new(step.now_ms.saturating_sub(max_age_s * 1000), 0);
        let older = |slot: &u32| self.queue.entry(*slot).id < min_id;
        let old: Vec<u32> = if self.ids_follow_order() {
            self.queue.in_order().take_while(older).collect()
        } else {
            // A shuffled pre-queue: the old ones are anywhere.
            self.queue.in_order().filter(older).collect()
        };
        let first = step.removed.len();
        self.queue.remove_all(&old, &mut step.removed);
        step.note_removed(first, |entry| Happening::Trimmed { entry });
        self.counters.trimmed += old.len() as u64;
        step.changed |= !old.is_empty();
        old.len() as u64
    }

    /// TQ.USER (read-only): the user's entries that still count as of
    /// `now_ms`, oldest first.
    pub fn user_entries(&self, now_ms: u64, user: &[u8]) -> Vec<UserEntry> {
        if self.opens_in_ms(now_ms) > 0 {
            // No place is shown before the opening, nor the order of the
            // user's own places: join order.
            return self
                .queue
                .user_entries(&digest_of(user))
                .filter(|&slot| self.restarted || self.abandoned_at(slot) > now_ms)
                .map(|slot| UserEntry {
                    id: self.queue.entry(slot).id,
                    position: 0,
                })
                .collect();
        }
        let mut lapsed: Vec<u64> = self
            .lapsed(now_ms)
            .into_iter()
            .map(|slot| self.queue.position(slot))
            .collect();
        lapsed.sort_unstable();
        let mut listed: Vec<UserEntry> = self
            .queue
            .user_entries(&digest_of(user))
            .filter_map(|slot| {
                let position = self.queue.position(slot);
                if lapsed.binary_search(&position).is_ok() {
                    return None;
                }
                let ahead = lapsed.partition_point(|&p| p < position) as u64;
                Some(UserEntry {
                    id: self.queue.entry(slot).id,
                    position: position - ahead,
                })
            })
            .collect();
        // In queue order (a shuffled pre-queue's is not join order).
        listed.sort_unstable_by_key(|e| e.position);
        listed
    }

    fn milli_tokens(&self, now_ms: u64) -> u64 {
        bucket::milli_tokens_now(self.bucket, &self.settings, now_ms)
    }

    // ---- seats ---------------------------------------------------------
    //
    // Invariant: between two TQ.INVENTORY SET calls, inventory + held +
    // sold is constant and inventory never goes below 0. Every transition
    // moves one seat between those three.

    /// TQ.INVENTORY (read): seats available as of `now_ms`.
    pub fn inventory(&self, now_ms: u64) -> u64 {
        self.counters.inventory + self.seats.due_holds(now_ms).count() as u64
    }

    /// TQ.INVENTORY ADD: changes the seats available by `n`, refused if
    /// that would leave 0..=`MAX_INVENTORY`. Returns the new inventory.
    pub fn add_inventory(&mut self, step: &mut Step, n: i64) -> TqResult<u64> {
        self.advance(step);
        let now = self.counters.inventory as i64;
        let after = now + n;
        if !(0..=MAX_INVENTORY as i64).contains(&after) {
            return Err(TqError::syntax(format!(
                "ADD {n} would leave the inventory outside 0..{MAX_INVENTORY} (it is {now})"
            )));
        }
        if n != 0 || !self.counters.inventory_set {
            self.counters.inventory = after as u64;
            self.counters.inventory_set = true;
            step.changed = true;
        }
        Ok(self.inventory(step.now_ms))
    }

    /// TQ.INVENTORY SET.
    pub fn set_inventory(&mut self, step: &mut Step, n: u64) -> u64 {
        self.advance(step);
        if self.counters.inventory != n || !self.counters.inventory_set {
            self.counters.inventory = n;
            self.counters.inventory_set = true;
            step.changed = true;
        }
        n
    }

    /// TQ.HOLD of `seats` (the first, then those after WITH), all or
    /// nothing: returns the inventory left.
    pub fn hold(
        &mut self,
        step: &mut Step,
        seats: &[&[u8]],
        user: &[u8],
        ttl_s: Option<u64>,
    ) -> TqResult<u64> {
        self.advance(step);
        let now = step.now_ms;
        let holder = digest_of(user);
        // One lookup of the holder's record for every check and change.
        let mut buyer = self.buyers.find(&holder);
        let live = buyer
            .and_then(|slot| self.buyers.at(slot).pass)
            .filter(|p| p.expires_ms > now);
        if self.settings.require_pass == 1 && live.is_none() {
            return Err(TqError::NoPass);
        }
        let mut gave_back = false;
        for seat in seats {
            gave_back |= self.expire_seat(step, seat);
        }
        if gave_back {
            // The holder's count may have dropped, its record with it.
            buyer = self.buyers.find(&holder);
        }
        if let Some(taken) = seats.iter().find(|seat| self.seats.get(seat).is_some()) {
            return Err(TqError::SeatUnavailable(taken.to_vec()));
        }
        let wanted = seats.len() as u64;
        if self.counters.inventory < wanted {
            return Err(TqError::SoldOut);
        }
        let max_seats = self.settings.max_seats;
        if max_seats > 0 {
            let (held, bought) = buyer.map_or((0, 0), |slot| {
                let b = self.buyers.at(slot);
                (u64::from(b.held), u64::from(b.bought))
            });
            // Holds that expired but are still stored no longer count.
            let held = held.saturating_sub(self.expired_holds_of(user, now));
            if held + bought + wanted > max_seats {
                return Err(TqError::Limit(max_seats));
            }
        }
        let ttl_s = ttl_s.unwrap_or(self.settings.hold_ttl_s);
        for seat in seats {
            self.seats.hold(seat, user, now + ttl_s * 1000);
            step.note(|| Happening::Held {
                seat: (*seat).into(),
                user: user.into(),
            });
        }
        let slot = match buyer {
            Some(slot) => slot,
            None => self.buyers.insert(&holder),
        };
        self.buyers.add_held_at(slot, wanted as u32);
        if let Some(pass) = live {
            let expires_ms = now + self.settings.session_ms();
            self.buyers.give_pass_at(slot, Pass { expires_ms, ..pass });
        }
        self.counters.inventory -= wanted;
        step.changed = true;
        Ok(self.inventory(now))
    }

    /// TQ.EXTEND: every seat in `seats`, held by `user`, is held until
    /// now + `ttl_s`, all or nothing. Returns the new remaining hold time.
    pub fn extend(
        &mut self,
        step: &mut Step,
        seats: &[&[u8]],
        user: &[u8],
        ttl_s: u64,
    ) -> TqResult<u64> {
        self.advance(step);
        for seat in seats {
            self.expire_seat(step, seat);
        }
        for seat in seats {
            self.check_holder(seat, Some(user))?;
        }
        let expires_ms = step.now_ms + ttl_s * 1000;
        for seat in seats {
            if self.seats.extend(seat, expires_ms) {
                step.changed = true;
            }
        }
        if let Some(slot) = self.buyers.find(&digest_of(user)) {
            self.renew_pass_at(step, slot);
        }
        Ok(ttl_s * 1000)
    }

    /// TQ.RELEASE: returns the inventory after the seat came back.
    pub fn release(&mut self, step: &mut Step, seat: &[u8], user: Option<&[u8]>) -> TqResult<u64> {
        self.advance(step);
        self.expire_seat(step, seat);
        self.check_holder(seat, user)?;
        self.give_back(step, seat, |seat, user| Happening::Released { seat, user });
        step.changed = true;
        Ok(self.inventory(step.now_ms))
    }

    /// TQ.CONFIRM of `seats`, all or nothing: each must be held by `user`.
    pub fn confirm(&mut self, step: &mut Step, seats: &[&[u8]], user: &[u8]) -> TqResult<()> {
        self.advance(step);
        for seat in seats {
            self.expire_seat(step, seat);
        }
        for seat in seats {
            self.check_holder(seat, Some(user))?;
        }
        // The holder of held seats has a record.
        let buyer = self.buyers.slot_or_insert(&digest_of(user));
        for seat in seats {
            self.seats.sell(seat, user);
            self.buyers.sold_at(buyer);
            step.note(|| Happening::Confirmed {
                seat: (*seat).into(),
                user: user.into(),
            });
        }
        self.counters.sold += seats.len() as u64;
        self.renew_pass_at(step, buyer);
        step.changed = true;
        Ok(())
    }

    /// Gives the seat back if its hold expired but is still stored (more
    /// holds were due than one step gives back): every rule sees it
    /// available from the millisecond its hold expires. Whether it did.
    fn expire_seat(&mut self, step: &mut Step, seat: &[u8]) -> bool {
        match self.seats.get(seat) {
            Some(Seat::Held { expires_ms, .. }) if *expires_ms <= step.now_ms => {
                self.give_back(step, seat, hold_expired);
                self.counters.holds_expired += 1;
                step.changed = true;
                true
            }
            _ => false,
        }
    }

    /// The seat must be held, and by `user` when one is given.
    fn check_holder(&self, seat: &[u8], user: Option<&[u8]>) -> TqResult<()> {
        match self.seats.get(seat) {
            Some(Seat::Held { user: holder, .. }) => match user {
                Some(u) if u != &holder[..] => Err(TqError::NotOwner(seat.to_vec())),
                _ => Ok(()),
            },
            _ => Err(TqError::NotHeld(seat.to_vec())),
        }
    }

    /// TQ.SEAT (read-only), as of `now_ms`.
    pub fn seat(&self, now_ms: u64, seat: &[u8]) -> SeatView {
        match self.seats.get(seat) {
            Some(Seat::Held { user, expires_ms }) if *expires_ms > now_ms => SeatView {
                state: "held",
                user: Some(user.to_vec()),
                ttl_ms: (expires_ms - now_ms) as i64,
            },
            Some(Seat::Sold { user }) => SeatView {
                state: "sold",
                user: Some(user.to_vec()),
                ttl_ms: -1,
            },
            _ => SeatView {
                state: "available",
                user: None,
                ttl_ms: -1,
            },
        }
    }

    // ---- settings and figures ------------------------------------------

    /// TQ.CONFIG with options. The bucket keeps the tokens it holds (capped
    /// at the new burst), so a reconfiguration never lets a burst in.
    pub fn configure(&mut self, step: &mut Step, change: &SettingsChange) -> TqResult<()> {
        self.advance(step);
        let now = step.now_ms;
        if let Some(at_ms) = change.get(Setting::OpensAt) {
            self.schedule_opening(step, at_ms)?;
        }
        let settings = self.settings.apply(change);
        if settings == self.settings {
            return Ok(());
        }
        // A full bucket (`None`) stays full only if the burst did not grow.
        let full = self.bucket.is_none() && settings.burst <= self.settings.burst;
        let bucket = (!full).then(|| BucketState {
            milli_tokens: self
                .milli_tokens(now)
                .min(settings.burst.saturating_mul(1000)),
            at_ms: now,
        });
        self.settings = settings;
        self.bucket = bucket;
        step.changed = true;
        // An OPENS-AT at or before now opens the event at once.
        self.open_if_due(step);
        Ok(())
    }

    /// TQ.STATS (read-only): as of `now_ms`, counting entries and holds due
    /// for removal that are still stored.
    pub fn stats(&self, now_ms: u64) -> Stats {
        let lapsed = self.lapsed(now_ms).len() as u64;
        let expired = self.seats.due_holds(now_ms).count() as u64;
        let c = &self.counters;
        Stats {
            waiting: self.queue.len() - lapsed,
            admitted: c.admitted,
            admission_rate: self.admissions.rate(now_ms),
            inventory: c.inventory + expired,
            held: self.seats.held() - expired,
            sold: c.sold,
            duplicates: c.duplicates,
            abandoned: c.abandoned + lapsed,
            holds_expired: c.holds_expired + expired,
            active: self.active(now_ms),
            sold_out: self.sold_out(now_ms),
            opens_in_ms: self.opens_in_ms(now_ms),
            joined: c.joined,
            left: c.left,
            trimmed: c.trimmed,
        }
    }

    /// Bytes this state holds beyond the struct itself.
    pub fn memory_usage(&self) -> usize {
        self.queue.memory_usage()
            + self.dedupe.memory_usage()
            + self.seats.memory_usage()
            + self.buyers.memory_usage()
            + self.admissions.per_second.capacity() * 16
    }
}

/// Makes the log's note of a seat given back, from the seat and its holder.
type SeatHappening = fn(Box<[u8]>, Box<[u8]>) -> Happening;

fn hold_expired(seat: Box<[u8]>, user: Box<[u8]>) -> Happening {
    Happening::HoldExpired { seat, user }
}

/// The items (deadline, item) of a deadline-ordered run that are due by
/// `now_ms`: at most `STEP_BUDGET`, but never splitting one millisecond,
/// so that which ones go depends on the stored deadlines alone.
fn within_budget<T>(run: impl Iterator<Item = (u64, T)>, now_ms: u64) -> Vec<T> {
    let mut due = Vec::new();
    let mut last = None;
    for (at, item) in run {
        if at > now_ms || (due.len() >= STEP_BUDGET && last != Some(at)) {
            break;
        }
        last = Some(at);
        due.push(item);
    }
    due
}
