//! The verifier's copy of the issuer's revocation list.
//!
//! A background task fetches the signed list on an interval; only lists
//! whose signature verifies with a trusted issuer key are taken, and never
//! one older than the one held: a lower sequence number, or the same one
//! signed earlier (no rollback). The issuer signs the list afresh on every
//! fetch, so its signed `issued_at` says how current it is; once that is
//! more than `max_age_ms` old, the revocation claim is unknown rather than
//! passed. A verifier cut off from its issuer, or fed a replayed list,
//! fails closed.
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
}

/// Seconds a list's `issued_at` may lie ahead of the verifier's clock.
const FUTURE_SKEW_SECS: i64 = 60;

impl RevocationCache {
    /// A cache that considers a list stale after `max_age_ms`.
    pub fn new(max_age_ms: i64) -> Self {
        Self {
            max_age_ms,
            state: RwLock::new(None),
        }
    }

    /// Takes a verified list at `now_ms`, unless it is older than the one
    /// held or claims to be from the future. Returns whether it was taken.
    pub fn update(&self, list: RevocationList, now_ms: i64) -> bool {
        if list.issued_at > now_ms.div_euclid(1000) + FUTURE_SKEW_SECS {
            return false;
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let newer = match state.as_ref() {
            Some(held) => (list.seq, list.issued_at) > (held.list.seq, held.list.issued_at),
            None => true,
        };
        if newer {
            *state = Some(Held { list });
        }
        newer
    }

    /// Sequence number and age (from its signed issue time) of the list held.
    pub fn status(&self, now_ms: i64) -> Option<(u64, i64)> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        state
            .as_ref()
            .map(|h| (h.list.seq, now_ms - h.list.issued_at.saturating_mul(1000)))
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
        let age = now_ms - held.list.issued_at.saturating_mul(1000);
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
        list_at(seq, token, 0)
    }

    fn list_at(seq: u64, token: &str, issued_at: i64) -> RevocationList {
        let entry = RevokedLicense {
            token_id: token.into(),
            chip_id: String::new(),
            revoked_at: 0,
            reason: String::new(),
        };
        RevocationList {
            seq,
            issued_at,
            entries: vec![entry],
        }
    }

    #[test]
    fn judges_listed_unlisted_and_stale() {
        let cache = RevocationCache::new(1_000);
        assert_eq!(cache.judge("aa", 0).status, Status::Unknown);
        assert!(cache.update(list(3, "aa"), 0));
        assert_eq!(cache.judge("aa", 500).code, code::LICENSE_REVOKED);
        assert_eq!(cache.judge("bb", 500).status, Status::Pass);
        assert_eq!(cache.judge("bb", 1_001).code, code::REVOCATION_STALE);
    }

    #[test]
    fn never_rolls_back_to_a_lower_sequence_or_an_older_signing() {
        let cache = RevocationCache::new(1_000);
        assert!(cache.update(list_at(3, "aa", 10), 10_000));
        assert!(!cache.update(list_at(2, "bb", 11), 11_000));
        assert_eq!(cache.status(10_500), Some((3, 500)));
        // The same list signed again later refreshes it; a replay does not.
        assert!(cache.update(list_at(3, "aa", 12), 12_000));
        assert!(!cache.update(list_at(3, "aa", 10), 12_000));
        assert_eq!(cache.status(12_000), Some((3, 0)));
    }

    #[test]
    fn a_replayed_list_goes_stale_by_its_signed_time() {
        let cache = RevocationCache::new(30_000);
        assert!(cache.update(list_at(1, "aa", 100), 100_000));
        assert_eq!(cache.judge("bb", 129_000).status, Status::Pass);
        // Fed the same bytes again and again, the verifier still ages it.
        assert!(!cache.update(list_at(1, "aa", 100), 131_000));
        assert_eq!(cache.judge("bb", 131_000).code, code::REVOCATION_STALE);
    }

    #[test]
    fn refuses_lists_from_the_future() {
        let cache = RevocationCache::new(30_000);
        assert!(!cache.update(list_at(1, "aa", 1_000), 100_000));
        assert_eq!(cache.status(100_000), None);
    }
}
