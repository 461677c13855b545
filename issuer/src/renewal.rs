//! Whether an attestation result earns a license its renewal.
//!
//! The result bytes come from the operator asking for the renewal, so they
//! are attacker-controlled; only a verifier key from the configuration makes
//! them count. The license record comes from the ledger and is trusted.
//! [`check`] is pure: it takes `now` and touches no clock, ledger or key
//! other than the verifier keys it is given. It does not judge evidence;
//! that is the verifier's job, summed up claim by claim and in the result's
//! verdict (which also covers the presented token's own validity window).
//! Both must say pass: the verdict alone is one field a faulty verifier
//! could get wrong.

use chipward_proto::cose::{CoseError, TrustedKeys};
use chipward_proto::result::{self, ResultError, Status, VerifiedResult};
use chipward_proto::{ChipId, TokenId};
use thiserror::Error;

use crate::ledger::{LicenseRecord, LicenseState};

/// The time limits a renewal applies to its attestation result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// Oldest result accepted, seconds since its `appraised_at`.
    pub max_result_age_secs: i64,
    /// How far in the future `appraised_at` may lie, seconds.
    pub clock_skew_secs: i64,
}

/// Proof that [`check`] passed for one license; only [`check`] builds it.
#[derive(Debug)]
pub struct RenewalApproval {
    token_id: TokenId,
    result_key_id: String,
    location_measured: bool,
    evidence_sha256: Option<[u8; 32]>,
}

impl RenewalApproval {
    /// The license the approval is for.
    pub fn token_id(&self) -> &TokenId {
        &self.token_id
    }

    /// Id of the verifier key that signed the result.
    pub fn result_key_id(&self) -> &str {
        &self.result_key_id
    }

    /// Whether the result carried a passing `location` claim: landmark
    /// round trips placed the chip inside its site.
    pub fn location_measured(&self) -> bool {
        self.location_measured
    }

    /// SHA-256 of the evidence the result appraised, as the result states.
    pub fn evidence_sha256(&self) -> Option<[u8; 32]> {
        self.evidence_sha256
    }
}

/// Longest claim name repeated in an error; the rest is cut off.
const MAX_CLAIM_NAME_CHARS: usize = 64;

