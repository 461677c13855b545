//! Row 4 of the EK policy: names whose multi-valued RDN SET is not in DER order. rcgen
//! re-encodes issuer names, so these certificates are written by hand with `der.rs` and
//! signed with ring over exactly those bytes.

use chipward_certs::chain::{self, ChainError, ChainPolicy, Link, TrustAnchor};
use rcgen::KeyPair;

use super::common::NOW;
use super::der::{self, EcKey, Tbs};
use super::{Ca, LEAF, assert_fails, tpm_name_one_rdn, validate};

/// A CA name with one RDN holding O and CN: (DER order, reverse order).
fn two_value_rdn(common_name: &str) -> (Vec<u8>, Vec<u8>) {
    let org = der::attribute(der::ORG, &der::printable("Example TPM Vendor"));
    let cn = der::attribute(der::CN, &der::utf8(common_name));
    let country = der::set_as_given(&[&der::attribute(der::COUNTRY, &der::printable("DE"))]);

    let sorted = der::der_order(&[&org, &cn]);
    let reversed = [sorted[1], sorted[0]];
    assert_ne!(sorted, reversed);
    (
        der::name(&[&country, &der::set_as_given(&sorted)]),
        der::name(&[&country, &der::set_as_given(&reversed)]),
    )
}

/// The name `CN=unknown`.
fn unknown_name() -> Vec<u8> {
    der::name(&[&der::set_as_given(&[&der::attribute(
        der::CN,
        &der::utf8("unknown"),
    )])])
}

/// A self-signed root whose subject and issuer are `name`.
fn hand_root(name: &[u8], key: &EcKey) -> Vec<u8> {
    Tbs {
        serial: 1,
        issuer: name,
        subject: name,
        spki: &key.spki(),
        extensions: der::ca_extensions(),
    }
    .sign(key)
}

/// An EK certificate issued under `issuer`, with a critical TPM subjectAltName.
fn hand_ek(issuer: &[u8], subject: &[u8], signer: &EcKey) -> Vec<u8> {
    let mut extensions = der::ek_extensions();
    let san = der::directory_name_san(&tpm_name_one_rdn());
    extensions.push(der::extension(&[2, 5, 29, 17], true, &san));
    Tbs {
        serial: 7,
        issuer,
        subject,
        spki: &EcKey::generate().spki(),
        extensions,
    }
    .sign(signer)
}

#[test]
fn accepts_non_der_set_order_matching_its_anchor_byte_for_byte() {
    let (_, non_der) = two_value_rdn("EK Root");
    let root_key = EcKey::generate();
    let root = hand_root(&non_der, &root_key);
    let ek = hand_ek(&non_der, &unknown_name(), &root_key);

    let anchor = TrustAnchor::from_der(&root).unwrap();
    let valid = validate(&[ek], &[anchor]).unwrap();
    assert_eq!(valid.tpm().version(), Some("id:00070002"));
}

#[test]
fn accepts_empty_subject_ek_under_a_non_der_issuer() {
    let (_, non_der) = two_value_rdn("EK Root");
    let root_key = EcKey::generate();
    let root = hand_root(&non_der, &root_key);
    let ek = hand_ek(&non_der, &der::name(&[]), &root_key);

    let anchor = TrustAnchor::from_der(&root).unwrap();
    let valid = validate(&[ek], &[anchor]).unwrap();
    assert_eq!(valid.ek_cert().subject(), "");
    assert_eq!(valid.tpm().manufacturer(), Some("id:54434700"));
}

#[test]
fn accepts_non_der_set_order_through_an_intermediate() {
    let (root_name, _) = two_value_rdn("EK Root");
    let (_, ca_name) = two_value_rdn("EK CA");
    let root_key = EcKey::generate();
    let ca_key = EcKey::generate();
    let root = hand_root(&root_name, &root_key);
    let ca = Tbs {
        serial: 2,
        issuer: &root_name,
        subject: &ca_name,
        spki: &ca_key.spki(),
        extensions: der::ca_extensions(),
    }
    .sign(&root_key);
    let ek = hand_ek(&ca_name, &unknown_name(), &ca_key);

    let anchor = TrustAnchor::from_der(&root).unwrap();
    let valid = validate(&[ek, ca.clone()], &[anchor]).unwrap();
    assert_eq!(valid.certs()[1].der(), &ca[..]);
}

