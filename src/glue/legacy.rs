//! Events stored by the previous release: tq 0.2 kept an event in plain
//! keys (its README, "Key layout"): the stream `queue`, the sorted sets
//! `order`, `beat`, `holds` and `user:<user>`, the hashes `tokens`, `seats`
//! and `admits`, one string `dedupe:<id>` per DEDUPE id, and `meta`, a
//! string of `name=value` pairs (tq 0.1: a hash of the same fields).
//!
//! Such an event is converted to this release's layout, losing nothing:
//! the stream stays as it is, everything else becomes one state, built
//! with the domain's own structures, and the old keys are deleted. It
//! happens once per event:
//! - after loading (RDB or AOF at startup, DEBUG RELOAD), on a master, for
//!   every event of every database (`convert_after_loading`);
//! - otherwise at the event's first write command from a client on a
//!   master (`convert_for_write`, from `OpenEvent::for_write`): an event
//!   that arrived later (RESTORE, MIGRATE) or a replica promoted since.
//!
//! A read command never writes (it may run on a replica, in a read-only
//! script, or while clients are paused for writes, when Redis 7.0 stops on
//! an assertion if anything is replicated): it answers from a conversion
//! made in memory for that one call (`read_in_memory`), and the event's
//! first write stores one.
//!
//! The conversion reaches replicas and the AOF as self-contained records,
//! whatever they hold: `XDEL` of any stream entries the state cannot hold,
//! `TQ.APPLY <event> 0 STATE <state> <version>` (the whole state), then `DEL` of the
//! old keys.
//!
//! An event is taken for one stored by 0.2 when it has no state and has a
//! `meta` key or an `order` key: every 0.2 event with counters, settings
//! or fans waiting has one of them (one with none of these, only expired
//! or DEDUPE keys left, is not converted). In a cluster, it waits
//! (TRYAGAIN) while the event's slot is moving (`check_cluster`).
//!
//! The old keys are read with RM_Call (it runs once per event). What is
//! missing or disagrees is converted as far as it goes and reported in the
//! log; the stream, which is what fans wait in, is the reference.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::server_events::LoadingSubevent;
use redis_module::{raw, CallOptionsBuilder, CallReply, CallResult, Context, ContextFlags};
use redis_module_macros::loading_event_handler;

use super::background;
use super::commands::{clock_ms, Call, Origin};
use super::config::defaults;
use super::keys::{Holds, Key, RStr};
use super::log::warning;
use crate::domain::args::{self, MAX_NAME_LEN};
use crate::domain::bucket::{window_start_s, Admissions, BucketState, RATE_WINDOW_S};
use crate::domain::codec;
use crate::domain::entry_id::EntryId;
use crate::domain::error::{TqError, TqResult};
use crate::domain::event::{Counters, Event};
use crate::domain::names::digest_of;
use crate::domain::settings::Setting;

/// Largest time and count a state may hold (as `codec` accepts them).
const MAX_TIME_MS: u64 = 1 << 48;
const MAX_COUNT: u64 = 1 << 56;

/// Stream entries read per XRANGE.
const XRANGE_PAGE: usize = 10_000;
/// Keys per replicated DEL.
const DEL_BATCH: usize = 1000;

/// The 0.2 keys of one event found by a scan of the keyspace: its
/// `dedupe:<id>` and `user:<user>` keys (no other key names them).
#[derive(Debug, Default)]
struct Scanned {
    /// It has a `meta` or an `order` key.
    listed: bool,
    keys: Vec<Vec<u8>>,
}

/// An event's 0.2 keys as a state.
struct Converted {
    event: Event,
    /// The 0.2 keys to delete once the state is stored (the stream is not
    /// one of them).
    old_keys: Vec<Vec<u8>>,
    /// Stream entries the state cannot hold (no token or user, a token
    /// twice, a name out of bounds): deleted from the stream.
    dropped: Vec<EntryId>,
}

// ---- the hooks -----------------------------------------------------------

/// For `OpenEvent::for_write` when the event has no state: a client's
/// command on a master converts an event stored by tq 0.2, so that the
/// command then acts on its state. True if it did (the caller reopens the
/// keys). Costs one key lookup for a new event (two when the stream exists
/// without a state, which is otherwise an error).
pub fn convert_for_write(call: &Call, event: &[u8], queue_exists: bool) -> TqResult<bool> {
    if call.origin != Origin::Client
        || !call.ctx.get_flags().contains(ContextFlags::MASTER)
        || !may_be_legacy(call.ctx, event, queue_exists)
    {
        return Ok(false);
    }
    convert(call.ctx, event, call.now_ms)
}

