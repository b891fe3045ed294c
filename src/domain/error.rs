//! Every way a TQ command can fail, with the error code clients see as the
//! first word of the reply (`-CODE human text`).

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
    SeatUnavailable,
    SoldOut,
    NotHeld,
    NotOwner,
    /// The event's keys are only partly on this node (slot mid-migration).
    TryAgain,
    /// A storage call failed in a way the rules did not foresee.
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
            TqError::Syntax(_) | TqError::Internal(_) => "ERR",
            TqError::WrongType => "WRONGTYPE",
            TqError::Duplicate(_) => "DUPLICATE",
            TqError::NotQueued => "NOT_QUEUED",
            TqError::NotReady(_) => "NOT_READY",
            TqError::SeatUnavailable => "SEAT_UNAVAILABLE",
            TqError::SoldOut => "SOLD_OUT",
            TqError::NotHeld => "NOT_HELD",
            TqError::NotOwner => "NOT_OWNER",
            TqError::TryAgain => "TRYAGAIN",
        }
    }
}

impl fmt::Display for TqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            TqError::Syntax(text) => write!(f, "{code} {text}"),
            TqError::Internal(text) => write!(f, "{code} internal error: {text}"),
            TqError::WrongType => {
                write!(
                    f,
                    "{code} Operation against a key holding the wrong kind of value"
                )
            }
            TqError::Duplicate(id) => write!(f, "{code} {id}"),
            TqError::NotReady(position) => write!(f, "{code} {position}"),
            TqError::NotQueued => write!(f, "{code} token is not waiting"),
            TqError::SeatUnavailable => write!(f, "{code} seat is held or sold"),
            TqError::SoldOut => write!(f, "{code} no seats left"),
            TqError::NotHeld => write!(f, "{code} seat is not held"),
            TqError::NotOwner => write!(f, "{code} seat is held by another user"),
            TqError::TryAgain => {
                write!(f, "{code} event keys are only partly on this node, retry")
            }
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
            TqError::SeatUnavailable,
            TqError::SoldOut,
            TqError::NotHeld,
            TqError::NotOwner,
            TqError::TryAgain,
            TqError::Internal("x".into()),
        ];
        for e in all {
            let text = e.to_string();
            assert!(text.starts_with(e.code()), "{text}");
            assert!(text.is_ascii());
        }
        assert_eq!(
            TqError::Duplicate("5-1".into()).to_string(),
            "DUPLICATE 5-1"
        );
        assert_eq!(TqError::NotReady(7).to_string(), "NOT_READY 7");
    }
}
