//! `make loadtest` in a short mode: a few hundred simulated fans (goose,
//! examples/loadtest) through the reference gateway for a few seconds,
//! on the server under test. It fails on any breach of the sale's
//! invariant or any answer no fan should get (scripts/loadtest.sh and
//! tq-loadtest check both).

use crate::common::*;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn a_short_load_test_keeps_the_sale_whole() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for binary in ["tq-gateway", "tq-loadtest"] {
        let path = root.join("target/release").join(binary);
        assert!(
            path.exists(),
            "{} is missing: make test builds the workspace",
            path.display()
        );
    }
    let child = Command::new(root.join("scripts/loadtest.sh"))
        .env("TQ_SERVER", server_binary())
        .env("LOADTEST_USERS", "200")
        .env("LOADTEST_HATCH", "100")
        .env("LOADTEST_SECONDS", "5")
        .env("LOADTEST_ROWS", "8")
        .env("LOADTEST_RATE", "50")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scripts/loadtest.sh runs");
    let (status, out, err) = run_to_end(child, "the load test", Duration::from_secs(120));
    assert!(
        status.success() && out.contains("invariant: ok"),
        "load test failed ({status})\nstdout:\n{out}\nstderr:\n{err}"
    );
    // Every route of a fan's way was exercised, and seats were sold.
    for route in [
        "POST join",
        "GET status",
        "POST enter",
        "GET seats",
        "POST hold",
        "POST confirm",
    ] {
        assert!(out.contains(route), "no {route} in the report:\n{out}");
    }
    let sold = out
        .lines()
        .find_map(|l| l.strip_prefix("figures: "))
        .and_then(|l| l.split(", ").find_map(|f| f.strip_prefix("sold ")))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no figures line:\n{out}"));
    assert!(sold > 0, "nothing sold:\n{out}");
}
