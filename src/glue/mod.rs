//! The Redis side: command registration, argument bytes in, replies out,
//! key access and replication (`store`), background reaping, metrics.
//! The rules themselves live in `crate::domain`.

pub mod command_info;
pub mod commands;
pub mod config;
pub mod event_commands;
pub mod keys;
pub mod meta;
pub mod metrics;
pub mod queue_commands;
pub mod rawkey;
pub mod reaper;
pub mod reply;
pub mod seat_commands;
pub mod store;

use redis_module::{raw::ModuleOptions, Context, RedisString, Status};

/// Module set-up after configs are loaded.
pub fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    if let Err(e) = config::check_loaded() {
        ctx.log_warning(&format!("tq: {e}"));
        return Status::Err;
    }
    if let Err(e) = commands::register(ctx) {
        ctx.log_warning(&format!("tq: {e}"));
        return Status::Err;
    }
    // Keys are signalled as modified by tq when a write changes them
    // (`rawkey::Key`), not by Redis for every key opened for writing: a
    // command that only reads a key must not abort a WATCH on it.
    ctx.set_module_options(ModuleOptions::NO_IMPLICIT_SIGNAL_MODIFIED);
    if reaper::subscribe_to_key_events(ctx) == Status::Err {
        ctx.log_warning("tq: could not subscribe to keyspace events");
        return Status::Err;
    }
    reaper::start(ctx);
    Status::Ok
}
