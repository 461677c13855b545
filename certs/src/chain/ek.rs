//! Validation of TPM endorsement-key (EK) certificate chains, as TPM vendors really issue
//! them, up to one of several trust anchors.
//!
//! Owns [`validate_ek_chain`] and its proof type [`ValidatedEkChain`], which only this module
//! can build. Attacker-controlled input: every byte handed in as the chain, including the
//! NV-index padding after the EK certificate. The anchors are configuration and trusted, but
//! each must still be a CA valid at `now`, as in [`validate_chain`](super::validate_chain).
//!
//! # Policy: what EK certificates do, and what we make of it
//!
//! The chain rules are those of [`validate_chain`](super::validate_chain): signatures over
//! the TBS bytes as received, validity at `now`, cA and keyCertSign on every signer, path
//! length, depth and size limits. Only these departures apply, and only to the EK
//! certificate (the leaf), never to the CAs above it (SAN is subjectAltName, EKU
//! extKeyUsage; each row is explained below the table):
//!
//! | # | Real EK certificates | We accept | We still refuse |
//! | --- | --- | --- | --- |
//! | 1 | NV padding after the DER | a `0xFF` run after the leaf | `0x00`, other bytes, padded CAs |
//! | 2 | an empty subject | it, with a critical SAN | it, with no SAN or a non-critical one |
//! | 3 | a critical dirName-only SAN | it, read into [`TpmAttributes`] | repeated or non-string TPM data |
//! | 4 | RDN SETs out of DER order | them, matched and verified as received | any re-encoded name |
//! | 5 | keyEncipherment or keyAgreement | any leaf key usage or EKU | critical 2.5.29.9, unknown critical |
//!
//! 1. A TPM's NV index is sized larger than the certificate it holds, and a reader that
//!    takes the whole area gets the unwritten rest too; some TPMs fill it with `0xFF` to a
//!    fixed 1600 bytes. After the first complete DER element of the leaf, a run of `0xFF`
//!    is cut off before parsing and counted in [`ValidatedEkChain::padding_len`]. Zeros are
//!    refused like any other trailing byte: erased NV reads as `0xFF`, no TPM we know of
//!    pads with zeros, and each accepted filler is one more way to encode the same input.
//!    Padding counts toward [`ChainPolicy::max_cert_len`]; CA certificates get none.
//! 2. The TCG EK Credential Profile lets the subject be empty and name the TPM in
//!    subjectAltName instead. RFC 5280 section 4.2.1.6 then requires that extension to be
//!    present and critical, and so do we ([`ChainError::EmptySubject`]).
//! 3. subjectAltName is critical (swtpm marks it so even with `CN=unknown`) and holds one
//!    directoryName with tcg-at-tpmManufacturer (2.23.133.2.1), tcg-at-tpmModel
//!    (2.23.133.2.2) and tcg-at-tpmVersion (2.23.133.2.3), one RDN each as swtpm writes
//!    them, or together in one multi-valued RDN. Both layouts are read. A TPM attribute
//!    stated twice, one whose value is not a string, and an entry or directoryName that does
//!    not decode to its end are [`ChainError::Malformed`].
//! 4. Some vendor CAs write a multi-valued RDN whose SET members are not in DER order, in
//!    their subject and so in the issuer of what they sign. x509-parser reads SET members
//!    in any order; names are compared byte for byte as received and signatures checked
//!    over the TBS bytes as received, so nothing is ever re-encoded and such a chain passes
//!    when both sides carry the same bytes. An issuer in another encoding of the signer's
//!    name, even one equal after sorting, is [`ChainError::IssuerMismatch`]; reordering a
//!    signed SET is [`ChainError::BadSignature`].
//! 5. EK keys decrypt and never sign: keyUsage is keyEncipherment (RSA) or keyAgreement
//!    (ECC), extKeyUsage names tcg-kp-EKCertificate (2.23.133.8.1), and certificatePolicies
//!    and subjectDirectoryAttributes (2.5.29.9, the TPM specification version) come along.
//!    swtpm marks basicConstraints, keyUsage and subjectAltName critical and the rest not.
//!    As for any leaf, the EK certificate's key usages are not required to allow anything;
//!    critical extensions must be among [`ALLOWED_CRITICAL`](super::ALLOWED_CRITICAL), which
//!    covers what real EK certificates mark critical. subjectDirectoryAttributes is not in
//!    it: RFC 5280 section 4.2.1.8 forbids marking it critical, and no EK certificate we
//!    know of does ([`ChainError::UnknownCriticalExtension`]).
//!
//! # Checks, in order
//!
//! 1. Bounds, before anything is parsed, on the input as given (padding included).
//! 2. A last certificate byte-identical to one of the anchors is dropped; nothing left is
//!    [`ChainError::Empty`].
//! 3. Trailing `0xFF` padding is cut from the leaf (row 1).
//! 4. Every certificate parses strictly, as in `validate_chain` step 3.
//! 5. The anchors whose subject equals the top certificate's issuer, byte for byte, are the
//!    candidates; with none, the top certificate fails with [`ChainError::IssuerMismatch`].
//! 6. Each candidate, in the order given, runs steps 4-9 of `validate_chain`; the first to
//!    pass is used. When none passes, the error reported is the one from the candidate under
//!    which the most chain signatures verified (the earliest such candidate on a tie): an
//!    anchor that only shares the name fails at the top certificate's signature, and must
//!    not hide a fault further down the chain seen through the right anchor.
//! 7. The EK certificate's own rules: an empty subject needs a critical subjectAltName
//!    (row 2) and the TPM attributes in it must be well-formed (row 3).
//!
//! It deliberately does not check revocation, certificate policies, or that the EK key
//! matches a TPM: that takes credential activation ([`crate::tpm_credential`]).

