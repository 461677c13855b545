//! Real EK certificates: swtpm_setup provisions a TPM's RSA-2048 and P-384 EK certificates
//! under swtpm_localca's CA (an RSA-3072 root and an intermediate) in a temporary folder,
//! and each must validate through the intermediate to the root, NV padding or not.
//!
//! swtpm comes from Debian's `swtpm` and `swtpm-tools` packages, which `scripts/test.sh`
//! installs; when it is missing these tests fail and say so, never skip.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use chipward_certs::chain::{
    ChainError, ChainPolicy, Link, TrustAnchor, ValidatedEkChain, validate_ek_chain,
};
use chipward_certs::pem;
use x509_parser::prelude::FromDer as _;

/// What swtpm_setup and swtpm_localca wrote, read into memory (the folder is gone).
struct Provisioned {
    ek_rsa: Vec<u8>,
    ek_p384: Vec<u8>,
    intermediate: Vec<u8>,
    root: Vec<u8>,
}

/// One provisioning for every test here: it takes about a second.
fn swtpm() -> &'static Provisioned {
    static ONCE: OnceLock<Provisioned> = OnceLock::new();
    ONCE.get_or_init(provision)
}

fn require(tool: &str) -> String {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh to look for {tool}: {e}"));
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    assert!(
        found.status.success() && !path.is_empty(),
        "{tool} is not installed: run scripts/test.sh, or apt-get install swtpm swtpm-tools"
    );
    path
}

