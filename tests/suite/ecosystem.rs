//! How tq looks to the rest of the Redis ecosystem: command metadata that
//! cluster clients and ACLs read (COMMAND GETKEYS / COMMAND INFO), the module
//! configs (CONFIG GET/SET, `--loadmodule` arguments) and the `INFO tq`
//! figures an exporter scrapes. Runs on Redis and, with TQ_SERVER, on Valkey.

use crate::common::*;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every TQ command with a valid argument list; the event is always "ev".
const COMMANDS: &[&[&str]] = &[
    &[
        "TQ.ENQUEUE",
        "ev",
        "user-1",
        "tok-1",
        "DEDUPE",
        "req-1",
        "TTL",
        "60",
    ],
    &["TQ.POSITION", "ev", "tok-1"],
    &["TQ.ENTER", "ev", "tok-1"],
    &["TQ.LEAVE", "ev", "tok-1"],
    &["TQ.USER", "ev", "user-1"],
    &["TQ.TRIM", "ev", "MAXAGE", "300"],
    &["TQ.INVENTORY", "ev", "SET", "10"],
    &["TQ.HOLD", "ev", "A-1", "user-1", "TTL", "60"],
    &["TQ.RELEASE", "ev", "A-1", "user-1"],
    &["TQ.CONFIRM", "ev", "A-1", "user-1"],
    &["TQ.SEAT", "ev", "A-1"],
    &["TQ.CONFIG", "ev", "RATE", "10", "BURST", "20"],
    &["TQ.STATS", "ev"],
];

const READONLY: &[&str] = &["tq.user", "tq.seat", "tq.stats"];

/// Write commands whose form without options is a read that answers on a
/// replica and when memory is full (contract v2): Redis refuses anything
/// flagged `write` on a replica and `denyoom` under maxmemory before the
/// module sees it, so they carry neither, and are not `readonly` either
/// (their other forms write).
const READ_OR_WRITE: &[&str] = &["tq.inventory", "tq.config"];

/// COMMAND INFO <name>, as its reply array
/// [name, arity, flags, first, last, step, acl categories, tips, key specs, ...].
fn command_info(con: &mut redis::Connection, name: &str) -> Vec<Value> {
    let reply: Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(con)
        .unwrap();
    let outer = array(&reply);
    assert_eq!(outer.len(), 1, "{reply:?}");
    assert_ne!(outer[0], Value::Nil, "COMMAND INFO knows no {name}");
    array(&outer[0])
}

fn flags(info: &[Value]) -> Vec<String> {
    array(&info[2]).iter().map(text).collect()
}

#[test]
fn command_getkeys_returns_the_event_for_every_command() {
    let server = Server::start();
    let mut con = server.client();
    for words in COMMANDS {
        let keys: Vec<String> = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(*words)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("COMMAND GETKEYS {words:?}: {e}"));
        assert_eq!(keys, ["ev"], "COMMAND GETKEYS {words:?}");
    }
}

#[test]
fn command_info_declares_the_key_and_the_flags() {
    let server = Server::start();
    let mut con = server.client();
    let info = command_info(&mut con, "tq.enqueue");
    assert_eq!(text(&info[0]), "tq.enqueue");
    assert_eq!(
        (int(&info[3]), int(&info[4]), int(&info[5])),
        (1, 1, 1),
        "{info:?}"
    );
    assert!(flags(&info).contains(&"write".to_string()), "{info:?}");

    for words in COMMANDS {
        let name = words[0].to_ascii_lowercase();
        let info = command_info(&mut con, &name);
        let f = flags(&info);
        assert_eq!(
            (int(&info[3]), int(&info[4]), int(&info[5])),
            (1, 1, 1),
            "{name}: {info:?}"
        );
        if READONLY.contains(&name.as_str()) {
            assert!(f.contains(&"readonly".to_string()), "{name} flags {f:?}");
            assert!(!f.contains(&"write".to_string()), "{name} flags {f:?}");
        } else if READ_OR_WRITE.contains(&name.as_str()) {
            for flag in ["readonly", "write", "denyoom"] {
                assert!(!f.contains(&flag.to_string()), "{name} flags {f:?}");
            }
        } else {
            assert!(f.contains(&"write".to_string()), "{name} flags {f:?}");
            assert!(!f.contains(&"readonly".to_string()), "{name} flags {f:?}");
        }
    }
}

