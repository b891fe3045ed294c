//! Every way a TQ command can fail, with the error code clients see as the
//! first word of the reply (`-CODE human text`). Each mistake has one
//! constructor here, so it reads the same from every command.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TqError {
    /// Bad syntax or a bad value: `-ERR <text>`.
    Syntax(String),
    /// A key of the event holds a value of another type.
    WrongType,
    /// The token is already waiting or the dedupe id was seen: carries the
    /// stream id of the original entry.
    Duplicate(String),
    NotQueued,
    /// Not admitted yet: carries the current position.
    NotReady(u64),
    /// Before the scheduled opening: carries the ms until it.
    NotOpen(u64),
    /// Carries the seat's name.
    SeatUnavailable(Vec<u8>),
    SoldOut,
    NotHeld(Vec<u8>),
    NotOwner(Vec<u8>),
    /// The user has no live pass (TQ.HOLD with REQUIRE-PASS, TQ.PASS
    /// TOUCH).
    NoPass,
    /// A per-user limit: carries the limit (MAX-ENTRIES, MAX-SEATS).
    Limit(u64),
    /// The event's keys are only partly on this node (slot mid-migration).
    TryAgain,
    /// One key of the event is gone or does not match the other (evicted
    /// under an `allkeys-*` policy, or deleted by hand): carries which.
    Damaged(&'static str),
    /// A write sent to a read-only replica (Redis' own `READONLY`).
    ReadOnlyReplica,
    /// A write that may grow memory while it is full (Redis' own `OOM`).
    OutOfMemory,
    /// Something the rules did not foresee (a bug, caught at the command
    /// boundary).
    Internal(String),
}

pub type TqResult<T> = Result<T, TqError>;

impl TqError {
    pub fn syntax(text: impl Into<String>) -> Self {
        TqError::Syntax(text.into())
    }

    /// The first word of the error reply; also the label of the error in
    /// `INFO tq`.
    pub fn code(&self) -> &'static str {
        match self {
            TqError::Syntax(_) | TqError::Internal(_) | TqError::Damaged(_) => "ERR",
            TqError::WrongType => "WRONGTYPE",
            TqError::Duplicate(_) => "DUPLICATE",
            TqError::NotQueued => "NOT_QUEUED",
            TqError::NotReady(_) => "NOT_READY",
            TqError::NotOpen(_) => "NOT_OPEN",
            TqError::SeatUnavailable(_) => "SEAT_UNAVAILABLE",
            TqError::SoldOut => "SOLD_OUT",
            TqError::NotHeld(_) => "NOT_HELD",
            TqError::NotOwner(_) => "NOT_OWNER",
            TqError::NoPass => "NO_PASS",
            TqError::Limit(_) => "LIMIT",
            TqError::TryAgain => "TRYAGAIN",
            TqError::ReadOnlyReplica => "READONLY",
            TqError::OutOfMemory => "OOM",
        }
    }
}

/// A client-given name inside an error text: printable ASCII, short.
struct Shown<'a>(&'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 64;
        for &b in &self.0[..self.0.len().min(MAX)] {
            write!(f, "{}", std::ascii::escape_default(b))?;
        }
        if self.0.len() > MAX {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Display for TqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            TqError::Syntax(text) => write!(f, "{code} {text}"),
            TqError::Internal(text) => write!(f, "{code} internal error: {text}"),
            TqError::Damaged(what) => write!(
                f,
                "{code} this event's {what}; it was evicted or deleted outside tq, so its figures \
                 cannot be trusted (delete both keys of the event to start it again)"
            ),
            TqError::WrongType => {
                write!(
                    f,
                    "{code} Operation against a key holding the wrong kind of value"
                )
            }
            TqError::Duplicate(id) => write!(f, "{code} {id}"),
            TqError::NotReady(position) => write!(f, "{code} {position}"),
            TqError::NotOpen(ms) => write!(f, "{code} {ms}"),
            TqError::NotQueued => write!(f, "{code} token is not waiting"),
            TqError::SeatUnavailable(seat) => write!(f, "{code} {} is held or sold", Shown(seat)),
            TqError::SoldOut => write!(f, "{code} no seats left"),
            TqError::NotHeld(seat) => write!(f, "{code} {} is not held", Shown(seat)),
            TqError::NotOwner(seat) => {
                write!(f, "{code} {} is held by another user", Shown(seat))
            }
            TqError::NoPass => write!(f, "{code} the user has no live pass for this event"),
            TqError::Limit(limit) => write!(f, "{code} {limit}"),
            TqError::TryAgain => {
                write!(f, "{code} event keys are only partly on this node, retry")
            }
            TqError::ReadOnlyReplica => {
                write!(f, "{code} You can't write against a read only replica.")
            }
            TqError::OutOfMemory => write!(
                f,
                "{code} command not allowed when used memory > 'maxmemory'."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_starts_with_its_code() {
        let all = [
            TqError::syntax("bad"),
            TqError::WrongType,
            TqError::Duplicate("1-0".into()),
            TqError::NotQueued,
            TqError::NotReady(3),
            TqError::NotOpen(1500),
            TqError::SeatUnavailable(b"A1".to_vec()),
            TqError::SoldOut,
            TqError::NotHeld(b"\r\n\xff".to_vec()),
            TqError::NotOwner(vec![b'x'; 500]),
            TqError::NoPass,
            TqError::Limit(4),
            TqError::TryAgain,
            TqError::ReadOnlyReplica,
            TqError::OutOfMemory,
            TqError::Damaged("queue is missing"),
            TqError::Internal("x".into()),
        ];
        for e in all {
            let text = e.to_string();
            assert!(text.starts_with(e.code()), "{text}");
            assert!(text.is_ascii() && !text.contains('\r') && !text.contains('\n'));
            assert!(text.len() < 400, "{text}");
        }
        assert_eq!(
            TqError::Duplicate("5-1".into()).to_string(),
            "DUPLICATE 5-1"
        );
        assert_eq!(TqError::NotReady(7).to_string(), "NOT_READY 7");
        assert_eq!(
            TqError::SeatUnavailable(b"A1".to_vec()).to_string(),
            "SEAT_UNAVAILABLE A1 is held or sold"
        );
    }
}
