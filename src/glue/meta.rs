//! The event's `meta` key: counters, token-bucket state and the event's
//! own settings, all integers, kept as one string of `name=value` pairs
//! separated by spaces, e.g. `inventory=98 sold=2 rate=50`.
//!
//! Every command reads them, so they are read whole, once, up front (and
//! a corrupt value is refused before anything is written). A string is
//! one lookup and a parse; a hash of the same fields cost Redis two string
//! objects per field per read (about 1.2k instructions each, 15k on a
//! mature event's 13 fields), which made it the largest cost of a command.
//! tq 0.1 kept a hash; one is still read, and rewritten as a string at the
//! next write.

use crate::domain::decimal::{parse_count, read_count, Decimal};
use crate::domain::error::{TqError, TqResult};
use crate::domain::settings::Setting;
use crate::domain::store::Counter;

/// A field of the meta text. Counters and settings keep the names the
/// domain gives them; the bucket state and the admissions bookkeeping are
/// the glue's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    Counter(Counter),
    Setting(Setting),
    BucketMilli,
    BucketAt,
    /// The sum of the counts in the `admits` hash.
    RecentAdmits,
    /// No second before this one is in the `admits` hash.
    RecentFrom,
}

/// The fields that are neither counters nor settings, in `ALL` order.
const OWN_FIELDS: [MetaField; 4] = [
    MetaField::BucketMilli,
    MetaField::BucketAt,
    MetaField::RecentAdmits,
    MetaField::RecentFrom,
];

pub const FIELD_COUNT: usize = Counter::ALL.len() + Setting::ALL.len() + OWN_FIELDS.len();

// `MetaValues::changed` has a bit per field.
const _: () = assert!(FIELD_COUNT <= u16::BITS as usize);

impl MetaField {
    pub const ALL: [MetaField; FIELD_COUNT] = {
        let mut all = [MetaField::BucketMilli; FIELD_COUNT];
        let mut i = 0;
        while i < Counter::ALL.len() {
            all[i] = MetaField::Counter(Counter::ALL[i]);
            i += 1;
        }
        let mut j = 0;
        while j < Setting::ALL.len() {
            all[i + j] = MetaField::Setting(Setting::ALL[j]);
            j += 1;
        }
        let mut k = 0;
        while k < OWN_FIELDS.len() {
            all[i + j + k] = OWN_FIELDS[k];
            k += 1;
        }
        all
    };

    /// Its name in the `meta` text (as documented in the README's key layout).
    pub fn name(self) -> &'static [u8] {
        match self {
            MetaField::Counter(c) => c.field().as_bytes(),
            MetaField::Setting(s) => s.field().as_bytes(),
            MetaField::BucketMilli => b"bucket_milli",
            MetaField::BucketAt => b"bucket_at",
            MetaField::RecentAdmits => b"recent_admits",
            MetaField::RecentFrom => b"recent_from",
        }
    }

    /// Its place in `ALL`.
    fn index(self) -> usize {
        match self {
            MetaField::Counter(c) => c as usize,
            MetaField::Setting(s) => Counter::ALL.len() + s as usize,
            MetaField::BucketMilli => FIELD_COUNT - 4,
            MetaField::BucketAt => FIELD_COUNT - 3,
            MetaField::RecentAdmits => FIELD_COUNT - 2,
            MetaField::RecentFrom => FIELD_COUNT - 1,
        }
    }
}

/// A pair of the meta text, as found at its start.
enum Pair {
    /// Field `ALL[index]`, its value starting `value_at` bytes in.
    Field { index: usize, value_at: usize },
    /// A pair this version does not know, `len` bytes long.
    Unknown { len: usize },
    /// Not a pair (no '='), `len` bytes long.
    Malformed { len: usize },
}

/// The pair `rest` starts with. `encode` writes the fields in `ALL` order,
/// so it is most likely a field from `ALL[next]` on: those names are
/// compared in place, and only a pair that is not one of them is split at
/// its '='.
fn pair_at(rest: &[u8], next: usize) -> Pair {
    let expected = (next..FIELD_COUNT).find(|&i| {
        let name = MetaField::ALL[i].name();
        rest.len() > name.len() && rest[name.len()] == b'=' && rest.starts_with(name)
    });
    if let Some(index) = expected {
        let value_at = MetaField::ALL[index].name().len() + 1;
        return Pair::Field { index, value_at };
    }
    let len = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let Some(equals) = rest[..len].iter().position(|&b| b == b'=') else {
        return Pair::Malformed { len };
    };
    let name = &rest[..equals];
    match (0..FIELD_COUNT).find(|&i| MetaField::ALL[i].name() == name) {
        Some(index) => Pair::Field {
            index,
            value_at: equals + 1,
        },
        None => Pair::Unknown { len },
    }
}

fn not_a_count(field: MetaField) -> TqError {
    TqError::Internal(format!(
        "meta field '{}' is not a non-negative integer",
        String::from_utf8_lossy(field.name())
    ))
}

