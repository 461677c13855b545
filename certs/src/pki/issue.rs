//! Issuance of dev PKI certificates with rcgen: the vendor root, the chip CA, device
//! identities and firmware aliases.
//!
//! Owns [`CertifiedKey`] and the certificate profiles. Attacker-controlled input: the
//! subject public keys to certify, which must be EC P-384 SubjectPublicKeyInfo; model names
//! and firmware versions are checked for length and character set before use.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, SubjectPublicKeyInfo,
};
use x509_parser::parse_x509_certificate;
use zeroize::Zeroizing;

use super::{DEV_ORGANIZATION, PkiError, ROOT_COMMON_NAME, TCG_DICE_TCB_INFO};
use crate::chain;
use crate::keys::{self, P384Key};

/// Longest model name accepted; `"<model> Device Identity"` must fit a 64-character CN.
const MAX_MODEL_LEN: usize = 48;
/// Longest firmware version accepted, in bytes.
const MAX_FIRMWARE_VERSION_LEN: usize = 128;

/// A certificate together with the private key it certifies.
#[derive(Debug)]
pub struct CertifiedKey {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key.
    pub key: P384Key,
}

impl CertifiedKey {
    /// Issues a chip's device-identity certificate at manufacture, signed by this CA.
    ///
    /// The certificate is a CA with pathLenConstraint 0 and keyUsage keyCertSign and
    /// digitalSignature; its subject is O "Chipward Dev", serialNumber (the first 16
    /// lowercase hex characters of [`keys::spki_sha256`] of the identity key) and CN
    /// `"<model> Device Identity"`; its serial number is `serial`.
    pub fn issue_device_identity(
        &self,
        identity_spki_der: &[u8],
        model: &str,
        serial: u64,
    ) -> Result<Vec<u8>, PkiError> {
        check_model(model)?;
        if serial == 0 {
            return Err(PkiError::ZeroSerial);
        }
        chain::p384_point(identity_spki_der).map_err(PkiError::SubjectKey)?;

        let chip_id = hex::encode(keys::spki_sha256(identity_spki_der));
        let serial_attr = rcgen::string::PrintableString::try_from(&chip_id[..16])
            .expect("hex digits are printable-string characters");

        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, DEV_ORGANIZATION);
        params.distinguished_name.push(
            DnType::CustomDnType(vec![2, 5, 4, 5]),
            DnValue::PrintableString(serial_attr),
        );
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{model} Device Identity"));
        set_dev_validity(&mut params);
        params.serial_number = Some(serial.into());
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ];

        self.issue(&params, identity_spki_der, "device identity")
    }

    /// Issues the firmware alias certificate, signed by this device-identity key.
    ///
    /// Not a CA; keyUsage digitalSignature (critical); subject O "Chipward Dev", CN
    /// `"<model> Firmware Alias"`; serial number derived by rcgen from the SHA-256 of the alias
    /// key. It carries a non-critical TCG DICE TcbInfo extension (2.23.133.5.4.1) whose
    /// value is `SEQUENCE { vendor [0] IMPLICIT UTF8String "Chipward Dev", model [1]
    /// IMPLICIT UTF8String <model>, version [2] IMPLICIT UTF8String <firmware_version> }`,
    /// the first three fields of DiceTcbInfo.
    pub fn issue_alias(
        &self,
        alias_spki_der: &[u8],
        model: &str,
        firmware_version: &str,
    ) -> Result<Vec<u8>, PkiError> {
        check_model(model)?;
        check_firmware_version(firmware_version)?;
        chain::p384_point(alias_spki_der).map_err(PkiError::SubjectKey)?;

        let mut params = dev_params(&format!("{model} Firmware Alias"));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &TCG_DICE_TCB_INFO,
            tcb_info(model, firmware_version),
        )];

        self.issue(&params, alias_spki_der, "firmware alias")
    }

    /// Issues the chip-identity ("provisioner") CA certificate, signed by this root: CA
    /// with pathLenConstraint 1, keyCertSign and cRLSign, CN `"<model> Provisioner CA"`.
    pub(super) fn issue_chip_ca(
        &self,
        ca_spki_der: &[u8],
        model: &str,
    ) -> Result<Vec<u8>, PkiError> {
        let mut params = dev_params(&format!("{model} Provisioner CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        self.issue(&params, ca_spki_der, "chip ca")
    }

    /// Signs a certificate for `subject_spki_der` with `params`, issued by this key.
    ///
    /// The issuer name is taken from this certificate, so it matches byte for byte.
    fn issue(
        &self,
        params: &CertificateParams,
        subject_spki_der: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>, PkiError> {
        self.check_cert_matches_key()?;
        let build = |source| PkiError::Build { what, source };

        let subject_key = SubjectPublicKeyInfo::from_der(subject_spki_der).map_err(build)?;
        let signer = rcgen_key(&self.key).map_err(build)?;
        let issuer =
            Issuer::from_ca_cert_der(&self.cert_der.as_slice().into(), &*signer).map_err(build)?;
        let cert = params.signed_by(&subject_key, &issuer).map_err(build)?;
        Ok(cert.der().to_vec())
    }

    /// The certificate must certify this very key, or issued certificates would not verify.
    pub(super) fn check_cert_matches_key(&self) -> Result<(), PkiError> {
        let Ok(([], cert)) = parse_x509_certificate(&self.cert_der) else {
            let reason = "not one well-formed certificate";
            return Err(PkiError::IssuerCertificate { reason });
        };
        if cert.public_key().raw != self.key.public_key_spki_der().as_slice() {
            let reason = "certificate does not certify the issuing key";
            return Err(PkiError::IssuerCertificate { reason });
        }
        Ok(())
    }
}

/// The vendor root: self-signed CA, keyCertSign and cRLSign, no path length limit.
pub(super) fn self_signed_root(key: &P384Key) -> Result<Vec<u8>, PkiError> {
    let build = |source| PkiError::Build {
        what: "vendor root",
        source,
    };

    let mut params = dev_params(ROOT_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = false;

    let signer = rcgen_key(key).map_err(build)?;
    let cert = params.self_signed(&*signer).map_err(build)?;
    Ok(cert.der().to_vec())
}

/// Parameters shared by every dev certificate: O and CN, validity, AKI.
fn dev_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, DEV_ORGANIZATION);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    set_dev_validity(&mut params);
    params
}

/// 2025-01-01T00:00:00Z to 9999-12-31T23:59:59Z, as real device PKIs do; AKI on.
fn set_dev_validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(9999, 12, 31) + Duration::from_secs(86_399);
    params.use_authority_key_identifier_extension = true;
}

