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

use crate::domain::decimal::Decimal;
use crate::domain::error::{TqError, TqResult};
use crate::domain::settings::Setting;
use crate::domain::store::Counter;

/// A field of the meta hash. Counters and settings keep the names the
/// domain gives them; the bucket state is the glue's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    Counter(Counter),
    Setting(Setting),
    BucketMilli,
    BucketAt,
}

pub const FIELD_COUNT: usize = Counter::ALL.len() + Setting::ALL.len() + 2;

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
        all[FIELD_COUNT - 1] = MetaField::BucketAt;
        all
    };

    /// The hash field name (as documented in the README's key layout).
    pub fn name(self) -> &'static [u8] {
        match self {
            MetaField::Counter(c) => c.field().as_bytes(),
            MetaField::Setting(s) => s.field().as_bytes(),
            MetaField::BucketMilli => b"bucket_milli",
            MetaField::BucketAt => b"bucket_at",
        }
    }

    /// Its place in `ALL`.
    fn index(self) -> usize {
        match self {
            MetaField::Counter(c) => c as usize,
            MetaField::Setting(s) => Counter::ALL.len() + s as usize,
            MetaField::BucketMilli => FIELD_COUNT - 2,
            MetaField::BucketAt => FIELD_COUNT - 1,
        }
    }
}

/// Decimal digits as a u64 (no sign, no spaces, no overflow). Every
/// command reads meta, so this skips UTF-8 checks and `str::parse`.
fn parse_count(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let digit = d.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(digit as u64)
    })
}

/// The meta values as read at the start of a command, with the command's
/// own changes, which are written back together when it ends.
#[derive(Debug, Clone, Default)]
pub struct MetaValues {
    values: [Option<u64>; FIELD_COUNT],
    /// Pairs this version does not know (written by a newer tq), kept as
    /// they are so that writing back loses nothing.
    unknown: Vec<u8>,
    /// Some value changed since read: the key must be written back.
    dirty: bool,
}

impl MetaValues {
    /// Reads the stored text (`name=value` pairs separated by spaces).
    pub fn parse(text: &[u8]) -> TqResult<MetaValues> {
        let mut values = MetaValues::default();
        // `encode` writes the fields in `ALL` order, so the next pair is
        // most likely the field after the last one found.
        let mut next = 0;
        let mut at = 0;
        // One pass over the bytes (every command parses this text).
        while at < text.len() {
            if text[at] == b' ' {
                at += 1;
                continue;
            }
            let start = at;
            let mut equals = None;
            while at < text.len() && text[at] != b' ' {
                if text[at] == b'=' && equals.is_none() {
                    equals = Some(at);
                }
                at += 1;
            }
            let pair = &text[start..at];
            let Some(equals) = equals else {
                return Err(TqError::Internal(format!(
                    "meta is not name=value pairs: '{}'",
                    String::from_utf8_lossy(pair)
                )));
            };
            let (name, value) = (&text[start..equals], &text[equals + 1..at]);
            let named = |i: &usize| MetaField::ALL[*i].name() == name;
            let found = Some(next)
                .filter(|i| *i < FIELD_COUNT && named(i))
                .or_else(|| (0..FIELD_COUNT).find(named));
            match found {
                Some(i) => {
                    values.take(MetaField::ALL[i], value)?;
                    next = i + 1;
                }
                None => values.keep_unknown(pair),
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
        match MetaField::ALL.into_iter().find(|f| f.name() == name) {
            Some(field) => self.take(field, value),
            None => Ok(()),
        }
    }

    /// Takes the stored value of `field`, refused if it is not a count.
    fn take(&mut self, field: MetaField, value: &[u8]) -> TqResult<()> {
        let n = parse_count(value).ok_or_else(|| {
            TqError::Internal(format!(
                "meta field '{}' is not a non-negative integer",
                String::from_utf8_lossy(field.name())
            ))
        })?;
        self.values[field.index()] = Some(n);
        Ok(())
    }

    /// The text to store: the known fields that have a value, in a fixed
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

    pub fn get(&self, field: MetaField) -> Option<u64> {
        self.values[field.index()]
    }

    /// Sets (Some) or deletes (None) a field, to be written back later.
    pub fn set(&mut self, field: MetaField, value: Option<u64>) {
        self.values[field.index()] = value;
        self.dirty = true;
    }

    /// Asks for a write-back even without a change (to rewrite a hash
    /// left by tq 0.1 as a string).
    pub fn mark_changed(&mut self) {
        self.dirty = true;
    }

    /// True once per batch of changes: whether to write back now.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
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
        for bad in ["abc", "-1", "1.5", "", "99999999999999999999"] {
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
    fn changes_are_reported_once() {
        let mut values = MetaValues::parse(b"sold=1").unwrap();
        assert!(!values.take_changed());
        values.set(MetaField::BucketAt, Some(5));
        values.set(MetaField::BucketAt, Some(6));
        assert!(values.take_changed());
        assert!(!values.take_changed());
        values.mark_changed();
        assert!(values.take_changed());
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
