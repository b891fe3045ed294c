//! The command table and the one entry point every TQ command goes
//! through: argument decoding, the command's `now`, panic containment,
//! the reply and metrics.
//!
//! A command is one `Command` value, defined beside its handler (name,
//! flags, docs, handler), and one row in `COMMANDS`.

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use redis_module::{raw, Context, ContextFlags, RedisString};

use super::command_info::Doc;
use super::reply::{send, send_error, Reply};
use super::{apply, event_commands, pass_commands, queue_commands, seat_commands};
use crate::domain::error::{TqError, TqResult};

/// One TQ command.
pub struct Command {
    /// Lower case, as registered (`tq.enqueue`).
    pub name: &'static str,
    /// Redis command flags.
    pub flags: &'static str,
    pub doc: Doc,
    pub handler: fn(&Call) -> TqResult<Reply>,
}

impl Command {
    /// The command's name in `INFO tq` fields (`enqueue_calls`, ...) and in
    /// replication records (`ENQUEUE`).
    pub fn verb(&self) -> &'static str {
        &self.name[3..]
    }
}

pub const COMMANDS: [&Command; 16] = [
    &queue_commands::ENQUEUE,
    &queue_commands::POSITION,
    &queue_commands::ENTER,
    &queue_commands::LEAVE,
    &queue_commands::USER,
    &queue_commands::TRIM,
    &pass_commands::PASS,
    &seat_commands::INVENTORY,
    &seat_commands::HOLD,
    &seat_commands::RELEASE,
    &seat_commands::CONFIRM,
    &seat_commands::EXTEND,
    &seat_commands::SEAT,
    &event_commands::CONFIG,
    &event_commands::STATS,
    &apply::APPLY,
];

/// Where a call comes from, which decides how its effects reach replicas
/// and the AOF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client: the command's record is built and replicated.
    Client,
    /// A `TQ.APPLY` record (from the master or the AOF): applied as
    /// recorded and passed on verbatim.
    Record,
}

/// One call of a command.
pub struct Call<'a> {
    pub ctx: &'a Context,
    /// The arguments after the command name.
    pub args: &'a [&'a [u8]],
    /// The same arguments as Redis strings, passed on in the record.
    pub strings: &'a [*mut raw::RedisModuleString],
    /// The one time every rule of this call sees (unix ms).
    pub now_ms: u64,
    pub origin: Origin,
    /// What the record of this call is called (`enqueue`, ...; `advance`
    /// for the timer's work).
    pub verb: &'static str,
    /// Set by a `TQ.APPLY` record: the event did not exist and is created
    /// with these settings (the master's defaults when it was created).
    pub created_with: Option<crate::domain::settings::Settings>,
    /// Set by a `TQ.APPLY` record: the master gave lapsed fans a full
    /// period after a restart before this command.
    pub resumed: bool,
    /// Set by a `TQ.APPLY` record: the random draws the master's rule took.
    pub draws: &'a [[u8; 16]],
}

/// Arguments of a call kept on the stack: every valid TQ call fits; a
/// longer one gets a vector.
const INLINE_ARGS: usize = 16;

/// Runs one command: no panic escapes into Redis, every outcome is a reply
/// and is counted.
fn run(
    index: usize,
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    let started = Instant::now();
    let context = Context::new(ctx);
    let command = COMMANDS[index];
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let count = (argc.max(1) - 1) as usize;
        // SAFETY: Redis passes `argc` valid strings that outlive the call.
        let strings = unsafe { std::slice::from_raw_parts(argv.add(1), count) };
        // Each string is live for the whole call, which no slice outlives.
        let arg = |s: &*mut raw::RedisModuleString| RedisString::string_as_slice(*s);
        let call = |args: &[&[u8]]| {
            (command.handler)(&Call {
                ctx: &context,
                args,
                strings,
                now_ms: command_now_ms(&context),
                origin: Origin::Client,
                verb: command.verb(),
                created_with: None,
                resumed: false,
                draws: &[],
            })
        };
        if count <= INLINE_ARGS {
            let mut args: [&[u8]; INLINE_ARGS] = [&[]; INLINE_ARGS];
            for (slot, s) in args.iter_mut().zip(strings) {
                *slot = arg(s);
            }
            call(&args[..count])
        } else {
            let args: Vec<&[u8]> = strings.iter().map(arg).collect();
            call(&args)
        }
    }))
    .unwrap_or_else(|panic| Err(TqError::Internal(panic_text(&panic))));
    let error_code = match &outcome {
        Ok(reply) => {
            send(&context, reply);
            None
        }
        Err(error) => {
            send_error(&context, &error.to_string());
            Some(error.code())
        }
    };
    super::metrics::record_call(index, error_code, started.elapsed().as_nanos() as u64);
    raw::REDISMODULE_OK as c_int
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("command panicked: {text}")
}

