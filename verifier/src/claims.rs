//! The claims an appraisal decides, their stable names, and the stable codes
//! that say why one failed or stayed unknown. Operators and the issuer match
//! on these strings; never rename one, only add.

use chipward_proto::result::{ClaimResult, Status};

/// The license token carries a valid signature by a trusted issuer key, for
/// this audience.
pub const LICENSE_SIGNATURE: &str = "license.signature";
/// The license is inside its validity window (with the stated skew).
pub const LICENSE_VALIDITY: &str = "license.validity";
/// The license is not on the issuer's revocation list.
pub const LICENSE_REVOCATION: &str = "license.revocation";
/// The evidence's certificate chain ends at a trusted vendor root.
pub const EVIDENCE_CHAIN: &str = "evidence.chain";
/// The evidence is signed by the chain's leaf key.
pub const EVIDENCE_SIGNATURE: &str = "evidence.signature";
/// The evidence answers a fresh, unused challenge for the claimed tenant and
/// site.
pub const EVIDENCE_FRESHNESS: &str = "evidence.freshness";
/// The license names the chip the evidence proves.
pub const IDENTITY_BINDING: &str = "identity.binding";
/// Every measurement with a reference value matches an approved one.
pub const FIRMWARE_MEASUREMENTS: &str = "firmware.measurements";
/// The claimed tenant is the license's tenant.
pub const TENANT: &str = "tenant";
/// The claimed site is the license's site.
pub const SITE: &str = "site";

/// The issuer bound the host's attestation key to a certified TPM.
pub const HOST_BINDING: &str = "host.binding";
/// The host's quote is signed by that key over the expected nonce and PCRs.
pub const HOST_QUOTE: &str = "host.quote";
/// The host's TPM clock did not go backwards.
pub const HOST_CLOCK: &str = "host.clock";
/// The host's firmware PCRs hold approved values.
pub const HOST_FIRMWARE: &str = "host.firmware";
/// The host's tenant PCR records the license's tenant.
pub const HOST_TENANT: &str = "host.tenant";

/// Signed round trips to landmarks place the chip inside the license's site.
pub const LOCATION: &str = "location";

/// The host measured this chip into its device PCR.
pub const HOST_DEVICE: &str = "host.device";

/// Every claim about a chip, in the order results list them; host claims
/// follow when the request carries host evidence.
pub const ALL: [&str; 10] = [
    LICENSE_SIGNATURE,
    LICENSE_VALIDITY,
    LICENSE_REVOCATION,
    EVIDENCE_CHAIN,
    EVIDENCE_SIGNATURE,
    EVIDENCE_FRESHNESS,
    IDENTITY_BINDING,
    FIRMWARE_MEASUREMENTS,
    TENANT,
    SITE,
];

/// Every claim name an appraisal can report, chip and host claims alike;
/// metrics count by these names and nothing else.
pub const EVERY_CLAIM: [&str; 17] = [
    LICENSE_SIGNATURE,
    LICENSE_VALIDITY,
    LICENSE_REVOCATION,
    EVIDENCE_CHAIN,
    EVIDENCE_SIGNATURE,
    EVIDENCE_FRESHNESS,
    IDENTITY_BINDING,
    FIRMWARE_MEASUREMENTS,
    TENANT,
    SITE,
    HOST_BINDING,
    HOST_QUOTE,
    HOST_CLOCK,
    HOST_FIRMWARE,
    HOST_TENANT,
    LOCATION,
    HOST_DEVICE,
];

/// The code of every passing claim.
pub const OK: &str = "ok";

/// A passing claim.
pub(crate) fn pass(claim: &str, reason: impl Into<String>) -> ClaimResult {
    ClaimResult {
        claim: claim.into(),
        status: Status::Pass,
        code: OK.into(),
        reason: reason.into(),
    }
}

/// A failing claim with its code.
pub(crate) fn fail(claim: &str, code: &str, reason: impl Into<String>) -> ClaimResult {
    ClaimResult {
        claim: claim.into(),
        status: Status::Fail,
        code: code.into(),
        reason: reason.into(),
    }
}

/// A claim that could not be decided, with its code.
pub(crate) fn unknown(claim: &str, code: &str, reason: impl Into<String>) -> ClaimResult {
    ClaimResult {
        claim: claim.into(),
        status: Status::Unknown,
        code: code.into(),
        reason: reason.into(),
    }
}

