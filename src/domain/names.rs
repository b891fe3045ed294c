//! The names of the queue (tokens, the users who wait, DEDUPE ids) as the
//! state keeps them: the first 16 bytes of their SHA-256.
//!
//! The queue's stream holds each waiting entry's token and user as sent,
//! and nothing tq answers needs them from the state (TQ.USER reads its
//! tokens from the stream). A digest costs 16 bytes whatever the name's
//! length (a token or idempotency key is typically a 36-byte UUID), sits
//! inside its record, and with 128 bits of a cryptographic hash no two
//! names collide, by chance or by a client's effort, where a fast hash
//! would let one forge a digest equal to another's.

use sha2::{Digest, Sha256};

/// A name of the queue as stored.
pub type NameDigest = [u8; 16];

pub fn digest_of(name: &[u8]) -> NameDigest {
    let full = Sha256::digest(name);
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}
