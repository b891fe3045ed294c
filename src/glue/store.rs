//! `EventStore` on Redis keys, through `RM_Call`.
//!
//! Reads are plain calls. Writes are called with the replicate flag, so
//! each one reaches replicas and the AOF as the concrete command it was
//! (`XADD *` with its generated id, `SET ... PXAT` with an absolute time):
//! the effect, never the clock-dependent TQ command.

use std::sync::LazyLock;

use redis_module::{CallOptions, CallOptionsBuilder, CallReply, CallResult, Context, ErrorReply};

use super::keys::EventKeys;
use crate::domain::bucket::RATE_WINDOW_S;
use crate::domain::entry_id::EntryId;
use crate::domain::error::{TqError, TqResult};
use crate::domain::seats::{decode_seat, encode_seat};
use crate::domain::settings::{Setting, SettingsChange};
use crate::domain::store::{BucketState, Counter, EventStore, StoredSeat, Waiting};

static READ: LazyLock<CallOptions> = LazyLock::new(|| CallOptionsBuilder::new().build());
static WRITE: LazyLock<CallOptions> =
    LazyLock::new(|| CallOptionsBuilder::new().replicate().build());

const BUCKET_MILLI: &[u8] = b"bucket_milli";
const BUCKET_AT: &[u8] = b"bucket_at";

pub struct RedisStore<'c> {
    ctx: &'c Context,
    pub keys: EventKeys,
}

/// A reply value copied out of the call reply.
enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    Nil,
    List(Vec<Value>),
}

impl Value {
    fn int(&self) -> TqResult<i64> {
        match self {
            Value::Int(n) => Ok(*n),
            Value::Bytes(b) => parse_i64(b),
            _ => Err(unexpected()),
        }
    }

    fn opt_bytes(self) -> TqResult<Option<Vec<u8>>> {
        match self {
            Value::Bytes(b) => Ok(Some(b)),
            Value::Nil => Ok(None),
            _ => Err(unexpected()),
        }
    }

    fn list(self) -> TqResult<Vec<Value>> {
        match self {
            Value::List(items) => Ok(items),
            _ => Err(unexpected()),
        }
    }
}

fn unexpected() -> TqError {
    TqError::Internal("unexpected reply from Redis".into())
}

fn parse_i64(b: &[u8]) -> TqResult<i64> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| TqError::Internal("stored number is not an integer".into()))
}

fn parse_u64(b: &[u8]) -> TqResult<u64> {
    Ok(parse_i64(b)?.max(0) as u64)
}

fn convert(result: CallResult<'_>) -> TqResult<Value> {
    match result {
        Ok(reply) => Ok(convert_reply(reply)),
        Err(ErrorReply::Message(m)) => Err(TqError::Internal(m)),
        Err(ErrorReply::RedisError(e)) => {
            let text = e.to_utf8_string().unwrap_or_default();
            if text.starts_with("WRONGTYPE") {
                Err(TqError::WrongType)
            } else {
                Err(TqError::Internal(text))
            }
        }
    }
}

fn convert_reply(reply: CallReply<'_>) -> Value {
    match reply {
        CallReply::I64(n) => Value::Int(n.to_i64()),
        CallReply::String(s) => Value::Bytes(s.as_bytes().to_vec()),
        CallReply::Array(a) => Value::List(
            a.iter()
                .map(|item| item.map(convert_reply).unwrap_or(Value::Nil))
                .collect(),
        ),
        _ => Value::Nil,
    }
}

/// Sorted-set score argument for an id: the exact integer.
fn score_arg(id: EntryId) -> Vec<u8> {
    (id.score() as u64).to_string().into_bytes()
}

