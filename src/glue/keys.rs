//! Redis keys as tq uses them: strings it makes (`RStr`), and an open key
//! (`Key`) with the few low-level calls tq needs on its two keys: the
//! queue stream and the module-type state.
//!
//! The low-level key API is far cheaper than RM_Call (no fake client, no
//! reply to parse), but it neither replicates nor notifies: callers do
//! both explicitly (`event_keys::OpenEvent::finish`).

use std::ffi::{c_int, CStr};
use std::ptr;

use redis_module::{raw, Context};
use smallvec::SmallVec;

use super::state_type::STATE_TYPE;
use crate::domain::args::MAX_EVENT_LEN;
use crate::domain::entry_id::EntryId;
use crate::domain::event::Event;
use crate::domain::happenings::Happening;

/// A Redis string made by tq, freed when dropped.
pub struct RStr {
    pub ptr: *mut raw::RedisModuleString,
}

impl RStr {
    pub fn new(bytes: &[u8]) -> RStr {
        // SAFETY: a NULL context makes a string owned by the caller (freed
        // in Drop); Redis copies the bytes.
        let ptr = unsafe {
            raw::RedisModule_CreateString.unwrap()(
                ptr::null_mut(),
                bytes.as_ptr().cast(),
                bytes.len(),
            )
        };
        RStr { ptr }
    }

    /// `tq:{E}:<part>`, put together on the stack (an event name is at
    /// most `MAX_EVENT_LEN` bytes).
    pub fn key_name(event: &[u8], part: &str) -> RStr {
        let pieces: [&[u8]; 4] = [b"tq:{", event, b"}:", part.as_bytes()];
        let mut name = [0u8; MAX_EVENT_LEN + 16];
        if pieces.iter().map(|p| p.len()).sum::<usize>() > name.len() {
            return RStr::new(&pieces.concat());
        }
        let mut len = 0;
        for piece in pieces {
            name[len..len + piece.len()].copy_from_slice(piece);
            len += piece.len();
        }
        RStr::new(&name[..len])
    }
}

impl Drop for RStr {
    fn drop(&mut self) {
        // SAFETY: made by RM_CreateString with a NULL context, freed once.
        unsafe { raw::RedisModule_FreeString.unwrap()(ptr::null_mut(), self.ptr) }
    }
}

/// A Redis string that lives as long as the module: the stream's field
/// names, which every join passes.
pub struct ModuleString(*mut raw::RedisModuleString);

// SAFETY: made once, never changed or freed; Redis only reads it, on its
// main thread.
unsafe impl Send for ModuleString {}
// SAFETY: as above.
unsafe impl Sync for ModuleString {}

impl ModuleString {
    pub fn ptr(&self) -> *mut raw::RedisModuleString {
        self.0
    }
}

/// A field name tq writes into streams: a queue entry's `token` and
/// `user`, and a log entry's `type` and what names its subject.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    Token,
    User,
    Type,
    Seat,
    Pass,
}

const FIELDS: [&str; 5] = ["token", "user", "type", "seat", "pass"];

/// Redis strings of `words`, made once and kept for the module's life:
/// tq writes them into streams again and again.
fn made<const N: usize>(words: [&str; N]) -> [ModuleString; N] {
    words.map(|word| {
        let s = RStr::new(word.as_bytes());
        let ptr = s.ptr;
        std::mem::forget(s); // kept for the module's life
        ModuleString(ptr)
    })
}

/// A field name as a Redis string that lives as long as the module.
pub fn field(name: Field) -> *mut raw::RedisModuleString {
    static MADE: std::sync::OnceLock<[ModuleString; FIELDS.len()]> = std::sync::OnceLock::new();
    MADE.get_or_init(|| made(FIELDS))[name as usize].ptr()
}

/// The `type` of a log entry as a Redis string that lives as long as the
/// module.
pub fn kind_word(happening: &Happening) -> *mut raw::RedisModuleString {
    static MADE: std::sync::OnceLock<[ModuleString; Happening::KINDS.len()]> =
        std::sync::OnceLock::new();
    MADE.get_or_init(|| made(Happening::KINDS))[happening.kind_index()].ptr()
}

/// What an event key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    Nothing,
    Stream,
    State,
    /// A value of any other type.
    Other,
}

/// An open key; closed when dropped.
pub struct Key<'c> {
    ctx: &'c Context,
    pub name: RStr,
    ptr: *mut raw::RedisModuleKey,
}

