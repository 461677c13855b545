//! Every supported signature algorithm verifies, with keys and certificates made by rcgen
//! (an implementation independent of the validator); unsupported ones are refused by name.

#![cfg(test)]

mod common;

use chipward_certs::chain::{ChainError, ChainPolicy, Link, TrustAnchor, validate_chain};
use common::{NOW, issue, key_for, params, rsa_key};
use rcgen::{KeyPair, SignatureAlgorithm};

/// A root of `root_alg` signing a leaf with a P-256 key; returns (leaf, root).
fn signed_by(root_key: &KeyPair) -> (Vec<u8>, Vec<u8>) {
    let root = params("alg root", Some(None))
        .self_signed(root_key)
        .unwrap()
        .der()
        .to_vec();
    let leaf_key = key_for(&rcgen::PKCS_ECDSA_P256_SHA256);
    (
        issue(&params("alg leaf", None), &leaf_key, &root, root_key),
        root,
    )
}

fn check(root_key: &KeyPair) -> Result<(), ChainError> {
    let (leaf, root) = signed_by(root_key);
    let anchor = TrustAnchor::from_der(&root)?;
    validate_chain(&[leaf], &anchor, NOW, &ChainPolicy::default()).map(|_| ())
}

fn flipped(root_key: &KeyPair) -> Result<(), ChainError> {
    let (mut leaf, root) = signed_by(root_key);
    let last = leaf.len() - 1;
    leaf[last] ^= 0x01;
    let anchor = TrustAnchor::from_der(&root)?;
    validate_chain(&[leaf], &anchor, NOW, &ChainPolicy::default()).map(|_| ())
}

#[test]
fn accepts_ecdsa_ed25519_and_rsa_signers() {
    let generated: [&'static SignatureAlgorithm; 3] = [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ];
    for alg in generated {
        assert!(check(&key_for(alg)).is_ok(), "{alg:?}");
        let err = flipped(&key_for(alg)).unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::BadSignature {
                    link: Link::Certificate(0),
                    ..
                }
            ),
            "{alg:?}: {err}"
        );
    }
    for alg in [&rcgen::PKCS_RSA_SHA256, &rcgen::PKCS_RSA_SHA384] {
        assert!(check(&rsa_key(alg)).is_ok(), "{alg:?}");
        let err = flipped(&rsa_key(alg)).unwrap_err();
        assert!(
            matches!(err, ChainError::BadSignature { .. }),
            "{alg:?}: {err}"
        );
    }
}

#[test]
fn refuses_rsa_sha512_as_unsupported() {
    let err = check(&rsa_key(&rcgen::PKCS_RSA_SHA512)).unwrap_err();
    let ChainError::UnsupportedAlgorithm {
        link: Link::Certificate(0),
        oid,
        key_oid,
        ..
    } = &err
    else {
        panic!("unexpected {err}");
    };
    assert_eq!(oid, "1.2.840.113549.1.1.13");
    assert_eq!(key_oid, "1.2.840.113549.1.1.1");
}

#[test]
fn refuses_signature_algorithm_that_does_not_match_signer_key() {
    // Sign with an Ed25519 root, then present a P-384 root of the same name as the anchor.
    let ed_key = key_for(&rcgen::PKCS_ED25519);
    let (leaf, _) = signed_by(&ed_key);
    let p384_key = key_for(&rcgen::PKCS_ECDSA_P384_SHA384);
    let p384_root = params("alg root", Some(None))
        .self_signed(&p384_key)
        .unwrap();
    let anchor = TrustAnchor::from_der(p384_root.der()).unwrap();

    let err = validate_chain(&[leaf], &anchor, NOW, &ChainPolicy::default()).unwrap_err();
    let ChainError::UnsupportedAlgorithm { oid, key_oid, .. } = &err else {
        panic!("unexpected {err}");
    };
    assert_eq!(oid, "1.3.101.112");
    assert_eq!(key_oid, "1.2.840.10045.2.1/1.3.132.0.34");
}

#[test]
fn verify_p384_fixed_refuses_other_keys_and_lengths() {
    use chipward_certs::chain::{SignatureError, verify_p384_fixed};

    let p256 =
        rcgen::PublicKeyData::subject_public_key_info(&key_for(&rcgen::PKCS_ECDSA_P256_SHA256));
    let err = verify_p384_fixed(&p256, b"m", &[0; 96]).unwrap_err();
    assert!(matches!(err, SignatureError::NotP384 { .. }), "{err}");

    let key = chipward_certs::P384Key::generate().unwrap();
    let spki = key.public_key_spki_der();
    let err = verify_p384_fixed(&spki, b"m", &[0; 95]).unwrap_err();
    assert!(matches!(err, SignatureError::Length { len: 95 }), "{err}");

    let mut trailing = spki.clone();
    trailing.push(0);
    let err = verify_p384_fixed(&trailing, b"m", &[0; 96]).unwrap_err();
    assert!(matches!(err, SignatureError::MalformedKey), "{err}");
}
