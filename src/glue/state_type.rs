//! tq's module data type, the value of `tq:{E}:state`: one event's whole
//! state (`Event`) as a native Redis value, with every callback Redis makes
//! on it kept here: RDB save and load, AOF rewrite, digest, memory usage,
//! lazy-free effort, copy and free.
//!
//! The value is a `Box<Event>` handed to Redis as a raw pointer. In an RDB
//! (and a DUMP payload) it is one string buffer holding `codec::encode`;
//! loading decodes it with the plain-Rust `codec::decode`, which refuses
//! anything inconsistent, so a RESTORE of a forged payload gets an error
//! reply. Redis calls these functions through C, where an unwinding panic
//! would abort the server: each body runs under `catch_unwind`.

use std::ffi::{c_char, c_int, c_longlong, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::{mem, ptr, slice};

use redis_module::native_types::RedisType;
use redis_module::raw;
use redis_module::raw::ModuleOptions;

use crate::domain::codec;
use crate::domain::event::Event;
use crate::glue::background;
use crate::glue::keys::string_bytes;
use crate::glue::metrics;

/// The type's name, as TYPE shows it; Redis wants exactly nine characters.
pub const TYPE_NAME: &str = "tq--state";

/// The AOF rewrite rebuilds a state with this command; `RedisModule_EmitAOF`
/// refuses (and fails the rewrite) unless the module registered it.
const APPLY_COMMAND: &CStr = c"TQ.APPLY";

/// A command Redis does not know: emitting it is how a failed save or
/// rewrite is reported (see `fail_io`). The name shows in Redis' log.
const FAILED_SAVE_MARKER: &CStr = c"tq-state-save-failed";

const STATE_KEY_PREFIX: &[u8] = b"tq:{";
const STATE_KEY_SUFFIX: &[u8] = b"}:state";

/// Redis frees a value on its lazy-free thread when the effort reported
/// exceeds its threshold, counted in allocations for its own types. An
/// event's per-fan records take a few hundred bytes and a few allocations,
/// so bytes divided by this approximates that count while keeping small
/// events on the cheaper synchronous path.
const BYTES_PER_FREE_STEP: usize = 256;

/// The type, registered by listing it under `data_types` in `redis_module!`.
pub static STATE_TYPE: RedisType = RedisType::new(
    TYPE_NAME,
    codec::ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: Some(free_effort),
        unlink: None,
        copy: None,
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        // copy2 rather than copy: only it tells the database COPY ... DB
        // writes to, which `background::watch` needs.
        copy2: Some(copy2),
        aux_save2: None,
    },
);

/// The module options this type needs. Without `HANDLE_IO_ERRORS` a short
/// read inside `rdb_load` (a truncated RESTORE payload) makes Redis panic
/// instead of letting `RedisModule_IsIOError` report it. Redis replaces the
/// options on each `set_module_options`, so OR this with the others in one
/// call.
pub fn module_options() -> ModuleOptions {
    ModuleOptions::HANDLE_IO_ERRORS
}

/// The event whose state key this is: `E` for `tq:{E}:state`. None for any
/// other key name, including names no event can have (empty, or with a
/// brace inside).
pub fn event_of_state_key(key: &[u8]) -> Option<&[u8]> {
    let event = key
        .strip_prefix(STATE_KEY_PREFIX)?
        .strip_suffix(STATE_KEY_SUFFIX)?;
    let valid = !event.is_empty() && !event.iter().any(|&b| b == b'{' || b == b'}');
    valid.then_some(event)
}

// Redis may run `free` on its lazy-free thread: dropping an `Event` must not
// touch anything the main thread still uses.
const _: () = {
    fn dropped_on_any_thread<T: Send>() {}
    let _ = dropped_on_any_thread::<Event>;
};

/// The event behind a value pointer Redis passes to a callback.
///
/// # Safety
/// `value` is a pointer this type handed to Redis (`Box::into_raw` of an
/// `Event`) that Redis has not freed, and it outlives `'a`.
unsafe fn event_ref<'a>(value: *const c_void) -> &'a Event {
    // SAFETY: per this function's contract.
    unsafe { &*value.cast::<Event>() }
}

