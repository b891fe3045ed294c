//! TQ.ENQUEUE, TQ.POSITION, TQ.ENTER, TQ.LEAVE, TQ.USER, TQ.TRIM.

use redis_module::Context;

use super::commands::now_ms;
use super::config::defaults;
use super::keys::{Fixed, Other};
use super::reply::Reply;
use super::store::RedisStore;
use crate::domain::args;
use crate::domain::error::TqResult;
use crate::domain::event;
use crate::domain::queue;
use crate::domain::settings::Settings;

/// Keys of a command that joins, removes or locates entries.
const MOVES: [Fixed; 5] = [
    Fixed::Queue,
    Fixed::Order,
    Fixed::Beat,
    Fixed::Meta,
    Fixed::Tokens,
];

/// Opens the event for a write queue command.
fn open<'c>(
    ctx: &'c Context,
    event_name: &[u8],
    family: &[Fixed],
    others: &[(Other, &[u8])],
) -> TqResult<(RedisStore<'c>, Settings)> {
    guarded(RedisStore::new(ctx, event_name), family, others)
}

/// Checks the keys the command uses before anything is read or written,
/// then reads the event's settings.
fn guarded<'c>(
    mut store: RedisStore<'c>,
    family: &[Fixed],
    others: &[(Other, &[u8])],
) -> TqResult<(RedisStore<'c>, Settings)> {
    store.guard(family, others)?;
    let settings = event::settings(&mut store, &defaults())?;
    Ok((store, settings))
}

pub fn enqueue(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_enqueue(args)?;
    let user = (Other::User, req.user);
    let with_dedupe;
    let others: &[(Other, &[u8])] = match req.dedupe {
        Some(d) => {
            with_dedupe = [user, (Other::Dedupe, d)];
            &with_dedupe
        }
        None => std::slice::from_ref(&user),
    };
    let (mut store, settings) = open(ctx, req.event, &MOVES, others)?;
    let done = queue::enqueue(&mut store, &settings, now_ms(), &req)?;
    Ok(Reply::Map(vec![
        ("id", Reply::Bulk(done.id.text().to_vec())),
        ("position", Reply::uint(done.position)),
        ("user_position", Reply::uint(done.user_position)),
    ]))
}

pub fn position(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_token_args(args, "tq.position")?;
    let (mut store, settings) = open(ctx, req.event, &Fixed::QUEUE_FAMILY, &[])?;
    let p = queue::position(&mut store, &settings, now_ms(), req.token)?;
    Ok(Reply::Map(vec![
        ("position", Reply::uint(p.position)),
        ("user_position", Reply::uint(p.user_position)),
        ("ready", Reply::bool(p.ready)),
        ("eta_ms", Reply::Int(p.eta_ms)),
        ("waited_ms", Reply::uint(p.waited_ms)),
    ]))
}

pub fn enter(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_token_args(args, "tq.enter")?;
    let (mut store, settings) = open(ctx, req.event, &Fixed::QUEUE_FAMILY, &[])?;
    let done = queue::enter(&mut store, &settings, now_ms(), req.token)?;
    Ok(Reply::Map(vec![
        ("admitted", Reply::Int(1)),
        ("position_was", Reply::uint(done.position_was)),
    ]))
}

pub fn leave(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_token_args(args, "tq.leave")?;
    let (mut store, settings) = open(ctx, req.event, &MOVES, &[])?;
    let removed = queue::leave(&mut store, &settings, now_ms(), req.token)?;
    Ok(Reply::bool(removed))
}

pub fn user(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_user_args(args)?;
    let store = RedisStore::read_only(ctx, req.event);
    let (mut store, settings) = guarded(store, &MOVES, &[(Other::User, req.user)])?;
    let entries = queue::user_view(&mut store, &settings, now_ms(), req.user)?;
    Ok(Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                Reply::Map(vec![
                    ("id", Reply::Bulk(e.id.to_string().into_bytes())),
                    ("token", Reply::Bulk(e.token)),
                    ("position", Reply::uint(e.position)),
                ])
            })
            .collect(),
    ))
}

pub fn trim(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_trim(args)?;
    let (mut store, settings) = open(ctx, req.event, &MOVES, &[])?;
    let removed = queue::trim(&mut store, &settings, now_ms(), req.max_age_s)?;
    Ok(Reply::uint(removed))
}
