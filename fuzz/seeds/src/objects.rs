//! Seeds for the signed objects (license tokens, attestation results,
//! revocation lists, AK bindings and the bare envelope), challenges and the
//! verifier's TOML files, made with the project's own encoders and signed
//! with the targets' fixed keys; plus hand-made envelopes each refused for
//! one reason.

use chipward_fuzz::{
    ENVELOPE_AS_IS, ENVELOPE_SEAL, ISSUER_KEY_ID, LANDMARK_ID, LANDMARK_POSITION, NOW_MS, NOW_UNIX,
    VERIFIER_KEY_ID, issuer_key, landmark_key, public, seal, verifier_key,
};
use chipward_proto::ak_binding::AkBinding;
use chipward_proto::cose;
use chipward_proto::ids::{ChipId, TokenId};
use chipward_proto::license::{LicenseClaims, SiteClaim};
use chipward_proto::result::{
    AttestationResult, ClaimResult, LocationBound, MeasurementRecord, Status,
};
use chipward_proto::revocation::{RevocationList, RevokedLicense};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::evidence::tpm::host::HostPolicy;
use chipward_verifier::policy::reference::ReferenceValues;
use coset::{CborSerializable as _, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable as _};

use crate::{Chip, Out};

/// Writes every seed of this module.
pub(crate) fn seeds(out: &Out, chip: &Chip) -> anyhow::Result<()> {
    license_seeds(out, chip)?;
    result_seeds(out, chip)?;
    revocation_seeds(out)?;
    binding_seeds(out)?;
    cose_seeds(out)?;
    challenge_seeds(out)?;
    config_seeds(out, chip)
}

/// Writes an envelope seed for `target` twice: as received, and as the
/// bare payload the target seals itself.
pub(crate) fn enveloped(out: &Out, target: &str, name: &str, sealed: &[u8]) -> anyhow::Result<()> {
    out.seed(target, name, &[&[ENVELOPE_AS_IS][..], sealed].concat())?;
    let payload = cose::peek_payload(sealed, usize::MAX)?;
    let bare = [&[ENVELOPE_SEAL][..], &payload].concat();
    out.seed(target, &format!("{name}-payload"), &bare)
}

fn license_seeds(out: &Out, chip: &Chip) -> anyhow::Result<()> {
    let key = issuer_key();
    let claims = LicenseClaims {
        issuer: "chipward-issuer".into(),
        chip_id: chip.chip_id.parse::<ChipId>()?,
        audience: "chipward-verifier".into(),
        issued_at: NOW_UNIX - 3_600,
        not_before: NOW_UNIX - 3_600,
        expires_at: NOW_UNIX + 30 * 86_400,
        token_id: TokenId([0x07; 16]),
        tenant: "acme".into(),
        site: SiteClaim {
            id: "fra-1".into(),
            latitude: 50.1109,
            longitude: 8.6821,
            radius_km: 25.0,
        },
        entitlements: vec!["inference".into(), "training".into()],
        eccn: "3A090".into(),
    };
    let token = claims.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    enveloped(out, "license_token", "license", &token)?;
    enveloped(out, "cose_envelope", "license", &token)?;

    // Extremes: the widest window, no entitlements, the antimeridian.
    let extreme = LicenseClaims {
        not_before: i64::MIN,
        expires_at: i64::MAX,
        entitlements: Vec::new(),
        site: SiteClaim {
            id: String::new(),
            latitude: -90.0,
            longitude: 180.0,
            radius_km: 0.0,
        },
        ..claims
    };
    let token = extreme.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    enveloped(out, "license_token", "license-extremes", &token)
}

