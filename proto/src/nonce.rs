//! Verifier challenges and the evidence nonce derived from them.
//!
//! A challenge is minted by a verifier and comes back to it through the
//! device, so every byte of it is attacker-controlled on the way in. This
//! module only fixes the layout; the verifier owns the MAC key and checks it.
//!
//! Layout (65 bytes): version `1`, issued-at and expires-at as big-endian
//! Unix milliseconds, 16 random bytes, then HMAC-SHA256 over the first 33
//! bytes.

use ring::digest;
use thiserror::Error;

/// Length of an encoded challenge.
pub const CHALLENGE_LEN: usize = 65;
/// Length of the part the MAC covers.
pub const CHALLENGE_MAC_INPUT_LEN: usize = 33;
const CHALLENGE_VERSION: u8 = 1;
const NONCE_DOMAIN: &[u8] = b"chipward/evidence-nonce/v1";
const HOST_DOMAIN: &[u8] = b"chipward/host-quote-nonce/v1";

/// A decoded challenge; its MAC is not yet checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Unix milliseconds when the verifier minted it.
    pub issued_at_ms: i64,
    /// Unix milliseconds after which it is refused.
    pub expires_at_ms: i64,
    /// Random bytes that make it unique.
    pub random: [u8; 16],
    /// HMAC-SHA256 over the first [`CHALLENGE_MAC_INPUT_LEN`] encoded bytes.
    pub mac: [u8; 32],
}

/// A challenge that is not in the layout above.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeError {
    /// Not exactly [`CHALLENGE_LEN`] bytes.
    #[error("challenge must be {CHALLENGE_LEN} bytes, got {0}")]
    Length(usize),
    /// A version this code does not know.
    #[error("unknown challenge version {0}")]
    Version(u8),
}

impl Challenge {
    /// The bytes the MAC covers.
    pub fn mac_input(&self) -> [u8; CHALLENGE_MAC_INPUT_LEN] {
        let mut out = [0u8; CHALLENGE_MAC_INPUT_LEN];
        out[0] = CHALLENGE_VERSION;
        out[1..9].copy_from_slice(&self.issued_at_ms.to_be_bytes());
        out[9..17].copy_from_slice(&self.expires_at_ms.to_be_bytes());
        out[17..33].copy_from_slice(&self.random);
        out
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.mac_input().to_vec();
        out.extend_from_slice(&self.mac);
        out
    }

    /// Splits wire bytes into fields without judging them.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChallengeError> {
        let bytes: &[u8; CHALLENGE_LEN] = bytes
            .try_into()
            .map_err(|_| ChallengeError::Length(bytes.len()))?;
        if bytes[0] != CHALLENGE_VERSION {
            return Err(ChallengeError::Version(bytes[0]));
        }
        let field = |range: std::ops::Range<usize>| -> [u8; 8] {
            bytes[range].try_into().expect("range is 8 bytes long")
        };
        Ok(Self {
            issued_at_ms: i64::from_be_bytes(field(1..9)),
            expires_at_ms: i64::from_be_bytes(field(9..17)),
            random: bytes[17..33].try_into().expect("range is 16 bytes long"),
            mac: bytes[33..65].try_into().expect("range is 32 bytes long"),
        })
    }
}

/// The 32-byte nonce a device puts into its evidence: SHA-256 over a domain
/// label and the length-prefixed challenge, tenant and site id. Swapping the
/// claimed tenant or site after signing changes the nonce, so the evidence
/// no longer matches.
pub fn evidence_nonce(challenge: &[u8], tenant: &str, site_id: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(NONCE_DOMAIN);
    for part in [challenge, tenant.as_bytes(), site_id.as_bytes()] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        ctx.update(&len.to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The nonce a host's TPM quote carries when it travels with a chip's
/// evidence: SHA-256 over a domain label and the chip's evidence nonce, so
/// both answer one challenge for one tenant and site, and neither can stand
/// in for the other.
pub fn host_quote_nonce(evidence_nonce: &[u8; 32]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(HOST_DOMAIN);
    ctx.update(evidence_nonce);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Challenge {
        Challenge {
            issued_at_ms: 1_000,
            expires_at_ms: 61_000,
            random: [7; 16],
            mac: [9; 32],
        }
    }

    #[test]
    fn challenge_round_trips() {
        let bytes = sample().encode();
        assert_eq!(bytes.len(), CHALLENGE_LEN);
        assert_eq!(&bytes[1..9], &1_000i64.to_be_bytes());
        assert_eq!(Challenge::decode(&bytes), Ok(sample()));
    }

    #[test]
    fn rejects_challenge_of_wrong_length_or_version() {
        let mut bytes = sample().encode();
        assert_eq!(
            Challenge::decode(&bytes[..64]),
            Err(ChallengeError::Length(64))
        );
        bytes[0] = 2;
        assert_eq!(Challenge::decode(&bytes), Err(ChallengeError::Version(2)));
    }

    #[test]
    fn nonce_matches_independent_sha256_and_binds_every_part() {
        // Worked by hand: the domain, then each part behind a 4-byte length.
        let mut manual = NONCE_DOMAIN.to_vec();
        for part in [&b"chal"[..], b"acme", b"fra-1"] {
            manual.extend_from_slice(&(part.len() as u32).to_be_bytes());
            manual.extend_from_slice(part);
        }
        let expected = digest::digest(&digest::SHA256, &manual);
        let nonce = evidence_nonce(b"chal", "acme", "fra-1");
        assert_eq!(&nonce[..], expected.as_ref());

        assert_ne!(nonce, evidence_nonce(b"chal", "acmf", "fra-1"));
        assert_ne!(nonce, evidence_nonce(b"chal", "acme", "fra-2"));
        let host = host_quote_nonce(&nonce);
        let manual_host = digest::digest(&digest::SHA256, &[HOST_DOMAIN, &nonce[..]].concat());
        assert_eq!(&host[..], manual_host.as_ref());
        assert_ne!(host, nonce);

        // Lengths keep "ab"+"c" apart from "a"+"bc".
        assert_ne!(
            evidence_nonce(b"x", "ab", "c"),
            evidence_nonce(b"x", "a", "bc")
        );
    }
}
