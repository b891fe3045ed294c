//! `cargo +nightly fuzz run decode`: whatever bytes a RESTORE hands the
//! decoder, it refuses them or returns a state the rules then run on
//! without panicking (the event log's notes and a scheduled opening
//! included), and which encodes and decodes again.
//!
//! Seeds: `fuzz/seeds/decode` (valid encodings of random states; the
//! unit test `codec_tests::fuzz_corpus_replay` replays them):
//! `cargo +nightly fuzz run decode fuzz/corpus/decode fuzz/seeds/decode`.
//!
//! Needs `cargo install cargo-fuzz`, and the crate built with the system
//! allocator under `cfg(fuzzing)` (cargo-fuzz sets it): outside Redis,
//! Redis' allocator aborts ("the Redis Allocator isn't available").

#![no_main]

use libfuzzer_sys::fuzz_target;
use tq::domain::codec::{decode, decode_version, encode, ENCODING_VERSION, OLDEST_VERSION};
use tq::domain::event::{Event, Step};
use tq::domain::settings::{Setting, SettingsChange};

const NOW: u64 = 1_764_000_000_000;

fuzz_target!(|data: &[u8]| {
    // Every version a RESTORE may claim.
    for version in OLDEST_VERSION..=ENCODING_VERSION {
        if let Ok(e) = decode_version(data, version) {
            exercise(e);
        }
    }
});

fn exercise(mut e: Event) {
    // The state keeps tokens as digests: the rules run on names that may
    // or may not be there.
    let token = b"t".to_vec();
    let seat = e
        .seats
        .iter()
        .next()
        .map_or(b"S".to_vec(), |(s, _)| s.to_vec());
    for now in [NOW, NOW + 400_000_000, 0] {
        let mut step = Step::new(now);
        let s = &mut step;
        e.open_log(s);
        e.resume(s);
        let _ = e.position(s, &token);
        let _ = e.enqueue(s, b"u", b"fuzz", Some(b"d"), None);
        let _ = e.enter(s, &token);
        let _ = e.user_entries(now, b"u");
        let _ = e.stats(now);
        let _ = e.seat(now, &seat);
        let _ = e.hold(s, &[&seat[..]], b"u", None);
        let _ = e.confirm(s, &[&seat[..]], b"u");
        let _ = e.release(s, &seat, None);
        let _ = e.trim(s, 60);
        let _ = e.leave(s, b"fuzz");
        let _ = e.advance(s);
        let mut change = SettingsChange::default();
        change.set(Setting::OpensAt, now + 1_000);
        let _ = e.configure(s, &change);
        let _ = e.close_log(s);
        let _ = e.digest();
        let _ = e.memory_usage();
    }
    let _ = decode(&encode(&e));
}