impl<'c> Key<'c> {
    pub fn open(ctx: &'c Context, name: RStr, writable: bool) -> Key<'c> {
        let mode = if writable {
            raw::REDISMODULE_READ | raw::REDISMODULE_WRITE
        } else {
            raw::REDISMODULE_READ
        };
        // SAFETY: valid context and key name.
        let ptr = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.ctx, name.ptr, mode as c_int) };
        Key { ctx, name, ptr }
    }

    pub fn holds(&self) -> Holds {
        if self.ptr.is_null() {
            return Holds::Nothing;
        }
        // SAFETY: open key.
        let kind = unsafe { raw::RedisModule_KeyType.unwrap()(self.ptr) };
        match kind as isize {
            raw::REDISMODULE_KEYTYPE_EMPTY => Holds::Nothing,
            raw::REDISMODULE_KEYTYPE_STREAM => Holds::Stream,
            raw::REDISMODULE_KEYTYPE_MODULE if self.is_state() => Holds::State,
            _ => Holds::Other,
        }
    }

    fn is_state(&self) -> bool {
        // SAFETY: open key holding a module value.
        let found = unsafe { raw::RedisModule_ModuleTypeGetType.unwrap()(self.ptr) };
        found == *STATE_TYPE.raw_type.borrow()
    }

    /// Elements of the value (stream entries).
    pub fn value_length(&self) -> u64 {
        if self.holds() == Holds::Nothing {
            return 0;
        }
        // SAFETY: open key.
        unsafe { raw::RedisModule_ValueLength.unwrap()(self.ptr) as u64 }
    }

    /// The event state stored here, if this key holds one.
    pub fn state(&self) -> Option<&Event> {
        (self.holds() == Holds::State).then(|| {
            // SAFETY: the key holds a value of tq's type, whose values are
            // always `Event`s (set by `set_state` or `rdb_load`); the
            // reference lives no longer than this borrow of the open key.
            unsafe { &*raw::RedisModule_ModuleTypeGetValue.unwrap()(self.ptr).cast::<Event>() }
        })
    }

    pub fn state_mut(&mut self) -> Option<&mut Event> {
        (self.holds() == Holds::State).then(|| {
            // SAFETY: as in `state`; `&mut self` makes it the only borrow.
            unsafe { &mut *raw::RedisModule_ModuleTypeGetValue.unwrap()(self.ptr).cast::<Event>() }
        })
    }

    /// Stores `event` here (the key must be open for writing and empty or
    /// hold a state, which is then freed by Redis).
    pub fn set_state(&mut self, event: Box<Event>) {
        super::metrics::passes_stored(event.buyers.passes() as i64);
        let value = Box::into_raw(event);
        // SAFETY: writable key; Redis owns the value from here and frees it
        // through the type's `free` callback.
        unsafe {
            raw::RedisModule_ModuleTypeSetValue.unwrap()(
                self.ptr,
                *STATE_TYPE.raw_type.borrow(),
                value.cast(),
            );
        }
    }

    /// Appends stream entry `id` with these field/value pairs; false if the
    /// stream refused the id (not after its last one).
    pub fn stream_add(&self, id: EntryId, argv: &mut [*mut raw::RedisModuleString]) -> bool {
        let mut sid = raw::RedisModuleStreamID {
            ms: id.ms,
            seq: id.seq,
        };
        // SAFETY: key open for writing; argv holds field/value pairs that
        // live through the call.
        let status = unsafe {
            raw::RedisModule_StreamAdd.unwrap()(
                self.ptr,
                0,
                &mut sid,
                argv.as_mut_ptr(),
                (argv.len() / 2) as i64,
            )
        };
        status == raw::REDISMODULE_OK as c_int
    }

    pub fn stream_delete(&self, id: EntryId) -> bool {
        if self.holds() != Holds::Stream {
            return false;
        }
        let mut sid = raw::RedisModuleStreamID {
            ms: id.ms,
            seq: id.seq,
        };
        // SAFETY: stream key open for writing.
        unsafe {
            raw::RedisModule_StreamDelete.unwrap()(self.ptr, &mut sid)
                == raw::REDISMODULE_OK as c_int
        }
    }

    /// Deletes every entry below `min_id` (exact XTRIM MINID); how many.
    pub fn stream_trim_below(&self, min_id: EntryId) -> u64 {
        if self.holds() != Holds::Stream {
            return 0;
        }
        let mut sid = raw::RedisModuleStreamID {
            ms: min_id.ms,
            seq: min_id.seq,
        };
        // SAFETY: stream key open for writing; flags 0 is an exact trim.
        let trimmed = unsafe { raw::RedisModule_StreamTrimByID.unwrap()(self.ptr, 0, &mut sid) };
        trimmed.max(0) as u64
    }

    /// The value of `field` in stream entry `id`, if the entry exists and
    /// has that field.
    pub fn stream_field(&self, id: EntryId, field: &[u8]) -> Option<Vec<u8>> {
        let entry = self.stream_entry(id)?;
        entry.chunks_exact(2).find_map(|pair| {
            // SAFETY: strings owned by `entry`, which outlives this use.
            let (name, value) = unsafe { (string_bytes(pair[0].ptr), string_bytes(pair[1].ptr)) };
            (name == Some(field)).then(|| value.unwrap_or_default().to_vec())
        })
    }

    /// The field and value strings of stream entry `id`, in order, if the
    /// entry exists.
    pub fn stream_entry(&self, id: EntryId) -> Option<SmallVec<[RStr; 4]>> {
        self.stream_read(id, false)
    }

    /// As `stream_entry`, and deletes the entry in the same pass (one
    /// seek, where a read and then a deletion would walk to it twice).
    pub fn stream_take(&self, id: EntryId) -> Option<SmallVec<[RStr; 4]>> {
        self.stream_read(id, true)
    }

    fn stream_read(&self, id: EntryId, delete: bool) -> Option<SmallVec<[RStr; 4]>> {
        if self.holds() != Holds::Stream {
            return None;
        }
        let mut at = raw::RedisModuleStreamID {
            ms: id.ms,
            seq: id.seq,
        };
        let ok = raw::REDISMODULE_OK as c_int;
        let mut strings = SmallVec::new();
        // SAFETY: open stream key (for writing if `delete`); the iterator,
        // started and stopped here, covers the one id and deletes its entry
        // only if asked, after its fields were read; each field and value
        // string it hands out is ours to free (no automatic memory): an
        // `RStr` frees it once.
        unsafe {
            if raw::RedisModule_StreamIteratorStart.unwrap()(self.ptr, 0, &mut at, &mut at) != ok {
                return None;
            }
            let mut seen = raw::RedisModuleStreamID { ms: 0, seq: 0 };
            let mut fields: std::ffi::c_long = 0;
            let found =
                raw::RedisModule_StreamIteratorNextID.unwrap()(self.ptr, &mut seen, &mut fields)
                    == ok;
            if found {
                let (mut name, mut value) = (ptr::null_mut(), ptr::null_mut());
                while raw::RedisModule_StreamIteratorNextField.unwrap()(
                    self.ptr, &mut name, &mut value,
                ) == ok
                {
                    strings.push(RStr { ptr: name });
                    strings.push(RStr { ptr: value });
                }
                if delete {
                    raw::RedisModule_StreamIteratorDelete.unwrap()(self.ptr);
                }
            }
            raw::RedisModule_StreamIteratorStop.unwrap()(self.ptr);
            found.then_some(strings)
        }
    }

    /// Deletes the oldest entries until `len` are left (exact XTRIM
    /// MAXLEN); how many.
    pub fn stream_trim_to(&self, len: u64) -> u64 {
        if self.holds() != Holds::Stream {
            return 0;
        }
        let len = len.min(i64::MAX as u64) as i64;
        // SAFETY: stream key open for writing; flags 0 is an exact trim.
        let trimmed = unsafe { raw::RedisModule_StreamTrimByLength.unwrap()(self.ptr, 0, len) };
        trimmed.max(0) as u64
    }

    /// Fires keyspace event `event` of class `class` for this key, as the
    /// equivalent Redis command would.
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

    /// Tells WATCHers and client-side caches that this key changed. tq
    /// calls it only for keys a command changed: Redis' own signal, which
    /// fires for every key opened for writing, is off (`glue::init`), so a
    /// command that only reads leaves a WATCH alone.
    pub fn signal_modified(&self) {
        // SAFETY: valid context and key name.
        unsafe { raw::RedisModule_SignalModifiedKey.unwrap()(self.ctx.ctx, self.name.ptr) };
    }
}

/// The bytes of a Redis string; None for a null pointer.
///
/// # Safety
/// `string` is null or a valid `RedisModuleString` that outlives `'a`.
pub unsafe fn string_bytes<'a>(string: *const raw::RedisModuleString) -> Option<&'a [u8]> {
    if string.is_null() {
        return None;
    }
    let mut len = 0;
    // SAFETY: a valid string, per this function's contract.
    let data = unsafe { raw::RedisModule_StringPtrLen.unwrap()(string, &mut len) };
    if data.is_null() {
        return None;
    }
    // SAFETY: Redis keeps `len` bytes at `data` while the string lives.
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: opened by RM_OpenKey, closed once.
            unsafe { raw::RedisModule_CloseKey.unwrap()(self.ptr) };
        }
    }
}
