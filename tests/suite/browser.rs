//! The waiting-room page (examples/gateway/static) in a real browser:
//! headless Chromium (Debian's `chromium`) driven by Playwright
//! (`playwright-core` from npm, tests/browser/package.json) plays fans
//! through a whole sale on a real gateway in front of a real Redis with tq,
//! checks what the page shows at each step and saves a screenshot of each
//! under target/test-output/browser. The story and its checks are in
//! tests/browser/sale.mjs; this test starts the servers, sets the events up
//! so that the story is deterministic, plays the promoter's back office
//! while it runs, and checks the server's side afterwards.

use crate::common::*;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The sale: one live pass at a time, 2 seats a fan, 3 seats in all.
const EVENT: &str = "gig";
const SEATS: &str = "A:2,B:1";
/// A scheduled opening, some seconds after the script starts.
const OPENING_EVENT: &str = "drop";
const OPENS_IN_MS: u64 = 20_000;
/// sale.mjs's first fan: once she has bought her seats, the gateway ends
/// her pass (checkout done), which lets the next fan in.
const FIRST_FAN: &str = "ana@example.com";
const SCRIPT: &str = "tests/browser/sale.mjs";
const TIMEOUT: Duration = Duration::from_secs(120);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The node process, in a process group of its own so that a timeout or a
/// failed check here ends Chromium too.
struct Script {
    child: Child,
}

impl Script {
    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the test needs beyond the workspace: Chromium, Node.js and the
/// script's npm packages, all from `make deps`.
fn check_tools() -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "{} is missing: run `make deps` (Debian's chromium package)",
        chromium.display()
    );
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        matches!(node, Ok(s) if s.success()),
        "node is missing: run `make deps` (Node.js and npm)"
    );
    let playwright = root().join("tests/browser/node_modules/playwright-core");
    assert!(
        playwright.exists(),
        "{} is missing: run `make deps` (npm ci in tests/browser)",
        playwright.display()
    );
    chromium
}

fn ok(reply: redis::RedisResult<Value>, what: &str) {
    reply.unwrap_or_else(|e| panic!("{what}: {e}"));
}

/// A PNG file's signature.
fn is_png(path: &Path) -> bool {
    std::fs::read(path)
        .map(|b| b.len() > 100 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
        .unwrap_or(false)
}

#[test]
fn two_fans_buy_the_whole_sale_in_a_browser() {
    let chromium = check_tools();
    let out_dir = root().join("target/test-output/browser");
    // Only this run's screenshots.
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).expect("create target/test-output/browser");

    let server = Server::start();
    let gateway = Gateway::start(&server, SEATS);
    let mut con = server.client();
    ok(
        tq!(
            &mut con,
            "TQ.CONFIG",
            EVENT,
            "MAX-ACTIVE",
            1,
            "MAX-SEATS",
            2,
            "HOLD-TTL",
            120
        ),
        "TQ.CONFIG the sale",
    );
    ok(
        tq!(&mut con, "TQ.INVENTORY", EVENT, "SET", 3),
        "TQ.INVENTORY",
    );
    ok(
        tq!(
            &mut con,
            "TQ.CONFIG",
            OPENING_EVENT,
            "OPENS-AT",
            unix_ms() + OPENS_IN_MS,
            "MAX-ACTIVE",
            1
        ),
        "TQ.CONFIG the opening",
    );
    ok(
        tq!(&mut con, "TQ.INVENTORY", OPENING_EVENT, "SET", 3),
        "TQ.INVENTORY of the opening",
    );

    let log_path = out_dir.join("sale.log");
    let log = File::create(&log_path).expect("create sale.log");
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new("node")
            .arg(SCRIPT)
            .current_dir(root())
            .env("GATEWAY_URL", &gateway.base)
            .env("EVENT", EVENT)
            .env("OPENING_EVENT", OPENING_EVENT)
            .env("OUT_DIR", &out_dir)
            .env("CHROMIUM", &chromium)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("run node")
    };
    let mut script = Script { child };
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // When the first fan has bought her seats, the gateway's confirm ends
    // her pass (checkout done): with MAX-ACTIVE 1 the next fan may enter.
    let deadline = Instant::now() + TIMEOUT;
    let mut checked_out = false;
    let status = loop {
        if let Some(status) = script.child.try_wait().expect("wait for node") {
            break status;
        }
        if Instant::now() > deadline {
            script.kill();
            panic!(
                "{SCRIPT} still running after {} s: stopped. Its output:\n{}",
                TIMEOUT.as_secs(),
                read_log()
            );
        }
        if !checked_out {
            let pass = tq!(&mut con, "TQ.PASS", EVENT, FIRST_FAN).expect("TQ.PASS");
            checked_out = int_field(&pass, "bought") == 2 && int_field(&pass, "active") == 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = read_log();
    assert!(
        status.success(),
        "{SCRIPT} failed ({status}); screenshots in {}. Its output:\n{output}",
        out_dir.display()
    );
    println!("{output}");
    assert!(
        checked_out,
        "the first fan never bought her 2 seats with her pass ended:\n{output}"
    );

    // What the pages showed is what the server has.
    for (seat, fan) in [
        ("A-1", FIRST_FAN),
        ("A-2", FIRST_FAN),
        ("B-1", "ben@example.com"),
    ] {
        let view = tq!(&mut con, "TQ.SEAT", EVENT, seat).unwrap();
        assert_eq!(
            (text_field(&view, "state"), text_field(&view, "user")),
            ("sold".to_string(), fan.to_string()),
            "{seat}"
        );
    }
    assert_eq!(stat(&mut con, EVENT, "sold"), 3);
    assert_eq!(stat(&mut con, EVENT, "sold_out"), 1);
    assert_eq!(stat(&mut con, OPENING_EVENT, "opens_in_ms"), 0);
    assert_eq!(stat(&mut con, OPENING_EVENT, "admitted"), 1);
    // Every fan double-clicked Join and joined once.
    assert_eq!(stat(&mut con, EVENT, "joined"), 3);
    assert_eq!(stat(&mut con, OPENING_EVENT, "joined"), 2);

    let mut shots: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".png"))
        .collect();
    shots.sort();
    assert!(
        shots.len() >= 10 && shots[0] == "01-join.png",
        "screenshots: {shots:?}"
    );
    for name in &shots {
        assert!(is_png(&out_dir.join(name)), "{name} is not a PNG");
    }
}
