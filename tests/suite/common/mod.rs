//! Test harness: real redis-server processes with the tq module, each on a
//! free loopback port with its own directory, killed and cleaned on drop.
//!
//! `TQ_MODULE` overrides the module path (default target/release/libtq.so),
//! `TQ_SERVER` the server binary (default `redis-server`; set it to a
//! `valkey-server` to run the same tests on Valkey).

use std::collections::BTreeMap;
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
                // Ours, not another test's server that got the same port
                // (free_port only finds a port that was free a moment ago).
                let pid = info_field(&mut con, "server", "process_id");
                let ours = pid.as_deref() == Some(self.child.id().to_string().as_str());
                if pid.is_some() && !ours {
                    return false; // retried on another port
                }
                // PING answers only once the data is loaded.
                let pong: redis::RedisResult<String> = redis::cmd("PING").query(&mut con);
                if ours && pong.is_ok() {
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
    /// The server's process id (to stop and continue it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `SHUTDOWN SAVE` (an RDB save even with `--save ""`), then waits for
    /// the process to exit; the directory is kept for `restart`.
    pub fn shutdown_save(&mut self) {
        let mut con = self.client();
        // The server closes the connection as it exits: an I/O error here
        // is the expected outcome, a server error reply is not.
        if let Err(e) = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut con) {
            assert!(e.code().is_none(), "SHUTDOWN SAVE refused: {e}");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    status.success(),
                    "server exited with {status} on SHUTDOWN SAVE"
                );
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "server on port {} did not exit after SHUTDOWN SAVE",
            self.port
        );
    }

    /// True while the server process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
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

