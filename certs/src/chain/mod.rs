//! X.509 chain validation from a chip's certificates up to one trust anchor.
//!
//! Owns [`validate_chain`], [`TrustAnchor`] and the proof type [`ValidatedChain`], which
//! only this module can build. Attacker-controlled input: every byte of every certificate
//! in the chain. The trust anchor is configuration and is trusted, but it is parsed with
//! the same strictness and must itself be a CA within its validity window.
//!
//! TPM endorsement-key chains, which real TPMs deliver with a few departures from this
//! strictness, go through [`validate_ek_chain`] instead; it shares steps 3-9 below, and
//! the [`ek`] notes list each departure.
//!
//! [`validate_chain`] checks, in this order:
//!
//! 1. Bounds, before anything is parsed: the chain is not empty, holds at most
//!    [`ChainPolicy::max_depth`] certificates, each at most [`ChainPolicy::max_cert_len`]
//!    bytes.
//! 2. A last certificate byte-identical to the anchor is dropped (chains may carry their
//!    root); a chain that was only the anchor is empty.
//! 3. Every certificate parses as DER X.509 with nothing after it, its TBS signature
//!    algorithm equals the outer one, and its issuer and subject names decode to their last
//!    byte (x509-parser would drop what it cannot read inside a name).
//! 4. The anchor is valid at `now` and may sign certificates (step 8).
//! 5. Walking down from the anchor to the leaf, each certificate has no duplicate or
//!    unparsable extension, no critical extension outside [`ALLOWED_CRITICAL`], and no
//!    name constraints.
//! 6. Its issuer name equals its signer's subject name, byte for byte, and its signature
//!    verifies with the signer's key over the TBS bytes exactly as received. Accepted:
//!    ecdsa-with-SHA256/SHA384 by a P-256 or P-384 key, Ed25519, and
//!    sha256/sha384WithRSAEncryption by a 2048-8192-bit RSA key; anything else is
//!    [`ChainError::UnsupportedAlgorithm`].
//! 7. `now` lies within its notBefore..=notAfter.
//! 8. If it signs the next certificate down, it has basicConstraints cA=TRUE and, when
//!    keyUsage is present, keyCertSign.
//! 9. Path length (RFC 5280 section 6.1.4): below a CA with pathLenConstraint n (the anchor
//!    included) there are at most n intermediate CA certificates that are not self-issued;
//!    the leaf is not counted.
//!
//! It deliberately does not check revocation, certificate policies, extended key usage or
//! the leaf's key usage: callers decide what the leaf key may do.
//!
//! Identify certificates by their key (or TBS), not by a hash of the whole DER: ECDSA
//! signatures are malleable (`(r, n - s)` verifies as well as `(r, s)`), so anyone can give
//! a valid certificate a second valid encoding. Chipward's chip identity is the SHA-256 of
//! the identity key's SPKI for this reason.

pub mod ek;
mod error;
mod name;
mod signature;
mod tpm_attributes;

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, FromDer as _};
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS;
use x509_parser::parse_x509_certificate;
use x509_parser::x509::X509Name;

pub use self::ek::{ValidatedEkChain, validate_ek_chain};
pub(crate) use self::error::describe;
pub use self::error::{ChainError, Link};
pub(crate) use self::signature::p384_point;
pub use self::signature::{SignatureError, verify_p384_fixed};
pub use self::tpm_attributes::TpmAttributes;

