//! tq's integration tests: real redis-server (or valkey-server) processes
//! with the module loaded. One test crate, so that the tests of every part
//! run side by side and the suite links once; `common` is their harness.

#[macro_use]
mod common;

mod background_discovery;
mod bad_input;
mod browser;
mod cluster;
mod cluster_migration;
mod contract_v2;
mod ecosystem;
mod event_log;
mod examples;
mod gateway;
mod grafana;
mod groups;
mod hostile_input;
mod loadtest;
mod memory;
mod opening;
mod passes;
mod persistence;
mod replication;
mod restore;
mod scripting;
mod seats;
mod seed_checks;
mod upgrade;
mod waiting_room;
