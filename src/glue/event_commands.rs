//! TQ.CONFIG and TQ.STATS.

use redis_module::Context;

use super::commands::now_ms;
use super::config::defaults;
use super::keys::Fixed;
use super::reply::Reply;
use super::store::RedisStore;
use crate::domain::args;
use crate::domain::error::TqResult;
use crate::domain::event;
use crate::domain::settings::Setting;

pub fn config(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_config(args)?;
    let mut store = RedisStore::new(ctx, req.event);
    store.guard(&[Fixed::Meta], &[])?;
    if !req.change.is_empty() {
        event::configure(&mut store, &req.change)?;
        return Ok(Reply::ok());
    }
    let settings = event::settings(&mut store, &defaults())?;
    Ok(Reply::Map(
        Setting::ALL
            .into_iter()
            .map(|s| (s.field(), Reply::uint(settings.get(s))))
            .collect(),
    ))
}

pub fn stats(ctx: &Context, args: &[&[u8]]) -> TqResult<Reply> {
    let req = args::parse_event_args(args, "tq.stats")?;
    let mut store = RedisStore::read_only(ctx, req.event);
    store.guard(&Fixed::ALL, &[])?;
    let settings = event::settings(&mut store, &defaults())?;
    let s = event::stats(&mut store, &settings, now_ms())?;
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
    ]))
}