/// An error's message followed by those of its sources: the reason text of
/// a failed claim, and of a file check's verdict.
pub fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// Stable failure and unknown codes.
pub mod code {
    /// Token signature, key id, algorithm or audience refused.
    pub const LICENSE_SIGNATURE: &str = "CW-LIC-SIGNATURE";
    /// Token used after its expiry.
    pub const LICENSE_EXPIRED: &str = "CW-LIC-EXPIRED";
    /// Token used before its start.
    pub const LICENSE_NOT_YET_VALID: &str = "CW-LIC-NOT-YET-VALID";
    /// Token on the revocation list.
    pub const LICENSE_REVOKED: &str = "CW-LIC-REVOKED";
    /// No revocation list fresh enough to decide.
    pub const REVOCATION_STALE: &str = "CW-REV-STALE";
    /// Certificate chain refused.
    pub const CHAIN: &str = "CW-EV-CHAIN";
    /// Evidence signature refused.
    pub const EVIDENCE_SIGNATURE: &str = "CW-EV-SIGNATURE";
    /// Challenge not minted by a verifier sharing the nonce key.
    pub const CHALLENGE_FORGED: &str = "CW-EV-CHALLENGE";
    /// Challenge past its expiry.
    pub const CHALLENGE_EXPIRED: &str = "CW-EV-CHALLENGE-EXPIRED";
    /// Challenge already used.
    pub const REPLAY: &str = "CW-EV-REPLAY";
    /// Evidence nonce does not answer this challenge, tenant and site.
    pub const NONCE_MISMATCH: &str = "CW-EV-NONCE";
    /// No expected nonce was given (file appraisal).
    pub const NONCE_NOT_GIVEN: &str = "CW-EV-NONCE-UNCHECKED";
    /// Token subject is another chip.
    pub const IDENTITY_MISMATCH: &str = "CW-ID-MISMATCH";
    /// A measurement differs from every approved value, or is missing.
    pub const MEASUREMENT_MISMATCH: &str = "CW-FW-MISMATCH";
    /// No reference values for the chip's model.
    pub const NO_REFERENCE: &str = "CW-FW-NO-REFERENCE";
    /// Claimed tenant differs from the license's.
    pub const TENANT_MISMATCH: &str = "CW-TENANT";
    /// Claimed site differs from the license's.
    pub const SITE_MISMATCH: &str = "CW-SITE";
    /// AK binding missing, forged or expired.
    pub const HOST_BINDING: &str = "CW-HOST-BINDING";
    /// Host quote refused (signature, magic, nonce, selection or digest).
    pub const HOST_QUOTE: &str = "CW-HOST-QUOTE";
    /// Host TPM clock went backwards.
    pub const HOST_CLOCK: &str = "CW-HOST-CLOCK";
    /// A host firmware PCR is not an approved value.
    pub const HOST_FIRMWARE: &str = "CW-HOST-FIRMWARE";
    /// The host's tenant PCR records another tenant.
    pub const HOST_TENANT: &str = "CW-HOST-TENANT";
    /// Landmark round trips place the chip outside its site.
    pub const LOCATION_OUTSIDE: &str = "CW-LOC-OUTSIDE";
    /// A landmark record was refused.
    pub const LOCATION_RECORD: &str = "CW-LOC-RECORD";
    /// The round trips leave the chip possibly inside, possibly outside.
    pub const LOCATION_UNCERTAIN: &str = "CW-LOC-UNCERTAIN";
    /// No landmark records came, and the policy requires a location bound.
    pub const LOCATION_MISSING: &str = "CW-LOC-MISSING";
    /// The host's measured device log does not hold the chip.
    pub const HOST_DEVICE: &str = "CW-HOST-DEVICE";
    /// A prerequisite claim did not pass, so this one was not decided.
    pub const DEPENDS: &str = "CW-DEPENDS";
    /// The appraisal did not ask about this claim.
    pub const NOT_REQUESTED: &str = "CW-NOT-REQUESTED";

    /// Every failure and unknown code above; metrics count by these codes
    /// and nothing else.
    pub const EVERY_CODE: [&str; 29] = [
        LICENSE_SIGNATURE,
        LICENSE_EXPIRED,
        LICENSE_NOT_YET_VALID,
        LICENSE_REVOKED,
        REVOCATION_STALE,
        CHAIN,
        EVIDENCE_SIGNATURE,
        CHALLENGE_FORGED,
        CHALLENGE_EXPIRED,
        REPLAY,
        NONCE_MISMATCH,
        NONCE_NOT_GIVEN,
        IDENTITY_MISMATCH,
        MEASUREMENT_MISMATCH,
        NO_REFERENCE,
        TENANT_MISMATCH,
        SITE_MISMATCH,
        HOST_BINDING,
        HOST_QUOTE,
        HOST_CLOCK,
        HOST_FIRMWARE,
        HOST_TENANT,
        LOCATION_OUTSIDE,
        LOCATION_RECORD,
        LOCATION_UNCERTAIN,
        LOCATION_MISSING,
        HOST_DEVICE,
        DEPENDS,
        NOT_REQUESTED,
    ];
}
