//! The two TPM public areas a host sends to begin enrolment, held to the
//! profiles credential activation needs (TPM 2.0 Part 2, section 8.3,
//! TPMA_OBJECT; Part 1, section 24).
//!
//! Both TPM2B_PUBLIC byte strings are attacker-controlled; they are parsed
//! by `chipward_proto::tpm::public` and then checked here, in order:
//!
//! EK ([`endorsement_key`]):
//! 1. It parses, with no trailing bytes.
//! 2. It is an RSA key: ECC EKs are refused as unsupported.
//! 3. nameAlg is SHA-256: the name the AK is bound under is a SHA-256 name.
//! 4. fixedTPM, fixedParent, restricted and decrypt are set, sign is clear:
//!    a storage-type key that never leaves its TPM, which is what
//!    TPM2_ActivateCredential decrypts the seed with.
//! 5. The modulus has at least 2048 bits.
//! 6. ([`EkPublic::certified_by`]) Its modulus and exponent equal those in
//!    the validated EK certificate, leading zeros aside.
//!
//! AK ([`attestation_key`]):
//! 1. It parses, with no trailing bytes.
//! 2. nameAlg is SHA-256.
//! 3. fixedTPM, fixedParent, sensitiveDataOrigin, restricted and sign are
//!    set, decrypt is clear: a key the TPM generated and cannot export, and
//!    that signs only what the TPM itself produced (quotes), never a digest
//!    the host chose.
//! 4. An RSA key of at least 2048 bits, or an ECC key on NIST P-256 or P-384.
//!
//! The attributes are only claims until credential activation succeeds:
//! the AK's name hashes its whole public area, so a TPM that releases the
//! credential holds a key with exactly these attributes next to the EK.

// Limitation: ECC endorsement keys are refused; sealing to them needs the
// ECDH seed exchange, which `chipward_certs::tpm_credential` does not do.

use std::fmt;

use chipward_certs::chain::ValidatedEkChain;
use chipward_certs::tpm_credential::RsaEk;
use chipward_proto::tpm::public::{
    ATTR_DECRYPT, ATTR_FIXED_PARENT, ATTR_FIXED_TPM, ATTR_RESTRICTED, ATTR_SENSITIVE_DATA_ORIGIN,
    ATTR_SIGN, PublicKey, TpmPublic,
};
use chipward_proto::tpm::{TpmError, alg, curve};
use thiserror::Error;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as CertKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Fewest modulus bits an RSA EK or AK may have.
pub const MIN_RSA_BITS: usize = 2048;

/// An objectAttributes bit, its name in Part 2 and whether it must be set.
struct Rule {
    bit: u32,
    name: &'static str,
    set: bool,
}

const fn must(bit: u32, name: &'static str) -> Rule {
    Rule {
        bit,
        name,
        set: true,
    }
}

const fn never(bit: u32, name: &'static str) -> Rule {
    Rule {
        bit,
        name,
        set: false,
    }
}

const EK_RULES: [Rule; 5] = [
    must(ATTR_FIXED_TPM, "fixedTPM"),
    must(ATTR_FIXED_PARENT, "fixedParent"),
    must(ATTR_RESTRICTED, "restricted"),
    must(ATTR_DECRYPT, "decrypt"),
    never(ATTR_SIGN, "sign"),
];

const AK_RULES: [Rule; 6] = [
    must(ATTR_FIXED_TPM, "fixedTPM"),
    must(ATTR_FIXED_PARENT, "fixedParent"),
    must(ATTR_SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
    must(ATTR_RESTRICTED, "restricted"),
    must(ATTR_SIGN, "sign"),
    never(ATTR_DECRYPT, "decrypt"),
];

/// Which of the host's keys a check was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRole {
    /// The endorsement key.
    Ek,
    /// The attestation key.
    Ak,
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ek => "ek",
            Self::Ak => "ak",
        })
    }
}

