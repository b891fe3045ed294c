//! Names of the Redis keys that hold one event (`tq:{E}:...`). The braces
//! make `E` the hash tag, so all of them share the slot of the key `E`.

use redis_module::KeyType;

/// The keys every event has (each may be absent until first written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    Queue,
    Order,
    Beat,
    Meta,
    Seats,
    Holds,
    Admits,
    Tokens,
}

impl Fixed {
    pub const ALL: [Fixed; 8] = [
        Fixed::Queue,
        Fixed::Order,
        Fixed::Beat,
        Fixed::Meta,
        Fixed::Seats,
        Fixed::Holds,
        Fixed::Admits,
        Fixed::Tokens,
    ];
    /// What the waiting-room commands read or write.
    pub const QUEUE_FAMILY: [Fixed; 6] = [
        Fixed::Queue,
        Fixed::Order,
        Fixed::Beat,
        Fixed::Meta,
        Fixed::Admits,
        Fixed::Tokens,
    ];
    /// What the seat commands read or write.
    pub const SEAT_FAMILY: [Fixed; 3] = [Fixed::Seats, Fixed::Holds, Fixed::Meta];

    pub fn suffix(self) -> &'static [u8] {
        match self {
            Fixed::Queue => b"queue",
            Fixed::Order => b"order",
            Fixed::Beat => b"beat",
            Fixed::Meta => b"meta",
            Fixed::Seats => b"seats",
            Fixed::Holds => b"holds",
            Fixed::Admits => b"admits",
            Fixed::Tokens => b"tokens",
        }
    }

    /// The Redis type the key must have when it exists.
    pub fn kind(self) -> KeyType {
        match self {
            Fixed::Queue => KeyType::Stream,
            Fixed::Order | Fixed::Beat | Fixed::Holds => KeyType::ZSet,
            Fixed::Meta | Fixed::Seats | Fixed::Admits | Fixed::Tokens => KeyType::Hash,
        }
    }
}

/// Key names of one event: `tq:{E}:` plus a suffix.
pub struct EventKeys {
    prefix: Vec<u8>,
}

impl EventKeys {
    /// The event name.
    pub fn event(&self) -> &[u8] {
        &self.prefix[4..self.prefix.len() - 2]
    }

    pub fn new(event: &[u8]) -> Self {
        let mut prefix = Vec::with_capacity(event.len() + 16);
        prefix.extend_from_slice(b"tq:{");
        prefix.extend_from_slice(event);
        prefix.extend_from_slice(b"}:");
        EventKeys { prefix }
    }

    /// The name of a fixed key, in parts (see `rawkey::Key::open`).
    pub fn fixed(&self, which: Fixed) -> [&[u8]; 3] {
        [&self.prefix, which.suffix(), b""]
    }

    /// The name of a per-user or per-dedupe-id key, in parts.
    pub fn other<'a>(&'a self, kind: Other, id: &'a [u8]) -> [&'a [u8]; 3] {
        [&self.prefix, kind.infix(), id]
    }
}

/// Keys an event has one of per user, or per dedupe id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Other {
    /// Sorted set of one user's waiting tokens.
    User,
    /// String recording a dedupe id until its window closes.
    Dedupe,
}

impl Other {
    fn infix(self) -> &'static [u8] {
        match self {
            Other::User => b"user:",
            Other::Dedupe => b"dedupe:",
        }
    }

    pub fn kind(self) -> KeyType {
        match self {
            Other::User => KeyType::ZSet,
            Other::Dedupe => KeyType::String,
        }
    }
}

/// Which of an event's keys exist on this node (for the queue stream: holds
/// entries).
#[derive(Debug, Clone, Copy, Default)]
pub struct Presence {
    pub queue_entries: bool,
    pub order: bool,
    pub tokens: bool,
    pub beat: bool,
    pub meta: bool,
    pub seats: bool,
    pub holds: bool,
    pub admits: bool,
}

impl Presence {
    /// Whether these keys can be the whole state of an event. The keys
    /// always appear together in these ways, so anything else means some
    /// are still on another node (a slot mid-migration):
    /// - waiting entries, their order index, their heartbeats and their
    ///   token -> user index exist together (empty sorted sets and hashes
    ///   vanish, the stream stays empty);
    /// - a held seat is in the seats hash, and seats imply the meta hash
    ///   (inventory), as do admissions (the admitted counter).
    pub fn is_whole(&self) -> bool {
        let queue_whole = self.queue_entries == self.order
            && self.order == self.beat
            && self.order == self.tokens;
        let seats_whole = (!self.holds || self.seats) && (!self.seats || self.meta);
        queue_whole && seats_whole && (!self.admits || self.meta)
    }
}

/// The event name inside a key `tq:{E}:<suffix>` whose suffix is one of
/// the fixed keys that mark an event with timed work (`beat`, `holds`).
pub fn event_with_timed_work(key: &[u8]) -> Option<&[u8]> {
    let rest = key.strip_prefix(b"tq:{")?;
    let close = rest.iter().position(|b| *b == b'}')?;
    match &rest[close..] {
        b"}:beat" | b"}:holds" => Some(&rest[..close]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names() {
        let k = EventKeys::new(b"concert");
        assert_eq!(k.fixed(Fixed::Queue).concat(), b"tq:{concert}:queue");
        assert_eq!(k.event(), b"concert");
        assert_eq!(
            k.other(Other::User, b"u1").concat(),
            b"tq:{concert}:user:u1"
        );
        assert_eq!(
            k.other(Other::Dedupe, b"d{x}").concat(),
            b"tq:{concert}:dedupe:d{x}"
        );
    }

    #[test]
    fn partial_key_sets_are_not_whole() {
        let none = Presence::default();
        assert!(none.is_whole());
        let queue = Presence {
            queue_entries: true,
            order: true,
            beat: true,
            tokens: true,
            ..none
        };
        assert!(queue.is_whole());
        assert!(!Presence {
            beat: false,
            ..queue
        }
        .is_whole());
        assert!(!Presence {
            queue_entries: false,
            ..queue
        }
        .is_whole());
        let seats = Presence {
            meta: true,
            seats: true,
            holds: true,
            admits: true,
            ..queue
        };
        assert!(seats.is_whole());
        assert!(!Presence {
            seats: false,
            ..seats
        }
        .is_whole());
        assert!(!Presence {
            meta: false,
            ..seats
        }
        .is_whole());
        assert!(Presence {
            holds: false,
            ..seats
        }
        .is_whole());
    }

    #[test]
    fn timed_work_keys_name_their_event() {
        assert_eq!(event_with_timed_work(b"tq:{ev}:beat"), Some(&b"ev"[..]));
        assert_eq!(event_with_timed_work(b"tq:{ev}:holds"), Some(&b"ev"[..]));
        assert_eq!(event_with_timed_work(b"tq:{ev}:queue"), None);
        assert_eq!(event_with_timed_work(b"tq:{ev}:user:x:beat"), None);
        assert_eq!(event_with_timed_work(b"other"), None);
    }
}
