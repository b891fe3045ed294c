//! Replies, written with the raw reply API so that maps keep the field
//! order of the contract (a RESP3 map; a flat array under RESP2).

use redis_module::{raw, Context};

use crate::domain::entry_id::EntryId;

pub enum Reply {
    Int(i64),
    Bulk(Vec<u8>),
    /// A stream entry id, as `ms-seq` text.
    Id(EntryId),
    /// A status reply (`+OK`).
    Simple(&'static std::ffi::CStr),
    /// A fixed word, sent as a bulk string.
    Word(&'static str),
    Null,
    Double(f64),
    Array(Vec<Reply>),
    Map(Vec<(&'static str, Reply)>),
}

impl Reply {
    pub fn bool(b: bool) -> Reply {
        Reply::Int(b as i64)
    }

    pub fn uint(n: u64) -> Reply {
        Reply::Int(n.min(i64::MAX as u64) as i64)
    }

    pub fn ok() -> Reply {
        Reply::Simple(c"OK")
    }
}

/// Writes `reply` to the client of `ctx`.
pub fn send(ctx: &Context, reply: &Reply) {
    send_raw(ctx.ctx, reply)
}

fn send_raw(ctx: *mut raw::RedisModuleCtx, reply: &Reply) {
    // SAFETY: `ctx` is the live context of the command being executed and
    // the reply functions are set by RedisModule_Init.
    unsafe {
        match reply {
            Reply::Int(n) => {
                raw::RedisModule_ReplyWithLongLong.unwrap()(ctx, *n);
            }
            Reply::Bulk(bytes) => {
                bulk(ctx, bytes.as_ref());
            }
            Reply::Id(id) => {
                let text = id.text();
                bulk(ctx, text.as_ref());
            }
            Reply::Simple(text) => {
                raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx, text.as_ptr());
            }
            Reply::Word(word) => {
                bulk(ctx, word.as_ref());
            }
            Reply::Null => {
                raw::RedisModule_ReplyWithNull.unwrap()(ctx);
            }
            Reply::Double(d) => {
                raw::RedisModule_ReplyWithDouble.unwrap()(ctx, *d);
            }
            Reply::Array(items) => {
                raw::RedisModule_ReplyWithArray.unwrap()(ctx, items.len() as _);
                for item in items {
                    send_raw(ctx, item);
                }
            }
            Reply::Map(fields) => {
                raw::RedisModule_ReplyWithMap.unwrap()(ctx, fields.len() as _);
                for (name, value) in fields {
                    bulk(ctx, name.as_ref());
                    send_raw(ctx, value);
                }
            }
        }
    }
}

/// A bulk string.
///
/// # Safety
/// `ctx` is the live context of the command being executed.
unsafe fn bulk(ctx: *mut raw::RedisModuleCtx, bytes: &[u8]) {
    // SAFETY: as the caller promises; the buffer is copied by Redis.
    unsafe {
        raw::RedisModule_ReplyWithStringBuffer.unwrap()(ctx, bytes.as_ptr().cast(), bytes.len())
    };
}

/// Sends `-<text>`; `text` starts with the error code.
pub fn send_error(ctx: &Context, text: &str) {
    // Error replies are one line: keep them printable ASCII.
    let clean: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let c = std::ffi::CString::new(clean).unwrap_or_default();
    // SAFETY: as in `send`.
    unsafe {
        raw::RedisModule_ReplyWithError.unwrap()(ctx.ctx, c.as_ptr());
    }
}