#[test]
fn rejects_issuer_reencoded_in_der_order_when_the_anchor_is_not() {
    let (der_name, non_der) = two_value_rdn("EK Root");
    let root_key = EcKey::generate();
    let root = hand_root(&non_der, &root_key);
    let ek = hand_ek(&der_name, &unknown_name(), &root_key);

    let anchor = TrustAnchor::from_der(&root).unwrap();
    assert_fails!(validate(&[ek], &[anchor]), IssuerMismatch, LEAF);
}

#[test]
fn rejects_issuer_reencoded_in_der_order_when_the_intermediate_is_not() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let (der_name, non_der) = two_value_rdn("EK CA");
    let ca_key = EcKey::generate();
    let root_name = subject_of(&root.der);
    let ca = Tbs {
        serial: 3,
        issuer: &root_name,
        subject: &non_der,
        spki: &ca_key.spki(),
        extensions: der::ca_extensions(),
    };
    // Signed by the rcgen root's key through a ring key made from its PKCS#8.
    let ca = sign_with_rcgen_key(&ca.encode(), &root.key);
    let anchors = [root.anchor()];

    let good = hand_ek(&non_der, &unknown_name(), &ca_key);
    assert!(validate(&[good, ca.clone()], &anchors).is_ok());
    let ek = hand_ek(&der_name, &unknown_name(), &ca_key);
    assert_fails!(validate(&[ek, ca], &anchors), IssuerMismatch, LEAF);
}

#[test]
fn signature_covers_the_set_order_as_received() {
    let (der_name, non_der) = two_value_rdn("EK Root");
    let root_key = EcKey::generate();
    let root = hand_root(&non_der, &root_key);
    let ek = hand_ek(&non_der, &non_der, &root_key);

    // Re-encoding the EK's subject in DER order (same length, outside any length field)
    // is exactly what a validator that re-encodes names would do before checking.
    let anchor = TrustAnchor::from_der(&root).unwrap();
    assert!(validate(std::slice::from_ref(&ek), std::slice::from_ref(&anchor)).is_ok());
    let mut reencoded = ek.clone();
    let after_issuer = der::find(&ek, &non_der) + non_der.len();
    let subject_at = after_issuer + der::find(&ek[after_issuer..], &non_der);
    reencoded[subject_at..subject_at + der_name.len()].copy_from_slice(&der_name);
    assert_fails!(validate(&[reencoded], &[anchor]), BadSignature, LEAF);
}

#[test]
fn rejects_names_holding_bytes_the_parser_would_drop() {
    let root_key = EcKey::generate();
    let rdn = der::set_as_given(&[&der::attribute(der::CN, &der::utf8("EK Root"))]);
    let root_name = der::name(&[&rdn]);
    let anchor = TrustAnchor::from_der(&hand_root(&root_name, &root_key)).unwrap();

    // x509-parser stops reading a Name at the NULL and keeps only the bytes before it, so
    // without the whole-name check two different names could compare equal.
    let with_null = der::name(&[&rdn, &der::tlv(0x05, &[])]);
    let ek = hand_ek(&with_null, &unknown_name(), &root_key);
    assert_fails!(
        validate(std::slice::from_ref(&ek), std::slice::from_ref(&anchor)),
        Malformed,
        LEAF
    );
    let strict = chain::validate_chain(&[ek], &anchor, NOW, &ChainPolicy::default());
    assert_fails!(strict, Malformed, LEAF);

    let odd_root = hand_root(&with_null, &root_key);
    let err = TrustAnchor::from_der(&odd_root).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Malformed {
                link: Link::TrustAnchor,
                ..
            }
        ),
        "{err}"
    );
}

/// The raw subject of a certificate (as an issuer name for certificates it signs).
fn subject_of(cert_der: &[u8]) -> Vec<u8> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).unwrap();
    cert.subject().as_raw().to_vec()
}

/// A certificate of `tbs` signed with ECDSA P-384 / SHA-384 by an rcgen key pair.
fn sign_with_rcgen_key(tbs: &[u8], key: &KeyPair) -> Vec<u8> {
    let signature = rcgen::SigningKey::sign(key, tbs).unwrap();
    let algorithm = der::seq(&[&der::oid(&[1, 2, 840, 10045, 4, 3, 3])]);
    let bits = [&[0x00][..], &signature].concat();
    der::seq(&[tbs, &algorithm, &der::tlv(0x03, &bits)])
}