/// Runs swtpm_setup with a swtpm_localca whose state stays in a temporary folder.
fn provision() -> Provisioned {
    let localca = require("swtpm_localca");
    require("swtpm_setup");
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    for sub in ["ca", "ek", "state"] {
        std::fs::create_dir(path(sub)).unwrap();
    }

    let ca = path("ca");
    let ca = ca.display();
    let localca_conf = format!(
        "statedir = {ca}\nsigningkey = {ca}/signkey.pem\n\
         issuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n"
    );
    write(&path("localca.conf"), &localca_conf);
    write(
        &path("localca.options"),
        "--platform-manufacturer Chipward\n",
    );
    let setup_conf = format!(
        "create_certs_tool = {localca}\ncreate_certs_tool_config = {}\n\
         create_certs_tool_options = {}\n",
        path("localca.conf").display(),
        path("localca.options").display()
    );
    write(&path("setup.conf"), &setup_conf);

    let out = Command::new("swtpm_setup")
        .args(["--tpm2", "--create-ek-cert", "--overwrite", "--tpmstate"])
        .arg(path("state"))
        .arg("--config")
        .arg(path("setup.conf"))
        .arg("--write-ek-cert-files")
        .arg(path("ek"))
        .output()
        .expect("swtpm_setup runs");
    assert!(
        out.status.success(),
        "swtpm_setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    Provisioned {
        ek_rsa: std::fs::read(path("ek/ek-rsa2048.crt")).unwrap(),
        ek_p384: std::fs::read(path("ek/ek-secp384r1.crt")).unwrap(),
        intermediate: pem_cert(&path("ca/issuercert.pem")),
        root: pem_cert(&path("ca/swtpm-localca-rootca-cert.pem")),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn pem_cert(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut certs = pem::parse_certificates(&text).unwrap();
    assert_eq!(certs.len(), 1, "{}", path.display());
    certs.remove(0)
}

/// swtpm's certificates start at the moment of provisioning, so the clock decides here.
fn now() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

fn validate(ek_nv: &[u8]) -> Result<ValidatedEkChain, ChainError> {
    let tpm = swtpm();
    let chain = [ek_nv.to_vec(), tpm.intermediate.clone()];
    let anchors = [TrustAnchor::from_der(&tpm.root).unwrap()];
    validate_ek_chain(&chain, &anchors, now(), &ChainPolicy::default())
}

fn padded(der: &[u8], padding: &[u8]) -> Vec<u8> {
    [der, padding].concat()
}

#[test]
fn swtpm_ek_certificates_validate_to_the_local_root() {
    let tpm = swtpm();
    // The files are DER, exactly one certificate each.
    assert_eq!(tpm.ek_rsa[0], 0x30);
    assert_eq!(tpm.ek_p384[0], 0x30);

    for ek in [&tpm.ek_rsa, &tpm.ek_p384] {
        let valid = validate(ek).unwrap();

        assert_eq!(valid.ek_cert().der(), &ek[..]);
        assert_eq!(valid.ek_cert().common_name(), Some("unknown"));
        assert_eq!(valid.certs().len(), 2);
        assert_eq!(valid.certs()[1].der(), &tpm.intermediate[..]);
        assert_eq!(valid.padding_len(), 0);
        assert_eq!(valid.anchor_index(), 0);
        assert_eq!(valid.tpm().manufacturer(), Some("id:00001014"));
        assert_eq!(valid.tpm().model(), Some("swtpm"));
        assert_eq!(valid.tpm().version(), Some("id:20191023"));
    }
}

#[test]
fn swtpm_ek_keys_are_rsa_2048_and_p384() {
    let tpm = swtpm();
    let rsa = validate(&tpm.ek_rsa).unwrap();
    let ecc = validate(&tpm.ek_p384).unwrap();

    // SEQUENCE { rsaEncryption, NULL } then a 2048-bit modulus: 294 bytes in all.
    let rsa_algorithm = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    ];
    assert_eq!(rsa.ek_spki_der().len(), 294);
    assert_eq!(&rsa.ek_spki_der()[4..15], &rsa_algorithm);
    // The P-384 point is what P-384 evidence checks read out of a validated key.
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(ecc.ek_spki_der()).unwrap();
    assert_eq!(spki.subject_public_key.data.len(), 97);
    for (valid, der) in [(&rsa, &tpm.ek_rsa), (&ecc, &tpm.ek_p384)] {
        let at = der
            .windows(valid.ek_spki_der().len())
            .position(|w| w == valid.ek_spki_der());
        assert!(at.is_some(), "the key is the certificate's own");
    }
}

#[test]
fn swtpm_ek_certificates_validate_with_ff_padding() {
    let tpm = swtpm();

    for ek in [&tpm.ek_rsa, &tpm.ek_p384] {
        let valid = validate(&padded(ek, &[0xFF; 100])).unwrap();
        assert_eq!(valid.padding_len(), 100);
        assert_eq!(valid.ek_cert().der(), &ek[..]);

        // As read from a whole 1600-byte NV area.
        let mut nv = ek.clone();
        nv.resize(1600, 0xFF);
        assert_eq!(validate(&nv).unwrap().padding_len(), 1600 - ek.len());
    }
}

#[test]
fn swtpm_ek_certificates_with_other_trailing_bytes_fail() {
    let tpm = swtpm();
    let junk: [&[u8]; 4] = [
        &[0x00; 100],
        &[0x01],
        &[0xFF, 0xFF, 0x00, 0xFF],
        &tpm.intermediate,
    ];

    for ek in [&tpm.ek_rsa, &tpm.ek_p384] {
        for tail in junk {
            let err = validate(&padded(ek, tail)).unwrap_err();
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
        }
    }
}

#[test]
fn swtpm_ek_certificate_needs_the_intermediate() {
    let tpm = swtpm();
    let anchors = [TrustAnchor::from_der(&tpm.root).unwrap()];
    let policy = ChainPolicy::default();

    let err =
        validate_ek_chain(std::slice::from_ref(&tpm.ek_rsa), &anchors, now(), &policy).unwrap_err();
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

    // The intermediate itself may be the anchor, and a copy of the root may end the chain.
    let by_intermediate = [TrustAnchor::from_der(&tpm.intermediate).unwrap()];
    assert!(
        validate_ek_chain(
            std::slice::from_ref(&tpm.ek_p384),
            &by_intermediate,
            now(),
            &policy
        )
        .is_ok()
    );
    let with_root = [
        tpm.ek_p384.clone(),
        tpm.intermediate.clone(),
        tpm.root.clone(),
    ];
    let valid = validate_ek_chain(&with_root, &anchors, now(), &policy).unwrap();
    assert_eq!(valid.certs().len(), 2);
}

#[test]
fn swtpm_ek_certificate_is_refused_before_its_not_before() {
    let tpm = swtpm();
    let anchors = [TrustAnchor::from_der(&tpm.root).unwrap()];
    let chain = [tpm.ek_rsa.clone(), tpm.intermediate.clone()];
    let last_year = now() - 366 * 24 * 3600;

    let err = validate_ek_chain(&chain, &anchors, last_year, &ChainPolicy::default()).unwrap_err();
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