/// Critical extensions a chain certificate may carry. Everything else that is critical is
/// refused with [`ChainError::UnknownCriticalExtension`].
///
/// basicConstraints and keyUsage are enforced here; subjectAltName, extKeyUsage,
/// certificatePolicies and the key identifiers are the relying application's business and
/// do not change path validity; the TCG DICE TcbInfo, UEID and MultiTcbInfo extensions
/// (TCG DICE Attestation Architecture) describe the device and are read by the verifier.
pub const ALLOWED_CRITICAL: [&str; 10] = [
    "2.5.29.19",      // basicConstraints
    "2.5.29.15",      // keyUsage
    "2.5.29.37",      // extKeyUsage
    "2.5.29.17",      // subjectAltName
    "2.5.29.32",      // certificatePolicies
    "2.5.29.14",      // subjectKeyIdentifier
    "2.5.29.35",      // authorityKeyIdentifier
    "2.23.133.5.4.1", // tcg-dice-TcbInfo
    "2.23.133.5.4.4", // tcg-dice-Ueid
    "2.23.133.5.4.5", // tcg-dice-MultiTcbInfo
];

/// Resource limits for [`validate_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPolicy {
    /// Most certificates accepted in one chain, anchor copy included. Default 8.
    pub max_depth: usize,
    /// Largest single certificate accepted, in bytes of DER. Default 16384.
    pub max_cert_len: usize,
}

impl Default for ChainPolicy {
    fn default() -> Self {
        Self {
            max_depth: 8,
            max_cert_len: 16 * 1024,
        }
    }
}

/// A trusted root certificate that chains must end at.
#[derive(Clone, Debug)]
pub struct TrustAnchor {
    der: Vec<u8>,
    subject: String,
    subject_der: Vec<u8>,
    spki_der: Vec<u8>,
}

impl TrustAnchor {
    /// Parses a DER certificate as a trust anchor. It must be well-formed, a CA allowed to
    /// sign certificates, and carry no critical extension this validator does not process.
    /// Its own signature is not checked: an anchor is trusted by configuration.
    pub fn from_der(der: &[u8]) -> Result<Self, ChainError> {
        let link = Link::TrustAnchor;
        let cert = parse_certificate(der, link)?;
        let subject = name_text(cert.subject());

        check_extensions(&cert, link, &subject)?;
        check_may_sign(&cert, link, &subject)?;

        Ok(Self {
            der: der.to_vec(),
            subject,
            subject_der: cert.subject().as_raw().to_vec(),
            spki_der: cert.public_key().raw.to_vec(),
        })
    }

    /// The anchor's subject name, for display.
    pub fn subject(&self) -> String {
        self.subject.clone()
    }

    /// The anchor's SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The anchor certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// A chain that passed [`validate_chain`], leaf first, trust anchor not included.
///
/// Only [`validate_chain`] builds this type and its contents cannot be changed afterwards,
/// so holding one proves the checks ran on exactly what it holds.
#[derive(Clone, Debug)]
pub struct ValidatedChain {
    certs: Vec<ValidatedCert>,
}

impl ValidatedChain {
    /// The validated certificates, leaf first; never empty.
    pub fn certs(&self) -> &[ValidatedCert] {
        &self.certs
    }