fn num(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// LIMIT count for ZRANGEBYSCORE; -1 means no limit.
fn limit_arg(limit: usize) -> Vec<u8> {
    if limit >= i64::MAX as usize {
        b"-1".to_vec()
    } else {
        num(limit as u64)
    }
}

impl<'c> RedisStore<'c> {
    pub fn new(ctx: &'c Context, event: &[u8]) -> Self {
        RedisStore {
            ctx,
            keys: EventKeys::new(event),
        }
    }

    fn call(&self, options: &CallOptions, cmd: &str, args: &[&[u8]]) -> TqResult<Value> {
        convert(self.ctx.call_ext::<_, CallResult>(cmd, options, args))
    }

    fn read(&self, cmd: &str, args: &[&[u8]]) -> TqResult<Value> {
        self.call(&READ, cmd, args)
    }

    fn write(&self, cmd: &str, args: &[&[u8]]) -> TqResult<Value> {
        self.call(&WRITE, cmd, args)
    }

    fn zscore(&self, key: &[u8], member: &[u8]) -> TqResult<Option<f64>> {
        match self.read("ZSCORE", &[key, member])?.opt_bytes()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .map(Some)
                .ok_or_else(unexpected),
        }
    }

    fn zrank(&self, key: &[u8], member: &[u8]) -> TqResult<u64> {
        match self.read("ZRANK", &[key, member])? {
            Value::Int(n) => Ok(n as u64),
            _ => Err(TqError::NotQueued),
        }
    }

    fn meta_u64(&self, field: &[u8]) -> TqResult<Option<u64>> {
        self.read("HGET", &[&self.keys.meta, field])?
            .opt_bytes()?
            .map(|b| parse_u64(&b))
            .transpose()
    }

    /// Stream entries as `Waiting`, from an XRANGE reply.
    fn waiting_entries(reply: Value) -> TqResult<Vec<Waiting>> {
        let mut out = Vec::new();
        for item in reply.list()? {
            let mut parts = item.list()?.into_iter();
            let id = parts.next().ok_or_else(unexpected)?.opt_bytes()?;
            let id = id.and_then(|b| EntryId::parse(&b)).ok_or_else(unexpected)?;
            let fields = parts.next().ok_or_else(unexpected)?.list()?;
            let (mut token, mut user) = (None, None);
            let mut fields = fields.into_iter();
            while let (Some(f), Some(v)) = (fields.next(), fields.next()) {
                match f.opt_bytes()?.as_deref() {
                    Some(b"token") => token = v.opt_bytes()?,
                    Some(b"user") => user = v.opt_bytes()?,
                    _ => {}
                }
            }
            match (token, user) {
                (Some(token), Some(user)) => out.push(Waiting { id, token, user }),
                _ => {
                    return Err(TqError::Internal(format!(
                        "queue entry {id} lacks token or user"
                    )))
                }
            }
        }
        Ok(out)
    }

    fn add_to_queue(&self, id_arg: &[u8], token: &[u8], user: &[u8]) -> TqResult<EntryId> {
        let reply = self.write(
            "XADD",
            &[&self.keys.queue, id_arg, b"token", token, b"user", user],
        )?;
        reply
            .opt_bytes()?
            .and_then(|b| EntryId::parse(&b))
            .ok_or_else(unexpected)
    }
}

