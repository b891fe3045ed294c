//! Per-event settings (TQ.CONFIG) and the limits every numeric argument obeys.

/// Seconds arguments (TTL, HEARTBEAT, MAXAGE, ...) are 1..=one year.
pub const MAX_SECONDS: u64 = 31_536_000;
/// `TQ.INVENTORY SET n` accepts 0..=2^31.
pub const MAX_INVENTORY: u64 = 1 << 31;
/// Admissions per second an event may be configured for.
pub const MAX_RATE: u64 = 1_000_000;
/// Largest token-bucket capacity.
pub const MAX_BURST: u64 = 1_000_000_000;
/// Largest count setting (MAX-ACTIVE, MAX-SEATS, MAX-ENTRIES, EVENTS).
pub const MAX_COUNT_SETTING: u64 = 1 << 31;
/// Largest OPENS-AT (unix ms, past the year 10000).
pub const MAX_OPENS_AT: u64 = 1 << 48;

/// The settings in force for one event: its own TQ.CONFIG values over the
/// module-wide defaults (`tq.rate`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Admission tokens added per second.
    pub rate: u64,
    /// Token-bucket capacity.
    pub burst: u64,
    /// Seconds without a heartbeat after which a waiting entry is abandoned.
    pub heartbeat_s: u64,
    /// Default TQ.HOLD TTL in seconds.
    pub hold_ttl_s: u64,
    /// Default TQ.ENQUEUE DEDUPE window in seconds.
    pub dedupe_ttl_s: u64,
    /// When a scheduled opening happens (unix ms; 0: none). Changed only
    /// before the opening (`Event::configure`).
    pub opens_at_ms: u64,
    /// Seconds a pass lives after its last renewal.
    pub session_s: u64,
    /// Most live passes at once (0: no cap).
    pub max_active: u64,
    /// 1: TQ.HOLD needs a live pass.
    pub require_pass: u64,
    /// Most seats a user may hold and buy together (0: no limit).
    pub max_seats: u64,
    /// Most entries a user may have waiting (0: no limit).
    pub max_entries: u64,
    /// Length the event log is kept near (0: no log).
    pub events: u64,
}

impl Settings {
    pub const DEFAULT: Settings = Settings {
        rate: 50,
        burst: 500,
        heartbeat_s: 300,
        hold_ttl_s: 300,
        dedupe_ttl_s: 300,
        opens_at_ms: 0,
        session_s: 600,
        max_active: 0,
        require_pass: 0,
        max_seats: 0,
        max_entries: 0,
        events: 0,
    };

    pub fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_s * 1000
    }

    pub fn session_ms(&self) -> u64 {
        self.session_s * 1000
    }

    pub fn apply(mut self, change: &SettingsChange) -> Settings {
        for (setting, value) in change.iter() {
            *self.slot(setting) = value;
        }
        self
    }

    fn slot(&mut self, setting: Setting) -> &mut u64 {
        match setting {
            Setting::Rate => &mut self.rate,
            Setting::Burst => &mut self.burst,
            Setting::Heartbeat => &mut self.heartbeat_s,
            Setting::HoldTtl => &mut self.hold_ttl_s,
            Setting::DedupeTtl => &mut self.dedupe_ttl_s,
            Setting::OpensAt => &mut self.opens_at_ms,
            Setting::Session => &mut self.session_s,
            Setting::MaxActive => &mut self.max_active,
            Setting::RequirePass => &mut self.require_pass,
            Setting::MaxSeats => &mut self.max_seats,
            Setting::MaxEntries => &mut self.max_entries,
            Setting::Events => &mut self.events,
        }
    }

    pub fn set(&mut self, setting: Setting, value: u64) {
        *self.slot(setting) = value;
    }

    pub fn get(&self, setting: Setting) -> u64 {
        let mut copy = *self;
        *copy.slot(setting)
    }
}

/// One configurable setting: its TQ.CONFIG keyword, its reply/storage field
/// name and its valid range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Rate,
    Burst,
    Heartbeat,
    HoldTtl,
    DedupeTtl,
    OpensAt,
    Session,
    MaxActive,
    RequirePass,
    MaxSeats,
    MaxEntries,
    Events,
}

impl Setting {
    /// In the order of the stored form and of TQ.CONFIG's reply.
    pub const ALL: [Setting; 12] = [
        Setting::Rate,
        Setting::Burst,
        Setting::Heartbeat,
        Setting::HoldTtl,
        Setting::DedupeTtl,
        Setting::OpensAt,
        Setting::Session,
        Setting::MaxActive,
        Setting::RequirePass,
        Setting::MaxSeats,
        Setting::MaxEntries,
        Setting::Events,
    ];

