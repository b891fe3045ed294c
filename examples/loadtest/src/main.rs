//! tq-loadtest: an end-to-end load test of a sale through tq-gateway, with
//! goose. Each simulated fan joins, polls its place at the interval the
//! gateway tells the page (`poll_ms`), enters when ready, looks at the seat
//! map, holds one or two free seats and confirms them; then a new fan
//! starts. At the end it prints goose's figures per route (requests/s,
//! percentiles), the answers by error code, the Redis server's CPU seconds,
//! and checks the sale's invariant on the server; it exits non-zero on a
//! breach or an answer no fan should get.
//!
//! Goose's own options are the command line (`--users`, `--hatch-rate`,
//! `--run-time`, `--host`, ...; `--help`); the rest is environment:
//! `TQ_REDIS_URL` (the gateway's Redis, for the set-up and the checks),
//! `TQ_EVENT` (the sale's event, default `loadtest`) and
//! `TQ_LOADTEST_SEATS` (the seats the sale has, which the invariant checks).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use goose::prelude::*;
use parking_lot::Mutex;
use rand::seq::SliceRandom;
use serde_json::{json, Value};

static NEXT_FAN: AtomicU64 = AtomicU64::new(0);
/// Answers by route and error code (`hold seat_unavailable`, ...).
static ANSWERS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());
/// Seats the gateway said were confirmed.
static CONFIRMED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// What a fan may be told in a busy sale: a seat taken just before, the
/// sale over, a place not ready after all. Anything else is a failure.
const EXPECTED: [&str; 4] = ["seat_unavailable", "sold_out", "not_ready", "limit"];

fn event() -> String {
    std::env::var("TQ_EVENT").unwrap_or_else(|_| "loadtest".into())
}

/// One request, named by route; an expected error answer counts as a
/// success for goose (it is the sale working) and is tallied by code.
async fn call(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &'static str,
    body: Option<Value>,
) -> Result<(u16, Value), Box<TransactionError>> {
    let mut builder = user.get_request_builder(&method, path)?;
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(builder)
        .build();
    let mut goose = user.request(request).await?;
    let response = match goose.response {
        Ok(r) => r,
        Err(e) => {
            tally(name, "transport");
            return Err(Box::new(TransactionError::Reqwest(e)));
        }
    };
    let status = response.status().as_u16();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if status >= 400 {
        let code = value["error"].as_str().unwrap_or("no_json").to_string();
        tally(name, &code);
        if EXPECTED.contains(&code.as_str()) {
            user.set_success(&mut goose.request)?;
        } else {
            user.set_failure(&code, &mut goose.request, None, None)?;
        }
    }
    Ok((status, value))
}

fn tally(route: &str, code: &str) {
    *ANSWERS.lock().entry(format!("{route} {code}")).or_default() += 1;
}

