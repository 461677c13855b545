//! EK certificate chains: each tolerance of `validate_ek_chain` accepts what real EK
//! certificates do, and has a negative twin that must still fail. Certificates are made
//! with rcgen where it can express them and with the DER writer in `der.rs` (signed with
//! ring) where it cannot; `swtpm.rs` runs the same checks on swtpm's real EK certificates.

#![cfg(test)]

#[path = "../common/mod.rs"]
mod common;
mod der;
mod names;
mod swtpm;

use chipward_certs::chain::{
    self, ChainError, ChainPolicy, Link, TrustAnchor, ValidatedEkChain, validate_ek_chain,
};
use common::{NOW, issue, key_for, params, rsa_key};
use rcgen::{
    CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
    PublicKeyData as _, SignatureAlgorithm,
};

/// A CA made with rcgen: its certificate and key.
struct Ca {
    der: Vec<u8>,
    key: KeyPair,
}

impl Ca {
    /// A self-signed root.
    fn root(common_name: &str, alg: &'static SignatureAlgorithm) -> Self {
        let key = if alg == &rcgen::PKCS_RSA_SHA256 {
            rsa_key(alg)
        } else {
            key_for(alg)
        };
        let der = params(common_name, Some(None))
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec();
        Self { der, key }
    }

    /// An intermediate CA below `self`, with a P-384 key.
    fn intermediate(&self, common_name: &str) -> Self {
        let key = key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
        let der = issue(&params(common_name, Some(None)), &key, &self.der, &self.key);
        Self { der, key }
    }

    fn anchor(&self) -> TrustAnchor {
        TrustAnchor::from_der(&self.der).unwrap()
    }

    /// Issues `params` for a fresh P-384 EK key.
    fn issue_ek(&self, params: &CertificateParams) -> Vec<u8> {
        let ek_key = key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
        issue(params, &ek_key, &self.der, &self.key)
    }
}

/// An ECC EK certificate as TPM vendors issue it: CN "unknown", keyAgreement only,
/// tcg-kp-EKCertificate, TPM specification info in subjectDirectoryAttributes.
fn ek_params() -> CertificateParams {
    let mut ek = params("unknown", None);
    ek.key_usages = vec![KeyUsagePurpose::KeyAgreement];
    ek.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(vec![2, 23, 133, 8, 1])];
    ek.custom_extensions.push(tpm_spec_attributes(false));
    ek
}

/// subjectDirectoryAttributes holding tcg-at-tpmSpecification ("2.0", level 0, rev 164).
fn tpm_spec_attributes(critical: bool) -> CustomExtension {
    let spec = der::seq(&[
        &der::utf8("2.0"),
        &der::tlv(0x02, &[0x00]),
        &der::tlv(0x02, &[0x00, 0xa4]),
    ]);
    let attribute = der::seq(&[
        &der::oid(&[2, 23, 133, 2, 16]),
        &der::set_as_given(&[&spec]),
    ]);
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 9], der::seq(&[&attribute]));
    ext.set_criticality(critical);
    ext
}

/// The three TPM attributes, encoded.
fn tpm_attributes() -> [Vec<u8>; 3] {
    [
        der::attribute(der::TPM_MANUFACTURER, &der::utf8("id:54434700")),
        der::attribute(der::TPM_MODEL, &der::utf8("CW-TPM 9")),
        der::attribute(der::TPM_VERSION, &der::utf8("id:00070002")),
    ]
}

/// A directoryName with the TPM attributes, one RDN each (as swtpm writes it).
fn tpm_name_one_per_rdn() -> Vec<u8> {
    let [m, mo, v] = tpm_attributes();
    let rdns = [&m, &mo, &v].map(|a| der::set_as_given(&[a]));
    der::name(&[&rdns[0], &rdns[1], &rdns[2]])
}

