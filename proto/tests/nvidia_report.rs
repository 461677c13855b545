//! Parses NVIDIA's published Hopper (GH100) attestation report, evidence
//! from hardware we did not make. The files come from the PyPI wheel
//! `nv-local-gpu-verifier` 2.7.3, fetched by `scripts/fetch-nvidia-sample.sh`
//! into the folder named by `CHIPWARD_NV_SAMPLES`; they are not committed.

use std::path::PathBuf;

use chipward_proto::spdm::{DMTF_SPEC, Transcript};

fn sample_report() -> Vec<u8> {
    let dir = std::env::var_os("CHIPWARD_NV_SAMPLES").map(PathBuf::from).expect(
        "CHIPWARD_NV_SAMPLES is not set: run scripts/fetch-nvidia-sample.sh and export the folder it prints",
    );
    let path = dir.join("verifier/samples/hopperAttestationReport.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    hex::decode(text.trim()).expect("the sample is hex")
}

#[test]
fn parses_the_hopper_report() {
    let bytes = sample_report();
    let t = Transcript::parse(&bytes).unwrap();

    // The request's nonce sits at bytes 4..36 of the file, as DSP0274 lays it out.
    assert_eq!(&t.request.nonce[..], &bytes[4..36]);
    assert_eq!(t.request.operation, 0xFF);
    // Byte 41 of the file is NumberOfBlocks; every block follows the DMTF layout.
    assert_eq!(t.response.blocks.len(), usize::from(bytes[41]));
    assert!(t.response.blocks.iter().all(|b| b.spec == DMTF_SPEC));
    // The signature is the last 96 bytes.
    assert_eq!(t.signed_len, bytes.len() - 96);
    assert_eq!(&t.signature[..], &bytes[bytes.len() - 96..]);
}
