//! Private key types for the Chipward PKI, their identifiers, and owner-only key files.
//!
//! Owns [`P384Key`] (chip identity and alias keys, CA keys) and [`Ed25519Key`] (the
//! issuer's token-signing key and the verifier's result-signing key). Both keep their
//! PKCS#8 bytes in [`Zeroizing`] buffers, print no key material through `Debug`, and
//! cannot be cloned, compared or serialised.
//!
//! Attacker-controlled input: PKCS#8 bytes handed to `from_pkcs8_der` (read from disk or
//! another process) are parsed and checked by ring. Messages passed to the signing
//! functions are signed as given; deciding what is safe to sign is the caller's job.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use zeroize::Zeroizing;

use crate::pem;

/// DER prefix of a P-384 SubjectPublicKeyInfo: `SEQUENCE { SEQUENCE { id-ecPublicKey,
/// secp384r1 }, BIT STRING (0 unused bits) }`, followed by the 97-byte uncompressed point.
const P384_SPKI_PREFIX: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

/// Length of an uncompressed P-384 point (`0x04 || x || y`).
const P384_POINT_LEN: usize = 97;

/// A failure to create, load or use a private key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The system random number generator failed while generating a key.
    #[error("{algorithm} key generation failed")]
    Generate {
        /// Which kind of key was being generated.
        algorithm: &'static str,
    },
    /// The PKCS#8 bytes were rejected (wrong algorithm, wrong curve, or malformed).
    #[error("{algorithm} pkcs#8 key rejected: {reason}")]
    Rejected {
        /// Which kind of key was expected.
        algorithm: &'static str,
        /// ring's reason for the rejection (contains no key material).
        reason: String,
    },
    /// Signing failed inside ring.
    #[error("{algorithm} signing failed")]
    Sign {
        /// Which kind of key was signing.
        algorithm: &'static str,
    },
}

/// An ECDSA P-384 private key: chip identity and alias keys, and the dev PKI's CA keys.
///
/// Holds the PKCS#8 document in a zeroizing buffer. `Debug` prints only the SHA-256 of the
/// public key's SubjectPublicKeyInfo.
pub struct P384Key {
    pkcs8: Zeroizing<Vec<u8>>,
    // Limitation: ring's key pair does not wipe its private scalar on drop; only the
    // PKCS#8 copy held here is zeroized.
    pair: EcdsaKeyPair,
}

impl P384Key {
    /// Generates a fresh P-384 key from the system random number generator.
    ///
    /// ```
    /// let key = chipward_certs::P384Key::generate()?;
    /// assert_eq!(key.sign_fixed(b"nonce")?.len(), 96);
    /// # Ok::<(), chipward_certs::KeyError>(())
    /// ```
    pub fn generate() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Generate { algorithm: "p-384" })?;
        // Limitation: ring's PKCS#8 `Document` is not zeroized when dropped.
        Self::from_pkcs8_der(document.as_ref())
    }

    /// Loads a P-384 key from a PKCS#8 (RFC 5958) DER document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, der, &rng).map_err(|e| {
                KeyError::Rejected {
                    algorithm: "p-384",
                    reason: e.to_string(),
                }
            })?;
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            pair,
        })
    }

    /// The PKCS#8 DER document, for writing to a key file or handing to rcgen.
    pub fn pkcs8_der(&self) -> &Zeroizing<Vec<u8>> {
        &self.pkcs8
    }

    /// The public key as a DER SubjectPublicKeyInfo (id-ecPublicKey, secp384r1).
    ///
    /// ```
    /// let key = chipward_certs::P384Key::generate()?;
    /// assert_eq!(key.public_key_spki_der().len(), 120);
    /// # Ok::<(), chipward_certs::KeyError>(())
    /// ```
    pub fn public_key_spki_der(&self) -> Vec<u8> {
        let point = self.pair.public_key().as_ref();
        debug_assert_eq!(point.len(), P384_POINT_LEN);

        let mut spki = Vec::with_capacity(P384_SPKI_PREFIX.len() + point.len());
        spki.extend_from_slice(&P384_SPKI_PREFIX);
        spki.extend_from_slice(point);
        spki
    }

    /// Signs `msg` with ECDSA P-384 over SHA-384; returns `r || s`, 96 bytes.
    pub fn sign_fixed(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let signature = self
            .pair
            .sign(&rng, msg)
            .map_err(|_| KeyError::Sign { algorithm: "p-384" })?;
        Ok(signature.as_ref().to_vec())
    }
}

