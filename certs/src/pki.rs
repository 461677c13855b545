//! A development PKI kept in one folder, and issuance of chip certificates.
//!
//! Owns [`DevPki`] (vendor root, chip-identity CA, issuer token key, verifier result key)
//! and [`CertifiedKey`], which issues device-identity and firmware-alias certificates.
//! Attacker-controlled input: the files under a PKI folder when loading (each is parsed
//! strictly and cross-checked against its partner), and the subject public keys handed to
//! the issuing functions (they must be EC P-384 SubjectPublicKeyInfo). Model names and
//! firmware versions come from the vendor's tooling and are checked for length and
//! character set before they reach a certificate.
//!
//! This is a development PKI: keys sit in files with owner-only permissions, not in an HSM.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, SubjectPublicKeyInfo,
};
use x509_parser::parse_x509_certificate;
use zeroize::Zeroizing;

use crate::chain::{self, ChainError, ChainPolicy, SignatureError, TrustAnchor};
use crate::keys::{self, Ed25519Key, KeyError, P384Key};
use crate::pem::{self, PemError};

/// Organization name in every dev PKI certificate.
pub const DEV_ORGANIZATION: &str = "Chipward Dev";
/// Common name of the dev vendor root.
pub const ROOT_COMMON_NAME: &str = "Chipward Dev Vendor Root CA";
/// OID arcs of the TCG DICE TcbInfo extension carried by firmware alias certificates.
pub const TCG_DICE_TCB_INFO: [u64; 6] = [2, 23, 133, 5, 4, 1];
/// notBefore of every dev PKI certificate: 2025-01-01T00:00:00Z, as Unix seconds.
pub const DEV_NOT_BEFORE_UNIX: i64 = 1_735_689_600;

/// Vendor root certificate file.
pub const ROOT_CERT_FILE: &str = "vendor-root.pem";
/// Vendor root private key file.
pub const ROOT_KEY_FILE: &str = "vendor-root.key";
/// Chip-identity (provisioner) CA certificate file.
pub const CHIP_CA_CERT_FILE: &str = "chip-ca.pem";
/// Chip-identity CA private key file.
pub const CHIP_CA_KEY_FILE: &str = "chip-ca.key";
/// Issuer token-signing private key file.
pub const ISSUER_TOKEN_KEY_FILE: &str = "issuer-token.key";
/// Issuer token-signing public key file.
pub const ISSUER_TOKEN_PUB_FILE: &str = "issuer-token.pub";
/// Verifier result-signing private key file.
pub const VERIFIER_RESULT_KEY_FILE: &str = "verifier-result.key";
/// Verifier result-signing public key file.
pub const VERIFIER_RESULT_PUB_FILE: &str = "verifier-result.pub";

/// Every file of a dev PKI folder, in the order they are written.
pub const PKI_FILES: [&str; 8] = [
    ROOT_CERT_FILE,
    ROOT_KEY_FILE,
    CHIP_CA_CERT_FILE,
    CHIP_CA_KEY_FILE,
    ISSUER_TOKEN_KEY_FILE,
    ISSUER_TOKEN_PUB_FILE,
    VERIFIER_RESULT_KEY_FILE,
    VERIFIER_RESULT_PUB_FILE,
];

/// Longest model name accepted; "<model> Device Identity" must fit a 64-character CN.
const MAX_MODEL_LEN: usize = 48;
/// Longest firmware version accepted, in bytes.
const MAX_FIRMWARE_VERSION_LEN: usize = 128;