/// For `ReadEvent::open` when the event has no state: the state of an
/// event stored by tq 0.2, converted in memory for this call only (a read
/// writes nothing), O(the event's size). None for any other event.
pub fn read_in_memory(call: &Call, event: &[u8], queue_exists: bool) -> TqResult<Option<Event>> {
    if !may_be_legacy(call.ctx, event, queue_exists) {
        return Ok(None);
    }
    // Without its DEDUPE ids, which no read shows: finding their keys
    // takes a pass over the keyspace. Quietly: what is amiss is reported
    // once, by the conversion.
    let no_keys = Some(Vec::new());
    Ok(read(call.ctx, event, call.now_ms, no_keys, false)?.map(|c| c.event))
}

/// Whether the event may be one stored by 0.2: its `meta` (counters and
/// settings) is there, or, when the stream exists, its `order` (an event
/// with fans waiting and no counter yet).
fn may_be_legacy(ctx: &Context, event: &[u8], queue_exists: bool) -> bool {
    let exists =
        |part| Key::open(ctx, RStr::key_name(event, part), false).holds() != Holds::Nothing;
    exists("meta") || (queue_exists && exists("order"))
}

#[loading_event_handler]
fn convert_after_loading(ctx: &Context, loading: LoadingSubevent) {
    // The handler also runs on a replica after its sync: a replica gets
    // the master's conversion through replication.
    if loading != LoadingSubevent::Ended || !ctx.get_flags().contains(ContextFlags::MASTER) {
        return;
    }
    if catch_unwind(AssertUnwindSafe(|| convert_all(ctx))).is_err() {
        warning("converting the events stored by tq 0.2 panicked; each converts at its first write command instead");
    }
}

/// Converts every event stored by tq 0.2 in every database: one pass over
/// each database's keys, then each event. The pass costs about 0.8 us per
/// key (SCAN), at every load of a master.
fn convert_all(ctx: &Context) {
    let now_ms = clock_ms();
    // SAFETY: valid context of the event.
    let original = unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.ctx) };
    let mut converted = 0;
    for db in 0.. {
        // SAFETY: as above; fails past the last database.
        if unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, db) }
            != raw::REDISMODULE_OK as c_int
        {
            break;
        }
        for (event, found) in scan(ctx, None) {
            if !found.listed || args::event(&event).is_err() {
                continue;
            }
            match convert_with(ctx, &event, now_ms, Some(found.keys)) {
                Ok(true) => converted += 1,
                Ok(false) => {}
                Err(e) => warning(&format!(
                    "event '{}' stored by tq 0.2 (db {db}) was not converted at load: {e}",
                    show(&event)
                )),
            }
        }
    }
    // SAFETY: as above.
    unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.ctx, original) };
    if converted > 0 {
        ctx.log_notice(&format!(
            "tq: converted {converted} event(s) stored by tq 0.2 to the 0.3 layout"
        ));
    }
}

// ---- conversion ----------------------------------------------------------

/// Converts event `event` of the selected database if it is stored by tq
/// 0.2 (a `meta` or `order` key, no state): stores its state, deletes the
/// old keys, replicates both. True if it did.
pub fn convert(ctx: &Context, event: &[u8], now_ms: u64) -> TqResult<bool> {
    convert_with(ctx, event, now_ms, None)
}

fn convert_with(
    ctx: &Context,
    event: &[u8],
    now_ms: u64,
    scanned: Option<Vec<Vec<u8>>>,
) -> TqResult<bool> {
    if Key::open(ctx, RStr::key_name(event, "state"), false).holds() != Holds::Nothing {
        return Ok(false);
    }
    let Some(mut converted) = read(ctx, event, now_ms, scanned, true)? else {
        return Ok(false);
    };
    let bytes = codec::encode(&converted.event);
    // What replicas, the AOF and the next restart will load: refuse here,
    // before anything changes, what they would refuse, and store exactly
    // that (decoding also counts each user's seats).
    converted.event = codec::decode(&bytes)
        .map_err(|e| TqError::Internal(format!("converted state does not load: {e}")))?;
    // From here nothing can fail: every change goes through the key API
    // (RM_Call's DEL would refuse, in a cluster, several keys of which
    // some are missing) and fires the keyspace events the plain commands
    // would.
    if !converted.dropped.is_empty() {
        let queue_name = key_name(event, "queue");
        let queue = Key::open(ctx, RStr::new(&queue_name), true);
        let ids: Vec<Vec<u8>> = converted
            .dropped
            .iter()
            .filter(|id| queue.stream_delete(**id))
            .map(|id| id.text().to_vec())
            .collect();
        if !ids.is_empty() {
            queue.notify(raw::REDISMODULE_NOTIFY_STREAM as c_int, c"xdel");
            queue.signal_modified();
            let mut words: Vec<&[u8]> = vec![&queue_name];
            words.extend(ids.iter().map(Vec::as_slice));
            replicate(ctx, c"XDEL", &words);
        }
    }
    // Like a state loaded at a restart: fans whose heartbeat lapsed while
    // nothing looked after the event get a full period at its first step.
    converted.event.restarted = true;
    let mut state = Key::open(ctx, RStr::key_name(event, "state"), true);
    state.set_state(Box::new(converted.event));
    state.signal_modified();
    drop(state);
    let version = codec::ENCODING_VERSION.to_string();
    replicate(
        ctx,
        c"tq.apply",
        &[event, b"0", b"STATE", &bytes, version.as_bytes()],
    );
    for batch in converted.old_keys.chunks(DEL_BATCH) {
        for name in batch {
            delete_key(ctx, name);
        }
        // Sent whether or not the key was here: a replica or the AOF ends
        // without them whatever it held.
        let words: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        replicate(ctx, c"DEL", &words);
    }
    // SAFETY: valid context.
    let db = unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.ctx) };
    background::schedule(db, event, Some(0));
    Ok(true)
}

