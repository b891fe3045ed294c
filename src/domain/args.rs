//! Argument parsing for every TQ command, as pure functions over byte
//! slices: no Redis types, so it is unit-tested and fuzzed on its own.
//! `args` never includes the command name itself.

use super::error::{TqError, TqResult};
use super::event::PassAction;
use super::settings::{Setting, SettingsChange, MAX_INVENTORY, MAX_SECONDS};

/// Longest event name (the contract's limit).
pub const MAX_EVENT_LEN: usize = 200;
/// Longest token, user, seat or dedupe id. Real ones are UUIDs or short
/// codes; the limit keeps one client from bloating every index.
pub const MAX_NAME_LEN: usize = 1024;

type Bytes<'a> = &'a [u8];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue<'a> {
    pub event: Bytes<'a>,
    pub user: Bytes<'a>,
    pub token: Bytes<'a>,
    pub dedupe: Option<Bytes<'a>>,
    pub ttl_s: Option<u64>,
}

/// TQ.POSITION, TQ.ENTER, TQ.LEAVE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenArgs<'a> {
    pub event: Bytes<'a>,
    pub token: Bytes<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserArgs<'a> {
    pub event: Bytes<'a>,
    pub user: Bytes<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassArgs<'a> {
    pub event: Bytes<'a>,
    pub user: Bytes<'a>,
    pub action: PassAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trim<'a> {
    pub event: Bytes<'a>,
    pub max_age_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory<'a> {
    pub event: Bytes<'a>,
    pub change: Option<InventoryChange>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryChange {
    Set(u64),
    Add(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold<'a> {
    pub event: Bytes<'a>,
    /// The seat, then those after WITH.
    pub seats: SeatList<'a>,
    pub user: Bytes<'a>,
    pub ttl_s: Option<u64>,
}

/// The seats one command names: a group of up to four stays on the stack.
pub type SeatList<'a> = smallvec::SmallVec<[Bytes<'a>; 4]>;

/// TQ.CONFIRM: seats of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seats<'a> {
    pub event: Bytes<'a>,
    /// The seat, then those after WITH.
    pub seats: SeatList<'a>,
    pub user: Bytes<'a>,
}

/// TQ.EXTEND: seats of one user and their new TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extend<'a> {
    pub seats: Seats<'a>,
    pub ttl_s: u64,
}

/// TQ.RELEASE (user optional).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatUser<'a> {
    pub event: Bytes<'a>,
    pub seat: Bytes<'a>,
    pub user: Option<Bytes<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatArgs<'a> {
    pub event: Bytes<'a>,
    pub seat: Bytes<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config<'a> {
    pub event: Bytes<'a>,
    pub change: SettingsChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventArgs<'a> {
    pub event: Bytes<'a>,
}

pub fn parse_enqueue<'a>(args: &[Bytes<'a>]) -> TqResult<Enqueue<'a>> {
    let (fixed, options) = split_fixed(args, 3, "tq.enqueue")?;
    let mut parsed = Enqueue {
        event: event(fixed[0])?,
        user: name("user", fixed[1])?,
        token: name("token", fixed[2])?,
        dedupe: None,
        ttl_s: None,
    };
    let mut options = Options::new(options);
    while let Some(keyword) = options.next_keyword()? {
        if keyword.eq_ignore_ascii_case(b"DEDUPE") {
            once(parsed.dedupe.is_none(), "DEDUPE")?;
            parsed.dedupe = Some(name("dedupe id", options.value("DEDUPE")?)?);
        } else if keyword.eq_ignore_ascii_case(b"TTL") {
            once(parsed.ttl_s.is_none(), "TTL")?;
            parsed.ttl_s = Some(seconds("TTL", options.value("TTL")?)?);
        } else {
            return Err(unknown_option(keyword));
        }
    }
    if parsed.ttl_s.is_some() && parsed.dedupe.is_none() {
        // TTL is the DEDUPE id's window: alone it would do nothing.
        return Err(TqError::syntax("syntax error, TTL needs DEDUPE"));
    }
    Ok(parsed)
}

