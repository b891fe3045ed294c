//! The client examples in examples/ work as written: each flow (shell,
//! Python, Go on Debian's redigo) runs against a harness server, exits 0,
//! ends with "confirmed ..." and leaves the seat sold, in an event stored as
//! its two keys (`tq:{E}:queue`, `tq:{E}:state`); the worker handles the
//! event log with a consumer group.

use crate::common::*;
use redis::Value;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Starts `program args` with REDIS_HOST/REDIS_PORT pointing at `server`.
fn spawn_example(server: &Server, program: &str, args: &[&str]) -> std::process::Child {
    Command::new(program)
        .args(args)
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", server.port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (is it installed? `make deps`)"))
}

/// Runs `program args` with REDIS_HOST/REDIS_PORT pointing at `server`;
/// returns stdout, failing the test on a non-zero exit or a hang.
fn run_example(server: &Server, program: &str, args: &[&str]) -> String {
    finish_example(spawn_example(server, program, args), program, args)
}

/// Waits for a started example; its stdout, failing the test on a
/// non-zero exit or a hang.
fn finish_example(child: std::process::Child, program: &str, args: &[&str]) -> String {
    let what = format!("{program} {args:?}");
    let (status, out, err) = run_to_end(child, &what, Duration::from_secs(30));
    assert!(
        status.success(),
        "{program} {args:?} failed ({status})\nstdout:\n{out}\nstderr:\n{err}"
    );
    out
}

/// Checks an example's output and what it left on the server.
fn check_flow(server: &Server, out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    // "event demo-xxxx: 100 seats on sale"
    let event = lines
        .first()
        .and_then(|l| l.strip_prefix("event "))
        .and_then(|l| l.split(':').next())
        .unwrap_or_else(|| panic!("no event line:\n{out}"))
        .to_string();
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
fn flow_sh_runs_the_whole_flow_with_redis_cli() {
    let server = Server::start();
    let script = examples_dir().join("flow.sh");
    let first = check_flow(
        &server,
        &run_example(&server, "bash", &[script.to_str().unwrap()]),
    );
    // A second run picks a fresh event, so the same seat is free again.
    let second = check_flow(
        &server,
        &run_example(&server, "bash", &[script.to_str().unwrap()]),
    );
    assert_ne!(first, second);
}

fn require_redis_py() {
    match Command::new("python3").arg("-c").arg("import redis").output() {
        Err(e) => panic!("python3 not found ({e}): the Python examples need Python 3 with redis-py"),
        Ok(o) if !o.status.success() => panic!(
            "redis-py is not installed for python3 (`make deps`, or `python3 -m pip install redis`):\n{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
}

#[test]
fn flow_py_runs_the_whole_flow_with_redis_py() {
    require_redis_py();
    let server = Server::start();
    let script = examples_dir().join("flow.py");
    let first = check_flow(
        &server,
        &run_example(&server, "python3", &[script.to_str().unwrap()]),
    );
    let second = check_flow(
        &server,
        &run_example(&server, "python3", &[script.to_str().unwrap()]),
    );
    assert_ne!(first, second);
}

/// The worker reads the event log with a consumer group while a fan goes
/// through the sale: it sees each change, the hold that ran out with
/// nobody touching the event too, and acknowledges all it handled.
#[test]
fn worker_py_handles_the_event_log_with_a_consumer_group() {
    require_redis_py();
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.CONFIG", "gig", "EVENTS", 1000).unwrap();
    tq!(&mut con, "TQ.INVENTORY", "gig", "SET", 2).unwrap();
    let script = examples_dir().join("worker.py");
    let args = [
        script.to_str().unwrap(),
        "gig",
        "--until",
        "sold_out",
        "--timeout",
        "20",
    ];
    let worker = spawn_example(&server, "python3", &args);
    tq!(&mut con, "TQ.ENQUEUE", "gig", "fan-1", "tok-1").unwrap();
    let pass = text_field(&tq!(&mut con, "TQ.ENTER", "gig", "tok-1").unwrap(), "pass");
    tq!(&mut con, "TQ.HOLD", "gig", "A-1", "fan-1", "TTL", 1).unwrap();
    // Nobody touches the event while the hold runs out.
    std::thread::sleep(Duration::from_millis(1600));
    tq!(&mut con, "TQ.HOLD", "gig", "A-1", "fan-1", "WITH", "A-2").unwrap();
    tq!(&mut con, "TQ.CONFIRM", "gig", "A-1", "fan-1", "WITH", "A-2").unwrap();
    let out = finish_example(worker, "python3", &args);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            format!("admitted token=tok-1 user=fan-1 pass={pass}").as_str(),
            "held seat=A-1 user=fan-1",
            "hold_expired seat=A-1 user=fan-1",
            "held seat=A-1 user=fan-1",
            "held seat=A-2 user=fan-1",
            "confirmed seat=A-1 user=fan-1",
            "confirmed seat=A-2 user=fan-1",
            "sold_out",
        ]
    );
    let pending: Vec<Value> = redis_query(&mut con, &["XPENDING", &log_key("gig"), "workers"]);
    assert_eq!(int(&pending[0]), 0, "every entry acknowledged: {pending:?}");
}

// ---- the Go example: Debian's Go and redigo, offline ----------------------

/// Where Debian installs Go library sources.
const DEBIAN_GOPATH: &str = "/usr/share/gocode";

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

#[test]
fn flow_go_runs_the_whole_flow_with_redigo() {
    let scratch = Scratch::new();
    require_go_and_redigo(&scratch.0);
    let server = Server::start();
    let run = || {
        let child = go(&scratch.0)
            .args(["run", "flow.go"])
            .env("REDIS_HOST", "127.0.0.1")
            .env("REDIS_PORT", server.port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run go ({e}); `make deps`"));
        finish_example(child, "go", &["run", "flow.go"])
    };
    let first = check_flow(&server, &run());
    // A second run picks a fresh event, so the same seat is free again.
    let second = check_flow(&server, &run());
    assert_ne!(first, second);
}
