//! A real NVIDIA Hopper (GH100) attestation chain and SPDM measurement report validate, and
//! every tampering is refused.
//!
//! The files come from NVIDIA's `nv-local-gpu-verifier` 2.7.3 wheel (BSD-3-Clause) and are
//! not stored in this repository: run `scripts/fetch-nvidia-sample.sh` and export the folder
//! it prints as `CHIPWARD_NV_SAMPLES`. Without it these tests fail; they never skip.

#![cfg(test)]

mod common;

use std::path::PathBuf;

use chipward_certs::chain::{
    ChainError, ChainPolicy, Link, TrustAnchor, ValidatedChain, validate_chain, verify_p384_fixed,
};
use chipward_certs::{DevPki, pem};
use common::NOW;

/// 2022-02-01T00:00:00Z: after the roots' notBefore, before the provisioner CA's (2022-03-01).
const BEFORE_PROVISIONER_CA: i64 = 1_643_673_600;

struct Sample {
    chain: Vec<Vec<u8>>,
    root: Vec<u8>,
    rim_root: Vec<u8>,
    report: Vec<u8>,
}

fn sample() -> Sample {
    let Some(base) = std::env::var_os("CHIPWARD_NV_SAMPLES") else {
        panic!(
            "CHIPWARD_NV_SAMPLES is not set: run scripts/fetch-nvidia-sample.sh and export \
             the folder it prints as CHIPWARD_NV_SAMPLES"
        );
    };
    let base = PathBuf::from(base).join("verifier");
    let read = |rel: &str| {
        let path = base.join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let single = |rel: &str| pem::parse_certificates(&read(rel)).unwrap().remove(0);

    Sample {
        chain: pem::parse_certificates(&read("samples/hopperCertChain.txt")).unwrap(),
        root: single("certs/verifier_device_root.pem"),
        rim_root: single("certs/verifier_RIM_root.pem"),
        report: hex::decode(read("samples/hopperAttestationReport.txt").trim()).unwrap(),
    }
}

fn validate(chain: &[Vec<u8>], root: &[u8], now: i64) -> Result<ValidatedChain, ChainError> {
    let anchor = TrustAnchor::from_der(root)?;
    validate_chain(chain, &anchor, now, &ChainPolicy::default())
}

#[test]
fn hopper_chain_validates_to_nvidia_root() {
    let s = sample();
    assert_eq!(s.chain.len(), 5);

    let valid = validate(&s.chain, &s.root, NOW).unwrap();
    // The fifth certificate is the root itself and is dropped.
    let names: Vec<_> = valid
        .certs()
        .iter()
        .map(|c| c.common_name().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "GH100 A01 GSP FMC LF",
            "GH100 A01 GSP BROM",
            "NVIDIA GH100 Provisioner ICA 1",
            "NVIDIA GH100 Identity",
        ]
    );
    assert!(!valid.leaf().is_ca());
    assert!(valid.certs()[1..].iter().all(|c| c.is_ca()));
    assert_eq!(valid.leaf().der(), s.chain[0]);
}

#[test]
fn hopper_report_signature_verifies_with_leaf_key() {
    let s = sample();
    let valid = validate(&s.chain, &s.root, NOW).unwrap();
    assert_eq!(s.report.len(), 4117);

    // The last 96 bytes are r || s over everything before them.
    let (signed, signature) = s.report.split_at(s.report.len() - 96);
    verify_p384_fixed(valid.leaf().spki_der(), signed, signature).unwrap();

    let mut tampered = signed.to_vec();
    tampered[40] ^= 1;
    assert!(verify_p384_fixed(valid.leaf().spki_der(), &tampered, signature).is_err());
    assert!(verify_p384_fixed(valid.certs()[1].spki_der(), signed, signature).is_err());
}

#[test]
fn hopper_chain_rejects_every_flipped_byte() {
    let s = sample();
    let mut accepted = Vec::new();

    // Every byte of every certificate, low bit flipped: nothing may still validate.
    for index in 0..s.chain.len() {
        for offset in 0..s.chain[index].len() {
            let mut chain = s.chain.clone();
            chain[index][offset] ^= 0x01;
            if validate(&chain, &s.root, NOW).is_ok() {
                accepted.push((index, offset));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "tampered chains accepted at (cert, byte): {accepted:?}"
    );
}

#[test]
fn hopper_chain_rejects_other_roots() {
    let s = sample();

    let err = validate(&s.chain, &s.rim_root, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::IssuerMismatch {
                link: Link::Certificate(4),
                ..
            }
        ),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let dev = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
    let err = validate(&s.chain, dev.root_cert_der(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::IssuerMismatch {
                link: Link::Certificate(4),
                ..
            }
        ),
        "{err}"
    );

    // Without the root copy at the end, the top intermediate meets the wrong anchor.
    let err = validate(&s.chain[..4], dev.root_cert_der(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::IssuerMismatch {
                link: Link::Certificate(3),
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn hopper_chain_rejects_times_before_not_before() {
    let s = sample();

    let err = validate(&s.chain, &s.root, BEFORE_PROVISIONER_CA).unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::NotYetValid {
                link: Link::Certificate(2),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("NVIDIA GH100 Provisioner ICA 1"),
        "{err}"
    );

    // 2020-01-01T00:00:00Z: before even the root.
    let err = validate(&s.chain, &s.root, 1_577_836_800).unwrap_err();
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
fn hopper_chain_rejects_reordering_and_truncation() {
    let s = sample();

    let mut swapped = s.chain.clone();
    swapped.swap(1, 2);
    assert!(matches!(
        validate(&swapped, &s.root, NOW),
        Err(ChainError::IssuerMismatch { .. })
    ));

    let err = validate(&s.chain[1..], &s.root, NOW).unwrap();
    assert_eq!(err.leaf().common_name(), Some("GH100 A01 GSP BROM"));
}