pub fn parse_token_args<'a>(args: &[Bytes<'a>], command: &str) -> TqResult<TokenArgs<'a>> {
    let fixed = exactly(args, 2, command)?;
    Ok(TokenArgs {
        event: event(fixed[0])?,
        token: name("token", fixed[1])?,
    })
}

pub fn parse_user_args<'a>(args: &[Bytes<'a>]) -> TqResult<UserArgs<'a>> {
    let fixed = exactly(args, 2, "tq.user")?;
    Ok(UserArgs {
        event: event(fixed[0])?,
        user: name("user", fixed[1])?,
    })
}

/// `TQ.PASS event user [TOUCH | REVOKE]`.
pub fn parse_pass<'a>(args: &[Bytes<'a>]) -> TqResult<PassArgs<'a>> {
    let (fixed, options) = split_fixed(args, 2, "tq.pass")?;
    let action = match options {
        [] => PassAction::Show,
        [word] if word.eq_ignore_ascii_case(b"TOUCH") => PassAction::Touch,
        [word] if word.eq_ignore_ascii_case(b"REVOKE") => PassAction::Revoke,
        [word] => return Err(unknown_option(word)),
        _ => return Err(TqError::syntax("syntax error, TOUCH and REVOKE go alone")),
    };
    Ok(PassArgs {
        event: event(fixed[0])?,
        user: name("user", fixed[1])?,
        action,
    })
}

pub fn parse_trim<'a>(args: &[Bytes<'a>]) -> TqResult<Trim<'a>> {
    let fixed = exactly(args, 3, "tq.trim")?;
    if !fixed[1].eq_ignore_ascii_case(b"MAXAGE") {
        return Err(TqError::syntax("syntax error, expected MAXAGE seconds"));
    }
    Ok(Trim {
        event: event(fixed[0])?,
        max_age_s: seconds("MAXAGE", fixed[2])?,
    })
}

pub fn parse_inventory<'a>(args: &[Bytes<'a>]) -> TqResult<Inventory<'a>> {
    match args {
        [e] => Ok(Inventory {
            event: event(e)?,
            change: None,
        }),
        [e, keyword, n] if keyword.eq_ignore_ascii_case(b"SET") => Ok(Inventory {
            event: event(e)?,
            change: Some(InventoryChange::Set(integer_in(
                "inventory",
                n,
                0,
                MAX_INVENTORY,
            )?)),
        }),
        [e, keyword, n] if keyword.eq_ignore_ascii_case(b"ADD") => Ok(Inventory {
            event: event(e)?,
            change: Some(InventoryChange::Add(signed_in(
                "ADD",
                n,
                -(MAX_INVENTORY as i64),
                MAX_INVENTORY as i64,
            )?)),
        }),
        [_, _, _] => Err(TqError::syntax("syntax error, expected SET n or ADD n")),
        _ => Err(arity("tq.inventory")),
    }
}

/// Most seats one TQ.HOLD, TQ.CONFIRM or TQ.EXTEND names (the seat and
/// those after WITH).
pub const MAX_GROUP: usize = 100;

pub fn parse_hold<'a>(args: &[Bytes<'a>]) -> TqResult<Hold<'a>> {
    let (fixed, options) = split_fixed(args, 3, "tq.hold")?;
    let mut ttl_s = None;
    let (options, with) = split_with(options)?;
    let mut options = Options::new(options);
    while let Some(keyword) = options.next_keyword()? {
        if keyword.eq_ignore_ascii_case(b"TTL") {
            once(ttl_s.is_none(), "TTL")?;
            ttl_s = Some(seconds("TTL", options.value("TTL")?)?);
        } else {
            return Err(unknown_option(keyword));
        }
    }
    Ok(Hold {
        event: event(fixed[0])?,
        seats: group(fixed[1], with)?,
        user: name("user", fixed[2])?,
        ttl_s,
    })
}