/// A failure to create, load or use the development PKI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// The model name cannot go into a certificate name.
    #[error("model name {model:?} rejected: {reason}")]
    InvalidModel {
        /// The model name, escaped and shortened for display.
        model: String,
        /// Why.
        reason: &'static str,
    },
    /// The firmware version cannot go into a TcbInfo extension.
    #[error("firmware version rejected: {reason}")]
    InvalidFirmwareVersion {
        /// Why.
        reason: &'static str,
    },
    /// Certificate serial numbers must be positive (RFC 5280 section 4.1.2.2).
    #[error("certificate serial number must not be zero")]
    ZeroSerial,
    /// A PKI file exists already; nothing is overwritten.
    #[error("refusing to overwrite existing pki file {}", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The PKI folder could not be created.
    #[error("cannot create pki folder {}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A PKI file could not be written.
    #[error("cannot write {}", path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A PKI file could not be read.
    #[error("cannot read {}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A PKI file is not the PEM it should be.
    #[error("{} is not valid pem", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: PemError,
    },
    /// A certificate file holds more than one certificate.
    #[error("{} holds {count} certificates, expected one", path.display())]
    CertificateCount {
        /// The file.
        path: PathBuf,
        /// How many it holds.
        count: usize,
    },
    /// A private key file holds an unusable key.
    #[error("{} holds an unusable key", path.display())]
    LoadKey {
        /// The file.
        path: PathBuf,
        /// Why the key was refused.
        #[source]
        source: KeyError,
    },
    /// Generating a key failed.
    #[error("key generation failed")]
    GenerateKey(#[source] KeyError),
    /// A certificate or public key file does not match its private key file.
    #[error("{} does not match its private key", path.display())]
    KeyMismatch {
        /// The certificate or public key file.
        path: PathBuf,
    },
    /// The subject key to certify is not an EC P-384 SubjectPublicKeyInfo.
    #[error("subject public key rejected")]
    SubjectKey(#[source] SignatureError),
    /// The issuing certificate does not parse or does not belong to the issuing key.
    #[error("issuing certificate rejected: {reason}")]
    IssuerCertificate {
        /// Why.
        reason: &'static str,
    },
    /// rcgen could not build a certificate.
    #[error("building the {what} certificate failed")]
    Build {
        /// Which certificate.
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The loaded chip CA does not validate under the loaded root.
    #[error("chip ca certificate does not chain to the vendor root")]
    Chain(#[source] ChainError),
}

/// A certificate together with the private key it certifies.
#[derive(Debug)]
pub struct CertifiedKey {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Its private key.
    pub key: P384Key,
}

/// The development PKI of one folder: vendor root, chip-identity CA and two service keys.
#[derive(Debug)]
pub struct DevPki {
    /// Self-signed vendor root (CA, no path length limit).
    pub root: CertifiedKey,
    /// Chip-identity ("provisioner") CA, signed by the root, pathLenConstraint 1.
    pub chip_ca: CertifiedKey,
    /// The issuer's license-token signing key.
    pub issuer_token_key: Ed25519Key,
    /// The verifier's attestation-result signing key.
    pub verifier_result_key: Ed25519Key,
    dir: PathBuf,
}

impl DevPki {
    /// Creates a new PKI for chip `model` in `dir` and writes its files there.
    ///
    /// `dir` is created with mode 0700 if missing (an existing folder keeps its mode).
    /// Private keys are written with mode 0600. If any PKI file already exists nothing is
    /// written and [`PkiError::AlreadyExists`] is returned.
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let pki = chipward_certs::DevPki::create(&dir.path().join("pki"), "CW-100")?;
    /// assert!(dir.path().join("pki/vendor-root.pem").exists());
    /// assert_eq!(pki.issuer_token_key.key_id().len(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(dir: &Path, model: &str) -> Result<Self, PkiError> {
        check_model(model)?;
        create_private_dir(dir)?;
        if let Some(existing) = PKI_FILES.iter().map(|f| dir.join(f)).find(|p| exists(p)) {
            return Err(PkiError::AlreadyExists { path: existing });
        }

        let pki = Self::generate(dir, model)?;
        pki.write()?;
        Ok(pki)
    }

    /// Loads the PKI in `dir`, checking that every certificate and public key file matches
    /// its private key and that the chip CA is signed by the root.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let root = load_certified(dir, ROOT_CERT_FILE, ROOT_KEY_FILE)?;
        let chip_ca = load_certified(dir, CHIP_CA_CERT_FILE, CHIP_CA_KEY_FILE)?;
        let issuer_token_key = load_ed25519(dir, ISSUER_TOKEN_KEY_FILE, ISSUER_TOKEN_PUB_FILE)?;
        let verifier_result_key =
            load_ed25519(dir, VERIFIER_RESULT_KEY_FILE, VERIFIER_RESULT_PUB_FILE)?;

        // Structure and signature check only: every dev certificate is valid from
        // DEV_NOT_BEFORE_UNIX to the end of year 9999, so that instant is always inside.
        let anchor = TrustAnchor::from_der(&root.cert_der).map_err(PkiError::Chain)?;
        let chain = [chip_ca.cert_der.clone()];
        chain::validate_chain(
            &chain,
            &anchor,
            DEV_NOT_BEFORE_UNIX,
            &ChainPolicy::default(),
        )
        .map_err(PkiError::Chain)?;

        Ok(Self {
            root,
            chip_ca,
            issuer_token_key,
            verifier_result_key,
            dir: dir.to_path_buf(),
        })
    }

    /// The vendor root certificate, DER: the trust anchor for chip chains.
    pub fn root_cert_der(&self) -> &[u8] {
        &self.root.cert_der
    }

    /// The folder this PKI lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes all keys and both CA certificates in memory.
    fn generate(dir: &Path, model: &str) -> Result<Self, PkiError> {
        let root_key = P384Key::generate().map_err(PkiError::GenerateKey)?;
        let root_cert = self_signed_root(&root_key)?;
        let root = CertifiedKey {
            cert_der: root_cert,
            key: root_key,
        };

        let ca_key = P384Key::generate().map_err(PkiError::GenerateKey)?;
        let mut params = dev_params(&format!("{model} Provisioner CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = root.issue(&params, &ca_key.public_key_spki_der(), "chip ca")?;

        Ok(Self {
            root,
            chip_ca: CertifiedKey {
                cert_der: ca_cert,
                key: ca_key,
            },
            issuer_token_key: Ed25519Key::generate().map_err(PkiError::GenerateKey)?,
            verifier_result_key: Ed25519Key::generate().map_err(PkiError::GenerateKey)?,
            dir: dir.to_path_buf(),
        })
    }

    /// Writes every file; each must not exist yet.
    fn write(&self) -> Result<(), PkiError> {
        let dir = &self.dir;
        write_public(
            dir,
            ROOT_CERT_FILE,
            &pem::certificate_to_pem(&self.root.cert_der),
        )?;
        write_key(dir, ROOT_KEY_FILE, self.root.key.pkcs8_der())?;
        write_public(
            dir,
            CHIP_CA_CERT_FILE,
            &pem::certificate_to_pem(&self.chip_ca.cert_der),
        )?;
        write_key(dir, CHIP_CA_KEY_FILE, self.chip_ca.key.pkcs8_der())?;

        let services = [
            (
                ISSUER_TOKEN_KEY_FILE,
                ISSUER_TOKEN_PUB_FILE,
                &self.issuer_token_key,
            ),
            (
                VERIFIER_RESULT_KEY_FILE,
                VERIFIER_RESULT_PUB_FILE,
                &self.verifier_result_key,
            ),
        ];
        for (key_file, pub_file, key) in services {
            write_key(dir, key_file, key.pkcs8_der())?;
            write_public(
                dir,
                pub_file,
                &pem::ed25519_public_to_pem(&key.public_key()),
            )?;
        }
        Ok(())
    }
}

impl CertifiedKey {
    /// Issues a chip's device-identity certificate at manufacture, signed by this CA.
    ///
    /// The certificate is a CA with pathLenConstraint 0 and keyUsage keyCertSign and
    /// digitalSignature; its subject is O "Chipward Dev", serialNumber (the first 16
    /// lowercase hex characters of [`keys::spki_sha256`] of the identity key) and CN
    /// "<model> Device Identity"; its serial number is `serial`.
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
    /// "<model> Firmware Alias"; serial number derived by rcgen from the SHA-256 of the alias
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
    fn check_cert_matches_key(&self) -> Result<(), PkiError> {
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
fn self_signed_root(key: &P384Key) -> Result<Vec<u8>, PkiError> {
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
fn check_model(model: &str) -> Result<(), PkiError> {
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

/// True when anything, even a dangling symlink, sits at `path`.
fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Creates `dir` (and missing parents) with mode 0700.
fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| PkiError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes a new public file (mode 0644); it must not exist yet.
fn write_public(dir: &Path, name: &str, text: &str) -> Result<(), PkiError> {
    let path = dir.join(name);
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    written.map_err(|source| write_error(path, source))
}

/// Writes a new private key file (mode 0600); it must not exist yet.
fn write_key(dir: &Path, name: &str, der: &[u8]) -> Result<(), PkiError> {
    let path = dir.join(name);
    keys::write_private_key_file(&path, pem::PRIVATE_KEY_LABEL, der)
        .map_err(|source| write_error(path, source))
}

/// A write failure; a file that appeared meanwhile is reported as such.
fn write_error(path: PathBuf, source: io::Error) -> PkiError {
    if source.kind() == io::ErrorKind::AlreadyExists {
        PkiError::AlreadyExists { path }
    } else {
        PkiError::WriteFile { path, source }
    }
}

/// Reads a file as text.
fn read_text(path: &Path) -> Result<Zeroizing<String>, PkiError> {
    fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| PkiError::ReadFile {
            path: path.to_path_buf(),
            source,
        })
}

/// Loads a certificate file and its P-384 key file and checks that they belong together.
fn load_certified(dir: &Path, cert_file: &str, key_file: &str) -> Result<CertifiedKey, PkiError> {
    let cert_path = dir.join(cert_file);
    let pem_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PkiError::Pem { path, source }
    };

    let mut certs =
        pem::parse_certificates(&read_text(&cert_path)?).map_err(pem_error(&cert_path))?;
    if certs.len() != 1 {
        let count = certs.len();
        return Err(PkiError::CertificateCount {
            path: cert_path,
            count,
        });
    }
    let cert_der = certs.remove(0);

    let key_path = dir.join(key_file);
    let pkcs8 = pem::parse_private_key(&read_text(&key_path)?).map_err(pem_error(&key_path))?;
    let key = P384Key::from_pkcs8_der(&pkcs8).map_err(|source| PkiError::LoadKey {
        path: key_path,
        source,
    })?;

    let certified = CertifiedKey { cert_der, key };
    certified
        .check_cert_matches_key()
        .map_err(|_| PkiError::KeyMismatch { path: cert_path })?;
    Ok(certified)
}

/// Loads an Ed25519 key file and its public key file and checks that they match.
fn load_ed25519(dir: &Path, key_file: &str, pub_file: &str) -> Result<Ed25519Key, PkiError> {
    let key_path = dir.join(key_file);
    let pkcs8 = pem::parse_private_key(&read_text(&key_path)?).map_err(|source| PkiError::Pem {
        path: key_path.clone(),
        source,
    })?;
    let key = Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|source| PkiError::LoadKey {
        path: key_path,
        source,
    })?;

    let pub_path = dir.join(pub_file);
    let public =
        pem::parse_ed25519_public(&read_text(&pub_path)?).map_err(|source| PkiError::Pem {
            path: pub_path.clone(),
            source,
        })?;
    if public != key.public_key() {
        return Err(PkiError::KeyMismatch { path: pub_path });
    }
    Ok(key)
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
