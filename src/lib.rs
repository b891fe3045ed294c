//! tq: a Redis module for the waiting room and seat inventory of a
//! high-demand ticket sale. `domain` holds the rules in plain Rust; `glue`
//! adapts them to Redis.

pub mod domain;
pub mod glue;

use glue::config::{on_default_changed, BURST, DEDUPE_TTL, HEARTBEAT, HOLD_TTL, RATE};
use glue::init;
use glue::reaper::on_key_event;
use redis_module::{configuration::ConfigurationFlags, redis_module, InfoContext, RedisResult};
use redis_module_macros::info_command_handler;

use domain::settings::{MAX_BURST, MAX_RATE, MAX_SECONDS};

// Redis' allocator in the module (so INFO memory and maxmemory see tq's
// allocations); the system one in unit tests, where there is no Redis.
#[cfg(not(test))]
type ModuleAlloc = redis_module::alloc::RedisAlloc;
#[cfg(test)]
type ModuleAlloc = std::alloc::System;
#[cfg(not(test))]
const MODULE_ALLOC: ModuleAlloc = redis_module::alloc::RedisAlloc;
#[cfg(test)]
const MODULE_ALLOC: ModuleAlloc = std::alloc::System;

#[info_command_handler]
fn info(ctx: &InfoContext, _for_crash_report: bool) -> RedisResult<()> {
    glue::metrics::add_info(ctx)
}

const SECONDS: i64 = MAX_SECONDS as i64;

redis_module! {
    name: "tq",
    version: 1,
    allocator: (ModuleAlloc, MODULE_ALLOC),
    data_types: [],
    init: init,
    commands: [],
    event_handlers: [
        [@GENERIC @LOADED: on_key_event],
    ],
    configurations: [
        i64: [
            ["rate", &RATE, 50, 0, MAX_RATE as i64, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["burst", &BURST, 500, 0, MAX_BURST as i64, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["heartbeat", &HEARTBEAT, 300, 1, SECONDS, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["hold-ttl", &HOLD_TTL, 300, 1, SECONDS, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["dedupe-ttl", &DEDUPE_TTL, 300, 1, SECONDS, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
        ],
        string: [],
        bool: [],
        enum: [],
        module_args_as_configuration: true,
    ]
}
