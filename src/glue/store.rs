//! `EventStore` on Redis keys.
//!
//! Data goes through the low-level key API (`rawkey`), each key of the
//! event opened at most once per command. Every write is then replicated
//! as the plain command that has the same effect (`XADD` with the concrete
//! id, `ZADD` with concrete scores, `HSET` with the new value, `SET ... PXAT`
//! with an absolute time), never as the clock-dependent TQ command, and
//! fires the keyspace event that command would. The reads with no
//! low-level form (`ZRANK`, `ZCOUNT`) use RM_Call.

use std::ffi::{c_int, CStr};

use redis_module::{raw, Context, ContextFlags, KeyType};
use smallvec::SmallVec;

use super::keys::{EventKeys, Fixed, Other, Presence};
use super::meta::{MetaField, MetaValues};
use super::rawkey::{Key, RStr, RedisArg};
use crate::domain::bucket::window_start_s;
use crate::domain::decimal::{parse_count, Decimal};
use crate::domain::entry_id::{EntryId, IdText};
use crate::domain::error::{TqError, TqResult};
use crate::domain::seats::{decode_seat, encode_seat};
use crate::domain::settings::{Setting, Settings, SettingsChange};
use crate::domain::store::{BucketState, Counter, EventStore, StoredSeat, Waiting};

const NOTIFY_ZSET: c_int = raw::REDISMODULE_NOTIFY_ZSET;
const NOTIFY_HASH: c_int = raw::REDISMODULE_NOTIFY_HASH;

/// A user's rank is counted by walking their entries up to this many;
/// beyond, ZRANK is cheaper.
const WALK_USER_RANK: u64 = 32;

/// Entries removed together (reaping, TRIM) go in batches of this many:
/// each batch's removals from a key replicate as one command.
const REMOVE_BATCH: usize = 1024;

/// A batch this big first looks for a run of entries at the queue's
/// front, to trim rather than delete one by one (see `front_run`).
const TRIM_FRONT_FROM: usize = 16;

/// Seconds of admission history looked up one by one when they leave the
/// window; past this many (after a pause in admissions), one scan of the
/// hash costs less.
const LOOKUP_SECONDS: u64 = 8;

fn parse_u64(b: &[u8]) -> TqResult<u64> {
    parse_count(b).ok_or_else(|| TqError::Internal("stored number is not a count".into()))
}

/// A `meta` hash as tq 0.1 kept it.
fn read_meta_hash(key: &Key<'_>) -> TqResult<MetaValues> {
    let mut values = MetaValues::default();
    let mut refused = None;
    key.hscan(|name, value| {
        if let Err(e) = values.absorb(name, value) {
            refused.get_or_insert(e);
        }
    });
    refused.map_or(Ok(values), Err)
}

fn corrupt(what: &str) -> TqError {
    TqError::Internal(format!("unreadable {what}"))
}

/// Integer reply of a read-only `cmd key arg [arg]` run through RM_Call
/// (ZRANK and ZCOUNT have no low-level form); None for a nil reply. The
/// strings go in as they are ('s'), so nothing is copied on the way.
fn call_int(ctx: &Context, cmd: &CStr, key: &RStr, args: &[&RStr]) -> TqResult<Option<i64>> {
    // SAFETY: each format has one 's' per live string passed; the reply is
    // read, then freed once.
    unsafe {
        let call = raw::RedisModule_Call.unwrap();
        let reply = match args {
            [a] => call(ctx.ctx, cmd.as_ptr(), c"ss".as_ptr(), key.ptr, a.ptr),
            [a, b] => call(
                ctx.ctx,
                cmd.as_ptr(),
                c"sss".as_ptr(),
                key.ptr,
                a.ptr,
                b.ptr,
            ),
            _ => return Err(TqError::Internal(format!("{cmd:?}: unexpected arguments"))),
        };
        if reply.is_null() {
            return Err(TqError::Internal(format!("{cmd:?} failed")));
        }
        let result = match raw::RedisModule_CallReplyType.unwrap()(reply) as isize {
            raw::REDISMODULE_REPLY_INTEGER => {
                Ok(Some(raw::RedisModule_CallReplyInteger.unwrap()(reply)))
            }
            raw::REDISMODULE_REPLY_NULL => Ok(None),
            _ => Err(corrupt("reply")),
        };
        raw::RedisModule_FreeCallReply.unwrap()(reply);
        result
    }
}

