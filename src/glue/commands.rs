//! The command table and the one entry point every TQ command goes
//! through: argument decoding, panic containment, the reply, and metrics.

use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use redis_module::{raw, Context, RedisString};

use super::reply::{send, send_error, Reply};
use super::{event_commands, queue_commands, seat_commands};
use crate::domain::error::{TqError, TqResult};

type Handler = fn(&Context, &[&[u8]]) -> TqResult<Reply>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandId {
    Enqueue,
    Position,
    Enter,
    Leave,
    User,
    Trim,
    Inventory,
    Hold,
    Release,
    Confirm,
    Seat,
    Config,
    Stats,
}

pub const COMMANDS: [CommandId; 13] = [
    CommandId::Enqueue,
    CommandId::Position,
    CommandId::Enter,
    CommandId::Leave,
    CommandId::User,
    CommandId::Trim,
    CommandId::Inventory,
    CommandId::Hold,
    CommandId::Release,
    CommandId::Confirm,
    CommandId::Seat,
    CommandId::Config,
    CommandId::Stats,
];

impl CommandId {
    pub fn name(self) -> &'static str {
        match self {
            CommandId::Enqueue => "tq.enqueue",
            CommandId::Position => "tq.position",
            CommandId::Enter => "tq.enter",
            CommandId::Leave => "tq.leave",
            CommandId::User => "tq.user",
            CommandId::Trim => "tq.trim",
            CommandId::Inventory => "tq.inventory",
            CommandId::Hold => "tq.hold",
            CommandId::Release => "tq.release",
            CommandId::Confirm => "tq.confirm",
            CommandId::Seat => "tq.seat",
            CommandId::Config => "tq.config",
            CommandId::Stats => "tq.stats",
        }
    }

    /// The command's name in `INFO tq` fields (`enqueue_calls`, ...).
    pub fn metric_name(self) -> &'static str {
        &self.name()[3..]
    }

    /// Redis command flags. Commands that can grow memory refuse under
    /// OOM; commands that only shrink it or record a heartbeat do not.
    pub fn flags(self) -> &'static str {
        match self {
            CommandId::Enqueue | CommandId::Hold | CommandId::Config | CommandId::Inventory => {
                "write deny-oom"
            }
            CommandId::Position
            | CommandId::Enter
            | CommandId::Leave
            | CommandId::Trim
            | CommandId::Release
            | CommandId::Confirm => "write",
            CommandId::User => "readonly",
            CommandId::Seat | CommandId::Stats => "readonly fast",
        }
    }

    fn handler(self) -> Handler {
        match self {
            CommandId::Enqueue => queue_commands::enqueue,
            CommandId::Position => queue_commands::position,
            CommandId::Enter => queue_commands::enter,
            CommandId::Leave => queue_commands::leave,
            CommandId::User => queue_commands::user,
            CommandId::Trim => queue_commands::trim,
            CommandId::Inventory => seat_commands::inventory,
            CommandId::Hold => seat_commands::hold,
            CommandId::Release => seat_commands::release,
            CommandId::Confirm => seat_commands::confirm,
            CommandId::Seat => seat_commands::seat,
            CommandId::Config => event_commands::config,
            CommandId::Stats => event_commands::stats,
        }
    }
}

/// Arguments of a call kept on the stack: every valid TQ call fits; a
/// longer one (only ever an invalid one) gets a vector.
const INLINE_ARGS: usize = 12;

/// Runs one command: no panic escapes into Redis, every outcome is a reply
/// and is counted.
fn run(
    id: CommandId,
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    let started = Instant::now();
    let context = Context::new(ctx);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Redis passes `argc` valid strings that outlive the call.
        let arg = |i: usize| unsafe { RedisString::string_as_slice(*argv.add(i)) };
        let count = (argc.max(1) - 1) as usize;
        if count <= INLINE_ARGS {
            // Filled in place: SmallVec's collect costs ~300 instructions
            // more per command here (measured with bench/profile.sh).
            let mut args: [&[u8]; INLINE_ARGS] = [&[]; INLINE_ARGS];
            for (i, slot) in args[..count].iter_mut().enumerate() {
                *slot = arg(i + 1);
            }
            id.handler()(&context, &args[..count])
        } else {
            let args: Vec<&[u8]> = (1..=count).map(arg).collect();
            id.handler()(&context, &args)
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
    super::metrics::record_call(id, error_code, started.elapsed().as_nanos() as u64);
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

macro_rules! entry_points {
    ($($fn_name:ident => $id:ident),* $(,)?) => {
        $(
            extern "C" fn $fn_name(
                ctx: *mut raw::RedisModuleCtx,
                argv: *mut *mut raw::RedisModuleString,
                argc: c_int,
            ) -> c_int {
                run(CommandId::$id, ctx, argv, argc)
            }
        )*

        fn entry_point(id: CommandId) -> raw::RedisModuleCmdFunc {
            match id {
                $(CommandId::$id => Some($fn_name),)*
            }
        }
    };
}

entry_points! {
    enqueue_entry => Enqueue,
    position_entry => Position,
    enter_entry => Enter,
    leave_entry => Leave,
    user_entry => User,
    trim_entry => Trim,
    inventory_entry => Inventory,
    hold_entry => Hold,
    release_entry => Release,
    confirm_entry => Confirm,
    seat_entry => Seat,
    config_entry => Config,
    stats_entry => Stats,
}

/// Creates every TQ command. The event is argument 1 and the only key, so
/// cluster clients route by it and `COMMAND GETKEYS` returns it.
pub fn register(ctx: &Context) -> Result<(), String> {
    for id in COMMANDS {
        let name = std::ffi::CString::new(id.name()).unwrap();
        let flags = std::ffi::CString::new(id.flags()).unwrap();
        // SAFETY: called from RedisModule_OnLoad with its context.
        let status = unsafe {
            raw::RedisModule_CreateCommand.unwrap()(
                ctx.ctx,
                name.as_ptr(),
                entry_point(id),
                flags.as_ptr(),
                1,
                1,
                1,
            )
        };
        if status != raw::REDISMODULE_OK as c_int {
            return Err(format!("could not create {}", id.name()));
        }
        super::command_info::describe(ctx, id);
    }
    Ok(())
}

/// The current time, as Redis sees it.
pub fn now_ms() -> u64 {
    // SAFETY: set by RedisModule_Init; takes no arguments.
    unsafe { raw::RedisModule_Milliseconds.unwrap()() as u64 }
}
