//! Safe wrappers over Redis' low-level key API (RM_OpenKey and the stream,
//! sorted-set, hash and string calls), plus effect replication and
//! keyspace notification, which the low-level API leaves to the module.
//!
//! These are an order of magnitude cheaper than RM_Call: no fake client, no
//! argument objects, no reply parsing.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_long, CStr};
use std::ptr;

use redis_module::{raw, Context, KeyType};

use crate::domain::entry_id::EntryId;

/// A stream entry: its id and (field, value) pairs.
pub type StreamEntry = (EntryId, Vec<(Vec<u8>, Vec<u8>)>);

/// A RedisModuleString owned by us, freed on drop.
pub struct RStr {
    ctx: *mut raw::RedisModuleCtx,
    pub ptr: *mut raw::RedisModuleString,
}

impl RStr {
    pub fn new(ctx: &Context, bytes: &[u8]) -> RStr {
        RStr::made_in(ctx.ctx, bytes)
    }

    /// A string that belongs to no command, for strings kept across
    /// commands (the key-name cache).
    pub fn detached(bytes: &[u8]) -> RStr {
        RStr::made_in(ptr::null_mut(), bytes)
    }

    fn made_in(ctx: *mut raw::RedisModuleCtx, bytes: &[u8]) -> RStr {
        // SAFETY: a valid or NULL context (no automatic memory is enabled,
        // so the string lives until freed); Redis copies the bytes.
        let ptr = unsafe {
            raw::RedisModule_CreateString.unwrap()(ctx, bytes.as_ptr().cast(), bytes.len())
        };
        RStr { ctx, ptr }
    }

    /// Another reference to the same string (a reference count, no copy),
    /// released with the command's context.
    pub fn retain(&self, ctx: &Context) -> RStr {
        // SAFETY: a live string; with no automatic memory this only
        // increments its reference count.
        unsafe { raw::RedisModule_RetainString.unwrap()(ptr::null_mut(), self.ptr) };
        RStr {
            ctx: ctx.ctx,
            ptr: self.ptr,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        bytes_of(self.ptr)
    }
}

/// An argument of a key operation or a replicated command: any bytes, or a
/// Redis string made earlier. Passing the same `RStr` to every write that
/// names a token or user makes that string once per command instead of
/// once per use (string objects are most of what a write costs).
pub trait RedisArg {
    fn to_redis<'a>(&'a self, ctx: &Context) -> RArg<'a>;
}

/// A Redis string for one use: made for it, or borrowed.
pub enum RArg<'a> {
    Made(RStr),
    Reused(&'a RStr),
}

impl RArg<'_> {
    pub fn ptr(&self) -> *mut raw::RedisModuleString {
        match self {
            RArg::Made(s) => s.ptr,
            RArg::Reused(s) => s.ptr,
        }
    }
}

impl RedisArg for RStr {
    fn to_redis<'a>(&'a self, _ctx: &Context) -> RArg<'a> {
        RArg::Reused(self)
    }
}

/// Bytes of any kind (slices, arrays, ids, decimal text): made into a Redis
/// string for the one use.
impl<T: AsRef<[u8]>> RedisArg for T {
    fn to_redis<'a>(&'a self, ctx: &Context) -> RArg<'a> {
        RArg::Made(RStr::new(ctx, self.as_ref()))
    }
}

impl Drop for RStr {
    fn drop(&mut self) {
        // SAFETY: created by RM_CreateString with this context, freed once.
        unsafe { raw::RedisModule_FreeString.unwrap()(self.ctx, self.ptr) }
    }
}

/// The bytes of a Redis string (borrowed from it).
fn bytes_of<'a>(s: *const raw::RedisModuleString) -> &'a [u8] {
    let mut len = 0;
    // SAFETY: `s` is a live string; the slice does not outlive its owner
    // within the callers below.
    unsafe {
        let p = raw::RedisModule_StringPtrLen.unwrap()(s, &mut len);
        std::slice::from_raw_parts(p.cast(), len)
    }
}

