//! Interop with tpm2-tools, on quotes a real TPM 2.0 implementation (swtpm)
//! made through `tpm2_quote`: `chipward-verifier check-quote` must give the
//! same verdict as `tpm2_checkquote` on every input, genuine and tampered.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::path::Path;
use std::process::Command;

use chipward_tests::swtpm::{self, Swtpm};

/// The RSA EK that swtpm_setup persists.
const RSA_EK: &str = "0x81010001";

struct Quote {
    msg: String,
    sig: String,
    pcrs: String,
    public_pem: String,
    public_tpm2b: String,
    nonce: String,
}

fn make_quote(tpm: &Swtpm, name: &str, key_alg: &str, scheme: &str) -> Quote {
    let ctx = format!("{name}.ctx");
    let public_pem = format!("{name}.pem");
    let public_tpm2b = format!("{name}.tpm2b");
    swtpm::tools(
        tpm,
        "tpm2_createak",
        &[
            "-C",
            RSA_EK,
            "-c",
            &ctx,
            "-G",
            key_alg,
            "-g",
            "sha256",
            "-s",
            scheme,
            "-u",
            &public_pem,
            "-f",
            "pem",
        ],
    );
    // Without a resource manager, loaded objects stay until flushed.
    swtpm::tools(tpm, "tpm2_flushcontext", &["-t"]);
    swtpm::tools(
        tpm,
        "tpm2_readpublic",
        &["-c", &ctx, "-o", &public_tpm2b, "-f", "tss"],
    );
    swtpm::tools(tpm, "tpm2_flushcontext", &["-t"]);
    swtpm::tools(
        tpm,
        "tpm2_pcrextend",
        &["16:sha256=0000000000000000000000000000000000000000000000000000000000000016"],
    );
    let nonce = "5ca1ab1e".repeat(8);
    let (msg, sig, pcrs) = (
        format!("{name}.msg"),
        format!("{name}.sig"),
        format!("{name}.pcrs"),
    );
    swtpm::tools(
        tpm,
        "tpm2_quote",
        &[
            "-c",
            &ctx,
            "-l",
            "sha256:0,1,2,16",
            "-q",
            &nonce,
            "-m",
            &msg,
            "-s",
            &sig,
            "-o",
            &pcrs,
            "-g",
            "sha256",
            "--scheme",
            scheme,
        ],
    );
    swtpm::tools(tpm, "tpm2_flushcontext", &["-t"]);
    Quote {
        msg,
        sig,
        pcrs,
        public_pem,
        public_tpm2b,
        nonce,
    }
}

/// Both verdicts on one input: (ours, tpm2_checkquote's). An empty nonce
/// leaves `-q` out.
fn verdicts(tpm: &Swtpm, q: &Quote, public: &str, nonce: &str) -> (bool, bool) {
    let dir = tpm.dir.path();
    let common = ["-m", &q.msg, "-s", &q.sig, "-u", public, "-f", &q.pcrs];
    let qualification: Vec<&str> = if nonce.is_empty() {
        vec![]
    } else {
        vec!["-q", nonce]
    };
    let ours = Command::new(env!("CARGO_BIN_EXE_chipward-verifier"))
        .current_dir(dir)
        .arg("check-quote")
        .args(common)
        .args(&qualification)
        .output()
        .unwrap();
    let theirs = Command::new("tpm2_checkquote")
        .current_dir(dir)
        .env("TSS2_LOG", "all+none")
        .args(common)
        .args(&qualification)
        .args(["-g", "sha256"])
        .output()
        .unwrap();
    (ours.status.success(), theirs.status.success())
}

fn flip(dir: &Path, file: &str, at: usize, into: &str) -> String {
    let mut bytes = std::fs::read(dir.join(file)).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x01;
    std::fs::write(dir.join(into), bytes).unwrap();
    into.to_owned()
}

