//! The event's `meta` hash: counters, token-bucket state and the event's
//! own settings. All of its fields are integers; a command reads them all
//! once, up front, so that a corrupt value is refused before anything is
//! written.

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
/// command reads the meta hash, so this skips UTF-8 checks and `str::parse`.
fn parse_count(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let digit = d.checked_sub(b'0').filter(|d| *d <= 9)?;
        n.checked_mul(10)?.checked_add(digit as u64)
    })
}

/// The meta hash as read at the start of a command, with the command's
/// own changes, which are written back together when it ends.
#[derive(Debug, Clone, Default)]
pub struct MetaValues {
    values: [Option<u64>; FIELD_COUNT],
    /// Bit `f` set: field `f` was changed by this command.
    dirty: u16,
}

impl MetaValues {
    /// Takes one (field, value) pair of the stored hash; unknown fields
    /// are ignored, a value that is not a count is refused.
    pub fn absorb(&mut self, name: &[u8], value: &[u8]) -> TqResult<()> {
        let Some(field) = MetaField::ALL.into_iter().find(|f| f.name() == name) else {
            return Ok(());
        };
        let n = parse_count(value).ok_or_else(|| {
            TqError::Internal(format!(
                "meta field '{}' is not a non-negative integer",
                String::from_utf8_lossy(field.name())
            ))
        })?;
        self.values[field.index()] = Some(n);
        Ok(())
    }

    pub fn get(&self, field: MetaField) -> Option<u64> {
        self.values[field.index()]
    }

    /// Sets (Some) or deletes (None) a field, to be written back later.
    pub fn set(&mut self, field: MetaField, value: Option<u64>) {
        self.values[field.index()] = value;
        self.dirty |= 1 << field.index();
    }

    /// The changed fields with their new values, clearing the change set.
    pub fn take_changes(&mut self) -> Vec<(MetaField, Option<u64>)> {
        let changes = MetaField::ALL
            .into_iter()
            .filter(|f| self.dirty & (1 << f.index()) != 0)
            .map(|f| (f, self.get(f)))
            .collect();
        self.dirty = 0;
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_refuses_what_is_not_a_count() {
        let mut values = MetaValues::default();
        values.absorb(b"sold", b"12").unwrap();
        values.absorb(b"other", b"x").unwrap();
        assert_eq!(values.get(MetaField::Counter(Counter::Sold)), Some(12));
        assert_eq!(values.get(MetaField::Counter(Counter::Inventory)), None);
        for bad in [&b"abc"[..], b"-1", b"1.5", b""] {
            let err = values.absorb(b"inventory", bad).unwrap_err();
            assert!(err.to_string().contains("'inventory'"), "{err}");
        }
    }

    #[test]
    fn changes_are_collected_once() {
        let mut values = MetaValues::default();
        values.set(MetaField::BucketAt, Some(5));
        values.set(MetaField::Setting(Setting::Rate), None);
        values.set(MetaField::BucketAt, Some(6));
        assert_eq!(
            values.take_changes(),
            vec![
                (MetaField::Setting(Setting::Rate), None),
                (MetaField::BucketAt, Some(6))
            ]
        );
        assert!(values.take_changes().is_empty());
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
