//! The ticketing rules, in plain Rust: no Redis types, no FFI.
//!
//! `args` parses command arguments, `queue` / `seats` / `event` hold the
//! rules, `store` is the storage they need. `glue` adapts all of it to
//! Redis.

pub mod args;
pub mod bucket;
pub mod decimal;
pub mod entry_id;
pub mod error;
pub mod event;
pub mod queue;
pub mod seats;
pub mod settings;
pub mod store;

#[cfg(test)]
pub mod memstore;
#[cfg(test)]
mod rules_tests;
