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

mod issue;
pub mod tls;

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::chain::{self, ChainError, ChainPolicy, SignatureError, TrustAnchor};
use crate::keys::{self, Ed25519Key, KeyError, P384Key};
use crate::pem::{self, PemError};

pub use self::issue::CertifiedKey;

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
    /// TLS material or a grant was refused.
    #[error("tls: {0}")]
    Tls(String),
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
        issue::check_model(model)?;
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
        let root_cert = issue::self_signed_root(&root_key)?;
        let root = CertifiedKey {
            cert_der: root_cert,
            key: root_key,
        };

        let ca_key = P384Key::generate().map_err(PkiError::GenerateKey)?;
        let ca_cert = root.issue_chip_ca(&ca_key.public_key_spki_der(), model)?;

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