/// One fan's whole way through the sale.
async fn fan(user: &mut GooseUser) -> TransactionResult {
    let ev = event();
    let name = format!("fan-{}", NEXT_FAN.fetch_add(1, Ordering::Relaxed));
    let (status, joined) = call(
        user,
        GooseMethod::Post,
        "/api/v1/queue/join",
        "join",
        Some(json!({"event": ev, "user": name})),
    )
    .await?;
    if status != 202 {
        // Sold out (or refused): the page says so and the fan stops a while.
        tokio::time::sleep(Duration::from_secs(2)).await;
        return Ok(());
    }
    let token = joined["token"].as_str().unwrap_or_default().to_string();
    let status_path = format!("/api/v1/queue/status?event={ev}&token={token}");
    loop {
        let (status, pos) = call(user, GooseMethod::Get, &status_path, "status", None).await?;
        if status != 200 || pos["sold_out"] == 1 {
            return Ok(());
        }
        if pos["ready"] == 1 {
            break;
        }
        let wait = pos["poll_ms"].as_u64().unwrap_or(1_000);
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let body = json!({"event": ev, "token": token});
    let (status, _) = call(
        user,
        GooseMethod::Post,
        "/api/v1/queue/enter",
        "enter",
        Some(body),
    )
    .await?;
    if status != 200 {
        return Ok(());
    }
    for _attempt in 0..3 {
        let map_path = format!("/api/v1/events/{ev}/seats");
        let (_, map) = call(user, GooseMethod::Get, &map_path, "seats", None).await?;
        let free: Vec<String> = map["seats"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["state"] == "available")
            .filter_map(|s| s["seat"].as_str().map(String::from))
            .collect();
        if free.is_empty() {
            return Ok(());
        }
        let want = if rand::random::<bool>() { 2 } else { 1 };
        let seats: Vec<String> = free
            .choose_multiple(&mut rand::thread_rng(), want.min(free.len()))
            .cloned()
            .collect();
        let body = json!({"event": ev, "user": name, "seats": seats, "ttl": 60});
        let (status, _) = call(
            user,
            GooseMethod::Post,
            "/api/v1/seats/hold",
            "hold",
            Some(body),
        )
        .await?;
        match status {
            200 => {}
            409 => continue, // taken meanwhile: look again
            _ => return Ok(()),
        }
        let body = json!({"event": ev, "user": name, "seats": seats});
        let (status, _) = call(
            user,
            GooseMethod::Post,
            "/api/v1/seats/confirm",
            "confirm",
            Some(body),
        )
        .await?;
        if status == 200 {
            CONFIRMED.lock().extend(seats);
        }
        return Ok(());
    }
    Ok(())
}

/// Requests/s and p50/p95/p99 per route (goose's own table has no p95).
fn print_routes(metrics: &GooseMetrics) {
    let seconds = metrics.duration.max(1) as f64;
    println!("== per route ({seconds:.0} s)");
    println!("| route | requests | req/s | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut routes: Vec<_> = metrics.requests.iter().collect();
    routes.sort_by(|a, b| a.0.cmp(b.0));
    for (name, agg) in routes {
        let times = &agg.raw_data.times;
        let total: usize = times.values().sum();
        let quantile = |q: f64| {
            let rank = ((q * total as f64).ceil() as usize).max(1);
            let mut seen = 0;
            times
                .iter()
                .find(|(_, n)| {
                    seen += **n;
                    seen >= rank
                })
                .map_or(0, |(ms, _)| *ms)
        };
        println!(
            "| {name} | {total} | {:.1} | {} | {} | {} | {} |",
            total as f64 / seconds,
            quantile(0.50),
            quantile(0.95),
            quantile(0.99),
            agg.raw_data.maximum_time
        );
    }
}

fn redis_cpu_seconds(con: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(con).unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "used_cpu_sys" || *k == "used_cpu_user")
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum()
}

fn stats(con: &mut redis::Connection, ev: &str) -> BTreeMap<String, i64> {
    let reply: Vec<redis::Value> = redis::cmd("TQ.STATS").arg(ev).query(con).expect("TQ.STATS");
    reply
        .chunks(2)
        .filter_map(|pair| match pair {
            [redis::Value::BulkString(k), redis::Value::Int(v)] => {
                Some((String::from_utf8_lossy(k).into_owned(), *v))
            }
            _ => None,
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let ev = event();
    let url = std::env::var("TQ_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut con = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| {
            eprintln!("tq-loadtest: cannot reach Redis at {url}: {e}");
            std::process::exit(2)
        });
    let seats: i64 = std::env::var("TQ_LOADTEST_SEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            eprintln!("tq-loadtest: set TQ_LOADTEST_SEATS to the sale's seats");
            std::process::exit(2)
        });
    let cpu_before = redis_cpu_seconds(&mut con);

    let metrics = GooseAttack::initialize()?
        .register_scenario(scenario!("Fan").register_transaction(transaction!(fan)))
        .set_default(GooseDefault::Users, 1000)?
        .set_default(GooseDefault::HatchRate, "200")?
        .set_default(GooseDefault::RunTime, 30)?
        .set_default(GooseDefault::Host, "http://127.0.0.1:8080")?
        .execute()
        .await?;
    println!("{metrics}");
    print_routes(&metrics);

    let cpu = redis_cpu_seconds(&mut con) - cpu_before;
    println!("== tq-loadtest: the sale {ev}");
    println!("Redis server CPU seconds during the run: {cpu:.2}");
    println!("answers by route and error code:");
    let answers = ANSWERS.lock().clone();
    for (what, n) in &answers {
        println!("  {what}: {n}");
    }
    // The sale's invariant, on the server.
    let s = stats(&mut con, &ev);
    let f = |k: &str| s.get(k).copied().unwrap_or(0);
    let confirmed = CONFIRMED.lock().clone();
    let distinct: BTreeSet<&String> = confirmed.iter().collect();
    let mut breaches = Vec::new();
    let seats_total = f("inventory") + f("held") + f("sold");
    if seats_total != seats {
        breaches.push(format!(
            "inventory + held + sold = {seats_total}, the sale had {seats}"
        ));
    }
    if distinct.len() != confirmed.len() {
        breaches.push(format!(
            "{} seats confirmed to two fans",
            confirmed.len() - distinct.len()
        ));
    }
    if f("sold") != confirmed.len() as i64 {
        breaches.push(format!(
            "the server sold {} seats, the fans were told {}",
            f("sold"),
            confirmed.len()
        ));
    }
    let accounted = f("waiting") + f("admitted") + f("abandoned") + f("left") + f("trimmed");
    if f("joined") != accounted {
        breaches.push(format!(
            "joined {} != waiting + admitted + abandoned + left + trimmed = {accounted}",
            f("joined")
        ));
    }
    let unexpected: Vec<String> = answers
        .iter()
        .filter(|(what, _)| {
            let code = what.split(' ').nth(1).unwrap_or("");
            !EXPECTED.contains(&code)
        })
        .map(|(what, n)| format!("{what} x{n}"))
        .collect();
    if !unexpected.is_empty() {
        breaches.push(format!(
            "answers no fan should get: {}",
            unexpected.join(", ")
        ));
    }
    println!(
        "figures: joined {}, admitted {}, sold {}, held {}, inventory {}, waiting {}",
        f("joined"),
        f("admitted"),
        f("sold"),
        f("held"),
        f("inventory"),
        f("waiting")
    );
    if breaches.is_empty() {
        println!("invariant: ok");
        Ok(())
    } else {
        for b in &breaches {
            println!("invariant BREACHED: {b}");
        }
        std::process::exit(1)
    }
}