/// Tells the background timer about a state that arrived without a TQ
/// command (RDB, replica sync, RESTORE, COPY). A value under any other key
/// name is no event tq can reach, so it is not watched.
fn watch(db: c_int, key: &[u8]) {
    if event_of_state_key(key).is_some() {
        background::watch(db, key);
    }
}

/// A key name as printable ASCII for a log line.
fn printable(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

/// The message as a C string; log lines never carry a NUL.
fn c_message(message: &str) -> CString {
    CString::new(message.replace('\0', "\\0")).unwrap_or_default()
}

/// Logs a warning against the IO handle of a save, load or rewrite.
///
/// # Safety
/// `io` is the valid IO handle of the callback that is running.
unsafe fn warn_io(io: *mut raw::RedisModuleIO, message: &str) {
    let message = c_message(message);
    // SAFETY: a copy of the function pointer set by RedisModule_Init.
    let Some(log) = (unsafe { raw::RedisModule_LogIOError }) else {
        return;
    };
    // SAFETY: a valid handle per this function's contract; "%s" makes the
    // message data, never a format.
    unsafe { log(io, c"warning".as_ptr(), c"%s".as_ptr(), message.as_ptr()) };
}

/// Marks the save or rewrite under way as failed, so Redis keeps its
/// previous file rather than writing one that lacks this value. The module
/// API has no call for that; `RedisModule_EmitAOF` of a command Redis does
/// not know sets the handle's error and writes nothing.
///
/// # Safety
/// `io` is the valid IO handle of a running `rdb_save` or `aof_rewrite`.
unsafe fn fail_io(io: *mut raw::RedisModuleIO) {
    // SAFETY: a valid handle per this function's contract; the empty format
    // takes no arguments.
    unsafe { raw::RedisModule_EmitAOF.unwrap()(io, FAILED_SAVE_MARKER.as_ptr(), c"".as_ptr()) };
}

/// The key name and database of the value being loaded or saved.
///
/// # Safety
/// `io` is the valid IO handle of the callback that is running, and the
/// name is used only during it.
unsafe fn io_key<'a>(io: *mut raw::RedisModuleIO) -> (Option<&'a [u8]>, c_int) {
    // SAFETY: a valid handle per this function's contract; Redis keeps the
    // key name alive for the whole callback.
    unsafe {
        let name = raw::RedisModule_GetKeyNameFromIO.unwrap()(io);
        (
            string_bytes(name),
            raw::RedisModule_GetDbIdFromIO.unwrap()(io),
        )
    }
}

/// A buffer Redis allocated for `RedisModule_LoadStringBuffer`, given back
/// with `RedisModule_Free` on drop.
struct LoadedBuffer {
    data: *mut c_char,
    len: usize,
}

impl LoadedBuffer {
    /// Reads the next string buffer of the value; None on a short read.
    ///
    /// # Safety
    /// `io` is the valid IO handle of a running `rdb_load`.
    unsafe fn read(io: *mut raw::RedisModuleIO) -> Option<LoadedBuffer> {
        let mut len = 0;
        // SAFETY: a valid handle per this function's contract.
        let (data, failed) = unsafe {
            let data = raw::RedisModule_LoadStringBuffer.unwrap()(io, &mut len);
            (data, raw::RedisModule_IsIOError.unwrap()(io) != 0)
        };
        if data.is_null() {
            return None;
        }
        // Owned from here, so a failed read still gives the memory back.
        let buffer = LoadedBuffer { data, len };
        (!failed).then_some(buffer)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: Redis allocated `len` bytes at `data` for us; they live
        // until `drop`, and the borrow ends before it.
        unsafe { slice::from_raw_parts(self.data.cast::<u8>(), self.len) }
    }
}

impl Drop for LoadedBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated by Redis for this buffer, freed only here.
        unsafe { raw::RedisModule_Free.unwrap()(self.data.cast()) };
    }
}