/// `TQ.CONFIRM event seat user [WITH seat [seat ...]]`.
pub fn parse_confirm<'a>(args: &[Bytes<'a>]) -> TqResult<Seats<'a>> {
    let (fixed, options) = split_fixed(args, 3, "tq.confirm")?;
    seats_of_user(fixed, options)
}

/// `TQ.EXTEND event seat user TTL seconds [WITH seat [seat ...]]`.
pub fn parse_extend<'a>(args: &[Bytes<'a>]) -> TqResult<Extend<'a>> {
    let (fixed, options) = split_fixed(args, 5, "tq.extend")?;
    if !fixed[3].eq_ignore_ascii_case(b"TTL") {
        return Err(TqError::syntax("syntax error, expected TTL seconds"));
    }
    Ok(Extend {
        seats: seats_of_user(&fixed[..3], options)?,
        ttl_s: seconds("TTL", fixed[4])?,
    })
}

/// `event seat user` then nothing but `[WITH seat [seat ...]]`.
fn seats_of_user<'a>(fixed: &[Bytes<'a>], options: &[Bytes<'a>]) -> TqResult<Seats<'a>> {
    let (options, with) = split_with(options)?;
    if let Some(keyword) = options.first() {
        return Err(unknown_option(keyword));
    }
    Ok(Seats {
        event: event(fixed[0])?,
        seats: group(fixed[1], with)?,
        user: name("user", fixed[2])?,
    })
}

/// Splits options at WITH: what comes before, and the seats after it (at
/// least one; WITH takes the rest of the arguments).
fn split_with<'s, 'a>(options: &'s [Bytes<'a>]) -> TqResult<(&'s [Bytes<'a>], &'s [Bytes<'a>])> {
    match options.iter().position(|w| w.eq_ignore_ascii_case(b"WITH")) {
        None => Ok((options, &[])),
        Some(at) if at + 1 == options.len() => Err(TqError::syntax(
            "syntax error, WITH needs at least one seat",
        )),
        Some(at) => Ok((&options[..at], &options[at + 1..])),
    }
}

/// The first seat and those after WITH: valid names, at most `MAX_GROUP`,
/// none twice.
fn group<'a>(first: Bytes<'a>, with: &[Bytes<'a>]) -> TqResult<SeatList<'a>> {
    if 1 + with.len() > MAX_GROUP {
        return Err(TqError::syntax(format!(
            "too many seats: at most {MAX_GROUP} in one command"
        )));
    }
    let mut seats = SeatList::new();
    for seat in std::iter::once(first).chain(with.iter().copied()) {
        let seat = name("seat", seat)?;
        if seats.contains(&seat) {
            return Err(TqError::syntax("a seat is named twice"));
        }
        seats.push(seat);
    }
    Ok(seats)
}

pub fn parse_release<'a>(args: &[Bytes<'a>]) -> TqResult<SeatUser<'a>> {
    if !(2..=3).contains(&args.len()) {
        return Err(arity("tq.release"));
    }
    Ok(SeatUser {
        event: event(args[0])?,
        seat: name("seat", args[1])?,
        user: args.get(2).map(|u| name("user", u)).transpose()?,
    })
}

pub fn parse_seat<'a>(args: &[Bytes<'a>]) -> TqResult<SeatArgs<'a>> {
    let fixed = exactly(args, 2, "tq.seat")?;
    Ok(SeatArgs {
        event: event(fixed[0])?,
        seat: name("seat", fixed[1])?,
    })
}

pub fn parse_config<'a>(args: &[Bytes<'a>]) -> TqResult<Config<'a>> {
    let (fixed, options) = split_fixed(args, 1, "tq.config")?;
    let mut change = SettingsChange::default();
    let mut options = Options::new(options);
    while let Some(keyword) = options.next_keyword()? {
        let setting = Setting::from_keyword(keyword).ok_or_else(|| unknown_option(keyword))?;
        once(!change.contains(setting), setting.keyword())?;
        let (min, max) = setting.range();
        let value = options.value(setting.keyword())?;
        change.set(setting, integer_in(setting.keyword(), value, min, max)?);
    }
    Ok(Config {
        event: event(fixed[0])?,
        change,
    })
}

