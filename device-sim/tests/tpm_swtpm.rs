//! The TPM backend against swtpm, a real TPM 2.0 implementation: the EK
//! certificate is read from NV, an AK is bound to the EK by credential
//! activation with a credential made in pure Rust, and quotes made through
//! tss-esapi pass both our verifier and `tpm2_checkquote`.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::process::Command;

use chipward_certs::tpm_credential::{RsaEk, make_credential};
use chipward_device_sim::tpm::HostTpm;
use chipward_proto::tpm::alg;
use chipward_proto::tpm::pcr::{PcrSelection, PcrValues, encode_tpm2_tools_serialized};
use chipward_proto::tpm::public::{PublicKey, TpmPublic};
use chipward_tests::swtpm;
use chipward_verifier::evidence::tpm::key::QuoteKey;
use chipward_verifier::evidence::tpm::{QuoteError, QuotePolicy, check_quote};
use ring::digest;
use x509_parser::prelude::{FromDer, X509Certificate};

fn rsa_ek(tpm: &mut HostTpm) -> RsaEk {
    let public = TpmPublic::decode_sized(&tpm.ek_public().unwrap()).unwrap();
    let PublicKey::Rsa { modulus, exponent } = public.key else {
        panic!("the default ek is rsa")
    };
    RsaEk { modulus, exponent }
}

#[test]
fn the_ek_certificate_certifies_the_ek() {
    let swtpm = swtpm::start();
    let mut tpm = HostTpm::open(&swtpm.tcti()).unwrap();
    let der = tpm.ek_certificate().unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let x509_parser::public_key::PublicKey::RSA(rsa) = cert.public_key().parsed().unwrap() else {
        panic!("rsa ek certificate expected")
    };
    let modulus: Vec<u8> = rsa
        .modulus
        .iter()
        .copied()
        .skip_while(|b| *b == 0)
        .collect();
    assert_eq!(modulus, rsa_ek(&mut tpm).modulus);
}

#[test]
fn binds_an_ak_by_credential_activation() {
    let swtpm = swtpm::start();
    let mut tpm = HostTpm::open(&swtpm.tcti()).unwrap();
    let ek = rsa_ek(&mut tpm);
    let ak = tpm.create_ak().unwrap();
    assert_eq!(
        ak.name,
        TpmPublic::decode_sized(&ak.public).unwrap().name().unwrap()
    );

    let sealed = make_credential(&ek, &ak.name, b"bind this ak, 32 bytes at most!").unwrap();
    let recovered = tpm
        .activate_credential(&sealed.credential_blob, &sealed.secret)
        .unwrap();
    assert_eq!(recovered, b"bind this ak, 32 bytes at most!");

    // Sealed for another key's name, the TPM refuses to release it.
    let mut other_name = ak.name.clone();
    other_name[5] ^= 1;
    let wrong = make_credential(&ek, &other_name, b"not for this ak").unwrap();
    assert!(
        tpm.activate_credential(&wrong.credential_blob, &wrong.secret)
            .is_err()
    );

    // A tampered blob fails the integrity check.
    let mut tampered = sealed.credential_blob.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(tpm.activate_credential(&tampered, &sealed.secret).is_err());
}

#[test]
fn quotes_pass_our_verifier_and_tpm2_checkquote() {
    let swtpm = swtpm::start();
    let mut tpm = HostTpm::open(&swtpm.tcti()).unwrap();
    let ak = tpm.create_ak().unwrap();
    let tenant: [u8; 32] = digest::digest(&digest::SHA256, b"acme-ai")
        .as_ref()
        .try_into()
        .unwrap();
    tpm.extend(16, &tenant).unwrap();

    let pcrs: Vec<u32> = vec![0, 1, 2, 3, 4, 5, 6, 7, 16];
    let nonce = [0x42u8; 32];
    let quote = tpm.quote(&nonce, &pcrs).unwrap();

    // PCR 16 went from zero to H(0 || tenant).
    let expected16 = digest::digest(&digest::SHA256, &[[0u8; 32], tenant].concat());
    assert_eq!(
        quote.pcrs.last().unwrap(),
        &(16, expected16.as_ref().to_vec())
    );

    // Ours.
    let key = QuoteKey::from_tpm2b_public(&ak.public).unwrap();
    let values = PcrValues(
        quote
            .pcrs
            .iter()
            .map(|(i, v)| ((alg::SHA256, *i), v.clone()))
            .collect(),
    );
    let policy = QuotePolicy {
        selection: PcrSelection::new(&[(alg::SHA256, &pcrs)]),
        allow_sha1: false,
    };
    let verified = check_quote(
        &quote.attest,
        &quote.signature,
        &key,
        &nonce,
        &values,
        &policy,
    )
    .unwrap();
    assert_eq!(verified.pcrs.0.len(), 9);
    assert_eq!(
        check_quote(
            &quote.attest,
            &quote.signature,
            &key,
            &[0x43; 32],
            &values,
            &policy
        ),
        Err(QuoteError::Nonce)
    );

    // tpm2_checkquote, on the same bytes written as tpm2-tools files.
    let dir = swtpm.dir.path();
    std::fs::write(dir.join("q.msg"), &quote.attest).unwrap();
    std::fs::write(dir.join("q.sig"), &quote.signature).unwrap();
    std::fs::write(dir.join("ak.tpm2b"), &ak.public).unwrap();
    std::fs::write(
        dir.join("q.pcrs"),
        encode_tpm2_tools_serialized(&policy.selection, &values).unwrap(),
    )
    .unwrap();
    let checkquote = |nonce_hex: &str| {
        Command::new("tpm2_checkquote")
            .current_dir(dir)
            .env("TSS2_LOG", "all+none")
            .args([
                "-u", "ak.tpm2b", "-m", "q.msg", "-s", "q.sig", "-f", "q.pcrs", "-g", "sha256",
                "-q", nonce_hex,
            ])
            .output()
            .unwrap()
    };
    let out = checkquote(&hex::encode(nonce));
    assert!(
        out.status.success(),
        "tpm2_checkquote refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!checkquote(&"43".repeat(32)).status.success());
}
