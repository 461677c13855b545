//! The device-identity profile: which validated chains name a chip.
//!
//! The chain comes from whoever calls `EnrolChip` and has already passed
//! `chipward_certs::chain::validate_chain`, so every signature in it is the
//! vendor's. Validation alone says nothing about *what* its first
//! certificate is, and the vendor signs more than device identities: the
//! provisioner CA itself, and (through each identity key) firmware alias
//! certificates. Enrolling either would make a license bind to the wrong
//! key. [`device_identity`] keeps only chains whose first certificate has
//! the shape of a device identity:
//!
//! 1. It is a CA certificate (basicConstraints cA=TRUE): an identity key
//!    certifies the chip's firmware alias keys. Alias certificates are not
//!    CAs.
//! 2. It is not issued by the trust anchor directly: at least one
//!    intermediate (the provisioner CA) sits between it and the root, so a
//!    provisioner CA cannot enrol itself.
//!
//! Limitation: path length, key usage and the subject are not checked
//! against the identity profile; a CA certificate two or more levels under
//! the root is taken as an identity. Only the vendor can issue such a
//! certificate, and the chain validator already holds each CA to its
//! pathLenConstraint.

use chipward_certs::chain::ValidatedChain;
use chipward_certs::keys::spki_sha256;
use chipward_proto::ChipId;
use thiserror::Error;

/// A chip identity taken from a chain that meets the device-identity
/// profile; only [`device_identity`] builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceIdentity {
    chip_id: ChipId,
    model: String,
    cert_der: Vec<u8>,
}

impl DeviceIdentity {
    /// SHA-256 of the identity key's SubjectPublicKeyInfo.
    pub fn chip_id(&self) -> ChipId {
        self.chip_id
    }

    /// The product line: the common name (else the subject) of the CA that
    /// issued the identity certificate.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The identity certificate, DER, exactly as received.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }
}

/// Why the first certificate of a validated chain is not a device identity.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileError {
    /// It is not a CA certificate, so it cannot be an identity (an alias
    /// certificate, for instance).
    #[error("first certificate is not a device-identity certificate: it is not a ca certificate")]
    NotCa {
        /// Its subject, for the log.
        subject: String,
    },
    /// The trust anchor issued it directly, as it issues provisioner CAs.
    #[error(
        "first certificate is not a device-identity certificate: \
         it is issued directly by the trust anchor, not by a provisioner ca"
    )]
    IssuedByAnchor {
        /// Its subject, for the log.
        subject: String,
    },
}

/// Checks that the first certificate of `chain` is a device identity, and
/// reads the chip id and model from it. See the module notes for the
/// checks, in order.
pub fn device_identity(chain: &ValidatedChain) -> Result<DeviceIdentity, ProfileError> {
    let identity = chain.leaf();
    let subject = || identity.subject().to_owned();

    // 1. A CA certificate.
    if !identity.is_ca() {
        return Err(ProfileError::NotCa { subject: subject() });
    }

    // 2. Issued by an intermediate, which names the model.
    let Some(issuer) = chain.certs().get(1) else {
        return Err(ProfileError::IssuedByAnchor { subject: subject() });
    };
    let model = issuer.common_name().unwrap_or(issuer.subject()).to_owned();

    Ok(DeviceIdentity {
        chip_id: ChipId(spki_sha256(identity.spki_der())),
        model,
        cert_der: identity.der().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use chipward_certs::chain::{ChainPolicy, TrustAnchor, validate_chain};
    use chipward_certs::keys::P384Key;
    use chipward_certs::pki::{CertifiedKey, DEV_NOT_BEFORE_UNIX, DevPki};

    use super::*;

    /// One day into the dev PKI's validity.
    const NOW: i64 = DEV_NOT_BEFORE_UNIX + 86_400;

    struct Fixture {
        _dir: tempfile::TempDir,
        pki: DevPki,
        anchor: TrustAnchor,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
        let anchor = TrustAnchor::from_der(pki.root_cert_der()).unwrap();
        Fixture {
            _dir: dir,
            pki,
            anchor,
        }
    }

    impl Fixture {
        fn check(&self, chain: &[Vec<u8>]) -> Result<DeviceIdentity, ProfileError> {
            let validated =
                validate_chain(chain, &self.anchor, NOW, &ChainPolicy::default()).unwrap();
            device_identity(&validated)
        }

        fn identity(&self) -> CertifiedKey {
            let key = P384Key::generate().unwrap();
            let cert_der = self
                .pki
                .chip_ca
                .issue_device_identity(&key.public_key_spki_der(), "CW-100", 3)
                .unwrap();
            CertifiedKey { cert_der, key }
        }
    }

    #[test]
    fn takes_an_identity_issued_by_the_provisioner_ca() {
        let f = fixture();
        let identity = f.identity();
        let ca = f.pki.chip_ca.cert_der.clone();
        let got = f.check(&[identity.cert_der.clone(), ca]).unwrap();
        assert_eq!(
            got.chip_id(),
            ChipId(spki_sha256(&identity.key.public_key_spki_der()))
        );
        assert_eq!(got.model(), "CW-100 Provisioner CA");
        assert_eq!(got.cert_der(), identity.cert_der);
    }

    #[test]
    fn refuses_the_provisioner_ca_itself() {
        let f = fixture();
        let chain = [f.pki.chip_ca.cert_der.clone()];
        let err = f.check(&chain).unwrap_err();
        assert!(
            matches!(err, ProfileError::IssuedByAnchor { ref subject } if subject.contains("Provisioner CA")),
            "{err:?}"
        );
        // With the root appended, the same.
        let chain = [chain[0].clone(), f.pki.root_cert_der().to_vec()];
        assert!(matches!(
            f.check(&chain),
            Err(ProfileError::IssuedByAnchor { .. })
        ));
    }

    #[test]
    fn refuses_an_identity_the_root_signed_directly() {
        let f = fixture();
        let key = P384Key::generate().unwrap();
        let cert = f
            .pki
            .root
            .issue_device_identity(&key.public_key_spki_der(), "CW-100", 1)
            .unwrap();
        assert!(matches!(
            f.check(&[cert]),
            Err(ProfileError::IssuedByAnchor { .. })
        ));
    }

    #[test]
    fn refuses_a_firmware_alias_placed_first() {
        let f = fixture();
        let identity = f.identity();
        let alias_key = P384Key::generate().unwrap();
        let alias = identity
            .issue_alias(&alias_key.public_key_spki_der(), "CW-100", "1.0.0")
            .unwrap();
        let chain = [alias, identity.cert_der, f.pki.chip_ca.cert_der.clone()];
        let err = f.check(&chain).unwrap_err();
        assert!(matches!(err, ProfileError::NotCa { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "first certificate is not a device-identity certificate: it is not a ca certificate"
        );
    }
}