pub fn parse_event_args<'a>(args: &[Bytes<'a>], command: &str) -> TqResult<EventArgs<'a>> {
    let fixed = exactly(args, 1, command)?;
    Ok(EventArgs {
        event: event(fixed[0])?,
    })
}

/// An event name: 1..=200 bytes without braces, so that `tq:{E}:` is a
/// hash tag that puts every key of the event in the slot of `E`.
pub fn event(raw: Bytes<'_>) -> TqResult<Bytes<'_>> {
    if raw.is_empty() || raw.len() > MAX_EVENT_LEN || raw.iter().any(|b| matches!(b, b'{' | b'}')) {
        return Err(TqError::syntax("invalid event name"));
    }
    Ok(raw)
}

/// A token, user, seat or dedupe id: any bytes, 1..=MAX_NAME_LEN long.
fn name<'a>(what: &str, raw: Bytes<'a>) -> TqResult<Bytes<'a>> {
    if raw.is_empty() || raw.len() > MAX_NAME_LEN {
        return Err(TqError::syntax(format!(
            "invalid {what}: must be 1 to {MAX_NAME_LEN} bytes"
        )));
    }
    Ok(raw)
}

fn seconds(what: &str, raw: Bytes<'_>) -> TqResult<u64> {
    integer_in(what, raw, 1, MAX_SECONDS)
}

/// A plain decimal integer that may be negative, within `min..=max`.
fn signed_in(what: &str, raw: Bytes<'_>, min: i64, max: i64) -> TqResult<i64> {
    let err = || TqError::syntax(format!("{what} must be an integer between {min} and {max}"));
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    let value: i64 = std::str::from_utf8(raw)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(err)?;
    if !(min..=max).contains(&value) {
        return Err(err());
    }
    Ok(value)
}

/// A plain decimal integer (optional leading '-', nothing else) within
/// `min..=max`.
pub fn integer_in(what: &str, raw: Bytes<'_>, min: u64, max: u64) -> TqResult<u64> {
    let err = || TqError::syntax(format!("{what} must be an integer between {min} and {max}"));
    let digits = raw.strip_prefix(b"-").unwrap_or(raw);
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(err());
    }
    if raw.starts_with(b"-") {
        // Negative numbers are well-formed but never in range here.
        return Err(err());
    }
    let value: u64 = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(err)?;
    if value < min || value > max {
        return Err(err());
    }
    Ok(value)
}

fn exactly<'s, 'a>(args: &'s [Bytes<'a>], n: usize, command: &str) -> TqResult<&'s [Bytes<'a>]> {
    if args.len() != n {
        return Err(arity(command));
    }
    Ok(args)
}

fn split_fixed<'s, 'a>(
    args: &'s [Bytes<'a>],
    n: usize,
    command: &str,
) -> TqResult<(&'s [Bytes<'a>], &'s [Bytes<'a>])> {
    if args.len() < n {
        return Err(arity(command));
    }
    Ok(args.split_at(n))
}

pub fn arity(command: &str) -> TqError {
    TqError::syntax(format!("wrong number of arguments for '{command}' command"))
}

fn once(first_time: bool, keyword: &str) -> TqResult<()> {
    if first_time {
        Ok(())
    } else {
        Err(TqError::syntax(format!(
            "syntax error, {keyword} given twice"
        )))
    }
}

fn unknown_option(keyword: Bytes<'_>) -> TqError {
    TqError::syntax(format!(
        "syntax error, unknown option '{}'",
        String::from_utf8_lossy(&keyword[..keyword.len().min(32)]).escape_default()
    ))
}

/// Walks `KEYWORD value` pairs.
struct Options<'s, 'a> {
    rest: &'s [Bytes<'a>],
}

