//! tq-gateway: a reference HTTP gateway for a ticket sale on Redis with
//! the tq module. Each route is one or a few TQ commands; the sale's rules
//! (fair admission, passes, holds that expire, group checkout) are tq's.
//!
//! Configuration (environment):
//! - `TQ_REDIS_URL` (default `redis://127.0.0.1:6379`)
//! - `TQ_GATEWAY_ADDR` (default `127.0.0.1:8080`)
//! - `TQ_SEATS`: the seat layout, rows as `<row>:<seats>` separated by
//!   commas (default `A:12,B:12,C:12,D:12`: seats `A-1` .. `D-12`).

mod error;
mod tq;

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};

use error::ApiError;
use tq::{int, map_reply, Tq};

struct App {
    tq: Tq,
    /// The seat layout, in map order.
    seats: Vec<String>,
    /// The same seats, to refuse a name the layout does not have (tq would
    /// sell any seat name out of the inventory).
    layout: HashSet<String>,
}

type Shared = State<Arc<App>>;
type Reply = Result<Json<Json_>, ApiError>;

#[tokio::main]
async fn main() {
    let url = env_or("TQ_REDIS_URL", "redis://127.0.0.1:6379");
    let addr = env_or("TQ_GATEWAY_ADDR", "127.0.0.1:8080");
    let layout = env_or("TQ_SEATS", "A:12,B:12,C:12,D:12");
    let seats = match seat_layout(&layout) {
        Ok(seats) => seats,
        Err(why) => fail(&format!("TQ_SEATS: {why}")),
    };
    let tq = Tq::new(&url).unwrap_or_else(|e| fail(&format!("TQ_REDIS_URL: {e}")));
    let layout = seats.iter().cloned().collect();
    let app = Arc::new(App { tq, seats, layout });
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}")));
    println!("tq-gateway: http://{addr}/ (Redis {url})");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
}

fn fail(why: &str) -> ! {
    eprintln!("tq-gateway: {why}");
    std::process::exit(2)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// `A:12,B:10` -> A-1 .. A-12, B-1 .. B-10.
fn seat_layout(layout: &str) -> Result<Vec<String>, String> {
    let mut seats = Vec::new();
    for row in layout.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let (name, count) = row
            .split_once(':')
            .ok_or_else(|| format!("'{row}' is not <row>:<seats>"))?;
        let count: usize = count
            .parse()
            .map_err(|_| format!("'{count}' is not a number of seats"))?;
        if name.is_empty() || count == 0 || count > 1000 {
            return Err(format!("'{row}': a row needs a name and 1..1000 seats"));
        }
        seats.extend((1..=count).map(|n| format!("{name}-{n}")));
    }
    if seats.is_empty() {
        return Err("no seats".into());
    }
    Ok(seats)
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(|| page(INDEX, "text/html; charset=utf-8")))
        .route(
            "/app.js",
            get(|| page(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route("/style.css", get(|| page(STYLE, "text/css; charset=utf-8")))
        .route("/api/v1/queue/join", post(join))
        .route("/api/v1/queue/status", get(status))
        .route("/api/v1/queue/enter", post(enter))
        .route("/api/v1/queue/leave", delete(leave))
        .route("/api/v1/seats/hold", post(hold))
        .route("/api/v1/seats/confirm", post(confirm))
        .route("/api/v1/seats/release", post(release))
        .route("/api/v1/seats/extend", post(extend))
        .route("/api/v1/events/:event/stats", get(stats))
        .route("/api/v1/events/:event/seats", get(seats))
        .with_state(app)
}

// ---- the waiting-room page --------------------------------------------------

// The page is three static files built into the binary: the event comes
// from the address (`/?event=concert`), everything else from the API.
const INDEX: &str = include_str!("../static/index.html");
const APP_JS: &str = include_str!("../static/app.js");
const STYLE: &str = include_str!("../static/style.css");

async fn page(text: &'static str, content_type: &'static str) -> impl axum::response::IntoResponse {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
}

fn body<T>(payload: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    payload
        .map(|Json(t)| t)
        .map_err(|e| ApiError::bad_input(&e.body_text()))
}

/// A name the API takes (event, user, token, seat): 1..200 bytes here, tq
/// checks the rest.
fn name<'a>(what: &str, value: &'a str) -> Result<&'a str, ApiError> {
    if value.is_empty() || value.len() > 200 {
        return Err(ApiError::bad_input(&format!("{what} must be 1..200 bytes")));
    }
    Ok(value)
}

// ---- waiting room -----------------------------------------------------------

#[derive(Deserialize)]
struct JoinBody {
    event: String,
    user: String,
}

