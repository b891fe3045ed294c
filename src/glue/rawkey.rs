//! Safe wrappers over Redis' low-level key API (RM_OpenKey and the stream,
//! sorted-set, hash and string calls), plus effect replication and
//! keyspace notification, which the low-level API leaves to the module.
//!
//! These are an order of magnitude cheaper than RM_Call: no fake client, no
//! argument objects, no reply parsing.

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
        // SAFETY: valid context; Redis copies the bytes.
        let ptr = unsafe {
            raw::RedisModule_CreateString.unwrap()(ctx.ctx, bytes.as_ptr().cast(), bytes.len())
        };
        RStr { ctx: ctx.ctx, ptr }
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
}

impl<'c> Key<'c> {
    /// Opens the key named by the concatenation of `parts`, for writing
    /// or read-only. The name is assembled on the stack when it fits.
    pub fn open(ctx: &'c Context, parts: &[&[u8]], writable: bool) -> Key<'c> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut stack = [0u8; 256];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap
        };
        let mut at = 0;
        for part in parts {
            buf[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        let mode = if writable {
            raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
        } else {
            raw::REDISMODULE_READ
        };
        Key::open_named(ctx, buf, mode)
    }

    fn open_named(ctx: &'c Context, name: &[u8], mode: u32) -> Key<'c> {
        let name = RStr::new(ctx, name);
        // SAFETY: valid context and key name.
        let ptr = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.ctx, name.ptr, mode as c_int) };
        Key { ctx, name, ptr }
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

    pub fn zscore(&self, member: &[u8]) -> Option<f64> {
        if self.is_missing() {
            return None;
        }
        let member = RStr::new(self.ctx, member);
        let mut score = 0.0;
        // SAFETY: open key of type zset (checked by the caller's guard).
        let ok = unsafe { raw::RedisModule_ZsetScore.unwrap()(self.ptr, member.ptr, &mut score) };
        (ok == raw::REDISMODULE_OK as c_int).then_some(score)
    }

    /// ZADD; with `only_existing` (ZADD XX) a missing member is left out.
    /// True if the member was added or its score changed.
    pub fn zadd(&self, score: f64, member: &[u8], only_existing: bool) -> bool {
        let m = RStr::new(self.ctx, member);
        let mut flags: c_int = if only_existing {
            raw::REDISMODULE_ZADD_XX as c_int
        } else {
            0
        };
        // SAFETY: key opened for writing.
        unsafe { raw::RedisModule_ZsetAdd.unwrap()(self.ptr, score, m.ptr, &mut flags) };
        flags & (raw::REDISMODULE_ZADD_ADDED | raw::REDISMODULE_ZADD_UPDATED) as c_int != 0
    }

    pub fn zrem(&self, member: &[u8]) -> bool {
        if self.is_missing() {
            return false;
        }
        let m = RStr::new(self.ctx, member);
        let mut deleted: c_int = 0;
        // SAFETY: key opened for writing.
        unsafe { raw::RedisModule_ZsetRem.unwrap()(self.ptr, m.ptr, &mut deleted) };
        deleted != 0
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

    pub fn hget(&self, field: &[u8]) -> Option<Vec<u8>> {
        if self.is_missing() {
            return None;
        }
        let f = RStr::new(self.ctx, field);
        let mut value: *mut raw::RedisModuleString = ptr::null_mut();
        // SAFETY: open hash; the NULL-terminated variadic list has one
        // (field, out) pair.
        unsafe {
            raw::RedisModule_HashGet.unwrap()(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                f.ptr,
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

    pub fn hset(&self, field: &[u8], value: &[u8]) {
        let f = RStr::new(self.ctx, field);
        let v = RStr::new(self.ctx, value);
        // SAFETY: key opened for writing; one (field, value) pair, NULL end.
        unsafe {
            raw::RedisModule_HashSet.unwrap()(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                f.ptr,
                v.ptr,
                ptr::null_mut::<c_char>(),
            );
        }
    }

    pub fn hdel(&self, field: &[u8]) {
        if self.is_missing() {
            return;
        }
        let f = RStr::new(self.ctx, field);
        // REDISMODULE_HASH_DELETE is the value ((RedisModuleString*)1).
        let delete = ptr::without_provenance_mut::<raw::RedisModuleString>(1);
        // SAFETY: as in `hset`.
        unsafe {
            raw::RedisModule_HashSet.unwrap()(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                f.ptr,
                delete,
                ptr::null_mut::<c_char>(),
            );
        }
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
        if self.is_missing() {
            return None;
        }
        let mut len = 0;
        // SAFETY: open string key, read-only access.
        unsafe {
            let p = raw::RedisModule_StringDMA.unwrap()(
                self.ptr,
                &mut len,
                raw::REDISMODULE_READ as c_int,
            );
            Some(std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec())
        }
    }

    /// Sets the value and its absolute expiry (unix ms).
    pub fn set_string_until(&self, value: &[u8], expires_at_ms: u64) {
        let v = RStr::new(self.ctx, value);
        // SAFETY: key opened for writing.
        unsafe {
            raw::RedisModule_StringSet.unwrap()(self.ptr, v.ptr);
            raw::RedisModule_SetAbsExpire.unwrap()(self.ptr, expires_at_ms as i64);
        }
    }

    // ---- streams ---------------------------------------------------------

    /// XADD with an automatic id (or `id` when given); None if refused.
    pub fn xadd(&self, id: Option<EntryId>, fields: [&[u8]; 4]) -> Option<EntryId> {
        let strings = fields.map(|f| RStr::new(self.ctx, f));
        let mut argv = [
            strings[0].ptr,
            strings[1].ptr,
            strings[2].ptr,
            strings[3].ptr,
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
        (ok == raw::REDISMODULE_OK as c_int).then(|| EntryId::new(sid.ms, sid.seq))
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
        unsafe {
            raw::RedisModule_StreamDelete.unwrap()(self.ptr, &mut sid)
                == raw::REDISMODULE_OK as c_int
        }
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

    pub fn name_bytes(&self) -> &[u8] {
        bytes_of(self.name.ptr)
    }

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
    pub fn replicate(&self, cmd: &CStr, rest: &[&[u8]]) {
        let mut args: Vec<&[u8]> = Vec::with_capacity(rest.len() + 1);
        args.push(self.name_bytes());
        args.extend_from_slice(rest);
        replicate(self.ctx, cmd, &args);
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
        if !self.ptr.is_null() {
            // SAFETY: opened by RM_OpenKey, closed once. Closing a write
            // key signals WATCHers and deletes it if it became empty.
            unsafe { raw::RedisModule_CloseKey.unwrap()(self.ptr) };
        }
    }
}

/// Sends `cmd args...` to replicas and the AOF as one effect of the
/// current command (Redis wraps a command's effects in MULTI/EXEC).
pub fn replicate(ctx: &Context, cmd: &CStr, args: &[&[u8]]) {
    macro_rules! rep {
        ($fmt:expr $(, $i:expr)*) => {
            // SAFETY: the format has one 'b' (pointer, length) per argument.
            unsafe {
                raw::RedisModule_Replicate.unwrap()(
                    ctx.ctx,
                    cmd.as_ptr(),
                    $fmt.as_ptr(),
                    $(args[$i].as_ptr(), args[$i].len()),*
                )
            }
        };
    }
    match args.len() {
        1 => rep!(c"b", 0),
        2 => rep!(c"bb", 0, 1),
        3 => rep!(c"bbb", 0, 1, 2),
        4 => rep!(c"bbbb", 0, 1, 2, 3),
        5 => rep!(c"bbbbb", 0, 1, 2, 3, 4),
        6 => rep!(c"bbbbbb", 0, 1, 2, 3, 4, 5),
        7 => rep!(c"bbbbbbb", 0, 1, 2, 3, 4, 5, 6),
        8 => rep!(c"bbbbbbbb", 0, 1, 2, 3, 4, 5, 6, 7),
        9 => rep!(c"bbbbbbbbb", 0, 1, 2, 3, 4, 5, 6, 7, 8),
        10 => rep!(c"bbbbbbbbbb", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
        11 => rep!(c"bbbbbbbbbbb", 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        _ => {
            // Rare (TQ.CONFIG, meta write-back): an array of strings.
            let strings: Vec<RStr> = args.iter().map(|a| RStr::new(ctx, a)).collect();
            let mut argv: Vec<*mut raw::RedisModuleString> =
                strings.iter().map(|s| s.ptr).collect();
            // SAFETY: 'v' takes (RedisModuleString **, size_t).
            unsafe {
                raw::RedisModule_Replicate.unwrap()(
                    ctx.ctx,
                    cmd.as_ptr(),
                    c"v".as_ptr(),
                    argv.as_mut_ptr(),
                    argv.len(),
                )
            }
        }
    };
}