/// Why a public area was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicAreaError {
    /// The bytes are not one TPM2B_PUBLIC of a kind the parser knows.
    #[error("{role} public area is malformed")]
    Malformed {
        /// Which key.
        role: KeyRole,
        /// What the parser said.
        #[source]
        source: TpmError,
    },
    /// The name algorithm is not SHA-256.
    #[error("{role} public area: name algorithm must be sha256, got {}", alg::name(*found))]
    NameAlg {
        /// Which key.
        role: KeyRole,
        /// The nameAlg given.
        found: u16,
    },
    /// An attribute the profile requires is clear.
    #[error("{role} public area: attribute {attribute} must be set")]
    MissingAttribute {
        /// Which key.
        role: KeyRole,
        /// The attribute's name in TPM 2.0 Part 2.
        attribute: &'static str,
    },
    /// An attribute the profile forbids is set.
    #[error("{role} public area: attribute {attribute} must not be set")]
    ForbiddenAttribute {
        /// Which key.
        role: KeyRole,
        /// The attribute's name in TPM 2.0 Part 2.
        attribute: &'static str,
    },
    /// An RSA modulus shorter than [`MIN_RSA_BITS`].
    #[error("{role} public area: rsa modulus of {bits} bits, at least 2048 required")]
    WeakRsa {
        /// Which key.
        role: KeyRole,
        /// Its length in bits.
        bits: usize,
    },
    /// An ECC AK on a curve other than NIST P-256 or P-384.
    #[error("ak public area: ecc curve 0x{curve:04x} is not nist p-256 or p-384")]
    Curve {
        /// The TPM_ECC_CURVE given.
        curve: u16,
    },
    /// An ECC EK, which this issuer cannot seal a credential to.
    #[error("ek public area: ecc endorsement keys are unsupported")]
    EccEk,
    /// The EK public area is not the key the EK certificate certifies.
    #[error("ek public area does not match the ek certificate")]
    EkMismatch,
}

impl PublicAreaError {
    /// The key the failure is about.
    pub fn role(&self) -> KeyRole {
        match self {
            Self::Malformed { role, .. }
            | Self::NameAlg { role, .. }
            | Self::MissingAttribute { role, .. }
            | Self::ForbiddenAttribute { role, .. }
            | Self::WeakRsa { role, .. } => *role,
            Self::Curve { .. } => KeyRole::Ak,
            Self::EccEk | Self::EkMismatch => KeyRole::Ek,
        }
    }
}

/// An EK public area in the profile, not yet tied to a certificate; only
/// [`endorsement_key`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EkPublic {
    rsa: RsaEk,
}

/// An EK public area that holds the key of a validated EK certificate;
/// only [`EkPublic::certified_by`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedEk {
    rsa: RsaEk,
}

/// An AK public area in the profile; only [`attestation_key`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationKey {
    public: Vec<u8>,
    name: Vec<u8>,
}

/// Parses and checks an EK's TPM2B_PUBLIC; see the module notes.
pub fn endorsement_key(tpm2b_public: &[u8]) -> Result<EkPublic, PublicAreaError> {
    let role = KeyRole::Ek;

    // 1-2. Parse; RSA only.
    let public = parse(role, tpm2b_public)?;
    let (modulus, exponent) = match public.key {
        PublicKey::Rsa { modulus, exponent } => (modulus, exponent),
        PublicKey::Ecc { .. } => return Err(PublicAreaError::EccEk),
    };

    // 3-4. nameAlg and attributes.
    name_alg(role, public.name_alg)?;
    attributes(role, public.attributes, &EK_RULES)?;

    // 5. Key size.
    rsa_size(role, &modulus)?;
    Ok(EkPublic {
        rsa: RsaEk { modulus, exponent },
    })
}

/// Parses and checks an AK's TPM2B_PUBLIC; see the module notes.
pub fn attestation_key(tpm2b_public: &[u8]) -> Result<AttestationKey, PublicAreaError> {
    let role = KeyRole::Ak;

    // 1-3. Parse, nameAlg, attributes.
    let public = parse(role, tpm2b_public)?;
    name_alg(role, public.name_alg)?;
    attributes(role, public.attributes, &AK_RULES)?;

    // 4. Key type and size.
    match &public.key {
        PublicKey::Rsa { modulus, .. } => rsa_size(role, modulus)?,
        PublicKey::Ecc { curve, .. } => {
            if ![curve::NIST_P256, curve::NIST_P384].contains(curve) {
                return Err(PublicAreaError::Curve { curve: *curve });
            }
        }
    }

    let name = public
        .name()
        .map_err(|source| PublicAreaError::Malformed { role, source })?;
    Ok(AttestationKey {
        public: tpm2b_public.to_vec(),
        name,
    })
}

impl EkPublic {
    /// Step 6: ties this public area to the EK certificate of `chain`,
    /// comparing modulus and exponent without their leading zeros.
    // Limitation: the host_keys fuzz target stops before this step, which
    // needs a validated EK chain; unit tests cover the comparison.
    pub fn certified_by(self, chain: &ValidatedEkChain) -> Result<CertifiedEk, PublicAreaError> {
        let (modulus, exponent) =
            certified_rsa(chain.ek_spki_der()).ok_or(PublicAreaError::EkMismatch)?;
        let exponent_bytes = self.rsa.exponent.to_be_bytes();
        if strip_zeros(&self.rsa.modulus) != modulus || strip_zeros(&exponent_bytes) != exponent {
            return Err(PublicAreaError::EkMismatch);
        }
        Ok(CertifiedEk { rsa: self.rsa })
    }
}

