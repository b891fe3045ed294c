//! The Redis side: the command table and entry point (`commands`), one
//! file per command family, opening an event's keys and carrying a
//! command to replicas (`event_keys`, `apply`), the module data type
//! (`state_type`), background work (`background`), metrics and configs.
//! The rules themselves live in `crate::domain`.

pub mod apply;
pub mod background;
pub mod command_info;
pub mod commands;
pub mod config;
pub mod event_commands;
pub mod event_keys;
pub mod keys;
pub mod legacy;
pub mod log;
pub mod metrics;
pub mod pass_commands;
pub mod queue_commands;
pub mod reply;
pub mod seat_commands;
pub mod state_type;

use redis_module::{raw::ModuleOptions, Context, RedisString, Status};

/// Module set-up after configs are loaded.
pub fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    if let Err(e) = config::check_loaded() {
        log::warning(&format!("tq: {e}"));
        return Status::Err;
    }
    if let Err(e) = commands::register(ctx) {
        log::warning(&format!("tq: {e}"));
        return Status::Err;
    }
    // Keys are signalled as modified by tq when a command changed them
    // (`keys::Key::signal_modified`), not by Redis for every key opened for
    // writing: a command that only reads must not abort a WATCH. Redis
    // replaces the options on each call, so all of them are set at once.
    ctx.set_module_options(
        ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED | state_type::module_options(),
    );
    background::start(ctx);
    Status::Ok
}