/// POST /api/v1/queue/join {event, user}. With an `Idempotency-Key`, a
/// retry of the same request (the same user and key, say after a lost
/// reply) answers the place the first one took, while it waits; keys of
/// different users never meet.
async fn join(
    State(app): Shared,
    headers: HeaderMap,
    payload: Result<Json<JoinBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let b = body(payload)?;
    let (event, user) = (name("event", &b.event)?, name("user", &b.user)?);
    let token = uuid::Uuid::new_v4().to_string();
    let mut words = vec!["TQ.ENQUEUE", event, user, &token];
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_input("Idempotency-Key must be text"))
        })
        .transpose()?;
    let dedupe = match key {
        // The user's length first, so that no user and key run together
        // into another pair's id.
        Some(key) => Some(format!(
            "{}:{user}{}",
            user.len(),
            name("Idempotency-Key", key)?
        )),
        None => None,
    };
    if let Some(dedupe) = &dedupe {
        words.extend(["DEDUPE", dedupe]);
    }
    match app.tq.call(&words).await {
        Ok(reply) => {
            let mut joined = map_reply(&reply)?;
            joined.insert("token".into(), json!(token));
            Ok((StatusCode::ACCEPTED, Json(Json_::Object(joined))))
        }
        Err(e) if e.code == "duplicate" && dedupe.is_some() => {
            match waiting_entry(&app, event, user, &e.detail).await? {
                Some(first) => Ok((StatusCode::ACCEPTED, Json(first))),
                None => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// The user's waiting entry with stream id `id`, as a join answers it
/// (`TQ.USER` lists the user's entries in queue order).
async fn waiting_entry(
    app: &App,
    event: &str,
    user: &str,
    id: &str,
) -> Result<Option<Json_>, ApiError> {
    let redis::Value::Array(entries) = app.tq.call(&["TQ.USER", event, user]).await? else {
        return Err(ApiError::internal("expected an array reply"));
    };
    for (place, entry) in entries.iter().enumerate() {
        let entry = map_reply(entry)?;
        if entry.get("id").and_then(Json_::as_str) == Some(id) {
            return Ok(Some(json!({
                "token": entry.get("token"),
                "id": id,
                "position": entry.get("position"),
                "user_position": place + 1,
            })));
        }
    }
    Ok(None)
}

/// A waiting fan's token: the query of status, the body of enter and leave.
#[derive(Deserialize)]
struct EventToken {
    event: String,
    token: String,
}

/// GET /api/v1/queue/status?event=&token=: TQ.POSITION, and how long the
/// page should wait before asking again (`poll_ms`).
async fn status(State(app): Shared, query: Result<Query<EventToken>, QueryRejection>) -> Reply {
    let Query(q) = query.map_err(|e| ApiError::bad_input(&e.body_text()))?;
    let (event, token) = (name("event", &q.event)?, name("token", &q.token)?);
    // The event's heartbeat in the same round trip: the page must poll
    // well within it or tq counts the fan as gone.
    let mut pipe = redis::pipe();
    pipe.cmd("TQ.POSITION").arg(event).arg(token);
    pipe.cmd("TQ.CONFIG").arg(event);
    let replies = app.tq.pipeline(&pipe).await?;
    let [position, config] = &replies[..] else {
        return Err(ApiError::internal("expected two replies"));
    };
    let mut position = map_reply(position)?;
    let heartbeat_s = map_reply(config)?
        .get("heartbeat")
        .and_then(Json_::as_i64)
        .unwrap_or(0);
    let poll_ms = poll_interval_ms(&position, heartbeat_s * 1000);
    position.insert("poll_ms".into(), json!(poll_ms));
    Ok(Json(Json_::Object(position)))
}

/// Often enough to see the wait move, seldom enough to spare the server:
/// a quarter of the estimated wait, 1 to 5 seconds; up to the opening's
/// moment before a scheduled opening. Never more than a third of the
/// event's heartbeat, so that one late poll does not lose the place.
fn poll_interval_ms(position: &Map<String, Json_>, heartbeat_ms: i64) -> i64 {
    let field = |name: &str| position.get(name).and_then(Json_::as_i64).unwrap_or(-1);
    let (ready, eta, opens_in) = (field("ready"), field("eta_ms"), field("opens_in_ms"));
    let wanted = if opens_in > 0 {
        opens_in.clamp(250, 5_000)
    } else if ready == 1 {
        1_000
    } else if eta < 0 {
        3_000
    } else {
        (eta / 4).clamp(1_000, 5_000)
    };
    if heartbeat_ms > 0 {
        wanted.min((heartbeat_ms / 3).max(250))
    } else {
        wanted
    }
}

/// POST /api/v1/queue/enter {event, token}: {pass, expires_at, position_was}.
async fn enter(State(app): Shared, payload: Result<Json<EventToken>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    let words = [
        "TQ.ENTER",
        name("event", &b.event)?,
        name("token", &b.token)?,
    ];
    let admitted = map_reply(&app.tq.call(&words).await?)?;
    Ok(Json(json!({
        "pass": admitted.get("pass"),
        "expires_at": admitted.get("expires_at"),
        "position_was": admitted.get("position_was"),
    })))
}

/// DELETE /api/v1/queue/leave {event, token}: {left: true|false}.
async fn leave(State(app): Shared, payload: Result<Json<EventToken>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    let words = [
        "TQ.LEAVE",
        name("event", &b.event)?,
        name("token", &b.token)?,
    ];
    let left = int(&app.tq.call(&words).await?)?;
    Ok(Json(json!({ "left": left == 1 })))
}

// ---- seats ------------------------------------------------------------------

#[derive(Deserialize)]
struct SeatsBody {
    event: String,
    user: String,
    seats: Vec<String>,
    ttl: Option<u64>,
}

impl SeatsBody {
    /// `<VERB> event seat user [TTL ttl] [WITH seat...]`. The seats must be
    /// the venue's: tq would hold and sell any name out of the inventory
    /// (it checks the rest of the list itself).
    fn command(&self, app: &App, verb: &str, ttl: Option<u64>) -> Result<redis::Cmd, ApiError> {
        let (first, others) = self.venue_seats(app)?;
        let mut cmd = redis::cmd(verb);
        cmd.arg(name("event", &self.event)?)
            .arg(first)
            .arg(name("user", &self.user)?);
        if let Some(ttl) = ttl {
            cmd.arg("TTL").arg(ttl);
        }
        if !others.is_empty() {
            cmd.arg("WITH").arg(others);
        }
        Ok(cmd)
    }

    /// The first seat and the others, if every one is the venue's.
    fn venue_seats(&self, app: &App) -> Result<(&String, &[String]), ApiError> {
        let (first, others) = self
            .seats
            .split_first()
            .ok_or_else(|| ApiError::bad_input("seats must name at least one seat"))?;
        if let Some(seat) = self.seats.iter().find(|s| !app.layout.contains(*s)) {
            return Err(ApiError::bad_input(&format!(
                "no seat {seat} in this venue"
            )));
        }
        Ok((first, others))
    }
}

/// POST /api/v1/seats/hold {event, user, seats, ttl?}: all or none;
/// {inventory} left.
async fn hold(State(app): Shared, payload: Result<Json<SeatsBody>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    let inventory = int(&app.tq.query(&b.command(&app, "TQ.HOLD", b.ttl)?).await?)?;
    Ok(Json(json!({ "held": b.seats, "inventory": inventory })))
}

/// POST /api/v1/seats/confirm {event, user, seats}: all or none. The
/// checkout is done: the fan's pass ends, so that under MAX-ACTIVE the
/// next fan gets in at once.
async fn confirm(State(app): Shared, payload: Result<Json<SeatsBody>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    app.tq.query(&b.command(&app, "TQ.CONFIRM", None)?).await?;
    let revoke = ["TQ.PASS", b.event.as_str(), b.user.as_str(), "REVOKE"];
    let ended = int(&app.tq.call(&revoke).await?)? == 1;
    Ok(Json(json!({ "confirmed": b.seats, "pass_ended": ended })))
}

/// POST /api/v1/seats/extend {event, user, seats, ttl}: {ttl_ms} left.
async fn extend(State(app): Shared, payload: Result<Json<SeatsBody>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    let ttl = b
        .ttl
        .ok_or_else(|| ApiError::bad_input("extend needs ttl (seconds)"))?;
    let ttl_ms = int(&app
        .tq
        .query(&b.command(&app, "TQ.EXTEND", Some(ttl))?)
        .await?)?;
    Ok(Json(json!({ "extended": b.seats, "ttl_ms": ttl_ms })))
}

/// A group release, all or none as the other seat routes (TQ.RELEASE
/// takes one seat): in one script, so nothing runs between the checks and
/// the releases. Its errors are tq's, naming the first seat that fails.
const RELEASE_GROUP: &str = r#"
local event, user = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local view = redis.call('TQ.SEAT', event, ARGV[i])
  local state, holder
  for f = 1, #view, 2 do
    if view[f] == 'state' then state = view[f + 1] end
    if view[f] == 'user' then holder = view[f + 1] end
  end
  if state ~= 'held' then return redis.error_reply('NOT_HELD ' .. ARGV[i]) end
  if holder ~= user then return redis.error_reply('NOT_OWNER ' .. ARGV[i]) end
end
local inventory
for i = 3, #ARGV do
  inventory = redis.call('TQ.RELEASE', event, ARGV[i], user)
end
return inventory
"#;

/// POST /api/v1/seats/release {event, user, seats}: all or none;
/// {inventory} after.
async fn release(State(app): Shared, payload: Result<Json<SeatsBody>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    b.venue_seats(&app)?;
    let (event, user) = (name("event", &b.event)?, name("user", &b.user)?);
    let script = redis::Script::new(RELEASE_GROUP);
    let mut invocation = script.prepare_invoke();
    // The key it works on, declared for the server.
    invocation
        .key(format!("tq:{{{event}}}:state"))
        .arg(event)
        .arg(user)
        .arg(&b.seats);
    let inventory = int(&app.tq.invoke(&invocation).await?)?;
    Ok(Json(json!({ "released": b.seats, "inventory": inventory })))
}

// ---- figures ----------------------------------------------------------------

/// GET /api/v1/events/{event}/stats: TQ.STATS.
async fn stats(State(app): Shared, Path(event): Path<String>) -> Reply {
    let words = ["TQ.STATS", name("event", &event)?];
    Ok(Json(Json_::Object(map_reply(&app.tq.call(&words).await?)?)))
}

/// GET /api/v1/events/{event}/seats: every seat of the layout with its
/// state, in one round trip; and the event's limit per user.
async fn seats(State(app): Shared, Path(event): Path<String>) -> Reply {
    let event = name("event", &event)?;
    let mut pipe = redis::pipe();
    for seat in &app.seats {
        pipe.cmd("TQ.SEAT").arg(event).arg(seat);
    }
    pipe.cmd("TQ.CONFIG").arg(event);
    pipe.cmd("TQ.INVENTORY").arg(event);
    let mut replies = app.tq.pipeline(&pipe).await?;
    let inventory = int(&replies.pop().expect("one reply per command"))?;
    let config = map_reply(&replies.pop().expect("one reply per command"))?;
    let mut listed = Vec::with_capacity(app.seats.len());
    for (seat, reply) in app.seats.iter().zip(&replies) {
        let mut view = map_reply(reply)?;
        view.insert("seat".into(), json!(seat));
        listed.push(Json_::Object(view));
    }
    Ok(Json(json!({
        "seats": listed,
        "inventory": inventory,
        "max_seats": config.get("max_seats"),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_and_their_mistakes() {
        assert_eq!(seat_layout("A:2, B:1").unwrap(), ["A-1", "A-2", "B-1"]);
        for bad in ["", "A", "A:x", "A:0", ":3", "A:1001"] {
            assert!(seat_layout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_poll_interval_follows_the_wait() {
        let at = |ready: i64, eta: i64, opens_in: i64| {
            let mut m = Map::new();
            m.insert("ready".into(), json!(ready));
            m.insert("eta_ms".into(), json!(eta));
            m.insert("opens_in_ms".into(), json!(opens_in));
            poll_interval_ms(&m, 0)
        };
        assert_eq!(at(0, 60_000, 0), 5_000);
        // Within a third of the heartbeat, whatever the wait.
        let mut m = Map::new();
        m.insert("ready".into(), json!(0));
        m.insert("eta_ms".into(), json!(60_000));
        m.insert("opens_in_ms".into(), json!(0));
        assert_eq!(poll_interval_ms(&m, 2_000), 666);
        assert_eq!(poll_interval_ms(&m, 300_000), 5_000);
        assert_eq!(poll_interval_ms(&m, 300), 250);
        assert_eq!(at(0, 8_000, 0), 2_000);
        assert_eq!(at(0, 100, 0), 1_000);
        assert_eq!(at(0, -1, 0), 3_000);
        assert_eq!(at(1, 0, 0), 1_000);
        assert_eq!(at(0, -1, 1_200), 1_200);
        assert_eq!(at(0, -1, 90_000), 5_000);
    }

    #[test]
    fn tq_codes_map_to_statuses() {
        use error::status_of;
        for (code, status) in [
            ("DUPLICATE", 409),
            ("SEAT_UNAVAILABLE", 409),
            ("LIMIT", 409),
            ("NOT_READY", 403),
            ("NO_PASS", 403),
            ("NOT_OWNER", 403),
            ("NOT_QUEUED", 404),
            ("NOT_HELD", 404),
            ("NOT_OPEN", 425),
            ("SOLD_OUT", 410),
            ("ERR", 400),
            ("READONLY", 503),
            ("LOADING", 503),
            ("TRYAGAIN", 503),
            ("OOM", 503),
            ("MASTERDOWN", 503),
            ("WRONGTYPE", 500),
        ] {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }
}
