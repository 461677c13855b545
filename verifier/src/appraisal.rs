//! The full appraisal of one request: evidence, license and claims in, a
//! signed attestation result out.
//!
//! Attacker-controlled: everything in [`AppraisalRequest`]. A request that
//! cannot be appraised at all (malformed transcript, certificates, challenge
//! or token, or over-long claims) is an [`AppraisalError`]; anything else
//! yields a signed result in which every claim is pass, fail or unknown.
//!
//! Checks, in order:
//! 1. Bounds on the claimed tenant and site.
//! 2. Evidence: structure, chain, signature ([`crate::evidence::spdm`]).
//! 3. License: envelope, algorithm, issuer key, signature, audience.
//! 4. Freshness: the challenge's MAC and expiry, the evidence nonce against
//!    the one derived from challenge, tenant and site, then single use; a
//!    challenge is used up only by evidence whose chain and signature hold,
//!    and that use spends the chip's rate budget when one is given
//!    ([`Appraiser::appraise_limited`]).
//! 5. Identity binding: token subject equals the chip the chain proves.
//! 6. Measurements against the model's reference values.
//! 7. License window and revocation.
//! 8. Tenant and site against the license.
//! 9. With landmark records: the location claim
//!    ([`crate::location::location_claim`]).
//! 10. With host evidence: the AK binding, the host quote over the nonce
//!     derived from the chip's, the TPM clock, firmware, tenant and device
//!     PCRs ([`crate::evidence::tpm::host`]).
//!
//! A claim whose prerequisites did not pass is unknown with code
//! `CW-DEPENDS`, never passed.

use chipward_certs::keys::Ed25519Key;
use chipward_proto::cose::{CoseError, TrustedKeys};
use chipward_proto::license::{self, TokenError, VerifiedLicense};
use chipward_proto::nonce::{Challenge, ChallengeError, evidence_nonce, host_quote_nonce};
use chipward_proto::rate_limit::{KeyedLimiter, RateLimited};
use chipward_proto::result::{
    AttestationResult, ClaimResult, LocationBound, MeasurementRecord, Status,
};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::challenge::{Challenges, FreshnessFailure};
use crate::claims::{self, code};
use crate::evidence::roots::Roots;
use crate::evidence::spdm::{self, EvidenceError, EvidenceFacts};
use crate::evidence::tpm::host::{HostClocks, HostContext, HostInput, HostPolicy, appraise_host};
use crate::location::records::Landmarks;
use crate::location::{Cap, LocationInput, LocationOutcome, MAX_RECORDS, Point, location_claim};
use crate::policy::reference::ReferenceValues;
use crate::revocation::RevocationCache;

/// Longest tenant name accepted, in bytes.
pub const MAX_TENANT_LEN: usize = 128;
/// Longest site id accepted, in bytes.
pub const MAX_SITE_LEN: usize = 64;

/// Tunables of the appraisal, with their defaults.
#[derive(Clone, Debug)]
pub struct AppraisalSettings {
    /// The `aud` a license must carry. Default `chipward-verifier`.
    pub audience: String,
    /// Clock skew allowed on license windows, seconds. Default 60.
    pub skew_secs: i64,
    /// Oldest landmark record accepted, milliseconds. Default 60000.
    pub record_max_age_ms: i64,
    /// Whether an appraisal without landmark records gets a `location`
    /// claim left unknown (`CW-LOC-MISSING`), so it cannot pass. Default
    /// false: without records there is no location claim at all.
    pub require_location: bool,
}

impl Default for AppraisalSettings {
    fn default() -> Self {
        Self {
            audience: "chipward-verifier".into(),
            skew_secs: 60,
            record_max_age_ms: 60_000,
            require_location: false,
        }
    }
}

/// One appraisal's input, as received.
#[derive(Clone, Copy, Debug)]
pub struct AppraisalRequest<'a> {
    /// The challenge the verifier handed out.
    pub challenge: &'a [u8],
    /// SPDM transcript.
    pub transcript: &'a [u8],
    /// DER certificates, leaf first.
    pub cert_chain: &'a [Vec<u8>],
    /// COSE_Sign1 license token.
    pub license_token: &'a [u8],
    /// Tenant the chip claims.
    pub tenant: &'a str,
    /// Site the chip claims.
    pub site_id: &'a str,
    /// The quote of the host the chip sits in, if it has a TPM.
    pub host: Option<HostInput<'a>>,
    /// Signed landmark measurement records of the chip, if any.
    pub landmark_records: &'a [Vec<u8>],
}

