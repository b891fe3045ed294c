//! Test harness: real redis-server processes with the tq module, each on a
//! free loopback port with its own directory, killed and cleaned on drop.
//!
//! `TQ_MODULE` overrides the module path (default target/release/libtq.so),
//! `TQ_SERVER` the server binary (default `redis-server`; set it to a
//! `valkey-server` to run the same tests on Valkey).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use redis::Value;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

pub fn module_path() -> PathBuf {
    match std::env::var_os("TQ_MODULE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/libtq.so"),
    }
}

pub fn server_binary() -> String {
    std::env::var("TQ_SERVER").unwrap_or_else(|_| "redis-server".into())
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    args: Vec<String>,
    /// The module it loads (None: a plain server).
    module: Option<PathBuf>,
    keep_dir: bool,
}

impl Server {
    /// A server with the module loaded and the debug command enabled.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Same, with extra `--name value` arguments (e.g. `["--appendonly", "yes"]`).
    pub fn start_with(extra: &[&str]) -> Server {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tq-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Server::start_in(dir, args, Some(module_path()))
    }

    /// Starts (or restarts) a server in `dir` with `args`, retrying on a
    /// port race with another test.
    fn start_in(dir: PathBuf, args: Vec<String>, module: Option<PathBuf>) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let child = spawn(port, &dir, &args, module.as_deref());
            let mut server = Server {
                child,
                port,
                dir: dir.clone(),
                args: args.clone(),
                module: module.clone(),
                keep_dir: false,
            };
            if server.wait_ready() {
                return server;
            }
            server.keep_dir = true; // retried below in the same dir
            let _ = server.child.kill();
            let _ = server.child.wait();
        }
        panic!(
            "redis-server did not start; see {}/server.log",
            dir.display()
        );
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut con) = self.try_client() {
                let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
                if pong.is_ok() {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn try_client(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        client.get_connection_with_timeout(Duration::from_secs(5))
    }

    /// A RESP2 connection.
    pub fn client(&self) -> redis::Connection {
        self.try_client().expect("connect")
    }

    /// A RESP3 connection.
    pub fn client_resp3(&self) -> redis::Connection {
        let client = redis::Client::open(format!("{}?protocol=resp3", self.url())).unwrap();
        client.get_connection().expect("connect resp3")
    }

    /// Stops the server the hard way (no save), keeping its directory.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server and starts it again in the same directory (same
    /// data files), on a new port.
    pub fn restart(mut self, extra: &[&str]) -> Server {
        self.kill9();
        self.keep_dir = true;
        let mut args = self.args.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::start_in(self.dir.clone(), args, self.module.clone())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn spawn(
    port: u16,
    dir: &std::path::Path,
    args: &[String],
    module: Option<&std::path::Path>,
) -> Child {
    let mut command = Command::new(server_binary());
    command
        .arg("--port")
        .arg(port.to_string())
        .arg("--bind")
        .arg("127.0.0.1")
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg("server.log")
        .arg("--save")
        .arg("")
        .arg("--enable-debug-command")
        .arg("yes");
    if let Some(module) = module {
        assert!(module.exists(), "module not built: {}", module.display());
        command.arg("--loadmodule").arg(module);
    }
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server (is it installed? run `make test`)")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- talking to tq ---------------------------------------------------------

/// Runs a command given as words; returns the reply or the error.
pub fn call_args(con: &mut redis::Connection, words: &[Vec<u8>]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(std::str::from_utf8(&words[0]).unwrap());
    for w in &words[1..] {
        c.arg(w.as_slice());
    }
    c.query(con)
}

/// `tq!(con, "TQ.ENQUEUE", "ev", "u", "t")` -> `RedisResult<Value>`; any
/// argument that `redis` can send (str, bytes, numbers).
#[macro_export]
macro_rules! tq {
    ($con:expr, $($word:expr),+ $(,)?) => {
        $crate::common::call_args($con, &[$(redis::ToRedisArgs::to_redis_args(&$word).concat()),+])
    };
}

/// The error code of a failed call (first word of the error reply).
pub fn code(result: &redis::RedisResult<Value>) -> String {
    match result {
        Err(e) => e.code().unwrap_or("?").to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// The whole error text of a failed call: "CODE detail".
pub fn error_text(result: &redis::RedisResult<Value>) -> String {
    match result {
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// A map reply (RESP3 map, or RESP2 flat array) as ordered (field, value).
pub fn map(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (text(k), v.clone())).collect(),
        Value::Array(items) => {
            assert!(items.len() % 2 == 0, "not a flat map: {v:?}");
            items
                .chunks(2)
                .map(|kv| (text(&kv[0]), kv[1].clone()))
                .collect()
        }
        other => panic!("expected a map, got {other:?}"),
    }
}

pub fn field(v: &Value, name: &str) -> Value {
    map(v)
        .into_iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no field {name} in {v:?}"))
        .1
}

pub fn int_field(v: &Value, name: &str) -> i64 {
    int(&field(v, name))
}

pub fn text_field(v: &Value, name: &str) -> String {
    text(&field(v, name))
}

pub fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        Value::BulkString(b) => String::from_utf8_lossy(b).parse().expect("integer"),
        other => panic!("expected an integer, got {other:?}"),
    }
}

pub fn float(v: &Value) -> f64 {
    match v {
        Value::Double(d) => *d,
        Value::Int(n) => *n as f64,
        Value::BulkString(b) => String::from_utf8_lossy(b).parse().expect("number"),
        other => panic!("expected a number, got {other:?}"),
    }
}

pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Int(n) => n.to_string(),
        other => panic!("expected a string, got {other:?}"),
    }
}

pub fn array(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items.clone(),
        other => panic!("expected an array, got {other:?}"),
    }
}

/// A plain Redis command with a typed result.
pub fn redis_query<T: redis::FromRedisValue>(con: &mut redis::Connection, words: &[&str]) -> T {
    let mut c = redis::cmd(words[0]);
    for w in &words[1..] {
        c.arg(*w);
    }
    c.query(con).unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

/// Polls `check` until it is true or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- reliability helpers (replication, persistence, cluster, hostile input) ----

impl Server {
    /// A plain redis-server WITHOUT the module (e.g. a replica that must
    /// still read the module's data), same conventions as `start_with`.
    pub fn start_plain(extra: &[&str]) -> Server {
        let n = NEXT_DIR.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tq-test-{}-plain-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Server::start_in(dir, args, None)
    }

    /// A replica of `master` (with the module), link up and synced.
    pub fn start_replica_of(master: &Server, extra: &[&str]) -> Server {
        let port = master.port.to_string();
        let mut args = vec!["--replicaof", "127.0.0.1", port.as_str()];
        args.extend_from_slice(extra);
        let replica = Server::start_with(&args);
        replica.wait_link_up();
        replica
    }

    /// A master (`master_extra` added to its arguments) that starts a full
    /// sync at once, and a replica of it (`replica_extra`), synced.
    pub fn start_master_and_replica(
        master_extra: &[&str],
        replica_extra: &[&str],
    ) -> (Server, Server) {
        let mut args = vec!["--repl-diskless-sync-delay", "0"];
        args.extend_from_slice(master_extra);
        let master = Server::start_with(&args);
        let replica = Server::start_replica_of(&master, replica_extra);
        (master, replica)
    }

    /// Waits until INFO replication says `master_link_status:up`.
    pub fn wait_link_up(&self) {
        let mut con = self.client();
        assert!(
            eventually(Duration::from_secs(20), || {
                info_field(&mut con, "replication", "master_link_status").as_deref() == Some("up")
                    && info_field(&mut con, "replication", "master_sync_in_progress").as_deref()
                        == Some("0")
            }),
            "replica on port {} never got master_link_status:up",
            self.port
        );
    }
}

/// One `name:value` field of an INFO section.
pub fn info_field(con: &mut redis::Connection, section: &str, name: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg(section).query(con).ok()?;
    info.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

/// `DEBUG DIGEST` of the whole dataset.
pub fn digest(con: &mut redis::Connection) -> String {
    redis_query(con, &["DEBUG", "DIGEST"])
}

/// All key names matching `pattern` (via SCAN), sorted.
pub fn scan_keys(con: &mut redis::Connection, pattern: &str) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Key -> `DEBUG DIGEST-VALUE` for every key matching `pattern`.
pub fn key_digests(
    con: &mut redis::Connection,
    pattern: &str,
) -> std::collections::BTreeMap<Vec<u8>, String> {
    let mut out = std::collections::BTreeMap::new();
    for key in scan_keys(con, pattern) {
        let d: Vec<String> = redis::cmd("DEBUG")
            .arg("DIGEST-VALUE")
            .arg(key.as_slice())
            .query(con)
            .expect("DEBUG DIGEST-VALUE");
        out.insert(key, d.into_iter().next().unwrap_or_default());
    }
    out
}

/// Runs a command given as words and returns the raw reply, with error
/// replies nested in arrays (e.g. EXEC) kept as `Value::ServerError`.
pub fn raw_call(con: &mut redis::Connection, words: &[Vec<u8>]) -> redis::RedisResult<Value> {
    use redis::ConnectionLike;
    let mut c = redis::cmd(std::str::from_utf8(&words[0]).unwrap());
    for w in &words[1..] {
        c.arg(w.as_slice());
    }
    con.req_command(&c)
}

/// Error code of a nested reply (`Value::ServerError`), if it is one.
pub fn nested_error_code(v: &Value) -> Option<String> {
    match v {
        Value::ServerError(e) => Some(e.code().to_string()),
        _ => None,
    }
}

/// `WAIT 1 5000` on the master; asserts the replica acknowledged.
pub fn wait_replicas(con: &mut redis::Connection, n: i64) {
    let acked: i64 = redis::cmd("WAIT")
        .arg(n)
        .arg(5000)
        .query(con)
        .expect("WAIT");
    assert!(acked >= n, "WAIT {n} 5000 got only {acked} acks");
}

/// The fields of an event's `tq:{E}:meta` string as a plain client reads
/// them: `name=value` pairs separated by spaces (see the README's key
/// layout). Empty when the key does not exist.
pub fn meta_fields(
    con: &mut redis::Connection,
    event: &str,
) -> std::collections::BTreeMap<String, String> {
    let text: Option<String> = redis::cmd("GET")
        .arg(format!("tq:{{{event}}}:meta"))
        .query(con)
        .unwrap_or_else(|e| panic!("GET meta of {event}: {e}"));
    text.unwrap_or_default()
        .split(' ')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("meta of {event} has a pair without '=': {pair:?}"));
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// One counter or setting of an event's meta (0 when absent, as tq reads it).
pub fn meta_count(con: &mut redis::Connection, event: &str, name: &str) -> i64 {
    meta_fields(con, event).get(name).map_or(0, |v| {
        v.parse()
            .unwrap_or_else(|_| panic!("meta {name} of {event} is not a number: {v:?}"))
    })
}

/// Every AOF file of the server, concatenated.
pub fn aof_bytes(server: &Server) -> Vec<u8> {
    let mut out = Vec::new();
    let dir = server.dir.join("appendonlydir");
    for entry in std::fs::read_dir(&dir).expect("appendonlydir") {
        out.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    out
}