use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, FromDer as _};

use super::tpm_attributes::{self, TpmAttributes};
use super::{
    ChainError, ChainPolicy, Link, TrustAnchor, ValidatedCert, check_bounds, check_path, name_text,
    parse_certificate, validated,
};

/// The byte an erased or unwritten NV area reads as, and the only padding accepted.
const NV_PADDING: u8 = 0xFF;

/// An EK certificate chain that passed [`validate_ek_chain`], with what the EK certificate
/// says about the TPM.
///
/// Only [`validate_ek_chain`] builds this type and its contents cannot be changed
/// afterwards, so holding one proves the checks ran on exactly what it holds. It is
/// deliberately not a [`ValidatedChain`](super::ValidatedChain) and yields none: code that
/// requires a chip chain's strictness cannot be handed an EK chain.
#[derive(Clone, Debug)]
pub struct ValidatedEkChain {
    certs: Vec<ValidatedCert>,
    anchor_index: usize,
    padding_len: usize,
    tpm: TpmAttributes,
}

impl ValidatedEkChain {
    /// The validated certificates, EK certificate first, trust anchor not included; never
    /// empty. The EK certificate's DER is as received with its NV padding cut off.
    pub fn certs(&self) -> &[ValidatedCert] {
        &self.certs
    }

    /// The EK certificate.
    pub fn ek_cert(&self) -> &ValidatedCert {
        self.certs
            .first()
            .expect("validate_ek_chain never returns an empty chain")
    }

    /// The endorsement key's SubjectPublicKeyInfo, DER, as the EK certificate carries it.
    pub fn ek_spki_der(&self) -> &[u8] {
        self.ek_cert().spki_der()
    }

    /// The TPM manufacturer, model and version from the EK certificate's subjectAltName;
    /// each is `None` when the certificate does not state it.
    pub fn tpm(&self) -> &TpmAttributes {
        &self.tpm
    }

    /// The position in the `anchors` slice of the trust anchor the chain validated to.
    pub fn anchor_index(&self) -> usize {
        self.anchor_index
    }

    /// How many `0xFF` padding bytes were cut off after the EK certificate; 0 if none.
    pub fn padding_len(&self) -> usize {
        self.padding_len
    }
}

/// Validates an EK certificate chain, `chain_leaf_first[0]` being the EK certificate
/// possibly followed by NV padding, up to whichever of `anchors` its top certificate names,
/// at time `now_unix` (seconds since the Unix epoch, UTC). See the module notes for the
/// policy and the checks, in order.
///
/// ```
/// use chipward_certs::chain::{ChainPolicy, TrustAnchor, validate_ek_chain};
/// use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
/// use rcgen::{KeyUsagePurpose, PKCS_ECDSA_P384_SHA384, PublicKeyData as _};
///
/// let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
/// let mut ca = CertificateParams::new(Vec::<String>::new())?;
/// ca.distinguished_name.push(DnType::CommonName, "Example TPM EK CA");
/// ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
/// ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
/// let ca_der = ca.self_signed(&ca_key)?.der().to_vec();
///
/// let mut ek = CertificateParams::new(Vec::<String>::new())?;
/// ek.distinguished_name.push(DnType::CommonName, "unknown");
/// ek.key_usages = vec![KeyUsagePurpose::KeyAgreement];
/// let ek_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
/// let mut ek_nv = ek.signed_by(&ek_key, &Issuer::new(ca, ca_key))?.der().to_vec();
/// ek_nv.resize(ek_nv.len() + 300, 0xFF); // as read from a larger NV index
///
/// let anchors = [TrustAnchor::from_der(&ca_der)?];
/// let now = 1_796_342_400;
/// let ek_chain = validate_ek_chain(&[ek_nv], &anchors, now, &ChainPolicy::default())?;
/// assert_eq!(ek_chain.padding_len(), 300);
/// assert_eq!(ek_chain.ek_spki_der(), ek_key.subject_public_key_info());
/// assert_eq!(ek_chain.tpm().manufacturer(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn validate_ek_chain(
    chain_leaf_first: &[Vec<u8>],
    anchors: &[TrustAnchor],
    now_unix: i64,
    policy: &ChainPolicy,
) -> Result<ValidatedEkChain, ChainError> {
    // 1. Bounds, on the input as given.
    check_bounds(chain_leaf_first, policy)?;

    // 2. Drop a copy of any anchor at the end.
    let chain = match chain_leaf_first.split_last() {
        Some((last, rest)) if anchors.iter().any(|a| a.der == *last) => rest,
        _ => chain_leaf_first,
    };
    let Some((leaf_nv, cas)) = chain.split_first() else {
        return Err(ChainError::Empty);
    };

    // 3. NV padding, leaf only.
    let (leaf_der, padding_len) = strip_nv_padding(leaf_nv);
    let ders: Vec<&[u8]> = std::iter::once(leaf_der)
        .chain(cas.iter().map(Vec::as_slice))
        .collect();

    // 4. Parse everything strictly.
    let certs = ders
        .iter()
        .enumerate()
        .map(|(index, der)| parse_certificate(der, Link::Certificate(index)))
        .collect::<Result<Vec<_>, _>>()?;

    // 5-6. The anchors the top certificate names, until one validates the path.
    let anchor_index = check_path_to_any(&certs, anchors, now_unix)?;

    // 7. The EK certificate's own rules.
    let leaf = &certs[0];
    check_ek_subject(leaf)?;
    let tpm = tpm_attributes::from_subject_alt_name(leaf, Link::Certificate(0))?;

    Ok(ValidatedEkChain {
        certs: ders
            .iter()
            .zip(&certs)
            .map(|(der, c)| validated(der, c))
            .collect(),
        anchor_index,
        padding_len,
        tpm,
    })
}

