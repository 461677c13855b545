//! Seeds from a real TPM 2.0 implementation: swtpm, provisioned with EK
//! certificates under its local CA, driven by tpm2-tools the way a host's
//! agent drives its TPM. Gives EK chains, AK and EK public areas (alone,
//! and paired as host enrolment sends them), and quotes with their
//! signatures and PCR files for ECDSA, RSASSA and RSAPSS keys.

use std::path::Path;
use std::process::Command;

use anyhow::Context as _;
use chipward_certs::pem;
use chipward_device_sim::swtpm::Swtpm;
use chipward_fuzz::QUOTE_NONCE_HEX;
use chipward_proto::tpm::alg;
use chipward_proto::tpm::attest::Attest;
use chipward_proto::tpm::pcr::{MAX_BANKS, PcrSelection, parse_tpm2_tools_serialized};
use chipward_proto::tpm::signature::TpmSignature;

use crate::{EK_CHAIN, Out, framed};

/// The RSA EK handle swtpm_setup persists.
const RSA_EK: &str = "0x81010001";

/// Starts a swtpm and writes every TPM seed, and the EK root to `data/`.
pub(crate) fn seeds(out: &Out) -> anyhow::Result<()> {
    let tpm = Swtpm::start()?;
    ek_chains(out, &tpm)?;

    // Twelve PCRs need two of tpm2-tools' eight-digest lists.
    let quotes = [
        ("ecdsa", "ecc", "ecdsa", "sha256:0,1,2,16"),
        (
            "rsassa",
            "rsa",
            "rsassa",
            "sha256:0,1,2,3,4,5,6,7,8,9,10,23",
        ),
        ("rsapss", "rsa", "rsapss", "sha256:16,23"),
    ];
    for (name, algorithm, scheme, pcrs) in quotes {
        quote(out, &tpm, name, algorithm, scheme, pcrs)?;
    }

    tools(
        &tpm,
        "tpm2_readpublic",
        &["-c", RSA_EK, "-o", "ek.tpm2b", "-f", "tss"],
    )?;
    let ek = read(&tpm, "ek.tpm2b")?;
    out.seed("tpm_public", "ek-rsa.tpm2b", &ek)?;
    // Host enrolment sends the EK's and an AK's public areas together.
    for (name, ..) in quotes {
        let ak = read(&tpm, &format!("{name}.tpm2b"))?;
        out.seed(
            "host_keys",
            &format!("ek-rsa-{name}-ak"),
            &[&ek[..], &ak].concat(),
        )?;
    }
    edge_cases(out, &read(&tpm, "ecdsa.msg")?)
}

/// Hand-made: a quote's attestation retyped as a certification, one with
/// every bank a selection may hold, and signatures a TPM would not make.
fn edge_cases(out: &Out, msg: &[u8]) -> anyhow::Result<()> {
    let mut certify = msg.to_vec();
    certify[4..6].copy_from_slice(&0x8017u16.to_be_bytes());
    out.seed("tpm_attest", "certify-type", &certify)?;

    let mut attest = Attest::decode(msg)?;
    let all: Vec<u32> = (0..64).collect();
    let banks: Vec<(u16, &[u32])> = [alg::SHA1, alg::SHA256, alg::SHA384, alg::SHA512]
        .iter()
        .cycle()
        .take(MAX_BANKS)
        .map(|&hash| (hash, &all[..]))
        .collect();
    attest.pcr_select = PcrSelection::new(&banks);
    out.seed("tpm_attest", "every-bank", &attest.encode())?;

    let short_r = TpmSignature::Ecdsa {
        hash: alg::SHA384,
        r: vec![0x01; 47],
        s: vec![0x02; 48],
    };
    out.seed("tpm_signature", "ecdsa-p384-short-r", &short_r.encode())?;
    out.seed("tpm_signature", "null-scheme", &[0x00, 0x10, 0x00, 0x0B])
}

