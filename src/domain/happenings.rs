//! The event log (`EVENTS n`): what happened to an event, told to workers
//! through the Stream `tq:{E}:events` by the same step that made it happen.
//!
//! The rules note what happened in their `Step` (`Step::note`), only when
//! the event keeps a log; the Redis side writes the notes to the stream.
//! A note about a waiting entry names it by its stream id: the state knows
//! tokens and users only by their digests, so their text is taken from the
//! queue stream before the entry is deleted from it.

use super::buyers::PassId;
use super::entry_id::EntryId;

/// One thing that happened, with what names its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// TQ.ENTER admitted the entry and gave its user this pass.
    Admitted {
        entry: EntryId,
        pass: PassId,
    },
    /// The entry's heartbeat lapsed.
    Abandoned {
        entry: EntryId,
    },
    /// TQ.LEAVE.
    Left {
        entry: EntryId,
    },
    /// TQ.TRIM.
    Trimmed {
        entry: EntryId,
    },
    Held {
        seat: Box<[u8]>,
        user: Box<[u8]>,
    },
    Released {
        seat: Box<[u8]>,
        user: Box<[u8]>,
    },
    HoldExpired {
        seat: Box<[u8]>,
        user: Box<[u8]>,
    },
    Confirmed {
        seat: Box<[u8]>,
        user: Box<[u8]>,
    },
    PassLapsed {
        pass: PassId,
    },
    PassRevoked {
        pass: PassId,
    },
    /// The scheduled opening happened.
    Opened,
    /// The event became sold out.
    SoldOut,
}

/// What a note names besides its type: its log entry's fields.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    /// A waiting entry: its `token` and `user`, as the queue stream holds
    /// them.
    pub entry: Option<EntryId>,
    pub seat: Option<&'a [u8]>,
    pub user: Option<&'a [u8]>,
    pub pass: Option<&'a PassId>,
}

impl Happening {
    /// Every `type` of a log entry, in `kind_index` order.
    pub const KINDS: [&'static str; 12] = [
        "admitted",
        "abandoned",
        "left",
        "trimmed",
        "held",
        "released",
        "hold_expired",
        "confirmed",
        "pass_lapsed",
        "pass_revoked",
        "opened",
        "sold_out",
    ];

    /// Where its `type` is in `KINDS`.
    pub fn kind_index(&self) -> usize {
        match self {
            Happening::Admitted { .. } => 0,
            Happening::Abandoned { .. } => 1,
            Happening::Left { .. } => 2,
            Happening::Trimmed { .. } => 3,
            Happening::Held { .. } => 4,
            Happening::Released { .. } => 5,
            Happening::HoldExpired { .. } => 6,
            Happening::Confirmed { .. } => 7,
            Happening::PassLapsed { .. } => 8,
            Happening::PassRevoked { .. } => 9,
            Happening::Opened => 10,
            Happening::SoldOut => 11,
        }
    }

    /// The `type` field of its log entry.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    pub fn subject(&self) -> Subject<'_> {
        let none = Subject::default();
        match self {
            Happening::Admitted { entry, pass } => Subject {
                entry: Some(*entry),
                pass: Some(pass),
                ..none
            },
            Happening::Abandoned { entry }
            | Happening::Left { entry }
            | Happening::Trimmed { entry } => Subject {
                entry: Some(*entry),
                ..none
            },
            Happening::Held { seat, user }
            | Happening::Released { seat, user }
            | Happening::HoldExpired { seat, user }
            | Happening::Confirmed { seat, user } => Subject {
                seat: Some(seat),
                user: Some(user),
                ..none
            },
            Happening::PassLapsed { pass } | Happening::PassRevoked { pass } => Subject {
                pass: Some(pass),
                ..none
            },
            Happening::Opened | Happening::SoldOut => none,
        }
    }
}

/// The notes of one step, kept only for an event with a log.
#[derive(Debug)]
pub struct Log {
    /// Each with the id of its log entry.
    pub notes: Vec<(EntryId, Happening)>,
    /// The id the next note gets: after the log's last one, at the step's
    /// time (`EntryId::next_after`).
    pub next_id: EntryId,
    /// Whether the event was sold out when the step began: a step that
    /// ends it sold out notes so (`Event::close_log`).
    pub sold_out_before: bool,
}

impl Log {
    pub fn note(&mut self, happening: Happening) {
        let id = self.next_id;
        self.next_id = EntryId::new(id.ms, id.seq + 1);
        self.notes.push((id, happening));
    }
}
