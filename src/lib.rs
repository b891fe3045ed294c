//! tq: a Redis module for the waiting room and seat inventory of a
//! high-demand ticket sale. `domain` holds the rules in plain Rust; `glue`
//! adapts them to Redis.

pub mod domain;
pub mod glue;

use glue::config::{
    BURST, BURST_DEFAULT, DEDUPE_TTL, DEDUPE_TTL_DEFAULT, EVENTS, EVENTS_DEFAULT, HEARTBEAT,
    HEARTBEAT_DEFAULT, HOLD_TTL, HOLD_TTL_DEFAULT, MAX_ACTIVE, MAX_ACTIVE_DEFAULT, MAX_ENTRIES,
    MAX_ENTRIES_DEFAULT, MAX_SEATS, MAX_SEATS_DEFAULT, RATE, RATE_DEFAULT, REQUIRE_PASS,
    REQUIRE_PASS_DEFAULT, SESSION, SESSION_DEFAULT,
};
use glue::init;
use glue::state_type::STATE_TYPE;
use redis_module::{configuration::ConfigurationFlags, redis_module, InfoContext, RedisResult};
use redis_module_macros::info_command_handler;

use domain::settings::{MAX_BURST, MAX_COUNT_SETTING, MAX_RATE, MAX_SECONDS};

// Redis' allocator in the module (so INFO memory and maxmemory see tq's
// allocations); the system one in unit tests and fuzzing, where there is
// no Redis.
#[cfg(not(any(test, fuzzing)))]
type ModuleAlloc = redis_module::alloc::RedisAlloc;
#[cfg(any(test, fuzzing))]
type ModuleAlloc = std::alloc::System;
#[cfg(not(any(test, fuzzing)))]
const MODULE_ALLOC: ModuleAlloc = redis_module::alloc::RedisAlloc;
#[cfg(any(test, fuzzing))]
const MODULE_ALLOC: ModuleAlloc = std::alloc::System;

#[info_command_handler]
fn info(ctx: &InfoContext, _for_crash_report: bool) -> RedisResult<()> {
    glue::metrics::add_info(ctx)
}

// The module configs' ranges, from the domain's settings.
const SECONDS: i64 = MAX_SECONDS as i64;
const COUNT: i64 = MAX_COUNT_SETTING as i64;

redis_module! {
    name: "tq",
    version: 5,
    allocator: (ModuleAlloc, MODULE_ALLOC),
    data_types: [STATE_TYPE],
    init: init,
    commands: [],
    configurations: [
        i64: [
            ["rate", &RATE, RATE_DEFAULT, 0, MAX_RATE as i64, ConfigurationFlags::DEFAULT, None],
            ["burst", &BURST, BURST_DEFAULT, 1, MAX_BURST as i64, ConfigurationFlags::DEFAULT, None],
            ["heartbeat", &HEARTBEAT, HEARTBEAT_DEFAULT, 1, SECONDS, ConfigurationFlags::DEFAULT, None],
            ["hold-ttl", &HOLD_TTL, HOLD_TTL_DEFAULT, 1, SECONDS, ConfigurationFlags::DEFAULT, None],
            ["dedupe-ttl", &DEDUPE_TTL, DEDUPE_TTL_DEFAULT, 1, SECONDS, ConfigurationFlags::DEFAULT, None],
            ["session", &SESSION, SESSION_DEFAULT, 1, SECONDS, ConfigurationFlags::DEFAULT, None],
            ["max-active", &MAX_ACTIVE, MAX_ACTIVE_DEFAULT, 0, COUNT, ConfigurationFlags::DEFAULT, None],
            ["require-pass", &REQUIRE_PASS, REQUIRE_PASS_DEFAULT, 0, 1, ConfigurationFlags::DEFAULT, None],
            ["max-seats", &MAX_SEATS, MAX_SEATS_DEFAULT, 0, COUNT, ConfigurationFlags::DEFAULT, None],
            ["max-entries", &MAX_ENTRIES, MAX_ENTRIES_DEFAULT, 0, COUNT, ConfigurationFlags::DEFAULT, None],
            ["events", &EVENTS, EVENTS_DEFAULT, 0, COUNT, ConfigurationFlags::DEFAULT, None],
        ],
        string: [],
        bool: [],
        enum: [],
        module_args_as_configuration: true,
    ]
}