/// An rcgen signing key from our key's PKCS#8, wiped when dropped.
fn rcgen_key(key: &P384Key) -> Result<Zeroizing<KeyPair>, rcgen::Error> {
    let pkcs8 = key.pkcs8_der().as_slice();
    KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.into(), &PKCS_ECDSA_P384_SHA384)
        .map(Zeroizing::new)
}

/// DER of the leading fields of a DICE TcbInfo: vendor [0], model [1], version [2].
fn tcb_info(model: &str, firmware_version: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    fields.extend(der_tlv(0x80, DEV_ORGANIZATION.as_bytes()));
    fields.extend(der_tlv(0x81, model.as_bytes()));
    fields.extend(der_tlv(0x82, firmware_version.as_bytes()));
    der_tlv(0x30, &fields)
}

/// One DER tag-length-value; `content` is below 64 KiB (inputs are length-checked).
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.push(short),
        Ok(byte) => out.extend([0x81, byte]),
        Err(_) => {
            let two = u16::try_from(len).expect("tcb info fields are length-checked to fit");
            out.push(0x82);
            out.extend(two.to_be_bytes());
        }
    }
    out.extend_from_slice(content);
    out
}

/// A model name is 1-48 characters of ASCII letters, digits, space, '-', '_' or '.'.
pub(super) fn check_model(model: &str) -> Result<(), PkiError> {
    let reject = |reason| PkiError::InvalidModel {
        model: chain::describe(model),
        reason,
    };

    if model.is_empty() || model.len() > MAX_MODEL_LEN {
        return Err(reject("must be 1 to 48 characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.');
    if !model.chars().all(allowed) {
        return Err(reject(
            "only ascii letters, digits, space, '-', '_' and '.' are allowed",
        ));
    }
    Ok(())
}

/// A firmware version is 1-128 bytes of UTF-8 without control characters.
fn check_firmware_version(version: &str) -> Result<(), PkiError> {
    if version.is_empty() || version.len() > MAX_FIRMWARE_VERSION_LEN {
        let reason = "must be 1 to 128 bytes";
        return Err(PkiError::InvalidFirmwareVersion { reason });
    }
    if version.chars().any(char::is_control) {
        let reason = "must not contain control characters";
        return Err(PkiError::InvalidFirmwareVersion { reason });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_short_and_long_forms() {
        assert_eq!(der_tlv(0x80, &[7; 3])[..2], [0x80, 3]);
        assert_eq!(der_tlv(0x80, &[7; 200])[..3], [0x80, 0x81, 200]);
        assert_eq!(der_tlv(0x30, &[7; 300])[..4], [0x30, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn tcb_info_encodes_three_tagged_strings() {
        let der = tcb_info("M", "1.2");
        let expected = [
            0x30, 0x16, // SEQUENCE, 14 + 3 + 5 = 22 bytes
            0x80, 0x0c, b'C', b'h', b'i', b'p', b'w', b'a', b'r', b'd', b' ', b'D', b'e', b'v',
            0x81, 0x01, b'M', // model
            0x82, 0x03, b'1', b'.', b'2', // version
        ];
        assert_eq!(der, expected);
    }

    #[test]
    fn rejects_bad_model_names() {
        for model in ["", "CW 100\n", "CW/100", &"x".repeat(49)] {
            assert!(
                matches!(check_model(model), Err(PkiError::InvalidModel { .. })),
                "{model:?}"
            );
        }
        assert!(check_model("CW-100").is_ok());
    }

    #[test]
    fn rejects_bad_firmware_versions() {
        for version in ["", "1.0\u{0}", &"9".repeat(129)] {
            let result = check_firmware_version(version);
            assert!(matches!(
                result,
                Err(PkiError::InvalidFirmwareVersion { .. })
            ));
        }
    }
}
