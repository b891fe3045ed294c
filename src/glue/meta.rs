//! The event's `meta` hash: counters, token-bucket state and the event's
//! own settings. All of its fields are integers; a command reads them all
//! once, up front, so that a corrupt value is refused before anything is
//! written.

use std::ffi::CStr;

use crate::domain::error::{TqError, TqResult};
use crate::domain::settings::Setting;
use crate::domain::store::Counter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    Inventory,
    Sold,
    Admitted,
    Duplicates,
    Abandoned,
    HoldsExpired,
    BucketMilli,
    BucketAt,
    Rate,
    Burst,
    Heartbeat,
    HoldTtl,
    DedupeTtl,
}

pub const FIELD_COUNT: usize = 13;

impl MetaField {
    pub const ALL: [MetaField; FIELD_COUNT] = [
        MetaField::Inventory,
        MetaField::Sold,
        MetaField::Admitted,
        MetaField::Duplicates,
        MetaField::Abandoned,
        MetaField::HoldsExpired,
        MetaField::BucketMilli,
        MetaField::BucketAt,
        MetaField::Rate,
        MetaField::Burst,
        MetaField::Heartbeat,
        MetaField::HoldTtl,
        MetaField::DedupeTtl,
    ];

    /// The hash field name (as documented in the README's key layout).
    pub fn name(self) -> &'static CStr {
        match self {
            MetaField::Inventory => c"inventory",
            MetaField::Sold => c"sold",
            MetaField::Admitted => c"admitted",
            MetaField::Duplicates => c"duplicates",
            MetaField::Abandoned => c"abandoned",
            MetaField::HoldsExpired => c"holds_expired",
            MetaField::BucketMilli => c"bucket_milli",
            MetaField::BucketAt => c"bucket_at",
            MetaField::Rate => c"rate",
            MetaField::Burst => c"burst",
            MetaField::Heartbeat => c"heartbeat",
            MetaField::HoldTtl => c"hold_ttl",
            MetaField::DedupeTtl => c"dedupe_ttl",
        }
    }

    pub fn of_counter(counter: Counter) -> MetaField {
        match counter {
            Counter::Inventory => MetaField::Inventory,
            Counter::Sold => MetaField::Sold,
            Counter::Admitted => MetaField::Admitted,
            Counter::Duplicates => MetaField::Duplicates,
            Counter::Abandoned => MetaField::Abandoned,
            Counter::HoldsExpired => MetaField::HoldsExpired,
        }
    }

    pub fn of_setting(setting: Setting) -> MetaField {
        match setting {
            Setting::Rate => MetaField::Rate,
            Setting::Burst => MetaField::Burst,
            Setting::Heartbeat => MetaField::Heartbeat,
            Setting::HoldTtl => MetaField::HoldTtl,
            Setting::DedupeTtl => MetaField::DedupeTtl,
        }
    }
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
        let Some(field) = MetaField::ALL
            .into_iter()
            .find(|f| f.name().to_bytes() == name)
        else {
            return Ok(());
        };
        let n = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                TqError::Internal(format!(
                    "meta field '{}' is not a non-negative integer",
                    field.name().to_string_lossy()
                ))
            })?;
        self.values[field as usize] = Some(n);
        Ok(())
    }

    pub fn get(&self, field: MetaField) -> Option<u64> {
        self.values[field as usize]
    }

    /// Sets (Some) or deletes (None) a field, to be written back later.
    pub fn set(&mut self, field: MetaField, value: Option<u64>) {
        self.values[field as usize] = value;
        self.dirty |= 1 << field as u16;
    }

    /// The changed fields with their new values, clearing the change set.
    pub fn take_changes(&mut self) -> Vec<(MetaField, Option<u64>)> {
        let changes = MetaField::ALL
            .into_iter()
            .filter(|f| self.dirty & (1 << *f as u16) != 0)
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
        assert_eq!(values.get(MetaField::Sold), Some(12));
        assert_eq!(values.get(MetaField::Inventory), None);
        for bad in [&b"abc"[..], b"-1", b"1.5", b""] {
            let err = values.absorb(b"inventory", bad).unwrap_err();
            assert!(err.to_string().contains("'inventory'"), "{err}");
        }
    }

    #[test]
    fn changes_are_collected_once() {
        let mut values = MetaValues::default();
        values.set(MetaField::BucketAt, Some(5));
        values.set(MetaField::Rate, None);
        values.set(MetaField::BucketAt, Some(6));
        assert_eq!(
            values.take_changes(),
            vec![(MetaField::BucketAt, Some(6)), (MetaField::Rate, None)]
        );
        assert!(values.take_changes().is_empty());
    }

    #[test]
    fn names_match_the_domain_fields() {
        for s in Setting::ALL {
            assert_eq!(
                MetaField::of_setting(s).name().to_bytes(),
                s.field().as_bytes()
            );
        }
    }
}