/// Reads the 0.2 keys of `event` into a state; None if it has none (no
/// `meta` string or hash and no `order` sorted set). `scanned`: its
/// `dedupe:` and `user:` keys if a scan found them already. `log`: report
/// what is amiss in Redis' log.
fn read(
    ctx: &Context,
    event: &[u8],
    now_ms: u64,
    scanned: Option<Vec<Vec<u8>>>,
    log: bool,
) -> TqResult<Option<Converted>> {
    let name = |part: &str| key_name(event, part);
    let meta_type = key_type(ctx, &name("meta"))?;
    let order_type = key_type(ctx, &name("order"))?;
    let meta_ok = matches!(meta_type.as_slice(), b"string" | b"hash");
    let order_ok = order_type == b"zset";
    if !(meta_ok || order_ok)
        || !matches!(meta_type.as_slice(), b"string" | b"hash" | b"none")
        || !matches!(order_type.as_slice(), b"zset" | b"none")
    {
        return Ok(None);
    }
    check_cluster(ctx, event)?;
    let mut report = Report::new(event, log);
    let meta = read_meta(ctx, &name("meta"), &meta_type, &mut report)?;
    let mut settings = defaults();
    for setting in Setting::ALL {
        if let Some(value) = meta.get(setting.field()) {
            let (min, max) = setting.range();
            if (min..=max).contains(&value) {
                settings.set(setting, value);
            } else {
                report.note(format!(
                    "meta {} = {value} is out of range; the module default {} is used",
                    setting.field(),
                    settings.get(setting)
                ));
            }
        }
    }
    let mut state = Event::new(settings);
    let count = |field: &str| meta.get(field).unwrap_or(0).min(MAX_COUNT);
    state.counters = Counters {
        inventory: count("inventory"),
        inventory_set: meta.get("inventory").is_some(),
        sold: count("sold"),
        admitted: count("admitted"),
        duplicates: count("duplicates"),
        abandoned: count("abandoned"),
        holds_expired: count("holds_expired"),
        ..Counters::default()
    };
    state.bucket = match (meta.get("bucket_milli"), meta.get("bucket_at")) {
        (Some(milli), Some(at)) => Some(BucketState {
            milli_tokens: milli.min(MAX_COUNT),
            at_ms: at.min(MAX_TIME_MS),
        }),
        (None, None) => None,
        _ => {
            report.note(
                "meta has only one of bucket_milli and bucket_at: the bucket starts full".into(),
            );
            None
        }
    };

    let mut old_keys: Vec<Vec<u8>> = [
        "order", "beat", "tokens", "seats", "holds", "meta", "admits",
    ]
    .iter()
    .map(|part| name(part))
    .collect();
    let scanned = scanned.unwrap_or_else(|| {
        scan(ctx, Some(event))
            .remove(event)
            .map(|found| found.keys)
            .unwrap_or_default()
    });
    let prefix = |part: &str| [name(part).as_slice(), b":"].concat();
    let (dedupe_prefix, user_prefix) = (prefix("dedupe"), prefix("user"));

    // The queue: the stream's entries, in its order.
    let (entries, dropped, stream_last) = read_stream(ctx, &name("queue"), &mut report)?;
    let beats = zset(ctx, &name("beat"))?;
    let mut missing_beats = 0;
    let mut last_id = stream_last;
    for (number, entry) in entries.iter().enumerate() {
        let beat_ms = match beats.get(&entry.token) {
            Some(&score) if score.is_finite() && score >= 0.0 => (score as u64).min(now_ms),
            _ => {
                missing_beats += 1;
                now_ms
            }
        };
        state.queue.insert(
            entry.id,
            digest_of(&entry.token),
            &digest_of(&entry.user),
            beat_ms,
            number as u64,
        );
        last_id = last_id.max(Some(entry.id));
    }
    if missing_beats > 0 {
        report.note(format!(
            "{missing_beats} waiting entries had no heartbeat in beat: they count from now"
        ));
    }
    if log {
        // Derived from the stream: only worth reading to report them.
        check_indexes(ctx, event, &entries, &mut report)?;
    }

    // DEDUPE ids: `dedupe:<id>` strings holding the entry's stream id.
    let mut users_seen: HashSet<&[u8]> = entries.iter().map(|e| e.user.as_slice()).collect();
    let mut unreadable_dedupe = 0;
    for key in &scanned {
        if let Some(user) = key.strip_prefix(user_prefix.as_slice()) {
            users_seen.insert(user);
            old_keys.push(key.clone());
            continue;
        }
        let Some(id_name) = key.strip_prefix(dedupe_prefix.as_slice()) else {
            continue;
        };
        let value = match call(ctx, "GET", &[key]) {
            Ok(reply) => string_of(&reply),
            // WRONGTYPE: not one of tq's; left alone.
            Err(_) => {
                unreadable_dedupe += 1;
                continue;
            }
        };
        let Some(value) = value else {
            continue; // expired since the scan
        };
        let Some(id) = parse_id(&value) else {
            unreadable_dedupe += 1;
            continue;
        };
        old_keys.push(key.clone());
        if id_name.is_empty() || id_name.len() > MAX_NAME_LEN {
            unreadable_dedupe += 1;
            continue;
        }
        let expires_ms = match integer(&call(ctx, "PEXPIRETIME", &[key])?) {
            Some(-2) => continue,
            Some(at) if at >= 0 => (at as u64).min(MAX_TIME_MS),
            _ => {
                report.note(format!(
                    "dedupe id '{}' had no expiry: its window is the event's dedupe_ttl from now",
                    show(id_name)
                ));
                now_ms + settings.dedupe_ttl_s * 1000
            }
        };
        if expires_ms <= now_ms {
            continue;
        }
        state.dedupe.record(digest_of(id_name), id, expires_ms);
        last_id = last_id.max(Some(id));
    }
    if unreadable_dedupe > 0 {
        report.note(format!(
            "{unreadable_dedupe} dedupe keys did not hold an entry id (or had an unusable name): not converted"
        ));
    }
    state.queue.last_id = last_id;
    state.queue.sort_beats();

    // Seats: the `seats` hash is the record; `holds` only indexes it.
    let mut unreadable_seats = 0;
    let mut held: HashMap<Vec<u8>, u64> = HashMap::new();
    for (seat, record) in hash(ctx, &name("seats"))? {
        match decode_seat(&record) {
            Some(_) if seat.is_empty() || seat.len() > MAX_NAME_LEN => unreadable_seats += 1,
            Some(LegacySeat::Held { user, expires_ms }) => {
                let expires_ms = expires_ms.min(MAX_TIME_MS);
                state.seats.hold(&seat, &user, expires_ms);
                held.insert(seat, expires_ms);
            }
            Some(LegacySeat::Sold { user }) => state.seats.sell(&seat, &user),
            None => unreadable_seats += 1,
        }
    }
    if unreadable_seats > 0 {
        report.note(format!(
            "{unreadable_seats} seat records were not 'held <ms> <user>' or 'sold <user>': those seats are available"
        ));
    }
    let holds = zset(ctx, &name("holds"))?;
    let disagree = holds
        .iter()
        .filter(|(seat, at)| held.get(*seat).map(|&ms| ms as f64) != Some(**at))
        .count()
        + held
            .keys()
            .filter(|seat| !holds.contains_key(*seat))
            .count();
    if disagree > 0 {
        report.note(format!(
            "holds disagreed with seats on {disagree} seats: the seat records are kept"
        ));
    }

    // Admissions per second; only the rate window's matter.
    let now_s = now_ms / 1000;
    let mut per_second = BTreeMap::new();
    let mut unreadable_admits = 0;
    for (second, n) in hash(ctx, &name("admits"))? {
        match (parse_count(&second), parse_count(&n)) {
            (Some(s), Some(n)) => {
                if (window_start_s(now_ms)..=now_s).contains(&s) && n > 0 {
                    per_second.insert(s, n.min(MAX_COUNT));
                }
            }
            _ => unreadable_admits += 1,
        }
    }
    if unreadable_admits > 0 {
        report.note(format!(
            "{unreadable_admits} fields of admits were not counts: left out of the admission rate"
        ));
    }
    state.admissions = Admissions {
        // 0.2 measured the rate over the whole window: admissions count as
        // having run for all of it.
        first_ms: (!per_second.is_empty() || state.counters.admitted > 0)
            .then(|| now_ms.saturating_sub(RATE_WINDOW_S * 1000)),
        per_second: per_second.into_iter().collect(),
    };

    // Each waiting user's own key; most were found by the scan already.
    let mut old_keys: Vec<Vec<u8>> = old_keys
        .into_iter()
        .chain(
            users_seen
                .into_iter()
                .map(|user| [user_prefix.as_slice(), user].concat()),
        )
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    old_keys.sort_unstable();
    report.finish();
    Ok(Some(Converted {
        event: state,
        old_keys,
        dropped,
    }))
}