/// A directoryName with the TPM attributes in one multi-valued RDN, in DER order.
fn tpm_name_one_rdn() -> Vec<u8> {
    let [m, mo, v] = tpm_attributes();
    der::name(&[&der::set_as_given(&der::der_order(&[&m, &mo, &v]))])
}

/// subjectAltName holding only `directory_name`.
fn san(directory_name: &[u8], critical: bool) -> CustomExtension {
    let mut ext =
        CustomExtension::from_oid_content(&[2, 5, 29, 17], der::directory_name_san(directory_name));
    ext.set_criticality(critical);
    ext
}

fn validate(chain: &[Vec<u8>], anchors: &[TrustAnchor]) -> Result<ValidatedEkChain, ChainError> {
    validate_ek_chain(chain, anchors, NOW, &ChainPolicy::default())
}

/// Asserts `result` failed with `$variant` about `$link`.
macro_rules! assert_fails {
    ($result:expr, $variant:ident, $link:expr) => {{
        let err = $result.unwrap_err();
        assert!(
            matches!(err, ChainError::$variant { link, .. } if link == $link),
            "expected {} at {}, got {err}",
            stringify!($variant),
            $link
        );
    }};
}
pub(crate) use assert_fails;

const LEAF: Link = Link::Certificate(0);

// Row 3: a critical subjectAltName holding only a directoryName with the TPM attributes.

#[test]
fn accepts_critical_san_with_tpm_attributes_one_per_rdn() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = ek_params();
    ek.custom_extensions
        .push(san(&tpm_name_one_per_rdn(), true));

    let valid = validate(&[root.issue_ek(&ek)], &[root.anchor()]).unwrap();
    assert_eq!(valid.tpm().manufacturer(), Some("id:54434700"));
    assert_eq!(valid.tpm().model(), Some("CW-TPM 9"));
    assert_eq!(valid.tpm().version(), Some("id:00070002"));
}

#[test]
fn accepts_tpm_attributes_in_one_multi_valued_rdn() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = ek_params();
    ek.custom_extensions.push(san(&tpm_name_one_rdn(), true));

    let valid = validate(&[root.issue_ek(&ek)], &[root.anchor()]).unwrap();
    assert_eq!(valid.tpm().manufacturer(), Some("id:54434700"));
    assert_eq!(valid.tpm().model(), Some("CW-TPM 9"));
    assert_eq!(valid.tpm().version(), Some("id:00070002"));
}

#[test]
fn reports_no_tpm_attributes_when_there_is_no_san() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let valid = validate(&[root.issue_ek(&ek_params())], &[root.anchor()]).unwrap();

    assert_eq!(valid.tpm(), &chain::TpmAttributes::default());
    assert_eq!(valid.ek_cert().common_name(), Some("unknown"));
}

#[test]
fn rejects_tpm_attribute_stated_twice() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let [m, ..] = tpm_attributes();
    let other = der::attribute(der::TPM_MANUFACTURER, &der::utf8("id:00001014"));
    let twice = der::name(&[&der::set_as_given(&[&m]), &der::set_as_given(&[&other])]);
    let mut ek = ek_params();
    ek.custom_extensions.push(san(&twice, true));

    assert_fails!(
        validate(&[root.issue_ek(&ek)], &[root.anchor()]),
        Malformed,
        LEAF
    );
}

#[test]
fn rejects_tpm_attribute_that_is_not_a_string() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let number = der::attribute(der::TPM_MODEL, &der::tlv(0x02, &[0x09]));
    let mut ek = ek_params();
    ek.custom_extensions
        .push(san(&der::name(&[&der::set_as_given(&[&number])]), true));

    assert_fails!(
        validate(&[root.issue_ek(&ek)], &[root.anchor()]),
        Malformed,
        LEAF
    );
}

#[test]
fn rejects_directory_name_that_does_not_parse() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = ek_params();
    // A Name whose only RDN is an empty SET.
    ek.custom_extensions
        .push(san(&der::name(&[&der::set_as_given(&[])]), true));

    assert_fails!(
        validate(&[root.issue_ek(&ek)], &[root.anchor()]),
        Malformed,
        LEAF
    );
}