pub struct RedisStore<'c> {
    ctx: &'c Context,
    pub keys: EventKeys,
    writable: bool,
    /// The event's fixed keys, each opened on first use.
    open: [Option<Key<'c>>; 8],
    /// Per-user and per-dedupe-id keys opened so far (one or two).
    others: Vec<(Other, Key<'c>)>,
    /// The meta values, read on first use.
    meta: Option<MetaValues>,
    /// Strings made for the members this command names (its token, user,
    /// seat), reused by each operation and replicated write naming them.
    made: [Option<RStr>; KEPT_STRINGS],
}

/// Per-user and dedupe keys a command keeps open (most use one or two).
const KEPT_OTHERS: usize = 8;

/// How many distinct member strings a command keeps for reuse; a command
/// that names more (TRIM, reaping) makes the others per use.
const KEPT_STRINGS: usize = 8;

impl<'c> RedisStore<'c> {
    /// A store for a write command (keys opened for writing).
    pub fn new(ctx: &'c Context, event: &[u8]) -> Self {
        RedisStore::with_mode(ctx, event, true)
    }

    /// A store for a read-only command: usable on replicas, writes nothing.
    pub fn read_only(ctx: &'c Context, event: &[u8]) -> Self {
        RedisStore::with_mode(ctx, event, false)
    }

    fn with_mode(ctx: &'c Context, event: &[u8], writable: bool) -> Self {
        RedisStore {
            ctx,
            keys: EventKeys::new(event),
            writable,
            open: Default::default(),
            others: Vec::new(),
            meta: None,
            made: Default::default(),
        }
    }

    pub fn ctx(&self) -> &'c Context {
        self.ctx
    }

    /// The checks every command makes before it reads or writes: the
    /// `family` keys and `others` keys it uses have the right types (else
    /// WRONGTYPE), and in a cluster the event's keys are all on this node
    /// (else TRYAGAIN, while a slot migration has moved only some).
    pub fn guard(&mut self, family: &[Fixed], others: &[(Other, &[u8])]) -> TqResult<()> {
        for &which in family {
            if !which.accepts(self.key(which).key_type()) {
                return Err(TqError::WrongType);
            }
        }
        if family.contains(&Fixed::Meta) {
            self.meta()?;
        }
        for &(kind, id) in others {
            if !kind.accepts(self.other(kind, id).key_type()) {
                return Err(TqError::WrongType);
            }
        }
        if self.ctx.get_flags().contains(ContextFlags::CLUSTER) && !self.presence().is_whole() {
            return Err(TqError::TryAgain);
        }
        if self.writable {
            // Any write may add entries or holds that time out later.
            super::reaper::note(self.ctx, self.keys.event());
        }
        Ok(())
    }

    fn presence(&mut self) -> Presence {
        Presence {
            queue_entries: !self.key(Fixed::Queue).is_empty(),
            order: self.key(Fixed::Order).exists(),
            beat: self.key(Fixed::Beat).exists(),
            meta: self.key(Fixed::Meta).exists(),
            seats: self.key(Fixed::Seats).exists(),
            holds: self.key(Fixed::Holds).exists(),
            admits: self.key(Fixed::Admits).exists(),
            tokens: self.key(Fixed::Tokens).exists(),
        }
    }

    /// When the event's next entry is abandoned or next hold expires, if
    /// it has any.
    pub fn next_deadline(&mut self, settings: &Settings) -> Option<u64> {
        let first = |key: &Key<'_>| {
            key.zrange_by_score(f64::NEG_INFINITY, f64::INFINITY, true, 1)
                .first()
                .map(|(_, score)| *score as u64)
        };
        // Abandoned once now - last heartbeat > heartbeat.
        let abandon = first(self.key(Fixed::Beat)).map(|beat| beat + settings.heartbeat_ms() + 1);
        let expire = first(self.key(Fixed::Holds));
        abandon.into_iter().chain(expire).min()
    }

    fn key(&mut self, which: Fixed) -> &Key<'c> {
        let (ctx, writable) = (self.ctx, self.writable);
        let keys = &self.keys;
        self.open[which as usize]
            .get_or_insert_with(|| Key::open(ctx, keys.fixed(ctx, which), writable))
    }

    /// The key of one user (or dedupe id), opened once per command while
    /// it is among the last few used.
    fn other(&mut self, kind: Other, id: &[u8]) -> &Key<'c> {
        let keys = &self.keys;
        let found = self
            .others
            .iter()
            .rposition(|(k, key)| *k == kind && keys.is_other(key.name.bytes(), kind, id));
        let at = match found {
            Some(at) => at,
            None => {
                if self.others.len() == KEPT_OTHERS {
                    // A command that removes many entries (reaping, TRIM)
                    // is done with a user's key once it moves on: close
                    // the oldest rather than search ever more keys.
                    self.others.remove(0);
                }
                let name = self.keys.other(self.ctx, kind, id);
                let key = Key::open(self.ctx, name, self.writable);
                self.others.push((kind, key));
                self.others.len() - 1
            }
        };
        &self.others[at].1
    }

    /// `bytes` as a Redis string, made once per command.
    fn string(&mut self, bytes: &[u8]) -> RStr {
        if let Some(made) = self.made.iter().flatten().find(|s| s.bytes() == bytes) {
            return made.retain(self.ctx);
        }
        let made = RStr::new(self.ctx, bytes);
        if let Some(free) = self.made.iter_mut().find(|slot| slot.is_none()) {
            *free = Some(made.retain(self.ctx));
        }
        made
    }

    fn meta(&mut self) -> TqResult<&mut MetaValues> {
        if self.meta.is_none() {
            let writable = self.writable;
            let key = self.key(Fixed::Meta);
            let values = match key.key_type() {
                KeyType::Hash => {
                    let mut values = read_meta_hash(key)?;
                    if writable {
                        values.mark_changed();
                    }
                    values
                }
                _ => key
                    .read_string(MetaValues::parse)
                    .unwrap_or_else(|| Ok(MetaValues::default()))?,
            };
            self.meta = Some(values);
        }
        Ok(self.meta.as_mut().expect("loaded above"))
    }

    fn meta_value(&mut self, field: MetaField) -> TqResult<Option<u64>> {
        Ok(self.meta()?.get(field))
    }

    /// Sets (Some) or deletes (None) meta fields. They are written back,
    /// all in one SET, when the command is done with the store.
    fn write_meta(&mut self, changes: &[(MetaField, Option<u64>)]) -> TqResult<()> {
        let meta = self.meta()?;
        for (field, value) in changes {
            meta.set(*field, *value);
        }
        Ok(())
    }

    /// Writes the command's meta changes: the whole text in one SET,
    /// replicated.
    fn flush_meta(&mut self) {
        let Some(meta) = self.meta.as_mut().filter(|meta| meta.has_changes()) else {
            return;
        };
        let Some(key) = self.open[Fixed::Meta as usize].as_ref() else {
            return; // (read above, so open)
        };
        let text = match key.key_type() {
            KeyType::String => key.read_string(|stored| meta.write_back(Some(stored))),
            _ => None,
        }
        .unwrap_or_else(|| meta.write_back(None));
        key.set_string(&text);
        key.notify(raw::REDISMODULE_NOTIFY_STRING, c"set");
        key.replicate(c"SET", &[&text]);
    }

    fn zadd(&mut self, which: Fixed, score: u64, member: &RStr) {
        zadd(self.key(which), score, member);
    }

    fn add_to_queue(
        &mut self,
        id: Option<EntryId>,
        token: &RStr,
        user: &RStr,
    ) -> TqResult<EntryId> {
        let queue = self.key(Fixed::Queue);
        let id = queue
            .xadd(id, [b"token", token, b"user", user])
            .ok_or_else(|| TqError::Internal("stream refused the entry".into()))?;
        queue.notify(raw::REDISMODULE_NOTIFY_STREAM, c"xadd");
        queue.replicate(c"XADD", &[&id.text(), b"token", token, b"user", user]);
        Ok(id)
    }

    /// Deletes entries through the module API, replicated as one XDEL.
    /// Redis 7.0's own XDEL of a stream's first entry re-finds the new
    /// first id by walking the deleted entries of the first node (up to
    /// 100, ~75k instructions per admission from the front of the queue);
    /// the module API skips that bookkeeping. The entries are the same
    /// everywhere; only XINFO's `max-deleted-entry-id` /
    /// `recorded-first-entry-id` stay behind on the master (tq uses
    /// neither).
    fn delete_from_queue(&mut self, ids: &[EntryId]) {
        let queue = self.key(Fixed::Queue);
        let deleted: SmallVec<[IdText; 1]> = ids
            .iter()
            .filter(|id| queue.xdel(**id))
            .map(EntryId::text)
            .collect();
        if !deleted.is_empty() {
            queue.notify(raw::REDISMODULE_NOTIFY_STREAM, c"xdel");
            let args: SmallVec<[_; 1]> = deleted.iter().map(arg).collect();
            queue.replicate(c"XDEL", &args);
        }
    }

    /// Deletes the queue's entries up to `last`, which are the first ones
    /// of a batch being removed: one exact trim, replicated as XTRIM
    /// MINID. A stream deletes one entry by walking its node's entries,
    /// deleted ones included, up to it: deleting a node's entries front
    /// to back one by one walks it quadratically; the trim walks it once.
    fn trim_queue_front(&mut self, last: EntryId) {
        let min_id = EntryId::new(last.ms, last.seq + 1);
        let queue = self.key(Fixed::Queue);
        if queue.xtrim_min_id(min_id) > 0 {
            queue.notify(raw::REDISMODULE_NOTIFY_STREAM, c"xtrim");
            queue.replicate(c"XTRIM", &[b"MINID", &min_id.text()]);
        }
    }

    /// How many of a batch's entries (their `tokens`, sorted by id) are
    /// the queue's first entries: the longest run `..n` whose last entry
    /// ranks `n - 1` in `order`, found with a few ZRANKs. Worth them only
    /// for a big batch, which is then usually all front: a TRIM, or every
    /// fan gone quiet at once (an outage longer than the heartbeat).
    fn front_run(&mut self, tokens: &[RStr]) -> TqResult<usize> {
        if tokens.len() < TRIM_FRONT_FROM {
            return Ok(0);
        }
        let ctx = self.ctx;
        let order = self.key(Fixed::Order);
        let is_front = |n: usize| -> TqResult<bool> {
            let rank = call_int(ctx, c"ZRANK", &order.name, &[&tokens[n - 1]])?;
            Ok(rank == Some(n as i64 - 1))
        };
        if is_front(tokens.len())? {
            return Ok(tokens.len());
        }
        if !is_front(1)? {
            return Ok(0);
        }
        // `..lo` is the front, `..hi` is not.
        let (mut lo, mut hi) = (1, tokens.len());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if is_front(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Removes a batch of entries, sorted by id, from every key; each
    /// key's part replicates as one command.
    fn remove_batch(&mut self, batch: &[&Waiting]) -> TqResult<()> {
        let tokens: SmallVec<[RStr; 1]> = batch
            .iter()
            .map(|entry| self.string(&entry.token))
            .collect();
        // Before `order` loses them: it tells which are the front.
        let front = self.front_run(&tokens)?;
        if front > 0 {
            self.trim_queue_front(batch[front - 1].id);
        }
        let rest: SmallVec<[EntryId; 1]> = batch[front..].iter().map(|entry| entry.id).collect();
        self.delete_from_queue(&rest);
        for (entry, token) in batch.iter().zip(&tokens) {
            zrem(
                self.other(Other::User, &entry.user),
                std::slice::from_ref(token),
            );
        }
        zrem(self.key(Fixed::Order), &tokens);
        zrem(self.key(Fixed::Beat), &tokens);
        hdel(self.key(Fixed::Tokens), &tokens);
        Ok(())
    }

    /// Admissions recorded in seconds >= `since_s`. The `admits` hash
    /// keeps a count per second; meta keeps their sum and the oldest second
    /// the hash may hold, so the answer is that sum less the seconds that
    /// have left the window since: usually none or one, looked up, not a
    /// scan of the minute's 60 fields that every waiting fan's TQ.POSITION
    /// would otherwise pay. A write command also drops those seconds from
    /// the hash; a read-only one leaves them.
    fn recent_admissions(&mut self, since_s: u64) -> TqResult<u64> {
        let kept = (
            self.meta_value(MetaField::RecentAdmits)?,
            self.meta_value(MetaField::RecentFrom)?,
        );
        let (sum, gone) = match kept {
            (Some(sum), Some(from)) if since_s <= from => return Ok(sum),
            (Some(sum), Some(from)) => (sum, self.admissions_between(from, since_s)?),
            // Not kept yet (a new event, or one from tq 0.1): one scan.
            _ => {
                let all = self.admissions_between(0, u64::MAX)?;
                let sum = all.iter().map(|(_, n)| n).sum();
                (sum, all.into_iter().filter(|(s, _)| *s < since_s).collect())
            }
        };
        let sum = sum.saturating_sub(gone.iter().map(|(_, n)| n).sum::<u64>());
        if self.writable {
            let seconds: Vec<Decimal> = gone.iter().map(|(s, _)| Decimal::of(*s)).collect();
            hdel(self.key(Fixed::Admits), &seconds);
            self.write_meta(&[
                (MetaField::RecentAdmits, Some(sum)),
                (MetaField::RecentFrom, Some(since_s)),
            ])?;
        }
        Ok(sum)
    }

    /// (second, count) of the seconds in `from..before` that the `admits`
    /// hash holds: a lookup per second for a few, one scan for more.
    fn admissions_between(&mut self, from: u64, before: u64) -> TqResult<Vec<(u64, u64)>> {
        let admits = self.key(Fixed::Admits);
        if !admits.exists() {
            return Ok(Vec::new());
        }
        if before - from <= LOOKUP_SECONDS {
            return (from..before)
                .filter_map(|second| {
                    let count = admits.hget(&Decimal::of(second))?;
                    Some(parse_u64(&count).map(|count| (second, count)))
                })
                .collect();
        }
        let (mut found, mut unreadable) = (Vec::new(), false);
        admits.hscan(
            |second, count| match (parse_u64(second), parse_u64(count)) {
                (Ok(s), Ok(n)) if (from..before).contains(&s) => found.push((s, n)),
                (Ok(_), Ok(_)) => {}
                _ => unreadable = true,
            },
        );
        if unreadable {
            return Err(corrupt("admission history"));
        }
        Ok(found)
    }

    /// ZCOUNT key -inf max.
    fn zcount_to(&mut self, which: Fixed, max: &[u8]) -> TqResult<u64> {
        let (ctx, min, max) = (
            self.ctx,
            RStr::new(self.ctx, b"-inf"),
            RStr::new(self.ctx, max),
        );
        let key = self.key(which);
        let n = call_int(ctx, c"ZCOUNT", &key.name, &[&min, &max])?;
        Ok(n.unwrap_or(0) as u64)
    }

    /// An entry is only handed to the rules once its user's key is known
    /// to be usable, so that no later write meets a wrong-typed key.
    fn checked(&mut self, entry: Waiting) -> TqResult<Waiting> {
        let actual = self.other(Other::User, &entry.user).key_type();
        if !Other::User.accepts(actual) {
            return Err(TqError::WrongType);
        }
        Ok(entry)
    }

    fn to_waiting(id: EntryId, fields: Vec<(Vec<u8>, Vec<u8>)>) -> TqResult<Waiting> {
        let (mut token, mut user) = (None, None);
        for (field, value) in fields {
            match field.as_slice() {
                b"token" => token = Some(value),
                b"user" => user = Some(value),
                _ => {}
            }
        }
        match (token, user) {
            (Some(token), Some(user)) => Ok(Waiting { id, token, user }),
            _ => Err(TqError::Internal(format!(
                "queue entry {id} lacks token or user"
            ))),
        }
    }
}

impl Drop for RedisStore<'_> {
    /// Meta changes are written once, however the command ended: a
    /// command that fails after counting (a DUPLICATE) keeps its count.
    fn drop(&mut self) {
        self.flush_meta();
    }
}