/// One waiting entry of the 0.2 stream.
struct Entry {
    id: EntryId,
    token: Vec<u8>,
    user: Vec<u8>,
}

/// The stream's entries the state can hold, the ids of those it cannot,
/// and its last generated id (also that of an entry since deleted).
#[allow(clippy::type_complexity)]
fn read_stream(
    ctx: &Context,
    queue: &[u8],
    report: &mut Report,
) -> TqResult<(Vec<Entry>, Vec<EntryId>, Option<EntryId>)> {
    let (mut entries, mut dropped) = (Vec::new(), Vec::new());
    match key_type(ctx, queue)?.as_slice() {
        b"stream" => {}
        b"none" => return Ok((entries, dropped, None)),
        _ => return Err(TqError::WrongType),
    }
    let mut tokens: HashSet<Vec<u8>> = HashSet::new();
    let mut start = b"-".to_vec();
    loop {
        let page_size = XRANGE_PAGE.to_string();
        let reply = call(
            ctx,
            "XRANGE",
            &[queue, &start, b"+", b"COUNT", page_size.as_bytes()],
        )?;
        let page = items(&reply);
        let mut last = None;
        for item in &page {
            let Some((id, fields)) = stream_entry(item) else {
                return Err(TqError::Internal("unreadable XRANGE reply".into()));
            };
            last = Some(id);
            let field = |name: &[u8]| {
                fields
                    .chunks(2)
                    .find(|pair| pair.len() == 2 && pair[0] == name)
                    .map(|pair| pair[1].clone())
            };
            let usable = |n: &Vec<u8>| !n.is_empty() && n.len() <= MAX_NAME_LEN;
            match (field(b"token"), field(b"user")) {
                (Some(token), Some(user))
                    if usable(&token) && usable(&user) && !tokens.contains(&token) =>
                {
                    tokens.insert(token.clone());
                    entries.push(Entry { id, token, user });
                }
                _ => dropped.push(id),
            }
        }
        match last {
            Some(id) if page.len() == XRANGE_PAGE => start = [b"(", &*id.text()].concat(),
            _ => break,
        }
    }
    if !dropped.is_empty() {
        report.note(format!(
            "{} stream entries had no usable token or user, or repeated a token: deleted from the stream",
            dropped.len()
        ));
    }
    let info = call(ctx, "XINFO", &[b"STREAM", queue])?;
    let fields = items(&info);
    let last_generated = fields
        .chunks(2)
        .find(|pair| {
            pair.len() == 2 && string_of_result(&pair[0]).as_deref() == Some(b"last-generated-id")
        })
        .and_then(|pair| string_of_result(&pair[1]))
        .and_then(|id| parse_id(&id));
    let max_entry = entries
        .iter()
        .map(|e| e.id)
        .chain(dropped.iter().copied())
        .max();
    Ok((entries, dropped, last_generated.max(max_entry)))
}

