//! The stored form of an event's state (RDB, DUMP/RESTORE, AOF rewrite),
//! and its digest.
//!
//! One byte string, so that the Redis side saves and loads a single
//! buffer and every check lives here, in plain Rust that tests and fuzzing
//! reach without Redis. A RESTORE hands `decode` whatever a client sent:
//! it refuses anything that is not a consistent state and never panics or
//! allocates more than the input can justify.
//!
//! Layout (integers are LEB128 varints, names are a varint length then the
//! bytes), in this order:
//! - settings: rate, burst, heartbeat, hold_ttl, dedupe_ttl, opens_at,
//!   session, max_active, require_pass, max_seats, max_entries, events
//! - counters: inventory, inventory_set (0|1), sold, admitted, duplicates,
//!   abandoned, holds_expired, joined, left, trimmed
//! - bucket: 0, or 1 then milli_tokens, at_ms
//! - admissions: first_ms + 1 (0: none), count, then (second, n) pairs
//! - opening: 0, or 1 then the seed (16 bytes), the pre-queue's joins,
//!   done (0|1)
//! - queue: last_id (0, or 1 then ms, seq), next order number, count, then
//!   per entry in queue order: id ms, id seq, order number, beat_ms, token,
//!   user (each its 16-byte digest, `names`). Order numbers are written as
//!   0, 1, 2... (the next one is the count); any increasing numbers below
//!   the next one are read, and are numbered anew, so that a gap in them
//!   never costs memory. With an opening, a pre-queue entry's number is
//!   its place in the pre-queue (below `joins`, kept as it is: the
//!   shuffle's later draws depend on the empty places too), and the others
//!   are numbered from `joins` on.
//! - dedupe: count, then key (its 16-byte digest), id ms, id seq,
//!   expires_ms
//! - seats: count, then name, 0 (held) user expires_ms | 1 (sold) user
//! - passes: count, then, by user, the user (its 16-byte digest), pass id
//!   (16 bytes), expires_ms. The seats each user holds and bought are
//!   counted from the seats when decoding, not stored.
//! - the event log's last id: 0, or 1 then ms, seq
//!
//! Version 2 (tq 0.4) has no `opens_at` or `events` setting, no opening
//! and no log id. Version 1 (tq 0.3) has the first five settings only, no
//! passes, and writes the queue's tokens and users as names (length,
//! bytes) and each dedupe key with its length (16). `decode_version` reads
//! all three.

use std::fmt;

use super::args::MAX_NAME_LEN;
use super::bucket::{Admissions, BucketState, RATE_WINDOW_S};
use super::buyers::Pass;
use super::entry_id::EntryId;
use super::event::{Counters, Event};
use super::names::{digest_of, NameDigest};
use super::opening::{Opening, MAX_PREQUEUE_JOINS};
use super::seats::Seat;
use super::settings::{Setting, Settings};

/// The RDB encoding version of the module type (its `encver`): the
/// version `encode` writes.
pub const ENCODING_VERSION: i32 = 3;
/// The oldest version `decode_version` reads.
pub const OLDEST_VERSION: i32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid tq state: {}", self.0)
    }
}

type Decoded<T> = Result<T, DecodeError>;

/// Largest time a stored state may hold (unix ms, past the year 10000).
const MAX_TIME_MS: u64 = 1 << 48;
/// Largest counter or sequence number a stored state may hold.
const MAX_COUNT: u64 = 1 << 56;

/// The event's fixed figures in stored order: its settings, then its
/// counters (`decode` reads them back in this order).
fn figures(event: &Event) -> [u64; 22] {
    let (s, c) = (&event.settings, &event.counters);
    [
        s.rate,
        s.burst,
        s.heartbeat_s,
        s.hold_ttl_s,
        s.dedupe_ttl_s,
        s.opens_at_ms,
        s.session_s,
        s.max_active,
        s.require_pass,
        s.max_seats,
        s.max_entries,
        s.events,
        c.inventory,
        u64::from(c.inventory_set),
        c.sold,
        c.admitted,
        c.duplicates,
        c.abandoned,
        c.holds_expired,
        c.joined,
        c.left,
        c.trimmed,
    ]
}