// Each write below changes the key, fires the keyspace event the plain
// command would, and replicates that command.

fn zadd(key: &Key<'_>, score: u64, member: &RStr) {
    key.zadd(score as f64, member, false);
    key.notify(NOTIFY_ZSET, c"zadd");
    key.replicate(c"ZADD", &[&Decimal::of(score), member]);
}

fn hset(key: &Key<'_>, field: &dyn RedisArg, value: &dyn RedisArg) {
    key.hset(field, value);
    key.notify(NOTIFY_HASH, c"hset");
    key.replicate(c"HSET", &[field, value]);
}

fn hdel<A: RedisArg>(key: &Key<'_>, fields: &[A]) {
    remove_members(key, fields, |k, f| k.hdel(f), NOTIFY_HASH, c"hdel", c"HDEL");
}

fn zrem<A: RedisArg>(key: &Key<'_>, members: &[A]) {
    remove_members(
        key,
        members,
        |k, m| k.zrem(m),
        NOTIFY_ZSET,
        c"zrem",
        c"ZREM",
    );
}

/// Removes `members` of a sorted set or hash one by one (`remove_one`:
/// true if it was there); the ones removed replicate as one `cmd` and fire
/// one `event`, as that command would.
fn remove_members<A: RedisArg>(
    key: &Key<'_>,
    members: &[A],
    remove_one: impl Fn(&Key<'_>, &dyn RedisArg) -> bool,
    class: c_int,
    event: &CStr,
    cmd: &CStr,
) {
    let removed: SmallVec<[_; 1]> = members
        .iter()
        .map(arg)
        .filter(|m| remove_one(key, *m))
        .collect();
    if !removed.is_empty() {
        key.notify(class, event);
        key.replicate(cmd, &removed);
        notify_if_emptied(key);
    }
}

/// A set or hash left empty is deleted (by Redis, when the key closes):
/// fires the `del` that ZREM / HDEL fire then.
fn notify_if_emptied(key: &Key<'_>) {
    if key.is_empty() {
        key.notify(raw::REDISMODULE_NOTIFY_GENERIC, c"del");
    }
}

/// One argument of a replicated command.
fn arg<A: RedisArg>(a: &A) -> &dyn RedisArg {
    a
}

/// ZRANK of `member`; NOT_QUEUED when absent.
fn zrank(ctx: &Context, key: &Key<'_>, member: &RStr) -> TqResult<u64> {
    let rank = call_int(ctx, c"ZRANK", &key.name, &[member])?;
    rank.map(|r| r as u64).ok_or(TqError::NotQueued)
}

impl EventStore for RedisStore<'_> {
    fn waiting_count(&mut self) -> TqResult<u64> {
        Ok(self.key(Fixed::Queue).len())
    }

    fn user_waiting_count(&mut self, user: &[u8]) -> TqResult<u64> {
        Ok(self.other(Other::User, user).len())
    }

    fn entry_id(&mut self, token: &[u8]) -> TqResult<Option<EntryId>> {
        let token = self.string(token);
        match self.key(Fixed::Order).zscore(&token) {
            None => Ok(None),
            Some(score) => EntryId::from_score(score)
                .map(Some)
                .ok_or_else(|| corrupt("score")),
        }
    }

    fn entry(&mut self, token: &[u8]) -> TqResult<Option<Waiting>> {
        // The token -> user index answers without walking the stream (a
        // stream lookup scans its listpack node entry by entry).
        let Some(id) = self.entry_id(token)? else {
            return Ok(None);
        };
        let token_str = self.string(token);
        let user = self
            .key(Fixed::Tokens)
            .hget(&token_str)
            .ok_or_else(|| corrupt("token index"))?;
        let entry = Waiting {
            id,
            token: token.to_vec(),
            user,
        };
        self.checked(entry).map(Some)
    }

    fn rank(&mut self, token: &[u8]) -> TqResult<u64> {
        let (ctx, token) = (self.ctx, self.string(token));
        let order = self.key(Fixed::Order);
        zrank(ctx, order, &token)
    }

    fn user_rank(&mut self, user: &[u8], token: &[u8]) -> TqResult<u64> {
        let (ctx, token) = (self.ctx, self.string(token));
        let key = self.other(Other::User, user);
        let entries = key.len();
        if entries <= 1 {
            // Most fans wait with one token: theirs is the only entry (the
            // entry was found, so its token is in its user's index).
            return Ok(0);
        }
        if entries > WALK_USER_RANK {
            return zrank(ctx, key, &token);
        }
        let score = key.zscore(&token).ok_or(TqError::NotQueued)?;
        Ok(key
            .zrange_by_score(f64::NEG_INFINITY, score, false, usize::MAX)
            .len() as u64)
    }

    fn user_entries(&mut self, user: &[u8]) -> TqResult<Vec<(EntryId, Vec<u8>)>> {
        let key = self.other(Other::User, user);
        key.zrange_by_score(f64::NEG_INFINITY, f64::INFINITY, true, usize::MAX)
            .into_iter()
            .map(|(token, score)| {
                EntryId::from_score(score)
                    .map(|id| (id, token))
                    .ok_or_else(|| corrupt("score"))
            })
            .collect()
    }

    fn append(&mut self, token: &[u8], user: &[u8], now_ms: u64) -> TqResult<EntryId> {
        let (token, user_str) = (self.string(token), self.string(user));
        let mut id = self.add_to_queue(None, &token, &user_str)?;
        if !id.fits_score() {
            // More than 2^11 joins in one millisecond: move to the next
            // id that maps exactly to a score (see entry_id.rs).
            self.delete_from_queue(&[id]);
            id = self.add_to_queue(Some(id.next_scorable()), &token, &user_str)?;
        }
        let score = id.score() as u64;
        self.zadd(Fixed::Order, score, &token);
        hset(self.key(Fixed::Tokens), &token, &user_str);
        zadd(self.other(Other::User, user), score, &token);
        self.zadd(Fixed::Beat, now_ms, &token);
        Ok(id)
    }

    fn remove(&mut self, entries: &[Waiting]) -> TqResult<()> {
        let mut by_id: SmallVec<[&Waiting; 1]> = entries.iter().collect();
        by_id.sort_unstable_by_key(|entry| entry.id);
        for batch in by_id.chunks(REMOVE_BATCH) {
            self.remove_batch(batch)?;
        }
        Ok(())
    }

    fn touch(&mut self, token: &[u8], now_ms: u64) -> TqResult<()> {
        let token = self.string(token);
        let beat = self.key(Fixed::Beat);
        if beat.zadd(now_ms as f64, &token, true) {
            beat.notify(NOTIFY_ZSET, c"zadd");
            beat.replicate(c"ZADD", &[b"XX", &Decimal::of(now_ms), &token]);
        }
        Ok(())
    }

    fn stale_tokens(&mut self, before_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>> {
        let beat = self.key(Fixed::Beat);
        Ok(beat
            .zrange_by_score(f64::NEG_INFINITY, before_ms as f64, false, limit)
            .into_iter()
            .map(|(token, _)| token)
            .collect())
    }

    fn stale_count(&mut self, before_ms: u64) -> TqResult<u64> {
        let max = [b"(".as_slice(), &Decimal::of(before_ms)].concat();
        self.zcount_to(Fixed::Beat, &max)
    }

    fn entries_before(&mut self, id: EntryId, limit: usize) -> TqResult<Vec<Waiting>> {
        let queue = self.key(Fixed::Queue);
        let found = queue.xrange(EntryId::new(0, 0), id, true, limit);
        found
            .into_iter()
            .map(|(id, fields)| self.checked(Self::to_waiting(id, fields)?))
            .collect()
    }

    fn dedupe_lookup(&mut self, dedupe: &[u8]) -> TqResult<Option<Vec<u8>>> {
        Ok(self.other(Other::Dedupe, dedupe).get_string())
    }

    fn dedupe_record(&mut self, dedupe: &[u8], id: EntryId, expires_at_ms: u64) -> TqResult<()> {
        let id = id.text();
        let key = self.other(Other::Dedupe, dedupe);
        key.set_string_until(&id, expires_at_ms);
        // SET ... PXAT fires both.
        key.notify(raw::REDISMODULE_NOTIFY_STRING, c"set");
        key.notify(raw::REDISMODULE_NOTIFY_GENERIC, c"expire");
        key.replicate(c"SET", &[&id, b"PXAT", &Decimal::of(expires_at_ms)]);
        Ok(())
    }

    fn bucket(&mut self) -> TqResult<Option<BucketState>> {
        let meta = self.meta()?;
        Ok(
            match (
                meta.get(MetaField::BucketMilli),
                meta.get(MetaField::BucketAt),
            ) {
                (Some(milli_tokens), Some(at_ms)) => Some(BucketState {
                    milli_tokens,
                    at_ms,
                }),
                _ => None,
            },
        )
    }

    fn set_bucket(&mut self, state: BucketState) -> TqResult<()> {
        self.write_meta(&[
            (MetaField::BucketMilli, Some(state.milli_tokens)),
            (MetaField::BucketAt, Some(state.at_ms)),
        ])
    }

    fn reset_bucket(&mut self) -> TqResult<()> {
        self.write_meta(&[(MetaField::BucketMilli, None), (MetaField::BucketAt, None)])
    }

    fn record_admission(&mut self, now_ms: u64) -> TqResult<()> {
        let now_s = now_ms / 1000;
        let recent = self.recent_admissions(window_start_s(now_ms))?;
        let second = Decimal::of(now_s);
        let admits = self.key(Fixed::Admits);
        let count = admits
            .hget(&second)
            .map(|v| parse_u64(&v))
            .transpose()?
            .unwrap_or(0)
            + 1;
        hset(admits, &second, &Decimal::of(count));
        self.write_meta(&[(MetaField::RecentAdmits, Some(recent + 1))])?;
        if self
            .meta_value(MetaField::RecentFrom)?
            .is_some_and(|from| now_s < from)
        {
            // The clock went back (a failover): keep every second in the
            // hash at or after `recent_from`.
            self.write_meta(&[(MetaField::RecentFrom, Some(now_s))])?;
        }
        Ok(())
    }

    fn admissions_since(&mut self, since_s: u64) -> TqResult<u64> {
        self.recent_admissions(since_s)
    }

    fn seat(&mut self, seat: &[u8]) -> TqResult<StoredSeat> {
        let seat = self.string(seat);
        match self.key(Fixed::Seats).hget(&seat) {
            None => Ok(StoredSeat::Available),
            Some(raw) => decode_seat(&raw).ok_or_else(|| corrupt("seat record")),
        }
    }

    fn set_seat(&mut self, seat: &[u8], state: &StoredSeat) -> TqResult<()> {
        let seat = &self.string(seat);
        let seats = self.key(Fixed::Seats);
        match encode_seat(state) {
            None => hdel(seats, std::slice::from_ref(seat)),
            Some(record) => hset(seats, seat, &record),
        }
        match state {
            StoredSeat::Held { expires_ms, .. } => self.zadd(Fixed::Holds, *expires_ms, seat),
            _ => zrem(self.key(Fixed::Holds), std::slice::from_ref(seat)),
        }
        Ok(())
    }

    fn expired_holds(&mut self, now_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>> {
        let holds = self.key(Fixed::Holds);
        Ok(holds
            .zrange_by_score(f64::NEG_INFINITY, now_ms as f64, true, limit)
            .into_iter()
            .map(|(seat, _)| seat)
            .collect())
    }

    fn expired_hold_count(&mut self, now_ms: u64) -> TqResult<u64> {
        self.zcount_to(Fixed::Holds, &Decimal::of(now_ms))
    }

    fn held_count(&mut self) -> TqResult<u64> {
        Ok(self.key(Fixed::Holds).len())
    }

    fn counter(&mut self, counter: Counter) -> TqResult<u64> {
        Ok(self.meta_value(MetaField::Counter(counter))?.unwrap_or(0))
    }

    fn add_counter(&mut self, counter: Counter, delta: i64) -> TqResult<()> {
        let value = self.counter(counter)?.saturating_add_signed(delta);
        self.write_meta(&[(MetaField::Counter(counter), Some(value))])?;
        super::metrics::record_counter(counter, delta);
        Ok(())
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> TqResult<()> {
        self.write_meta(&[(MetaField::Counter(counter), Some(value))])
    }

    fn settings_overrides(&mut self) -> TqResult<SettingsChange> {
        let mut change = SettingsChange::default();
        for setting in Setting::ALL {
            if let Some(value) = self.meta_value(MetaField::Setting(setting))? {
                change.set(setting, value);
            }
        }
        Ok(change)
    }

    fn store_settings(&mut self, change: &SettingsChange) -> TqResult<()> {
        let fields: Vec<(MetaField, Option<u64>)> = change
            .iter()
            .map(|(s, v)| (MetaField::Setting(s), Some(v)))
            .collect();
        self.write_meta(&fields)
    }
}
