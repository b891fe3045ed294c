//! `EventStore` on Redis keys.
//!
//! Data goes through the low-level key API (`rawkey`), each key of the
//! event opened at most once per command. Every write is then replicated
//! as the plain command that has the same effect (`XADD` with the concrete
//! id, `ZADD` with concrete scores, `HSET` with the new value, `SET ... PXAT`
//! with an absolute time), never as the clock-dependent TQ command, and
//! fires the keyspace event that command would. The two reads with no
//! low-level form (`ZRANK`, `ZCOUNT`) and `XDEL` (see `delete_from_queue`)
//! use RM_Call.

use std::ffi::{c_int, CStr};
use std::sync::LazyLock;

use redis_module::{raw, CallOptions, CallOptionsBuilder, CallReply, CallResult, Context};

use super::keys::EventKeys;
use super::rawkey::{replicate, Key};
use crate::domain::bucket::RATE_WINDOW_S;
use crate::domain::entry_id::EntryId;
use crate::domain::error::{TqError, TqResult};
use crate::domain::seats::{decode_seat, encode_seat};
use crate::domain::settings::{Setting, SettingsChange};
use crate::domain::store::{BucketState, Counter, EventStore, StoredSeat, Waiting};

static READ: LazyLock<CallOptions> = LazyLock::new(|| CallOptionsBuilder::new().build());

const BUCKET_MILLI: &CStr = c"bucket_milli";
const BUCKET_AT: &CStr = c"bucket_at";
const SETTING_FIELDS: [&CStr; 5] = [c"rate", c"burst", c"heartbeat", c"hold_ttl", c"dedupe_ttl"];

const NOTIFY_STREAM: c_int = raw::REDISMODULE_NOTIFY_STREAM;
const NOTIFY_ZSET: c_int = raw::REDISMODULE_NOTIFY_ZSET;
const NOTIFY_HASH: c_int = raw::REDISMODULE_NOTIFY_HASH;
const NOTIFY_STRING: c_int = raw::REDISMODULE_NOTIFY_STRING;

/// A user's rank is counted by walking their entries up to this many;
/// beyond, ZRANK is cheaper.
const WALK_USER_RANK: u64 = 32;

/// The event's fixed keys, each opened on first use.
#[derive(Clone, Copy)]
enum Fixed {
    Queue,
    Order,
    Beat,
    Meta,
    Seats,
    Holds,
    Admits,
}

#[derive(Default)]
struct OpenKeys<'c> {
    keys: [Option<Key<'c>>; 7],
}

impl<'c> OpenKeys<'c> {
    fn get(
        &mut self,
        ctx: &'c Context,
        names: &EventKeys,
        which: Fixed,
        writable: bool,
    ) -> &Key<'c> {
        self.keys[which as usize].get_or_insert_with(|| {
            let name = name_of(names, which);
            if writable {
                Key::write(ctx, name)
            } else {
                Key::read(ctx, name)
            }
        })
    }
}

fn name_of(names: &EventKeys, which: Fixed) -> &[u8] {
    match which {
        Fixed::Queue => &names.queue,
        Fixed::Order => &names.order,
        Fixed::Beat => &names.beat,
        Fixed::Meta => &names.meta,
        Fixed::Seats => &names.seats,
        Fixed::Holds => &names.holds,
        Fixed::Admits => &names.admits,
    }
}

/// Decimal text of a number without allocating.
struct Num {
    buf: [u8; 24],
    len: usize,
}

impl Num {
    fn new(value: i64) -> Num {
        let mut buf = [0u8; 24];
        let mut n = value.unsigned_abs();
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if value < 0 {
            i -= 1;
            buf[i] = b'-';
        }
        buf.copy_within(i.., 0);
        Num { buf, len: 24 - i }
    }

    fn of(value: u64) -> Num {
        Num::new(value.min(i64::MAX as u64) as i64)
    }
}

impl std::ops::Deref for Num {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn parse_u64(b: &[u8]) -> TqResult<u64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .map(|n| n.max(0) as u64)
        .ok_or_else(|| TqError::Internal("stored number is not an integer".into()))
}

fn corrupt(what: &str) -> TqError {
    TqError::Internal(format!("unreadable {what}"))
}