pub fn encode(event: &Event) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(64 + event.waiting() as usize * 48));
    for v in figures(event) {
        out.int(v);
    }
    match event.bucket {
        None => out.int(0),
        Some(b) => {
            out.int(1);
            out.int(b.milli_tokens);
            out.int(b.at_ms);
        }
    }
    let a = &event.admissions;
    out.int(a.first_ms.map_or(0, |ms| ms + 1));
    out.int(a.per_second.len() as u64);
    for &(second, n) in &a.per_second {
        out.int(second);
        out.int(n);
    }
    match event.opening {
        None => out.int(0),
        Some(o) => {
            out.int(1);
            out.0.extend_from_slice(&o.seed);
            out.int(o.joins);
            out.int(u64::from(o.done));
        }
    }
    let q = &event.queue;
    match q.last_id {
        None => out.int(0),
        Some(id) => {
            out.int(1);
            out.id(id);
        }
    }
    let mut numbers = StoredNumbers::of(event);
    out.int(numbers.next);
    out.int(q.len());
    for slot in q.in_order() {
        let e = q.entry(slot);
        out.id(e.id);
        out.int(numbers.of_entry(q.number(slot)));
        out.int(e.beat_ms);
        out.0.extend_from_slice(&e.token);
        out.0.extend_from_slice(q.user_of(slot));
    }
    out.int(event.dedupe.len() as u64);
    for r in event.dedupe.records() {
        out.0.extend_from_slice(&r.key);
        out.id(r.id);
        out.int(r.expires_ms);
    }
    let seats: Vec<_> = event.seats.iter().collect();
    out.int(seats.len() as u64);
    for (name, seat) in seats {
        out.name(name);
        match seat {
            Seat::Held { user, expires_ms } => {
                out.int(0);
                out.name(user);
                out.int(*expires_ms);
            }
            Seat::Sold { user } => {
                out.int(1);
                out.name(user);
            }
        }
    }
    // By user: an order that does not depend on slots, so that a state
    // and its decoded copy encode alike.
    let mut passes: Vec<_> = event
        .buyers
        .iter()
        .filter_map(|b| Some((b.user, b.pass?)))
        .collect();
    passes.sort_unstable_by_key(|(user, _)| *user);
    out.int(passes.len() as u64);
    for (user, pass) in passes {
        out.0.extend_from_slice(&user);
        out.0.extend_from_slice(&pass.id);
        out.int(pass.expires_ms);
    }
    match event.log_last_id {
        None => out.int(0),
        Some(id) => {
            out.int(1);
            out.id(id);
        }
    }
    out.0
}

/// The order numbers the stored form gives the waiting entries, taken in
/// queue order: places (0, 1, 2, ...), but for a pre-queue's entries, whose
/// number is their place in the pre-queue; the others follow it.
struct StoredNumbers {
    opening: Option<Opening>,
    /// The number the next entry past the pre-queue gets.
    following: u64,
    /// The number after the last entry's.
    next: u64,
}

impl StoredNumbers {
    fn of(event: &Event) -> StoredNumbers {
        let q = &event.queue;
        let (following, past) = match event.opening {
            None => (0, q.len()),
            // The pre-queue's numbers come before every other.
            Some(o) => (o.joins, q.len() - q.waiting_below(o.base + o.joins)),
        };
        StoredNumbers {
            opening: event.opening,
            following,
            next: following + past,
        }
    }

    /// The stored number of the next entry in queue order, whose number in
    /// memory is `number`.
    fn of_entry(&mut self, number: u64) -> u64 {
        match self.opening {
            Some(o) if o.holds(number) => number - o.base,
            _ => {
                self.following += 1;
                self.following - 1
            }
        }
    }
}

/// Decodes what `encode` writes.
pub fn decode(bytes: &[u8]) -> Decoded<Event> {
    decode_version(bytes, ENCODING_VERSION)
}