/// The verdicts expected for a case: the same from both tools, unless the
/// differences file lists the case.
fn expected(case: &str, verdict: bool) -> (bool, bool) {
    let text = include_str!("data/tpm2-tools-differences.toml");
    let table: toml::Table = text.parse().unwrap();
    let listed = table["difference"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["case"].as_str() == Some(case));
    match listed {
        Some(d) => (
            d["ours"].as_bool().unwrap(),
            d["tpm2_checkquote"].as_bool().unwrap(),
        ),
        None => (verdict, verdict),
    }
}

fn check_agreement(tpm: &Swtpm, label: &str, q: &Quote, other_public: &str) {
    let dir = tpm.dir.path();
    let case = |what: &str| format!("{label}/{what}");
    let genuine = [
        ("genuine-pem", &q.public_pem),
        ("genuine-tpm2b", &q.public_tpm2b),
    ];
    for (what, public) in genuine {
        assert_eq!(
            verdicts(tpm, q, public, &q.nonce),
            expected(&case(what), true),
            "{}",
            case(what)
        );
    }

    let wrong_nonce = "00".repeat(32);
    assert_eq!(
        verdicts(tpm, q, &q.public_pem, &wrong_nonce),
        expected(&case("other-nonce"), false)
    );
    // Without -q both expect an empty nonce, which this quote does not carry.
    assert_eq!(
        verdicts(tpm, q, &q.public_pem, ""),
        expected(&case("no-nonce"), false)
    );
    assert_eq!(
        verdicts(tpm, q, other_public, &q.nonce),
        expected(&case("other-key"), false)
    );

    // A byte of the nonce inside the message, a byte of the pcr digest at the
    // end, a byte of the signature, and a pcr value (the first digest sits
    // at offset 132 + 4 + 4 + 2 of the serialized file).
    let cases = [
        (
            "tampered-message",
            Quote {
                msg: flip(dir, &q.msg, 50, "t1.msg"),
                ..clone(q)
            },
        ),
        (
            "tampered-digest",
            Quote {
                msg: flip(dir, &q.msg, usize::MAX, "t2.msg"),
                ..clone(q)
            },
        ),
        (
            "tampered-signature",
            Quote {
                sig: flip(dir, &q.sig, 20, "t3.sig"),
                ..clone(q)
            },
        ),
        (
            "tampered-pcr",
            Quote {
                pcrs: flip(dir, &q.pcrs, 142, "t4.pcrs"),
                ..clone(q)
            },
        ),
    ];
    for (what, tampered) in cases {
        assert_eq!(
            verdicts(tpm, &tampered, &q.public_pem, &q.nonce),
            expected(&case(what), false),
            "{}",
            case(what)
        );
    }
}

fn clone(q: &Quote) -> Quote {
    Quote {
        msg: q.msg.clone(),
        sig: q.sig.clone(),
        pcrs: q.pcrs.clone(),
        public_pem: q.public_pem.clone(),
        public_tpm2b: q.public_tpm2b.clone(),
        nonce: q.nonce.clone(),
    }
}

#[test]
fn agrees_with_tpm2_checkquote_on_ecdsa_quotes() {
    let tpm = swtpm::start();
    let ecc = make_quote(&tpm, "ecc", "ecc", "ecdsa");
    let other = make_quote(&tpm, "other", "ecc", "ecdsa");
    check_agreement(&tpm, "ecdsa", &ecc, &other.public_pem);
}

#[test]
fn agrees_with_tpm2_checkquote_on_rsa_quotes() {
    let tpm = swtpm::start();
    let rsassa = make_quote(&tpm, "rsassa", "rsa", "rsassa");
    let rsapss = make_quote(&tpm, "rsapss", "rsa", "rsapss");
    check_agreement(&tpm, "rsassa", &rsassa, &rsapss.public_pem);
    check_agreement(&tpm, "rsapss", &rsapss, &rsassa.public_pem);
}