/// The meta values as read at the start of a command, with the command's
/// own changes, which are written back together when it ends.
#[derive(Debug, Clone, Default)]
pub struct MetaValues {
    values: [Option<u64>; FIELD_COUNT],
    /// Where each field's digits are in the text read (start, end), so
    /// that writing back replaces only the values that changed.
    spans: [Option<(usize, usize)>; FIELD_COUNT],
    /// Length of the text read (to check it is the one written over).
    read_len: usize,
    /// Pairs this version does not know (written by a newer tq), kept as
    /// they are so that writing back loses nothing.
    unknown: Vec<u8>,
    /// Bit `f` set: field `f` was changed by this command.
    changed: u16,
    /// Write the text back even if no value changed.
    rewrite: bool,
}

impl MetaValues {
    /// Reads the stored text (`name=value` pairs separated by spaces).
    pub fn parse(text: &[u8]) -> TqResult<MetaValues> {
        let mut values = MetaValues {
            read_len: text.len(),
            ..MetaValues::default()
        };
        let mut next = 0;
        let mut at = 0;
        while at < text.len() {
            if text[at] == b' ' {
                at += 1;
                continue;
            }
            match pair_at(&text[at..], next) {
                Pair::Malformed { len } => {
                    return Err(TqError::Internal(format!(
                        "meta is not name=value pairs: '{}'",
                        String::from_utf8_lossy(&text[at..at + len])
                    )));
                }
                Pair::Unknown { len } => {
                    values.keep_unknown(&text[at..at + len]);
                    at += len;
                }
                Pair::Field { index, value_at } => {
                    let value_at = at + value_at;
                    let (count, end) = read_count(text, value_at);
                    let count = count.ok_or_else(|| not_a_count(MetaField::ALL[index]))?;
                    values.values[index] = Some(count);
                    values.spans[index] = Some((value_at, end));
                    next = index + 1;
                    at = end;
                }
            }
        }
        Ok(values)
    }

    fn keep_unknown(&mut self, pair: &[u8]) {
        if !self.unknown.is_empty() {
            self.unknown.push(b' ');
        }
        self.unknown.extend_from_slice(pair);
    }

    /// Takes one stored (name, value) pair, as a tq 0.1 hash holds them:
    /// unknown names are left out; a value that is not a count is refused.
    pub fn absorb(&mut self, name: &[u8], value: &[u8]) -> TqResult<()> {
        let Some(field) = MetaField::ALL.into_iter().find(|f| f.name() == name) else {
            return Ok(());
        };
        self.values[field.index()] = Some(parse_count(value).ok_or_else(|| not_a_count(field))?);
        Ok(())
    }

    pub fn get(&self, field: MetaField) -> Option<u64> {
        self.values[field.index()]
    }

    /// Sets (Some) or deletes (None) a field, to be written back later.
    pub fn set(&mut self, field: MetaField, value: Option<u64>) {
        self.values[field.index()] = value;
        self.changed |= 1 << field.index();
    }

    /// Asks for a write-back even without a change (to rewrite a hash
    /// left by tq 0.1 as a string).
    pub fn mark_changed(&mut self) {
        self.rewrite = true;
    }

    pub fn has_changes(&self) -> bool {
        self.changed != 0 || self.rewrite
    }

    /// The text to store now that the command is done, given the text
    /// stored (the one read, if it was a string), and forgets the changes.
    pub fn write_back(&mut self, stored: Option<&[u8]>) -> Vec<u8> {
        let text = match stored {
            Some(stored) if !self.rewrite && stored.len() == self.read_len => self
                .with_new_values(stored)
                .unwrap_or_else(|| self.encode()),
            _ => self.encode(),
        };
        self.changed = 0;
        self.rewrite = false;
        text
    }

    /// `stored` with the changed values replaced in place: None if a
    /// change adds or removes a field (the whole text is written then).
    fn with_new_values(&self, stored: &[u8]) -> Option<Vec<u8>> {
        // (start, end, field) of each changed value, by place in the text.
        let mut edits = [(0, 0, 0); FIELD_COUNT];
        let mut count = 0;
        for (i, span) in self.spans.iter().enumerate() {
            if self.changed & (1 << i) != 0 {
                self.values[i]?; // removed
                let (start, end) = (*span)?; // added
                edits[count] = (start, end, i);
                count += 1;
            }
        }
        let edits = &mut edits[..count];
        edits.sort_unstable();
        let mut text = Vec::with_capacity(stored.len() + 20 * edits.len());
        let mut copied = 0;
        for &(start, end, i) in edits.iter() {
            text.extend_from_slice(&stored[copied..start]);
            text.extend_from_slice(&Decimal::of(self.values[i]?));
            copied = end;
        }
        text.extend_from_slice(&stored[copied..]);
        Some(text)
    }