/// Text words as the byte words `call_args` takes.
pub fn words(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// Runs a command given as text words; returns the reply or the error.
pub fn run(con: &mut redis::Connection, list: &[&str]) -> redis::RedisResult<Value> {
    call_args(con, &words(list))
}

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

/// An integer field that a reply may not have yet (a field a later
/// contract point adds): None when absent.
pub fn opt_int_field(v: &Value, name: &str) -> Option<i64> {
    map(v)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| int(&v))
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

/// Waits until the replica has applied everything the master has put on
/// its replication stream so far, whoever wrote it (another connection, the
/// module's timer). `WAIT` would not do: it waits only for the writes of the
/// connection that sends it.
pub fn wait_caught_up(master: &mut redis::Connection, replica: &mut redis::Connection) {
    let target = master_repl_offset(master);
    let applied = |replica: &mut redis::Connection| -> i64 {
        info_field(replica, "replication", "slave_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    assert!(
        eventually(Duration::from_secs(10), || applied(replica) >= target),
        "the replica applied up to {} of the master's {target}",
        applied(replica)
    );
}

/// Asserts that the replica holds what the master holds, `read` saying
/// what is compared. The master's timer may write at any moment (a hold
/// that ran out is given back a little after it stops counting), so a
/// comparison counts only when the master read the same before and after
/// the replica caught up; otherwise it is taken again, for up to 10 s.
pub fn assert_replica_matches<T: PartialEq + std::fmt::Debug>(
    master: &mut redis::Connection,
    replica: &mut redis::Connection,
    what: &str,
    mut read: impl FnMut(&mut redis::Connection) -> T,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = read(master);
        wait_caught_up(master, replica);
        let on_replica = read(replica);
        let after = read(master);
        if before == after {
            assert_eq!(
                on_replica, after,
                "{what}: the replica differs from the master"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the master's data kept changing for 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for an AOF rewrite to finish; asserts it succeeded.
pub fn wait_rewrite_done(con: &mut redis::Connection) {
    assert!(
        eventually(Duration::from_secs(20), || {
            info_field(con, "persistence", "aof_rewrite_in_progress").as_deref() == Some("0")
                && info_field(con, "persistence", "aof_rewrite_scheduled").as_deref() == Some("0")
        }),
        "AOF rewrite did not finish"
    );
    assert_eq!(
        info_field(con, "persistence", "aof_last_bgrewrite_status").as_deref(),
        Some("ok"),
        "AOF rewrite failed"
    );
}

/// Two cluster nodes: `a` serves every slot, `b` has joined it, ready to
/// take a slot over (`begin_move`, then `migrate` its keys).
pub struct SlotMove {
    pub a: Server,
    pub b: Server,
    id_a: String,
    id_b: String,
}

impl SlotMove {
    pub fn start() -> SlotMove {
        let cluster = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ];
        let (a, b) = (Server::start_with(&cluster), Server::start_with(&cluster));
        let (mut ca, mut cb) = (a.client(), b.client());
        let _: () = redis_query(&mut ca, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        let _: () = redis_query(
            &mut cb,
            &["CLUSTER", "MEET", "127.0.0.1", &a.port.to_string()],
        );
        let ok = |con: &mut redis::Connection| {
            let info: String = redis_query(con, &["CLUSTER", "INFO"]);
            info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:2")
        };
        assert!(eventually(Duration::from_secs(10), || ok(&mut ca) && ok(&mut cb)));
        let id_a = redis_query(&mut ca, &["CLUSTER", "MYID"]);
        let id_b = redis_query(&mut cb, &["CLUSTER", "MYID"]);
        SlotMove { a, b, id_a, id_b }
    }

    /// Marks `slot` as moving from `a` to `b`.
    pub fn begin_move(&self, slot: i64) {
        let slot = slot.to_string();
        let _: () = redis_query(
            &mut self.b.client(),
            &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &self.id_a],
        );
        let _: () = redis_query(
            &mut self.a.client(),
            &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &self.id_b],
        );
    }

    /// `b` owns `slot` from now on, for both nodes.
    pub fn finish_move(&self, slot: i64) {
        let slot = slot.to_string();
        for node in [&self.a, &self.b] {
            let _: () = redis_query(
                &mut node.client(),
                &["CLUSTER", "SETSLOT", &slot, "NODE", &self.id_b],
            );
        }
    }

    /// MIGRATEs `keys` from `a` to `b`.
    pub fn migrate(&self, keys: &[String]) {
        let port_b = self.b.port.to_string();
        let mut words = vec!["MIGRATE", "127.0.0.1", &port_b, "", "0", "5000", "KEYS"];
        words.extend(keys.iter().map(String::as_str));
        let reply: String = redis_query(&mut self.a.client(), &words);
        assert_eq!(reply, "OK", "MIGRATE {keys:?}");
    }
}

/// Sends ASKING then the command, as a client following an ASK redirect.
pub fn asking(con: &mut redis::Connection, list: &[&str]) -> redis::RedisResult<Value> {
    let _: () = redis::cmd("ASKING").query(con)?;
    run(con, list)
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

// ---- the 0.3 storage layout: an event is exactly two keys ------------------

/// The module data type's name, as `TYPE tq:{E}:state` shows it.
pub const STATE_TYPE: &str = "tq--state";

/// `tq:{E}:queue`: the stream of waiting entries.
pub fn queue_key(event: &str) -> String {
    format!("tq:{{{event}}}:queue")
}

/// `tq:{E}:state`: everything else of the event, in tq's module type.
pub fn state_key(event: &str) -> String {
    format!("tq:{{{event}}}:state")
}

/// `DEBUG DIGEST-VALUE key` (40 zeros for a missing key).
pub fn digest_value(con: &mut redis::Connection, key: &str) -> String {
    let d: Vec<String> = redis::cmd("DEBUG")
        .arg("DIGEST-VALUE")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("DEBUG DIGEST-VALUE {key}: {e}"));
    d.into_iter().next().unwrap_or_default()
}

/// What `DEBUG DIGEST-VALUE` gives for a key that does not exist.
pub const NO_DIGEST: &str = "0000000000000000000000000000000000000000";

/// The digests that say an event's data is the same: `DEBUG DIGEST-VALUE`
/// of its keys (the state through the type's digest callback; the event
/// log's stream `NO_DIGEST` while the event keeps none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDigests {
    pub queue: String,
    pub state: String,
    pub log: String,
}

pub fn event_digests(con: &mut redis::Connection, event: &str) -> EventDigests {
    EventDigests {
        queue: digest_value(con, &queue_key(event)),
        state: digest_value(con, &state_key(event)),
        log: digest_value(con, &log_key(event)),
    }
}

/// `tq:{E}:events`, the event log's stream.
pub fn log_key(event: &str) -> String {
    format!("tq:{{{event}}}:events")
}

/// The log's entries: (id, fields) in order.
pub fn log_entries(
    con: &mut redis::Connection,
    event: &str,
) -> Vec<(String, BTreeMap<String, String>)> {
    let got: Vec<(String, Vec<(String, String)>)> =
        redis_query(con, &["XRANGE", &log_key(event), "-", "+"]);
    got.into_iter()
        .map(|(id, fields)| (id, fields.into_iter().collect()))
        .collect()
}

/// Each entry as `type field=value ...` (fields but `type` in name order).
pub fn told(con: &mut redis::Connection, event: &str) -> Vec<String> {
    log_entries(con, event)
        .into_iter()
        .map(|(_, fields)| {
            let mut line = fields["type"].clone();
            for (name, value) in fields.iter().filter(|(n, _)| *n != "type") {
                line += &format!(" {name}={value}");
            }
            line
        })
        .collect()
}

/// The names of the stored keys of `event` (`tq:{E}:*`), sorted.
pub fn event_keys(con: &mut redis::Connection, event: &str) -> Vec<String> {
    scan_keys(con, &format!("tq:{{{event}}}:*"))
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

/// `TYPE key`.
pub fn key_type(con: &mut redis::Connection, key: &str) -> String {
    redis::cmd("TYPE")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("TYPE {key}: {e}"))
}

/// Asserts the layout of `event`: its state key exists with tq's type,
/// and no key but `tq:{E}:queue` (a stream, when present), `tq:{E}:state`
/// and `tq:{E}:events` (a stream, when the event keeps a log) exists under
/// `tq:{E}:`.
pub fn assert_event_layout(con: &mut redis::Connection, event: &str) {
    let (queue, state, log) = (queue_key(event), state_key(event), log_key(event));
    let keys = event_keys(con, event);
    let stray: Vec<&String> = keys
        .iter()
        .filter(|k| **k != queue && **k != state && **k != log)
        .collect();
    assert!(
        stray.is_empty(),
        "{event}: keys beyond queue and state: {stray:?}"
    );
    assert!(keys.contains(&state), "{event}: no {state} among {keys:?}");
    assert_eq!(key_type(con, &state), STATE_TYPE, "TYPE {state}");
    for stream in [queue, log] {
        if keys.contains(&stream) {
            assert_eq!(key_type(con, &stream), "stream", "TYPE {stream}");
        }
    }
}

/// `XLEN tq:{E}:queue` (0 when the stream does not exist).
pub fn xlen(con: &mut redis::Connection, event: &str) -> i64 {
    redis_query(con, &["XLEN", &queue_key(event)])
}

/// `TQ.STATS event` as field -> value.
pub fn stats(con: &mut redis::Connection, event: &str) -> Vec<(String, Value)> {
    let reply = tq!(con, "TQ.STATS", event).unwrap_or_else(|e| panic!("TQ.STATS {event}: {e}"));
    map(&reply)
}

/// One integer field of `TQ.STATS event`.
pub fn stat(con: &mut redis::Connection, event: &str, name: &str) -> i64 {
    let reply = tq!(con, "TQ.STATS", event).unwrap_or_else(|e| panic!("TQ.STATS {event}: {e}"));
    int_field(&reply, name)
}

/// `TQ.STATS event` without `admission_rate`, which is a figure over a
/// sliding time window and so may move between two reads of the same data.
/// Every other field is a stored count or setting.
pub fn stored_stats(con: &mut redis::Connection, event: &str) -> Vec<(String, Value)> {
    stats(con, event)
        .into_iter()
        .filter(|(k, _)| k != "admission_rate")
        .collect()
}

/// `master_repl_offset` from INFO replication: how many bytes this server
/// has put on its replication stream.
pub fn master_repl_offset(con: &mut redis::Connection) -> i64 {
    info_field(con, "replication", "master_repl_offset")
        .expect("master_repl_offset")
        .parse()
        .expect("master_repl_offset is a number")
}

/// The commands (as words) of the server's AOF, in the order the manifest
/// lists its files; an RDB preamble (base `.rdb` file) is skipped.
pub fn aof_commands(server: &Server) -> Vec<Vec<Vec<u8>>> {
    let dir = server.dir.join("appendonlydir");
    let manifest = std::fs::read_dir(&dir)
        .expect("appendonlydir")
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".manifest"))
        .expect("AOF manifest");
    let mut commands = Vec::new();
    for line in std::fs::read_to_string(manifest).unwrap().lines() {
        // "file <name> seq <n> type <b|i|h>"
        let words: Vec<&str> = line.split(' ').collect();
        if words.len() < 2 || words[0] != "file" || !words[1].ends_with(".aof") {
            continue;
        }
        let bytes = std::fs::read(dir.join(words[1])).unwrap();
        commands.extend(parse_resp_commands(&bytes));
    }
    commands
}

