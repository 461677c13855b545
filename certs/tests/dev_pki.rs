//! The dev PKI folder: create/load round trip, file modes, refusal to overwrite, load-time
//! cross-checks, the certificate profiles, and an OpenSSL cross-check of the chain.

#![cfg(test)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use chipward_certs::pki::{self, DevPki};
use chipward_certs::{PkiError, pem};
use common::{Chip, DEV_NOT_AFTER, DEV_NOT_BEFORE, NOW};
use x509_parser::prelude::{FromDer, X509Certificate};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

#[test]
fn create_then_load_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pki");
    let created = DevPki::create(&path, "CW-100").unwrap();
    let loaded = DevPki::load(&path).unwrap();

    assert_eq!(loaded.root.cert_der, created.root.cert_der);
    assert_eq!(loaded.chip_ca.cert_der, created.chip_ca.cert_der);
    assert_eq!(
        loaded.root.key.public_key_spki_der(),
        created.root.key.public_key_spki_der()
    );
    assert_eq!(
        loaded.chip_ca.key.public_key_spki_der(),
        created.chip_ca.key.public_key_spki_der()
    );
    assert_eq!(
        loaded.issuer_token_key.public_key(),
        created.issuer_token_key.public_key()
    );
    assert_eq!(
        loaded.verifier_result_key.public_key(),
        created.verifier_result_key.public_key()
    );
    assert_ne!(
        loaded.issuer_token_key.key_id(),
        loaded.verifier_result_key.key_id()
    );
    assert_eq!(loaded.dir(), path);
}

#[test]
fn key_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pki");
    DevPki::create(&path, "CW-100").unwrap();

    assert_eq!(mode(&path), 0o700);
    for file in pki::PKI_FILES {
        let expected = if file.ends_with(".key") { 0o600 } else { 0o644 };
        assert_eq!(mode(&path.join(file)), expected, "{file}");
    }
}

#[test]
fn refuses_to_create_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pki");
    let first = DevPki::create(&path, "CW-100").unwrap();

    let err = DevPki::create(&path, "CW-100").unwrap_err();
    assert!(matches!(err, PkiError::AlreadyExists { .. }), "{err}");
    let still = DevPki::load(&path).unwrap();
    assert_eq!(still.root.cert_der, first.root.cert_der);
}

#[test]
fn refuses_to_create_over_one_stray_file_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(pki::VERIFIER_RESULT_PUB_FILE), "old").unwrap();

    let err = DevPki::create(dir.path(), "CW-100").unwrap_err();
    let PkiError::AlreadyExists { path } = &err else {
        panic!("unexpected {err}")
    };
    assert!(path.ends_with(pki::VERIFIER_RESULT_PUB_FILE));
    assert!(!dir.path().join(pki::ROOT_KEY_FILE).exists());
}

#[test]
fn load_detects_swapped_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pki");
    DevPki::create(&path, "CW-100").unwrap();
    let other = std::fs::read(path.join(pki::VERIFIER_RESULT_PUB_FILE)).unwrap();
    std::fs::write(path.join(pki::ISSUER_TOKEN_PUB_FILE), other).unwrap();

    let err = DevPki::load(&path).unwrap_err();
    let PkiError::KeyMismatch { path: bad } = &err else {
        panic!("unexpected {err}")
    };
    assert!(bad.ends_with(pki::ISSUER_TOKEN_PUB_FILE));
}

#[test]
fn load_detects_certificate_from_another_pki() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    DevPki::create(&a, "CW-100").unwrap();
    DevPki::create(&b, "CW-100").unwrap();
    std::fs::copy(
        b.join(pki::CHIP_CA_CERT_FILE),
        a.join(pki::CHIP_CA_CERT_FILE),
    )
    .unwrap();

    let err = DevPki::load(&a).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");

    // With its own key too, the foreign chip CA no longer chains to this root.
    std::fs::remove_file(a.join(pki::CHIP_CA_KEY_FILE)).unwrap();
    std::fs::copy(b.join(pki::CHIP_CA_KEY_FILE), a.join(pki::CHIP_CA_KEY_FILE)).unwrap();
    let err = DevPki::load(&a).unwrap_err();
    assert!(matches!(err, PkiError::Chain(_)), "{err}");
}

#[test]
fn load_reports_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = DevPki::load(dir.path()).unwrap_err();
    let PkiError::ReadFile { path, .. } = &err else {
        panic!("unexpected {err}")
    };
    assert!(path.ends_with(pki::ROOT_CERT_FILE));
}

#[test]
fn root_and_chip_ca_follow_the_profile() {
    let chip = Chip::new();
    let root = parse(chip.pki.root_cert_der());
    let ca = parse(&chip.pki.chip_ca.cert_der);

    assert_eq!(
        root.subject().to_string(),
        "O=Chipward Dev, CN=Chipward Dev Vendor Root CA"
    );
    assert_eq!(root.issuer().as_raw(), root.subject().as_raw());
    let bc = root.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca && bc.value.path_len_constraint.is_none());
    let ku = root.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());

    assert_eq!(
        ca.subject().to_string(),
        "O=Chipward Dev, CN=CW-100 Provisioner CA"
    );
    assert_eq!(ca.issuer().as_raw(), root.subject().as_raw());
    assert_eq!(
        ca.basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(1)
    );
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());

    for cert in [&root, &ca] {
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.3"
        );
        assert_eq!(cert.validity().not_before.timestamp(), DEV_NOT_BEFORE);
        assert_eq!(cert.validity().not_after.timestamp(), DEV_NOT_AFTER);
    }
}

