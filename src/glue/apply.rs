//! TQ.APPLY: how a write command reaches replicas and the AOF.
//!
//! `TQ.APPLY <event> <now_ms> [NEW <SETTING> <value> ...] [RESUME] [DRAW
//! <hex> ...] <verb> <arguments...>` runs command `verb` with the arguments
//! the client gave, at the master's `now`, on the replica's copy of the
//! state, which is the master's: the same rules then make the same change
//! (including the stream entry ids, which tq chooses from `now`). `NEW`
//! carries the settings an event was created with (the master's module
//! defaults; tq 0.3 wrote its five as bare numbers, which are still read),
//! `RESUME` that the master first gave lapsed fans a full period after a
//! restart, each `DRAW` a random draw the master's rule took (a new pass's
//! id), in order. Two verbs are records only:
//! `ADVANCE` (the background timer's step) and `STATE <bytes> [<version>]`
//! (a whole state in the stored form of that encoding version, 1 if not
//! given: written by an AOF rewrite or a conversion from tq 0.2).

use redis_module::ContextFlags;

use super::background;
use super::command_info::{arg, Doc, Kind::*, EVENT, RW, UPDATE};
use super::commands::{by_verb, Call, Command, Origin};
use super::keys::{Holds, Key, RStr};
use super::reply::Reply;
use crate::domain::args;
use crate::domain::buyers::parse_id;
use crate::domain::codec;
use crate::domain::error::{TqError, TqResult};
use crate::domain::settings::{Setting, Settings};

pub const APPLY: Command = Command {
    name: "tq.apply",
    flags: "write",
    doc: Doc {
        summary: "Internal: carries a TQ write command, with its time, to replicas and the AOF",
        complexity: "That of the command it carries",
        arity: -4,
        key_flags: RW | UPDATE,
        args: &[EVENT, arg("now_ms", Integer), arg("verb", Text)],
    },
    handler: apply,
};

fn internal_only() -> TqError {
    TqError::syntax(
        "TQ.APPLY is internal: it carries TQ commands to replicas and the AOF, and is accepted only from them",
    )
}

fn malformed() -> TqError {
    TqError::syntax("malformed TQ.APPLY record")
}