fn result_seeds(out: &Out, chip: &Chip) -> anyhow::Result<()> {
    let key = verifier_key();
    let claim = |name: &str, status, code: &str| ClaimResult {
        claim: name.into(),
        status,
        code: code.into(),
        reason: String::new(),
    };
    let claims = vec![
        claim("firmware.measurements", Status::Pass, "ok"),
        claim("location", Status::Pass, "ok"),
        claim("license.revocation", Status::Unknown, "CW-REV-STALE"),
    ];
    let (latitude, longitude) = LANDMARK_POSITION;
    let result = AttestationResult {
        appraised_at: NOW_UNIX,
        chip_id: chip.chip_id.clone(),
        model: chip.model_ca.clone(),
        tenant: "acme".into(),
        site_id: "fra-1".into(),
        token_id: "07".repeat(16),
        evidence_sha256: "ab".repeat(32),
        measurements: chip
            .blocks
            .iter()
            .map(|b| MeasurementRecord {
                index: b.index,
                value: hex::encode(&b.value),
            })
            .collect(),
        verdict: AttestationResult::verdict_of(&claims),
        claims,
        location: Some(LocationBound {
            latitude,
            longitude,
            radius_km: 25.0,
            nearest_km: Some(0.0),
            farthest_km: None,
        }),
    };
    let bytes = result.sign(VERIFIER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    enveloped(out, "attestation_result", "result", &bytes)?;

    let failed = AttestationResult {
        chip_id: String::new(),
        measurements: Vec::new(),
        claims: vec![claim("evidence.signature", Status::Fail, "CW-EV-SIG")],
        verdict: Status::Fail,
        location: None,
        ..result
    };
    let bytes = failed.sign(VERIFIER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    enveloped(out, "attestation_result", "result-failed", &bytes)
}

fn revocation_seeds(out: &Out) -> anyhow::Result<()> {
    let key = issuer_key();
    let entry = |token: &str, chip: &str| RevokedLicense {
        token_id: token.repeat(16),
        chip_id: chip.repeat(32),
        revoked_at: NOW_UNIX - 60,
        reason: "contract ended".into(),
    };
    let list = RevocationList {
        seq: 2,
        issued_at: NOW_UNIX,
        entries: vec![entry("aa", "bb"), entry("cc", "dd")],
    };
    let bytes = list.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    enveloped(out, "revocation_list", "list", &bytes)?;
    let empty = RevocationList {
        seq: 0,
        issued_at: 0,
        entries: Vec::new(),
    };
    let bytes = empty.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    enveloped(out, "revocation_list", "empty", &bytes)
}

fn binding_seeds(out: &Out) -> anyhow::Result<()> {
    let key = issuer_key();
    let binding = AkBinding {
        host_id: "5e".repeat(32),
        ak_public: "0056".to_owned() + &"00".repeat(0x56),
        ak_name: "000b".to_owned() + &"1f".repeat(32),
        ek_cert_sha256: "e4".repeat(32),
        tpm_manufacturer: "id:00001014".into(),
        issued_at: NOW_UNIX - 86_400,
        expires_at: NOW_UNIX + 86_400,
    };
    let bytes = binding.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    enveloped(out, "ak_binding", "binding", &bytes)?;

    // Hand-made: a signed payload that is not a binding, the CBOR map
    // {"host_id": 1}.
    let not_binding = [&[0xA1, 0x67][..], b"host_id", &[0x01]].concat();
    let bytes = seal(not_binding, &key, ISSUER_KEY_ID);
    enveloped(out, "ak_binding", "not-a-binding", &bytes)
}

/// The bare envelope: a small payload, then envelopes refused for one
/// reason each (another algorithm, a critical header, no payload, an
/// unknown key).
fn cose_seeds(out: &Out) -> anyhow::Result<()> {
    let key = issuer_key();
    enveloped(
        out,
        "cose_envelope",
        "hello",
        &seal(b"hello".to_vec(), &key, ISSUER_KEY_ID),
    )?;

    let sign = |m: &[u8]| key.sign(m).as_ref().to_vec();
    let es256 = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::ES256)
        .key_id(ISSUER_KEY_ID.as_bytes().to_vec())
        .build();
    let critical = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::EdDSA)
        .key_id(ISSUER_KEY_ID.as_bytes().to_vec())
        .add_critical(coset::iana::HeaderParameter::ContentType)
        .content_format(coset::iana::CoapContentFormat::Cbor)
        .build();
    let plain = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::EdDSA)
        .key_id(ISSUER_KEY_ID.as_bytes().to_vec())
        .build();
    let unknown = HeaderBuilder::new()
        .algorithm(coset::iana::Algorithm::EdDSA)
        .key_id(b"someone else".to_vec())
        .build();
    let cases = [
        ("other-algorithm", es256, Some(b"x".to_vec())),
        ("critical-header", critical, Some(b"x".to_vec())),
        ("detached-payload", plain, None),
        ("unknown-key", unknown, Some(b"x".to_vec())),
    ];
    for (name, protected, payload) in cases {
        let mut builder = CoseSign1Builder::new().protected(protected);
        if let Some(payload) = payload {
            builder = builder.payload(payload);
        }
        let sign1 = builder.create_signature(b"", sign).build();
        let tagged = sign1.clone().to_tagged_vec().map_err(anyhow::Error::msg)?;
        out.seed(
            "cose_envelope",
            name,
            &[&[ENVELOPE_AS_IS][..], &tagged].concat(),
        )?;
        if name == "other-algorithm" {
            let untagged = sign1.to_vec().map_err(anyhow::Error::msg)?;
            let seed = [&[ENVELOPE_AS_IS][..], &untagged].concat();
            out.seed("cose_envelope", "untagged", &seed)?;
        }
    }
    Ok(())
}

fn challenge_seeds(out: &Out) -> anyhow::Result<()> {
    let challenges = Challenges::new(NonceKey::from_bytes(&[0x05; 32]), 60_000);
    let minted = challenges.mint(NOW_MS).encode();
    out.seed("challenge", "minted", &minted)?;
    let mut version_2 = minted.clone();
    version_2[0] = 2;
    out.seed("challenge", "version-2", &version_2)?;
    out.seed("challenge", "short", &minted[..64])
}

/// The example configuration, and the landmarks, reference values and host
/// policy files as the verifier writes or reads them.
fn config_seeds(out: &Out, chip: &Chip) -> anyhow::Result<()> {
    let example = include_str!("../../../verifier/verifier.example.toml");
    out.seed(
        "verifier_config",
        "verifier-example.toml",
        example.as_bytes(),
    )?;

    let (latitude, longitude) = LANDMARK_POSITION;
    let landmarks = format!(
        "[[landmark]]\nid = {LANDMARK_ID:?}\nlatitude = {latitude}\nlongitude = {longitude}\n\
         public_key = \"{}\"\n",
        hex::encode(public(&landmark_key()))
    );
    out.seed("verifier_config", "landmarks.toml", landmarks.as_bytes())?;

    let mut references = ReferenceValues::default();
    for block in &chip.blocks {
        references.insert(&chip.model_ca, block.index, vec![block.value.clone()]);
    }
    out.seed(
        "verifier_config",
        "reference-values.toml",
        references.to_toml().as_bytes(),
    )?;

    let mut policy = HostPolicy::default();
    policy
        .firmware
        .insert(0, vec![vec![0x00; 32], vec![0x0F; 32]]);
    policy.firmware.insert(7, vec![vec![0x77; 32]]);
    out.seed(
        "verifier_config",
        "host-policy.toml",
        policy.to_toml().as_bytes(),
    )
}
