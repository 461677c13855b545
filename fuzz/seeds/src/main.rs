//! Writes the fuzz seed corpus (`corpus/<target>/`) and the fixed trust
//! anchors and chip the targets check against (`data/`), from the project's
//! own encoders, a simulated chip, and a real TPM 2.0 (swtpm driven by
//! tpm2-tools), plus a few hand-made edge cases.
//!
//! Usage: `cargo run --release -p chipward-fuzz-seeds [--fixed-only]
//! [FUZZ_DIR]` from the `fuzz/` folder (default: the folder above this
//! crate). Keys and certificates are made fresh each run, so a run rewrites
//! `data/` and every seed that depends on it together; commit them
//! together. swtpm, swtpm-tools and tpm2-tools must be installed.
//! `--fixed-only` writes only the seeds that depend on nothing made fresh
//! (the issuer's and the audit log's), and leaves `data/` and the other
//! seeds as they are.

mod audit;
mod issuer;
mod objects;
mod tpm;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chipward_certs::pem;
use chipward_certs::pki::DevPki;
use chipward_device_sim::chip::SimChip;
use chipward_fuzz::{
    LANDMARK_BINDING, LANDMARK_ID, LANDMARK_POSITION, NOW_MS, frame_certs, landmark_key, public,
};
use chipward_proto::grpc::{SpdmEvidence, evidence};
use chipward_proto::landmark::MeasurementRecord;
use chipward_proto::spdm::{
    DMTF_SPEC, MeasurementBlock, MeasurementsRequest, MeasurementsResponse, Transcript,
    UnsignedTranscript,
};
use x509_parser::prelude::parse_x509_certificate;

/// Model of the simulated chip.
const MODEL: &str = "CW-100";
/// Its firmware.
const FIRMWARE: &str = "1.4.2";

/// The `cert_chain` target's first byte for a chip chain.
const CHIP_CHAIN: u8 = 0;
/// The `cert_chain` target's first byte for an EK chain.
pub(crate) const EK_CHAIN: u8 = 1;
/// The `cert_chain` target's first byte for PEM text.
const PEM_CHAIN: u8 = 2;

/// Where seeds and fixtures go.
pub(crate) struct Out {
    dir: PathBuf,
}

impl Out {
    /// Writes one seed for `target`.
    pub(crate) fn seed(&self, target: &str, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.write(&Path::new("corpus").join(target).join(name), bytes)
    }

    /// Writes one fixture under `data/`.
    pub(crate) fn data(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.write(&Path::new("data").join(name), bytes)
    }

    fn write(&self, relative: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    }
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let fixed_only = args.first().is_some_and(|a| a == "--fixed-only");
    if fixed_only {
        args.remove(0);
    }
    let dir = match args.first() {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".."),
    };
    let out = Out { dir };

    issuer::seeds(&out)?;
    audit::seeds(&out)?;
    if fixed_only {
        return Ok(());
    }
    let chip = chip_seeds(&out)?;
    tpm::seeds(&out)?;
    objects::seeds(&out, &chip)?;
    Ok(())
}

/// What the other seed writers need from the simulated chip.
pub(crate) struct Chip {
    /// The chip's identity, lowercase hex.
    pub(crate) chip_id: String,
    /// Its SPDM measurement blocks.
    pub(crate) blocks: Vec<MeasurementBlock>,
    /// Common name of the CA that issued its identity: its model's name in
    /// reference values.
    pub(crate) model_ca: String,
}

