//! contrib/grafana/tq-dashboard.json, the Grafana dashboard over what
//! redis_exporter exports with tq's `--script` (contrib/prometheus/tq-metrics.lua):
//! it is well-formed, has the panels the README promises, and every query
//! names only metrics that exist: `redis_script_values{key="tq_..."}` keys
//! that a real server's `INFO tq` has (after some traffic), and a short list
//! of redis_exporter's own metrics.

use crate::common::*;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashSet};

const DASHBOARD: &str = "contrib/grafana/tq-dashboard.json";
const GUIDE: &str = "contrib/grafana/README.md";
const SCRIPT: &str = "contrib/prometheus/tq-metrics.lua";

/// The only metric tq's fields come out as (one series per field, label `key`).
const SCRIPT_METRIC: &str = "redis_script_values";

/// redis_exporter's own metrics a query may use.
const EXPORTER_METRICS: &[&str] = &["redis_stream_length", "redis_up"];

/// The `--check-streams` pattern the guide tells to run redis_exporter with.
const CHECK_STREAMS: &str = "tq:{*}:queue";

/// The panels the dashboard must have, by title, with their unit.
const REQUIRED_PANELS: &[(&str, &str)] = &[
    // The seed's four.
    ("TQ.ENQUEUE latency p95 / p99", "µs"),
    ("Enqueue success / failure rate", "ops"),
    ("Stream length (waiting, all events)", "short"),
    ("Dedupe hit rate", "percent"),
    // The sale.
    ("Admissions/s", "ops"),
    ("Holds expired/s", "ops"),
    ("Passes active", "short"),
    ("Waiting per event", "short"),
];

/// The gauge of live passes; the "Passes active" panel shows it.
const PASSES_ACTIVE: &str = "tq_passes_active";

fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn dashboard() -> Json {
    serde_json::from_str(&repo_file(DASHBOARD))
        .unwrap_or_else(|e| panic!("{DASHBOARD} is not valid JSON: {e}"))
}

/// Every panel, those nested in rows too.
fn panels(dashboard: &Json) -> Vec<&Json> {
    let mut out = Vec::new();
    let top = dashboard["panels"]
        .as_array()
        .unwrap_or_else(|| panic!("{DASHBOARD}: no \"panels\" array"));
    for panel in top {
        if panel["type"] == "row" {
            out.extend(panel["panels"].as_array().into_iter().flatten());
        } else {
            out.push(panel);
        }
    }
    out
}

fn title(panel: &Json) -> &str {
    panel["title"].as_str().unwrap_or("<no title>")
}

/// Every PromQL query of the dashboard, with where it is: the panel targets'
/// `expr`, and the selector of each `label_values(...)` variable query.
fn queries(dashboard: &Json) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {:?}: a target without an expr", title(panel)));
            out.push((format!("panel {:?}", title(panel)), expr.to_string()));
        }
    }
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let query = match &var["query"] {
            Json::String(q) => q.as_str(),
            q => q["query"].as_str().unwrap_or(""),
        };
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.rsplit_once(','))
            .map(|(selector, _label)| selector.trim())
            .unwrap_or(query);
        out.push((format!("variable {:?}", var["name"]), inner.to_string()));
    }
    out
}

// ---- which metrics a PromQL expression names ----------------------------

/// Label matchers of a selector: (label, operator, unquoted value).
type Matchers = Vec<(String, String, String)>;

/// What one expression reads: each metric with the matchers of its selector.
type Selectors = Vec<(String, Matchers)>;

/// PromQL words that are not metric names: aggregations, operators and
/// modifiers (functions are told apart by the `(` after them).
const KEYWORDS: &[&str] = &[
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
];

