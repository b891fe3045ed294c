//! What `COMMAND INFO` and `COMMAND DOCS` say about each TQ command: arity,
//! the key spec (the event is the only key, argument 1), summary,
//! complexity and arguments, set with RM_SetCommandInfo (Redis 7.0+).

use std::ffi::{c_char, c_int, CString};

use redis_module::{raw, Context};

use super::commands::CommandId;

enum Kind {
    Key,
    Text,
    Integer,
}

struct Arg {
    name: &'static str,
    kind: Kind,
    /// Keyword before the value (`DEDUPE id`).
    token: Option<&'static str>,
    optional: bool,
}

const fn arg(name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: None,
        optional: false,
    }
}

const fn option(token: &'static str, name: &'static str, kind: Kind) -> Arg {
    Arg {
        name,
        kind,
        token: Some(token),
        optional: true,
    }
}

const EVENT: Arg = arg("event", Kind::Key);

struct Doc {
    summary: &'static str,
    complexity: &'static str,
    arity: c_int,
    /// REDISMODULE_CMD_KEY_* flags of the event key.
    key_flags: u64,
    args: Vec<Arg>,
}

const RO: u64 = raw::REDISMODULE_CMD_KEY_RO as u64;
const RW: u64 = raw::REDISMODULE_CMD_KEY_RW as u64;
const ACCESS: u64 = raw::REDISMODULE_CMD_KEY_ACCESS as u64;
const UPDATE: u64 = raw::REDISMODULE_CMD_KEY_UPDATE as u64;
const INSERT: u64 = raw::REDISMODULE_CMD_KEY_INSERT as u64;
const DELETE: u64 = raw::REDISMODULE_CMD_KEY_DELETE as u64;

fn doc(id: CommandId) -> Doc {
    use Kind::*;
    let (summary, complexity, arity, key_flags, args) = match id {
        CommandId::Enqueue => (
            "Joins a token to the event's waiting queue, atomically with the duplicate check",
            "O(log N) with N the number of waiting entries",
            -4,
            RW | INSERT | ACCESS,
            vec![
                EVENT,
                arg("user", Text),
                arg("token", Text),
                option("DEDUPE", "id", Text),
                option("TTL", "seconds", Integer),
            ],
        ),
        CommandId::Position => (
            "Returns a waiting token's exact position and readiness; records its heartbeat",
            "O(log N)",
            3,
            RW | UPDATE | ACCESS,
            vec![EVENT, arg("token", Text)],
        ),
        CommandId::Enter => (
            "Admits a waiting token if the token bucket allows its position",
            "O(log N)",
            3,
            RW | DELETE | ACCESS,
            vec![EVENT, arg("token", Text)],
        ),
        CommandId::Leave => (
            "Removes a waiting token from the queue",
            "O(log N)",
            3,
            RW | DELETE,
            vec![EVENT, arg("token", Text)],
        ),
        CommandId::User => (
            "Lists a user's waiting entries in FIFO order with their positions",
            "O(M log N) with M the user's entries",
            3,
            RO | ACCESS,
            vec![EVENT, arg("user", Text)],
        ),
        CommandId::Trim => (
            "Removes waiting entries that joined more than the given seconds ago",
            "O(M log N) with M the entries removed",
            4,
            RW | DELETE,
            vec![EVENT, option("MAXAGE", "seconds", Integer).required()],
        ),
        CommandId::Inventory => (
            "Returns or sets the number of seats still available",
            "O(1)",
            -2,
            RW | ACCESS | UPDATE,
            vec![EVENT, option("SET", "n", Integer)],
        ),
        CommandId::Hold => (
            "Holds an available seat for a user until its TTL, taking one from inventory",
            "O(log S) with S the number of held seats",
            -4,
            RW | UPDATE | ACCESS,
            vec![
                EVENT,
                arg("seat", Text),
                arg("user", Text),
                option("TTL", "seconds", Integer),
            ],
        ),
        CommandId::Release => (
            "Gives a held seat back to inventory",
            "O(log S)",
            -3,
            RW | UPDATE | ACCESS,
            vec![EVENT, arg("seat", Text), arg("user", Text).optional()],
        ),
        CommandId::Confirm => (
            "Turns a user's hold into a sale",
            "O(log S)",
            4,
            RW | UPDATE | ACCESS,
            vec![EVENT, arg("seat", Text), arg("user", Text)],
        ),
        CommandId::Seat => (
            "Returns a seat's state, holder and remaining hold time",
            "O(1)",
            3,
            RO | ACCESS,
            vec![EVENT, arg("seat", Text)],
        ),
        CommandId::Config => (
            "Returns or sets the event's rate, burst, heartbeat, hold-ttl and dedupe-ttl",
            "O(1)",
            -2,
            RW | ACCESS | UPDATE,
            vec![
                EVENT,
                option("RATE", "per_second", Integer),
                option("BURST", "n", Integer),
                option("HEARTBEAT", "seconds", Integer),
                option("HOLD-TTL", "seconds", Integer),
                option("DEDUPE-TTL", "seconds", Integer),
            ],
        ),
        CommandId::Stats => (
            "Returns the event's queue, admission and seat figures",
            "O(log N)",
            2,
            RO | ACCESS,
            vec![EVENT],
        ),
    };
    Doc {
        summary,
        complexity,
        arity,
        key_flags,
        args,
    }
}

impl Arg {
    const fn optional(mut self) -> Arg {
        self.optional = true;
        self
    }

    const fn required(mut self) -> Arg {
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
    };
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
pub fn describe(ctx: &Context, id: CommandId) {
    let d = doc(id);
    let name = CString::new(id.name()).unwrap();
    // SAFETY: called at load time with the module's context; every pointer
    // handed over is leaked, so it outlives the call; arrays end with a
    // zeroed entry as the API requires.
    unsafe {
        let command = raw::RedisModule_GetCommand.unwrap()(ctx.ctx, name.as_ptr());
        if command.is_null() {
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
        if raw::RedisModule_SetCommandInfo.unwrap()(command, &info) != raw::REDISMODULE_OK as c_int
        {
            ctx.log_warning(&format!("tq: could not set command info of {}", id.name()));
        }
    }
}