/// Decodes a state stored with encoding `version` (an RDB's `encver`).
pub fn decode_version(bytes: &[u8], version: i32) -> Decoded<Event> {
    if !(OLDEST_VERSION..=ENCODING_VERSION).contains(&version) {
        return Err(DecodeError("unknown encoding version"));
    }
    let mut r = Reader {
        rest: bytes,
        names_as_text: version == 1,
    };
    let mut settings = Settings::DEFAULT;
    let stored: &[Setting] = match version {
        1 => &Setting::FIRST,
        2 => &Setting::SECOND,
        _ => &Setting::ALL,
    };
    for &setting in stored {
        let v = r.int()?;
        let (min, max) = setting.range();
        if !(min..=max).contains(&v) {
            return Err(DecodeError("a setting is out of range"));
        }
        settings.set(setting, v);
    }
    let mut event = Event::new(settings);
    let mut counter = || r.bounded(MAX_COUNT);
    event.counters = Counters {
        inventory: counter()?,
        inventory_set: match counter()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError("inventory_set is not 0 or 1")),
        },
        sold: counter()?,
        admitted: counter()?,
        duplicates: counter()?,
        abandoned: counter()?,
        holds_expired: counter()?,
        joined: counter()?,
        left: counter()?,
        trimmed: counter()?,
    };
    event.bucket = match r.int()? {
        0 => None,
        1 => Some(BucketState {
            milli_tokens: r.bounded(MAX_COUNT)?,
            at_ms: r.time()?,
        }),
        _ => return Err(DecodeError("bad bucket tag")),
    };
    event.admissions = decode_admissions(&mut r)?;
    if version >= 3 {
        event.opening = match r.int()? {
            0 => None,
            1 => Some(Opening {
                seed: r.digest()?,
                base: 0,
                joins: r.bounded(MAX_PREQUEUE_JOINS)?,
                done: match r.int()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError("opening done is not 0 or 1")),
                },
            }),
            _ => return Err(DecodeError("bad opening tag")),
        };
    }
    decode_queue(&mut r, &mut event)?;
    let records = r.count(19)?;
    for _ in 0..records {
        let key = if r.names_as_text {
            r.name()?
                .try_into()
                .map_err(|_| DecodeError("a dedupe id digest is not 16 bytes"))?
        } else {
            r.digest()?
        };
        let id = r.id()?;
        let expires_ms = r.time()?;
        if event.dedupe.contains(&key) {
            return Err(DecodeError("a dedupe id appears twice"));
        }
        event.dedupe.record(key, id, expires_ms);
    }
    let seats = r.count(3)?;
    for _ in 0..seats {
        let name = r.name()?;
        if event.seats.get(name).is_some() {
            return Err(DecodeError("a seat appears twice"));
        }
        match r.int()? {
            0 => {
                let user = r.name()?;
                event.seats.hold(name, user, r.time()?);
            }
            1 => event.seats.sell(name, r.name()?),
            _ => return Err(DecodeError("bad seat tag")),
        }
    }
    // Seats held and bought per user, from the seats.
    for (_, seat) in event.seats.iter() {
        let (Seat::Held { user, .. } | Seat::Sold { user }) = seat;
        let slot = event.buyers.slot_or_insert(&digest_of(user));
        event.buyers.add_held_at(slot, 1);
        if matches!(seat, Seat::Sold { .. }) {
            event.buyers.sold_at(slot);
        }
    }
    if version >= 2 {
        let passes = r.count(33)?;
        for _ in 0..passes {
            let user = r.digest()?;
            let id = r.digest()?;
            let expires_ms = r.time()?;
            let slot = event.buyers.slot_or_insert(&user);
            if event.buyers.at(slot).pass.is_some() {
                return Err(DecodeError("a user has two passes"));
            }
            event.buyers.give_pass_at(slot, Pass { id, expires_ms });
        }
    }
    if version >= 3 {
        event.log_last_id = match r.int()? {
            0 => None,
            1 => Some(r.id()?),
            _ => return Err(DecodeError("bad log id tag")),
        };
    }
    if !r.rest.is_empty() {
        return Err(DecodeError("bytes after the end"));
    }
    Ok(event)
}