    /// The settings of tq 0.4 (encoding version 2 stores these only).
    pub const SECOND: [Setting; 10] = [
        Setting::Rate,
        Setting::Burst,
        Setting::Heartbeat,
        Setting::HoldTtl,
        Setting::DedupeTtl,
        Setting::Session,
        Setting::MaxActive,
        Setting::RequirePass,
        Setting::MaxSeats,
        Setting::MaxEntries,
    ];

    /// The settings of tq 0.3 (encoding version 1 stores these only).
    pub const FIRST: [Setting; 5] = [
        Setting::Rate,
        Setting::Burst,
        Setting::Heartbeat,
        Setting::HoldTtl,
        Setting::DedupeTtl,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            Setting::Rate => "RATE",
            Setting::Burst => "BURST",
            Setting::Heartbeat => "HEARTBEAT",
            Setting::HoldTtl => "HOLD-TTL",
            Setting::DedupeTtl => "DEDUPE-TTL",
            Setting::OpensAt => "OPENS-AT",
            Setting::Session => "SESSION",
            Setting::MaxActive => "MAX-ACTIVE",
            Setting::RequirePass => "REQUIRE-PASS",
            Setting::MaxSeats => "MAX-SEATS",
            Setting::MaxEntries => "MAX-ENTRIES",
            Setting::Events => "EVENTS",
        }
    }

    /// Field name in the TQ.CONFIG reply.
    pub fn field(self) -> &'static str {
        match self {
            Setting::Rate => "rate",
            Setting::Burst => "burst",
            Setting::Heartbeat => "heartbeat",
            Setting::HoldTtl => "hold_ttl",
            Setting::DedupeTtl => "dedupe_ttl",
            Setting::OpensAt => "opens_at",
            Setting::Session => "session",
            Setting::MaxActive => "max_active",
            Setting::RequirePass => "require_pass",
            Setting::MaxSeats => "max_seats",
            Setting::MaxEntries => "max_entries",
            Setting::Events => "events",
        }
    }

    pub fn range(self) -> (u64, u64) {
        match self {
            Setting::Rate => (0, MAX_RATE),
            Setting::Burst => (1, MAX_BURST),
            Setting::RequirePass => (0, 1),
            Setting::OpensAt => (0, MAX_OPENS_AT),
            Setting::MaxActive | Setting::MaxSeats | Setting::MaxEntries | Setting::Events => {
                (0, MAX_COUNT_SETTING)
            }
            Setting::Heartbeat | Setting::HoldTtl | Setting::DedupeTtl | Setting::Session => {
                (1, MAX_SECONDS)
            }
        }
    }

    pub fn from_keyword(word: &[u8]) -> Option<Setting> {
        Setting::ALL
            .into_iter()
            .find(|s| s.keyword().as_bytes().eq_ignore_ascii_case(word))
    }
}

/// The options of one TQ.CONFIG call, each present at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// By `Setting` (every command reads the event's settings, so this
    /// allocates nothing).
    values: [Option<u64>; Setting::ALL.len()],
}

impl SettingsChange {
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    pub fn contains(&self, setting: Setting) -> bool {
        self.values[setting as usize].is_some()
    }

    pub fn get(&self, setting: Setting) -> Option<u64> {
        self.values[setting as usize]
    }

    pub fn set(&mut self, setting: Setting, value: u64) {
        self.values[setting as usize] = Some(value);
    }

    /// The settings changed, in `Setting::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (Setting, u64)> + '_ {
        Setting::ALL
            .into_iter()
            .filter_map(|setting| Some((setting, self.values[setting as usize]?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_and_fields_round_trip() {
        for s in Setting::ALL {
            assert_eq!(Setting::from_keyword(s.keyword().as_bytes()), Some(s));
            assert_eq!(
                Setting::from_keyword(s.keyword().to_lowercase().as_bytes()),
                Some(s)
            );
        }
        assert_eq!(Setting::from_keyword(b"HOLD_TTL"), None);
    }

    #[test]
    fn apply_changes_only_the_given_settings() {
        let mut change = SettingsChange::default();
        change.set(Setting::Rate, 7);
        change.set(Setting::HoldTtl, 60);
        let s = Settings::DEFAULT.apply(&change);
        assert_eq!(s.rate, 7);
        assert_eq!(s.hold_ttl_s, 60);
        assert_eq!(s.burst, 500);
        assert_eq!(s.get(Setting::HoldTtl), 60);
        assert_eq!(s.heartbeat_ms(), 300_000);
    }
}
