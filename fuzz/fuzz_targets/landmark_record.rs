//! Landmark measurement records as operators forward them (see the crate's
//! envelope framing): [`landmark::verify`] with the fixed landmark key
//! refuses bad bytes with an error and a verified record survives being
//! signed again; then the verifier's [`Landmarks::check`], with that one
//! landmark enrolled from TOML, checks the record for the committed chip,
//! and any cap it grants is centred on the enrolled position with a finite
//! radius no larger than half the Earth's circumference.

#![no_main]

use std::sync::LazyLock;

use chipward_certs::keys::key_id_for;
use chipward_fuzz::{
    LANDMARK_BINDING, LANDMARK_ID, LANDMARK_MAX_AGE_MS, LANDMARK_POSITION, NOW_MS, envelope,
    landmark_key, public, trusted,
};
use chipward_proto::landmark::{self, MAX_RECORD_LEN, MeasurementRecord};
use chipward_verifier::location::Point;
use chipward_verifier::location::geometry::EARTH_RADIUS_KM;
use chipward_verifier::location::records::Landmarks;
use libfuzzer_sys::fuzz_target;

/// The chip whose attestation key signed the committed records.
const CHIP_ID: &str = include_str!("../data/chip-id.txt");
/// That chip's attestation key (SubjectPublicKeyInfo, DER).
const CHIP_ALIAS_SPKI: &[u8] = include_bytes!("../data/chip-alias-spki.der");

static LANDMARKS: LazyLock<Landmarks> = LazyLock::new(|| {
    let (latitude, longitude) = LANDMARK_POSITION;
    let file = format!(
        "[[landmark]]\nid = {LANDMARK_ID:?}\nlatitude = {latitude}\nlongitude = {longitude}\n\
         public_key = \"{}\"\n",
        hex(&public(&landmark_key()))
    );
    Landmarks::from_toml(&file).expect("the fixed landmark file parses")
});

fuzz_target!(|data: &[u8]| {
    let key = landmark_key();
    let key_id = key_id_for(&public(&key));
    let Some(bytes) = envelope(data, &key, &key_id) else {
        return;
    };
    let keys = trusted(&key, &key_id);

    if let Ok((record, signer)) = landmark::verify(&bytes, &keys) {
        assert_eq!(signer, key_id);
        let again = record.sign(&key_id, |m| key.sign(m).as_ref().to_vec());
        if again.len() <= MAX_RECORD_LEN {
            let (reread, _) = landmark::verify(&again, &keys).expect("a re-signed record verifies");
            assert_eq!(cbor(&reread), cbor(&record));
        }
    }

    let chip_id = CHIP_ID.trim();
    let checked = LANDMARKS.check(
        &bytes,
        chip_id,
        CHIP_ALIAS_SPKI,
        &LANDMARK_BINDING,
        NOW_MS,
        LANDMARK_MAX_AGE_MS,
    );
    if let Ok(cap) = checked {
        let (latitude, longitude) = LANDMARK_POSITION;
        assert_eq!(
            cap.center,
            Point::new(latitude, longitude).expect("a valid position")
        );
        let half_circumference = std::f64::consts::PI * EARTH_RADIUS_KM;
        assert!(cap.radius_km.is_finite() && cap.radius_km >= 0.0);
        assert!(
            cap.radius_km <= half_circumference,
            "radius {}",
            cap.radius_km
        );
    }
});

fn cbor(record: &MeasurementRecord) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(record, &mut out).expect("writing cbor to a vec cannot fail");
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
