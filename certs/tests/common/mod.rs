//! Helpers shared by the certs integration tests: a dev PKI with one enrolled chip, and
//! raw rcgen issuance for certificates the dev PKI API will not make (wrong keys, odd
//! extensions, other algorithms).

#![cfg(test)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset of these shared helpers"
)]

use chipward_certs::{DevPki, P384Key};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SignatureAlgorithm,
};

/// 2026-12-04T00:00:00Z.
pub const NOW: i64 = 1_796_342_400;
/// notAfter of every dev certificate: 9999-12-31T23:59:59Z.
pub const DEV_NOT_AFTER: i64 = 253_402_300_799;
/// notBefore of every dev certificate: 2025-01-01T00:00:00Z.
pub const DEV_NOT_BEFORE: i64 = 1_735_689_600;

/// A dev PKI plus one chip: identity and alias keys and certificates.
pub struct Chip {
    pub dir: tempfile::TempDir,
    pub pki: DevPki,
    pub identity_key: P384Key,
    pub identity_cert: Vec<u8>,
    pub alias_key: P384Key,
    pub alias_cert: Vec<u8>,
}

impl Chip {
    /// Creates a fresh PKI for "CW-100" and enrols one chip (serial 42, firmware 1.2.3).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();

        let identity_key = P384Key::generate().unwrap();
        let identity_cert = pki
            .chip_ca
            .issue_device_identity(&identity_key.public_key_spki_der(), "CW-100", 42)
            .unwrap();

        let identity = chipward_certs::CertifiedKey {
            cert_der: identity_cert.clone(),
            key: P384Key::from_pkcs8_der(identity_key.pkcs8_der()).unwrap(),
        };
        let alias_key = P384Key::generate().unwrap();
        let alias_cert = identity
            .issue_alias(&alias_key.public_key_spki_der(), "CW-100", "1.2.3")
            .unwrap();

        Self {
            dir,
            pki,
            identity_key,
            identity_cert,
            alias_key,
            alias_cert,
        }
    }

    /// Leaf first, without the root.
    pub fn chain(&self) -> Vec<Vec<u8>> {
        vec![
            self.alias_cert.clone(),
            self.identity_cert.clone(),
            self.pki.chip_ca.cert_der.clone(),
        ]
    }

    /// The dev root as a trust anchor.
    pub fn anchor(&self) -> chipward_certs::TrustAnchor {
        chipward_certs::TrustAnchor::from_der(self.pki.root_cert_der()).unwrap()
    }

    /// The rcgen form of a P-384 key.
    pub fn rcgen_key(key: &P384Key) -> KeyPair {
        let der = key.pkcs8_der().as_slice();
        KeyPair::from_pkcs8_der_and_sign_algo(&der.into(), &rcgen::PKCS_ECDSA_P384_SHA384).unwrap()
    }
}

/// Certificate parameters: CN only, dev validity, optional CA with path length.
pub fn params(common_name: &str, ca: Option<Option<u8>>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
    match ca {
        Some(path_len) => {
            params.is_ca = IsCa::Ca(match path_len {
                Some(n) => BasicConstraints::Constrained(n),
                None => BasicConstraints::Unconstrained,
            });
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        None => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
    }
    params
}

/// Signs `params` for `subject` with the issuer certificate `issuer_der` and `issuer_key`.
pub fn issue(
    params: &CertificateParams,
    subject: &impl rcgen::PublicKeyData,
    issuer_der: &[u8],
    issuer_key: &KeyPair,
) -> Vec<u8> {
    let issuer = Issuer::from_ca_cert_der(&issuer_der.into(), issuer_key).unwrap();
    params.signed_by(subject, &issuer).unwrap().der().to_vec()
}

/// A fresh key pair for `alg`.
pub fn key_for(alg: &'static SignatureAlgorithm) -> KeyPair {
    KeyPair::generate_for(alg).unwrap()
}

/// The committed RSA-2048 test key, for the given RSA signature algorithm.
pub fn rsa_key(alg: &'static SignatureAlgorithm) -> KeyPair {
    let text = include_str!("../../testdata/rsa2048-test-key.pem");
    let der = chipward_certs::pem::parse_private_key(text).unwrap();
    KeyPair::from_pkcs8_der_and_sign_algo(&der.as_slice().into(), alg).unwrap()
}
