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

/// Most seats in one hold or confirm (tq's own limit).
const MAX_GROUP: usize = 100;

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

#[derive(Deserialize)]
struct TokenQuery {
    event: String,
    token: String,
}

/// GET /api/v1/queue/status?event=&token=: TQ.POSITION, and how long the
/// page should wait before asking again (`poll_ms`).
async fn status(State(app): Shared, query: Result<Query<TokenQuery>, QueryRejection>) -> Reply {
    let Query(q) = query.map_err(|e| ApiError::bad_input(&e.body_text()))?;
    let (event, token) = (name("event", &q.event)?, name("token", &q.token)?);
    // The event's heartbeat in the same round trip: the page must poll
    // well within it or tq counts the fan as gone.
    let commands = [
        vec!["TQ.POSITION".to_string(), event.into(), token.into()],
        vec!["TQ.CONFIG".to_string(), event.into()],
    ];
    let replies = app.tq.pipeline(&commands).await?;
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

#[derive(Deserialize)]
struct TokenBody {
    event: String,
    token: String,
}

/// POST /api/v1/queue/enter {event, token}: {pass, expires_at, position_was}.
async fn enter(State(app): Shared, payload: Result<Json<TokenBody>, JsonRejection>) -> Reply {
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
async fn leave(State(app): Shared, payload: Result<Json<TokenBody>, JsonRejection>) -> Reply {
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
    /// `<VERB> event seat user [TTL ttl] [WITH seat...]`, the group's
    /// checks first: 1..100 seats of the layout, none twice.
    fn words(
        &self,
        app: &App,
        verb: &'static str,
        ttl: Option<u64>,
    ) -> Result<Vec<String>, ApiError> {
        if self.seats.is_empty() || self.seats.len() > MAX_GROUP {
            return Err(ApiError::bad_input(&format!(
                "seats must name 1..{MAX_GROUP} seats"
            )));
        }
        let mut named = HashSet::new();
        for seat in &self.seats {
            if !app.layout.contains(seat) {
                return Err(ApiError::bad_input(&format!(
                    "no seat {seat} in this venue"
                )));
            }
            if !named.insert(seat) {
                return Err(ApiError::bad_input(&format!("{seat} is named twice")));
            }
        }
        let mut words = vec![
            verb.to_string(),
            name("event", &self.event)?.to_string(),
            self.seats[0].clone(),
            name("user", &self.user)?.to_string(),
        ];
        if let Some(ttl) = ttl {
            words.extend(["TTL".to_string(), ttl.to_string()]);
        }
        if self.seats.len() > 1 {
            words.push("WITH".into());
            words.extend(self.seats[1..].iter().cloned());
        }
        Ok(words)
    }
}

async fn call_words(app: &App, words: &[String]) -> Result<redis::Value, ApiError> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    app.tq.call(&words).await
}

/// POST /api/v1/seats/hold {event, user, seats, ttl?}: all or none;
/// {inventory} left.
async fn hold(State(app): Shared, payload: Result<Json<SeatsBody>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    let words = b.words(&app, "TQ.HOLD", b.ttl)?;
    let inventory = int(&call_words(&app, &words).await?)?;
    Ok(Json(json!({ "held": b.seats, "inventory": inventory })))
}

/// POST /api/v1/seats/confirm {event, user, seats}: all or none. The
/// checkout is done: the fan's pass ends, so that under MAX-ACTIVE the
/// next fan gets in at once.
async fn confirm(State(app): Shared, payload: Result<Json<SeatsBody>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    let words = b.words(&app, "TQ.CONFIRM", None)?;
    call_words(&app, &words).await?;
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
    let words = b.words(&app, "TQ.EXTEND", Some(ttl))?;
    let ttl_ms = int(&call_words(&app, &words).await?)?;
    Ok(Json(json!({ "extended": b.seats, "ttl_ms": ttl_ms })))
}

/// POST /api/v1/seats/release {event, user, seats}: all or none, as the
/// other seat routes. TQ.RELEASE takes one seat, so every seat's holder is
/// checked first (`not_held` / `not_owner` naming the first that fails),
/// then all are released in one MULTI. {inventory} after.
async fn release(State(app): Shared, payload: Result<Json<SeatsBody>, JsonRejection>) -> Reply {
    let b = body(payload)?;
    b.words(&app, "TQ.RELEASE", None)?; // the same checks as the others
    let (event, user) = (b.event.as_str(), b.user.as_str());
    let looks: Vec<Vec<String>> = b
        .seats
        .iter()
        .map(|seat| vec!["TQ.SEAT".into(), event.into(), seat.clone()])
        .collect();
    for (seat, reply) in b.seats.iter().zip(app.tq.pipeline(&looks).await?) {
        let view = map_reply(&reply)?;
        let holder = view.get("user").and_then(Json_::as_str);
        if view.get("state").and_then(Json_::as_str) != Some("held") {
            return Err(ApiError::from_code("NOT_HELD", seat));
        }
        if holder != Some(user) {
            return Err(ApiError::from_code("NOT_OWNER", seat));
        }
    }
    // A hold that lapses between the check and the MULTI answers NOT_HELD
    // inside it, and its seat is back on sale anyway: only the inventory
    // after them all matters.
    let mut releases: Vec<Vec<String>> = b
        .seats
        .iter()
        .map(|seat| vec!["TQ.RELEASE".into(), event.into(), seat.clone(), user.into()])
        .collect();
    releases.push(vec!["TQ.INVENTORY".into(), event.into()]);
    let replies = app.tq.transaction(&releases).await?;
    let inventory = int(replies
        .last()
        .ok_or_else(|| ApiError::internal("no reply"))?)?;
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
    let mut commands: Vec<Vec<String>> = app
        .seats
        .iter()
        .map(|seat| vec!["TQ.SEAT".into(), event.into(), seat.clone()])
        .collect();
    commands.push(vec!["TQ.CONFIG".into(), event.into()]);
    commands.push(vec!["TQ.INVENTORY".into(), event.into()]);
    let mut replies = app.tq.pipeline(&commands).await?;
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
        ] {
            assert_eq!(status_of(code).as_u16(), status, "{code}");
        }
    }
}