impl fmt::Debug for P384Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P384Key")
            .field(
                "spki_sha256",
                &hex::encode(spki_sha256(&self.public_key_spki_der())),
            )
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// An Ed25519 private key: the issuer's token-signing key and the verifier's
/// result-signing key.
///
/// Holds the PKCS#8 document in a zeroizing buffer. `Debug` prints only the key id.
pub struct Ed25519Key {
    pkcs8: Zeroizing<Vec<u8>>,
    // Limitation: ring's key pair does not wipe its seed on drop; only the PKCS#8 copy
    // held here is zeroized.
    pair: Ed25519KeyPair,
}

impl Ed25519Key {
    /// Generates a fresh Ed25519 key from the system random number generator.
    ///
    /// ```
    /// let key = chipward_certs::Ed25519Key::generate()?;
    /// assert_eq!(key.sign(b"claims").len(), 64);
    /// assert_eq!(key.key_id(), chipward_certs::key_id_for(&key.public_key()));
    /// # Ok::<(), chipward_certs::KeyError>(())
    /// ```
    pub fn generate() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate {
            algorithm: "ed25519",
        })?;
        // Limitation: ring's PKCS#8 `Document` is not zeroized when dropped.
        Self::from_pkcs8_der(document.as_ref())
    }

    /// Loads an Ed25519 key from a PKCS#8 DER document.
    ///
    /// Accepts both PKCS#8 v1 (seed only, as OpenSSL writes) and v2 (seed and public key,
    /// as ring writes); when the public key is present it must match the seed.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| KeyError::Rejected {
                algorithm: "ed25519",
                reason: e.to_string(),
            })?;
        Ok(Self {
            pkcs8: Zeroizing::new(der.to_vec()),
            pair,
        })
    }

    /// The PKCS#8 DER document, for writing to a key file.
    pub fn pkcs8_der(&self) -> &Zeroizing<Vec<u8>> {
        &self.pkcs8
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut public = [0u8; 32];
        public.copy_from_slice(self.pair.public_key().as_ref());
        public
    }

    /// The key id: [`key_id_for`] of this key's public key.
    pub fn key_id(&self) -> String {
        key_id_for(&self.public_key())
    }

    /// Signs `msg`; returns the 64-byte Ed25519 signature.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair.sign(msg).as_ref().to_vec()
    }
}

impl fmt::Debug for Ed25519Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ed25519Key")
            .field("key_id", &self.key_id())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// The key id of an Ed25519 public key: lowercase hex of the first 8 bytes of its SHA-256.
///
/// ```
/// // SHA-256 of 32 zero bytes starts 66 68 7a ad f8 62 bd 77.
/// assert_eq!(chipward_certs::key_id_for(&[0u8; 32]), "66687aadf862bd77");
/// ```
pub fn key_id_for(ed25519_public: &[u8; 32]) -> String {
    let hash = digest(&SHA256, ed25519_public);
    hex::encode(&hash.as_ref()[..8])
}

/// SHA-256 of a DER SubjectPublicKeyInfo. A chip's identity is this hash of its
/// device-identity key's SPKI.
///
/// ```
/// let key = chipward_certs::P384Key::generate()?;
/// let id = chipward_certs::spki_sha256(&key.public_key_spki_der());
/// assert_eq!(id.len(), 32);
/// # Ok::<(), chipward_certs::KeyError>(())
/// ```
pub fn spki_sha256(spki_der: &[u8]) -> [u8; 32] {
    sha256(spki_der)
}

/// SHA-256 of `bytes`: the digest every Chipward record names things by.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let hash = digest(&SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

