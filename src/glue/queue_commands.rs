//! TQ.ENQUEUE, TQ.POSITION, TQ.ENTER, TQ.LEAVE, TQ.USER, TQ.TRIM.

use super::command_info::{
    arg, option, Doc, Kind::*, ACCESS, DELETE, EVENT, INSERT, RO, RW, UPDATE,
};
use super::commands::{Call, Command};
use super::event_keys::{write, OpenEvent, ReadEvent};
use super::reply::Reply;
use crate::domain::args;
use crate::domain::buyers::id_text;
use crate::domain::error::TqResult;

pub const ENQUEUE: Command = Command {
    name: "tq.enqueue",
    flags: "write deny-oom",
    doc: Doc {
        summary: "Joins a token to the event's waiting queue, atomically with the duplicate check",
        complexity: "O(log N) with N the number of waiting entries",
        arity: -4,
        key_flags: RW | INSERT | ACCESS,
        args: &[
            EVENT,
            arg("user", Text),
            arg("token", Text),
            option("DEDUPE", "id", Text),
            option("TTL", "seconds", Integer),
        ],
    },
    handler: enqueue,
};

fn enqueue(call: &Call) -> TqResult<Reply> {
    let req = args::parse_enqueue(call.args)?;
    let mut event = OpenEvent::for_write(call, req.event)?;
    let joined = event.apply(|e, step| e.enqueue(step, req.user, req.token, req.dedupe, req.ttl_s));
    let appended = match &joined {
        // The user and token arguments, as Redis strings.
        Ok(done) => event.append(done.id, call.strings[2], call.strings[1]),
        Err(_) => Ok(()),
    };
    event.finish();
    let done = joined?;
    appended?;
    Ok(Reply::Map(vec![
        ("id", Reply::Id(done.id)),
        ("position", Reply::uint(done.position)),
        ("user_position", Reply::uint(done.user_position)),
    ]))
}

pub const POSITION: Command = Command {
    name: "tq.position",
    flags: "write",
    doc: Doc {
        summary: "Returns a waiting token's exact position and readiness; records its heartbeat",
        complexity: "O(log N)",
        arity: 3,
        key_flags: RW | UPDATE | ACCESS,
        args: &[EVENT, arg("token", Text)],
    },
    handler: position,
};

fn position(call: &Call) -> TqResult<Reply> {
    let req = args::parse_token_args(call.args, "tq.position")?;
    let found = write(call, req.event, |e, step| e.position(step, req.token))?;
    let p = found?;
    Ok(Reply::Map(vec![
        ("position", Reply::uint(p.position)),
        ("user_position", Reply::uint(p.user_position)),
        ("ready", Reply::bool(p.ready)),
        ("eta_ms", Reply::Int(p.eta_ms)),
        ("waited_ms", Reply::uint(p.waited_ms)),
        ("opens_in_ms", Reply::uint(p.opens_in_ms)),
        ("sold_out", Reply::bool(p.sold_out)),
    ]))
}

pub const ENTER: Command = Command {
    name: "tq.enter",
    flags: "write",
    doc: Doc {
        summary: "Admits a waiting token if the token bucket and the MAX-ACTIVE cap allow its position, giving its user a pass",
        complexity: "O(log N)",
        arity: 3,
        key_flags: RW | DELETE | ACCESS,
        args: &[EVENT, arg("token", Text)],
    },
    handler: enter,
};

fn enter(call: &Call) -> TqResult<Reply> {
    let req = args::parse_token_args(call.args, "tq.enter")?;
    let admitted = write(call, req.event, |e, step| e.enter(step, req.token))??;
    Ok(Reply::Map(vec![
        ("admitted", Reply::Int(1)),
        ("position_was", Reply::uint(admitted.position_was)),
        ("pass", Reply::Bulk(id_text(&admitted.pass.id).to_vec())),
        ("expires_at", Reply::uint(admitted.pass.expires_ms)),
    ]))
}

pub const LEAVE: Command = Command {
    name: "tq.leave",
    flags: "write",
    doc: Doc {
        summary: "Removes a waiting token from the queue",
        complexity: "O(log N)",
        arity: 3,
        key_flags: RW | DELETE,
        args: &[EVENT, arg("token", Text)],
    },
    handler: leave,
};

fn leave(call: &Call) -> TqResult<Reply> {
    let req = args::parse_token_args(call.args, "tq.leave")?;
    let removed = write(call, req.event, |e, step| e.leave(step, req.token))?;
    Ok(Reply::bool(removed))
}

pub const USER: Command = Command {
    name: "tq.user",
    flags: "readonly",
    doc: Doc {
        summary: "Lists a user's waiting entries in FIFO order with their positions",
        complexity: "O(M log N) with M the user's entries",
        arity: 3,
        key_flags: RO | ACCESS,
        args: &[EVENT, arg("user", Text)],
    },
    handler: user,
};

fn user(call: &Call) -> TqResult<Reply> {
    let req = args::parse_user_args(call.args)?;
    let event = ReadEvent::open(call, req.event)?;
    let entries = event
        .event()
        .map(|e| e.user_entries(call.now_ms, req.user))
        .unwrap_or_default();
    let mut listed = Vec::with_capacity(entries.len());
    for e in entries {
        listed.push(Reply::Map(vec![
            ("id", Reply::Id(e.id)),
            ("token", Reply::Bulk(event.token(e.id)?)),
            ("position", Reply::uint(e.position)),
        ]));
    }
    Ok(Reply::Array(listed))
}

pub const TRIM: Command = Command {
    name: "tq.trim",
    flags: "write",
    doc: Doc {
        summary: "Removes waiting entries that joined more than the given seconds ago",
        complexity: "O(M log N) with M the entries removed",
        arity: 4,
        key_flags: RW | DELETE,
        args: &[EVENT, option("MAXAGE", "seconds", Integer).required()],
    },
    handler: trim,
};

fn trim(call: &Call) -> TqResult<Reply> {
    let req = args::parse_trim(call.args)?;
    let removed = write(call, req.event, |e, step| e.trim(step, req.max_age_s))?;
    Ok(Reply::uint(removed))
}