/// The time of the command being run: Redis' cached command time, which
/// stays the same through a MULTI/EXEC or a script, as key expiry does.
pub fn command_now_ms(ctx: &Context) -> u64 {
    // SAFETY: filled in by RedisModule_Init where the server has it.
    if let Some(cached_us) = unsafe { raw::RedisModule_CachedMicroseconds } {
        // SAFETY: takes no arguments.
        return (unsafe { cached_us() } / 1000).max(0) as u64;
    }
    // Redis 7.0 does not give modules that time, but INFO shows it. It is
    // only needed where it differs from the clock: inside a transaction or
    // a script, where it stays put while the clock moves on.
    let flags = ctx.get_flags();
    if flags.intersects(ContextFlags::MULTI | ContextFlags::LUA) {
        if let Some(us) = info_server_time_us(ctx) {
            return us / 1000;
        }
    }
    clock_ms()
}

/// `server_time_usec` of INFO server: the cached command time.
fn info_server_time_us(ctx: &Context) -> Option<u64> {
    // SAFETY: valid context; the info data is freed before returning and
    // the field name is a C string.
    unsafe {
        let info = raw::RedisModule_GetServerInfo?(ctx.ctx, c"server".as_ptr());
        if info.is_null() {
            return None;
        }
        let mut err: std::ffi::c_int = 0;
        let us = raw::RedisModule_ServerInfoGetFieldSigned?(
            info,
            c"server_time_usec".as_ptr(),
            &mut err,
        );
        raw::RedisModule_FreeServerInfo?(ctx.ctx, info);
        (err == 0 && us > 0).then_some(us as u64)
    }
}

/// The clock, for work outside any command (the background timer).
pub fn clock_ms() -> u64 {
    // SAFETY: set by RedisModule_Init; takes no arguments.
    (unsafe { raw::RedisModule_Milliseconds.unwrap()() }).max(0) as u64
}

macro_rules! entry_points {
    ($($index:literal),* $(,)?) => {
        /// One C entry point per row of `COMMANDS` (Redis passes no data
        /// to a command callback, so each row needs its own).
        const ENTRY_POINTS: [raw::RedisModuleCmdFunc; COMMANDS.len()] = [$({
            extern "C" fn entry(
                ctx: *mut raw::RedisModuleCtx,
                argv: *mut *mut raw::RedisModuleString,
                argc: c_int,
            ) -> c_int {
                run($index, ctx, argv, argc)
            }
            Some(entry)
        }),*];
    };
}

entry_points!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

/// Creates every TQ command. The event is argument 1 and the only key, so
/// cluster clients route by it and `COMMAND GETKEYS` returns it.
pub fn register(ctx: &Context) -> Result<(), String> {
    for (command, entry) in COMMANDS.iter().zip(ENTRY_POINTS) {
        let name = std::ffi::CString::new(command.name).unwrap();
        let flags = std::ffi::CString::new(command.flags).unwrap();
        // SAFETY: called from RedisModule_OnLoad with its context.
        let status = unsafe {
            raw::RedisModule_CreateCommand.unwrap()(
                ctx.ctx,
                name.as_ptr(),
                entry,
                flags.as_ptr(),
                1,
                1,
                1,
            )
        };
        if status != raw::REDISMODULE_OK as c_int {
            return Err(format!("could not create {}", command.name));
        }
        super::command_info::describe(ctx, command);
    }
    Ok(())
}

/// The row of `COMMANDS` whose verb is `verb` (any case).
pub fn by_verb(verb: &[u8]) -> Option<&'static Command> {
    COMMANDS
        .into_iter()
        .find(|c| c.verb().as_bytes().eq_ignore_ascii_case(verb))
}