/// Compares the stream with the indexes 0.2 kept beside it (`order`,
/// `tokens`): they are derived from it, so a disagreement is only
/// reported.
fn check_indexes(
    ctx: &Context,
    event: &[u8],
    entries: &[Entry],
    report: &mut Report,
) -> TqResult<()> {
    let by_token: HashMap<&[u8], &Entry> =
        entries.iter().map(|e| (e.token.as_slice(), e)).collect();
    let order = zset(ctx, &key_name(event, "order"))?;
    let order_off = order
        .iter()
        .filter(|(token, score)| {
            by_token
                .get(token.as_slice())
                .is_none_or(|e| legacy_score(e.id) != Some(**score))
        })
        .count()
        + entries.len().saturating_sub(order.len());
    let tokens = hash(ctx, &key_name(event, "tokens"))?;
    let tokens_off = tokens
        .iter()
        .filter(|(token, user)| {
            by_token
                .get(token.as_slice())
                .is_none_or(|e| e.user != *user)
        })
        .count()
        + entries.len().saturating_sub(tokens.len());
    if order_off + tokens_off > 0 {
        report.note(format!(
            "order ({order_off}) and tokens ({tokens_off}) disagreed with the stream: the stream is kept"
        ));
    }
    Ok(())
}

/// In a cluster a slot moves between nodes a batch of keys at a time, and
/// while it moves the event's commands run on the node it moves to: while
/// the event's slot is moving, or its 0.2 keys are only partly here (0.2's
/// own rule), a conversion would lose what has not arrived. TRYAGAIN then.
fn check_cluster(ctx: &Context, event: &[u8]) -> TqResult<()> {
    if !ctx.get_flags().contains(ContextFlags::CLUSTER) {
        return Ok(());
    }
    let here =
        |part: &str| -> TqResult<bool> { Ok(key_type(ctx, &key_name(event, part))? != b"none") };
    let (order, beat, tokens) = (here("order")?, here("beat")?, here("tokens")?);
    let (seats, holds, meta, admits) = (
        here("seats")?,
        here("holds")?,
        here("meta")?,
        here("admits")?,
    );
    let queue = key_name(event, "queue");
    let entries = here("queue")? && integer(&call(ctx, "XLEN", &[&queue])?).unwrap_or(0) > 0;
    let whole = entries == order
        && order == beat
        && order == tokens
        && (!holds || seats)
        && (!seats || meta)
        && (!admits || meta);
    let slot = integer(&call(ctx, "CLUSTER", &[b"KEYSLOT", &queue])?).unwrap_or(-1);
    let nodes = string_of(&call(ctx, "CLUSTER", &[b"NODES"])?).unwrap_or_default();
    let (importing, migrating) = (format!("[{slot}-<-"), format!("[{slot}->-"));
    let moving = nodes
        .split(|&b| b == b'\n')
        .filter(|line| line.windows(6).any(|w| w == b"myself"))
        .any(|line| {
            let line = String::from_utf8_lossy(line);
            line.contains(&importing) || line.contains(&migrating)
        });
    if whole && !moving {
        Ok(())
    } else {
        Err(TqError::TryAgain)
    }
}

