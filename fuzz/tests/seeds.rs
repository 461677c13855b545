//! The committed seeds reach the end of each target: the genuine ones pass
//! every check the target makes with the committed fixtures and fixed keys,
//! so the fuzzer starts from inputs that exercise the whole path, not just
//! its first rejection. A seed writer run that left `data/` and `corpus/`
//! out of step fails here.
//!
//! Limitation: the seeds meant to be refused are not checked here; a
//! target's first run shows them refused, not panicking.

use std::path::{Path, PathBuf};

use chipward_certs::chain::{ChainPolicy, TrustAnchor, validate_chain, validate_ek_chain};
use chipward_certs::keys::key_id_for;
use chipward_certs::pem;
use chipward_fuzz::{
    ENVELOPE_AS_IS, ENVELOPE_SEAL, ISSUER_KEY_ID, LANDMARK_BINDING, LANDMARK_ID,
    LANDMARK_MAX_AGE_MS, LANDMARK_POSITION, NOW_MS, NOW_UNIX, QUOTE_NONCE_HEX, VERIFIER_KEY_ID,
    issuer_key, landmark_key, public, seal, split_certs, trusted, verifier_key,
};
use chipward_issuer::IssuerConfig;
use chipward_issuer::compliance::CompliancePolicy;
use chipward_issuer::host_enrolment::keys::{attestation_key, endorsement_key};
use chipward_issuer::request::issue_terms;
use chipward_issuer::screening::{ListFormat, ScreeningList};
use chipward_proto::audit::{AuditExport, check, check_json};
use chipward_proto::grpc::IssueLicenseRequest;
use chipward_proto::spdm::Transcript;
use chipward_proto::tpm::pcr::parse_tpm2_tools_serialized;
use chipward_proto::{license, result};
use chipward_verifier::evidence::tpm::check_quote_files;
use chipward_verifier::evidence::tpm::key::QuoteKey;
use chipward_verifier::location::records::Landmarks;
use prost::Message;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> Vec<u8> {
    let path = fuzz_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A seed of an envelope target that carries the envelope as received.
fn as_received(relative: &str) -> Vec<u8> {
    let seed = read(relative);
    assert_eq!(seed[0], ENVELOPE_AS_IS, "{relative}");
    seed[1..].to_vec()
}

fn anchor(relative: &str) -> TrustAnchor {
    TrustAnchor::from_der(&read(relative)).unwrap()
}

#[test]
fn chip_chains_validate_to_the_committed_root() {
    let root = anchor("data/chip-root.der");
    let policy = ChainPolicy::default();
    for (seed, len) in [
        ("chip-chain", 3),
        ("chip-chain-with-root", 3),
        ("enrolment-chain", 2),
    ] {
        let input = read(&format!("corpus/cert_chain/{seed}"));
        assert_eq!(input[0] % 3, 0, "{seed} is a chip chain");
        let chain = validate_chain(&split_certs(&input[1..]), &root, NOW_UNIX, &policy).unwrap();
        assert_eq!(chain.certs().len(), len, "{seed}");
    }

    let text = read("corpus/cert_chain/chip-chain-pem");
    assert_eq!(text[0] % 3, 2);
    let ders = pem::parse_certificates(std::str::from_utf8(&text[1..]).unwrap()).unwrap();
    assert!(validate_chain(&ders, &root, NOW_UNIX, &policy).is_ok());
}

#[test]
fn ek_chains_validate_to_the_swtpm_root() {
    let anchors = [anchor("data/ek-root.der"), anchor("data/chip-root.der")];
    let policy = ChainPolicy::default();
    for (seed, padding) in [("ek-rsa-chain", 0), ("ek-p384-padded-chain-with-root", 200)] {
        let input = read(&format!("corpus/cert_chain/{seed}"));
        assert_eq!(input[0] % 3, 1, "{seed} is an ek chain");
        let chain = validate_ek_chain(&split_certs(&input[1..]), &anchors, NOW_UNIX, &policy);
        let chain = chain.unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert_eq!(
            (chain.anchor_index(), chain.padding_len()),
            (0, padding),
            "{seed}"
        );
    }
}

#[test]
fn the_chip_transcript_is_signed_by_the_committed_attestation_key() {
    let bytes = read("corpus/spdm_transcript/chip");
    let transcript = Transcript::parse(&bytes).unwrap();
    let spki = read("data/chip-alias-spki.der");
    let signed = &bytes[..transcript.signed_len];
    chipward_certs::chain::verify_p384_fixed(&spki, signed, &transcript.signature).unwrap();
}

#[test]
fn landmark_records_pass_every_check() {
    let (latitude, longitude) = LANDMARK_POSITION;
    let file = format!(
        "[[landmark]]\nid = {LANDMARK_ID:?}\nlatitude = {latitude}\nlongitude = {longitude}\n\
         public_key = \"{}\"\n",
        hex::encode(public(&landmark_key()))
    );
    let landmarks = Landmarks::from_toml(&file).unwrap();
    let chip_id = String::from_utf8(read("data/chip-id.txt")).unwrap();
    let spki = read("data/chip-alias-spki.der");
    for seed in ["near", "far"] {
        let record = as_received(&format!("corpus/landmark_record/{seed}"));
        let checked = landmarks.check(
            &record,
            chip_id.trim(),
            &spki,
            &LANDMARK_BINDING,
            NOW_MS,
            LANDMARK_MAX_AGE_MS,
        );
        assert!(checked.is_ok(), "{seed}: {checked:?}");
    }
    assert_eq!(key_id_for(&public(&landmark_key())).len(), 16);
}

#[test]
fn signed_objects_verify_under_the_fixed_keys() {
    let issuer = trusted(&issuer_key(), ISSUER_KEY_ID);
    for seed in ["license", "license-extremes"] {
        let token = as_received(&format!("corpus/license_token/{seed}"));
        assert!(license::verify(&token, &issuer).is_ok(), "{seed}");
    }
    let verifier = trusted(&verifier_key(), VERIFIER_KEY_ID);
    for seed in ["result", "result-failed"] {
        let bytes = as_received(&format!("corpus/attestation_result/{seed}"));
        assert!(result::verify(&bytes, &verifier).is_ok(), "{seed}");
    }
    let list = as_received("corpus/revocation_list/list");
    assert_eq!(
        chipward_proto::revocation::verify(&list, &issuer)
            .unwrap()
            .entries
            .len(),
        2
    );
    let binding = as_received("corpus/ak_binding/binding");
    assert!(chipward_proto::ak_binding::verify(&binding, &issuer).is_ok());
}

#[test]
fn tpm_quotes_check_as_tpm2_checkquote_would() {
    let nonce = hex::decode(QUOTE_NONCE_HEX).unwrap();
    for name in ["ecdsa", "rsassa", "rsapss"] {
        let seed = |target: &str, file: String| read(&format!("corpus/{target}/{file}"));
        let key = QuoteKey::from_file_bytes(&seed("tpm_public", format!("{name}-ak.pem"))).unwrap();
        let tpm2b = QuoteKey::from_file_bytes(&seed("tpm_public", format!("{name}-ak.tpm2b")));
        assert_eq!(
            tpm2b.as_ref(),
            Ok(&key),
            "{name}: both key files name one key"
        );
        let (selection, values) =
            parse_tpm2_tools_serialized(&seed("tpm_pcr_file", format!("{name}.pcrs"))).unwrap();
        let checked = check_quote_files(
            &seed("tpm_attest", format!("{name}.msg")),
            &seed("tpm_signature", format!("{name}.sig")),
            &key,
            &nonce,
            Some((&selection, &values)),
            false,
        );
        assert!(checked.is_ok(), "{name}: {checked:?}");
    }
}

#[test]
fn the_committed_lists_load_in_both_forms() {
    for (format, seed, entries) in [
        (ListFormat::Json, "screening_json/test-list.json", 7),
        (ListFormat::Json, "screening_json/demo-list.json", 6),
        (ListFormat::Csv, "screening_csv/test-list.csv", 3),
    ] {
        let list = ScreeningList::parse(
            format,
            "CSL",
            "2026-12-01",
            &read(&format!("corpus/{seed}")),
        );
        assert_eq!(list.unwrap().entries().len(), entries, "{seed}");
    }
}

#[test]
fn the_example_files_parse_and_answer_the_queries() {
    let config = IssuerConfig::parse(
        &String::from_utf8(read("corpus/issuer_config/issuer-example.toml")).unwrap(),
    );
    assert_eq!(
        config.unwrap().settings().unwrap().default_lifetime_secs,
        86_400
    );
    let every_key = String::from_utf8(read("corpus/issuer_config/every-key.toml")).unwrap();
    assert_eq!(
        IssuerConfig::parse(&every_key)
            .unwrap()
            .settings()
            .unwrap()
            .max_message_bytes,
        4096
    );

    for (seed, site, tier) in [
        ("example-claimed", "fra-1", "allied"),
        ("example-measured-late", "sin-1", "controlled"),
    ] {
        let bytes = read(&format!("corpus/compliance_policy/{seed}"));
        let nul = bytes.iter().position(|b| *b == 0).unwrap();
        let policy =
            CompliancePolicy::from_toml(std::str::from_utf8(&bytes[..nul]).unwrap()).unwrap();
        let texts: Vec<&str> = std::str::from_utf8(&bytes[nul + 22..])
            .unwrap()
            .split('\0')
            .collect();
        assert_eq!(texts[1], site);
        let terms = policy.terms(texts[0], texts[1], texts[2]).unwrap();
        assert_eq!(terms.tier.name, tier, "{seed}");
    }
}

#[test]
fn the_issue_request_is_accepted() {
    let bytes = read("corpus/issuer_request/issue");
    assert_eq!(bytes[0], 0);
    let req = IssueLicenseRequest::decode(&bytes[1..]).unwrap();
    let terms = issue_terms(&req, NOW_UNIX, &Default::default()).unwrap();
    assert_eq!(terms.expires_at - terms.not_before, 86_400);
}

#[test]
fn host_key_pairs_hold_their_profiles() {
    for (seed, ak_ok) in [
        ("ek-rsa-ecdsa-ak", true),
        ("ek-rsa-rsassa-ak", true),
        ("ek-rsa-rsapss-ak", true),
        ("handmade-ek-rsa-ak", true),
        ("handmade-ek-decrypting-ak", false),
    ] {
        let bytes = read(&format!("corpus/host_keys/{seed}"));
        let ek_len = 2 + usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        assert!(endorsement_key(&bytes[..ek_len]).is_ok(), "{seed}");
        assert_eq!(attestation_key(&bytes[ek_len..]).is_ok(), ak_ok, "{seed}");
    }
}

#[test]
fn audit_exports_check_under_the_fixed_key() {
    let keys = trusted(&issuer_key(), ISSUER_KEY_ID);
    for (seed, entries) in [("full", 4), ("part", 2)] {
        let bytes = read(&format!("corpus/audit_export/{seed}"));
        assert_eq!(bytes[0], ENVELOPE_AS_IS);
        let report = check_json(&bytes[1..], &keys, None).unwrap();
        assert_eq!((report.entries.len(), report.artifacts.len()), (entries, 1));

        let bytes = read(&format!("corpus/audit_export/{seed}-payload-heads"));
        assert_eq!(bytes[0], ENVELOPE_SEAL);
        let mut export = AuditExport::from_json(&bytes[1..]).unwrap();
        for head in std::iter::once(&mut export.tree_head).chain(&mut export.earlier_tree_heads) {
            head.0 = seal(head.0.clone(), &issuer_key(), ISSUER_KEY_ID);
        }
        assert_eq!(check(&export, &keys, None).unwrap().entries.len(), entries);
    }
}

#[test]
fn every_target_has_seeds() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let targets: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|name| !name.starts_with("chipward"))
        .collect();
    assert_eq!(targets.len(), 24);
    for target in targets {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let count = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(count >= 3, "{target} has {count} seeds");
    }
}
