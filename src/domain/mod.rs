//! The ticketing rules and the event state they act on, in plain Rust: no
//! Redis types, no FFI.
//!
//! `event` is the state of one sale and every rule; `queue`, `ranks`,
//! `dedupe`, `seats`, `buyers`, `slab` and `names` are the structures it is
//! made of; `bucket`
//! the admission arithmetic; `codec` the stored form; `args` parses command
//! arguments. `glue` adapts all of it to Redis.

pub mod args;
pub mod bucket;
pub mod buyers;
pub mod codec;
pub mod decimal;
pub mod dedupe;
pub mod entry_id;
pub mod error;
pub mod event;
pub mod happenings;
pub mod names;
pub mod opening;
pub mod queue;
pub mod ranks;
pub mod seats;
pub mod settings;
pub mod slab;

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod rules_tests;