// Row 2: an empty subject, stood in for by a critical subjectAltName.

fn empty_subject_ek(san_ext: Option<CustomExtension>) -> CertificateParams {
    let mut ek = ek_params();
    ek.distinguished_name = rcgen::DistinguishedName::new();
    ek.custom_extensions.extend(san_ext);
    ek
}

#[test]
fn accepts_empty_subject_with_critical_san() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = empty_subject_ek(Some(san(&tpm_name_one_per_rdn(), true)));

    let valid = validate(&[root.issue_ek(&ek)], &[root.anchor()]).unwrap();
    assert_eq!(valid.ek_cert().subject(), "");
    assert_eq!(valid.ek_cert().common_name(), None);
    assert_eq!(valid.tpm().model(), Some("CW-TPM 9"));
}

#[test]
fn rejects_empty_subject_without_san() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = root.issue_ek(&empty_subject_ek(None));

    assert_fails!(
        validate(std::slice::from_ref(&ek), &[root.anchor()]),
        EmptySubject,
        LEAF
    );
    // The strict chip validator is unchanged: it does not look at the leaf's names.
    assert!(chain::validate_chain(&[ek], &root.anchor(), NOW, &ChainPolicy::default()).is_ok());
}

#[test]
fn rejects_empty_subject_with_non_critical_san() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = empty_subject_ek(Some(san(&tpm_name_one_per_rdn(), false)));

    assert_fails!(
        validate(&[root.issue_ek(&ek)], &[root.anchor()]),
        EmptySubject,
        LEAF
    );
}

// Row 1: NV padding after the EK certificate.

#[test]
fn accepts_ff_padding_after_the_ek_certificate() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = root.issue_ek(&ek_params());
    let padded = [&ek[..], &[0xFF; 100]].concat();

    let valid = validate(&[padded], &[root.anchor()]).unwrap();
    assert_eq!(valid.padding_len(), 100);
    assert_eq!(valid.ek_cert().der(), &ek[..]);
    assert_eq!(valid.ek_cert().der(), &ek[..]);
}

#[test]
fn rejects_zero_padding_and_junk_after_the_ek_certificate() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = root.issue_ek(&ek_params());

    let tails: [&[u8]; 4] = [&[0x00; 100], &[0xFF, 0x00], &[0x30, 0x00], &[0xFE]];
    for tail in tails {
        let padded = [&ek[..], tail].concat();
        assert_fails!(validate(&[padded], &[root.anchor()]), Malformed, LEAF);
    }
}

#[test]
fn rejects_ff_padding_after_a_ca_certificate() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ca = root.intermediate("EK CA");
    let ek = ca.issue_ek(&ek_params());
    let padded_ca = [&ca.der[..], &[0xFF; 16]].concat();

    assert!(validate(&[ek.clone(), ca.der.clone()], &[root.anchor()]).is_ok());
    assert_fails!(
        validate(&[ek, padded_ca], &[root.anchor()]),
        Malformed,
        Link::Certificate(1)
    );
}

#[test]
fn padding_counts_toward_the_size_limit() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = root.issue_ek(&ek_params());
    let policy = ChainPolicy::default();
    ek.resize(policy.max_cert_len + 1, 0xFF);

    let err = validate_ek_chain(&[ek], &[root.anchor()], NOW, &policy).unwrap_err();
    assert!(
        matches!(err, ChainError::TooLarge { index: 0, .. }),
        "{err}"
    );
}

#[test]
fn strict_chain_validation_still_refuses_padding() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = root.issue_ek(&ek_params());
    let padded = [&ek[..], &[0xFF; 100]].concat();

    let err =
        chain::validate_chain(&[padded], &root.anchor(), NOW, &ChainPolicy::default()).unwrap_err();
    assert!(
        matches!(err, ChainError::Malformed { link: LEAF, .. }),
        "{err}"
    );
}