    /// The whole text: the known fields that have a value, in `ALL`
    /// order, then the unknown pairs.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = Vec::with_capacity(16 * FIELD_COUNT + self.unknown.len());
        for field in MetaField::ALL {
            if let Some(value) = self.get(field) {
                if !text.is_empty() {
                    text.push(b' ');
                }
                text.extend_from_slice(field.name());
                text.push(b'=');
                text.extend_from_slice(Decimal::of(value).as_ref());
            }
        }
        if !self.unknown.is_empty() {
            if !text.is_empty() {
                text.push(b' ');
            }
            text.extend_from_slice(&self.unknown);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_what_is_not_a_count() {
        let values = MetaValues::parse(b"sold=12 other=x").unwrap();
        assert_eq!(values.get(MetaField::Counter(Counter::Sold)), Some(12));
        assert_eq!(values.get(MetaField::Counter(Counter::Inventory)), None);
        for bad in [
            "abc",
            "-1",
            "1.5",
            "",
            "99999999999999999999",
            "18446744073709551616",
            "000000000000000000001",
        ] {
            let text = format!("sold=1 inventory={bad}");
            let err = MetaValues::parse(text.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("'inventory'"), "{err}");
        }
        let err = MetaValues::parse(b"sold=1 garbage").unwrap_err();
        assert!(err.to_string().contains("'garbage'"), "{err}");
    }

    #[test]
    fn encode_then_parse_gives_the_same_values() {
        let mut values = MetaValues::default();
        assert_eq!(values.encode(), b"");
        for (i, field) in MetaField::ALL.into_iter().enumerate() {
            values.set(field, Some(i as u64 * 1_000_000_007));
        }
        values.set(MetaField::Setting(Setting::Rate), None);
        values.set(MetaField::BucketAt, Some(u64::MAX));
        let again = MetaValues::parse(&values.encode()).unwrap();
        for field in MetaField::ALL {
            assert_eq!(again.get(field), values.get(field), "{field:?}");
        }
    }

    #[test]
    fn the_text_reads_as_name_value_pairs() {
        let mut values = MetaValues::parse(b"  sold=2   inventory=98 ").unwrap();
        values.set(MetaField::Setting(Setting::Rate), Some(50));
        assert_eq!(values.encode(), b"inventory=98 sold=2 rate=50");
    }

    #[test]
    fn unknown_pairs_are_kept() {
        let mut values = MetaValues::parse(b"sold=2 future=a=b later=7").unwrap();
        values.set(MetaField::Counter(Counter::Sold), Some(3));
        assert_eq!(values.encode(), b"sold=3 future=a=b later=7");
    }

    #[test]
    fn changes_are_reported_until_written_back() {
        let text = b"sold=1";
        let mut values = MetaValues::parse(text).unwrap();
        assert!(!values.has_changes());
        values.set(MetaField::BucketAt, Some(5));
        values.set(MetaField::BucketAt, Some(6));
        assert!(values.has_changes());
        assert_eq!(values.write_back(Some(text)), b"sold=1 bucket_at=6");
        assert!(!values.has_changes());
        values.mark_changed();
        assert!(values.has_changes());
    }

    #[test]
    fn write_back_replaces_only_the_changed_values() {
        // Out of order, spaced and with an unknown pair: kept as they are.
        let text = b"rate=5  sold=9 x=y inventory=100";
        let mut values = MetaValues::parse(text).unwrap();
        values.set(MetaField::Counter(Counter::Inventory), Some(99));
        values.set(MetaField::Counter(Counter::Sold), Some(10));
        assert_eq!(
            values.write_back(Some(text)),
            b"rate=5  sold=10 x=y inventory=99"
        );
    }

    #[test]
    fn write_back_writes_the_whole_text_when_fields_come_or_go() {
        let text = b"rate=5 sold=9";
        let mut added = MetaValues::parse(text).unwrap();
        added.set(MetaField::Counter(Counter::Inventory), Some(1));
        assert_eq!(added.write_back(Some(text)), b"inventory=1 sold=9 rate=5");
        let mut removed = MetaValues::parse(text).unwrap();
        removed.set(MetaField::Setting(Setting::Rate), None);
        assert_eq!(removed.write_back(Some(text)), b"sold=9");
        // Not the text that was read: rewritten from the values.
        let mut other = MetaValues::parse(text).unwrap();
        other.set(MetaField::Counter(Counter::Sold), Some(8));
        assert_eq!(other.write_back(Some(b"rate=5")), b"sold=8 rate=5");
        assert_eq!(other.write_back(None), b"sold=8 rate=5");
    }

    #[test]
    fn every_field_has_its_own_place_and_name() {
        for (i, f) in MetaField::ALL.into_iter().enumerate() {
            assert_eq!(f.index(), i, "{f:?}");
        }
        let mut names: Vec<_> = MetaField::ALL.iter().map(|f| f.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FIELD_COUNT);
    }
}
