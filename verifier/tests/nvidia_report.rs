//! NVIDIA's published Hopper (GH100) attestation report must verify with its
//! five-certificate chain up to NVIDIA's device root, and every altered copy
//! must fail. The sample comes from the PyPI wheel `nv-local-gpu-verifier`
//! 2.7.3 (BSD-3-Clause), fetched by `scripts/fetch-nvidia-sample.sh` into the
//! folder named by `CHIPWARD_NV_SAMPLES`; it is not committed.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::path::PathBuf;
use std::sync::Arc;

use chipward_certs::chain::ChainPolicy;
use chipward_certs::keys::{Ed25519Key, P384Key, spki_sha256};
use chipward_certs::pem;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::result::{AttestationResult, Status};
use chipward_verifier::appraisal::{AppraisalError, AppraisalSettings, Appraiser};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::claims::{self, code};
use chipward_verifier::evidence::roots::Roots;
use chipward_verifier::policy::reference::ReferenceValues;
use chipward_verifier::revocation::RevocationCache;

/// 2026-12-04T00:00:00Z: inside every certificate's window (2022 to 9999).
const AT: i64 = 1_796_342_400;

struct Sample {
    report: Vec<u8>,
    chain: Vec<Vec<u8>>,
    root: Vec<u8>,
}

fn samples_dir() -> PathBuf {
    std::env::var_os("CHIPWARD_NV_SAMPLES").map(PathBuf::from).expect(
        "CHIPWARD_NV_SAMPLES is not set: run scripts/fetch-nvidia-sample.sh and export the folder it prints",
    )
}