// Row 5: EK key usage and the TCG extensions.

#[test]
fn accepts_ek_key_usages_without_digital_signature() {
    let root = Ca::root("EK Root", &rcgen::PKCS_RSA_SHA256);
    let anchors = [root.anchor()];

    // An ECC EK: keyAgreement only.
    assert!(validate(&[root.issue_ek(&ek_params())], &anchors).is_ok());

    // An RSA EK: keyEncipherment only, the key being an RSA-2048 one.
    let rsa_ek_key = rsa_key(&rcgen::PKCS_RSA_SHA256);
    let mut ek = ek_params();
    ek.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let der = issue(&ek, &rsa_ek_key, &root.der, &root.key);
    let valid = validate(&[der], &anchors).unwrap();
    assert_eq!(valid.ek_spki_der(), rsa_ek_key.subject_public_key_info());
}

#[test]
fn accepts_critical_extensions_ek_certificates_carry() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = ek_params();
    ek.custom_extensions
        .push(san(&tpm_name_one_per_rdn(), true));
    // certificatePolicies, critical, with one policy OID.
    let policies = der::seq(&[&der::seq(&[&der::oid(&[2, 23, 133, 2, 99])])]);
    let mut policies = CustomExtension::from_oid_content(&[2, 5, 29, 32], policies);
    policies.set_criticality(true);
    ek.custom_extensions.push(policies);

    assert!(validate(&[root.issue_ek(&ek)], &[root.anchor()]).is_ok());
}

#[test]
fn rejects_critical_subject_directory_attributes() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = ek_params();
    ek.custom_extensions = vec![tpm_spec_attributes(true)];

    assert_fails!(
        validate(&[root.issue_ek(&ek)], &[root.anchor()]),
        UnknownCriticalExtension,
        LEAF
    );
}

#[test]
fn rejects_unknown_critical_extension_on_the_ek_certificate() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = ek_params();
    let mut odd = CustomExtension::from_oid_content(&[2, 23, 133, 99, 1], der::seq(&[]));
    odd.set_criticality(true);
    ek.custom_extensions.push(odd);

    assert_fails!(
        validate(&[root.issue_ek(&ek)], &[root.anchor()]),
        UnknownCriticalExtension,
        LEAF
    );
}

#[test]
fn rejects_ca_whose_key_usage_is_an_ek_one() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ca_params = params("EK CA", Some(None));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    let ca_key = key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
    let ca = Ca {
        der: issue(&ca_params, &ca_key, &root.der, &root.key),
        key: ca_key,
    };
    let ek = ca.issue_ek(&ek_params());

    assert_fails!(
        validate(&[ek, ca.der.clone()], &[root.anchor()]),
        KeyUsage,
        Link::Certificate(1)
    );
}

// Algorithms: an RSA-2048 / SHA-256 signed chain and ECDSA P-384 chains.

#[test]
fn accepts_rsa_2048_sha256_signed_ek_chain() {
    let root = Ca::root("RSA EK Root", &rcgen::PKCS_RSA_SHA256);
    let mut ek = ek_params();
    ek.custom_extensions
        .push(san(&tpm_name_one_per_rdn(), true));

    let valid = validate(&[root.issue_ek(&ek)], &[root.anchor()]).unwrap();
    assert_eq!(valid.tpm().manufacturer(), Some("id:54434700"));
}