/// An open key, closed on drop.
pub struct Key<'c> {
    ctx: &'c Context,
    pub name: RStr,
    ptr: *mut raw::RedisModuleKey,
    /// Some write changed the value: WATCHers and client-side caches are
    /// told when the key is closed. tq turns off Redis' own signal, which
    /// fires for every key opened for writing, changed or not (see
    /// `glue::init`), so that a command that only reads a key leaves a
    /// WATCH on it alone.
    modified: Cell<bool>,
}

impl<'c> Key<'c> {
    /// Opens the key `name`, for writing or read-only.
    pub fn open(ctx: &'c Context, name: RStr, writable: bool) -> Key<'c> {
        let mode = if writable {
            raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
        } else {
            raw::REDISMODULE_READ
        };
        // SAFETY: valid context and key name.
        let ptr = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.ctx, name.ptr, mode as c_int) };
        Key {
            ctx,
            name,
            ptr,
            modified: Cell::new(false),
        }
    }

    /// Records that the value changed (see `modified`); passes `changed`
    /// through.
    fn mark(&self, changed: bool) -> bool {
        if changed {
            self.modified.set(true);
        }
        changed
    }

    fn is_missing(&self) -> bool {
        // SAFETY: RM_KeyType accepts NULL (a key opened read-only that
        // does not exist) and returns EMPTY.
        self.ptr.is_null()
            || unsafe { raw::RedisModule_KeyType.unwrap()(self.ptr) }
                == raw::REDISMODULE_KEYTYPE_EMPTY as c_int
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Elements of the value (stream entries, set members, hash fields).
    pub fn len(&self) -> u64 {
        if self.is_missing() {
            return 0;
        }
        // SAFETY: open key.
        unsafe { raw::RedisModule_ValueLength.unwrap()(self.ptr) as u64 }
    }

    // ---- sorted sets -----------------------------------------------------

    pub fn zscore(&self, member: &dyn RedisArg) -> Option<f64> {
        if self.is_missing() {
            return None;
        }
        let member = member.to_redis(self.ctx);
        let mut score = 0.0;
        // SAFETY: open key of type zset (checked by the caller's guard).
        let ok = unsafe { raw::RedisModule_ZsetScore.unwrap()(self.ptr, member.ptr(), &mut score) };
        (ok == raw::REDISMODULE_OK as c_int).then_some(score)
    }

    /// ZADD; with `only_existing` (ZADD XX) a missing member is left out.
    /// True if the member was added or its score changed.
    pub fn zadd(&self, score: f64, member: &dyn RedisArg, only_existing: bool) -> bool {
        let m = member.to_redis(self.ctx);
        let mut flags: c_int = if only_existing {
            raw::REDISMODULE_ZADD_XX as c_int
        } else {
            0
        };
        // SAFETY: key opened for writing.
        unsafe { raw::RedisModule_ZsetAdd.unwrap()(self.ptr, score, m.ptr(), &mut flags) };
        self.mark(
            flags & (raw::REDISMODULE_ZADD_ADDED | raw::REDISMODULE_ZADD_UPDATED) as c_int != 0,
        )
    }

    pub fn zrem(&self, member: &dyn RedisArg) -> bool {
        if self.is_missing() {
            return false;
        }
        let m = member.to_redis(self.ctx);
        let mut deleted: c_int = 0;
        // SAFETY: key opened for writing.
        unsafe { raw::RedisModule_ZsetRem.unwrap()(self.ptr, m.ptr(), &mut deleted) };
        self.mark(deleted != 0)
    }

    /// Members with `min <= score < max` (or `<= max` when `max_inclusive`),
    /// lowest first, at most `limit`, with their scores.
    pub fn zrange_by_score(
        &self,
        min: f64,
        max: f64,
        max_inclusive: bool,
        limit: usize,
    ) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        if self.is_missing() || limit == 0 {
            return out;
        }
        // SAFETY: open zset; the range is stopped before returning and each
        // element is copied then freed.
        unsafe {
            let started = raw::RedisModule_ZsetFirstInScoreRange.unwrap()(
                self.ptr,
                min,
                max,
                0,
                (!max_inclusive) as c_int,
            );
            if started != raw::REDISMODULE_OK as c_int {
                return out;
            }
            while raw::RedisModule_ZsetRangeEndReached.unwrap()(self.ptr) == 0 && out.len() < limit
            {
                let mut score = 0.0;
                let el = raw::RedisModule_ZsetRangeCurrentElement.unwrap()(self.ptr, &mut score);
                out.push((bytes_of(el).to_vec(), score));
                raw::RedisModule_FreeString.unwrap()(self.ctx.ctx, el);
                raw::RedisModule_ZsetRangeNext.unwrap()(self.ptr);
            }
            raw::RedisModule_ZsetRangeStop.unwrap()(self.ptr);
        }
        out
    }

    // ---- hashes ----------------------------------------------------------

    pub fn hget(&self, field: &dyn RedisArg) -> Option<Vec<u8>> {
        if self.is_missing() {
            return None;
        }
        let f = field.to_redis(self.ctx);
        let mut value: *mut raw::RedisModuleString = ptr::null_mut();
        // SAFETY: open hash; the NULL-terminated variadic list has one
        // (field, out) pair.
        unsafe {
            raw::RedisModule_HashGet.unwrap()(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                f.ptr(),
                &mut value as *mut _,
                ptr::null_mut::<c_char>(),
            );
        }
        self.take(value)
    }

    /// Copies and frees a string returned by the API (NULL -> None).
    fn take(&self, s: *mut raw::RedisModuleString) -> Option<Vec<u8>> {
        if s.is_null() {
            return None;
        }
        let bytes = bytes_of(s).to_vec();
        // SAFETY: returned to us by RM_HashGet, not auto-memory managed.
        unsafe { raw::RedisModule_FreeString.unwrap()(self.ctx.ctx, s) };
        Some(bytes)
    }

    pub fn hset(&self, field: &dyn RedisArg, value: &dyn RedisArg) {
        let f = field.to_redis(self.ctx);
        let v = value.to_redis(self.ctx);
        // SAFETY: key opened for writing; one (field, value) pair, NULL end.
        unsafe {
            raw::RedisModule_HashSet.unwrap()(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                f.ptr(),
                v.ptr(),
                ptr::null_mut::<c_char>(),
            );
        }
        // Like HSET, a change even when the value stays the same.
        self.mark(true);
    }

    /// True if the field was there.
    pub fn hdel(&self, field: &dyn RedisArg) -> bool {
        if self.is_missing() {
            return false;
        }
        let f = field.to_redis(self.ctx);
        // REDISMODULE_HASH_DELETE is the value ((RedisModuleString*)1).
        let delete = ptr::without_provenance_mut::<raw::RedisModuleString>(1);
        // SAFETY: as in `hset`.
        let deleted = unsafe {
            raw::RedisModule_HashSet.unwrap()(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                f.ptr(),
                delete,
                ptr::null_mut::<c_char>(),
            )
        };
        self.mark(deleted > 0)
    }

    /// Calls `each(field, value)` for every pair of a hash.
    pub fn hscan(&self, mut each: impl FnMut(&[u8], &[u8])) {
        if self.is_missing() {
            return;
        }
        type Each<'a> = &'a mut dyn FnMut(&[u8], &[u8]);
        extern "C" fn trampoline(
            _key: *mut raw::RedisModuleKey,
            field: *mut raw::RedisModuleString,
            value: *mut raw::RedisModuleString,
            privdata: *mut std::ffi::c_void,
        ) {
            // SAFETY: privdata is the `each` closure below, alive for the
            // whole scan; the strings are live during the callback.
            let each = unsafe { &mut *(privdata as *mut Each<'_>) };
            each(bytes_of(field), bytes_of(value));
        }
        let mut each: Each<'_> = &mut each;
        // SAFETY: a cursor scan over an open hash, to completion.
        unsafe {
            let cursor = raw::RedisModule_ScanCursorCreate.unwrap()();
            while raw::RedisModule_ScanKey.unwrap()(
                self.ptr,
                cursor,
                Some(trampoline),
                &mut each as *mut Each<'_> as *mut std::ffi::c_void,
            ) != 0
            {}
            raw::RedisModule_ScanCursorDestroy.unwrap()(cursor);
        }
    }

    // ---- strings ---------------------------------------------------------

    pub fn get_string(&self) -> Option<Vec<u8>> {
        self.read_string(<[u8]>::to_vec)
    }

    /// `read(value)` of a string key, without copying the value.
    pub fn read_string<R>(&self, read: impl FnOnce(&[u8]) -> R) -> Option<R> {
        if self.is_missing() {
            return None;
        }
        let mut len = 0;
        // SAFETY: open string key (the caller checked its type), read-only
        // access; the slice is dropped before the key can change.
        unsafe {
            let p = raw::RedisModule_StringDMA.unwrap()(
                self.ptr,
                &mut len,
                raw::REDISMODULE_READ as c_int,
            );
            if p.is_null() {
                return None; // not a string after all
            }
            Some(read(std::slice::from_raw_parts(p.cast::<u8>(), len)))
        }
    }

    /// Sets the value, replacing whatever the key held (of any type). A
    /// string is rewritten in place (resized, then copied into), which
    /// spares Redis deleting and re-adding the key as SET does.
    pub fn set_string(&self, value: &[u8]) {
        // SAFETY: key opened for writing. Truncate fails (changing nothing)
        // unless the key is empty or a string; on success DMA gives its
        // `value.len()` writable bytes.
        unsafe {
            let mut len = 0;
            let p = if raw::RedisModule_StringTruncate.unwrap()(self.ptr, value.len())
                == raw::REDISMODULE_OK as c_int
            {
                raw::RedisModule_StringDMA.unwrap()(
                    self.ptr,
                    &mut len,
                    raw::REDISMODULE_WRITE as c_int,
                )
            } else {
                ptr::null_mut()
            };
            if !p.is_null() && len == value.len() {
                ptr::copy_nonoverlapping(value.as_ptr(), p.cast::<u8>(), len);
            } else {
                let v = RStr::new(self.ctx, value);
                raw::RedisModule_StringSet.unwrap()(self.ptr, v.ptr);
            }
        }
        self.mark(true);
    }

    /// Sets the value and its absolute expiry (unix ms).
    pub fn set_string_until(&self, value: &[u8], expires_at_ms: u64) {
        let v = RStr::new(self.ctx, value);
        // SAFETY: key opened for writing.
        unsafe {
            raw::RedisModule_StringSet.unwrap()(self.ptr, v.ptr);
            raw::RedisModule_SetAbsExpire.unwrap()(self.ptr, expires_at_ms as i64);
        }
        self.mark(true);
    }

    // ---- streams ---------------------------------------------------------

    /// XADD with an automatic id (or `id` when given); None if refused.
    pub fn xadd(&self, id: Option<EntryId>, fields: [&dyn RedisArg; 4]) -> Option<EntryId> {
        let strings = fields.map(|f| f.to_redis(self.ctx));
        let mut argv = [
            strings[0].ptr(),
            strings[1].ptr(),
            strings[2].ptr(),
            strings[3].ptr(),
        ];
        let (flags, mut sid) = match id {
            None => (
                raw::REDISMODULE_STREAM_ADD_AUTOID as c_int,
                raw::RedisModuleStreamID { ms: 0, seq: 0 },
            ),
            Some(id) => (
                0,
                raw::RedisModuleStreamID {
                    ms: id.ms,
                    seq: id.seq,
                },
            ),
        };
        // SAFETY: key opened for writing; argv holds field/value pairs.
        let ok = unsafe {
            raw::RedisModule_StreamAdd.unwrap()(
                self.ptr,
                flags,
                &mut sid,
                argv.as_mut_ptr(),
                (fields.len() / 2) as i64,
            )
        };
        self.mark(ok == raw::REDISMODULE_OK as c_int)
            .then(|| EntryId::new(sid.ms, sid.seq))
    }

    pub fn xdel(&self, id: EntryId) -> bool {
        if self.is_missing() {
            return false;
        }
        let mut sid = raw::RedisModuleStreamID {
            ms: id.ms,
            seq: id.seq,
        };
        // SAFETY: key opened for writing.
        let deleted = unsafe {
            raw::RedisModule_StreamDelete.unwrap()(self.ptr, &mut sid)
                == raw::REDISMODULE_OK as c_int
        };
        self.mark(deleted)
    }

    /// XTRIM MINID `min_id`, exact: deletes every entry below it, walking
    /// each stream node once and dropping whole nodes unread. How many.
    pub fn xtrim_min_id(&self, min_id: EntryId) -> u64 {
        if self.is_missing() {
            return 0;
        }
        let mut sid = raw::RedisModuleStreamID {
            ms: min_id.ms,
            seq: min_id.seq,
        };
        // SAFETY: key opened for writing, of type stream (the caller's
        // guard); flags 0 is an exact trim.
        let trimmed = unsafe { raw::RedisModule_StreamTrimByID.unwrap()(self.ptr, 0, &mut sid) };
        let trimmed = trimmed.max(0) as u64;
        self.mark(trimmed > 0);
        trimmed
    }

    /// Entries with ids in `from..=to` (or `from..to` when `to_exclusive`),
    /// oldest first, at most `limit`: (id, [(field, value)]).
    pub fn xrange(
        &self,
        from: EntryId,
        to: EntryId,
        to_exclusive: bool,
        limit: usize,
    ) -> Vec<StreamEntry> {
        let mut out = Vec::new();
        if self.is_missing() || limit == 0 {
            return out;
        }
        let mut start = raw::RedisModuleStreamID {
            ms: from.ms,
            seq: from.seq,
        };
        let end_id = if to_exclusive {
            match (to.seq, to.ms) {
                (0, 0) => return out,
                (0, ms) => EntryId::new(ms - 1, u64::MAX),
                (seq, ms) => EntryId::new(ms, seq - 1),
            }
        } else {
            to
        };
        let mut end = raw::RedisModuleStreamID {
            ms: end_id.ms,
            seq: end_id.seq,
        };
        // SAFETY: open stream; iteration stopped before returning; field
        // strings copied then freed.
        unsafe {
            if raw::RedisModule_StreamIteratorStart.unwrap()(self.ptr, 0, &mut start, &mut end)
                != raw::REDISMODULE_OK as c_int
            {
                return out;
            }
            let mut sid = raw::RedisModuleStreamID { ms: 0, seq: 0 };
            let mut numfields: c_long = 0;
            while out.len() < limit
                && raw::RedisModule_StreamIteratorNextID.unwrap()(
                    self.ptr,
                    &mut sid,
                    &mut numfields,
                ) == raw::REDISMODULE_OK as c_int
            {
                let mut fields = Vec::with_capacity(numfields as usize);
                let mut f: *mut raw::RedisModuleString = ptr::null_mut();
                let mut v: *mut raw::RedisModuleString = ptr::null_mut();
                while raw::RedisModule_StreamIteratorNextField.unwrap()(self.ptr, &mut f, &mut v)
                    == raw::REDISMODULE_OK as c_int
                {
                    fields.push((bytes_of(f).to_vec(), bytes_of(v).to_vec()));
                    raw::RedisModule_FreeString.unwrap()(self.ctx.ctx, f);
                    raw::RedisModule_FreeString.unwrap()(self.ctx.ctx, v);
                }
                out.push((EntryId::new(sid.ms, sid.seq), fields));
            }
            raw::RedisModule_StreamIteratorStop.unwrap()(self.ptr);
        }
        out
    }

    // ---- telling the world -------------------------------------------------

    pub fn exists(&self) -> bool {
        !self.is_missing()
    }

    pub fn key_type(&self) -> KeyType {
        if self.ptr.is_null() {
            return KeyType::Empty;
        }
        // SAFETY: open key.
        unsafe { raw::RedisModule_KeyType.unwrap()(self.ptr) }.into()
    }

    /// Replicates `cmd <this key> rest...` (see `replicate`).
    pub fn replicate(&self, cmd: &CStr, rest: &[&dyn RedisArg]) {
        replicate(self.ctx, cmd, &self.name, rest);
    }

    /// Fires the keyspace event `event` of class `class` for this key, as
    /// the equivalent Redis command would.
    pub fn notify(&self, class: c_int, event: &CStr) {
        // SAFETY: valid context and key name.
        unsafe {
            raw::RedisModule_NotifyKeyspaceEvent.unwrap()(
                self.ctx.ctx,
                class,
                event.as_ptr(),
                self.name.ptr,
            );
        }
    }
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        if self.modified.get() {
            // SAFETY: valid context and key name.
            unsafe { raw::RedisModule_SignalModifiedKey.unwrap()(self.ctx.ctx, self.name.ptr) };
        }
        if !self.ptr.is_null() {
            // SAFETY: opened by RM_OpenKey, closed once. Closing a write
            // key deletes it if it became empty.
            unsafe { raw::RedisModule_CloseKey.unwrap()(self.ptr) };
        }
    }
}