/// Reads one state. Returns why not when the payload is not one this
/// release wrote and can trust.
///
/// # Safety
/// `io` is the valid IO handle of a running `rdb_load`.
unsafe fn load(io: *mut raw::RedisModuleIO, encver: c_int) -> Result<Box<Event>, String> {
    if !(codec::OLDEST_VERSION..=codec::ENCODING_VERSION).contains(&encver) {
        return Err(format!(
            "encoding version {encver}, this tq reads versions {} to {}",
            codec::OLDEST_VERSION,
            codec::ENCODING_VERSION
        ));
    }
    // SAFETY: a valid handle per this function's contract.
    let buffer = unsafe { LoadedBuffer::read(io) }.ok_or("short read")?;
    let mut event = codec::decode_version(buffer.bytes(), encver).map_err(|e| e.to_string())?;
    drop(buffer);
    background::note_loaded_state(&mut event);
    // SAFETY: as above; the name is used before this callback returns.
    let (name, db) = unsafe { io_key(io) };
    if let Some(name) = name {
        watch(db, name);
    }
    Ok(Box::new(event))
}

/// `rdb_load`: RDB files, replica full syncs and RESTORE payloads. NULL
/// tells Redis the value is refused (RESTORE answers an error).
unsafe extern "C" fn rdb_load(io: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    // SAFETY: Redis passes a valid handle for the duration of the call.
    let loaded = catch_unwind(AssertUnwindSafe(|| unsafe { load(io, encver) }));
    let reason = match loaded {
        Ok(Ok(event)) => {
            metrics::passes_stored(event.buyers.passes() as i64);
            return Box::into_raw(event).cast();
        }
        Ok(Err(reason)) => reason,
        Err(_) => "the decoder panicked".to_string(),
    };
    let key = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as above; the name is copied before the call returns.
        let (name, _) = unsafe { io_key(io) };
        name.map(printable).unwrap_or_default()
    }))
    .unwrap_or_default();
    // SAFETY: as above.
    unsafe {
        warn_io(
            io,
            &format!("refused a {TYPE_NAME} value for key '{key}': {reason}"),
        )
    };
    ptr::null_mut()
}

/// `rdb_save`: the whole state as one string buffer.
unsafe extern "C" fn rdb_save(io: *mut raw::RedisModuleIO, value: *mut c_void) {
    let saved = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Redis passes a live value of this type.
        let bytes = codec::encode(unsafe { event_ref(value) });
        // SAFETY: a valid handle; Redis copies the bytes during the call.
        unsafe {
            raw::RedisModule_SaveStringBuffer.unwrap()(io, bytes.as_ptr().cast(), bytes.len());
        }
    }));
    if saved.is_err() {
        // SAFETY: Redis passes a valid handle for the duration of the call.
        unsafe {
            warn_io(io, "encoding a state panicked; the save fails");
            fail_io(io);
        }
    }
}

/// `aof_rewrite`: one command that rebuilds the state,
/// `TQ.APPLY <event> 0 STATE <encoded state> <encoding version>`
/// (binary-safe arguments).
unsafe extern "C" fn aof_rewrite(
    io: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    let written = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        // SAFETY: Redis passes the key's name, alive during the call.
        let name = unsafe { string_bytes(key) }.ok_or("no key name")?;
        let event = event_of_state_key(name).ok_or_else(|| {
            format!(
                "key '{}' holds a {TYPE_NAME} value but is not named tq:{{E}}:state, \
                 so no command can rebuild it; rename or delete it",
                printable(name)
            )
        })?;
        // SAFETY: Redis passes a live value of this type.
        let state = codec::encode(unsafe { event_ref(value) });
        // SAFETY: a valid handle; the format's letters match the arguments
        // (b: pointer and size_t length, l: long long, c: C string).
        unsafe {
            raw::RedisModule_EmitAOF.unwrap()(
                io,
                APPLY_COMMAND.as_ptr(),
                c"blcbl".as_ptr(),
                event.as_ptr().cast::<c_char>(),
                event.len(),
                0 as c_longlong,
                c"STATE".as_ptr(),
                state.as_ptr().cast::<c_char>(),
                state.len(),
                c_longlong::from(codec::ENCODING_VERSION),
            );
        }
        Ok(())
    }));
    let reason = match written {
        Ok(Ok(())) => return,
        Ok(Err(reason)) => reason,
        Err(_) => "encoding a state panicked".to_string(),
    };
    // SAFETY: Redis passes a valid handle for the duration of the call.
    unsafe {
        warn_io(io, &format!("AOF rewrite fails: {reason}"));
        fail_io(io);
    }
}