#[test]
fn accepts_p384_chain_through_an_intermediate() {
    let root = Ca::root("P-384 EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ca = root.intermediate("P-384 EK CA");
    let ek = ca.issue_ek(&ek_params());

    let valid = validate(&[ek, ca.der.clone()], &[root.anchor()]).unwrap();
    assert_eq!(valid.certs().len(), 2);
    assert_eq!(valid.certs()[1].common_name(), Some("P-384 EK CA"));
}

#[test]
fn rejects_flipped_signature_and_expired_ek() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let mut ek = root.issue_ek(&ek_params());
    let anchors = [root.anchor()];
    let after = common::DEV_NOT_AFTER;

    let expired = validate_ek_chain(
        std::slice::from_ref(&ek),
        &anchors,
        after,
        &ChainPolicy::default(),
    );
    assert_fails!(expired, Expired, Link::TrustAnchor);

    let last = ek.len() - 1;
    ek[last] ^= 1;
    assert_fails!(validate(&[ek], &anchors), BadSignature, LEAF);
}

#[test]
fn rejects_ek_certificate_used_as_a_signer() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek_key = key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = Ca {
        der: issue(&ek_params(), &ek_key, &root.der, &root.key),
        key: ek_key,
    };
    let below = ek.issue_ek(&params("below", None));

    assert_fails!(
        validate(&[below, ek.der.clone()], &[root.anchor()]),
        NotCa,
        Link::Certificate(1)
    );
}

// Anchor choice.

#[test]
fn picks_the_anchor_the_top_certificate_names() {
    let other = Ca::root("Other Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let root = Ca::root("EK Root", &rcgen::PKCS_RSA_SHA256);
    let ek = root.issue_ek(&ek_params());

    let valid = validate(std::slice::from_ref(&ek), &[other.anchor(), root.anchor()]).unwrap();
    assert_eq!(valid.anchor_index(), 1);
    assert_fails!(
        validate(std::slice::from_ref(&ek), &[other.anchor()]),
        IssuerMismatch,
        LEAF
    );
    assert_fails!(validate(&[ek], &[]), IssuerMismatch, LEAF);
}

#[test]
fn same_name_anchor_with_another_key_is_skipped() {
    let impostor = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = root.issue_ek(&ek_params());

    let valid = validate(
        std::slice::from_ref(&ek),
        &[impostor.anchor(), root.anchor()],
    )
    .unwrap();
    assert_eq!(valid.anchor_index(), 1);
    assert_fails!(validate(&[ek], &[impostor.anchor()]), BadSignature, LEAF);
}

#[test]
fn reports_the_error_from_the_anchor_that_got_furthest() {
    let impostor = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ca = root.intermediate("EK CA");
    let mut ek = ca.issue_ek(&ek_params());
    let last = ek.len() - 1;
    ek[last] ^= 1;

    // Through the impostor the intermediate's signature fails; through the real root
    // only the EK certificate's does, which is the fault to report, whatever the order.
    for anchors in [
        [impostor.anchor(), root.anchor()],
        [root.anchor(), impostor.anchor()],
    ] {
        assert_fails!(
            validate(&[ek.clone(), ca.der.clone()], &anchors),
            BadSignature,
            LEAF
        );
    }
}

#[test]
fn drops_a_copy_of_any_anchor_at_the_end() {
    let other = Ca::root("Other Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let ek = root.issue_ek(&ek_params());
    let anchors = [other.anchor(), root.anchor()];

    let valid = validate(&[ek, root.der.clone()], &anchors).unwrap();
    assert_eq!(valid.certs().len(), 1);
    let only_root = validate(std::slice::from_ref(&root.der), &anchors).unwrap_err();
    assert!(matches!(only_root, ChainError::Empty), "{only_root}");
}

#[test]
fn rejects_too_deep_chain_before_parsing() {
    let root = Ca::root("EK Root", &rcgen::PKCS_ECDSA_P384_SHA384);
    let junk = vec![vec![0u8; 4]; 9];

    let err = validate(&junk, &[root.anchor()]).unwrap_err();
    assert!(
        matches!(err, ChainError::TooDeep { len: 9, max: 8 }),
        "{err}"
    );
    let empty = validate(&[], &[root.anchor()]).unwrap_err();
    assert!(matches!(empty, ChainError::Empty), "{empty}");
}