impl<'s, 'a> Options<'s, 'a> {
    fn new(rest: &'s [Bytes<'a>]) -> Self {
        Options { rest }
    }

    fn next_keyword(&mut self) -> TqResult<Option<Bytes<'a>>> {
        match self.rest.split_first() {
            None => Ok(None),
            Some((keyword, rest)) => {
                self.rest = rest;
                Ok(Some(keyword))
            }
        }
    }

    fn value(&mut self, keyword: &str) -> TqResult<Bytes<'a>> {
        match self.rest.split_first() {
            None => Err(TqError::syntax(format!(
                "syntax error, {keyword} needs a value"
            ))),
            Some((value, rest)) => {
                self.rest = rest;
                Ok(value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&'static str]) -> Vec<&'static [u8]> {
        args.iter().map(|a| a.as_bytes()).collect()
    }

    #[test]
    fn enqueue_with_and_without_options() {
        let e = parse_enqueue(&v(&["ev", "u1", "t1"])).unwrap();
        assert_eq!(
            (e.event, e.user, e.token),
            (&b"ev"[..], &b"u1"[..], &b"t1"[..])
        );
        assert_eq!((e.dedupe, e.ttl_s), (None, None));
        let e = parse_enqueue(&v(&["ev", "u1", "t1", "ttl", "60", "DEDUPE", "d"])).unwrap();
        assert_eq!((e.dedupe, e.ttl_s), (Some(&b"d"[..]), Some(60)));
    }

    #[test]
    fn enqueue_rejects_bad_input() {
        for bad in [
            v(&["ev", "u1"]),
            v(&["ev", "u1", "t1", "TTL"]),
            v(&["ev", "u1", "t1", "TTL", "0"]),
            v(&["ev", "u1", "t1", "TTL", "-5"]),
            v(&["ev", "u1", "t1", "TTL", "31536001"]),
            v(&["ev", "u1", "t1", "TTL", "99999999999999999999999"]),
            v(&["ev", "u1", "t1", "TTL", "1.5"]),
            v(&["ev", "u1", "t1", "TTL", "nan"]),
            v(&["ev", "u1", "t1", "TTL", "5", "TTL", "6"]),
            v(&["ev", "u1", "t1", "BOGUS", "1"]),
            v(&["ev", "", "t1"]),
            v(&["ev", "u1", ""]),
            v(&["", "u1", "t1"]),
            v(&["e{v}", "u1", "t1"]),
            v(&["ev", "u1", "t1", "DEDUPE", ""]),
        ] {
            let err = parse_enqueue(&bad).unwrap_err();
            assert_eq!(err.code(), "ERR", "{bad:?}");
        }
    }

    #[test]
    fn event_name_limits() {
        assert!(event(&[b'a'; 200]).is_ok());
        assert!(event(&[b'a'; 201]).is_err());
        assert!(event(b"\x00\xff binary").is_ok());
        assert!(event(b"a}").is_err());
        assert_eq!(
            event(b"{x").unwrap_err().to_string(),
            "ERR invalid event name"
        );
    }

    #[test]
    fn names_are_limited_in_length() {
        let long = vec![b'x'; MAX_NAME_LEN + 1];
        assert!(parse_seat(&[b"ev", &long]).is_err());
        assert!(parse_seat(&[b"ev", &long[1..]]).is_ok());
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(integer_in("n", b"0", 0, 10), Ok(0));
        assert_eq!(integer_in("n", b"007", 0, 10), Ok(7));
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1 ",
            b"0x1",
            b"11",
            b"-0",
            b"1e3",
            b"\xff",
        ] {
            assert!(integer_in("n", bad, 0, 10).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn with_lists_of_hold_confirm_and_extend() {
        let h = parse_hold(&v(&["e", "A1", "u", "TTL", "60", "WITH", "A2", "A3"])).unwrap();
        assert_eq!(h.seats[..], [&b"A1"[..], b"A2", b"A3"]);
        assert_eq!(h.ttl_s, Some(60));
        let h = parse_hold(&v(&["e", "A1", "u", "with", "A2"])).unwrap();
        assert_eq!((h.seats.len(), h.ttl_s), (2, None));
        // WITH takes the rest: a TTL after it is a seat named TTL.
        let h = parse_hold(&v(&["e", "A1", "u", "WITH", "TTL", "60"])).unwrap();
        assert_eq!(h.seats[..], [&b"A1"[..], b"TTL", b"60"]);
        let err = |r: TqResult<Hold>| r.unwrap_err().to_string();
        assert_eq!(
            err(parse_hold(&v(&["e", "A1", "u", "WITH"]))),
            "ERR syntax error, WITH needs at least one seat"
        );
        assert_eq!(
            err(parse_hold(&v(&["e", "A1", "u", "WITH", "A2", "A1"]))),
            "ERR a seat is named twice"
        );
        assert!(parse_hold(&v(&["e", "A1", "u", "WITH", ""])).is_err());
        let names: Vec<String> = (1..101).map(|i| format!("S{i}")).collect();
        let mut many: Vec<&[u8]> = vec![b"e", b"S0", b"u", b"WITH"];
        many.extend(names[..99].iter().map(|n| n.as_bytes()));
        assert_eq!(parse_hold(&many).unwrap().seats.len(), 100);
        many.push(names[99].as_bytes());
        assert_eq!(
            err(parse_hold(&many)),
            "ERR too many seats: at most 100 in one command"
        );
        let c = parse_confirm(&v(&["e", "A1", "u", "WITH", "A2"])).unwrap();
        assert_eq!(c.seats[..], [&b"A1"[..], b"A2"]);
        assert!(parse_confirm(&v(&["e", "A1", "u", "TTL", "5"])).is_err());
        let x = parse_extend(&v(&["e", "A1", "u", "TTL", "90", "WITH", "A2"])).unwrap();
        assert_eq!((x.seats.seats.len(), x.ttl_s), (2, 90));
        assert!(parse_extend(&v(&["e", "A1", "u", "TTL"])).is_err());
        assert!(parse_extend(&v(&["e", "A1", "u", "TIL", "5"])).is_err());
        assert!(parse_extend(&v(&["e", "A1", "u", "TTL", "0"])).is_err());
    }

    #[test]
    fn inventory_trim_hold_release_confirm() {
        assert_eq!(parse_inventory(&v(&["e"])).unwrap().change, None);
        assert_eq!(
            parse_inventory(&v(&["e", "set", "2147483648"]))
                .unwrap()
                .change,
            Some(InventoryChange::Set(1 << 31))
        );
        for (n, add) in [
            ("-2147483648", -(1i64 << 31)),
            ("0", 0),
            ("-0", 0),
            ("25", 25),
        ] {
            assert_eq!(
                parse_inventory(&v(&["e", "add", n])).unwrap().change,
                Some(InventoryChange::Add(add))
            );
        }
        for bad in [
            "2147483649",
            "-2147483649",
            "+1",
            "1.5",
            "",
            "-",
            "99999999999999999999",
        ] {
            assert!(parse_inventory(&v(&["e", "ADD", bad])).is_err(), "{bad}");
        }
        assert!(parse_inventory(&v(&["e", "SET", "2147483649"])).is_err());
        assert!(parse_inventory(&v(&["e", "SET", "-1"])).is_err());
        assert!(parse_inventory(&v(&["e", "GET", "1"])).is_err());
        assert!(parse_inventory(&v(&["e", "SET"])).is_err());

        assert_eq!(
            parse_trim(&v(&["e", "maxage", "10"])).unwrap().max_age_s,
            10
        );
        assert!(parse_trim(&v(&["e", "MAXLEN", "10"])).is_err());

        assert_eq!(
            parse_hold(&v(&["e", "s", "u", "TTL", "5"])).unwrap().ttl_s,
            Some(5)
        );
        assert!(parse_hold(&v(&["e", "s", "u", "TTL"])).is_err());
        assert!(parse_hold(&v(&["e", "s", "u", "FOO", "5"])).is_err());
        assert!(parse_hold(&v(&["e", "s", "u", "TTL", "5", "x"])).is_err());

        assert_eq!(parse_release(&v(&["e", "s"])).unwrap().user, None);
        assert_eq!(
            parse_release(&v(&["e", "s", "u"])).unwrap().user,
            Some(&b"u"[..])
        );
        assert!(parse_release(&v(&["e", "s", "u", "x"])).is_err());
        assert!(parse_confirm(&v(&["e", "s"])).is_err());
    }

    #[test]
    fn config_options() {
        let c = parse_config(&v(&["e", "rate", "10", "BURST", "20", "hold-ttl", "30"])).unwrap();
        let got: Vec<_> = c.change.iter().collect();
        assert_eq!(
            got,
            vec![
                (Setting::Rate, 10),
                (Setting::Burst, 20),
                (Setting::HoldTtl, 30)
            ]
        );
        assert!(parse_config(&v(&["e"])).unwrap().change.is_empty());
        for bad in [
            v(&["e", "RATE"]),
            v(&["e", "RATE", "1000001"]),
            v(&["e", "HEARTBEAT", "0"]),
            v(&["e", "RATE", "1", "RATE", "2"]),
            v(&["e", "SPEED", "1"]),
        ] {
            assert!(parse_config(&bad).is_err(), "{bad:?}");
        }
    }
    #[test]
    fn one_wording_per_mistake_whichever_command_makes_it() {
        let twice_hold = parse_hold(&v(&["ev", "A1", "u", "TTL", "5", "TTL", "6"])).unwrap_err();
        let twice_join =
            parse_enqueue(&v(&["ev", "u", "t", "DEDUPE", "d", "TTL", "5", "TTL", "6"]))
                .unwrap_err();
        assert_eq!(twice_hold, twice_join);
        assert_eq!(twice_hold.to_string(), "ERR syntax error, TTL given twice");
        let zero_hold = parse_hold(&v(&["ev", "A1", "u", "TTL", "0"])).unwrap_err();
        let zero_join =
            parse_enqueue(&v(&["ev", "u", "t", "DEDUPE", "d", "TTL", "0"])).unwrap_err();
        assert_eq!(zero_hold, zero_join);
        let long: &'static str = Box::leak("e".repeat(201).into_boxed_str());
        assert_eq!(
            parse_enqueue(&v(&[long, "u", "t"]))
                .unwrap_err()
                .to_string(),
            "ERR invalid event name"
        );
    }

    #[test]
    fn ttl_without_dedupe_is_refused() {
        let err = parse_enqueue(&v(&["ev", "u", "t", "TTL", "60"])).unwrap_err();
        assert_eq!(err.to_string(), "ERR syntax error, TTL needs DEDUPE");
    }
}

/// Fuzzing the parsers: any argument list, of any bytes, either parses into
/// values within the documented limits or is refused with `ERR`; nothing
/// panics.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Arguments biased towards what parsers look for: keywords, numbers
    /// at and beyond the limits, braces, empty and long strings, raw bytes.
    fn word() -> impl Strategy<Value = Vec<u8>> {
        let interesting = prop::sample::select(vec![
            "DEDUPE",
            "TTL",
            "ttl",
            "SET",
            "MAXAGE",
            "RATE",
            "BURST",
            "HEARTBEAT",
            "HOLD-TTL",
            "DEDUPE-TTL",
            "0",
            "1",
            "-1",
            "31536000",
            "31536001",
            "2147483648",
            "2147483649",
            "18446744073709551616",
            "nan",
            "inf",
            "1e3",
            "1.5",
            "",
            "{",
            "}",
            "a{b}",
            " 5",
        ])
        .prop_map(|s| s.as_bytes().to_vec());
        prop_oneof![
            3 => interesting,
            2 => prop::collection::vec(any::<u8>(), 0..12),
            1 => prop::collection::vec(any::<u8>(), 190..1100),
        ]
    }

    fn args() -> impl Strategy<Value = Vec<Vec<u8>>> {
        prop::collection::vec(word(), 0..9)
    }

    fn valid_event(e: &[u8]) -> bool {
        (1..=MAX_EVENT_LEN).contains(&e.len()) && !e.iter().any(|b| *b == b'{' || *b == b'}')
    }

    fn valid_name(n: &[u8]) -> bool {
        (1..=MAX_NAME_LEN).contains(&n.len())
    }

    fn refused_cleanly<T>(r: &TqResult<T>) -> bool {
        match r {
            Ok(_) => true,
            Err(e) => e.code() == "ERR" && e.to_string().is_ascii(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn every_parser_accepts_only_valid_values(raw in args()) {
            let a: Vec<&[u8]> = raw.iter().map(|w| w.as_slice()).collect();
            let seconds_ok = |t: Option<u64>| t.is_none_or(|t| (1..=MAX_SECONDS).contains(&t));

            let r = parse_enqueue(&a);
            prop_assert!(refused_cleanly(&r));
            if let Ok(e) = r {
                prop_assert!(valid_event(e.event) && valid_name(e.user) && valid_name(e.token));
                prop_assert!(e.dedupe.is_none_or(valid_name) && seconds_ok(e.ttl_s));
            }
            for command in ["tq.position", "tq.enter", "tq.leave"] {
                let r = parse_token_args(&a, command);
                prop_assert!(refused_cleanly(&r));
                if let Ok(t) = r {
                    prop_assert!(valid_event(t.event) && valid_name(t.token));
                }
            }
            let r = parse_hold(&a);
            prop_assert!(refused_cleanly(&r));
            if let Ok(h) = r {
                prop_assert!(valid_event(h.event) && valid_name(h.user));
                prop_assert!(!h.seats.is_empty() && h.seats.len() <= MAX_GROUP);
                prop_assert!(h.seats.iter().all(|s| valid_name(s)));
                prop_assert!(seconds_ok(h.ttl_s));
            }
            let r = parse_inventory(&a);
            prop_assert!(refused_cleanly(&r));
            if let Ok(i) = r {
                prop_assert!(valid_event(i.event));
                let in_range = match i.change {
                    None => true,
                    Some(InventoryChange::Set(n)) => n <= MAX_INVENTORY,
                    Some(InventoryChange::Add(n)) => n.unsigned_abs() <= MAX_INVENTORY,
                };
                prop_assert!(in_range);
            }
            let r = parse_trim(&a);
            prop_assert!(refused_cleanly(&r));
            if let Ok(t) = r {
                prop_assert!((1..=MAX_SECONDS).contains(&t.max_age_s));
            }
            let r = parse_config(&a);
            prop_assert!(refused_cleanly(&r));
            if let Ok(c) = r {
                for (setting, value) in c.change.iter() {
                    let (min, max) = setting.range();
                    prop_assert!((min..=max).contains(&value));
                }
            }
            prop_assert!(refused_cleanly(&parse_release(&a)));
            prop_assert!(refused_cleanly(&parse_confirm(&a)));
            prop_assert!(refused_cleanly(&parse_seat(&a)));
            prop_assert!(refused_cleanly(&parse_user_args(&a)));
            prop_assert!(refused_cleanly(&parse_event_args(&a, "tq.stats")));
        }

        #[test]
        fn well_formed_enqueues_always_parse(
            event in "[a-z0-9:-]{1,200}",
            user in prop::collection::vec(any::<u8>(), 1..64),
            token in prop::collection::vec(any::<u8>(), 1..64),
            ttl in 1u64..=MAX_SECONDS,
        ) {
            let ttl_text = ttl.to_string();
            let a: Vec<&[u8]> =
                vec![event.as_bytes(), &user, &token, b"DEDUPE", &token, b"TTL", ttl_text.as_bytes()];
            let e = parse_enqueue(&a).unwrap();
            prop_assert_eq!(e.ttl_s, Some(ttl));
            prop_assert_eq!(e.dedupe, Some(token.as_slice()));
            prop_assert_eq!(e.token, token.as_slice());
        }
    }
}