/// The RSA and P-384 EK certificates with swtpm's intermediate, one padded
/// as read from a larger NV index and carrying the root.
fn ek_chains(out: &Out, tpm: &Swtpm) -> anyhow::Result<()> {
    let root = single_pem(&tpm.root_ca_pem())?;
    let intermediate = single_pem(&tpm.issuer_ca_pem())?;
    out.data("ek-root.der", &root)?;

    let ek_rsa = read(tpm, "ek-certs/ek-rsa2048.crt")?;
    let mut ek_p384 = read(tpm, "ek-certs/ek-secp384r1.crt")?;
    ek_p384.resize(ek_p384.len() + 200, 0xFF);
    let rsa_chain = [ek_rsa, intermediate.clone()];
    out.seed("cert_chain", "ek-rsa-chain", &framed(EK_CHAIN, &rsa_chain))?;
    let padded = [ek_p384, intermediate, root];
    out.seed(
        "cert_chain",
        "ek-p384-padded-chain-with-root",
        &framed(EK_CHAIN, &padded),
    )
}

/// One AK of `algorithm` with `scheme`, and a quote of `pcrs` with it.
fn quote(
    out: &Out,
    tpm: &Swtpm,
    name: &str,
    algorithm: &str,
    scheme: &str,
    pcrs: &str,
) -> anyhow::Result<()> {
    let file = |ext: &str| format!("{name}.{ext}");
    let (ctx, pem, public) = (file("ctx"), file("pem"), file("tpm2b"));
    let (msg, sig, values) = (file("msg"), file("sig"), file("pcrs"));

    let createak = [
        "-C", RSA_EK, "-c", &ctx, "-G", algorithm, "-g", "sha256", "-s", scheme, "-u", &pem, "-f",
        "pem",
    ];
    tools(tpm, "tpm2_createak", &createak)?;
    // Without a resource manager, loaded objects stay until flushed.
    tools(tpm, "tpm2_flushcontext", &["-t"])?;
    tools(
        tpm,
        "tpm2_readpublic",
        &["-c", &ctx, "-o", &public, "-f", "tss"],
    )?;
    tools(tpm, "tpm2_flushcontext", &["-t"])?;
    let quote = [
        "-c",
        &ctx,
        "-l",
        pcrs,
        "-q",
        QUOTE_NONCE_HEX,
        "-m",
        &msg,
        "-s",
        &sig,
        "-o",
        &values,
        "-g",
        "sha256",
        "--scheme",
        scheme,
    ];
    tools(tpm, "tpm2_quote", &quote)?;
    tools(tpm, "tpm2_flushcontext", &["-t"])?;

    let public = read(tpm, &public)?;
    out.seed("tpm_public", &format!("{name}-ak.tpm2b"), &public)?;
    out.seed("tpm_public", &format!("{name}-ak.tpmt"), &public[2..])?;
    out.seed("tpm_public", &format!("{name}-ak.pem"), &read(tpm, &pem)?)?;

    let msg = read(tpm, &msg)?;
    out.seed("tpm_attest", &format!("{name}.msg"), &msg)?;
    out.seed("tpm_signature", &format!("{name}.sig"), &read(tpm, &sig)?)?;

    // The pcr target reads a file whole, a selection whole, and a selection
    // behind its length byte followed by the values it selects.
    let values = read(tpm, &values)?;
    out.seed("tpm_pcr_file", &format!("{name}.pcrs"), &values)?;
    let selection = Attest::decode(&msg)?.pcr_select;
    let encoded = selection.encode();
    out.seed("tpm_pcr_file", &format!("{name}-selection"), &encoded)?;
    let (_, parsed) = parse_tpm2_tools_serialized(&values)?;
    let digests = parsed
        .concat_for(&selection)
        .context("the pcr file holds every selected value")?;
    let len = u8::try_from(encoded.len())?;
    let split = [&[len][..], &encoded, &digests].concat();
    out.seed(
        "tpm_pcr_file",
        &format!("{name}-selection-and-values"),
        &split,
    )
}

/// Runs a tpm2-tools command against `tpm`, in its folder.
fn tools(tpm: &Swtpm, program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program)
        .args(args)
        .current_dir(tpm.dir.path())
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .env("TSS2_LOG", "all+none")
        .output()
        .with_context(|| format!("{program} is not installed: apt-get install tpm2-tools"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn read(tpm: &Swtpm, name: &str) -> anyhow::Result<Vec<u8>> {
    let path = tpm.dir.path().join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

fn single_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)?;
    let mut certs = pem::parse_certificates(&text)?;
    anyhow::ensure!(certs.len() == 1, "{} holds one certificate", path.display());
    Ok(certs.remove(0))
}
