//! TQ.CONFIG and TQ.STATS.

use super::command_info::{option, Doc, Kind::*, ACCESS, EVENT, RO, RW, UPDATE};
use super::commands::{Call, Command};
use super::config::defaults;
use super::event_keys::{refuse_write_here, write, ReadEvent};
use super::reply::Reply;
use crate::domain::args;
use crate::domain::buyers::id_text;
use crate::domain::error::TqResult;
use crate::domain::settings::Setting;

pub const CONFIG: Command = Command {
    name: "tq.config",
    // Not `write`: without options it is a read (see TQ.INVENTORY).
    flags: "may-replicate",
    doc: Doc {
        summary: "Returns or sets the event's settings: admission rate and burst, heartbeat, hold and dedupe TTLs, scheduled opening, passes, per-user limits and the event log",
        complexity: "O(1)",
        arity: -2,
        key_flags: RW | ACCESS | UPDATE,
        args: &[
            EVENT,
            option("RATE", "per_second", Integer),
            option("BURST", "n", Integer),
            option("HEARTBEAT", "seconds", Integer),
            option("HOLD-TTL", "seconds", Integer),
            option("DEDUPE-TTL", "seconds", Integer),
            option("OPENS-AT", "unix_ms", Integer),
            option("SESSION", "seconds", Integer),
            option("MAX-ACTIVE", "n", Integer),
            option("REQUIRE-PASS", "flag", Integer),
            option("MAX-SEATS", "n", Integer),
            option("MAX-ENTRIES", "n", Integer),
            option("EVENTS", "n", Integer),
        ],
    },
    handler: config,
};

fn config(call: &Call) -> TqResult<Reply> {
    let req = args::parse_config(call.args)?;
    if req.change.is_empty() {
        let event = ReadEvent::open(call, req.event)?;
        let settings = event.event().map_or_else(defaults, |e| e.settings);
        let mut fields: Vec<(&str, Reply)> = Vec::with_capacity(13);
        for setting in Setting::ALL {
            fields.push((setting.field(), Reply::uint(settings.get(setting))));
        }
        let seed = event.event().and_then(|e| e.shuffle_seed(call.now_ms));
        fields.push((
            "shuffle_seed",
            seed.map_or(Reply::Null, |s| Reply::Bulk(id_text(&s).to_vec())),
        ));
        return Ok(Reply::Map(fields));
    }
    refuse_write_here(call)?;
    write(call, req.event, |e, step| e.configure(step, &req.change))??;
    Ok(Reply::ok())
}

pub const STATS: Command = Command {
    name: "tq.stats",
    flags: "readonly fast",
    doc: Doc {
        summary: "Returns the event's queue, admission and seat figures",
        complexity: "O(1), plus the entries and holds due but not yet removed",
        arity: 2,
        key_flags: RO | ACCESS,
        args: &[EVENT],
    },
    handler: stats,
};

fn stats(call: &Call) -> TqResult<Reply> {
    let req = args::parse_event_args(call.args, "tq.stats")?;
    let event = ReadEvent::open(call, req.event)?;
    let s = match event.event() {
        Some(e) => e.stats(call.now_ms),
        None => crate::domain::event::Event::new(defaults()).stats(call.now_ms),
    };
    Ok(Reply::Map(vec![
        ("waiting", Reply::uint(s.waiting)),
        ("admitted", Reply::uint(s.admitted)),
        ("admission_rate", Reply::Double(s.admission_rate)),
        ("inventory", Reply::uint(s.inventory)),
        ("held", Reply::uint(s.held)),
        ("sold", Reply::uint(s.sold)),
        ("duplicates", Reply::uint(s.duplicates)),
        ("abandoned", Reply::uint(s.abandoned)),
        ("holds_expired", Reply::uint(s.holds_expired)),
        ("active", Reply::uint(s.active)),
        ("sold_out", Reply::bool(s.sold_out)),
        ("opens_in_ms", Reply::uint(s.opens_in_ms)),
        ("joined", Reply::uint(s.joined)),
        ("left", Reply::uint(s.left)),
        ("trimmed", Reply::uint(s.trimmed)),
    ]))
}