/// Words followed by a list of label names in parentheses.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// A quoted string starting at `at` (`"`, `'` or a backtick); returns its
/// value and the index after it.
fn quoted(s: &[char], at: usize) -> Result<(String, usize), String> {
    let quote = s[at];
    let mut value = String::new();
    let mut i = at + 1;
    while i < s.len() {
        match s[i] {
            '\\' if quote != '`' && i + 1 < s.len() => {
                value.push(s[i + 1]);
                i += 2;
            }
            c if c == quote => return Ok((value, i + 1)),
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    Err(format!("unterminated string at {at}"))
}

/// The label matchers between `{` at `at` and its `}`; returns them and the
/// index after the `}`.
fn matchers(s: &[char], at: usize) -> Result<(Matchers, usize), String> {
    let mut out = Vec::new();
    let mut i = at + 1;
    loop {
        while i < s.len() && (s[i].is_whitespace() || s[i] == ',') {
            i += 1;
        }
        if i >= s.len() {
            return Err("unterminated selector".into());
        }
        if s[i] == '}' {
            return Ok((out, i + 1));
        }
        let start = i;
        while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
            i += 1;
        }
        let label: String = s[start..i].iter().collect();
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        let op_start = i;
        while i < s.len() && matches!(s[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = s[op_start..i].iter().collect();
        while i < s.len() && s[i].is_whitespace() {
            i += 1;
        }
        if label.is_empty() || !["=", "!=", "=~", "!~"].contains(&op.as_str()) {
            return Err(format!("bad matcher at {start}"));
        }
        if i >= s.len() || !matches!(s[i], '"' | '\'' | '`') {
            return Err(format!("matcher {label}{op} without a quoted value"));
        }
        let (value, next) = quoted(s, i)?;
        out.push((label, op, value));
        i = next;
    }
}

/// The index after the parenthesised group starting at `at`.
fn skip_parens(s: &[char], at: usize) -> usize {
    let mut depth = 0;
    let mut i = at;
    while i < s.len() {
        match s[i] {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The metrics `expr` reads, with their matchers. Strings, range and
/// subquery brackets, Grafana variables, numbers, functions, keywords and
/// label lists are skipped; every other word is a metric name.
fn selectors(expr: &str) -> Result<Selectors, String> {
    let s: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let next_non_space = |mut j: usize| {
        while j < s.len() && s[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < s.len() {
        let c = s[i];
        if matches!(c, '"' | '\'' | '`') {
            i = quoted(&s, i)?.1;
        } else if c == '[' {
            i = s[i..]
                .iter()
                .position(|&c| c == ']')
                .map(|p| i + p + 1)
                .ok_or("unterminated [")?;
        } else if c == '{' {
            return Err(format!("a selector without a metric name at {i}"));
        } else if c == '$' {
            // A Grafana variable ($__rate_interval, $instance).
            i += 1;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_') {
                i += 1;
            }
        } else if c.is_ascii_digit() || (c == '.' && s.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < s.len() && (s[i].is_alphanumeric() || s[i] == '_' || s[i] == ':') {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let after = next_non_space(i);
            let followed_by = s.get(after).copied();
            if LABEL_LISTS.contains(&word.as_str()) {
                if followed_by == Some('(') {
                    i = skip_parens(&s, after);
                }
            } else if KEYWORDS.contains(&word.as_str()) || followed_by == Some('(') {
                // An aggregation, operator or function: its arguments follow.
            } else if followed_by == Some('{') {
                let (m, next) = matchers(&s, after)?;
                out.push((word, m));
                i = next;
            } else {
                out.push((word, Vec::new()));
            }
        } else {
            i += 1;
        }
    }
    Ok(out)
}

/// The tq fields one expression names (the `key` values of its
/// `redis_script_values` selectors) and the other metrics it reads. A
/// `redis_script_values` selector must pick its keys by name: `key="X"`, or
/// `key=~"X|Y"` with plain names only.
fn uses(expr: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let mut keys = BTreeSet::new();
    let mut metrics = BTreeSet::new();
    for (metric, matchers) in selectors(expr)? {
        if metric != SCRIPT_METRIC {
            metrics.insert(metric);
            continue;
        }
        let key_matchers: Vec<_> = matchers.iter().filter(|(l, _, _)| l == "key").collect();
        if key_matchers.len() != 1 {
            return Err(format!("{SCRIPT_METRIC} without exactly one key matcher"));
        }
        let (_, op, value) = key_matchers[0];
        let names: Vec<&str> = match op.as_str() {
            "=" => vec![value.as_str()],
            "=~" => value.split('|').collect(),
            _ => return Err(format!("key{op}: name the keys with = or =~\"a|b\"")),
        };
        for name in names {
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !plain {
                return Err(format!("key {name:?} is a pattern, not a field name"));
            }
            keys.insert(name.to_string());
        }
    }
    Ok((keys, metrics))
}

#[test]
fn the_promql_scanner_finds_metrics_and_keys() {
    let (keys, metrics) = uses(
        r#"100 * sum by (instance) (rate(redis_script_values{instance=~"$instance", key="tq_a"}[$__rate_interval])) / on (instance) group_left sum(rate(redis_script_values{key=~"tq_b|tq_c"}[5m])) or vector(0)"#,
    )
    .unwrap();
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        ["tq_a", "tq_b", "tq_c"]
    );
    assert!(metrics.is_empty(), "{metrics:?}");
    let (keys, metrics) = uses(
        r#"label_replace(redis_stream_length{stream=~"tq:[{].+[}]:queue"}, "event", "$1", "stream", "x") + bare_metric offset 5m"#,
    )
    .unwrap();
    assert!(keys.is_empty());
    assert_eq!(
        metrics.into_iter().collect::<Vec<_>>(),
        ["bare_metric", "redis_stream_length"]
    );
    assert!(uses(r#"redis_script_values{key=~"tq_.+"}"#).is_err());
    assert!(uses(r#"redis_script_values{instance="x"}"#).is_err());
    assert!(uses(r#"redis_script_values{key!="tq_a"}"#).is_err());
    assert!(uses(r#"{__name__="redis_up"}"#).is_err());
}

// ---- the dashboard's shape ----------------------------------------------

#[test]
fn the_dashboard_is_well_formed_and_has_the_promised_panels() {
    let d = dashboard();
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion {}",
        d["schemaVersion"]
    );
    for field in ["title", "uid"] {
        assert!(
            d[field].as_str().is_some_and(|s| !s.is_empty()),
            "no {field}"
        );
    }
    // A data source variable and an instance variable that queries it.
    let vars: BTreeMap<&str, &Json> = d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| (v["name"].as_str().unwrap_or(""), v))
        .collect();
    let ds = vars.get("datasource").expect("a `datasource` variable");
    assert_eq!(
        (ds["type"].as_str(), ds["query"].as_str()),
        (Some("datasource"), Some("prometheus"))
    );
    let instance = vars.get("instance").expect("an `instance` variable");
    assert_eq!(instance["type"], "query");
    assert_eq!(instance["datasource"]["uid"], "${datasource}");

    let panels = panels(&d);
    let mut ids = HashSet::new();
    for panel in &panels {
        let t = title(panel);
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "{t}: id used twice"
        );
        assert!(
            ["timeseries", "stat"].contains(&panel["type"].as_str().unwrap_or("")),
            "{t}: type {}",
            panel["type"]
        );
        for k in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][k].is_u64(), "{t}: gridPos.{k}");
        }
        let x = panel["gridPos"]["x"].as_u64().unwrap();
        let w = panel["gridPos"]["w"].as_u64().unwrap();
        assert!(x + w <= 24, "{t}: wider than the grid");
        assert_eq!(panel["datasource"]["type"], "prometheus", "{t}: datasource");
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{t}: datasource"
        );
        assert!(
            panel["fieldConfig"]["defaults"]["unit"].is_string(),
            "{t}: no unit"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{t}: no target");
        let mut refs = HashSet::new();
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or("");
            assert!(!expr.trim().is_empty(), "{t}: an empty expr");
            assert!(
                refs.insert(target["refId"].as_str().expect("refId")),
                "{t}: refId used twice"
            );
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "{t}: target datasource"
            );
        }
    }
    let by_title: BTreeMap<&str, &Json> = panels.iter().map(|p| (title(p), *p)).collect();
    assert_eq!(by_title.len(), panels.len(), "two panels with one title");
    for (t, unit) in REQUIRED_PANELS {
        let panel = by_title
            .get(t)
            .unwrap_or_else(|| panic!("no panel {t:?}; panels: {:?}", by_title.keys()));
        assert_eq!(panel["fieldConfig"]["defaults"]["unit"], *unit, "{t}: unit");
    }
    // Every selector is scoped to the chosen instances.
    for (place, expr) in queries(&d) {
        if place.starts_with("variable") {
            continue;
        }
        for (metric, matchers) in selectors(&expr).unwrap() {
            assert!(
                matchers
                    .iter()
                    .any(|(l, op, v)| l == "instance" && op == "=~" && v == "$instance"),
                "{place}: {metric} is not filtered by instance=~\"$instance\": {expr}"
            );
        }
    }
}

// ---- every metric named exists ------------------------------------------

/// `INFO tq` as field -> value.
fn info_tq(con: &mut redis::Connection) -> BTreeMap<String, String> {
    let text: String = redis_query(con, &["INFO", "tq"]);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs `words`, which must fail with `code`.
fn refused(con: &mut redis::Connection, code_wanted: &str, words: &[&str]) {
    let words: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    let got = call_args(con, &words);
    assert_eq!(code(&got), code_wanted, "{words:?}");
}

fn ok(con: &mut redis::Connection, words: &[&str]) -> Value {
    let words_b: Vec<Vec<u8>> = words.iter().map(|w| w.as_bytes().to_vec()).collect();
    call_args(con, &words_b).unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

/// Traffic through the TQ commands so that the fields a dashboard shows
/// appear, the error fields too (they appear once the error was seen).
fn sale_traffic(con: &mut redis::Connection) {
    // A sale: joins, a duplicate, an admission with its pass, a hold, a
    // taken seat, a purchase.
    ok(con, &["TQ.INVENTORY", "ev", "SET", "10"]);
    ok(con, &["TQ.ENQUEUE", "ev", "u1", "t1", "DEDUPE", "r1"]);
    refused(con, "DUPLICATE", &["TQ.ENQUEUE", "ev", "u1", "t1"]);
    ok(con, &["TQ.ENQUEUE", "ev", "u2", "t2"]);
    ok(con, &["TQ.ENQUEUE", "ev", "u3", "t3"]);
    ok(con, &["TQ.POSITION", "ev", "t1"]);
    ok(con, &["TQ.ENTER", "ev", "t1"]);
    let pass = ok(con, &["TQ.PASS", "ev", "u1"]);
    assert_eq!(int_field(&pass, "active"), 1);
    ok(con, &["TQ.HOLD", "ev", "A-1", "u1"]);
    refused(con, "SEAT_UNAVAILABLE", &["TQ.HOLD", "ev", "A-1", "u2"]);
    ok(con, &["TQ.CONFIRM", "ev", "A-1", "u1"]);
    refused(con, "NOT_QUEUED", &["TQ.ENTER", "ev", "no-such-token"]);
    ok(con, &["TQ.STATS", "ev"]);
    // NOT_READY: an empty bucket.
    ok(con, &["TQ.CONFIG", "slow", "RATE", "0", "BURST", "1"]);
    ok(con, &["TQ.ENQUEUE", "slow", "u1", "s1"]);
    ok(con, &["TQ.ENQUEUE", "slow", "u2", "s2"]);
    refused(con, "NOT_READY", &["TQ.ENTER", "slow", "s2"]);
    // NOT_OPEN: a scheduled opening (2100-01-01).
    ok(con, &["TQ.CONFIG", "later", "OPENS-AT", "4102444800000"]);
    ok(con, &["TQ.ENQUEUE", "later", "u1", "l1"]);
    refused(con, "NOT_OPEN", &["TQ.ENTER", "later", "l1"]);
    // SOLD_OUT: the one seat sold.
    ok(con, &["TQ.INVENTORY", "gone", "SET", "1"]);
    ok(con, &["TQ.ENQUEUE", "gone", "u1", "g1"]);
    ok(con, &["TQ.HOLD", "gone", "A-1", "u0"]);
    ok(con, &["TQ.CONFIRM", "gone", "A-1", "u0"]);
    refused(con, "SOLD_OUT", &["TQ.ENTER", "gone", "g1"]);
    refused(con, "SOLD_OUT", &["TQ.HOLD", "gone", "A-2", "u2"]);
    // NO_PASS and LIMIT.
    ok(
        con,
        &["TQ.CONFIG", "strict", "REQUIRE-PASS", "1", "MAX-SEATS", "1"],
    );
    ok(con, &["TQ.INVENTORY", "strict", "SET", "10"]);
    refused(con, "NO_PASS", &["TQ.HOLD", "strict", "A-1", "bob"]);
    ok(con, &["TQ.ENQUEUE", "strict", "bob", "b1"]);
    ok(con, &["TQ.ENTER", "strict", "b1"]);
    ok(con, &["TQ.HOLD", "strict", "A-1", "bob"]);
    refused(con, "LIMIT", &["TQ.HOLD", "strict", "A-2", "bob"]);
}

#[test]
fn every_field_the_dashboard_names_is_one_tq_exports() {
    let d = dashboard();
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (place, expr) in queries(&d) {
        let (k, metrics) = uses(&expr).unwrap_or_else(|e| panic!("{place}: {e}: {expr}"));
        for metric in metrics {
            assert!(
                EXPORTER_METRICS.contains(&metric.as_str()),
                "{place} reads {metric}, which is neither {SCRIPT_METRIC} nor one of \
                 redis_exporter's metrics this dashboard may use ({EXPORTER_METRICS:?}): {expr}"
            );
        }
        for key in k {
            assert!(key.starts_with("tq_"), "{place}: key {key} is no tq field");
            keys.entry(key).or_default().push(place.clone());
        }
    }
    assert!(keys.contains_key("tq_enqueue_calls"), "{keys:?}");

    let server = Server::start();
    let mut con = server.client();
    sale_traffic(&mut con);
    let info = info_tq(&mut con);
    // What the exporter gets: the script's key/value pairs.
    let script: Vec<String> = redis::cmd("EVAL")
        .arg(repo_file(SCRIPT))
        .arg(0)
        .query(&mut con)
        .expect("EVAL tq-metrics.lua");
    let exported: BTreeMap<&str, &str> = script
        .chunks(2)
        .map(|kv| (kv[0].as_str(), kv[1].as_str()))
        .collect();

    let missing: Vec<String> = keys
        .iter()
        .filter(|(k, _)| !info.contains_key(*k))
        .map(|(k, places)| format!("{k} (in {})", places.join(", ")))
        .collect();
    if !missing.is_empty() {
        let passes_note = if !info.contains_key(PASSES_ACTIVE) && keys.contains_key(PASSES_ACTIVE) {
            format!(
                "\nINFO tq has no {PASSES_ACTIVE} yet: the gauge of the passes the server's \
                 events hold, which the \"Passes active\" panel shows, is still to be added \
                 to INFO tq (src/glue/metrics.rs)."
            )
        } else {
            String::new()
        };
        panic!(
            "the dashboard names fields INFO tq does not have:\n  {}{passes_note}\nINFO tq \
             has: {:?}",
            missing.join("\n  "),
            info.keys().collect::<Vec<_>>()
        );
    }
    for key in keys.keys() {
        let value = exported.get(key.as_str()).unwrap_or_else(|| {
            panic!(
                "{key} is in INFO tq ({:?}) but {SCRIPT} does not export it",
                info[key]
            )
        });
        assert!(value.parse::<f64>().is_ok(), "{key}:{value} is not numeric");
    }
    // The traffic left live passes (u1's and bob's).
    let live: f64 = info[PASSES_ACTIVE].parse().unwrap();
    assert!(live >= 1.0, "{PASSES_ACTIVE}:{live} after two admissions");
}

/// "Waiting per event" and "Stream length" read redis_stream_length, which
/// redis_exporter gives for the streams its `--check-streams` pattern finds
/// by SCAN, with XINFO STREAM and XINFO GROUPS. The guide's pattern finds
/// exactly the events' queue streams, and the exporter's calls work on them.
#[test]
fn the_guide_s_check_streams_pattern_finds_the_queues() {
    let guide = repo_file(GUIDE);
    assert!(
        guide.contains(&format!("--check-streams='{CHECK_STREAMS}'")),
        "{GUIDE} does not run redis_exporter with --check-streams='{CHECK_STREAMS}'"
    );
    let d = dashboard();
    let mut stream_queries = 0;
    for (place, expr) in queries(&d) {
        for (metric, matchers) in selectors(&expr).unwrap() {
            if metric == "redis_stream_length" {
                stream_queries += 1;
                assert!(
                    matchers
                        .iter()
                        .any(|(l, op, v)| l == "stream" && op == "=~" && v == "tq:[{].+[}]:queue"),
                    "{place}: redis_stream_length without stream=~\"tq:[{{].+[}}]:queue\""
                );
            }
        }
    }
    assert!(stream_queries >= 2, "{stream_queries} stream queries");

    let server = Server::start();
    let mut con = server.client();
    sale_traffic(&mut con);
    // An event log stream, which the pattern must not pick.
    ok(&mut con, &["TQ.CONFIG", "ev", "EVENTS", "100"]);
    ok(&mut con, &["TQ.ENTER", "ev", "t2"]);
    let mut found: Vec<String> = scan_keys(&mut con, CHECK_STREAMS)
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found,
        ["ev", "gone", "later", "slow", "strict"].map(queue_key),
        "SCAN MATCH {CHECK_STREAMS}"
    );
    assert!(
        !scan_keys(&mut con, "tq:{*}:events").is_empty(),
        "no event log stream to tell apart"
    );
    for key in &found {
        let xlen: i64 = redis_query(&mut con, &["XLEN", key]);
        let info: Value = redis_query(&mut con, &["XINFO", "STREAM", key]);
        assert_eq!(int_field(&info, "length"), xlen, "{key}");
        let _groups: Value = redis_query(&mut con, &["XINFO", "GROUPS", key]);
    }
    let event = "ev";
    assert_eq!(
        xlen(&mut con, event),
        stat(&mut con, event, "waiting"),
        "XLEN = waiting"
    );
}