/// The key spec of a read-only command must say it only reads its key:
/// ACL selectors like `%R~*` (read-only key access) go by the key spec.
#[test]
fn readonly_commands_declare_read_only_key_access() {
    let server = Server::start();
    let mut con = server.client();
    let _: String = redis_query(
        &mut con,
        &["ACL", "SETUSER", "reader", "on", "nopass", "%R~*", "+@all"],
    );
    let mut problems = Vec::new();
    for name in READONLY {
        let info = command_info(&mut con, name);
        let specs = array(&info[8]);
        assert_eq!(specs.len(), 1, "{name}: {info:?}");
        let spec_flags: Vec<String> = array(&field(&specs[0], "flags")).iter().map(text).collect();
        if !spec_flags.contains(&"RO".to_string()) || spec_flags.contains(&"RW".to_string()) {
            problems.push(format!("{name} key spec flags {spec_flags:?}, want RO"));
        }
        let words: &[&str] = COMMANDS
            .iter()
            .find(|w| w[0].eq_ignore_ascii_case(name))
            .unwrap();
        let mut dryrun = vec!["ACL", "DRYRUN", "reader"];
        dryrun.extend_from_slice(words);
        let verdict: String = redis_query(&mut con, &dryrun);
        if verdict != "OK" {
            problems.push(format!(
                "read-only ACL user (%R~*) refused {name}: {verdict}"
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

fn config_get_tq(con: &mut redis::Connection) -> HashMap<String, String> {
    let pairs: Vec<String> = redis_query(con, &["CONFIG", "GET", "tq.*"]);
    pairs
        .chunks(2)
        .map(|kv| (kv[0].clone(), kv[1].clone()))
        .collect()
}

/// The module configs of v1 and their defaults (v2 adds more configs; those
/// are checked where they are used).
fn defaults() -> HashMap<String, String> {
    [
        ("tq.rate", "50"),
        ("tq.burst", "500"),
        ("tq.heartbeat", "300"),
        ("tq.hold-ttl", "300"),
        ("tq.dedupe-ttl", "300"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Asserts that CONFIG GET tq.* has every v1 config with its default.
fn assert_defaults(got: &HashMap<String, String>) {
    for (name, value) in defaults() {
        assert_eq!(got.get(&name), Some(&value), "{name} in {got:?}");
    }
}

/// TQ.CONFIG of an event (reply map) as field -> integer (fields that are
/// nil, such as `shuffle_seed` before an opening, left out).
fn event_config(con: &mut redis::Connection, event: &str) -> HashMap<String, i64> {
    let reply = tq!(con, "TQ.CONFIG", event).unwrap();
    map(&reply)
        .into_iter()
        .filter(|(_, v)| *v != Value::Nil)
        .map(|(k, v)| (k, int(&v)))
        .collect()
}

#[test]
fn module_configs_have_defaults_and_config_set_changes_new_events() {
    let server = Server::start();
    let mut con = server.client();
    assert_defaults(&config_get_tq(&mut con));
    let c = event_config(&mut con, "before");
    assert_eq!(
        (
            c["rate"],
            c["burst"],
            c["heartbeat"],
            c["hold_ttl"],
            c["dedupe_ttl"]
        ),
        (50, 500, 300, 300, 300)
    );

    let _: String = redis_query(&mut con, &["CONFIG", "SET", "tq.rate", "10"]);
    let _: String = redis_query(&mut con, &["CONFIG", "SET", "tq.hold-ttl", "120"]);
    assert_eq!(config_get_tq(&mut con)["tq.rate"], "10");
    let c = event_config(&mut con, "fresh");
    assert_eq!(
        (c["rate"], c["hold_ttl"], c["burst"]),
        (10, 120, 500),
        "{c:?}"
    );

    // The new hold-ttl is what a hold without TTL gets.
    tq!(&mut con, "TQ.INVENTORY", "fresh", "SET", 5).unwrap();
    tq!(&mut con, "TQ.HOLD", "fresh", "A-1", "u").unwrap();
    let ttl = int_field(&tq!(&mut con, "TQ.SEAT", "fresh", "A-1").unwrap(), "ttl_ms");
    assert!(
        (110_000..=120_000).contains(&ttl),
        "ttl_ms {ttl} for hold-ttl 120"
    );
}

#[test]
fn bad_config_values_are_refused_and_the_old_value_stays() {
    let server = Server::start();
    let mut con = server.client();
    for (name, bad) in [
        ("tq.rate", "-1"),
        ("tq.heartbeat", "0"),
        ("tq.hold-ttl", "abc"),
        ("tq.dedupe-ttl", "31536001"),
    ] {
        let r: redis::RedisResult<Value> = redis::cmd("CONFIG")
            .arg("SET")
            .arg(name)
            .arg(bad)
            .query(&mut con);
        assert!(r.is_err(), "CONFIG SET {name} {bad} was accepted: {r:?}");
    }
    assert_defaults(&config_get_tq(&mut con));
    let c = event_config(&mut con, "fresh");
    assert_eq!(
        (c["rate"], c["heartbeat"], c["hold_ttl"], c["dedupe_ttl"]),
        (50, 300, 300, 300)
    );
}

/// A server started by the test itself, so that arguments can follow the
/// module path: `--loadmodule <so> rate 7 hold-ttl 60`.
struct OwnServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl OwnServer {
    /// Starts `server --loadmodule <so> <module_args...>`; Err(log) if the
    /// server exits instead of answering.
    fn start(module_args: &[&str]) -> Result<OwnServer, String> {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tq-eco-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(server_binary())
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--logfile",
                "server.log",
            ])
            .arg("--dir")
            .arg(&dir)
            .arg("--loadmodule")
            .arg(module_path())
            .args(module_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        let mut server = OwnServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = server.child.try_wait() {
                return Err(
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default()
                );
            }
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
            if let Ok(mut con) = client.get_connection_with_timeout(Duration::from_secs(1)) {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return Ok(server);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server with module args {module_args:?} neither answered nor exited");
    }

    fn client(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn loadmodule_arguments_set_the_configs() {
    let server = OwnServer::start(&["rate", "7", "hold-ttl", "60"])
        .unwrap_or_else(|log| panic!("did not start:\n{log}"));
    let mut con = server.client();
    let got = config_get_tq(&mut con);
    assert_eq!(
        (got["tq.rate"].as_str(), got["tq.hold-ttl"].as_str()),
        ("7", "60")
    );
    assert_eq!(
        (got["tq.burst"].as_str(), got["tq.heartbeat"].as_str()),
        ("500", "300")
    );
    let c = event_config(&mut con, "fresh");
    assert_eq!((c["rate"], c["hold_ttl"], c["burst"]), (7, 60, 500));
}

/// `--tq.rate 9` style arguments (after the module) work too, also through
/// the test harness.
#[test]
fn server_config_arguments_set_the_configs() {
    let server = Server::start_with(&["--tq.rate", "9", "--tq.burst", "3"]);
    let mut con = server.client();
    let got = config_get_tq(&mut con);
    assert_eq!(
        (got["tq.rate"].as_str(), got["tq.burst"].as_str()),
        ("9", "3")
    );
    let c = event_config(&mut con, "fresh");
    assert_eq!((c["rate"], c["burst"]), (9, 3));
}

/// An out-of-range `--loadmodule` argument must not slip past the ranges
/// that CONFIG SET enforces: `hold-ttl 0` would make every hold expire at
/// once, `heartbeat 0` every waiter abandoned. The module should refuse to
/// load (as it does for `rate abc`).
#[test]
fn bad_loadmodule_arguments_are_refused() {
    assert!(
        OwnServer::start(&["rate", "abc"]).is_err(),
        "rate abc was accepted"
    );
    let mut accepted = Vec::new();
    for args in [
        ["rate", "-1"],
        ["heartbeat", "0"],
        ["hold-ttl", "0"],
        ["dedupe-ttl", "31536001"],
    ] {
        if let Ok(server) = OwnServer::start(&args) {
            let got = config_get_tq(&mut server.client());
            accepted.push(format!(
                "{} {} -> CONFIG GET tq.{} = {}",
                args[0],
                args[1],
                args[0],
                got[&format!("tq.{}", args[0])]
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "out-of-range --loadmodule arguments accepted: {accepted:#?}"
    );
}

/// INFO tq as field -> value, with the section headers it printed.
fn info_tq(con: &mut redis::Connection) -> (Vec<String>, HashMap<String, String>) {
    let text: String = redis_query(con, &["INFO", "tq"]);
    let mut sections = Vec::new();
    let mut fields = HashMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(section) = line.strip_prefix('#') {
            sections.push(section.trim().to_string());
        } else {
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad INFO line {line:?}"));
            fields.insert(k.to_string(), v.to_string());
        }
    }
    (sections, fields)
}

#[test]
fn info_tq_counts_calls_errors_and_latency() {
    let server = Server::start();
    let mut con = server.client();
    // ENQUEUE: 3 successes, a duplicate token and a duplicate DEDUPE id.
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u1", "t1", "DEDUPE", "r1").unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u2", "t2").unwrap();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u3", "t3").unwrap();
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "ev", "u1", "t1")),
        "DUPLICATE"
    );
    assert_eq!(
        code(&tq!(
            &mut con,
            "TQ.ENQUEUE",
            "ev",
            "u9",
            "t9",
            "DEDUPE",
            "r1"
        )),
        "DUPLICATE"
    );
    // HOLD: one success, then twice SOLD_OUT.
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 1).unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A-1", "u1").unwrap();
    assert_eq!(
        code(&tq!(&mut con, "TQ.HOLD", "ev", "A-2", "u2")),
        "SOLD_OUT"
    );
    assert_eq!(
        code(&tq!(&mut con, "TQ.HOLD", "ev", "A-3", "u3")),
        "SOLD_OUT"
    );

    let (sections, f) = info_tq(&mut con);
    assert!(sections.contains(&"tq_totals".to_string()), "{sections:?}");
    assert!(
        sections.contains(&"tq_commands".to_string()),
        "{sections:?}"
    );
    let num = |k: &str| -> f64 {
        let v = f
            .get(k)
            .unwrap_or_else(|| panic!("INFO tq has no {k}: {f:?}"));
        v.parse()
            .unwrap_or_else(|_| panic!("{k}:{v} is not a number"))
    };
    assert_eq!(num("tq_enqueue_calls"), 5.0);
    assert_eq!(num("tq_enqueue_failed"), 2.0);
    assert_eq!(num("tq_enqueue_errors_duplicate"), 2.0);
    assert_eq!(num("tq_hold_calls"), 3.0);
    assert_eq!(num("tq_hold_failed"), 2.0);
    assert_eq!(num("tq_hold_errors_sold_out"), 2.0);
    assert_eq!(num("tq_inventory_calls"), 1.0);
    assert_eq!(num("tq_position_calls"), 0.0);
    assert_eq!(num("tq_dedupe_hits"), 2.0);
    for k in ["tq_admitted", "tq_abandoned", "tq_holds_expired"] {
        assert_eq!(num(k), 0.0, "{k}");
    }
    for cmd in ["enqueue", "hold"] {
        let p = |q: &str| num(&format!("tq_{cmd}_latency_{q}_us"));
        let (p50, p95, p99) = (p("p50"), p("p95"), p("p99"));
        assert!(
            p50 > 0.0 && p50 <= p95 && p95 <= p99,
            "{cmd}: p50 {p50} p95 {p95} p99 {p99}"
        );
        assert!(
            p99 < 1_000_000.0,
            "{cmd}: p99 {p99} us is not a sane latency"
        );
    }
    // Every command has its calls/failed/latency fields, all numeric.
    for words in COMMANDS {
        let cmd = words[0][3..].to_ascii_lowercase();
        for k in [
            "calls",
            "failed",
            "latency_p50_us",
            "latency_p95_us",
            "latency_p99_us",
        ] {
            num(&format!("tq_{cmd}_{k}"));
        }
    }
    for (k, v) in &f {
        assert!(
            v.parse::<f64>().is_ok(),
            "{k}:{v} is not numeric (exporters want numbers)"
        );
    }
}

/// redis_exporter only exports module INFO fields it knows by name; the
/// shipped `--script` hands it every tq field. Run it as the exporter
/// would (EVAL) and check it returns the fields as numeric key/value pairs.
#[test]
fn prometheus_script_exports_every_info_field() {
    let server = Server::start();
    let mut con = server.client();
    for i in 0..3 {
        tq!(&mut con, "TQ.ENQUEUE", "ev", "u", format!("t{i}")).unwrap();
    }
    assert_eq!(
        code(&tq!(&mut con, "TQ.ENQUEUE", "ev", "u", "t0")),
        "DUPLICATE"
    );
    let script = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus/tq-metrics.lua"),
    )
    .unwrap();
    let reply: Vec<String> = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert!(
        reply.len().is_multiple_of(2) && reply.len() > 100,
        "{reply:?}"
    );
    let fields: HashMap<&str, f64> = reply
        .chunks(2)
        .map(|kv| (kv[0].as_str(), kv[1].parse::<f64>().expect("numeric value")))
        .collect();
    assert_eq!(fields["tq_enqueue_calls"], 4.0);
    assert_eq!(fields["tq_enqueue_errors_duplicate"], 1.0);
    assert_eq!(fields["tq_dedupe_hits"], 1.0);
    assert!(fields["tq_enqueue_latency_p99_us"] > 0.0);
    assert!(fields.keys().all(|k| k.starts_with("tq_")));
}

/// Whether a transaction that WATCHed `key` still commits after `command`
/// ran on another connection (false: the command invalidated the WATCH).
fn watch_survives(server: &Server, key: &str, command: &[&str]) -> bool {
    let mut watcher = server.client();
    let mut other = server.client();
    redis_query::<()>(&mut watcher, &["WATCH", key]);
    let words: Vec<Vec<u8>> = command.iter().map(|w| w.as_bytes().to_vec()).collect();
    // A command is expected to succeed, except the NOT_HELD of a release.
    match call_args(&mut other, &words) {
        Err(e) if e.code() == Some("NOT_HELD") && command[0] == "TQ.RELEASE" => {}
        Err(e) => panic!("{command:?}: {e}"),
        Ok(_) => {}
    }
    redis_query::<()>(&mut watcher, &["MULTI"]);
    redis_query::<()>(&mut watcher, &["PING"]);
    let exec: Value = redis_query(&mut watcher, &["EXEC"]);
    exec != Value::Nil
}

/// WATCH works on tq's two keys as on any key: a command invalidates a
/// WATCH on a key it changed, and only then. (A key merely read must not
/// abort a client's transaction.)
#[test]
fn watch_is_invalidated_by_changes_only() {
    let server = Server::start();
    let mut con = server.client();
    tq!(&mut con, "TQ.ENQUEUE", "ev", "u1", "t1").unwrap();
    tq!(&mut con, "TQ.INVENTORY", "ev", "SET", 20).unwrap();
    tq!(&mut con, "TQ.HOLD", "ev", "A-1", "u1", "TTL", 60).unwrap();
    let (queue, state) = (queue_key("ev"), state_key("ev"));

    // A poll within 1/10 of the heartbeat (300 s) of the join stores
    // nothing (contract v2): it changes neither key.
    for key in [&queue, &state] {
        assert!(
            watch_survives(&server, key, &["TQ.POSITION", "ev", "t1"]),
            "a poll right after the join invalidated a WATCH on {key}"
        );
    }
    // With HEARTBEAT 1, a poll 150 ms after the last stored heartbeat
    // stores one: the state changes, the queue does not.
    tq!(&mut con, "TQ.CONFIG", "ev", "HEARTBEAT", 1).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        watch_survives(&server, &queue, &["TQ.POSITION", "ev", "t1"]),
        "TQ.POSITION invalidated a WATCH on the queue, which it only reads"
    );
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        !watch_survives(&server, &state, &["TQ.POSITION", "ev", "t1"]),
        "a poll stored its heartbeat without invalidating a WATCH on the state"
    );
    tq!(&mut con, "TQ.CONFIG", "ev", "HEARTBEAT", 300).unwrap();

    // A hold changes the state and leaves the queue alone.
    assert!(
        watch_survives(&server, &queue, &["TQ.HOLD", "ev", "A-2", "u1"]),
        "TQ.HOLD invalidated a WATCH on the queue"
    );
    assert!(
        !watch_survives(&server, &state, &["TQ.HOLD", "ev", "A-3", "u1"]),
        "TQ.HOLD changed the state without invalidating its WATCH"
    );
    // A join and a leave change both.
    for (n, key) in [&queue, &state].into_iter().enumerate() {
        let token = format!("j{n}");
        assert!(
            !watch_survives(&server, key, &["TQ.ENQUEUE", "ev", "u1", &token]),
            "TQ.ENQUEUE changed {key} without invalidating its WATCH"
        );
        assert!(
            !watch_survives(&server, key, &["TQ.LEAVE", "ev", &token]),
            "TQ.LEAVE changed {key} without invalidating its WATCH"
        );
    }
    // A failed command changes nothing.
    for key in [&queue, &state] {
        assert!(
            watch_survives(&server, key, &["TQ.LEAVE", "ev", "nobody"]),
            "a LEAVE of no one invalidated a WATCH on {key}"
        );
        assert!(
            watch_survives(&server, key, &["TQ.RELEASE", "ev", "Z-9"]),
            "a failed TQ.RELEASE invalidated a WATCH on {key}"
        );
    }

    // The background timer's changes count too: an expired hold leaves
    // the state while a client watches it.
    tq!(&mut con, "TQ.HOLD", "ev", "Z-1", "u1", "TTL", 1).unwrap();
    let mut watcher = server.client();
    redis_query::<()>(&mut watcher, &["WATCH", &state]);
    let held = digest_value(&mut con, &state);
    assert!(eventually(Duration::from_secs(4), || {
        digest_value(&mut con, &state) != held
    }));
    redis_query::<()>(&mut watcher, &["MULTI"]);
    redis_query::<()>(&mut watcher, &["PING"]);
    let exec: Value = redis_query(&mut watcher, &["EXEC"]);
    assert_eq!(
        exec,
        Value::Nil,
        "the timer freed a seat without invalidating WATCH"
    );

    // Reads never invalidate.
    for command in [
        &["TQ.STATS", "ev"][..],
        &["TQ.SEAT", "ev", "A-1"],
        &["TQ.USER", "ev", "u1"],
        &["TQ.INVENTORY", "ev"],
        &["TQ.CONFIG", "ev"],
    ] {
        for key in [&queue, &state] {
            assert!(watch_survives(&server, key, command), "{command:?} {key}");
        }
    }
}