/// Step 3: the leaf without a trailing run of `0xFF` after its first DER element, and the
/// run's length. Anything else is returned whole, for the parser to refuse.
// Limitation: an EK certificate that a TPM stores inside a vendor wrapper (a header before
// the DER) is refused as malformed; callers must unwrap it before validation.
fn strip_nv_padding(leaf: &[u8]) -> (&[u8], usize) {
    let Ok((after, _)) = Any::from_der(leaf) else {
        return (leaf, 0);
    };
    if after.is_empty() || after.iter().any(|&b| b != NV_PADDING) {
        return (leaf, 0);
    }
    (&leaf[..leaf.len() - after.len()], after.len())
}

/// Steps 5-6: the index of the first anchor under which the path validates.
fn check_path_to_any(
    certs: &[X509Certificate<'_>],
    anchors: &[TrustAnchor],
    now_unix: i64,
) -> Result<usize, ChainError> {
    let top = certs.last().expect("the caller refuses an empty chain");
    let top_link = Link::Certificate(certs.len() - 1);
    let issuer = top.issuer().as_raw();

    // (signatures verified, error) of the candidate that got furthest so far.
    let mut furthest: Option<(usize, ChainError)> = None;
    for (index, anchor) in anchors.iter().enumerate() {
        if anchor.subject_der != issuer {
            continue;
        }

        let anchor_cert = parse_certificate(&anchor.der, Link::TrustAnchor)?;
        let mut verified = 0;
        let Err(error) = check_path(&anchor_cert, certs, now_unix, &mut verified) else {
            return Ok(index);
        };
        if furthest.as_ref().is_none_or(|(most, _)| verified > *most) {
            furthest = Some((verified, error));
        }
    }

    Err(match furthest {
        Some((_, error)) => error,
        None => ChainError::IssuerMismatch {
            link: top_link,
            subject: name_text(top.subject()),
        },
    })
}

/// Step 7, row 2: an empty subject must be stood in for by a critical subjectAltName.
fn check_ek_subject(leaf: &X509Certificate<'_>) -> Result<(), ChainError> {
    if leaf.subject().iter().next().is_some() {
        return Ok(());
    }

    let link = Link::Certificate(0);
    match leaf.subject_alternative_name() {
        Ok(Some(san)) if san.critical => Ok(()),
        Ok(_) => Err(ChainError::EmptySubject { link }),
        Err(_) => Err(ChainError::Malformed {
            link,
            reason: "subject alternative name extension is invalid or repeated".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER SEQUENCE of two bytes of content.
    const ELEMENT: [u8; 4] = [0x30, 0x02, 0x05, 0x00];

    #[test]
    fn strips_only_a_run_of_ff_after_one_element() {
        let padded = [&ELEMENT[..], &[0xFF; 7]].concat();
        assert_eq!(strip_nv_padding(&padded), (&ELEMENT[..], 7));
        assert_eq!(strip_nv_padding(&ELEMENT), (&ELEMENT[..], 0));
    }

    #[test]
    fn keeps_zeros_mixed_padding_and_garbage_whole() {
        let zeros = [&ELEMENT[..], &[0x00; 4]].concat();
        let mixed = [&ELEMENT[..], &[0xFF, 0xFF, 0x01, 0xFF]].concat();
        let truncated = [0x30, 0x05, 0x05, 0x00];

        for input in [&zeros[..], &mixed[..], &truncated[..], &[][..]] {
            assert_eq!(strip_nv_padding(input), (input, 0), "{input:02x?}");
        }
    }
}
