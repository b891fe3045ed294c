//! tq: a Redis module for the waiting room and seat inventory of a
//! high-demand ticket sale. `domain` holds the rules in plain Rust; `glue`
//! adapts them to Redis.

pub mod domain;
pub mod glue;

use glue::config::{on_default_changed, BURST, DEDUPE_TTL, HEARTBEAT, HOLD_TTL, RATE};
use glue::init;
use redis_module::{configuration::ConfigurationFlags, redis_module, InfoContext, RedisResult};
use redis_module_macros::info_command_handler;

use domain::settings::{Settings, MAX_BURST, MAX_RATE, MAX_SECONDS};

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

// The module configs' defaults and ranges, from the domain's settings.
const SECONDS: i64 = MAX_SECONDS as i64;
const RATE_DEFAULT: i64 = Settings::DEFAULT.rate as i64;
const BURST_DEFAULT: i64 = Settings::DEFAULT.burst as i64;
const HEARTBEAT_DEFAULT: i64 = Settings::DEFAULT.heartbeat_s as i64;
const HOLD_TTL_DEFAULT: i64 = Settings::DEFAULT.hold_ttl_s as i64;
const DEDUPE_TTL_DEFAULT: i64 = Settings::DEFAULT.dedupe_ttl_s as i64;

redis_module! {
    name: "tq",
    version: 2,
    allocator: (ModuleAlloc, MODULE_ALLOC),
    data_types: [],
    init: init,
    commands: [],
    configurations: [
        i64: [
            ["rate", &RATE, RATE_DEFAULT, 0, MAX_RATE as i64, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["burst", &BURST, BURST_DEFAULT, 0, MAX_BURST as i64, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["heartbeat", &HEARTBEAT, HEARTBEAT_DEFAULT, 1, SECONDS, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["hold-ttl", &HOLD_TTL, HOLD_TTL_DEFAULT, 1, SECONDS, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
            ["dedupe-ttl", &DEDUPE_TTL, DEDUPE_TTL_DEFAULT, 1, SECONDS, ConfigurationFlags::DEFAULT, Some(Box::new(on_default_changed))],
        ],
        string: [],
        bool: [],
        enum: [],
        module_args_as_configuration: true,
    ]
}