/// The score 0.2 gave an entry in `order` and `user:<user>`.
fn legacy_score(id: EntryId) -> Option<f64> {
    (id.seq < 2048 && id.ms < 1 << 42).then_some(((id.ms << 11) | id.seq) as f64)
}

// ---- meta ----------------------------------------------------------------

/// The fields tq 0.2 kept in `meta`.
const META_FIELDS: [&str; 15] = [
    "inventory",
    "sold",
    "admitted",
    "duplicates",
    "abandoned",
    "holds_expired",
    "rate",
    "burst",
    "heartbeat",
    "hold_ttl",
    "dedupe_ttl",
    "bucket_milli",
    "bucket_at",
    "recent_admits",
    "recent_from",
];

#[derive(Debug, Default)]
struct Meta(HashMap<&'static str, u64>);

impl Meta {
    fn get(&self, field: &str) -> Option<u64> {
        self.0.get(field).copied()
    }

    /// Takes one pair; names 0.2 did not know are ignored.
    fn absorb(&mut self, name: &[u8], value: &[u8], report: &mut Report) {
        let Some(field) = META_FIELDS.iter().find(|f| f.as_bytes() == name) else {
            return;
        };
        match parse_count(value) {
            Some(n) => {
                self.0.insert(field, n);
            }
            None => report.note(format!(
                "meta {field} = '{}' is not a count: left out",
                show(value)
            )),
        }
    }
}

fn read_meta(ctx: &Context, key: &[u8], kind: &[u8], report: &mut Report) -> TqResult<Meta> {
    let mut meta = Meta::default();
    match kind {
        b"string" => {
            let text = string_of(&call(ctx, "GET", &[key])?).unwrap_or_default();
            for pair in text.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
                match pair.iter().position(|&b| b == b'=') {
                    Some(at) => meta.absorb(&pair[..at], &pair[at + 1..], report),
                    None => report.note(format!(
                        "meta holds '{}', not a name=value pair: left out",
                        show(pair)
                    )),
                }
            }
        }
        b"hash" => {
            for (name, value) in hash(ctx, key)? {
                meta.absorb(&name, &value, report);
            }
        }
        _ => {}
    }
    Ok(meta)
}

// ---- seats ---------------------------------------------------------------

enum LegacySeat {
    Held { user: Vec<u8>, expires_ms: u64 },
    Sold { user: Vec<u8> },
}

/// A 0.2 seat record: `held <expires_ms> <user>` or `sold <user>`.
fn decode_seat(raw: &[u8]) -> Option<LegacySeat> {
    let usable =
        |user: &[u8]| (!user.is_empty() && user.len() <= MAX_NAME_LEN).then(|| user.to_vec());
    if let Some(user) = raw.strip_prefix(b"sold ") {
        return Some(LegacySeat::Sold {
            user: usable(user)?,
        });
    }
    let rest = raw.strip_prefix(b"held ")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    Some(LegacySeat::Held {
        expires_ms: parse_count(&rest[..space])?,
        user: usable(&rest[space + 1..])?,
    })
}

// ---- scanning ------------------------------------------------------------