    /// The leaf (end-entity) certificate, the one whose key signs evidence.
    pub fn leaf(&self) -> &ValidatedCert {
        self.certs
            .first()
            .expect("validate_chain never returns an empty chain")
    }
}

/// One certificate of a [`ValidatedChain`]; read-only.
#[derive(Clone, Debug)]
pub struct ValidatedCert {
    subject: String,
    common_name: Option<String>,
    spki_der: Vec<u8>,
    is_ca: bool,
    der: Vec<u8>,
}

impl ValidatedCert {
    /// Subject name for display; control characters escaped, at most 256 characters.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The first commonName of the subject, if it is a string; escaped like `subject`.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Whether basicConstraints says cA=TRUE.
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// The whole certificate, DER, exactly as received.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

/// Validates `chain_leaf_first` up to `anchor` at time `now_unix` (seconds since the Unix
/// epoch, UTC). See the module notes for the checks, in order.
///
/// ```
/// use chipward_certs::chain::{ChainPolicy, TrustAnchor, validate_chain};
/// use chipward_certs::{DevPki, P384Key};
///
/// let dir = tempfile::tempdir()?;
/// let pki = DevPki::create(&dir.path().join("pki"), "CW-100")?;
/// let identity = P384Key::generate()?;
/// let identity_cert =
///     pki.chip_ca.issue_device_identity(&identity.public_key_spki_der(), "CW-100", 7)?;
///
/// let anchor = TrustAnchor::from_der(pki.root_cert_der())?;
/// let chain = vec![identity_cert, pki.chip_ca.cert_der.clone()];
/// let validated = validate_chain(&chain, &anchor, 1_796_342_400, &ChainPolicy::default())?;
/// assert_eq!(validated.leaf().common_name(), Some("CW-100 Device Identity"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn validate_chain(
    chain_leaf_first: &[Vec<u8>],
    anchor: &TrustAnchor,
    now_unix: i64,
    policy: &ChainPolicy,
) -> Result<ValidatedChain, ChainError> {
    // 1. Bounds, before parsing anything.
    check_bounds(chain_leaf_first, policy)?;

    // 2. Drop a copy of the anchor at the end.
    let chain = match chain_leaf_first.split_last() {
        Some((last, rest)) if *last == anchor.der => rest,
        _ => chain_leaf_first,
    };
    if chain.is_empty() {
        return Err(ChainError::Empty);
    }

    // 3. Parse everything strictly.
    let anchor_cert = parse_certificate(&anchor.der, Link::TrustAnchor)?;
    let certs = chain
        .iter()
        .enumerate()
        .map(|(index, der)| parse_certificate(der, Link::Certificate(index)))
        .collect::<Result<Vec<_>, _>>()?;

    // 4-9. The anchor, then each certificate on the way down to the leaf.
    check_path(&anchor_cert, &certs, now_unix, &mut 0)?;

    Ok(ValidatedChain {
        certs: chain
            .iter()
            .zip(&certs)
            .map(|(der, c)| validated(der, c))
            .collect(),
    })
}

/// Steps 4-9 for one anchor and the parsed chain, leaf first. `verified` counts the chain
/// certificates whose issuer and signature checked out, so that a caller trying several
/// anchors can tell which one got furthest.
fn check_path(
    anchor_cert: &X509Certificate<'_>,
    certs: &[X509Certificate<'_>],
    now_unix: i64,
    verified: &mut usize,
) -> Result<(), ChainError> {
    // 4. The anchor itself.
    let anchor_subject = name_text(anchor_cert.subject());
    check_extensions(anchor_cert, Link::TrustAnchor, &anchor_subject)?;
    check_validity(anchor_cert, Link::TrustAnchor, &anchor_subject, now_unix)?;
    check_may_sign(anchor_cert, Link::TrustAnchor, &anchor_subject)?;
    let mut path_len = PathLenBudget::default();
    path_len.constrain(anchor_cert, Link::TrustAnchor, &anchor_subject);

    // 5-9. Walk down from the anchor to the leaf.
    let mut signer = anchor_cert;
    for (index, cert) in certs.iter().enumerate().rev() {
        let link = Link::Certificate(index);
        let subject = name_text(cert.subject());

        check_extensions(cert, link, &subject)?;
        check_issued_by(cert, link, &subject, signer)?;
        *verified += 1;
        check_validity(cert, link, &subject, now_unix)?;

        if index > 0 {
            check_may_sign(cert, link, &subject)?;
            path_len.descend(cert)?;
            path_len.constrain(cert, link, &subject);
        }
        signer = cert;
    }
    Ok(())
}

/// Step 1: count and size limits.
fn check_bounds(chain: &[Vec<u8>], policy: &ChainPolicy) -> Result<(), ChainError> {
    if chain.is_empty() {
        return Err(ChainError::Empty);
    }
    if chain.len() > policy.max_depth {
        return Err(ChainError::TooDeep {
            len: chain.len(),
            max: policy.max_depth,
        });
    }
    match chain.iter().position(|der| der.len() > policy.max_cert_len) {
        Some(index) => Err(ChainError::TooLarge {
            index,
            len: chain[index].len(),
            max: policy.max_cert_len,
        }),
        None => Ok(()),
    }
}

/// Step 3: one DER certificate, nothing after it, consistent signature algorithms, names
/// read to their last byte (they are compared byte for byte in step 6).
fn parse_certificate(der: &[u8], link: Link) -> Result<X509Certificate<'_>, ChainError> {
    let malformed = |reason: String| ChainError::Malformed { link, reason };

    let (rest, cert) = parse_x509_certificate(der).map_err(|e| malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!(
            "{} bytes after the certificate",
            rest.len()
        )));
    }
    if !outer_algorithm_repeats_signed_one(der) {
        return Err(malformed(
            "tbs and outer signature algorithms differ".into(),
        ));
    }
    if !name::is_whole(cert.issuer().as_raw()) {
        return Err(malformed("issuer name does not decode to its end".into()));
    }
    if !name::is_whole(cert.subject().as_raw()) {
        return Err(malformed("subject name does not decode to its end".into()));
    }
    Ok(cert)
}