/// `digest`: DEBUG DIGEST and DEBUG DIGEST-VALUE. Only what the sequence
/// holds when it ends counts, hence `DigestEndSequence`.
unsafe extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    let done = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Redis passes a live value of this type.
        let digest = unsafe { event_ref(value) }.digest();
        // SAFETY: Redis passes a valid digest context for the call.
        unsafe {
            raw::RedisModule_DigestAddLongLong.unwrap()(md, digest.cast_signed());
            raw::RedisModule_DigestEndSequence.unwrap()(md);
        }
    }));
    if done.is_err() {
        super::log::warning("computing a state's digest panicked");
    }
}

/// `mem_usage`: MEMORY USAGE.
unsafe extern "C" fn mem_usage(value: *const c_void) -> usize {
    // SAFETY: Redis passes a live value of this type.
    let extra = catch_unwind(AssertUnwindSafe(|| {
        unsafe { event_ref(value) }.memory_usage()
    }));
    mem::size_of::<Event>() + extra.unwrap_or(0)
}

/// `free_effort`: grows with the event's size, so Redis frees big events on
/// its lazy-free thread (UNLINK, FLUSHALL ASYNC, lazyfree-* settings).
unsafe extern "C" fn free_effort(_key: *mut raw::RedisModuleString, value: *const c_void) -> usize {
    // SAFETY: Redis passes a live value of this type.
    let bytes = catch_unwind(AssertUnwindSafe(|| {
        unsafe { event_ref(value) }.memory_usage()
    }));
    // Never 0: Redis reads 0 as "always in the background".
    1 + bytes.unwrap_or(0) / BYTES_PER_FREE_STEP
}

/// `copy2`: COPY (to another key, possibly in another database).
unsafe extern "C" fn copy2(
    ctx: *mut raw::RedisModuleKeyOptCtx,
    value: *const c_void,
) -> *mut c_void {
    let copied = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Redis passes a live value of this type.
        let copy = Box::new(unsafe { event_ref(value) }.clone());
        // SAFETY: Redis passes a valid context for the call, whose target
        // key name it keeps alive until the call returns.
        let (name, db) = unsafe {
            let name = raw::RedisModule_GetToKeyNameFromOptCtx.unwrap()(ctx);
            (
                string_bytes(name),
                raw::RedisModule_GetToDbIdFromOptCtx.unwrap()(ctx),
            )
        };
        if let Some(name) = name {
            watch(db, name);
        }
        copy
    }));
    match copied {
        Ok(copy) => {
            metrics::passes_stored(copy.buyers.passes() as i64);
            Box::into_raw(copy).cast()
        }
        Err(_) => {
            super::log::warning("copying a state panicked; COPY answers an error");
            ptr::null_mut()
        }
    }
}

/// `free`: the value's last owner let go (possibly on the lazy-free thread).
unsafe extern "C" fn free(value: *mut c_void) {
    if value.is_null() {
        return;
    }
    // SAFETY: Redis hands back the pointer `Box::into_raw` gave it, once.
    let event = unsafe { Box::from_raw(value.cast::<Event>()) };
    metrics::passes_stored(-(event.buyers.passes() as i64));
    // A panic while dropping leaks the rest rather than unwinding into Redis.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(event)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_of_state_key_strips_prefix_and_suffix() {
        assert_eq!(event_of_state_key(b"tq:{sale}:state"), Some(&b"sale"[..]));
        assert_eq!(
            event_of_state_key(b"tq:{a\0b \xff}:state"),
            Some(&b"a\0b \xff"[..])
        );
        assert_eq!(event_of_state_key(b"tq:{s}:state"), Some(&b"s"[..]));
    }

    #[test]
    fn event_of_state_key_refuses_other_names() {
        for key in [
            &b"tq:{sale}:queue"[..],
            b"tq:{}:state",
            b"tq:{sale}:state ",
            b"tq:sale:state",
            b"tq:{sale:state",
            b"tq:{sa{le}:state",
            b"tq:{sa}le}:state",
            b"tq:{}:state}:state",
            b"TQ:{sale}:state",
            b"}:state",
            b"tq:{",
            b"",
        ] {
            assert_eq!(event_of_state_key(key), None, "{}", printable(key));
        }
    }

    #[test]
    fn type_name_is_nine_characters() {
        assert_eq!(TYPE_NAME.len(), 9);
        assert!(TYPE_NAME
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn messages_never_carry_a_nul() {
        assert_eq!(c_message("a\0b").as_bytes(), b"a\\0b");
    }
}