pub struct RedisStore<'c> {
    ctx: &'c Context,
    pub keys: EventKeys,
    writable: bool,
    open: OpenKeys<'c>,
}

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
            open: OpenKeys::default(),
        }
    }

    pub fn ctx(&self) -> &'c Context {
        self.ctx
    }

    fn key(&mut self, which: Fixed) -> &Key<'c> {
        self.open.get(self.ctx, &self.keys, which, self.writable)
    }

    fn other_key(&self, name: &[u8]) -> Key<'c> {
        if self.writable {
            Key::write(self.ctx, name)
        } else {
            Key::read(self.ctx, name)
        }
    }

    /// Integer reply of an RM_Call that replicates nothing itself (ZRANK,
    /// ZCOUNT, XDEL); None for nil.
    fn read_int(&self, cmd: &str, args: &[&[u8]]) -> TqResult<Option<i64>> {
        match self.ctx.call_ext::<_, CallResult>(cmd, &READ, args) {
            Ok(CallReply::I64(n)) => Ok(Some(n.to_i64())),
            Ok(CallReply::Null(_)) => Ok(None),
            Ok(_) => Err(corrupt("reply")),
            Err(e) => Err(TqError::Internal(e.to_string())),
        }
    }

    fn meta_field(&mut self, field: &CStr) -> TqResult<Option<u64>> {
        let [value] = self.key(Fixed::Meta).hget_many([field]);
        value.map(|v| parse_u64(&v)).transpose()
    }

    /// HSET meta field value, replicated.
    fn set_meta(&mut self, field: &[u8], value: u64) {
        let value = Num::of(value);
        let meta = self.key(Fixed::Meta);
        meta.hset(field, &value);
        meta.notify(NOTIFY_HASH, c"hset");
        replicate(self.ctx, c"HSET", &[&self.keys.meta, field, &value]);
    }

    fn del_meta(&mut self, field: &[u8]) {
        let meta = self.key(Fixed::Meta);
        meta.hdel(field);
        meta.notify(NOTIFY_HASH, c"hdel");
        replicate(self.ctx, c"HDEL", &[&self.keys.meta, field]);
    }

    fn zadd(&mut self, which: Fixed, score: u64, member: &[u8]) {
        let key = self.key(which);
        key.zadd(score as f64, member);
        key.notify(NOTIFY_ZSET, c"zadd");
        replicate(
            self.ctx,
            c"ZADD",
            &[name_of(&self.keys, which), &Num::of(score), member],
        );
    }

    fn zrem(&mut self, which: Fixed, member: &[u8]) {
        let key = self.key(which);
        if key.zrem(member) {
            key.notify(NOTIFY_ZSET, c"zrem");
            replicate(self.ctx, c"ZREM", &[name_of(&self.keys, which), member]);
        }
    }

    fn add_to_queue(
        &mut self,
        id: Option<EntryId>,
        token: &[u8],
        user: &[u8],
    ) -> TqResult<EntryId> {
        let queue = self.key(Fixed::Queue);
        let id = queue
            .xadd(id, &[b"token", token, b"user", user])
            .ok_or_else(|| TqError::Internal("stream refused the entry".into()))?;
        queue.notify(NOTIFY_STREAM, c"xadd");
        let text = id.to_string();
        replicate(
            self.ctx,
            c"XADD",
            &[
                &self.keys.queue,
                text.as_bytes(),
                b"token",
                token,
                b"user",
                user,
            ],
        );
        Ok(id)
    }

    /// XDEL through RM_Call: unlike RM_StreamDelete it also advances the
    /// stream's max-deleted-entry-id, as the replica's XDEL will, so a
    /// promoted replica has the very same stream.
    fn delete_from_queue(&mut self, id: EntryId) -> TqResult<()> {
        let text = id.to_string();
        let args: [&[u8]; 2] = [&self.keys.queue, text.as_bytes()];
        if self.read_int("XDEL", &args)? == Some(1) {
            replicate(self.ctx, c"XDEL", &args);
        }
        Ok(())
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

impl EventStore for RedisStore<'_> {
    fn waiting_count(&mut self) -> TqResult<u64> {
        Ok(self.key(Fixed::Queue).len())
    }

    fn user_waiting_count(&mut self, user: &[u8]) -> TqResult<u64> {
        Ok(self.other_key(&self.keys.user(user)).len())
    }

    fn entry_id(&mut self, token: &[u8]) -> TqResult<Option<EntryId>> {
        match self.key(Fixed::Order).zscore(token) {
            None => Ok(None),
            Some(score) => EntryId::from_score(score)
                .map(Some)
                .ok_or_else(|| corrupt("score")),
        }
    }

    fn entry(&mut self, id: EntryId) -> TqResult<Option<Waiting>> {
        let mut found = self.key(Fixed::Queue).xrange(id, id, false, 1);
        found
            .pop()
            .map(|(id, fields)| Self::to_waiting(id, fields))
            .transpose()
    }

    fn rank(&mut self, token: &[u8]) -> TqResult<u64> {
        let rank = self.read_int("ZRANK", &[&self.keys.order, token])?;
        rank.map(|r| r as u64).ok_or(TqError::NotQueued)
    }

    fn user_rank(&mut self, user: &[u8], token: &[u8]) -> TqResult<u64> {
        let name = self.keys.user(user);
        let key = self.other_key(&name);
        if key.len() > WALK_USER_RANK {
            drop(key);
            let rank = self.read_int("ZRANK", &[&name, token])?;
            return rank.map(|r| r as u64).ok_or(TqError::NotQueued);
        }
        let score = key.zscore(token).ok_or(TqError::NotQueued)?;
        Ok(key
            .zrange_by_score(f64::NEG_INFINITY, score, false, usize::MAX)
            .len() as u64)
    }

    fn user_entries(&mut self, user: &[u8]) -> TqResult<Vec<(EntryId, Vec<u8>)>> {
        let key = self.other_key(&self.keys.user(user));
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
        let mut id = self.add_to_queue(None, token, user)?;
        if !id.fits_score() {
            // More than 2^11 joins in one millisecond: move to the next
            // id that maps exactly to a score (see entry_id.rs).
            self.delete_from_queue(id)?;
            id = self.add_to_queue(Some(id.next_scorable()), token, user)?;
        }
        let score = id.score() as u64;
        self.zadd(Fixed::Order, score, token);
        let user_name = self.keys.user(user);
        let user_key = Key::write(self.ctx, &user_name);
        user_key.zadd(score as f64, token);
        user_key.notify(NOTIFY_ZSET, c"zadd");
        replicate(self.ctx, c"ZADD", &[&user_name, &Num::of(score), token]);
        self.zadd(Fixed::Beat, now_ms, token);
        Ok(id)
    }

    fn remove(&mut self, entry: &Waiting) -> TqResult<()> {
        let user_name = self.keys.user(&entry.user);
        let user_key = Key::write(self.ctx, &user_name);
        if user_key.zrem(&entry.token) {
            user_key.notify(NOTIFY_ZSET, c"zrem");
            replicate(self.ctx, c"ZREM", &[&user_name, &entry.token]);
        }
        drop(user_key);
        self.delete_from_queue(entry.id)?;
        self.zrem(Fixed::Order, &entry.token);
        self.zrem(Fixed::Beat, &entry.token);
        Ok(())
    }

    fn touch(&mut self, token: &[u8], now_ms: u64) -> TqResult<()> {
        let beat = self.key(Fixed::Beat);
        if beat.zadd_xx(now_ms as f64, token) {
            beat.notify(NOTIFY_ZSET, c"zadd");
            replicate(
                self.ctx,
                c"ZADD",
                &[&self.keys.beat, b"XX", &Num::of(now_ms), token],
            );
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
        let max = [b"(".as_slice(), &Num::of(before_ms)].concat();
        let n = self.read_int("ZCOUNT", &[&self.keys.beat, b"-inf", &max])?;
        Ok(n.unwrap_or(0) as u64)
    }

    fn entries_before(&mut self, id: EntryId, limit: usize) -> TqResult<Vec<Waiting>> {
        let queue = self.key(Fixed::Queue);
        queue
            .xrange(EntryId::new(0, 0), id, true, limit)
            .into_iter()
            .map(|(id, fields)| Self::to_waiting(id, fields))
            .collect()
    }

    fn dedupe_lookup(&mut self, dedupe: &[u8]) -> TqResult<Option<Vec<u8>>> {
        Ok(self.other_key(&self.keys.dedupe(dedupe)).get_string())
    }

    fn dedupe_record(&mut self, dedupe: &[u8], id: EntryId, expires_at_ms: u64) -> TqResult<()> {
        let name = self.keys.dedupe(dedupe);
        let key = Key::write(self.ctx, &name);
        let id = id.to_string();
        key.set_string_until(id.as_bytes(), expires_at_ms);
        key.notify(NOTIFY_STRING, c"set");
        replicate(
            self.ctx,
            c"SET",
            &[&name, id.as_bytes(), b"PXAT", &Num::of(expires_at_ms)],
        );
        Ok(())
    }

    fn bucket(&mut self) -> TqResult<Option<BucketState>> {
        match self.key(Fixed::Meta).hget_many([BUCKET_MILLI, BUCKET_AT]) {
            [Some(milli), Some(at)] => Ok(Some(BucketState {
                milli_tokens: parse_u64(&milli)?,
                at_ms: parse_u64(&at)?,
            })),
            _ => Ok(None),
        }
    }

    fn set_bucket(&mut self, state: BucketState) -> TqResult<()> {
        let (milli, at) = (Num::of(state.milli_tokens), Num::of(state.at_ms));
        let meta = self.key(Fixed::Meta);
        meta.hset(BUCKET_MILLI.to_bytes(), &milli);
        meta.hset(BUCKET_AT.to_bytes(), &at);
        meta.notify(NOTIFY_HASH, c"hset");
        replicate(
            self.ctx,
            c"HSET",
            &[
                &self.keys.meta,
                BUCKET_MILLI.to_bytes(),
                &milli,
                BUCKET_AT.to_bytes(),
                &at,
            ],
        );
        Ok(())
    }

    fn reset_bucket(&mut self) -> TqResult<()> {
        self.del_meta(BUCKET_MILLI.to_bytes());
        self.del_meta(BUCKET_AT.to_bytes());
        Ok(())
    }

    fn record_admission(&mut self, now_ms: u64) -> TqResult<()> {
        let second = Num::of(now_ms / 1000);
        let admits = self.key(Fixed::Admits);
        let count = admits
            .hget(&second)
            .map(|v| parse_u64(&v))
            .transpose()?
            .unwrap_or(0)
            + 1;
        let value = Num::of(count);
        admits.hset(&second, &value);
        admits.notify(NOTIFY_HASH, c"hset");
        replicate(self.ctx, c"HSET", &[&self.keys.admits, &second, &value]);
        if count == 1 {
            // First admission of a new second: drop seconds that have left
            // the window, so the hash holds at most one window.
            let oldest_kept = (now_ms / 1000).saturating_sub(RATE_WINDOW_S - 1);
            for (field, _) in self.key(Fixed::Admits).hgetall() {
                if parse_u64(&field)? < oldest_kept {
                    let admits = self.key(Fixed::Admits);
                    admits.hdel(&field);
                    admits.notify(NOTIFY_HASH, c"hdel");
                    replicate(self.ctx, c"HDEL", &[&self.keys.admits, &field]);
                }
            }
        }
        Ok(())
    }

    fn admissions_since(&mut self, since_s: u64) -> TqResult<u64> {
        let mut total = 0;
        for (second, count) in self.key(Fixed::Admits).hgetall() {
            if parse_u64(&second)? >= since_s {
                total += parse_u64(&count)?;
            }
        }
        Ok(total)
    }

    fn seat(&mut self, seat: &[u8]) -> TqResult<StoredSeat> {
        match self.key(Fixed::Seats).hget(seat) {
            None => Ok(StoredSeat::Available),
            Some(raw) => decode_seat(&raw).ok_or_else(|| corrupt("seat record")),
        }
    }

    fn set_seat(&mut self, seat: &[u8], state: &StoredSeat) -> TqResult<()> {
        let seats = self.key(Fixed::Seats);
        match encode_seat(state) {
            None => {
                seats.hdel(seat);
                seats.notify(NOTIFY_HASH, c"hdel");
                replicate(self.ctx, c"HDEL", &[&self.keys.seats, seat]);
            }
            Some(record) => {
                seats.hset(seat, &record);
                seats.notify(NOTIFY_HASH, c"hset");
                replicate(self.ctx, c"HSET", &[&self.keys.seats, seat, &record]);
            }
        }
        match state {
            StoredSeat::Held { expires_ms, .. } => self.zadd(Fixed::Holds, *expires_ms, seat),
            _ => self.zrem(Fixed::Holds, seat),
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
        let n = self.read_int("ZCOUNT", &[&self.keys.holds, b"-inf", &Num::of(now_ms)])?;
        Ok(n.unwrap_or(0) as u64)
    }

    fn held_count(&mut self) -> TqResult<u64> {
        Ok(self.key(Fixed::Holds).len())
    }

    fn counter(&mut self, counter: Counter) -> TqResult<u64> {
        Ok(self.meta_field(counter.c_field())?.unwrap_or(0))
    }

    fn add_counter(&mut self, counter: Counter, delta: i64) -> TqResult<()> {
        let now = self.counter(counter)?;
        self.set_meta(counter.field().as_bytes(), now.saturating_add_signed(delta));
        super::metrics::record_counter(counter, delta);
        Ok(())
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> TqResult<()> {
        self.set_meta(counter.field().as_bytes(), value);
        Ok(())
    }

    fn settings_overrides(&mut self) -> TqResult<SettingsChange> {
        let values = self.key(Fixed::Meta).hget_many(SETTING_FIELDS);
        let mut change = SettingsChange::default();
        for (setting, value) in Setting::ALL.into_iter().zip(values) {
            if let Some(raw) = value {
                change.set(setting, parse_u64(&raw)?);
            }
        }
        Ok(change)
    }

    fn store_settings(&mut self, change: &SettingsChange) -> TqResult<()> {
        for (setting, value) in change.iter() {
            self.set_meta(setting.field().as_bytes(), value);
        }
        Ok(())
    }
}
