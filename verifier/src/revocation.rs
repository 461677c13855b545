//! The verifier's copy of the issuer's revocation list.
//!
//! A background task fetches the signed list on an interval; only lists
//! whose signature verifies with a trusted issuer key are taken, and never
//! one with a lower sequence number than held (no rollback). If no list was
//! fetched within `max_age_ms`, the revocation claim is unknown rather than
//! passed: a verifier cut off from its issuer fails closed.
//!
//! Bound: a revocation reaches appraisals within one refresh interval plus
//! one issuer round trip, as long as the issuer is reachable.

use std::sync::RwLock;

use chipward_proto::result::ClaimResult;
use chipward_proto::revocation::RevocationList;

use crate::claims::{self, LICENSE_REVOCATION, code};

/// The newest trusted list and when it was fetched.
#[derive(Debug)]
pub struct RevocationCache {
    max_age_ms: i64,
    state: RwLock<Option<Held>>,
}

#[derive(Debug)]
struct Held {
    list: RevocationList,
    fetched_at_ms: i64,
}

impl RevocationCache {
    /// A cache that considers a list stale after `max_age_ms`.
    pub fn new(max_age_ms: i64) -> Self {
        Self {
            max_age_ms,
            state: RwLock::new(None),
        }
    }

    /// Takes a verified list fetched at `now_ms`, unless it is older than the
    /// one held. Returns whether it was taken.
    pub fn update(&self, list: RevocationList, now_ms: i64) -> bool {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        match state.as_mut() {
            Some(held) if list.seq < held.list.seq => false,
            _ => {
                *state = Some(Held {
                    list,
                    fetched_at_ms: now_ms,
                });
                true
            }
        }
    }

    /// Sequence number and age of the list held.
    pub fn status(&self, now_ms: i64) -> Option<(u64, i64)> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .as_ref()
            .map(|h| (h.list.seq, now_ms - h.fetched_at_ms))
    }

    /// The `license.revocation` claim for a token id (lowercase hex).
    pub fn judge(&self, token_id: &str, now_ms: i64) -> ClaimResult {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let Some(held) = state.as_ref() else {
            return claims::unknown(
                LICENSE_REVOCATION,
                code::REVOCATION_STALE,
                "no revocation list held yet",
            );
        };
        let age = now_ms - held.fetched_at_ms;
        if age > self.max_age_ms {
            return claims::unknown(
                LICENSE_REVOCATION,
                code::REVOCATION_STALE,
                format!(
                    "revocation list is {age} ms old, limit {} ms",
                    self.max_age_ms
                ),
            );
        }
        if held.list.contains(token_id) {
            return claims::fail(
                LICENSE_REVOCATION,
                code::LICENSE_REVOKED,
                format!("license revoked (list {})", held.list.seq),
            );
        }
        claims::pass(
            LICENSE_REVOCATION,
            format!("not on revocation list {}", held.list.seq),
        )
    }
}

#[cfg(test)]
mod tests {
    use chipward_proto::result::Status;
    use chipward_proto::revocation::RevokedLicense;

    use super::*;

    fn list(seq: u64, token: &str) -> RevocationList {
        let entry = RevokedLicense {
            token_id: token.into(),
            chip_id: String::new(),
            revoked_at: 0,
            reason: String::new(),
        };
        RevocationList {
            seq,
            issued_at: 0,
            entries: vec![entry],
        }
    }

    #[test]
    fn judges_listed_unlisted_and_stale() {
        let cache = RevocationCache::new(1_000);
        assert_eq!(cache.judge("aa", 0).status, Status::Unknown);
        cache.update(list(3, "aa"), 0);
        assert_eq!(cache.judge("aa", 500).code, code::LICENSE_REVOKED);
        assert_eq!(cache.judge("bb", 500).status, Status::Pass);
        assert_eq!(cache.judge("bb", 1_001).code, code::REVOCATION_STALE);
    }

    #[test]
    fn never_rolls_back_to_a_lower_sequence() {
        let cache = RevocationCache::new(1_000);
        assert!(cache.update(list(3, "aa"), 0));
        assert!(!cache.update(list(2, "bb"), 10));
        assert_eq!(cache.status(10), Some((3, 10)));
        assert!(cache.update(list(3, "aa"), 20));
    }
}