/// Splits an AOF body (`*N $len word ...` arrays, `#` annotation lines)
/// into commands. A torn last command (kill -9) is dropped.
pub fn parse_resp_commands(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line(b: &[u8], at: &mut usize) -> Option<Vec<u8>> {
        let end = b[*at..].windows(2).position(|w| w == b"\r\n")? + *at;
        let l = b[*at..end].to_vec();
        *at = end + 2;
        Some(l)
    }
    let mut out = Vec::new();
    let mut at = 0;
    'commands: while at < bytes.len() {
        let Some(head) = line(bytes, &mut at) else {
            break;
        };
        if head.first() == Some(&b'#') {
            continue;
        }
        assert_eq!(head.first(), Some(&b'*'), "AOF: not a command at byte {at}");
        let n: usize = std::str::from_utf8(&head[1..]).unwrap().parse().unwrap();
        let mut words = Vec::with_capacity(n);
        for _ in 0..n {
            let Some(len) = line(bytes, &mut at) else {
                break 'commands;
            };
            let len: usize = std::str::from_utf8(&len[1..]).unwrap().parse().unwrap();
            if at + len + 2 > bytes.len() {
                break 'commands;
            }
            words.push(bytes[at..at + len].to_vec());
            at += len + 2;
        }
        out.push(words);
    }
    out
}

