//! The compliance policy file and the terms it gives a license. The input
//! is the policy's TOML text, then optionally a NUL byte and a query: a
//! requested lifetime (4 bytes), the start of a lineage and the time of a
//! renewal (8 bytes each, big-endian, signed), a flag byte (bit 0: the
//! location was measured) and the NUL-separated model, site, tenant and
//! requested classification.
//!
//! [`CompliancePolicy::from_toml`] must refuse bad text with an error. For
//! a policy it accepts, any terms it gives lie within the checked ranges,
//! the classification and lifetime rules hold, and a renewal either ends
//! inside the lineage's term after the renewal time or is refused for the
//! reason the tier gives.

#![no_main]

use chipward_issuer::compliance::{ComplianceError, CompliancePolicy, LocationAssurance};
use libfuzzer_sys::fuzz_target;

/// Ten years, the longest span a tier may set, in seconds.
const TEN_YEARS: i64 = 10 * 365 * 86_400;

fuzz_target!(|data: &[u8]| {
    let (text, query) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(policy) = CompliancePolicy::from_toml(text) else {
        return;
    };
    if let Some(query) = query.and_then(Query::read) {
        query.check(&policy);
    }
});

/// One question to a policy.
struct Query<'a> {
    requested: i64,
    started_at: i64,
    now: i64,
    location_measured: bool,
    model: &'a str,
    site: &'a str,
    tenant: &'a str,
    classification: &'a str,
}

impl<'a> Query<'a> {
    fn read(bytes: &'a [u8]) -> Option<Self> {
        let (requested, rest) = bytes.split_first_chunk::<4>()?;
        let (started_at, rest) = rest.split_first_chunk::<8>()?;
        let (now, rest) = rest.split_first_chunk::<8>()?;
        let (flags, rest) = rest.split_first()?;
        let mut texts = std::str::from_utf8(rest).ok()?.split('\0');
        let mut next = || texts.next().unwrap_or_default();
        Some(Self {
            requested: i64::from(u32::from_be_bytes(*requested)),
            started_at: i64::from_be_bytes(*started_at),
            now: i64::from_be_bytes(*now),
            location_measured: flags & 1 == 1,
            model: next(),
            site: next(),
            tenant: next(),
            classification: next(),
        })
    }

    fn check(&self, policy: &CompliancePolicy) {
        let Ok(terms) = policy.terms(self.model, self.site, self.tenant) else {
            return;
        };
        let tier = terms.tier;
        assert!((1..=tier.max_lifetime_secs).contains(&tier.attestation_interval_secs));
        assert!(tier.max_lifetime_secs <= TEN_YEARS);
        assert!(terms.country.len() == 2 && terms.country.bytes().all(|b| b.is_ascii_uppercase()));

        // The classification: the model's, whether left empty or repeated.
        let own = terms.classification;
        assert_eq!(terms.classification_for(self.model, "").as_deref(), Ok(own));
        assert_eq!(
            terms.classification_for(self.model, own).as_deref(),
            Ok(own)
        );
        let asked = terms.classification_for(self.model, self.classification);
        if !self.classification.is_empty() && self.classification != own {
            assert!(matches!(asked, Err(ComplianceError::Classification { .. })));
        }

        // The lifetime: the interval for 0, never more than it.
        match terms.lifetime(self.requested) {
            Ok(lifetime) => {
                assert!((1..=tier.attestation_interval_secs).contains(&lifetime));
                assert!(self.requested == 0 || lifetime == self.requested);
            }
            Err(e) => {
                assert!(self.requested > tier.attestation_interval_secs, "{e}");
            }
        }

        // A renewal: after now, inside the term, or refused for a reason.
        let end = terms.term_end(self.started_at);
        match terms.renewal_expiry(
            self.started_at,
            self.now,
            self.requested,
            self.location_measured,
        ) {
            Ok(expires_at) => {
                assert!(self.now < expires_at && expires_at <= end);
                assert!(tier.location == LocationAssurance::Claimed || self.location_measured);
            }
            Err(ComplianceError::TermEnded { .. }) => assert!(self.now >= end),
            Err(ComplianceError::LocationNotMeasured { .. }) => {
                assert_eq!(tier.location, LocationAssurance::Measured);
                assert!(!self.location_measured);
            }
            Err(ComplianceError::Lifetime { .. }) => {
                assert!(self.requested > tier.attestation_interval_secs);
            }
            Err(e) => panic!("renewal refused for no tier reason: {e}"),
        }
    }
}
