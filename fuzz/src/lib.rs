//! What Chipward's fuzz targets share with each other and with the seed
//! writer: fixed signing keys, a fixed clock, and the two framings that let
//! one fuzz input stand for a signed object or for a certificate chain.
//!
//! Nothing here is secret: the Ed25519 keys come from constant seeds so that
//! the committed seeds verify under the same keys every run. The fixed trust
//! anchors and the chip the landmark records measure live in `data/` (see
//! its README); the targets that need them include those files themselves,
//! so that the seed writer, which makes them, builds without them.
//!
//! [`screening`] holds what the two restricted-party list targets check.

pub mod screening;

use chipward_proto::cose::{self, TrustedKeys};
use ring::signature::{Ed25519KeyPair, KeyPair};

/// The clock every target validates against: 2027-01-01T00:00:00Z, inside
/// the validity of the committed test roots and their chains.
pub const NOW_UNIX: i64 = 1_798_761_600;
/// [`NOW_UNIX`] in milliseconds.
pub const NOW_MS: i64 = NOW_UNIX * 1000;

/// Key id of the issuer key that signs license tokens, revocation lists and
/// AK bindings in the targets.
pub const ISSUER_KEY_ID: &str = "fuzz-issuer";
/// Key id of the verifier key that signs attestation results.
pub const VERIFIER_KEY_ID: &str = "fuzz-verifier";

/// The one landmark the landmark target trusts.
pub const LANDMARK_ID: &str = "fuzz-lm-1";
/// Its enrolled position, degrees north and east.
pub const LANDMARK_POSITION: (f64, f64) = (50.1109, 8.6821);
/// The appraisal binding (evidence nonce) the landmark records are checked
/// against.
pub const LANDMARK_BINDING: [u8; 32] = [0x42; 32];
/// Oldest record the landmark target accepts, milliseconds.
pub const LANDMARK_MAX_AGE_MS: i64 = 60_000;

/// The qualifying data (verifier nonce) of the committed TPM quotes, hex.
pub const QUOTE_NONCE_HEX: &str =
    "5ca1ab1e0ddba11c0ffee0005ca1ab1e0ddba11c0ffee0005ca1ab1e0ddba11c";

/// Most certificates [`split_certs`] makes of one input.
pub const MAX_FRAMED_CERTS: usize = 4;

/// First byte of an envelope input: the rest is the envelope as received.
pub const ENVELOPE_AS_IS: u8 = 0;
/// First byte of an envelope input: the rest is a payload the target signs.
pub const ENVELOPE_SEAL: u8 = 1;

/// The issuer's Ed25519 key.
pub fn issuer_key() -> Ed25519KeyPair {
    fixed_key(0x11)
}

/// The verifier's Ed25519 key.
pub fn verifier_key() -> Ed25519KeyPair {
    fixed_key(0x22)
}

/// The landmark's Ed25519 key.
pub fn landmark_key() -> Ed25519KeyPair {
    fixed_key(0x33)
}

/// The public half of `key`.
pub fn public(key: &Ed25519KeyPair) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(key.public_key().as_ref());
    out
}

/// A set that trusts `key` under `key_id` and nothing else.
pub fn trusted(key: &Ed25519KeyPair, key_id: &str) -> TrustedKeys {
    TrustedKeys::new().with(key_id, public(key))
}

/// Seals `payload` in a COSE_Sign1 envelope signed by `key` under `key_id`.
pub fn seal(payload: Vec<u8>, key: &Ed25519KeyPair, key_id: &str) -> Vec<u8> {
    cose::seal(payload, key_id, |message| {
        key.sign(message).as_ref().to_vec()
    })
}

/// The envelope an input stands for. The first byte chooses: an even byte
/// ([`ENVELOPE_AS_IS`]) takes the rest as envelope bytes, exactly as a peer
/// would send them; an odd byte ([`ENVELOPE_SEAL`]) takes the rest as a
/// payload and seals it with `key`, so the fuzzer also reaches the payload
/// decoder behind a signature it could never forge. `None` for an empty
/// input.
pub fn envelope(data: &[u8], key: &Ed25519KeyPair, key_id: &str) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    if mode & 1 == ENVELOPE_AS_IS {
        Some(rest.to_vec())
    } else {
        Some(seal(rest.to_vec(), key, key_id))
    }
}

/// Splits an input into at most [`MAX_FRAMED_CERTS`] certificates: each is a
/// big-endian 16-bit length followed by that many bytes. A length longer
/// than what is left takes what is left, a single leftover byte is a
/// certificate of its own, and bytes after the last certificate are
/// ignored.
pub fn split_certs(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && out.len() < MAX_FRAMED_CERTS {
        let Some((len, body)) = rest.split_first_chunk::<2>() else {
            out.push(rest.to_vec());
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(body.len());
        out.push(body[..len].to_vec());
        rest = &body[len..];
    }
    out
}

/// The framing [`split_certs`] reads.
///
/// # Panics
///
/// If a certificate is 64 KiB or longer, or there are more than
/// [`MAX_FRAMED_CERTS`]: seeds are small.
pub fn frame_certs(certs: &[Vec<u8>]) -> Vec<u8> {
    assert!(
        certs.len() <= MAX_FRAMED_CERTS,
        "too many certificates to frame"
    );
    let mut out = Vec::new();
    for cert in certs {
        let len = u16::try_from(cert.len()).expect("seed certificates are under 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(cert);
    }
    out
}

fn fixed_key(byte: u8) -> Ed25519KeyPair {
    Ed25519KeyPair::from_seed_unchecked(&[byte; 32]).expect("a 32-byte seed is a valid key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_splits_certificates() {
        let certs = vec![vec![1, 2, 3], vec![], vec![4; 300]];
        let framed = frame_certs(&certs);
        assert_eq!(&framed[..5], &[0, 3, 1, 2, 3]);
        assert_eq!(split_certs(&framed), certs);
    }

    #[test]
    fn splits_short_and_overlong_inputs() {
        assert_eq!(split_certs(&[7]), vec![vec![7]]);
        assert_eq!(split_certs(&[0, 9, 1, 2]), vec![vec![1, 2]]);
        let four = frame_certs(&[vec![1], vec![2], vec![3], vec![4]]);
        let with_fifth = [four, vec![0, 1, 5]].concat();
        assert_eq!(split_certs(&with_fifth).len(), MAX_FRAMED_CERTS);
    }
}