/// Why a renewal was refused; each names the check that failed.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewalError {
    /// The result bytes are not a well-formed signed attestation result:
    /// too large, not a tagged COSE_Sign1, or a payload that is not a
    /// result.
    #[error("attestation result is malformed")]
    Malformed(#[source] ResultError),
    /// The result is well-formed but not signed by a trusted verifier key.
    #[error("attestation result is not signed by a trusted verifier")]
    Unauthenticated(#[source] ResultError),
    /// The license is revoked or already renewed.
    #[error("license is {}", state.as_str())]
    NotActive {
        /// Its state.
        state: LicenseState,
    },
    /// The result lists no claims, so nothing was shown to pass.
    #[error("attestation result lists no claims")]
    NoClaims,
    /// A claim did not pass; the first such one is named.
    #[error("attestation claim {claim:?} is {}, not pass", verdict_name(*status))]
    ClaimNotPassed {
        /// The claim's name, cut to 64 characters.
        claim: String,
        /// Its outcome.
        status: Status,
    },
    /// The verifier did not pass the evidence.
    #[error("attestation verdict is {}, not pass", verdict_name(*verdict))]
    Verdict {
        /// The verdict given.
        verdict: Status,
    },
    /// The result is about another license.
    #[error("attestation result is for another license token")]
    TokenMismatch,
    /// The result is about another chip.
    #[error("attestation result is for another chip")]
    ChipMismatch,
    /// The chip claimed another tenant.
    #[error("attestation result names another tenant")]
    TenantMismatch,
    /// The chip claimed another site.
    #[error("attestation result names another site")]
    SiteMismatch,
    /// The appraisal is too old.
    #[error("attestation result from {appraised_at} is older than {max_age} seconds at {now}")]
    Stale {
        /// When the appraisal happened, Unix seconds.
        appraised_at: i64,
        /// The time checked, Unix seconds.
        now: i64,
        /// Oldest allowed, seconds.
        max_age: i64,
    },
    /// The appraisal claims a time too far ahead of the issuer's clock.
    #[error("attestation result from {appraised_at} lies in the future at {now}")]
    FromTheFuture {
        /// When the appraisal claims to have happened, Unix seconds.
        appraised_at: i64,
        /// The time checked, Unix seconds.
        now: i64,
    },
}

/// Checks that `result_bytes` justify renewing `license` at time `now`.
pub fn check(
    result_bytes: &[u8],
    verifier_keys: &TrustedKeys,
    license: &LicenseRecord,
    now: i64,
    policy: &RenewalPolicy,
) -> Result<RenewalApproval, RenewalError> {
    // 1. The result is well-formed and signed by a trusted verifier key.
    let verified: VerifiedResult = result::verify(result_bytes, verifier_keys).map_err(refusal)?;
    let r = verified.result();

    // 2. The license is still active.
    if license.state != LicenseState::Active {
        return Err(RenewalError::NotActive {
            state: license.state,
        });
    }

    // 3. The verifier passed every claim, there was at least one, and its
    //    verdict says so too.
    if r.claims.is_empty() {
        return Err(RenewalError::NoClaims);
    }
    if let Some(c) = r.claims.iter().find(|c| c.status != Status::Pass) {
        return Err(RenewalError::ClaimNotPassed {
            claim: c.claim.chars().take(MAX_CLAIM_NAME_CHARS).collect(),
            status: c.status,
        });
    }
    if r.verdict != Status::Pass {
        return Err(RenewalError::Verdict { verdict: r.verdict });
    }

    // 4. It appraised this license's token, on this chip, for this tenant
    //    and site. Ids are compared as parsed bytes, so letter case and
    //    empty fields cannot slip through.
    if r.token_id.parse::<TokenId>().ok() != Some(license.token_id) {
        return Err(RenewalError::TokenMismatch);
    }
    if r.chip_id.parse::<ChipId>().ok() != Some(license.chip_id) {
        return Err(RenewalError::ChipMismatch);
    }
    if r.tenant != license.tenant {
        return Err(RenewalError::TenantMismatch);
    }
    if r.site_id != license.site.id {
        return Err(RenewalError::SiteMismatch);
    }

    // 5. The appraisal is recent, and not from the future beyond the skew.
    if now.saturating_sub(r.appraised_at) > policy.max_result_age_secs {
        return Err(RenewalError::Stale {
            appraised_at: r.appraised_at,
            now,
            max_age: policy.max_result_age_secs,
        });
    }
    if r.appraised_at.saturating_sub(now) > policy.clock_skew_secs {
        return Err(RenewalError::FromTheFuture {
            appraised_at: r.appraised_at,
            now,
        });
    }

    let mut evidence = [0u8; 32];
    let evidence_sha256 = hex::decode_to_slice(&r.evidence_sha256, &mut evidence)
        .ok()
        .map(|()| evidence);
    Ok(RenewalApproval {
        token_id: license.token_id,
        result_key_id: verified.key_id().to_owned(),
        location_measured: r
            .claim("location")
            .is_some_and(|c| c.status == Status::Pass),
        evidence_sha256,
    })
}

/// Tells malformed bytes (the caller's mistake) from a well-formed result
/// that no trusted key vouches for.
fn refusal(err: ResultError) -> RenewalError {
    match err {
        ResultError::Envelope(
            CoseError::TooLarge { .. } | CoseError::Malformed | CoseError::NoPayload,
        )
        | ResultError::Payload => RenewalError::Malformed(err),
        // Wrong algorithm, critical headers, an unknown key id or a bad
        // signature: well-formed, but not from a verifier we trust. Any
        // variant added later is refused this way too.
        _ => RenewalError::Unauthenticated(err),
    }
}

fn verdict_name(verdict: Status) -> &'static str {
    match verdict {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::Unknown => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use chipward_certs::keys::Ed25519Key;
    use chipward_proto::cose::CoseError;
    use chipward_proto::license::SiteClaim;
    use chipward_proto::result::{AttestationResult, ClaimResult};

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const POLICY: RenewalPolicy = RenewalPolicy {
        max_result_age_secs: 300,
        clock_skew_secs: 60,
    };

    struct Fixture {
        key: Ed25519Key,
        keys: TrustedKeys,
        license: LicenseRecord,
    }

    fn fixture() -> Fixture {
        let key = Ed25519Key::generate().unwrap();
        let keys = TrustedKeys::new().with(key.key_id(), key.public_key());
        let license = LicenseRecord {
            token_id: TokenId([0x11; 16]),
            chip_id: ChipId([0x22; 32]),
            tenant: "acme".into(),
            site: SiteClaim {
                id: "fra-1".into(),
                latitude: 50.1,
                longitude: 8.7,
                radius_km: 20.0,
            },
            issued_at: NOW - 1000,
            not_before: NOW - 1000,
            expires_at: NOW + 1000,
            state: LicenseState::Active,
            token: vec![1, 2, 3],
            renewed_from: None,
            entitlements: vec![],
            eccn: String::new(),
            term_started_at: NOW - 1000,
            parties: String::new(),
        };
        Fixture { key, keys, license }
    }

    fn passing() -> AttestationResult {
        let claims = vec![ClaimResult {
            claim: "tenant".into(),
            status: Status::Pass,
            code: "ok".into(),
            reason: String::new(),
        }];
        AttestationResult {
            appraised_at: NOW - 10,
            chip_id: "22".repeat(32),
            model: "CW-100 Provisioner CA".into(),
            tenant: "acme".into(),
            site_id: "fra-1".into(),
            token_id: "11".repeat(16),
            evidence_sha256: "00".repeat(32),
            measurements: vec![],
            verdict: AttestationResult::verdict_of(&claims),
            location: None,
            claims,
        }
    }

    fn run(
        f: &Fixture,
        edit: impl FnOnce(&mut AttestationResult),
    ) -> Result<RenewalApproval, RenewalError> {
        let mut r = passing();
        edit(&mut r);
        let bytes = r.sign(&f.key.key_id(), |m| f.key.sign(m));
        check(&bytes, &f.keys, &f.license, NOW, &POLICY)
    }

    #[test]
    fn approves_a_fresh_passing_result_for_this_license() {
        let f = fixture();
        let approval = run(&f, |_| {}).unwrap();
        assert_eq!(approval.token_id(), &TokenId([0x11; 16]));
        assert_eq!(approval.result_key_id(), f.key.key_id());

        // Upper-case hex names the same ids.
        let approval = run(&f, |r| {
            r.chip_id = r.chip_id.to_uppercase();
            r.token_id = r.token_id.to_uppercase();
        });
        assert!(approval.is_ok());
    }

    #[test]
    fn refuses_a_result_signed_by_an_untrusted_key() {
        let f = fixture();
        let other = Ed25519Key::generate().unwrap();
        let bytes = passing().sign(&other.key_id(), |m| other.sign(m));
        let err = check(&bytes, &f.keys, &f.license, NOW, &POLICY).unwrap_err();
        assert_eq!(
            err,
            RenewalError::Unauthenticated(ResultError::Envelope(CoseError::UnknownKey(
                other.key_id()
            )))
        );

        // Trusted key id, wrong key: the signature check fails.
        let forged = passing().sign(&f.key.key_id(), |m| other.sign(m));
        let err = check(&forged, &f.keys, &f.license, NOW, &POLICY).unwrap_err();
        assert_eq!(
            err,
            RenewalError::Unauthenticated(ResultError::Envelope(CoseError::BadSignature))
        );
    }

    #[test]
    fn calls_bytes_that_are_not_a_signed_result_malformed() {
        let f = fixture();
        let malformed = |bytes: &[u8]| {
            let err = check(bytes, &f.keys, &f.license, NOW, &POLICY).unwrap_err();
            assert!(matches!(err, RenewalError::Malformed(_)), "{err:?}");
            err
        };
        assert_eq!(
            malformed(b""),
            RenewalError::Malformed(ResultError::Envelope(CoseError::Malformed))
        );
        malformed(b"garbage");
        malformed(&[0xd2, 0x84, 0x40]);

        // An untagged COSE_Sign1 is not what the verifier sends.
        let signed = passing().sign(&f.key.key_id(), |m| f.key.sign(m));
        malformed(&chipward_proto::cose::untag(&signed).unwrap());

        let huge = vec![0u8; result::MAX_RESULT_LEN + 1];
        assert!(matches!(
            malformed(&huge),
            RenewalError::Malformed(ResultError::Envelope(CoseError::TooLarge { .. }))
        ));

        // Signed by a trusted key, but the payload is not a result.
        let not_a_result =
            chipward_proto::cose::seal(b"hello".to_vec(), &f.key.key_id(), |m| f.key.sign(m));
        assert_eq!(
            malformed(&not_a_result),
            RenewalError::Malformed(ResultError::Payload)
        );
    }

    #[test]
    fn refuses_licenses_that_are_not_active() {
        let mut f = fixture();
        f.license.state = LicenseState::Revoked;
        assert_eq!(
            run(&f, |_| {}).unwrap_err(),
            RenewalError::NotActive {
                state: LicenseState::Revoked
            }
        );
        f.license.state = LicenseState::Superseded;
        assert_eq!(
            run(&f, |_| {}).unwrap_err(),
            RenewalError::NotActive {
                state: LicenseState::Superseded
            }
        );
    }

    #[test]
    fn refuses_a_verdict_other_than_pass() {
        let f = fixture();
        let err = run(&f, |r| r.verdict = Status::Fail).unwrap_err();
        assert_eq!(
            err,
            RenewalError::Verdict {
                verdict: Status::Fail
            }
        );
        assert_eq!(err.to_string(), "attestation verdict is fail, not pass");
        let err = run(&f, |r| r.verdict = Status::Unknown).unwrap_err();
        assert_eq!(
            err,
            RenewalError::Verdict {
                verdict: Status::Unknown
            }
        );
    }

    #[test]
    fn refuses_a_passing_verdict_over_a_claim_that_did_not_pass() {
        let f = fixture();
        let err = run(&f, |r| {
            r.claims.push(ClaimResult {
                claim: "firmware".into(),
                status: Status::Fail,
                code: "measurement_mismatch".into(),
                reason: String::new(),
            });
            r.claims.push(ClaimResult {
                claim: "site".into(),
                status: Status::Unknown,
                code: "unknown".into(),
                reason: String::new(),
            });
            r.verdict = Status::Pass;
        })
        .unwrap_err();
        assert_eq!(
            err,
            RenewalError::ClaimNotPassed {
                claim: "firmware".into(),
                status: Status::Fail
            }
        );
        assert_eq!(
            err.to_string(),
            "attestation claim \"firmware\" is fail, not pass"
        );

        let err = run(&f, |r| r.claims[0].status = Status::Unknown).unwrap_err();
        assert_eq!(
            err,
            RenewalError::ClaimNotPassed {
                claim: "tenant".into(),
                status: Status::Unknown
            }
        );
    }

    #[test]
    fn refuses_a_passing_verdict_without_claims() {
        let f = fixture();
        let err = run(&f, |r| {
            r.claims.clear();
            r.verdict = Status::Pass;
        })
        .unwrap_err();
        assert_eq!(err, RenewalError::NoClaims);
    }

    #[test]
    fn cuts_long_claim_names_in_errors() {
        let f = fixture();
        let err = run(&f, |r| {
            r.claims[0].claim = "\u{202e}x".repeat(100);
            r.claims[0].status = Status::Fail;
        })
        .unwrap_err();
        let RenewalError::ClaimNotPassed { claim, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(claim.chars().count(), 64);
        // Debug quoting escapes the control characters in the message.
        assert!(err.to_string().contains("\\u{202e}x"), "{err}");
    }

    #[test]
    fn refuses_a_result_about_another_token() {
        let f = fixture();
        let err = run(&f, |r| r.token_id = "12".repeat(16)).unwrap_err();
        assert_eq!(err, RenewalError::TokenMismatch);
        let err = run(&f, |r| r.token_id.clear()).unwrap_err();
        assert_eq!(err, RenewalError::TokenMismatch);
    }

    #[test]
    fn refuses_a_result_about_another_chip() {
        let f = fixture();
        let err = run(&f, |r| r.chip_id = "23".repeat(32)).unwrap_err();
        assert_eq!(err, RenewalError::ChipMismatch);
        let err = run(&f, |r| r.chip_id.clear()).unwrap_err();
        assert_eq!(err, RenewalError::ChipMismatch);
    }

    #[test]
    fn refuses_a_result_naming_another_tenant() {
        let f = fixture();
        let err = run(&f, |r| r.tenant = "acme2".into()).unwrap_err();
        assert_eq!(err, RenewalError::TenantMismatch);
        let err = run(&f, |r| r.tenant = "ACME".into()).unwrap_err();
        assert_eq!(err, RenewalError::TenantMismatch);
    }

    #[test]
    fn refuses_a_result_naming_another_site() {
        let f = fixture();
        let err = run(&f, |r| r.site_id = "fra-2".into()).unwrap_err();
        assert_eq!(err, RenewalError::SiteMismatch);
    }

    #[test]
    fn refuses_a_result_older_than_the_limit() {
        let f = fixture();
        assert!(run(&f, |r| r.appraised_at = NOW - 300).is_ok());
        let err = run(&f, |r| r.appraised_at = NOW - 301).unwrap_err();
        assert_eq!(
            err,
            RenewalError::Stale {
                appraised_at: NOW - 301,
                now: NOW,
                max_age: 300
            }
        );
        let err = run(&f, |r| r.appraised_at = i64::MIN).unwrap_err();
        assert!(matches!(err, RenewalError::Stale { .. }));
    }

    #[test]
    fn refuses_a_result_from_beyond_the_skew() {
        let f = fixture();
        assert!(run(&f, |r| r.appraised_at = NOW + 60).is_ok());
        let err = run(&f, |r| r.appraised_at = NOW + 61).unwrap_err();
        assert_eq!(
            err,
            RenewalError::FromTheFuture {
                appraised_at: NOW + 61,
                now: NOW
            }
        );
        let err = run(&f, |r| r.appraised_at = i64::MAX).unwrap_err();
        assert!(matches!(err, RenewalError::FromTheFuture { .. }));
    }
}
