//! TQ.PASS.

use super::command_info::{arg, Doc, Kind::*, ACCESS, EVENT, RW, UPDATE};
use super::commands::{Call, Command};
use super::event_keys::write;
use super::reply::Reply;
use crate::domain::args;
use crate::domain::buyers::id_text;
use crate::domain::error::TqResult;
use crate::domain::event::PassAction;

pub const PASS: Command = Command {
    name: "tq.pass",
    flags: "write fast",
    doc: Doc {
        summary: "Shows a user's pass and seats; TOUCH renews the pass, REVOKE ends it",
        complexity:
            "O(log P) with P the number of passes, plus the user's holds due but not yet given back",
        arity: -3,
        key_flags: RW | UPDATE | ACCESS,
        args: &[
            EVENT,
            arg("user", Text),
            arg("action", Oneof(&["TOUCH", "REVOKE"])).optional(),
        ],
    },
    handler: pass,
};

fn pass(call: &Call) -> TqResult<Reply> {
    let req = args::parse_pass(call.args)?;
    let view = write(call, req.event, |e, step| {
        e.pass(step, req.user, req.action)
    })??;
    if req.action == PassAction::Revoke {
        return Ok(Reply::bool(view.pass.is_some()));
    }
    Ok(Reply::Map(vec![
        ("active", Reply::bool(view.pass.is_some())),
        (
            "pass",
            view.pass
                .map_or(Reply::Null, |p| Reply::Bulk(id_text(&p.id).to_vec())),
        ),
        (
            "expires_at",
            view.pass
                .map_or(Reply::Int(-1), |p| Reply::uint(p.expires_ms)),
        ),
        ("held", Reply::uint(view.held)),
        ("bought", Reply::uint(view.bought)),
    ]))
}