/// The 0.2 keys that only a scan of the selected database finds, by event
/// (of `only`, or of every event). Event names hold no brace, so the event
/// of `tq:{E}:...` is what comes before the first `}`. SCAN with MATCH:
/// Redis skips the keys that are not tq's without handing them over
/// (RM_Scan's callback costs about 1 us per key; this one pass runs at
/// every load of a master).
fn scan(ctx: &Context, only: Option<&[u8]>) -> HashMap<Vec<u8>, Scanned> {
    let mut pattern = b"tq:{".to_vec();
    match only {
        Some(event) => {
            for &b in event {
                if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                    pattern.push(b'\\');
                }
                pattern.push(b);
            }
            pattern.extend_from_slice(b"}:*");
        }
        None => pattern.extend_from_slice(b"*}:*"),
    }
    let mut found: HashMap<Vec<u8>, Scanned> = HashMap::new();
    let mut cursor = b"0".to_vec();
    loop {
        let Ok(reply) = call(
            ctx,
            "SCAN",
            &[&cursor, b"MATCH", &pattern, b"COUNT", b"1000"],
        ) else {
            break;
        };
        let page = items(&reply);
        let Some(next) = page.first().and_then(string_of_result) else {
            break;
        };
        let names = match page.get(1) {
            Some(Ok(CallReply::Array(names))) => {
                names.iter().filter_map(|n| string_of_result(&n)).collect()
            }
            _ => Vec::new(),
        };
        for name in names {
            note_key(&mut found, name, only);
        }
        if next == b"0" {
            break;
        }
        cursor = next;
    }
    for scanned in found.values_mut() {
        // SCAN may return a key twice.
        scanned.keys.sort_unstable();
        scanned.keys.dedup();
    }
    found
}

/// Files key `name` under its event if it is a 0.2 key a scan looks for.
fn note_key(found: &mut HashMap<Vec<u8>, Scanned>, name: Vec<u8>, only: Option<&[u8]>) {
    let Some(rest) = name.strip_prefix(b"tq:{") else {
        return;
    };
    let Some(close) = rest.iter().position(|&b| b == b'}') else {
        return;
    };
    let (event, part) = (&rest[..close], &rest[close + 1..]);
    if only.is_some_and(|only| only != event) {
        return;
    }
    let Some(part) = part.strip_prefix(b":") else {
        return;
    };
    let listed = part == b"meta" || part == b"order";
    let named = part.starts_with(b"dedupe:") || part.starts_with(b"user:");
    if listed || named {
        let entry = found.entry(event.to_vec()).or_default();
        entry.listed |= listed;
        if named {
            entry.keys.push(name);
        }
    }
}

// ---- talking to Redis ----------------------------------------------------

fn key_name(event: &[u8], part: &str) -> Vec<u8> {
    [b"tq:{", event, b"}:", part.as_bytes()].concat()
}

/// Runs a read through RM_Call:
/// binary-safe arguments, RESP2 replies, nothing replicated.
fn call(ctx: &Context, command: &str, args: &[&[u8]]) -> TqResult<CallReply<'static>> {
    let options = CallOptionsBuilder::new().errors_as_replies().build();
    let reply: CallResult<'static> = ctx.call_ext(command, &options, args);
    reply.map_err(|e| TqError::Internal(format!("{command} failed: {e}")))
}

fn key_type(ctx: &Context, key: &[u8]) -> TqResult<Vec<u8>> {
    Ok(string_of(&call(ctx, "TYPE", &[key])?).unwrap_or_default())
}

fn string_of(reply: &CallReply) -> Option<Vec<u8>> {
    match reply {
        CallReply::String(s) => Some(s.as_bytes().to_vec()),
        CallReply::VerbatimString(s) => s.as_parts().map(|(_, data)| data.to_vec()),
        _ => None,
    }
}

fn string_of_result(reply: &CallResult) -> Option<Vec<u8>> {
    reply.as_ref().ok().and_then(string_of)
}

fn integer(reply: &CallReply) -> Option<i64> {
    match reply {
        CallReply::I64(n) => Some(n.to_i64()),
        _ => None,
    }
}

/// The elements of an array reply (empty for anything else).
fn items<'r>(reply: &'r CallReply<'static>) -> Vec<CallResult<'r>> {
    match reply {
        CallReply::Array(array) => array.iter().collect(),
        _ => Vec::new(),
    }
}

/// (field, value) of a hash (HGETALL); empty if there is none.
fn hash(ctx: &Context, key: &[u8]) -> TqResult<Vec<(Vec<u8>, Vec<u8>)>> {
    if key_type(ctx, key)? != b"hash" {
        return Ok(Vec::new());
    }
    let reply = call(ctx, "HGETALL", &[key])?;
    Ok(pairs(&reply))
}

/// member -> score of a sorted set; empty if there is none.
fn zset(ctx: &Context, key: &[u8]) -> TqResult<HashMap<Vec<u8>, f64>> {
    if key_type(ctx, key)? != b"zset" {
        return Ok(HashMap::new());
    }
    let reply = call(ctx, "ZRANGE", &[key, b"0", b"-1", b"WITHSCORES"])?;
    Ok(pairs(&reply)
        .into_iter()
        .filter_map(|(member, score)| {
            let score = std::str::from_utf8(&score).ok()?.parse::<f64>().ok()?;
            Some((member, score))
        })
        .collect())
}