fn decode_admissions(r: &mut Reader) -> Decoded<Admissions> {
    let first_ms = r.bounded(MAX_TIME_MS + 1)?.checked_sub(1);
    let n = r.count(2)?;
    if n > RATE_WINDOW_S as usize {
        return Err(DecodeError("admission log longer than its window"));
    }
    let mut a = Admissions {
        first_ms,
        ..Admissions::default()
    };
    for _ in 0..n {
        let (second, count) = (r.bounded(MAX_TIME_MS / 1000)?, r.bounded(MAX_COUNT)?);
        if a.per_second.back().is_some_and(|&(s, _)| s >= second) {
            return Err(DecodeError("admission log out of order"));
        }
        a.per_second.push_back((second, count));
    }
    Ok(a)
}

fn decode_queue(r: &mut Reader, event: &mut Event) -> Decoded<()> {
    let last_id = match r.int()? {
        0 => None,
        1 => Some(r.id()?),
        _ => return Err(DecodeError("bad last id tag")),
    };
    let next_number = r.bounded(MAX_COUNT)?;
    let n = r.count(if r.names_as_text { 6 } else { 36 })?;
    let opening = event.opening;
    let queue = &mut event.queue;
    let mut previous: Option<u64> = None;
    let mut previous_id: Option<EntryId> = None;
    // Numbers for the entries after a pre-queue.
    let mut next_after = opening.map_or(0, |o| o.joins);
    for place in 0..n as u64 {
        let id = r.id()?;
        let number = r.int()?;
        let beat_ms = r.time()?;
        let (token, user) = (r.name_digest()?, r.name_digest()?);
        if previous.is_some_and(|p| number <= p) || number >= next_number {
            return Err(DecodeError("order numbers out of order"));
        }
        if last_id.is_none_or(|last| id > last) {
            return Err(DecodeError("an entry id is after the last id"));
        }
        let pre_queue = opening.is_some_and(|o| o.holds(number));
        if opening.is_some_and(|o| !o.done) && !pre_queue {
            return Err(DecodeError(
                "an entry past the pre-queue before the opening",
            ));
        }
        // Ids rise with the order (the stream is trimmed below the front's
        // id when a run leaves the front), but for a shuffled pre-queue's.
        if !pre_queue {
            if previous_id.is_some_and(|p| id <= p) {
                return Err(DecodeError("entry ids do not rise with the queue order"));
            }
            previous_id = Some(id);
        }
        if queue.find(&token).is_some() {
            return Err(DecodeError("a token appears twice"));
        }
        previous = Some(number);
        let number = match opening {
            None => place,
            Some(_) if pre_queue => number,
            Some(_) => {
                next_after += 1;
                next_after - 1
            }
        };
        queue.insert(id, token, &user, beat_ms, number);
    }
    if let Some(o) = opening {
        queue.skip_numbers_to(o.joins);
    }
    queue.last_id = last_id;
    queue.sort_beats();
    Ok(())
}

/// Writes the stored form's pieces (also used by the tests that forge
/// payloads).
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn int(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn id(&mut self, id: EntryId) {
        self.int(id.ms);
        self.int(id.seq);
    }

    pub(crate) fn name(&mut self, name: &[u8]) {
        self.int(name.len() as u64);
        self.0.extend_from_slice(name);
    }
}

struct Reader<'a> {
    rest: &'a [u8],
    /// Version 1: the queue's names are written as text.
    names_as_text: bool,
}

impl<'a> Reader<'a> {
    fn int(&mut self) -> Decoded<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .rest
                .split_first()
                .ok_or(DecodeError("ends in the middle"))?;
            self.rest = rest;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(DecodeError("integer overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError("integer overflows 64 bits"))
    }

    /// At most `max`: keeps every later sum of counters or times far from
    /// overflowing, whatever a forged payload says.
    fn bounded(&mut self, max: u64) -> Decoded<u64> {
        let v = self.int()?;
        if v > max {
            return Err(DecodeError("a number is out of range"));
        }
        Ok(v)
    }

    /// Unix milliseconds.
    fn time(&mut self) -> Decoded<u64> {
        self.bounded(MAX_TIME_MS)
    }

    fn id(&mut self) -> Decoded<EntryId> {
        Ok(EntryId::new(self.time()?, self.bounded(MAX_COUNT)?))
    }

    /// A count of items of at least `min_bytes` each: never more than the
    /// rest of the input could hold, so no forged count allocates much.
    fn count(&mut self, min_bytes: usize) -> Decoded<usize> {
        let n = self.int()?;
        if n > (self.rest.len() / min_bytes) as u64 {
            return Err(DecodeError("a count exceeds the data"));
        }
        Ok(n as usize)
    }

    fn name(&mut self) -> Decoded<&'a [u8]> {
        let len = self.int()?;
        if len == 0 || len > MAX_NAME_LEN as u64 || len > self.rest.len() as u64 {
            return Err(DecodeError("a name is empty, too long or cut short"));
        }
        let (name, rest) = self.rest.split_at(len as usize);
        self.rest = rest;
        Ok(name)
    }

