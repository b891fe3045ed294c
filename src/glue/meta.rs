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

/// The meta hash as read at the start of a command, kept up to date with
/// the command's own writes.
#[derive(Debug, Clone, Default)]
pub struct MetaValues {
    values: [Option<u64>; FIELD_COUNT],
}

impl MetaValues {
    /// Parses the hash's (field, value) pairs; unknown fields are ignored.
    pub fn parse(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> TqResult<MetaValues> {
        let mut values = [None; FIELD_COUNT];
        for (name, bytes) in pairs {
            let Some(field) = MetaField::ALL
                .into_iter()
                .find(|f| f.name().to_bytes() == name)
            else {
                continue;
            };
            let n = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    TqError::Internal(format!(
                        "meta field '{}' is not a non-negative integer",
                        field.name().to_string_lossy()
                    ))
                })?;
            values[field as usize] = Some(n);
        }
        Ok(MetaValues { values })
    }

    pub fn get(&self, field: MetaField) -> Option<u64> {
        self.values[field as usize]
    }

    pub fn set(&mut self, field: MetaField, value: Option<u64>) {
        self.values[field as usize] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_refuses_what_is_not_a_count() {
        let pair = |f: &str, v: &[u8]| (f.as_bytes().to_vec(), v.to_vec());
        let good = vec![pair("sold", b"12"), pair("other", b"x")];
        let values = MetaValues::parse(good.clone()).unwrap();
        assert_eq!(values.get(MetaField::Sold), Some(12));
        assert_eq!(values.get(MetaField::Inventory), None);
        for bad in [&b"abc"[..], b"-1", b"1.5", b""] {
            let mut pairs = good.clone();
            pairs.push(pair("inventory", bad));
            let err = MetaValues::parse(pairs).unwrap_err();
            assert!(err.to_string().contains("'inventory'"), "{err}");
        }
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
