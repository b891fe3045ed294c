//! TQ.INVENTORY, TQ.HOLD, TQ.RELEASE, TQ.CONFIRM, TQ.EXTEND, TQ.SEAT.

use super::command_info::{arg, option, Doc, Kind::*, ACCESS, EVENT, RO, RW, UPDATE};
use super::commands::{Call, Command};
use super::event_keys::{refuse_write_here, write, ReadEvent};
use super::reply::Reply;
use crate::domain::args::{self, InventoryChange};
use crate::domain::error::TqResult;

pub const INVENTORY: Command = Command {
    name: "tq.inventory",
    // Not `write`: without SET it is a read, which must answer on a
    // replica and when memory is full; with SET, `refuse_write_here`
    // applies Redis' own rules.
    flags: "may-replicate",
    doc: Doc {
        summary: "Returns, sets or changes by n the number of seats still available",
        complexity: "O(1)",
        arity: -2,
        key_flags: RW | ACCESS | UPDATE,
        args: &[
            EVENT,
            option("SET", "n", Integer),
            option("ADD", "n", Integer),
        ],
    },
    handler: inventory,
};

fn inventory(call: &Call) -> TqResult<Reply> {
    let req = args::parse_inventory(call.args)?;
    let Some(change) = req.change else {
        let event = ReadEvent::open(call, req.event)?;
        let available = event.event().map_or(0, |e| e.inventory(call.now_ms));
        return Ok(Reply::uint(available));
    };
    refuse_write_here(call)?;
    let available = write(call, req.event, |e, step| match change {
        InventoryChange::Set(n) => Ok(e.set_inventory(step, n)),
        InventoryChange::Add(n) => e.add_inventory(step, n),
    })??;
    Ok(Reply::uint(available))
}

pub const HOLD: Command = Command {
    name: "tq.hold",
    flags: "write deny-oom",
    doc: Doc {
        summary: "Holds available seats for a user until their TTL, all or none, taking them from inventory",
        complexity: "O(K log S) with K the seats named and S the number of held or sold seats",
        arity: -4,
        key_flags: RW | UPDATE | ACCESS,
        args: &[
            EVENT,
            arg("seat", Text),
            arg("user", Text),
            option("TTL", "seconds", Integer),
            option("WITH", "seat", Text),
        ],
    },
    handler: hold,
};

fn hold(call: &Call) -> TqResult<Reply> {
    let req = args::parse_hold(call.args)?;
    let held = write(call, req.event, |e, step| {
        e.hold(step, &req.seats, req.user, req.ttl_s)
    })??;
    Ok(Reply::uint(held))
}

pub const RELEASE: Command = Command {
    name: "tq.release",
    flags: "write",
    doc: Doc {
        summary: "Gives a held seat back to inventory",
        complexity: "O(log S)",
        arity: -3,
        key_flags: RW | UPDATE | ACCESS,
        args: &[EVENT, arg("seat", Text), arg("user", Text).optional()],
    },
    handler: release,
};

fn release(call: &Call) -> TqResult<Reply> {
    let req = args::parse_release(call.args)?;
    let released = write(call, req.event, |e, step| {
        e.release(step, req.seat, req.user)
    })?;
    Ok(Reply::uint(released?))
}

pub const CONFIRM: Command = Command {
    name: "tq.confirm",
    flags: "write",
    doc: Doc {
        summary: "Turns a user's holds into sales, all or none",
        complexity: "O(K log S) with K the seats named",
        arity: -4,
        key_flags: RW | UPDATE | ACCESS,
        args: &[
            EVENT,
            arg("seat", Text),
            arg("user", Text),
            option("WITH", "seat", Text),
        ],
    },
    handler: confirm,
};

fn confirm(call: &Call) -> TqResult<Reply> {
    let req = args::parse_confirm(call.args)?;
    write(call, req.event, |e, step| {
        e.confirm(step, &req.seats, req.user)
    })??;
    Ok(Reply::ok())
}

pub const EXTEND: Command = Command {
    name: "tq.extend",
    flags: "write",
    doc: Doc {
        summary: "Holds a user's held seats until now plus a new TTL, all or none",
        complexity: "O(K log S) with K the seats named",
        arity: -6,
        key_flags: RW | UPDATE | ACCESS,
        args: &[
            EVENT,
            arg("seat", Text),
            arg("user", Text),
            option("TTL", "seconds", Integer).required(),
            option("WITH", "seat", Text),
        ],
    },
    handler: extend,
};

fn extend(call: &Call) -> TqResult<Reply> {
    let req = args::parse_extend(call.args)?;
    let ttl_ms = write(call, req.seats.event, |e, step| {
        e.extend(step, &req.seats.seats, req.seats.user, req.ttl_s)
    })??;
    Ok(Reply::uint(ttl_ms))
}

pub const SEAT: Command = Command {
    name: "tq.seat",
    flags: "readonly fast",
    doc: Doc {
        summary: "Returns a seat's state, holder and remaining hold time",
        complexity: "O(log S)",
        arity: 3,
        key_flags: RO | ACCESS,
        args: &[EVENT, arg("seat", Text)],
    },
    handler: seat,
};

fn seat(call: &Call) -> TqResult<Reply> {
    let req = args::parse_seat(call.args)?;
    let event = ReadEvent::open(call, req.event)?;
    let view = match event.event() {
        Some(e) => e.seat(call.now_ms, req.seat),
        None => crate::domain::event::SeatView {
            state: "available",
            user: None,
            ttl_ms: -1,
        },
    };
    Ok(Reply::Map(vec![
        ("state", Reply::Word(view.state)),
        ("user", view.user.map_or(Reply::Null, Reply::Bulk)),
        ("ttl_ms", Reply::Int(view.ttl_ms)),
    ]))
}