/// A chip of a fresh development PKI: its evidence, its chains and its
/// landmark records, and the root, chip id and attestation key the targets
/// check against.
fn chip_seeds(out: &Out) -> anyhow::Result<Chip> {
    let tmp = tempfile::tempdir()?;
    let pki = DevPki::create(&tmp.path().join("pki"), MODEL)?;
    let chip = SimChip::manufacture(&pki.chip_ca, MODEL, 7, FIRMWARE)?;
    let evidence = chip.attest(b"fuzz challenge", "acme", "fra-1")?;
    let Some(evidence::Kind::Spdm(SpdmEvidence {
        transcript,
        cert_chain,
    })) = evidence.kind
    else {
        anyhow::bail!("the simulated chip sent no spdm evidence");
    };

    let (_, alias) = parse_x509_certificate(&cert_chain[0])?;
    out.data("chip-root.der", pki.root_cert_der())?;
    out.data("chip-alias-spki.der", alias.public_key().raw)?;
    out.data("chip-id.txt", chip.chip_id.to_hex().as_bytes())?;

    spdm_seeds(out, &transcript)?;

    let root = pki.root_cert_der().to_vec();
    let with_root = [cert_chain.clone(), vec![root]].concat();
    out.seed("cert_chain", "chip-chain", &framed(CHIP_CHAIN, &cert_chain))?;
    out.seed(
        "cert_chain",
        "chip-chain-with-root",
        &framed(CHIP_CHAIN, &with_root),
    )?;
    out.seed(
        "cert_chain",
        "enrolment-chain",
        &framed(CHIP_CHAIN, &chip.enrolment_chain),
    )?;
    let pem_text: String = cert_chain
        .iter()
        .map(|c| pem::certificate_to_pem(c))
        .collect();
    out.seed(
        "cert_chain",
        "chip-chain-pem",
        &[&[PEM_CHAIN][..], pem_text.as_bytes()].concat(),
    )?;

    landmark_seeds(out, &chip)?;

    let model_ca = chip_ca_name(&chip.enrolment_chain[1])?;
    let transcript = Transcript::parse(&transcript)?;
    Ok(Chip {
        chip_id: chip.chip_id.to_hex(),
        blocks: transcript.response.blocks,
        model_ca,
    })
}

/// The chip's transcript, plus hand-made edge cases: no blocks with opaque
/// data, the largest value a block holds, a request without a response.
fn spdm_seeds(out: &Out, transcript: &[u8]) -> anyhow::Result<()> {
    out.seed("spdm_transcript", "chip", transcript)?;
    out.seed("spdm_transcript", "request-only", &transcript[..37])?;

    let request = MeasurementsRequest {
        attributes: 1,
        operation: 0xFF,
        nonce: [0xA5; 32],
        slot_id: 3,
    };
    let empty = MeasurementsResponse {
        param1: 0,
        param2: 3,
        blocks: Vec::new(),
        nonce: [0x5A; 32],
        opaque: b"vendor opaque data".to_vec(),
    };
    let sig = [0x11; 96];
    let bytes = UnsignedTranscript::new(&request, &empty).finish(&sig);
    out.seed("spdm_transcript", "no-blocks-opaque", &bytes)?;

    let raw = MeasurementsResponse {
        blocks: vec![
            MeasurementBlock {
                index: 0xFE,
                spec: DMTF_SPEC,
                value_type: 0x80,
                value: vec![0xEE; 300],
            },
            MeasurementBlock {
                index: 1,
                spec: DMTF_SPEC,
                value_type: 0,
                value: Vec::new(),
            },
        ],
        opaque: Vec::new(),
        ..empty
    };
    let bytes = UnsignedTranscript::new(&request, &raw).finish(&sig);
    out.seed("spdm_transcript", "raw-and-empty-blocks", &bytes)
}

/// Records of the fixed landmark measuring this chip, signed as a landmark
/// does, sealed and as bare payloads.
fn landmark_seeds(out: &Out, chip: &SimChip) -> anyhow::Result<()> {
    let key = landmark_key();
    let key_id = chipward_certs::keys::key_id_for(&public(&key));
    let (latitude, longitude) = LANDMARK_POSITION;

    for (name, rtt_ns) in [("near", 180_000u64), ("far", 950_000_000)] {
        let challenge = [0x3C; 32];
        let bound = chip.distance_bound(LANDMARK_ID, &LANDMARK_BINDING, &challenge)?;
        let record = MeasurementRecord {
            landmark_id: LANDMARK_ID.into(),
            latitude,
            longitude,
            chip_id: chip.chip_id.to_hex(),
            binding: hex::encode(LANDMARK_BINDING),
            rtt_ns,
            measured_at_ms: NOW_MS - 1_500,
            commitment: hex::encode(bound.commitment),
            challenge: hex::encode(challenge),
            response: hex::encode(bound.response),
            secret: hex::encode(bound.secret),
            chip_signature: hex::encode(&bound.signature),
        };
        let signed = record.sign(&key_id, |m| key.sign(m).as_ref().to_vec());
        objects::enveloped(out, "landmark_record", name, &signed)?;
    }
    Ok(())
}

/// The common name of a CA certificate.
fn chip_ca_name(der: &[u8]) -> anyhow::Result<String> {
    let (_, cert) = parse_x509_certificate(der)?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .context("no common name")?;
    Ok(cn.as_str()?.to_owned())
}

/// A `cert_chain` input: the entry point, then the framed certificates.
pub(crate) fn framed(mode: u8, certs: &[Vec<u8>]) -> Vec<u8> {
    [vec![mode], frame_certs(certs)].concat()
}