    fn digest(&mut self) -> Decoded<NameDigest> {
        let Some((digest, rest)) = self.rest.split_first_chunk::<16>() else {
            return Err(DecodeError("a digest is cut short"));
        };
        self.rest = rest;
        Ok(*digest)
    }

    /// A token or user of the queue.
    fn name_digest(&mut self) -> Decoded<NameDigest> {
        if self.names_as_text {
            return Ok(digest_of(self.name()?));
        }
        self.digest()
    }
}

// ---- digest ---------------------------------------------------------------

/// A fixed 64-bit hash (FNV-1a with a final mix): the same on every server
/// and every run, unlike the per-process hashers of the indexes.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) -> &mut Fnv {
        self.int(bytes.len() as u64);
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self
    }

    fn int(&mut self, v: u64) -> &mut Fnv {
        for b in v.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        self
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Event {
    /// A digest of everything stored (DEBUG DIGEST): equal for equal
    /// states whatever their history, so a replica and an AOF replay can
    /// be compared with the master. Records of unordered tables are
    /// hashed one by one and summed.
    pub fn digest(&self) -> u64 {
        let mut head = Fnv::new();
        for v in figures(self) {
            head.int(v);
        }
        match self.bucket {
            None => head.int(0),
            Some(b) => head.int(1).int(b.milli_tokens).int(b.at_ms),
        };
        head.int(self.admissions.first_ms.map_or(0, |ms| ms + 1));
        for &(second, n) in &self.admissions.per_second {
            head.int(second).int(n);
        }
        let q = &self.queue;
        let last = q.last_id.map_or((0, 0), |id| (id.ms + 1, id.seq));
        head.int(last.0).int(last.1).int(q.len());
        let log = self.log_last_id.map_or((0, 0), |id| (id.ms + 1, id.seq));
        head.int(log.0).int(log.1);
        if let Some(o) = self.opening {
            head.bytes(&o.seed).int(o.joins).int(u64::from(o.done));
        }
        let mut sum = head.finish();
        // Places, not order numbers: those are an in-memory detail.
        for (place, slot) in q.in_order().enumerate() {
            let e = q.entry(slot);
            let mut h = Fnv::new();
            h.int(1).int(e.id.ms).int(e.id.seq).int(place as u64);
            h.int(e.beat_ms).bytes(&e.token).bytes(q.user_of(slot));
            // A pre-queue's places, empty ones between them included.
            if let Some(o) = self.opening.filter(|o| o.holds(q.number(slot))) {
                h.int(q.number(slot) - o.base);
            }
            sum = sum.wrapping_add(h.finish());
        }
        for r in self.dedupe.records() {
            let mut h = Fnv::new();
            h.int(2)
                .bytes(&r.key[..])
                .int(r.id.ms)
                .int(r.id.seq)
                .int(r.expires_ms);
            sum = sum.wrapping_add(h.finish());
        }
        for (name, seat) in self.seats.iter() {
            let mut h = Fnv::new();
            h.int(3).bytes(name);
            match seat {
                Seat::Held { user, expires_ms } => h.int(0).bytes(user).int(*expires_ms),
                Seat::Sold { user } => h.int(1).bytes(user),
            };
            sum = sum.wrapping_add(h.finish());
        }
        for buyer in self.buyers.iter() {
            if let Some(pass) = buyer.pass {
                let mut h = Fnv::new();
                h.int(4)
                    .bytes(&buyer.user)
                    .bytes(&pass.id)
                    .int(pass.expires_ms);
                sum = sum.wrapping_add(h.finish());
            }
        }
        sum
    }
}