impl CertifiedEk {
    /// The RSA key to seal the credential to.
    pub fn rsa(&self) -> &RsaEk {
        &self.rsa
    }
}

impl AttestationKey {
    /// The TPM2B_PUBLIC, exactly as received.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// The TPM name: 0x000b then SHA-256 of the TPMT_PUBLIC.
    pub fn name(&self) -> &[u8] {
        &self.name
    }
}

fn parse(role: KeyRole, tpm2b_public: &[u8]) -> Result<TpmPublic, PublicAreaError> {
    TpmPublic::decode_sized(tpm2b_public)
        .map_err(|source| PublicAreaError::Malformed { role, source })
}

fn name_alg(role: KeyRole, found: u16) -> Result<(), PublicAreaError> {
    if found == alg::SHA256 {
        Ok(())
    } else {
        Err(PublicAreaError::NameAlg { role, found })
    }
}

/// Checks `rules` in order and reports the first one broken.
fn attributes(role: KeyRole, attributes: u32, rules: &[Rule]) -> Result<(), PublicAreaError> {
    for rule in rules {
        let set = attributes & rule.bit != 0;
        if set && !rule.set {
            return Err(PublicAreaError::ForbiddenAttribute {
                role,
                attribute: rule.name,
            });
        }
        if !set && rule.set {
            return Err(PublicAreaError::MissingAttribute {
                role,
                attribute: rule.name,
            });
        }
    }
    Ok(())
}

fn rsa_size(role: KeyRole, modulus: &[u8]) -> Result<(), PublicAreaError> {
    let bits = match strip_zeros(modulus) {
        [] => 0,
        [first, rest @ ..] => rest.len() * 8 + (8 - first.leading_zeros() as usize),
    };
    if bits < MIN_RSA_BITS {
        return Err(PublicAreaError::WeakRsa { role, bits });
    }
    Ok(())
}