/// A flat RESP2 array of strings as pairs.
fn pairs(reply: &CallReply<'static>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let flat: Vec<Vec<u8>> = items(reply)
        .iter()
        .map(|item| string_of_result(item).unwrap_or_default())
        .collect();
    flat.chunks_exact(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect()
}

/// One XRANGE element: `[id, [field, value, ...]]`.
fn stream_entry(item: &CallResult) -> Option<(EntryId, Vec<Vec<u8>>)> {
    let Ok(CallReply::Array(entry)) = item else {
        return None;
    };
    let id = parse_id(&string_of_result(&entry.get(0)?)?)?;
    let fields = match entry.get(1)? {
        Ok(CallReply::Array(fields)) => fields
            .iter()
            .map(|f| string_of_result(&f).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    Some((id, fields))
}

/// Deletes a key as DEL would: the `del` keyspace event and a signal to
/// WATCHers if it was there.
fn delete_key(ctx: &Context, name: &[u8]) {
    let name = RStr::new(name);
    // SAFETY: valid context and key name; the key is closed before return.
    unsafe {
        let key = raw::RedisModule_OpenKey.unwrap()(
            ctx.ctx,
            name.ptr,
            (raw::REDISMODULE_READ | raw::REDISMODULE_WRITE) as c_int,
        );
        if key.is_null() {
            return;
        }
        if raw::RedisModule_KeyType.unwrap()(key) != raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
            raw::RedisModule_DeleteKey.unwrap()(key);
            raw::RedisModule_NotifyKeyspaceEvent.unwrap()(
                ctx.ctx,
                raw::REDISMODULE_NOTIFY_GENERIC as c_int,
                c"del".as_ptr(),
                name.ptr,
            );
            raw::RedisModule_SignalModifiedKey.unwrap()(ctx.ctx, name.ptr);
        }
        raw::RedisModule_CloseKey.unwrap()(key);
    }
}

/// RM_Replicate of `command` with binary-safe arguments.
fn replicate(ctx: &Context, command: &std::ffi::CStr, words: &[&[u8]]) {
    let strings: Vec<RStr> = words.iter().map(|w| RStr::new(w)).collect();
    let argv: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.ptr).collect();
    // SAFETY: 'v' takes an array of live strings and its length.
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            ctx.ctx,
            command.as_ptr(),
            c"v".as_ptr(),
            argv.as_ptr(),
            argv.len(),
        );
    }
}

// ---- text ----------------------------------------------------------------

/// A decimal count (digits only, no sign, fits 64 bits).
fn parse_count(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A stream id `ms-seq`.
fn parse_id(text: &[u8]) -> Option<EntryId> {
    let dash = text.iter().position(|&b| b == b'-')?;
    let ms = parse_count(&text[..dash])?;
    let seq = parse_count(&text[dash + 1..])?;
    (ms <= MAX_TIME_MS && seq <= MAX_COUNT).then_some(EntryId::new(ms, seq))
}

fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(&name[..name.len().min(64)])
        .escape_default()
        .to_string()
}

/// What a conversion found amiss, logged as one warning.
struct Report {
    event: String,
    notes: Vec<String>,
    log: bool,
}

impl Report {
    fn new(event: &[u8], log: bool) -> Report {
        Report {
            event: show(event),
            notes: Vec::new(),
            log,
        }
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    fn finish(self) {
        if self.log && !self.notes.is_empty() {
            warning(&format!(
                "event '{}' stored by tq 0.2: {}",
                self.event,
                self.notes.join("; ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_records_and_ids_read_as_0_2_wrote_them() {
        assert!(matches!(
            decode_seat(b"held 1700000000000 alice bob"),
            Some(LegacySeat::Held { ref user, expires_ms: 1_700_000_000_000 }) if user == b"alice bob"
        ));
        assert!(
            matches!(decode_seat(b"sold bob"), Some(LegacySeat::Sold { ref user }) if user == b"bob")
        );
        assert!(decode_seat(b"held x bob").is_none());
        assert!(decode_seat(b"sold ").is_none());
        assert!(decode_seat(b"junk").is_none());
        assert_eq!(
            parse_id(b"1700000000000-3"),
            Some(EntryId::new(1_700_000_000_000, 3))
        );
        assert_eq!(parse_id(b"17-"), None);
        assert_eq!(parse_count(b"18446744073709551616"), None);
        assert_eq!(legacy_score(EntryId::new(1, 2)), Some(2050.0));
    }

    #[test]
    fn meta_pairs_unknown_to_0_2_are_ignored() {
        let mut report = Report::new(b"e", false);
        let mut meta = Meta::default();
        meta.absorb(b"sold", b"2", &mut report);
        meta.absorb(b"future", b"x", &mut report);
        meta.absorb(b"rate", b"-1", &mut report);
        assert_eq!(meta.get("sold"), Some(2));
        assert_eq!(meta.get("rate"), None);
        assert_eq!(report.notes.len(), 1);
    }
}