/// RFC 5280 section 4.1.1.2: the outer signatureAlgorithm must equal the one inside the TBS.
/// The outer copy is not covered by the signature, so it is compared byte for byte: a
/// comparison of parsed values would let a lax encoding there (x509-parser reads an OID
/// under any tag) give a signed certificate a second encoding that still validates.
fn outer_algorithm_repeats_signed_one(der: &[u8]) -> bool {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let Some(cert) = der_elements(der) else {
        return false;
    };
    let Some(tbs) = cert.first().and_then(|tbs| der_elements(tbs)) else {
        return false;
    };

    // TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, ... }
    let has_version = tbs.first().is_some_and(|v| v.first() == Some(&0xa0));
    let signed = tbs.get(usize::from(has_version) + 1);
    matches!((cert.get(1), signed), (Some(outer), Some(signed)) if outer == signed)
}

/// The raw encodings of (at most) the first three elements inside one DER TLV.
fn der_elements(tlv: &[u8]) -> Option<Vec<&[u8]>> {
    let (_, outer) = Any::from_der(tlv).ok()?;
    let mut rest = outer.data;
    let mut elements = Vec::with_capacity(3);

    while !rest.is_empty() && elements.len() < 3 {
        let (after, _) = Any::from_der(rest).ok()?;
        elements.push(&rest[..rest.len() - after.len()]);
        rest = after;
    }
    Some(elements)
}

/// Step 5: extensions are unique, parse, and are either non-critical or understood.
fn check_extensions(
    cert: &X509Certificate<'_>,
    link: Link,
    subject: &str,
) -> Result<(), ChainError> {
    let extensions = cert.extensions();

    for (position, ext) in extensions.iter().enumerate() {
        let oid = ext.oid.to_id_string();
        if extensions[..position]
            .iter()
            .any(|earlier| earlier.oid == ext.oid)
        {
            let reason = format!("duplicate extension {oid}");
            return Err(ChainError::Malformed { link, reason });
        }
        if let ParsedExtension::ParseError { .. } = ext.parsed_extension() {
            let reason = format!("extension {oid} does not parse");
            return Err(ChainError::Malformed { link, reason });
        }

        // Limitation: name constraints are not enforced, so any certificate carrying them
        // is refused rather than trusted beyond its constraints.
        if ext.oid == OID_X509_EXT_NAME_CONSTRAINTS {
            let subject = subject.to_owned();
            return Err(ChainError::UnsupportedConstraint { link, subject, oid });
        }
        if ext.critical && !ALLOWED_CRITICAL.contains(&oid.as_str()) {
            let subject = subject.to_owned();
            return Err(ChainError::UnknownCriticalExtension { link, subject, oid });
        }
    }
    Ok(())
}

/// Step 6: issuer name matches and the signature verifies.
fn check_issued_by(
    cert: &X509Certificate<'_>,
    link: Link,
    subject: &str,
    signer: &X509Certificate<'_>,
) -> Result<(), ChainError> {
    if cert.issuer().as_raw() != signer.subject().as_raw() {
        return Err(ChainError::IssuerMismatch {
            link,
            subject: subject.to_owned(),
        });
    }
    signature::check_certificate_signature(cert, link, subject, signer)
}