/// The RSA modulus and exponent of a certificate's SubjectPublicKeyInfo,
/// without leading zeros; `None` for any other key or unreadable bytes.
fn certified_rsa(spki_der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (rest, spki) = SubjectPublicKeyInfo::from_der(spki_der).ok()?;
    if !rest.is_empty() {
        return None;
    }
    match spki.parsed().ok()? {
        CertKey::RSA(rsa) => Some((
            strip_zeros(rsa.modulus).to_vec(),
            strip_zeros(rsa.exponent).to_vec(),
        )),
        _ => None,
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use chipward_certs::keys::P384Key;
    use ring::digest::{SHA256, digest};

    use super::*;

    /// objectAttributes bit: userWithAuth.
    const USER_WITH_AUTH: u32 = 1 << 6;
    /// objectAttributes bit: adminWithPolicy.
    const ADMIN_WITH_POLICY: u32 = 1 << 7;
    /// The TCG EK Credential Profile's default RSA EK template attributes.
    const EK_ATTRS: u32 = ATTR_FIXED_TPM
        | ATTR_FIXED_PARENT
        | ATTR_SENSITIVE_DATA_ORIGIN
        | ADMIN_WITH_POLICY
        | ATTR_RESTRICTED
        | ATTR_DECRYPT;
    /// A typical AK: what tpm2_createak and tss-esapi set.
    const AK_ATTRS: u32 = ATTR_FIXED_TPM
        | ATTR_FIXED_PARENT
        | ATTR_SENSITIVE_DATA_ORIGIN
        | USER_WITH_AUTH
        | ATTR_RESTRICTED
        | ATTR_SIGN;

    fn sized(tpmt: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(tpmt.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(tpmt);
        out
    }

    /// An RSA TPM2B_PUBLIC, marshalled by hand (Part 2, tables 185 and 190):
    /// AES-128-CFB and no scheme when it decrypts, else RSASSA-SHA256.
    fn rsa(attributes: u32, name_alg: u16, modulus: &[u8]) -> Vec<u8> {
        let mut t = alg::RSA.to_be_bytes().to_vec();
        t.extend_from_slice(&name_alg.to_be_bytes());
        t.extend_from_slice(&attributes.to_be_bytes());
        t.extend_from_slice(&[0, 0]); // authPolicy
        if attributes & ATTR_DECRYPT != 0 {
            t.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43]);
            t.extend_from_slice(&alg::NULL.to_be_bytes());
        } else {
            t.extend_from_slice(&alg::NULL.to_be_bytes());
            t.extend_from_slice(&[0x00, 0x14, 0x00, 0x0B]);
        }
        let bits = u16::try_from(modulus.len() * 8).unwrap();
        t.extend_from_slice(&bits.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 0]); // exponent 65537
        t.extend_from_slice(&sized(modulus));
        sized(&t)
    }

    /// An ECDSA-SHA256 TPM2B_PUBLIC on `curve` with `len`-byte coordinates.
    fn ecc(attributes: u32, curve_id: u16, len: usize) -> Vec<u8> {
        let mut t = alg::ECC.to_be_bytes().to_vec();
        t.extend_from_slice(&alg::SHA256.to_be_bytes());
        t.extend_from_slice(&attributes.to_be_bytes());
        t.extend_from_slice(&[0, 0]);
        t.extend_from_slice(&alg::NULL.to_be_bytes());
        t.extend_from_slice(&[0x00, 0x18, 0x00, 0x0B]);
        t.extend_from_slice(&curve_id.to_be_bytes());
        t.extend_from_slice(&alg::NULL.to_be_bytes());
        t.extend_from_slice(&sized(&vec![0xAA; len]));
        t.extend_from_slice(&sized(&vec![0xBB; len]));
        sized(&t)
    }

    fn ek(attributes: u32) -> Vec<u8> {
        rsa(attributes, alg::SHA256, &[0xC5; 256])
    }

    fn ak(attributes: u32) -> Vec<u8> {
        ecc(attributes, curve::NIST_P256, 32)
    }

    #[test]
    fn accepts_the_default_rsa_ek_template() {
        let got = endorsement_key(&ek(EK_ATTRS)).unwrap();
        assert_eq!(
            got.rsa,
            RsaEk {
                modulus: vec![0xC5; 256],
                exponent: 65_537
            }
        );
    }

    #[test]
    fn refuses_an_ek_missing_any_required_attribute() {
        let required = [
            (ATTR_FIXED_TPM, "fixedTPM"),
            (ATTR_FIXED_PARENT, "fixedParent"),
            (ATTR_RESTRICTED, "restricted"),
            (ATTR_DECRYPT, "decrypt"),
        ];
        for (bit, attribute) in required {
            assert_eq!(
                endorsement_key(&ek(EK_ATTRS & !bit)),
                Err(PublicAreaError::MissingAttribute {
                    role: KeyRole::Ek,
                    attribute
                })
            );
        }
    }

    #[test]
    fn refuses_an_ek_that_can_sign() {
        let err = endorsement_key(&ek(EK_ATTRS | ATTR_SIGN)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ek public area: attribute sign must not be set"
        );
    }

    #[test]
    fn refuses_an_ek_named_with_another_hash() {
        for name_alg in [alg::SHA1, alg::SHA384] {
            assert_eq!(
                endorsement_key(&rsa(EK_ATTRS, name_alg, &[0xC5; 256])),
                Err(PublicAreaError::NameAlg {
                    role: KeyRole::Ek,
                    found: name_alg
                })
            );
        }
    }

    #[test]
    fn refuses_an_ek_under_2048_bits_counting_without_leading_zeros() {
        let short = rsa(EK_ATTRS, alg::SHA256, &[0xC5; 128]);
        assert_eq!(
            endorsement_key(&short),
            Err(PublicAreaError::WeakRsa {
                role: KeyRole::Ek,
                bits: 1024
            })
        );
        let mut padded = vec![0x00];
        padded.extend_from_slice(&[0x7F; 255]);
        assert_eq!(
            endorsement_key(&rsa(EK_ATTRS, alg::SHA256, &padded)),
            Err(PublicAreaError::WeakRsa {
                role: KeyRole::Ek,
                bits: 2039
            })
        );
    }

    #[test]
    fn refuses_ecc_eks_as_unsupported() {
        let ecc_ek = ecc(EK_ATTRS, curve::NIST_P256, 32);
        assert_eq!(endorsement_key(&ecc_ek), Err(PublicAreaError::EccEk));
    }

    #[test]
    fn accepts_restricted_signing_aks_on_p256_p384_and_rsa() {
        let keys = [
            ak(AK_ATTRS),
            ecc(AK_ATTRS, curve::NIST_P384, 48),
            rsa(AK_ATTRS, alg::SHA256, &[0xC5; 256]),
        ];
        for public in keys {
            let got = attestation_key(&public).unwrap();
            assert_eq!(got.public(), public);
            let mut name = vec![0x00, 0x0B];
            name.extend_from_slice(digest(&SHA256, &public[2..]).as_ref());
            assert_eq!(got.name(), name);
        }
    }

    #[test]
    fn refuses_an_ak_missing_any_required_attribute() {
        let required = [
            (ATTR_FIXED_TPM, "fixedTPM"),
            (ATTR_FIXED_PARENT, "fixedParent"),
            (ATTR_SENSITIVE_DATA_ORIGIN, "sensitiveDataOrigin"),
            (ATTR_RESTRICTED, "restricted"),
            (ATTR_SIGN, "sign"),
        ];
        for (bit, attribute) in required {
            assert_eq!(
                attestation_key(&ak(AK_ATTRS & !bit)),
                Err(PublicAreaError::MissingAttribute {
                    role: KeyRole::Ak,
                    attribute
                })
            );
        }
    }

    #[test]
    fn refuses_an_ak_that_can_decrypt() {
        assert_eq!(
            attestation_key(&ak(AK_ATTRS | ATTR_DECRYPT)),
            Err(PublicAreaError::ForbiddenAttribute {
                role: KeyRole::Ak,
                attribute: "decrypt"
            })
        );
    }

    #[test]
    fn refuses_aks_on_other_curves_weak_rsa_or_other_name_hashes() {
        let p521 = ecc(AK_ATTRS, 0x0005, 66);
        assert_eq!(
            attestation_key(&p521),
            Err(PublicAreaError::Curve { curve: 0x0005 })
        );
        let weak = rsa(AK_ATTRS, alg::SHA256, &[0xC5; 128]);
        assert_eq!(
            attestation_key(&weak),
            Err(PublicAreaError::WeakRsa {
                role: KeyRole::Ak,
                bits: 1024
            })
        );
        let sha1 = rsa(AK_ATTRS, alg::SHA1, &[0xC5; 256]);
        assert!(matches!(
            attestation_key(&sha1),
            Err(PublicAreaError::NameAlg {
                role: KeyRole::Ak,
                ..
            })
        ));
    }

    #[test]
    fn malformed_bytes_are_refused_without_panicking() {
        let good = ak(AK_ATTRS);
        let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        cases.push([good.clone(), vec![0]].concat());
        cases.push(vec![0xFF; 40]);
        for bytes in &cases {
            for (role, result) in [
                (KeyRole::Ek, endorsement_key(bytes).map(|_| ())),
                (KeyRole::Ak, attestation_key(bytes).map(|_| ())),
            ] {
                let err = result.unwrap_err();
                assert!(
                    matches!(err, PublicAreaError::Malformed { role: r, .. } if r == role),
                    "{bytes:02x?}: {err:?}"
                );
            }
        }
    }

    /// DER: tag, definite length, content.
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(u8::try_from(n).unwrap()),
            n => {
                let len = u16::try_from(n).unwrap().to_be_bytes();
                out.extend_from_slice(&[0x82, len[0], len[1]]);
            }
        }
        out.extend_from_slice(content);
        out
    }

    /// An rsaEncryption SubjectPublicKeyInfo (RFC 8017 appendix A.1.1).
    fn rsa_spki(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
        let rsa_encryption = [
            0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01, 0x05, 0x00,
        ];
        let key = der(0x30, &[der(0x02, modulus), der(0x02, exponent)].concat());
        let bits = der(0x03, &[&[0u8][..], &key].concat());
        der(0x30, &[der(0x30, &rsa_encryption), bits].concat())
    }

    #[test]
    fn reads_the_certified_rsa_key_without_leading_zeros() {
        let mut modulus = vec![0x00];
        modulus.extend_from_slice(&[0xC5; 256]);
        let spki = rsa_spki(&modulus, &[0x01, 0x00, 0x01]);
        assert_eq!(
            certified_rsa(&spki),
            Some((vec![0xC5; 256], vec![0x01, 0x00, 0x01]))
        );
    }

    #[test]
    fn finds_no_rsa_key_in_an_ec_key_or_junk() {
        let ec = P384Key::generate().unwrap().public_key_spki_der();
        assert_eq!(certified_rsa(&ec), None);
        assert_eq!(certified_rsa(b"junk"), None);
        let spki = rsa_spki(&[0xC5; 256], &[0x03]);
        assert_eq!(certified_rsa(&[spki, vec![0]].concat()), None);
    }
}
