//! Waiting-room rules: join, position, admission, leave, trim, abandonment.
//!
//! Write operations first reap abandoned entries, so every position they
//! compute counts only live entries. Read-only views (`user_view`,
//! `stats`) cannot write, so they subtract abandoned-but-not-yet-reaped
//! entries instead; on a master the reaper keeps that set small.

use super::args::{Enqueue, MAX_NAME_LEN};
use super::bucket;
use super::entry_id::EntryId;
use super::error::{TqError, TqResult};
use super::settings::Settings;
use super::store::{BucketState, Counter, EventStore, Waiting};

/// No bound: used where a command must see every due removal.
pub const ALL: usize = usize::MAX;

/// TQ.TRIM reads and removes the entries it trims this many at a time.
const TRIM_PAGE: usize = 1024;

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub position_was: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub id: EntryId,
    pub token: Vec<u8>,
    pub position: u64,
}

pub fn enqueue<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
    req: &Enqueue<'_>,
) -> TqResult<Enqueued> {
    reap_abandoned(store, settings, now_ms, ALL)?;
    if let Some(original) = store.entry_id(req.token)? {
        return duplicate(store, original.to_string().into_bytes());
    }
    if let Some(dedupe) = req.dedupe {
        if let Some(original) = store.dedupe_lookup(dedupe)? {
            return duplicate(store, original);
        }
    }
    let id = store.append(req.token, req.user, now_ms)?;
    if let Some(dedupe) = req.dedupe {
        let ttl_s = req.ttl_s.unwrap_or(settings.dedupe_ttl_s);
        store.dedupe_record(dedupe, id, now_ms + ttl_s * 1000)?;
    }
    // The new entry is at the tail of both orders.
    Ok(Enqueued {
        id,
        position: store.waiting_count()?,
        user_position: store.user_waiting_count(req.user)?,
    })
}

fn duplicate<S: EventStore, T>(store: &mut S, original: Vec<u8>) -> TqResult<T> {
    store.add_counter(Counter::Duplicates, 1)?;
    let mut id = original;
    id.truncate(MAX_NAME_LEN);
    Err(TqError::Duplicate(
        String::from_utf8_lossy(&id).into_owned(),
    ))
}

/// TQ.POSITION: where `token` stands; also its heartbeat.
pub fn position<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
    token: &[u8],
) -> TqResult<PositionInfo> {
    reap_abandoned(store, settings, now_ms, ALL)?;
    let entry = find(store, token)?;
    let position = store.rank(token)? + 1;
    let user_position = store.user_rank(&entry.user, token)? + 1;
    let tokens = bucket::whole_tokens(bucket::milli_tokens_now(store.bucket()?, settings, now_ms));
    let ready = position <= tokens;
    // The measured rate only matters for an entry that must wait.
    let measured = if ready {
        0.0
    } else {
        measured_rate(store, now_ms)?
    };
    store.touch(token, now_ms)?;
    Ok(PositionInfo {
        position,
        user_position,
        ready,
        eta_ms: bucket::eta_ms(position, tokens, measured, settings.rate),
        waited_ms: now_ms.saturating_sub(entry.id.ms),
    })
}

/// TQ.ENTER: admits `token` if its position is within the whole tokens
/// available now, spending one.
pub fn enter<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
    token: &[u8],
) -> TqResult<Admitted> {
    reap_abandoned(store, settings, now_ms, ALL)?;
    let entry = find(store, token)?;
    let position = store.rank(token)? + 1;
    let milli = bucket::milli_tokens_now(store.bucket()?, settings, now_ms);
    if position > bucket::whole_tokens(milli) {
        return Err(TqError::NotReady(position));
    }
    store.set_bucket(BucketState {
        milli_tokens: milli - 1000,
        at_ms: now_ms,
    })?;
    store.remove(std::slice::from_ref(&entry))?;
    store.add_counter(Counter::Admitted, 1)?;
    store.record_admission(now_ms)?;
    Ok(Admitted {
        position_was: position,
    })
}

/// TQ.LEAVE: true if the entry was waiting and is now gone.
pub fn leave<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
    token: &[u8],
) -> TqResult<bool> {
    reap_abandoned(store, settings, now_ms, ALL)?;
    match find(store, token) {
        Ok(entry) => store.remove(std::slice::from_ref(&entry)).map(|_| true),
        Err(TqError::NotQueued) => Ok(false),
        Err(e) => Err(e),
    }
}

/// TQ.TRIM MAXAGE: removes entries that joined more than `max_age_s` ago.
pub fn trim<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
    max_age_s: u64,
) -> TqResult<u64> {
    reap_abandoned(store, settings, now_ms, ALL)?;
    let min_id = EntryId::new(now_ms.saturating_sub(max_age_s * 1000), 0);
    let mut removed = 0;
    loop {
        let batch = store.entries_before(min_id, TRIM_PAGE)?;
        if batch.is_empty() {
            return Ok(removed);
        }
        store.remove(&batch)?;
        removed += batch.len() as u64;
    }
}

/// TQ.USER (read-only): this user's live entries, oldest first.
pub fn user_view<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
    user: &[u8],
) -> TqResult<Vec<UserEntry>> {
    let abandoned = abandoned_ids(store, settings, now_ms)?;
    let mut view = Vec::new();
    for (id, token) in store.user_entries(user)? {
        if abandoned.binary_search(&id).is_ok() {
            continue;
        }
        let ahead_abandoned = abandoned.partition_point(|a| *a < id) as u64;
        let position = store.rank(&token)? + 1 - ahead_abandoned;
        view.push(UserEntry {
            id,
            token,
            position,
        });
    }
    Ok(view)
}

/// Removes entries whose heartbeat is older than the event's `heartbeat`
/// setting, at most `limit`; counts them as abandoned.
pub fn reap_abandoned<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
    limit: usize,
) -> TqResult<u64> {
    let cutoff = abandon_cutoff(settings, now_ms);
    let stale = store.stale_tokens(cutoff, limit)?;
    if stale.is_empty() {
        return Ok(0);
    }
    let entries = stale
        .iter()
        .map(|token| find(store, token))
        .collect::<TqResult<Vec<_>>>()?;
    store.remove(&entries)?;
    store.add_counter(Counter::Abandoned, entries.len() as i64)?;
    Ok(entries.len() as u64)
}

/// An entry is abandoned once `now - last heartbeat > heartbeat`, i.e. its
/// last heartbeat is before this cutoff.
pub fn abandon_cutoff(settings: &Settings, now_ms: u64) -> u64 {
    now_ms.saturating_sub(settings.heartbeat_ms())
}

/// Ids of stored entries that are abandoned as of `now_ms`, sorted.
fn abandoned_ids<S: EventStore>(
    store: &mut S,
    settings: &Settings,
    now_ms: u64,
) -> TqResult<Vec<EntryId>> {
    let mut ids = Vec::new();
    for token in store.stale_tokens(abandon_cutoff(settings, now_ms), ALL)? {
        if let Some(id) = store.entry_id(&token)? {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Admissions per second over the last minute.
pub fn measured_rate<S: EventStore>(store: &mut S, now_ms: u64) -> TqResult<f64> {
    let count = store.admissions_since(bucket::window_start_s(now_ms))?;
    Ok(bucket::admission_rate(count))
}

fn find<S: EventStore>(store: &mut S, token: &[u8]) -> TqResult<Waiting> {
    store.entry(token)?.ok_or(TqError::NotQueued)
}
