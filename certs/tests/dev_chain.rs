//! Chains issued through the dev PKI API validate to the dev root, and every kind of broken
//! chain is refused with the error variant that names the failing link.

#![cfg(test)]

mod common;

use chipward_certs::chain::{self, ChainError, ChainPolicy, Link, TrustAnchor};
use chipward_certs::{CertifiedKey, DevPki, P384Key, PkiError, spki_sha256};
use common::{Chip, DEV_NOT_AFTER, DEV_NOT_BEFORE, NOW, issue, params};
use rcgen::{CustomExtension, KeyUsagePurpose};

fn validate(
    chain: &[Vec<u8>],
    anchor: &TrustAnchor,
    now: i64,
) -> Result<chain::ValidatedChain, ChainError> {
    chain::validate_chain(chain, anchor, now, &ChainPolicy::default())
}

#[test]
fn generated_chain_validates_to_dev_root() {
    let chip = Chip::new();
    let valid = validate(&chip.chain(), &chip.anchor(), NOW).unwrap();
    let names: Vec<_> = valid
        .certs()
        .iter()
        .map(|c| c.common_name().unwrap())
        .collect();

    assert_eq!(
        names,
        [
            "CW-100 Firmware Alias",
            "CW-100 Device Identity",
            "CW-100 Provisioner CA"
        ]
    );
    assert_eq!(
        valid.leaf().spki_der(),
        chip.alias_key.public_key_spki_der()
    );
    assert_eq!(valid.leaf().der(), chip.alias_cert);
    assert!(!valid.leaf().is_ca());
    assert!(valid.certs()[1].is_ca());
    assert_eq!(
        valid.leaf().subject(),
        "O=Chipward Dev, CN=CW-100 Firmware Alias"
    );
}

#[test]
fn chip_identity_is_hash_of_identity_spki_in_certificate() {
    let chip = Chip::new();
    let valid = validate(&chip.chain(), &chip.anchor(), NOW).unwrap();
    let from_cert = spki_sha256(valid.certs()[1].spki_der());

    // Hash computed here directly, not through the crate.
    let direct = ring::digest::digest(
        &ring::digest::SHA256,
        &chip.identity_key.public_key_spki_der(),
    );
    assert_eq!(from_cert.as_slice(), direct.as_ref());
}

#[test]
fn chain_may_include_the_root() {
    let chip = Chip::new();
    let mut chain = chip.chain();
    chain.push(chip.pki.root_cert_der().to_vec());

    assert_eq!(
        validate(&chain, &chip.anchor(), NOW).unwrap().certs().len(),
        3
    );
}

#[test]
fn accepts_validity_bounds_inclusive() {
    let chip = Chip::new();
    assert!(validate(&chip.chain(), &chip.anchor(), DEV_NOT_BEFORE).is_ok());
    assert!(validate(&chip.chain(), &chip.anchor(), DEV_NOT_AFTER).is_ok());
}

#[test]
fn evidence_signed_by_alias_verifies_against_leaf() {
    let chip = Chip::new();
    let valid = validate(&chip.chain(), &chip.anchor(), NOW).unwrap();
    let sig = chip.alias_key.sign_fixed(b"spdm transcript").unwrap();

    assert!(chain::verify_p384_fixed(valid.leaf().spki_der(), b"spdm transcript", &sig).is_ok());
    let wrong = chain::verify_p384_fixed(valid.certs()[1].spki_der(), b"spdm transcript", &sig);
    assert!(matches!(wrong, Err(chain::SignatureError::Invalid)));
}

#[test]
fn rejects_empty_chain() {
    let chip = Chip::new();
    assert!(matches!(
        validate(&[], &chip.anchor(), NOW),
        Err(ChainError::Empty)
    ));

    let only_root = vec![chip.pki.root_cert_der().to_vec()];
    assert!(matches!(
        validate(&only_root, &chip.anchor(), NOW),
        Err(ChainError::Empty)
    ));
}

#[test]
fn rejects_deep_chain_before_parsing() {
    let chip = Chip::new();
    let garbage = vec![b"not a certificate".to_vec(); 50];

    let err = validate(&garbage, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(err, ChainError::TooDeep { len: 50, max: 8 }),
        "{err}"
    );
}