#[test]
fn device_identity_follows_the_profile() {
    let chip = Chip::new();
    let cert = parse(&chip.identity_cert);
    let spki = chip.identity_key.public_key_spki_der();
    let hash = ring::digest::digest(&ring::digest::SHA256, &spki);
    let expected_serial_attr = hex::encode(&hash.as_ref()[..8]);

    assert_eq!(cert.raw_serial(), [42]);
    assert_eq!(cert.public_key().raw, spki.as_slice());
    assert_eq!(
        cert.subject().to_string(),
        format!("O=Chipward Dev, serialNumber={expected_serial_attr}, CN=CW-100 Device Identity")
    );
    assert_eq!(
        cert.issuer().as_raw(),
        parse(&chip.pki.chip_ca.cert_der).subject().as_raw()
    );
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.digital_signature() && !ku.crl_sign());
}

#[test]
fn firmware_alias_follows_the_profile() {
    let chip = Chip::new();
    let cert = parse(&chip.alias_cert);

    assert_eq!(
        cert.subject().to_string(),
        "O=Chipward Dev, CN=CW-100 Firmware Alias"
    );
    assert_eq!(
        cert.issuer().as_raw(),
        parse(&chip.identity_cert).subject().as_raw()
    );
    assert!(!cert.is_ca());
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.digital_signature() && !ku.value.key_cert_sign());

    let tcb = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "2.23.133.5.4.1")
        .expect("alias carries a TcbInfo extension");
    assert!(!tcb.critical);
    // SEQUENCE { [0] "Chipward Dev", [1] "CW-100", [2] "1.2.3" }, written out by hand:
    // content is (2 + 12) + (2 + 6) + (2 + 5) = 29 bytes.
    let mut expected = vec![0x30, 0x1d, 0x80, 0x0c];
    expected.extend(b"Chipward Dev");
    expected.extend([0x81, 0x06]);
    expected.extend(b"CW-100");
    expected.extend([0x82, 0x05]);
    expected.extend(b"1.2.3");
    assert_eq!(tcb.value, expected.as_slice());
}

#[test]
fn openssl_agrees_the_chain_verifies() {
    let openssl = Path::new("/usr/bin/openssl");
    assert!(
        openssl.exists(),
        "this test needs /usr/bin/openssl: apt-get install openssl"
    );
    let chip = Chip::new();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, ders: &[&[u8]]| {
        let text: String = ders.iter().map(|d| pem::certificate_to_pem(d)).collect();
        std::fs::write(dir.path().join(name), text).unwrap();
        dir.path().join(name)
    };
    let root = write("root.pem", &[chip.pki.root_cert_der()]);
    let untrusted = write(
        "untrusted.pem",
        &[&chip.identity_cert, &chip.pki.chip_ca.cert_der],
    );
    let leaf = write("leaf.pem", &[&chip.alias_cert]);

    let output = Command::new(openssl)
        .args([
            "verify",
            "-x509_strict",
            "-attime",
            &NOW.to_string(),
            "-CAfile",
        ])
        .args([&root, Path::new("-untrusted"), &untrusted, &leaf].map(|p| p.as_os_str()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.trim_end().ends_with(": OK"), "{stdout}");
}

#[test]
fn load_reports_corrupt_and_mismatched_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pki");
    let pki = DevPki::create(&path, "CW-100").unwrap();
    let replace = |file: &str, text: &str| {
        std::fs::remove_file(path.join(file)).unwrap();
        std::fs::write(path.join(file), text).unwrap();
    };

    let root_pem = pem::certificate_to_pem(pki.root_cert_der());
    replace(pki::ROOT_CERT_FILE, &(root_pem.clone() + &root_pem));
    let err = DevPki::load(&path).unwrap_err();
    assert!(
        matches!(err, PkiError::CertificateCount { count: 2, .. }),
        "{err}"
    );

    replace(
        pki::ROOT_CERT_FILE,
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    );
    let err = DevPki::load(&path).unwrap_err();
    assert!(matches!(err, PkiError::Pem { .. }), "{err}");

    // An Ed25519 key where the root's P-384 key belongs.
    replace(pki::ROOT_CERT_FILE, &root_pem);
    let ed_key = std::fs::read_to_string(path.join(pki::ISSUER_TOKEN_KEY_FILE)).unwrap();
    replace(pki::ROOT_KEY_FILE, &ed_key);
    let err = DevPki::load(&path).unwrap_err();
    let PkiError::LoadKey { path: bad, .. } = &err else {
        panic!("unexpected {err}")
    };
    assert!(bad.ends_with(pki::ROOT_KEY_FILE));
}

#[test]
fn create_reports_folder_that_cannot_be_made() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();

    let err = DevPki::create(&file.join("pki"), "CW-100").unwrap_err();
    assert!(matches!(err, PkiError::CreateDir { .. }), "{err}");
}