/// CRC-64 as Redis computes it for DUMP payloads and RDB files (crc64.c):
/// the "Jones" polynomial 0xad93d23594c935a9, input and output reflected,
/// initial value 0, no final xor. Bitwise (no table): the reflected form
/// shifts right and xors with the bit-reversed polynomial. Check value:
/// crc64(b"123456789") == 0xe9c6d914c4b8d9ca.
pub fn crc64(bytes: &[u8]) -> u64 {
    const REVERSED_JONES: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9 bit-reversed
    let mut crc = 0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ REVERSED_JONES
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A DUMP payload is `body | RDB version (2 bytes LE) | CRC-64 (8 bytes LE)
/// of everything before it`. Returns (body, version bytes), after checking
/// that the trailer is what `crc64` computes.
pub fn split_dump(payload: &[u8]) -> (Vec<u8>, [u8; 2]) {
    assert!(
        payload.len() > 10,
        "DUMP payload too short: {}",
        payload.len()
    );
    let (rest, crc) = payload.split_at(payload.len() - 8);
    assert_eq!(
        u64::from_le_bytes(crc.try_into().unwrap()),
        crc64(rest),
        "the test's crc64 does not match the server's DUMP trailer"
    );
    let (body, version) = rest.split_at(rest.len() - 2);
    (body.to_vec(), [version[0], version[1]])
}

/// A DUMP payload of `body` that RESTORE's CRC check accepts.
pub fn make_dump(body: &[u8], version: [u8; 2]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.extend_from_slice(&version);
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A `TQ.APPLY <event> <now_ms> [NEW <settings...>] [RESUME] [DRAW <hex>...]
/// <VERB> <args...>` record, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyRecord {
    pub event: String,
    pub now_ms: i64,
    pub verb: String,
    pub args: Vec<String>,
}

/// The record a command (as words) is, or None if it is no TQ.APPLY.
pub fn apply_record(words: &[Vec<u8>]) -> Option<ApplyRecord> {
    let words: Vec<String> = words
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    if !words.first()?.eq_ignore_ascii_case("TQ.APPLY") || words.len() < 4 {
        return None;
    }
    let mut at = 3;
    if words[at].eq_ignore_ascii_case("NEW") {
        at += 1;
        // `<SETTING> <value>` pairs (tq 0.3: bare values).
        const SETTINGS: [&str; 12] = [
            "RATE",
            "BURST",
            "HEARTBEAT",
            "HOLD-TTL",
            "DEDUPE-TTL",
            "OPENS-AT",
            "SESSION",
            "MAX-ACTIVE",
            "REQUIRE-PASS",
            "MAX-SEATS",
            "MAX-ENTRIES",
            "EVENTS",
        ];
        loop {
            let word = words.get(at)?;
            if word.parse::<i64>().is_ok() {
                at += 1;
            } else if SETTINGS.iter().any(|s| word.eq_ignore_ascii_case(s)) {
                at += 2;
            } else {
                break;
            }
        }
    }
    if words.get(at)?.eq_ignore_ascii_case("RESUME") {
        at += 1;
    }
    while words.get(at)?.eq_ignore_ascii_case("DRAW") {
        at += 2;
    }
    Some(ApplyRecord {
        event: words[1].clone(),
        now_ms: words[2].parse().ok()?,
        verb: words.get(at)?.to_ascii_uppercase(),
        args: words[at + 1..].to_vec(),
    })
}

// ---- the reference gateway (examples/gateway) ------------------------------

/// A `tq-gateway` process in front of `server`, on a free port; killed on
/// drop.
pub struct Gateway {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
}

impl Gateway {
    /// Starts target/release/tq-gateway with the seat layout `seats`
    /// (`TQ_SEATS`) and waits until it listens.
    pub fn start(server: &Server, seats: &str) -> Gateway {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/tq-gateway");
        assert!(
            binary.exists(),
            "{} is missing: build it (make test builds the workspace)",
            binary.display()
        );
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(binary)
            .env("TQ_REDIS_URL", format!("redis://127.0.0.1:{}", server.port))
            .env("TQ_GATEWAY_ADDR", &addr)
            .env("TQ_SEATS", seats)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tq-gateway runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "tq-gateway never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Gateway {
            child,
            base: format!("http://{addr}"),
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for a process started with piped stdout and stderr, reading both
/// meanwhile (a chatty one cannot fill a pipe and stall); kills it and
/// fails the test after `limit`. Returns its status, stdout and stderr.
pub fn run_to_end(
    mut child: std::process::Child,
    what: &str,
    limit: Duration,
) -> (std::process::ExitStatus, String, String) {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// The wall clock in unix milliseconds (the `*_at` values tq answers with).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