/// Writes `der` as a PEM file with label `pem_label`, readable only by its owner.
///
/// The file is created with mode 0600 from the start (never widened later) and must not
/// exist yet: an existing file or a symlink at `path` is an `AlreadyExists` error, so a key
/// is never silently replaced and a planted link is never followed.
pub fn write_private_key_file(path: &Path, pem_label: &str, der: &[u8]) -> io::Result<()> {
    let text = Zeroizing::new(pem::encode_block(pem_label, der));

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// True when any 6-byte window of `secret` shows up in `text` as hex (either case) or
    /// as Rust's decimal list rendering of bytes.
    fn leaks(text: &str, secret: &[u8]) -> bool {
        let lower = text.to_lowercase();
        secret.windows(6).any(|w| {
            let as_list = format!("{w:?}");
            lower.contains(&hex::encode(w)) || text.contains(as_list.trim_matches(['[', ']']))
        })
    }

    #[test]
    fn p384_debug_shows_no_key_bytes() {
        let key = P384Key::generate().unwrap();
        let shown = format!("{key:?} {key:#?}");

        assert!(shown.contains("<redacted>"));
        assert!(!leaks(&shown, key.pkcs8_der()));
    }

    #[test]
    fn ed25519_debug_shows_no_key_bytes() {
        let key = Ed25519Key::generate().unwrap();
        let shown = format!("{key:?} {key:#?}");

        assert!(shown.contains(&key.key_id()));
        assert!(!leaks(&shown, key.pkcs8_der()));
    }

    #[test]
    fn p384_round_trips_through_pkcs8() {
        let key = P384Key::generate().unwrap();
        let again = P384Key::from_pkcs8_der(key.pkcs8_der()).unwrap();

        assert_eq!(key.public_key_spki_der(), again.public_key_spki_der());
    }

    #[test]
    fn p384_spki_matches_rcgen_encoding() {
        let key = P384Key::generate().unwrap();
        let pkcs8 = key.pkcs8_der().as_slice();
        let other = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &pkcs8.into(),
            &rcgen::PKCS_ECDSA_P384_SHA384,
        )
        .unwrap();

        assert_eq!(
            key.public_key_spki_der(),
            rcgen::PublicKeyData::subject_public_key_info(&other)
        );
    }

    #[test]
    fn p384_signature_verifies_with_ring() {
        let key = P384Key::generate().unwrap();
        let sig = key.sign_fixed(b"evidence").unwrap();
        let point = &key.public_key_spki_der()[P384_SPKI_PREFIX.len()..];
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P384_SHA384_FIXED,
            point,
        );

        assert_eq!(sig.len(), 96);
        assert!(public.verify(b"evidence", &sig).is_ok());
        assert!(public.verify(b"evidencf", &sig).is_err());
    }

    #[test]
    fn rejects_ed25519_pkcs8_as_p384() {
        let ed = Ed25519Key::generate().unwrap();
        let err = P384Key::from_pkcs8_der(ed.pkcs8_der()).unwrap_err();

        assert!(matches!(
            err,
            KeyError::Rejected {
                algorithm: "p-384",
                ..
            }
        ));
    }

    #[test]
    fn rejects_p384_pkcs8_as_ed25519() {
        let p = P384Key::generate().unwrap();
        let err = Ed25519Key::from_pkcs8_der(p.pkcs8_der()).unwrap_err();

        assert!(matches!(
            err,
            KeyError::Rejected {
                algorithm: "ed25519",
                ..
            }
        ));
    }

    #[test]
    fn ed25519_signature_verifies_with_ring() {
        let key = Ed25519Key::generate().unwrap();
        let again = Ed25519Key::from_pkcs8_der(key.pkcs8_der()).unwrap();
        let sig = again.sign(b"token");
        let public =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.public_key());

        assert_eq!(sig.len(), 64);
        assert!(public.verify(b"token", &sig).is_ok());
    }

    #[test]
    fn key_id_is_first_eight_bytes_of_sha256() {
        // SHA-256("") is e3b0c442...; SHA-256 of 32 0xff bytes starts af9613760f72635f.
        assert_eq!(key_id_for(&[0xff; 32]), "af9613760f72635f");
        assert_eq!(hex::encode(spki_sha256(b"")).get(..8), Some("e3b0c442"));
    }

    #[test]
    fn private_key_file_is_owner_only_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_private_key_file(&path, "PRIVATE KEY", b"\x01\x02").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let again = write_private_key_file(&path, "PRIVATE KEY", b"\x03").unwrap_err();

        assert_eq!(mode, 0o600);
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(*pem::parse_private_key(&text).unwrap(), vec![1u8, 2]);
    }
}