fn sample() -> Sample {
    let dir = samples_dir().join("verifier");
    let read =
        |p: &str| std::fs::read_to_string(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    Sample {
        report: hex::decode(read("samples/hopperAttestationReport.txt").trim()).unwrap(),
        chain: pem::parse_certificates(&read("samples/hopperCertChain.txt")).unwrap(),
        root: pem::parse_certificates(&read("certs/verifier_device_root.pem"))
            .unwrap()
            .remove(0),
    }
}

fn appraiser(root: &[u8]) -> Appraiser {
    Appraiser::new(
        AppraisalSettings::default(),
        Roots::new(&[root.to_vec()], ChainPolicy::default()).unwrap(),
        ReferenceValues::default(),
        TrustedKeys::new(),
        Challenges::new(NonceKey::generate(), 0),
        Arc::new(RevocationCache::new(0)),
        Ed25519Key::generate().unwrap(),
    )
}

/// The nonce as the request carries it: bytes 4 to 36 (DSP0274 GET_MEASUREMENTS).
fn request_nonce(report: &[u8]) -> [u8; 32] {
    report[4..36].try_into().unwrap()
}

fn appraise(s: &Sample, report: &[u8], chain: &[Vec<u8>], root: &[u8]) -> AttestationResult {
    let nonce = request_nonce(&s.report);
    appraiser(root)
        .appraise_report(report, chain, Some(&nonce), AT)
        .unwrap()
        .result
}

fn status(r: &AttestationResult, claim: &str) -> Status {
    r.claim(claim).unwrap().status
}

#[test]
fn accepts_the_genuine_hopper_report() {
    let s = sample();
    let r = appraise(&s, &s.report, &s.chain, &s.root);

    assert_eq!(status(&r, claims::EVIDENCE_CHAIN), Status::Pass, "{r:?}");
    assert_eq!(
        status(&r, claims::EVIDENCE_SIGNATURE),
        Status::Pass,
        "{r:?}"
    );
    assert_eq!(status(&r, claims::EVIDENCE_FRESHNESS), Status::Pass);
    // No NVIDIA reference values ship with Chipward: unknown, not pass.
    assert_eq!(
        r.claim(claims::FIRMWARE_MEASUREMENTS).unwrap().code,
        code::NO_REFERENCE
    );
    // The chip is the BROM identity key (second certificate), not the alias leaf.
    let brom = x509_spki(&s.chain[1]);
    assert_eq!(r.chip_id, hex::encode(spki_sha256(&brom)));
    assert_eq!(r.model, "NVIDIA GH100 Provisioner ICA 1");
    assert_eq!(r.measurements.len(), usize::from(s.report[41]));
}

#[test]
fn rejects_every_altered_signed_byte_sampled() {
    let s = sample();
    let signed_len = s.report.len() - 96;
    // Every 7th signed byte plus both ends: header, nonce, blocks, opaque data.
    let positions = (0..signed_len).step_by(7).chain([signed_len - 1]);
    let verifier = appraiser(&s.root);
    let nonce = request_nonce(&s.report);
    for at in positions {
        let mut bad = s.report.clone();
        bad[at] ^= 0x01;
        match verifier.appraise_report(&bad, &s.chain, Some(&nonce), AT) {
            Ok(a) => assert_ne!(
                status(&a.result, claims::EVIDENCE_SIGNATURE),
                Status::Pass,
                "byte {at}"
            ),
            Err(AppraisalError::Evidence(_)) => {} // a length or code byte: no longer parses
            Err(e) => panic!("byte {at}: unexpected {e}"),
        }
    }
}

#[test]
fn rejects_an_altered_signature_or_nonce() {
    let s = sample();
    let mut bad_sig = s.report.clone();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x80;
    let r = appraise(&s, &bad_sig, &s.chain, &s.root);
    assert_eq!(
        r.claim(claims::EVIDENCE_SIGNATURE).unwrap().code,
        code::EVIDENCE_SIGNATURE
    );

    let mut other_nonce = request_nonce(&s.report);
    other_nonce[0] ^= 1;
    let a = appraiser(&s.root)
        .appraise_report(&s.report, &s.chain, Some(&other_nonce), AT)
        .unwrap();
    assert_eq!(
        a.result.claim(claims::EVIDENCE_FRESHNESS).unwrap().code,
        code::NONCE_MISMATCH
    );
}

#[test]
fn rejects_any_altered_certificate() {
    let s = sample();
    for index in 0..s.chain.len() {
        let mut chain = s.chain.clone();
        // A byte inside the signature value at the end of the certificate.
        let at = chain[index].len() - 10;
        chain[index][at] ^= 0x01;
        let r = appraise(&s, &s.report, &chain, &s.root);
        let failed = status(&r, claims::EVIDENCE_CHAIN) == Status::Fail
            || status(&r, claims::EVIDENCE_SIGNATURE) == Status::Fail;
        assert!(failed, "certificate {index} altered yet accepted: {r:?}");
        assert_ne!(r.verdict, Status::Pass);
    }
}

#[test]
fn rejects_another_root() {
    let s = sample();
    let other = chipward_certs::pki::DevPki::create(
        &tempfile::tempdir().unwrap().path().join("pki"),
        "CW-100",
    )
    .unwrap();
    let r = appraise(&s, &s.report, &s.chain, other.root_cert_der());
    assert_eq!(status(&r, claims::EVIDENCE_CHAIN), Status::Fail);
    assert_eq!(r.chip_id, "", "no identity without a trusted chain");
}

#[test]
fn rejects_the_report_with_a_chain_from_another_chip() {
    let s = sample();
    // Replace the leaf with a certificate for a key NVIDIA never certified.
    let stranger = P384Key::generate().unwrap();
    let mut chain = s.chain.clone();
    chain[0] = self_signed(&stranger);
    let r = appraise(&s, &s.report, &chain, &s.root);
    assert_eq!(status(&r, claims::EVIDENCE_CHAIN), Status::Fail);
    assert_eq!(status(&r, claims::EVIDENCE_SIGNATURE), Status::Fail);
}

fn x509_spki(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    X509Certificate::from_der(der)
        .unwrap()
        .1
        .public_key()
        .raw
        .to_vec()
}

fn self_signed(key: &P384Key) -> Vec<u8> {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = chipward_certs::pki::DevPki::create(&pki_dir.path().join("pki"), "X").unwrap();
    pki.chip_ca
        .issue_device_identity(&key.public_key_spki_der(), "X", 1)
        .unwrap()
}
