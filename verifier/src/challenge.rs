//! Challenges that carry their own authenticity and age, so any verifier
//! replica holding the shared nonce key can check one without shared state.
//!
//! A challenge comes back through the device and is attacker-controlled: its
//! MAC is checked in constant time (ring's `hmac::verify`) before any field
//! is trusted, and only then is it marked used. Each replica remembers the
//! challenges it has accepted until they expire; a replay to another replica
//! is bounded by the challenge lifetime (see DESIGN notes in the README).

use std::collections::HashMap;
use std::sync::Mutex;

use chipward_proto::nonce::Challenge;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;
use zeroize::Zeroizing;

/// The largest number of unexpired challenges a replica remembers; past it,
/// appraisals are refused until old ones expire, rather than forgetting.
pub const MAX_REMEMBERED: usize = 1_000_000;

/// The HMAC key shared by verifier replicas.
pub struct NonceKey {
    key: hmac::Key,
}

impl NonceKey {
    /// A random key, for a single replica.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .expect("the system random source works");
        Self::from_bytes(&bytes)
    }

    /// A key from 32 shared bytes.
    ///
    /// Limitation: ring keeps its own copy of the expanded key, which it does
    /// not zeroize on drop; our copy of the raw bytes is the caller's to wipe.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// Why a challenge was not accepted.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FreshnessFailure {
    /// The MAC does not verify: not minted with our key.
    #[error("challenge was not issued by a verifier sharing this nonce key")]
    Forged,
    /// Past its expiry.
    #[error("challenge expired at {expires_at_ms} ms, now {now_ms} ms")]
    Expired {
        /// Expiry in Unix ms.
        expires_at_ms: i64,
        /// The time checked.
        now_ms: i64,
    },
    /// Already used at this replica.
    #[error("challenge was already used")]
    Replayed,
    /// Too many unexpired challenges remembered.
    #[error("replay memory is full")]
    MemoryFull,
}

/// Mints and checks challenges.
#[derive(Debug)]
pub struct Challenges {
    key: NonceKey,
    ttl_ms: i64,
    rng: SystemRandom,
    seen: Mutex<HashMap<[u8; 16], i64>>,
}

impl Challenges {
    /// Challenges valid for `ttl_ms` milliseconds.
    pub fn new(key: NonceKey, ttl_ms: i64) -> Self {
        Self {
            key,
            ttl_ms,
            rng: SystemRandom::new(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// A fresh challenge.
    pub fn mint(&self, now_ms: i64) -> Challenge {
        let mut random = [0u8; 16];
        self.rng
            .fill(&mut random)
            .expect("the system random source works");
        let mut challenge = Challenge {
            issued_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(self.ttl_ms),
            random,
            mac: [0; 32],
        };
        let tag = hmac::sign(&self.key.key, &challenge.mac_input());
        challenge.mac.copy_from_slice(tag.as_ref());
        challenge
    }

    /// Checks authenticity and age, without using it up.
    pub fn check(&self, challenge: &Challenge, now_ms: i64) -> Result<(), FreshnessFailure> {
        hmac::verify(&self.key.key, &challenge.mac_input(), &challenge.mac)
            .map_err(|_| FreshnessFailure::Forged)?;
        if now_ms > challenge.expires_at_ms {
            return Err(FreshnessFailure::Expired {
                expires_at_ms: challenge.expires_at_ms,
                now_ms,
            });
        }
        Ok(())
    }

    /// Marks an authentic challenge used; fails if it already was.
    pub fn consume(&self, challenge: &Challenge, now_ms: i64) -> Result<(), FreshnessFailure> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.len() >= MAX_REMEMBERED / 2 {
            seen.retain(|_, expires| *expires >= now_ms);
        }
        if seen.contains_key(&challenge.random) {
            return Err(FreshnessFailure::Replayed);
        }
        if seen.len() >= MAX_REMEMBERED {
            return Err(FreshnessFailure::MemoryFull);
        }
        seen.insert(challenge.random, challenge.expires_at_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_its_own_challenge_once() {
        let c = Challenges::new(NonceKey::generate(), 60_000);
        let ch = c.mint(1_000);
        assert_eq!(ch.expires_at_ms, 61_000);
        assert_eq!(c.check(&ch, 2_000), Ok(()));
        assert_eq!(c.consume(&ch, 2_000), Ok(()));
        assert_eq!(c.consume(&ch, 2_001), Err(FreshnessFailure::Replayed));
    }

    #[test]
    fn another_replica_with_the_same_key_accepts_it() {
        let a = Challenges::new(NonceKey::from_bytes(&[4; 32]), 60_000);
        let b = Challenges::new(NonceKey::from_bytes(&[4; 32]), 60_000);
        assert_eq!(b.check(&a.mint(0), 10), Ok(()));
        let c = Challenges::new(NonceKey::from_bytes(&[5; 32]), 60_000);
        assert_eq!(c.check(&a.mint(0), 10), Err(FreshnessFailure::Forged));
    }

    #[test]
    fn rejects_expired_and_altered_challenges() {
        let c = Challenges::new(NonceKey::generate(), 100);
        let ch = c.mint(0);
        assert_eq!(c.check(&ch, 100), Ok(()));
        assert_eq!(
            c.check(&ch, 101),
            Err(FreshnessFailure::Expired {
                expires_at_ms: 100,
                now_ms: 101
            })
        );
        let mut longer = ch.clone();
        longer.expires_at_ms = 1_000_000;
        assert_eq!(c.check(&longer, 101), Err(FreshnessFailure::Forged));
    }
}