#[test]
fn rejects_oversized_certificate_before_parsing() {
    let chip = Chip::new();
    let mut chain = chip.chain();
    chain[1] = vec![0u8; 16 * 1024 + 1];

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::TooLarge {
                index: 1,
                len: 16385,
                max: 16384
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_garbage_as_malformed() {
    let chip = Chip::new();
    let err = validate(&[b"\x30\x03abc".to_vec()], &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Malformed {
                link: Link::Certificate(0),
                ..
            }
        ),
        "{err}"
    );

    let err = TrustAnchor::from_der(b"garbage").unwrap_err();
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

#[test]
fn rejects_trailing_bytes_after_certificate() {
    let chip = Chip::new();
    let mut chain = chip.chain();
    chain[2].push(0);

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    let ChainError::Malformed {
        link: Link::Certificate(2),
        reason,
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(reason, "1 bytes after the certificate");
}

#[test]
fn rejects_unsigned_outer_algorithm_in_another_encoding() {
    let chip = Chip::new();
    let mut chain = chip.chain();
    // ecdsa-with-SHA384 AlgorithmIdentifier; its last occurrence is the outer, unsigned copy.
    let algorithm = [
        0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
    ];
    let at = chain[0]
        .windows(algorithm.len())
        .rposition(|w| w == algorithm)
        .unwrap();
    chain[0][at + 2] = 0x07; // OBJECT IDENTIFIER tag turned into ObjectDescriptor

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    let ChainError::Malformed {
        link: Link::Certificate(0),
        reason,
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(reason, "tbs and outer signature algorithms differ");
}

#[test]
fn rejects_missing_intermediate_as_issuer_mismatch() {
    let chip = Chip::new();
    let chain = vec![chip.alias_cert.clone(), chip.pki.chip_ca.cert_der.clone()];

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::IssuerMismatch {
                link: Link::Certificate(0),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_another_root_with_the_same_name() {
    let chip = Chip::new();
    let other = Chip::new();

    // Both dev roots have the same subject, so only the signature can tell them apart.
    let err = validate(&chip.chain(), &other.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::BadSignature {
                link: Link::Certificate(2),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_alias_signed_by_wrong_key() {
    let chip = Chip::new();
    let wrong = Chip::rcgen_key(&P384Key::generate().unwrap());
    let alias = Chip::rcgen_key(&chip.alias_key);
    let forged = issue(
        &params("CW-100 Firmware Alias", None),
        &alias,
        &chip.identity_cert,
        &wrong,
    );
    let mut chain = chip.chain();
    chain[0] = forged;

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::BadSignature {
                link: Link::Certificate(0),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "certificate 0 (CN=CW-100 Firmware Alias): signature does not verify"
    );
}

#[test]
fn rejects_flipped_signature_bit() {
    let chip = Chip::new();
    let mut chain = chip.chain();
    let last = chain[1].len() - 1;
    chain[1][last] ^= 1;

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::BadSignature {
                link: Link::Certificate(1),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_time_after_not_after() {
    let chip = Chip::new();
    let err = validate(&chip.chain(), &chip.anchor(), DEV_NOT_AFTER + 1).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Expired {
                link: Link::TrustAnchor,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("trust anchor (O=Chipward Dev, CN=Chipward Dev Vendor Root CA)")
    );
}

#[test]
fn rejects_time_before_not_before() {
    let chip = Chip::new();
    let err = validate(&chip.chain(), &chip.anchor(), DEV_NOT_BEFORE - 1).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::NotYetValid {
                link: Link::TrustAnchor,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_expired_and_not_yet_valid_leaf() {
    let chip = Chip::new();
    let identity = Chip::rcgen_key(&chip.identity_key);
    let alias = Chip::rcgen_key(&chip.alias_key);

    let mut short = params("short-lived", None);
    short.not_before = rcgen::date_time_ymd(2026, 1, 1);
    short.not_after = rcgen::date_time_ymd(2026, 6, 1);
    let mut chain = chip.chain();
    chain[0] = issue(&short, &alias, &chip.identity_cert, &identity);

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Expired {
                link: Link::Certificate(0),
                ..
            }
        ),
        "{err}"
    );
    // 2025-06-01T00:00:00Z, inside the dev CA validity but before the leaf's notBefore.
    let err = validate(&chain, &chip.anchor(), 1_748_736_000).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::NotYetValid {
                link: Link::Certificate(0),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_leaf_used_as_signer() {
    let chip = Chip::new();
    let alias = Chip::rcgen_key(&chip.alias_key);
    let below = common::key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
    let mut chain = chip.chain();
    chain.insert(
        0,
        issue(
            &params("under the alias", None),
            &below,
            &chip.alias_cert,
            &alias,
        ),
    );

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::NotCa {
                link: Link::Certificate(1),
                ..
            }
        ),
        "{err}"
    );

    let err = TrustAnchor::from_der(&chip.alias_cert).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::NotCa {
                link: Link::TrustAnchor,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_ca_without_key_cert_sign() {
    let chip = Chip::new();
    let identity = Chip::rcgen_key(&chip.identity_key);
    let sub_key = common::key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
    let mut sub = params("sub ca", Some(None));
    sub.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let sub_cert = issue(&sub, &sub_key, &chip.identity_cert, &identity);
    let leaf_key = common::key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf = issue(&params("leaf", None), &leaf_key, &sub_cert, &sub_key);

    let chain = vec![
        leaf,
        sub_cert,
        chip.identity_cert.clone(),
        chip.pki.chip_ca.cert_der.clone(),
    ];
    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::KeyUsage {
                link: Link::Certificate(1),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn rejects_ca_below_identity_with_path_len_zero() {
    let chip = Chip::new();
    let identity = Chip::rcgen_key(&chip.identity_key);
    let sub_key = common::key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
    let sub_cert = issue(
        &params("sub ca", Some(None)),
        &sub_key,
        &chip.identity_cert,
        &identity,
    );
    let leaf_key = common::key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
    let leaf = issue(&params("leaf", None), &leaf_key, &sub_cert, &sub_key);

    let chain = vec![
        leaf,
        sub_cert.clone(),
        chip.identity_cert.clone(),
        chip.pki.chip_ca.cert_der.clone(),
    ];
    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::PathLen {
                link: Link::Certificate(2),
                limit: 0,
                ..
            }
        ),
        "{err}"
    );

    // The same CA as the leaf is fine: the leaf is not an intermediate (RFC 5280 6.1.4).
    let chain = vec![
        sub_cert,
        chip.identity_cert.clone(),
        chip.pki.chip_ca.cert_der.clone(),
    ];
    assert!(validate(&chain, &chip.anchor(), NOW).is_ok());
}

#[test]
fn rejects_unknown_critical_extension_but_allows_dice_ones() {
    let chip = Chip::new();
    let identity = Chip::rcgen_key(&chip.identity_key);
    let alias = Chip::rcgen_key(&chip.alias_key);
    let with_ext = |oid: &[u64]| {
        let mut p = params("CW-100 Firmware Alias", None);
        let mut ext = CustomExtension::from_oid_content(oid, vec![0x05, 0x00]);
        ext.set_criticality(true);
        p.custom_extensions = vec![ext];
        let mut chain = chip.chain();
        chain[0] = issue(&p, &alias, &chip.identity_cert, &identity);
        validate(&chain, &chip.anchor(), NOW)
    };

    let err = with_ext(&[1, 2, 3, 4]).unwrap_err();
    let ChainError::UnknownCriticalExtension {
        link: Link::Certificate(0),
        oid,
        ..
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(oid, "1.2.3.4");
    assert!(with_ext(&[2, 23, 133, 5, 4, 1]).is_ok());
    assert!(with_ext(&[2, 23, 133, 5, 4, 4]).is_ok());
    assert!(with_ext(&[2, 23, 133, 5, 4, 5]).is_ok());
}

#[test]
fn rejects_duplicate_extension() {
    let chip = Chip::new();
    let identity = Chip::rcgen_key(&chip.identity_key);
    let alias = Chip::rcgen_key(&chip.alias_key);
    let mut p = params("CW-100 Firmware Alias", None);
    let ext = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![0x05, 0x00]);
    p.custom_extensions = vec![ext.clone(), ext];
    let mut chain = chip.chain();
    chain[0] = issue(&p, &alias, &chip.identity_cert, &identity);

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    let ChainError::Malformed {
        link: Link::Certificate(0),
        reason,
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(reason, "duplicate extension 1.2.3.4");
}

#[test]
fn rejects_name_constraints() {
    let chip = Chip::new();
    let identity = Chip::rcgen_key(&chip.identity_key);
    let sub_key = common::key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
    let mut sub = params("constrained ca", Some(None));
    sub.name_constraints = Some(rcgen::NameConstraints {
        permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("example.com".into())],
        excluded_subtrees: vec![],
    });
    let chain = vec![
        issue(&sub, &sub_key, &chip.identity_cert, &identity),
        chip.identity_cert.clone(),
        chip.pki.chip_ca.cert_der.clone(),
    ];

    let err = validate(&chain, &chip.anchor(), NOW).unwrap_err();
    let ChainError::UnsupportedConstraint {
        link: Link::Certificate(0),
        oid,
        ..
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(oid, "2.5.29.30");
}

#[test]
fn refuses_to_issue_with_mismatched_issuer_key() {
    let chip = Chip::new();
    let impostor = CertifiedKey {
        cert_der: chip.identity_cert.clone(),
        key: P384Key::generate().unwrap(),
    };

    let err = impostor
        .issue_alias(&chip.alias_key.public_key_spki_der(), "CW-100", "1")
        .unwrap_err();
    assert!(matches!(err, PkiError::IssuerCertificate { .. }), "{err}");
}

#[test]
fn refuses_zero_serial_and_non_p384_subject_keys() {
    let chip = Chip::new();
    let spki = chip.identity_key.public_key_spki_der();
    let err = chip
        .pki
        .chip_ca
        .issue_device_identity(&spki, "CW-100", 0)
        .unwrap_err();
    assert!(matches!(err, PkiError::ZeroSerial), "{err}");

    let p256 = rcgen::PublicKeyData::subject_public_key_info(&common::key_for(
        &rcgen::PKCS_ECDSA_P256_SHA256,
    ));
    let err = chip
        .pki
        .chip_ca
        .issue_device_identity(&p256, "CW-100", 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::SubjectKey(chain::SignatureError::NotP384 { .. })
        ),
        "{err}"
    );
}

#[test]
fn dev_pki_rejects_models_that_do_not_fit_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = DevPki::create(&dir.path().join("pki"), "CW/100").unwrap_err();
    assert!(matches!(err, PkiError::InvalidModel { .. }), "{err}");
}