/// A signed result and its decoded content.
#[derive(Clone, Debug)]
pub struct Appraisal {
    /// What was concluded.
    pub result: AttestationResult,
    /// The COSE_Sign1 the verifier signed.
    pub signed: Vec<u8>,
}

/// A request that cannot be appraised.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppraisalError {
    /// Tenant or site id too long.
    #[error("{field} is longer than {max} bytes")]
    ClaimTooLong {
        /// Which field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Evidence that does not parse.
    #[error("evidence refused")]
    Evidence(#[source] EvidenceError),
    /// A challenge of the wrong shape.
    #[error("challenge is malformed")]
    Challenge(#[source] ChallengeError),
    /// A token that is not a readable COSE_Sign1 license.
    #[error("license token is malformed")]
    Token(#[source] TokenError),
    /// More landmark records than one appraisal takes.
    #[error("{0} landmark records exceed the limit of {MAX_RECORDS}")]
    TooManyRecords(usize),
    /// The chip's evidence held for a fresh challenge, but the chip has
    /// spent its rate budget; the challenge was left unused.
    #[error(transparent)]
    RateLimited(RateLimited),
}

/// Everything an appraisal needs; shared by all requests.
pub struct Appraiser {
    settings: AppraisalSettings,
    roots: Roots,
    references: ReferenceValues,
    issuer_keys: TrustedKeys,
    challenges: Challenges,
    revocations: std::sync::Arc<RevocationCache>,
    result_key: Ed25519Key,
    host_policy: HostPolicy,
    host_clocks: HostClocks,
    landmarks: Landmarks,
}

impl std::fmt::Debug for Appraiser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appraiser")
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

impl Appraiser {
    /// Assembles an appraiser.
    pub fn new(
        settings: AppraisalSettings,
        roots: Roots,
        references: ReferenceValues,
        issuer_keys: TrustedKeys,
        challenges: Challenges,
        revocations: std::sync::Arc<RevocationCache>,
        result_key: Ed25519Key,
    ) -> Self {
        Self {
            settings,
            roots,
            references,
            issuer_keys,
            challenges,
            revocations,
            result_key,
            host_policy: HostPolicy::default(),
            host_clocks: HostClocks::default(),
            landmarks: Landmarks::default(),
        }
    }

    /// Judges host quotes against `policy` (default: tenant in PCR 16, no
    /// firmware reference values).
    pub fn with_host_policy(mut self, policy: HostPolicy) -> Self {
        self.host_policy = policy;
        self
    }

    /// Trusts these landmarks' measurement records.
    pub fn with_landmarks(mut self, landmarks: Landmarks) -> Self {
        self.landmarks = landmarks;
        self
    }

    /// Mints a challenge at `now_ms`.
    pub fn challenge(&self, now_ms: i64) -> Challenge {
        self.challenges.mint(now_ms)
    }

    /// The revocation list state.
    pub fn revocations(&self) -> &RevocationCache {
        &self.revocations
    }

    /// Id of the result-signing key.
    pub fn result_key_id(&self) -> String {
        self.result_key.key_id()
    }

    /// Appraises one request at `now_ms` (Unix milliseconds).
    pub fn appraise(
        &self,
        req: &AppraisalRequest<'_>,
        now_ms: i64,
    ) -> Result<Appraisal, AppraisalError> {
        self.appraise_limited(req, now_ms, None)
    }

    /// Appraises one request at `now_ms` (Unix milliseconds); with
    /// `chip_limit`, evidence that holds for a fresh challenge spends one
    /// request of its chip's budget (keyed by the chip id in hex) as it
    /// uses the challenge up, and a chip without budget left is refused
    /// with [`AppraisalError::RateLimited`] before anything is signed.
    pub fn appraise_limited(
        &self,
        req: &AppraisalRequest<'_>,
        now_ms: i64,
        chip_limit: Option<&KeyedLimiter>,
    ) -> Result<Appraisal, AppraisalError> {
        let now = now_ms.div_euclid(1000);

        // 1. Bounds.
        check_len("tenant", req.tenant, MAX_TENANT_LEN)?;
        check_len("site_id", req.site_id, MAX_SITE_LEN)?;
        if req.landmark_records.len() > MAX_RECORDS {
            return Err(AppraisalError::TooManyRecords(req.landmark_records.len()));
        }

        // 2. Evidence; 3. license; both refuse unreadable input outright.
        let facts = spdm::examine(req.transcript, req.cert_chain, &self.roots, now)
            .map_err(AppraisalError::Evidence)?;
        let challenge = Challenge::decode(req.challenge).map_err(AppraisalError::Challenge)?;
        let license = self.open_license(req.license_token)?;
        let license_claim = match &license {
            Ok(v) => self.audience_claim(v),
            Err(e) => claims::fail(
                claims::LICENSE_SIGNATURE,
                code::LICENSE_SIGNATURE,
                claims::with_sources(&e),
            ),
        };
        let license = license
            .ok()
            .filter(|_| license_claim.status == Status::Pass);

        // 4. Freshness.
        let expected = evidence_nonce(req.challenge, req.tenant, req.site_id);
        let freshness = self.freshness(&challenge, &facts, &expected, now_ms, chip_limit)?;

        // 5 to 8.
        let claim_set = ClaimSet {
            facts: &facts,
            license: license.as_ref(),
            freshness: &freshness,
        };
        let mut out = vec![license_claim];
        out.push(self.window_claim(license.as_ref(), now));
        out.push(self.revocation_claim(license.as_ref(), now_ms));
        out.push(facts.chain.clone());
        out.push(facts.signature.clone());
        out.push(freshness.clone());
        out.push(claim_set.identity());
        out.push(self.measurements_claim(&facts, freshness.status == Status::Pass));
        out.push(claim_set.bound(
            claims::TENANT,
            |l| l.tenant == req.tenant,
            code::TENANT_MISMATCH,
            || format!("claims tenant {:?}, license names another", req.tenant),
        ));
        out.push(claim_set.bound(
            claims::SITE,
            |l| l.site.id == req.site_id,
            code::SITE_MISMATCH,
            || format!("claims site {:?}, license names another", req.site_id),
        ));

        // 9. Location, when landmark records came with the evidence or
        //    the policy asks for it.
        let mut bound = None;
        if !req.landmark_records.is_empty() {
            let proven = facts.authentic() && freshness.status == Status::Pass;
            let outcome = self.location(
                req,
                &facts,
                license.as_ref().filter(|_| proven),
                &expected,
                now_ms,
            );
            bound = outcome.bound;
            out.push(outcome.claim);
        } else if self.settings.require_location {
            out.push(claims::unknown(
                claims::LOCATION,
                code::LOCATION_MISSING,
                "no landmark records came with the evidence, and this verifier requires a location bound",
            ));
        }

        // 10. The host, when the chip sits in one with a TPM.
        if let Some(host) = &req.host {
            let tenant = license.as_ref().map(|l| l.claims().tenant.as_str());
            let nonce = host_quote_nonce(&expected);
            let proven = facts.authentic() && freshness.status == Status::Pass;
            let chip = facts
                .identity
                .as_ref()
                .filter(|_| proven)
                .map(|i| i.chip_id.to_hex());
            let ctx = HostContext {
                policy: &self.host_policy,
                issuer_keys: &self.issuer_keys,
                clocks: &self.host_clocks,
            };
            let h = appraise_host(host, &nonce, tenant, chip.as_deref(), &ctx, now);
            out.extend([h.binding, h.quote, h.clock, h.firmware, h.tenant, h.device]);
        }

        let token_id = license::decode_unverified(req.license_token)
            .map(|c| c.token_id.to_hex())
            .unwrap_or_default();
        let appraisal = self.sign(&facts, (req.tenant, req.site_id), token_id, out, bound, now);
        Ok(appraisal)
    }

    /// Appraises evidence alone, as read from files: no license, and the
    /// nonce compared with `expected_nonce` when one is given.
    pub fn appraise_report(
        &self,
        transcript: &[u8],
        cert_chain: &[Vec<u8>],
        expected_nonce: Option<&[u8; 32]>,
        now: i64,
    ) -> Result<Appraisal, AppraisalError> {
        let facts = spdm::examine(transcript, cert_chain, &self.roots, now)
            .map_err(AppraisalError::Evidence)?;
        let freshness = match expected_nonce {
            None => claims::unknown(
                claims::EVIDENCE_FRESHNESS,
                code::NONCE_NOT_GIVEN,
                "no expected nonce given",
            ),
            Some(n) if ct_eq(n, &facts.transcript.request.nonce) => claims::pass(
                claims::EVIDENCE_FRESHNESS,
                "request nonce is the expected one",
            ),
            Some(_) => claims::fail(
                claims::EVIDENCE_FRESHNESS,
                code::NONCE_MISMATCH,
                "request nonce is not the expected one",
            ),
        };
        let out = vec![
            facts.chain.clone(),
            facts.signature.clone(),
            freshness.clone(),
            self.measurements_claim(&facts, freshness.status != Status::Fail),
        ];
        Ok(self.sign(&facts, ("", ""), String::new(), out, None, now))
    }

    fn open_license(
        &self,
        token: &[u8],
    ) -> Result<Result<VerifiedLicense, TokenError>, AppraisalError> {
        match license::verify(token, &self.issuer_keys) {
            Ok(v) => Ok(Ok(v)),
            Err(
                e @ (TokenError::Envelope(
                    CoseError::Malformed | CoseError::NoPayload | CoseError::TooLarge { .. },
                )
                | TokenError::Claims
                | TokenError::Claim(_)),
            ) => Err(AppraisalError::Token(e)),
            Err(e) => Ok(Err(e)),
        }
    }

    fn audience_claim(&self, license: &VerifiedLicense) -> ClaimResult {
        if license.claims().audience == self.settings.audience {
            claims::pass(
                claims::LICENSE_SIGNATURE,
                format!("signed by issuer key {}", license.key_id()),
            )
        } else {
            claims::fail(
                claims::LICENSE_SIGNATURE,
                code::LICENSE_SIGNATURE,
                format!("license is for audience {:?}", license.claims().audience),
            )
        }
    }

    fn freshness(
        &self,
        challenge: &Challenge,
        facts: &EvidenceFacts,
        expected: &[u8; 32],
        now_ms: i64,
        chip_limit: Option<&KeyedLimiter>,
    ) -> Result<ClaimResult, AppraisalError> {
        let name = claims::EVIDENCE_FRESHNESS;
        if let Err(e) = self.challenges.check(challenge, now_ms) {
            let c = if matches!(e, FreshnessFailure::Forged) {
                code::CHALLENGE_FORGED
            } else {
                code::CHALLENGE_EXPIRED
            };
            return Ok(claims::fail(name, c, e.to_string()));
        }
        if !ct_eq(expected, &facts.transcript.request.nonce) {
            return Ok(claims::fail(
                name,
                code::NONCE_MISMATCH,
                "evidence nonce does not answer this challenge, tenant and site",
            ));
        }
        // Only evidence the chip's own key signed uses the challenge up, so
        // whoever merely sees a challenge cannot spend it first; and only
        // that use spends the chip's rate budget, so nobody can spend it
        // with garbage or replays.
        let (true, Some(identity)) = (facts.authentic(), &facts.identity) else {
            return Ok(depends(name, "evidence chain and signature"));
        };
        let consume = || self.challenges.consume(challenge, now_ms);
        let consumed = match chip_limit {
            Some(limit) => limit
                .check_if(&identity.chip_id.to_hex(), consume)
                .map_err(AppraisalError::RateLimited)?,
            None => consume(),
        };
        Ok(match consumed {
            Ok(()) => claims::pass(
                name,
                "answers a fresh challenge for the claimed tenant and site",
            ),
            Err(e) => claims::fail(name, code::REPLAY, e.to_string()),
        })
    }

    fn location(
        &self,
        req: &AppraisalRequest<'_>,
        facts: &EvidenceFacts,
        license: Option<&VerifiedLicense>,
        binding: &[u8; 32],
        now_ms: i64,
    ) -> LocationOutcome {
        let (Some(license), Some(identity)) = (license, facts.identity.as_ref()) else {
            return LocationOutcome {
                claim: depends(
                    claims::LOCATION,
                    "license signature, evidence and freshness",
                ),
                bound: None,
            };
        };
        let site = &license.claims().site;
        let Ok(center) = Point::new(site.latitude, site.longitude) else {
            return LocationOutcome {
                claim: claims::fail(
                    claims::LOCATION,
                    code::LOCATION_RECORD,
                    "license site is not a place on earth",
                ),
                bound: None,
            };
        };
        let input = LocationInput {
            chip_id: &identity.chip_id.to_hex(),
            alias_spki: &facts.leaf_spki,
            binding,
            site: Cap {
                center,
                radius_km: site.radius_km,
            },
            now_ms,
            max_age_ms: self.settings.record_max_age_ms,
        };
        location_claim(req.landmark_records, &self.landmarks, &input)
    }

    fn window_claim(&self, license: Option<&VerifiedLicense>, now: i64) -> ClaimResult {
        let name = claims::LICENSE_VALIDITY;
        let Some(license) = license else {
            return depends(name, "license signature");
        };
        match license.check_window(now, self.settings.skew_secs) {
            Ok(()) => claims::pass(name, format!("valid until {}", license.claims().expires_at)),
            Err(e @ TokenError::Expired { .. }) => {
                claims::fail(name, code::LICENSE_EXPIRED, e.to_string())
            }
            Err(e) => claims::fail(name, code::LICENSE_NOT_YET_VALID, e.to_string()),
        }
    }

    fn revocation_claim(&self, license: Option<&VerifiedLicense>, now_ms: i64) -> ClaimResult {
        match license {
            Some(l) => self
                .revocations
                .judge(&l.claims().token_id.to_hex(), now_ms),
            None => depends(claims::LICENSE_REVOCATION, "license signature"),
        }
    }

    fn measurements_claim(&self, facts: &EvidenceFacts, fresh: bool) -> ClaimResult {
        match &facts.identity {
            Some(id) if facts.authentic() && fresh => self
                .references
                .judge(&id.model, &facts.transcript.response.blocks),
            _ => depends(
                claims::FIRMWARE_MEASUREMENTS,
                "evidence chain, signature and freshness",
            ),
        }
    }

    fn sign(
        &self,
        facts: &EvidenceFacts,
        (tenant, site_id): (&str, &str),
        token_id: String,
        claims: Vec<ClaimResult>,
        location: Option<LocationBound>,
        now: i64,
    ) -> Appraisal {
        let identity = facts.identity.as_ref();
        let result = AttestationResult {
            appraised_at: now,
            chip_id: identity.map(|i| i.chip_id.to_hex()).unwrap_or_default(),
            model: identity.map(|i| i.model.clone()).unwrap_or_default(),
            tenant: tenant.to_owned(),
            site_id: site_id.to_owned(),
            token_id,
            evidence_sha256: hex::encode(facts.evidence_sha256),
            measurements: facts
                .transcript
                .response
                .blocks
                .iter()
                .map(|b| MeasurementRecord {
                    index: b.index,
                    value: hex::encode(&b.value),
                })
                .collect(),
            verdict: AttestationResult::verdict_of(&claims),
            claims,
            location,
        };
        let signed = result.sign(&self.result_key.key_id(), |m| self.result_key.sign(m));
        Appraisal { result, signed }
    }
}

/// The claims that need several prerequisites.
struct ClaimSet<'a> {
    facts: &'a EvidenceFacts,
    license: Option<&'a VerifiedLicense>,
    freshness: &'a ClaimResult,
}

impl ClaimSet<'_> {
    fn identity(&self) -> ClaimResult {
        let name = claims::IDENTITY_BINDING;
        let (Some(license), Some(id)) = (self.license, &self.facts.identity) else {
            return depends(name, "license signature and evidence chain");
        };
        if license.claims().chip_id == id.chip_id {
            claims::pass(name, format!("license names chip {}", id.chip_id.short()))
        } else {
            claims::fail(
                name,
                code::IDENTITY_MISMATCH,
                format!(
                    "license names chip {}, evidence proves chip {}",
                    license.claims().chip_id.short(),
                    id.chip_id.short()
                ),
            )
        }
    }

    /// A claim the evidence binds (through its nonce) and the license decides.
    fn bound(
        &self,
        name: &str,
        holds: impl Fn(&license::LicenseClaims) -> bool,
        fail_code: &str,
        reason: impl Fn() -> String,
    ) -> ClaimResult {
        let bound =
            self.facts.signature.status == Status::Pass && self.freshness.status == Status::Pass;
        match self.license {
            Some(l) if bound => {
                if holds(l.claims()) {
                    claims::pass(name, "matches the license")
                } else {
                    claims::fail(name, fail_code, reason())
                }
            }
            _ => depends(name, "license signature, evidence signature and freshness"),
        }
    }
}

fn depends(name: &str, on: &str) -> ClaimResult {
    claims::unknown(
        name,
        code::DEPENDS,
        format!("not decided: {on} did not pass"),
    )
}

fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), AppraisalError> {
    if value.len() > max {
        return Err(AppraisalError::ClaimTooLong { field, max });
    }
    Ok(())
}

/// Nonces come from peers: compare them in constant time.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}
