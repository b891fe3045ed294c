//! The Go example (examples/go/flow.go) works as written: built offline by
//! Debian's Go (`golang-go`) in GOPATH mode against Debian's redigo
//! sources (`golang-github-gomodule-redigo-dev`, under /usr/share/gocode),
//! it runs the whole flow against a harness server, prints the same lines
//! as flow.sh / flow.py and leaves the seat sold, in an event stored as its
//! two keys.

mod common;

use common::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs Go library sources.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

/// How long one `go run` may take (a first build compiles redigo).
const TIMEOUT: Duration = Duration::from_secs(120);

fn go_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/go")
}

/// A scratch directory for the Go build cache and GOPATH, outside the
/// checkout; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("tq-go-example-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("gopath")).unwrap();
        std::fs::create_dir_all(dir.join("gocache")).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `go` in GOPATH mode, offline: no go.mod, no proxy, no toolchain switch;
/// packages from `scratch`'s GOPATH and Debian's.
fn go(scratch: &Path) -> Command {
    let mut cmd = Command::new("go");
    cmd.current_dir(go_dir())
        .env("GO111MODULE", "off")
        .env(
            "GOPATH",
            format!("{}:{DEBIAN_GOPATH}", scratch.join("gopath").display()),
        )
        .env("GOCACHE", scratch.join("gocache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local");
    cmd
}

/// Fails the test, saying what to install, unless `go` and the redigo
/// sources are there.
fn require_go_and_redigo(scratch: &Path) {
    match go(scratch).arg("version").output() {
        Err(e) => panic!(
            "`go` not found ({e}): the Go example needs Debian's golang-go and \
             golang-github-gomodule-redigo-dev (`make deps`)"
        ),
        Ok(o) if !o.status.success() => panic!(
            "`go version` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
    let redigo = Path::new(DEBIAN_GOPATH).join("src/github.com/gomodule/redigo/redis");
    assert!(
        redigo.join("redis.go").is_file(),
        "no redigo sources in {}: install golang-github-gomodule-redigo-dev (`make deps`)",
        redigo.display()
    );
}

/// `go run flow.go` with REDIS_HOST/REDIS_PORT pointing at `server`;
/// returns stdout, failing the test on a non-zero exit or a hang.
fn run_flow_go(server: &Server, scratch: &Path) -> String {
    let mut child = go(scratch)
        .args(["run", "flow.go"])
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", server.port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run go ({e}); `make deps`"));
    // Drain both pipes while waiting, so a chatty build cannot block.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("go run flow.go did not finish in {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = out.join().unwrap().unwrap();
    let err = err.join().unwrap().unwrap();
    assert!(
        status.success(),
        "go run flow.go failed ({status})\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// Checks the example's output and what it left on the server (as
/// tests/examples.rs does for flow.sh and flow.py); returns the event.
fn check_flow(server: &Server, out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    // "event demo-xxxx: 100 seats on sale"
    let event = lines
        .first()
        .and_then(|l| l.strip_prefix("event "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no event line:\n{out}"))
        .to_string();
    assert!(event.starts_with("demo-"), "{out}");
    assert!(lines.iter().any(|l| l.starts_with("joined: id=")), "{out}");
    assert!(
        lines.iter().any(|l| l.starts_with("position=1 ready=1")),
        "{out}"
    );
    assert!(lines.contains(&"entered: position_was=1"), "{out}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pass ") && l.contains(" until ")),
        "{out}"
    );
    assert!(lines.contains(&"pass ended: 1"), "{out}");
    assert!(lines.contains(&"held A-12: 99 seats left"), "{out}");
    let last = lines.last().unwrap();
    let fan = last
        .strip_prefix("confirmed A-12 for ")
        .unwrap_or_else(|| panic!("last line is not 'confirmed ...':\n{out}"));

    let mut con = server.client();
    let seat = tq!(&mut con, "TQ.SEAT", event.as_str(), "A-12").unwrap();
    assert_eq!(text_field(&seat, "state"), "sold");
    assert_eq!(text_field(&seat, "user"), fan);
    let stats = tq!(&mut con, "TQ.STATS", event.as_str()).unwrap();
    assert_eq!(
        (
            int_field(&stats, "waiting"),
            int_field(&stats, "admitted"),
            int_field(&stats, "sold"),
            int_field(&stats, "inventory")
        ),
        (0, 1, 1, 99),
        "{stats:?}"
    );
    // Only admitted fans may hold, and the pass ended at checkout.
    let config = tq!(&mut con, "TQ.CONFIG", event.as_str()).unwrap();
    assert_eq!(int_field(&config, "require_pass"), 1);
    let pass = tq!(&mut con, "TQ.PASS", event.as_str(), fan).unwrap();
    assert_eq!(
        (int_field(&pass, "active"), int_field(&pass, "bought")),
        (0, 1)
    );
    // The flow left the event as its two keys, nothing else.
    assert_event_layout(&mut con, &event);
    event
}

#[test]
fn flow_go_runs_the_whole_flow_with_redigo() {
    let scratch = Scratch::new();
    require_go_and_redigo(&scratch.0);
    let server = Server::start();
    let first = check_flow(&server, &run_flow_go(&server, &scratch.0));
    // A second run picks a fresh event, so the same seat is free again.
    let second = check_flow(&server, &run_flow_go(&server, &scratch.0));
    assert_ne!(first, second);
}