impl EventStore for RedisStore<'_> {
    fn waiting_count(&mut self) -> TqResult<u64> {
        Ok(self.read("XLEN", &[&self.keys.queue])?.int()? as u64)
    }

    fn user_waiting_count(&mut self, user: &[u8]) -> TqResult<u64> {
        Ok(self.read("ZCARD", &[&self.keys.user(user)])?.int()? as u64)
    }

    fn entry_id(&mut self, token: &[u8]) -> TqResult<Option<EntryId>> {
        match self.zscore(&self.keys.order, token)? {
            None => Ok(None),
            Some(score) => EntryId::from_score(score).map(Some).ok_or_else(unexpected),
        }
    }

    fn entry(&mut self, id: EntryId) -> TqResult<Option<Waiting>> {
        let id = id.to_string().into_bytes();
        let reply = self.read("XRANGE", &[&self.keys.queue, &id, &id])?;
        Ok(Self::waiting_entries(reply)?.pop())
    }

    fn rank(&mut self, token: &[u8]) -> TqResult<u64> {
        self.zrank(&self.keys.order, token)
    }

    fn user_rank(&mut self, user: &[u8], token: &[u8]) -> TqResult<u64> {
        self.zrank(&self.keys.user(user), token)
    }

    fn user_entries(&mut self, user: &[u8]) -> TqResult<Vec<(EntryId, Vec<u8>)>> {
        let reply = self.read(
            "ZRANGE",
            &[&self.keys.user(user), b"0", b"-1", b"WITHSCORES"],
        )?;
        let mut items = reply.list()?.into_iter();
        let mut out = Vec::new();
        while let (Some(token), Some(score)) = (items.next(), items.next()) {
            let token = token.opt_bytes()?.ok_or_else(unexpected)?;
            let score = score.opt_bytes()?.ok_or_else(unexpected)?;
            let id = std::str::from_utf8(&score)
                .ok()
                .and_then(|s| s.parse().ok())
                .and_then(EntryId::from_score)
                .ok_or_else(unexpected)?;
            out.push((id, token));
        }
        Ok(out)
    }

    fn append(&mut self, token: &[u8], user: &[u8], now_ms: u64) -> TqResult<EntryId> {
        let mut id = self.add_to_queue(b"*", token, user)?;
        if !id.fits_score() {
            // More than 2^11 joins in one millisecond: move to the next
            // id that maps exactly to a score (see entry_id.rs).
            self.write("XDEL", &[&self.keys.queue, id.to_string().as_bytes()])?;
            id = self.add_to_queue(id.next_scorable().to_string().as_bytes(), token, user)?;
        }
        let score = score_arg(id);
        self.write("ZADD", &[&self.keys.order, &score, token])?;
        self.write("ZADD", &[&self.keys.user(user), &score, token])?;
        self.write("ZADD", &[&self.keys.beat, &num(now_ms), token])?;
        Ok(id)
    }

    fn remove(&mut self, entry: &Waiting) -> TqResult<()> {
        self.write("XDEL", &[&self.keys.queue, entry.id.to_string().as_bytes()])?;
        self.write("ZREM", &[&self.keys.order, &entry.token])?;
        self.write("ZREM", &[&self.keys.beat, &entry.token])?;
        self.write("ZREM", &[&self.keys.user(&entry.user), &entry.token])?;
        Ok(())
    }

    fn touch(&mut self, token: &[u8], now_ms: u64) -> TqResult<()> {
        self.write("ZADD", &[&self.keys.beat, b"XX", &num(now_ms), token])?;
        Ok(())
    }

    fn stale_tokens(&mut self, before_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>> {
        let max = [b"(".as_slice(), &num(before_ms)].concat();
        let reply = self.read(
            "ZRANGEBYSCORE",
            &[
                &self.keys.beat,
                b"-inf",
                &max,
                b"LIMIT",
                b"0",
                &limit_arg(limit),
            ],
        )?;
        reply
            .list()?
            .into_iter()
            .map(|v| v.opt_bytes()?.ok_or_else(unexpected))
            .collect()
    }

    fn stale_count(&mut self, before_ms: u64) -> TqResult<u64> {
        let max = [b"(".as_slice(), &num(before_ms)].concat();
        Ok(self
            .read("ZCOUNT", &[&self.keys.beat, b"-inf", &max])?
            .int()? as u64)
    }

    fn entries_before(&mut self, id: EntryId, limit: usize) -> TqResult<Vec<Waiting>> {
        let end = format!("({id}").into_bytes();
        let reply = self.read(
            "XRANGE",
            &[&self.keys.queue, b"-", &end, b"COUNT", &num(limit as u64)],
        )?;
        Self::waiting_entries(reply)
    }

    fn dedupe_lookup(&mut self, dedupe: &[u8]) -> TqResult<Option<Vec<u8>>> {
        self.read("GET", &[&self.keys.dedupe(dedupe)])?.opt_bytes()
    }

    fn dedupe_record(&mut self, dedupe: &[u8], id: EntryId, expires_at_ms: u64) -> TqResult<()> {
        let key = self.keys.dedupe(dedupe);
        let id = id.to_string().into_bytes();
        self.write("SET", &[&key, &id, b"PXAT", &num(expires_at_ms)])?;
        Ok(())
    }

    fn bucket(&mut self) -> TqResult<Option<BucketState>> {
        let reply = self.read("HMGET", &[&self.keys.meta, BUCKET_MILLI, BUCKET_AT])?;
        let mut fields = reply.list()?.into_iter();
        let milli = fields.next().ok_or_else(unexpected)?.opt_bytes()?;
        let at = fields.next().ok_or_else(unexpected)?.opt_bytes()?;
        match (milli, at) {
            (Some(m), Some(a)) => Ok(Some(BucketState {
                milli_tokens: parse_u64(&m)?,
                at_ms: parse_u64(&a)?,
            })),
            _ => Ok(None),
        }
    }

    fn set_bucket(&mut self, state: BucketState) -> TqResult<()> {
        self.write(
            "HSET",
            &[
                &self.keys.meta,
                BUCKET_MILLI,
                &num(state.milli_tokens),
                BUCKET_AT,
                &num(state.at_ms),
            ],
        )?;
        Ok(())
    }

    fn reset_bucket(&mut self) -> TqResult<()> {
        self.write("HDEL", &[&self.keys.meta, BUCKET_MILLI, BUCKET_AT])?;
        Ok(())
    }

    fn record_admission(&mut self, now_ms: u64) -> TqResult<()> {
        let second = num(now_ms / 1000);
        let count = self
            .write("HINCRBY", &[&self.keys.admits, &second, b"1"])?
            .int()?;
        if count == 1 {
            // First admission of a new second: drop seconds that have left
            // the window, so the hash holds at most one window.
            let oldest_kept = (now_ms / 1000).saturating_sub(RATE_WINDOW_S - 1);
            for field in self.read("HKEYS", &[&self.keys.admits])?.list()? {
                let field = field.opt_bytes()?.ok_or_else(unexpected)?;
                if parse_u64(&field)? < oldest_kept {
                    self.write("HDEL", &[&self.keys.admits, &field])?;
                }
            }
        }
        Ok(())
    }

    fn admissions_since(&mut self, since_s: u64) -> TqResult<u64> {
        let mut items = self
            .read("HGETALL", &[&self.keys.admits])?
            .list()?
            .into_iter();
        let mut total = 0;
        while let (Some(second), Some(count)) = (items.next(), items.next()) {
            let second = parse_u64(&second.opt_bytes()?.ok_or_else(unexpected)?)?;
            if second >= since_s {
                total += count.int()? as u64;
            }
        }
        Ok(total)
    }

    fn seat(&mut self, seat: &[u8]) -> TqResult<StoredSeat> {
        match self.read("HGET", &[&self.keys.seats, seat])?.opt_bytes()? {
            None => Ok(StoredSeat::Available),
            Some(raw) => {
                decode_seat(&raw).ok_or_else(|| TqError::Internal("unreadable seat record".into()))
            }
        }
    }

    fn set_seat(&mut self, seat: &[u8], state: &StoredSeat) -> TqResult<()> {
        match encode_seat(state) {
            None => self.write("HDEL", &[&self.keys.seats, seat])?,
            Some(record) => self.write("HSET", &[&self.keys.seats, seat, &record])?,
        };
        match state {
            StoredSeat::Held { expires_ms, .. } => {
                self.write("ZADD", &[&self.keys.holds, &num(*expires_ms), seat])?
            }
            _ => self.write("ZREM", &[&self.keys.holds, seat])?,
        };
        Ok(())
    }

    fn expired_holds(&mut self, now_ms: u64, limit: usize) -> TqResult<Vec<Vec<u8>>> {
        let reply = self.read(
            "ZRANGEBYSCORE",
            &[
                &self.keys.holds,
                b"-inf",
                &num(now_ms),
                b"LIMIT",
                b"0",
                &limit_arg(limit),
            ],
        )?;
        reply
            .list()?
            .into_iter()
            .map(|v| v.opt_bytes()?.ok_or_else(unexpected))
            .collect()
    }

    fn expired_hold_count(&mut self, now_ms: u64) -> TqResult<u64> {
        Ok(self
            .read("ZCOUNT", &[&self.keys.holds, b"-inf", &num(now_ms)])?
            .int()? as u64)
    }

    fn held_count(&mut self) -> TqResult<u64> {
        Ok(self.read("ZCARD", &[&self.keys.holds])?.int()? as u64)
    }

    fn counter(&mut self, counter: Counter) -> TqResult<u64> {
        Ok(self.meta_u64(counter.field().as_bytes())?.unwrap_or(0))
    }

    fn add_counter(&mut self, counter: Counter, delta: i64) -> TqResult<()> {
        let by = delta.to_string().into_bytes();
        self.write(
            "HINCRBY",
            &[&self.keys.meta, counter.field().as_bytes(), &by],
        )?;
        super::metrics::record_counter(counter, delta);
        Ok(())
    }

    fn set_counter(&mut self, counter: Counter, value: u64) -> TqResult<()> {
        self.write(
            "HSET",
            &[&self.keys.meta, counter.field().as_bytes(), &num(value)],
        )?;
        Ok(())
    }

    fn settings_overrides(&mut self) -> TqResult<SettingsChange> {
        let mut args: Vec<&[u8]> = vec![&self.keys.meta];
        args.extend(Setting::ALL.iter().map(|s| s.field().as_bytes()));
        let values = self.read("HMGET", &args)?.list()?;
        let mut change = SettingsChange::default();
        for (setting, value) in Setting::ALL.into_iter().zip(values) {
            if let Some(raw) = value.opt_bytes()? {
                change.set(setting, parse_u64(&raw)?);
            }
        }
        Ok(change)
    }

    fn store_settings(&mut self, change: &SettingsChange) -> TqResult<()> {
        let values: Vec<(&[u8], Vec<u8>)> = change
            .iter()
            .map(|(s, v)| (s.field().as_bytes(), num(v)))
            .collect();
        let mut args: Vec<&[u8]> = vec![&self.keys.meta];
        for (field, value) in &values {
            args.push(field);
            args.push(value);
        }
        self.write("HSET", &args)?;
        Ok(())
    }
}
