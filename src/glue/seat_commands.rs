//! TQ.INVENTORY, TQ.HOLD, TQ.RELEASE, TQ.CONFIRM, TQ.SEAT.

use redis_module::Context;

use super::commands::now_ms;
use super::config::defaults;
use super::keys::Fixed;
use super::reply::Reply;
use super::store::RedisStore;
use crate::domain::args;
use crate::domain::error::TqResult;
use crate::domain::event;
use crate::domain::seats;

/// Opens the event for a seat command, checking its seat keys' types.
fn open<'c>(ctx: &'c Context, event_name: &[u8]) -> TqResult<RedisStore<'c>> {
    guarded(RedisStore::new(ctx, event_name))
}

fn guarded(mut store: RedisStore<'_>) -> TqResult<RedisStore<'_>> {
    store.guard(&Fixed::SEAT_FAMILY, &[])?;
    Ok(store)
}

pub fn inventory(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_inventory(args)?;
    let mut store = open(ctx, req.event)?;
    Ok(Reply::uint(seats::inventory(
        &mut store,
        now_ms(),
        req.set,
    )?))
}

pub fn hold(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_hold(args)?;
    let mut store = open(ctx, req.event)?;
    let ttl_s = match req.ttl_s {
        Some(ttl) => ttl,
        None => event::settings(&mut store, &defaults())?.hold_ttl_s,
    };
    let left = seats::hold(&mut store, now_ms(), req.seat, req.user, ttl_s)?;
    Ok(Reply::uint(left))
}

pub fn release(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_release(args)?;
    let mut store = open(ctx, req.event)?;
    let left = seats::release(&mut store, now_ms(), req.seat, req.user)?;
    Ok(Reply::uint(left))
}

pub fn confirm(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_confirm(args)?;
    let user = req.user.unwrap_or_default();
    let mut store = open(ctx, req.event)?;
    seats::confirm(&mut store, now_ms(), req.seat, user)?;
    Ok(Reply::ok())
}

pub fn seat(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_seat(args)?;
    let mut store = guarded(RedisStore::read_only(ctx, req.event))?;
    let view = seats::seat_view(&mut store, now_ms(), req.seat)?;
    Ok(Reply::Map(vec![
        ("state", Reply::Bulk(view.state.as_bytes().to_vec())),
        ("user", view.user.map_or(Reply::Null, Reply::Bulk)),
        ("ttl_ms", Reply::Int(view.ttl_ms)),
    ]))
}