/// Sends `cmd key args...` to replicas and the AOF as one effect of the
/// current command (Redis wraps a command's effects in MULTI/EXEC). Each
/// argument goes as a string object ('s'), so Redis takes a reference to
/// strings made earlier (the key name, the token) instead of copying them.
pub fn replicate(ctx: &Context, cmd: &CStr, key: &RStr, args: &[&dyn RedisArg]) {
    const INLINE: usize = 8;
    if args.len() > INLINE {
        // Rare (TQ.CONFIG, meta write-back with many fields): one vector
        // ('v'), which Redis copies into a reallocated array.
        let made: Vec<RArg<'_>> = args.iter().map(|a| a.to_redis(ctx)).collect();
        let argv: Vec<_> = std::iter::once(key.ptr)
            .chain(made.iter().map(RArg::ptr))
            .collect();
        // SAFETY: 'v' takes (RedisModuleString **, size_t), all live.
        unsafe {
            raw::RedisModule_Replicate.unwrap()(
                ctx.ctx,
                cmd.as_ptr(),
                c"v".as_ptr(),
                argv.as_ptr(),
                argv.len(),
            );
        }
        return;
    }
    let made: [Option<RArg<'_>>; INLINE] =
        std::array::from_fn(|i| args.get(i).map(|a| a.to_redis(ctx)));
    let a: [*mut raw::RedisModuleString; INLINE] =
        std::array::from_fn(|i| made[i].as_ref().map_or(ptr::null_mut(), RArg::ptr));
    let k = key.ptr;
    macro_rules! rep {
        ($fmt:expr $(, $i:expr)*) => {
            // SAFETY: the format has one 's' (a live RedisModuleString) per
            // pointer passed.
            unsafe {
                raw::RedisModule_Replicate.unwrap()(ctx.ctx, cmd.as_ptr(), $fmt.as_ptr(), k $(, a[$i])*)
            }
        };
    }
    match args.len() {
        0 => rep!(c"s"),
        1 => rep!(c"ss", 0),
        2 => rep!(c"sss", 0, 1),
        3 => rep!(c"ssss", 0, 1, 2),
        4 => rep!(c"sssss", 0, 1, 2, 3),
        5 => rep!(c"ssssss", 0, 1, 2, 3, 4),
        6 => rep!(c"sssssss", 0, 1, 2, 3, 4, 5),
        7 => rep!(c"ssssssss", 0, 1, 2, 3, 4, 5, 6),
        _ => rep!(c"sssssssss", 0, 1, 2, 3, 4, 5, 6, 7),
    };
}