/// Step 7: notBefore <= now <= notAfter.
fn check_validity(
    cert: &X509Certificate<'_>,
    link: Link,
    subject: &str,
    now_unix: i64,
) -> Result<(), ChainError> {
    let validity = cert.validity();
    let subject = subject.to_owned();

    if now_unix < validity.not_before.timestamp() {
        return Err(ChainError::NotYetValid { link, subject });
    }
    if now_unix > validity.not_after.timestamp() {
        return Err(ChainError::Expired { link, subject });
    }
    Ok(())
}

/// Step 8: a signer is a CA whose key usage, if stated, allows certificate signing.
fn check_may_sign(cert: &X509Certificate<'_>, link: Link, subject: &str) -> Result<(), ChainError> {
    let malformed = |what: &str| ChainError::Malformed {
        link,
        reason: format!("{what} extension is invalid or repeated"),
    };

    let constraints = cert
        .basic_constraints()
        .map_err(|_| malformed("basic constraints"))?;
    if !constraints.is_some_and(|bc| bc.value.ca) {
        let subject = subject.to_owned();
        return Err(ChainError::NotCa { link, subject });
    }

    let usage = cert.key_usage().map_err(|_| malformed("key usage"))?;
    if usage.is_some_and(|ku| !ku.value.key_cert_sign()) {
        let subject = subject.to_owned();
        return Err(ChainError::KeyUsage { link, subject });
    }
    Ok(())
}

/// Step 9: the tightest pathLenConstraint seen so far on the way down.
#[derive(Default)]
struct PathLenBudget {
    tightest: Option<PathLenConstraint>,
}

/// A CA's pathLenConstraint and how much of it is left.
struct PathLenConstraint {
    /// Intermediate CAs still allowed further down.
    left: u32,
    /// The constraint as written in the CA certificate.
    limit: u32,
    /// The CA that set it.
    link: Link,
    /// Its subject.
    subject: String,
}

impl PathLenBudget {
    /// Takes `cert`'s own pathLenConstraint into account for the certificates below it.
    fn constrain(&mut self, cert: &X509Certificate<'_>, link: Link, subject: &str) {
        let Ok(Some(bc)) = cert.basic_constraints() else {
            return;
        };
        let Some(limit) = bc.value.path_len_constraint else {
            return;
        };

        // On a tie the nearer CA is named, as it is the one a reader will look at.
        if self.tightest.as_ref().is_none_or(|t| limit <= t.left) {
            self.tightest = Some(PathLenConstraint {
                left: limit,
                limit,
                link,
                subject: subject.to_owned(),
            });
        }
    }

    /// Counts `cert`, an intermediate CA, against the tightest constraint above it.
    fn descend(&mut self, cert: &X509Certificate<'_>) -> Result<(), ChainError> {
        let self_issued = cert.issuer().as_raw() == cert.subject().as_raw();
        let Some(tightest) = &mut self.tightest else {
            return Ok(());
        };
        if self_issued {
            return Ok(());
        }

        if tightest.left == 0 {
            return Err(ChainError::PathLen {
                link: tightest.link,
                subject: tightest.subject.clone(),
                limit: tightest.limit,
            });
        }
        tightest.left -= 1;
        Ok(())
    }
}

/// The display form of a name: RFC 4514-style text, escaped and bounded.
fn name_text(name: &X509Name<'_>) -> String {
    describe(&name.to_string())
}

/// The public view of a certificate that passed every check.
fn validated(der: &[u8], cert: &X509Certificate<'_>) -> ValidatedCert {
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(describe);

    ValidatedCert {
        subject: name_text(cert.subject()),
        common_name,
        spki_der: cert.public_key().raw.to_vec(),
        is_ca: cert.is_ca(),
        der: der.to_vec(),
    }
}
