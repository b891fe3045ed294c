//! The reference gateway (examples/gateway, `target/release/tq-gateway`)
//! end to end: a real Redis with tq, the gateway in front of it, every
//! route over HTTP and every error status.

use crate::common::*;

use serde_json::{json, Value};

impl Gateway {
    /// (status, JSON body) of a request; `body` is sent as JSON when given.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, body, &[])
    }

    fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = ureq::request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.set(name, value);
        }
        let result = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (status, value)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }
}

/// The status and the `error` of an error reply, which must also have a
/// `detail`.
fn error(reply: (u16, Value)) -> (u16, String) {
    let (status, body) = reply;
    assert!(body["detail"].is_string(), "{body}");
    (status, body["error"].as_str().unwrap_or("").to_string())
}

#[test]
fn every_route_and_every_error_status() {
    let server = Server::start();
    let gw = Gateway::start(&server, "A:4,B:4");
    let mut con = server.client();
    let ev = "gig";
    tq!(
        &mut con,
        "TQ.CONFIG",
        ev,
        "REQUIRE-PASS",
        1,
        "MAX-SEATS",
        3,
        "RATE",
        0,
        "BURST",
        1
    )
    .unwrap();
    tq!(&mut con, "TQ.INVENTORY", ev, "SET", 8).unwrap();

    // Join: a UUID token, the places.
    let (status, alice) = gw.post("/api/v1/queue/join", json!({"event": ev, "user": "alice"}));
    assert_eq!(status, 202, "{alice}");
    assert_eq!(alice["token"].as_str().unwrap().len(), 36);
    assert_eq!(
        (alice["position"].as_i64(), alice["user_position"].as_i64()),
        (Some(1), Some(1))
    );
    assert!(alice["id"].as_str().unwrap().contains('-'));
    let key = [("Idempotency-Key", "req-1")];
    let (status, bob) = gw.call_with(
        "POST",
        "/api/v1/queue/join",
        Some(json!({"event": ev, "user": "bob"})),
        &key,
    );
    assert_eq!((status, bob["position"].as_i64()), (202, Some(2)));
    // A retry of the same join (a lost reply) answers the same place.
    let (status, retry) = gw.call_with(
        "POST",
        "/api/v1/queue/join",
        Some(json!({"event": ev, "user": "bob"})),
        &key,
    );
    assert_eq!(status, 202, "{retry}");
    assert_eq!(retry, bob);
    let (a, b) = (
        alice["token"].as_str().unwrap(),
        bob["token"].as_str().unwrap(),
    );

    // Status: TQ.POSITION's fields and a poll interval.
    let (status, pos) = gw.call(
        "GET",
        &format!("/api/v1/queue/status?event={ev}&token={a}"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        (pos["position"].as_i64(), pos["ready"].as_i64()),
        (Some(1), Some(1))
    );
    for field in [
        "user_position",
        "eta_ms",
        "waited_ms",
        "opens_in_ms",
        "sold_out",
        "poll_ms",
    ] {
        assert!(pos[field].is_i64(), "{field}: {pos}");
    }
    let (_, pos) = gw.call(
        "GET",
        &format!("/api/v1/queue/status?event={ev}&token={b}"),
        None,
    );
    assert_eq!(
        (pos["position"].as_i64(), pos["ready"].as_i64()),
        (Some(2), Some(0))
    );
    let unknown = gw.call(
        "GET",
        &format!("/api/v1/queue/status?event={ev}&token=nobody"),
        None,
    );
    assert_eq!(error(unknown), (404, "not_queued".into()));
    let missing = gw.call("GET", &format!("/api/v1/queue/status?event={ev}"), None);
    assert_eq!(error(missing), (400, "bad_input".into()));

    // Enter: only the front, once.
    let not_yet = gw.post("/api/v1/queue/enter", json!({"event": ev, "token": b}));
    assert_eq!(error(not_yet), (403, "not_ready".into()));
    let (status, entered) = gw.post("/api/v1/queue/enter", json!({"event": ev, "token": a}));
    assert_eq!(status, 200, "{entered}");
    assert_eq!(entered["pass"].as_str().unwrap().len(), 32);
    assert!(entered["expires_at"].as_i64().unwrap() > 0);
    assert_eq!(entered["position_was"].as_i64(), Some(1));

    // Seats: a pass is needed, groups are all or nothing, limits hold.
    let hold = |user: &str, seats: Value| {
        gw.post(
            "/api/v1/seats/hold",
            json!({"event": ev, "user": user, "seats": seats, "ttl": 120}),
        )
    };
    assert_eq!(error(hold("bob", json!(["A-1"]))), (403, "no_pass".into()));
    let (status, held) = hold("alice", json!(["A-1", "A-2"]));
    assert_eq!(
        (status, held["inventory"].as_i64()),
        (200, Some(6)),
        "{held}"
    );
    assert_eq!(
        error(hold("alice", json!(["A-2"]))),
        (409, "seat_unavailable".into())
    );
    assert_eq!(
        error(hold("alice", json!(["A-3", "A-4"]))),
        (409, "limit".into())
    );
    let (status, ext) = gw.post(
        "/api/v1/seats/extend",
        json!({"event": ev, "user": "alice", "seats": ["A-1", "A-2"], "ttl": 60}),
    );
    assert_eq!((status, ext["ttl_ms"].as_i64()), (200, Some(60_000)));
    let no_ttl = gw.post(
        "/api/v1/seats/extend",
        json!({"event": ev, "user": "alice", "seats": ["A-1"]}),
    );
    assert_eq!(error(no_ttl), (400, "bad_input".into()));
    let theirs = gw.post(
        "/api/v1/seats/release",
        json!({"event": ev, "user": "bob", "seats": ["A-2"]}),
    );
    assert_eq!(error(theirs), (403, "not_owner".into()));
    let free = gw.post(
        "/api/v1/seats/release",
        json!({"event": ev, "user": "alice", "seats": ["B-1"]}),
    );
    assert_eq!(error(free), (404, "not_held".into()));
    let (status, released) = gw.post(
        "/api/v1/seats/release",
        json!({"event": ev, "user": "alice", "seats": ["A-2"]}),
    );
    assert_eq!((status, released["inventory"].as_i64()), (200, Some(7)));
    let (status, bought) = gw.post(
        "/api/v1/seats/confirm",
        json!({"event": ev, "user": "alice", "seats": ["A-1"]}),
    );
    assert_eq!(
        (status, bought["pass_ended"].as_bool()),
        (200, Some(true)),
        "{bought}"
    );
    // The checkout is done: the pass ended.
    let pass = tq!(&mut con, "TQ.PASS", ev, "alice").unwrap();
    assert_eq!(
        (int_field(&pass, "active"), int_field(&pass, "bought")),
        (0, 1)
    );
    let gone = gw.post(
        "/api/v1/seats/confirm",
        json!({"event": ev, "user": "alice", "seats": ["A-3"]}),
    );
    assert_eq!(error(gone), (404, "not_held".into()));

    // Figures and the seat map.
    let (status, stats) = gw.call("GET", &format!("/api/v1/events/{ev}/stats"), None);
    assert_eq!(status, 200);
    assert_eq!(
        (
            stats["waiting"].as_i64(),
            stats["admitted"].as_i64(),
            stats["sold"].as_i64(),
            stats["inventory"].as_i64()
        ),
        (Some(1), Some(1), Some(1), Some(7))
    );
    assert!(stats["admission_rate"].is_number(), "{stats}");
    let (status, map) = gw.call("GET", &format!("/api/v1/events/{ev}/seats"), None);
    assert_eq!(status, 200);
    let seats = map["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 8);
    assert_eq!(seats[0]["seat"], "A-1");
    assert_eq!(
        (seats[0]["state"].as_str(), seats[0]["user"].as_str()),
        (Some("sold"), Some("alice"))
    );
    assert_eq!(seats[1]["state"], "available");
    assert_eq!(
        (map["inventory"].as_i64(), map["max_seats"].as_i64()),
        (Some(7), Some(3))
    );

    // Leave.
    let (status, left) = gw.call(
        "DELETE",
        "/api/v1/queue/leave",
        Some(json!({"event": ev, "token": b})),
    );
    assert_eq!((status, left["left"].as_bool()), (200, Some(true)));
    let (_, left) = gw.call(
        "DELETE",
        "/api/v1/queue/leave",
        Some(json!({"event": ev, "token": b})),
    );
    assert_eq!(left["left"].as_bool(), Some(false));

    // A scheduled opening: no place yet, and entering is too early.
    let later = (unix_ms() + 600_000).to_string();
    tq!(&mut con, "TQ.CONFIG", "drop", "OPENS-AT", later.as_str()).unwrap();
    let (_, early) = gw.post("/api/v1/queue/join", json!({"event": "drop", "user": "cy"}));
    assert_eq!(early["position"].as_i64(), Some(0));
    let too_early = gw.post(
        "/api/v1/queue/enter",
        json!({"event": "drop", "token": early["token"]}),
    );
    assert_eq!(error(too_early), (425, "not_open".into()));

    // Sold out.
    tq!(&mut con, "TQ.INVENTORY", "tiny", "SET", 0).unwrap();
    let sold_out = gw.post("/api/v1/queue/join", json!({"event": "tiny", "user": "di"}));
    assert_eq!(error(sold_out), (410, "sold_out".into()));

    // Bad input, refused by the gateway or by tq.
    for (path, body) in [
        ("/api/v1/queue/join", json!({"event": ev})),
        ("/api/v1/queue/join", json!({"event": "", "user": "x"})),
        ("/api/v1/queue/join", json!("not an object")),
        (
            "/api/v1/seats/hold",
            json!({"event": ev, "user": "alice", "seats": []}),
        ),
        (
            "/api/v1/seats/hold",
            json!({"event": ev, "user": "alice", "seats": (0..101).map(|i| format!("S{i}")).collect::<Vec<_>>()}),
        ),
        (
            "/api/v1/seats/hold",
            json!({"event": ev, "user": "alice", "seats": ["B-1"], "ttl": -5}),
        ),
    ] {
        assert_eq!(error(gw.post(path, body.clone())).0, 400, "{path} {body}");
    }
    let tq_refuses = gw.post(
        "/api/v1/queue/join",
        json!({"event": "bad{name}", "user": "x"}),
    );
    assert_eq!(error(tq_refuses), (400, "err".into()));
    let repeated = gw.post(
        "/api/v1/seats/hold",
        json!({"event": ev, "user": "alice", "seats": ["B-1", "B-1"], "ttl": 60}),
    );
    assert_eq!(error(repeated), (400, "err".into()));
}

/// What the gateway checks because tq cannot: seats of the venue, a group
/// release that changes nothing unless it changes all, idempotency keys
/// per user, polls within the heartbeat, a Redis that stops answering.
#[test]
fn the_gateway_guards_what_tq_cannot_know() {
    let server = Server::start();
    let gw = Gateway::start(&server, "A:4");
    let mut con = server.client();
    let ev = "guarded";
    tq!(&mut con, "TQ.CONFIG", ev, "HEARTBEAT", 2).unwrap();
    tq!(&mut con, "TQ.INVENTORY", ev, "SET", 4).unwrap();
    let post = |path: &str, body: Value| gw.post(path, body);

    // A seat the venue does not have is refused, not sold from the inventory.
    let phantom = post(
        "/api/v1/seats/hold",
        json!({"event": ev, "user": "ann", "seats": ["A-1", "ZZ-1"]}),
    );
    assert_eq!(error(phantom), (400, "bad_input".into()));
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", ev).unwrap()), 4);

    // A release fails whole when one seat is not the user's.
    let (status, _) = post(
        "/api/v1/seats/hold",
        json!({"event": ev, "user": "ann", "seats": ["A-1", "A-2"]}),
    );
    assert_eq!(status, 200);
    let (status, body) = post(
        "/api/v1/seats/release",
        json!({"event": ev, "user": "ann", "seats": ["A-1", "A-4", "A-2"]}),
    );
    assert_eq!(
        (status, body["error"].as_str(), body["detail"].as_str()),
        (404, Some("not_held"), Some("A-4"))
    );
    let seat = |con: &mut redis::Connection, s: &str| {
        text_field(&tq!(con, "TQ.SEAT", ev, s).unwrap(), "state")
    };
    assert_eq!(seat(&mut con, "A-1"), "held");
    assert_eq!(int(&tq!(&mut con, "TQ.INVENTORY", ev).unwrap()), 2);
    let (status, body) = post(
        "/api/v1/seats/release",
        json!({"event": ev, "user": "ann", "seats": ["A-1", "A-2"]}),
    );
    assert_eq!((status, body["inventory"].as_i64()), (200, Some(4)));
    assert_eq!(seat(&mut con, "A-2"), "available");

    // One Idempotency-Key: the same user's retry is the same place, another
    // user's request with it a place of their own.
    let join = |user: &str| {
        gw.call_with(
            "POST",
            "/api/v1/queue/join",
            Some(json!({"event": ev, "user": user})),
            &[("Idempotency-Key", "k1")],
        )
    };
    let (status, first) = join("cleo");
    assert_eq!(status, 202, "{first}");
    assert_eq!(join("cleo"), (202, first.clone()));
    let (status, other) = join("dan");
    assert_eq!(status, 202, "{other}");
    assert_ne!(other["token"], first["token"]);
    // Once the first place is gone, a retry is a duplicate, not a new place.
    let token = first["token"].as_str().unwrap();
    tq!(&mut con, "TQ.LEAVE", ev, token).unwrap();
    assert_eq!(error(join("cleo")), (409, "duplicate".into()));

    // HEARTBEAT 2: the page is told to poll within a third of it.
    let dan = other["token"].as_str().unwrap();
    let (status, pos) = gw.call(
        "GET",
        &format!("/api/v1/queue/status?event={ev}&token={dan}"),
        None,
    );
    assert_eq!(status, 200, "{pos}");
    let poll_ms = pos["poll_ms"].as_i64().unwrap();
    assert!((250..=666).contains(&poll_ms), "poll_ms {poll_ms}");

    // A Redis that stops answering: 503 within the gateway's timeout, and
    // answers again once it is back.
    signal(&server, "-STOP");
    let asked = std::time::Instant::now();
    let stalled = gw.call("GET", &format!("/api/v1/events/{ev}/stats"), None);
    signal(&server, "-CONT");
    assert_eq!(error(stalled), (503, "unavailable".into()));
    assert!(asked.elapsed() < std::time::Duration::from_secs(6));
    assert!(eventually(std::time::Duration::from_secs(10), || gw
        .call("GET", &format!("/api/v1/events/{ev}/stats"), None)
        .0
        == 200));
}

#[test]
fn redis_unreachable_is_503() {
    let mut server = Server::start();
    let gw = Gateway::start(&server, "A:2");
    let stats = || gw.call("GET", "/api/v1/events/gig/stats", None);
    // Redis not answering when the gateway first needs it: 503, and the
    // gateway connects once Redis answers again.
    signal(&server, "-STOP");
    let stalled = stats();
    signal(&server, "-CONT");
    assert_eq!(error(stalled), (503, "unavailable".into()));
    assert!(eventually(std::time::Duration::from_secs(10), || stats().0 == 200));
    // Redis gone: 503.
    server.kill9();
    assert_eq!(error(stats()), (503, "unavailable".into()));
}

/// Sends `signal` (`-STOP`, `-CONT`) to the server's process.
fn signal(server: &Server, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill {signal}");
}
