//! What `COMMAND INFO` and `COMMAND DOCS` say about each TQ command: arity,
//! the key spec (the event is the only key, argument 1), summary,
//! complexity and arguments, set with RM_SetCommandInfo (Redis 7.0+).

use std::ffi::{c_char, c_int, CString};

use redis_module::{raw, Context};

use super::commands::Command;

pub enum Kind {
    Key,
    Text,
    Integer,
    /// One of these keywords, alone.
    Oneof(&'static [&'static str]),
}

pub struct Arg {
    name: &'static str,
    kind: Kind,
    /// Keyword before the value (`DEDUPE id`).
    token: Option<&'static str>,
    optional: bool,
}

pub const fn arg(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
    }
}

pub const fn option(token: &'static str, name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: Some(token),
        optional: true,
    }
}

pub const EVENT: Arg = arg("event", Kind::Key);

/// What COMMAND INFO / COMMAND DOCS say about a command.
pub struct Doc {
    pub summary: &'static str,
    pub complexity: &'static str,
    pub arity: c_int,
    /// REDISMODULE_CMD_KEY_* flags of the event key.
    pub key_flags: u64,
    pub args: &'static [Arg],
}

pub const RO: u64 = raw::REDISMODULE_CMD_KEY_RO as u64;
pub const RW: u64 = raw::REDISMODULE_CMD_KEY_RW as u64;
pub const ACCESS: u64 = raw::REDISMODULE_CMD_KEY_ACCESS as u64;
pub const UPDATE: u64 = raw::REDISMODULE_CMD_KEY_UPDATE as u64;
pub const INSERT: u64 = raw::REDISMODULE_CMD_KEY_INSERT as u64;
pub const DELETE: u64 = raw::REDISMODULE_CMD_KEY_DELETE as u64;

impl Arg {
    pub const fn optional(mut self) -> Arg {
        self.optional = true;
        self
    }

    pub const fn required(mut self) -> Arg {
        self.optional = false;
        self
    }
}

/// A C string that lives as long as the module (command info is set once).
fn leak(text: &str) -> *const c_char {
    CString::new(text).unwrap().into_raw()
}

fn raw_arg(a: &Arg) -> raw::RedisModuleCommandArg {
    // SAFETY: the struct is plain data; all-zero is its "absent" value.
    let mut out: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
    out.name = leak(a.name);
    out.type_ = match a.kind {
        Kind::Key => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
        Kind::Text => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
        Kind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
        Kind::Oneof(_) => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF,
    };
    if let Kind::Oneof(words) = a.kind {
        let mut subargs: Vec<raw::RedisModuleCommandArg> = words
            .iter()
            .map(|&word| {
                // SAFETY: as above.
                let mut sub: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
                sub.name = leak(&word.to_ascii_lowercase());
                sub.type_ = raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN;
                sub.token = leak(word);
                sub.key_spec_index = -1;
                sub
            })
            .collect();
        // SAFETY: as above; the array ends with a zeroed entry.
        subargs.push(unsafe { std::mem::zeroed() });
        out.subargs = subargs.leak().as_mut_ptr();
    }
    out.key_spec_index = if matches!(a.kind, Kind::Key) { 0 } else { -1 };
    if let Some(token) = a.token {
        out.token = leak(token);
    }
    if a.optional {
        out.flags = raw::REDISMODULE_CMD_ARG_OPTIONAL as c_int;
    }
    out
}

/// Sets arity, key spec and docs of a created command. Failure is logged,
/// not fatal: the command still works with its legacy (1, 1, 1) key triple.
pub fn describe(ctx: &Context, command: &Command) {
    let d = &command.doc;
    let name = CString::new(command.name).unwrap();
    // SAFETY: called at load time with the module's context; every pointer
    // handed over is leaked, so it outlives the call; arrays end with a
    // zeroed entry as the API requires.
    unsafe {
        let registered = raw::RedisModule_GetCommand.unwrap()(ctx.ctx, name.as_ptr());
        if registered.is_null() {
            return;
        }
        let version = Box::leak(Box::new(raw::RedisModuleCommandInfoVersion {
            version: 1,
            sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
            sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
            sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
        }));
        let mut spec: raw::RedisModuleCommandKeySpec = std::mem::zeroed();
        spec.flags = d.key_flags;
        spec.begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
        spec.bs.index.pos = 1;
        spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
        spec.fk.range.lastkey = 0;
        spec.fk.range.keystep = 1;
        spec.fk.range.limit = 0;
        let specs = Box::leak(Box::new([spec, std::mem::zeroed()]));
        let mut args: Vec<raw::RedisModuleCommandArg> = d.args.iter().map(raw_arg).collect();
        args.push(std::mem::zeroed());
        let args = args.leak();
        let mut info: raw::RedisModuleCommandInfo = std::mem::zeroed();
        info.version = version;
        info.summary = leak(d.summary);
        info.complexity = leak(d.complexity);
        info.since = leak("1.0.0");
        info.arity = d.arity;
        info.key_specs = specs.as_mut_ptr();
        info.args = args.as_mut_ptr();
        if raw::RedisModule_SetCommandInfo.unwrap()(registered, &info)
            != raw::REDISMODULE_OK as c_int
        {
            ctx.log_warning(&format!(
                "tq: could not set command info of {}",
                command.name
            ));
        }
    }
}
