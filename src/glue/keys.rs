//! Names of the Redis keys that hold one event (`tq:{E}:...`). The braces
//! make `E` the hash tag, so all of them share the slot of the key `E`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use redis_module::{Context, KeyType};

use super::rawkey::RStr;

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

    fn suffix(self) -> &'static [u8] {
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

    /// The Redis type the key has when it exists.
    fn kind(self) -> KeyType {
        match self {
            Fixed::Queue => KeyType::Stream,
            Fixed::Order | Fixed::Beat | Fixed::Holds => KeyType::ZSet,
            Fixed::Meta => KeyType::String,
            Fixed::Seats | Fixed::Admits | Fixed::Tokens => KeyType::Hash,
        }
    }

    /// Whether tq can use the key as it is: absent, of its type, or a
    /// `meta` hash left by tq 0.1 (read, then rewritten as a string).
    pub fn accepts(self, actual: KeyType) -> bool {
        actual == KeyType::Empty
            || actual == self.kind()
            || (self == Fixed::Meta && actual == KeyType::Hash)
    }
}

/// Key names of one event: `tq:{E}:` plus a suffix.
pub struct EventKeys {
    names: Rc<EventNames>,
}

/// An event's key prefix, and its fixed keys' names as Redis strings
/// (indexed by `Fixed`).
struct EventNames {
    prefix: Vec<u8>,
    fixed: [RStr; Fixed::ALL.len()],
}

/// Per-user and dedupe key names up to this long are assembled without
/// allocating.
const NAME_ON_STACK: usize = 256;

/// Events whose fixed key names are kept; past this the cache starts over.
const CACHED_EVENTS: usize = 1024;

thread_local! {
    /// Key names of recently used events. Every command opens several
    /// fixed keys; taking a reference to a cached name saves making and
    /// freeing a string per key per command. Only names live here, never
    /// state (all state is in the keys themselves). Redis runs commands and
    /// timers on its main thread, so one cache per thread is one cache.
    static EVENT_NAMES: RefCell<HashMap<Vec<u8>, Rc<EventNames>>> =
        RefCell::new(HashMap::new());
}

impl EventKeys {
    /// The event name.
    pub fn event(&self) -> &[u8] {
        let prefix = &self.names.prefix;
        &prefix[4..prefix.len() - 2]
    }

    pub fn new(event: &[u8]) -> Self {
        let names = EVENT_NAMES.with_borrow_mut(|cache| {
            if let Some(names) = cache.get(event) {
                return names.clone();
            }
            if cache.len() >= CACHED_EVENTS {
                cache.clear();
            }
            let prefix = prefix_of(event);
            let fixed = Fixed::ALL.map(|which| RStr::detached(&fixed_name(&prefix, which)));
            let names = Rc::new(EventNames { prefix, fixed });
            cache.insert(event.to_vec(), names.clone());
            names
        });
        EventKeys { names }
    }

    /// The name of a fixed key, for this command.
    pub fn fixed(&self, ctx: &Context, which: Fixed) -> RStr {
        self.names.fixed[which as usize].retain(ctx)
    }

    /// The name of a per-user or per-dedupe-id key.
    pub fn other(&self, ctx: &Context, kind: Other, id: &[u8]) -> RStr {
        let prefix = &self.names.prefix;
        let len = prefix.len() + kind.infix().len() + id.len();
        if len > NAME_ON_STACK {
            return RStr::new(ctx, &other_name(prefix, kind, id));
        }
        // Most names are short: put them together on the stack.
        let mut name = [0u8; NAME_ON_STACK];
        let mut at = 0;
        for part in [prefix.as_slice(), kind.infix(), id] {
            name[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        RStr::new(ctx, &name[..at])
    }

    /// Whether `name` is this event's `kind` key for `id`.
    pub fn is_other(&self, name: &[u8], kind: Other, id: &[u8]) -> bool {
        is_other_name(&self.names.prefix, name, kind, id)
    }
}

fn prefix_of(event: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(event.len() + 6);
    prefix.extend_from_slice(b"tq:{");
    prefix.extend_from_slice(event);
    prefix.extend_from_slice(b"}:");
    prefix
}

fn fixed_name(prefix: &[u8], which: Fixed) -> Vec<u8> {
    [prefix, which.suffix()].concat()
}

fn other_name(prefix: &[u8], kind: Other, id: &[u8]) -> Vec<u8> {
    [prefix, kind.infix(), id].concat()
}

/// `name == other_name(prefix, kind, id)`, for a `name` that starts with
/// `prefix`, without building the other name.
fn is_other_name(prefix: &[u8], name: &[u8], kind: Other, id: &[u8]) -> bool {
    let infix_at = prefix.len();
    name.len() == infix_at + kind.infix().len() + id.len()
        && name.ends_with(id)
        && name[infix_at..].starts_with(kind.infix())
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

    fn kind(self) -> KeyType {
        match self {
            Other::User => KeyType::ZSet,
            Other::Dedupe => KeyType::String,
        }
    }

    /// Whether tq can use the key as it is: absent or of its type.
    pub fn accepts(self, actual: KeyType) -> bool {
        actual == KeyType::Empty || actual == self.kind()
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
    /// - a held seat is in the seats hash, and seats imply the meta key
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
    fn other_names_are_recognised_without_building_them() {
        let prefix = prefix_of(b"ev");
        let ids: [&[u8]; 5] = [b"u1", b"u", b"user:u1", b"", b"1u"];
        for kind in [Other::User, Other::Dedupe] {
            for id in ids {
                let name = other_name(&prefix, kind, id);
                for other_kind in [Other::User, Other::Dedupe] {
                    for other_id in ids {
                        assert_eq!(
                            is_other_name(&prefix, &name, other_kind, other_id),
                            kind == other_kind && id == other_id,
                            "{kind:?} {id:?} vs {other_kind:?} {other_id:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn key_names() {
        let prefix = prefix_of(b"concert");
        assert_eq!(fixed_name(&prefix, Fixed::Queue), b"tq:{concert}:queue");
        assert_eq!(fixed_name(&prefix, Fixed::Tokens), b"tq:{concert}:tokens");
        assert_eq!(
            other_name(&prefix, Other::User, b"u1"),
            b"tq:{concert}:user:u1"
        );
        assert_eq!(
            other_name(&prefix, Other::Dedupe, b"d{x}"),
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