fn apply(call: &Call) -> TqResult<Reply> {
    let flags = call.ctx.get_flags();
    if !flags.contains(ContextFlags::REPLICATED) && !flags.contains(ContextFlags::LOADING) {
        return Err(internal_only());
    }
    let [event, now, ..] = call.args else {
        return Err(malformed());
    };
    let event = args::event(event)?;
    let now_ms = args::integer_in("now_ms", now, 0, u64::MAX >> 1)?;
    let mut at = 2;
    let word_is = |at: usize, word: &[u8]| {
        call.args
            .get(at)
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    let mut created_with = None;
    if word_is(at, b"NEW") {
        let (settings, next) = read_settings(call.args, at + 1)?;
        created_with = Some(settings);
        at = next;
    }
    let resumed = word_is(at, b"RESUME");
    if resumed {
        at += 1;
    }
    let mut draws = Vec::new();
    while word_is(at, b"DRAW") {
        let hex = call.args.get(at + 1).ok_or_else(malformed)?;
        draws.push(parse_id(hex).ok_or_else(malformed)?);
        at += 2;
    }
    let verb = *call.args.get(at).ok_or_else(malformed)?;
    if verb.eq_ignore_ascii_case(b"STATE") {
        let version = match call.args.get(at + 2) {
            None => 1,
            Some(v) => args::integer_in("version", v, 1, 1000)? as i32,
        };
        if call.args.len() > at + 3 {
            return Err(malformed());
        }
        let bytes = call.args.get(at + 1).ok_or_else(malformed)?;
        return load_state(call, event, bytes, version);
    }
    let (handler, verb): (fn(&Call) -> TqResult<Reply>, &'static str) =
        if verb.eq_ignore_ascii_case(b"ADVANCE") {
            (background::advance, "advance")
        } else {
            match by_verb(verb) {
                Some(c) if c.flags.contains("write") || c.flags.contains("may-replicate") => {
                    if c.name == APPLY.name {
                        return Err(malformed());
                    }
                    (c.handler, c.verb())
                }
                _ => return Err(malformed()),
            }
        };
    // The command's own arguments: the event, then what follows the verb.
    let args: Vec<&[u8]> = std::iter::once(call.args[0])
        .chain(call.args[at + 1..].iter().copied())
        .collect();
    let strings: Vec<_> = std::iter::once(call.strings[0])
        .chain(call.strings[at + 1..].iter().copied())
        .collect();
    let outcome = handler(&Call {
        ctx: call.ctx,
        args: &args,
        strings: &strings,
        now_ms,
        origin: Origin::Record,
        verb,
        created_with,
        resumed,
        draws: &draws,
    });
    match outcome {
        // The client on the master already got the rule's answer (an error
        // such as DUPLICATE still changes what it recorded); here only the
        // change matters.
        Ok(_)
        | Err(
            TqError::Duplicate(_)
            | TqError::NotQueued
            | TqError::NotReady(_)
            | TqError::NotOpen(_)
            | TqError::SeatUnavailable(_)
            | TqError::SoldOut
            | TqError::NotHeld(_)
            | TqError::NotOwner(_)
            | TqError::NoPass
            | TqError::Limit(_),
        ) => {}
        Err(unexpected) => super::log::warning(&format!(
            "tq: a TQ.APPLY record for event '{}' failed here but not on the master: {unexpected}",
            String::from_utf8_lossy(event).escape_default()
        )),
    }
    Ok(Reply::ok())
}

/// The settings after `NEW` from `at`: `<SETTING> <value>` pairs, or tq
/// 0.3's five numbers (rate, burst, heartbeat, hold-ttl, dedupe-ttl).
/// Returns them and where the record goes on.
fn read_settings(words: &[&[u8]], mut at: usize) -> TqResult<(Settings, usize)> {
    let mut settings = Settings::DEFAULT;
    let first_is_number = words
        .get(at)
        .is_some_and(|w| !w.is_empty() && w.iter().all(u8::is_ascii_digit));
    if first_is_number {
        for setting in Setting::FIRST {
            let raw = words.get(at).ok_or_else(malformed)?;
            let (min, max) = setting.range();
            settings.set(setting, args::integer_in(setting.keyword(), raw, min, max)?);
            at += 1;
        }
        return Ok((settings, at));
    }
    while let Some(setting) = words.get(at).and_then(|w| Setting::from_keyword(w)) {
        let raw = words.get(at + 1).ok_or_else(malformed)?;
        let (min, max) = setting.range();
        settings.set(setting, args::integer_in(setting.keyword(), raw, min, max)?);
        at += 2;
    }
    Ok((settings, at))
}

/// `STATE <bytes> <version>`: the event's state as an AOF rewrite wrote
/// it. The stream is rewritten by Redis itself, next to it.
fn load_state(call: &Call, event: &[u8], bytes: &[u8], version: i32) -> TqResult<Reply> {
    let mut decoded =
        codec::decode_version(bytes, version).map_err(|e| TqError::syntax(e.to_string()))?;
    // Loaded like an RDB at a restart (the AOF), or converted from tq 0.2
    // on the master: either way the master resumes it at its first step.
    decoded.restarted = true;
    let mut state = Key::open(call.ctx, RStr::key_name(event, "state"), true);
    if !matches!(state.holds(), Holds::Nothing | Holds::State) {
        return Err(TqError::WrongType);
    }
    state.set_state(Box::new(decoded));
    state.signal_modified();
    // Passed on to this server's own replicas and AOF, like every record.
    // SAFETY: valid context of the running command.
    unsafe { redis_module::raw::RedisModule_ReplicateVerbatim.unwrap()(call.ctx.ctx) };
    // SAFETY: valid context.
    let db = unsafe { redis_module::raw::RedisModule_GetSelectedDb.unwrap()(call.ctx.ctx) };
    background::schedule(db, event, Some(0));
    Ok(Reply::ok())
}
